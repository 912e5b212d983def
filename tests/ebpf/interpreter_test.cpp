// The interpreter, instruction class by instruction class, with RFC 9669's edge cases: division by zero, INT_MIN / -1,
// masked shifts, sign extension, byte swaps, atomics, local calls, callx, and checked mode's refusals.

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/interpreter.hpp"

namespace {

using namespace sluice::ebpf;

constexpr std::uint64_t int64_min = std::uint64_t{1} << 63;

std::uint64_t add_helper(std::uint64_t r1, std::uint64_t r2, std::uint64_t, std::uint64_t, std::uint64_t,
                         call_context&) {
    return r1 + r2;
}

std::uint64_t stop_helper(std::uint64_t r1, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                          call_context& context) {
    context.stop = true;
    context.stop_value = r1;
    return 0;
}

/// Assembles and runs `text` with r1 = address of `memory` (registered writable unless `read_only`), r2 = its size.
struct runner {
    interpreter_options options{.checked = true};
    bool read_only{};
    std::vector<std::uint8_t> memory;
    helper_table helpers;
    std::vector<instruction> code;

    runner() {
        helpers.set(1, "add", add_helper);
        helpers.set(2, "stop", stop_helper);
    }

    sluice::expected<std::uint64_t> run(std::string_view text) {
        auto assembled = assemble(text);
        if (!assembled) {
            return assembled.error();
        }
        code = std::move(*assembled);
        auto machine = interpreter::create(code, helpers, options);
        if (!machine) {
            return machine.error();
        }
        const auto address = memory.empty() ? 0 : reinterpret_cast<std::uintptr_t>(memory.data());
        if (!memory.empty()) {
            machine->add_region({address, memory.size(), !read_only, "packet"});
        }
        return machine->run({address, memory.size(), 0, 0, 0});
    }
};

std::uint64_t r0(std::string_view text) {
    runner machine;
    auto result = machine.run(text);
    EXPECT_TRUE(result.has_value()) << text << "\n" << (result ? "" : result.error().message);
    return result ? result.value() : 0xdeadbeef;
}

/// Runs in both modes and checks they agree, so the unchecked loop is covered too.
std::uint64_t r0_both_modes(std::string_view text) {
    runner unchecked;
    unchecked.options.checked = false;
    const auto fast = unchecked.run(text);
    const auto checked = r0(text);
    EXPECT_TRUE(fast.has_value());
    if (fast) {
        EXPECT_EQ(fast.value(), checked) << text;
    }
    return checked;
}

std::string failure(runner& machine, std::string_view text) {
    auto result = machine.run(text);
    EXPECT_FALSE(result.has_value()) << text;
    return result ? std::string{} : result.error().message;
}

TEST(interpreter, alu64_basics) {
    EXPECT_EQ(r0_both_modes("mov %r0, 7\nadd %r0, 5\nsub %r0, 2\nmul %r0, 3\nexit"), 30u);
    EXPECT_EQ(r0_both_modes("mov %r0, -1\nexit"), ~std::uint64_t{0}); // imm sign-extends in ALU64
    EXPECT_EQ(r0_both_modes("mov %r0, 0xf0\nor %r0, 0x0f\nand %r0, 0x3c\nxor %r0, 0xff\nexit"), 0xc3u);
    EXPECT_EQ(r0_both_modes("mov %r0, 5\nneg %r0\nexit"), std::uint64_t(-5));
    EXPECT_EQ(r0_both_modes("mov %r0, -8\narsh %r0, 1\nexit"), std::uint64_t(-4));
    EXPECT_EQ(r0_both_modes("mov %r0, -8\nrsh %r0, 60\nexit"), 0xfu);
}

TEST(interpreter, alu32_zero_extends_its_results) {
    EXPECT_EQ(r0("mov %r0, -1\nadd32 %r0, 1\nexit"), 0u);
    EXPECT_EQ(r0("mov %r0, -1\nmov32 %r0, %r0\nexit"), 0xffffffffu);
    EXPECT_EQ(r0("mov32 %r0, -1\nexit"), 0xffffffffu);
    EXPECT_EQ(r0("mov %r0, 5\nneg32 %r0\nexit"), 0xfffffffbu);
    EXPECT_EQ(r0("mov32 %r0, -8\narsh32 %r0, 1\nexit"), 0xfffffffcu);
    EXPECT_EQ(r0("lddw %r0, 0x100000003\nmul32 %r0, 2\nexit"), 6u);
}

TEST(interpreter, signed_division_overflow_follows_the_rfc) {
    // INT64_MIN / -1 = INT64_MIN and INT64_MIN % -1 = 0, with immediate and register divisors.
    EXPECT_EQ(r0("lddw %r0, 0x8000000000000000\nsdiv %r0, -1\nexit"), int64_min);
    EXPECT_EQ(r0("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit"), int64_min);
    EXPECT_EQ(r0("lddw %r0, 0x8000000000000000\nsmod %r0, -1\nexit"), 0u);
    EXPECT_EQ(r0("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit"), 0u);
    // INT32_MIN / -1 and % -1 in 32 bits, zero-extended.
    EXPECT_EQ(r0("mov32 %r0, 0x80000000\nsdiv32 %r0, -1\nexit"), 0x80000000u);
    EXPECT_EQ(r0("mov32 %r0, 0x80000000\nmov32 %r1, -1\nsmod32 %r0, %r1\nexit"), 0u);
    // Ordinary signed results: truncation toward zero, remainder takes the dividend's sign.
    EXPECT_EQ(r0("mov %r0, -7\nsdiv %r0, 2\nexit"), std::uint64_t(-3));
    EXPECT_EQ(r0("mov %r0, -7\nsmod %r0, 2\nexit"), std::uint64_t(-1));
    EXPECT_EQ(r0("mov %r0, 7\nsmod %r0, -2\nexit"), 1u);
    EXPECT_EQ(r0("mov32 %r0, -7\nsdiv32 %r0, 2\nexit"), 0xfffffffdu);
    // Unsigned division treats -1 as huge.
    EXPECT_EQ(r0("mov %r0, -7\ndiv %r0, 2\nexit"), std::uint64_t(-7) / 2);
}

TEST(interpreter, division_and_modulo_by_zero) {
    for (const char* divide : {"div", "sdiv"}) {
        const std::string name = divide;
        EXPECT_EQ(r0("mov %r0, 9\n" + name + " %r0, 0\nexit"), 0u) << name;
        EXPECT_EQ(r0("mov %r0, 9\nmov %r1, 0\n" + name + " %r0, %r1\nexit"), 0u) << name;
        EXPECT_EQ(r0("lddw %r0, 0x100000009\n" + name + "32 %r0, 0\nexit"), 0u) << name;
        EXPECT_EQ(r0("mov %r0, 9\nmov %r1, 0\n" + name + "32 %r0, %r1\nexit"), 0u) << name;
    }
    for (const char* modulo : {"mod", "smod"}) {
        const std::string name = modulo;
        EXPECT_EQ(r0("mov %r0, -9\n" + name + " %r0, 0\nexit"), std::uint64_t(-9)) << name;
        EXPECT_EQ(r0("mov %r0, -9\nmov %r1, 0\n" + name + " %r0, %r1\nexit"), std::uint64_t(-9)) << name;
        // 32-bit: dst unchanged in its low half, upper half zeroed.
        EXPECT_EQ(r0("mov %r0, -9\n" + name + "32 %r0, 0\nexit"), 0xfffffff7u) << name;
        EXPECT_EQ(r0("mov %r0, -9\nmov %r1, 0\n" + name + "32 %r0, %r1\nexit"), 0xfffffff7u) << name;
    }
    // A 32-bit divisor is its low half only: 0x100000000 is zero.
    EXPECT_EQ(r0("mov %r0, 9\nlddw %r1, 0x100000000\ndiv32 %r0, %r1\nexit"), 0u);
}

TEST(interpreter, shifts_are_masked) {
    EXPECT_EQ(r0("mov %r0, 1\nlsh %r0, 63\nexit"), int64_min);
    EXPECT_EQ(r0("mov %r0, 1\nlsh %r0, 64\nexit"), 1u); // 64 & 63 = 0
    EXPECT_EQ(r0("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit"), 2u);
    EXPECT_EQ(r0("lddw %r0, 0x8000000000000000\nrsh %r0, 63\nexit"), 1u);
    EXPECT_EQ(r0("lddw %r0, 0x8000000000000000\narsh %r0, 64\nexit"), int64_min);
    EXPECT_EQ(r0("mov %r0, 1\nlsh32 %r0, 31\nexit"), 0x80000000u);
    EXPECT_EQ(r0("mov %r0, 1\nlsh32 %r0, 32\nexit"), 1u); // 32 & 31 = 0
    EXPECT_EQ(r0("mov32 %r0, 0x80000000\nmov %r1, 32\nrsh32 %r0, %r1\nexit"), 0x80000000u);
    EXPECT_EQ(r0("mov32 %r0, 0x80000000\narsh32 %r0, 31\nexit"), 0xffffffffu);
}

TEST(interpreter, sign_extending_moves) {
    EXPECT_EQ(r0("mov %r1, 0x180\nmovsx864 %r0, %r1\nexit"), 0xffffffffffffff80u);
    EXPECT_EQ(r0("mov %r1, 0x7f\nmovsx864 %r0, %r1\nexit"), 0x7fu);
    EXPECT_EQ(r0("mov %r1, 0x18000\nmovsx1664 %r0, %r1\nexit"), 0xffffffffffff8000u);
    EXPECT_EQ(r0("lddw %r1, 0x180000000\nmovsx3264 %r0, %r1\nexit"), 0xffffffff80000000u);
    EXPECT_EQ(r0("mov %r1, 0x80\nmovsx832 %r0, %r1\nexit"), 0xffffff80u); // 32-bit: zero-extended above
    EXPECT_EQ(r0("mov %r1, 0x8000\nmovsx1632 %r0, %r1\nexit"), 0xffff8000u);
}

TEST(interpreter, sign_extending_loads) {
    runner machine;
    machine.memory = {0x80, 0x00, 0x80, 0x00, 0x00, 0x80, 0x7f, 0x00};
    EXPECT_EQ(machine.run("ldxsb %r0, [%r1]\nexit").value(), 0xffffffffffffff80u);
    EXPECT_EQ(machine.run("ldxsh %r0, [%r1+2]\nexit").value(), 0x80u);
    EXPECT_EQ(machine.run("ldxsh %r0, [%r1+1]\nexit").value(), 0xffffffffffff8000u); // unaligned is fine
    EXPECT_EQ(machine.run("ldxsw %r0, [%r1+2]\nexit").value(), 0xffffffff80000080u);
    EXPECT_EQ(machine.run("ldxsw %r0, [%r1+4]\nexit").value(), 0x7f8000u);
    EXPECT_EQ(machine.run("ldxb %r0, [%r1]\nexit").value(), 0x80u);
    EXPECT_EQ(machine.run("ldxdw %r0, [%r1]\nexit").value(), 0x007f800000800080u);
}

TEST(interpreter, byte_swaps_of_each_width) {
    const std::string value = "lddw %r0, 0x1122334455667788\n";
    EXPECT_EQ(r0(value + "le16 %r0\nexit"), 0x7788u);
    EXPECT_EQ(r0(value + "le32 %r0\nexit"), 0x55667788u);
    EXPECT_EQ(r0(value + "le64 %r0\nexit"), 0x1122334455667788u);
    EXPECT_EQ(r0(value + "be16 %r0\nexit"), 0x8877u);
    EXPECT_EQ(r0(value + "be32 %r0\nexit"), 0x88776655u);
    EXPECT_EQ(r0(value + "be64 %r0\nexit"), 0x8877665544332211u);
    EXPECT_EQ(r0(value + "bswap16 %r0\nexit"), 0x8877u);
    EXPECT_EQ(r0(value + "bswap32 %r0\nexit"), 0x88776655u);
    EXPECT_EQ(r0(value + "bswap64 %r0\nexit"), 0x8877665544332211u);
}

TEST(interpreter, jumps_64_and_32_bit) {
    EXPECT_EQ(r0("mov %r0, 0\nlddw %r1, 0x100000000\njeq %r1, 0, +1\nmov %r0, 1\nexit"), 1u);
    EXPECT_EQ(r0("mov %r0, 0\nlddw %r1, 0x100000000\njeq32 %r1, 0, +1\nmov %r0, 1\nexit"), 0u);
    EXPECT_EQ(r0("mov %r0, 0\nmov %r1, -1\njsgt %r1, 0, +1\nmov %r0, 1\nexit"), 1u);
    EXPECT_EQ(r0("mov %r0, 0\nmov %r1, -1\njgt %r1, 0, +1\nmov %r0, 1\nexit"), 0u);
    EXPECT_EQ(r0("mov %r0, 0\nmov32 %r1, -1\njslt32 %r1, 0, +1\nmov %r0, 1\nexit"), 0u);
    EXPECT_EQ(r0("mov %r0, 0\nmov32 %r1, -1\njslt %r1, 0, +1\nmov %r0, 1\nexit"), 1u);
    EXPECT_EQ(r0("mov %r0, 3\nmov %r1, 6\njset %r1, %r0, +1\nmov %r0, 1\nexit"), 3u);
    EXPECT_EQ(r0("mov %r0, 1\nja32 +1\nmov %r0, 2\nexit"), 1u);
    EXPECT_EQ(r0("mov %r0, 1\nja +1\nmov %r0, 2\nexit"), 1u);
}

TEST(interpreter, stores_and_loads_on_the_stack) {
    EXPECT_EQ(r0_both_modes("stdw [%r10-8], -1\nstw [%r10-8], 0\nldxdw %r0, [%r10-8]\nexit"), 0xffffffff00000000u);
    EXPECT_EQ(r0_both_modes("mov %r1, 0x1234\nstxh [%r10-2], %r1\nstb [%r10-2], 0x56\nldxh %r0, [%r10-2]\nexit"),
              0x1256u);
}

TEST(interpreter, atomics_each_operation) {
    const std::string setup = "stdw [%r10-8], 0x0c\nmov %r1, 0x0a\n";
    EXPECT_EQ(r0(setup + "lock add [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"), 0x16u);
    EXPECT_EQ(r0(setup + "lock or [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"), 0x0eu);
    EXPECT_EQ(r0(setup + "lock and [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"), 0x08u);
    EXPECT_EQ(r0(setup + "lock xor [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"), 0x06u);
    // Without fetch the source register is untouched; with fetch it receives the old value.
    EXPECT_EQ(r0(setup + "lock add [%r10-8], %r1\nmov %r0, %r1\nexit"), 0x0au);
    EXPECT_EQ(r0(setup + "lock fetch add [%r10-8], %r1\nmov %r0, %r1\nexit"), 0x0cu);
    EXPECT_EQ(r0(setup + "lock fetch or [%r10-8], %r1\nldxdw %r0, [%r10-8]\nadd %r0, %r1\nexit"), 0x0eu + 0x0c);
    EXPECT_EQ(r0(setup + "lock fetch and [%r10-8], %r1\nmov %r0, %r1\nexit"), 0x0cu);
    EXPECT_EQ(r0(setup + "lock fetch xor [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"), 0x06u);
    EXPECT_EQ(r0(setup + "lock xchg [%r10-8], %r1\nldxdw %r0, [%r10-8]\nlsh %r0, 8\nor %r0, %r1\nexit"), 0x0a0cu);
}

TEST(interpreter, atomics_32_bit_touch_and_fetch_only_4_bytes) {
    const std::string setup = "stdw [%r10-8], -1\nmov %r1, 1\n";
    // The add wraps within the low word only; the fetched value is zero-extended.
    EXPECT_EQ(r0(setup + "lock add32 [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"), 0xffffffff00000000u);
    EXPECT_EQ(r0(setup + "lock fetch add32 [%r10-8], %r1\nmov %r0, %r1\nexit"), 0xffffffffu);
    EXPECT_EQ(r0(setup + "lock xchg32 [%r10-8], %r1\nmov %r0, %r1\nexit"), 0xffffffffu);
}

TEST(interpreter, cmpxchg_success_and_failure) {
    // Success: memory == r0, so memory takes r1; r0 gets the old value.
    EXPECT_EQ(r0("stdw [%r10-8], 5\nmov %r0, 5\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\nldxdw %r2, [%r10-8]\n"
                 "lsh %r2, 8\nor %r0, %r2\nexit"),
              0x0905u);
    // Failure: memory stays; r0 still gets the old value.
    EXPECT_EQ(r0("stdw [%r10-8], 5\nmov %r0, 4\nmov %r1, 9\nlock cmpxchg [%r10-8], %r1\nldxdw %r2, [%r10-8]\n"
                 "lsh %r2, 8\nor %r0, %r2\nexit"),
              0x0505u);
    // 32-bit: compares the low halves of r0, loads the old value zero-extended.
    EXPECT_EQ(r0("stw [%r10-4], -1\nlddw %r0, 0x12ffffffff\nmov %r1, 1\nlock cmpxchg32 [%r10-4], %r1\n"
                 "ldxw %r2, [%r10-4]\nlsh %r2, 32\nor %r0, %r2\nexit"),
              0x00000001ffffffffu);
}

TEST(interpreter, local_calls_preserve_r6_to_r9_and_have_their_own_frames) {
    const char* program = R"(
        mov %r6, 6
        mov %r7, 7
        mov %r8, 8
        mov %r9, 9
        stdw [%r10-8], 100
        mov %r1, %r10
        call local function
        # r0 = the callee's sum; r6..r9 and the caller's stack slot must be intact.
        ldxdw %r2, [%r10-8]
        add %r0, %r2
        add %r0, %r6
        add %r0, %r7
        add %r0, %r8
        add %r0, %r9
        exit
    function:
        mov %r6, 1000
        mov %r7, 1000
        mov %r8, 1000
        mov %r9, 1000
        # A fresh frame: its -8 slot is not the caller's. The caller's stack is reachable through a pointer.
        stdw [%r10-8], 1
        ldxdw %r0, [%r10-8]
        ldxdw %r2, [%r1-8]
        add %r0, %r2
        exit
    )";
    EXPECT_EQ(r0_both_modes(program), 1u + 100 + 100 + 6 + 7 + 8 + 9);
}

