// sluice_port_bench: packets per second received through AF_XDP and AF_PACKET on a veth pair, side by side in one
// run with the kernel's own XDP_DROP on the same veth and with minimal receive loops written directly on libxdp and on
// a TPACKET_V3 ring (the floor of what each socket can give here). Needs root (namespaces, XDP); prints a table.
//
// Setup (bench/veth_bench.hpp, shared with sluice_lua_bench): namespaces "sluice-<pid>-bench-s" and "-bench-a" joined
// by a veth pair; a sender thread in -a pushes 64-byte UDP frames addressed to the receiving end as fast as it can: by
// default with the kernel's XDP live-frames test run (bench/veth_traffic.bpf.c redirecting out of the sender's veth,
// as xdp-trafficgen does; live_sender), or through an AF_PACKET TX ring.
// Each variant then receives for --seconds on the other end, one variant at a time, with the same sender. Reported per
// variant: received Mpps, the sender's offered Mpps in the same window, and the receiving thread's CPU time per packet
// (the cost that matters when the sender, not the receiver, is the limit), and ratios against the bare loops.
//
// Where the time goes on veth: the kernel's side of AF_XDP copy mode (veth NAPI, the XDP program, the copy into the
// UMEM) runs in the sender's softirq, not in the receiving thread; so received Mpps mostly measure the sender and
// the kernel, and CPU ns per packet measure the receiving loop.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "netns.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/io/port.hpp"
#include "sluice/xdp/engine.hpp"
#include "sluice/xdp/executor.hpp"
#include "veth_bench.hpp"

namespace {

using namespace std::chrono_literals;

using sluice::bench::process_cpu_seconds;
using sluice::bench::receive_window;
using sluice::bench::thread_cpu_seconds;

struct measurement {
    std::string name;
    std::uint64_t received{};
    std::uint64_t offered{};
    double seconds{};
    double cpu_seconds{};
    std::string note;

    double mpps() const { return static_cast<double>(received) / seconds / 1e6; }
    double offered_mpps() const { return static_cast<double>(offered) / seconds / 1e6; }
    double cpu_ns() const { return received == 0 ? 0 : cpu_seconds * 1e9 / static_cast<double>(received); }
};

// A receive loop under test: called in the receiving namespace; `stop` ends it; returns packets received and fills
// cpu with its thread's CPU seconds.
using receiver = std::function<std::uint64_t(const std::atomic<bool>& stop, double& cpu)>;

class bench {
public:
    bench(const sluice::bench::veth_rig& rig, std::uint32_t size, double seconds)
        : _rig(rig), _size(size), _seconds(seconds) {}

    // Runs the sender for the whole window of `run`, and returns the counts of both.
    measurement measure(const std::string& name, const receiver& run) {
        measurement result;
        result.name = name;
        const std::vector<std::uint8_t> payload(_size - 42, 0x5a);
        auto frame = sluice::test::udp_frame({0x02, 0, 0, 0, 0, 0x02}, _rig.destination(), "10.88.0.2", "10.88.0.1", 9,
                                             9, payload);
        // The kernel as traffic generator (live_sender, bench/veth_bench.hpp): several times what a userspace sender
        // reaches. The receiving end needs NAPI for frames redirected into it: an XDP program (AF_XDP, the kernel
        // drop) or GRO (on, for the AF_PACKET variants).
        if (_xdp_sender) {
            auto started = sluice::bench::live_sender::start(_rig, SLUICE_BENCH_DIR "/veth_traffic.o", {}, frame);
            if (started) {
                _live = std::move(*started);
            } else {
                fmt::print(stderr, "sender: {}; falling back to AF_PACKET\n", started.error().message);
                _xdp_sender = false;
            }
        }
        std::atomic<bool> sender_stop{false};
        std::atomic<std::uint64_t> sent{0};
        std::thread sender;
        if (!_live) {
            sender = std::thread([&] { _rig.sender().run([&] { send_afpacket(frame, sender_stop, sent); }); });
        }
        const auto offered = [&] { return _live ? _live->sent() : sent.load(); };
        std::atomic<bool> receiver_stop{false};
        std::uint64_t received = 0;
        double cpu = 0;
        std::thread receiving([&] { _rig.receiver().run([&] { received = run(receiver_stop, cpu); }); });
        std::this_thread::sleep_for(300ms); // warm up: rings filled, program attached
        const std::uint64_t sent_before = offered();
        const auto start = std::chrono::steady_clock::now();
        _window_start.store(true);
        std::this_thread::sleep_for(std::chrono::duration<double>(_seconds));
        receiver_stop.store(true);
        const std::uint64_t sent_after = offered();
        receiving.join();
        result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        sender_stop.store(true);
        if (sender.joinable()) {
            sender.join();
        }
        _live.reset();
        _window_start.store(false);
        result.received = received;
        result.offered = sent_after - sent_before;
        result.cpu_seconds = cpu;
        return result;
    }

