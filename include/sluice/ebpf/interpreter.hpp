// The reference interpreter: RFC 9669 semantics, instruction by instruction.
//
// It executes a program that validate() accepted. In its default mode it trusts the program (the verifier's proofs
// replace run-time checks); in checked mode every load, store and atomic is bounds-checked against the regions the
// caller registered plus the interpreter's own stack, and a violation stops the program with an error naming the
// instruction. Checked mode is the safety net until a program is verified, and a cross-check of the verifier after.
//
// Helpers, tail calls and callbacks (the contract helpers rely on):
//  - A helper gets r1..r5 and a call_context. It may stop the program (`stop`), ask for a tail call (`tail_call`:
//    after the helper returns, the interpreter continues at instruction 0 of that program with r1 unchanged, every
//    call frame dropped and a fresh stack, as the kernel's bpf_tail_call does), or call a function of the running
//    program (`call`: bpf_loop, bpf_for_each_map_elem). Tail calls are counted per run in `tail_calls`; the helper
//    refuses once max_tail_calls (33) have been made, as the kernel does.
//  - Function addresses: `lddw rX, pseudo_func` (src 4, imm = target - (pc + 1), as the loader links it and leaves it
//    after lowering) loads an opaque *function handle*. In this interpreter the handle is the address of the target
//    instruction in the running program's code; helpers must only pass it back to call_context::call(), which checks
//    that it names an instruction of the running program. Other engines (the JIT) may use another representation.
//  - A callback runs in its own stack frame below the caller's, counts against max_call_depth (8) like a local call,
//    and returns its r0. Callbacks may call helpers and callbacks again (re-entrant); they may not tail call.
//
// may_goto (0xe5; clang's can_loop / cond_break) runs as Linux 6.18 runs it on x86-64, the "timed may_goto" of
// do_misc_fixups() and bpf_check_timed_may_goto() (kernel/bpf/verifier.c, core.c):
//  - Every call frame has its own budget (may_goto_budget: a count and a timestamp), set to {0xffff, 0} when the frame
//    starts: the program's first frame, each BPF-to-BPF call, each callback invocation (bpf_loop calls its callback
//    as a new frame each time, so each iteration starts afresh), and a tail call's target (the caller's frames are
//    gone). The kernel keeps one only in the frames of subprograms containing a may_goto; a frame without one never
//    reads it, so a budget per frame behaves the same. All the may_goto of a frame share its budget: once one loop
//    spent it, the frame's next may_goto jumps at once.
//  - may_goto with a count of 0 jumps; otherwise it decrements the count and falls through, and when the count
//    reaches 0 it asks may_goto_refresh(): the first time it notes the time (CLOCK_MONOTONIC, the kernel's
//    ktime_get_mono_fast_ns) and grants another 0xffff, later ones grant 0xffff until 250 ms have passed since then,
//    and 0 after. A loop bounded only by can_loop therefore runs k * 0xffff times (k >= 2) for about 250 ms, in the
//    kernel and here alike: the count is bounded by time, not a fixed number (older kernels and other architectures
//    use a plain count of BPF_MAX_LOOPS, 8M).
//  - `may_goto +0` does nothing, as the kernel's opt_remove_nops() removes it before the program runs.
//
// One interpreter owns its stack: use one per thread.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ebpf/isa.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

struct runnable_program;

/// A memory range a program may touch in checked mode.
struct memory_region {
    std::uintptr_t begin{};
    std::size_t size{};
    bool writable{};
    std::string_view name; ///< "packet", "context", "map value", ... for messages
};

/// Runs the function whose handle is `function` (see the header comment) with r1..r5 = `arguments`; false when it
/// could not run or failed (the program then ends with that error once the helper returns: stop using the result).
/// `lent` are regions the function may access for the duration of the call in checked mode (the key and value
/// bpf_for_each_map_elem hands its callback).
using function_caller = bool (*)(void* engine, std::uint64_t function, const std::array<std::uint64_t, 5>& arguments,
                                 std::span<const memory_region> lent, std::uint64_t& result);

/// Checked mode: lets the program access `region` until the embedder clears the regions (next packet).
using region_granter = void (*)(void* engine, const memory_region& region);

/// What a helper sees besides its five arguments. A helper may end the program at once (as the conformance suite's
/// "unwind" helper and the kernel's bpf_throw do) by setting `stop`; r0 is then `stop_value`.
struct call_context {
    void* user{};                        ///< the embedder's state (frame, maps, engine), passed through untouched
    bool stop{};                         ///< set by a helper: end the program after this call
    std::uint64_t stop_value{};          ///< r0 when stopping
    const runnable_program* tail_call{}; ///< set by a helper: continue in this program after this call
    std::uint32_t tail_calls{};          ///< tail calls made so far in this run (maintained by the engine)
    std::uint32_t callback_depth{};      ///< callbacks in progress (maintained by the engine); 0 in the program
    function_caller caller{};            ///< set by the engine
    region_granter granter{};            ///< set by the engine in checked mode only
    void* engine{};                      ///< the engine's own state, for `caller` and `granter`

    /// A helper that hands the program memory (a map value, a ringbuf record) grants it here, so that checked mode
    /// knows the program may touch it; a no-op when nothing checks.
    void grant(const memory_region& region) {
        if (granter != nullptr) {
            granter(engine, region);
        }
    }

    /// Calls a function of the running program (bpf_loop's callback); false when it could not or failed.
    bool call(std::uint64_t function, const std::array<std::uint64_t, 5>& arguments, std::uint64_t& result,
              std::span<const memory_region> lent = {}) {
        return caller != nullptr && caller(engine, function, arguments, lent, result);
    }
};

