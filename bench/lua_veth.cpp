// sluice_lua_bench's veth section (bench/lua_veth.hpp has the contract).
//
// Why the traffic is (nearly) all dropped: a DDoS filter's job under attack is to drop, and only the drop path is the
// same work everywhere. A passed packet costs the kernel's variants the whole stack after the filter (GRO, IP input,
// a route lookup that finds nothing), while sluice, with no pass target, counts it and frees the frame: a mix with
// many passes would measure the stack, not the filter. So the blocklisted prefix sends most frames (an LPM hit) and
// the others come from many sources each far over its rate (an LRU hash lookup and a token bucket that is empty):
// both of ddos_filter's paths run, and only the rate limiter's allowance (sources × rate_pps per second) passes.
#include "lua_veth.hpp"

#include <arpa/inet.h>
#include <linux/if_link.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "bench_command.hpp"
#include "lua_twin.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/io/port.hpp"
#include "sluice/xdp/engine.hpp"
#include "sluice/xdp/executor.hpp"
#include "veth_bench.hpp"

namespace sluice::bench {

using namespace std::chrono_literals;

const veth_row* veth_report::find(std::string_view name) const {
    const auto found = std::ranges::find(rows, name, &veth_row::name);
    return found == rows.end() ? nullptr : &*found;
}

namespace {

/// A variant's counters at one moment.
struct snapshot {
    std::uint64_t processed{}; ///< packets the filter decided on
    std::uint64_t dropped{};
    std::optional<double> cpu_seconds; ///< the receiving thread's CPU clock, when there is such a thread
};

/// A filter installed on the receiving end: set up by its factory, removed by its destructor (every exit path).
class veth_variant {
public:
    virtual ~veth_variant() = default;
    virtual expected<snapshot> read() = 0;
    /// After the window: stops what runs and says what is worth saying (accounting, kernel-side drops).
    virtual std::string finish() { return {}; }
};

using variant_factory = std::function<expected<std::unique_ptr<veth_variant>>()>;

/// A blocklisted prefix, from the eBPF object's blocked_v4 (key: u32 prefixlen, then the address in network order).
struct prefix {
    std::uint32_t address{}; ///< host order
    std::uint32_t length{};

