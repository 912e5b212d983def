// Frames: one buffer per packet, laid out as the kernel lays out an XDP buffer, and the pool that recycles them.
//
// Contract:
// - A frame is `frame_size` bytes starting at data_hard_start:
//       [ headroom 256 (XDP_PACKET_HEADROOM) | packet ... | free tailroom | reserve 320 ]
//   After reset(), data == data_meta == data_hard_start + 256 and data_end == data + length. The last 320 bytes are
//   the kernel's skb_shared_info reserve: a program can never grow the packet into them.
// - The frame's ebpf::xdp_context points into its own buffer and is what a program's `ctx` points to. Frames are
//   neither copied nor moved (the context would dangle); they live in a frame_pool for their whole life.
// - frame_pool preallocates every frame (or is given the memory: an AF_XDP UMEM) and never allocates after
//   construction. It is shared by every worker: a frame may be released on another thread than the one that acquired
//   it (cpumap moves frames between workers). Each worker thread keeps a frame_pool::cache, a local stack refilled
//   from and spilled to the shared stack 64 frames at a time under the pool's lock, so the fast path takes the lock
//   once per 64 frames at most. While a cache lives, the pool's own acquire/release calls on its thread go through it;
//   on a thread without a cache they take the lock (one lock per call: fine for tests and single-threaded tools).
// - Every frame knows its pool (frame::pool()), so whoever holds a frame can give it back where it came from.
//
// Frame size and tailroom, and why (kernel sources: net/core/filter.c bpf_xdp_adjust_tail, include/net/xdp.h
// xdp_data_hard_end, net/bpf/test_run.c bpf_prog_test_run_xdp):
// - The kernel's linear XDP buffer ends, for the program, at
//       xdp_data_hard_end = data_hard_start + frame_sz - SKB_DATA_ALIGN(sizeof(struct skb_shared_info))
//   and bpf_xdp_adjust_tail(ctx, delta) succeeds iff data + ETH_HLEN <= data_end + delta <= xdp_data_hard_end
//   (on a linear buffer, with frame_sz <= PAGE_SIZE).
// - BPF_PROG_TEST_RUN, our oracle, gives every packet frame_sz = 4096 (headroom 256 + max_data_sz + tailroom 320),
//   so the largest linear packet is 4096 - 256 - 320 = 3520 bytes; most drivers use one 4096-byte page per frame too.
// - So standard frames are 4096 bytes with a 320-byte reserve: for any packet of up to 3520 bytes, adjust_tail grows
//   and shrinks by exactly the amounts the kernel accepts for the same packet, and adjust_head/adjust_meta see the
//   same 256 bytes of headroom.
// - Larger packets (jumbo frames up to 9000 bytes and beyond) do not fit a 4096-byte frame. The kernel then uses
//   fragments (xdp.frags programs) or, in generic XDP, a linear buffer larger than a page. sluice has no fragments
//   yet, so a pool may be built with larger frames: jumbo_frame_size (16384) holds a packet of up to 15808 bytes.
//   Such frames keep the same headroom and reserve, but the kernel's bpf_xdp_adjust_tail refuses every call on a
//   linear buffer with frame_sz > PAGE_SIZE ("Too BIG xdp->frame_sz", -EINVAL); a helper that wants kernel parity on
//   a jumbo frame must do the same (is_larger_than_page()). Ports count packets larger than their frames as errors.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::xdp {

/// SKB_DATA_ALIGN(sizeof(struct skb_shared_info)) on x86-64: the tail of every kernel XDP buffer a program can't use.
inline constexpr std::uint32_t frame_tailroom_reserve = 320;
/// PAGE_SIZE on x86-64; the kernel's limit for a linear XDP buffer.
inline constexpr std::uint32_t page_size = 4096;
/// One page, as BPF_PROG_TEST_RUN and most drivers.
inline constexpr std::uint32_t standard_frame_size = page_size;
/// Four pages: room for 9000-byte jumbo packets and for growing them.
inline constexpr std::uint32_t jumbo_frame_size = 4 * page_size;
/// Bytes a frame can never give to a packet.
inline constexpr std::uint32_t frame_overhead = ebpf::xdp_packet_headroom + frame_tailroom_reserve;
/// The largest packet a standard frame holds: 3520 bytes, as BPF_PROG_TEST_RUN's linear area.
inline constexpr std::uint32_t standard_frame_capacity = standard_frame_size - frame_overhead;

