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
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

constexpr std::uint32_t nr_cpus = 8192;         ///< CONFIG_NR_CPUS of x86-64 distribution kernels
constexpr std::uint32_t max_queue_size = 16384; ///< cpu_map_update_elem's "sanity limit on qsize"

struct cpumap_value {
    std::uint32_t qsize{};
    std::uint32_t program{};
};

// qsize last when setting and first when clearing: a reader that sees a non-zero qsize sees a whole entry.
void publish(cpumap_entry& slot, const cpumap_entry& entry) {
    __atomic_store_n(&slot.qsize, 0U, __ATOMIC_RELEASE);
    __atomic_store_n(&slot.program, entry.program, __ATOMIC_RELAXED);
    __atomic_store_n(&slot.program_id, entry.program_id, __ATOMIC_RELAXED);
    __atomic_store_n(&slot.qsize, entry.qsize, __ATOMIC_RELEASE);
}

class cpumap final : public redirect_map {
public:
    cpumap(const map_definition& definition, unsigned cpus)
        : redirect_map(definition, cpus), _entries(definition.max_entries) {}

    void set_resolvers(resolvers with) override {
        std::lock_guard guard(_lock);
        _with = std::move(with);
    }

    void for_each_entry(void (*visit)(std::uint32_t, void*, void*), void* opaque) override {
        for (std::uint32_t index = 0; index < _entries.size(); ++index) {
            if (__atomic_load_n(&_entries[index].qsize, __ATOMIC_ACQUIRE) != 0) {
                visit(index, &_entries[index], opaque);
            }
        }
    }

    // __cpu_map_lookup_elem
    void* lookup(const void* key, unsigned) override {
        const std::uint32_t index = array_index(key);
        if (index >= _entries.size() || __atomic_load_n(&_entries[index].qsize, __ATOMIC_ACQUIRE) == 0) {
            return nullptr;
        }
        return &_entries[index];
    }
    long update(const void*, const void*, std::uint64_t, unsigned) override { return -EINVAL; }
    long remove(const void*, unsigned) override { return -EINVAL; }

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
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        if (index >= _entries.size()) {
            return -E2BIG;
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
            publish(_entries[index], cpumap_entry{});
            return 0;
        }
        cpumap_entry entry{parsed.qsize, 0, nullptr};
        if (value_size() == sizeof(cpumap_value) && names_program(parsed.program)) {
            std::lock_guard guard(_lock);
            entry.program = _with.program ? _with.program(parsed.program) : nullptr;
            if (entry.program == nullptr) {
                return -ENOMEM; // __cpu_map_entry_alloc fails as a whole
            }
            entry.program_id = parsed.program;
        }
        publish(_entries[index], entry);
        return 0;
    }

    long sys_delete(const void* key) override {
        const std::uint32_t index = array_index(key);
        if (index >= _entries.size()) {
            return -EINVAL;
        }
        publish(_entries[index], cpumap_entry{});
        return 0;
    }

    long sys_get_next_key(const void* key, void* next_key) override {
        return array_get_next_key(key, next_key, max_entries());
    }

private:
    std::vector<cpumap_entry> _entries; ///< a slot is present while its qsize is not 0
    std::mutex _lock;
    resolvers _with;
};

} // namespace

// cpu_map_alloc
std::optional<definition_problem> check_cpumap(const map_definition& definition, unsigned) {
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (definition.key_size != 4) {
        return problem(EINVAL, "key_size", "must be 4 (a u32 cpu index)");
    }
    if (definition.value_size != 4 && definition.value_size != 8) {
        return problem(EINVAL, "value_size", "must be 4 (struct bpf_cpumap_val's qsize) or 8 (qsize and a program id)");
    }
    if (auto found = check_flags_allowed(definition.map_flags, map_flag::numa_node)) {
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
