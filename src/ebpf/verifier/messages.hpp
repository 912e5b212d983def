// The verifier's words: how a register, a stack slot and a location read in a rejection, and in the log at level 2
// (the kernel's print_verifier_state format: "R1=pkt(off=14,r=34) R10=fp0 fp-8=mmmmmmmm").
#pragma once

#include <span>
#include <string>

#include "ebpf/verifier/register_state.hpp"
#include "sluice/ebpf/elf_object.hpp"
#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::verifier_detail {

/// "packet pointer, offset 14, proven range 34" — for rejections.
std::string explain_register(const reg_state& reg, std::span<const map_definition> maps);
/// "pkt(off=14,r=34)" — for the log.
std::string log_register(const reg_state& reg, std::span<const map_definition> maps);
/// "R1=pkt(off=14,r=34) R10=fp0 fp-8=mmmmmmmm", one frame; registers not written are left out.
std::string log_frame(const func_state& frame, std::size_t depth, std::span<const map_definition> maps,
                      std::uint16_t live_registers);
/// The map's name for messages: "map 'counters'" or "map 3".
std::string map_name(std::span<const map_definition> maps, std::uint32_t index);
/// The source line closest at or before `instruction` ("xdp_parse.c:41: if (eth->h_proto == ...)"), or "".
std::string source_of(std::span<const line_info> lines, std::size_t instruction);

} // namespace sluice::ebpf::verifier_detail
