// The instruction-count gate (DESIGN.md, "Performance principles"): instructions per packet of a fixed workload,
// counted by valgrind's callgrind, must not grow more than 10% over the baseline committed in
// bench/callgrind_baseline.json, so that a new feature cannot quietly slow the data path.
//
//   sluice_callgrind_gate --baseline FILE [--update]     runs every case under callgrind, compares (or rewrites FILE)
//   sluice_callgrind_gate --workload CASE --packets N    one case, run natively (what callgrind runs)
//
// Cases: xdp_parse_count and ddos_filter (with the example blocklist), each in the interpreter (unchecked) and the JIT.
// What counts: only sluice_gate_run_packets(), the packet loop (callgrind --toggle-collect), so loading, JIT
// compilation and packet generation do not; the count divided by the packets is the cost of a packet through the
// executor, the program and its helpers.
// Determinism: packets come from the generator with a fixed seed; bpf_ktime_get_ns, the one time-dependent helper on
// the path (ddos_filter's token bucket), is replaced by a clock that advances 1 µs per call, so the program takes the
// same branches on every run. What remains is the hash map's random seed (as the kernel's, unless BPF_F_ZERO_SEED):
// it moves which keys share a bucket, a change far below the gate's 10% (the README gives the numbers of two runs).
//
// Exit status: 0 within the tolerance; 1 over it or on an error; 77 (ctest's SKIP_RETURN_CODE) when valgrind is
// missing.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "bench_command.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/io/traffic_generator.hpp"
#include "sluice/xdp/executor.hpp"
#include "sluice/xdp/frame.hpp"

namespace {

using namespace sluice;

constexpr double tolerance = 0.10;
constexpr std::uint64_t default_packets = 2048;
constexpr int skip_code = 77;

struct gate_case {
    std::string name; ///< "xdp_parse_count/interpreter"
    std::string example;
    xdp::execution_engine engine;
};

const std::vector<gate_case>& cases() {
    static const std::vector<gate_case> all{
        {"xdp_parse_count/interpreter", "xdp_parse_count", xdp::execution_engine::interpreter},
        {"ddos_filter/interpreter", "ddos_filter", xdp::execution_engine::interpreter},
        {"xdp_parse_count/jit", "xdp_parse_count", xdp::execution_engine::jit},
        {"ddos_filter/jit", "ddos_filter", xdp::execution_engine::jit},
    };
    return all;
}

std::uint64_t fake_now_ns = 1'000'000'000;

/// bpf_ktime_get_ns for the gate: a clock that moves 1 µs per call, so the token bucket sees the same time every run.
std::uint64_t deterministic_ktime(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                  ebpf::call_context&) {
    fake_now_ns += 1000;
    return fake_now_ns;
}

} // namespace

/// The counted region: every frame through the executor, in batches. Not inlined, so callgrind can toggle on it.
extern "C" __attribute__((noinline)) void sluice_gate_run_packets(xdp::executor* executor, xdp::frame* const* frames,
                                                                  std::size_t count, xdp::action* out) {
    for (std::size_t done = 0; done < count; done += xdp::max_batch_size) {
        const std::size_t size = std::min(xdp::max_batch_size, count - done);
        executor->run_batch({frames + done, size}, {out + done, size});
    }
}

