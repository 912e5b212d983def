// sluice_lua_bench: the DDoS filter (and the protocol counter) as eBPF in each of sluice's engines, in the kernel
// (BPF_PROG_TEST_RUN), and as their Lua twins on Lua 5.4 and LuaJIT, in one run, with the ratios the Lunatik authors
// reported (XDPLua and NFLua against eBPF).
//
// It is `sluice bench` (src/cli/bench_command.hpp) with two more variants: the same generated packets, the same map
// contents (the eBPF object's maps, after --map files, copied into the maps the script declares under the same names;
// .rodata knobs become the script's `config`), the same agreement check (verdict and packet bytes of every packet
// equal in every variant) and the same timing method (a packet run `repeat` times on one buffer in batches of 64,
// best of `trials`, mean over the packets).
//
//   sluice_lua_bench [--repeat N] [--packets N] [--trials N] [--json FILE]
#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bench_command.hpp"
#include "bench_frame.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/lua/script_program.hpp"

namespace sluice::bench {
namespace {

/// A Lua twin as a bench variant.
class lua_variant final : public cli::bench_variant {
public:
    lua_variant(cli::bench_target target, std::string script, lua::engine kind)
        : _target(std::move(target)), _script(std::move(script)), _engine(kind) {}

    expected<void> reset() override {
        _program.reset();
        auto loaded = cli::load_bench_object(_target);
        if (!loaded) {
            return loaded.error();
        }
        const cli::bench_object& reference = **loaded;
        _state = std::make_unique<ebpf::execution_state>(0);
        _state->trace = &cli::drop_bench_trace;
        lua::options settings;
        settings.engine = _engine;
        settings.log = [](std::string_view line) { fmt::print(stderr, "lua: {}\n", line); };
        for (const ebpf::rodata_variable& knob : reference.spec.rodata_variables()) {
            const std::vector<std::byte> bytes = reference.rodata(knob.name);
            std::uint64_t value = 0;
            std::memcpy(&value, bytes.data(), std::min<std::size_t>(bytes.size(), sizeof(value)));
            settings.config.emplace_back(knob.name, std::to_string(value));
        }
        auto program = lua::script_program::load_file(_script, *_state, settings);
        if (!program) {
            return program.error();
        }
        _program.emplace(std::move(*program));
        for (std::size_t i = 0; i < reference.object.maps().size(); ++i) {
            const ebpf::map_spec& spec = reference.object.map_specs()[i];
            ebpf::map* twin = _program->find_map(spec.name);
            if (spec.origin == ebpf::map_origin::global_data || twin == nullptr) {
                continue;
            }
            ebpf::map& source = *reference.object.maps()[i];
            if (twin->key_size() != source.key_size() || twin->value_size() != source.value_size()) {
                return error{fmt::format("{}: map {} differs from the eBPF object's", _script, spec.name)};
            }
            long failed = 0;
            source.for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
                failed = twin->update_elem(key.data(), value.data(), 0);
                return failed == 0;
            });
            if (failed != 0) {
                return error{fmt::format("{}: copying map {}: error {}", _script, spec.name, failed)};
            }
        }
        return {};
    }

    expected<cli::packet_outcome> run_once(std::span<const std::uint8_t> packet) override {
        return _frame.run_once(_program ? &*_program : nullptr, packet);
    }

    expected<double> time(std::span<const std::uint8_t> packet, std::uint64_t repeat) override {
        return _frame.time(_program ? &*_program : nullptr, packet, repeat);
    }

private:
    cli::bench_target _target;
    std::string _script;
    lua::engine _engine;
    std::unique_ptr<ebpf::execution_state> _state;
    std::optional<lua::script_program> _program;
    cli::bench_frame _frame;
};

std::optional<double> ns_of(const cli::size_result& size, std::string_view name) {
    for (const cli::variant_result& variant : size.variants) {
        if (variant.name == name) {
            return variant.ns;
        }
    }
    return std::nullopt;
}

std::string ratio(std::optional<double> numerator, std::optional<double> denominator) {
    if (!numerator || !denominator || *denominator <= 0) {
        return "n/a";
    }
    return fmt::format("{:.1f}x", *numerator / *denominator);
}

