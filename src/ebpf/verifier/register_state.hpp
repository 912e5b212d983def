// What the verifier knows at one point of one path: the type and value of each register, the contents of each stack
// slot, per call frame (the kernel's bpf_reg_state, bpf_stack_state, bpf_func_state and bpf_verifier_state).
//
// Pointers carry a fixed offset (`offset`) and a variable one (`value`, a scalar_value that is 0 unless an unknown
// scalar was added). Packet pointers also carry the number of bytes proven to lie before data_end (`range`, counted
// from the pointer's variable part) and an id shared by every copy of the same pointer, so that a check made on one
// copy holds for all. "Or null" values (a map lookup's result, a ringbuf reservation) carry an id shared by their
// copies, so that a null check narrows all of them at once.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ebpf/verifier/scalar_range.hpp"
#include "sluice/ebpf/isa.hpp"

namespace sluice::ebpf::verifier_detail {

enum class reg_type : std::uint8_t {
    not_init,          ///< never written on this path
    scalar,            ///< a number
    ctx,               ///< the xdp_context pointer
    packet,            ///< a pointer into the packet
    packet_end,        ///< data_end
    packet_meta,       ///< a pointer into the metadata area before data
    map_ptr,           ///< a map (for helpers only)
    map_value,         ///< a pointer into a map's value
    map_value_or_null, ///< a map lookup's result before its null check
    stack,             ///< a pointer into a call frame's stack
    mem,               ///< a ringbuf record (bytes `mem_size`)
    mem_or_null,       ///< a ringbuf reservation before its null check
    func,              ///< a function's address (callbacks)
    stale_packet,      ///< a packet pointer from before a helper changed the packet: unusable
    released_record,   ///< a ringbuf record pointer after bpf_ringbuf_submit/discard: unusable
};

/// "scalar", "packet pointer", ... for messages.
const char* describe(reg_type type);
bool is_pointer(reg_type type);
/// Types whose region is the packet (pointer subtraction between them gives a scalar).
inline bool is_packet_kind(reg_type t) {
    return t == reg_type::packet || t == reg_type::packet_end || t == reg_type::packet_meta;
}

struct reg_state {
    reg_type type{reg_type::not_init};
    std::uint32_t id{};       ///< packet: pointers sharing a range; or-null: copies to narrow; scalar: linked copies
    std::uint32_t ref{};      ///< ringbuf records: the reservation to submit or discard
    std::uint32_t map{};      ///< map_ptr / map_value: index of the map; func: instruction index
    std::int32_t offset{};    ///< pointers: fixed offset
    std::int32_t range{};     ///< packet / packet_meta: bytes proven from the pointer's variable part
    std::uint32_t mem_size{}; ///< mem: record size
    std::uint32_t frame{};    ///< stack: the frame number the pointer points into
    bool read_only{};         ///< mem: the program may not write through it (bpf_for_each_map_elem's key)
    scalar_value value{scalar_value::constant(0)}; ///< scalar: the value; pointers: the variable offset

    bool operator==(const reg_state&) const = default;

    static reg_state scalar(const scalar_value& v) {
        reg_state r;
        r.type = reg_type::scalar;
        r.value = v;
        return r;
    }
    static reg_state unknown_scalar() { return scalar(scalar_value::unknown()); }
    static reg_state constant(std::uint64_t v) { return scalar(scalar_value::constant(v)); }
    static reg_state pointer(reg_type type, std::int32_t offset = 0) {
        reg_state r;
        r.type = type;
        r.offset = offset;
        return r;
    }
    bool is_scalar() const { return type == reg_type::scalar; }
    bool has_variable_offset() const { return !value.is_constant() || value.constant_value() != 0; }
};

/// What one byte of the stack holds.
enum class slot_byte : std::uint8_t {
    invalid, ///< never written: reading it is refused
    misc,    ///< written with data the verifier does not track
    zero,    ///< written with zeros
    spill,   ///< part of a spilled register (`stack_slot::spilled`)
};

/// 8 bytes of stack, at frame offset -8 * (index + 1).
struct stack_slot {
    std::array<slot_byte, 8> bytes{};
    reg_state spilled;          ///< valid when some byte is `spill`: the register stored there
    std::uint8_t spill_size{};  ///< bytes of the spill (8, or 4/2/1 for narrow scalar spills)
    std::uint8_t spill_start{}; ///< first byte of the spill within the slot

    bool operator==(const stack_slot&) const = default;
    bool has_spill() const { return spill_size != 0; }
};

struct func_state {
    std::array<reg_state, register_count> regs{};
    std::vector<stack_slot> stack; ///< grows on demand; stack[i] covers fp-8*(i+1) .. fp-8*i-1
    std::size_t callsite{};        ///< instruction of the call that created this frame
    std::size_t function{};        ///< index of the function (verifier's table) running in this frame
    bool callback{};               ///< entered by a helper (bpf_loop ...), not a call instruction
    std::size_t callback_helper{}; ///< the helper id for callbacks

    bool operator==(const func_state&) const = default;
};

/// A ringbuf reservation the program still holds: it must be submitted or discarded before exit.
struct reference {
    std::uint32_t id{};
    std::size_t acquired_at{};
    bool operator==(const reference&) const = default;
};

} // namespace sluice::ebpf::verifier_detail
