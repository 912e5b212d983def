// Functions, reachability, fall-through and liveness, computed once before the path exploration.
#include "ebpf/verifier/program_structure.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>

namespace sluice::ebpf::verifier_detail {

std::size_t program_structure::jump_target(const instruction& insn, std::size_t pc) {
    const std::int64_t relative = insn.opcode == op::ja32 ? insn.imm : insn.offset;
    return static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + relative);
}

bool program_structure::is_conditional_jump(const instruction& insn) {
    if (!op::is_jump(insn.opcode)) {
        return false;
    }
    const std::uint8_t operation = op::alu_op(insn.opcode);
    return operation != op::jmp_ja && operation != op::jmp_call && operation != op::jmp_exit;
}

namespace {

bool is_local_call(const instruction& insn) {
    return insn.opcode == op::call && insn.src == op::call_local;
}

std::size_t call_target(const instruction& insn, std::size_t pc) {
    return static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + insn.imm);
}

/// Registers an instruction reads (`use`) and writes (`def`), as bit masks of r0..r9.
void uses_and_defs(const instruction& insn, int (*helper_arguments)(std::uint32_t), std::uint16_t& use,
                   std::uint16_t& def) {
    use = 0;
    def = 0;
    const auto bit = [](int r) { return static_cast<std::uint16_t>(r < frame_pointer ? 1U << r : 0U); };
    const std::uint8_t cls = op::cls(insn.opcode);
    const bool from_register = op::source(insn.opcode) == op::src_x;
    switch (cls) {
    case op::cls_alu:
    case op::cls_alu64: {
        const std::uint8_t operation = op::alu_op(insn.opcode);
        if (operation == op::alu_mov) {
            use = from_register ? bit(insn.src) : 0;
        } else {
            use = static_cast<std::uint16_t>(bit(insn.dst) | (from_register ? bit(insn.src) : 0));
        }
        def = bit(insn.dst);
        return;
    }
    case op::cls_ld:
        def = bit(insn.dst);
        return;
    case op::cls_ldx:
        use = bit(insn.src);
        def = bit(insn.dst);
        return;
    case op::cls_st:
        use = bit(insn.dst);
        return;
    case op::cls_stx:
        use = static_cast<std::uint16_t>(bit(insn.dst) | bit(insn.src));
        if (op::mode(insn.opcode) == op::mode_atomic) {
            if (insn.imm == op::atomic_cmpxchg) {
                use |= bit(0);
                def = bit(0);
            } else if ((insn.imm & op::atomic_fetch) != 0) {
                def = bit(insn.src);
            }
        }
        return;
    default:
        break;
    }
    const std::uint8_t operation = op::alu_op(insn.opcode);
    if (operation == op::jmp_exit) {
        use = bit(0);
        return;
    }
    if (operation == op::jmp_call) {
        int arguments = 5;
        if (insn.opcode == op::call && insn.src == op::call_helper && helper_arguments != nullptr) {
            arguments = helper_arguments(static_cast<std::uint32_t>(insn.imm));
        }
        for (int r = 1; r <= arguments; ++r) {
            use |= bit(r);
        }
        if (insn.opcode == op::callx) {
            use |= bit(insn.dst);
        }
        def = 0x3f; // r0..r5
        return;
    }
    if (operation == op::jmp_ja || program_structure::is_may_goto(insn)) {
        return;
    }
    use = static_cast<std::uint16_t>(bit(insn.dst) | (from_register ? bit(insn.src) : 0));
}