    std::string text() const {
        return fmt::format("{}.{}.{}.{}/{}", address >> 24, (address >> 16) & 0xff, (address >> 8) & 0xff,
                           address & 0xff, length);
    }
};

std::vector<prefix> blocked_prefixes(const cli::bench_object& reference) {
    std::vector<prefix> prefixes;
    if (ebpf::map* map = reference.object.find_map("blocked_v4"); map != nullptr && map->key_size() == 8) {
        map->for_each([&](std::span<const std::byte> key, std::span<const std::byte>) {
            prefix entry;
            std::memcpy(&entry.length, key.data(), 4);
            std::uint32_t network = 0;
            std::memcpy(&network, key.data() + 4, 4);
            entry.address = ntohl(network);
            prefixes.push_back(entry);
            return true;
        });
    }
    return prefixes;
}

// ---- the kernel's XDP: ddos_filter.o loaded by libbpf, attached in driver mode to the receiving veth ----

class kernel_xdp_variant final : public veth_variant {
public:
    static expected<std::unique_ptr<veth_variant>> create(const veth_rig& rig, const cli::bench_target& target) {
        auto loaded = cli::load_bench_object(target);
        if (!loaded) {
            return loaded.error();
        }
        const cli::bench_object& reference = **loaded;
        std::unique_ptr<kernel_xdp_variant> variant(new kernel_xdp_variant(rig));
        variant->_object = bpf_object__open_file(target.file.c_str(), nullptr);
        if (variant->_object == nullptr) {
            return error{fmt::format("libbpf cannot open {}: {}", target.file, std::strerror(errno))};
        }
        // .rodata knobs: the bytes sluice's spec holds after --set, before load, as a skeleton does.
        for (const ebpf::map_spec& map : reference.spec.maps()) {
            if (map.origin != ebpf::map_origin::global_data || !map.read_only || map.initial_value.empty()) {
                continue;
            }
            bpf_map* kernel_map = bpf_object__find_map_by_name(variant->_object, map.name.c_str());
            if (kernel_map == nullptr ||
                bpf_map__set_initial_value(kernel_map, map.initial_value.data(), map.initial_value.size()) != 0) {
                return error{fmt::format("libbpf: cannot set the initial value of {}", map.name)};
            }
        }
        if (const int failed = bpf_object__load(variant->_object); failed != 0) {
            return error{fmt::format("bpf_object__load({}): {}", target.file, std::strerror(-failed))};
        }
        // The map contents sluice's variants start from (the blocklist), copied entry by entry; per-CPU values to
        // every possible CPU.
        for (std::size_t i = 0; i < reference.object.maps().size(); ++i) {
            const ebpf::map_spec& spec = reference.object.map_specs()[i];
            bpf_map* kernel_map = bpf_object__find_map_by_name(variant->_object, spec.name.c_str());
            if (spec.origin == ebpf::map_origin::global_data || kernel_map == nullptr) {
                continue;
            }
            ebpf::map& source = *reference.object.maps()[i];
            const int cpus = source.is_percpu() ? libbpf_num_possible_cpus() : 1;
            std::string failure;
            std::vector<std::byte> value;
            source.for_each([&](std::span<const std::byte> key, std::span<const std::byte> slot) {
                value.clear();
                for (int cpu = 0; cpu < cpus; ++cpu) {
                    value.insert(value.end(), slot.begin(), slot.end());
                }
                if (bpf_map_update_elem(bpf_map__fd(kernel_map), key.data(), value.data(), BPF_ANY) != 0) {
                    failure = fmt::format("the kernel refused an entry of {}: {}", spec.name, std::strerror(errno));
                    return false;
                }
                return true;
            });
            if (!failure.empty()) {
                return error{failure};
            }
        }
        variant->_stats_fd = bpf_map__fd(bpf_object__find_map_by_name(variant->_object, "stats"));
        bpf_program* program = bpf_object__find_program_by_name(variant->_object, reference.program->name.c_str());
        if (variant->_stats_fd < 0 || program == nullptr) {
            return error{fmt::format("{}: no map stats or no program {}", target.file, reference.program->name)};
        }
        const int program_fd = bpf_program__fd(program);
        // bpf_xdp_attach() finds the ifindex in the caller's namespace: attach (and detach) from inside.
        const std::string attached = rig.receiver().run([&]() -> std::string {
            variant->_ifindex = static_cast<int>(rig.receiver().ifindex_of(rig.receiver_interface()));
            if (const int failed = bpf_xdp_attach(variant->_ifindex, program_fd, XDP_FLAGS_DRV_MODE, nullptr);
                failed != 0) {
                return fmt::format("bpf_xdp_attach(native) to {}: {}", rig.receiver_interface(),
                                   std::strerror(-failed));
            }
            return {};
        });
        if (!attached.empty()) {
            return error{attached};
        }
        variant->_attached = true;
        return std::unique_ptr<veth_variant>(std::move(variant));
    }

    kernel_xdp_variant(const kernel_xdp_variant&) = delete;
    kernel_xdp_variant& operator=(const kernel_xdp_variant&) = delete;

    ~kernel_xdp_variant() override {
        if (_attached) {
            _rig.receiver().run([&] { (void)bpf_xdp_detach(_ifindex, XDP_FLAGS_DRV_MODE, nullptr); });
        }
        if (_object != nullptr) {
            bpf_object__close(_object);
        }
    }

    // ddos_filter.c's verdict_index: passed, blocked prefix, rate limited, not IP, malformed; each packet counts once.
    expected<snapshot> read() override {
        const int cpus = libbpf_num_possible_cpus();
        std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus));
        snapshot now;
        for (std::uint32_t verdict = 0; verdict < 5; ++verdict) {
            if (bpf_map_lookup_elem(_stats_fd, &verdict, values.data()) != 0) {
                return error{fmt::format("reading the kernel's stats map: {}", std::strerror(errno))};
            }
            for (const std::uint64_t value : values) {
                now.processed += value;
                if (verdict == 1 || verdict == 2 || verdict == 4) {
                    now.dropped += value;
                }
            }
        }
        return now;
    }

    std::string finish() override {
        return "in veth's NAPI (driver mode), in the sender's softirq: no thread of its own";
    }

private:
    explicit kernel_xdp_variant(const veth_rig& rig) : _rig(rig) {}

    const veth_rig& _rig;
    bpf_object* _object{};
    int _stats_fd{-1};
    int _ifindex{};
    bool _attached{};
};

// ---- the kernel's nftables: the same filter as a ruleset in the receiving namespace ----

struct nft_hook {
    std::string family;   ///< netdev, ip
    std::string chain;    ///< the chain's declaration
    std::string describe; ///< for the note
};

