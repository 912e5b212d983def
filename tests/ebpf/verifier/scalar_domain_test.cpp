// The scalar domain: hand-checked tnum and bounds results (the kernel's rules), and soundness by brute force: for
// abstract values built from sets of concrete numbers, every concrete result of an operation (RFC 9669 semantics)
// lies in the abstract result, and branch narrowing keeps every pair for which the condition holds.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "ebpf/verifier/scalar_range.hpp"
#include "ebpf/verifier/tnum.hpp"
#include "sluice/ebpf/isa.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

TEST(Tnum, ConstantsAndRanges) {
    EXPECT_TRUE(tnum::constant(5).is_constant());
    EXPECT_EQ(tnum::range(0, 255), (tnum{0, 0xff}));
    EXPECT_EQ(tnum::range(16, 31), (tnum{16, 0xf}));
    EXPECT_EQ(tnum::range(5, 5), tnum::constant(5));
    EXPECT_TRUE(tnum::range(0, ~0ULL).is_unknown());
    EXPECT_TRUE((tnum{0, 0xff}).contains(tnum::constant(0x7f)));
    EXPECT_FALSE((tnum{0, 0xff}).contains(tnum::constant(0x100)));
    EXPECT_FALSE(tnum::constant(1).contains(tnum{0, 1}));
}

