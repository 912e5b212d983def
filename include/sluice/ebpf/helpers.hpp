// The XDP helper set: the kernel's helpers, under the kernel's ids (<linux/bpf.h> BPF_FUNC_*), with the kernel's
// semantics and return codes.
//
// Contract:
//  - xdp_helper_table() holds every helper sluice provides to XDP programs, each under its kernel id and name
//    (kernel_helper_name). A program calling any other helper is refused at load time, naming the helper
//    (check_helper_calls, interpreter::create).
//  - Helpers find their per-worker state in call_context::user, which must point to an execution_state. Helpers
//    taking the context (bpf_xdp_adjust_head, ...) receive the program's ctx, which in sluice is an xdp_context*.
//  - Maps are passed as the address of the sluice::ebpf::map object (the loader lowers map references so).
//  - Return codes are the kernel's: 0 or a negative errno, XDP actions for the redirect helpers, BPF_FIB_LKUP_RET_*
//    and BPF_MTU_CHK_RET_* codes. Each implementation cites the kernel function whose semantics it copies.
//  - Nothing on the packet path allocates, throws or takes a lock shared between workers, except bpf_ringbuf_*
//    (the ring's producer lock, as in the kernel) and a trace_printk line handed to the trace sink.
//
// Environment sluice must stand in for, and how (each documented again where it is used):
//  - bpf_fib_lookup consults `routes` (user-given prefixes), not a kernel FIB. No route for the destination (or no
//    table at all) gives BPF_FIB_LKUP_RET_NOT_FWDED, as the kernel does when its FIB has no route. Forwarding is
//    taken as enabled on every interface; VLAN and table-id lookups (BPF_FIB_LOOKUP_TBID) use the one table.
//  - bpf_check_mtu and fib_lookup's MTU check use `mtus` (ifindex -> MTU), `default_mtu` for any other ifindex
//    (1500 by default; 0 makes unknown ifindexes -ENODEV). Device hard header length is Ethernet's 14.
//  - bpf_jiffies64 counts CLOCK_MONOTONIC_COARSE in ticks of 1/jiffies_hz seconds (the kernel's CONFIG_HZ is not
//    visible from user space; 1000 by default).
//  - bpf_redirect_map records the map, key and flags; the map's own lookup decides whether the key exists (devmap,
//    devmap_hash, cpumap and xskmap return their entry, which the data path reads: xdp/engine.hpp; any other map
//    behaves as the kernel's map would if the verifier let it through).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::ebpf {

class map;
class ringbuf_map;

/// The kernel's struct rnd_state and prandom_u32_state() (lib/random32.c): Tausworthe LFSR113.
struct prandom_state {
    std::array<std::uint32_t, 4> s{};

    /// prandom_seed_state(): the same seed gives the same sequence.
    void seed(std::uint64_t value);
    std::uint32_t next();
};

/// Where the last bpf_redirect / bpf_redirect_map pointed: the kernel's struct bpf_redirect_info.
struct redirect_decision {
    enum class kind : std::uint8_t {
        none,      ///< no redirect requested (or the last redirect_map lookup failed, which clears it)
        interface, ///< bpf_redirect(ifindex): ri->tgt_index, map_type UNSPEC
        map,       ///< bpf_redirect_map(map, key): ri->map_id / map_type / tgt_index / tgt_value
    };
    kind target{kind::none};
    std::uint32_t ifindex{}; ///< interface: the target ifindex
    map* target_map{};       ///< map: the map
    std::uint32_t key{};     ///< map: the key (ri->tgt_index)
    void* value{};           ///< map: the entry the lookup found (ri->tgt_value)
    std::uint64_t flags{};   ///< map: BPF_F_BROADCAST / BPF_F_EXCLUDE_INGRESS when broadcasting, else 0
};