TEST(interpreter, call_depth_is_limited) {
    // Each call recurses until the limit: max_call_depth frames in all, so max_call_depth - 1 nested calls.
    runner machine;
    const std::string message = failure(machine, "call local f\nexit\nf:\ncall local f\nexit");
    EXPECT_NE(message.find("deeper than 8 frames"), std::string::npos) << message;
    // Exactly at the limit works: main + 7 nested calls.
    std::string nested;
    for (int i = 0; i < max_call_depth - 1; ++i) {
        nested += "call local +0\n"; // call the next instruction: each adds one frame
    }
    EXPECT_EQ(r0(nested + "mov %r0, 3\nexit"), 3u);
}

TEST(interpreter, helpers_and_callx) {
    EXPECT_EQ(r0_both_modes("mov %r1, 2\nmov %r2, 3\ncall 1\nexit"), 5u);
    EXPECT_EQ(r0_both_modes("mov %r1, 2\nmov %r2, 3\nmov %r5, 1\ncall %r5\nexit"), 5u);
    // A helper can end the program at once with its own r0.
    EXPECT_EQ(r0_both_modes("mov %r1, 42\ncall 2\nmov %r0, 0\nexit"), 42u);
    runner machine;
    EXPECT_NE(failure(machine, "mov %r5, 77\ncall %r5\nexit").find("names no helper"), std::string::npos);
    EXPECT_NE(failure(machine, "call 99\nexit").find("(helper 99), which sluice does not provide"), std::string::npos);
}

