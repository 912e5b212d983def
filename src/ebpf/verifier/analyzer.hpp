// The path exploration (the kernel's do_check and is_state_visited): follows every path of the program from
// instruction 0 with an abstract state, forking at branches whose direction depends on unknown values, and ends a
// path at exit or where an already-verified state covers the current one (pruning).
//
// Termination: a path is refused when it revisits an instruction with exactly the state it had there earlier on the
// same path (an infinite loop), and the whole run when it processes more instructions than the complexity limit.
// Bounded loops therefore verify by unrolling, as in the kernel. Callbacks (bpf_loop, bpf_for_each_map_elem) and
// may_goto loops, which the runtime bounds, are verified until their state stops growing: at their entry a state
// covered by an earlier one on the same path ends the path, and scalars that change between iterations are widened
// (callbacks at once; may_goto loops only after max_may_goto_unrolled iterations on the path, so that a counter that
// matters, such as a packet index bounded by its own test, is followed exactly as the kernel follows it).
//
// Files: analyzer.cpp (exploration, pruning, messages), analyzer_alu.cpp (arithmetic, branches),
// analyzer_memory.cpp (loads, stores, stack, context), analyzer_calls.cpp (helpers, calls, exit).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ebpf/verifier/helper_prototypes.hpp"
#include "ebpf/verifier/program_structure.hpp"
#include "ebpf/verifier/register_state.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::ebpf::verifier_detail {

/// A branch decision on the current path, for messages ("5 (if r3 > r4: false) -> 9 ...").
struct path_step {
    std::size_t pc{};
    bool taken{};
    std::shared_ptr<const path_step> previous;
};

struct explored_node;

struct verifier_state {
    std::vector<func_state> frames;
    std::vector<reference> refs; ///< ringbuf reservations held
    std::size_t pc{};
    std::shared_ptr<const path_step> path;
    explored_node* parent{};        ///< the latest stored ancestor state (for counting unfinished paths)
    std::uint32_t may_goto_depth{}; ///< may_goto fall-throughs on this path (the kernel's may_goto_depth)

    func_state& frame() { return frames.back(); }
    const func_state& frame() const { return frames.back(); }
    reg_state& reg(int r) { return frames.back().regs[static_cast<std::size_t>(r)]; }
};

struct explored_node {
    verifier_state state;
    std::uint64_t hash{};     ///< of what an exact comparison looks at: equal states have equal hashes
    std::size_t live_paths{}; ///< paths still being explored from here (0: the state is proven safe)
    std::uint32_t hits{};     ///< states it covered
    std::uint32_t misses{};   ///< states it did not cover
    explored_node* parent{};
};

/// A rejection under construction: what is wrong and how to fix it.
struct rejection {
    std::string what;
    std::string fix;
};

class analyzer {
public:
    analyzer(const verifier_input& input, const verifier_options& options, const program_structure& structure);

    expected<verification_result> run();
    /// Conditional jumps whose direction a path knew for certain (or whose scalar operand chose how the verifier
    /// treated them): their operands must be compared exactly when pruning.
    const std::vector<bool>& decided_jumps() const { return _decided; }
    /// Instructions where a number held in a register moved a pointer.
    const std::vector<bool>& pointer_arithmetic() const { return _arithmetic; }
    /// Loads and stores that reached a stack through a pointer other than r10.
    const std::vector<bool>& stack_through_pointer() const { return _stack_through_pointer; }

private:
    // ---- analyzer.cpp
    /// Pruning at a prune point: true when the path ends here. May refuse (infinite loop).
    expected<bool> visit(verifier_state& st);
    bool covers(const verifier_state& old, const verifier_state& cur, bool exact) const;
    bool reg_covers(const reg_state& old, const reg_state& cur, bool exact) const;
    void widen(verifier_state& cur, const verifier_state& old) const;
    std::uint64_t exact_hash(const verifier_state& st) const;
    /// Queues `branch` (another way on from the current state) for exploration after the current path.
    void fork(verifier_state& st, verifier_state branch);
    void end_path(verifier_state& st);
    error reject(const verifier_state& st, std::size_t pc, const rejection& why) const;
    std::string location(std::size_t pc) const;
    std::string path_text(const verifier_state& st) const;
    std::string loop_message() const;
    std::uint32_t new_id() { return ++_last_id; }
    std::uint16_t live_at(const verifier_state& st, std::size_t frame) const;
    precision_set precise_at(const verifier_state& st, std::size_t frame) const;
    bool slot_live(const verifier_state& st, std::size_t frame, std::size_t slot) const;

