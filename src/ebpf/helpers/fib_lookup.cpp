// bpf_fib_lookup for XDP (net/core/filter.c bpf_xdp_fib_lookup, bpf_ipv4_fib_lookup, bpf_ipv6_fib_lookup) over the
// worker's route_table instead of the kernel's FIB and neighbour tables.
//
// Mapping, and why it is the honest one: the kernel turns a FIB miss into BPF_FIB_LKUP_RET_NOT_FWDED, so an empty or
// absent table gives NOT_FWDED for every destination, which is exactly what a host with no route says; blackhole,
// unreachable and prohibit routes give their codes; a route without a neighbour entry gives NO_NEIGH unless
// BPF_FIB_LOOKUP_SKIP_NEIGH. What sluice cannot know is taken as the common case: forwarding enabled on every
// interface, no lightweight tunnels, one table (TBID and MARK select nothing), the source address (BPF_FIB_LOOKUP_SRC)
// unchanged.

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "ebpf/helpers/helpers_internal.hpp"

namespace sluice::ebpf::helpers {
namespace {

static_assert(sizeof(bpf_fib_lookup) == 64, "struct bpf_fib_lookup is 64 bytes");

// BPF_FIB_LOOKUP_MARK (Linux 6.10) is newer than the headers sluice may be built with.
constexpr std::uint64_t lookup_mark = 1U << 5;

std::uint64_t fib_lookup(std::uint64_t, std::uint64_t params_address, std::uint64_t params_length, std::uint64_t flags,
                         std::uint64_t, call_context& context) {
    constexpr std::uint64_t known_flags = BPF_FIB_LOOKUP_DIRECT | BPF_FIB_LOOKUP_OUTPUT | BPF_FIB_LOOKUP_SKIP_NEIGH |
                                          BPF_FIB_LOOKUP_TBID | BPF_FIB_LOOKUP_SRC | lookup_mark;
    if (static_cast<std::int32_t>(params_length) < static_cast<std::int32_t>(sizeof(bpf_fib_lookup))) {
        return error_code(-EINVAL);
    }
    if ((flags & ~known_flags) != 0) {
        return error_code(-EINVAL);
    }
    auto& params = *pointer<bpf_fib_lookup>(params_address);
    const execution_state& state = state_of(context);
    std::uint8_t destination[16]{};
    if (params.family == AF_INET) {
        std::memcpy(destination, &params.ipv4_dst, 4);
    } else if (params.family == AF_INET6) {
        std::memcpy(destination, params.ipv6_dst, 16);
    } else {
        return error_code(-EAFNOSUPPORT);
    }
    // dev_get_by_index_rcu(params->ifindex): an interface sluice knows no MTU for does not exist (-ENODEV).
    if (state.mtu_of(params.ifindex) == 0) {
        return error_code(-ENODEV);
    }
    const route* found = state.routes != nullptr ? state.routes->lookup(params.family, destination) : nullptr;
    if (found == nullptr) {
        return fib_result::not_forwarded;
    }
    switch (found->type) {
    case route::kind::blackhole:
        return fib_result::blackhole;
    case route::kind::unreachable:
        return fib_result::unreachable;
    case route::kind::prohibit:
        return fib_result::prohibit;
    case route::kind::unicast:
        break;
    }
    const std::uint32_t mtu = found->mtu != 0 ? found->mtu : state.mtu_of(found->ifindex);
    // The MTU check: tot_len (L3 length) against the route's MTU; on failure mtu_result tells the MTU.
    if (params.tot_len > mtu) {
        params.mtu_result = static_cast<std::uint16_t>(mtu);
        return fib_result::fragmentation_needed;
    }
    if (found->has_gateway) {
        if (params.family == AF_INET) {
            std::memcpy(&params.ipv4_dst, found->gateway.data(), 4);
        } else {
            std::memcpy(params.ipv6_dst, found->gateway.data(), 16);
        }
    }
    params.rt_metric = found->metric;
    params.ifindex = found->ifindex;
    if ((flags & BPF_FIB_LOOKUP_SKIP_NEIGH) == 0) {
        if (!found->has_neighbour) {
            return fib_result::no_neighbour;
        }
        std::memcpy(params.dmac, found->destination_mac.data(), 6);
        std::memcpy(params.smac, found->source_mac.data(), 6);
    }
    // bpf_fib_set_fwd_params: no VLAN, mtu_result = the MTU.
    params.h_vlan_proto = 0;
    params.h_vlan_TCI = 0;
    params.mtu_result = static_cast<std::uint16_t>(mtu);
    return fib_result::success;
}

} // namespace

void register_fib_lookup(helper_table& table) {
    add(table, BPF_FUNC_fib_lookup, fib_lookup);
}

} // namespace sluice::ebpf::helpers