/// One route for bpf_fib_lookup. Addresses in network byte order, as in struct bpf_fib_lookup.
struct route {
    enum class kind : std::uint8_t { unicast, blackhole, unreachable, prohibit };
    std::uint8_t family{};                 ///< AF_INET (2) or AF_INET6 (10)
    std::array<std::uint8_t, 16> prefix{}; ///< first 4 bytes for IPv4
    std::uint8_t prefix_length{};
    kind type{kind::unicast};
    std::uint32_t ifindex{}; ///< egress interface
    bool has_gateway{};
    std::array<std::uint8_t, 16> gateway{}; ///< next hop when has_gateway (params->ipv4_dst / ipv6_dst become it)
    bool has_neighbour{};                   ///< false: BPF_FIB_LKUP_RET_NO_NEIGH unless BPF_FIB_LOOKUP_SKIP_NEIGH
    std::array<std::uint8_t, 6> source_mac{};
    std::array<std::uint8_t, 6> destination_mac{};
    std::uint32_t mtu{};    ///< 0: the egress interface's MTU
    std::uint32_t metric{}; ///< params->rt_metric on success
};

/// Routes by longest prefix. Built by the control plane; read-only while programs run.
class route_table {
public:
    void add(const route& entry) { _routes.push_back(entry); }
    /// The longest matching unicast-or-not route for `address` (16 bytes; IPv4 uses the first 4), or nullptr.
    const route* lookup(std::uint8_t family, const std::uint8_t* address) const;
    bool empty() const { return _routes.empty(); }

private:
    std::vector<route> _routes;
};

/// prog_array handles (whatever the loader or embedder put in the slots) -> runnable programs, for bpf_tail_call.
/// Built before traffic flows; lookups are a binary search, no lock.
class program_registry {
public:
    void add(const void* handle, const runnable_program& program);
    const runnable_program* find(const void* handle) const;

private:
    std::vector<std::pair<const void*, runnable_program>> _programs; ///< sorted by handle
};

/// sluice's own kfunc, declared in C as
///     extern int bpf_sluice_lua(struct xdp_md *ctx, const char *fn, int fn_len) __ksym;
/// hands the packet to the Lua function named `fn` (lua/script_program.hpp) and returns its verdict. The loader turns
/// a call to it into a helper call with id sluice_lua_helper_id (beyond the kernel's ids, inside max_helper_id), so
/// every engine serves it as a helper. Prototype, for the verifier: r1 the context (PTR_TO_CTX), r2 read-only memory
/// of r3 bytes (the function's name, not NUL-terminated), r3 a constant size; returns an XDP action (scalar, 0..4)
/// and clobbers r1-r5 as a helper does.
inline constexpr std::uint32_t sluice_lua_helper_id = 511;
inline constexpr std::string_view sluice_lua_kfunc_name = "bpf_sluice_lua";
/// The callee bpf_sluice_lua runs: the script attached to the worker (execution_state::script).
using script_call = std::uint64_t (*)(void* opaque, xdp_context& packet, std::string_view function);

/// Receives each trace_printk line (without a trailing newline) and the worker it came from.
using trace_sink = void (*)(std::string_view line, unsigned cpu, void* opaque);

/// Writes "bpf_trace_printk: LINE" to stderr.
void trace_to_stderr(std::string_view line, unsigned cpu, void* opaque);

/// A reservation bpf_ringbuf_submit/discard must find its ring from: the kernel derives the ring from the record
/// header; maps.hpp offers no such call, so each worker remembers its outstanding reservations.
struct ringbuf_reservation {
    void* sample{};
    ringbuf_map* ring{};
};
inline constexpr std::size_t max_ringbuf_reservations = 64;

/// Per-worker state of the helpers: the embedder owns one per worker and passes it as call_context::user
/// (interpreter::run's `user` argument). Not shared between threads.
struct execution_state {
    explicit execution_state(unsigned worker = 0) : cpu(worker) { random.seed(default_seed(worker)); }

    /// The seed a worker's prandom state starts from, so that runs are reproducible.
    static constexpr std::uint64_t default_seed(unsigned worker) { return 0x5eed'0000'0000ULL + worker; }

    /// Call before each packet: the context the program runs on, and a clean redirect decision.
    void begin_packet(xdp_context& packet) {
        context = &packet;
        redirect = {};
    }

