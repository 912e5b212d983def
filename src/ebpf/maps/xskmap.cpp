// BPF_MAP_TYPE_XSKMAP (the kernel's net/xdp/xskmap.c): bpf_redirect_map() to an AF_XDP socket, which in sluice is an
// in-process xdp::xsk_socket (include/sluice/xdp/xsk_socket.hpp). The control plane writes a socket id where the
// kernel takes a socket fd; the resolver installed by the data path turns it into the socket.
//
// Kernel behaviour copied (checked against the kernel by tests/ebpf/maps/redirect_maps_test.cpp):
// - creation: key 4, value 4, max_entries > 0, flags only NUMA_NODE, RDONLY, WRONLY (-EINVAL).
// - update: flags > BPF_EXIST -EINVAL, key out of range -E2BIG, an unknown socket -EBADF; the same socket again 0;
//   BPF_NOEXIST on a taken slot -EEXIST, BPF_EXIST on an empty one -ENOENT.
// - the control plane cannot read entries (-EOPNOTSUPP); delete: out of range -EINVAL, else 0. A program's lookup
//   sees struct bpf_xdp_sock { __u32 queue_id; }.
#include <vector>

#include "ebpf/maps/map_internal.hpp"

namespace sluice::ebpf::maps {
namespace {

class xskmap final : public redirect_map {
public:
    xskmap(const map_definition& definition, unsigned cpus)
        : redirect_map(definition, cpus), _entries(definition.max_entries) {}

    void set_resolvers(resolvers with) override {
        std::lock_guard guard(_lock);
        _with = std::move(with);
    }

    void for_each_entry(void (*visit)(std::uint32_t, void*, void*), void* opaque) override {
        for (std::uint32_t index = 0; index < _entries.size(); ++index) {
            if (__atomic_load_n(&_entries[index].socket, __ATOMIC_ACQUIRE) != nullptr) {
                visit(index, &_entries[index], opaque);
            }
        }
    }

    // __xsk_map_lookup_elem
    void* lookup(const void* key, unsigned) override {
        const std::uint32_t index = array_index(key);
        if (index >= _entries.size() || __atomic_load_n(&_entries[index].socket, __ATOMIC_ACQUIRE) == nullptr) {
            return nullptr;
        }
        return &_entries[index];
    }
    long update(const void*, const void*, std::uint64_t, unsigned) override { return -EINVAL; }
    long remove(const void*, unsigned) override { return -EINVAL; }

protected:
    long sys_lookup(const void*, void*) override { return -EOPNOTSUPP; } // xsk_map_lookup_elem_sys

    // xsk_map_update_elem
    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        const std::uint32_t index = array_index(key);
        if (flags > update_flag::exist) {
            return -EINVAL;
        }
        if (index >= _entries.size()) {
            return -E2BIG;
        }
        std::uint32_t id;
        std::memcpy(&id, value, 4);
        std::uint32_t queue_id = 0;
        void* socket = nullptr;
        {
            std::lock_guard guard(_lock);
            socket = _with.socket ? _with.socket(id, queue_id) : nullptr;
        }
        if (socket == nullptr) {
            return -EBADF;
        }
        xsk_entry& slot = _entries[index];
        void* const old = __atomic_load_n(&slot.socket, __ATOMIC_ACQUIRE);
        if (old == socket) {
            return 0;
        }
        if (old != nullptr && flags == update_flag::noexist) {
            return -EEXIST;
        }
        if (old == nullptr && flags == update_flag::exist) {
            return -ENOENT;
        }
        __atomic_store_n(&slot.socket, nullptr, __ATOMIC_RELEASE);
        __atomic_store_n(&slot.queue_id, queue_id, __ATOMIC_RELAXED);
        __atomic_store_n(&slot.socket_id, id, __ATOMIC_RELAXED);
        __atomic_store_n(&slot.socket, socket, __ATOMIC_RELEASE);
        return 0;
    }

    long sys_delete(const void* key) override {
        const std::uint32_t index = array_index(key);
        if (index >= _entries.size()) {
            return -EINVAL;
        }
        __atomic_store_n(&_entries[index].socket, nullptr, __ATOMIC_RELEASE);
        return 0;
    }

    long sys_get_next_key(const void* key, void* next_key) override {
        return array_get_next_key(key, next_key, max_entries());
    }

private:
    std::vector<xsk_entry> _entries; ///< a slot is present while its socket is set
    std::mutex _lock;
    resolvers _with;
};

} // namespace

// xsk_map_alloc
std::optional<definition_problem> check_xskmap(const map_definition& definition, unsigned) {
    if (definition.max_entries == 0) {
        return problem(EINVAL, "max_entries", "must be at least 1");
    }
    if (definition.key_size != 4) {
        return problem(EINVAL, "key_size", "must be 4 (a u32 index)");
    }
    if (definition.value_size != 4) {
        return problem(EINVAL, "value_size", "must be 4 (a socket: an fd in the kernel, a socket id here)");
    }
    return check_flags_allowed(definition.map_flags, map_flag::numa_node | map_flag::rdonly | map_flag::wronly);
}

std::unique_ptr<map> make_xskmap(const map_definition& definition, unsigned cpus) {
    return std::make_unique<xskmap>(definition, cpus);
}

} // namespace sluice::ebpf::maps
