// bpf_sluice_lua(ctx, fn, fn_len): sluice's kfunc by which an eBPF program hands its packet to a Lua function and
// uses its verdict (helpers.hpp; the loader turns the kfunc call into this helper). The callee is whatever script the
// embedder attached to the worker's execution_state; without one the call returns XDP_ABORTED, so a program chained
// to no script aborts its packets visibly instead of passing them.
#include <string_view>

#include "ebpf/helpers/helpers_internal.hpp"

namespace sluice::ebpf::helpers {
namespace {

constexpr std::uint64_t xdp_aborted = 0;
constexpr std::uint64_t max_function_name = 256; ///< longer names are no Lua global a script would define

std::uint64_t sluice_lua(std::uint64_t ctx, std::uint64_t function, std::uint64_t function_length, std::uint64_t,
                         std::uint64_t, call_context& context) {
    execution_state& state = state_of(context);
    const auto length = static_cast<std::uint32_t>(function_length); // int fn_len
    if (state.script == nullptr || function == 0 || length == 0 || length > max_function_name) {
        return xdp_aborted;
    }
    const std::string_view name{pointer<const char>(function), length};
    return state.script(state.script_opaque, *pointer<xdp_context>(ctx), name);
}

} // namespace

void register_script_call(helper_table& table) {
    table.set(sluice_lua_helper_id, sluice_lua_kfunc_name, sluice_lua);
}

} // namespace sluice::ebpf::helpers
