// The line between script_program (engine-neutral: accounting, logging, watchdog, reload, maps it owns) and a Lua
// engine (one Lua state: sandbox, packet view, maps and helpers bindings, the batch driver).
//
// The same engine sources (lua_*.cpp) are compiled twice: against Lua 5.4 into sluice_lua, and against LuaJIT into
// the plugin libsluice_luajit.so (luajit_loader.cpp says why LuaJIT must live in a plugin). The plugin links nothing
// of sluice: whatever an engine needs beyond inline code of the public headers (creating maps, get_next_key, the
// helper table) reaches it through `host`, whose virtual functions live in the main binary.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::lua::detail {

/// Why a call into Lua stopped before deciding every packet.
enum class failure : std::uint8_t {
    none,
    error,  ///< a runtime error (the packet aborted, the batch goes on)
    memory, ///< the memory limit (the packet aborted, the batch goes on)
    budget, ///< the watchdog stopped the call (the packet and the rest of the batch aborted)
};

/// What xdp() returned for one packet.
struct packet_result {
    std::int64_t code{}; ///< the value, when `integer`
    bool integer{};      ///< false: not an integer (nil, a string, a fraction, ...): no action
};

struct call_result {
    std::size_t decided{}; ///< packets with a result, from the first one given
    failure kind{failure::none};
    std::string message; ///< the script's message, with its chunk and line where Lua knows them
};

/// What an engine needs from sluice (see the header comment).
class host {
public:
    /// A map of the eBPF object, or one the script declared before; nullptr with `why` set when none.
    virtual ebpf::map* open_map(std::string_view name, std::string& why) = 0;
    /// Creates the map (or returns the one already declared under that name with the same definition).
    virtual ebpf::map* declare_map(const ebpf::map_definition& definition, std::string& why) = 0;
    /// BPF_MAP_GET_NEXT_KEY on `target`.
    virtual long get_next_key(ebpf::map& target, const void* key, void* next_key) = 0;
    /// The XDP helper `id` (kernel id), or nullptr.
    virtual ebpf::helper_function helper(std::uint32_t id) = 0;

protected:
    ~host() = default;
};

struct engine_settings {
    host* services{};
    ebpf::execution_state* state{};
    std::size_t memory_limit{};
    const std::atomic<std::uint64_t>* progress{}; ///< the worker's progress counter (odd while in Lua)
    std::vector<std::pair<std::string, std::string>> config;
};

class engine {
public:
    virtual ~engine() = default;

    /// Compiles `source` as text (no bytecode), runs its top level in the sandbox. Empty on success, else why.
    virtual std::string load(std::string_view source, const std::string& chunk_name) = 0;
    /// Runs xdp() over frames[first..] in one call into Lua, writing results[i] and decisions[i] (the execution
    /// state's redirect decision after frame i) for each frame decided; stops at the first failure, which is the
    /// frame at first + decided.
    virtual call_result run(std::span<xdp::frame* const> frames, std::size_t first, packet_result* results,
                            ebpf::redirect_decision* decisions) = 0;
    /// Calls the global function `function` with a view of `packet` (chaining from eBPF).
    virtual call_result call(std::string_view function, ebpf::xdp_context& packet, packet_result& result) = 0;
    /// From the watchdog thread: the call into Lua that made `progress` equal to `sequence` must stop at its next
    /// instruction. A later call is left alone (the hook checks the sequence).
    virtual void interrupt(std::uint64_t sequence) = 0;
    virtual std::size_t memory_in_use() const = 0;
    /// "chunk:line" where xdp() is defined, for messages about its return values; empty when unknown.
    virtual std::string xdp_location() const = 0;
};

/// The plugin's entry point (extern "C", so that dlsym finds it by this name).
using create_engine_function = engine* (*)(const engine_settings& settings, std::string& why);
inline constexpr const char* luajit_entry_point = "sluice_luajit_create_engine";

/// Lua 5.4, linked into sluice_lua.
engine* create_lua54_engine(const engine_settings& settings, std::string& why);
/// LuaJIT's factory from the plugin (luajit_loader.cpp), loaded once; nullptr with `why` when it cannot be loaded.
create_engine_function luajit_engine_factory(std::string& why);

} // namespace sluice::lua::detail