class nft_variant final : public veth_variant {
public:
    static expected<std::unique_ptr<veth_variant>> create(const veth_rig& rig, const cli::bench_target& target,
                                                          const nft_hook& hook, const veth_settings& settings) {
        if (!test::run_command("nft --version").ok()) {
            return error{"skipped: `nft` not found (Debian package nftables; scripts/install-deps.sh installs it)"};
        }
        auto loaded = cli::load_bench_object(target);
        if (!loaded) {
            return loaded.error();
        }
        std::string elements;
        for (const prefix& entry : blocked_prefixes(**loaded)) {
            elements += (elements.empty() ? "" : ", ") + entry.text();
        }
        // ddos_filter.c, rule for rule: blocklisted sources dropped (an interval set: the LPM trie), then a
        // per-source token bucket (a dynamic set updated from the packet path, nftables' meter: `limit rate over`
        // matches once a source's bucket is empty), then accept. Each packet that reaches the chain ends at exactly
        // one of the three counters, so their sum is every packet the filter decided on, as ddos_filter.o's stats.
        // The dynamic set expires idle sources, nftables' answer to the LRU hash's eviction.
        const std::string ruleset = fmt::format(
            "table {family} sluice_ddos {{\n"
            "    set blocked_v4 {{ type ipv4_addr; flags interval; {elements} }}\n"
            "    set rate_v4 {{ type ipv4_addr; size 65536; flags dynamic,timeout; timeout 60s; }}\n"
            "    chain filter {{\n"
            "        {chain}; policy accept;\n"
            "        ip saddr @blocked_v4 counter drop\n"
            "        update @rate_v4 {{ ip saddr limit rate over {rate}/second burst {burst} packets }} counter drop\n"
            "        counter accept\n"
            "    }}\n"
            "}}\n",
            fmt::arg("family", hook.family), fmt::arg("chain", hook.chain),
            fmt::arg("elements", elements.empty() ? std::string() : "elements = { " + elements + " };"),
            fmt::arg("rate", settings.rate_pps), fmt::arg("burst", settings.burst));
        std::unique_ptr<nft_variant> variant(new nft_variant(rig, hook));
        const std::string file = fmt::format("/tmp/sluice-{}-nft-{}.conf", ::getpid(), hook.family);
        std::ofstream(file) << ruleset;
        const test::command_result loaded_rules = variant->nft("-f " + file);
        ::unlink(file.c_str());
        if (!loaded_rules.ok()) {
            return error{fmt::format("nft -f refused the ruleset: {}", loaded_rules.output)};
        }
        variant->_loaded = true;
        return std::unique_ptr<veth_variant>(std::move(variant));
    }

    nft_variant(const nft_variant&) = delete;
    nft_variant& operator=(const nft_variant&) = delete;

    ~nft_variant() override {
        if (_loaded) {
            (void)nft("delete table " + _hook.family + " sluice_ddos");
        }
    }

    expected<snapshot> read() override {
        const test::command_result listed = nft("-j list chain " + _hook.family + " sluice_ddos filter");
        if (!listed.ok()) {
            return error{fmt::format("nft list chain: {}", listed.output)};
        }
        const auto parsed = nlohmann::json::parse(listed.output, nullptr, false);
        if (parsed.is_discarded() || !parsed.contains("nftables")) {
            return error{fmt::format("nft -j printed no JSON: {}", listed.output.substr(0, 200))};
        }
        snapshot now;
        for (const nlohmann::json& item : parsed["nftables"]) {
            if (!item.contains("rule")) {
                continue;
            }
            std::uint64_t packets = 0;
            bool drops = false;
            for (const nlohmann::json& expression : item["rule"].value("expr", nlohmann::json::array())) {
                if (expression.contains("counter")) {
                    packets = expression["counter"].value("packets", std::uint64_t{0});
                }
                drops = drops || expression.contains("drop");
            }
            now.processed += packets;
            now.dropped += drops ? packets : 0;
        }
        return now;
    }

    std::string finish() override { return _hook.describe; }

private:
    nft_variant(const veth_rig& rig, nft_hook hook) : _rig(rig), _hook(std::move(hook)) {}

    test::command_result nft(const std::string& arguments) const {
        return test::run_command("ip netns exec " + _rig.receiver().name() + " nft " + arguments);
    }

    const veth_rig& _rig;
    nft_hook _hook;
    bool _loaded{};
};

// ---- sluice: the engine with one worker on an AF_XDP port on the receiving veth ----