    /// Receivers count only packets that arrive after the window opened (warm-up traffic is not measured).
    const std::atomic<bool>& window_open() const { return _window_start; }
    /// The sender thread's CPU time so far, for receivers that can only measure the whole process (the engine).
    double sender_cpu_seconds() const {
        return _live ? _live->cpu_seconds() : static_cast<double>(_sender_cpu_ns.load()) * 1e-9;
    }

    void use_xdp_sender(bool enabled) { _xdp_sender = enabled; }

private:
    void send_afpacket(const std::vector<std::uint8_t>& frame, const std::atomic<bool>& stop,
                       std::atomic<std::uint64_t>& sent) {
        sluice::xdp::frame_pool pool(4096);
        sluice::io::port_options options;
        options.ring_size = 4096;
        options.poll_timeout_ms = 0;
        auto opened = sluice::io::open_port("afpacket:" + _rig.sender_interface(), pool, options);
        if (!opened) {
            fmt::print(stderr, "sender: {}\n", opened.error().message);
            return;
        }
        sluice::io::port& port = *opened.value();
        std::array<sluice::xdp::frame*, 64> frames{};
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t count = pool.acquire_batch(frames);
            for (std::size_t i = 0; i < count; ++i) {
                (void)frames[i]->assign(frame);
            }
            const std::size_t accepted = port.tx_batch(std::span<sluice::xdp::frame* const>(frames.data(), count));
            pool.release_batch(std::span<sluice::xdp::frame* const>(frames.data() + accepted, count - accepted));
            port.flush();
            sent.fetch_add(accepted, std::memory_order_relaxed);
            _sender_cpu_ns.store(static_cast<std::uint64_t>(thread_cpu_seconds() * 1e9), std::memory_order_relaxed);
        }
    }

    const sluice::bench::veth_rig& _rig;
    std::uint32_t _size;
    double _seconds;
    std::unique_ptr<sluice::bench::live_sender> _live;
    std::atomic<bool> _window_start{false};
    std::atomic<std::uint64_t> _sender_cpu_ns{0};
    bool _xdp_sender{true};
};

// The kernel's own XDP_DROP: r0 = XDP_DROP after counting in a per-CPU array (the count is the measurement).
std::uint64_t kernel_xdp_drop(const std::string& interface, const std::atomic<bool>& window,
                              const std::atomic<bool>& stop, double& cpu, std::string& note) {
    const int map = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "sluice_count", 4, 8, 1, nullptr);
    if (map < 0) {
        note = fmt::format("bpf_map_create: {}", std::strerror(errno));
        return 0;
    }
    const bpf_insn program[] = {
        {BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0},                  // *(u32*)(r10-4) = 0
        {BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0},        // r2 = r10
        {BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4},                // r2 += -4
        {BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map}, // r1 = map
        {0, 0, 0, 0, 0},
        {BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem},  // r0 = lookup(map, &key)
        {BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 3, 0},          // if r0 == 0 goto out
        {BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_1, BPF_REG_0, 0, 0}, // r1 = *r0
        {BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_1, 0, 0, 1},        // r1 += 1
        {BPF_STX | BPF_MEM | BPF_DW, BPF_REG_0, BPF_REG_1, 0, 0}, // *r0 = r1
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_DROP}, // out: r0 = XDP_DROP
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "sluice_drop", "GPL", program, std::size(program), nullptr);
    if (fd < 0) {
        note = fmt::format("bpf_prog_load: {}", std::strerror(errno));
        ::close(map);
        return 0;
    }
    const int ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
    if (bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE, nullptr) != 0) {
        note = fmt::format("bpf_xdp_attach: {}", std::strerror(errno));
        ::close(fd);
        ::close(map);
        return 0;
    }
    const auto sum = [&] {
        const int cpus = libbpf_num_possible_cpus();
        std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus));
        const std::uint32_t key = 0;
        std::uint64_t total = 0;
        if (bpf_map_lookup_elem(map, &key, values.data()) == 0) {
            for (const std::uint64_t value : values) {
                total += value;
            }
        }
        return total;
    };
    while (!window.load()) {
        std::this_thread::sleep_for(1ms);
    }
    const std::uint64_t before = sum();
    const double cpu_before = thread_cpu_seconds();
    while (!stop.load()) {
        std::this_thread::sleep_for(1ms);
    }
    const std::uint64_t after = sum();
    cpu = thread_cpu_seconds() - cpu_before;
    note = "the kernel's XDP in veth's NAPI: no receiving thread at all";
    (void)bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
    ::close(fd);
    ::close(map);
    return after - before;
}

