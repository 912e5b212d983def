// Inside one Lua engine: the state and what the binding files (lua_engine.cpp, lua_packet.cpp, lua_maps.cpp,
// lua_helpers.cpp) share. Compiled twice (engine.hpp): SLUICE_LUA_NS names the copy (lua54 or luajit) so that the
// two never meet under one name, and SLUICE_LUAJIT selects LuaJIT's API where it differs from Lua 5.4's.
#pragma once

#include <linux/bpf.h>
#include <lua.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "lua/engine.hpp"

#ifndef SLUICE_LUA_NS
#error "SLUICE_LUA_NS must name the engine (lua54 or luajit)"
#endif

#ifdef SLUICE_LUAJIT
#define SLUICE_ENGINE_NAME "luajit"
#else
#define SLUICE_ENGINE_NAME "lua5.4"
#endif

namespace sluice::lua::SLUICE_LUA_NS {

/// The packet view both engines hand xdp(): Lua 5.4 wraps it in a userdata, LuaJIT reads it through the FFI (its
/// cdef in lua_packet.cpp must match: a static_assert there checks the offsets).
struct packet_view {
    ebpf::xdp_context* context{}; ///< nullptr outside a call into Lua: the view is invalid then
    std::uint8_t* data{};         ///< context->data, refreshed after adjust_head
    std::uint32_t length{};       ///< data_end - data, refreshed after every adjust
    std::uint32_t padding{};
};

/// Which helper the packet and helper bindings call (engine::helpers).
enum helper_slot : std::size_t {
    slot_adjust_head,
    slot_adjust_tail,
    slot_adjust_meta,
    slot_redirect,
    slot_redirect_map,
    slot_ktime,
    slot_prandom,
    slot_trace_printk,
    slot_count,
};

/// The userdata types of an engine. The engine keeps their metatables by registry reference (setting one is then an
/// array access, where luaL_setmetatable interns the type's name on every call); checking a type reads the
/// userdata's tag (userdata_tag).
enum type_slot : std::size_t { type_packet, type_map, type_record, type_count };

class state_engine;

/// The first member of every userdata sluice makes in a state (the packet, map handles, records): what it is and
/// whose. Checking an argument's type is one read of this tag, where comparing metatables took three calls into Lua
/// per argument (getmetatable, rawgeti, rawequal), and the engine comes with it (no lua_getallocf). The tag cannot be
/// forged: scripts cannot make userdata (the sandbox has no newproxy, io, debug or package, and sluice hands scripts
/// no userdata of Lua's libraries, and no light userdata at all), and every userdata sluice makes starts with its
/// tag. The magic number is a
/// second guard, should a foreign userdata ever reach a binding.
struct userdata_tag {
    static constexpr std::uint32_t expected_magic = 0x51c7a9e5U;
    std::uint32_t magic{};
    std::uint32_t slot{};   ///< type_slot
    state_engine* engine{}; ///< the engine of the state that made it
};

/// Why the debug hook is armed.
enum class interrupt_reason : int { none, budget, memory };

/// Lua instructions a call runs after the watchdog found its budget spent before the hook stops it (arm() says why):
/// about a millisecond of Lua 5.4 on this class of machine, and 1,000 times what the example filters run per packet.
inline constexpr int budget_grace_instructions = 200'000;

class state_engine final : public detail::engine {
public:
    explicit state_engine(const detail::engine_settings& settings);
    ~state_engine() override;

    /// Creates the Lua state, the sandbox and the driver. Empty on success.
    std::string start();

    std::string load(std::string_view source, const std::string& chunk_name) override;
    detail::call_result run(std::span<xdp::frame* const> frames, std::size_t first, detail::packet_result* results,
                            ebpf::redirect_decision* decisions) override;
    detail::call_result call(std::string_view function, ebpf::xdp_context& packet,
                             detail::packet_result& result) override;
    void interrupt(std::uint64_t sequence) override;
    std::size_t memory_in_use() const override { return _used; }
    std::string xdp_location() const override { return _xdp_location; }

    // ---- for the bindings ----
    detail::engine_settings settings;
    packet_view view;
    std::array<ebpf::helper_function, slot_count> helpers{};
    std::uint64_t generation{1}; ///< bumped after every call into Lua: map value views from before are invalid
    std::array<int, type_count> metatables{}; ///< registry references of each type's metatable

    /// Calls helper `slot` with the worker's execution state as call_context::user.
    std::uint64_t call_helper(helper_slot slot, std::uint64_t r1, std::uint64_t r2 = 0, std::uint64_t r3 = 0);
    /// Refreshes view.data and view.length from the context (after adjust_head/tail/meta).
    void refresh_view();
    /// step(): records the verdict of the packet running and moves the view to the next one.
    void step(detail::packet_result verdict);
    /// The location "chunk:line" of the innermost frame of the script's own code, or "".
    std::string script_location(lua_State* L) const;

