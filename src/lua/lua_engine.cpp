// One Lua state on the XDP hook: the counting allocator, the sandbox, loading a script, the batch driver, chaining
// calls, and the debug hook the watchdog and the allocator arm (contract in include/sluice/lua/script_program.hpp).
//
// The batch driver is a chunk of sluice's own (trusted, not the script's) that loops over the batch in Lua:
//     for _ = 1, n do step(xdp(pkt)) end
// step() records the verdict of the packet running, with the redirect decision the helpers left, and moves the view
// to the next frame. So the C++ side enters Lua once per batch; a failure stops the loop at the packet that failed,
// and the caller (script_program) re-enters after it.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lua/binding.hpp"

namespace sluice::lua::SLUICE_LUA_NS {
namespace {

/// Base functions a script may use; everything else of _G (load*, dofile, require, collectgarbage, print, ...)
/// stays out of its environment.
constexpr std::array safe_functions{"assert", "error",  "ipairs",   "next",   "pairs",  "pcall",        "select",
                                    "tonumber", "tostring", "type", "xpcall", "rawequal", "rawget", "rawset",
                                    "setmetatable", "getmetatable", "unpack", "rawlen"};
/// Libraries a script may use whole (string without dump, see start()).
constexpr std::array safe_libraries{"string", "table", "math", "utf8", "bit"};

#ifdef SLUICE_LUAJIT
// LuaJIT: the driver gets step() as an FFI function pointer, so the loop compiles into a trace with no exit to the
// classic C API per packet.
constexpr const char* driver_source = R"lua(
local env, ffi, step_address, engine_address = ...
local step = ffi.cast("void (*)(void*, int64_t, int)", step_address)
local engine = ffi.cast("void*", engine_address) -- light userdata to a C function is NYI in traces
local type = type
return function(pkt, n)
    local xdp = env.xdp
    if type(xdp) ~= "function" then error("the script defines no function xdp(pkt)", 0) end
    for _ = 1, n do
        local v = xdp(pkt)
        if type(v) == "number" and v % 1 == 0 and v >= -2147483648 and v <= 4294967295 then
            step(engine, v, 1)
        else
            step(engine, 0, 0)
        end
    end
end
)lua";

extern "C" void sluice_luajit_step(void* engine, std::int64_t code, int integer) {
    static_cast<state_engine*>(engine)->step(detail::packet_result{code, integer != 0});
}
#else
constexpr const char* driver_source = R"lua(
local env, step = ...
local type = type
return function(pkt, n)
    local xdp = env.xdp
    if type(xdp) ~= "function" then error("the script defines no function xdp(pkt)", 0) end
    for _ = 1, n do step(xdp(pkt)) end
end
)lua";

int step_function(lua_State* L) {
    auto& engine = *static_cast<state_engine*>(lua_touserdata(L, lua_upvalueindex(1)));
    detail::packet_result verdict;
    verdict.integer = lua_gettop(L) >= 1 && to_integer(L, 1, verdict.code);
    engine.step(verdict);
    return 0;
}
#endif

