// An in-process AF_XDP socket: where bpf_redirect_map() into an xskmap sends frames, and where a C++ user reads them
// and writes frames back out, modelled on AF_XDP's RX and TX rings.
//
// Contract:
// - A socket has an id (what the control plane writes into an xskmap slot, where the kernel takes a socket fd), the
//   ifindex of the port it is bound to and a queue id (what a program sees as bpf_xdp_sock.queue_id). Register it
//   with the engine (engine_config::sockets) before putting it in a map.
// - RX: the data path delivers redirected frames into the RX ring, in bulk; when the ring is full the rest are
//   refused (the engine drops and counts them as redirect errors, as the kernel's xsk_rcv fails with -ENOBUFS).
//   receive() hands frames to the user, who then owns each until giving it to send() or back to its pool
//   (frame::pool()->release()).
// - TX: send() queues frames on the TX ring (a prefix of them, as much as fits; the rest stay the user's). The worker
//   that owns the bound port takes them, in bulk, and transmits them out of that port; frames the port refuses are
//   released and counted in stats().tx_errors. There is no completion ring: a sent frame goes back to its pool once
//   the port has it (sluice's ports release frames themselves).
// - Both rings are guarded by one lock taken once per bulk (per receive()/send() call and per engine flush), so the
//   user's thread and any number of workers may use a socket at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "sluice/xdp/frame.hpp"

namespace sluice::xdp {

struct xsk_stats {
    std::uint64_t rx_packets{}; ///< frames delivered into the RX ring
    std::uint64_t rx_dropped{}; ///< frames refused: RX ring full
    std::uint64_t tx_packets{}; ///< frames the bound port accepted
    std::uint64_t tx_errors{};  ///< frames the bound port refused (released)
};

class xsk_socket {
public:
    xsk_socket(std::uint32_t id, std::uint32_t bound_ifindex, std::uint32_t queue_id = 0, std::size_t ring_size = 2048);
    xsk_socket(const xsk_socket&) = delete;
    xsk_socket& operator=(const xsk_socket&) = delete;

    std::uint32_t id() const { return _id; }
    std::uint32_t bound_ifindex() const { return _bound_ifindex; }
    std::uint32_t queue_id() const { return _queue_id; }

    // ---- the user's side ----

    /// Takes received frames from the RX ring into `out`; returns how many. The frames are the caller's.
    std::size_t receive(std::span<frame*> out);
    /// Puts frames on the TX ring; returns how many it took (a prefix). Taken frames belong to the socket.
    std::size_t send(std::span<frame* const> frames);
    xsk_stats stats() const;
    /// Frames waiting in the RX ring (not yet received) and on the TX ring (not yet taken by the data path).
    std::size_t rx_pending() const;
    std::size_t tx_pending() const;

    // ---- the data path's side (xdp::engine) ----

    /// RX producer: appends a prefix of `frames` to the RX ring; returns how many.
    std::size_t deliver(std::span<frame* const> frames);
    /// TX consumer: takes frames the user sent.
    std::size_t take_for_transmit(std::span<frame*> out);
    /// Records what the bound port did with taken frames.
    void count_transmitted(std::uint64_t sent, std::uint64_t refused);

private:
    /// A ring of frame pointers (AF_XDP's rings carry descriptors; here the frame is the descriptor).
    struct ring {
        explicit ring(std::size_t size) : slots(size) {}
        std::size_t push(std::span<frame* const> frames);
        std::size_t pop(std::span<frame*> out);
        std::vector<frame*> slots;
        std::size_t head{};
        std::size_t count{};
    };

    std::uint32_t _id;
    std::uint32_t _bound_ifindex;
    std::uint32_t _queue_id;
    mutable std::mutex _lock;
    ring _rx;
    ring _tx;
    xsk_stats _stats;
};

} // namespace sluice::xdp
