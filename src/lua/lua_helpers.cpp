// The helpers a script calls, served by the eBPF helpers themselves (the XDP helper table), so that a script and a
// program on the same worker share one redirect decision, one prandom sequence and one trace sink with its rate
// limit: redirect, redirect_map, ktime_ns, prandom_u32, processor_id, print.
#include "lua/binding.hpp"

namespace sluice::lua::SLUICE_LUA_NS {
namespace {

/// redirect(ifindex [, flags]) -> XDP_REDIRECT, or XDP_ABORTED for flags the kernel refuses (bpf_redirect).
int redirect(lua_State* L) {
    state_engine& engine = state_engine::of(L);
    const auto ifindex = static_cast<std::uint64_t>(check_integer(L, 1));
    const auto flags = lua_isnoneornil(L, 2) ? 0 : static_cast<std::uint64_t>(check_integer(L, 2));
    push_unsigned(L, engine.call_helper(slot_redirect, ifindex, flags));
    return 1;
}

/// redirect_map(map, key [, flags]) -> XDP_REDIRECT, or the action in flags' low bits when the key is missing
/// (bpf_redirect_map).
int redirect_map(lua_State* L) {
    state_engine& engine = state_engine::of(L);
    ebpf::map* target = check_map_target(L, 1);
    const auto key = static_cast<std::uint64_t>(check_integer(L, 2));
    const auto flags = lua_isnoneornil(L, 3) ? 0 : static_cast<std::uint64_t>(check_integer(L, 3));
    push_unsigned(L, engine.call_helper(slot_redirect_map, reinterpret_cast<std::uint64_t>(target), key, flags));
    return 1;
}

int ktime_ns(lua_State* L) {
    push_unsigned(L, state_engine::of(L).call_helper(slot_ktime, 0));
    return 1;
}

int prandom_u32(lua_State* L) {
    push_unsigned(L, state_engine::of(L).call_helper(slot_prandom, 0));
    return 1;
}

int processor_id(lua_State* L) {
    push_unsigned(L, state_engine::of(L).settings.state->cpu);
    return 1;
}

/// print(...): the arguments as tostring() shows them, tab-separated, as one trace line (bpf_trace_printk with
/// "%s": same sink, same rate limit, lines cut at the kernel's 512 bytes for a %s argument).
int print(lua_State* L) {
    const int count = lua_gettop(L);
    luaL_Buffer line;
    luaL_buffinit(L, &line);
    for (int i = 1; i <= count; ++i) {
        if (i > 1) {
            luaL_addchar(&line, '\t');
        }
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, i);
        lua_call(L, 1, 1);
        if (lua_isstring(L, -1) == 0) {
            lua_pop(L, 1);
            lua_pushstring(L, "?");
        }
        luaL_addvalue(&line);
    }
    luaL_pushresult(&line);
    static constexpr char format[] = "%s";
    state_engine::of(L).call_helper(slot_trace_printk, reinterpret_cast<std::uint64_t>(format), sizeof(format),
                                    reinterpret_cast<std::uint64_t>(lua_tostring(L, -1)));
    return 0;
}

constexpr luaL_Reg helper_functions[] = {
    {"redirect", redirect}, {"redirect_map", redirect_map}, {"ktime_ns", ktime_ns}, {"prandom_u32", prandom_u32},
    {"processor_id", processor_id}, {"print", print}, {nullptr, nullptr},
};

} // namespace

void register_helpers(lua_State* L) {
    luaL_setfuncs(L, helper_functions, 0);
}

} // namespace sluice::lua::SLUICE_LUA_NS
