// What the helper files share: how a helper finds its state, and how each file registers its helpers.
#pragma once

#include <linux/bpf.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/kernel_helpers.hpp"

namespace sluice::ebpf::helpers {

/// The per-worker state the embedder passed as call_context::user.
inline execution_state& state_of(call_context& context) {
    return *static_cast<execution_state*>(context.user);
}

template <typename T> T* pointer(std::uint64_t address) {
    return reinterpret_cast<T*>(static_cast<std::uintptr_t>(address));
}

/// Negative errno as the helper's 64-bit return value.
constexpr std::uint64_t error_code(long negative_errno) {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(negative_errno));
}

/// Registers `function` under kernel id `id` and the kernel's name for it.
inline void add(helper_table& table, std::uint32_t id, helper_function function) {
    table.set(id, kernel_helper_name(id), function);
}

void register_map_helpers(helper_table& table);     // map_helpers.cpp
void register_control_helpers(helper_table& table); // control_helpers.cpp: tail_call, loop, for_each_map_elem
void register_time_helpers(helper_table& table);    // time_helpers.cpp: ktime, jiffies, prandom, cpu id
void register_xdp_helpers(helper_table& table);     // xdp_helpers.cpp: adjust_*, bytes, csum_diff, redirect, mtu
void register_fib_lookup(helper_table& table);      // fib_lookup.cpp
void register_ringbuf_helpers(helper_table& table); // ringbuf_helpers.cpp
void register_trace_printk(helper_table& table);    // trace_printk.cpp
void register_script_call(helper_table& table);     // script_call.cpp: bpf_sluice_lua, sluice's kfunc

} // namespace sluice::ebpf::helpers
