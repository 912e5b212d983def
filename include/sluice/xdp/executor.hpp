// The batch executor: runs one XDP program over a batch of frames and says what became of each.
//
// Contract:
// - create() takes a loaded object, one of its programs, the helper table (ebpf::xdp_helper_table()) and the worker's
//   ebpf::execution_state, which the executor passes to every helper as call_context::user. It fills the state's
//   tail-call registry with every program of the object (prog_array slots hold `const loaded_program*` handles), so
//   the object, the table and the state must outlive the executor.
// - run_batch(frames, out) runs the program once per frame, in order, with r1 = the frame's ebpf::xdp_context, and
//   writes each frame's final action to out[i] (out at least as long as frames; a batch is at most max_batch_size,
//   larger spans are run in pieces). The frames stay the caller's: dispatching them by action (ports, output files,
//   the pool) is the caller's job, with redirect_decisions()[i] saying where an XDP_REDIRECT frame goes.
// - r0 becomes the action by its low 32 bits, as the kernel's drivers read it. A return code that is not an action
//   becomes XDP_ABORTED and counts an exception, as the kernel's bpf_warn_invalid_xdp_action() + xdp_exception path;
//   so does XDP_ABORTED itself. An interpreter error (checked mode: an access outside the packet buffer, the context,
//   the stack, map values and global data; the instruction limit) aborts the frame, counts a fault and an exception,
//   and writes one log line naming the instruction and its source line, at most once a second (later faults are
//   counted; the next line says how many were not shown).
// - After XDP_REDIRECT the decision of the program's last bpf_redirect*() call is read from the execution state;
//   when there is none, the frame is aborted and counted in redirect_errors, as a failed xdp_do_redirect() is in the
//   kernel's drivers.
// - Every frame ends under exactly one outcome. With port errors (frames that never reached the program, e.g. too
//   large for a frame) added through count_port_errors():
//       received = dropped + passed + transmitted + redirected + aborted + errors
//   for packets; bytes count each packet's length as received (before the program changed it), so byte totals add
//   up too. check_accounting() verifies this.
// - Checked mode (the default until a verifier exists) knows the memory a program may touch: the frame's buffer
//   (headroom to the tailroom reserve), its context (read-only), the stack, the values of array maps and global data
//   (.rodata read-only), and each value a map lookup or ringbuf reservation hands the program during the run.
// - No allocation, lock or system call per packet (log lines excepted, at most one a second); an executor, its
//   interpreter and its execution state belong to one worker.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"
#include "sluice/xdp/action.hpp"
#include "sluice/xdp/batch_program.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::xdp {

/// What runs the program's instructions. The interpreter is the reference; the JIT must agree with it.
enum class execution_engine : std::uint8_t {
    interpreter, ///< the reference interpreter (checked or not, per executor_options::checked)
    jit,         ///< x86-64 native code (ebpf/jit.hpp); needs a verified program, so `checked` must be false
};

struct executor_options {
    bool checked{true};                ///< bounds-check every access (until a verifier has proven the program)
    execution_engine engine{execution_engine::interpreter};
    std::uint64_t instruction_limit{}; ///< per run, 0: none
    /// Where the rate-limited fault lines go; default: stderr, prefixed "sluice: ".
    std::function<void(std::string_view line)> log;
};

class executor final : public batch_program {
public:
    /// Prepares `program` (and every program of `object`, as tail-call targets) for `helpers`. Fails, naming the
    /// program and the instruction, when a program calls a helper the table lacks.
    static expected<executor> create(const ebpf::loaded_object& object, const ebpf::loaded_program& program,
                                     const ebpf::helper_table& helpers, ebpf::execution_state& state,
                                     executor_options options = {});

    executor(executor&&) noexcept;
    executor& operator=(executor&&) noexcept;
    ~executor() override;

    void run_batch(std::span<frame* const> frames, std::span<action> out) override;
    std::span<const ebpf::redirect_decision> redirect_decisions() const override;
    void count_port_errors(std::uint64_t packets, std::uint64_t bytes = 0) override;
    const executor_stats& stats() const override;

    const ebpf::loaded_program& program() const;

private:
    struct implementation;
    explicit executor(std::unique_ptr<implementation> self);

    std::unique_ptr<implementation> _self; ///< at a fixed address: the interpreter and registry point into it
};

} // namespace sluice::xdp
