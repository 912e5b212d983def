// The JIT against the reference interpreter, piece by piece: random straight-line arithmetic, jumps and atomics over
// every register pairing (the places where x86's fixed registers — rdx:rax for div, cl for shifts, rax for cmpxchg —
// meet eBPF's), helpers, local calls and their depth limit, callx, callbacks, tail calls, the inlined array lookups,
// the batch entry, and the W^X property of the code mapping.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/jit.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf {
namespace {

using namespace op;

constexpr std::int32_t helper_tail_call = 12; // BPF_FUNC_tail_call
constexpr std::int32_t helper_redirect = 23;  // BPF_FUNC_redirect
constexpr std::int32_t helper_map_lookup = 1; // BPF_FUNC_map_lookup_elem
constexpr std::int32_t helper_loop = 181;     // BPF_FUNC_loop

instruction alu64_imm(std::uint8_t operation, int dst, std::int32_t imm) {
    return make_instruction(cls_alu64 | src_k | operation, static_cast<std::uint8_t>(dst), 0, 0, imm);
}
instruction alu64_reg(std::uint8_t operation, int dst, int src, std::int16_t offset = 0) {
    return make_instruction(cls_alu64 | src_x | operation, static_cast<std::uint8_t>(dst),
                            static_cast<std::uint8_t>(src), offset);
}
instruction mov_imm(int dst, std::int32_t imm) {
    return alu64_imm(alu_mov, dst, imm);
}
instruction mov_reg(int dst, int src) {
    return alu64_reg(alu_mov, dst, src);
}
instruction exit_program() {
    return make_instruction(op::exit);
}
instruction call_to(std::int32_t id) {
    return make_instruction(op::call, 0, op::call_helper, 0, id);
}
instruction call_local_at(std::int32_t relative) {
    return make_instruction(op::call, 0, call_local, 0, relative);
}
instruction store_reg(std::uint8_t size, int dst, int src, std::int16_t offset) {
    return make_instruction(cls_stx | mode_mem | size, static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(src),
                            offset);
}
instruction load_reg(std::uint8_t size, int dst, int src, std::int16_t offset, bool sign_extend = false) {
    return make_instruction(cls_ldx | (sign_extend ? mode_memsx : mode_mem) | size, static_cast<std::uint8_t>(dst),
                            static_cast<std::uint8_t>(src), offset);
}
void append_lddw(std::vector<instruction>& code, int dst, std::uint64_t value, std::uint8_t pseudo = 0) {
    code.push_back(make_instruction(lddw, static_cast<std::uint8_t>(dst), pseudo, 0, static_cast<std::int32_t>(value)));
    code.push_back(make_instruction(0, 0, 0, 0, static_cast<std::int32_t>(value >> 32)));
}

/// Runs `code` in the unchecked interpreter and through the JIT; both must succeed with the same r0, or fail with
/// the same message.
void expect_same(std::span<const instruction> code, const helper_table& helpers,
                 const std::array<std::uint64_t, 5>& arguments, const std::string& what, void* user = nullptr) {
    ASSERT_TRUE(validate(code)) << what << ": " << validate(code).error().message;
    auto machine = interpreter::create(code, helpers);
    ASSERT_TRUE(machine) << machine.error().message;
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled) << what << ": " << compiled.error().message;
    jit_runner runner(*compiled);
    const auto expected_result = machine->run(arguments, user);
    const auto jit_result = runner.run(arguments, user);
    ASSERT_EQ(expected_result.has_value(), jit_result.has_value())
        << what << ": interpreter " << (expected_result ? "ran" : expected_result.error().message) << ", JIT "
        << (jit_result ? "ran" : jit_result.error().message);
    if (expected_result) {
        EXPECT_EQ(*expected_result, *jit_result) << what;
    } else {
        EXPECT_EQ(expected_result.error().message, jit_result.error().message) << what;
    }
}

// ---- random arithmetic, jumps, loads, stores and atomics over every register pairing ----

/// Values where the x86 translation has corner cases: zero, -1, INT_MIN and INT_MAX of both widths, shift counts
/// around 32 and 64.
std::uint64_t interesting_value(std::mt19937_64& random) {
    static constexpr std::array<std::uint64_t, 14> values{0,
                                                          1,
                                                          ~std::uint64_t{0},
                                                          0x80000000,
                                                          0x7fffffff,
                                                          0xffffffff,
                                                          std::uint64_t{1} << 63,
                                                          (std::uint64_t{1} << 63) - 1,
                                                          0x100000000,
                                                          0xffffffff80000000,
                                                          31,
                                                          32,
                                                          63,
                                                          64};
    switch (random() % 3) {
    case 0:
        return values[random() % values.size()];
    case 1:
        return random() % 80;
    default:
        return random();
    }
}

std::int32_t interesting_imm(std::mt19937_64& random) {
    return static_cast<std::int32_t>(interesting_value(random));
}

