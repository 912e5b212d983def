// Lua on the XDP hook: a script as a second program type beside eBPF (DESIGN.md, "lua/").
//
// A script defines `function xdp(pkt)` and returns XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT or XDP_ABORTED (globals
// of the script's environment, with the kernel's values). script_program runs it as xdp::batch_program, exactly as
// the eBPF executor runs a program: run_batch over frames, redirect decisions, port errors, stats with full
// accounting (batch_program.hpp).
//
// Contract:
// - Engines: Lua 5.4 (the default, fully sandboxed) and LuaJIT (engine::luajit, for speed). LuaJIT scripts are
//   trusted code: compiled LuaJIT traces never call debug hooks, so the watchdog cannot interrupt a runaway loop
//   that the JIT compiled (it can while LuaJIT interprets). Both get the same restricted environment (below).
//   LuaJIT lives in a plugin (libsluice_luajit.so) loaded with dlopen: see src/lua/luajit_loader.cpp for why.
// - One call into Lua per batch: a driver chunk that sluice provides loops over the batch in Lua and calls xdp() per
//   packet. Packets are never copied into Lua strings: Lua 5.4 gets a reusable view (a table of bound, bounds-checked
//   accessors), LuaJIT an FFI view of a context struct sluice owns. The view is invalid once run_batch() returns.
// - Packet API (both engines): pkt:len(), pkt:u8(off), pkt:be16(off), pkt:be32(off) (nil beyond the packet),
//   pkt:set_u8/set_be16/set_be32(off, v) (an error beyond it), pkt:ifindex(), pkt:rx_queue(), pkt:meta_len(),
//   pkt:meta_be32(off)/set_meta_be32(off, v); parsers that return nil for a cut header:
//       pkt:eth()          -> ethertype (after up to two VLAN tags), l3 offset, outer VLAN id or nil
//       pkt:vlan(off)      -> VLAN id, inner ethertype, next offset
//       pkt:ipv4(off)      -> protocol, l4 offset, source, destination (u32, host order), total length, ttl
//       pkt:ipv6(off)      -> next header (after hop-by-hop, routing, fragment and destination options, at most four),
//                             l4 offset, payload length, hop limit
//       pkt:tcp(off)       -> source port, destination port, flags, payload offset
//       pkt:udp(off)       -> source port, destination port, length, payload offset
//       pkt:icmp(off)      -> type, code, next offset (ICMP and ICMPv6)
//   pkt:adjust_head(d), pkt:adjust_tail(d), pkt:adjust_meta(d) call the kernel-exact XDP helpers (0 or -errno).
// - Maps: `maps.open(name [, layout])` opens a map of the eBPF object given in options (same maps, same memory), or
//   one declared in the program's script_maps registry (by this script, an earlier version of it across reloads, or
//   another worker's state of the same run); `maps.declare{name=, type=, key=, value=, max_entries=, flags=}`
//   declares one: the first declaration of a name creates the map, a later one with the same definition gets it,
//   another definition is an error naming both (script_maps.hpp). Programs given the same options::maps share their
//   declared maps (the workers of one run); a program given none makes its own registry. Layouts are field lists
//   such as "u32 prefixlen, be32 address" (types u8 u16 u32 u64 i8 i16 i32 i64 little-endian as the eBPF side stores
//   them, be16 be32 network order, u8[N] bytes); names beginning with _sluice are reserved.
//   Map objects are tables of their methods (bound to the map). m:key() / m:value() make records (userdata with
//   those fields; in LuaJIT, FFI cdata of a struct made from the layout, so that map operations and field accesses
//   compile into traces); m:lookup(k) returns a view of the value in the
//   map (writes go to the map, as an eBPF program's pointer does) or nil; m:get(k [, field]) an integer;
//   m:add(k, field, delta [, field, delta ...]) adds in place (false when k is absent);
//   m:update(k, v [, flags]), m:delete(k) return 0 or -errno (BPF_ANY/BPF_NOEXIST/BPF_EXIST, the kernel's errnos);
//   m:next_key(k) and `for k, v in m:pairs()` iterate as get_next_key. A key or value of one integer field may be
//   given as a number. Per-CPU maps: the worker's slot, as bpf_map_lookup_elem.
// - Helpers: redirect(ifindex [, flags]), redirect_map(m, key [, flags]) (set the worker's redirect decision and
//   return the action, as the eBPF helpers), ktime_ns(), prandom_u32(), processor_id(), print(...) (to the worker's
//   trace sink, as bpf_trace_printk, rate-limited the same way), and the table `config` (options::config).
// - Isolation: one Lua state per program (so per worker). No io, os, debug, package/require, load/loadstring/dofile/
//   loadfile, string.dump, collectgarbage, ffi or jit; scripts are loaded as text only (no bytecode). A memory limit
//   per state (a counting allocator). A budget per batch that costs nothing per packet: the worker bumps a progress
//   counter around each call into Lua; a watchdog thread arms a debug hook only when a call has used more than
//   `budget` of the worker's CPU time, and the hook aborts the script if the call then runs 200,000 more Lua
//   instructions without returning (a thread's CPU clock also runs while a hypervisor holds its vCPU, so the clock
//   alone would abort batches the machine merely stalled; those end within the grace and are counted in
//   script_stats::budget_grace_calls).
// - Failures: a runtime error, a value that is no action, or the memory limit abort that packet (XDP_ABORTED, a
//   counted exception, one log line a second at most, with the script's line) and the batch goes on with the next
//   packet. An exhausted budget aborts the packet running and every packet of the batch not yet decided; the next
//   batch runs normally.
// - Chaining: attach_chaining() makes bpf_sluice_lua(ctx, "fn", len) in eBPF programs running with the script's
//   execution state call the script's global function fn(pkt); its verdict is the call's result (XDP_ABORTED on
//   failure, counted in chained_failures).
// - Hot reload: reload() compiles and starts the new script in the caller's thread (any thread), then the worker
//   swaps states at the start of its next batch: no packet is dropped or run twice, each batch runs wholly on one
//   version. Maps declared by name survive the reload when the new script declares them alike. script_group
//   reloads every worker's program of a run at once (each still swaps at its own batch boundary).
// - One program belongs to one worker (run_batch, chaining); reload() and stats() snapshots may come from others.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"
#include "sluice/lua/script_maps.hpp"
#include "sluice/xdp/batch_program.hpp"

