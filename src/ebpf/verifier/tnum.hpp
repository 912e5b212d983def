// Tristate numbers: what the verifier knows about each bit of a 64-bit value (kernel/bpf/tnum.c).
//
// A tnum is (value, mask): a bit set in mask is unknown; a bit clear in mask is known and equals the bit in value.
// value & mask is always 0. Every operation is sound: the result's set of concrete values contains every result of
// the operation on concrete members of the operands. The rules are the kernel's, so that sluice accepts what the
// kernel accepts.
#pragma once

#include <bit>
#include <cstdint>

namespace sluice::ebpf::verifier_detail {

struct tnum {
    std::uint64_t value{};
    std::uint64_t mask{};

    constexpr bool operator==(const tnum&) const = default;

    static constexpr tnum constant(std::uint64_t v) { return tnum{v, 0}; }
    static constexpr tnum unknown() { return tnum{0, ~std::uint64_t{0}}; }

    /// The values in [min, max] share their bits above the highest bit where min and max differ.
    static constexpr tnum range(std::uint64_t min, std::uint64_t max) {
        const std::uint64_t chi = min ^ max;
        const int bits = chi == 0 ? 0 : 64 - std::countl_zero(chi);
        if (bits > 63) {
            return unknown();
        }
        const std::uint64_t delta = (std::uint64_t{1} << bits) - 1;
        return tnum{min & ~delta, delta};
    }

    constexpr bool is_constant() const { return mask == 0; }
    constexpr bool is_unknown() const { return mask == ~std::uint64_t{0}; }
    /// Every value of `b` is a value of this tnum.
    constexpr bool contains(tnum b) const {
        if ((b.mask & ~mask) != 0) {
            return false;
        }
        return value == (b.value & ~mask);
    }
    constexpr std::uint64_t min() const { return value; }
    constexpr std::uint64_t max() const { return value | mask; }
};

constexpr tnum tnum_lshift(tnum a, unsigned shift) {
    return tnum{a.value << shift, a.mask << shift};
}
constexpr tnum tnum_rshift(tnum a, unsigned shift) {
    return tnum{a.value >> shift, a.mask >> shift};
}

/// Arithmetic shift of the low `bits` (32 or 64) bits; a 32-bit result is zero-extended.
constexpr tnum tnum_arshift(tnum a, unsigned shift, int bits) {
    if (bits == 32) {
        return tnum{static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(a.value)) >> shift),
                    static_cast<std::uint32_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(a.mask)) >> shift)};
    }
    return tnum{static_cast<std::uint64_t>(static_cast<std::int64_t>(a.value) >> shift),
                static_cast<std::uint64_t>(static_cast<std::int64_t>(a.mask) >> shift)};
}

constexpr tnum tnum_add(tnum a, tnum b) {
    const std::uint64_t sm = a.mask + b.mask;
    const std::uint64_t sv = a.value + b.value;
    const std::uint64_t sigma = sm + sv;
    const std::uint64_t chi = sigma ^ sv;
    const std::uint64_t mu = chi | a.mask | b.mask;
    return tnum{sv & ~mu, mu};
}

constexpr tnum tnum_sub(tnum a, tnum b) {
    const std::uint64_t dv = a.value - b.value;
    const std::uint64_t alpha = dv + a.mask;
    const std::uint64_t beta = dv - b.mask;
    const std::uint64_t chi = alpha ^ beta;
    const std::uint64_t mu = chi | a.mask | b.mask;
    return tnum{dv & ~mu, mu};
}

constexpr tnum tnum_and(tnum a, tnum b) {
    const std::uint64_t alpha = a.value | a.mask;
    const std::uint64_t beta = b.value | b.mask;
    const std::uint64_t v = a.value & b.value;
    return tnum{v, alpha & beta & ~v};
}

constexpr tnum tnum_or(tnum a, tnum b) {
    const std::uint64_t v = a.value | b.value;
    const std::uint64_t mu = a.mask | b.mask;
    return tnum{v, mu & ~v};
}

constexpr tnum tnum_xor(tnum a, tnum b) {
    const std::uint64_t v = a.value ^ b.value;
    const std::uint64_t mu = a.mask | b.mask;
    return tnum{v & ~mu, mu};
}

/// Long multiplication over tristate bits (the kernel's tnum_mul).
constexpr tnum tnum_mul(tnum a, tnum b) {
    const std::uint64_t acc_v = a.value * b.value;
    tnum acc_m{0, 0};
    while (a.value != 0 || a.mask != 0) {
        if ((a.value & 1) != 0) {
            acc_m = tnum_add(acc_m, tnum{0, b.mask});
        } else if ((a.mask & 1) != 0) {
            acc_m = tnum_add(acc_m, tnum{0, b.value | b.mask});
        }
        a = tnum_rshift(a, 1);
        b = tnum_lshift(b, 1);
    }
    return tnum_add(tnum{acc_v, 0}, acc_m);
}

/// What both tnums say: a value of the result is a value of both (when the two are consistent).
constexpr tnum tnum_intersect(tnum a, tnum b) {
    const std::uint64_t v = a.value | b.value;
    const std::uint64_t mu = a.mask & b.mask;
    return tnum{v & ~mu, mu};
}

/// The smallest tnum holding every value of both.
constexpr tnum tnum_union(tnum a, tnum b) {
    const std::uint64_t v = a.value & b.value;
    const std::uint64_t mu = (a.value ^ b.value) | a.mask | b.mask;
    return tnum{v & ~mu, mu};
}

/// The low `bytes` bytes.
constexpr tnum tnum_cast(tnum a, int bytes) {
    if (bytes >= 8) {
        return a;
    }
    const std::uint64_t keep = (std::uint64_t{1} << (bytes * 8)) - 1;
    return tnum{a.value & keep, a.mask & keep};
}

constexpr tnum tnum_subreg(tnum a) {
    return tnum_cast(a, 4);
}
constexpr tnum tnum_clear_subreg(tnum a) {
    return tnum_lshift(tnum_rshift(a, 32), 32);
}
constexpr tnum tnum_with_subreg(tnum reg, tnum subreg) {
    return tnum_or(tnum_clear_subreg(reg), tnum_subreg(subreg));
}

} // namespace sluice::ebpf::verifier_detail
