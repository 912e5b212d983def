// `sluice bench PROG.o`: the time per packet of one XDP program in each engine, side by side in the same run with the
// kernel's JIT, and whether they all agree.
//
// Contract:
// - Packets come from the traffic generator (io/traffic_generator.hpp): for each size, `packets` distinct packets of
//   a realistic mix (TCP/UDP/ICMP, 10% IPv6, 30% from an attack prefix), so programs take their normal paths. Every
//   variant sees the same bytes.
// - Each variant starts from the same map contents: the object's own initial values, then --map files and --set
//   knobs, applied the same way to sluice's maps and to the kernel's (bench_object below).
// - Agreement: each variant runs every packet once, in order, from that fresh state; the return code and the packet
//   bytes it leaves must be the same in every variant. A disagreement is reported loudly (the table says so, the
//   command exits 1): a benchmark of a wrong result measures nothing.
// - Timing follows BPF_PROG_TEST_RUN's method for every variant: a packet is run `repeat` times on one buffer; the
//   time per run is the total divided by `repeat`; the best of `trials` such runs counts (the machine is shared: the
//   minimum is the least disturbed); the result is the mean over the packets. The kernel reports its own time per
//   run (an integer number of ns, truncated), measured around its loop; sluice's engines are timed around run_batch()
//   over batches of 64, so the executor's per-packet work (action mapping, accounting) counts, as the kernel's loop
//   counts its own.
// - Variants that cannot run here (no JIT in this build, not root for the kernel, a program DPDK cannot load) are
//   listed with the reason instead of a number; the ratios involving them say n/a.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"

namespace sluice::cli {

/// What a benchmark runs: an object, one of its programs, and how to prepare its maps (as `sluice run` takes them).
struct bench_target {
    std::string file;
    std::string program;                  ///< empty: the entry point, as `sluice run` chooses it
    std::vector<std::string> maps;        ///< NAME=FILE.json
    std::vector<std::string> rodata;      ///< NAME=VALUE
    std::vector<std::string> prog_arrays; ///< MAP[INDEX]=PROGRAM
};

/// The target loaded into sluice with its maps filled: what every sluice-side variant starts from, and where other
/// variants (native C twins, DPDK) read the map contents and knobs they must copy.
struct bench_object {
    ebpf::object_spec spec;
    ebpf::loaded_object object;
    const ebpf::loaded_program* program{};

    /// The bytes of a `.rodata` variable as loaded (after --set); empty when there is no such variable.
    std::vector<std::byte> rodata(std::string_view variable) const;
};

expected<std::unique_ptr<bench_object>> load_bench_object(const bench_target& target);

/// What a variant did with one packet.
struct packet_outcome {
    std::uint32_t code{};             ///< r0, low 32 bits (the kernel's retval)
    std::vector<std::uint8_t> packet; ///< the packet as the program left it

    bool operator==(const packet_outcome&) const = default;
};

/// The columns the ratios are computed from.
enum class variant_role : std::uint8_t { interpreter, interpreter_checked, jit, kernel, native, dpdk, other };

/// One way of running the program.
class bench_variant {
public:
    virtual ~bench_variant() = default;
    /// Fresh state: maps as bench_object fills them.
    virtual expected<void> reset() = 0;
    /// Runs the packet once.
    virtual expected<packet_outcome> run_once(std::span<const std::uint8_t> packet) = 0;
    /// ns per run over `repeat` runs on one buffer holding `packet`.
    virtual expected<double> time(std::span<const std::uint8_t> packet, std::uint64_t repeat) = 0;
};

/// A variant by name, or why it cannot run here ("no JIT in this build", "needs root", ...).
struct variant_factory {
    std::string name;
    variant_role role{variant_role::other};
    std::function<expected<std::unique_ptr<bench_variant>>(const bench_target&)> make;
};

/// The variants every sluice build has: interpreter (unchecked), interpreter (checked), JIT, kernel.
std::vector<variant_factory> standard_variants();

/// More columns for `sluice bench`, chosen per target: bench/ installs its native C twins and DPDK's JIT here
/// (bench/bench_extras.hpp) when the command is built with it. Call before the command runs.
using extra_variants = std::function<std::vector<variant_factory>(const bench_target& target)>;
void set_extra_variants(extra_variants provider);

struct bench_settings {
    std::vector<std::uint32_t> sizes{64, 1500};
    std::uint32_t packets{64};  ///< distinct packets per size
    std::uint64_t repeat{4096}; ///< runs per packet and trial (rounded up to a multiple of 64)
    std::uint32_t trials{9};    ///< the best trial counts: short trials, so that some run undisturbed
    std::string traffic{"flows=1000,mix=tcp:60/udp:30/icmp:10,ipv6=10,attack=30@203.0.113.0/24,seed=1"};
};

struct variant_result {
    std::string name;
    variant_role role{};
    std::optional<double> ns; ///< mean ns per packet; empty when the variant did not run
    std::string note;         ///< why it did not run, or what went wrong
};

struct size_result {
    std::uint32_t size{};
    std::vector<variant_result> variants;
    std::vector<std::string> disagreements; ///< empty when every variant that ran agreed on every packet
};

struct program_result {
    std::string object;
    std::string program;
    bench_settings settings;
    std::vector<size_result> sizes;

    bool agreed() const;
};

/// Runs every variant of `factories` over the target for each size.
expected<program_result> run_bench(const bench_target& target, const bench_settings& settings,
                                   const std::vector<variant_factory>& factories);

/// The table for people: one row per program and size, ns per packet per variant, then the ratios
/// (JIT ÷ kernel, JIT ÷ native, JIT ÷ DPDK; interpreter ÷ kernel for reference), then notes and disagreements.
std::string format_bench_table(std::span<const program_result> results);

/// {"date", "machine": {"cpus", "model", "load_average"}, "programs": [{"object", "program", "sizes": [{"size", "variants":
/// [{"name", "role", "ns"?, "note"?}], "ratios": {...}, "agreed", "disagreements"}]}]}.
nlohmann::json bench_json(std::span<const program_result> results);

/// A bar chart (log scale, ns per packet, one group per program and size) through gnuplot; an error when gnuplot
/// is missing or fails.
expected<void> write_bench_png(std::span<const program_result> results, const std::string& path);

/// Adds the `bench` subcommand to `app`.
void add_bench_command(CLI::App& app);

} // namespace sluice::cli