using helper_function = std::uint64_t (*)(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                          std::uint64_t r5, call_context& context);

inline constexpr std::size_t max_helper_id = 512;

/// A frame's may_goto budget (the kernel's struct bpf_timed_may_goto; see the header comment). The JIT keeps it in
/// this layout just below each frame's 512 bytes of stack, as the kernel does.
struct may_goto_budget {
    std::uint64_t count{0xffff}; ///< BPF_MAX_TIMED_LOOPS at frame entry
    std::uint64_t timestamp{};   ///< monotonic ns at the first refresh, 0 before
};
inline constexpr std::uint64_t may_goto_chunk = 0xffff;              ///< BPF_MAX_TIMED_LOOPS
inline constexpr std::uint64_t may_goto_time_limit_ns = 250'000'000; ///< NSEC_PER_SEC / 4

/// The kernel's bpf_check_timed_may_goto(): called when a frame's count reached 0; returns its new count.
std::uint64_t may_goto_refresh(may_goto_budget* budget) noexcept;

/// One may_goto against `budget`: true when it jumps (the budget is spent).
inline bool may_goto_spent(may_goto_budget& budget) {
    if (budget.count == 0) {
        return true;
    }
    if (--budget.count == 0) {
        budget.count = may_goto_refresh(&budget);
    }
    return false;
}

/// Helpers by id (the kernel's numbering for the kernel's helpers). A missing entry is a helper sluice lacks.
class helper_table {
public:
    helper_table() = default;
    /// `provided_for` completes load errors: "..., which sluice does not provide for XDP programs".
    explicit helper_table(std::string_view provided_for) : _provided_for(provided_for) {}

    void set(std::uint32_t id, std::string_view name, helper_function function);
    helper_function find(std::uint32_t id) const { return id < _functions.size() ? _functions[id] : nullptr; }
    std::string_view name(std::uint32_t id) const { return id < _names.size() ? _names[id] : std::string_view{}; }
    std::string_view provided_for() const { return _provided_for; }

private:
    std::vector<helper_function> _functions;
    std::vector<std::string_view> _names;
    std::string_view _provided_for;
};

/// The load-time checks of a program's code against a helper table: validate(), then every static helper call
/// names a helper of the table (else "instruction 12: calls bpf_skb_load_bytes (helper 26), which sluice does not
/// provide for XDP programs"), and no kfunc call. The loader's load_options::check_program can call this.
expected<void> check_helper_calls(std::span<const instruction> code, const helper_table& helpers);

/// A program the interpreter can run or tail-call into: code that passed check_helper_calls() with `helpers`.
/// Only prepare() makes one, so a tail call never needs to check the target again. `code` and `helpers` must outlive
/// it. prog_array slots hold opaque handles; the tail-call helper turns them into runnable programs (helpers.hpp).
struct runnable_program {
    std::span<const instruction> code;
    const helper_table* helpers{};

    static expected<runnable_program> prepare(std::span<const instruction> code, const helper_table& helpers);

private:
    runnable_program(std::span<const instruction> program, const helper_table& table)
        : code(program), helpers(&table) {}
};

struct interpreter_options {
    bool checked{};                    ///< bounds-check every access against the registered regions
    std::uint64_t instruction_limit{}; ///< stop after this many executed instructions (0: no limit)
};

class interpreter {
public:
    /// Fails, naming the instruction, when a static helper call names a helper the table lacks.
    /// `code` and `helpers` must outlive the interpreter.
    static expected<interpreter> create(std::span<const instruction> code, const helper_table& helpers,
                                        interpreter_options options = {});

    /// Registers a region for checked mode; regions stay until clear_regions().
    void add_region(memory_region region) { _regions.push_back(region); }
    void clear_regions() { _regions.clear(); }

    /// Runs from instruction 0 with r1..r5 set and r10 at the top of a fresh stack frame.
    /// Errors: checked-mode violations, the instruction limit, a callx to no helper, call depth over max_call_depth,
    /// a callback handle that names no instruction of the running program.
    expected<std::uint64_t> run(std::array<std::uint64_t, 5> arguments, void* user = nullptr);

private:
    interpreter(std::span<const instruction> code, const helper_table& helpers, interpreter_options options);

    struct run_state;

    /// The run loop, compiled once per mode so that the unchecked loop carries no checks at all. Runs from `entry`
    /// until the frame it starts in exits; `depth_base` frames are already in use below `frame_top`.
    template <bool checked, bool limited>
    expected<std::uint64_t> execute(run_state& state, std::size_t entry, const std::array<std::uint64_t, 5>& arguments,
                                    std::uintptr_t frame_top, std::size_t depth_base);

    /// call_context::granter (checked mode): adds a region for the rest of the packet.
    static void grant_region(void* engine, const memory_region& region);
    /// call_context::caller: runs a callback of the running program in a new frame.
    template <bool checked, bool limited>
    static bool call_function(void* engine, std::uint64_t function, const std::array<std::uint64_t, 5>& arguments,
                              std::span<const memory_region> lent, std::uint64_t& result);

    /// Checked mode: whether [address, address + bytes) lies in the live stack or one registered region.
    /// On failure `message` says why, naming the access.
    bool access_allowed(std::uintptr_t address, std::size_t bytes, bool write, std::uintptr_t stack_low,
                        std::uintptr_t stack_high, std::string& message) const;

    std::span<const instruction> _code;
    const helper_table* _helpers;
    interpreter_options _options;
    std::vector<memory_region> _regions;
    std::vector<std::uint8_t> _stack; ///< max_call_depth frames of stack_size bytes, 16-byte aligned base
};

} // namespace sluice::ebpf
