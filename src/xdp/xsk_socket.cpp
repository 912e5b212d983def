// The in-process AF_XDP socket (include/sluice/xdp/xsk_socket.hpp has the contract).
#include "sluice/xdp/xsk_socket.hpp"

#include <algorithm>

namespace sluice::xdp {

std::size_t xsk_socket::ring::push(std::span<frame* const> frames) {
    const std::size_t taken = std::min(frames.size(), slots.size() - count);
    for (std::size_t i = 0; i < taken; ++i) {
        slots[(head + count + i) % slots.size()] = frames[i];
    }
    count += taken;
    return taken;
}

std::size_t xsk_socket::ring::pop(std::span<frame*> out) {
    const std::size_t taken = std::min(out.size(), count);
    for (std::size_t i = 0; i < taken; ++i) {
        out[i] = slots[(head + i) % slots.size()];
    }
    head = (head + taken) % slots.size();
    count -= taken;
    return taken;
}

xsk_socket::xsk_socket(std::uint32_t id, std::uint32_t bound_ifindex, std::uint32_t queue_id, std::size_t ring_size)
    : _id(id), _bound_ifindex(bound_ifindex), _queue_id(queue_id), _rx(std::max<std::size_t>(ring_size, 1)),
      _tx(std::max<std::size_t>(ring_size, 1)) {}

std::size_t xsk_socket::receive(std::span<frame*> out) {
    std::lock_guard guard(_lock);
    return _rx.pop(out);
}

std::size_t xsk_socket::send(std::span<frame* const> frames) {
    std::lock_guard guard(_lock);
    return _tx.push(frames);
}

xsk_stats xsk_socket::stats() const {
    std::lock_guard guard(_lock);
    return _stats;
}

std::size_t xsk_socket::rx_pending() const {
    std::lock_guard guard(_lock);
    return _rx.count;
}

std::size_t xsk_socket::tx_pending() const {
    std::lock_guard guard(_lock);
    return _tx.count;
}

std::size_t xsk_socket::deliver(std::span<frame* const> frames) {
    std::lock_guard guard(_lock);
    const std::size_t taken = _rx.push(frames);
    _stats.rx_packets += taken;
    _stats.rx_dropped += frames.size() - taken;
    return taken;
}

std::size_t xsk_socket::take_for_transmit(std::span<frame*> out) {
    std::lock_guard guard(_lock);
    return _tx.pop(out);
}

void xsk_socket::count_transmitted(std::uint64_t sent, std::uint64_t refused) {
    std::lock_guard guard(_lock);
    _stats.tx_packets += sent;
    _stats.tx_errors += refused;
}

} // namespace sluice::xdp
