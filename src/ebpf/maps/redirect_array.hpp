// What the array-shaped redirect maps (devmap, cpumap, xskmap) share, as the kernel's dev_map, cpu_map and xsk_map
// share it: one slot per index, a u32 key, creation checks in the same order, the same first checks on update, a
// delete that only range-checks, and get_next_key walking indexes as an array does. Each map keeps its own value
// format, update rules and errnos beyond these.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {

/// How a redirect map's definition must look, for check_redirect_definition.
struct redirect_shape {
    std::string key_reason;        ///< why key_size must be 4
    std::string value_reason;      ///< why value_size must be what it is
    bool value_may_name_program{}; ///< value_size 4 or 8 (a program id after the first word); else 4 only
    std::uint32_t allowed_flags{}; ///< map_flags the kind accepts
};

/// The checks the redirect maps' alloc functions begin with, in the kernel's order: max_entries > 0, key_size 4,
/// value_size 4 (or 8), then the flags (all -EINVAL). A kind adds its own limits after these.
inline std::optional<definition_problem> check_redirect_definition(const map_definition& definition,
                                                                   const redirect_shape& shape) {
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (definition.key_size != 4) {
        return problem(EINVAL, "key_size", shape.key_reason);
    }
    if (definition.value_size != 4 && !(shape.value_may_name_program && definition.value_size == 8)) {
        return problem(EINVAL, "value_size", shape.value_reason);
    }
    return check_flags_allowed(definition.map_flags, shape.allowed_flags);
}

/// The resolvers the data path installs through set_resolvers(), used by control-plane updates under a lock (an
/// engine may install them while the control plane writes entries). Each answers nullptr without its resolver.
class installed_resolvers {
public:
    void set(redirect_map::resolvers with) {
        std::lock_guard guard(_lock);
        _with = std::move(with);
    }

    /// The handle of program `id` (nullptr: no such program where this map needs one).
    const void* program(std::uint32_t id) {
        std::lock_guard guard(_lock);
        return _with.program ? _with.program(id) : nullptr;
    }

    /// The socket with id `id` and the queue it is bound to (nullptr: no such socket).
    void* socket(std::uint32_t id, std::uint32_t& queue_id) {
        std::lock_guard guard(_lock);
        return _with.socket ? _with.socket(id, queue_id) : nullptr;
    }

private:
    std::mutex _lock;
    redirect_map::resolvers _with;
};

/// A redirect map with one `Entry` per index, present while the field `present` (a member pointer) is not zero.
/// Readers load `present` with acquire; a kind's update stores it last (release), so a reader that sees it set sees
/// the whole entry.
template <typename Entry, auto present> class redirect_array : public redirect_map {
public:
    redirect_array(const map_definition& definition, unsigned cpus)
        : redirect_map(definition, cpus), _entries(definition.max_entries) {}

    void for_each_entry(void (*visit)(std::uint32_t, void*, void*), void* opaque) final {
        for (std::uint32_t index = 0; index < _entries.size(); ++index) {
            if (is_present(_entries[index])) {
                visit(index, &_entries[index], opaque);
            }
        }
    }

    // __dev_map_lookup_elem, __cpu_map_lookup_elem, __xsk_map_lookup_elem
    void* lookup(const void* key, unsigned) final {
        const std::uint32_t index = array_index(key);
        if (index >= _entries.size() || !is_present(_entries[index])) {
            return nullptr;
        }
        return &_entries[index];
    }
    // Programs may not write a redirect map (the verifier refuses map_update_elem and map_delete_elem on it).
    long update(const void*, const void*, std::uint64_t, unsigned) final { return -EINVAL; }
    long remove(const void*, unsigned) final { return -EINVAL; }

protected:
    /// The checks every kind's update begins with: flags above BPF_EXIST -EINVAL, an index out of range -E2BIG.
    /// 0 when they pass.
    long check_update(std::uint32_t index, std::uint64_t flags) const {
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        if (index >= _entries.size()) {
            return -E2BIG;
        }
        return 0;
    }

    Entry& slot(std::uint32_t index) { return _entries[index]; }

    /// Writes an entry that carries a program (devmap, cpumap) field by field with atomic stores, `present` cleared
    /// first and set last, so that a lockless reader that sees it non-zero sees a whole entry (the old or the new
    /// program, never a torn pointer).
    static void publish(Entry& target, const Entry& entry) {
        __atomic_store_n(&(target.*present), 0U, __ATOMIC_RELEASE);
        __atomic_store_n(&target.program, entry.program, __ATOMIC_RELAXED);
        __atomic_store_n(&target.program_id, entry.program_id, __ATOMIC_RELAXED);
        __atomic_store_n(&(target.*present), entry.*present, __ATOMIC_RELEASE);
    }

    /// Empties a slot (`present` first, so that readers stop seeing it before the rest changes).
    virtual void clear(Entry& target) = 0;

    // dev_map_delete_elem, cpu_map_delete_elem, xsk_map_delete_elem: an empty slot is deleted all the same.
    long sys_delete(const void* key) final {
        const std::uint32_t index = array_index(key);
        if (index >= _entries.size()) {
            return -EINVAL;
        }
        clear(_entries[index]);
        return 0;
    }

    long sys_get_next_key(const void* key, void* next_key) final {
        return array_get_next_key(key, next_key, max_entries());
    }

private:
    static bool is_present(Entry& entry) {
        const auto value = __atomic_load_n(&(entry.*present), __ATOMIC_ACQUIRE);
        return value != decltype(value){};
    }

    std::vector<Entry> _entries;
};

} // namespace sluice::ebpf::maps