/// The smallest frame size, in whole pages, that holds a packet of `packet_length` bytes (standard_frame_size when
/// it fits there, so that small packets keep exact kernel behaviour).
constexpr std::uint32_t frame_size_for(std::uint32_t packet_length) {
    const std::uint64_t needed = std::uint64_t{packet_length} + frame_overhead;
    const std::uint64_t pages = (needed + page_size - 1) / page_size;
    return static_cast<std::uint32_t>((pages == 0 ? 1 : pages) * page_size);
}

/// Where a packet came from, carried with it through the data path (for output pcaps and error messages).
struct packet_info {
    std::uint64_t timestamp_ns{}; ///< capture or generation time, nanoseconds since the Unix epoch
    std::uint64_t record{};       ///< 1-based record number in the input (pcap record, generator packet index)
    std::uint32_t wire_length{};  ///< length on the wire; larger than length() when the capture was cut (snaplen)
};

class frame_pool;

class frame {
public:
    frame(const frame&) = delete;
    frame& operator=(const frame&) = delete;

    /// Empties the frame for reuse: data = data_meta = data_end = data_hard_start + headroom; interface fields and
    /// packet_info zeroed. Never allocates.
    void reset();

    /// reset(), then copies `bytes` in as the packet. False (frame left empty) when bytes.size() > capacity().
    [[nodiscard]] bool assign(std::span<const std::uint8_t> bytes);

    /// reset(), then makes room for a packet of `length` bytes to be written through packet(). False when too large.
    [[nodiscard]] bool resize(std::uint32_t length);

    /// The largest packet a fresh frame holds: frame_size - 256 - 320.
    std::uint32_t capacity() const { return _context.frame_size - frame_overhead; }
    std::uint32_t frame_size() const { return _context.frame_size; }
    /// True for frames larger than a page, on which the kernel's bpf_xdp_adjust_tail always fails.
    bool is_larger_than_page() const { return _context.frame_size > page_size; }

    /// The packet as the program left it: data .. data_end.
    std::span<std::uint8_t> packet() { return {_context.data, length()}; }
    std::span<const std::uint8_t> packet() const { return {_context.data, length()}; }
    std::uint32_t length() const { return static_cast<std::uint32_t>(_context.data_end - _context.data); }

    std::uint8_t* hard_start() const { return _context.data_hard_start; }
    /// data_hard_start + frame_size - 320: how far data_end may ever reach (the kernel's xdp_data_hard_end()).
    std::uint8_t* hard_end() const { return _context.data_hard_start + _context.frame_size - frame_tailroom_reserve; }

    /// What the program's ctx points to. Helpers move data, data_meta and data_end within [hard_start, hard_end].
    ebpf::xdp_context& context() { return _context; }
    const ebpf::xdp_context& context() const { return _context; }

    void set_ingress(std::uint32_t ifindex, std::uint32_t rx_queue) {
        _context.ingress_ifindex = ifindex;
        _context.rx_queue_index = rx_queue;
    }

    packet_info& info() { return _info; }
    const packet_info& info() const { return _info; }

    /// The pool this frame belongs to and must go back to.
    frame_pool* pool() const { return _pool; }

private:
    friend class frame_pool;

    frame() = default; // only pools make frames; attach() gives them their buffer
    void attach(frame_pool* pool, std::uint8_t* buffer, std::uint32_t frame_size);

    ebpf::xdp_context _context;
    packet_info _info;
    frame_pool* _pool{};
    bool _in_pool{true}; ///< guards against double release
};

/// Preallocated frames, recycled (the kernel's page_pool idea). Thread-safe; per-thread caches make it cheap.
class frame_pool {
public:
    class cache;

    /// Frames move between the shared stack and a cache this many at a time.
    static constexpr std::size_t bulk = 64;

