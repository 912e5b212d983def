// One prototype per helper of xdp_helper_table(), copied from the kernel's bpf_func_proto definitions (cited per
// entry). The verifier test checks that every helper of the table has one.
#include "ebpf/verifier/helper_prototypes.hpp"

#include <linux/bpf.h>

#include <fmt/format.h>

#include <vector>

#include "sluice/ebpf/helpers.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

static_assert(helper_id::map_lookup_elem == BPF_FUNC_map_lookup_elem);
static_assert(helper_id::tail_call == BPF_FUNC_tail_call);
static_assert(helper_id::for_each_map_elem == BPF_FUNC_for_each_map_elem);
static_assert(helper_id::loop == BPF_FUNC_loop);
static_assert(helper_id::ringbuf_reserve == BPF_FUNC_ringbuf_reserve);
static_assert(helper_id::ringbuf_submit == BPF_FUNC_ringbuf_submit);
static_assert(helper_id::ringbuf_discard == BPF_FUNC_ringbuf_discard);

using a = arg_type;
using r = return_type;

struct entry {
    std::uint32_t id;
    helper_proto proto;
};

const std::vector<helper_proto>& table() {
    static const std::vector<helper_proto> built = [] {
        const entry entries[] = {
            // kernel/bpf/helpers.c
            {BPF_FUNC_map_lookup_elem, {"bpf_map_lookup_elem", r::map_value_or_null, {a::map_ptr, a::map_key}}},
            {BPF_FUNC_map_update_elem,
             {"bpf_map_update_elem", r::integer, {a::map_ptr, a::map_key, a::map_value, a::anything}}},
            {BPF_FUNC_map_delete_elem, {"bpf_map_delete_elem", r::integer, {a::map_ptr, a::map_key}}},
            {BPF_FUNC_map_push_elem, {"bpf_map_push_elem", r::integer, {a::map_ptr, a::map_value, a::anything}}},
            {BPF_FUNC_map_pop_elem, {"bpf_map_pop_elem", r::integer, {a::map_ptr, a::uninit_map_value}}},
            {BPF_FUNC_map_peek_elem, {"bpf_map_peek_elem", r::integer, {a::map_ptr, a::uninit_map_value}}},
            {BPF_FUNC_spin_lock, {"bpf_spin_lock", r::nothing, {a::spin_lock}}},
            {BPF_FUNC_spin_unlock, {"bpf_spin_unlock", r::nothing, {a::spin_lock}}},
            {BPF_FUNC_ktime_get_ns, {"bpf_ktime_get_ns", r::integer, {}}},
            {BPF_FUNC_ktime_get_boot_ns, {"bpf_ktime_get_boot_ns", r::integer, {}}},
            {BPF_FUNC_ktime_get_coarse_ns, {"bpf_ktime_get_coarse_ns", r::integer, {}}},
            {BPF_FUNC_jiffies64, {"bpf_jiffies64", r::integer, {}}},
            {BPF_FUNC_get_prandom_u32, {"bpf_get_prandom_u32", r::integer, {}, false, 0xffff'ffffULL}},
            {BPF_FUNC_get_smp_processor_id, {"bpf_get_smp_processor_id", r::integer, {}, false, 0xffff'ffffULL}},
            // The format's arguments are not typed (ARG_DONTCARE): bpf_printk with fewer leaves r3-r5 unset.
            {BPF_FUNC_trace_printk, {"bpf_trace_printk", r::integer, {a::mem, a::const_size}}},
            {BPF_FUNC_tail_call, {"bpf_tail_call", r::integer, {a::ctx, a::map_ptr, a::anything}}},
            {BPF_FUNC_loop, {"bpf_loop", r::integer, {a::anything, a::func, a::stack_or_null, a::anything}}},
            // kernel/bpf/bpf_iter.c
            {BPF_FUNC_for_each_map_elem,
             {"bpf_for_each_map_elem", r::integer, {a::map_ptr, a::func, a::stack_or_null, a::anything}}},
            // net/core/filter.c
            {BPF_FUNC_xdp_adjust_head, {"bpf_xdp_adjust_head", r::integer, {a::ctx, a::anything}, true}},
            {BPF_FUNC_xdp_adjust_meta, {"bpf_xdp_adjust_meta", r::integer, {a::ctx, a::anything}, true}},
            {BPF_FUNC_xdp_adjust_tail, {"bpf_xdp_adjust_tail", r::integer, {a::ctx, a::anything}, true}},
            {BPF_FUNC_xdp_load_bytes,
             {"bpf_xdp_load_bytes", r::integer, {a::ctx, a::anything, a::uninit_mem, a::const_size}}},
            {BPF_FUNC_xdp_store_bytes,
             {"bpf_xdp_store_bytes", r::integer, {a::ctx, a::anything, a::mem, a::const_size}}},
            {BPF_FUNC_xdp_get_buff_len, {"bpf_xdp_get_buff_len", r::integer, {a::ctx}}},
            {BPF_FUNC_csum_diff,
             {"bpf_csum_diff",
              r::integer,
              {a::mem_or_null, a::const_size_or_zero, a::mem_or_null, a::const_size_or_zero, a::anything}}},
            {BPF_FUNC_redirect, {"bpf_redirect", r::integer, {a::anything, a::anything}}},
            {BPF_FUNC_redirect_map, {"bpf_redirect_map", r::integer, {a::map_ptr, a::anything, a::anything}}},
            {BPF_FUNC_check_mtu,
             {"bpf_check_mtu", r::integer, {a::ctx, a::anything, a::int_ptr, a::anything, a::anything}}},
            {BPF_FUNC_fib_lookup, {"bpf_fib_lookup", r::integer, {a::ctx, a::mem, a::const_size, a::anything}}},
            // kernel/bpf/ringbuf.c
            {BPF_FUNC_ringbuf_output,
             {"bpf_ringbuf_output", r::integer, {a::map_ptr, a::mem, a::const_size_or_zero, a::anything}}},
            {BPF_FUNC_ringbuf_reserve,
             {"bpf_ringbuf_reserve", r::ringbuf_or_null, {a::map_ptr, a::const_alloc_size, a::anything}}},
            {BPF_FUNC_ringbuf_submit, {"bpf_ringbuf_submit", r::nothing, {a::ringbuf_record, a::anything}}},
            {BPF_FUNC_ringbuf_discard, {"bpf_ringbuf_discard", r::nothing, {a::ringbuf_record, a::anything}}},
            {BPF_FUNC_ringbuf_query, {"bpf_ringbuf_query", r::integer, {a::map_ptr, a::anything}}},
            // helpers/script_call.cpp: sluice's bpf_sluice_lua(ctx, fn, fn_len). The Lua function may call
            // pkt:adjust_head/tail/meta, so packet pointers do not survive the call; it returns an XDP action.
            {sluice_lua_helper_id, {"bpf_sluice_lua", r::integer, {a::ctx, a::mem, a::const_size}, true, 4}},
        };
        std::vector<helper_proto> result(max_helper_id);
        for (const entry& e : entries) {
            result[e.id] = e.proto;
        }
        return result;
    }();
    return built;
}

bool one_of(map_type type, std::initializer_list<std::uint32_t> kinds) {
    for (const std::uint32_t kind : kinds) {
        if (static_cast<std::uint32_t>(type) == kind) {
            return true;
        }
    }
    return false;
}

} // namespace

const helper_proto* find_helper_proto(std::uint32_t id) {
    const auto& protos = table();
    if (id >= protos.size() || protos[id].name.empty()) {
        return nullptr;
    }
    return &protos[id];
}

std::optional<std::string> map_refused(std::uint32_t id, map_type type) {
    // The kernel's check_map_func_compatibility, in both directions, for the map kinds sluice has.
    const bool queue_like = one_of(type, {BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK});
    const bool redirect_target =
        one_of(type, {BPF_MAP_TYPE_DEVMAP, BPF_MAP_TYPE_DEVMAP_HASH, BPF_MAP_TYPE_CPUMAP, BPF_MAP_TYPE_XSKMAP});
    switch (id) {
    case BPF_FUNC_map_lookup_elem:
    case BPF_FUNC_map_update_elem:
    case BPF_FUNC_map_delete_elem:
        if (queue_like || type == map_type::ringbuf || type == map_type::prog_array) {
            return fmt::format("a {} map has no keys to look up, update or delete", to_string(type));
        }
        return std::nullopt;
    case BPF_FUNC_map_push_elem:
    case BPF_FUNC_map_pop_elem:
    case BPF_FUNC_map_peek_elem:
        if (!queue_like) {
            return fmt::format("push, pop and peek work on queue and stack maps, not on a {} map", to_string(type));
        }
        return std::nullopt;
    case BPF_FUNC_tail_call:
        if (type != map_type::prog_array) {
            return fmt::format("bpf_tail_call takes a prog_array map, not a map of type {}", to_string(type));
        }
        return std::nullopt;
    case BPF_FUNC_redirect_map:
        if (!redirect_target) {
            return fmt::format("bpf_redirect_map takes a devmap, devmap_hash, cpumap or xskmap, not a map of type {}",
                               to_string(type));
        }
        return std::nullopt;
    case BPF_FUNC_ringbuf_output:
    case BPF_FUNC_ringbuf_reserve:
    case BPF_FUNC_ringbuf_query:
        if (type != map_type::ringbuf) {
            return fmt::format("ringbuf helpers take a ringbuf map, not a map of type {}", to_string(type));
        }
        return std::nullopt;
    case BPF_FUNC_for_each_map_elem:
        if (!one_of(type, {BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_PERCPU_ARRAY,
                           BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH})) {
            return fmt::format("bpf_for_each_map_elem iterates hash and array maps, not a map of type {}",
                               to_string(type));
        }
        return std::nullopt;
    default:
        return std::nullopt;
    }
}

} // namespace sluice::ebpf::verifier_detail
