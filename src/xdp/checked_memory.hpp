// Checked mode's map of memory: what an unverified program may touch besides its stack.
//
// The interpreter's checked mode allows only registered regions. This keeps the fixed ones for an XDP program: the
// frame's buffer, its context (read-only), and the values of array maps and global data (fixed for the object's
// life; .rodata and other BPF_F_RDONLY_PROG maps read-only), registered afresh for every packet. Memory helpers hand
// out during a run (map values from bpf_map_lookup_elem, ringbuf records) is granted by the helpers themselves
// (call_context::grant), and the key and value bpf_for_each_map_elem gives its callback are lent for that call
// (call_context::call), so the helper table needs no wrapping here.
#pragma once

#include <vector>

#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::xdp {

class checked_memory {
public:
    /// Notes the object's array maps and global data, whose values stay where they are for the object's life.
    void register_maps(const ebpf::loaded_object& object);
    /// The interpreter whose regions this keeps.
    void attach(ebpf::interpreter& interpreter) { _interpreter = &interpreter; }
    /// Replaces the regions with those of a fresh packet: its buffer, its context, the array maps.
    void begin_packet(frame& item);

private:
    ebpf::interpreter* _interpreter{};
    std::vector<ebpf::memory_region> _maps; ///< array maps and global data, registered for every packet
};

} // namespace sluice::xdp
