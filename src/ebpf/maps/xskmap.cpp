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
#include "ebpf/maps/redirect_array.hpp"

namespace sluice::ebpf::maps {
namespace {

class xskmap final : public redirect_array<xsk_entry, &xsk_entry::socket> {
public:
    using redirect_array::redirect_array;

    void set_resolvers(resolvers with) override { _resolvers.set(std::move(with)); }

protected:
    long sys_lookup(const void*, void*) override { return -EOPNOTSUPP; } // xsk_map_lookup_elem_sys

    // xsk_map_update_elem
    long sys_update(const void* key, const void* value, std::uint64_t flags) override {
        const std::uint32_t index = array_index(key);
        if (const long failed = check_update(index, flags); failed != 0) {
            return failed;
        }
        std::uint32_t id;
        std::memcpy(&id, value, 4);
        std::uint32_t queue_id = 0;
        void* const socket = _resolvers.socket(id, queue_id);
        if (socket == nullptr) {
            return -EBADF;
        }
        xsk_entry& target = slot(index);
        void* const old = __atomic_load_n(&target.socket, __ATOMIC_ACQUIRE);
        if (old == socket) {
            return 0;
        }
        if (old != nullptr && flags == update_flag::noexist) {
            return -EEXIST;
        }
        if (old == nullptr && flags == update_flag::exist) {
            return -ENOENT;
        }
        __atomic_store_n(&target.socket, nullptr, __ATOMIC_RELEASE);
        __atomic_store_n(&target.queue_id, queue_id, __ATOMIC_RELAXED);
        __atomic_store_n(&target.socket_id, id, __ATOMIC_RELAXED);
        __atomic_store_n(&target.socket, socket, __ATOMIC_RELEASE);
        return 0;
    }

    void clear(xsk_entry& target) override { __atomic_store_n(&target.socket, nullptr, __ATOMIC_RELEASE); }

private:
    installed_resolvers _resolvers;
};

} // namespace

// xsk_map_alloc
std::optional<definition_problem> check_xskmap(const map_definition& definition, unsigned) {
    const redirect_shape shape{"must be 4 (a u32 index)", "must be 4 (a socket: an fd in the kernel, a socket id here)",
                               false, map_flag::numa_node | map_flag::rdonly | map_flag::wronly};
    return check_redirect_definition(definition, shape);
}

std::unique_ptr<map> make_xskmap(const map_definition& definition, unsigned cpus) {
    return std::make_unique<xskmap>(definition, cpus);
}

} // namespace sluice::ebpf::maps