namespace {

int run_workload(const std::string& examples, const std::string& source, const std::string& name,
                 std::uint64_t packets) {
    const auto found = std::ranges::find(cases(), name, &gate_case::name);
    if (found == cases().end()) {
        fmt::print(stderr, "sluice_callgrind_gate: no case '{}'\n", name);
        return 1;
    }
    cli::bench_target target;
    target.file = fmt::format("{}/{}.o", examples, found->example);
    if (found->example == "ddos_filter") {
        target.maps.push_back("blocked_v4=" + source + "/examples/ddos_blocklist.json");
    }
    auto loaded = cli::load_bench_object(target);
    if (!loaded) {
        fmt::print(stderr, "sluice_callgrind_gate: {}\n", loaded.error().message);
        return 1;
    }
    ebpf::helper_table helpers = ebpf::xdp_helper_table();
    helpers.set(5, "bpf_ktime_get_ns", &deterministic_ktime); // BPF_FUNC_ktime_get_ns
    ebpf::execution_state state(0);
    xdp::executor_options options;
    options.checked = false;
    options.engine = found->engine;
    auto executor = xdp::executor::create((*loaded)->object, *(*loaded)->program, helpers, state, options);
    if (!executor) {
        fmt::print(stderr, "sluice_callgrind_gate: {}: {}\n", name, executor.error().message);
        return 1;
    }

    auto spec = io::traffic_spec::parse(fmt::format(
        "packets={},flows=1000,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=10,attack=30@203.0.113.0/24,seed=1",
        packets));
    auto generator = spec ? io::traffic_generator::create(*spec) : expected<io::traffic_generator>(spec.error());
    if (!generator) {
        fmt::print(stderr, "sluice_callgrind_gate: {}\n", generator.error().message);
        return 1;
    }
    xdp::frame_pool pool(packets);
    std::vector<xdp::frame*> frames(packets);
    if (pool.acquire_batch(frames) != packets || generator->rx_batch(frames) != packets) {
        fmt::print(stderr, "sluice_callgrind_gate: could not generate {} packets\n", packets);
        return 1;
    }
    std::vector<xdp::action> actions(packets);
    sluice_gate_run_packets(&*executor, frames.data(), frames.size(), actions.data());
    if (auto accounted = executor->check_accounting(); !accounted) {
        fmt::print(stderr, "sluice_callgrind_gate: {}\n", accounted.error().message);
        return 1;
    }
    const auto& stats = executor->stats();
    fmt::print("{}: {} packets, {} dropped, {} passed, {} aborted\n", name, stats.received.packets,
               stats.of(xdp::action::drop).packets, stats.of(xdp::action::pass).packets,
               stats.of(xdp::action::aborted).packets);
    return stats.of(xdp::action::aborted).packets == 0 ? 0 : 1;
}

/// Runs `command` (argv) and waits; its exit status, or nullopt when it could not start or was killed.
std::optional<int> run_process(const std::vector<std::string>& command, bool quiet = false) {
    std::vector<char*> argv;
    for (const std::string& item : command) {
        argv.push_back(const_cast<char*>(item.c_str()));
    }
    argv.push_back(nullptr);
    std::fflush(stdout); // our lines before the child's
    const pid_t child = ::fork();
    if (child < 0) {
        return std::nullopt;
    }
    if (child == 0) {
        if (quiet) {
            std::freopen("/dev/null", "w", stdout);
        }
        ::execvp(argv[0], argv.data());
        _exit(127);
    }
    int status = 0;
    if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) {
        return std::nullopt;
    }
    return WEXITSTATUS(status);
}

/// The Ir total of a callgrind output file ("totals:" line, or "summary:" in older versions).
std::optional<std::uint64_t> callgrind_total(const std::filesystem::path& file) {
    std::ifstream in(file);
    std::string line;
    std::optional<std::uint64_t> total;
    while (std::getline(in, line)) {
        if (line.starts_with("totals:") || line.starts_with("summary:")) {
            total = std::stoull(line.substr(line.find(':') + 1));
        }
    }
    return total;
}

