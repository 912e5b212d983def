// The context rewrite on hand-assembled programs: which loads are context reads (data flow through copies, spills,
// joins and calls), what they become, and what the kernel refuses, with the message a user sees.
#include <gtest/gtest.h>

#include <algorithm>

#include "ebpf/loader/loader_internal.hpp"
#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::ebpf {
namespace {

program_spec make_program(std::string_view text, xdp_attach attach = xdp_attach::device,
                          std::vector<program_function> functions = {}) {
    auto code = assemble(text);
    EXPECT_TRUE(code) << (code ? "" : code.error().message);
    program_spec program;
    program.name = "test";
    program.section = attach == xdp_attach::devmap ? "xdp/devmap" : "xdp";
    program.kind.attach = attach;
    program.code = code ? *code : std::vector<instruction>{};
    if (functions.empty()) {
        functions.push_back(program_function{"test", 0, program.code.size()});
    }
    program.functions = std::move(functions);
    return program;
}

/// The rewrite's error message, or "" when it succeeded.
std::string rewrite_error(program_spec& program) {
    auto done = loader_detail::rewrite_context(program);
    return done ? std::string{} : done.error().message;
}

constexpr std::uint8_t ldx_w = op::cls_ldx | op::size_w | op::mode_mem;
constexpr std::uint8_t ldx_dw = op::cls_ldx | op::size_dw | op::mode_mem;

TEST(context_rewrite, pointer_fields_become_8_byte_loads) {
    program_spec program = make_program(R"(
        ldxw %r2, [%r1+0]
        ldxw %r3, [%r1+4]
        ldxw %r4, [%r1+8]
        ldxw %r5, [%r1+12]
        ldxw %r6, [%r1+16]
        mov %r0, 2
        exit
    )");
    ASSERT_EQ(rewrite_error(program), "");
    const std::vector<std::pair<std::uint8_t, std::size_t>> expected{
        {ldx_dw, xdp_context_data_offset},          {ldx_dw, xdp_context_data_end_offset},
        {ldx_dw, xdp_context_data_meta_offset},     {ldx_w, xdp_context_ingress_ifindex_offset},
        {ldx_w, xdp_context_rx_queue_index_offset},
    };
    for (std::size_t pc = 0; pc < expected.size(); ++pc) {
        EXPECT_EQ(program.code[pc].opcode, expected[pc].first) << pc;
        EXPECT_EQ(static_cast<std::size_t>(program.code[pc].offset), expected[pc].second) << pc;
        EXPECT_EQ(program.code[pc].dst, pc + 2);
        EXPECT_EQ(program.code[pc].src, 1);
    }
    EXPECT_EQ(program.context_accesses.size(), 5U);
}

TEST(context_rewrite, egress_ifindex_only_in_devmap_programs) {
    constexpr std::string_view text = "ldxw %r0, [%r1+20]\nexit\n";
    program_spec devmap = make_program(text, xdp_attach::devmap);
    ASSERT_EQ(rewrite_error(devmap), "");
    EXPECT_EQ(static_cast<std::size_t>(devmap.code[0].offset), xdp_context_egress_ifindex_offset);

    program_spec device = make_program(text);
    EXPECT_EQ(rewrite_error(device), "program 'test': instruction 0: reads ctx->egress_ifindex, which only programs "
                                     "run from a devmap have; put the program in section \"xdp/devmap\" (this one is "
                                     "in \"xdp\")");
    program_spec cpumap = make_program(text, xdp_attach::cpumap);
    EXPECT_NE(rewrite_error(cpumap), "");
}

TEST(context_rewrite, copies_and_spills_are_followed) {
    program_spec program = make_program(R"(
        mov %r6, %r1
        stxdw [%r10-8], %r6
        mov %r2, %r10
        add %r2, -16
        stxdw [%r2+0], %r1
        mov %r1, 0
        ldxdw %r3, [%r10-8]
        ldxw %r4, [%r3+4]
        ldxdw %r5, [%r10-16]
        ldxw %r0, [%r5+16]
        ldxw %r7, [%r6+0]
        exit
    )");
    ASSERT_EQ(rewrite_error(program), "");
    ASSERT_EQ(program.context_accesses.size(), 3U);
    EXPECT_EQ(program.context_accesses[0].instruction, 7U);
    EXPECT_EQ(program.context_accesses[0].field, xdp_md_field::data_end);
    EXPECT_EQ(program.context_accesses[1].instruction, 9U);
    EXPECT_EQ(program.context_accesses[1].field, xdp_md_field::rx_queue_index);
    EXPECT_EQ(program.context_accesses[2].instruction, 10U);
    // The stack fills themselves are untouched.
    EXPECT_EQ(program.code[6].offset, -8);
}

TEST(context_rewrite, overwritten_registers_and_slots_are_not_the_context) {
    program_spec program = make_program(R"(
        stxdw [%r10-8], %r1
        stw [%r10-8], 0
        ldxdw %r2, [%r10-8]
        ldxw %r3, [%r2+0]
        mov %r1, %r10
        ldxw %r4, [%r1-4]
        mov %r0, 0
        exit
    )");
    ASSERT_EQ(rewrite_error(program), "");
    EXPECT_TRUE(program.context_accesses.empty());
}

TEST(context_rewrite, paths_that_agree_join_to_the_context) {
    program_spec program = make_program(R"(
        mov %r6, %r1
        jeq %r2, 0, +1
        mov %r6, %r1
        ldxw %r0, [%r6+0]
        exit
    )");
    ASSERT_EQ(rewrite_error(program), "");
    ASSERT_EQ(program.context_accesses.size(), 1U);
    EXPECT_EQ(program.context_accesses[0].instruction, 3U);
}

TEST(context_rewrite, same_instruction_with_different_pointers_is_refused) {
    program_spec program = make_program(R"(
        mov %r6, %r1
        jeq %r2, 0, +2
        mov %r6, %r10
        add %r6, -8
        ldxw %r0, [%r6+0]
        exit
    )");
    const std::string message = rewrite_error(program);
    EXPECT_NE(message.find("program 'test': instruction 4: this read goes through the context pointer (ctx) on one "
                           "path and through another pointer on another path"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("same insn cannot be used with different pointers"), std::string::npos);
}

TEST(context_rewrite, refusals_name_the_rule) {
    struct refusal {
        std::string_view text;
        std::string_view message;
    };
    const refusal cases[] = {
        {"ldxh %r0, [%r1+0]\nexit\n",
         "instruction 0: reads 2 bytes of ctx->data; the kernel allows only 4-byte reads of xdp_md fields"},
        {"ldxb %r0, [%r1+12]\nexit\n", "instruction 0: reads 1 byte of ctx->ingress_ifindex"},
        {"ldxdw %r0, [%r1+0]\nexit\n", "instruction 0: reads 8 bytes of ctx->data"},
        {"ldxw %r0, [%r1+2]\nexit\n", "instruction 0: reads struct xdp_md at offset 2, inside a field"},
        {"ldxw %r0, [%r1+24]\nexit\n", "instruction 0: reads byte 24 of struct xdp_md, which has 24 bytes"},
        {"ldxw %r0, [%r1-4]\nexit\n", "instruction 0: reads byte -4 of struct xdp_md"},
        {"mov %r0, 0\nstxw [%r1+12], %r0\nexit\n", "instruction 1: writes to the context (struct xdp_md)"},
        {"stw [%r1+16], 1\nmov %r0, 0\nexit\n", "instruction 0: writes to the context (struct xdp_md)"},
        {"mov %r2, 1\nlock add [%r1+16], %r2\nmov %r0, 0\nexit\n", "instruction 1: atomic operation on the context"},
        {"add %r1, 4\nldxw %r0, [%r1+0]\nexit\n",
         "instruction 1: this read goes through the context pointer after arithmetic changed it"},
        {"mov32 %r2, %r1\nldxw %r0, [%r2+0]\nexit\n",
         "instruction 1: this read goes through the context pointer after arithmetic changed it"},
    };
    for (const refusal& c : cases) {
        program_spec program = make_program(c.text);
        const std::string message = rewrite_error(program);
        EXPECT_NE(message.find(c.message), std::string::npos) << c.text << " -> " << message;
    }
}

TEST(context_rewrite, sign_extending_reads) {
    program_spec pointer = make_program("ldxsw %r0, [%r1+0]\nexit\n");
    EXPECT_NE(rewrite_error(pointer).find("sign-extending read of ctx->data"), std::string::npos);
    program_spec index = make_program("ldxsw %r0, [%r1+16]\nexit\n");
    if (index.code.empty()) {
        GTEST_SKIP() << "the assembler has no ldxsw";
    }
    ASSERT_EQ(rewrite_error(index), "");
    EXPECT_EQ(index.code[0].opcode, op::cls_ldx | op::size_w | op::mode_memsx);
    EXPECT_EQ(static_cast<std::size_t>(index.code[0].offset), xdp_context_rx_queue_index_offset);
}

TEST(context_rewrite, functions_called_with_the_context_and_returning_it) {
    // main: r0 = f(ctx); read through r0. f: reads ctx->data_end, returns its argument. g (called with a scalar)
    // reads through its r1, which is not the context.
    program_spec program = make_program(R"(
        mov %r6, %r1
        call local f
        ldxw %r7, [%r0+4]
        mov %r1, %r10
        add %r1, -8
        stdw [%r10-8], 0
        call local g
        mov %r0, 2
        exit
        f:
        ldxw %r2, [%r1+4]
        mov %r0, %r1
        exit
        g:
        ldxw %r0, [%r1+0]
        exit
    )",
                                        xdp_attach::device, {{"main", 0, 9}, {"f", 9, 3}, {"g", 12, 2}});
    ASSERT_EQ(rewrite_error(program), "");
    std::vector<std::size_t> rewritten;
    for (const context_access& access : program.context_accesses) {
        rewritten.push_back(access.instruction);
    }
    std::ranges::sort(rewritten);
    EXPECT_EQ(rewritten, (std::vector<std::size_t>{2, 9}));
    EXPECT_EQ(program.code[12].offset, 0); // g's read through a stack pointer is untouched
}

TEST(context_rewrite, function_called_with_context_and_with_another_pointer_is_refused) {
    program_spec program = make_program(R"(
        mov %r6, %r1
        call local f
        mov %r1, %r10
        add %r1, -8
        call local f
        exit
        f:
        ldxw %r0, [%r1+0]
        exit
    )",
                                        xdp_attach::device, {{"main", 0, 6}, {"f", 6, 2}});
    EXPECT_NE(
        rewrite_error(program).find("instruction 6: this read goes through the context pointer (ctx) on one path"),
        std::string::npos);
}

