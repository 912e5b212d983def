// The XDP buffer helpers of net/core/filter.c: bpf_xdp_adjust_head/meta/tail, bpf_xdp_load_bytes/store_bytes,
// bpf_xdp_get_buff_len, bpf_csum_diff, bpf_redirect, bpf_redirect_map, bpf_check_mtu.
//
// The context is sluice's xdp_context, laid out as the kernel's xdp_buff (xdp_context.hpp, xdp/frame.hpp): headroom
// from data_hard_start, sizeof(struct xdp_frame) reserved at its start, frame_size bytes in all of which the last
// 320 (skb_shared_info) can never hold packet bytes. Buffers are linear (no fragments yet).

#include <cerrno>
#include <cstring>

#include "ebpf/helpers/helpers_internal.hpp"
#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::helpers {
namespace {

/// SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64 (xdp/frame.hpp's frame_tailroom_reserve; ebpf/ may not
/// include xdp/).
constexpr std::uint32_t shared_info_reserve = 320;
constexpr std::uint32_t page_size = 4096;

xdp_context& packet(std::uint64_t ctx) {
    return *pointer<xdp_context>(ctx);
}

// include/net/xdp.h xdp_data_hard_end(): where data_end may reach at most.
std::uint8_t* data_hard_end(const xdp_context& xdp) {
    return xdp.data_hard_start + xdp.frame_size - shared_info_reserve;
}

// bpf_xdp_adjust_head: data moves by `offset` within [hard_start + sizeof(xdp_frame) + metalen, data_end - ETH_HLEN];
// the metadata moves with it (memmove), so a program keeps its metadata across a head adjustment.
std::uint64_t xdp_adjust_head(std::uint64_t ctx, std::uint64_t offset_argument, std::uint64_t, std::uint64_t,
                              std::uint64_t, call_context&) {
    xdp_context& xdp = packet(ctx);
    const auto offset = static_cast<std::int32_t>(offset_argument); // int offset
    const std::ptrdiff_t metalen = xdp.data - xdp.data_meta;
    const std::uint8_t* data_start = xdp.data_hard_start + xdp_frame_header_size + metalen;
    std::uint8_t* data = xdp.data + offset;
    if (data < data_start || data > xdp.data_end - ethernet_header_length) {
        return error_code(-EINVAL);
    }
    if (metalen != 0) {
        std::memmove(xdp.data_meta + offset, xdp.data_meta, static_cast<std::size_t>(metalen));
    }
    xdp.data_meta += offset;
    xdp.data = data;
    return 0;
}

// bpf_xdp_adjust_meta: data_meta moves within [hard_start + sizeof(xdp_frame), data]; the metadata length must be a
// multiple of 4 and at most 252 (xdp_metalen_invalid: skb_shared_info.meta_len is a u8) else -EACCES.
std::uint64_t xdp_adjust_meta(std::uint64_t ctx, std::uint64_t offset_argument, std::uint64_t, std::uint64_t,
                              std::uint64_t, call_context&) {
    xdp_context& xdp = packet(ctx);
    const auto offset = static_cast<std::int32_t>(offset_argument);
    std::uint8_t* meta = xdp.data_meta + offset;
    const std::ptrdiff_t metalen = xdp.data - meta;
    if (meta < xdp.data_hard_start + xdp_frame_header_size || meta > xdp.data) {
        return error_code(-EINVAL);
    }
    if (metalen % 4 != 0 || metalen > xdp_metadata_max) {
        return error_code(-EACCES);
    }
    xdp.data_meta = meta;
    return 0;
}

// bpf_xdp_adjust_tail (linear buffer): data_end moves within [data + ETH_HLEN, xdp_data_hard_end]; frames larger than
// a page are refused ("Too BIG xdp->frame_sz"); grown bytes are zeroed.
std::uint64_t xdp_adjust_tail(std::uint64_t ctx, std::uint64_t offset_argument, std::uint64_t, std::uint64_t,
                              std::uint64_t, call_context&) {
    xdp_context& xdp = packet(ctx);
    const auto offset = static_cast<std::int32_t>(offset_argument);
    std::uint8_t* data_end = xdp.data_end + offset;
    if (data_end > data_hard_end(xdp)) {
        return error_code(-EINVAL);
    }
    if (xdp.frame_size > page_size) {
        return error_code(-EINVAL);
    }
    if (data_end < xdp.data + ethernet_header_length) {
        return error_code(-EINVAL);
    }
    if (offset > 0) {
        std::memset(xdp.data_end, 0, static_cast<std::size_t>(offset));
    }
    xdp.data_end = data_end;
    return 0;
}

// bpf_xdp_pointer: offset or length over 0xffff -> -EFAULT; beyond the packet -> -EINVAL.
long xdp_bytes(const xdp_context& xdp, std::uint64_t offset_argument, std::uint64_t length_argument) {
    const auto offset = static_cast<std::uint32_t>(offset_argument);
    const auto length = static_cast<std::uint32_t>(length_argument);
    if (offset > 0xffff || length > 0xffff) {
        return -EFAULT;
    }
    if (offset + length > static_cast<std::uint32_t>(xdp.data_end - xdp.data)) {
        return -EINVAL;
    }
    return 0;
}

std::uint64_t xdp_load_bytes(std::uint64_t ctx, std::uint64_t offset, std::uint64_t buffer, std::uint64_t length,
                             std::uint64_t, call_context&) {
    const xdp_context& xdp = packet(ctx);
    if (const long result = xdp_bytes(xdp, offset, length); result != 0) {
        return error_code(result);
    }
    std::memcpy(pointer<void>(buffer), xdp.data + static_cast<std::uint32_t>(offset),
                static_cast<std::uint32_t>(length));
    return 0;
}

std::uint64_t xdp_store_bytes(std::uint64_t ctx, std::uint64_t offset, std::uint64_t buffer, std::uint64_t length,
                              std::uint64_t, call_context&) {
    xdp_context& xdp = packet(ctx);
    if (const long result = xdp_bytes(xdp, offset, length); result != 0) {
        return error_code(result);
    }
    std::memcpy(xdp.data + static_cast<std::uint32_t>(offset), pointer<const void>(buffer),
                static_cast<std::uint32_t>(length));
    return 0;
}

// bpf_xdp_get_buff_len: linear length (no fragments yet).
std::uint64_t xdp_get_buff_len(std::uint64_t ctx, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                               call_context&) {
    const xdp_context& xdp = packet(ctx);
    return static_cast<std::uint64_t>(xdp.data_end - xdp.data);
}

/// csum_partial() as x86-64 computes it (arch/x86/lib/csum-partial_64.c): the seed plus the buffer's 32-bit words (then
/// a 16-bit and an 8-bit tail) as the host loads them, folded to 32 bits with end-around carry.
std::uint32_t checksum_partial(const std::uint8_t* bytes, std::uint32_t size, std::uint32_t seed) {
    std::uint64_t sum = seed;
    std::uint32_t i = 0;
    for (; i + 4 <= size; i += 4) {
        std::uint32_t word = 0;
        std::memcpy(&word, bytes + i, 4);
        sum += word;
    }
    if ((size & 2U) != 0) {
        std::uint16_t half = 0;
        std::memcpy(&half, bytes + i, 2);
        sum += half;
        i += 2;
    }
    if ((size & 1U) != 0) {
        sum += bytes[i];
    }
    sum = (sum & 0xffffffffULL) + (sum >> 32);
    sum = (sum & 0xffffffffULL) + (sum >> 32);
    return static_cast<std::uint32_t>(sum);
}

/// include/net/checksum.h csum_sub (csum_add of the complement, with end-around carry).
std::uint32_t checksum_subtract(std::uint32_t sum, std::uint32_t subtrahend) {
    const std::uint32_t addend = ~subtrahend;
    const std::uint32_t result = sum + addend;
    return result + (result < addend ? 1U : 0U);
}

// bpf_csum_diff as current kernels have it (Linux 6.13, "bpf: Fix bpf_csum_diff's return value", and the removal of
// the per-cpu scratchpad): csum_sub(csum_partial(to, seed), csum_partial(from, 0)), or the one-sided forms, folded
// to 16 bits by csum_from32to16 so that every architecture returns the same value. The scratchpad's limits (sizes
// multiples of 4, 512 bytes in all, else -EINVAL) went with it; the verifier bounds both buffers. Older kernels
// returned x86's unfolded 32-bit sum; the folded value is what the kernel these tests run on (6.18) gives.
std::uint64_t csum_diff(std::uint64_t from, std::uint64_t from_size_argument, std::uint64_t to,
                        std::uint64_t to_size_argument, std::uint64_t seed, call_context&) {
    const auto from_size = static_cast<std::uint32_t>(from_size_argument);
    const auto to_size = static_cast<std::uint32_t>(to_size_argument);
    const auto* from_bytes = pointer<const std::uint8_t>(from);
    const auto* to_bytes = pointer<const std::uint8_t>(to);
    auto sum = static_cast<std::uint32_t>(seed); // __wsum seed
    if (from_size != 0 && to_size != 0) {
        sum = checksum_subtract(checksum_partial(to_bytes, to_size, sum), checksum_partial(from_bytes, from_size, 0));
    } else if (to_size != 0) {
        sum = checksum_partial(to_bytes, to_size, sum);
    } else if (from_size != 0) {
        sum = ~checksum_partial(from_bytes, from_size, ~sum);
    }
    // csum_from32to16: add the halves with end-around carry.
    sum += (sum >> 16) | (sum << 16);
    return sum >> 16;
}

constexpr std::uint64_t xdp_aborted = 0;
constexpr std::uint64_t xdp_redirect = 4;

// bpf_xdp_redirect: flags must be 0 (else XDP_ABORTED); records the ifindex.
std::uint64_t redirect(std::uint64_t ifindex, std::uint64_t flags, std::uint64_t, std::uint64_t, std::uint64_t,
                       call_context& context) {
    if (flags != 0) {
        return xdp_aborted;
    }
    redirect_decision& decision = state_of(context).redirect;
    decision = {};
    decision.target = redirect_decision::kind::interface;
    decision.ifindex = static_cast<std::uint32_t>(ifindex);
    return xdp_redirect;
}

// __bpf_xdp_redirect_map: flags outside the action bits (XDP_ABORTED..XDP_TX, the fallback on a missing key) and the
// map's own flags -> XDP_ABORTED; a missing key without BPF_F_BROADCAST clears the decision and returns the low bits
// of flags; otherwise the target is recorded. Broadcast flags are devmap's only (dev_map_redirect).
std::uint64_t redirect_map(std::uint64_t map_address, std::uint64_t key, std::uint64_t flags, std::uint64_t,
                           std::uint64_t, call_context& context) {
    constexpr std::uint64_t action_mask = 3; // XDP_ABORTED | XDP_DROP | XDP_PASS | XDP_TX
    auto& target = *pointer<map>(map_address);
    execution_state& state = state_of(context);
    const map_type kind = target.type();
    const std::uint64_t flag_mask =
        kind == map_type::devmap || kind == map_type::devmap_hash ? redirect_broadcast | redirect_exclude_ingress : 0;
    if ((flags & ~(action_mask | flag_mask)) != 0) {
        return xdp_aborted;
    }
    const auto index = static_cast<std::uint32_t>(key); // the map ops take a u32 key
    void* value = target.lookup(&index, state.cpu);
    redirect_decision& decision = state.redirect;
    if (value == nullptr && (flags & redirect_broadcast) == 0) {
        decision = {};
        return flags & action_mask;
    }
    decision.target = redirect_decision::kind::map;
    decision.ifindex = 0;
    decision.target_map = &target;
    decision.key = index;
    decision.value = value;
    decision.flags = (flags & redirect_broadcast) != 0 ? flags : 0;
    return xdp_redirect;
}

// bpf_xdp_check_mtu: flags must be 0; ifindex 0 is the ingress device; the packet (or *mtu_len, an L3 length, when
// non-zero) plus len_diff must fit MTU + hard header length, else BPF_MTU_CHK_RET_FRAG_NEEDED; *mtu_len becomes the
// device's MTU either way.
std::uint64_t check_mtu(std::uint64_t ctx, std::uint64_t ifindex_argument, std::uint64_t mtu_length,
                        std::uint64_t length_difference, std::uint64_t flags, call_context& context) {
    constexpr std::int64_t frag_needed = 1; // BPF_MTU_CHK_RET_FRAG_NEEDED
    if (flags != 0) {
        return error_code(-EINVAL);
    }
    const xdp_context& xdp = packet(ctx);
    const auto ifindex = static_cast<std::uint32_t>(ifindex_argument);
    const std::uint32_t mtu = state_of(context).mtu_of(ifindex == 0 ? xdp.ingress_ifindex : ifindex);
    if (mtu == 0) {
        return error_code(-ENODEV);
    }
    auto* length = pointer<std::uint32_t>(mtu_length);
    const std::int64_t device_length = std::int64_t{mtu} + ethernet_header_length;
    std::int64_t packet_length = xdp.data_end - xdp.data;
    if (*length != 0) {
        packet_length = std::int64_t{*length} + ethernet_header_length;
    }
    packet_length += static_cast<std::int32_t>(length_difference); // s32 len_diff
    *length = mtu;
    return packet_length > device_length ? frag_needed : 0;
}

} // namespace

void register_xdp_helpers(helper_table& table) {
    add(table, BPF_FUNC_xdp_adjust_head, xdp_adjust_head);
    add(table, BPF_FUNC_xdp_adjust_meta, xdp_adjust_meta);
    add(table, BPF_FUNC_xdp_adjust_tail, xdp_adjust_tail);
    add(table, BPF_FUNC_xdp_load_bytes, xdp_load_bytes);
    add(table, BPF_FUNC_xdp_store_bytes, xdp_store_bytes);
    add(table, BPF_FUNC_xdp_get_buff_len, xdp_get_buff_len);
    add(table, BPF_FUNC_csum_diff, csum_diff);
    add(table, BPF_FUNC_redirect, redirect);
    add(table, BPF_FUNC_redirect_map, redirect_map);
    add(table, BPF_FUNC_check_mtu, check_mtu);
}

} // namespace sluice::ebpf::helpers
