// Checked mode's map of memory: what an unverified program may touch besides its stack.
//
// The interpreter's checked mode allows only registered regions. For an XDP program those are the frame's buffer,
// its context (read-only), the values of array maps and global data (fixed for the object's life; .rodata and other
// BPF_F_RDONLY_PROG maps read-only), and each value a helper hands out during the run: bpf_map_lookup_elem,
// bpf_map_lookup_percpu_elem and bpf_ringbuf_reserve are wrapped so that a non-null result is registered, with the
// map's value size (the reservation's size), until the next packet.
//
// The key and value bpf_for_each_map_elem hands its callback are lent by the interpreter for that call only
// (call_context::call's `lent` regions), so they need no registration here.
//
// The wrappers are plain function pointers (the helper ABI), so they find the active checked_memory through a
// thread-local pointer that scope sets for the duration of a batch: one worker, one thread, no lock.
#pragma once

#include <cstdint>
#include <vector>

#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::xdp {

class checked_memory {
public:
    /// A copy of `base` with the pointer-returning helpers wrapped; registers the object's array maps. `base` and
    /// `object` must outlive this; the returned table lives as long as this object (which must not move after).
    const ebpf::helper_table& wrap(const ebpf::helper_table& base, const ebpf::loaded_object& object);
    /// The interpreter whose regions this keeps.
    void attach(ebpf::interpreter& interpreter) { _interpreter = &interpreter; }
    /// Replaces the regions with those of a fresh packet: its buffer, its context, the array maps.
    void begin_packet(frame& item);

    /// Makes `memory` the one the wrappers on this thread report to, while it lives (when `active`).
    class scope {
    public:
        scope(checked_memory& memory, bool active);
        ~scope();
        scope(const scope&) = delete;
        scope& operator=(const scope&) = delete;

    private:
        checked_memory* _previous;
        bool _active;
    };

private:
    static std::uint64_t map_lookup(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                    std::uint64_t r5, ebpf::call_context& context);
    static std::uint64_t map_lookup_percpu(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                           std::uint64_t r5, ebpf::call_context& context);
    static std::uint64_t ringbuf_reserve(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                         std::uint64_t r5, ebpf::call_context& context);
    /// Registers a map value the program got from a helper.
    void note_value(std::uint64_t address, std::uint64_t map_address);

    const ebpf::helper_table* _base{};
    ebpf::helper_table _table;
    ebpf::interpreter* _interpreter{};
    std::vector<ebpf::memory_region> _maps; ///< array maps and global data, registered for every packet
};

} // namespace sluice::xdp