namespace sluice::lua {

namespace detail {
struct engine_slot; ///< one Lua state of a script version (script_program.cpp)
}

enum class engine : std::uint8_t {
    lua54,  ///< PUC Lua 5.4: sandboxed, budget enforced everywhere
    luajit, ///< LuaJIT 2.1 with FFI: faster; trusted (compiled traces ignore the budget's hook)
};

std::string_view to_string(engine kind);
/// "lua", "lua5.4", "luajit"; empty when neither.
std::optional<engine> parse_engine(std::string_view text);

struct options {
    lua::engine engine{lua::engine::lua54};
    std::size_t memory_limit{64U << 20U};                  ///< bytes per Lua state
    /// CPU time per call into Lua (a batch, a chained call); LuaJIT gets at least 20 ms, since the calls that
    /// compile its traces spend milliseconds doing so. A script's top level (which may create maps) gets a second.
    std::chrono::microseconds budget{1000};
    const ebpf::loaded_object* object{};                   ///< maps.open() finds its maps by name
    unsigned cpus{1};                                      ///< per-CPU slots of maps the script declares (workers)
    /// The registry of declared maps, shared by the programs of one run (its cpus() replaces `cpus`); nullptr: the
    /// program makes its own, with `cpus` slots.
    std::shared_ptr<script_maps> maps;
    std::vector<std::pair<std::string, std::string>> config; ///< the script's `config` table (numbers stay numbers)
    /// Where the rate-limited failure lines go; default: stderr, prefixed "sluice: ".
    std::function<void(std::string_view line)> log;
};

/// Failures beyond executor_stats: each is also one of executor_stats::exceptions.
struct script_stats {
    std::uint64_t errors{};           ///< runtime errors (the packet aborted)
    std::uint64_t bad_returns{};      ///< xdp() returned no action (the packet aborted; also unknown_return_codes)
    std::uint64_t budget_exceeded{};  ///< calls stopped by the watchdog
    std::uint64_t budget_aborted{};   ///< packets aborted by those stops (the running one and the undecided rest)
    /// Calls found past the budget that returned within the grace instructions: the machine stalled the worker, or
    /// the budget is tight for the script. Their packets were not aborted.
    std::uint64_t budget_grace_calls{};
    std::uint64_t memory_exceeded{};  ///< packets aborted by the memory limit
    std::uint64_t reloads{};          ///< script versions swapped in
    std::uint64_t chained_calls{};    ///< bpf_sluice_lua calls served
    std::uint64_t chained_failures{}; ///< of those, aborted (error, budget, memory, no such function, no action)
};

class script_program final : public xdp::batch_program {
public:
    /// Compiles `source` (named `chunk_name` in messages, e.g. "filter.lua") and runs its top level, which may open
    /// and declare maps. `state` is the worker's helper state (cpu, redirect decision, prandom, trace sink); it and
    /// options.object must outlive the program. Fails with the script's message (syntax errors with their line), or
    /// when state.cpu is not below the cpus of the script's maps (options::maps, else options::cpus).
    static expected<script_program> create(std::string_view source, std::string chunk_name, ebpf::execution_state& state,
                                           options settings = {});
    /// Reads `path` and create()s with its file name as the chunk name.
    static expected<script_program> load_file(const std::string& path, ebpf::execution_state& state,
                                              options settings = {});

