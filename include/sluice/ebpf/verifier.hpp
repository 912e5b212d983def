// The verifier: a static proof, before a program runs, that it cannot touch memory it does not own, cannot loop
// forever and calls every helper with arguments of the kinds the helper's prototype demands (DESIGN.md, "Verifier").
//
// Contract:
// - verify() interprets the program abstractly over every path: each register and stack slot has a type (context,
//   packet pointer with a proven range, packet end, packet metadata pointer, map pointer, map value or null, stack
//   pointer, ringbuf memory, scalar with signed and unsigned ranges and known bits). It works on the relocated code
//   (pseudo map loads still name maps by index), so it knows which map each pointer comes from.
// - What it proves: every load and store lies inside a region the program may touch (the packet within its proven
//   range, the stack within 512 bytes and initialised before it is read, map values within value size, the context
//   only at its fields with allowed sizes and read-only fields never written); helpers get arguments of the types of
//   their prototypes; pointers never leak into maps or return values; every path reaches `exit` with r0 a scalar;
//   at most 1,000,000 instructions are processed (the kernel's BPF_COMPLEXITY_LIMIT_INSNS).
// - A rejection is an error whose message names the instruction (index and disassembly), the source file and line
//   (BTF line info), the register, its type and range at that point, the branches that led there, and what to change.
//   error::instruction holds the index.
// - Pruning compares exactly only what can matter to safety from a point on (registers and stack slots that reach a
//   comparison whose direction some path knew, a pointer's offset, a helper's size argument); which comparisons and
//   accesses those are is learned by exploring, in rounds, until a round learns nothing new (src/ebpf/verifier.cpp).
//   A program the kernel needs precision tracking to accept is accepted here too; what is proven does not depend on
//   the rounds.
// - Accepted programs run without the interpreter's checked mode and may be JIT-compiled; verification_result holds
//   the facts the JIT specialises on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice/ebpf/elf_object.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/isa.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

/// What the verifier needs to know about a program: its relocated code and the world around it.
struct verifier_input {
    std::span<const instruction> code;           ///< relocated: lddw pseudo_map_idx / _value, imm = map index
    std::span<const map_definition> maps;        ///< by index, as the lddw imms name them
    std::span<const line_info> lines;            ///< optional, by instruction index, for messages
    std::span<const program_function> functions; ///< optional: function names and extents
    xdp_attach attach{xdp_attach::device};       ///< devmap programs may read egress_ifindex
    const helper_table* helpers{};               ///< helpers that exist (nullptr: xdp_helper_table())

    /// The input for a program of a loaded object (its `relocated` code and the object's map definitions).
    static verifier_input of(const loaded_program& program, const loaded_object& object,
                             std::vector<map_definition>& definitions_storage);
};

struct verifier_options {
    /// 0: only the rejection; 1: also a summary (instructions processed, states, peak states); 2: the state of every
    /// register and stack slot at each instruction processed, as the kernel's verifier log level 2.
    int log_level{};
    std::uint64_t complexity_limit{1'000'000}; ///< instructions processed, summed over all paths
};

/// Facts proven about one instruction, for the JIT and the executor.
struct instruction_facts {
    bool reachable{};
    /// A call to bpf_map_lookup_elem whose map argument is always the same map: its index (array lookups are inlined).
    std::optional<std::uint32_t> constant_map;
};

struct verification_result {
    std::vector<instruction_facts> facts;   ///< by instruction index
    std::uint64_t instructions_processed{}; ///< summed over all paths and over the precision rounds (verifier.cpp)
    std::uint64_t states_explored{};
    std::uint64_t peak_states{};
    std::string log; ///< per log_level
};

/// Verifies a program; the error is the rejection with its whole explanation (log included at log_level >= 1).
expected<verification_result> verify(const verifier_input& input, const verifier_options& options = {});

} // namespace sluice::ebpf
