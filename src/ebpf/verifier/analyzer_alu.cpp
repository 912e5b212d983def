// Arithmetic (the kernel's adjust_reg_min_max_vals and adjust_ptr_min_max_vals) and conditional jumps
// (check_cond_jmp_op: is_branch_taken, reg_set_min_max, find_good_pkt_pointers, mark_ptr_or_null_regs).
#include <fmt/format.h>

#include "ebpf/verifier/analyzer.hpp"
#include "ebpf/verifier/messages.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

/// The kernel's BPF_MAX_VAR_OFF: offsets beyond this are refused before they can overflow.
constexpr std::int64_t max_variable_offset = std::int64_t{1} << 29;
/// MAX_PACKET_OFF: a packet range is proven only for offsets within a 16-bit length.
constexpr std::uint64_t max_packet_offset = 0xffff;

const char* alu_name(std::uint8_t operation) {
    switch (operation) {
    case op::alu_add:
        return "addition";
    case op::alu_sub:
        return "subtraction";
    case op::alu_mul:
        return "multiplication";
    case op::alu_div:
        return "division";
    case op::alu_or:
        return "bitwise or";
    case op::alu_and:
        return "bitwise and";
    case op::alu_lsh:
        return "left shift";
    case op::alu_rsh:
        return "right shift";
    case op::alu_neg:
        return "negation";
    case op::alu_mod:
        return "modulo";
    case op::alu_xor:
        return "exclusive or";
    case op::alu_arsh:
        return "arithmetic right shift";
    case op::alu_end:
        return "byte swap";
    default:
        return "operation";
    }
}

bool never_null(reg_type t) {
    switch (t) {
    case reg_type::ctx:
    case reg_type::packet:
    case reg_type::packet_end:
    case reg_type::packet_meta:
    case reg_type::map_ptr:
    case reg_type::map_value:
    case reg_type::stack:
    case reg_type::mem:
    case reg_type::func:
        return true;
    default:
        return false;
    }
}

template <typename F> void for_each_reg(verifier_state& st, F&& visit) {
    for (func_state& frame : st.frames) {
        for (reg_state& reg : frame.regs) {
            visit(reg);
        }
        for (stack_slot& slot : frame.stack) {
            if (slot.has_spill()) {
                visit(slot.spilled);
            }
        }
    }
}

} // namespace

expected<void> analyzer::check_readable(const verifier_state& st, int r, std::string_view role) const {
    const reg_state& reg = st.frames.back().regs[static_cast<std::size_t>(r)];
    if (reg.type == reg_type::not_init) {
        return reject(
            st, st.pc,
            {fmt::format("reads r{} ({}), which holds no value on this path (an uninitialised register)", r, role),
             fmt::format("set r{} before this instruction; remember that a call clobbers r1-r5 (keep values "
                         "that must survive a call in r6-r9)",
                         r)});
    }
    return {};
}