/// A program that sets r0..r9 and eight stack slots, runs `length` random instructions, then folds every register
/// and slot into r0 (so that any difference anywhere shows in r0).
std::vector<instruction> random_program(std::mt19937_64& random, std::size_t length) {
    std::vector<instruction> code;
    for (int r = 0; r <= 9; ++r) {
        append_lddw(code, r, interesting_value(random));
    }
    for (int slot = 1; slot <= 8; ++slot) {
        code.push_back(store_reg(size_dw, 10, static_cast<int>(random() % 10), static_cast<std::int16_t>(-8 * slot)));
    }
    const auto any_register = [&] { return static_cast<int>(random() % 10); };
    const auto slot_offset = [&](int bytes) {
        return static_cast<std::int16_t>(-8 * static_cast<int>(1 + random() % 8) +
                                         (bytes == 4 ? 4 * (random() % 2) : 0));
    };
    std::vector<std::size_t> jumps; // positions whose offset is set once the body's end is known
    const std::size_t body = code.size();
    static constexpr std::array<std::uint8_t, 13> alu_operations{alu_add, alu_sub, alu_mul, alu_div, alu_or,
                                                                 alu_and, alu_lsh, alu_rsh, alu_neg, alu_mod,
                                                                 alu_xor, alu_mov, alu_arsh};
    static constexpr std::array<std::uint8_t, 11> conditions{jmp_jeq,  jmp_jgt, jmp_jge, jmp_jset, jmp_jne, jmp_jsgt,
                                                             jmp_jsge, jmp_jlt, jmp_jle, jmp_jslt, jmp_jsle};
    static constexpr std::array<std::int32_t, 10> atomics{atomic_add,
                                                          atomic_or,
                                                          atomic_and,
                                                          atomic_xor,
                                                          atomic_add | atomic_fetch,
                                                          atomic_or | atomic_fetch,
                                                          atomic_and | atomic_fetch,
                                                          atomic_xor | atomic_fetch,
                                                          atomic_xchg,
                                                          atomic_cmpxchg};
    while (code.size() - body < length) {
        const int dst = any_register();
        const int src = any_register();
        const std::uint8_t wide = random() % 2 == 0 ? cls_alu64 : cls_alu;
        switch (random() % 10) {
        case 0:
        case 1:
        case 2:
        case 3: { // arithmetic, immediate or register
            const std::uint8_t operation = alu_operations[random() % alu_operations.size()];
            const bool from_register = operation != alu_neg && random() % 2 == 0;
            std::int16_t offset = 0;
            if ((operation == alu_div || operation == alu_mod) && random() % 2 == 0) {
                offset = 1;
            } else if (operation == alu_mov && from_register && random() % 3 == 0) {
                static constexpr std::array<std::int16_t, 3> widths{8, 16, 32};
                offset = widths[random() % (wide == cls_alu64 ? 3 : 2)];
            }
            if (from_register) {
                code.push_back(make_instruction(wide | src_x | operation, static_cast<std::uint8_t>(dst),
                                                static_cast<std::uint8_t>(src), offset));
            } else {
                const std::int32_t imm = operation == alu_neg ? 0 : interesting_imm(random);
                code.push_back(
                    make_instruction(wide | src_k | operation, static_cast<std::uint8_t>(dst), 0, offset, imm));
            }
            break;
        }
        case 4: { // byte swaps: le/be (ALU), bswap (ALU64)
            static constexpr std::array<std::int32_t, 3> widths{16, 32, 64};
            const std::int32_t width = widths[random() % 3];
            const auto form = static_cast<int>(random() % 3);
            const std::uint8_t opcode = form == 0   ? (cls_alu | src_k | alu_end)
                                        : form == 1 ? (cls_alu | src_x | alu_end)
                                                    : (cls_alu64 | src_k | alu_end);
            code.push_back(make_instruction(opcode, static_cast<std::uint8_t>(dst), 0, 0, width));
            break;
        }
        case 5: { // a forward conditional jump, 64 or 32 bits, immediate or register
            const std::uint8_t jump_class = random() % 2 == 0 ? cls_jmp : cls_jmp32;
            const std::uint8_t condition = conditions[random() % conditions.size()];
            if (random() % 2 == 0) {
                code.push_back(make_instruction(jump_class | src_x | condition, static_cast<std::uint8_t>(dst),
                                                static_cast<std::uint8_t>(src)));
            } else {
                code.push_back(make_instruction(jump_class | src_k | condition, static_cast<std::uint8_t>(dst), 0, 0,
                                                interesting_imm(random)));
            }
            jumps.push_back(code.size() - 1);
            break;
        }
        case 6: { // loads, sign-extending loads and stores on the stack slots
            static constexpr std::array<std::uint8_t, 4> sizes{size_b, size_h, size_w, size_dw};
            const std::uint8_t size = sizes[random() % 4];
            const std::int16_t offset =
                static_cast<std::int16_t>(slot_offset(8) + (random() % 8) / access_bytes(size) * access_bytes(size));
            if (random() % 2 == 0) {
                code.push_back(load_reg(size, dst, 10, offset, size != size_dw && random() % 2 == 0));
            } else if (random() % 2 == 0) {
                code.push_back(store_reg(size, 10, src, offset));
            } else {
                code.push_back(make_instruction(cls_st | mode_mem | size, 10, 0, offset, interesting_imm(random)));
            }
            break;
        }
        case 7: { // atomics on the stack slots, any source register (r0 included)
            const bool wide_atomic = random() % 2 == 0;
            code.push_back(make_instruction(cls_stx | mode_atomic | (wide_atomic ? size_dw : size_w), 10,
                                            static_cast<std::uint8_t>(src), slot_offset(wide_atomic ? 8 : 4),
                                            atomics[random() % atomics.size()]));
            break;
        }
        case 8: { // gotol and ja
            if (random() % 2 == 0) {
                code.push_back(make_instruction(ja, 0, 0, 0, 0));
            } else {
                code.push_back(make_instruction(ja32, 0, 0, 0, 0));
            }
            jumps.push_back(code.size() - 1);
            break;
        }
        default: // a register copy, so that aliasing pairs (dst == src) come up often
            code.push_back(mov_reg(dst, src));
            break;
        }
    }
    const std::size_t end = code.size();
    for (const std::size_t at : jumps) {
        const std::size_t target = at + 1 + random() % (end - at);
        const auto relative = static_cast<std::int32_t>(target - at - 1);
        if (code[at].opcode == ja32) {
            code[at].imm = relative;
        } else {
            code[at].offset = static_cast<std::int16_t>(relative);
        }
    }
    // Fold: spill r0..r9 below the slots, then r0 = hash of the twenty words.
    for (int r = 0; r <= 9; ++r) {
        code.push_back(store_reg(size_dw, 10, r, static_cast<std::int16_t>(-72 - 8 * r)));
    }
    code.push_back(mov_imm(0, 0));
    append_lddw(code, 2, 0x100000001b3); // FNV-1a's 64-bit prime
    for (int slot = 1; slot <= 18; ++slot) {
        code.push_back(load_reg(size_dw, 1, 10, static_cast<std::int16_t>(-8 * slot)));
        code.push_back(alu64_reg(alu_xor, 0, 1));
        code.push_back(alu64_reg(alu_mul, 0, 2));
    }
    code.push_back(exit_program());
    return code;
}

