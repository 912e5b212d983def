// The registry of the maps a run's scripts declare (contract in include/sluice/lua/script_maps.hpp).
#include "sluice/lua/script_maps.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::lua {
namespace {

bool same_definition(const ebpf::map_definition& left, const ebpf::map_definition& right) {
    return left.type == right.type && left.key_size == right.key_size && left.value_size == right.value_size &&
           left.max_entries == right.max_entries && left.map_flags == right.map_flags;
}

} // namespace

std::string describe(const ebpf::map_definition& definition) {
    return fmt::format("{}, key {} bytes, value {} bytes, max_entries {}, flags {:#x}",
                       ebpf::to_string(definition.type), definition.key_size, definition.value_size,
                       definition.max_entries, definition.map_flags);
}

script_maps::script_maps(unsigned cpus) : _cpus(std::max(1U, cpus)) {}

expected<ebpf::map*> script_maps::declare(const ebpf::map_definition& definition, std::string_view declared_by,
                                          unsigned cpu) {
    const std::lock_guard guard(_lock);
    for (const owned& known : _maps) {
        const ebpf::map_definition& existing = known.map->definition();
        if (existing.name != definition.name) {
            continue;
        }
        if (same_definition(existing, definition)) {
            return known.map.get(); // another worker's state, or a reloaded script: the same map
        }
        return error{fmt::format("{} declares it as ({}), but a map of that name exists with another definition: "
                                 "({}), declared by {}",
                                 declared_by, describe(definition), describe(existing), known.declared_by)};
    }
    if (cpu >= _cpus) {
        // Every kind keeps state per cpu (per-CPU slots, hash spares, LRU lists): the run must make the registry with
        // a cpu per worker.
        return error{fmt::format("{} runs as cpu {}, but the run's maps have {} cpu{}", declared_by, cpu, _cpus,
                                 _cpus == 1 ? "" : "s")};
    }
    auto created = ebpf::create_map(definition, _cpus);
    if (!created) {
        return created.error();
    }
    _maps.push_back({std::move(*created), std::string{declared_by}});
    return _maps.back().map.get();
}

ebpf::map* script_maps::find(std::string_view name) const {
    const std::lock_guard guard(_lock);
    for (const owned& known : _maps) {
        if (known.map->definition().name == name) {
            return known.map.get();
        }
    }
    return nullptr;
}

std::vector<script_maps::entry> script_maps::list() const {
    const std::lock_guard guard(_lock);
    std::vector<entry> out;
    out.reserve(_maps.size());
    for (const owned& known : _maps) {
        out.push_back({known.map->definition().name, known.map.get(), known.declared_by});
    }
    return out;
}

} // namespace sluice::lua