/// The worker thread's CPU clock, found by the program on its first batch (the engine makes programs on the caller's
/// thread and runs them on the worker's).
struct worker_clock {
    std::atomic<bool> known{false};
    clockid_t id{};

    std::optional<double> seconds() const {
        timespec now{};
        if (!known.load(std::memory_order_acquire) || ::clock_gettime(id, &now) != 0) {
            return std::nullopt;
        }
        return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
    }
};

/// The measured program, unchanged, with the clock lookup in front (once: a relaxed load per batch after that).
class clocked_program final : public xdp::batch_program {
public:
    clocked_program(std::unique_ptr<xdp::batch_program> inner, std::shared_ptr<worker_clock> clock)
        : _inner(std::move(inner)), _clock(std::move(clock)) {}

    void run_batch(std::span<xdp::frame* const> frames, std::span<xdp::action> out) override {
        if (!_clock->known.load(std::memory_order_relaxed)) {
            (void)::pthread_getcpuclockid(::pthread_self(), &_clock->id);
            _clock->known.store(true, std::memory_order_release);
        }
        _inner->run_batch(frames, out);
    }
    std::span<const ebpf::redirect_decision> redirect_decisions() const override {
        return _inner->redirect_decisions();
    }
    void count_port_errors(std::uint64_t packets, std::uint64_t bytes) override {
        _inner->count_port_errors(packets, bytes);
    }
    const xdp::executor_stats& stats() const override { return _inner->stats(); }

private:
    std::unique_ptr<xdp::batch_program> _inner;
    std::shared_ptr<worker_clock> _clock;
};

using program_maker = std::function<expected<std::unique_ptr<xdp::batch_program>>(const cli::bench_object& reference,
                                                                                  ebpf::execution_state& state)>;

class engine_variant final : public veth_variant {
public:
    static expected<std::unique_ptr<veth_variant>> create(const veth_rig& rig, const cli::bench_target& target,
                                                          program_maker make, bool pin) {
        auto loaded = cli::load_bench_object(target); // fresh maps: no state left by the variant before
        if (!loaded) {
            return loaded.error();
        }
        std::unique_ptr<engine_variant> variant(new engine_variant());
        variant->_reference = std::move(*loaded);
        variant->_pool = std::make_unique<xdp::frame_pool>(4096);
        std::string failure;
        const std::string spec = "afxdp:" + rig.receiver_interface();
        variant->_port = rig.receiver().run([&]() -> std::unique_ptr<io::port> {
            auto opened = io::open_port(spec, *variant->_pool);
            if (!opened) {
                failure = opened.error().message;
                return nullptr;
            }
            return std::move(*opened);
        });
        if (!variant->_port) {
            return error{failure.empty() ? "cannot enter the receiving namespace" : failure};
        }
        xdp::engine_config config;
        config.ports.push_back({variant->_port.get(), std::nullopt});
        config.pool = variant->_pool.get();
        config.object = &variant->_reference->object;
        config.pin_workers = pin; // worker 0 on the first CPU; the sender is on the last
        config.make_program = [reference = variant->_reference.get(), clock = variant->_clock, make = std::move(make)](
                                  unsigned,
                                  ebpf::execution_state& state) -> expected<std::unique_ptr<xdp::batch_program>> {
            auto made = make(*reference, state);
            if (!made) {
                return made.error();
            }
            return std::unique_ptr<xdp::batch_program>(std::make_unique<clocked_program>(std::move(*made), clock));
        };
        auto engine = xdp::engine::create(std::move(config));
        if (!engine) {
            return engine.error();
        }
        variant->_engine = std::move(*engine);
        if (auto started = variant->_engine->start(); !started) {
            return started.error();
        }
        return std::unique_ptr<veth_variant>(std::move(variant));
    }

    engine_variant(const engine_variant&) = delete;
    engine_variant& operator=(const engine_variant&) = delete;
    ~engine_variant() override { (void)finish(); }

    expected<snapshot> read() override {
        const xdp::engine_report report = _engine->report();
        snapshot now;
        now.processed = report.ports[0].received.packets;
        now.dropped = report.ports[0].dropped.packets;
        now.cpu_seconds = _clock->seconds();
        return now;
    }

    std::string finish() override {
        if (!_engine) {
            return {};
        }
        _engine->request_stop();
        _engine->wait();
        const auto checked = _engine->check();
        std::string note = fmt::format(
            "accounting {}; AF_XDP ring full {} times over the variant's run (rx_missed); {}",
            checked ? "balanced" : checked.error().message, _port->stats().rx_missed, _port->features().mode);
        _engine.reset();
        return note;
    }

private:
    engine_variant() = default;