TEST(jit, random_arithmetic_jumps_and_atomics_agree_with_the_interpreter) {
    const helper_table no_helpers;
    constexpr std::uint64_t seed = 20261122;
    std::mt19937_64 random(seed);
    for (int round = 0; round < 3000; ++round) {
        const auto code = random_program(random, 12 + round % 40);
        expect_same(code, no_helpers, {}, fmt::format("seed {} program {}", seed, round));
        if (::testing::Test::HasFailure()) {
            break; // the first difference is the one to look at
        }
    }
}

// ---- fixed corner cases, each named ----

TEST(jit, division_corner_cases) {
    const helper_table no_helpers;
    struct division_case {
        std::uint8_t opcode;
        std::int16_t offset;
        std::uint64_t dividend;
        std::uint64_t divisor;
        int dst;
        int src;
    };
    const std::uint64_t min64 = std::uint64_t{1} << 63;
    const std::vector<division_case> cases{
        {cls_alu64 | src_x | alu_div, 0, 7, 0, 1, 2},
        {cls_alu64 | src_x | alu_mod, 0, 7, 0, 1, 2},
        {cls_alu | src_x | alu_mod, 0, 0xffffffff00000007, 0, 1, 2},
        {cls_alu64 | src_x | alu_div, 1, min64, ~0ULL, 0, 3},
        {cls_alu64 | src_x | alu_mod, 1, min64, ~0ULL, 3, 0},
        {cls_alu | src_x | alu_div, 1, 0x80000000, 0xffffffff, 3, 3},
        {cls_alu | src_x | alu_mod, 1, 0x80000000, 0xffffffff, 0, 0},
        {cls_alu64 | src_x | alu_div, 1, static_cast<std::uint64_t>(-7), 2, 4, 5},
        {cls_alu64 | src_x | alu_mod, 1, static_cast<std::uint64_t>(-7), 2, 4, 5},
    };
    for (const division_case& division : cases) {
        std::vector<instruction> code;
        append_lddw(code, 6, 0x1111); // r0 and r3 hold other values unless they are the operands
        append_lddw(code, 0, 0xaaaa);
        append_lddw(code, 3, 0x3333);
        append_lddw(code, division.src, division.divisor);
        append_lddw(code, division.dst, division.dividend);
        code.push_back(make_instruction(division.opcode, static_cast<std::uint8_t>(division.dst),
                                        static_cast<std::uint8_t>(division.src), division.offset));
        // r0 = dst ^ (r0 << 1) ^ (r3 << 2): the result and both registers div borrows.
        code.push_back(mov_reg(7, division.dst));
        code.push_back(mov_reg(8, 0));
        code.push_back(alu64_imm(alu_lsh, 8, 1));
        code.push_back(alu64_reg(alu_xor, 7, 8));
        code.push_back(mov_reg(8, 3));
        code.push_back(alu64_imm(alu_lsh, 8, 2));
        code.push_back(alu64_reg(alu_xor, 7, 8));
        code.push_back(mov_reg(0, 7));
        code.push_back(exit_program());
        expect_same(code, no_helpers, {},
                    fmt::format("opcode {:#x} offset {} r{} / r{}", division.opcode, division.offset, division.dst,
                                division.src));
    }
}

TEST(jit, shifts_through_cl_and_zero_counts_clear_the_upper_half) {
    const helper_table no_helpers;
    for (int dst : {0, 1, 4, 6}) {
        for (int src : {0, 4, 5}) {
            for (std::uint64_t count : {0ULL, 1ULL, 31ULL, 32ULL, 33ULL, 63ULL, 64ULL}) {
                for (std::uint8_t operation : {alu_lsh, alu_rsh, alu_arsh}) {
                    for (std::uint8_t width : {cls_alu, cls_alu64}) {
                        std::vector<instruction> code;
                        append_lddw(code, 4, 0x4444444444444444);
                        append_lddw(code, dst, 0xf00000000000000f);
                        append_lddw(code, src, count);
                        code.push_back(make_instruction(width | src_x | operation, static_cast<std::uint8_t>(dst),
                                                        static_cast<std::uint8_t>(src)));
                        code.push_back(mov_reg(7, dst));
                        code.push_back(alu64_imm(alu_lsh, 4, 1));
                        code.push_back(alu64_reg(alu_xor, 7, 4));
                        code.push_back(mov_reg(0, 7));
                        code.push_back(exit_program());
                        expect_same(
                            code, no_helpers, {},
                            fmt::format("shift {:#x} class {} r{} by r{} = {}", operation, width, dst, src, count));
                    }
                }
            }
        }
    }
}

// ---- helpers, stop, calls ----

std::uint64_t sum_arguments(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4, std::uint64_t r5,
                            call_context& context) {
    // Each argument weighted, so that a swapped pair shows; the context must be the run's.
    return r1 + 2 * r2 + 3 * r3 + 4 * r4 + 5 * r5 + (context.engine != nullptr ? 1000 : 0);
}

std::uint64_t stop_with_r1(std::uint64_t r1, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                           call_context& context) {
    context.stop = true;
    context.stop_value = r1;
    return 0;
}

TEST(jit, helpers_get_r1_to_r5_and_the_call_context_and_r6_to_r9_survive) {
    helper_table helpers;
    helpers.set(100, "sum", sum_arguments);
    std::vector<instruction> code{mov_imm(1, 1),
                                  mov_imm(2, 20),
                                  mov_imm(3, 300),
                                  mov_imm(4, 4000),
                                  mov_imm(5, 50000),
                                  mov_imm(6, 6),
                                  mov_imm(7, 7),
                                  mov_imm(8, 8),
                                  mov_imm(9, 9),
                                  call_to(100),
                                  alu64_reg(alu_add, 0, 6),
                                  alu64_reg(alu_add, 0, 7),
                                  alu64_reg(alu_add, 0, 8),
                                  alu64_reg(alu_add, 0, 9),
                                  exit_program()};
    expect_same(code, helpers, {}, "helper arguments");
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    auto result = runner.run({});
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, 1 + 40 + 900 + 16000 + 250000 + 1000 + 30);
}

