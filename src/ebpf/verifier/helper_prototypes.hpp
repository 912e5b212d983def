// The helpers' prototypes as the verifier checks them: for every helper of xdp_helper_table(), what each argument must
// be and what the helper returns (the kernel's struct bpf_func_proto, from net/core/filter.c, kernel/bpf/helpers.c,
// kernel/bpf/ringbuf.c and kernel/bpf/bpf_iter.c). A helper missing here cannot be verified, and is refused.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::verifier_detail {

enum class arg_type : std::uint8_t {
    none,               ///< the helper takes fewer arguments
    anything,           ///< any initialised value (ARG_ANYTHING)
    map_ptr,            ///< a map (ARG_CONST_MAP_PTR)
    map_key,            ///< readable memory of the map's key size (ARG_PTR_TO_MAP_KEY)
    map_value,          ///< readable memory of the map's value size (ARG_PTR_TO_MAP_VALUE)
    uninit_map_value,   ///< writable memory of the map's value size, written by the helper
    mem,                ///< readable memory; the next argument is its size (ARG_PTR_TO_MEM)
    mem_or_null,        ///< the same, or NULL with size 0 (csum_diff)
    uninit_mem,         ///< writable memory the helper fills; the next argument is its size
    const_size,         ///< the size of the previous memory argument, > 0, bounded (ARG_CONST_SIZE)
    const_size_or_zero, ///< the same, may be 0
    ctx,                ///< the program's context (ARG_PTR_TO_CTX)
    func,               ///< a callback: a function's address (ARG_PTR_TO_FUNC)
    stack_or_null,      ///< a pointer to the stack or NULL: the callback's context (ARG_PTR_TO_STACK_OR_NULL)
    ringbuf_record,     ///< a ringbuf record from bpf_ringbuf_reserve, released by the call
    const_alloc_size,   ///< a constant size for bpf_ringbuf_reserve (ARG_CONST_ALLOC_SIZE_OR_ZERO)
    int_ptr,            ///< 4 bytes of memory the helper reads and writes (ARG_PTR_TO_INT)
    spin_lock,          ///< a struct bpf_spin_lock inside a map value
};

enum class return_type : std::uint8_t {
    integer,           ///< RET_INTEGER
    nothing,           ///< RET_VOID: r0 is left unknown
    map_value_or_null, ///< RET_PTR_TO_MAP_VALUE_OR_NULL of the map argument
    ringbuf_or_null,   ///< RET_PTR_TO_RINGBUF_MEM_OR_NULL, of the constant size argument
};

struct helper_proto {
    std::string_view name;
    return_type ret{return_type::integer};
    std::array<arg_type, 5> args{};
    bool changes_packet_data{}; ///< invalidates every packet pointer (bpf_helper_changes_pkt_data)
    std::uint64_t max_return{}; ///< when non-zero, r0 is known to lie in [0, max_return] (RET_INTEGER helpers
                                ///< returning a u32, for instance)
};

/// The prototype of helper `id`, or nullptr when the verifier does not know it.
const helper_proto* find_helper_proto(std::uint32_t id);

/// Why helper `id` may not take a map of type `type` (as its map argument), or nullopt when it may.
std::optional<std::string> map_refused(std::uint32_t id, map_type type);

/// Helper ids the verifier treats specially.
namespace helper_id {
inline constexpr std::uint32_t map_lookup_elem = 1;
inline constexpr std::uint32_t tail_call = 12;
inline constexpr std::uint32_t for_each_map_elem = 164;
inline constexpr std::uint32_t loop = 181;
inline constexpr std::uint32_t ringbuf_reserve = 131;
inline constexpr std::uint32_t ringbuf_submit = 132;
inline constexpr std::uint32_t ringbuf_discard = 133;
} // namespace helper_id

} // namespace sluice::ebpf::verifier_detail
