// The static shape of a program, before any path is followed (the kernel's check_subprogs and check_cfg): its
// functions, the control-flow edges, which instructions can be reached at all, which registers are live where
// (so that pruning ignores dead ones), and where explored states are worth keeping (prune points).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "sluice/ebpf/isa.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf::verifier_detail {

struct function_extent {
    std::size_t first{};
    std::size_t end{}; ///< one past the last instruction
};

/// Registers r0..r9 and the function's own stack slots (slot i: fp-8*(i+1)) whose exact values may matter.
struct precision_set {
    std::uint16_t registers{};
    std::uint64_t slots{};

    bool operator==(const precision_set&) const = default;
    precision_set operator|(const precision_set& o) const {
        return {static_cast<std::uint16_t>(registers | o.registers), slots | o.slots};
    }
};

/// What the precision analysis learns from exploring: which comparisons were decided and where a number was added to
/// a pointer (sinks the static analysis cannot see), and what helpers need.
struct precision_inputs {
    const std::vector<bool>* decided_jumps{};          ///< nullptr: every comparison is a sink
    const std::vector<bool>* pointer_arithmetic{};     ///< nullptr: every register add/sub is a sink
    const std::vector<bool>* stack_through_pointer{};  ///< loads/stores that reached the stack through a pointer
                                                       ///< other than r10 (nullptr: any of them may)
    std::uint16_t (*helper_needs)(std::uint32_t id){}; ///< argument registers whose values matter (bit r)
    bool (*helper_calls_back)(std::uint32_t id){};     ///< the helper runs a callback that may read the stack
};

struct program_structure {
    std::vector<function_extent> functions; ///< sorted by first; functions[0] starts at 0
    std::vector<std::uint32_t> function_at; ///< by instruction
    std::vector<std::uint16_t> live_in;     ///< by instruction: r0..r9 read before written from here (bit i)
    /// By instruction: registers whose exact value may matter to safety from here on (a static stand-in for the
    /// kernel's precision marks): values that flow into comparisons, pointer arithmetic, helper arguments, stores
    /// and returns from functions. Pruning compares other scalars by type only.
    std::vector<precision_set> precise_in;
    /// By instruction: the function's own stack slots that may be read from here on (the kernel's stack liveness);
    /// pruning ignores the others. Computed with precise_in.
    std::vector<std::uint64_t> live_slots_in;
    std::vector<std::vector<std::size_t>> successors; ///< by instruction: where control goes next in its function
    std::vector<bool> prune_point;                    ///< by instruction
    std::vector<bool> second_half;                    ///< by instruction: the upper slot of an lddw
    std::vector<bool> callback_entry;                 ///< by instruction: a function whose address is taken

    static std::size_t jump_target(const instruction& insn, std::size_t pc);
    static bool is_conditional_jump(const instruction& insn);
    static bool is_may_goto(const instruction& insn) { return insn.opcode == (op::cls_jmp | 0xe0); }
};

/// Builds the structure and refuses what no path can make right: instructions no path reaches, code that runs off
/// the end of its function, jumps between functions. `describe(pc)` heads each message (index, text, source line).
/// `helper_arguments(id)` is how many arguments helper `id` reads (for liveness).
/// Recomputes precise_in. Sinks: conditional jumps some explored path decided (their operands' exact values chose
/// the path), additions of a number to a pointer, helper arguments the helper's safety depends on (sizes, NULL or
/// not), a function's result, and through the stack: a slot is needed where a needed register is filled from it.
void compute_precision(program_structure& structure, std::span<const instruction> code, const precision_inputs& inputs);

expected<program_structure> analyse_structure(std::span<const instruction> code,
                                              std::span<const program_function> declared,
                                              std::string (*describe)(const void*, std::size_t),
                                              const void* describe_context, int (*helper_arguments)(std::uint32_t));

} // namespace sluice::ebpf::verifier_detail
