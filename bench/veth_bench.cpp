// The veth rig (bench/veth_bench.hpp has the contract).
#include "veth_bench.hpp"

#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

namespace sluice::bench {

using namespace std::chrono_literals;

namespace {

double seconds_of(const timespec& time) {
    return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_nsec) * 1e-9;
}

// The signal that ends a sender's test run call: the kernel's test run loop returns -EINTR when one is pending. The
// handler does nothing; installed without SA_RESTART, so that the call is not restarted.
void install_wake_signal() {
    static std::once_flag once;
    std::call_once(once, [] {
        struct sigaction action {};
        action.sa_handler = [](int) {};
        sigemptyset(&action.sa_mask);
        ::sigaction(SIGUSR1, &action, nullptr);
    });
}

} // namespace

double thread_cpu_seconds() {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return seconds_of(now);
}

double process_cpu_seconds() {
    timespec now{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return seconds_of(now);
}

expected<std::unique_ptr<veth_rig>> veth_rig::create(std::string_view tag) {
    if (const std::string reason = test::skip_reason(); !reason.empty()) {
        return error{reason};
    }
    std::unique_ptr<veth_rig> rig(new veth_rig());
    std::string failure;
    rig->_receiver = test::network_namespace::create(std::string(tag) + "-s", &failure);
    if (!rig->_receiver) {
        return error{failure};
    }
    rig->_sender = test::network_namespace::create(std::string(tag) + "-a", &failure);
    if (!rig->_sender) {
        return error{failure};
    }
    rig->_receiver_interface = test::unique_interface("bs");
    rig->_sender_interface = test::unique_interface("ba");
    if (!test::add_veth(*rig->_receiver, rig->_receiver_interface, "", *rig->_sender, rig->_sender_interface, "",
                        &failure)) {
        return error{failure};
    }
    const auto mac = rig->_receiver->mac_of(rig->_receiver_interface);
    if (!mac) {
        return error{fmt::format("no MAC address on {}", rig->_receiver_interface)};
    }
    rig->_destination = *mac;
    const std::string gro = rig->_receiver->run([&]() -> std::string {
        const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ethtool_value value{ETHTOOL_SGRO, 1};
        ifreq request{};
        std::strncpy(request.ifr_name, rig->_receiver_interface.c_str(), IFNAMSIZ - 1);
        request.ifr_data = reinterpret_cast<char*>(&value);
        const bool done = fd >= 0 && ::ioctl(fd, SIOCETHTOOL, &request) == 0;
        const int saved = errno;
        if (fd >= 0) {
            ::close(fd);
        }
        return done ? std::string() : std::string(std::strerror(saved));
    });
    if (!gro.empty()) {
        return error{fmt::format("cannot turn GRO on for {}: {}", rig->_receiver_interface, gro)};
    }
    return rig;
}

expected<std::unique_ptr<live_sender>> live_sender::start(const veth_rig& rig, const std::string& traffic_object,
                                                          traffic_config config, std::vector<std::uint8_t> frame,
                                                          int cpu) {
    std::unique_ptr<live_sender> sender(new live_sender());
    sender->_frame = std::move(frame);
    sender->_cpu = cpu;
    config.ifindex = rig.sender().ifindex_of(rig.sender_interface());
    if (config.ifindex == 0) {
        return error{fmt::format("no interface {} in {}", rig.sender_interface(), rig.sender().name())};
    }
    sender->_object = bpf_object__open_file(traffic_object.c_str(), nullptr);
    if (sender->_object == nullptr) {
        return error{fmt::format("libbpf cannot open {}: {}", traffic_object, std::strerror(errno))};
    }
    bpf_map* rodata = nullptr;
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, sender->_object) {
        const std::string_view name = bpf_map__name(map);
        if (name.ends_with(".rodata")) {
            rodata = map;
        }
    }
    if (rodata == nullptr || bpf_map__set_initial_value(rodata, &config, sizeof config) != 0) {
        return error{
            fmt::format("{}: cannot set its .rodata config (layout differs from traffic_config?)", traffic_object)};
    }
    if (const int failed = bpf_object__load(sender->_object); failed != 0) {
        return error{fmt::format("the kernel refused {}: {}", traffic_object, std::strerror(-failed))};
    }
    sender->_program_fd = bpf_program__fd(bpf_object__find_program_by_name(sender->_object, "veth_traffic"));
    sender->_sent_fd = bpf_map__fd(bpf_object__find_map_by_name(sender->_object, "sent"));
    if (sender->_program_fd < 0 || sender->_sent_fd < 0) {
        return error{fmt::format("{} has no program veth_traffic or no map sent", traffic_object)};
    }
    install_wake_signal();
    live_sender* raw = sender.get();
    const veth_rig* where = &rig;
    sender->_thread = std::thread([raw, where] { raw->run(*where); });
    // The first call either fails at once (no live frames in this kernel) or sends.
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (sender->sent() == 0 && !sender->_done.load() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    if (sender->_done.load() || sender->sent() == 0) {
        sender->stop();
        return error{sender->_failure.empty() ? std::string("the sender sent nothing in 2 s") : sender->_failure};
    }
    return sender;
}

void live_sender::run(const veth_rig& rig) {
    rig.sender().run([&] {
        if (_cpu >= 0) {
            cpu_set_t only;
            CPU_ZERO(&only);
            CPU_SET(_cpu, &only);
            if (const int failed = ::pthread_setaffinity_np(::pthread_self(), sizeof only, &only); failed != 0) {
                fmt::print(stderr, "sender: not pinned to CPU {}: {}\n", _cpu, std::strerror(failed));
            }
        }
        (void)::pthread_getcpuclockid(::pthread_self(), &_clock);
        _thread_id.store(static_cast<unsigned long>(::pthread_self()));
        _started.store(true);
        while (!_stop.load()) {
            bpf_test_run_opts options{};
            options.sz = sizeof options;
            options.data_in = _frame.data();
            options.data_size_in = static_cast<std::uint32_t>(_frame.size());
            options.repeat = 1U << 30;
            options.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
            options.batch_size = 64;
            if (bpf_prog_test_run_opts(_program_fd, &options) != 0 && errno != EINTR) {
                _failure = fmt::format("BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: {}", std::strerror(errno));
                break;
            }
        }
        // Under the lock: stop() signals this thread only while it has not got here, so never a thread that is gone.
        const std::lock_guard<std::mutex> guard(_signal_lock);
        _done.store(true);
    });
    _done.store(true); // also when the thread could not enter the namespace
}

void live_sender::stop() {
    _stop.store(true);
    if (_thread.joinable()) {
        // The signal may land between two calls, before the next one starts: send it until the thread is gone.
        while (!_done.load()) {
            {
                const std::lock_guard<std::mutex> guard(_signal_lock);
                if (_started.load() && !_done.load()) {
                    (void)::pthread_kill(static_cast<pthread_t>(_thread_id.load()), SIGUSR1);
                }
            }
            std::this_thread::sleep_for(5ms);
        }
        _thread.join();
    }
    if (_object != nullptr) {
        bpf_object__close(_object);
        _object = nullptr;
        _program_fd = -1;
        _sent_fd = -1;
    }
}

live_sender::~live_sender() {
    stop();
}

std::uint64_t live_sender::sent() const {
    const int cpus = libbpf_num_possible_cpus();
    std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus > 0 ? cpus : 1));
    const std::uint32_t key = 0;
    std::uint64_t total = 0;
    if (_sent_fd >= 0 && bpf_map_lookup_elem(_sent_fd, &key, values.data()) == 0) {
        for (const std::uint64_t value : values) {
            total += value;
        }
    }
    return total;
}

double live_sender::cpu_seconds() const {
    if (!_started.load() || _done.load()) {
        return 0;
    }
    timespec now{};
    if (::clock_gettime(_clock, &now) != 0) {
        return 0;
    }
    return seconds_of(now);
}

} // namespace sluice::bench