    xdp_context* context{};             ///< the packet being processed (informational: helpers use their ctx argument)
    unsigned cpu{};                     ///< bpf_get_smp_processor_id(), and the per-CPU slot of per-CPU maps
    redirect_decision redirect;         ///< what XDP_REDIRECT means for the current packet
    prandom_state random;               ///< bpf_get_prandom_u32()
    const program_registry* programs{}; ///< bpf_tail_call targets; nullptr: every tail call fails
    const route_table* routes{};        ///< bpf_fib_lookup; nullptr behaves as an empty table
    std::vector<std::pair<std::uint32_t, std::uint32_t>> mtus; ///< ifindex -> MTU for check_mtu and fib_lookup
    std::uint32_t default_mtu{1500};
    std::uint64_t jiffies_hz{1000};

    trace_sink trace{&trace_to_stderr};
    void* trace_opaque{};
    std::uint32_t trace_lines_per_second{100}; ///< beyond this, lines only count in trace_dropped (0: no limit)
    std::uint64_t trace_dropped{};
    std::uint64_t trace_window_start_ns{}; ///< rate limiter: start of the current one-second window
    std::uint32_t trace_window_lines{};

    std::array<ringbuf_reservation, max_ringbuf_reservations> reservations{};

    script_call script{};  ///< bpf_sluice_lua's callee (a Lua script of this worker); nullptr: it returns XDP_ABORTED
    void* script_opaque{}; ///< passed to `script`

    /// The MTU of `ifindex`: its entry in `mtus`, else default_mtu (0: no such interface).
    std::uint32_t mtu_of(std::uint32_t ifindex) const;
};

/// Every helper sluice provides to XDP programs, under the kernel's ids; provided_for() is "XDP programs".
const helper_table& xdp_helper_table();

/// Kernel limits and codes the helpers use, with their <linux/bpf.h> names.
inline constexpr std::uint32_t ethernet_header_length = 14;        ///< ETH_HLEN
inline constexpr std::uint32_t max_loops = 1U << 23;               ///< BPF_MAX_LOOPS
inline constexpr std::uint64_t redirect_broadcast = 1U << 3;       ///< BPF_F_BROADCAST
inline constexpr std::uint64_t redirect_exclude_ingress = 1U << 4; ///< BPF_F_EXCLUDE_INGRESS

namespace fib_result {
inline constexpr std::uint64_t success = 0;              ///< BPF_FIB_LKUP_RET_SUCCESS
inline constexpr std::uint64_t blackhole = 1;            ///< BPF_FIB_LKUP_RET_BLACKHOLE
inline constexpr std::uint64_t unreachable = 2;          ///< BPF_FIB_LKUP_RET_UNREACHABLE
inline constexpr std::uint64_t prohibit = 3;             ///< BPF_FIB_LKUP_RET_PROHIBIT
inline constexpr std::uint64_t not_forwarded = 4;        ///< BPF_FIB_LKUP_RET_NOT_FWDED
inline constexpr std::uint64_t forwarding_disabled = 5;  ///< BPF_FIB_LKUP_RET_FWD_DISABLED
inline constexpr std::uint64_t unsupported_lwt = 6;      ///< BPF_FIB_LKUP_RET_UNSUPP_LWT
inline constexpr std::uint64_t no_neighbour = 7;         ///< BPF_FIB_LKUP_RET_NO_NEIGH
inline constexpr std::uint64_t fragmentation_needed = 8; ///< BPF_FIB_LKUP_RET_FRAG_NEEDED
inline constexpr std::uint64_t no_source_address = 9;    ///< BPF_FIB_LKUP_RET_NO_SRC_ADDR
} // namespace fib_result

/// The kernel's 16-bit one's-complement fold of a 32-bit partial sum, negated (csum_fold), for tests and programs.
constexpr std::uint16_t checksum_fold(std::uint32_t sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<std::uint16_t>(~sum);
}

} // namespace sluice::ebpf