int run_gate(const std::string& self, const std::string& examples, const std::string& source,
             const std::string& baseline_path, bool update, std::uint64_t packets) {
    if (run_process({"valgrind", "--version"}, true).value_or(127) != 0) {
        fmt::print("sluice_callgrind_gate: SKIPPED: valgrind is not installed (Debian: valgrind)\n");
        return skip_code;
    }
    nlohmann::json baseline;
    if (!update) {
        std::ifstream in(baseline_path);
        if (!in) {
            fmt::print(stderr, "sluice_callgrind_gate: cannot read the baseline {}: {} (make one with --update)\n",
                       baseline_path, std::strerror(errno));
            return 1;
        }
        try {
            in >> baseline;
        } catch (const nlohmann::json::exception& failure) {
            fmt::print(stderr, "sluice_callgrind_gate: {}: not JSON: {}\n", baseline_path, failure.what());
            return 1;
        }
    }
    char directory_template[] = "/tmp/sluice-callgrind-XXXXXX";
    if (::mkdtemp(directory_template) == nullptr) {
        fmt::print(stderr, "sluice_callgrind_gate: cannot make a temporary directory: {}\n", std::strerror(errno));
        return 1;
    }
    const std::filesystem::path directory = directory_template;
    nlohmann::json measured = nlohmann::json::object();
    bool failed = false;
    fmt::print("{:<30} {:>14} {:>14} {:>8}\n", "case", "baseline Ir/pkt", "now Ir/pkt", "change");
    for (const gate_case& item : cases()) {
        const std::filesystem::path out = directory / (std::to_string(measured.size()) + ".out");
        const auto status = run_process(
            {"valgrind", "--tool=callgrind", "--quiet", "--collect-atstart=no",
             "--toggle-collect=sluice_gate_run_packets", "--callgrind-out-file=" + out.string(), self, "--examples",
             examples, "--source", source, "--workload", item.name, "--packets", std::to_string(packets)});
        const auto total = callgrind_total(out);
        if (!status || *status != 0 || !total || *total == 0) {
            fmt::print(stderr, "sluice_callgrind_gate: {}: the workload failed under callgrind (exit {})\n", item.name,
                       status ? std::to_string(*status) : "abnormal");
            failed = true;
            continue;
        }
        const double per_packet = static_cast<double>(*total) / static_cast<double>(packets);
        measured[item.name] = per_packet;
        if (update) {
            fmt::print("{:<30} {:>14} {:>14.1f} {:>8}\n", item.name, "-", per_packet, "new");
            continue;
        }
        const auto& recorded = baseline["instructions_per_packet"];
        if (!recorded.contains(item.name)) {
            fmt::print("{:<30} {:>14} {:>14.1f} {:>8}  FAIL: no baseline for this case (run with --update)\n",
                       item.name, "-", per_packet, "-");
            failed = true;
            continue;
        }
        const double before = recorded[item.name].get<double>();
        const double change = per_packet / before - 1.0;
        const bool over = change > tolerance;
        fmt::print("{:<30} {:>14.1f} {:>14.1f} {:>+7.1f}%{}\n", item.name, before, per_packet, change * 100.0,
                   over ? fmt::format("  FAIL: more than {:.0f}% over the baseline", tolerance * 100.0) : "");
        failed = failed || over;
    }
    std::error_code ignored;
    std::filesystem::remove_all(directory, ignored);
    if (update && !failed) {
        nlohmann::json file{{"comment",
                             "Instructions per packet (callgrind Ir in sluice_gate_run_packets / packets) of "
                             "bench/callgrind_gate.cpp's cases. Regenerate: sluice_callgrind_gate --baseline "
                             "bench/callgrind_baseline.json --update (see README, Benchmarks)."},
                            {"packets", packets},
                            {"tolerance", tolerance},
                            {"instructions_per_packet", measured}};
        std::ofstream out(baseline_path);
        out << file.dump(2) << '\n';
        if (!out) {
            fmt::print(stderr, "sluice_callgrind_gate: cannot write {}: {}\n", baseline_path, std::strerror(errno));
            return 1;
        }
        fmt::print("sluice_callgrind_gate: wrote {}\n", baseline_path);
    }
    return failed ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"sluice_callgrind_gate: instructions per packet under callgrind against a committed baseline"};
    std::string examples = SLUICE_EXAMPLES_DIR;
    std::string source = SLUICE_SOURCE_DIR;
    std::string baseline = std::string(SLUICE_SOURCE_DIR) + "/bench/callgrind_baseline.json";
    std::string workload;
    std::uint64_t packets = default_packets;
    bool update = false;
    app.add_option("--examples", examples, "Folder of the compiled examples");
    app.add_option("--source", source, "The source tree (for examples/ddos_blocklist.json)");
    app.add_option("--baseline", baseline, "The baseline JSON file (default: bench/callgrind_baseline.json)");
    app.add_flag("--update", update, "Measure and rewrite the baseline instead of comparing");
    app.add_option("--workload", workload, "Run one case natively (what callgrind is given)");
    app.add_option("--packets", packets, "Packets per case (default 2048)")->check(CLI::PositiveNumber);
    CLI11_PARSE(app, argc, argv);
    if (!workload.empty()) {
        return run_workload(examples, source, workload, packets);
    }
    std::error_code error;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
    return run_gate(error ? std::string(argv[0]) : self.string(), examples, source, baseline, update, packets);
}