    // Declared in the order they are needed; destroyed in reverse: the engine before its port, pool and object.
    std::unique_ptr<cli::bench_object> _reference;
    std::unique_ptr<xdp::frame_pool> _pool;
    std::unique_ptr<io::port> _port;
    std::shared_ptr<worker_clock> _clock = std::make_shared<worker_clock>();
    std::unique_ptr<xdp::engine> _engine;
};

program_maker executor_maker(xdp::execution_engine kind) {
    return [kind](const cli::bench_object& reference,
                  ebpf::execution_state& state) -> expected<std::unique_ptr<xdp::batch_program>> {
        xdp::executor_options options;
        options.checked = false; // the verifier has proven the program, as `sluice run` runs it
        options.engine = kind;
        auto made =
            xdp::executor::create(reference.object, *reference.program, ebpf::xdp_helper_table(), state, options);
        if (!made) {
            return made.error();
        }
        return std::unique_ptr<xdp::batch_program>(std::make_unique<xdp::executor>(std::move(*made)));
    };
}

program_maker lua_maker(std::string script, lua::engine kind) {
    return [script = std::move(script),
            kind](const cli::bench_object& reference,
                  ebpf::execution_state& state) -> expected<std::unique_ptr<xdp::batch_program>> {
        auto made = load_lua_twin(reference, script, kind, state);
        if (!made) {
            return made.error();
        }
        return std::unique_ptr<xdp::batch_program>(std::make_unique<lua::script_program>(std::move(*made)));
    };
}

// ---- measuring ----

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Sleeps `seconds`, or less when `interrupted` becomes true.
void sleep_for(double seconds, const std::atomic<bool>& interrupted) {
    const double end = now_seconds() + seconds;
    while (!interrupted.load() && now_seconds() < end) {
        std::this_thread::sleep_for(std::chrono::duration<double>(std::min(0.01, std::max(0.0, end - now_seconds()))));
    }
}

/// One moment of the window: the variant's counters and the sender's, with the time in the middle of the reads (an
/// nftables read is a process of its own, milliseconds long).
struct moment {
    snapshot variant;
    std::uint64_t sent{};
    double sender_cpu{};
    double time{};
};

expected<moment> take(veth_variant& variant, const live_sender& sender) {
    moment taken;
    const double before = now_seconds();
    taken.sent = sender.sent();
    taken.sender_cpu = sender.cpu_seconds();
    auto read = variant.read();
    if (!read) {
        return read.error();
    }
    taken.variant = *read;
    taken.time = (before + now_seconds()) / 2;
    return taken;
}

veth_row measure(const std::string& name, const variant_factory& make, const live_sender& sender,
                 const veth_settings& settings, const std::atomic<bool>& interrupted) {
    veth_row row;
    row.name = name;
    auto variant = make();
    if (!variant) {
        row.note = variant.error().message;
        return row;
    }
    sleep_for(settings.warmup, interrupted);
    auto first = take(**variant, sender);
    sleep_for(settings.seconds, interrupted);
    auto last = first ? take(**variant, sender) : first;
    const std::string note = (*variant)->finish();
    variant->reset(); // removed before the next variant is set up
    if (!first || !last) {
        row.note = (first ? last : first).error().message;
        return row;
    }
    const double seconds = last->time - first->time;
    const std::uint64_t processed = last->variant.processed - first->variant.processed;
    row.ran = seconds > 0;
    row.mpps = static_cast<double>(processed) / seconds / 1e6;
    row.offered_mpps = static_cast<double>(last->sent - first->sent) / seconds / 1e6;
    row.dropped_share = processed == 0 ? 0
                                       : static_cast<double>(last->variant.dropped - first->variant.dropped) /
                                             static_cast<double>(processed);
    if (first->variant.cpu_seconds && last->variant.cpu_seconds && processed > 0) {
        row.cpu_ns = (*last->variant.cpu_seconds - *first->variant.cpu_seconds) * 1e9 / static_cast<double>(processed);
    }
    if (last->sender_cpu > 0) {
        row.sender_cpu = (last->sender_cpu - first->sender_cpu) / seconds;
        const std::uint64_t offered = last->sent - first->sent;
        if (offered > 0 && processed > 0) {
            // Per offered packet for the sender: frames the receiver could not take (a full AF_XDP ring) cost the
            // sender too, but they are not the filter's cost per packet.
            row.total_cpu_ns =
                (last->sender_cpu - first->sender_cpu) * 1e9 / static_cast<double>(offered) + row.cpu_ns.value_or(0);
        }
    }
    row.note = note;
    return row;
}

} // namespace

