// disassemble(): the text of every instruction class, as llvm-objdump 14 prints it (checked against it when this table
// was written), newer LLVM's text for the v4 additions LLVM 14 lacks, and `<invalid opcode>` for undefined encodings.
#include "sluice/ebpf/disassembler.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::ebpf {
namespace {

/// Instructions from their bytes as llvm-objdump shows them: "07 01 00 00 ff ff ff ff" (8 or 16 bytes).
std::vector<instruction> from_hex(const std::string& hex) {
    std::vector<unsigned char> bytes;
    std::istringstream in(hex);
    unsigned value = 0;
    while (in >> std::hex >> value) {
        bytes.push_back(static_cast<unsigned char>(value));
    }
    std::vector<instruction> code(bytes.size() / sizeof(instruction));
    std::memcpy(code.data(), bytes.data(), code.size() * sizeof(instruction));
    return code;
}

struct vector {
    const char* bytes;
    const char* text;
};

void PrintTo(const vector& row, std::ostream* out) { *out << '"' << row.bytes << '"'; }

class disassemble_vector : public testing::TestWithParam<vector> {};

TEST_P(disassemble_vector, prints_llvm_syntax) {
    const auto code = from_hex(GetParam().bytes);
    EXPECT_EQ(disassemble(code, 0), GetParam().text) << GetParam().bytes;
}

// ALU and ALU64: register and immediate sources, signed immediates, 32-bit forms with w registers.
INSTANTIATE_TEST_SUITE_P(alu, disassemble_vector, testing::Values(
    vector{"07 01 00 00 ff ff ff ff", "r1 += -1"},
    vector{"04 01 00 00 ff ff ff ff", "w1 += -1"},
    vector{"0f 21 00 00 00 00 00 00", "r1 += r2"},
    vector{"1f 69 00 00 00 00 00 00", "r9 -= r6"},
    vector{"2c 21 00 00 00 00 00 00", "w1 *= w2"},
    vector{"34 01 00 00 00 00 00 80", "w1 /= -2147483648"},
    vector{"3f 21 00 00 00 00 00 00", "r1 /= r2"},
    vector{"47 01 00 00 10 00 00 00", "r1 |= 16"},
    vector{"57 01 00 00 ff 00 00 00", "r1 &= 255"},
    vector{"67 01 00 00 20 00 00 00", "r1 <<= 32"},
    vector{"77 01 00 00 20 00 00 00", "r1 >>= 32"},
    vector{"6c 21 00 00 00 00 00 00", "w1 <<= w2"},
    vector{"87 01 00 00 00 00 00 00", "r1 = -r1"},
    vector{"84 01 00 00 00 00 00 00", "w1 = -w1"},
    vector{"97 01 00 00 07 00 00 00", "r1 %= 7"},
    vector{"a7 01 00 00 01 00 00 00", "r1 ^= 1"},
    vector{"b7 00 00 00 02 00 00 00", "r0 = 2"},
    vector{"bf a2 00 00 00 00 00 00", "r2 = r10"},
    vector{"b4 01 00 00 ff ff ff ff", "w1 = -1"},
    vector{"bc 21 00 00 00 00 00 00", "w1 = w2"},
    vector{"c7 01 00 00 20 00 00 00", "r1 s>>= 32"},
    vector{"cc 21 00 00 00 00 00 00", "w1 s>>= w2"},
    vector{"dc 01 00 00 10 00 00 00", "r1 = be16 r1"},
    vector{"dc 01 00 00 40 00 00 00", "r1 = be64 r1"},
    vector{"d4 01 00 00 20 00 00 00", "r1 = le32 r1"}));

// The v4 additions, in newer LLVM's syntax: signed division and modulo, sign-extending moves, unconditional swaps.
INSTANTIATE_TEST_SUITE_P(alu_v4, disassemble_vector, testing::Values(
    vector{"3f 21 01 00 00 00 00 00", "r1 s/= r2"},
    vector{"37 01 01 00 fd ff ff ff", "r1 s/= -3"},
    vector{"3c 21 01 00 00 00 00 00", "w1 s/= w2"},
    vector{"9f 21 01 00 00 00 00 00", "r1 s%= r2"},
    vector{"94 01 01 00 03 00 00 00", "w1 s%= 3"},
    vector{"bf 21 08 00 00 00 00 00", "r1 = (s8)r2"},
    vector{"bf 21 10 00 00 00 00 00", "r1 = (s16)r2"},
    vector{"bf 21 20 00 00 00 00 00", "r1 = (s32)r2"},
    vector{"bc 21 08 00 00 00 00 00", "w1 = (s8)w2"},
    vector{"bc 21 10 00 00 00 00 00", "w1 = (s16)w2"},
    vector{"d7 00 00 00 10 00 00 00", "r0 = bswap16 r0"},
    vector{"d7 00 00 00 20 00 00 00", "r0 = bswap32 r0"},
    vector{"d7 00 00 00 40 00 00 00", "r0 = bswap64 r0"}));

// Jumps: offsets with their sign, JMP32 with w registers, calls, exit, and the v4 gotol / callx / may_goto.
INSTANTIATE_TEST_SUITE_P(jump, disassemble_vector, testing::Values(
    vector{"05 00 fd ff 00 00 00 00", "goto -3"},
    vector{"05 00 00 00 00 00 00 00", "goto +0"},
    vector{"15 01 03 00 ff ff ff ff", "if r1 == -1 goto +3"},
    vector{"2d 23 05 00 00 00 00 00", "if r3 > r2 goto +5"},
    vector{"3d 17 0e 00 00 00 00 00", "if r7 >= r1 goto +14"},
    vector{"45 01 01 00 04 00 00 00", "if r1 & 4 goto +1"},
    vector{"55 04 12 00 81 00 00 00", "if r4 != 129 goto +18"},
    vector{"65 01 01 00 00 00 00 00", "if r1 s> 0 goto +1"},
    vector{"7d 21 01 00 00 00 00 00", "if r1 s>= r2 goto +1"},
    vector{"a5 01 03 00 00 00 00 80", "if r1 < -2147483648 goto +3"},
    vector{"bd 21 01 00 00 00 00 00", "if r1 <= r2 goto +1"},
    vector{"c5 01 01 00 00 00 00 00", "if r1 s< 0 goto +1"},
    vector{"dd 21 01 00 00 00 00 00", "if r1 s<= r2 goto +1"},
    vector{"16 01 03 00 05 00 00 00", "if w1 == 5 goto +3"},
    vector{"5e 21 03 00 00 00 00 00", "if w1 != w2 goto +3"},
    vector{"85 00 00 00 01 00 00 00", "call 1"},
    vector{"85 10 00 00 ff ff ff ff", "call -1"},
    vector{"8d 00 00 00 02 00 00 00", "callx r2"},
    vector{"8d 02 00 00 00 00 00 00", "callx r2"},
    vector{"95 00 00 00 00 00 00 00", "exit"},
    vector{"06 00 00 00 05 00 00 00", "gotol +5"},
    vector{"06 00 00 00 fe ff ff ff", "gotol -2"},
    vector{"e5 00 03 00 00 00 00 00", "may_goto +3"}));

// Loads and stores: the memory operand as LLVM prints it (`r1 + 0`, `r10 - 8`), sign-extending loads, store
// immediate, legacy packet loads.
INSTANTIATE_TEST_SUITE_P(memory, disassemble_vector, testing::Values(
    vector{"61 12 04 00 00 00 00 00", "r2 = *(u32 *)(r1 + 4)"},
    vector{"61 12 fc ff 00 00 00 00", "r2 = *(u32 *)(r1 - 4)"},
    vector{"69 34 00 00 00 00 00 00", "r4 = *(u16 *)(r3 + 0)"},
    vector{"71 12 0e 00 00 00 00 00", "r2 = *(u8 *)(r1 + 14)"},
    vector{"79 a1 f8 ff 00 00 00 00", "r1 = *(u64 *)(r10 - 8)"},
    vector{"91 21 00 00 00 00 00 00", "r1 = *(s8 *)(r2 + 0)"},
    vector{"89 21 02 00 00 00 00 00", "r1 = *(s16 *)(r2 + 2)"},
    vector{"81 21 fc ff 00 00 00 00", "r1 = *(s32 *)(r2 - 4)"},
    vector{"63 1a fc ff 00 00 00 00", "*(u32 *)(r10 - 4) = r1"},
    vector{"6b 43 00 00 00 00 00 00", "*(u16 *)(r3 + 0) = r4"},
    vector{"73 1a ff ff 00 00 00 00", "*(u8 *)(r10 - 1) = r1"},
    vector{"7b 1a f8 ff 00 00 00 00", "*(u64 *)(r10 - 8) = r1"},
    vector{"62 0a f8 ff 05 00 00 00", "*(u32 *)(r10 - 8) = 5"},
    vector{"7a 0a f8 ff ff ff ff ff", "*(u64 *)(r10 - 8) = -1"},
    vector{"30 00 00 00 05 00 00 00", "r0 = *(u8 *)skb[5]"},
    vector{"28 00 00 00 0c 00 00 00", "r0 = *(u16 *)skb[12]"},
    vector{"40 30 00 00 00 00 00 00", "r0 = *(u32 *)skb[r3]"},
    vector{"50 10 00 00 00 00 00 00", "r0 = *(u8 *)skb[r1]"}));

// 64-bit immediate loads (two slots) and their pseudo sources.
INSTANTIATE_TEST_SUITE_P(load_imm64, disassemble_vector, testing::Values(
    vector{"18 01 00 00 d2 04 00 00 00 00 00 00 00 00 00 00", "r1 = 1234 ll"},
    vector{"18 01 00 00 ff ff ff ff 00 00 00 00 ff ff ff ff", "r1 = -1 ll"},
    vector{"18 00 00 00 ff ff ff ff 00 00 00 00 00 00 00 00", "r0 = 4294967295 ll"},
    vector{"18 01 00 00 00 00 00 00 00 00 00 00 01 00 00 00", "r1 = 4294967296 ll"},
    vector{"18 11 00 00 05 00 00 00 00 00 00 00 00 00 00 00", "ld_pseudo r1, 1, 5"}));

// Atomics: LLVM 14's `lock` and fetch forms, newer LLVM's w-register forms for the 32-bit ones LLVM 14 lacks.
INSTANTIATE_TEST_SUITE_P(atomic, disassemble_vector, testing::Values(
    vector{"db 1a f8 ff 00 00 00 00", "lock *(u64 *)(r10 - 8) += r1"},
    vector{"db 10 00 00 40 00 00 00", "lock *(u64 *)(r0 + 0) |= r1"},
    vector{"db 10 00 00 50 00 00 00", "lock *(u64 *)(r0 + 0) &= r1"},
    vector{"db 10 00 00 a0 00 00 00", "lock *(u64 *)(r0 + 0) ^= r1"},
    vector{"c3 1a f8 ff 00 00 00 00", "lock *(u32 *)(r10 - 8) += r1"},
    vector{"c3 1a f8 ff 50 00 00 00", "lock *(u32 *)(r10 - 8) &= w1"},
    vector{"db 1a f8 ff 01 00 00 00", "r1 = atomic_fetch_add((u64 *)(r10 - 8), r1)"},
    vector{"db 1a f8 ff 41 00 00 00", "r1 = atomic_fetch_or((u64 *)(r10 - 8), r1)"},
    vector{"c3 1a f8 ff 51 00 00 00", "w1 = atomic_fetch_and((u32 *)(r10 - 8), w1)"},
    vector{"c3 1a f8 ff a1 00 00 00", "w1 = atomic_fetch_xor((u32 *)(r10 - 8), w1)"},
    vector{"db 1a f8 ff e1 00 00 00", "r1 = xchg_64(r10 - 8, r1)"},
    vector{"c3 1a f8 ff e1 00 00 00", "w1 = xchg32_32(r10 - 8, w1)"},
    vector{"db 1a f8 ff f1 00 00 00", "r0 = cmpxchg_64(r10 - 8, r0, r1)"},
    vector{"c3 1a f8 ff f1 00 00 00", "w0 = cmpxchg32_32(r10 - 8, w0, w1)"}));

// Undefined encodings never crash and say what they are.
INSTANTIATE_TEST_SUITE_P(invalid, disassemble_vector, testing::Values(
    vector{"00 00 00 00 00 00 00 00", "<invalid opcode 0x00>"},
    vector{"ff 00 00 00 00 00 00 00", "<invalid opcode 0xff>"},
    vector{"8f 01 00 00 00 00 00 00", "<invalid opcode 0x8f>"},       // neg with a register source
    vector{"3f 21 02 00 00 00 00 00", "<invalid opcode 0x3f>"},       // div with offset 2
    vector{"bf 21 07 00 00 00 00 00", "<invalid opcode 0xbf>"},       // movsx from 7 bits
    vector{"bc 21 20 00 00 00 00 00", "<invalid opcode 0xbc>"},       // 32-bit movsx from 32 bits
    vector{"b7 01 08 00 00 00 00 00", "<invalid opcode 0xb7>"},       // movsx with an immediate
    vector{"dc 01 00 00 08 00 00 00", "<invalid opcode 0xdc>"},       // byte swap of 8 bits
    vector{"df 01 00 00 10 00 00 00", "<invalid opcode 0xdf>"},       // ALU64 END with a register source
    vector{"99 21 00 00 00 00 00 00", "<invalid opcode 0x99>"},       // 64-bit sign-extending load
    vector{"d3 21 00 00 00 00 00 00", "<invalid opcode 0xd3>"},       // atomic on a byte
    vector{"db 1a f8 ff 10 00 00 00", "<invalid opcode 0xdb>"},       // atomic sub does not exist
    vector{"96 00 00 00 00 00 00 00", "<invalid opcode 0x96>"},       // exit in JMP32
    vector{"86 00 00 00 01 00 00 00", "<invalid opcode 0x86>"},       // call in JMP32
    vector{"0d 00 00 00 00 00 00 00", "<invalid opcode 0x0d>"},       // ja with a register source
    vector{"f5 01 01 00 00 00 00 00", "<invalid opcode 0xf5>"},       // jump operation 0xf0
    vector{"e0 00 00 00 00 00 00 00", "<invalid opcode 0xe0>"},       // LD with mode 0xe0
    vector{"58 00 00 00 00 00 00 00", "<invalid opcode 0x58>"},       // legacy load of 8 bytes
    vector{"e1 21 00 00 00 00 00 00", "<invalid opcode 0xe1>"},       // LDX with mode 0xe0
    vector{"a2 0a 00 00 00 00 00 00", "<invalid opcode 0xa2>"},       // ST with mode 0xa0
    vector{"e4 01 00 00 00 00 00 00", "<invalid opcode 0xe4>"}));     // ALU operation 0xe0

TEST(disassemble, lddw_without_second_slot_is_invalid_not_a_crash) {
    const auto code = from_hex("18 01 00 00 d2 04 00 00");
    EXPECT_EQ(disassemble(code, 0).rfind("<invalid opcode 0x18", 0), 0U) << disassemble(code, 0);
}

TEST(disassemble, index_past_the_end_is_reported) {
    const auto code = from_hex("95 00 00 00 00 00 00 00");
    EXPECT_EQ(disassemble(code, 1), "<no instruction at 1>");
}

TEST(disassemble, lddw_reads_its_second_slot_in_context) {
    const auto code = from_hex("b7 00 00 00 00 00 00 00 18 02 00 00 78 56 34 12 00 00 00 00 00 00 00 00");
    EXPECT_EQ(disassemble(code, 1), "r2 = 305419896 ll");
}

TEST(disassemble, every_opcode_gives_text) {
    // Every byte value in every register/field combination that matters: nothing throws, nothing is empty.
    for (int opcode = 0; opcode < 256; ++opcode) {
        for (std::int32_t imm : {0, 1, 8, 16, 32, 64, 0xe1, 0xf1, -1}) {
            for (int offset : {0, 1, 8, 16, 32, -1}) {
                std::vector<instruction> code(2);
                code[0].opcode = static_cast<std::uint8_t>(opcode);
                code[0].dst = 1;
                code[0].src = 2;
                code[0].offset = static_cast<std::int16_t>(offset);
                code[0].imm = imm;
                EXPECT_FALSE(disassemble(code, 0).empty());
            }
        }
    }
}

} // namespace
} // namespace sluice::ebpf
