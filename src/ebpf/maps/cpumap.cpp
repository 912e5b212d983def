// BPF_MAP_TYPE_CPUMAP (the kernel's kernel/bpf/cpumap.c): bpf_redirect_map() to another cpu, which in sluice is
// another worker (the map's "possible cpus" are the workers). The data path (xdp::engine) moves the frames through a
// single-producer single-consumer ring per pair of workers and runs the entry's `xdp/cpumap` program there.
//
// Kernel behaviour copied (checked against the kernel by tests/ebpf/maps/redirect_maps_test.cpp):
// - creation: key 4, value 4 (qsize) or 8 (qsize + program), max_entries > 0, flags only BPF_F_NUMA_NODE (-EINVAL);
//   max_entries > NR_CPUS -E2BIG (sluice takes 8192, a distribution kernel's CONFIG_NR_CPUS; kernels built with fewer
//   refuse smaller maps).
// - update: flags > BPF_EXIST -EINVAL, key out of range -E2BIG, BPF_NOEXIST -EEXIST, qsize > 16384 -EOVERFLOW, a key
//   that is not a possible cpu (a worker) -ENODEV, qsize 0 deletes; a program id that does not resolve fails the
//   entry's allocation: -ENOMEM, as the kernel reports it.
// - delete: out of range -EINVAL, else 0. Lookups (program and control plane) see {qsize, program id}.
#include "ebpf/maps/redirect_array.hpp"

namespace sluice::ebpf::maps {
namespace {

constexpr std::uint32_t nr_cpus = 8192;         ///< CONFIG_NR_CPUS of x86-64 distribution kernels
constexpr std::uint32_t max_queue_size = 16384; ///< cpu_map_update_elem's "sanity limit on qsize"

struct cpumap_value {
    std::uint32_t qsize{};
    std::uint32_t program{};
};

class cpumap final : public redirect_array<cpumap_entry, &cpumap_entry::qsize> {
public:
    using redirect_array::redirect_array;

    void set_resolvers(resolvers with) override { _resolvers.set(std::move(with)); }

protected:
    long sys_lookup(const void* key, void* value) override {
        const auto* entry = static_cast<const cpumap_entry*>(lookup(key, 0));
        if (entry == nullptr) {
            return -ENOENT;
        }
        const cpumap_value out{entry->qsize, entry->program_id};
        std::memcpy(value, &out, value_size());
        return 0;
    }

    // cpu_map_update_elem
    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        cpumap_value parsed;
        std::memcpy(&parsed, value, value_size());
        const std::uint32_t index = array_index(key);
        if (const long failed = check_update(index, flags); failed != 0) {
            return failed;
        }
        if (flags == update_flag::noexist) {
            return -EEXIST;
        }
        if (parsed.qsize > max_queue_size) {
            return -EOVERFLOW;
        }
        if (index >= cpus()) {
            return -ENODEV; // not a possible cpu: sluice has no worker with this index
        }
        if (parsed.qsize == 0) {
            publish(slot(index), cpumap_entry{});
            return 0;
        }
        cpumap_entry entry{parsed.qsize, 0, nullptr};
        if (value_size() == sizeof(cpumap_value) && names_program(parsed.program)) {
            entry.program = _resolvers.program(parsed.program);
            if (entry.program == nullptr) {
                return -ENOMEM; // __cpu_map_entry_alloc fails as a whole
            }
            entry.program_id = parsed.program;
        }
        publish(slot(index), entry);
        return 0;
    }

    void clear(cpumap_entry& target) override { publish(target, cpumap_entry{}); }

private:
    installed_resolvers _resolvers;
};

} // namespace

// cpu_map_alloc
std::optional<definition_problem> check_cpumap(const map_definition& definition, unsigned) {
    const redirect_shape shape{"must be 4 (a u32 cpu index)",
                               "must be 4 (struct bpf_cpumap_val's qsize) or 8 (qsize and a program id)", true,
                               map_flag::numa_node};
    if (auto found = check_redirect_definition(definition, shape)) {
        return found;
    }
    if (definition.max_entries > nr_cpus) {
        return problem(E2BIG, "max_entries", "more than NR_CPUS (8192) cpus");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_cpumap(const map_definition& definition, unsigned cpus) {
    return std::make_unique<cpumap>(definition, cpus);
}

} // namespace sluice::ebpf::maps