expected<void> analyzer::step_alu(verifier_state& st, const instruction& insn) {
    const bool is64 = op::cls(insn.opcode) == op::cls_alu64;
    const bool from_register = op::source(insn.opcode) == op::src_x;
    const std::uint8_t operation = op::alu_op(insn.opcode);
    const int dst = insn.dst;

    if (operation == op::alu_mov) {
        if (!from_register) {
            const std::uint64_t imm = is64 ? static_cast<std::uint64_t>(static_cast<std::int64_t>(insn.imm))
                                           : static_cast<std::uint32_t>(insn.imm);
            st.reg(dst) = reg_state::constant(imm);
            return {};
        }
        if (auto readable = check_readable(st, insn.src, "source of the move"); !readable) {
            return readable;
        }
        reg_state& source = st.reg(insn.src);
        if (insn.offset != 0) {
            if (!source.is_scalar()) {
                return reject(st, st.pc,
                              {fmt::format("sign-extends r{}, which holds a pointer ({})", insn.src,
                                           explain_register(source, _input.maps)),
                               "pointers cannot be narrowed; sign-extend numbers only"});
            }
            st.reg(dst) = reg_state::scalar(scalar_sign_extend(source.value, insn.offset, is64));
            return {};
        }
        if (is64) {
            // Copies of an unknown number share an id, so that a bound learned on one holds for the other.
            if (source.is_scalar() && !source.value.is_constant() && source.id == 0) {
                source.id = new_id();
            }
            st.reg(dst) = source;
            return {};
        }
        scalar_value low = source.is_scalar() ? source.value : scalar_value::of_size(4);
        low.truncate_to(4);
        st.reg(dst) = reg_state::scalar(low);
        return {};
    }

    if (auto readable = check_readable(st, dst, "operand"); !readable) {
        return readable;
    }
    reg_state& target = st.reg(dst);
    if (operation == op::alu_neg || operation == op::alu_end) {
        if (!target.is_scalar()) {
            return reject(st, st.pc,
                          {fmt::format("{} of r{}, which holds a pointer ({})", alu_name(operation), dst,
                                       explain_register(target, _input.maps)),
                           "only numbers can be negated or byte-swapped"});
        }
        if (operation == op::alu_neg) {
            target = reg_state::scalar(scalar_negate(target.value, is64));
        } else {
            const bool swap = is64 || from_register; // ALU64 bswap, or ALU to-big-endian on a little-endian host
            target = reg_state::scalar(scalar_byte_swap(target.value, insn.imm, swap));
        }
        return {};
    }

    reg_state source = reg_state::constant(static_cast<std::uint64_t>(static_cast<std::int64_t>(insn.imm)));
    if (from_register) {
        if (auto readable = check_readable(st, insn.src, "operand"); !readable) {
            return readable;
        }
        source = st.reg(insn.src);
    }
    if (target.is_scalar() && source.is_scalar()) {
        const bool is_signed = (operation == op::alu_div || operation == op::alu_mod) && insn.offset == 1;
        target = reg_state::scalar(scalar_alu(operation, target.value, source.value, is64, is_signed));
        return {};
    }
    return pointer_arithmetic(st, insn, target, source);
}