    static state_engine& of(lua_State* L);

private:
    static void* allocate(void* opaque, void* block, std::size_t old_size, std::size_t new_size);
    static void hook(lua_State* L, lua_Debug* debug);
    /// The hook's decision: true with the error message pushed when the call must stop.
    bool hook_message(lua_State* L);
    detail::call_result finish_call(int status, std::size_t decided);
    void arm(interrupt_reason reason);

    lua_State* _lua{};
    std::size_t _used{};
    std::size_t _hard_limit{};
    std::string _chunk_name;   ///< short_src of the script's chunk
    std::string _xdp_location;
    int _driver_ref{};         ///< registry: the batch driver function
    int _environment_ref{};    ///< registry: the script's environment
    int _packet_ref{};         ///< registry: the object scripts get as `pkt`
    bool _in_call{};
    std::atomic<int> _reason{0};               ///< interrupt_reason the hook acts on
    interrupt_reason _raised{interrupt_reason::none}; ///< what the hook raised an error for, in the call ending
    std::atomic<std::uint64_t> _interrupt_for{}; ///< the progress value the budget interrupt is for

    // The batch running (step()).
    std::span<xdp::frame* const> _frames;
    std::size_t _current{};
    detail::packet_result* _results{};
    ebpf::redirect_decision* _decisions{};
};

// ---- what each binding file registers ----

/// lua_packet.cpp: the packet object (Lua 5.4: a userdata with methods; LuaJIT: FFI metatype, built by Lua code run
/// in the trusted setup) and its parsers. Pushes the object scripts get as `pkt`.
void push_packet_object(lua_State* L, state_engine& engine);
/// lua_maps.cpp: `maps` (open, declare) and the map and record types, into the table on top of the stack.
void register_maps(lua_State* L);
/// lua_helpers.cpp: redirect, redirect_map, ktime_ns, prandom_u32, processor_id, print, into the table on top.
void register_helpers(lua_State* L);
/// lua_maps.cpp: the map of the handle at `index`, or an error naming what was expected.
ebpf::map* check_map_target(lua_State* L, int index);
#ifdef SLUICE_LUAJIT
/// lua_maps.cpp, for luajit_maps.cpp: handle -> the map (light userdata), the key and the value layouts as tables
/// {size = N, {name =, type =, offset =, size =}, ...}.
int describe_map(lua_State* L);
/// luajit_maps.cpp: replaces the environment's maps.open/declare and the helpers by FFI versions that compile into
/// LuaJIT's traces.
void use_ffi_maps(lua_State* L, state_engine& engine, int environment_ref);
#endif


// ---- Lua 5.4 / LuaJIT differences ----
//
// Lua 5.4 (a C library) raises errors with longjmp, which skips C++ destructors: a binding raises an error only when
// no C++ object that owns memory is alive in its frame (build the message in an inner scope, push it, then error).

/// The value at `index` as an integer when it is one (Lua 5.4 integers, LuaJIT numbers without a fraction).
bool to_integer(lua_State* L, int index, std::int64_t& out);
/// Pushes an unsigned value: an integer in Lua 5.4 (values over 2^63 wrap, as Lua's integers do), a number in
/// LuaJIT (exact below 2^53).
void push_unsigned(lua_State* L, std::uint64_t value);
/// luaL_checkinteger that accepts what to_integer() accepts.
std::int64_t check_integer(lua_State* L, int index);
void* new_userdata(lua_State* L, std::size_t size);
/// The tag a userdata of type `slot` made for `engine` starts with.
inline userdata_tag make_tag(type_slot slot, state_engine& engine) {
    return userdata_tag{userdata_tag::expected_magic, static_cast<std::uint32_t>(slot), &engine};
}
/// Registers the metatable on top of the stack as `slot`'s (it stays on the stack).
void remember_metatable(lua_State* L, type_slot slot);
/// Gives the value on top of the stack `slot`'s metatable.
void set_metatable(lua_State* L, type_slot slot, const state_engine& engine);
/// The userdata at `index` when it is of type `slot` (it starts with a userdata_tag), else nullptr.
void* test_userdata(lua_State* L, int index, type_slot slot);
/// As test_userdata, or an error naming what was expected.
void* check_userdata(lua_State* L, int index, type_slot slot);
/// The length of the table at `index` without metamethods (lua_rawlen / lua_objlen).
std::size_t table_length(lua_State* L, int index);

} // namespace sluice::lua::SLUICE_LUA_NS