TEST(Tnum, ArithmeticAsTheKernel) {
    EXPECT_EQ(tnum_add(tnum::constant(3), tnum::constant(4)), tnum::constant(7));
    // x in {0..3} + 4: bits 0-1 unknown, bit 2 set.
    EXPECT_EQ(tnum_add(tnum{0, 3}, tnum::constant(4)), (tnum{4, 3}));
    EXPECT_EQ(tnum_sub(tnum::constant(10), tnum::constant(3)), tnum::constant(7));
    EXPECT_EQ(tnum_and(tnum::unknown(), tnum::constant(0xf0)), (tnum{0, 0xf0}));
    EXPECT_EQ(tnum_or(tnum{0, 0xf}, tnum::constant(0x10)), (tnum{0x10, 0xf}));
    EXPECT_EQ(tnum_xor(tnum::constant(0xff), tnum::constant(0x0f)), tnum::constant(0xf0));
    EXPECT_EQ(tnum_mul(tnum::constant(6), tnum::constant(7)), tnum::constant(42));
    EXPECT_EQ(tnum_lshift(tnum{0, 1}, 4), (tnum{0, 0x10}));
    EXPECT_EQ(tnum_rshift(tnum{0x100, 0xf0}, 4), (tnum{0x10, 0xf}));
    EXPECT_EQ(tnum_arshift(tnum::constant(0x8000'0000), 4, 32), tnum::constant(0xf800'0000));
    EXPECT_EQ(tnum_arshift(tnum::constant(~0ULL << 8), 8, 64), tnum::constant(~0ULL));
    EXPECT_EQ(tnum_intersect(tnum{0, 0xff}, tnum{0x10, 0x0f}), (tnum{0x10, 0x0f}));
    EXPECT_EQ(tnum_union(tnum::constant(4), tnum::constant(6)), (tnum{4, 2}));
    EXPECT_EQ(tnum_cast(tnum::constant(0x1234), 1), tnum::constant(0x34));
}

TEST(ScalarRange, BoundsFollowKnownBits) {
    scalar_value v = scalar_value::unknown();
    v = scalar_alu(op::alu_and, v, scalar_value::constant(0xff), true, false);
    EXPECT_EQ(v.umin, 0U);
    EXPECT_EQ(v.umax, 255U);
    EXPECT_EQ(v.smin, 0);
    EXPECT_EQ(v.smax, 255);
    EXPECT_EQ(v.u32max, 255U);
    const scalar_value shifted = scalar_alu(op::alu_lsh, v, scalar_value::constant(8), true, false);
    EXPECT_EQ(shifted.umax, 0xff00U);
    EXPECT_EQ(shifted.bits, (tnum{0, 0xff00}));
    const scalar_value plus = scalar_alu(op::alu_add, v, scalar_value::constant(14), true, false);
    EXPECT_EQ(plus.umin, 14U);
    EXPECT_EQ(plus.umax, 269U);
}

TEST(ScalarRange, ThirtyTwoBitResultsAreZeroExtended) {
    const scalar_value minus_one =
        scalar_alu(op::alu_add, scalar_value::constant(0), scalar_value::constant(~0ULL), false, false);
    EXPECT_TRUE(minus_one.is_constant());
    EXPECT_EQ(minus_one.constant_value(), 0xffff'ffffULL);
    scalar_value wide = scalar_value::unknown();
    wide = scalar_alu(op::alu_mov, wide, wide, true, false);
    scalar_value low = wide;
    low.truncate_to(4);
    EXPECT_EQ(low.umax, 0xffff'ffffULL);
    EXPECT_EQ(low.smin, 0);
}

TEST(ScalarRange, BranchNarrowing) {
    scalar_value index = scalar_value::of_size(4);
    scalar_value bound = scalar_value::constant(16);
    ASSERT_TRUE(scalar_narrow(op::jmp_jlt, true, index, bound, true));
    EXPECT_EQ(index.umax, 15U);
    EXPECT_EQ(index.bits, (tnum{0, 0xf}));
    scalar_value again = index;
    scalar_value twenty = scalar_value::constant(20);
    EXPECT_EQ(scalar_branch_taken(op::jmp_jgt, again, twenty, true), std::optional<bool>(false));
    EXPECT_EQ(scalar_branch_taken(op::jmp_jle, again, twenty, true), std::optional<bool>(true));
    // JMP32 narrows the low half; a zero-extended value learns its 64-bit bound from it.
    scalar_value counter = scalar_value::of_size(4);
    scalar_value ten = scalar_value::constant(10);
    ASSERT_TRUE(scalar_narrow(op::jmp_jlt, true, counter, ten, false));
    EXPECT_EQ(counter.umax, 9U);
    // Signed: x s> -1 and x s< 8.
    scalar_value s = scalar_value::unknown();
    scalar_value minus = scalar_value::constant(static_cast<std::uint64_t>(-1));
    ASSERT_TRUE(scalar_narrow(op::jmp_jsgt, true, s, minus, true));
    scalar_value eight = scalar_value::constant(8);
    ASSERT_TRUE(scalar_narrow(op::jmp_jslt, true, s, eight, true));
    EXPECT_EQ(s.umin, 0U);
    EXPECT_EQ(s.umax, 7U);
    // An impossible side is reported.
    scalar_value five = scalar_value::constant(5);
    scalar_value six = scalar_value::constant(6);
    EXPECT_FALSE(scalar_narrow(op::jmp_jeq, true, five, six, true));
}

// ---- brute-force soundness ----

bool member(const scalar_value& v, std::uint64_t x) {
    const auto x32 = static_cast<std::uint32_t>(x);
    return x >= v.umin && x <= v.umax && static_cast<std::int64_t>(x) >= v.smin &&
           static_cast<std::int64_t>(x) <= v.smax && x32 >= v.u32min && x32 <= v.u32max &&
           static_cast<std::int32_t>(x32) >= v.s32min && static_cast<std::int32_t>(x32) <= v.s32max &&
           (x & ~v.bits.mask) == v.bits.value;
}

scalar_value abstraction(const std::vector<std::uint64_t>& values) {
    scalar_value v = scalar_value::constant(values[0]);
    for (const std::uint64_t x : values) {
        v = scalar_join(v, scalar_value::constant(x));
    }
    v.sync();
    return v;
}

std::uint64_t concrete(std::uint8_t alu_op, std::uint64_t a, std::uint64_t b, bool is64, bool is_signed) {
    if (!is64) {
        const auto x = static_cast<std::uint32_t>(a);
        const auto y = static_cast<std::uint32_t>(b);
        const auto sx = static_cast<std::int32_t>(x);
        const auto sy = static_cast<std::int32_t>(y);
        std::uint32_t r = 0;
        switch (alu_op) {
        case op::alu_add:
            r = x + y;
            break;
        case op::alu_sub:
            r = x - y;
            break;
        case op::alu_mul:
            r = x * y;
            break;
        case op::alu_div:
            if (is_signed) {
                r = y == 0 ? 0 : (sx == INT32_MIN && sy == -1 ? x : static_cast<std::uint32_t>(sx / sy));
            } else {
                r = y == 0 ? 0 : x / y;
            }
            break;
        case op::alu_mod:
            if (is_signed) {
                r = y == 0 ? x : (sy == -1 ? 0 : static_cast<std::uint32_t>(sx % sy));
            } else {
                r = y == 0 ? x : x % y;
            }
            break;
        case op::alu_and:
            r = x & y;
            break;
        case op::alu_or:
            r = x | y;
            break;
        case op::alu_xor:
            r = x ^ y;
            break;
        case op::alu_lsh:
            r = x << (y & 31);
            break;
        case op::alu_rsh:
            r = x >> (y & 31);
            break;
        case op::alu_arsh:
            r = static_cast<std::uint32_t>(sx >> (y & 31));
            break;
        default:
            break;
        }
        return r;
    }
    const auto sa = static_cast<std::int64_t>(a);
    const auto sb = static_cast<std::int64_t>(b);
    switch (alu_op) {
    case op::alu_add:
        return a + b;
    case op::alu_sub:
        return a - b;
    case op::alu_mul:
        return a * b;
    case op::alu_div:
        if (is_signed) {
            return b == 0 ? 0 : (sa == INT64_MIN && sb == -1 ? a : static_cast<std::uint64_t>(sa / sb));
        }
        return b == 0 ? 0 : a / b;
    case op::alu_mod:
        if (is_signed) {
            return b == 0 ? a : (sb == -1 ? 0 : static_cast<std::uint64_t>(sa % sb));
        }
        return b == 0 ? a : a % b;
    case op::alu_and:
        return a & b;
    case op::alu_or:
        return a | b;
    case op::alu_xor:
        return a ^ b;
    case op::alu_lsh:
        return a << (b & 63);
    case op::alu_rsh:
        return a >> (b & 63);
    case op::alu_arsh:
        return static_cast<std::uint64_t>(sa >> (b & 63));
    default:
        return 0;
    }
}

bool holds(std::uint8_t jmp_op, std::uint64_t a, std::uint64_t b, bool is64) {
    if (!is64) {
        a = static_cast<std::uint32_t>(a);
        b = static_cast<std::uint32_t>(b);
    }
    const std::int64_t sa = is64 ? static_cast<std::int64_t>(a) : static_cast<std::int32_t>(a);
    const std::int64_t sb = is64 ? static_cast<std::int64_t>(b) : static_cast<std::int32_t>(b);
    switch (jmp_op) {
    case op::jmp_jeq:
        return a == b;
    case op::jmp_jne:
        return a != b;
    case op::jmp_jgt:
        return a > b;
    case op::jmp_jge:
        return a >= b;
    case op::jmp_jlt:
        return a < b;
    case op::jmp_jle:
        return a <= b;
    case op::jmp_jsgt:
        return sa > sb;
    case op::jmp_jsge:
        return sa >= sb;
    case op::jmp_jslt:
        return sa < sb;
    case op::jmp_jsle:
        return sa <= sb;
    case op::jmp_jset:
        return (a & b) != 0;
    default:
        return false;
    }
}

/// Small sets of numbers around interesting places: 0, the sign boundaries, the 32-bit boundary, random.
std::vector<std::uint64_t> random_set(std::mt19937_64& random) {
    static const std::uint64_t centres[] = {
        0, 1, 0x7fff'ffffULL, 0x8000'0000ULL, 0xffff'ffffULL, 1ULL << 32, ~0ULL, 1ULL << 63, (1ULL << 63) - 1, 255, 16};
    std::vector<std::uint64_t> values;
    const std::size_t count = 1 + random() % 4;
    const std::uint64_t centre = random() % 3 == 0 ? random() : centres[random() % std::size(centres)];
    for (std::size_t i = 0; i < count; ++i) {
        const auto spread = static_cast<std::int64_t>(random() % 17) - 8;
        values.push_back(random() % 5 == 0 ? random() % 64 : centre + static_cast<std::uint64_t>(spread));
    }
    return values;
}

TEST(ScalarSoundness, ArithmeticContainsEveryConcreteResult) {
    std::mt19937_64 random(20261122);
    const std::uint8_t operations[] = {op::alu_add, op::alu_sub, op::alu_mul, op::alu_div, op::alu_mod, op::alu_and,
                                       op::alu_or,  op::alu_xor, op::alu_lsh, op::alu_rsh, op::alu_arsh};
    int checked = 0;
    for (int round = 0; round < 4000; ++round) {
        const auto a = random_set(random);
        auto b = random_set(random);
        const std::uint8_t operation = operations[random() % std::size(operations)];
        const bool is64 = random() % 2 == 0;
        const bool is_signed = (operation == op::alu_div || operation == op::alu_mod) && random() % 2 == 0;
        if (operation == op::alu_lsh || operation == op::alu_rsh || operation == op::alu_arsh) {
            b = {random() % 70};
        }
        const scalar_value result = scalar_alu(operation, abstraction(a), abstraction(b), is64, is_signed);
        for (const std::uint64_t x : a) {
            for (const std::uint64_t y : b) {
                const std::uint64_t r = concrete(operation, x, y, is64, is_signed);
                ASSERT_TRUE(member(result, r)) << "op " << int(operation) << (is64 ? "" : "32") << " " << x << ", " << y
                                               << " = " << r << " not in " << result.describe();
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 10000);
}

TEST(ScalarSoundness, NegationSignExtensionAndByteSwaps) {
    std::mt19937_64 random(7);
    for (int round = 0; round < 2000; ++round) {
        const auto a = random_set(random);
        const scalar_value abstract = abstraction(a);
        const bool is64 = random() % 2 == 0;
        const scalar_value negated = scalar_negate(abstract, is64);
        const int from = (random() % 2 == 0 ? 8 : 16) << (is64 ? random() % 2 : 0);
        const scalar_value extended = scalar_sign_extend(abstract, from, is64);
        for (const std::uint64_t x : a) {
            const std::uint64_t negative =
                is64 ? 0 - x : static_cast<std::uint32_t>(0U - static_cast<std::uint32_t>(x));
            ASSERT_TRUE(member(negated, negative)) << x;
            std::int64_t wide = 0;
            switch (from) {
            case 8:
                wide = static_cast<std::int8_t>(x);
                break;
            case 16:
                wide = static_cast<std::int16_t>(x);
                break;
            default:
                wide = static_cast<std::int32_t>(x);
                break;
            }
            const std::uint64_t expected =
                is64 ? static_cast<std::uint64_t>(wide) : static_cast<std::uint32_t>(static_cast<std::uint64_t>(wide));
            ASSERT_TRUE(member(extended, expected)) << x << " from " << from << ": " << extended.describe();
            ASSERT_TRUE(member(scalar_byte_swap(abstract, 16, true), __builtin_bswap16(static_cast<std::uint16_t>(x))));
            ASSERT_TRUE(member(scalar_byte_swap(abstract, 32, false), static_cast<std::uint32_t>(x)));
        }
    }
}

TEST(ScalarSoundness, BranchesKeepEveryPairThatTakesThem) {
    std::mt19937_64 random(42);
    const std::uint8_t conditions[] = {op::jmp_jeq,  op::jmp_jne,  op::jmp_jgt,  op::jmp_jge,  op::jmp_jlt, op::jmp_jle,
                                       op::jmp_jsgt, op::jmp_jsge, op::jmp_jslt, op::jmp_jsle, op::jmp_jset};
    for (int round = 0; round < 6000; ++round) {
        const auto a = random_set(random);
        const auto b = random() % 2 == 0 ? random_set(random) : std::vector<std::uint64_t>{a[random() % a.size()]};
        const std::uint8_t condition = conditions[random() % std::size(conditions)];
        const bool is64 = random() % 2 == 0;
        const scalar_value da = abstraction(a);
        const scalar_value db = abstraction(b);
        const auto known = scalar_branch_taken(condition, da, db, is64);
        for (const bool taken : {true, false}) {
            scalar_value nd = da;
            scalar_value ns = db;
            const bool possible = scalar_narrow(condition, taken, nd, ns, is64);
            for (const std::uint64_t x : a) {
                for (const std::uint64_t y : b) {
                    if (holds(condition, x, y, is64) != taken) {
                        continue;
                    }
                    ASSERT_TRUE(!known || *known == taken) << "branch wrongly decided for " << x << ", " << y;
                    ASSERT_TRUE(possible) << "op " << int(condition) << " " << x << ", " << y << " " << taken;
                    ASSERT_TRUE(member(nd, x)) << "op " << int(condition) << (is64 ? "" : "32") << " " << x << ", " << y
                                               << " taken " << taken << ": " << nd.describe();
                    ASSERT_TRUE(member(ns, y))
                        << "op " << int(condition) << " " << x << ", " << y << ": " << ns.describe();
                }
            }
        }
    }
}

} // namespace
} // namespace sluice::ebpf::verifier_detail