/// What must be exact before `insn`, given what is needed after it.
precision_set needed_before(const instruction& insn, precision_set after, bool in_main, bool decided,
                            bool pointer_arithmetic, bool stack_through_pointer, const precision_inputs& inputs) {
    const auto bit = [](int r) { return static_cast<std::uint16_t>(r < frame_pointer ? 1U << r : 0U); };
    const bool from_register = op::source(insn.opcode) == op::src_x;
    const std::uint16_t dst = bit(insn.dst);
    const std::uint16_t src = from_register ? bit(insn.src) : 0;
    constexpr std::uint64_t all_slots = ~std::uint64_t{0};
    precision_set before = after;
    const auto slot_of = [](std::int16_t offset, int size) -> std::optional<std::uint64_t> {
        if (offset >= 0 || offset < -stack_size || (-offset - 1) / 8 != (-(offset + size - 1) - 1) / 8) {
            return std::nullopt;
        }
        return std::uint64_t{1} << ((-offset - 1) / 8);
    };
    switch (op::cls(insn.opcode)) {
    case op::cls_alu:
    case op::cls_alu64: {
        const std::uint8_t operation = op::alu_op(insn.opcode);
        const bool dst_needed = (after.registers & dst) != 0;
        before.registers = static_cast<std::uint16_t>(after.registers & ~dst);
        if (operation == op::alu_mov) {
            before.registers |= dst_needed ? src : std::uint16_t{0};
            return before;
        }
        if (dst_needed) {
            before.registers |= static_cast<std::uint16_t>(dst | src);
        }
        if (from_register && pointer_arithmetic && (operation == op::alu_add || operation == op::alu_sub)) {
            before.registers |= static_cast<std::uint16_t>(dst | src); // a number moved a pointer here
        }
        return before;
    }
    case op::cls_ld:
        before.registers = static_cast<std::uint16_t>(after.registers & ~dst);
        return before;
    case op::cls_ldx: {
        const bool needed = (after.registers & dst) != 0;
        before.registers = static_cast<std::uint16_t>(after.registers & ~dst);
        if (needed) {
            const auto slot =
                insn.src == frame_pointer ? slot_of(insn.offset, op::access_bytes(insn.opcode)) : std::nullopt;
            if (slot) {
                before.slots |= *slot;
            } else if (insn.src != frame_pointer && stack_through_pointer) {
                before.slots |= all_slots; // through a copy of a stack pointer it may be any slot
            }
        }
        return before;
    }
    case op::cls_st:
    case op::cls_stx: {
        const int size = op::access_bytes(insn.opcode);
        const std::uint16_t value = op::cls(insn.opcode) == op::cls_stx ? bit(insn.src) : 0;
        if (op::mode(insn.opcode) == op::mode_atomic) {
            before.registers |= value;
            if (insn.imm == op::atomic_cmpxchg) {
                before.registers |= bit(0);
            }
            return before;
        }
        if (insn.dst == frame_pointer) {
            const auto slot = slot_of(insn.offset, size);
            if (!slot) {
                return before;
            }
            const bool needed = (after.slots & *slot) != 0;
            if (size == 8 && insn.offset % 8 == 0) {
                before.slots &= ~*slot; // the whole slot is written here
            }
            if (needed) {
                before.registers |= value;
            }
            return before;
        }
        // Through another pointer: the packet or a map value (the value does not matter), or a stack slot of this
        // function (it matters when a slot is needed), or a caller's stack (it may matter).
        if (stack_through_pointer && (!in_main || after.slots != 0)) {
            before.registers |= value;
        }
        return before;
    }
    default:
        break;
    }
    const std::uint8_t operation = op::alu_op(insn.opcode);
    if (operation == op::jmp_exit) {
        before = precision_set{};
        before.registers = in_main ? 0 : bit(0); // a function's result may be used; the program's is not checked
        return before;
    }
    if (operation == op::jmp_call) {
        before.registers = static_cast<std::uint16_t>(after.registers & ~0x3fU);
        if (insn.opcode == op::call && insn.src == op::call_helper) {
            const auto id = static_cast<std::uint32_t>(insn.imm);
            before.registers |= inputs.helper_needs != nullptr ? inputs.helper_needs(id) : std::uint16_t{0x3e};
            if (inputs.helper_calls_back == nullptr || inputs.helper_calls_back(id)) {
                before.slots = all_slots;
            }
        } else {
            before.registers |= std::uint16_t{0x3e}; // r1..r5 of a function (or callx) may be used anywhere in it
            before.registers |= insn.opcode == op::callx ? dst : std::uint16_t{0};
            before.slots = all_slots; // and it may read this function's stack through a pointer
        }
        return before;
    }
    if (operation == op::jmp_ja || program_structure::is_may_goto(insn)) {
        return after;
    }
    if (!decided) {
        return after; // both directions were followed: the operands' exact values did not choose a path
    }
    before.registers |= static_cast<std::uint16_t>(dst | src); // the comparison decided which paths exist
    return before;
}

