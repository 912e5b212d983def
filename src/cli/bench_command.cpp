// `sluice bench`: packets from the generator, every variant over them once for agreement, then timed the way
// BPF_PROG_TEST_RUN times a program (bench_command.hpp). The variants are in bench_variants.cpp, the table, JSON and
// chart in bench_report.cpp.
#include "bench_command.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iostream>
#include <limits>
#include <set>

#include "map_json.hpp"
#include "object_options.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/io/traffic_generator.hpp"
#include "sluice/xdp/action.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::cli {
namespace {

std::string names_of(const ebpf::loaded_object& object) {
    std::string names;
    for (const auto& program : object.programs()) {
        names += fmt::format("{}{}", names.empty() ? "" : ", ", program->name);
    }
    return names;
}

/// The program to bench: the one named, else the first device program that no prog_array's initial values hold (the
/// entry point of a tail-call chain, as `sluice run` chooses it), else the first.
expected<const ebpf::loaded_program*> choose_program(const bench_target& target, const ebpf::object_spec& spec,
                                                     const ebpf::loaded_object& object) {
    if (!target.program.empty()) {
        if (const auto* found = object.find_program(target.program); found != nullptr) {
            return found;
        }
        return error{
            fmt::format("{}: no program named '{}' (programs: {})", target.file, target.program, names_of(object))};
    }
    if (object.programs().empty()) {
        return error{fmt::format("{}: no XDP program", target.file)};
    }
    std::set<std::string> stages;
    for (const ebpf::map_spec& map : spec.maps()) {
        for (const ebpf::prog_array_slot& slot : map.initial_programs) {
            stages.insert(slot.program);
        }
    }
    for (const auto& program : object.programs()) {
        if (program->kind.attach == ebpf::xdp_attach::device && !stages.contains(program->name)) {
            return program.get();
        }
    }
    return object.programs().front().get();
}

std::string action_name(std::uint32_t code) {
    const auto known = xdp::from_return_code(code);
    return known ? std::string(xdp::kernel_name(*known)) : fmt::format("return code {}", code);
}

/// Why two outcomes of one packet differ, in a line a person can follow.
std::string describe_difference(const packet_outcome& expected_outcome, const packet_outcome& actual) {
    if (expected_outcome.code != actual.code) {
        return fmt::format("{} instead of {}", action_name(actual.code), action_name(expected_outcome.code));
    }
    if (expected_outcome.packet.size() != actual.packet.size()) {
        return fmt::format("same action, but a packet of {} bytes instead of {}", actual.packet.size(),
                           expected_outcome.packet.size());
    }
    const auto mismatch = std::ranges::mismatch(expected_outcome.packet, actual.packet);
    const auto offset = static_cast<std::size_t>(mismatch.in1 - expected_outcome.packet.begin());
    return fmt::format("same action, but packet byte {} is 0x{:02x} instead of 0x{:02x}", offset, *mismatch.in2,
                       *mismatch.in1);
}

constexpr std::size_t disagreements_listed =
    5; // per variant: the first few say what is wrong, the count says how often

/// One size: the packets, each variant's outcomes and times.
size_result run_size(const bench_target& target, const bench_settings& settings,
                     const std::vector<variant_factory>& factories, std::uint32_t size,
                     const std::vector<std::vector<std::uint8_t>>& packets) {
    size_result result;
    result.size = size;
    std::optional<std::vector<packet_outcome>> reference;
    std::string reference_name;
    for (const variant_factory& factory : factories) {
        variant_result& column = result.variants.emplace_back();
        column.name = factory.name;
        column.role = factory.role;
        auto variant = factory.make(target);
        if (!variant) {
            column.note = variant.error().message;
            continue;
        }
        if (auto reset = (*variant)->reset(); !reset) {
            column.note = reset.error().message;
            continue;
        }
        std::vector<packet_outcome> outcomes;
        outcomes.reserve(packets.size());
        std::optional<std::string> failure;
        for (const auto& packet : packets) {
            auto outcome = (*variant)->run_once(packet);
            if (!outcome) {
                failure = outcome.error().message;
                break;
            }
            outcomes.push_back(std::move(*outcome));
        }
        if (failure) {
            column.note = *failure;
            continue;
        }
        if (!reference) {
            reference = std::move(outcomes);
            reference_name = factory.name;
        } else {
            std::size_t differing = 0;
            for (std::size_t i = 0; i < packets.size(); ++i) {
                if ((*reference)[i] == outcomes[i]) {
                    continue;
                }
                if (++differing <= disagreements_listed) {
                    result.disagreements.push_back(fmt::format("{} bytes, packet {}: {} gave {}", size, i + 1,
                                                               factory.name,
                                                               describe_difference((*reference)[i], outcomes[i])) +
                                                   fmt::format(" (reference: {})", reference_name));
                }
            }
            if (differing > disagreements_listed) {
                result.disagreements.push_back(fmt::format("{} bytes: {} disagreed with {} on {} of {} packets", size,
                                                           factory.name, reference_name, differing, packets.size()));
            }
        }

        double total = 0;
        for (const auto& packet : packets) {
            double best = std::numeric_limits<double>::infinity();
            for (std::uint32_t trial = 0; trial < settings.trials; ++trial) {
                auto ns = (*variant)->time(packet, settings.repeat);
                if (!ns) {
                    failure = ns.error().message;
                    break;
                }
                best = std::min(best, *ns);
            }
            if (failure) {
                break;
            }
            total += best;
        }
        if (failure) {
            column.note = *failure;
            continue;
        }
        column.ns = total / static_cast<double>(packets.size());
    }
    return result;
}

} // namespace

