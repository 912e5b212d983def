// Checked mode's regions: the packet, the context, array maps, and map values handed out by helpers.
#include "xdp/checked_memory.hpp"

#include <linux/bpf.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/maps.hpp"

namespace sluice::xdp {
namespace {

thread_local checked_memory* active_memory = nullptr;

} // namespace

const ebpf::helper_table& checked_memory::wrap(const ebpf::helper_table& base, const ebpf::loaded_object& object) {
    _base = &base;
    _table = base;
    const auto wrap_one = [&](std::uint32_t id, ebpf::helper_function wrapper) {
        if (base.find(id) != nullptr) {
            _table.set(id, base.name(id), wrapper);
        }
    };
    wrap_one(BPF_FUNC_map_lookup_elem, &checked_memory::map_lookup);
    wrap_one(BPF_FUNC_map_lookup_percpu_elem, &checked_memory::map_lookup_percpu);
    wrap_one(BPF_FUNC_ringbuf_reserve, &checked_memory::ringbuf_reserve);

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
    return _table;
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

void checked_memory::note_value(std::uint64_t address, std::uint64_t map_address) {
    const auto* source = reinterpret_cast<const ebpf::map*>(map_address);
    const bool writable = (source->definition().map_flags & ebpf::map_flag::rdonly_prog) == 0;
    _interpreter->add_region({static_cast<std::uintptr_t>(address), source->value_size(), writable, "map value"});
}

std::uint64_t checked_memory::map_lookup(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                         std::uint64_t r5, ebpf::call_context& context) {
    checked_memory* self = active_memory;
    const std::uint64_t value = self->_base->find(BPF_FUNC_map_lookup_elem)(r1, r2, r3, r4, r5, context);
    if (value != 0) {
        self->note_value(value, r1);
    }
    return value;
}

std::uint64_t checked_memory::map_lookup_percpu(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3,
                                                std::uint64_t r4, std::uint64_t r5, ebpf::call_context& context) {
    checked_memory* self = active_memory;
    const std::uint64_t value = self->_base->find(BPF_FUNC_map_lookup_percpu_elem)(r1, r2, r3, r4, r5, context);
    if (value != 0) {
        self->note_value(value, r1);
    }
    return value;
}

std::uint64_t checked_memory::ringbuf_reserve(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                              std::uint64_t r5, ebpf::call_context& context) {
    checked_memory* self = active_memory;
    const std::uint64_t record = self->_base->find(BPF_FUNC_ringbuf_reserve)(r1, r2, r3, r4, r5, context);
    if (record != 0) {
        self->_interpreter->add_region({static_cast<std::uintptr_t>(record), static_cast<std::size_t>(r2), true,
                                        "ringbuf record"});
    }
    return record;
}

checked_memory::scope::scope(checked_memory& memory, bool active) : _previous(active_memory), _active(active) {
    if (_active) {
        active_memory = &memory;
        if (memory._interpreter != nullptr) {
            memory._interpreter->clear_regions();
        }
    }
}

checked_memory::scope::~scope() {
    if (_active) {
        active_memory = _previous;
    }
}

} // namespace sluice::xdp
