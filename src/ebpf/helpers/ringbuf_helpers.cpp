// Ring buffer helpers (kernel/bpf/ringbuf.c): bpf_ringbuf_output, bpf_ringbuf_reserve, bpf_ringbuf_submit,
// bpf_ringbuf_discard, bpf_ringbuf_query, over sluice's ringbuf_map.
//
// The kernel finds a record's ring from the record header (bpf_ringbuf_restore_from_rec); maps.hpp has no such
// call, so reserve() remembers (sample, ring) in the worker's execution_state and submit/discard look it up there.
// The verifier guarantees every reservation is released before the program ends, so the small fixed table is enough;
// when it is full, reserve fails as a full ring would (NULL).

#include "ebpf/helpers/helpers_internal.hpp"
#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::helpers {
namespace {

ringbuf_map* ring_of(std::uint64_t map_address) {
    auto* target = pointer<map>(map_address);
    return target->type() == map_type::ringbuf ? static_cast<ringbuf_map*>(target) : nullptr;
}

std::uint64_t ringbuf_output(std::uint64_t map_address, std::uint64_t data, std::uint64_t size, std::uint64_t flags,
                             std::uint64_t, call_context&) {
    ringbuf_map* ring = ring_of(map_address);
    if (ring == nullptr) {
        return error_code(-EINVAL);
    }
    return error_code(ring->output(pointer<const void>(data), size, flags));
}

std::uint64_t ringbuf_reserve(std::uint64_t map_address, std::uint64_t size, std::uint64_t flags, std::uint64_t,
                              std::uint64_t, call_context& context) {
    ringbuf_map* ring = ring_of(map_address);
    if (ring == nullptr) {
        return 0;
    }
    execution_state& state = state_of(context);
    ringbuf_reservation* slot = nullptr;
    for (ringbuf_reservation& candidate : state.reservations) {
        if (candidate.sample == nullptr) {
            slot = &candidate;
            break;
        }
    }
    if (slot == nullptr) {
        return 0;
    }
    void* sample = ring->reserve(size, flags);
    if (sample != nullptr) {
        *slot = {sample, ring};
        context.grant({reinterpret_cast<std::uintptr_t>(sample), static_cast<std::size_t>(size), true,
                       "ringbuf record"});
    }
    return reinterpret_cast<std::uintptr_t>(sample);
}

/// Releases a reservation: the ring it came from, or nullptr for a pointer reserve() never returned.
ringbuf_map* release(execution_state& state, void* sample) {
    for (ringbuf_reservation& candidate : state.reservations) {
        if (candidate.sample == sample && sample != nullptr) {
            ringbuf_map* ring = candidate.ring;
            candidate = {};
            return ring;
        }
    }
    return nullptr;
}

std::uint64_t ringbuf_submit(std::uint64_t sample, std::uint64_t flags, std::uint64_t, std::uint64_t, std::uint64_t,
                             call_context& context) {
    if (ringbuf_map* ring = release(state_of(context), pointer<void>(sample)); ring != nullptr) {
        ring->submit(pointer<void>(sample), flags);
    }
    return 0;
}

std::uint64_t ringbuf_discard(std::uint64_t sample, std::uint64_t flags, std::uint64_t, std::uint64_t, std::uint64_t,
                              call_context& context) {
    if (ringbuf_map* ring = release(state_of(context), pointer<void>(sample)); ring != nullptr) {
        ring->discard(pointer<void>(sample), flags);
    }
    return 0;
}

std::uint64_t ringbuf_query(std::uint64_t map_address, std::uint64_t flags, std::uint64_t, std::uint64_t, std::uint64_t,
                            call_context&) {
    const ringbuf_map* ring = ring_of(map_address);
    return ring == nullptr ? 0 : ring->query(flags);
}

} // namespace

void register_ringbuf_helpers(helper_table& table) {
    add(table, BPF_FUNC_ringbuf_output, ringbuf_output);
    add(table, BPF_FUNC_ringbuf_reserve, ringbuf_reserve);
    add(table, BPF_FUNC_ringbuf_submit, ringbuf_submit);
    add(table, BPF_FUNC_ringbuf_discard, ringbuf_discard);
    add(table, BPF_FUNC_ringbuf_query, ringbuf_query);
}

} // namespace sluice::ebpf::helpers
