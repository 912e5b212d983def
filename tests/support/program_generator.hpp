// Random XDP programs that the kernel's verifier accepts, for differential tests (the kernel as oracle, the
// interpreter against the JIT) and for fuzzing the verifier.
//
// Contract:
//  - generate_program(seed) is deterministic: the same seed and options give the same program, on every machine.
//    generate_program(bytes) draws every choice from the bytes instead (a fuzzer steers it); once they run out, the
//    program is closed off, so any input gives a complete program.
//  - With unsafe_probability == 0, every program is one the kernel's verifier accepts when loaded as root
//    (BPF_PROG_TYPE_XDP, privileged): every path ends, every packet access follows a `data + N <= data_end` check,
//    every map value access follows a null check, every register and stack byte is written before it is read, no
//    pointer ever flows into a scalar, a map or r0, and only helpers sluice provides are called. With
//    unsafe_probability > 0, each of those safety measures is dropped with that probability (the program is then
//    likely refused): the verifier's fuzz target wants both kinds.
//  - Results depend only on the packet, the map contents and the context (ingress_ifindex, rx_queue_index), never on
//    time, randomness or the cpu, unless nondeterministic_helpers is set: the kernel and sluice must agree exactly.
//  - `code` is in the kernel's form: the context is `struct xdp_md` (ctx+0 data, ctx+4 data_end, ctx+8 data_meta, as
//    32-bit loads), map references are `lddw` with pseudo source map_idx (5) whose imm indexes `maps`. For the
//    kernel, kernel_form() turns them into map fds (pseudo source 1); for sluice, instantiate() creates the maps,
//    rewrites the context reads (ebpf::rewrite_context_accesses) and lowers the map references.
//
// What the programs contain: ALU64 and ALU32 arithmetic with every operation (division and modulo by registers that
// may be zero, signed division and modulo, shifts by immediates and by masked registers, negation, byte swaps,
// sign-extending moves), 64-bit immediates, JMP and JMP32 forward branches (if and if/else, `ja` and `gotol`), bounded
// loops (with `loops`; with `may_goto` some test may_goto at their head), packet and metadata reads and writes (fixed
// and variable offsets, sign-extending loads) after bounds checks, stack spills and fills, map lookups (with reads,
// writes and atomics on the value), updates with each flag and deletes on array, percpu_array, hash, percpu_hash,
// lru_hash and lru_percpu_hash maps, and the helpers bpf_xdp_adjust_head/tail/meta (followed by fresh bounds checks),
// bpf_xdp_load_bytes/store_bytes, bpf_xdp_get_buff_len, bpf_csum_diff, bpf_redirect and bpf_check_mtu (on ifindex 0, 1
// or one that does not exist: a caller comparing engines gives both the same interfaces). The program returns an XDP
// action computed from its data (now and then an unknown action code).
//
// Map key spaces are kept within max_entries, so LRU maps never evict and hash maps never fill: results do not
// depend on the kernel's per-cpu free lists. Per-CPU map values are written by the cpu the program runs on; a caller
// comparing with the kernel pins the test thread to cpu 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sluice/ebpf/isa.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/expected.hpp"

namespace sluice::testing {

struct generator_options {
    std::size_t max_instructions{200}; ///< upper bound on the program's length, in instruction slots
    bool packet_access{true};          ///< packet and metadata reads and writes after bounds checks
    bool maps{true};                   ///< maps and the map helpers
    bool helpers{true};                ///< helpers other than the map helpers
    bool loops{false};                 ///< bounded loops (backward jumps); the kernel verifies them since 5.3
    /// With `loops`: some loops also test may_goto at their head (can_loop), jumping to their exit once the budget is
    /// spent. Loops run at most 4 times, so the budget never runs out and results stay exact.
    bool may_goto{false};
    /// Fetching atomics (fetch_*, xchg, cmpxchg) on stack slots. Off by default: Linux 6.18's verifier does not carry
    /// precision from the fetched register back to the stack slot (backtrack_insn treats the atomic as a store), may
    /// then prune a path as equivalent to one with another value in the slot and remove code that runs, so the kernel
    /// stops following the instruction set (tests/oracle/kernel_differences_test.cpp shows it). On map values they
    /// stay on: the verifier knows nothing of a value's contents.
    bool stack_fetch_atomics{false};
    bool atomics{true};                   ///< atomic operations on stack slots and map values
    bool v4_instructions{true};           ///< sdiv/smod, movsx, ldsx, bswap, gotol (cpu v4, kernel 6.6+)
    bool nondeterministic_helpers{false}; ///< bpf_get_prandom_u32, bpf_ktime_get_ns: results differ run to run
    double unsafe_probability{0};         ///< chance of dropping each safety measure (0: always verifier-safe)
    /// With unsafe_probability: reads of stack slots never written. The kernel lets root's programs do that (they read
    /// whatever the stack held, which differs between engines); turn off to compare results.
    bool unsafe_stack_reads{true};
};

struct generated_program {
    std::vector<ebpf::instruction> code;    ///< kernel form, relocated: lddw pseudo_map_idx (src 5), imm = map index
    std::vector<ebpf::map_definition> maps; ///< by index
    std::uint64_t seed{};                   ///< what generated it (for fuzz bytes: a hash of them)
    bool unsafe{};                          ///< at least one safety measure was dropped
};

generated_program generate_program(std::uint64_t seed, const generator_options& options = {});
generated_program generate_program(std::span<const std::uint8_t> fuzz_bytes, const generator_options& options = {});

/// Maps created through the maps module and code ready for sluice's interpreter or JIT.
struct instantiated_program {
    std::vector<std::unique_ptr<ebpf::map>> maps; ///< by index, as generated_program::maps
    std::vector<ebpf::instruction> relocated;     ///< context rewritten, map references still pseudo_map_idx
    std::vector<ebpf::instruction> code;          ///< lowered: map references are map addresses
};

/// Creates the maps (`cpus` slots for per-CPU maps), rewrites the context reads and lowers the map references.
expected<instantiated_program> instantiate(const generated_program& program, unsigned cpus = 1);

/// The code as BPF_PROG_LOAD wants it: map references by fd (pseudo source 1), `map_fds[index]`.
std::vector<ebpf::instruction> kernel_form(std::span<const ebpf::instruction> code, std::span<const int> map_fds);

/// The program as text for failure messages: seed, maps, and every instruction disassembled with its index.
std::string describe(const generated_program& program);

} // namespace sluice::testing
