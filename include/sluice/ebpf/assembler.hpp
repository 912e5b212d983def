// An assembler for the text syntax of the bpf_conformance suite (as in `ldxb %r0, [%r1+0x2]`,
// `lddw %r0, 0x1122334455667788`, `jne32 %r1, 0xfffffffc, fail`, `lock fetch add [%r10-8], %r1`,
// `call local f`, `call %r2`; also the kernel's `may_goto TARGET`), and the relocated pseudo loads of sluice's loader
// for verifier tests: `lddw %r1, map:0` (map by index), `lddw %r1, map_value:0:16` (address of byte 16 of map 0's
// value), `lddw %r2, func:label`.
//
// Labels end with ':'; a jump target is a label or a signed offset (`+1`, `-3`); the first `exit` also defines the
// label `exit`, as the suite's own assembler does. `#` starts a comment. Errors name the line and what is wrong.
#pragma once

#include <string_view>
#include <vector>

#include "sluice/ebpf/isa.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

expected<std::vector<instruction>> assemble(std::string_view text);

} // namespace sluice::ebpf
