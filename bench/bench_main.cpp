// sluice_bench: every program of examples/ timed per packet side by side — sluice's interpreter (unchecked and
// checked) and JIT, the kernel's JIT (BPF_PROG_TEST_RUN), the example's hand-written native C twin and DPDK's BPF
// JIT — on 64- and 1500-byte generated packets with the same map contents, after checking that all of them agree.
// The table is what matters; --json and --png write the same results for programs and people.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "bench_command.hpp"
#include "dpdk_variant.hpp"
#include "native_variant.hpp"

namespace {

using namespace sluice;

/// Each example with what it needs to take its normal paths (the DDoS filter blocks the attack prefix of the traffic).
struct example {
    std::string name;
    std::vector<std::string> maps;
};

std::vector<example> examples() {
    const std::string source = SLUICE_SOURCE_DIR;
    return {
        {"xdp_pass", {}},
        {"xdp_parse_count", {}},
        {"ddos_filter", {"blocked_v4=" + source + "/examples/ddos_blocklist.json"}},
        {"reflector", {}},
        {"proto_count", {}},
        {"tail_call_chain", {}},
        {"global_config", {}},
    };
}

std::vector<std::uint32_t> parse_sizes(const std::string& text) {
    std::vector<std::uint32_t> sizes;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        sizes.push_back(static_cast<std::uint32_t>(std::stoul(text.substr(start, comma - start))));
        start = comma + 1;
    }
    return sizes;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"sluice_bench: the examples in every engine, beside the kernel, native C and DPDK"};
    std::string examples_dir = SLUICE_EXAMPLES_DIR;
    std::vector<std::string> only;
    std::string sizes = "64,1500";
    cli::bench_settings settings;
    std::string json_path;
    std::string png_path;
    app.add_option("--examples", examples_dir, "Folder of the compiled examples (default: this build's)");
    app.add_option("--only", only, "Bench only this example; repeatable");
    app.add_option("--size", sizes, "Packet sizes, comma-separated (default 64,1500)");
    app.add_option("--packets", settings.packets, "Distinct packets per size (default 64)");
    app.add_option("--repeat", settings.repeat, "Runs per packet and trial (default 4096)");
    app.add_option("--trials", settings.trials, "Trials per packet; the fastest counts (default 9)");
    app.add_option("--json", json_path, "Also write the results as JSON");
    app.add_option("--png", png_path, "Also draw a bar chart (gnuplot)");
    CLI11_PARSE(app, argc, argv);
    try {
        settings.sizes = parse_sizes(sizes);
    } catch (const std::exception&) {
        fmt::print(stderr, "sluice_bench: --size '{}': expected sizes in bytes, comma-separated\n", sizes);
        return 1;
    }

    std::vector<cli::program_result> results;
    bool failed = false;
    for (const example& item : examples()) {
        if (!only.empty() && std::ranges::find(only, item.name) == only.end()) {
            continue;
        }
        cli::bench_target target;
        target.file = fmt::format("{}/{}.o", examples_dir, item.name);
        target.maps = item.maps;
        std::vector<cli::variant_factory> factories = cli::standard_variants();
        if (const native_twin* twin = bench::find_native_twin(item.name); twin != nullptr) {
            factories.push_back(bench::native_variant(*twin));
        }
        factories.push_back(bench::dpdk_variant());
        fmt::print(stderr, "sluice_bench: {}\n", item.name);
        auto result = cli::run_bench(target, settings, factories);
        if (!result) {
            fmt::print(stderr, "sluice_bench: {}: {}\n", item.name, result.error().message);
            failed = true;
            continue;
        }
        results.push_back(std::move(*result));
    }
    std::cout << cli::format_bench_table(results);
    std::cout.flush();
    if (!json_path.empty()) {
        std::ofstream out(json_path);
        out << cli::bench_json(results).dump(2) << '\n';
        if (!out) {
            fmt::print(stderr, "sluice_bench: --json {}: cannot write: {}\n", json_path, std::strerror(errno));
            failed = true;
        }
    }
    if (!png_path.empty()) {
        if (auto written = cli::write_bench_png(results, png_path); !written) {
            fmt::print(stderr, "sluice_bench: --png {}: {}\n", png_path, written.error().message);
            failed = true;
        }
    }
    for (const cli::program_result& result : results) {
        if (!result.agreed()) {
            fmt::print(stderr, "sluice_bench: THE VARIANTS DISAGREE on {} (see above)\n", result.program);
            failed = true;
        }
    }
    return failed ? 1 : 0;
}
