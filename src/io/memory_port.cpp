// The memory port (include/sluice/io/memory_port.hpp has the contract).
#include "sluice/io/memory_port.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "io/port_support.hpp"

namespace sluice::io {

memory_port::memory_port(std::string name, xdp::frame_pool& pool, const memory_port_options& options)
    : port(std::move(name)), _pool(pool), _options(options) {
    _features.kind = "memory";
    _features.interface = this->name();
    _features.ifindex = options.ifindex != 0 ? options.ifindex : detail::next_sluice_ifindex();
    _features.rx = true;
    _features.tx = options.tx_capacity != 0;
    _features.metadata = false;
    _features.redirect_target = _features.tx;
    _features.pass_target = _features.tx;
    _features.mtu = pool.frame_capacity();
    _features.mode = options.capture ? "copy, captured" : "copy";
}

void memory_port::inject(std::span<const std::uint8_t> packet, std::uint64_t record) {
    std::lock_guard guard(_lock);
    ++_injected;
    _queue.push_back({{packet.begin(), packet.end()}, record != 0 ? record : _injected});
}

void memory_port::repeat(std::uint64_t rounds) {
    std::lock_guard guard(_lock);
    _rounds = rounds;
}

void memory_port::close_input() {
    std::lock_guard guard(_lock);
    _closed = true;
}

bool memory_port::exhausted() const {
    std::lock_guard guard(_lock);
    return _closed && _next == _queue.size() && (_queue.empty() || _round + 1 >= _rounds);
}

std::size_t memory_port::rx_batch(std::span<xdp::frame*> out) {
    std::lock_guard guard(_lock);
    // Frames for at most what is queued, taken in one go (the pool's cache moves them in bulk).
    std::size_t waiting = _queue.size() - _next;
    if (_round + 1 < _rounds && !_queue.empty()) {
        waiting = out.size();
    }
    const std::size_t acquired = _pool.acquire_batch(out.first(std::min(out.size(), waiting)));
    std::size_t delivered = 0;
    while (delivered < acquired) {
        if (_next == _queue.size()) {
            if (_queue.empty() || _round + 1 >= _rounds) {
                break;
            }
            ++_round; // replaying: the next round over the same packets
            _next = 0;
        }
        const stored& packet = _queue[_next++];
        xdp::frame* item = out[delivered];
        if (!item->assign(packet.bytes)) {
            ++_stats.rx_errors; // larger than a frame: not delivered, counted
            continue;
        }
        item->set_ingress(_features.ifindex, _options.rx_queue);
        item->info().record = packet.record;
        item->info().wire_length = static_cast<std::uint32_t>(packet.bytes.size());
        ++delivered;
        ++_stats.rx_packets;
        _stats.rx_bytes += packet.bytes.size();
    }
    if (delivered < acquired) {
        _pool.release_batch(out.subspan(delivered, acquired - delivered));
    }
    if (_rounds <= 1 && _next == _queue.size()) {
        _queue.clear(); // a single pass: delivered packets are not kept
        _next = 0;
    }
    return delivered;
}

std::size_t memory_port::tx_batch(std::span<xdp::frame* const> frames) {
    std::lock_guard guard(_lock);
    const std::size_t accepted = std::min(frames.size(), _options.tx_capacity);
    for (std::size_t i = 0; i < accepted; ++i) {
        xdp::frame* item = frames[i];
        ++_stats.tx_packets;
        _stats.tx_bytes += item->length();
        if (_options.capture) {
            const auto bytes = item->packet();
            _transmitted.push_back({{bytes.begin(), bytes.end()},
                                    item->context().ingress_ifindex,
                                    item->context().egress_ifindex,
                                    item->info().record});
        }
        item->pool()->release(item);
    }
    return accepted;
}

port_stats memory_port::stats() const {
    std::lock_guard guard(_lock);
    return _stats;
}

std::vector<memory_packet> memory_port::transmitted() const {
    std::lock_guard guard(_lock);
    return _transmitted;
}

expected<std::unique_ptr<port>> open_memory_port(std::string_view spec, std::string_view name, xdp::frame_pool& pool,
                                                 const port_options&) {
    if (name.empty()) {
        return detail::port_error(spec, "memory:NAME needs a name");
    }
    auto created = std::make_unique<memory_port>(std::string(spec), pool);
    created->close_input();
    return std::unique_ptr<port>(std::move(created));
}

} // namespace sluice::io
