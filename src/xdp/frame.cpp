// Frames and the frame pool (include/sluice/xdp/frame.hpp has the layout and the kernel sources it follows).
#include "sluice/xdp/frame.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace sluice::xdp {

void frame::attach(std::uint8_t* buffer, std::uint32_t frame_size) {
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
    if (bytes.size() > capacity()) {
        reset();
        return false;
    }
    const auto length = static_cast<std::uint32_t>(bytes.size());
    if (!resize(length)) {
        return false;
    }
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

frame_pool::frame_pool(std::size_t count, std::uint32_t frame_size)
    : _frame_size(rounded_frame_size(frame_size)), _count(count) {
    const std::size_t bytes = std::max<std::size_t>(count * _frame_size, 1);
    _memory.reset(static_cast<std::uint8_t*>(::operator new[](bytes, pool_alignment)));
    _frames.reset(new frame[count]);
    _free.reserve(count);
    // Pushed in reverse so that acquire() hands frames out in address order: the first packets touch the first pages.
    for (std::size_t i = count; i-- > 0;) {
        frame& item = _frames[i];
        item.attach(_memory.get() + i * _frame_size, _frame_size);
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

frame* frame_pool::acquire() {
    if (_free.empty()) {
        return nullptr;
    }
    frame* item = _free.back();
    _free.pop_back();
    item->_in_pool = false;
    item->reset();
    return item;
}

std::size_t frame_pool::acquire_batch(std::span<frame*> out) {
    const std::size_t count = std::min(out.size(), _free.size());
    for (std::size_t i = 0; i < count; ++i) {
        out[i] = acquire();
    }
    return count;
}

void frame_pool::release(frame* item) {
    if (!owns(item) || item->_in_pool) {
        ++_bad_releases;
        return;
    }
    item->_in_pool = true;
    _free.push_back(item); // never reallocates: capacity is the pool size and a frame can be free only once
}

void frame_pool::release_batch(std::span<frame* const> items) {
    for (frame* item : items) {
        release(item);
    }
}

} // namespace sluice::xdp
