// What the data path runs on a batch of frames: an eBPF program (executor.hpp) or a Lua script (lua/), on the XDP hook.
//
// Contract, for every implementation:
// - run_batch(frames, out) decides each frame's action, in order, writing out[i] for frames[i] (out at least as long
//   as frames). Spans longer than max_batch_size are run in pieces. The frames stay the caller's: dispatching them
//   by action (ports, redirect queues, the pool) is the caller's job.
// - After run_batch(), redirect_decisions()[i] says where frame i goes when out[i] is XDP_REDIRECT (for the last
//   piece of at most max_batch_size frames; other positions are stale). A redirect with no target is already turned
//   into XDP_ABORTED and counted, so a caller never sees an XDP_REDIRECT without a decision.
// - Every frame given to run_batch() or count_port_errors() ends under exactly one outcome of stats():
//       received = dropped + passed + transmitted + redirected + aborted + errors
//   in packets and in bytes (each packet's length as received, before the program changed it). check_accounting()
//   verifies this; a mismatch is a bug.
// - One instance belongs to one worker: no locks, no allocation per packet.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/expected.hpp"
#include "sluice/xdp/action.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::xdp {

/// The largest batch run_batch() takes at once (DESIGN.md, "Batches").
inline constexpr std::size_t max_batch_size = 64;

struct counter {
    std::uint64_t packets{};
    std::uint64_t bytes{};

    void add(std::uint64_t packet_bytes) {
        ++packets;
        bytes += packet_bytes;
    }
    constexpr bool operator==(const counter&) const = default;
};

struct executor_stats {
    counter received;                          ///< frames given to run_batch() plus port errors
    std::array<counter, action_count> actions; ///< final outcome of each frame that ran, indexed by xdp::index()
    counter errors;                            ///< frames that never reached the program (count_port_errors())
    std::uint64_t exceptions{};           ///< xdp_exception: XDP_ABORTED returned, unknown codes, faults, bad redirects
    std::uint64_t unknown_return_codes{}; ///< r0 not an action (aborted)
    std::uint64_t faults{};               ///< the interpreter stopped the program (aborted)
    std::uint64_t redirect_errors{};      ///< XDP_REDIRECT without a redirect set (aborted)

    const counter& of(action value) const { return actions[index(value)]; }
    /// Sum over every outcome: equals `received` when every frame is accounted for.
    counter accounted() const;
};

class batch_program {
public:
    virtual ~batch_program() = default;

    /// Decides each frame's action; out[i] is frames[i]'s outcome.
    virtual void run_batch(std::span<frame* const> frames, std::span<action> out) = 0;

    /// Where each XDP_REDIRECT frame of the last batch (up to max_batch_size frames) goes, by position.
    virtual std::span<const ebpf::redirect_decision> redirect_decisions() const = 0;

    /// Counts frames a port received but could not hand over (too large for a frame, ...): they are outcomes too.
    virtual void count_port_errors(std::uint64_t packets, std::uint64_t bytes = 0) = 0;

    virtual const executor_stats& stats() const = 0;

    /// received == the sum of outcomes, packets and bytes; the error gives both sides.
    expected<void> check_accounting() const;
};

} // namespace sluice::xdp
