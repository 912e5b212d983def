// A bounded single-producer single-consumer ring, moved through in bulk: how cpumap hands frames from one worker to
// another (DESIGN.md, "Workers"), as the kernel's cpumap hands xdp_frames to a remote cpu's ptr_ring.
//
// Contract: one thread calls push(), one (other) thread calls pop(); size() may be read by either. Capacity is a
// power of two fixed at construction. push() stores what fits and publishes it with one release store; pop() takes
// what is there with one acquire load and frees the slots with one release store. Each side caches the other's
// index, so a bulk of 16 costs two shared cache-line touches, not 32. Nothing allocates after construction.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace sluice::xdp {

template <typename Item> class spsc_ring {
public:
    /// Room for `capacity` items, rounded up to a power of two (at least 2).
    explicit spsc_ring(std::size_t capacity)
        : _items(std::bit_ceil(std::max<std::size_t>(capacity, 2))), _mask(_items.size() - 1) {}
    spsc_ring(const spsc_ring&) = delete;
    spsc_ring& operator=(const spsc_ring&) = delete;

    std::size_t capacity() const { return _items.size(); }
    /// Items waiting (exact for the consumer, a lower bound for the producer).
    std::size_t size() const {
        return _tail.value.load(std::memory_order_acquire) - _head.value.load(std::memory_order_acquire);
    }

    /// Producer: appends a prefix of `items`, at most `limit` items in the ring in all; returns how many.
    std::size_t push(std::span<const Item> items, std::size_t limit = SIZE_MAX) {
        const std::uint64_t tail = _tail.value.load(std::memory_order_relaxed);
        const std::size_t bound = std::min(limit, _items.size());
        if (tail - _producer_head_cache + items.size() > bound) {
            _producer_head_cache = _head.value.load(std::memory_order_acquire);
        }
        const std::uint64_t used = tail - _producer_head_cache;
        const std::size_t room = used >= bound ? 0 : bound - static_cast<std::size_t>(used);
        const std::size_t count = std::min(room, items.size());
        for (std::size_t i = 0; i < count; ++i) {
            _items[(tail + i) & _mask] = items[i];
        }
        if (count != 0) {
            _tail.value.store(tail + count, std::memory_order_release);
        }
        return count;
    }

    /// Consumer: fills a prefix of `out`; returns how many.
    std::size_t pop(std::span<Item> out) {
        const std::uint64_t head = _head.value.load(std::memory_order_relaxed);
        if (_consumer_tail_cache - head < out.size()) {
            _consumer_tail_cache = _tail.value.load(std::memory_order_acquire);
        }
        const std::size_t count = std::min<std::size_t>(out.size(), _consumer_tail_cache - head);
        for (std::size_t i = 0; i < count; ++i) {
            out[i] = _items[(head + i) & _mask];
        }
        if (count != 0) {
            _head.value.store(head + count, std::memory_order_release);
        }
        return count;
    }

private:
    struct alignas(64) index {
        std::atomic<std::uint64_t> value{};
    };

    std::vector<Item> _items;
    std::size_t _mask;
    index _head;                                      ///< next to pop; written by the consumer
    index _tail;                                      ///< next to push; written by the producer
    alignas(64) std::uint64_t _producer_head_cache{}; ///< producer's last view of _head
    alignas(64) std::uint64_t _consumer_tail_cache{}; ///< consumer's last view of _tail
};

} // namespace sluice::xdp