#ifdef SLUICE_LUAJIT
/// A diagnostic for whoever tunes scripts or these bindings: SLUICE_LUAJIT_JIT_LOG=FILE writes what LuaJIT's trace
/// compiler does (jit.v: each trace, and why one aborted: NYI, a C function, ...) to FILE, appending;
/// SLUICE_LUAJIT_JIT_DUMP=OPTIONS writes jit.dump's listing instead (its options, e.g. "tbimrsx"). Trusted setup code
/// of sluice's own: the script never sees jit or require.
void log_traces(lua_State* L) {
    const char* file = std::getenv("SLUICE_LUAJIT_JIT_LOG");
    if (file == nullptr || *file == 0) {
        return;
    }
    static std::atomic<unsigned> states{0};
    const std::string path = fmt::format("{}.{}", file, states.fetch_add(1));
    const char* dump = std::getenv("SLUICE_LUAJIT_JIT_DUMP");
    const std::string code = dump != nullptr && *dump != 0
                                 ? fmt::format("require('jit.dump').on([[{}]], [[{}]])", dump, path)
                                 : fmt::format("require('jit.v').on([[{}]])", path);
    if (luaL_dostring(L, code.c_str()) != 0) {
        std::fprintf(stderr, "sluice: SLUICE_LUAJIT_JIT_LOG: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
}
#endif

void set_integer(lua_State* L, const char* name, std::int64_t value) {
    lua_pushinteger(L, static_cast<lua_Integer>(value));
    lua_setfield(L, -2, name);
}

} // namespace

// ---- Lua 5.4 / LuaJIT differences ----

bool to_integer(lua_State* L, int index, std::int64_t& out) {
#ifdef SLUICE_LUAJIT
    if (lua_type(L, index) != LUA_TNUMBER) {
        return false;
    }
    const lua_Number number = lua_tonumber(L, index);
    if (!(number >= -9007199254740992.0 && number <= 9007199254740992.0) ||
        number != static_cast<lua_Number>(static_cast<std::int64_t>(number))) {
        return false;
    }
    out = static_cast<std::int64_t>(number);
    return true;
#else
    int is_integer = 0;
    const lua_Integer value = lua_tointegerx(L, index, &is_integer);
    out = value;
    return is_integer != 0 && lua_type(L, index) == LUA_TNUMBER;
#endif
}

void push_unsigned(lua_State* L, std::uint64_t value) {
#ifdef SLUICE_LUAJIT
    lua_pushnumber(L, static_cast<lua_Number>(value));
#else
    lua_pushinteger(L, static_cast<lua_Integer>(value));
#endif
}

std::int64_t check_integer(lua_State* L, int index) {
    std::int64_t value = 0;
    if (!to_integer(L, index, value)) {
        luaL_error(L, "bad argument #%d: an integer expected, got %s", index, luaL_typename(L, index));
    }
    return value;
}

void* new_userdata(lua_State* L, std::size_t size) {
#ifdef SLUICE_LUAJIT
    return lua_newuserdata(L, size);
#else
    return lua_newuserdatauv(L, size, 0);
#endif
}

void remember_metatable(lua_State* L, type_slot slot) {
    lua_pushvalue(L, -1);
    state_engine::of(L).metatables[slot] = luaL_ref(L, LUA_REGISTRYINDEX);
}

void set_metatable(lua_State* L, type_slot slot, const state_engine& engine) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, engine.metatables[slot]);
    lua_setmetatable(L, -2);
}

void* test_userdata(lua_State* L, int index, type_slot slot) {
    // nullptr for anything but a userdata. A light userdata would carry no tag, but none reaches a script
    // (userdata_tag): the driver's light userdata is an upvalue of a C function, out of the script's reach.
    auto* tag = static_cast<userdata_tag*>(lua_touserdata(L, index));
    return tag != nullptr && tag->magic == userdata_tag::expected_magic && tag->slot == slot ? tag : nullptr;
}

void* check_userdata(lua_State* L, int index, type_slot slot) {
    void* data = test_userdata(L, index, slot);
    if (data == nullptr) {
        constexpr std::array<const char*, type_count> names{"a packet", "a map", "a record (map key or value)"};
        luaL_error(L, "bad argument #%d: %s expected, got %s", index, names[slot], luaL_typename(L, index));
    }
    return data;
}

std::size_t table_length(lua_State* L, int index) {
#ifdef SLUICE_LUAJIT
    return lua_objlen(L, index);
#else
    return lua_rawlen(L, index);
#endif
}

// ---- the engine ----

state_engine::state_engine(const detail::engine_settings& engine_settings) : settings(engine_settings) {
    // Past the limit the hook raises an error with the script's line; the slack lets that error and the GC work,
    // and only beyond it do allocations fail outright (Lua's "not enough memory").
    _hard_limit = settings.memory_limit + std::max<std::size_t>(settings.memory_limit / 8, 256U << 10U);
}

state_engine::~state_engine() {
    if (_lua != nullptr) {
        lua_close(_lua);
    }
}

state_engine& state_engine::of(lua_State* L) {
    void* opaque = nullptr;
    lua_getallocf(L, &opaque);
    return *static_cast<state_engine*>(opaque);
}

void* state_engine::allocate(void* opaque, void* block, std::size_t old_size, std::size_t new_size) {
    auto& self = *static_cast<state_engine*>(opaque);
    const std::size_t old = block != nullptr ? old_size : 0; // Lua passes a type tag as old_size for new blocks
    if (new_size == 0) {
        std::free(block);
        self._used -= old;
        return nullptr;
    }
    if (new_size > old) {
        const std::size_t growth = new_size - old;
        if (self._used + growth > self._hard_limit) {
            return nullptr;
        }
        if (self._used + growth > self.settings.memory_limit && self._in_call &&
            self._reason.load(std::memory_order_relaxed) != static_cast<int>(interrupt_reason::memory)) {
            self.arm(interrupt_reason::memory);
        }
    }
    void* moved = std::realloc(block, new_size);
    if (moved == nullptr) {
        return nullptr;
    }
    self._used = self._used - old + new_size;
    return moved;
}

