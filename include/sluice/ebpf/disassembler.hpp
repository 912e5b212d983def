// Text for instructions, in the syntax llvm-objdump prints for BPF objects (`r0 = *(u32 *)(r1 + 4)`,
// `if r2 > r3 goto +5 <LBB0_3>`, `call 1`), so that sluice's output reads like the tools users already know.
#pragma once

#include <span>
#include <string>

#include "sluice/ebpf/isa.hpp"

namespace sluice::ebpf {

/// The instruction at `index` of `code` (a 64-bit immediate load reads the next slot too).
std::string disassemble(std::span<const instruction> code, std::size_t index);

} // namespace sluice::ebpf
