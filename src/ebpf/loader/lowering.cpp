// Lowering for execution: map references become the addresses the interpreter and the JIT load as plain immediates.
//
// pseudo_map_idx (5) -> the address of the sluice::ebpf::map object, which helpers receive as their map argument.
// pseudo_map_idx_value (6) -> the address of a byte of the single value of an array map, as the kernel's
// array_map_direct_value_addr() gives it (one entry, offset inside the value). Global data is read and written
// through that address with no helper call.
#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "sluice/ebpf/loader.hpp"

namespace sluice::ebpf {
namespace {

void set_imm64(instruction& first, instruction& second, std::uint64_t value) {
    first.src = op::pseudo_imm64;
    first.imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(value));
    second.imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(value >> 32));
}

} // namespace

expected<std::vector<instruction>> lower_map_references(std::span<const instruction> code, std::span<map* const> maps) {
    std::vector<instruction> lowered(code.begin(), code.end());
    for (std::size_t pc = 0; pc + 1 < lowered.size(); ++pc) {
        instruction& first = lowered[pc];
        if (first.opcode != op::lddw) {
            continue;
        }
        instruction& second = lowered[pc + 1];
        const std::uint8_t source = first.src;
        ++pc;
        if (source != op::pseudo_map_idx && source != op::pseudo_map_idx_value) {
            if (source == op::pseudo_map_fd || source == op::pseudo_map_value) {
                return error::at(pc - 1, fmt::format("instruction {}: map referenced by file descriptor (pseudo "
                                                     "source {}); sluice refers to maps by index (relocations)",
                                                     pc - 1, source));
            }
            continue;
        }
        const auto index = static_cast<std::uint32_t>(first.imm);
        if (index >= maps.size() || maps[index] == nullptr) {
            return error::at(pc - 1, fmt::format("instruction {}: map index {} does not exist ({} maps)", pc - 1, index,
                                                 maps.size()));
        }
        map& target = *maps[index];
        if (source == op::pseudo_map_idx) {
            set_imm64(first, second, reinterpret_cast<std::uintptr_t>(&target));
            continue;
        }
        const auto offset = static_cast<std::uint32_t>(second.imm);
        if (target.type() != map_type::array || target.max_entries() != 1) {
            return error::at(pc - 1, fmt::format("instruction {}: direct value access into map '{}' needs an array "
                                                 "with one entry",
                                                 pc - 1, target.definition().name));
        }
        if (offset >= target.value_size()) {
            return error::at(pc - 1, fmt::format("instruction {}: offset {} is past the {}-byte value of map '{}'",
                                                 pc - 1, offset, target.value_size(), target.definition().name));
        }
        const std::uint32_t key = 0;
        auto* value = static_cast<std::byte*>(target.lookup(&key, 0));
        if (value == nullptr) {
            return error::at(pc - 1, fmt::format("instruction {}: map '{}' has no value at key 0", pc - 1,
                                                 target.definition().name));
        }
        set_imm64(first, second, reinterpret_cast<std::uintptr_t>(value + offset));
    }
    return lowered;
}

} // namespace sluice::ebpf
