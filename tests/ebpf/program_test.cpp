// validate(): each rule of the encoding check, with the instruction it names.
#include "sluice/ebpf/program.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace sluice::ebpf {
namespace {

constexpr instruction exit_insn = make_instruction(op::exit);
constexpr instruction mov64_imm(std::uint8_t dst, std::int32_t imm) {
    return make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, dst, 0, 0, imm);
}

/// The error text of validate(), or "" when it accepts.
std::string rejection(const std::vector<instruction>& code) {
    auto result = validate(code);
    return result ? std::string{} : result.error().message;
}

std::optional<std::size_t> blamed(const std::vector<instruction>& code) {
    auto result = validate(code);
    return result ? std::nullopt : result.error().instruction;
}

TEST(validate, accepts_minimal_program) {
    EXPECT_EQ(rejection({mov64_imm(0, 0), exit_insn}), "");
}

TEST(validate, rejects_empty_program) {
    EXPECT_NE(rejection({}).find("empty"), std::string::npos);
}

TEST(validate, names_unknown_opcode_and_index) {
    const std::vector<instruction> code{mov64_imm(0, 0), make_instruction(0xe7), exit_insn};
    EXPECT_EQ(rejection(code), "instruction 1: unknown opcode 0xe7");
    EXPECT_EQ(blamed(code), 1U);
}

TEST(validate, rejects_every_undefined_opcode_without_crashing) {
    // Every opcode byte with zeroed fields, followed by exit: those that are not instructions must be refused
    // with a message, and none may crash.
    int accepted = 0;
    for (int opcode = 0; opcode < 256; ++opcode) {
        const auto candidate = static_cast<std::uint8_t>(opcode);
        // Byte swaps need a width, and lddw its second half; every other field stays zero.
        const std::int32_t imm = op::alu_op(candidate) == op::alu_end && op::is_alu(candidate) ? 16 : 0;
        std::vector<instruction> code{make_instruction(candidate, 0, 0, 0, imm), exit_insn};
        if (candidate == op::lddw) {
            code.insert(code.begin() + 1, make_instruction(0));
        }
        auto result = validate(code);
        if (result) {
            ++accepted;
        } else {
            EXPECT_FALSE(result.error().message.empty());
        }
    }
    // Counted from RFC 9669's tables: lddw 1; ldx 4 + ldsx 3; st 4; stx 4 + atomic add 2;
    // ALU 12 ops x {K,X} + neg + le/be = 27; ALU64 12 x 2 + neg + bswap = 26;
    // JMP ja + 11 conditions x 2 + call + callx + exit = 26; JMP32 gotol + 11 x 2 = 23; and the kernel's may_goto.
    EXPECT_EQ(accepted, 121);
}

TEST(validate, may_goto_is_jmp_jcond_with_an_immediate_and_condition_zero) {
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 0, 0, 1), mov64_imm(0, 1), exit_insn}), "");
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 0, 0, -1), exit_insn}), "");
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 0, 0, 0), exit_insn}), ""); // +0: a no-op, as in the kernel
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 0, 0, 5), exit_insn}),
              "instruction 0: jump to instruction 6 is outside the program (instructions 0 to 1)");
    EXPECT_EQ(rejection({make_instruction(op::cls_jmp | op::src_x | op::jmp_jcond, 0, 0, 1), exit_insn, exit_insn}),
              "instruction 0: unknown opcode 0xed (conditional pseudo-jumps exist only as 0xe5)");
    EXPECT_EQ(rejection({make_instruction(op::cls_jmp32 | op::jmp_jcond, 0, 0, 1), exit_insn, exit_insn}),
              "instruction 0: unknown opcode 0xe6 (conditional pseudo-jumps exist only as 0xe5)");
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 0, 1, 1), exit_insn, exit_insn}),
              "instruction 0: conditional pseudo-jump with unknown condition 1 in the source register field (0: "
              "may_goto)");
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 1, 0, 1), exit_insn, exit_insn}),
              "instruction 0: may_goto with reserved destination register or immediate set");
    EXPECT_EQ(rejection({make_instruction(op::may_goto, 0, 0, 1, 3), exit_insn, exit_insn}),
              "instruction 0: may_goto with reserved destination register or immediate set");
}