expected<void> analyzer::pointer_arithmetic(verifier_state& st, const instruction& insn, reg_state& dst,
                                            const reg_state& src) {
    const bool is64 = op::cls(insn.opcode) == op::cls_alu64;
    const std::uint8_t operation = op::alu_op(insn.opcode);
    const int src_register = op::source(insn.opcode) == op::src_x ? insn.src : -1;
    const auto operand_text = [&](const reg_state& reg, int r) {
        return r >= 0 ? fmt::format("r{} = {}", r, explain_register(reg, _input.maps))
                      : explain_register(reg, _input.maps);
    };
    if (!is64) {
        return reject(st, st.pc,
                      {fmt::format("32-bit {} on a pointer (r{} = {}): pointers are 64 bits", alu_name(operation),
                                   insn.dst, explain_register(dst, _input.maps)),
                       "do pointer arithmetic with 64-bit operations (use a 64-bit type for the offset)"});
    }
    if (operation == op::alu_sub && is_pointer(dst.type) && is_pointer(src.type)) {
        const bool same_region =
            (is_packet_kind(dst.type) && is_packet_kind(src.type)) ||
            (dst.type == reg_type::stack && src.type == reg_type::stack && dst.frame == src.frame) ||
            (dst.type == reg_type::map_value && src.type == reg_type::map_value && dst.map == src.map) ||
            (dst.type == reg_type::mem && src.type == reg_type::mem && dst.ref == src.ref);
        if (!same_region || dst.type == reg_type::stale_packet || src.type == reg_type::stale_packet) {
            return reject(st, st.pc,
                          {fmt::format("subtracts pointers into different memory (r{} = {}; {}): only the distance "
                                       "between two pointers into the same region (the packet, a stack frame, a map "
                                       "value) is a meaningful number",
                                       insn.dst, explain_register(dst, _input.maps), operand_text(src, src_register)),
                           "subtract pointers into the same region only"});
        }
        scalar_value distance = scalar_value::unknown();
        if (dst.type == src.type && dst.id == src.id && !dst.has_variable_offset() && !src.has_variable_offset()) {
            distance = scalar_value::constant(static_cast<std::uint64_t>(std::int64_t{dst.offset} - src.offset));
        }
        dst = reg_state::scalar(distance);
        return {};
    }
    const reg_state* pointer = nullptr;
    const reg_state* number = nullptr;
    bool subtract = false;
    if (operation == op::alu_add && is_pointer(dst.type) && src.is_scalar()) {
        pointer = &dst;
        number = &src;
    } else if (operation == op::alu_add && dst.is_scalar() && is_pointer(src.type)) {
        pointer = &src;
        number = &dst;
    } else if (operation == op::alu_sub && is_pointer(dst.type) && src.is_scalar()) {
        pointer = &dst;
        number = &src;
        subtract = true;
    } else {
        const reg_state& culprit = is_pointer(dst.type) ? dst : src;
        const int culprit_register = is_pointer(dst.type) ? insn.dst : src_register;
        return reject(st, st.pc,
                      {fmt::format("{} on a pointer ({}): a pointer may only be moved by adding or subtracting a "
                                   "number",
                                   alu_name(operation), operand_text(culprit, culprit_register)),
                       "compute offsets as numbers, then add them to the pointer"});
    }
    const int pointer_register = pointer == &dst ? insn.dst : src_register;
    if (number == &dst || src_register >= 0) {
        _arithmetic[st.pc] = true; // the value of a register moved a pointer: it must be exact when pruning
    }
    switch (pointer->type) {
    case reg_type::map_value_or_null:
    case reg_type::mem_or_null:
        return reject(st, st.pc,
                      {fmt::format("pointer arithmetic on r{}, which may be NULL ({})", pointer_register,
                                   explain_register(*pointer, _input.maps)),
                       "check the pointer against NULL first (if (!value) return XDP_PASS;), then move it"});
    case reg_type::packet_end:
    case reg_type::map_ptr:
    case reg_type::func:
    case reg_type::stale_packet:
    case reg_type::released_record:
        return reject(st, st.pc,
                      {fmt::format("pointer arithmetic on r{} ({}) is not allowed", pointer_register,
                                   explain_register(*pointer, _input.maps)),
                       pointer->type == reg_type::packet_end
                           ? "compare data + N with data_end instead of moving data_end"
                           : "only pointers into the packet, the stack, map values and ringbuf records can move"});
    default:
        break;
    }
    reg_state result = *pointer;
    const scalar_value& delta = number->value;
    if (delta.is_constant()) {
        const auto value = static_cast<std::int64_t>(delta.constant_value());
        const std::int64_t moved = subtract ? std::int64_t{result.offset} - value : std::int64_t{result.offset} + value;
        if (value <= -max_variable_offset || value >= max_variable_offset || moved <= -max_variable_offset ||
            moved >= max_variable_offset) {
            return reject(st, st.pc,
                          {fmt::format("moves r{} ({}) by {}, beyond any region a program may use", pointer_register,
                                       explain_register(*pointer, _input.maps), value),
                           "use offsets within the region's size"});
        }
        result.offset = static_cast<std::int32_t>(moved);
    } else {
        if (pointer->type == reg_type::ctx) {
            return reject(st, st.pc,
                          {fmt::format("adds a variable offset to the context pointer r{}: context fields are read "
                                       "at fixed offsets only",
                                       pointer_register),
                           "read ctx->field directly"});
        }
        if (delta.smin <= -max_variable_offset || delta.smax >= max_variable_offset) {
            return reject(
                st, st.pc,
                {fmt::format("adds {} to a pointer ({}): the number is not bounded, so the result could point "
                             "anywhere",
                             explain_register(*number, _input.maps), operand_text(*pointer, pointer_register)),
                 "bound the number first, with a check (if (index >= N) return ...;) or a mask (index &= N - 1)"});
        }
        result.value = scalar_alu(subtract ? op::alu_sub : op::alu_add, result.value, delta, true, false);
        if (result.value.smin <= -max_variable_offset || result.value.smax >= max_variable_offset) {
            return reject(st, st.pc,
                          {fmt::format("the variable offset of r{} grows beyond what the verifier tracks ({})",
                                       pointer_register, result.value.describe()),
                           "bound the index before adding it"});
        }
        if (result.type == reg_type::packet || result.type == reg_type::packet_meta) {
            // A new variable part: nothing proven so far holds for it.
            result.id = new_id();
            result.range = 0;
        }
    }
    dst = result;
    return {};
}

