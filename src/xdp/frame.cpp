// Frames and the frame pool (include/sluice/xdp/frame.hpp has the layout and the kernel sources it follows).
#include "sluice/xdp/frame.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace sluice::xdp {

void frame::attach(frame_pool* pool, std::uint8_t* buffer, std::uint32_t frame_size) {
    _pool = pool;
    _context.data_hard_start = buffer;
    _context.frame_size = frame_size;
    reset();
}

void frame::reset() {
    std::uint8_t* const data = _context.data_hard_start + ebpf::xdp_packet_headroom;
    _context.data = data;
    _context.data_meta = data;
    _context.data_end = data;
    _context.ingress_ifindex = 0;
    _context.rx_queue_index = 0;
    _context.egress_ifindex = 0;
    _info = packet_info{};
}

bool frame::resize(std::uint32_t length) {
    reset();
    if (length > capacity()) {
        return false;
    }
    _context.data_end = _context.data + length;
    return true;
}

bool frame::assign(std::span<const std::uint8_t> bytes) {
    reset();
    if (bytes.size() > capacity()) {
        return false;
    }
    const auto length = static_cast<std::uint32_t>(bytes.size());
    _context.data_end = _context.data + length; // resize() without its second reset: this is every received packet
    if (length != 0) {
        std::memcpy(_context.data, bytes.data(), length);
    }
    return true;
}

namespace {

// Page alignment makes a standard frame exactly one page, as a driver's frame is; it also keeps every frame's
// headroom and packet start on the same cache-line offsets.
constexpr std::align_val_t pool_alignment{page_size};

std::uint32_t rounded_frame_size(std::uint32_t requested) {
    const std::uint32_t at_least = std::max(requested, frame_overhead + 64);
    return (at_least + 63U) & ~63U;
}

} // namespace

void frame_pool::aligned_delete::operator()(std::uint8_t* memory) const {
    ::operator delete[](memory, pool_alignment);
}

namespace {

// Which cache a thread uses for which pool. A worker thread has one cache per pool it touches (usually one or two:
// the engine's pool and an AF_XDP UMEM's), so a short array scanned linearly beats any map; it stays packed (no
// holes) so the scan stops at the first empty slot.
struct thread_binding {
    const frame_pool* pool{};
    frame_pool::cache* cache{};
};
constexpr std::size_t max_thread_caches = 8;
thread_local std::array<thread_binding, max_thread_caches> thread_bindings{};

} // namespace

frame_pool::frame_pool(std::size_t count, std::uint32_t frame_size)
    : _frame_size(rounded_frame_size(frame_size)), _count(count) {
    const std::size_t bytes = std::max<std::size_t>(count * _frame_size, 1);
    _owned.reset(static_cast<std::uint8_t*>(::operator new[](bytes, pool_alignment)));
    _base = _owned.get();
    build_frames();
}

frame_pool::frame_pool(std::span<std::uint8_t> memory, std::uint32_t frame_size)
    : _frame_size(frame_size), _base(memory.data()),
      _count(frame_size >= frame_overhead + 64 ? memory.size() / frame_size : 0) {
    build_frames();
}

void frame_pool::build_frames() {
    _frames.reset(new frame[_count]);
    _free.reserve(_count);
    // Pushed in reverse so that acquire() hands frames out in address order: the first packets touch the first pages.
    for (std::size_t i = _count; i-- > 0;) {
        frame& item = _frames[i];
        item.attach(this, _base + i * _frame_size, _frame_size);
        item._in_pool = true;
        _free.push_back(&item);
    }
}

frame_pool::~frame_pool() = default;

bool frame_pool::owns(const frame* item) const {
    if (item == nullptr || _count == 0) {
        return false;
    }
    const frame* first = _frames.get();
    // Compared as addresses: pointers into different arrays may not be ordered with < directly.
    const auto address = reinterpret_cast<std::uintptr_t>(item);
    const auto begin = reinterpret_cast<std::uintptr_t>(first);
    const auto end = reinterpret_cast<std::uintptr_t>(first + _count);
    return address >= begin && address < end && (address - begin) % sizeof(frame) == 0;
}

frame_pool::cache* frame_pool::thread_cache() const {
    for (const thread_binding& binding : thread_bindings) {
        if (binding.pool == this) {
            return binding.cache;
        }
        if (binding.pool == nullptr) {
            break;
        }
    }
    return nullptr;
}

std::size_t frame_pool::available() const {
    const std::lock_guard guard(_lock);
    std::size_t free = _free.size();
    for (const cache* item : _caches) {
        free += item->size();
    }
    return free;
}

