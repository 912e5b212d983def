// What the code generator (x86_64_compiler.cpp) and the runtime (jit_runner.cpp) share: the run's state as generated
// code addresses it through r12, the batch entry's arguments, and a compiled program's entry points.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "ebpf/jit/executable_memory.hpp"
#include "sluice/ebpf/jit.hpp"

namespace sluice::ebpf::jit {

/// Why generated code gave up on a run (run_state::error_kind).
enum class failure_kind : std::uint32_t {
    none,
    call_depth, ///< a local call would exceed max_call_depth frames (error_pc: the call)
    callx,      ///< callx through a register naming no helper (error_pc: the callx, error_value: the register)
    runtime,    ///< a callback or tail call failed in C++; the runner holds the message
};

/// One run's state; generated code keeps its address in r12. Standard layout, so that offsetof() gives the
/// displacements the generated code uses.
struct run_state {
    call_context context;        ///< what helpers get as their sixth argument
    std::uint64_t base_rsp{};    ///< rsp on entry to the running program's first frame: where stop, abort and tail
                                 ///< calls unwind to (the return address into the entry code is there)
    std::uint64_t saved_r1{};    ///< r1 at the helper call in progress: a tail call keeps it
    std::uint32_t depth{};       ///< index of the current frame: 0 in the program, +1 per local call or callback
    std::uint32_t failed{};      ///< nonzero: the run failed (error_kind says why)
    std::uint32_t error_kind{};  ///< failure_kind
    std::uint32_t error_pc{};    ///< instruction to blame
    std::uint64_t error_value{}; ///< callx: the register's value
    const jit_program::implementation* running{}; ///< the program running now (a tail call replaces it)
    void* runner{};                               ///< the jit_runner::implementation
};

/// The batch entry's second argument.
struct batch_arguments {
    xdp_context* const* contexts{};
    std::uint64_t* results{};
    redirect_decision* decisions{};
    std::uint64_t count{};
    execution_state* state{};
};

/// Generated entry points, as C++ calls them.
/// Runs `function` (a native function entry) with r1..r5 = arguments[0..4] in a fresh frame; unwinding (stop,
/// abort) returns here.
using trampoline_function = std::uint64_t (*)(run_state* state, const void* function, const std::uint64_t* arguments);
/// Runs the program over arguments->contexts from `first`; returns the failing index or the count.
using batch_function = std::uint64_t (*)(run_state* state, const batch_arguments* arguments, std::uint64_t first);

/// Called by generated code when a helper asked for a tail call: the target's native entry, or nullptr (the run then
/// aborts; the runner holds the message).
const void* resolve_tail_call(run_state* state);

} // namespace sluice::ebpf::jit

namespace sluice::ebpf {

struct jit_program::implementation {
    std::span<const instruction> code;
    const helper_table* helpers{};
    jit::executable_memory memory;
    std::size_t inlined_lookups{};
    std::size_t batch_entry{}; ///< offsets into memory
    std::size_t trampoline{};
    std::size_t main_entry{};
    std::vector<std::pair<std::uint32_t, std::uint32_t>> functions; ///< (instruction, native offset), sorted
    std::vector<helper_function> callx_table;                       ///< helpers by id, for callx

    const void* at(std::size_t offset) const { return memory.data() + offset; }
    /// The native entry of the function starting at instruction `pc`, or nullptr.
    const void* function_at(std::size_t pc) const;
    jit::trampoline_function trampoline_entry() const;
    jit::batch_function batch() const;
};

} // namespace sluice::ebpf
