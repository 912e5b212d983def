// Helpers that change the flow of the program: bpf_tail_call, bpf_loop and bpf_for_each_map_elem.
//
// Tail calls: the helper finds the target (prog_array slot -> handle -> runnable program through the worker's
// program_registry) and asks the engine to switch (call_context::tail_call). Every failure leaves the program running
// after the call, as the kernel's bpf_tail_call does (kernel/bpf/core.c, JMP_TAIL_CALL). Callbacks run through
// call_context::call(), which gives them their own frame.

#include <array>
#include <cerrno>

#include "ebpf/helpers/helpers_internal.hpp"
#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::helpers {
namespace {

// kernel/bpf/core.c ___bpf_prog_run, JMP_TAIL_CALL: index out of range, MAX_TAIL_CALL_CNT reached, empty slot ->
// "goto out" (continue after the call). The kernel's r0 is then whatever the call left; sluice returns -ENOENT so a
// program that looks sees a failure. A callback cannot tail call (the kernel's verifier refuses it): -EINVAL.
std::uint64_t tail_call(std::uint64_t, std::uint64_t map_address, std::uint64_t index, std::uint64_t, std::uint64_t,
                        call_context& context) {
    auto* target = pointer<map>(map_address);
    if (target->type() != map_type::prog_array || context.callback_depth != 0) {
        return error_code(-EINVAL);
    }
    const auto& programs = static_cast<const prog_array_map&>(*target);
    if (index >= programs.max_entries() || context.tail_calls >= static_cast<std::uint32_t>(max_tail_calls)) {
        return error_code(-ENOENT);
    }
    const void* handle = programs.program(static_cast<std::uint32_t>(index));
    const program_registry* registry = state_of(context).programs;
    const runnable_program* next = handle != nullptr && registry != nullptr ? registry->find(handle) : nullptr;
    if (next == nullptr) {
        return error_code(-ENOENT);
    }
    context.tail_call = next;
    return 0;
}

// kernel/bpf/bpf_iter.c bpf_loop: flags must be 0, at most BPF_MAX_LOOPS; the callback gets (index, ctx) and returns
// 0 to go on, 1 to stop; the result is the number of iterations made.
std::uint64_t loop(std::uint64_t count, std::uint64_t callback, std::uint64_t callback_context, std::uint64_t flags,
                   std::uint64_t, call_context& context) {
    if (flags != 0) {
        return error_code(-EINVAL);
    }
    const auto iterations = static_cast<std::uint32_t>(count); // u32 nr_loops
    if (iterations > max_loops) {
        return error_code(-E2BIG);
    }
    for (std::uint32_t i = 0; i < iterations; ++i) {
        std::uint64_t result = 0;
        if (!context.call(callback, {i, callback_context, 0, 0, 0}, result)) {
            return 0; // the program ends with the callback's error
        }
        if (result != 0) {
            return i + 1;
        }
    }
    return iterations;
}

// kernel/bpf/arraymap.c bpf_for_each_array_elem and kernel/bpf/hashtab.c bpf_for_each_hash_elem: the callback gets
// (map, &key, &value, ctx); 0 continues, 1 stops; the result counts the elements visited (the stopping one
// included). Per-CPU maps give the worker's value. Flags must be 0.
std::uint64_t for_each_map_elem(std::uint64_t map_address, std::uint64_t callback, std::uint64_t callback_context,
                                std::uint64_t flags, std::uint64_t, call_context& context) {
    if (flags != 0) {
        return error_code(-EINVAL);
    }
    auto& target = *pointer<map>(map_address);
    const unsigned cpu = state_of(context).cpu;
    const auto visit = [&](const void* key, void* value, std::uint64_t& visited) {
        ++visited;
        std::uint64_t result = 0;
        const auto key_address = reinterpret_cast<std::uintptr_t>(key);
        const auto value_address = reinterpret_cast<std::uintptr_t>(value);
        // The callback may read the key and read and write the value (kernel: PTR_TO_MAP_KEY, PTR_TO_MAP_VALUE).
        const std::array<memory_region, 2> lent{memory_region{key_address, target.key_size(), false, "map key"},
                                                memory_region{value_address, target.value_size(), true, "map value"}};
        if (!context.call(callback, {map_address, key_address, value_address, callback_context, 0}, result, lent)) {
            return false;
        }
        return result == 0;
    };
    std::uint64_t visited = 0;
    switch (target.type()) {
    case map_type::array:
    case map_type::percpu_array:
        for (std::uint32_t key = 0; key < target.max_entries(); ++key) {
            void* value = target.lookup(&key, cpu);
            if (value != nullptr && !visit(&key, value, visited)) {
                break;
            }
        }
        return context.stop ? 0 : visited;
    case map_type::hash:
    case map_type::percpu_hash:
    case map_type::lru_hash:
    case map_type::lru_percpu_hash: {
        // Keys live in the element in the kernel; here the key is copied out of get_next_key, on this stack. The
        // verifier bounds keys a program can build on its stack to 512 bytes.
        std::array<std::byte, stack_size> current{};
        std::array<std::byte, stack_size> next{};
        if (target.key_size() > current.size()) {
            return error_code(-E2BIG);
        }
        const void* previous = nullptr;
        while (target.get_next_key(previous, next.data()) == 0) {
            current = next;
            previous = current.data();
            void* value = target.lookup(current.data(), cpu);
            if (value != nullptr && !visit(current.data(), value, visited)) {
                break;
            }
        }
        return context.stop ? 0 : visited;
    }
    default:
        return error_code(-EINVAL); // the verifier refuses other kinds (map->ops->map_for_each_callback is NULL)
    }
}

} // namespace

void register_control_helpers(helper_table& table) {
    add(table, BPF_FUNC_tail_call, tail_call);
    add(table, BPF_FUNC_loop, loop);
    add(table, BPF_FUNC_for_each_map_elem, for_each_map_elem);
}

} // namespace sluice::ebpf::helpers