std::size_t frame_pool::take_shared(std::span<frame*> out) {
    const std::lock_guard guard(_lock);
    const std::size_t count = std::min(out.size(), _free.size());
    const auto first = _free.end() - static_cast<std::ptrdiff_t>(count);
    std::copy(first, _free.end(), out.begin());
    _free.erase(first, _free.end());
    return count;
}

void frame_pool::give_shared(std::span<frame* const> items) {
    const std::lock_guard guard(_lock);
    // Never reallocates: capacity is the pool size and a frame can be free only once.
    _free.insert(_free.end(), items.begin(), items.end());
}

bool frame_pool::accept_release(frame* item) {
    // The frame's own pool pointer, not owns(): a compare instead of address arithmetic on every release (a frame of
    // another pool names that pool; a pointer that is no frame at all was never safe to pass).
    if (item == nullptr || item->_pool != this || item->_in_pool) {
        _bad_releases.fetch_add(1, std::memory_order_relaxed);
        return false;
    }
    item->_in_pool = true;
    return true;
}

frame* frame_pool::acquire() {
    if (cache* local = thread_cache()) {
        return local->acquire();
    }
    frame* item = nullptr;
    if (take_shared({&item, 1}) == 0) {
        return nullptr;
    }
    item->_in_pool = false;
    item->reset();
    return item;
}

std::size_t frame_pool::acquire_batch(std::span<frame*> out) {
    if (cache* local = thread_cache()) {
        return local->acquire_batch(out);
    }
    const std::size_t count = take_shared(out);
    for (std::size_t i = 0; i < count; ++i) {
        out[i]->_in_pool = false;
        out[i]->reset();
    }
    return count;
}

void frame_pool::release(frame* item) {
    if (cache* local = thread_cache()) {
        local->release(item);
        return;
    }
    if (accept_release(item)) {
        give_shared({&item, 1});
    }
}

void frame_pool::release_batch(std::span<frame* const> items) {
    if (cache* local = thread_cache()) {
        local->release_batch(items);
        return;
    }
    for (frame* item : items) {
        release(item);
    }
}

frame_pool::cache::cache(frame_pool& pool) : _pool(pool) {
    {
        const std::lock_guard guard(_pool._lock);
        _pool._caches.push_back(this);
    }
    // A second cache for the same pool on one thread, or a ninth pool, works when called directly but is not what
    // the pool's own calls use.
    if (_pool.thread_cache() != nullptr) {
        return;
    }
    for (thread_binding& binding : thread_bindings) {
        if (binding.pool == nullptr) {
            binding = {&_pool, this};
            _registered = true;
            return;
        }
    }
}

frame_pool::cache::~cache() {
    _pool.give_shared({_frames.data(), size()});
    set_size(0);
    if (_registered) {
        auto end = thread_bindings.begin();
        while (end != thread_bindings.end() && end->pool != nullptr) {
            ++end;
        }
        for (auto binding = thread_bindings.begin(); binding != end; ++binding) {
            if (binding->cache == this) {
                *binding = *(end - 1); // keep the array packed
                *(end - 1) = thread_binding{};
                break;
            }
        }
    }
    const std::lock_guard guard(_pool._lock);
    std::erase(_pool._caches, this);
}

frame* frame_pool::cache::acquire() {
    std::size_t count = size();
    if (count == 0) {
        count = _pool.take_shared({_frames.data(), bulk});
        if (count == 0) {
            return nullptr;
        }
    }
    frame* item = _frames[--count];
    set_size(count);
    item->_in_pool = false;
    item->reset();
    return item;
}

std::size_t frame_pool::cache::acquire_batch(std::span<frame*> out) {
    std::size_t filled = 0;
    std::size_t count = size();
    while (filled < out.size()) {
        if (count == 0) {
            count = _pool.take_shared({_frames.data(), bulk});
            if (count == 0) {
                break;
            }
        }
        frame* item = _frames[--count];
        item->_in_pool = false;
        item->reset();
        out[filled++] = item;
    }
    set_size(count);
    return filled;
}

void frame_pool::cache::release(frame* item) {
    if (!_pool.accept_release(item)) {
        return;
    }
    std::size_t count = size();
    if (count == capacity) {
        // Spill the coldest half (the bottom of the stack); the frames released last stay, warm in cache.
        _pool.give_shared({_frames.data(), bulk});
        std::copy(_frames.begin() + bulk, _frames.end(), _frames.begin());
        count -= bulk;
    }
    _frames[count++] = item;
    set_size(count);
}

void frame_pool::cache::release_batch(std::span<frame* const> items) {
    for (frame* item : items) {
        release(item);
    }
}

} // namespace sluice::xdp
