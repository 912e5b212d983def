// Text for registers and stack slots, in people's words (rejections) and in the kernel log's notation (log level 2).
#include "ebpf/verifier/messages.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::ebpf::verifier_detail {

const char* describe(reg_type type) {
    switch (type) {
    case reg_type::not_init:
        return "not initialised";
    case reg_type::scalar:
        return "number";
    case reg_type::ctx:
        return "context pointer";
    case reg_type::packet:
        return "packet pointer";
    case reg_type::packet_end:
        return "packet end pointer (data_end)";
    case reg_type::packet_meta:
        return "packet metadata pointer";
    case reg_type::map_ptr:
        return "map";
    case reg_type::map_value:
        return "map value pointer";
    case reg_type::map_value_or_null:
        return "map value pointer or NULL";
    case reg_type::stack:
        return "stack pointer";
    case reg_type::mem:
        return "ringbuf record pointer";
    case reg_type::mem_or_null:
        return "ringbuf record pointer or NULL";
    case reg_type::func:
        return "function address";
    case reg_type::stale_packet:
        return "stale packet pointer";
    case reg_type::released_record:
        return "submitted ringbuf record pointer";
    }
    return "?";
}

bool is_pointer(reg_type type) {
    return type != reg_type::not_init && type != reg_type::scalar;
}

std::string map_name(std::span<const map_definition> maps, std::uint32_t index) {
    if (index < maps.size() && !maps[index].name.empty()) {
        return fmt::format("map '{}'", maps[index].name);
    }
    return fmt::format("map {}", index);
}

namespace {

std::string variable_part(const reg_state& reg) {
    if (!reg.has_variable_offset()) {
        return {};
    }
    return fmt::format(", variable offset {}", reg.value.describe());
}

std::string log_variable_part(const reg_state& reg) {
    if (!reg.has_variable_offset()) {
        return {};
    }
    return fmt::format(",{}", reg.value.describe());
}

std::string short_map_name(std::span<const map_definition> maps, std::uint32_t index) {
    if (index < maps.size() && !maps[index].name.empty()) {
        return maps[index].name;
    }
    return fmt::format("{}", index);
}

char byte_letter(slot_byte b) {
    switch (b) {
    case slot_byte::invalid:
        return '?';
    case slot_byte::misc:
        return 'm';
    case slot_byte::zero:
        return '0';
    case slot_byte::spill:
        return 'r';
    }
    return '?';
}

} // namespace

std::string explain_register(const reg_state& reg, std::span<const map_definition> maps) {
    switch (reg.type) {
    case reg_type::not_init:
        return "not initialised";
    case reg_type::scalar: {
        if (reg.value.is_constant()) {
            return fmt::format("the number {}", static_cast<std::int64_t>(reg.value.constant_value()));
        }
        const std::string range = reg.value.describe();
        return range.empty() ? "a number of unknown value" : fmt::format("a number ({})", range);
    }
    case reg_type::ctx:
        return fmt::format("context pointer, offset {}", reg.offset);
    case reg_type::packet:
    case reg_type::packet_meta:
        return fmt::format("{}, offset {}{}, proven range {}", describe(reg.type), reg.offset, variable_part(reg),
                           reg.range);
    case reg_type::packet_end:
        return describe(reg.type);
    case reg_type::map_ptr:
        return fmt::format("{} itself", map_name(maps, reg.map));
    case reg_type::map_value:
        return fmt::format("pointer into a value of {} (value size {}), offset {}{}", map_name(maps, reg.map),
                           reg.map < maps.size() ? maps[reg.map].value_size : 0, reg.offset, variable_part(reg));
    case reg_type::map_value_or_null:
        return fmt::format("pointer to a value of {} or NULL (not checked yet)", map_name(maps, reg.map));
    case reg_type::stack:
        return fmt::format("stack pointer fp{:+}{}{}", reg.offset,
                           reg.frame > 0 ? fmt::format(" of frame {}", reg.frame) : "", variable_part(reg));
    case reg_type::mem:
        return fmt::format("pointer into a {}-byte {}, offset {}{}", reg.mem_size,
                           reg.read_only ? "read-only buffer" : "ringbuf record", reg.offset, variable_part(reg));
    case reg_type::mem_or_null:
        return fmt::format("pointer to a {}-byte ringbuf record or NULL (not checked yet)", reg.mem_size);
    case reg_type::func:
        return fmt::format("address of the function at instruction {}", reg.map);
    case reg_type::stale_packet:
        return "packet pointer made invalid by a helper that changes the packet (bpf_xdp_adjust_head/meta/tail)";
    case reg_type::released_record:
        return "pointer to a ringbuf record already submitted or discarded";
    }
    return "?";
}