    script_program(script_program&&) noexcept;
    script_program& operator=(script_program&&) noexcept;
    ~script_program() override;

    void run_batch(std::span<xdp::frame* const> frames, std::span<xdp::action> out) override;
    std::span<const ebpf::redirect_decision> redirect_decisions() const override;
    void count_port_errors(std::uint64_t packets, std::uint64_t bytes = 0) override;
    const xdp::executor_stats& stats() const override;
    const script_stats& script_statistics() const;

    /// Prepares `source` as the next version; the worker swaps it in at the start of its next run_batch(). Fails
    /// (and the running version stays) when the new script does not compile or its top level fails. Thread-safe.
    expected<void> reload(std::string_view source, std::string chunk_name);
    /// Versions swapped in so far (0: the first one still runs). Thread-safe.
    std::uint64_t version() const;

    /// reload() in two steps, so that script_group can compile every worker's next version before it stages any: a
    /// run's programs all move to a new version or none does. prepare_reload() compiles and runs the top level (any
    /// thread); stage() hands the version to the worker, which swaps it in at its next batch.
    class next_version {
    public:
        next_version(next_version&&) noexcept;
        next_version& operator=(next_version&&) noexcept;
        ~next_version();

    private:
        friend class script_program;
        explicit next_version(std::unique_ptr<detail::engine_slot> slot);
        std::unique_ptr<detail::engine_slot> _slot;
    };
    expected<next_version> prepare_reload(std::string_view source, std::string chunk_name);
    void stage(next_version next);

    /// Makes bpf_sluice_lua in eBPF programs that run with this program's execution state (the `state` given to
    /// create(): the worker's) call this script, so that helpers the script calls (redirect) act on the same packet
    /// state as the eBPF program's.
    void attach_chaining();

    /// A map the script declared (or opened), by name; nullptr when none. For the control plane and tests.
    ebpf::map* find_map(std::string_view name) const;
    /// The registry of declared maps (options::maps, or the program's own).
    const std::shared_ptr<script_maps>& declared_maps() const;
    /// Bytes the current Lua state holds.
    std::size_t memory_in_use() const;

private:
    struct implementation;
    explicit script_program(std::unique_ptr<implementation> self);

    std::unique_ptr<implementation> _self; ///< at a fixed address: the watchdog and the chaining hook point into it
};

} // namespace sluice::lua
