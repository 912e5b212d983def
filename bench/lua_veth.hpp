// sluice_lua_bench's veth section: the DDoS filter on the receiving end of a veth pair, as the kernel runs it (XDP in
// the driver, an nftables ruleset) and as sluice runs it over AF_XDP (the eBPF JIT, the interpreter, the Lua twin on
// Lua 5.4 and LuaJIT): the comparison the Lunatik authors made between iptables, eBPF, NFLua and XDPLua, in packets
// per second on the same veth with the same sender.
//
// Contract:
// - One rig (bench/veth_bench.hpp), one sender for every variant, started once and running throughout: 64-byte UDP
//   frames whose source is rewritten per frame by the sender's program — `blocked_percent` % from the blocklisted
//   prefix (examples/ddos_blocklist.json, read from the eBPF object's blocked_v4 after --map), the rest from
//   `sources` addresses of 198.18.0.0/15 (RFC 2544's benchmarking range), each over its rate limit.
// - Variants run one at a time on the receiving end, each set up, given `warmup` seconds, measured for `seconds`,
//   then removed (XDP detached, nftables table deleted, engine stopped) before the next, also when it fails. A
//   variant that cannot run here is a row with the reason instead of numbers.
// - Per variant: packets processed per second (what the filter decided on, from its own counters), the sender's
//   offered rate in the same window, the share dropped, the receiving thread's CPU time per packet (sluice's worker;
//   the kernel's variants have no thread of their own), the sender thread's CPU share (on veth the receiving end's
//   softirq work mostly runs in the sender's context) and their sum per packet; format_veth_table() marks what
//   bounded each rate (the sender, sluice's worker, the port) from those numbers, not from assumptions.
// - Variants are pinned alike in every round when the machine has two CPUs or more (veth_settings::pin): the sender
//   on the last, sluice's worker on the first.
// - `interrupted` (set from a signal handler) ends the current window early and skips the rest; cleanup still runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sluice::bench {

struct veth_settings {
    double seconds{3};                 ///< measuring window per variant
    double warmup{0.5};                ///< after set-up, before the window (rings filled, traces compiled)
    std::uint32_t size{64};            ///< frame bytes
    std::uint32_t blocked_percent{80}; ///< frames from the blocklisted prefix
    std::uint32_t sources{1024};       ///< other sources (rounded up to a power of two)
    std::uint64_t rate_pps{10};        ///< the filter's per-source rate (ddos_filter's rate_pps knob)
    std::uint64_t burst{10};           ///< and burst
    unsigned rounds{1};                ///< every variant in turn, this many times; the best round of each counts
    std::string only;                  ///< run only the variants whose name contains this (empty: all)
    /// The sender on the last CPU, sluice's worker on the first (with at least two): each variant's receiving work
    /// lands on the same CPUs every round (the kernel's filters on the sender's, in its softirq).
    bool pin{true};
};

struct veth_row {
    std::string name;
    bool ran{};                       ///< false: `note` says why there are no numbers
    double mpps{};                    ///< processed by the filter
    double offered_mpps{};            ///< sent by the sender in the same window
    double dropped_share{};           ///< of the processed packets
    std::optional<double> cpu_ns;     ///< receiving thread's CPU per processed packet (sluice's worker)
    std::optional<double> sender_cpu; ///< the sender thread's CPU seconds per second of the window
    /// the sender thread's CPU per offered packet + the receiving thread's per processed packet: the CPU this path
    /// costs the machine per packet, generation included (the same for every variant)
    std::optional<double> total_cpu_ns;
    std::string note;
};

struct veth_report {
    std::string skipped; ///< why the whole section did not run; empty when it ran
    veth_settings settings;
    std::string traffic; ///< what the sender sent, in words
    std::vector<veth_row> rows;

    const veth_row* find(std::string_view name) const;
};

/// Variant names, for the ratios.
inline constexpr const char* veth_kernel_xdp = "kernel XDP ddos_filter.o";
inline constexpr const char* veth_nft_ingress = "kernel nftables ingress";
inline constexpr const char* veth_nft_prerouting = "kernel nftables prerouting";
inline constexpr const char* veth_port_limit = "sluice xdp_pass.o (JIT)";
inline constexpr const char* veth_touch_limit = "sluice xdp_parse_count.o (JIT)";
inline constexpr const char* veth_jit = "sluice eBPF JIT";
inline constexpr const char* veth_interpreter = "sluice eBPF interpreter";
inline constexpr const char* veth_lua54 = "sluice lua5.4";
inline constexpr const char* veth_luajit = "sluice luajit";

/// Runs the section: `examples_dir` holds ddos_filter.o and xdp_pass.o, `traffic_object` bench's veth_traffic.o,
/// `script` examples/ddos_filter.lua, `blocklist` examples/ddos_blocklist.json.
veth_report run_veth_section(const veth_settings& settings, const std::string& examples_dir,
                             const std::string& traffic_object, const std::string& script, const std::string& blocklist,
                             const std::atomic<bool>& interrupted);

/// The table for people (one row per variant), with footnotes on what bounds the numbers.
std::string format_veth_table(const veth_report& report);

nlohmann::json veth_json(const veth_report& report);

} // namespace sluice::bench