std::vector<std::byte> bench_object::rodata(std::string_view variable) const {
    for (const ebpf::rodata_variable& found : spec.rodata_variables()) {
        if (found.name != variable) {
            continue;
        }
        ebpf::map* holder = object.maps()[found.map_index].get();
        const std::uint32_t zero = 0;
        const auto* value = static_cast<const std::byte*>(holder->lookup(&zero, 0));
        if (value == nullptr) {
            return {};
        }
        return {value + found.offset, value + found.offset + found.size};
    }
    return {};
}

expected<std::unique_ptr<bench_object>> load_bench_object(const bench_target& target) {
    auto spec = ebpf::object_spec::open_file(target.file);
    if (!spec) {
        return spec.error();
    }
    if (auto done = apply_rodata(*spec, target.rodata); !done) {
        return done.error();
    }
    if (auto done = apply_prog_arrays(*spec, target.prog_arrays); !done) {
        return done.error();
    }
    const ebpf::load_options options = xdp_load_options(1); // one worker, as `sluice run`
    auto object = spec->load(options);
    if (!object) {
        return object.error();
    }
    auto loaded = std::make_unique<bench_object>(bench_object{std::move(*spec), std::move(*object), nullptr});
    auto program = choose_program(target, loaded->spec, loaded->object);
    if (!program) {
        return program.error();
    }
    loaded->program = *program;
    for (const std::string& assignment : target.maps) {
        const std::size_t equals = assignment.find('=');
        if (equals == std::string::npos || equals == 0) {
            return error{fmt::format("--map '{}': expected NAME=FILE.json", assignment)};
        }
        const std::string name = assignment.substr(0, equals);
        ebpf::map* map = loaded->object.find_map(name);
        if (map == nullptr) {
            return error{fmt::format("--map {}: {} has no map '{}'", assignment, target.file, name)};
        }
        if (auto filled = fill_map_from_file(*map, name, assignment.substr(equals + 1)); !filled) {
            return filled.error();
        }
    }
    return loaded;
}

bool program_result::agreed() const {
    return std::ranges::all_of(sizes, [](const size_result& size) { return size.disagreements.empty(); });
}

expected<program_result> run_bench(const bench_target& target, const bench_settings& settings,
                                   const std::vector<variant_factory>& factories) {
    // Load once up front, so that a bad object or option is one clear error, not a note in every column.
    auto loaded = load_bench_object(target);
    if (!loaded) {
        return loaded.error();
    }
    if (settings.packets == 0 || settings.repeat == 0 || settings.trials == 0) {
        return error{"bench: --packets, --repeat and --trials must be at least 1"};
    }
    program_result result;
    result.object = target.file;
    result.program = (*loaded)->program->name;
    result.settings = settings;
    bench_target resolved = target;
    resolved.program = result.program;
    for (const std::uint32_t size : settings.sizes) {
        auto spec =
            io::traffic_spec::parse(fmt::format("{},packets={},size={}", settings.traffic, settings.packets, size));
        if (!spec) {
            return error{fmt::format("bench: size {}: {}", size, spec.error().message)};
        }
        auto generator = io::traffic_generator::create(*spec);
        if (!generator) {
            return error{fmt::format("bench: size {}: {}", size, generator.error().message)};
        }
        std::vector<std::vector<std::uint8_t>> packets;
        std::vector<std::uint8_t> buffer(io::generator_max_size);
        for (std::uint64_t i = 0; i < settings.packets; ++i) {
            xdp::packet_info info;
            const std::uint32_t length = generator->build(i, buffer, info);
            packets.emplace_back(buffer.begin(), buffer.begin() + length);
        }
        result.sizes.push_back(run_size(resolved, settings, factories, size, packets));
    }
    return result;
}

