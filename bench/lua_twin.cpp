// Lua twins for benchmarks (bench/lua_twin.hpp has the contract).
#include "lua_twin.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include <fmt/format.h>

namespace sluice::bench {

expected<lua::script_program> load_lua_twin(const cli::bench_object& reference, const std::string& script,
                                            lua::engine kind, ebpf::execution_state& state) {
    lua::options settings;
    settings.engine = kind;
    settings.log = [kind](std::string_view line) { fmt::print(stderr, "{}: {}\n", lua::to_string(kind), line); };
    for (const ebpf::rodata_variable& knob : reference.spec.rodata_variables()) {
        const std::vector<std::byte> bytes = reference.rodata(knob.name);
        std::uint64_t value = 0;
        std::memcpy(&value, bytes.data(), std::min<std::size_t>(bytes.size(), sizeof(value)));
        settings.config.emplace_back(knob.name, std::to_string(value));
    }
    auto program = lua::script_program::load_file(script, state, settings);
    if (!program) {
        return program.error();
    }
    for (std::size_t i = 0; i < reference.object.maps().size(); ++i) {
        const ebpf::map_spec& spec = reference.object.map_specs()[i];
        ebpf::map* twin = program->find_map(spec.name);
        if (spec.origin == ebpf::map_origin::global_data || twin == nullptr) {
            continue;
        }
        ebpf::map& source = *reference.object.maps()[i];
        if (twin->key_size() != source.key_size() || twin->value_size() != source.value_size()) {
            return error{fmt::format("{}: map {} differs from the eBPF object's", script, spec.name)};
        }
        long failed = 0;
        source.for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
            failed = twin->update_elem(key.data(), value.data(), 0);
            return failed == 0;
        });
        if (failed != 0) {
            return error{fmt::format("{}: copying map {}: error {}", script, spec.name, failed)};
        }
    }
    return program;
}

} // namespace sluice::bench
