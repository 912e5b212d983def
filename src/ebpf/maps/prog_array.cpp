// BPF_MAP_TYPE_PROG_ARRAY (the kernel's fd_array in kernel/bpf/arraymap.c): slots of program handles for
// bpf_tail_call.
//
// The kernel's control plane writes a program fd and reads back a program id; sluice has no fds, so the 4-byte value
// is a program id that the loader's resolver turns into a handle, and lookup_elem() gives the id back through the
// loader's namer. Slots are atomic pointers: the tail call reads one with an acquire load and no lock; the control
// plane swaps them. Programs may neither look up nor update a program array (the verifier refuses; here lookup
// returns nullptr and update -EINVAL).
#include <mutex>
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

class prog_array final : public prog_array_map {
public:
    prog_array(const map_definition& definition, unsigned cpus)
        : prog_array_map(definition, cpus), _slots(definition.max_entries) {}

    void set_resolver(resolver to_program, namer to_id) override {
        std::lock_guard guard(_resolver_lock);
        _to_program = std::move(to_program);
        _to_id = std::move(to_id);
    }

    long set(std::uint32_t index, const void* program) override {
        if (index >= _slots.size()) {
            return -E2BIG;
        }
        _slots[index].store(program, std::memory_order_release);
        return 0;
    }

    const void* program(std::uint32_t index) const override {
        return index < _slots.size() ? _slots[index].load(std::memory_order_acquire) : nullptr;
    }

    void* lookup(const void*, unsigned) override { return nullptr; }
    long update(const void*, const void*, std::uint64_t, unsigned) override { return -EINVAL; }
    long remove(const void* key, unsigned) override { return clear(index_of(key)); }

protected:
    // bpf_fd_array_map_lookup_elem: the program's id.
    long sys_lookup(const void* key, void* value) override {
        const std::uint32_t index = index_of(key);
        const void* handle = program(index);
        if (handle == nullptr) {
            return -ENOENT;
        }
        std::lock_guard guard(_resolver_lock);
        const std::uint32_t id = _to_id ? _to_id(handle) : 0;
        std::memcpy(value, &id, 4);
        return 0;
    }

    // bpf_fd_array_map_update_elem: only BPF_ANY; an id nobody knows is a bad fd.
    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        if (flags != update_flag::any) {
            return -EINVAL;
        }
        const std::uint32_t index = index_of(key);
        if (index >= _slots.size()) {
            return -E2BIG;
        }
        std::uint32_t id;
        std::memcpy(&id, value, 4);
        const void* handle = nullptr;
        {
            std::lock_guard guard(_resolver_lock);
            handle = _to_program ? _to_program(id) : nullptr;
        }
        if (handle == nullptr) {
            return -EBADF;
        }
        return set(index, handle);
    }

    long sys_delete(const void* key) override { return clear(index_of(key)); }

    long sys_get_next_key(const void* key, void* next_key) override {
        return array_get_next_key(key, next_key, max_entries());
    }

private:
    static std::uint32_t index_of(const void* key) { return array_index(key); }

    // fd_array_map_delete_elem
    long clear(std::uint32_t index) {
        if (index >= _slots.size()) {
            return -E2BIG;
        }
        return _slots[index].exchange(nullptr, std::memory_order_acq_rel) != nullptr ? 0 : -ENOENT;
    }

    std::vector<std::atomic<const void*>> _slots;
    std::mutex _resolver_lock;
    resolver _to_program;
    namer _to_id;
};

} // namespace

// fd_array_map_alloc_check, then array_map_alloc_check.
std::optional<definition_problem> check_prog_array(const map_definition& definition, unsigned cpus) {
    if (definition.value_size != 4) {
        return problem(EINVAL, "value_size", "must be 4 (a program fd in the kernel, a program id here)");
    }
    if (definition.map_flags & (map_flag::rdonly_prog | map_flag::wronly_prog)) {
        return problem(EINVAL, "map_flags", "BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG are not for program arrays");
    }
    return check_array(definition, cpus);
}

std::unique_ptr<map> make_prog_array(const map_definition& definition, unsigned cpus) {
    return std::make_unique<prog_array>(definition, cpus);
}

} // namespace sluice::ebpf::maps