std::string mpps(std::optional<double> ns) {
    return ns && *ns > 0 ? fmt::format("{:.2f}", 1000.0 / *ns) : std::string{"n/a"};
}

} // namespace
} // namespace sluice::bench

int main(int argc, char** argv) {
    using namespace sluice;
    cli::bench_settings settings;
    settings.sizes = {64, 1500};
    std::string json_path;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string option = argv[i];
        const std::string value = argv[i + 1];
        if (option == "--repeat") {
            settings.repeat = std::stoull(value);
        } else if (option == "--packets") {
            settings.packets = static_cast<std::uint32_t>(std::stoul(value));
        } else if (option == "--trials") {
            settings.trials = static_cast<std::uint32_t>(std::stoul(value));
        } else if (option == "--json") {
            json_path = value;
        } else {
            fmt::print(stderr, "usage: sluice_lua_bench [--repeat N] [--packets N] [--trials N] [--json FILE]\n");
            return 2;
        }
    }

    struct example {
        std::string name;
        std::vector<std::string> maps;
    };
    const std::vector<example> examples{
        {"ddos_filter", {"blocked_v4=" SLUICE_SOURCE_DIR "/examples/ddos_blocklist.json"}},
        {"proto_count", {}},
    };
    std::vector<cli::program_result> results;
    for (const example& item : examples) {
        cli::bench_target target;
        target.file = std::string(SLUICE_EXAMPLES_DIR) + "/" + item.name + ".o";
        target.maps = item.maps;
        std::vector<cli::variant_factory> factories = cli::standard_variants();
        const std::string script = std::string(SLUICE_SOURCE_DIR) + "/examples/" + item.name + ".lua";
        for (const lua::engine kind : {lua::engine::lua54, lua::engine::luajit}) {
            factories.push_back(cli::variant_factory{
                std::string(lua::to_string(kind)), cli::variant_role::other,
                [script, kind](const cli::bench_target& chosen) -> expected<std::unique_ptr<cli::bench_variant>> {
                    return std::unique_ptr<cli::bench_variant>(std::make_unique<bench::lua_variant>(chosen, script,
                                                                                                   kind));
                }});
        }
        auto result = cli::run_bench(target, settings, factories);
        if (!result) {
            fmt::print(stderr, "sluice_lua_bench: {}: {}\n", item.name, result.error().message);
            return 1;
        }
        results.push_back(std::move(*result));
    }
    fmt::print("{}\n", cli::format_bench_table(results));
    fmt::print("Lua on the XDP hook (ratios of ns per packet; Mpps = 1000 / ns, one core):\n");
    fmt::print("{:<12} {:>5}  {:>14} {:>14} {:>16} {:>16}  {:>8} {:>8} {:>8}\n", "program", "size", "lua5.4/jit",
               "luajit/jit", "lua5.4/interp", "luajit/kernel", "Mpps lua", "luajit", "kernel");
    bool agreed = true;
    for (const cli::program_result& result : results) {
        agreed = agreed && result.agreed();
        for (const cli::size_result& size : result.sizes) {
            const auto jit = bench::ns_of(size, "JIT");
            const auto interpreter = bench::ns_of(size, "interpreter");
            const auto kernel = bench::ns_of(size, "kernel");
            const auto lua54 = bench::ns_of(size, "lua5.4");
            const auto luajit = bench::ns_of(size, "luajit");
            fmt::print("{:<12} {:>5}  {:>14} {:>14} {:>16} {:>16}  {:>8} {:>8} {:>8}\n", result.program, size.size,
                       bench::ratio(lua54, jit), bench::ratio(luajit, jit), bench::ratio(lua54, interpreter),
                       bench::ratio(luajit, kernel), bench::mpps(lua54), bench::mpps(luajit), bench::mpps(kernel));
        }
    }
    if (!json_path.empty()) {
        std::ofstream(json_path) << cli::bench_json(results).dump(2) << "\n";
    }
    return agreed ? 0 : 1;
}