TEST(jit, a_helper_stops_the_program_from_inside_a_local_call) {
    helper_table helpers;
    helpers.set(101, "stop", stop_with_r1);
    // main: r6 = 5; call f; r0 = 99; exit.  f: call g; exit.  g: r1 = 77; call stop; r0 = 1; exit.
    const std::vector<instruction> code{mov_imm(6, 5),    call_local_at(2), mov_imm(0, 99), exit_program(),
                                        call_local_at(1), exit_program(),   mov_imm(1, 77), call_to(101),
                                        mov_imm(0, 1),    exit_program()};
    expect_same(code, helpers, {}, "stop inside a local call");
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    for (int round = 0; round < 3; ++round) { // the runner is reusable after an unwinding stop
        auto result = runner.run({});
        ASSERT_TRUE(result);
        EXPECT_EQ(*result, 77u);
    }
}

TEST(jit, local_calls_nest_eight_frames_and_no_more) {
    const helper_table no_helpers;
    // f(n): if n == 0 return 0; return f(n - 1) + 1, entered with r1 = depth wanted.
    const std::vector<instruction> code{
        call_local_at(1),                                        // 0: main calls f at 2
        exit_program(),                                          // 1
        make_instruction(cls_jmp | src_k | jmp_jne, 1, 0, 2, 0), // 2: if r1 != 0 goto 5
        mov_imm(0, 0),                                           // 3
        exit_program(),                                          // 4
        alu64_imm(alu_sub, 1, 1),                                // 5
        call_local_at(-5),                                       // 6: f at 2
        alu64_imm(alu_add, 0, 1),                                // 7
        exit_program(),                                          // 8
    };
    for (std::uint64_t depth : {0ULL, 5ULL, 6ULL, 7ULL, 8ULL, 20ULL}) {
        expect_same(code, no_helpers, {depth, 0, 0, 0, 0}, fmt::format("recursion {}", depth));
    }
    auto compiled = jit_program::compile(code, no_helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    auto deepest = runner.run({6, 0, 0, 0, 0}); // main + f(6) .. f(0): 8 frames
    ASSERT_TRUE(deepest) << deepest.error().message;
    EXPECT_EQ(*deepest, 6u);
    auto too_deep = runner.run({7, 0, 0, 0, 0});
    ASSERT_FALSE(too_deep);
    EXPECT_EQ(too_deep.error().message, "instruction 6: local call nests deeper than 8 frames");
    EXPECT_EQ(too_deep.error().instruction, std::optional<std::size_t>{6});
    auto again = runner.run({3, 0, 0, 0, 0}); // the failure unwound everything
    ASSERT_TRUE(again);
    EXPECT_EQ(*again, 3u);
}

TEST(jit, callx_calls_the_helper_its_register_names_or_fails_saying_so) {
    helper_table helpers;
    helpers.set(100, "sum", sum_arguments);
    const std::vector<instruction> code{mov_imm(1, 3), make_instruction(callx, 6), exit_program()};
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    for (std::uint64_t id : {100ULL, 7ULL, 511ULL, 512ULL, ~0ULL}) {
        std::vector<instruction> with_id = code;
        with_id.insert(with_id.begin(), mov_imm(6, static_cast<std::int32_t>(id)));
        expect_same(with_id, helpers, {}, fmt::format("callx {}", id));
    }
}

// ---- callbacks through the XDP helpers ----

TEST(jit, bpf_loop_calls_back_into_compiled_code) {
    const helper_table& helpers = xdp_helper_table();
    // main: r6 = 0 (a counter on the stack), bpf_loop(10, &callback, r10 - 8, 0); r0 = loops * 1000 + counter.
    // callback(i, ctx): *ctx += i * i; return i == 6 (stops after the seventh).
    std::vector<instruction> code{
        make_instruction(cls_st | mode_mem | size_dw, 10, 0, -8, 0),
        mov_imm(1, 10),
    };
    append_lddw(code, 2, 0, pseudo_func); // patched below: the callback's first instruction
    const std::size_t function_address = code.size() - 2;
    code.push_back(mov_reg(3, 10));
    code.push_back(alu64_imm(alu_add, 3, -8));
    code.push_back(mov_imm(4, 0));
    code.push_back(call_to(helper_loop));
    code.push_back(alu64_imm(alu_mul, 0, 1000));
    code.push_back(load_reg(size_dw, 1, 10, -8));
    code.push_back(alu64_reg(alu_add, 0, 1));
    code.push_back(exit_program());
    const std::size_t callback = code.size();
    code.push_back(mov_reg(3, 1));
    code.push_back(alu64_reg(alu_mul, 3, 1));
    code.push_back(load_reg(size_dw, 4, 2, 0));
    code.push_back(alu64_reg(alu_add, 4, 3));
    code.push_back(store_reg(size_dw, 2, 4, 0));
    code.push_back(mov_imm(0, 0));
    code.push_back(make_instruction(cls_jmp | src_k | jmp_jne, 1, 0, 1, 6));
    code.push_back(mov_imm(0, 1));
    code.push_back(exit_program());
    code[function_address].imm = static_cast<std::int32_t>(callback - function_address - 1);
    execution_state state;
    expect_same(code, helpers, {}, "bpf_loop", &state);
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    auto result = runner.run({}, &state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(*result, 7u * 1000 + (0 + 1 + 4 + 9 + 16 + 25 + 36));
}

TEST(jit, callbacks_nest_until_the_frame_limit_and_fail_alike) {
    const helper_table& helpers = xdp_helper_table();
    // main: bpf_loop(1, cb, 0, 0); exit.  cb: bpf_loop(1, cb, 0, 0); r0 = 0; exit — nests until 8 frames.
    std::vector<instruction> code{mov_imm(1, 1)};
    append_lddw(code, 2, 0, pseudo_func);
    code[1].imm = 5; // cb at 7
    code.push_back(mov_imm(3, 0));
    code.push_back(mov_imm(4, 0));
    code.push_back(call_to(helper_loop));
    code.push_back(exit_program());
    code.push_back(mov_imm(1, 1)); // 7: cb
    append_lddw(code, 2, 0, pseudo_func);
    code[8].imm = -2; // cb at 7
    code.push_back(mov_imm(3, 0));
    code.push_back(mov_imm(4, 0));
    code.push_back(call_to(helper_loop));
    code.push_back(mov_imm(0, 0));
    code.push_back(exit_program());
    execution_state state;
    expect_same(code, helpers, {}, "nested callbacks", &state);
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    auto result = runner.run({}, &state);
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().message, "callback nests deeper than 8 frames");
}

TEST(jit, a_stop_inside_a_callback_ends_the_whole_program) {
    helper_table helpers = xdp_helper_table();
    helpers.set(101, "stop", stop_with_r1);
    // main: bpf_loop(5, cb, 0, 0); r0 = 1; exit.  cb: r1 = 55; stop(r1); r0 = 0; exit.
    std::vector<instruction> code{mov_imm(1, 5)};
    append_lddw(code, 2, 0, pseudo_func);
    code[1].imm = 6; // cb at 8
    code.push_back(mov_imm(3, 0));
    code.push_back(mov_imm(4, 0));
    code.push_back(call_to(helper_loop));
    code.push_back(mov_imm(0, 1));
    code.push_back(exit_program());
    code.push_back(mov_imm(1, 55)); // 8: cb
    code.push_back(call_to(101));
    code.push_back(mov_imm(0, 0));
    code.push_back(exit_program());
    execution_state state;
    expect_same(code, helpers, {}, "stop in a callback", &state);
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled);
    jit_runner runner(*compiled);
    auto result = runner.run({}, &state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(*result, 55u);
}

TEST(jit, for_each_map_elem_hands_the_callback_key_and_value) {
    const helper_table& helpers = xdp_helper_table();
    auto values = create_map({map_type::array, 4, 8, 4, 0, "values"}, 1).value();
    for (std::uint32_t key = 0; key < 4; ++key) {
        const std::uint64_t value = 10 * (key + 1);
        ASSERT_EQ(values->update_elem(&key, &value, 0), 0);
    }
    // main: *(fp - 8) = 0; r0 = for_each_map_elem(values, cb, fp - 8, 0); r0 = r0 * 1000 + *(fp - 8).
    // cb(map, key, value, ctx): *ctx += *value * (*key + 1); *value += 1; return *key == 2.
    constexpr std::int32_t helper_for_each = 164; // BPF_FUNC_for_each_map_elem
    std::vector<instruction> code{make_instruction(cls_st | mode_mem | size_dw, 10, 0, -8, 0)};
    append_lddw(code, 1, reinterpret_cast<std::uint64_t>(values.get()));
    append_lddw(code, 2, 0, pseudo_func);
    const std::size_t function_address = code.size() - 2;
    code.push_back(mov_reg(3, 10));
    code.push_back(alu64_imm(alu_add, 3, -8));
    code.push_back(mov_imm(4, 0));
    code.push_back(call_to(helper_for_each));
    code.push_back(alu64_imm(alu_mul, 0, 1000));
    code.push_back(load_reg(size_dw, 1, 10, -8));
    code.push_back(alu64_reg(alu_add, 0, 1));
    code.push_back(exit_program());
    const std::size_t callback = code.size();
    code.push_back(load_reg(size_w, 6, 2, 0));  // key
    code.push_back(load_reg(size_dw, 7, 3, 0)); // value
    code.push_back(mov_reg(8, 6));
    code.push_back(alu64_imm(alu_add, 8, 1));
    code.push_back(alu64_reg(alu_mul, 8, 7));
    code.push_back(load_reg(size_dw, 9, 4, 0));
    code.push_back(alu64_reg(alu_add, 9, 8));
    code.push_back(store_reg(size_dw, 4, 9, 0));
    code.push_back(alu64_imm(alu_add, 7, 1));
    code.push_back(store_reg(size_dw, 3, 7, 0));
    code.push_back(mov_imm(0, 0));
    code.push_back(make_instruction(cls_jmp | src_k | jmp_jne, 6, 0, 1, 2));
    code.push_back(mov_imm(0, 1));
    code.push_back(exit_program());
    code[function_address].imm = static_cast<std::int32_t>(callback - function_address - 1);
    execution_state state;
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled) << compiled.error().message;
    jit_runner runner(*compiled);
    auto result = runner.run({}, &state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(*result, 3u * 1000 + (10 * 1 + 20 * 2 + 30 * 3));
    for (std::uint32_t key = 0; key < 4; ++key) {
        std::uint64_t value = 0;
        ASSERT_EQ(values->lookup_elem(&key, &value), 0);
        EXPECT_EQ(value, 10 * (key + 1) + (key < 3 ? 1 : 0)) << key;
        value = 10 * (key + 1); // as before the run, for the interpreter's
        ASSERT_EQ(values->update_elem(&key, &value, 0), 0);
    }
    auto machine = interpreter::create(code, helpers);
    ASSERT_TRUE(machine);
    auto expected_result = machine->run({}, &state);
    ASSERT_TRUE(expected_result);
    EXPECT_EQ(*expected_result, *result);
}

// ---- tail calls ----

struct tail_call_fixture {
    std::unique_ptr<map> programs;
    std::vector<instruction> first;
    std::vector<instruction> second;
    program_registry registry;
    execution_state state;

    /// first: tail_call(ctx, programs, 1); when that fails, r0 = its error + 1000. second: *(u64 *)ctx += 1, then
    /// tail_call(ctx, programs, 1) (itself) until the limit refuses, and r0 = the count.
    tail_call_fixture() {
        map_definition definition{map_type::prog_array, 4, 4, 2, 0, "programs"};
        programs = create_map(definition, 1).value();
        const auto address = reinterpret_cast<std::uint64_t>(programs.get());
        first = {};
        append_lddw(first, 2, address);
        first.push_back(mov_imm(3, 1));
        first.push_back(call_to(helper_tail_call));
        first.push_back(alu64_imm(alu_add, 0, 1000));
        first.push_back(exit_program());
        second = {load_reg(size_dw, 6, 1, 0), alu64_imm(alu_add, 6, 1), store_reg(size_dw, 1, 6, 0)};
        append_lddw(second, 2, address);
        second.push_back(mov_imm(3, 1));
        second.push_back(call_to(helper_tail_call));
        second.push_back(mov_reg(0, 6));
        second.push_back(exit_program());
    }
};

TEST(jit, tail_calls_run_the_target_and_stop_at_33) {
    tail_call_fixture fixture;
    const helper_table& helpers = xdp_helper_table();
    auto first = jit_program::compile(fixture.first, helpers);
    auto second = jit_program::compile(fixture.second, helpers);
    ASSERT_TRUE(first && second);
    auto runnable = runnable_program::prepare(fixture.second, helpers);
    ASSERT_TRUE(runnable);
    fixture.registry.add(&fixture.second, *runnable);
    fixture.state.programs = &fixture.registry;

    // An empty slot: the helper fails and the program goes on.
    jit_runner runner(*first);
    runner.add_tail_call_target(*second);
    std::uint64_t counter = 0;
    auto result = runner.run({reinterpret_cast<std::uint64_t>(&counter), 0, 0, 0, 0}, &fixture.state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(*result, 1000 - 2u); // -ENOENT + 1000

    auto& slots = static_cast<prog_array_map&>(*fixture.programs);
    ASSERT_EQ(slots.set(1, &fixture.second), 0);
    for (int round = 0; round < 2; ++round) { // twice: the count starts again per run
        counter = 0;
        result = runner.run({reinterpret_cast<std::uint64_t>(&counter), 0, 0, 0, 0}, &fixture.state);
        ASSERT_TRUE(result) << result.error().message;
        // first tail-calls second (1), second itself 32 more times: 33 runs of second, the last one's call fails.
        EXPECT_EQ(counter, 33u);
        EXPECT_EQ(*result, 33u);
    }

    // The interpreter agrees.
    auto machine = interpreter::create(fixture.first, helpers);
    ASSERT_TRUE(machine);
    counter = 0;
    auto expected_result = machine->run({reinterpret_cast<std::uint64_t>(&counter), 0, 0, 0, 0}, &fixture.state);
    ASSERT_TRUE(expected_result);
    EXPECT_EQ(*expected_result, 33u);
    EXPECT_EQ(counter, 33u);

    // A runner that does not know the target's compiled code fails the run, saying so.
    jit_runner unaware(*first);
    counter = 0;
    result = unaware.run({reinterpret_cast<std::uint64_t>(&counter), 0, 0, 0, 0}, &fixture.state);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("no compiled code"), std::string::npos) << result.error().message;
}

TEST(jit, a_tail_call_from_a_subprogram_drops_every_frame) {
    tail_call_fixture fixture;
    const helper_table& helpers = xdp_helper_table();
    const auto address = reinterpret_cast<std::uint64_t>(fixture.programs.get());
    // main: call f; r0 += 1; exit.  f: tail_call(r1, programs, 0); r0 = 7; exit.  target: r0 = 42 + *(u64 *)r1.
    std::vector<instruction> main_program{call_local_at(2), alu64_imm(alu_add, 0, 1), exit_program()};
    append_lddw(main_program, 2, address); // 3: f
    main_program.push_back(mov_imm(3, 0));
    main_program.push_back(call_to(helper_tail_call));
    main_program.push_back(mov_imm(0, 7));
    main_program.push_back(exit_program());
    const std::vector<instruction> target{load_reg(size_dw, 0, 1, 0), alu64_imm(alu_add, 0, 42), exit_program()};
    auto runnable = runnable_program::prepare(target, helpers);
    ASSERT_TRUE(runnable);
    fixture.registry.add(&target, *runnable);
    fixture.state.programs = &fixture.registry;
    ASSERT_EQ(static_cast<prog_array_map&>(*fixture.programs).set(0, &target), 0);
    auto compiled = jit_program::compile(main_program, helpers);
    auto compiled_target = jit_program::compile(target, helpers);
    ASSERT_TRUE(compiled && compiled_target);
    jit_runner runner(*compiled);
    runner.add_tail_call_target(*compiled_target);
    std::uint64_t context = 1000;
    const std::array<std::uint64_t, 5> arguments{reinterpret_cast<std::uint64_t>(&context), 0, 0, 0, 0};
    auto result = runner.run(arguments, &fixture.state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(*result, 1042u);
    auto machine = interpreter::create(main_program, helpers);
    ASSERT_TRUE(machine);
    auto expected_result = machine->run(arguments, &fixture.state);
    ASSERT_TRUE(expected_result);
    EXPECT_EQ(*expected_result, 1042u);
}

// ---- load-time specialisation ----

TEST(jit, constant_array_lookups_are_inlined_with_the_helper_s_results) {
    for (const map_type type : {map_type::array, map_type::percpu_array}) {
        std::vector<std::unique_ptr<map>> maps;
        maps.push_back(create_map({type, 4, 12, 5, 0, "values"}, 3).value());
        for (std::uint32_t key = 0; key < 5; ++key) {
            std::vector<std::uint8_t> value(maps[0]->syscall_value_size());
            for (std::size_t i = 0; i < value.size(); ++i) {
                value[i] = static_cast<std::uint8_t>(key * 16 + i);
            }
            ASSERT_EQ(maps[0]->update_elem(&key, value.data(), 0), 0);
        }
        // r0 = lookup(values, &key) ? *(u32 *)(value + 8) : 0xdead, key from r1.
        std::vector<instruction> code{store_reg(size_w, 10, 1, -4)};
        append_lddw(code, 1, reinterpret_cast<std::uint64_t>(maps[0].get()));
        code.push_back(mov_reg(2, 10));
        code.push_back(alu64_imm(alu_add, 2, -4));
        const std::size_t call_at = code.size();
        code.push_back(call_to(helper_map_lookup));
        code.push_back(make_instruction(cls_jmp | src_k | jmp_jne, 0, 0, 2, 0));
        code.push_back(mov_imm(0, 0xdead));
        code.push_back(exit_program());
        code.push_back(load_reg(size_w, 0, 0, 8));
        code.push_back(exit_program());

        std::vector<instruction_facts> facts(code.size());
        facts[call_at].constant_map = 0;
        for (unsigned cpu : {0u, 2u}) {
            const helper_table& helpers = xdp_helper_table();
            auto inlined = jit_program::compile(code, helpers, {.facts = facts, .maps = maps, .cpu = cpu});
            auto generic = jit_program::compile(code, helpers);
            ASSERT_TRUE(inlined && generic);
            EXPECT_EQ(inlined->inlined_lookups(), 1u);
            EXPECT_EQ(generic->inlined_lookups(), 0u);
            jit_runner fast(*inlined);
            jit_runner slow(*generic);
            execution_state state(cpu);
            for (std::uint64_t key : {0ULL, 3ULL, 4ULL, 5ULL, 0xffffffffULL, 0x100000001ULL}) {
                auto inline_result = fast.run({key, 0, 0, 0, 0}, &state);
                auto call_result = slow.run({key, 0, 0, 0, 0}, &state);
                ASSERT_TRUE(inline_result && call_result);
                EXPECT_EQ(*inline_result, *call_result) << to_string(type) << " cpu " << cpu << " key " << key;
            }
        }
    }
}

TEST(jit, without_facts_a_lookup_is_inlined_only_when_its_block_loads_the_map) {
    std::vector<std::unique_ptr<map>> maps;
    maps.push_back(create_map({map_type::array, 4, 8, 4, 0, "values"}, 1).value());
    const auto address = reinterpret_cast<std::uint64_t>(maps[0].get());
    const auto build = [&](bool jump_between) {
        // r0 = lookup(values, &r1's key) != 0; with jump_between, a jump lands between the map load and the call,
        // so the map is no longer known there.
        std::vector<instruction> code{store_reg(size_w, 10, 1, -4)};
        code.push_back(make_instruction(cls_jmp | src_k | jmp_jeq, 1, 0, 2, 77)); // to the `mov r2, r10` or past
        append_lddw(code, 1, address);
        if (!jump_between) {
            code[1].offset = 0;
        }
        code.push_back(mov_reg(2, 10));
        code.push_back(alu64_imm(alu_add, 2, -4));
        code.push_back(call_to(helper_map_lookup));
        code.push_back(exit_program());
        return code;
    };
    const helper_table& helpers = xdp_helper_table();
    auto straight = jit_program::compile(build(false), helpers, {.facts = {}, .maps = maps, .cpu = 0});
    auto joined = jit_program::compile(build(true), helpers, {.facts = {}, .maps = maps, .cpu = 0});
    ASSERT_TRUE(straight && joined);
    EXPECT_EQ(straight->inlined_lookups(), 1u);
    EXPECT_EQ(joined->inlined_lookups(), 0u);
    execution_state state;
    for (std::uint64_t key : {0ULL, 3ULL, 4ULL}) {
        expect_same(build(false), helpers, {key, 0, 0, 0, 0}, fmt::format("key {}", key), &state);
    }
}

// ---- threads ----

TEST(jit, one_compiled_program_runs_on_several_threads_and_its_atomics_are_atomic) {
    // Workers share maps, so atomics are locked instructions, and compiled code is shared by runners on several
    // threads: four threads, each with its own runner over the same code, update shared words 300,000 times each and
    // the totals must be exact. (How often a missing lock would lose an update depends on the machine; on a 2-vCPU
    // VM it did not show, so this is a check of concurrent runners, not a proof of the lock prefix.)
    const helper_table no_helpers;
    struct shared_words {
        std::uint64_t added{};
        alignas(64) std::uint64_t fetched{}; // another cache line: contention on `added` alone
        std::uint32_t bits{};
    } shared;
    const auto base = reinterpret_cast<std::uint64_t>(&shared);
    // Each run: 1,000 times { added += 1; fetched += 2 (fetching) }, then bits |= r1 (fetching); r0 = the last
    // value fetched from `fetched`.
    std::vector<instruction> code;
    append_lddw(code, 6, base);
    code.push_back(mov_imm(7, 1));
    code.push_back(mov_imm(2, 1000));
    code.push_back(make_instruction(cls_stx | mode_atomic | size_dw, 6, 7, 0, atomic_add)); // 4: loop
    code.push_back(mov_imm(8, 2));
    code.push_back(make_instruction(cls_stx | mode_atomic | size_dw, 6, 8, 64, atomic_add | atomic_fetch));
    code.push_back(alu64_imm(alu_sub, 2, 1));
    code.push_back(make_instruction(cls_jmp | src_k | jmp_jne, 2, 0, -5, 0));
    code.push_back(mov_reg(9, 1)); // r1: this thread's bit
    code.push_back(make_instruction(cls_stx | mode_atomic | size_w, 6, 9, 72, atomic_or | atomic_fetch));
    code.push_back(mov_reg(0, 8));
    code.push_back(exit_program());
    auto compiled = jit_program::compile(code, no_helpers);
    ASSERT_TRUE(compiled) << compiled.error().message;
    constexpr int threads = 4;
    constexpr int rounds = 300;
    std::vector<std::thread> workers;
    std::array<bool, threads> ordered{};
    std::atomic<int> ready{0}; // all start together, so that their adds overlap
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            jit_runner runner(*compiled);
            ready.fetch_add(1);
            while (ready.load() < threads) {
            }
            std::uint64_t last = 0;
            bool increasing = true;
            for (int round = 0; round < rounds; ++round) {
                const auto before = runner.run({std::uint64_t{1} << t, 0, 0, 0, 0});
                increasing = increasing && before && (round == 0 || *before > last);
                last = before ? *before : 0;
            }
            ordered[static_cast<std::size_t>(t)] = increasing;
        });
    }
    for (auto& worker : workers) {
        worker.join();
    }
    EXPECT_EQ(shared.added, std::uint64_t{threads} * rounds * 1000);
    EXPECT_EQ(shared.fetched, std::uint64_t{threads} * rounds * 1000 * 2);
    EXPECT_EQ(shared.bits, (1u << threads) - 1);
    for (int t = 0; t < threads; ++t) {
        EXPECT_TRUE(ordered[static_cast<std::size_t>(t)]) << "thread " << t << " saw a fetch-add go backwards";
    }
}

