// may_goto on the interpreter and the JIT (semantics in interpreter.hpp: Linux 6.18's timed may_goto, a budget per
// frame): loops bounded by their own count run to it across budget refreshes, loops bounded only by may_goto run
// whole chunks of 0xffff, may_goto +0 spends nothing, a frame's loops share its budget, and each local call, callback
// invocation and tail call target starts with a budget of its own. Both engines run every program and must agree;
// where a count depends on time (about 250 ms of looping), its shape is checked instead of its value.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/jit.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf {
namespace {

using namespace op;

constexpr std::int32_t helper_tail_call = 12; // BPF_FUNC_tail_call
constexpr std::int32_t helper_loop = 181;     // BPF_FUNC_loop

instruction alu64_imm(std::uint8_t operation, int dst, std::int32_t imm) {
    return make_instruction(cls_alu64 | src_k | operation, static_cast<std::uint8_t>(dst), 0, 0, imm);
}
instruction alu64_reg(std::uint8_t operation, int dst, int src) {
    return make_instruction(cls_alu64 | src_x | operation, static_cast<std::uint8_t>(dst),
                            static_cast<std::uint8_t>(src));
}
instruction mov_imm(int dst, std::int32_t imm) {
    return alu64_imm(alu_mov, dst, imm);
}
instruction may_goto_by(std::int16_t offset) {
    return make_instruction(op::may_goto, 0, 0, offset);
}
instruction jump_by(std::int16_t offset) {
    return make_instruction(op::ja, 0, 0, offset);
}
instruction exit_program() {
    return make_instruction(op::exit);
}
void append_lddw(std::vector<instruction>& code, int dst, std::uint64_t value, std::uint8_t pseudo = 0) {
    code.push_back(make_instruction(lddw, static_cast<std::uint8_t>(dst), pseudo, 0, static_cast<std::int32_t>(value)));
    code.push_back(make_instruction(0, 0, 0, 0, static_cast<std::int32_t>(value >> 32)));
}

/// `counter` = 0, then `counter += 1` while may_goto lets it: 4 instructions, leaves with the frame's budget spent.
void append_spending_loop(std::vector<instruction>& code, int counter) {
    code.push_back(mov_imm(counter, 0));
    code.push_back(may_goto_by(2));
    code.push_back(alu64_imm(alu_add, counter, 1));
    code.push_back(jump_by(-3));
}

/// `counter` = 0, then `counter += 1` while below `limit` and may_goto lets it: 4 instructions.
void append_bounded_loop(std::vector<instruction>& code, int counter, std::int32_t limit) {
    code.push_back(mov_imm(counter, 0));
    code.push_back(may_goto_by(2));
    code.push_back(alu64_imm(alu_add, counter, 1));
    code.push_back(make_instruction(cls_jmp | src_k | jmp_jlt, static_cast<std::uint8_t>(counter), 0, -3, limit));
}

struct both_results {
    std::uint64_t interpreter{};
    std::uint64_t jit{};
};

/// Runs `code` on the unchecked interpreter and through the JIT; both must run.
both_results run_both(std::span<const instruction> code, const helper_table& helpers, void* user = nullptr,
                      const std::vector<const jit_program*>& tail_call_targets = {}) {
    both_results results;
    EXPECT_TRUE(validate(code)) << validate(code).error().message;
    auto machine = interpreter::create(code, helpers);
    EXPECT_TRUE(machine) << machine.error().message;
    auto compiled = jit_program::compile(code, helpers);
    EXPECT_TRUE(compiled) << compiled.error().message;
    if (!machine || !compiled) {
        return results;
    }
    auto interpreted = machine->run({}, user);
    EXPECT_TRUE(interpreted) << interpreted.error().message;
    jit_runner runner(*compiled);
    for (const jit_program* target : tail_call_targets) {
        runner.add_tail_call_target(*target);
    }
    auto native = runner.run({}, user);
    EXPECT_TRUE(native) << native.error().message;
    results.interpreter = interpreted ? *interpreted : 0;
    results.jit = native ? *native : 0;
    return results;
}

TEST(may_goto, a_loop_bounded_by_its_own_count_runs_to_it_across_budget_refreshes) {
    const helper_table helpers;
    for (const std::int32_t limit : {1, 1000, 0xfffe, 0xffff, 0x10000, 200'000}) {
        std::vector<instruction> code;
        append_bounded_loop(code, 0, limit);
        code.push_back(exit_program());
        const both_results results = run_both(code, helpers);
        EXPECT_EQ(results.interpreter, static_cast<std::uint64_t>(limit));
        EXPECT_EQ(results.jit, static_cast<std::uint64_t>(limit));
    }
}

TEST(may_goto, a_loop_bounded_only_by_may_goto_runs_whole_chunks_and_plus_zero_spends_nothing) {
    const helper_table helpers;
    // Three may_goto +0 first: the kernel removes them, so they must not shorten the first chunk.
    std::vector<instruction> code{may_goto_by(0), may_goto_by(0), may_goto_by(0)};
    append_spending_loop(code, 0);
    code.push_back(exit_program());
    const both_results results = run_both(code, helpers);
    for (const std::uint64_t iterations : {results.interpreter, results.jit}) {
        EXPECT_EQ(iterations % may_goto_chunk, 0u) << iterations;
        EXPECT_GE(iterations, 2 * may_goto_chunk) << "the first refresh only starts the clock";
    }
}

TEST(may_goto, a_frames_loops_share_its_budget_and_a_local_call_gets_its_own) {
    const helper_table helpers;
    // main: r6 = spent loop; r7 = a second loop (0); r8 = f(); r9 = a third loop after the call (0: the caller's
    // budget came back spent); r0 = r8 + (r7 << 20) + (r9 << 40) + ((r6 % 0xffff) << 50).
    // f: a loop of at most 1000 (1000: its own budget).
    std::vector<instruction> code;
    append_spending_loop(code, 6);
    append_spending_loop(code, 7);
    const std::size_t call_at = code.size();
    code.push_back(make_instruction(op::call, 0, call_local));
    code.push_back(alu64_reg(alu_mov, 8, 0));
    append_spending_loop(code, 9);
    code.push_back(alu64_imm(alu_mod, 6, static_cast<std::int32_t>(may_goto_chunk)));
    code.push_back(alu64_imm(alu_lsh, 6, 50));
    code.push_back(alu64_imm(alu_lsh, 7, 20));
    code.push_back(alu64_imm(alu_lsh, 9, 40));
    code.push_back(alu64_reg(alu_mov, 0, 8));
    code.push_back(alu64_reg(alu_add, 0, 6));
    code.push_back(alu64_reg(alu_add, 0, 7));
    code.push_back(alu64_reg(alu_add, 0, 9));
    code.push_back(exit_program());
    code[call_at].imm = static_cast<std::int32_t>(code.size() - call_at - 1);
    append_bounded_loop(code, 0, 1000);
    code.push_back(exit_program());
    const both_results results = run_both(code, helpers);
    EXPECT_EQ(results.interpreter, 1000u);
    EXPECT_EQ(results.jit, 1000u);
}

TEST(may_goto, each_callback_invocation_starts_with_a_budget_of_its_own) {
    const helper_table& helpers = xdp_helper_table();
    // main: spend the budget; *(u64 *)(r10 - 8) = 0; bpf_loop(3, cb, r10 - 8, 0); r0 = *(r10 - 8) + loop result
    // after (0). cb(i, ctx): *ctx += a loop of at most 1000; return 0.
    std::vector<instruction> code;
    append_spending_loop(code, 6);
    code.push_back(make_instruction(cls_st | mode_mem | size_dw, 10, 0, -8, 0));
    code.push_back(mov_imm(1, 3));
    const std::size_t function_address = code.size();
    append_lddw(code, 2, 0, pseudo_func);
    code.push_back(alu64_reg(alu_mov, 3, 10));
    code.push_back(alu64_imm(alu_add, 3, -8));
    code.push_back(mov_imm(4, 0));
    code.push_back(make_instruction(op::call, 0, call_helper, 0, helper_loop));
    append_spending_loop(code, 7);
    code.push_back(make_instruction(cls_ldx | mode_mem | size_dw, 0, 10, -8));
    code.push_back(alu64_reg(alu_add, 0, 7));
    code.push_back(exit_program());
    const std::size_t callback = code.size();
    append_bounded_loop(code, 3, 1000);
    code.push_back(make_instruction(cls_ldx | mode_mem | size_dw, 4, 2, 0));
    code.push_back(alu64_reg(alu_add, 4, 3));
    code.push_back(make_instruction(cls_stx | mode_mem | size_dw, 2, 4, 0));
    code.push_back(mov_imm(0, 0));
    code.push_back(exit_program());
    code[function_address].imm = static_cast<std::int32_t>(callback - function_address - 1);
    execution_state state;
    const both_results results = run_both(code, helpers, &state);
    EXPECT_EQ(results.interpreter, 3000u);
    EXPECT_EQ(results.jit, 3000u);
}

TEST(may_goto, a_tail_call_target_starts_with_a_budget_of_its_own) {
    const helper_table& helpers = xdp_helper_table();
    map_definition definition{map_type::prog_array, 4, 4, 1, 0, "programs"};
    auto programs = create_map(definition, 1);
    ASSERT_TRUE(programs) << programs.error().message;
    // main: spend the budget, then tail_call(r1, programs, 0). target: a loop of at most 1000.
    std::vector<instruction> main_program;
    append_spending_loop(main_program, 6);
    append_lddw(main_program, 2, reinterpret_cast<std::uint64_t>(programs->get()));
    main_program.push_back(mov_imm(3, 0));
    main_program.push_back(make_instruction(op::call, 0, call_helper, 0, helper_tail_call));
    main_program.push_back(mov_imm(0, 7));
    main_program.push_back(exit_program());
    std::vector<instruction> target;
    append_bounded_loop(target, 0, 1000);
    target.push_back(exit_program());

    program_registry registry;
    execution_state state;
    auto runnable = runnable_program::prepare(target, helpers);
    ASSERT_TRUE(runnable);
    registry.add(&target, *runnable);
    state.programs = &registry;
    ASSERT_EQ(static_cast<prog_array_map&>(**programs).set(0, &target), 0);
    auto compiled_target = jit_program::compile(target, helpers);
    ASSERT_TRUE(compiled_target) << compiled_target.error().message;
    const both_results results = run_both(main_program, helpers, &state, {&*compiled_target});
    EXPECT_EQ(results.interpreter, 1000u);
    EXPECT_EQ(results.jit, 1000u);
}

TEST(may_goto, the_refresh_notes_the_time_first_and_grants_nothing_once_250_ms_have_passed) {
    may_goto_budget budget;
    EXPECT_EQ(budget.count, may_goto_chunk);
    EXPECT_EQ(budget.timestamp, 0u);
    EXPECT_EQ(may_goto_refresh(&budget), may_goto_chunk);
    EXPECT_NE(budget.timestamp, 0u);
    budget.timestamp -= may_goto_time_limit_ns; // as if the first refresh had been 250 ms earlier
    const std::uint64_t started = budget.timestamp;
    EXPECT_EQ(may_goto_refresh(&budget), 0u);
    EXPECT_EQ(budget.timestamp, started) << "only the first refresh notes the time";
}

} // namespace
} // namespace sluice::ebpf