TEST(interpreter, checked_mode_refuses_reads_outside_every_region) {
    runner machine;
    machine.memory = {1, 2, 3, 4};
    EXPECT_EQ(machine.run("ldxw %r0, [%r1]\nexit").value(), 0x04030201u);
    const std::string message = failure(machine, "mov %r0, 0\nldxw %r0, [%r1+1]\nexit");
    EXPECT_NE(message.find("instruction 1: 4-byte read at 0x"), std::string::npos) << message;
    EXPECT_NE(message.find("is outside every region the program may access (stack, packet)"), std::string::npos)
        << message;
    EXPECT_NE(failure(machine, "ldxb %r0, [%r1-1]\nexit").find("1-byte read"), std::string::npos);
    EXPECT_NE(failure(machine, "mov %r1, 0\nldxb %r0, [%r1]\nexit").find("outside every region"), std::string::npos);
}

TEST(interpreter, checked_mode_refuses_writes_to_read_only_regions) {
    runner machine;
    machine.memory = {1, 2, 3, 4};
    machine.read_only = true;
    EXPECT_EQ(machine.run("ldxb %r0, [%r1+3]\nexit").value(), 4u);
    const std::string message = failure(machine, "stb [%r1], 0\nexit");
    EXPECT_NE(message.find("instruction 0: 1-byte write at 0x"), std::string::npos) << message;
    EXPECT_NE(message.find("read-only packet"), std::string::npos) << message;
    EXPECT_NE(failure(machine, "mov %r2, 1\nlock add32 [%r1], %r2\nexit").find("read-only"), std::string::npos);
    EXPECT_EQ(machine.memory[0], 1);
}

