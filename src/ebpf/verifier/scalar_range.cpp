// The scalar domain's operations: the kernel's bounds rules (kernel/bpf/verifier.c), computed with 128-bit
// intermediates where the kernel reasons about overflow case by case, which gives the same or tighter bounds.
#include "ebpf/verifier/scalar_range.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "sluice/ebpf/isa.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

// 128-bit intermediates make overflow checks exact (a GCC/Clang extension, hence __extension__ under -Wpedantic).
__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

constexpr std::int64_t s64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t s64_max = std::numeric_limits<std::int64_t>::max();
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
constexpr std::int32_t s32_min = std::numeric_limits<std::int32_t>::min();
constexpr std::int32_t s32_max = std::numeric_limits<std::int32_t>::max();
constexpr std::uint32_t u32_max = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t low32 = 0xffff'ffffULL;

void update_bounds_from_bits(scalar_value& v) {
    const tnum t32 = tnum_subreg(v.bits);
    v.s32min = std::max(v.s32min,
                        static_cast<std::int32_t>(static_cast<std::uint32_t>(t32.value | (t32.mask & 0x8000'0000U))));
    v.s32max = std::min(v.s32max,
                        static_cast<std::int32_t>(static_cast<std::uint32_t>(t32.value | (t32.mask & 0x7fff'ffffU))));
    v.u32min = std::max(v.u32min, static_cast<std::uint32_t>(t32.value));
    v.u32max = std::min(v.u32max, static_cast<std::uint32_t>(t32.value | t32.mask));
    v.smin = std::max(v.smin, static_cast<std::int64_t>(v.bits.value | (v.bits.mask & 0x8000'0000'0000'0000ULL)));
    v.smax = std::min(v.smax, static_cast<std::int64_t>(v.bits.value | (v.bits.mask & 0x7fff'ffff'ffff'ffffULL)));
    v.umin = std::max(v.umin, v.bits.value);
    v.umax = std::min(v.umax, v.bits.value | v.bits.mask);
}

void deduce_bounds(scalar_value& v) {
    // Signed and unsigned agree where the range does not cross the sign boundary.
    if (v.s32min >= 0 || v.s32max < 0) {
        v.u32min = std::max(v.u32min, static_cast<std::uint32_t>(v.s32min));
        v.u32max = std::min(v.u32max, static_cast<std::uint32_t>(v.s32max));
    }
    if (v.u32max <= 0x7fff'ffffU || v.u32min >= 0x8000'0000U) {
        v.s32min = std::max(v.s32min, static_cast<std::int32_t>(v.u32min));
        v.s32max = std::min(v.s32max, static_cast<std::int32_t>(v.u32max));
    }
    if (v.smin >= 0 || v.smax < 0) {
        v.umin = std::max(v.umin, static_cast<std::uint64_t>(v.smin));
        v.umax = std::min(v.umax, static_cast<std::uint64_t>(v.smax));
    }
    if (v.umax <= static_cast<std::uint64_t>(s64_max) || v.umin > static_cast<std::uint64_t>(s64_max)) {
        v.smin = std::max(v.smin, static_cast<std::int64_t>(v.umin));
        v.smax = std::min(v.smax, static_cast<std::int64_t>(v.umax));
    }
    // The low 32 bits from the whole value: values sharing their upper half keep the order of their lower half.
    if ((v.umin >> 32) == (v.umax >> 32)) {
        const auto lo = static_cast<std::uint32_t>(v.umin);
        const auto hi = static_cast<std::uint32_t>(v.umax);
        v.u32min = std::max(v.u32min, lo);
        v.u32max = std::min(v.u32max, hi);
        if (static_cast<std::int32_t>(lo) <= static_cast<std::int32_t>(hi)) {
            v.s32min = std::max(v.s32min, static_cast<std::int32_t>(lo));
            v.s32max = std::min(v.s32max, static_cast<std::int32_t>(hi));
        }
    }
    if ((static_cast<std::uint64_t>(v.smin) >> 32) == (static_cast<std::uint64_t>(v.smax) >> 32)) {
        const auto lo = static_cast<std::uint32_t>(static_cast<std::uint64_t>(v.smin));
        const auto hi = static_cast<std::uint32_t>(static_cast<std::uint64_t>(v.smax));
        v.u32min = std::max(v.u32min, lo);
        v.u32max = std::min(v.u32max, hi);
        if (static_cast<std::int32_t>(lo) <= static_cast<std::int32_t>(hi)) {
            v.s32min = std::max(v.s32min, static_cast<std::int32_t>(lo));
            v.s32max = std::min(v.s32max, static_cast<std::int32_t>(hi));
        }
    }
    if (v.smin >= s32_min && v.smax <= s32_max) {
        v.s32min = std::max(v.s32min, static_cast<std::int32_t>(v.smin));
        v.s32max = std::min(v.s32max, static_cast<std::int32_t>(v.smax));
    }
    // The whole value from its low 32 bits, when the upper half is the same for every value.
    if ((v.umin >> 32) == (v.umax >> 32)) {
        const std::uint64_t upper = v.umin & ~low32;
        v.umin = std::max(v.umin, upper | v.u32min);
        v.umax = std::min(v.umax, upper | v.u32max);
    }
    if ((static_cast<std::uint64_t>(v.smin) >> 32) == (static_cast<std::uint64_t>(v.smax) >> 32)) {
        const std::uint64_t upper = static_cast<std::uint64_t>(v.smin) & ~low32;
        v.smin = std::max(v.smin, static_cast<std::int64_t>(upper | v.u32min));
        v.smax = std::min(v.smax, static_cast<std::int64_t>(upper | v.u32max));
    }
}

void bound_bits(scalar_value& v) {
    if (v.umin > v.umax || v.u32min > v.u32max) {
        return; // empty: nothing to learn, the caller discards it
    }
    const tnum var64 = tnum_intersect(v.bits, tnum::range(v.umin, v.umax));
    const tnum var32 = tnum_intersect(tnum_subreg(var64), tnum::range(v.u32min, v.u32max));
    v.bits = tnum_or(tnum_clear_subreg(var64), var32);
}

/// The low 32 bits of `v` as a 64-bit value (what a 32-bit operation sees as its unsigned operand).
scalar_value unsigned_low32(const scalar_value& v) {
    scalar_value r;
    r.bits = tnum_subreg(v.bits);
    r.umin = v.u32min;
    r.umax = v.u32max;
    r.smin = v.u32min;
    r.smax = v.u32max;
    r.u32min = v.u32min;
    r.u32max = v.u32max;
    r.s32min = v.s32min;
    r.s32max = v.s32max;
    r.sync();
    return r;
}

/// The low 32 bits of `v` sign-extended to 64 bits (the signed view of a 32-bit operand).
scalar_value signed_low32(const scalar_value& v) {
    scalar_value r;
    r.smin = v.s32min;
    r.smax = v.s32max;
    r.u32min = v.u32min;
    r.u32max = v.u32max;
    r.s32min = v.s32min;
    r.s32max = v.s32max;
    const tnum t32 = tnum_subreg(v.bits);
    if ((t32.mask & 0x8000'0000U) == 0) {
        r.bits = (t32.value & 0x8000'0000U) != 0 ? tnum{t32.value | ~low32, t32.mask} : t32;
    }
    r.sync();
    return r;
}

/// The result of a 32-bit operation computed on 64-bit views: its low 32 bits, zero-extended.
scalar_value take_low32(const scalar_value& unsigned_result, const scalar_value* signed_result) {
    scalar_value r;
    r.bits = tnum_subreg(unsigned_result.bits);
    if ((unsigned_result.umin >> 32) == (unsigned_result.umax >> 32)) {
        r.u32min = static_cast<std::uint32_t>(unsigned_result.umin);
        r.u32max = static_cast<std::uint32_t>(unsigned_result.umax);
    }
    const scalar_value& s = signed_result != nullptr ? *signed_result : unsigned_result;
    if (s.smin >= s32_min && s.smax <= s32_max) {
        r.s32min = static_cast<std::int32_t>(s.smin);
        r.s32max = static_cast<std::int32_t>(s.smax);
    }
    if (signed_result != nullptr) {
        r.bits = tnum_intersect(r.bits, tnum_subreg(signed_result->bits));
    }
    r.sync();
    r.zero_extend_32();
    return r;
}

void set_signed(scalar_value& r, i128 lo, i128 hi) {
    if (lo >= s64_min && hi <= s64_max) {
        r.smin = static_cast<std::int64_t>(lo);
        r.smax = static_cast<std::int64_t>(hi);
    }
}

void set_unsigned(scalar_value& r, i128 lo, i128 hi) {
    const i128 two64 = static_cast<i128>(1) << 64;
    if (lo >= 0 && hi <= static_cast<i128>(u64_max)) {
        r.umin = static_cast<std::uint64_t>(lo);
        r.umax = static_cast<std::uint64_t>(hi);
    } else if (lo > static_cast<i128>(u64_max) && hi < 2 * two64) {
        r.umin = static_cast<std::uint64_t>(lo - two64);
        r.umax = static_cast<std::uint64_t>(hi - two64);
    } else if (hi < 0 && lo >= -two64) {
        r.umin = static_cast<std::uint64_t>(lo + two64);
        r.umax = static_cast<std::uint64_t>(hi + two64);
    }
}

scalar_value alu64(std::uint8_t alu_op, const scalar_value& a, const scalar_value& b, bool is_signed, int width) {
    scalar_value r;
    switch (alu_op) {
    case op::alu_add:
        r.bits = tnum_add(a.bits, b.bits);
        set_signed(r, static_cast<i128>(a.smin) + b.smin, static_cast<i128>(a.smax) + b.smax);
        set_unsigned(r, static_cast<i128>(a.umin) + b.umin, static_cast<i128>(a.umax) + b.umax);
        break;
    case op::alu_sub:
        r.bits = tnum_sub(a.bits, b.bits);
        set_signed(r, static_cast<i128>(a.smin) - b.smax, static_cast<i128>(a.smax) - b.smin);
        set_unsigned(r, static_cast<i128>(a.umin) - b.umax, static_cast<i128>(a.umax) - b.umin);
        break;
    case op::alu_mul: {
        r.bits = tnum_mul(a.bits, b.bits);
        const u128 hi = static_cast<u128>(a.umax) * b.umax;
        if (hi <= u64_max) {
            r.umin = a.umin * b.umin;
            r.umax = static_cast<std::uint64_t>(hi);
        }
        const i128 corners[] = {static_cast<i128>(a.smin) * b.smin, static_cast<i128>(a.smin) * b.smax,
                                static_cast<i128>(a.smax) * b.smin, static_cast<i128>(a.smax) * b.smax};
        set_signed(r, *std::min_element(std::begin(corners), std::end(corners)),
                   *std::max_element(std::begin(corners), std::end(corners)));
        break;
    }
    case op::alu_div:
        if (is_signed && (a.smin < 0 || b.smin < 0)) {
            break; // signed division of possibly negative values: unknown, as the kernel
        }
        if (b.umax == 0) {
            return scalar_value::constant(0); // RFC 9669: division by zero gives 0
        }
        if (b.umin > 0) {
            r.umin = a.umin / b.umax;
            r.umax = a.umax / b.umin;
        } else {
            r.umin = 0;
            r.umax = a.umax;
        }
        r.bits = tnum::range(r.umin, r.umax);
        break;
    case op::alu_mod:
        if (is_signed && (a.smin < 0 || b.smin < 0)) {
            break;
        }
        if (b.umax == 0 || (b.umin > 0 && a.umax < b.umin)) {
            return a; // x % 0 == x, and x % y == x for x < y
        }
        r.umin = 0;
        r.umax = b.umin == 0 ? a.umax : std::min(a.umax, b.umax - 1);
        r.bits = tnum::range(0, r.umax);
        break;
    case op::alu_and:
        r.bits = tnum_and(a.bits, b.bits);
        r.umin = r.bits.value;
        r.umax = std::min(a.umax, b.umax);
        if (a.smin >= 0 && b.smin >= 0) {
            r.smin = 0;
            r.smax = static_cast<std::int64_t>(std::min(a.umax, b.umax));
        }
        break;
    case op::alu_or:
        r.bits = tnum_or(a.bits, b.bits);
        r.umin = std::max(a.umin, b.umin);
        r.umax = r.bits.value | r.bits.mask;
        break;
    case op::alu_xor:
        r.bits = tnum_xor(a.bits, b.bits);
        r.umin = r.bits.value;
        r.umax = r.bits.value | r.bits.mask;
        break;
    case op::alu_lsh:
    case op::alu_rsh:
    case op::alu_arsh: {
        if (!b.is_constant()) {
            break; // a shift by an unknown amount: unknown, as the kernel
        }
        const auto shift = static_cast<unsigned>(b.constant_value() & static_cast<std::uint64_t>(width - 1));
        if (alu_op == op::alu_lsh) {
            r.bits = tnum_lshift(a.bits, shift);
            if (shift == 0 || a.umax <= (u64_max >> shift)) {
                r.umin = a.umin << shift;
                r.umax = a.umax << shift;
            }
        } else if (alu_op == op::alu_rsh) {
            r.bits = tnum_rshift(a.bits, shift);
            r.umin = a.umin >> shift;
            r.umax = a.umax >> shift;
        } else {
            r.bits = tnum_arshift(a.bits, shift, 64);
            r.smin = a.smin >> shift;
            r.smax = a.smax >> shift;
        }
        break;
    }
    default:
        break;
    }
    r.sync();
    return r;
}

} // namespace

scalar_value scalar_value::constant(std::uint64_t v) {
    scalar_value r;
    r.bits = tnum::constant(v);
    r.smin = r.smax = static_cast<std::int64_t>(v);
    r.umin = r.umax = v;
    r.s32min = r.s32max = static_cast<std::int32_t>(static_cast<std::uint32_t>(v));
    r.u32min = r.u32max = static_cast<std::uint32_t>(v);
    return r;
}

scalar_value scalar_value::unsigned_range(std::uint64_t min, std::uint64_t max) {
    scalar_value r;
    r.umin = min;
    r.umax = max;
    r.bits = tnum::range(min, max);
    r.sync();
    return r;
}

scalar_value scalar_value::of_size(int bytes) {
    if (bytes >= 8) {
        return unknown();
    }
    return unsigned_range(0, (std::uint64_t{1} << (bytes * 8)) - 1);
}

bool scalar_value::is_empty() const {
    return smin > smax || umin > umax || s32min > s32max || u32min > u32max || (bits.value & bits.mask) != 0 ||
           bits.value > umax || (bits.value | bits.mask) < umin;
}

bool scalar_value::contains(const scalar_value& o) const {
    return bits.contains(o.bits) && smin <= o.smin && o.smax <= smax && umin <= o.umin && o.umax <= umax &&
           s32min <= o.s32min && o.s32max <= s32max && u32min <= o.u32min && o.u32max <= u32max;
}

void scalar_value::sync() {
    update_bounds_from_bits(*this);
    deduce_bounds(*this);
    deduce_bounds(*this);
    bound_bits(*this);
    update_bounds_from_bits(*this);
}

void scalar_value::zero_extend_32() {
    bits = tnum_subreg(bits);
    umin = u32min;
    umax = u32max;
    smin = static_cast<std::int64_t>(u32min);
    smax = static_cast<std::int64_t>(u32max);
    sync();
}

void scalar_value::truncate_to(int bytes) {
    if (bytes >= 8) {
        return;
    }
    if (bytes == 4) {
        zero_extend_32();
        return;
    }
    const std::uint64_t limit = (std::uint64_t{1} << (bytes * 8)) - 1;
    scalar_value r = unsigned_range(0, limit);
    r.bits = tnum_intersect(r.bits, tnum_cast(bits, bytes));
    if ((umin >> (bytes * 8)) == (umax >> (bytes * 8))) {
        r.umin = umin & limit;
        r.umax = umax & limit;
    }
    r.sync();
    *this = r;
}

std::string scalar_value::describe() const {
    if (is_constant()) {
        return fmt::format("{}", static_cast<std::int64_t>(bits.value));
    }
    std::vector<std::string> parts;
    const scalar_value none = unknown();
    if (smin != none.smin && static_cast<std::uint64_t>(smin) != umin) {
        parts.push_back(fmt::format("smin={}", smin));
    }
    if (smax != none.smax && static_cast<std::uint64_t>(smax) != umax) {
        parts.push_back(fmt::format("smax={}", smax));
    }
    if (umin != none.umin) {
        parts.push_back(fmt::format("umin={}", umin));
    }
    if (umax != none.umax) {
        parts.push_back(fmt::format("umax={}", umax));
    }
    const bool same32 = umax <= u32_max && u32min == umin && u32max == umax;
    if (!same32) {
        if (s32min != none.s32min && static_cast<std::uint32_t>(s32min) != u32min) {
            parts.push_back(fmt::format("smin32={}", s32min));
        }
        if (s32max != none.s32max && static_cast<std::uint32_t>(s32max) != u32max) {
            parts.push_back(fmt::format("smax32={}", s32max));
        }
        if (u32min != none.u32min) {
            parts.push_back(fmt::format("umin32={}", u32min));
        }
        if (u32max != none.u32max) {
            parts.push_back(fmt::format("umax32={}", u32max));
        }
    }
    if (!bits.is_unknown() && bits != tnum::range(umin, umax)) {
        parts.push_back(fmt::format("var_off=({:#x}; {:#x})", bits.value, bits.mask));
    }
    std::string text;
    for (const std::string& part : parts) {
        text += text.empty() ? part : fmt::format(",{}", part);
    }
    return text;
}

scalar_value scalar_alu(std::uint8_t alu_op, scalar_value dst, const scalar_value& src, bool is64, bool is_signed) {
    if (is64) {
        return alu64(alu_op, dst, src, is_signed, 64);
    }
    if (alu_op == op::alu_arsh) {
        if (!src.is_constant()) {
            return scalar_value::of_size(4);
        }
        const auto shift = static_cast<unsigned>(src.constant_value() & 31);
        scalar_value r;
        r.bits = tnum_arshift(tnum_subreg(dst.bits), shift, 32);
        r.s32min = dst.s32min >> shift;
        r.s32max = dst.s32max >> shift;
        r.sync();
        r.zero_extend_32();
        return r;
    }
    const scalar_value a = unsigned_low32(dst);
    const scalar_value b = unsigned_low32(src);
    if (is_signed && (alu_op == op::alu_div || alu_op == op::alu_mod)) {
        const scalar_value sr = alu64(alu_op, signed_low32(dst), signed_low32(src), true, 64);
        return take_low32(sr, &sr);
    }
    const scalar_value unsigned_result = alu64(alu_op, a, b, false, 32);
    if (alu_op == op::alu_add || alu_op == op::alu_sub || alu_op == op::alu_mul) {
        const scalar_value signed_result = alu64(alu_op, signed_low32(dst), signed_low32(src), false, 64);
        return take_low32(unsigned_result, &signed_result);
    }
    return take_low32(unsigned_result, nullptr);
}

scalar_value scalar_negate(scalar_value dst, bool is64) {
    return scalar_alu(op::alu_sub, scalar_value::constant(0), dst, is64, false);
}

scalar_value scalar_sign_extend(scalar_value src, int from_bits, bool is64) {
    const std::uint64_t width_mask = (std::uint64_t{1} << from_bits) - 1;
    const std::uint64_t sign_bit = std::uint64_t{1} << (from_bits - 1);
    scalar_value r;
    const tnum low = tnum_cast(src.bits, from_bits / 8);
    if ((low.mask & sign_bit) == 0) {
        r.bits = (low.value & sign_bit) != 0 ? tnum{low.value | ~width_mask, low.mask} : low;
    } else {
        r.bits = tnum{low.value, low.mask | ~width_mask};
    }
    // Non-negative values that fit keep their bounds.
    if (src.umax < sign_bit) {
        r.umin = src.umin;
        r.umax = src.umax;
    } else {
        r.smin = -static_cast<std::int64_t>(sign_bit);
        r.smax = static_cast<std::int64_t>(sign_bit - 1);
        if (from_bits == 32) {
            r.smin = src.s32min;
            r.smax = src.s32max;
        }
    }
    r.sync();
    if (is64) {
        return r;
    }
    return take_low32(r, &r);
}

scalar_value scalar_byte_swap(const scalar_value& dst, int width, bool swap) {
    if (!swap) {
        scalar_value r = dst;
        r.truncate_to(width / 8);
        return r;
    }
    if (dst.is_constant()) {
        std::uint64_t v = dst.constant_value();
        switch (width) {
        case 16:
            v = __builtin_bswap16(static_cast<std::uint16_t>(v));
            break;
        case 32:
            v = __builtin_bswap32(static_cast<std::uint32_t>(v));
            break;
        default:
            v = __builtin_bswap64(v);
            break;
        }
        return scalar_value::constant(v);
    }
    return scalar_value::of_size(width / 8);
}

namespace {

/// The bounds a comparison looks at: the whole value (JMP) or its low 32 bits (JMP32), widened to 64-bit types.
struct view {
    std::uint64_t umin, umax;
    std::int64_t smin, smax;
    tnum bits;
};

view view_of(const scalar_value& v, bool is64) {
    if (is64) {
        return view{v.umin, v.umax, v.smin, v.smax, v.bits};
    }
    return view{v.u32min, v.u32max, v.s32min, v.s32max, tnum_subreg(v.bits)};
}

void store_view(scalar_value& v, const view& w, bool is64) {
    if (is64) {
        v.umin = w.umin;
        v.umax = w.umax;
        v.smin = w.smin;
        v.smax = w.smax;
        v.bits = w.bits;
    } else {
        v.u32min = static_cast<std::uint32_t>(w.umin);
        v.u32max = static_cast<std::uint32_t>(w.umax);
        v.s32min = static_cast<std::int32_t>(w.smin);
        v.s32max = static_cast<std::int32_t>(w.smax);
        v.bits = tnum_with_subreg(v.bits, w.bits);
    }
}

bool bits_disagree(const tnum& a, const tnum& b) {
    return ((a.value ^ b.value) & ~a.mask & ~b.mask) != 0;
}

std::optional<bool> taken(std::uint8_t jmp_op, const view& d, const view& s) {
    switch (jmp_op) {
    case op::jmp_jeq:
    case op::jmp_jne: {
        std::optional<bool> equal;
        if (d.bits.is_constant() && s.bits.is_constant()) {
            equal = d.bits.value == s.bits.value;
        } else if (d.umin > s.umax || d.umax < s.umin || d.smin > s.smax || d.smax < s.smin ||
                   bits_disagree(d.bits, s.bits)) {
            equal = false;
        }
        if (!equal) {
            return std::nullopt;
        }
        return jmp_op == op::jmp_jeq ? *equal : !*equal;
    }
    case op::jmp_jgt:
        if (d.umin > s.umax) {
            return true;
        }
        if (d.umax <= s.umin) {
            return false;
        }
        return std::nullopt;
    case op::jmp_jge:
        if (d.umin >= s.umax) {
            return true;
        }
        if (d.umax < s.umin) {
            return false;
        }
        return std::nullopt;
    case op::jmp_jlt:
        return taken(op::jmp_jgt, s, d);
    case op::jmp_jle:
        return taken(op::jmp_jge, s, d);
    case op::jmp_jsgt:
        if (d.smin > s.smax) {
            return true;
        }
        if (d.smax <= s.smin) {
            return false;
        }
        return std::nullopt;
    case op::jmp_jsge:
        if (d.smin >= s.smax) {
            return true;
        }
        if (d.smax < s.smin) {
            return false;
        }
        return std::nullopt;
    case op::jmp_jslt:
        return taken(op::jmp_jsgt, s, d);
    case op::jmp_jsle:
        return taken(op::jmp_jsge, s, d);
    case op::jmp_jset:
        if ((d.bits.value & s.bits.value) != 0) {
            return true;
        }
        if (((d.bits.value | d.bits.mask) & (s.bits.value | s.bits.mask)) == 0) {
            return false;
        }
        return std::nullopt;
    default:
        return std::nullopt;
    }
}

/// Narrows for `d op s` holding; false when impossible.
bool narrow(std::uint8_t jmp_op, view& d, view& s, bool is64, bool jset_false) {
    const std::uint64_t top = is64 ? u64_max : u32_max;
    const std::int64_t signed_top = is64 ? s64_max : s32_max;
    const std::int64_t signed_bottom = is64 ? s64_min : s32_min;
    switch (jmp_op) {
    case op::jmp_jeq:
        if (bits_disagree(d.bits, s.bits)) {
            return false;
        }
        d.umin = s.umin = std::max(d.umin, s.umin);
        d.umax = s.umax = std::min(d.umax, s.umax);
        d.smin = s.smin = std::max(d.smin, s.smin);
        d.smax = s.smax = std::min(d.smax, s.smax);
        d.bits = s.bits = tnum_intersect(d.bits, s.bits);
        break;
    case op::jmp_jne:
        for (int side = 0; side < 2; ++side) {
            view& x = side == 0 ? d : s;
            const view& c = side == 0 ? s : d;
            if (!c.bits.is_constant()) {
                continue;
            }
            const std::uint64_t value = c.bits.value;
            const std::int64_t signed_value = c.smin;
            if (x.bits.is_constant() && x.bits.value == value) {
                return false;
            }
            if (x.umin == value) {
                if (value == top) {
                    return false;
                }
                ++x.umin;
            }
            if (x.umax == value) {
                if (value == 0) {
                    return false;
                }
                --x.umax;
            }
            if (x.smin == signed_value && signed_value != signed_top) {
                ++x.smin;
            }
            if (x.smax == signed_value && signed_value != signed_bottom) {
                --x.smax;
            }
        }
        break;
    case op::jmp_jgt:
        if (s.umin == top || d.umax == 0) {
            return false;
        }
        d.umin = std::max(d.umin, s.umin + 1);
        s.umax = std::min(s.umax, d.umax - 1);
        break;
    case op::jmp_jge:
        d.umin = std::max(d.umin, s.umin);
        s.umax = std::min(s.umax, d.umax);
        break;
    case op::jmp_jlt:
        return narrow(op::jmp_jgt, s, d, is64, false);
    case op::jmp_jle:
        return narrow(op::jmp_jge, s, d, is64, false);
    case op::jmp_jsgt:
        if (s.smin == signed_top || d.smax == signed_bottom) {
            return false;
        }
        d.smin = std::max(d.smin, s.smin + 1);
        s.smax = std::min(s.smax, d.smax - 1);
        break;
    case op::jmp_jsge:
        d.smin = std::max(d.smin, s.smin);
        s.smax = std::min(s.smax, d.smax);
        break;
    case op::jmp_jslt:
        return narrow(op::jmp_jsgt, s, d, is64, false);
    case op::jmp_jsle:
        return narrow(op::jmp_jsge, s, d, is64, false);
    case op::jmp_jset:
        if (!s.bits.is_constant()) {
            break;
        }
        if (jset_false) {
            d.bits = tnum_and(d.bits, tnum::constant(~s.bits.value & top));
        } else if (std::has_single_bit(s.bits.value)) {
            d.bits = tnum_or(d.bits, tnum::constant(s.bits.value));
        }
        break;
    default:
        break;
    }
    return d.umin <= d.umax && s.umin <= s.umax && d.smin <= d.smax && s.smin <= s.smax;
}

} // namespace

std::uint8_t negate_condition(std::uint8_t jmp_op) {
    switch (jmp_op) {
    case op::jmp_jeq:
        return op::jmp_jne;
    case op::jmp_jne:
        return op::jmp_jeq;
    case op::jmp_jgt:
        return op::jmp_jle;
    case op::jmp_jge:
        return op::jmp_jlt;
    case op::jmp_jlt:
        return op::jmp_jge;
    case op::jmp_jle:
        return op::jmp_jgt;
    case op::jmp_jsgt:
        return op::jmp_jsle;
    case op::jmp_jsge:
        return op::jmp_jslt;
    case op::jmp_jslt:
        return op::jmp_jsge;
    case op::jmp_jsle:
        return op::jmp_jsgt;
    default:
        return jmp_op;
    }
}

std::optional<bool> scalar_branch_taken(std::uint8_t jmp_op, const scalar_value& dst, const scalar_value& src,
                                        bool is64) {
    return taken(jmp_op, view_of(dst, is64), view_of(src, is64));
}

bool scalar_narrow(std::uint8_t jmp_op, bool is_taken, scalar_value& dst, scalar_value& src, bool is64) {
    view d = view_of(dst, is64);
    view s = view_of(src, is64);
    const bool jset_false = jmp_op == op::jmp_jset && !is_taken;
    const std::uint8_t condition = is_taken ? jmp_op : negate_condition(jmp_op);
    if (!narrow(condition, d, s, is64, jset_false)) {
        return false;
    }
    store_view(dst, d, is64);
    store_view(src, s, is64);
    if (dst.is_empty() || src.is_empty()) {
        return false;
    }
    dst.sync();
    src.sync();
    return !dst.is_empty() && !src.is_empty();
}

scalar_value scalar_join(const scalar_value& a, const scalar_value& b) {
    scalar_value r;
    r.bits = tnum_union(a.bits, b.bits);
    r.smin = std::min(a.smin, b.smin);
    r.smax = std::max(a.smax, b.smax);
    r.umin = std::min(a.umin, b.umin);
    r.umax = std::max(a.umax, b.umax);
    r.s32min = std::min(a.s32min, b.s32min);
    r.s32max = std::max(a.s32max, b.s32max);
    r.u32min = std::min(a.u32min, b.u32min);
    r.u32max = std::max(a.u32max, b.u32max);
    return r;
}

} // namespace sluice::ebpf::verifier_detail