// ---- batch entry ----

TEST(jit, batch_entry_runs_every_context_records_redirects_and_resumes_after_a_failure) {
    const helper_table& helpers = xdp_helper_table();
    // r0 = first packet byte: 4 redirects to ifindex = second byte (bpf_redirect), 9 fails (callx to no helper).
    std::vector<instruction> code{
        load_reg(size_dw, 2, 1, 0),                              // r2 = data
        load_reg(size_b, 6, 2, 0),                               // r6 = data[0]
        load_reg(size_b, 7, 2, 1),                               // r7 = data[1]
        make_instruction(cls_jmp | src_k | jmp_jne, 6, 0, 4, 4), // not 4: skip the redirect
        mov_reg(1, 7),
        mov_imm(2, 0),
        call_to(helper_redirect),
        mov_imm(6, 4),
        make_instruction(cls_jmp | src_k | jmp_jne, 6, 0, 2, 9),
        mov_imm(8, 600),
        make_instruction(callx, 8),
        mov_reg(0, 6),
        exit_program(),
    };
    auto compiled = jit_program::compile(code, helpers);
    ASSERT_TRUE(compiled) << compiled.error().message;
    jit_runner runner(*compiled);

    const std::vector<std::array<std::uint8_t, 2>> packets{{2, 0}, {4, 7}, {1, 0}, {9, 0}, {4, 11}, {3, 0}};
    std::vector<std::array<std::uint8_t, 2>> buffers = packets;
    std::vector<xdp_context> contexts(packets.size());
    std::vector<xdp_context*> pointers;
    for (std::size_t i = 0; i < packets.size(); ++i) {
        contexts[i].data = buffers[i].data();
        contexts[i].data_end = buffers[i].data() + 2;
        contexts[i].data_meta = contexts[i].data;
        pointers.push_back(&contexts[i]);
    }
    std::vector<std::uint64_t> results(packets.size(), 0xffff);
    std::vector<redirect_decision> decisions(packets.size());
    execution_state state;
    std::size_t reached = runner.run_batch(pointers, results, decisions, state);
    ASSERT_EQ(reached, 3u);
    EXPECT_EQ(runner.last_error().message, "instruction 10: callx through r8 = 0x258, which names no helper");
    reached = runner.run_batch(pointers, results, decisions, state, reached + 1);
    ASSERT_EQ(reached, packets.size());
    EXPECT_EQ(results[0], 2u);
    EXPECT_EQ(results[1], 4u);
    EXPECT_EQ(results[2], 1u);
    EXPECT_EQ(results[4], 4u);
    EXPECT_EQ(results[5], 3u);
    EXPECT_EQ(decisions[1].target, redirect_decision::kind::interface);
    EXPECT_EQ(decisions[1].ifindex, 7u);
    EXPECT_EQ(decisions[4].ifindex, 11u);
    EXPECT_EQ(state.context, &contexts[5]); // begin_packet()'s part is done per packet
}