TEST(interpreter, checked_mode_refuses_stack_accesses_outside_the_live_frames) {
    runner machine;
    EXPECT_EQ(machine.run("stdw [%r10-512], 1\nldxdw %r0, [%r10-512]\nexit").value(), 1u);
    EXPECT_NE(failure(machine, "stdw [%r10-520], 1\nexit").find("8-byte write"), std::string::npos);
    EXPECT_NE(failure(machine, "ldxb %r0, [%r10]\nexit").find("outside every region"), std::string::npos);
    // A callee's frame is gone once it returns: a pointer into it is refused.
    const std::string message =
        failure(machine, "call local f\nldxdw %r0, [%r0]\nexit\nf:\nmov %r0, %r10\nsub %r0, 8\nexit");
    EXPECT_NE(message.find("instruction 1: 8-byte read"), std::string::npos) << message;
}

TEST(interpreter, instruction_limit) {
    runner machine;
    machine.options.instruction_limit = 100;
    const std::string message = failure(machine, "loop:\nja loop\nexit");
    EXPECT_NE(message.find("instruction limit of 100"), std::string::npos) << message;
    EXPECT_EQ(machine.run("mov %r0, 1\nexit").value(), 1u);
    machine.options.checked = false;
    EXPECT_FALSE(machine.run("ja -1\nexit").has_value());
}

TEST(interpreter, helper_table_names_and_bounds) {
    helper_table table;
    table.set(3, "three", add_helper);
    table.set(static_cast<std::uint32_t>(max_helper_id), "beyond", add_helper);
    EXPECT_EQ(table.find(3), &add_helper);
    EXPECT_EQ(table.name(3), "three");
    EXPECT_EQ(table.find(2), nullptr);
    EXPECT_EQ(table.find(static_cast<std::uint32_t>(max_helper_id)), nullptr);
}

} // namespace