TEST(context_rewrite, callbacks_do_not_receive_the_context) {
    // A function whose address is taken (bpf_loop's callback) gets its arguments from the helper, not the context.
    program_spec program = make_program(R"(
        mov %r1, 4
        lddw %r2, 0
        mov %r3, 0
        mov %r4, 0
        call 181
        exit
        ldxw %r0, [%r1+0]
        exit
    )",
                                        xdp_attach::device, {{"main", 0, 7}, {"callback", 7, 2}});
    ASSERT_EQ(program.code.size(), 9U);
    program.code[1].src = op::pseudo_func;
    program.code[1].imm = 5; // 1 + 1 + 5 = 7: the callback
    ASSERT_EQ(rewrite_error(program), "");
    EXPECT_TRUE(program.context_accesses.empty());
}

TEST(context_rewrite, messages_carry_the_source_line) {
    program_spec program = make_program("mov %r0, 0\nldxh %r0, [%r1+16]\nexit\n");
    program.lines.push_back(line_info{0, "/src/prog.c", "int xdp_prog(struct xdp_md *ctx) {", 10, 1});
    program.lines.push_back(line_info{1, "/src/prog.c", "    __u16 queue = ctx->rx_queue_index;  ", 12, 5});
    EXPECT_EQ(rewrite_error(program),
              "program 'test': instruction 1 (prog.c:12: `__u16 queue = ctx->rx_queue_index;`): reads 2 bytes of "
              "ctx->rx_queue_index; the kernel allows only 4-byte reads of xdp_md fields. Read the whole __u32 field, "
              "then narrow or widen the variable");
}

TEST(context_rewrite, unreachable_code_is_left_alone) {
    program_spec program = make_program("mov %r0, 2\nexit\nstw [%r1+0], 1\nexit\n");
    ASSERT_EQ(rewrite_error(program), "");
    EXPECT_TRUE(program.context_accesses.empty());
}

} // namespace
} // namespace sluice::ebpf