// ---- executable memory ----

/// The permissions of the mapping holding `address`, from /proc/self/maps ("r-xp"), or "" when none does.
std::string permissions_of(const void* address) {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    const auto where = reinterpret_cast<std::uintptr_t>(address);
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range;
        std::string permissions;
        fields >> range >> permissions;
        const auto dash = range.find('-');
        const std::uintptr_t begin = std::stoull(range.substr(0, dash), nullptr, 16);
        const std::uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
        if (where >= begin && where < end) {
            return permissions;
        }
    }
    return {};
}

/// Mappings that are writable and executable at once, as /proc/self/maps lines.
std::vector<std::string> writable_and_executable() {
    std::vector<std::string> found;
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream fields(line);
        std::string range;
        std::string permissions;
        fields >> range >> permissions;
        if (permissions.size() >= 3 && permissions[1] == 'w' && permissions[2] == 'x') {
            found.push_back(line);
        }
    }
    return found;
}

TEST(jit, code_is_never_writable_and_executable_at_once) {
    const helper_table no_helpers;
    std::mt19937_64 random(7);
    const auto code = random_program(random, 30);
    const auto before = writable_and_executable();
    auto compiled = jit_program::compile(code, no_helpers);
    ASSERT_TRUE(compiled);
    EXPECT_GT(compiled->native_size(), 0u);
    EXPECT_EQ(permissions_of(compiled->native_code()), "r-xp");
    EXPECT_EQ(permissions_of(compiled->native_code() + compiled->native_size() - 1), "r-xp");
    // Compiling made no writable and executable mapping: xbyak assembled in plain heap memory. Under a tool that
    // maps the whole client writable and executable (valgrind), only the JIT's own mapping can be checked.
    if (before.empty()) {
        EXPECT_EQ(writable_and_executable(), before);
    } else {
        std::cout << "note: the process already had writable and executable mappings (a tool such as valgrind); "
                     "checked the JIT's own mapping only\n";
    }
}

TEST(jit, refuses_what_the_interpreter_refuses) {
    const helper_table no_helpers;
    const std::vector<instruction> missing_helper{call_to(100), exit_program()};
    auto compiled = jit_program::compile(missing_helper, no_helpers);
    ASSERT_FALSE(compiled);
    EXPECT_EQ(compiled.error().instruction, std::optional<std::size_t>{0});
    const std::vector<instruction> falls_off{mov_imm(0, 1)};
    EXPECT_FALSE(jit_program::compile(falls_off, no_helpers));
}

} // namespace
} // namespace sluice::ebpf