// The floor of AF_XDP here: libxdp's socket and default program, a loop that peeks the RX ring, gives the frames
// straight back to the fill ring, and waits in poll() (as sluice's port does) when the ring is empty.
std::uint64_t bare_libxdp(const std::string& interface, const std::atomic<bool>& window, const std::atomic<bool>& stop,
                          double& cpu, std::string& note) {
    constexpr std::uint32_t ring = 2048;
    constexpr std::uint32_t frame_size = 4096;
    const std::size_t bytes = std::size_t{2} * ring * frame_size;
    void* area = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    xsk_ring_prod fill{};
    xsk_ring_cons completion{};
    xsk_ring_cons rx{};
    xsk_ring_prod tx{};
    xsk_umem* umem = nullptr;
    const xsk_umem_config umem_config{ring, ring, frame_size, 0, 0};
    if (xsk_umem__create(&umem, area, bytes, &fill, &completion, &umem_config) != 0) {
        note = "xsk_umem__create failed";
        ::munmap(area, bytes);
        return 0;
    }
    xsk_socket_config config{};
    config.rx_size = ring;
    config.tx_size = ring;
    config.xdp_flags = XDP_FLAGS_DRV_MODE;
    config.bind_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    xsk_socket* socket = nullptr;
    if (const int status = xsk_socket__create(&socket, interface.c_str(), 0, umem, &rx, &tx, &config); status != 0) {
        note = fmt::format("xsk_socket__create: {}", std::strerror(-status));
        xsk_umem__delete(umem);
        ::munmap(area, bytes);
        return 0;
    }
    std::uint32_t index = 0;
    (void)xsk_ring_prod__reserve(&fill, ring, &index);
    for (std::uint32_t i = 0; i < ring; ++i) {
        *xsk_ring_prod__fill_addr(&fill, index + i) = std::uint64_t{i} * frame_size;
    }
    xsk_ring_prod__submit(&fill, ring);
    const int fd = xsk_socket__fd(socket);
    std::uint64_t received = 0;
    receive_window counted(window);
    while (!stop.load(std::memory_order_relaxed)) {
        counted.poll(received);
        std::uint32_t rx_index = 0;
        const std::uint32_t got = xsk_ring_cons__peek(&rx, 64, &rx_index);
        if (got == 0) {
            if (xsk_ring_prod__needs_wakeup(&fill)) {
                (void)::recvfrom(fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
            }
            pollfd readable{fd, POLLIN, 0};
            (void)::poll(&readable, 1, 10);
            continue;
        }
        std::uint32_t fill_index = 0;
        while (xsk_ring_prod__reserve(&fill, got, &fill_index) != got) {
        }
        for (std::uint32_t i = 0; i < got; ++i) {
            *xsk_ring_prod__fill_addr(&fill, fill_index + i) =
                xsk_umem__extract_addr(xsk_ring_cons__rx_desc(&rx, rx_index + i)->addr);
        }
        xsk_ring_prod__submit(&fill, got);
        xsk_ring_cons__release(&rx, got);
        received += got;
    }
    cpu = counted.cpu_seconds();
    xsk_socket__delete(socket);
    xsk_umem__delete(umem);
    ::munmap(area, bytes);
    note = "copy mode, native XDP (veth)";
    return received;
}

// The floor of AF_PACKET here: a TPACKET_V3 RX ring read block by block, each packet touched once (its length read),
// poll() when no block is ready.
std::uint64_t bare_tpacket_v3(const std::string& interface, const std::atomic<bool>& window,
                              const std::atomic<bool>& stop, double& cpu, std::string& note) {
    const int fd = ::socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    int version = TPACKET_V3;
    ::setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version);
    tpacket_req3 request{};
    request.tp_block_size = 1U << 18;
    request.tp_block_nr = 16;
    request.tp_frame_size = 2048;
    request.tp_frame_nr = request.tp_block_nr * (request.tp_block_size / request.tp_frame_size);
    request.tp_retire_blk_tov = 10;
    ::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &request, sizeof request);
    const std::size_t bytes = std::size_t{request.tp_block_size} * request.tp_block_nr;
    auto* ring = static_cast<std::uint8_t*>(::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
    if (ring == MAP_FAILED || ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        note = fmt::format("ring or bind: {}", std::strerror(errno));
        ::close(fd);
        return 0;
    }
    std::uint64_t received = 0;
    std::uint64_t touched = 0;
    std::uint32_t block = 0;
    receive_window counted(window);
    while (!stop.load(std::memory_order_relaxed)) {
        counted.poll(received);
        auto* descriptor = reinterpret_cast<tpacket_block_desc*>(ring + std::size_t{block} * request.tp_block_size);
        if ((__atomic_load_n(&descriptor->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER) == 0) {
            pollfd readable{fd, POLLIN | POLLERR, 0};
            (void)::poll(&readable, 1, 10);
            continue;
        }
        const std::uint32_t packets = descriptor->hdr.bh1.num_pkts;
        auto* packet = reinterpret_cast<const tpacket3_hdr*>(reinterpret_cast<std::uint8_t*>(descriptor) +
                                                             descriptor->hdr.bh1.offset_to_first_pkt);
        for (std::uint32_t i = 0; i < packets; ++i) {
            touched += packet->tp_snaplen;
            packet = reinterpret_cast<const tpacket3_hdr*>(reinterpret_cast<const std::uint8_t*>(packet) +
                                                           packet->tp_next_offset);
        }
        received += packets;
        __atomic_store_n(&descriptor->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        block = (block + 1) % request.tp_block_nr;
    }
    cpu = counted.cpu_seconds();
    ::munmap(ring, bytes);
    ::close(fd);
    note = fmt::format("{} KiB blocks (bytes seen {})", request.tp_block_size / 1024, touched);
    return received;
}

// A sluice port: rx_batch, then every frame straight back to its pool (what XDP_DROP costs without a program).
std::uint64_t sluice_port(const std::string& spec, const std::atomic<bool>& window, const std::atomic<bool>& stop,
                          double& cpu, std::string& note) {
    sluice::xdp::frame_pool pool(4096);
    auto opened = sluice::io::open_port(spec, pool);
    if (!opened) {
        note = opened.error().message;
        return 0;
    }
    sluice::io::port& port = *opened.value();
    note = port.features().mode;
    // As a worker does: a cache of the port's own pool (AF_XDP's UMEM) on the thread that reads it.
    std::optional<sluice::xdp::frame_pool::cache> cache;
    if (port.own_pool() != nullptr) {
        cache.emplace(*port.own_pool());
    }
    std::array<sluice::xdp::frame*, 64> frames{};
    std::uint64_t received = 0;
    receive_window counted(window);
    while (!stop.load(std::memory_order_relaxed)) {
        counted.poll(received);
        const std::size_t got = port.rx_batch(frames);
        for (std::size_t i = 0; i < got; ++i) {
            frames[i]->pool()->release(frames[i]);
        }
        received += got;
    }
    cpu = counted.cpu_seconds();
    note = fmt::format("kernel dropped {} (rx_missed); {}", port.stats().rx_missed, note);
    return received;
}

// sluice itself: the engine with one worker running examples/xdp_pass.o (JIT) on the port. Without a pass target a
// passed frame is counted and released, so this is the whole data path at the cost of the smallest program. The
// worker's CPU is the process's minus the sender's (the main thread sleeps).
std::uint64_t sluice_engine(const std::string& spec, const bench& runner, const std::atomic<bool>& stop, double& cpu,
                            std::string& note) {
    auto opened_spec = sluice::ebpf::object_spec::open_file(std::string(SLUICE_EXAMPLES_DIR) + "/xdp_pass.o");
    if (!opened_spec) {
        note = opened_spec.error().message;
        return 0;
    }
    auto object = opened_spec->load();
    if (!object) {
        note = object.error().message;
        return 0;
    }
    const sluice::ebpf::loaded_program* program = object->programs().front().get();
    sluice::xdp::frame_pool pool(4096);
    auto opened = sluice::io::open_port(spec, pool);
    if (!opened) {
        note = opened.error().message;
        return 0;
    }
    sluice::xdp::engine_config config;
    config.ports.push_back({opened.value().get(), std::nullopt});
    config.pool = &pool;
    config.object = &object.value();
    config.pin_workers = false;
    config.make_program =
        [&](unsigned,
            sluice::ebpf::execution_state& state) -> sluice::expected<std::unique_ptr<sluice::xdp::batch_program>> {
        sluice::xdp::executor_options options;
        options.checked = false;
        options.engine = sluice::xdp::execution_engine::jit;
        auto made =
            sluice::xdp::executor::create(object.value(), *program, sluice::ebpf::xdp_helper_table(), state, options);
        if (!made) {
            return made.error();
        }
        return std::unique_ptr<sluice::xdp::batch_program>(
            std::make_unique<sluice::xdp::executor>(std::move(made.value())));
    };
    auto engine = sluice::xdp::engine::create(std::move(config));
    if (!engine || !engine.value()->start()) {
        note = engine ? "the engine did not start" : engine.error().message;
        return 0;
    }
    while (!runner.window_open().load()) {
        std::this_thread::sleep_for(1ms);
    }
    const std::uint64_t before = engine.value()->report().ports[0].received.packets;
    const double process_before = process_cpu_seconds();
    const double sender_before = runner.sender_cpu_seconds();
    while (!stop.load()) {
        std::this_thread::sleep_for(1ms);
    }
    const std::uint64_t after = engine.value()->report().ports[0].received.packets;
    cpu = (process_cpu_seconds() - process_before) - (runner.sender_cpu_seconds() - sender_before);
    engine.value()->request_stop();
    engine.value()->wait();
    const auto checked = engine.value()->check();
    note = fmt::format("xdp_pass.o, JIT, 1 worker; accounting {}; kernel dropped {} (rx_missed); {}",
                       checked ? "balanced" : checked.error().message, opened.value()->stats().rx_missed,
                       opened.value()->features().mode);
    engine.value().reset();
    return after - before;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"sluice_port_bench: AF_XDP and AF_PACKET receive rates on veth, beside the kernel and bare loops"};
    double seconds = 2;
    std::uint32_t size = 64;
    std::string sender = "xdp";
    app.add_option("--seconds", seconds, "Measuring window per variant");
    app.add_option("--size", size, "Frame size in bytes (>= 60)")->check(CLI::Range(60, 1500));
    app.add_option("--sender", sender,
                   "xdp: the kernel's XDP live-frames test run redirecting out of the sender's veth (fast); afpacket: "
                   "an AF_PACKET TX ring")
        ->check(CLI::IsMember({"xdp", "afpacket"}));
    CLI11_PARSE(app, argc, argv);

    // The bare loop's libxdp and libbpf would print their dispatcher fallbacks; sluice's port routes them itself.
    libbpf_set_print(nullptr);
    libxdp_set_print(nullptr);
    if (const std::string reason = sluice::test::skip_reason(); !reason.empty()) {
        fmt::print("sluice_port_bench: skipped: {}\n", reason);
        return 0;
    }
    auto rig = sluice::bench::veth_rig::create("bench");
    if (!rig) {
        fmt::print(stderr, "sluice_port_bench: {}\n", rig.error().message);
        return 1;
    }
    const std::string receiver_if = (*rig)->receiver_interface();
    bench runner(**rig, size, seconds);
    runner.use_xdp_sender(sender == "xdp");

    std::vector<measurement> results;
    const auto add = [&](const std::string& name, auto&& function) {
        std::string note;
        measurement result = runner.measure(name, [&](const std::atomic<bool>& stop, double& cpu) {
            return function(runner.window_open(), stop, cpu, note);
        });
        result.note = note;
        fmt::print(stderr, "{}: {:.3f} Mpps ({:.3f} offered)\n", name, result.mpps(), result.offered_mpps());
        results.push_back(std::move(result));
    };
    add("kernel XDP_DROP", [&](auto& window, auto& stop, double& cpu, std::string& note) {
        return kernel_xdp_drop(receiver_if, window, stop, cpu, note);
    });
    add("bare libxdp loop", [&](auto& window, auto& stop, double& cpu, std::string& note) {
        return bare_libxdp(receiver_if, window, stop, cpu, note);
    });
    add("sluice afxdp port", [&](auto& window, auto& stop, double& cpu, std::string& note) {
        return sluice_port("afxdp:" + receiver_if, window, stop, cpu, note);
    });
    add("sluice engine afxdp", [&](auto&, auto& stop, double& cpu, std::string& note) {
        return sluice_engine("afxdp:" + receiver_if, runner, stop, cpu, note);
    });
    add("bare TPACKET_V3 loop", [&](auto& window, auto& stop, double& cpu, std::string& note) {
        return bare_tpacket_v3(receiver_if, window, stop, cpu, note);
    });
    add("sluice afpacket port", [&](auto& window, auto& stop, double& cpu, std::string& note) {
        return sluice_port("afpacket:" + receiver_if, window, stop, cpu, note);
    });
    add("sluice engine afpacket", [&](auto&, auto& stop, double& cpu, std::string& note) {
        return sluice_engine("afpacket:" + receiver_if, runner, stop, cpu, note);
    });

    fmt::print("{}-byte frames on veth, {:.1f} s per variant, sender: {} in another namespace\n", size, seconds,
               sender == "xdp" ? "the kernel's XDP live frames (BPF_PROG_TEST_RUN), redirected out of its veth"
                               : "an AF_PACKET TX ring");
    fmt::print("{:<22} {:>8} {:>8} {:>14} {:>12} {:>12}  {}\n", "variant", "Mpps", "offered", "rx CPU ns/pkt",
               "Mpps ratio", "CPU ratio", "note");
    // Mpps ratio: received rates (meaningful when the receiver, not the sender, is the limit: received < offered).
    // CPU ratio: the bare loop's CPU per packet over ours (1.0 = as cheap as the bare loop, below = costlier).
    const auto ratio = [&](std::size_t index, std::size_t base) {
        return results[base].received == 0 ? std::string("n/a")
                                           : fmt::format("{:.2f}", results[index].mpps() / results[base].mpps());
    };
    const auto cpu_ratio = [&](std::size_t index, std::size_t base) {
        return results[index].cpu_ns() == 0 ? std::string("n/a")
                                            : fmt::format("{:.2f}", results[base].cpu_ns() / results[index].cpu_ns());
    };
    const std::size_t bare_xdp = 1;
    const std::size_t bare_packet = 4;
    for (std::size_t i = 0; i < results.size(); ++i) {
        const measurement& result = results[i];
        const std::size_t base = i <= 3 ? bare_xdp : bare_packet;
        const bool compared = i != 0 && i != bare_xdp && i != bare_packet;
        fmt::print("{:<22} {:>8.3f} {:>8.3f} {:>14.1f} {:>12} {:>12}  {}\n", result.name, result.mpps(),
                   result.offered_mpps(), result.cpu_ns(), compared ? ratio(i, base) : "",
                   compared ? cpu_ratio(i, base) : "", result.note);
    }
    return 0;
}
