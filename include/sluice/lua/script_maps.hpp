// The maps the scripts of one run declare: one registry shared by every Lua state of the run, so that a map declared
// by name is one map whatever the number of workers (issue 8: one Lua state per worker, maps shared as an eBPF
// object's are).
//
// Contract:
// - declare() creates the map on the first declaration of a name; a later declaration of that name (another
//   worker's state, a reloaded version of the script) gets the same map when its definition is the same (type, key
//   and value sizes, max_entries, flags), and an error naming both definitions and who declared each otherwise.
// - Maps have cpus() cpus, one per worker (a worker's per-CPU slot is its execution state's cpu; hash and LRU maps
//   keep per-cpu state too); a state whose cpu is not below cpus() can neither declare nor use them.
// - Maps live as long as the registry, and the registry as long as its last owner: script_program holds it through
//   options::maps, the run that made it (the CLI, a test) keeps it for the control plane (--map, --dump-map).
// - Thread-safe: declarations come from whichever thread loads a script; lookups by name from the control plane.
//   The maps themselves have the data-path semantics of ebpf::map (shared by the workers as eBPF maps are).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ebpf/maps.hpp"
#include "sluice/expected.hpp"

namespace sluice::lua {

/// "hash, key 4 bytes, value 8 bytes, max_entries 16, flags 0x0": a definition in messages.
std::string describe(const ebpf::map_definition& definition);

class script_maps {
public:
    /// `cpus`: slots of per-CPU maps (the run's workers); at least 1.
    explicit script_maps(unsigned cpus = 1);
    script_maps(const script_maps&) = delete;
    script_maps& operator=(const script_maps&) = delete;

    unsigned cpus() const { return _cpus; }

    /// The map named definition.name (see the contract). `declared_by` names the declaring script in messages
    /// ("filter.lua on worker 1"); `cpu` is the declaring state's cpu.
    expected<ebpf::map*> declare(const ebpf::map_definition& definition, std::string_view declared_by,
                                 unsigned cpu = 0);
    /// The map declared under `name`, or nullptr.
    ebpf::map* find(std::string_view name) const;

    struct entry {
        std::string name;
        ebpf::map* map{};
        std::string declared_by; ///< the first declaration's script
    };
    /// Every map, in the order of their first declarations.
    std::vector<entry> list() const;

private:
    struct owned {
        std::unique_ptr<ebpf::map> map;
        std::string declared_by;
    };

    unsigned _cpus;
    mutable std::mutex _lock;
    std::vector<owned> _maps; ///< unique_ptr: a map's address never changes, Lua handles point at it
};

} // namespace sluice::lua