std::string log_register(const reg_state& reg, std::span<const map_definition> maps) {
    const std::string id = reg.id != 0 ? fmt::format("id={},", reg.id) : "";
    switch (reg.type) {
    case reg_type::not_init:
        return "?";
    case reg_type::scalar:
        if (reg.value.is_constant()) {
            return fmt::format("{}", static_cast<std::int64_t>(reg.value.constant_value()));
        }
        return fmt::format("scalar({}{})", id, reg.value.describe());
    case reg_type::ctx:
        return reg.offset == 0 ? "ctx()" : fmt::format("ctx(off={})", reg.offset);
    case reg_type::packet:
        return fmt::format("pkt({}off={},r={}{})", id, reg.offset, reg.range, log_variable_part(reg));
    case reg_type::packet_meta:
        return fmt::format("pkt_meta({}off={},r={}{})", id, reg.offset, reg.range, log_variable_part(reg));
    case reg_type::packet_end:
        return "pkt_end()";
    case reg_type::map_ptr:
        return fmt::format("map_ptr({})", short_map_name(maps, reg.map));
    case reg_type::map_value:
        return fmt::format("map_value(map={},off={}{})", short_map_name(maps, reg.map), reg.offset,
                           log_variable_part(reg));
    case reg_type::map_value_or_null:
        return fmt::format("map_value_or_null({}map={})", id, short_map_name(maps, reg.map));
    case reg_type::stack:
        if (reg.has_variable_offset()) {
            return fmt::format("fp{}{}{}", reg.frame > 0 ? fmt::format("[{}]", reg.frame) : "", reg.offset,
                               log_variable_part(reg));
        }
        return fmt::format("fp{}{}", reg.frame > 0 ? fmt::format("[{}]", reg.frame) : "", reg.offset);
    case reg_type::mem:
        return fmt::format("mem(sz={},off={}{}{})", reg.mem_size, reg.offset,
                           reg.ref != 0 ? fmt::format(",ref={}", reg.ref) : "", log_variable_part(reg));
    case reg_type::mem_or_null:
        return fmt::format("mem_or_null({}sz={},ref={})", id, reg.mem_size, reg.ref);
    case reg_type::func:
        return fmt::format("func(insn={})", reg.map);
    case reg_type::stale_packet:
        return "invalid_pkt";
    case reg_type::released_record:
        return "released_mem";
    }
    return "?";
}

std::string log_frame(const func_state& frame, std::size_t depth, std::span<const map_definition> maps,
                      std::uint16_t live_registers) {
    std::string text = depth > 0 ? fmt::format("frame{}:", depth) : "";
    for (int i = 0; i < register_count; ++i) {
        const reg_state& reg = frame.regs[static_cast<std::size_t>(i)];
        if (reg.type == reg_type::not_init) {
            continue;
        }
        const bool live = i == frame_pointer || (live_registers & (1U << i)) != 0;
        text += fmt::format("{}R{}{}={}", text.empty() ? "" : " ", i, live ? "" : "_d", log_register(reg, maps));
    }
    for (std::size_t index = 0; index < frame.stack.size(); ++index) {
        const stack_slot& slot = frame.stack[index];
        if (std::all_of(slot.bytes.begin(), slot.bytes.end(), [](slot_byte b) { return b == slot_byte::invalid; })) {
            continue;
        }
        const int offset = -8 * static_cast<int>(index + 1);
        if (slot.has_spill() && slot.spill_size == 8) {
            text += fmt::format(" fp{}={}", offset, log_register(slot.spilled, maps));
            continue;
        }
        std::string letters;
        // The kernel prints the slot's bytes from the highest address down.
        for (int b = 7; b >= 0; --b) {
            letters += byte_letter(slot.bytes[static_cast<std::size_t>(b)]);
        }
        text += fmt::format(" fp{}={}", offset, letters);
        if (slot.has_spill()) {
            text += fmt::format("({})", log_register(slot.spilled, maps));
        }
    }
    return text;
}

std::string source_of(std::span<const line_info> lines, std::size_t instruction) {
    const line_info* best = nullptr;
    for (const line_info& line : lines) {
        if (line.instruction <= instruction && (best == nullptr || line.instruction >= best->instruction)) {
            best = &line;
        }
    }
    if (best == nullptr) {
        return {};
    }
    std::string file = best->file;
    if (const auto slash = file.find_last_of('/'); slash != std::string::npos) {
        file = file.substr(slash + 1);
    }
    std::string source = best->source;
    const auto first = source.find_first_not_of(" \t");
    source = first == std::string::npos ? std::string{} : source.substr(first);
    if (source.empty()) {
        return fmt::format("{}:{}", file, best->line);
    }
    return fmt::format("{}:{}: {}", file, best->line, source);
}

} // namespace sluice::ebpf::verifier_detail