namespace {

extra_variants& extra_provider() {
    static extra_variants provider;
    return provider;
}

struct bench_command_options {
    bench_target target;
    std::string sizes{"64,1500"};
    bench_settings settings;
    std::string json_path;
    std::string png_path;
};

[[noreturn]] void fail(std::string_view message) {
    fmt::print(stderr, "sluice bench: {}\n", message);
    throw CLI::RuntimeError(1);
}

std::vector<std::uint32_t> parse_sizes(const std::string& text) {
    std::vector<std::uint32_t> sizes;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view item = std::string_view{text}.substr(start, comma - start);
        std::uint32_t size = 0;
        const auto [end, code] = std::from_chars(item.data(), item.data() + item.size(), size);
        if (item.empty() || code != std::errc{} || end != item.data() + item.size() || size < 14 ||
            size > xdp::standard_frame_capacity) {
            fail(fmt::format("--size '{}': '{}' is not a packet size in bytes from 14 to {}", text, item,
                             xdp::standard_frame_capacity));
        }
        sizes.push_back(size);
        start = comma + 1;
    }
    return sizes;
}

void bench(bench_command_options& options) {
    options.settings.sizes = parse_sizes(options.sizes);
    std::vector<variant_factory> factories = standard_variants();
    if (extra_provider()) {
        for (variant_factory& extra : extra_provider()(options.target)) {
            factories.push_back(std::move(extra));
        }
    }
    auto result = run_bench(options.target, options.settings, factories);
    if (!result) {
        fail(result.error().message);
    }
    const std::vector<program_result> results{std::move(*result)};
    std::cout << format_bench_table(results);
    std::cout.flush();
    bool failed = false;
    if (!options.json_path.empty()) {
        std::ofstream out(options.json_path);
        out << bench_json(results).dump(2) << '\n';
        if (!out) {
            fmt::print(stderr, "sluice bench: --json {}: cannot write: {}\n", options.json_path, std::strerror(errno));
            failed = true;
        }
    }
    if (!options.png_path.empty()) {
        if (auto written = write_bench_png(results, options.png_path); !written) {
            fmt::print(stderr, "sluice bench: --png {}: {}\n", options.png_path, written.error().message);
            failed = true;
        }
    }
    if (!results.front().agreed()) {
        fmt::print(stderr,
                   "sluice bench: THE VARIANTS DISAGREE on {} (see above): these timings compare different "
                   "work\n",
                   results.front().program);
        failed = true;
    }
    if (failed) {
        throw CLI::RuntimeError(1);
    }
}

} // namespace

void set_extra_variants(extra_variants provider) {
    extra_provider() = std::move(provider);
}

void add_bench_command(CLI::App& app) {
    auto options = std::make_shared<bench_command_options>();
    CLI::App* command = app.add_subcommand(
        "bench", "Time an XDP program per packet in each engine, beside the kernel's JIT, and check they agree");
    command->footer(
        "Variants: sluice's interpreter (unchecked and checked), sluice's JIT (when this build has one), the "
        "kernel's JIT through BPF_PROG_TEST_RUN (needs root or CAP_BPF + CAP_NET_ADMIN), and, when sluice is built "
        "with bench/, the hand-written C twin of an example (bench/native/) and DPDK's BPF JIT (when librte_bpf was "
        "found). Packets come from the "
        "generator (--traffic); each variant first runs every packet once from the same map contents and must give "
        "the same action and packet bytes; then each packet is run --repeat times on one buffer, the best of --trials "
        "counts, and the mean over packets is reported in ns per packet.\n\n"
        "Exit status: 0 when every variant that could run agreed; 1 on an error or a disagreement.");
    command->add_option("file", options->target.file, "BPF ELF object (clang -O2 -g -target bpf -c)")->required();
    command->add_option("--program,--prog", options->target.program,
                        "Program to bench (default: the entry point, as sluice run chooses it)");
    command->add_option("--size", options->sizes, "Packet sizes in bytes, comma-separated (default 64,1500)");
    command->add_option("--packets", options->settings.packets, "Distinct packets per size (default 64)");
    command->add_option("--repeat", options->settings.repeat,
                        "Runs per packet and trial (default 4096; rounded up to a multiple of 64)");
    command->add_option("--trials", options->settings.trials, "Trials per packet; the fastest counts (default 9)");
    command->add_option("--traffic", options->settings.traffic,
                        "Generator spec without packets= and size= (default: " + options->settings.traffic + ")");
    command->add_option("--map", options->target.maps,
                        "NAME=FILE.json: fill map NAME first (every variant); repeatable");
    command->add_option("--set", options->target.rodata, "NAME=VALUE: set a .rodata variable before load; repeatable");
    command->add_option("--prog-array", options->target.prog_arrays,
                        "MAP[INDEX]=PROGRAM: put a program of the object in a prog array slot; repeatable");
    command->add_option("--json", options->json_path, "Also write the results as JSON to this file");
    command->add_option("--png", options->png_path, "Also draw a bar chart to this PNG file (needs gnuplot)");
    command->callback([options] { bench(*options); });
}

} // namespace sluice::cli