    /// `count` frames of `frame_size` bytes each (rounded up to a multiple of 64 for cache-line alignment; at least
    /// frame_overhead + 64). The buffer is page-aligned, so each standard frame is exactly one page.
    explicit frame_pool(std::size_t count, std::uint32_t frame_size = standard_frame_size);
    /// Frames over memory the caller owns and keeps alive longer than the pool (an AF_XDP UMEM): frame i starts at
    /// memory.data() + i * frame_size, exactly (no rounding, so frame addresses are the UMEM's chunk addresses);
    /// count() = memory.size() / frame_size. A frame_size below frame_overhead + 64 makes an empty pool.
    frame_pool(std::span<std::uint8_t> memory, std::uint32_t frame_size);
    frame_pool(const frame_pool&) = delete;
    frame_pool& operator=(const frame_pool&) = delete;
    ~frame_pool();

    /// A reset frame, or nullptr when every frame is outstanding.
    frame* acquire();
    /// Fills `out` from the front with reset frames; returns how many (fewer than out.size() when the pool runs low).
    std::size_t acquire_batch(std::span<frame*> out);
    /// Gives a frame back. Releasing a frame twice, or one from another pool, is a bug: it is ignored and counted.
    void release(frame* item);
    void release_batch(std::span<frame* const> items);

    std::size_t size() const { return _count; }
    /// Free frames, in the shared stack and in every cache (exact when no thread is acquiring or releasing).
    std::size_t available() const;
    std::size_t outstanding() const { return _count - available(); }
    std::uint32_t frame_size() const { return _frame_size; }
    std::uint32_t frame_capacity() const { return _frame_size - frame_overhead; }
    /// Releases ignored because the frame was already free or not from this pool.
    std::uint64_t bad_releases() const { return _bad_releases.load(std::memory_order_relaxed); }
    bool owns(const frame* item) const;

    /// The buffer the frames live in (frame i at memory() + i * frame_size()).
    std::uint8_t* memory() const { return _base; }
    /// Frame number `index` (< size()), free or not: for ports whose rings carry buffer addresses (AF_XDP).
    frame* at(std::size_t index) const { return &_frames[index]; }
    /// The number of a frame of this pool: (hard_start - memory()) / frame_size().
    std::size_t index_of(const frame* item) const { return static_cast<std::size_t>(item - _frames.get()); }

private:
    struct aligned_delete {
        void operator()(std::uint8_t* memory) const;
    };

    void build_frames();
    /// Checks a release and marks the frame free; false (counted) for a bad release.
    bool accept_release(frame* item);
    /// The calling thread's cache for this pool, or nullptr.
    cache* thread_cache() const;
    /// Moves up to out.size() frames from the shared stack, under the lock; they stay marked free.
    std::size_t take_shared(std::span<frame*> out);
    /// Puts frames (already marked free) back on the shared stack, under the lock.
    void give_shared(std::span<frame* const> items);

    std::uint32_t _frame_size;
    std::unique_ptr<std::uint8_t[], aligned_delete> _owned; ///< empty over external memory
    std::uint8_t* _base{};
    std::size_t _count;
    std::unique_ptr<frame[]> _frames; ///< built once (frames must not move)

    mutable std::mutex _lock;          ///< guards _free and _caches
    std::vector<frame*> _free;         ///< shared stack of free frames; capacity reserved for all of them
    std::vector<const cache*> _caches; ///< live caches, for available()
    std::atomic<std::uint64_t> _bad_releases{};
};

/// One thread's stack of free frames of one pool. Construct it on the thread that uses it (a worker, at its start);
/// while it lives, that thread's frame_pool::acquire/release calls for the pool use it. Destroying it gives every
/// frame it holds back to the shared stack. Not copyable or movable (the thread's registration points at it).
class frame_pool::cache {
public:
    explicit cache(frame_pool& pool);
    cache(const cache&) = delete;
    cache& operator=(const cache&) = delete;
    ~cache();

    frame* acquire();
    std::size_t acquire_batch(std::span<frame*> out);
    void release(frame* item);
    void release_batch(std::span<frame* const> items);

    frame_pool& pool() const { return _pool; }
    /// Free frames held here.
    std::size_t size() const { return _size.load(std::memory_order_relaxed); }

private:
    friend class frame_pool;

    static constexpr std::size_t capacity = 2 * bulk; ///< spill down to `bulk` when full

    void set_size(std::size_t value) { _size.store(value, std::memory_order_relaxed); }

    frame_pool& _pool;
    std::array<frame*, capacity> _frames{};
    std::atomic<std::size_t> _size{}; ///< written only by the owning thread; read by available()
    bool _registered{};
};

} // namespace sluice::xdp
