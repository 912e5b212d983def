// The kernel as oracle: one XDP program loaded into the kernel (libbpf) and into sluice, run on the same packets with
// the same map contents, and compared.
//
// Contract:
//  - oracle_pair::from_object() opens and loads an ELF object on both sides (bpf_object__open_file/load; sluice's
//    object_spec::open_file/load) and pairs the maps by name; from_generated() loads a generated program
//    (support/program_generator.hpp) with maps created on both sides. Both fail with a message saying which side
//    refused and why (the kernel's verifier log included).
//  - compare() runs one packet through BPF_PROG_TEST_RUN (data_in = metadata + packet, ctx_in = struct xdp_md with
//    data = the metadata's length, ingress_ifindex, rx_queue_index) and through sluice: its interpreter in checked
//    mode, or its JIT (object_options::engine), with the packet in a zeroed 4096-byte frame as test_run lays it out
//    (256 bytes of headroom, the 320-byte reserve; larger packets in a jumbo frame), then compares the return code
//    (all 32 bits the kernel reports), the output packet and its length, the metadata, and every comparable map. The
//    result says "" when everything agreed, or gives the packet in hex, both results, and the differences.
//  - sluice's worker state stands in for the kernel's environment: cpu 0, the MTUs of this network namespace's
//    interfaces (bpf_check_mtu), no other interface.
//  - Maps are compared as sets of (key, value) in syscall layout (per-CPU values: one slot per possible cpu; sluice's
//    maps are created with as many slots). Queues and stacks are compared by draining them and pushing the same
//    elements back; ring buffers by consuming their records on both sides. prog_array maps hold program ids that
//    differ by nature; they are left out. A map may be marked keys-only or skipped for a deliberate difference
//    (time-dependent values), with the reason kept for messages.
//  - The calling thread is pinned to cpu 0 while a pair exists, so the kernel's per-cpu choices (per-CPU map slots,
//    LRU lists) are made on the cpu sluice's worker 0 stands for.
//  - SLUICE_REQUIRE_KERNEL_ORACLE() skips a test, saying why, when BPF_PROG_TEST_RUN is not available.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ebpf/maps/kernel_oracle.hpp"
#include "packets.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/jit.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"
#include "sluice/xdp/frame.hpp"
#include "support/program_generator.hpp"
#include "xdp/checked_memory.hpp"

namespace sluice::oracle {

/// Why the kernel cannot be the oracle here (empty when it can): probed once with a test run on the loopback device.
std::string kernel_unavailable();

#define SLUICE_REQUIRE_KERNEL_ORACLE()                                                                                 \
    do {                                                                                                               \
        if (const std::string reason = ::sluice::oracle::kernel_unavailable(); !reason.empty()) {                      \
            GTEST_SKIP() << reason;                                                                                    \
        }                                                                                                              \
    } while (false)

inline constexpr std::uint32_t loopback_ifindex = 1; ///< test_run needs a real device for ingress_ifindex

/// What one side made of one packet.
struct run_result {
    std::string error; ///< the side could not run the packet (test_run's errno, a checked-mode fault)
    std::uint32_t retval{};
    std::vector<std::uint8_t> packet;
    std::vector<std::uint8_t> meta;

    bool operator==(const run_result&) const = default;
};

struct map_pair {
    std::string name;
    ebpf::map_definition definition;
    int kernel_fd{-1};
    ebpf::map* sluice{};
    enum class comparison : std::uint8_t { full, keys_only, skip } compare{comparison::full};
    /// Compare only these bytes of each value (offset, length): the rest holds what differs by design (a timestamp).
    std::optional<std::pair<std::size_t, std::size_t>> value_bytes;
    std::string why_not_full;   ///< the deliberate difference when compare != full or value_bytes is set
    ring_buffer* kernel_ring{}; ///< ringbuf: the kernel-side consumer
    std::vector<std::vector<std::uint8_t>> kernel_records; ///< ringbuf: what the consumer received, not yet compared
};

/// What runs the program on sluice's side.
enum class sluice_engine : std::uint8_t {
    interpreter, ///< the reference, in checked mode: a sluice bug shows as a fault, not a crash
    jit,         ///< x86-64 native code (ebpf/jit.hpp), unchecked: the kernel's verifier accepted the program
};

std::string_view to_string(sluice_engine engine);

/// How to load an object on both sides.
struct object_options {
    std::vector<std::string> rodata; ///< `NAME=VALUE` for `const volatile` globals, as `sluice run --set`
    sluice_engine engine{sluice_engine::interpreter};
};

/// Counts of what was compared, for the report.
struct oracle_counts {
    std::uint64_t packets{};
    std::uint64_t map_comparisons{};
};

class oracle_pair {
public:
    static expected<std::unique_ptr<oracle_pair>> from_object(const std::string& path, const std::string& program,
                                                              const object_options& options = {});
    static expected<std::unique_ptr<oracle_pair>> from_generated(const testing::generated_program& program,
                                                                 sluice_engine engine = sluice_engine::interpreter);
    ~oracle_pair();
    oracle_pair(const oracle_pair&) = delete;
    oracle_pair& operator=(const oracle_pair&) = delete;

