// The conformance-syntax assembler: encodings checked against bytes computed by hand from RFC 9669's tables, and
// errors that name the line.

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/ebpf/assembler.hpp"

namespace {

using namespace sluice::ebpf;

/// The 64-bit little-endian word of one slot, as the suite's -- raw section writes it.
std::uint64_t word(const instruction& ins) {
    std::uint64_t value = 0;
    std::memcpy(&value, &ins, sizeof value);
    return value;
}

std::vector<std::uint64_t> words(std::string_view text) {
    auto code = assemble(text);
    EXPECT_TRUE(code.has_value()) << (code ? "" : code.error().message);
    std::vector<std::uint64_t> result;
    if (code) {
        for (const instruction& ins : *code) {
            result.push_back(word(ins));
        }
    }
    return result;
}

std::uint64_t one(std::string_view text) {
    const auto all = words(text);
    EXPECT_EQ(all.size(), 1u) << text;
    return all.empty() ? 0 : all[0];
}

std::string error_of(std::string_view text) {
    auto code = assemble(text);
    EXPECT_FALSE(code.has_value()) << text;
    return code ? std::string{} : code.error().message;
}

TEST(assembler, lddw_matches_the_suites_raw_words) {
    // lddw.data's -- raw section.
    EXPECT_EQ(words("lddw %r0, 0x1122334455667788\nexit\n"),
              (std::vector<std::uint64_t>{0x5566778800000018, 0x1122334400000000, 0x0000000000000095}));
}

TEST(assembler, alu_immediate_and_register_forms) {
    // Word layout: imm << 32 | offset << 16 | src << 12 | dst << 8 | opcode.
    EXPECT_EQ(one("mov %r0, -1"), 0xffffffff000000b7);
    EXPECT_EQ(one("mov32 %r1, 0xffffffff"), 0xffffffff000001b4);
    EXPECT_EQ(one("add32 %r1, %r2"), 0x000000000000210c);
    EXPECT_EQ(one("add64 %r1, %r2"), 0x000000000000210f);
    EXPECT_EQ(one("neg %r3"), 0x0000000000000387);
    EXPECT_EQ(one("neg32 %r3"), 0x0000000000000384);
    EXPECT_EQ(one("lsh %r9, 32"), 0x0000002000000967);
    EXPECT_EQ(one("arsh32 %r0, %r1"), 0x00000000000010cc);
}

TEST(assembler, signed_division_and_sign_extending_moves_use_the_offset) {
    EXPECT_EQ(one("sdiv %r0, 3"), 0x0000000300010037);
    EXPECT_EQ(one("smod32 %r0, %r1"), 0x000000000001109c);
    EXPECT_EQ(one("div %r0, %r1"), 0x000000000000103f);
    EXPECT_EQ(one("movsx832 %r2, %r1"), 0x00000000000812bc);
    EXPECT_EQ(one("movsx1632 %r4, %r3"), 0x00000000001034bc);
    EXPECT_EQ(one("movsx864 %r6, %r5"), 0x00000000000856bf);
    EXPECT_EQ(one("movsx1664 %r8, %r7"), 0x00000000001078bf);
    EXPECT_EQ(one("movsx3264 %r0, %r9"), 0x00000000002090bf);
}

TEST(assembler, byte_order) {
    EXPECT_EQ(one("le16 %r0"), 0x00000010000000d4);
    EXPECT_EQ(one("be32 %r1"), 0x00000020000001dc);
    EXPECT_EQ(one("be64 %r0"), 0x00000040000000dc);
    EXPECT_EQ(one("bswap16 %r0"), 0x00000010000000d7);
    EXPECT_EQ(one("swap64 %r2"), 0x00000040000002d7);
}

TEST(assembler, loads_and_stores) {
    EXPECT_EQ(one("ldxb %r0, [%r1+0x2]"), 0x0000000000021071);
    EXPECT_EQ(one("ldxh %r0, [%r1]"), 0x0000000000001069);
    EXPECT_EQ(one("ldxdw %r0, [%r10-8]"), 0x00000000fff8a079);
    EXPECT_EQ(one("ldxsb %r0, [%r10-1]"), 0x00000000ffffa091);
    EXPECT_EQ(one("ldxsh %r0, [%r10-2]"), 0x00000000fffea089);
    EXPECT_EQ(one("ldxsw %r0, [%r10-4]"), 0x00000000fffca081);
    EXPECT_EQ(one("stxdw [%r10-8], %r1"), 0x00000000fff81a7b);
    EXPECT_EQ(one("stw [%r1+4], 0x11223344"), 0x1122334400040162);
    EXPECT_EQ(one("sth [%r1+2], -1"), 0xffffffff0002016a);
}

TEST(assembler, atomics) {
    EXPECT_EQ(one("lock add [%r10-8], %r1"), 0x00000000fff81adb);
    EXPECT_EQ(one("lock fetch add32 [%r10-4], %r1"), 0x00000001fffc1ac3);
    EXPECT_EQ(one("lock fetch or [%r10-8], %r3"), 0x00000041fff83adb);
    EXPECT_EQ(one("lock and32 [%r10-8], %r1"), 0x00000050fff81ac3);
    EXPECT_EQ(one("lock fetch xor [%r10-8], %r1"), 0x000000a1fff81adb);
    EXPECT_EQ(one("lock xchg [%r10-8], %r1"), 0x000000e1fff81adb);
    EXPECT_EQ(one("lock cmpxchg32 [%r10-8], %r1"), 0x000000f1fff81ac3);
}

TEST(assembler, jumps_to_labels_and_offsets) {
    EXPECT_EQ(words("jne32 %r1, 0xfffffffc, +1\nexit\nexit"),
              (std::vector<std::uint64_t>{0xfffffffc00010156, 0x95, 0x95}));
    EXPECT_EQ(words("target:\nmov %r0, 0\njeq %r0, %r1, target\nexit"),
              (std::vector<std::uint64_t>{0xb7, 0x00000000fffe101d, 0x95}));
    EXPECT_EQ(words("ja done\nmov %r0, 1\ndone:\nexit"),
              (std::vector<std::uint64_t>{0x0000000000010005, 0x00000001000000b7, 0x95}));
    // ja32 ("gotol") keeps its target in imm.
    EXPECT_EQ(words("ja32 end\nmov %r0, 1\nend: exit"),
              (std::vector<std::uint64_t>{0x0000000100000006, 0x00000001000000b7, 0x95}));
    // A lddw takes two slots, so a jump over it skips 2.
    EXPECT_EQ(words("ja +2\nlddw %r0, 1\nexit")[0], 0x0000000000020005u);
    // may_goto (can_loop): JMP | JCOND, every field but the offset zero.
    EXPECT_EQ(words("loop:\nmay_goto done\nja loop\ndone:\nexit"),
              (std::vector<std::uint64_t>{0x00000000000100e5, 0x00000000fffe0005, 0x95}));
    EXPECT_EQ(one("may_goto -1"), 0x00000000ffff00e5u);
    EXPECT_NE(error_of("may_goto %r1, done\ndone: exit").find("operand"), std::string::npos);
}

TEST(assembler, the_first_exit_is_a_label) {
    EXPECT_EQ(words("jset32 %r1, %r2, exit\nexit\nmov %r0, 1\nexit"),
              (std::vector<std::uint64_t>{0x000000000000214e, 0x95, 0x00000001000000b7, 0x95}));
}

TEST(assembler, calls) {
    EXPECT_EQ(one("call 5"), 0x0000000500000085);
    EXPECT_EQ(one("call helper 5"), 0x0000000500000085);
    EXPECT_EQ(one("call %r2"), 0x000000000000028d);
    EXPECT_EQ(words("call local f\nexit\nf:\nexit"), (std::vector<std::uint64_t>{0x0000000100001085, 0x95, 0x95}));
}

TEST(assembler, comments_and_blank_lines_are_ignored) {
    EXPECT_EQ(words("# a comment\n\n  mov %r0, 1 # trailing\n\texit\n"),
              (std::vector<std::uint64_t>{0x00000001000000b7, 0x95}));
}

TEST(assembler, errors_name_the_line_and_the_problem) {
    EXPECT_EQ(error_of("exit\nfrob %r0, 1"), "line 2: unknown instruction 'frob' in 'frob %r0, 1'");
    EXPECT_NE(error_of("mov %r11, 1").find("'%r11' is not a register"), std::string::npos);
    EXPECT_NE(error_of("mov %r0").find("line 1: 'mov' takes 2 operands, not 1"), std::string::npos);
    EXPECT_NE(error_of("exit %r0").find("takes 0 operands"), std::string::npos);
    EXPECT_NE(error_of("\n\nja nowhere").find("line 3: label 'nowhere' is not defined"), std::string::npos);
    EXPECT_NE(error_of("call local nowhere").find("label 'nowhere' is not defined"), std::string::npos);
    EXPECT_NE(error_of("ldxw %r0, %r1").find("not a memory operand"), std::string::npos);
    EXPECT_NE(error_of("mov %r0, twelve").find("'twelve' is not a number"), std::string::npos);
    EXPECT_NE(error_of("lock nand [%r10-8], %r1").find("not an atomic operation"), std::string::npos);
    EXPECT_NE(error_of("a:\na:\nexit").find("label 'a' is defined twice"), std::string::npos);
    EXPECT_NE(error_of("ldxsdw %r0, [%r1]").find("unknown instruction"), std::string::npos);
}

} // namespace