veth_report run_veth_section(const veth_settings& settings, const std::string& examples_dir,
                             const std::string& traffic_object, const std::string& script, const std::string& blocklist,
                             const std::atomic<bool>& interrupted) {
    veth_report report;
    report.settings = settings;
    cli::bench_target filter;
    filter.file = examples_dir + "/ddos_filter.o";
    filter.maps = {"blocked_v4=" + blocklist};
    filter.rodata = {fmt::format("rate_pps={}", settings.rate_pps), fmt::format("burst={}", settings.burst)};
    auto reference = cli::load_bench_object(filter);
    if (!reference) {
        report.skipped = reference.error().message;
        return report;
    }
    const std::vector<prefix> prefixes = blocked_prefixes(**reference);
    if (prefixes.empty()) {
        report.skipped = fmt::format("{} has no IPv4 prefix to send from", blocklist);
        return report;
    }
    // libbpf and libxdp would print their own fallbacks (dispatcher probing); failures come back as errors.
    libbpf_set_print(nullptr);
    auto rig = veth_rig::create("lua");
    if (!rig) {
        report.skipped = rig.error().message;
        return report;
    }
    traffic_config traffic;
    traffic.blocked_per_256 = std::min<std::uint32_t>(256, settings.blocked_percent * 256 / 100);
    traffic.blocked_base = prefixes.front().address;
    traffic.blocked_host_mask = prefixes.front().length >= 32 ? 0 : (1U << (32 - prefixes.front().length)) - 1;
    traffic.sources_base = 0xc6120000; // 198.18.0.0/15
    traffic.sources = std::bit_ceil(std::clamp<std::uint32_t>(settings.sources, 1, 1U << 17));
    const std::vector<std::uint8_t> payload(std::max<std::uint32_t>(settings.size, 60) - 42, 0x5a);
    auto frame =
        test::udp_frame({0x02, 0, 0, 0, 0, 0x02}, (*rig)->destination(), "10.88.0.2", "10.88.0.1", 9, 9, payload);
    int sender_cpu = -1;
    if (cpu_set_t allowed;
        settings.pin && ::sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) >= 2) {
        for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
            sender_cpu = CPU_ISSET(cpu, &allowed) ? cpu : sender_cpu;
        }
    }
    auto sender = live_sender::start(**rig, traffic_object, traffic, std::move(frame), sender_cpu);
    if (!sender) {
        report.skipped = sender.error().message;
        return report;
    }
    report.traffic = fmt::format(
        "{}{}-byte UDP frames, {}% from {} (blocklisted), the rest from {} sources of 198.18.0.0/15, each far over "
        "{} pps (burst {}); sender: the kernel's XDP live frames (BPF_PROG_TEST_RUN) redirected out of the other "
        "veth, one thread, running throughout",
        sender_cpu >= 0 ? fmt::format("sender pinned to CPU {}, sluice's worker to the first CPU; ", sender_cpu) : "",
        std::max<std::uint32_t>(settings.size, 60), traffic.blocked_per_256 * 100 / 256, prefixes.front().text(),
        traffic.sources, settings.rate_pps, settings.burst);

    const veth_rig& where = **rig;
    const std::string interface = where.receiver_interface();
    const nft_hook ingress{"netdev", "type filter hook ingress device \"" + interface + "\" priority 0",
                           "netdev ingress hook on the veth: the earliest nftables hook, in the sender's softirq"};
    const nft_hook prerouting{"ip", "type filter hook prerouting priority -300",
                              "ip prerouting (raw priority, before conntrack): where iptables users drop, after IP "
                              "input's header checks"};
    struct planned {
        std::string name;
        variant_factory make;
    };
    cli::bench_target pass;
    pass.file = examples_dir + "/xdp_pass.o";
    cli::bench_target parse; // reads every header, as the filter does: the port's limit once packets are touched
    parse.file = examples_dir + "/xdp_parse_count.o";
    const bool pinned = sender_cpu >= 0;
    std::vector<planned> plan{
        {veth_kernel_xdp, [&] { return kernel_xdp_variant::create(where, filter); }},
        {veth_nft_ingress, [&] { return nft_variant::create(where, filter, ingress, settings); }},
        {veth_nft_prerouting, [&] { return nft_variant::create(where, filter, prerouting, settings); }},
        {veth_port_limit,
         [&] { return engine_variant::create(where, pass, executor_maker(xdp::execution_engine::jit), pinned); }},
        {veth_touch_limit,
         [&] { return engine_variant::create(where, parse, executor_maker(xdp::execution_engine::jit), pinned); }},
        {veth_jit,
         [&] { return engine_variant::create(where, filter, executor_maker(xdp::execution_engine::jit), pinned); }},
        {veth_interpreter,
         [&] {
             return engine_variant::create(where, filter, executor_maker(xdp::execution_engine::interpreter), pinned);
         }},
        {veth_lua54,
         [&] { return engine_variant::create(where, filter, lua_maker(script, lua::engine::lua54), pinned); }},
        {veth_luajit,
         [&] { return engine_variant::create(where, filter, lua_maker(script, lua::engine::luajit), pinned); }},
    };
    std::vector<planned> chosen;
    for (const planned& item : plan) {
        if (settings.only.empty() || item.name.find(settings.only) != std::string::npos) {
            chosen.push_back(item);
        }
    }
    // Rounds of every variant in turn, the best round of each kept (as the ns-per-packet part keeps the best trial:
    // on a shared machine the fastest round is the least disturbed one).
    for (unsigned round = 0; round < std::max(1U, settings.rounds) && !interrupted.load(); ++round) {
        for (std::size_t i = 0; i < chosen.size() && !interrupted.load(); ++i) {
            veth_row row = measure(chosen[i].name, chosen[i].make, **sender, settings, interrupted);
            fmt::print(stderr, "veth: round {}: {}: {}\n", round + 1, row.name,
                       row.ran ? fmt::format("{:.3f} Mpps ({:.3f} offered)", row.mpps, row.offered_mpps) : row.note);
            if (round == 0) {
                report.rows.push_back(std::move(row));
            } else if (row.ran && (!report.rows[i].ran || row.mpps > report.rows[i].mpps)) {
                report.rows[i] = std::move(row);
            }
        }
    }
    (*sender)->stop();
    return report;
}