void analyzer::propagate_scalar(verifier_state& st, const reg_state& narrowed) const {
    if (!narrowed.is_scalar() || narrowed.id == 0) {
        return;
    }
    for_each_reg(st, [&](reg_state& reg) {
        if (reg.is_scalar() && reg.id == narrowed.id) {
            reg.value = narrowed.value;
        }
    });
}

void analyzer::mark_packet_range(verifier_state& st, const reg_state& pointer, bool strict) const {
    if (pointer.offset < 0 || pointer.value.umax > max_packet_offset ||
        pointer.value.umax + static_cast<std::uint64_t>(pointer.offset) > max_packet_offset) {
        return;
    }
    const std::int32_t range = pointer.offset + (strict ? 1 : 0);
    for_each_reg(st, [&](reg_state& reg) {
        if (reg.type == pointer.type && reg.id == pointer.id) {
            reg.range = std::max(reg.range, range);
        }
    });
}

void analyzer::mark_null_checked(verifier_state& st, std::uint32_t id, bool is_null) {
    std::uint32_t released = 0;
    for_each_reg(st, [&](reg_state& reg) {
        if ((reg.type != reg_type::map_value_or_null && reg.type != reg_type::mem_or_null) || reg.id != id) {
            return;
        }
        if (is_null) {
            if (reg.ref != 0) {
                released = reg.ref;
            }
            reg = reg_state::constant(0);
        } else {
            reg.type = reg.type == reg_type::map_value_or_null ? reg_type::map_value : reg_type::mem;
            reg.id = 0;
        }
    });
    if (released != 0) {
        std::erase_if(st.refs, [&](const reference& r) { return r.id == released; });
    }
}

