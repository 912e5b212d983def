// Ports: where frames come from and go to (DESIGN.md, "Ports"). One interface for pcap files, the generator, an
// in-memory port, AF_XDP, AF_PACKET and TAP; io/ knows frames, never programs.
//
// Contract:
// - A port is opened from a spec string (`pcap:FILE`, `gen:SPEC`, `memory:NAME`, `afxdp:IFACE[:QUEUE]`,
//   `afpacket:IFACE`, `tap:NAME`) by open_port(); a bad spec or an interface that cannot be opened is an error naming
//   the spec and the reason (and, for privileges, what is missing: "needs CAP_NET_RAW", ...). Kernel ports take
//   settings after the name that override port_options, comma-separated: `afxdp:veth0:1,generic,copy,ring=4096,poll=5`
//   (`copy` and `generic` for AF_XDP, `ring=N` for AF_XDP and AF_PACKET, `poll=MS` for all three).
// - features() says what the port can do before any traffic flows (`sluice features PORT` prints it).
// - rx_batch(out) fills out[0..n) with received frames and returns n (0 when nothing is waiting; it does not block
//   longer than the poll timeout the port was opened with). The frames come from the port's frame pool; from then on
//   they are the caller's, until the caller hands each to exactly one of: tx_batch() of this or another port, or
//   frame_pool::release() of the pool it came from (drop, abort, after a copy). Each frame carries its ingress ifindex
//   and queue (frame::set_ingress) and its packet_info.
// - Packets the port received but could not put in a frame (too large, truncated) are not returned; they are counted
//   in rx_errors() so the engine can account them as port errors.
// - tx_batch(frames) sends frames out of the port and returns how many it accepted, always a prefix of `frames`.
//   Accepted frames belong to the port, which releases each to its pool once sent (a copying port at once, AF_XDP
//   after the completion ring returns it). Frames not accepted (ring full, link down) stay the caller's, who drops
//   them and counts tx errors. A port without TX (features().tx false) accepts none.
// - flush() pushes out what tx_batch() queued (kicks the kernel for AF_XDP, sends the TPACKET_V3 TX ring) and
//   reclaims completed frames; the engine calls it after each batch.
// - A port is used by one worker thread at a time (queue by queue for multi-queue devices).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/expected.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::io {

/// What a port supports, so a user can check before deploying and the engine can fall back in software.
struct port_features {
    std::string kind;          ///< "pcap", "gen", "memory", "afxdp", "afpacket", "tap"
    std::string interface;     ///< the interface or file it is bound to
    std::uint32_t ifindex{};   ///< the kernel's ifindex for real interfaces; sluice's own number otherwise
    bool rx{};                 ///< delivers frames
    bool tx{};                 ///< sends frames (XDP_TX back out, target of redirects)
    bool zero_copy{};          ///< frames are the kernel's buffers (AF_XDP zero-copy mode)
    bool frags{};              ///< multi-buffer packets
    bool metadata{};           ///< keeps data_meta across the port
    bool redirect_target{};    ///< may be named by bpf_redirect / a devmap entry
    bool pass_target{};        ///< may receive XDP_PASS frames (towards the host stack, or a file)
    std::uint32_t queues{1};   ///< RX queues
    std::uint32_t mtu{};       ///< largest packet, 0 if unbounded
    std::string mode;          ///< driver mode or notes ("copy", "zero-copy", "TPACKET_V3 block 1 MiB", ...)
};

struct port_stats {
    std::uint64_t rx_packets{};
    std::uint64_t rx_bytes{};
    std::uint64_t rx_errors{};  ///< received but not delivered (too large, truncated): engine's port errors
    std::uint64_t tx_packets{};
    std::uint64_t tx_bytes{};
    std::uint64_t tx_errors{};  ///< accepted by tx_batch() but not sent
    /// Packets the kernel dropped before the port saw them (RX ring full, no free buffer: AF_XDP's XDP_STATISTICS,
    /// AF_PACKET's PACKET_STATISTICS). Never received, so outside the engine's accounting; a sign of overload.
    std::uint64_t rx_missed{};
};

class port {
public:
    virtual ~port() = default;

    virtual const port_features& features() const = 0;
    const std::string& name() const { return _name; }

    /// Fills out with received frames; returns how many.
    virtual std::size_t rx_batch(std::span<xdp::frame*> out) = 0;
    /// Sends frames; returns how many it accepted (a prefix).
    virtual std::size_t tx_batch(std::span<xdp::frame* const> frames) = 0;
    /// Pushes queued TX frames out and reclaims completed ones.
    virtual void flush() {}
    /// True once a finite source (pcap file, generator with a packet count) has nothing more to deliver.
    virtual bool exhausted() const { return false; }

    virtual port_stats stats() const = 0;

    /// The pool of the frames rx_batch() hands out when the port has its own (AF_XDP: its UMEM), else nullptr (the
    /// frames come from the pool given to open_port()). A worker that reads the port should keep a
    /// frame_pool::cache of it, as of the engine's pool: without one every release of such a frame takes the pool's
    /// lock.
    virtual xdp::frame_pool* own_pool() const { return nullptr; }

protected:
    explicit port(std::string name) : _name(std::move(name)) {}

private:
    std::string _name;
};

struct port_options {
    std::uint32_t poll_timeout_ms{10}; ///< rx_batch waits at most this long
    std::uint32_t queue{};            ///< RX/TX queue for multi-queue devices
    std::uint32_t ring_size{2048};    ///< descriptors per ring (AF_XDP, AF_PACKET frames)
    bool force_copy{};                ///< AF_XDP: XDP_COPY even if the driver could do zero-copy
    bool force_generic{};             ///< AF_XDP: attach the redirect program in SKB (generic) mode
    bool output{};                    ///< pcap: create FILE and write to it (a TX-only port) instead of reading it
    bool nanosecond{};                ///< pcap output: nanosecond timestamps (default microsecond)
};

/// Opens a port from its spec string; frames come from `pool` (AF_XDP may use its own UMEM-backed pool).
expected<std::unique_ptr<port>> open_port(std::string_view spec, xdp::frame_pool& pool, const port_options& options = {});

} // namespace sluice::io