namespace {

/// The receiving thread's CPU seconds per second of the window.
std::optional<double> receiver_share(const veth_row& row) {
    return row.cpu_ns ? std::optional<double>(*row.cpu_ns * row.mpps * 1e-3) : std::nullopt;
}

} // namespace

std::string format_veth_table(const veth_report& report) {
    if (!report.skipped.empty()) {
        return fmt::format("veth: skipped: {}\n", report.skipped);
    }
    std::string out = fmt::format("veth, {:.1f} s per variant after {:.1f} s of warm-up, best of {} round(s): {}\n",
                                  report.settings.seconds, report.settings.warmup, std::max(1U, report.settings.rounds),
                                  report.traffic);
    out += fmt::format("{:<36} {:>7} {:>8} {:>8} {:>9} {:>5} {:>7} {:>9}  {}\n", "variant", "Mpps", "offered",
                       "dropped", "rx ns/pkt", "rx", "sender", "all ns/pkt", "note");
    const veth_row* pass = report.find(veth_port_limit);
    const veth_row* touch = report.find(veth_touch_limit);
    std::string marks_seen;
    for (const veth_row& row : report.rows) {
        if (!row.ran) {
            out += fmt::format("{:<36} {:>7}  {}\n", row.name, "n/a", row.note);
            continue;
        }
        std::string marks;
        const bool kernel = row.name.starts_with("kernel");
        if (kernel && row.sender_cpu && *row.sender_cpu >= 0.9) {
            marks += "c";
        }
        const bool waiting = row.mpps < 0.95 * row.offered_mpps; // the sender offered more than was processed
        if (!kernel && !waiting) {
            marks += "s";
        }
        if (!kernel && waiting && receiver_share(row).value_or(0) >= 0.9) {
            marks += "f";
        }
        if (!kernel && waiting && receiver_share(row).value_or(1) < 0.9) {
            marks += "w";
        }
        // A reference program's rate is the port's limit only where neither the sender bounded it nor the machine
        // starved its worker.
        const auto limit = [&](const veth_row* reference) {
            return !kernel && reference != nullptr && reference->ran && &row != reference &&
                   reference->mpps < 0.95 * reference->offered_mpps && receiver_share(*reference).value_or(0) >= 0.9 &&
                   row.mpps >= 0.9 * reference->mpps;
        };
        if (limit(pass)) {
            marks += "p";
        }
        if (&row != pass && limit(touch)) {
            marks += "t";
        }
        for (const char mark : marks) {
            if (marks_seen.find(mark) == std::string::npos) {
                marks_seen += mark;
            }
        }
        const auto number = [](std::optional<double> value, const char* format) {
            return value ? fmt::format(fmt::runtime(format), *value) : std::string("-");
        };
        out +=
            fmt::format("{:<36} {:>7.3f} {:>8.3f} {:>7.1f}% {:>9} {:>5} {:>7} {:>9}  {}\n",
                        marks.empty() ? row.name : fmt::format("{} [{}]", row.name, marks), row.mpps, row.offered_mpps,
                        row.dropped_share * 100, number(row.cpu_ns, "{:.0f}"), number(receiver_share(row), "{:.2f}"),
                        number(row.sender_cpu, "{:.2f}"), number(row.total_cpu_ns, "{:.0f}"), row.note);
    }
    out += "Mpps: packets the filter decided on per second, from its own counters (ddos_filter.o's stats map, the "
           "nftables rules' counters, the engine's received count); offered: the sender's rate in the same window; "
           "rx ns/pkt: the receiving thread's CPU per packet (sluice's worker; the kernel's filters have none); rx: "
           "its CPU "
           "seconds per second; sender: "
           "the sending thread's CPU seconds per second, which on veth include the receiving end's softirq work (the "
           "kernel's filters, XDP's redirect and copy into AF_XDP); all ns/pkt: the sender's CPU per offered packet + "
           "the receiving thread's per processed packet: what one packet costs the machine on this path, generation "
           "included (the same for every variant)\n";
    if (marks_seen.find('c') != std::string::npos) {
        out += "[c] the kernel's filter runs in the sender's softirq on the sender's CPU, which is saturated: the rate "
               "is one CPU's worth of sending and filtering; compare all ns/pkt\n";
    }
    if (marks_seen.find('s') != std::string::npos) {
        out += "[s] processed >= 95% of offered: bounded by the sender, not by the filter\n";
    }
    if (marks_seen.find('f') != std::string::npos) {
        out += "[f] packets were waiting (offered > processed) and the worker was busy (>= 90% of a CPU): bounded by "
               "the worker, its rate is about 1000 / rx ns/pkt: the filter and the port's per-packet work\n";
    }
    if (marks_seen.find('w') != std::string::npos) {
        out += "[w] packets were waiting (offered > processed) but the worker had less than 90% of a CPU (the machine "
               "is shared): the rate is the CPU it was given, not the filter's; rx ns/pkt is the filter's cost\n";
    }
    if (marks_seen.find('p') != std::string::npos) {
        out += fmt::format("[p] within 10% of {} ({:.3f} Mpps) over the same AF_XDP port: bounded by the port (the "
                           "kernel's copy into AF_XDP, the rings), not by the filter; compare rx ns/pkt instead\n",
                           veth_port_limit, pass->mpps);
    }
    if (marks_seen.find('t') != std::string::npos) {
        out += fmt::format("[t] within 10% of {} ({:.3f} Mpps), which reads the headers and does little else: "
                           "bounded by the port and the first touch of each packet (a cache miss: another CPU copied "
                           "it), not by the filter\n",
                           veth_touch_limit, touch->mpps);
    }
    return out;
}

nlohmann::json veth_json(const veth_report& report) {
    nlohmann::json out;
    if (!report.skipped.empty()) {
        out["skipped"] = report.skipped;
        return out;
    }
    out["seconds"] = report.settings.seconds;
    out["warmup"] = report.settings.warmup;
    out["rounds"] = std::max(1U, report.settings.rounds);
    out["traffic"] = report.traffic;
    out["variants"] = nlohmann::json::array();
    for (const veth_row& row : report.rows) {
        nlohmann::json item{{"name", row.name}, {"ran", row.ran}, {"note", row.note}};
        if (row.ran) {
            item["mpps"] = row.mpps;
            item["offered_mpps"] = row.offered_mpps;
            item["dropped_share"] = row.dropped_share;
            if (row.cpu_ns) {
                item["cpu_ns_per_packet"] = *row.cpu_ns;
            }
            if (row.sender_cpu) {
                item["sender_cpu"] = *row.sender_cpu;
            }
            if (row.total_cpu_ns) {
                item["all_cpu_ns_per_packet"] = *row.total_cpu_ns;
            }
        }
        out["variants"].push_back(std::move(item));
    }
    return out;
}

} // namespace sluice::bench
