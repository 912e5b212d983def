// Map helpers (kernel/bpf/helpers.c): bpf_map_{lookup,update,delete}_elem, bpf_map_{push,pop,peek}_elem, and
// bpf_spin_lock / bpf_spin_unlock on the struct bpf_spin_lock inside a map value.
//
// The map is the address of the sluice::ebpf::map object; the kernel's helpers call the map's ops, and so do these.
// Per-CPU maps use the worker's slot (execution_state::cpu), as the kernel uses the current cpu's.

#include "ebpf/helpers/helpers_internal.hpp"
#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::helpers {
namespace {

std::uint64_t map_lookup_elem(std::uint64_t map_address, std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t,
                              call_context& context) {
    map& target = *pointer<map>(map_address);
    void* value = target.lookup(pointer<const void>(key), state_of(context).cpu);
    if (value != nullptr) {
        // PTR_TO_MAP_VALUE: writable unless the map is read-only for programs (.rodata).
        const bool writable = (target.definition().map_flags & map_flag::rdonly_prog) == 0;
        context.grant({reinterpret_cast<std::uintptr_t>(value), target.value_size(), writable, "map value"});
    }
    return reinterpret_cast<std::uintptr_t>(value);
}

std::uint64_t map_update_elem(std::uint64_t map_address, std::uint64_t key, std::uint64_t value, std::uint64_t flags,
                              std::uint64_t, call_context& context) {
    return error_code(pointer<map>(map_address)
                          ->update(pointer<const void>(key), pointer<const void>(value), flags, state_of(context).cpu));
}

std::uint64_t map_delete_elem(std::uint64_t map_address, std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t,
                              call_context& context) {
    return error_code(pointer<map>(map_address)->remove(pointer<const void>(key), state_of(context).cpu));
}

std::uint64_t map_push_elem(std::uint64_t map_address, std::uint64_t value, std::uint64_t flags, std::uint64_t,
                            std::uint64_t, call_context&) {
    return error_code(pointer<map>(map_address)->push(pointer<const void>(value), flags));
}

std::uint64_t map_pop_elem(std::uint64_t map_address, std::uint64_t value, std::uint64_t, std::uint64_t, std::uint64_t,
                           call_context&) {
    return error_code(pointer<map>(map_address)->pop(pointer<void>(value)));
}

std::uint64_t map_peek_elem(std::uint64_t map_address, std::uint64_t value, std::uint64_t, std::uint64_t, std::uint64_t,
                            call_context&) {
    return error_code(pointer<map>(map_address)->peek(pointer<void>(value)));
}

// kernel/bpf/helpers.c __bpf_spin_lock: struct bpf_spin_lock { __u32 val; } is a lock word in the map value, shared
// by every worker. The kernel disables preemption and takes an arch spinlock; a worker thread is not preempted by
// another program on the same worker, so a test-and-set spin is the same contract. Always returns 0.
std::uint64_t spin_lock(std::uint64_t lock, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, call_context&) {
    auto* word = pointer<std::uint32_t>(lock);
    while (__atomic_exchange_n(word, 1U, __ATOMIC_ACQUIRE) != 0) {
        while (__atomic_load_n(word, __ATOMIC_RELAXED) != 0) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
    }
    return 0;
}

std::uint64_t spin_unlock(std::uint64_t lock, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                          call_context&) {
    __atomic_store_n(pointer<std::uint32_t>(lock), 0U, __ATOMIC_RELEASE);
    return 0;
}

} // namespace

void register_map_helpers(helper_table& table) {
    add(table, BPF_FUNC_map_lookup_elem, map_lookup_elem);
    add(table, BPF_FUNC_map_update_elem, map_update_elem);
    add(table, BPF_FUNC_map_delete_elem, map_delete_elem);
    add(table, BPF_FUNC_map_push_elem, map_push_elem);
    add(table, BPF_FUNC_map_pop_elem, map_pop_elem);
    add(table, BPF_FUNC_map_peek_elem, map_peek_elem);
    add(table, BPF_FUNC_spin_lock, spin_lock);
    add(table, BPF_FUNC_spin_unlock, spin_unlock);
}

} // namespace sluice::ebpf::helpers