    // ---- analyzer_alu.cpp
    expected<void> step_alu(verifier_state& st, const instruction& insn);
    expected<void> pointer_arithmetic(verifier_state& st, const instruction& insn, reg_state& dst,
                                      const reg_state& src);
    /// Conditional jumps; `next` is set to where the current path continues (another may be forked).
    expected<void> step_branch(verifier_state& st, const instruction& insn, std::size_t& next, bool& path_ends);
    void propagate_scalar(verifier_state& st, const reg_state& narrowed) const;
    void mark_packet_range(verifier_state& st, const reg_state& pointer, bool strict) const;
    void mark_null_checked(verifier_state& st, std::uint32_t id, bool is_null);
    expected<void> check_readable(const verifier_state& st, int r, std::string_view role) const;

    // ---- analyzer_memory.cpp
    expected<void> step_load_store(verifier_state& st, const instruction& insn);
    enum class access_kind : std::uint8_t { read, write, atomic };
    /// Checks an access of `size` bytes at `reg + offset` and performs it on the state; a read gives `loaded`.
    expected<void> access_memory(verifier_state& st, int base, std::int32_t offset, int size, access_kind kind,
                                 const reg_state* stored, reg_state* loaded, bool sign_extend);
    expected<void> access_stack(verifier_state& st, const reg_state& base, std::int32_t offset, int size,
                                access_kind kind, const reg_state* stored, reg_state* loaded, bool sign_extend,
                                int base_register);
    /// Memory a helper reads or writes through a pointer argument (`size` bytes, possibly a range of sizes).
    expected<void> check_helper_memory(verifier_state& st, int r, std::uint64_t min_size, std::uint64_t max_size,
                                       bool helper_writes, std::string_view what);
    void note_stack_depth(const verifier_state& st, std::uint32_t frame, std::int64_t offset);

    // ---- analyzer_calls.cpp
    expected<void> step_call(verifier_state& st, const instruction& insn, bool& path_ends);
    expected<void> call_helper(verifier_state& st, const instruction& insn);
    expected<void> call_local(verifier_state& st, const instruction& insn);
    expected<void> step_exit(verifier_state& st, bool& path_ends);
    void enter_callback(verifier_state& st, std::size_t callsite);
    void finish_helper(verifier_state& st, std::uint32_t helper, std::optional<std::uint32_t> map,
                       std::uint64_t alloc_size);
    expected<void> check_stack_depths() const;

    const verifier_input& _input;
    const verifier_options& _options;
    const program_structure& _structure;
    std::span<const instruction> _code;
    const helper_table* _helpers;

    std::vector<std::vector<std::unique_ptr<explored_node>>> _explored; ///< by instruction
    std::vector<verifier_state> _pending;
    std::vector<std::uint64_t> _visits;           ///< by instruction
    std::vector<std::int64_t> _lookup_map;        ///< by instruction: -1 not seen, -2 several maps, else the map
    std::vector<std::uint32_t> _stack_depth;      ///< by function: deepest byte used
    std::vector<std::vector<std::size_t>> _calls; ///< by function: functions it calls or hands to helpers
    std::vector<bool> _reachable;
    std::vector<bool> _decided;               ///< by instruction
    std::vector<bool> _arithmetic;            ///< by instruction
    std::vector<bool> _stack_through_pointer; ///< by instruction
    std::uint32_t _last_id{};
    std::uint64_t _processed{};
    std::uint64_t _last_stored{}; ///< _processed when the last state was kept
    std::uint64_t _states{};
    std::uint64_t _peak_states{};
    std::uint64_t _live_states{};
    std::string _log;
};

} // namespace sluice::ebpf::verifier_detail