/// Stack slots of this function that may be read from `insn` on, given those live after it.
std::uint64_t slots_live_before(const instruction& insn, std::uint64_t after, bool stack_through_pointer,
                                const precision_inputs& inputs) {
    constexpr std::uint64_t all_slots = ~std::uint64_t{0};
    const auto slot_of = [](std::int16_t offset, int size) -> std::uint64_t {
        if (offset >= 0 || offset < -stack_size) {
            return 0;
        }
        const int first = (-offset - 1) / 8;
        const int last = (-(offset + size - 1) - 1) / 8;
        std::uint64_t slots = 0;
        for (int s = std::min(first, last); s <= std::max(first, last) && s < 64; ++s) {
            slots |= std::uint64_t{1} << s;
        }
        return slots;
    };
    const std::uint8_t cls = op::cls(insn.opcode);
    if (cls == op::cls_ldx || (cls == op::cls_stx && op::mode(insn.opcode) == op::mode_atomic)) {
        const int base = cls == op::cls_ldx ? insn.src : insn.dst;
        if (base == frame_pointer) {
            return after | slot_of(insn.offset, op::access_bytes(insn.opcode));
        }
        return stack_through_pointer ? all_slots : after;
    }
    if (cls == op::cls_st || cls == op::cls_stx) {
        if (insn.dst == frame_pointer && op::access_bytes(insn.opcode) == 8 && insn.offset % 8 == 0) {
            return after & ~slot_of(insn.offset, 8); // written whole before any read
        }
        return after;
    }
    if (op::is_jump(insn.opcode)) {
        const std::uint8_t operation = op::alu_op(insn.opcode);
        if (operation == op::jmp_exit) {
            return 0; // the frame ends
        }
        if (operation == op::jmp_call) {
            if (insn.opcode == op::call && insn.src == op::call_helper) {
                const bool calls_back = inputs.helper_calls_back == nullptr ||
                                        inputs.helper_calls_back(static_cast<std::uint32_t>(insn.imm));
                return calls_back || stack_through_pointer ? all_slots : after;
            }
            return all_slots; // a function may read this frame through a pointer
        }
    }
    return after;
}

} // namespace

void compute_precision(program_structure& s, std::span<const instruction> code, const precision_inputs& inputs) {
    const std::size_t size = code.size();
    s.precise_in.assign(size, precision_set{});
    s.live_slots_in.assign(size, 0);
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t i = size; i-- > 0;) {
            if (s.second_half[i]) {
                continue;
            }
            std::uint64_t out = 0;
            for (const std::size_t next : s.successors[i]) {
                out |= s.live_slots_in[next];
            }
            const bool through_pointer = inputs.stack_through_pointer == nullptr || (*inputs.stack_through_pointer)[i];
            const std::uint64_t in = slots_live_before(code[i], out, through_pointer, inputs);
            if (in != s.live_slots_in[i]) {
                s.live_slots_in[i] = in;
                changed = true;
            }
        }
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t i = size; i-- > 0;) {
            if (s.second_half[i]) {
                continue;
            }
            precision_set out;
            for (const std::size_t next : s.successors[i]) {
                out = out | s.precise_in[next];
            }
            const bool decided = inputs.decided_jumps == nullptr || (*inputs.decided_jumps)[i];
            const bool arithmetic = inputs.pointer_arithmetic == nullptr || (*inputs.pointer_arithmetic)[i];
            const bool through_pointer = inputs.stack_through_pointer == nullptr || (*inputs.stack_through_pointer)[i];
            precision_set in =
                needed_before(code[i], out, s.function_at[i] == 0, decided, arithmetic, through_pointer, inputs);
            in.registers &= s.live_in[i];
            if (!(in == s.precise_in[i])) {
                s.precise_in[i] = in;
                changed = true;
            }
        }
    }
}