expected<void> analyzer::step_branch(verifier_state& st, const instruction& insn, std::size_t& next, bool& path_ends) {
    const std::size_t pc = st.pc;
    const bool is64 = op::cls(insn.opcode) == op::cls_jmp;
    const bool from_register = op::source(insn.opcode) == op::src_x;
    const std::uint8_t operation = op::alu_op(insn.opcode);
    const std::size_t target = program_structure::jump_target(insn, pc);
    if (auto readable = check_readable(st, insn.dst, "compared"); !readable) {
        return readable;
    }
    if (from_register) {
        if (auto readable = check_readable(st, insn.src, "compared"); !readable) {
            return readable;
        }
    }
    const reg_state constant = reg_state::constant(static_cast<std::uint64_t>(static_cast<std::int64_t>(insn.imm)));
    const reg_state d = st.reg(insn.dst);
    const reg_state s = from_register ? st.reg(insn.src) : constant;

    const auto split = [&](verifier_state other) {
        other.pc = target;
        other.path = std::make_shared<const path_step>(path_step{pc, true, st.path});
        st.path = std::make_shared<const path_step>(path_step{pc, false, st.path});
        fork(st, std::move(other));
        next = pc + 1;
    };

    if (d.is_scalar() && s.is_scalar()) {
        if (const auto known = scalar_branch_taken(operation, d.value, s.value, is64)) {
            _decided[pc] = true;
            next = *known ? target : pc + 1;
            return {};
        }
        verifier_state other = st;
        reg_state taken_dst = d, taken_src = s, fall_dst = d, fall_src = s;
        const bool taken_possible = scalar_narrow(operation, true, taken_dst.value, taken_src.value, is64);
        const bool fall_possible = scalar_narrow(operation, false, fall_dst.value, fall_src.value, is64);
        const auto apply = [&](verifier_state& state, const reg_state& new_dst, const reg_state& new_src) {
            state.reg(insn.dst) = new_dst;
            propagate_scalar(state, new_dst);
            if (from_register) {
                state.reg(insn.src) = new_src;
                propagate_scalar(state, new_src);
            }
        };
        if (taken_possible && fall_possible) {
            apply(other, taken_dst, taken_src);
            apply(st, fall_dst, fall_src);
            split(std::move(other));
            return {};
        }
        _decided[pc] = true;
        if (taken_possible) {
            apply(st, taken_dst, taken_src);
            next = target;
        } else if (fall_possible) {
            apply(st, fall_dst, fall_src);
            next = pc + 1;
        } else {
            path_ends = true; // no value satisfies either side: this state cannot occur
        }
        return {};
    }

    // Whether a scalar operand is 0, or a number at all, chose how this comparison is treated.
    if (d.is_scalar() || s.is_scalar()) {
        _decided[pc] = true;
    }
    const bool equality = operation == op::jmp_jeq || operation == op::jmp_jne;
    const auto is_zero = [](const reg_state& r) {
        return r.is_scalar() && r.value.is_constant() && r.value.constant_value() == 0;
    };
    if (equality && is64) {
        const bool dst_nullable = d.type == reg_type::map_value_or_null || d.type == reg_type::mem_or_null;
        const bool src_nullable = s.type == reg_type::map_value_or_null || s.type == reg_type::mem_or_null;
        if ((dst_nullable && is_zero(s)) || (src_nullable && is_zero(d))) {
            const std::uint32_t id = dst_nullable ? d.id : s.id;
            verifier_state other = st;
            mark_null_checked(other, id, operation == op::jmp_jeq);
            mark_null_checked(st, id, operation != op::jmp_jeq);
            split(std::move(other));
            return {};
        }
        if ((never_null(d.type) && is_zero(s)) || (never_null(s.type) && is_zero(d))) {
            next = operation == op::jmp_jne ? target : pc + 1;
            return {};
        }
    }
    const bool ordering =
        operation == op::jmp_jgt || operation == op::jmp_jge || operation == op::jmp_jlt || operation == op::jmp_jle;
    if (ordering && is64 && is_pointer(d.type) && is_pointer(s.type)) {
        // In each direction the comparison proves "a < b" or "a <= b"; where a is a packet pointer and b the end of
        // its region, a's range grows (find_good_pkt_pointers).
        const auto prove = [&](verifier_state& state, std::uint8_t condition) {
            const bool dst_smaller = condition == op::jmp_jlt || condition == op::jmp_jle;
            const bool strict = condition == op::jmp_jlt || condition == op::jmp_jgt;
            const reg_state& a = dst_smaller ? d : s;
            const reg_state& b = dst_smaller ? s : d;
            const bool data_end = a.type == reg_type::packet && b.type == reg_type::packet_end;
            const bool meta_end = a.type == reg_type::packet_meta && b.type == reg_type::packet && b.id == 0 &&
                                  b.offset == 0 && !b.has_variable_offset();
            if (data_end || meta_end) {
                mark_packet_range(state, a, strict);
            }
        };
        verifier_state other = st;
        prove(other, operation);
        prove(st, negate_condition(operation));
        split(std::move(other));
        return {};
    }
    // Other comparisons involving pointers: both ways, nothing learned.
    split(st);
    return {};
}

} // namespace sluice::ebpf::verifier_detail
