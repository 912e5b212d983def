// The x86-64 JIT: a program compiled to native code once, at load time, then run per packet or per batch.
//
// Contract:
// - jit_program::compile() accepts what the interpreter accepts (check_helper_calls(): a valid encoding whose static
//   helper calls all name helpers of the table) and produces code that computes exactly what the reference
//   interpreter computes in its trusting (unchecked) mode: every instruction of RFC 9669 with the interpreter's
//   semantics (division and modulo by zero, INT_MIN / -1, masked shifts, sign extension, byte swaps, JMP32, atomics
//   with their fetch forms, xchg, cmpxchg against r0, lddw with every pseudo source, gotol, callx, BPF-to-BPF calls).
//   Nothing is bounds-checked at run time: only verified programs may run on untrusted input.
// - Registers as the kernel's x86 JIT maps them (arch/x86/net/bpf_jit_comp.c): r0 rax, r1 rdi, r2 rsi, r3 rdx,
//   r4 rcx, r5 r8 (so r1..r5 are already the System V argument registers of a helper call), r6 rbx, r7 r13, r8 r14,
//   r9 r15, r10 rbp; r12 holds the run's state, r9/r10/r11 are scratch. Every function (the program and each
//   subprogram) gets its own 512-byte frame on the native stack, at most max_call_depth (8) frames deep.
// - Helpers are direct calls to the table's function pointers, with the run's call_context as their sixth argument,
//   under the interpreter's contract (interpreter.hpp): a helper may stop the program, ask for a tail call (the
//   target's compiled code comes from the runner's registry, add_tail_call_target(); at most max_tail_calls), or call
//   back into the program (bpf_loop, bpf_for_each_map_elem). Function handles are the interpreter's: the address of
//   the target instruction in the running program's code; the JIT maps them to native entry points (the targets of
//   local calls and of function-address lddw; any other handle fails the run, naming it). Helpers must not throw:
//   no unwind information crosses generated frames.
// - Load-time specialisation: bpf_map_lookup_elem on a constant array or per-CPU array map becomes an inline bounds
//   check of the key and address arithmetic, per-CPU arrays resolved to the slot of jit_options::cpu, as the kernel's
//   array_map_gen_lookup does. The map is constant where verify()'s facts say so (jit_options::facts), or where the
//   lookup's basic block loads the map's address into r1 itself (needs jit_options::maps). Other calls are calls.
// - may_goto runs as in the interpreter (interpreter.hpp: Linux 6.18's timed may_goto, a budget per frame, 0xffff
//   iterations at a time for 250 ms): a program containing one gives every frame 16 more bytes below its 512 for
//   the frame's may_goto_budget, set by each function's prologue; the refresh is a call to may_goto_refresh().
// - The native code lives in memory mapped writable, filled, then made read+execute: never writable and executable at
//   once.
// - Differences from the interpreter, by design: r1..r5 are clobbered by helper calls (as in the kernel; the verifier
//   refuses reading them after a call, the interpreter happens to keep them); there is no instruction limit (a
//   verified program terminates); stack addresses differ (frames are on the native stack).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/isa.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/ebpf/verifier.hpp"
#include "sluice/ebpf/xdp_context.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

struct jit_options {
    /// Facts verify() proved, by instruction index (empty: no specialisation, every helper call is a call).
    std::span<const instruction_facts> facts;
    /// Maps by index, as instruction_facts::constant_map names them (the loaded object's maps()).
    std::span<const std::unique_ptr<map>> maps;
    /// The worker this code runs on: inlined per-CPU array lookups address this cpu's slot, so the compiled program
    /// must only run with an execution_state of this cpu (the executor compiles per worker).
    unsigned cpu{};
};

class jit_runner;

/// Native code for one program. Immutable once compiled; `code` and `helpers` must outlive it.
class jit_program {
public:
    /// Fails, naming the instruction, when the program does not pass check_helper_calls(), or the assembler fails.
    static expected<jit_program> compile(std::span<const instruction> code, const helper_table& helpers,
                                         const jit_options& options = {});

    jit_program(jit_program&&) noexcept;
    jit_program& operator=(jit_program&&) noexcept;
    ~jit_program();

    std::span<const instruction> code() const; ///< the eBPF code it was compiled from
    const std::uint8_t* native_code() const;   ///< start of the executable mapping
    std::size_t native_size() const;           ///< bytes of machine code
    std::size_t inlined_lookups() const;       ///< map lookups turned into address arithmetic

    struct implementation;

private:
    explicit jit_program(std::unique_ptr<implementation> self);
    std::unique_ptr<implementation> _self;

    friend class jit_runner;
};

/// The XDP return code for which run_batch() records the redirect decision.
inline constexpr std::uint32_t jit_xdp_redirect = 4; ///< XDP_REDIRECT

/// Runs compiled programs on one thread: the run's state (call_context, error) and the tail-call registry.
/// The programs must outlive the runner. One runner per thread.
class jit_runner {
public:
    explicit jit_runner(const jit_program& program);
    jit_runner(jit_runner&&) noexcept;
    jit_runner& operator=(jit_runner&&) noexcept;
    ~jit_runner();

    /// Makes `target` reachable by tail calls: a helper's call_context::tail_call naming a runnable_program whose
    /// code is target.code() continues in target's native code. The program itself is always registered.
    void add_tail_call_target(const jit_program& target);

    /// Runs from instruction 0 with r1..r5 = arguments; `user` becomes call_context::user.
    /// Errors: a local call or callback deeper than max_call_depth frames, a callx to no helper, a callback handle
    /// that names no function of the running program, a tail call to a program without compiled code.
    expected<std::uint64_t> run(const std::array<std::uint64_t, 5>& arguments, void* user = nullptr);

    /// The batch entry: runs the program once per context from `first` on, in generated code that sets up the stack,
    /// the call_context and the callee-saved registers once per batch. For each packet, as execution_state's
    /// begin_packet() does, state.context is set and state.redirect cleared; r1 = the context, r2..r5 = 0; r0 goes to
    /// results[i]; when its low 32 bits are jit_xdp_redirect, state.redirect is copied to decisions[i].
    /// Returns the index of the first packet whose run failed (last_error() says why; its result is unset), or
    /// contexts.size() when every packet ran. Continue after a failure with first = index + 1. results and
    /// decisions must be at least as long as contexts (only as many packets as all three hold are run).
    std::size_t run_batch(std::span<xdp_context* const> contexts, std::span<std::uint64_t> results,
                          std::span<redirect_decision> decisions, execution_state& state, std::size_t first = 0);

    /// Why the last failed run (run() or a packet of run_batch()) failed.
    const error& last_error() const;

    struct implementation;

private:
    std::unique_ptr<implementation> _self;
};

} // namespace sluice::ebpf
