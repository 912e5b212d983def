// Checked mode's fixed regions: the packet, the context, array maps and global data.
#include "xdp/checked_memory.hpp"

#include "sluice/ebpf/maps.hpp"

namespace sluice::xdp {

void checked_memory::register_maps(const ebpf::loaded_object& object) {
    const auto& specs = object.map_specs();
    for (std::size_t i = 0; i < object.maps().size(); ++i) {
        auto* array = dynamic_cast<ebpf::array_map*>(object.maps()[i].get());
        if (array == nullptr) {
            continue;
        }
        const std::size_t per_cpu = std::size_t{array->max_entries()} * array->value_stride();
        const std::size_t size = array->is_percpu() ? (array->cpus() - 1) * array->cpu_stride() + per_cpu : per_cpu;
        const bool writable = (array->definition().map_flags & ebpf::map_flag::rdonly_prog) == 0;
        const std::string_view name = i < specs.size() ? std::string_view{specs[i].name} : std::string_view{"map"};
        _maps.push_back({reinterpret_cast<std::uintptr_t>(array->values_base()), size, writable, name});
    }
}

void checked_memory::begin_packet(frame& item) {
    _interpreter->clear_regions();
    // The whole usable buffer: adjust_head/meta/tail move data within it. (Whether the program checked data_end
    // first is the verifier's question; here we only keep it inside its frame.)
    _interpreter->add_region({reinterpret_cast<std::uintptr_t>(item.hard_start()),
                              static_cast<std::size_t>(item.hard_end() - item.hard_start()), true, "packet"});
    _interpreter->add_region(
        {reinterpret_cast<std::uintptr_t>(&item.context()), sizeof(ebpf::xdp_context), false, "context"});
    for (const ebpf::memory_region& region : _maps) {
        _interpreter->add_region(region);
    }
}

} // namespace sluice::xdp
