// The scalar domain: what the verifier knows about a 64-bit value. Signed and unsigned bounds of the whole value and
// of its low 32 bits, and a tnum of known bits, kept consistent with each other as the kernel's verifier keeps them
// (kernel/bpf/verifier.c: reg_bounds_sync, adjust_scalar_min_max_vals, reg_set_min_max, is_branch_taken).
//
// Invariant: every concrete value the register may hold lies in all five descriptions at once. Every operation here
// is sound (it may lose precision, never a possible value); an empty range (min > max) after narrowing a branch
// means the branch cannot be taken.
//
// The same type describes a pointer's variable offset (a packet pointer plus an index read from the packet).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "ebpf/verifier/tnum.hpp"

namespace sluice::ebpf::verifier_detail {

struct scalar_value {
    tnum bits{tnum::unknown()};
    std::int64_t smin{std::numeric_limits<std::int64_t>::min()};
    std::int64_t smax{std::numeric_limits<std::int64_t>::max()};
    std::uint64_t umin{0};
    std::uint64_t umax{std::numeric_limits<std::uint64_t>::max()};
    std::int32_t s32min{std::numeric_limits<std::int32_t>::min()};
    std::int32_t s32max{std::numeric_limits<std::int32_t>::max()};
    std::uint32_t u32min{0};
    std::uint32_t u32max{std::numeric_limits<std::uint32_t>::max()};

    bool operator==(const scalar_value&) const = default;

    static scalar_value unknown() { return scalar_value{}; }
    static scalar_value constant(std::uint64_t v);
    /// [min, max] as unsigned 64-bit values.
    static scalar_value unsigned_range(std::uint64_t min, std::uint64_t max);
    /// Any value of `bytes` bytes, zero-extended (a load of that size).
    static scalar_value of_size(int bytes);

    bool is_constant() const { return bits.is_constant(); }
    std::uint64_t constant_value() const { return bits.value; }
    bool is_unknown() const { return *this == unknown(); }
    bool is_empty() const;
    /// Every value of `other` is a value of this one (pruning: the explored state covers the current one).
    bool contains(const scalar_value& other) const;

    /// Brings the five descriptions into agreement (the kernel's reg_bounds_sync).
    void sync();
    /// The low 32 bits become the whole value (32-bit ALU results and loads zero-extend).
    void zero_extend_32();
    /// Only the 32-bit bounds are known; the 64-bit ones are reset from them (after 32-bit results).
    void truncate_to(int bytes);

    /// "umin=0,umax=255" style text, or the constant.
    std::string describe() const;
};

/// Arithmetic and logic on the abstract values, 64-bit or 32-bit (operands' low halves, result zero-extended).
/// `alu_op` is the opcode's high nibble (op::alu_add ...); `is_signed` selects sdiv/smod.
scalar_value scalar_alu(std::uint8_t alu_op, scalar_value dst, const scalar_value& src, bool is64, bool is_signed);
scalar_value scalar_negate(scalar_value dst, bool is64);
/// The jump opcode taken when `jmp_op`'s condition is false (jgt -> jle, jeq -> jne, jsgt -> jsle, ...).
std::uint8_t negate_condition(std::uint8_t jmp_op);
/// mov with sign extension from `from_bits` (8, 16, 32) into 64 or 32 bits.
scalar_value scalar_sign_extend(scalar_value src, int from_bits, bool is64);
/// Byte swaps: to little endian (truncation on x86), to big endian, or bswap, of `width` bits.
scalar_value scalar_byte_swap(const scalar_value& dst, int width, bool swap);

/// Whether `dst op src` (jump opcode's high nibble) holds: true / false always, or nullopt when it depends.
std::optional<bool> scalar_branch_taken(std::uint8_t jmp_op, const scalar_value& dst, const scalar_value& src,
                                        bool is64);
/// Narrows both operands to the values for which `dst op src` is `taken`. Returns false when no values remain.
bool scalar_narrow(std::uint8_t jmp_op, bool taken, scalar_value& dst, scalar_value& src, bool is64);

/// The smallest value holding both (for widening loops whose end the runtime guarantees).
scalar_value scalar_join(const scalar_value& a, const scalar_value& b);

} // namespace sluice::ebpf::verifier_detail
