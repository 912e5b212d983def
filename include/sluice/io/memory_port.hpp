// The memory port: packets in and out of process memory, for tests, benchmarks and embedding (`memory:NAME`).
//
// Contract:
// - inject() queues a packet for reception; rx_batch() copies queued packets, in order, into frames of the port's
//   pool (as a NIC's DMA would) and delivers them with the port's ifindex as ingress and the packet_info given. A
//   packet larger than a frame is not delivered: it counts in rx_errors.
// - repeat(n) replays the injected packets n times in a loop without consuming memory (benchmarks: a few template
//   packets, millions delivered).
// - exhausted() is true once close_input() was called and everything queued was delivered; until then the port is a
//   live source that may receive more (tests inject while the engine runs). Ports opened by open_memory_port() from
//   a spec are closed from the start: they are TX/pass targets.
// - tx_batch() accepts up to tx_capacity frames per call (unlimited by default; 0 refuses everything, to test TX
//   errors), copies each accepted packet into the transmitted list when capture is on (otherwise only counts it),
//   and releases the frame to its own pool at once.
// - Safe to call inject(), close_input(), transmitted() and stats() from any thread while one worker uses the port.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/expected.hpp"
#include "sluice/io/port.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::io {

/// One packet that left a memory port.
struct memory_packet {
    std::vector<std::uint8_t> bytes;
    std::uint32_t ingress_ifindex{}; ///< where the frame came in (frame context), for redirect tests
    std::uint32_t egress_ifindex{};  ///< the frame context's egress_ifindex (set by devmap redirects)
    std::uint64_t record{};          ///< packet_info.record of the frame
};

struct memory_port_options {
    std::uint32_t ifindex{};           ///< 0: a sluice-assigned ifindex, distinct from kernel ones
    bool capture{true};                ///< keep copies of transmitted packets (off for benchmarks)
    std::size_t tx_capacity{SIZE_MAX}; ///< frames tx_batch() accepts per call
    std::uint32_t rx_queue{};          ///< rx_queue_index of delivered frames
};

class memory_port final : public port {
public:
    memory_port(std::string name, xdp::frame_pool& pool, const memory_port_options& options = {});

    const port_features& features() const override { return _features; }
    std::size_t rx_batch(std::span<xdp::frame*> out) override;
    std::size_t tx_batch(std::span<xdp::frame* const> frames) override;
    bool exhausted() const override;
    port_stats stats() const override;

    /// Queues a packet for reception; `record` 0 numbers it by arrival (1, 2, ...).
    void inject(std::span<const std::uint8_t> packet, std::uint64_t record = 0);
    /// Delivers the injected packets `rounds` times over (1: once, the default).
    void repeat(std::uint64_t rounds);
    /// No more packets will be injected: exhausted() once the queue is delivered.
    void close_input();

    /// Copies of the packets transmitted so far (capture on), in order.
    std::vector<memory_packet> transmitted() const;
    std::uint32_t ifindex() const { return _features.ifindex; }

private:
    struct stored {
        std::vector<std::uint8_t> bytes;
        std::uint64_t record{};
    };

    xdp::frame_pool& _pool;
    port_features _features;
    memory_port_options _options;

    mutable std::mutex _lock;
    std::vector<stored> _queue; ///< injected packets; _next is the first not yet delivered in this round
    std::size_t _next{};
    std::uint64_t _rounds{1};
    std::uint64_t _round{};
    std::uint64_t _injected{};
    bool _closed{};
    std::vector<memory_packet> _transmitted;
    port_stats _stats;
};

/// `memory:NAME` for open_port(): a memory port with its input closed (a TX or pass target).
expected<std::unique_ptr<port>> open_memory_port(std::string_view spec, std::string_view name, xdp::frame_pool& pool,
                                                 const port_options& options = {});

} // namespace sluice::io