TEST(validate, rejects_bad_registers) {
    EXPECT_NE(rejection({mov64_imm(11, 0), exit_insn}).find("invalid destination register r11"), std::string::npos);
    EXPECT_NE(rejection({make_instruction(op::cls_alu64 | op::alu_add | op::src_x, 0, 12), exit_insn})
                  .find("invalid source register r12"),
              std::string::npos);
    EXPECT_NE(rejection({mov64_imm(10, 0), exit_insn}).find("r10, the frame pointer, which is read-only"),
              std::string::npos);
}

TEST(validate, store_through_r10_is_allowed) {
    EXPECT_EQ(rejection({make_instruction(op::cls_st | op::mode_mem | op::size_dw, 10, 0, -8, 1), mov64_imm(0, 0),
                         exit_insn}),
              "");
}

TEST(validate, rejects_jump_out_of_program) {
    const std::vector<instruction> code{make_instruction(op::cls_jmp | op::jmp_jeq, 1, 0, 5, 0), exit_insn};
    EXPECT_EQ(rejection(code), "instruction 0: jump to instruction 6 is outside the program (instructions 0 to 1)");
    EXPECT_NE(rejection({make_instruction(op::ja, 0, 0, -2), exit_insn}).find("outside the program"),
              std::string::npos);
}

TEST(validate, rejects_jump_into_lddw_second_half) {
    const std::vector<instruction> code{make_instruction(op::ja, 0, 0, 1), make_instruction(op::lddw, 0, 0, 0, 1),
                                        make_instruction(0), exit_insn};
    EXPECT_NE(rejection(code).find("second half of a 64-bit immediate load"), std::string::npos);
}

TEST(validate, rejects_lddw_missing_second_half) {
    EXPECT_NE(rejection({make_instruction(op::lddw, 0, 0, 0, 1)}).find("missing its second half"), std::string::npos);
    EXPECT_NE(rejection({make_instruction(op::lddw, 0, 0, 0, 1), exit_insn}).find("missing its second half"),
              std::string::npos);
    EXPECT_EQ(rejection({make_instruction(op::lddw, 0, 0, 0, 1), make_instruction(0, 0, 0, 0, 7), exit_insn}), "");
}

TEST(validate, rejects_falling_off_the_end) {
    EXPECT_NE(rejection({mov64_imm(0, 0)}).find("run off the end"), std::string::npos);
    EXPECT_EQ(rejection({mov64_imm(0, 0), exit_insn, make_instruction(op::ja, 0, 0, -2)}), "");
}

TEST(validate, gotol_uses_imm) {
    EXPECT_EQ(rejection({make_instruction(op::ja32, 0, 0, 0, 0), exit_insn}), "");
    EXPECT_NE(rejection({make_instruction(op::ja32, 0, 0, 0, 5), exit_insn}).find("outside the program"),
              std::string::npos);
    EXPECT_NE(rejection({make_instruction(op::ja32, 0, 0, 1, 0), exit_insn}).find("reserved offset"),
              std::string::npos);
}

TEST(validate, local_calls_must_land_inside) {
    EXPECT_EQ(rejection({make_instruction(op::call, 0, op::call_local, 0, 1), exit_insn, mov64_imm(0, 1), exit_insn}),
              "");
    EXPECT_NE(rejection({make_instruction(op::call, 0, op::call_local, 0, 9), exit_insn})
                  .find("local call to instruction 10"),
              std::string::npos);
}

TEST(validate, callx_names_its_register_in_dst) {
    EXPECT_EQ(rejection({make_instruction(op::callx, 2), exit_insn}), "");
    EXPECT_NE(rejection({make_instruction(op::callx, 13), exit_insn}).find("r13"), std::string::npos);
}