expected<program_structure> analyse_structure(std::span<const instruction> code,
                                              std::span<const program_function> declared,
                                              std::string (*describe)(const void*, std::size_t),
                                              const void* describe_context, int (*helper_arguments)(std::uint32_t)) {
    program_structure s;
    const std::size_t size = code.size();
    s.second_half.assign(size, false);
    s.callback_entry.assign(size, false);
    const auto fail = [&](std::size_t pc, const std::string& what) {
        return error::at(pc, fmt::format("{}\n{}", describe(describe_context, pc), what));
    };

    // Functions: those the loader declared, plus every target of a local call or function address.
    std::set<std::size_t> starts{0};
    for (const program_function& function : declared) {
        if (function.first < size) {
            starts.insert(function.first);
        }
    }
    for (std::size_t pc = 0; pc < size; ++pc) {
        const instruction& insn = code[pc];
        if (is_local_call(insn)) {
            starts.insert(call_target(insn, pc));
        } else if (insn.opcode == op::lddw && insn.src == op::pseudo_func) {
            const std::size_t target = call_target(insn, pc);
            starts.insert(target);
            if (target < size) {
                s.callback_entry[target] = true;
            }
        }
        if (insn.opcode == op::lddw && pc + 1 < size) {
            s.second_half[pc + 1] = true;
            ++pc;
        }
    }
    for (auto it = starts.begin(); it != starts.end(); ++it) {
        const auto next = std::next(it);
        s.functions.push_back(function_extent{*it, next == starts.end() ? size : *next});
    }
    s.function_at.assign(size, 0);
    for (std::size_t f = 0; f < s.functions.size(); ++f) {
        for (std::size_t pc = s.functions[f].first; pc < s.functions[f].end; ++pc) {
            s.function_at[pc] = static_cast<std::uint32_t>(f);
        }
    }

    // Reachability from instruction 0, entering functions through calls and function addresses (check_cfg).
    std::vector<std::vector<std::size_t>> successors(size);
    std::vector<bool> reached(size, false);
    std::vector<std::size_t> work{0};
    reached[0] = true;
    for (std::size_t pc = 0; pc < size; ++pc) {
        if (s.second_half[pc]) {
            continue;
        }
        const instruction& insn = code[pc];
        const std::size_t step = insn.opcode == op::lddw ? 2 : 1;
        const function_extent& own = s.functions[s.function_at[pc]];
        auto& next = successors[pc];
        const bool is_jump = op::is_jump(insn.opcode);
        const std::uint8_t operation = op::alu_op(insn.opcode);
        if (is_jump && operation == op::jmp_exit) {
            continue;
        }
        if (is_jump &&
            (operation == op::jmp_ja || program_structure::is_conditional_jump(insn) ||
             program_structure::is_may_goto(insn)) &&
            operation != op::jmp_call) {
            const std::size_t target = program_structure::jump_target(insn, pc);
            if (target < own.first || target >= own.end) {
                return fail(pc, fmt::format("jumps to instruction {}, outside its function (instructions {} to {}); "
                                            "a jump must stay inside the function it is in",
                                            target, own.first, own.end - 1));
            }
            next.push_back(target);
            if (operation == op::jmp_ja) {
                continue;
            }
        }
        if (pc + step >= own.end) {
            return fail(pc, own.end == size
                                ? std::string("the program can run past its last instruction: every path must end "
                                              "with exit (missing exit)")
                                : fmt::format("the function can run past its last instruction into the next "
                                              "function (instruction {}): every path must end with exit",
                                              own.end));
        }
        next.push_back(pc + step);
    }
    while (!work.empty()) {
        const std::size_t pc = work.back();
        work.pop_back();
        std::vector<std::size_t> targets = successors[pc];
        const instruction& insn = code[pc];
        if (is_local_call(insn) || (insn.opcode == op::lddw && insn.src == op::pseudo_func)) {
            targets.push_back(call_target(insn, pc));
        }
        for (const std::size_t target : targets) {
            if (target < size && !reached[target]) {
                reached[target] = true;
                work.push_back(target);
            }
        }
    }
    for (std::size_t pc = 0; pc < size; ++pc) {
        if (!reached[pc] && !s.second_half[pc]) {
            return fail(pc, "no path reaches this instruction (unreachable instruction): remove the dead code, or "
                            "check the jump offsets before it");
        }
    }

    // Liveness, backwards to a fixed point; functions do not share edges, so one pass over the program does.
    s.live_in.assign(size, 0);
    std::vector<std::uint16_t> use(size), def(size);
    for (std::size_t pc = 0; pc < size; ++pc) {
        if (!s.second_half[pc]) {
            uses_and_defs(code[pc], helper_arguments, use[pc], def[pc]);
        }
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t i = size; i-- > 0;) {
            if (s.second_half[i]) {
                continue;
            }
            std::uint16_t out = 0;
            for (const std::size_t next : successors[i]) {
                out |= s.live_in[next];
            }
            const auto in = static_cast<std::uint16_t>(use[i] | (out & ~def[i]));
            if (in != s.live_in[i]) {
                s.live_in[i] = in;
                changed = true;
            }
        }
    }

    s.successors = std::move(successors);
    compute_precision(s, code, precision_inputs{});

    // Prune points: where paths meet (jump targets), after branches and calls, and at callback entries.
    s.prune_point.assign(size, false);
    for (std::size_t pc = 0; pc < size; ++pc) {
        if (s.second_half[pc]) {
            continue;
        }
        const instruction& insn = code[pc];
        if (program_structure::is_conditional_jump(insn) || program_structure::is_may_goto(insn) ||
            (op::is_jump(insn.opcode) && op::alu_op(insn.opcode) == op::jmp_ja)) {
            const std::size_t target = program_structure::jump_target(insn, pc);
            if (target < size) {
                s.prune_point[target] = true;
            }
            if (pc + 1 < size) {
                s.prune_point[pc + 1] = true;
            }
        }
        if (program_structure::is_may_goto(insn)) {
            s.prune_point[pc] = true;
        }
        if (op::is_jump(insn.opcode) && op::alu_op(insn.opcode) == op::jmp_call && pc + 1 < size) {
            s.prune_point[pc + 1] = true;
        }
        if (s.callback_entry[pc]) {
            s.prune_point[pc] = true;
        }
    }
    return s;
}

} // namespace sluice::ebpf::verifier_detail