    std::vector<map_pair>& maps() { return _maps; }
    map_pair* find_map(std::string_view name);

    /// Updates both sides' map; "" when both returned the same code (which may be an error), else both codes.
    std::string update_both(std::string_view map, std::span<const std::uint8_t> key,
                            std::span<const std::uint8_t> value, std::uint64_t flags = 0);
    /// Fills every array and hash map of the pair with `count` random entries (same on both sides).
    std::string fill_randomly(std::uint64_t seed, std::size_t count);

    run_result run_kernel(const test_packet& packet, std::uint32_t ifindex = loopback_ifindex,
                          std::uint32_t rx_queue = 0);
    run_result run_sluice(const test_packet& packet, std::uint32_t ifindex = loopback_ifindex,
                          std::uint32_t rx_queue = 0);

    /// Both sides, then maps: "" when all agree, else a report naming the packet, both results and the differences.
    std::string compare(const test_packet& packet, bool compare_maps = true);
    /// Every comparable map: "" when equal, else the differences.
    std::string compare_maps();

    const oracle_counts& counts() const { return _counts; }
    /// The kernel's program after its verifier rewrote it (BPF_OBJ_GET_INFO_BY_FD xlated), disassembled.
    std::string kernel_program_text() const;
    /// The sluice side's worker state (routes, MTUs, ...), to set what the kernel's environment has.
    ebpf::execution_state& sluice_state() { return _state; }

private:
    oracle_pair();
    expected<void> prepare_sluice(std::span<const ebpf::instruction> code, sluice_engine engine);

    struct kernel_side;
    std::unique_ptr<ebpf::testing::pin_to_cpu0> _pinned; ///< first in, last out: the whole pair's life on cpu 0
    std::unique_ptr<kernel_side> _kernel;
    std::optional<ebpf::loaded_object> _loaded;
    std::optional<testing::instantiated_program> _instantiated;
    std::span<const ebpf::instruction> _code;
    ebpf::program_registry _registry;
    ebpf::execution_state _state;
    std::optional<ebpf::interpreter> _machine;
    std::vector<ebpf::jit_program> _compiled; ///< JIT: the program first, then the object's other programs
    std::optional<ebpf::jit_runner> _jit;
    xdp::checked_memory _memory; ///< checked mode's regions: the frame, the context, array maps and global data
    xdp::frame_pool _pool{1};
    xdp::frame_pool _jumbo_pool{1, xdp::jumbo_frame_size}; ///< packets beyond 3520 bytes (no frags in sluice)
    std::vector<map_pair> _maps;
    oracle_counts _counts;
};

/// For a generated program whose run on packets.back() differs (after packets before it, maps filled by
/// fill_randomly(fill_seed, fill_count)): programs probing the value of each register before each instruction (64
/// bits, as two returns of 32) run the same way in both, and the first instruction before which a register differs
/// is named. A diagnosis for failure messages, or why there is none.
std::string locate_divergence(const testing::generated_program& program, std::span<const test_packet> packets,
                              std::uint64_t fill_seed, std::size_t fill_count);

/// (ifindex, MTU) of every interface of this network namespace, from /sys/class/net.
std::vector<std::pair<std::uint32_t, std::uint32_t>> interface_mtus();

/// The kernel's number of possible cpus: slots of per-CPU values in syscalls.
unsigned possible_cpus();

} // namespace sluice::oracle