void state_engine::arm(interrupt_reason reason) {
    _reason.store(static_cast<int>(reason), std::memory_order_release);
    if (reason == interrupt_reason::budget) {
        // The watchdog's CPU clock is not proof that the script ran that long: in a virtual machine a thread's CPU
        // time also advances while the hypervisor holds its vCPU (seen here: 64-packet batches of 80 µs measured at
        // 300 µs to over a millisecond, about one batch in 20,000 aborted). So the call must also run this many more
        // Lua instructions before it is stopped: a batch delayed by the machine ends well within them (the example
        // filters run a few hundred per packet), a runaway script does not.
        lua_sethook(_lua, &hook, LUA_MASKCOUNT, budget_grace_instructions);
        return;
    }
    lua_sethook(_lua, &hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

void state_engine::interrupt(std::uint64_t sequence) {
    _interrupt_for.store(sequence, std::memory_order_release);
    // lua_sethook may be called asynchronously (the Lua and LuaJIT interpreters do so from a signal handler); the
    // hook itself runs in the worker's thread, where raising an error is allowed.
    arm(interrupt_reason::budget);
}

void state_engine::hook(lua_State* L, lua_Debug*) {
    // Lua 5.4 raises errors with longjmp: no C++ object may be alive in this frame when lua_error runs.
    if (of(L).hook_message(L)) {
        lua_error(L);
    }
}

bool state_engine::hook_message(lua_State* L) {
    state_engine& self = *this;
    const auto reason = static_cast<interrupt_reason>(self._reason.exchange(0, std::memory_order_acq_rel));
    lua_sethook(L, nullptr, 0, 0);
    std::string message;
    if (reason == interrupt_reason::memory) {
        message = fmt::format("memory limit of {} bytes exceeded", self.settings.memory_limit);
    } else if (reason == interrupt_reason::budget && self._in_call &&
               self._interrupt_for.load(std::memory_order_acquire) ==
                   self.settings.progress->load(std::memory_order_acquire)) {
        message = "CPU budget exceeded (the script did not return in time)";
    } else {
        return false; // armed for a call that has ended
    }
    self._raised = reason;
    const std::string where = self.script_location(L);
    if (!where.empty()) {
        message = fmt::format("{}: {}", where, message);
    }
    lua_pushlstring(L, message.data(), message.size());
    return true;
}

std::string state_engine::script_location(lua_State* L) const {
    lua_Debug debug{};
    for (int level = 0; level < 64 && lua_getstack(L, level, &debug) != 0; ++level) {
        if (lua_getinfo(L, "Sl", &debug) != 0 && debug.currentline > 0 && _chunk_name == debug.short_src) {
            return fmt::format("{}:{}", debug.short_src, debug.currentline);
        }
    }
    return {};
}

std::uint64_t state_engine::call_helper(helper_slot slot, std::uint64_t r1, std::uint64_t r2, std::uint64_t r3) {
    ebpf::call_context context;
    context.user = settings.state;
    return helpers[slot](r1, r2, r3, 0, 0, context);
}

void state_engine::refresh_view() {
    if (view.context != nullptr) {
        view.data = view.context->data;
        view.length = static_cast<std::uint32_t>(view.context->data_end - view.context->data);
    }
}

void state_engine::step(detail::packet_result verdict) {
    if (_current >= _frames.size()) {
        return; // the driver never calls past the batch; a stray call must not write out of bounds
    }
    _results[_current] = verdict;
    _decisions[_current] = settings.state->redirect;
    ++_current;
    if (_current < _frames.size()) {
        ebpf::xdp_context& next = _frames[_current]->context();
        settings.state->begin_packet(next);
        view.context = &next;
        refresh_view();
    }
}

std::string state_engine::start() {
    _lua = lua_newstate(&allocate, this);
    if (_lua == nullptr) {
        return "could not create a Lua state (is the memory limit too small?)";
    }
    lua_State* L = _lua;
    const std::array<std::uint32_t, slot_count> ids{BPF_FUNC_xdp_adjust_head, BPF_FUNC_xdp_adjust_tail,
                                                    BPF_FUNC_xdp_adjust_meta, BPF_FUNC_redirect,
                                                    BPF_FUNC_redirect_map,    BPF_FUNC_ktime_get_ns,
                                                    BPF_FUNC_get_prandom_u32, BPF_FUNC_trace_printk};
    for (std::size_t i = 0; i < slot_count; ++i) {
        helpers[i] = settings.services->helper(ids[i]);
        if (helpers[i] == nullptr) {
            return fmt::format("the XDP helper table lacks helper {}", ids[i]);
        }
    }
    luaL_openlibs(L); // for sluice's own setup code; the script's environment gets only the safe parts

    // string.dump would turn functions into bytecode, and strings reach the string table through their metatable.
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    lua_newtable(L); // the script's environment
    for (const char* name : safe_functions) {
        lua_getglobal(L, name);
        lua_setfield(L, -2, name);
    }
    for (const char* name : safe_libraries) {
        lua_getglobal(L, name);
        lua_setfield(L, -2, name);
    }
#ifndef SLUICE_LUAJIT
    lua_getglobal(L, "table"); // Lua 5.4 has table.unpack only; scripts written for both engines use unpack
    lua_getfield(L, -1, "unpack");
    lua_setfield(L, -3, "unpack");
    lua_pop(L, 1);
#endif
    set_integer(L, "XDP_ABORTED", 0);
    set_integer(L, "XDP_DROP", 1);
    set_integer(L, "XDP_PASS", 2);
    set_integer(L, "XDP_TX", 3);
    set_integer(L, "XDP_REDIRECT", 4);
    set_integer(L, "BPF_ANY", 0);
    set_integer(L, "BPF_NOEXIST", 1);
    set_integer(L, "BPF_EXIST", 2);
    set_integer(L, "BPF_F_NO_PREALLOC", 1);
    set_integer(L, "BPF_F_NO_COMMON_LRU", 2);
    set_integer(L, "BPF_F_BROADCAST", 8);
    set_integer(L, "BPF_F_EXCLUDE_INGRESS", 16);
    lua_pushstring(L, SLUICE_ENGINE_NAME);
    lua_setfield(L, -2, "SLUICE_ENGINE");
    register_helpers(L);
    lua_newtable(L);
    register_maps(L);
    lua_setfield(L, -2, "maps");
    lua_newtable(L);
    for (const auto& [key, value] : settings.config) {
        // A value that reads as a number becomes one; anything else stays a string.
        lua_pushlstring(L, value.data(), value.size());
        if (lua_isnumber(L, -1) != 0) {
            lua_Number number = lua_tonumber(L, -1);
            lua_pop(L, 1);
            std::int64_t whole = 0;
            lua_pushnumber(L, number);
            if (to_integer(L, -1, whole)) {
                lua_pop(L, 1);
                lua_pushinteger(L, static_cast<lua_Integer>(whole));
            }
        }
        lua_setfield(L, -2, key.c_str());
    }
    lua_setfield(L, -2, "config");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    _environment_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    push_packet_object(L, *this);
    _packet_ref = luaL_ref(L, LUA_REGISTRYINDEX);
#ifdef SLUICE_LUAJIT
    use_ffi_maps(L, *this, _environment_ref); // after the packet object: it uses its cdef of struct sluice_view
    log_traces(L);
#endif

    if (luaL_loadbufferx(L, driver_source, std::strlen(driver_source), "=sluice driver", "t") != 0) {
        std::string why = lua_tostring(L, -1);
        lua_pop(L, 1);
        return "the batch driver does not compile: " + why;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, _environment_ref);
#ifdef SLUICE_LUAJIT
    lua_getglobal(L, "require");
    lua_pushstring(L, "ffi");
    lua_call(L, 1, 1);
    lua_pushlightuserdata(L, reinterpret_cast<void*>(&sluice_luajit_step));
    lua_pushlightuserdata(L, this);
    lua_call(L, 4, 1);
#else
    lua_pushlightuserdata(L, this);
    lua_pushcclosure(L, &step_function, 1);
    lua_call(L, 2, 1);
#endif
    _driver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return {};
}

std::string state_engine::load(std::string_view source, const std::string& chunk_name) {
    lua_State* L = _lua;
    _chunk_name = chunk_name;
    const std::string name = "@" + chunk_name;
    if (luaL_loadbufferx(L, source.data(), source.size(), name.c_str(), "t") != 0) {
        std::string why = lua_tostring(L, -1);
        lua_pop(L, 1);
        return why;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, _environment_ref);
#ifdef SLUICE_LUAJIT
    lua_setfenv(L, -2);
#else
    if (lua_setupvalue(L, -2, 1) == nullptr) { // a main chunk's first upvalue is _ENV
        lua_pop(L, 1);
    }
#endif
    _in_call = true;
    const int status = lua_pcall(L, 0, 0, 0);
    _in_call = false;
    detail::call_result result = finish_call(status, 0);
    if (result.kind != detail::failure::none) {
        return result.message;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, _environment_ref);
    lua_getfield(L, -1, "xdp");
    if (lua_isfunction(L, -1)) {
        lua_Debug debug{};
        lua_getinfo(L, ">S", &debug); // pops the function
        _xdp_location = fmt::format("{}:{}", debug.short_src, debug.linedefined);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    ++generation;
    return {};
}

detail::call_result state_engine::run(std::span<xdp::frame* const> frames, std::size_t first,
                                      detail::packet_result* results, ebpf::redirect_decision* decisions) {
    lua_State* L = _lua;
    _frames = frames;
    _current = first;
    _results = results;
    _decisions = decisions;
    ebpf::xdp_context& context = frames[first]->context();
    settings.state->begin_packet(context);
    view.context = &context;
    refresh_view();
    lua_rawgeti(L, LUA_REGISTRYINDEX, _driver_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, _packet_ref);
    lua_pushinteger(L, static_cast<lua_Integer>(frames.size() - first));
    _in_call = true;
    const int status = lua_pcall(L, 2, 0, 0);
    _in_call = false;
    view.context = nullptr;
    ++generation;
    _frames = {};
    return finish_call(status, _current - first);
}

detail::call_result state_engine::call(std::string_view function, ebpf::xdp_context& packet,
                                       detail::packet_result& result) {
    lua_State* L = _lua;
    lua_rawgeti(L, LUA_REGISTRYINDEX, _environment_ref);
    lua_pushlstring(L, function.data(), function.size());
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return {0, detail::failure::error,
                fmt::format("{}: bpf_sluice_lua: the script defines no function '{}'", _chunk_name, function)};
    }
    view.context = &packet;
    refresh_view();
    lua_rawgeti(L, LUA_REGISTRYINDEX, _packet_ref);
    _in_call = true;
    const int status = lua_pcall(L, 1, 1, 0);
    _in_call = false;
    view.context = nullptr;
    ++generation;
    if (status == 0) {
        result.integer = to_integer(L, -1, result.code);
        lua_pop(L, 1);
    }
    return finish_call(status, status == 0 ? 1 : 0);
}

detail::call_result state_engine::finish_call(int status, std::size_t decided) {
    lua_State* L = _lua;
    const interrupt_reason raised = _raised;
    _raised = interrupt_reason::none;
    _reason.store(0, std::memory_order_release);
    lua_sethook(L, nullptr, 0, 0);
    if (status == 0) {
        return {decided, detail::failure::none, {}};
    }
    detail::call_result result{decided, detail::failure::error, {}};
    const char* message = lua_tostring(L, -1);
    result.message = message != nullptr ? message : fmt::format("(error object is a {} value)", luaL_typename(L, -1));
    lua_pop(L, 1);
    if (status == LUA_ERRMEM || raised == interrupt_reason::memory) {
        result.kind = detail::failure::memory;
        if (status == LUA_ERRMEM) {
            result.message = fmt::format("{}: memory limit of {} bytes exceeded ({})", _chunk_name,
                                         settings.memory_limit, result.message);
        }
        lua_gc(L, LUA_GCCOLLECT, 0); // what the failed call left becomes garbage: give it back now
    } else if (raised == interrupt_reason::budget) {
        result.kind = detail::failure::budget;
    }
    return result;
}

} // namespace sluice::lua::SLUICE_LUA_NS

// ---- creating an engine ----

namespace sluice::lua::SLUICE_LUA_NS {
namespace {

detail::engine* create(const detail::engine_settings& settings, std::string& why) {
    auto engine = std::make_unique<state_engine>(settings);
    why = engine->start();
    return why.empty() ? engine.release() : nullptr;
}

} // namespace
} // namespace sluice::lua::SLUICE_LUA_NS

#ifdef SLUICE_LUAJIT
/// The plugin's one exported symbol (luajit_loader.cpp finds it with dlsym).
extern "C" __attribute__((visibility("default"))) sluice::lua::detail::engine*
sluice_luajit_create_engine(const sluice::lua::detail::engine_settings& settings, std::string& why) {
    return sluice::lua::luajit::create(settings, why);
}
#else
sluice::lua::detail::engine* sluice::lua::detail::create_lua54_engine(const engine_settings& settings,
                                                                      std::string& why) {
    return sluice::lua::lua54::create(settings, why);
}
#endif