TEST(validate, signed_division_and_movsx_offsets) {
    const auto sdiv = make_instruction(op::cls_alu64 | op::alu_div | op::src_k, 0, 0, 1, 3);
    EXPECT_EQ(rejection({sdiv, exit_insn}), "");
    EXPECT_NE(
        rejection({make_instruction(op::cls_alu64 | op::alu_div | op::src_k, 0, 0, 2, 3), exit_insn}).find("offset 2"),
        std::string::npos);
    for (int bits : {8, 16, 32}) {
        EXPECT_EQ(
            rejection({make_instruction(op::cls_alu64 | op::alu_mov | op::src_x, 0, 1, static_cast<std::int16_t>(bits)),
                       exit_insn}),
            "")
            << bits;
    }
    EXPECT_NE(rejection({make_instruction(op::cls_alu | op::alu_mov | op::src_x, 0, 1, 32), exit_insn}).find("movsx"),
              std::string::npos);
}

TEST(validate, byte_swaps) {
    for (std::int32_t width : {16, 32, 64}) {
        EXPECT_EQ(rejection({make_instruction(op::cls_alu | op::alu_end | op::src_x, 0, 0, 0, width), exit_insn}), "");
        EXPECT_EQ(rejection({make_instruction(op::cls_alu64 | op::alu_end, 0, 0, 0, width), exit_insn}), "");
    }
    EXPECT_NE(rejection({make_instruction(op::cls_alu | op::alu_end, 0, 0, 0, 8), exit_insn}).find("16, 32 or 64"),
              std::string::npos);
    EXPECT_NE(
        rejection({make_instruction(op::cls_alu64 | op::alu_end | op::src_x, 0, 0, 0, 16), exit_insn}).find("unknown"),
        std::string::npos);
}

TEST(validate, atomics) {
    const std::uint8_t atomic64 = op::cls_stx | op::mode_atomic | op::size_dw;
    for (std::int32_t operation : {op::atomic_add, op::atomic_or, op::atomic_and, op::atomic_xor, op::atomic_xchg,
                                   op::atomic_cmpxchg, op::atomic_add | op::atomic_fetch}) {
        EXPECT_EQ(rejection({make_instruction(atomic64, 10, 1, -8, operation), exit_insn}), "") << operation;
    }
    EXPECT_NE(rejection({make_instruction(atomic64, 10, 1, -8, 0x10), exit_insn}).find("unknown atomic operation"),
              std::string::npos);
    EXPECT_NE(rejection({make_instruction(op::cls_stx | op::mode_atomic | op::size_b, 10, 1, -8, 0), exit_insn})
                  .find("4 or 8 bytes"),
              std::string::npos);
}

TEST(validate, legacy_packet_access_is_refused_with_a_reason) {
    EXPECT_NE(rejection({make_instruction(op::cls_ld | op::mode_abs | op::size_w, 0, 0, 0, 12), exit_insn})
                  .find("socket filters"),
              std::string::npos);
}

TEST(validate, sign_extending_load_has_no_dw_form) {
    EXPECT_EQ(rejection({make_instruction(op::cls_ldx | op::mode_memsx | op::size_w, 0, 1), exit_insn}), "");
    EXPECT_NE(
        rejection({make_instruction(op::cls_ldx | op::mode_memsx | op::size_dw, 0, 1), exit_insn}).find("unknown"),
        std::string::npos);
}

TEST(validate, reserved_fields_must_be_zero) {
    EXPECT_NE(
        rejection({make_instruction(op::cls_alu64 | op::alu_add | op::src_k, 0, 3, 0, 1), exit_insn}).find("reserved"),
        std::string::npos);
    EXPECT_NE(rejection({make_instruction(op::exit, 0, 0, 0, 1)}).find("reserved"), std::string::npos);
}

} // namespace
} // namespace sluice::ebpf
