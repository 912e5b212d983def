// Running a program the way the bpf_conformance suite expects, shared by the ctest runner and the runner plugin.
//
// The suite's contract (../shared/bpf-conformance/PLUGIN.md): r1 = address of a private writable copy of the test's
// memory (0 when there is none), r2 = its length, helper 5 is "unwind" (returns r1; when r1 is 0 the program stops
// at once with r0 = 0). The program is validated, then run in the interpreter's checked mode with the memory as its
// only region besides the stack, so that a faulty test program is an error, never a crash.
#pragma once

#include <cstdint>
#include <span>

#include "sluice/ebpf/isa.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

/// r0, or the error that validation, helper resolution or checked execution reported.
expected<std::uint64_t> run_conformance_program(std::span<const instruction> code, std::span<std::uint8_t> memory,
                                                std::uint64_t instruction_limit);

/// The same contract through the x86-64 JIT (jit.hpp): validated, compiled and run natively. Nothing is checked at
/// run time and there is no instruction limit, so only programs known to be well-behaved (the suite's) belong here.
expected<std::uint64_t> run_conformance_program_jit(std::span<const instruction> code, std::span<std::uint8_t> memory);

} // namespace sluice::ebpf
