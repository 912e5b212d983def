// Load-time check of a program's encoding.
//
// validate() accepts exactly the instructions of RFC 9669 (v4) that sluice executes, plus the kernel's may_goto
// (0xe5, BPF_JMP | BPF_JCOND with src 0, which clang emits for can_loop; its semantics in interpreter.hpp), and rejects
// everything else before a single instruction runs: unknown opcodes, registers above r10, writes to r10, reserved
// fields that must be zero, jumps and calls that leave the program or land inside a 64-bit immediate load, a 64-bit
// immediate load missing its second half, a program whose last instruction can fall off its end. The error names the
// instruction index and what is wrong. It says nothing about memory safety: that is the verifier's job.
#pragma once

#include <span>

#include "sluice/ebpf/isa.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

inline constexpr std::size_t max_program_instructions = 1'000'000; ///< as the kernel's BPF_COMPLEXITY_LIMIT_INSNS

expected<void> validate(std::span<const instruction> code);

} // namespace sluice::ebpf
