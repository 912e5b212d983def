// BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY (the kernel's kernel/bpf/arraymap.c).
//
// Every element exists from creation, zeroed, and is updated in place: a lockless reader sees each aligned 8-byte
// word old or new. Per-CPU values are laid out one cpu after another, each cpu's block on its own cache lines, so the
// JIT can inline a lookup as base + cpu * cpu_stride + index * value_stride.
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

class array final : public array_map {
public:
    array(const map_definition& definition, unsigned cpus)
        : array_map(definition, cpus), _stride(round_up8(definition.value_size)),
          _cpu_stride(definition.type == map_type::percpu_array
                          ? (std::size_t{definition.max_entries} * _stride + 63) & ~std::size_t{63}
                          : 0),
          _words(((_cpu_stride != 0 ? _cpu_stride * cpus : std::size_t{definition.max_entries} * _stride)) / 8) {}

    std::byte* values_base() override { return reinterpret_cast<std::byte*>(_words.data()); }
    std::size_t value_stride() const override { return _stride; }
    std::size_t cpu_stride() const override { return _cpu_stride; }

    void* lookup(const void* key, unsigned cpu) override {
        const std::uint32_t index = index_of(key);
        if (index >= max_entries()) {
            return nullptr;
        }
        return slot(index, cpu);
    }

    long update(const void* key, const void* value, std::uint64_t flags, unsigned cpu) override {
        if ((flags & ~update_flag::lock) > update_flag::exist) {
            return -EINVAL;
        }
        const std::uint32_t index = index_of(key);
        if (index >= max_entries()) {
            return -E2BIG; // every element is preallocated: there is nothing to insert
        }
        if (flags & update_flag::noexist) {
            return -EEXIST; // every element already exists
        }
        if (flags & update_flag::lock) {
            return -EINVAL;
        }
        copy_value(slot(index, cpu), value, value_size());
        return 0;
    }

    long remove(const void*, unsigned) override { return -EINVAL; }

protected:
    long sys_lookup(const void* key, void* value) override {
        const std::uint32_t index = index_of(key);
        if (index >= max_entries()) {
            return -ENOENT;
        }
        if (_cpu_stride == 0) {
            read_value(value, slot(index, 0), value_size());
            return 0;
        }
        auto* out = static_cast<std::byte*>(value);
        for (unsigned cpu = 0; cpu < cpus(); ++cpu, out += _stride) { // copy_map_value_long: rounded slots
            read_value(out, slot(index, cpu), _stride);
        }
        return 0;
    }

    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        if (_cpu_stride == 0) {
            return update(key, value, flags, 0);
        }
        // bpf_percpu_array_update: every cpu's value from the caller's array.
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        const std::uint32_t index = index_of(key);
        if (index >= max_entries()) {
            return -E2BIG;
        }
        if (flags == update_flag::noexist) {
            return -EEXIST;
        }
        const auto* in = static_cast<const std::byte*>(value);
        for (unsigned cpu = 0; cpu < cpus(); ++cpu, in += _stride) {
            copy_value(slot(index, cpu), in, _stride);
        }
        return 0;
    }

    long sys_delete(const void*) override { return -EINVAL; }

    long sys_get_next_key(const void* key, void* next_key) override {
        return array_get_next_key(key, next_key, max_entries());
    }

private:
    static std::uint32_t index_of(const void* key) { return array_index(key); }

    std::byte* slot(std::uint32_t index, unsigned cpu) {
        return values_base() + cpu * _cpu_stride + index * _stride;
    }

    std::size_t _stride;
    std::size_t _cpu_stride;
    std::vector<std::uint64_t> _words; ///< zeroed, 8-byte aligned
};

} // namespace

std::optional<definition_problem> check_array(const map_definition& definition, unsigned) {
    const bool percpu = definition.type == map_type::percpu_array;
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (definition.key_size != 4) {
        return problem(EINVAL, "key_size", "must be 4 (a u32 index)");
    }
    if (definition.value_size == 0) {
        return problem(EINVAL, "value_size", "must be at least 1");
    }
    const std::uint32_t allowed = map_flag::numa_node | map_flag::mmapable | map_flag::access_mask |
                                  map_flag::preserve_elems | map_flag::inner_map;
    if (auto found = check_flags_allowed(definition.map_flags, allowed)) {
        return found;
    }
    if (percpu && (definition.map_flags & map_flag::numa_node)) {
        return problem(EINVAL, "map_flags", "BPF_F_NUMA_NODE is not allowed for per-CPU arrays");
    }
    if (definition.type != map_type::array && (definition.map_flags & (map_flag::mmapable | map_flag::inner_map))) {
        return problem(EINVAL, "map_flags", "BPF_F_MMAPABLE and BPF_F_INNER_MAP are for BPF_MAP_TYPE_ARRAY only");
    }
    if (definition.map_flags & map_flag::preserve_elems) {
        return problem(EINVAL, "map_flags", "BPF_F_PRESERVE_ELEMS is for perf event arrays only");
    }
    if (definition.value_size > INT32_MAX) {
        return problem(E2BIG, "value_size", "larger than INT_MAX");
    }
    if (percpu && round_up8(definition.value_size) > pcpu_min_unit_size) {
        return problem(E2BIG, "value_size", "a per-CPU value is at most 32768 bytes (PCPU_MIN_UNIT_SIZE)");
    }
    return std::nullopt;
}

std::unique_ptr<map> make_array(const map_definition& definition, unsigned cpus) {
    return std::make_unique<array>(definition, cpus);
}

} // namespace sluice::ebpf::maps
