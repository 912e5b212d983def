// The encoding check: every slot of a program is an instruction of RFC 9669 (v4) that sluice can execute.
//
// The rules follow the RFC and, where the RFC leaves a field "reserved", the kernel's check_*() in verifier.c:
// reserved fields must be zero, so that an encoding a later ISA version gives a meaning to is refused rather than
// run with today's meaning.
#include "sluice/ebpf/program.hpp"

#include <fmt/format.h>

#include <vector>

namespace sluice::ebpf {
namespace {

class encoding_check {
public:
    explicit encoding_check(std::span<const instruction> code) : _code(code), _second_half(code.size(), false) {}

    expected<void> run() {
        if (_code.empty()) {
            return error{"the program is empty: it needs at least an exit instruction"};
        }
        if (_code.size() > max_program_instructions) {
            return error{fmt::format("the program has {} instructions; the limit is {}", _code.size(),
                                     max_program_instructions)};
        }
        // First pass: shapes of instructions, and which slots are second halves of lddw (not jump targets).
        for (std::size_t pc = 0; pc < _code.size(); ++pc) {
            if (auto checked = check(pc); !checked) {
                return checked;
            }
            if (_code[pc].opcode == op::lddw) {
                _second_half[++pc] = true;
            }
        }
        // Second pass: control flow, now that every slot is known.
        for (std::size_t pc = 0; pc < _code.size(); ++pc) {
            if (_second_half[pc]) {
                continue;
            }
            if (auto checked = check_target(pc); !checked) {
                return checked;
            }
        }
        const std::size_t last = _second_half.back() ? _code.size() - 2 : _code.size() - 1;
        const std::uint8_t last_opcode = _code[last].opcode;
        if (last_opcode != op::exit && last_opcode != op::ja && last_opcode != op::ja32) {
            return fail(last, "the last instruction must be exit or an unconditional jump: execution would run off "
                              "the end of the program");
        }
        return {};
    }

private:
    error fail(std::size_t pc, std::string_view why) const {
        return error::at(pc, fmt::format("instruction {}: {}", pc, why));
    }

    static bool valid_register(std::uint8_t reg) { return reg < register_count; }

    expected<void> check_registers(std::size_t pc, bool writes_dst, bool reads_src) const {
        const instruction& insn = _code[pc];
        if (!valid_register(insn.dst)) {
            return fail(pc, fmt::format("invalid destination register r{} (registers are r0 to r10)", insn.dst));
        }
        if (reads_src && !valid_register(insn.src)) {
            return fail(pc, fmt::format("invalid source register r{} (registers are r0 to r10)", insn.src));
        }
        if (writes_dst && insn.dst == frame_pointer) {
            return fail(pc, "writes r10, the frame pointer, which is read-only");
        }
        return {};
    }

    expected<void> reserved_zero(std::size_t pc, bool src, bool offset, bool imm) const {
        const instruction& insn = _code[pc];
        if (src && insn.src != 0) {
            return fail(pc, fmt::format("reserved source register field is {} (must be 0) for opcode {:#04x}",
                                        insn.src, insn.opcode));
        }
        if (offset && insn.offset != 0) {
            return fail(pc, fmt::format("reserved offset field is {} (must be 0) for opcode {:#04x}", insn.offset,
                                        insn.opcode));
        }
        if (imm && insn.imm != 0) {
            return fail(pc, fmt::format("reserved immediate field is {} (must be 0) for opcode {:#04x}", insn.imm,
                                        insn.opcode));
        }
        return {};
    }

    expected<void> check(std::size_t pc) const {
        const std::uint8_t opcode = _code[pc].opcode;
        switch (op::cls(opcode)) {
        case op::cls_ld: return check_ld(pc);
        case op::cls_ldx: return check_ldx(pc);
        case op::cls_st: return check_st(pc);
        case op::cls_stx: return check_stx(pc);
        case op::cls_alu:
        case op::cls_alu64: return check_alu(pc);
        default: return check_jmp(pc);
        }
    }

    expected<void> check_ld(std::size_t pc) const {
        const instruction& insn = _code[pc];
        if (insn.opcode != op::lddw) {
            const std::uint8_t mode = op::mode(insn.opcode);
            if (mode == op::mode_abs || mode == op::mode_ind) {
                return fail(pc, fmt::format("legacy packet access (ld_abs/ld_ind, opcode {:#04x}) exists only for "
                                            "socket filters; XDP programs read the packet through data and data_end",
                                            insn.opcode));
            }
            return fail(pc, fmt::format("unknown opcode {:#04x}", insn.opcode));
        }
        if (pc + 1 >= _code.size()) {
            return fail(pc, "64-bit immediate load (lddw) is missing its second half: it is the last slot");
        }
        const instruction& next = _code[pc + 1];
        if (next.opcode != 0 || next.dst != 0 || next.src != 0 || next.offset != 0) {
            return fail(pc, "64-bit immediate load (lddw) is missing its second half: the next slot must have "
                            "opcode, registers and offset 0");
        }
        if (insn.src > op::pseudo_map_idx_value) {
            return fail(pc, fmt::format("64-bit immediate load has unknown pseudo source {}", insn.src));
        }
        if (auto regs = check_registers(pc, true, false); !regs) {
            return regs;
        }
        return reserved_zero(pc, false, true, false);
    }

    expected<void> check_ldx(std::size_t pc) const {
        const instruction& insn = _code[pc];
        const std::uint8_t mode = op::mode(insn.opcode);
        if (mode != op::mode_mem && !(mode == op::mode_memsx && op::size(insn.opcode) != op::size_dw)) {
            return fail(pc, fmt::format("unknown load opcode {:#04x}", insn.opcode));
        }
        if (auto regs = check_registers(pc, true, true); !regs) {
            return regs;
        }
        return reserved_zero(pc, false, false, true);
    }

    expected<void> check_st(std::size_t pc) const {
        const instruction& insn = _code[pc];
        if (op::mode(insn.opcode) != op::mode_mem) {
            return fail(pc, fmt::format("unknown store opcode {:#04x}", insn.opcode));
        }
        if (auto regs = check_registers(pc, false, false); !regs) {
            return regs;
        }
        return reserved_zero(pc, true, false, false);
    }

    expected<void> check_stx(std::size_t pc) const {
        const instruction& insn = _code[pc];
        const std::uint8_t mode = op::mode(insn.opcode);
        if (auto regs = check_registers(pc, false, true); !regs) {
            return regs;
        }
        if (mode == op::mode_mem) {
            return reserved_zero(pc, false, false, true);
        }
        if (mode != op::mode_atomic) {
            return fail(pc, fmt::format("unknown store opcode {:#04x}", insn.opcode));
        }
        const std::uint8_t size = op::size(insn.opcode);
        if (size != op::size_w && size != op::size_dw) {
            return fail(pc, fmt::format("atomic operations work on 4 or 8 bytes; opcode {:#04x} asks for {}",
                                        insn.opcode, op::access_bytes(insn.opcode)));
        }
        switch (insn.imm) {
        case op::atomic_add:
        case op::atomic_or:
        case op::atomic_and:
        case op::atomic_xor:
        case op::atomic_add | op::atomic_fetch:
        case op::atomic_or | op::atomic_fetch:
        case op::atomic_and | op::atomic_fetch:
        case op::atomic_xor | op::atomic_fetch:
        case op::atomic_xchg:
        case op::atomic_cmpxchg: return {};
        default: return fail(pc, fmt::format("unknown atomic operation {:#x} in the immediate", insn.imm));
        }
    }

    expected<void> check_alu(std::size_t pc) const {
        const instruction& insn = _code[pc];
        const bool is64 = op::cls(insn.opcode) == op::cls_alu64;
        const bool from_register = op::source(insn.opcode) == op::src_x;
        const std::uint8_t operation = op::alu_op(insn.opcode);
        switch (operation) {
        case op::alu_neg:
            if (from_register) {
                return fail(pc, fmt::format("unknown opcode {:#04x} (neg takes no source register)", insn.opcode));
            }
            if (auto regs = check_registers(pc, true, false); !regs) {
                return regs;
            }
            return reserved_zero(pc, true, true, true);
        case op::alu_end:
            if (is64 && from_register) {
                return fail(pc, fmt::format("unknown opcode {:#04x} (bswap has no register form)", insn.opcode));
            }
            if (insn.imm != 16 && insn.imm != 32 && insn.imm != 64) {
                return fail(pc, fmt::format("byte swap width must be 16, 32 or 64, not {}", insn.imm));
            }
            if (auto regs = check_registers(pc, true, false); !regs) {
                return regs;
            }
            return reserved_zero(pc, true, true, false);
        case 0xe0:
        case 0xf0: return fail(pc, fmt::format("unknown opcode {:#04x}", insn.opcode));
        default: break;
        }
        if (auto regs = check_registers(pc, true, from_register); !regs) {
            return regs;
        }
        if (auto fields = reserved_zero(pc, !from_register, false, from_register); !fields) {
            return fields;
        }
        const std::int16_t offset = insn.offset;
        if (operation == op::alu_div || operation == op::alu_mod) {
            if (offset != 0 && offset != 1) {
                return fail(pc, fmt::format("offset {} of a division or modulo must be 0 (unsigned) or 1 (signed)",
                                            offset));
            }
            return {};
        }
        if (operation == op::alu_mov && from_register && offset != 0) {
            const bool valid = offset == 8 || offset == 16 || (is64 && offset == 32);
            if (!valid) {
                return fail(pc, fmt::format("sign-extending move from {} bits is not an instruction (movsx takes 8, "
                                            "16{})",
                                            offset, is64 ? " or 32" : ""));
            }
            return {};
        }
        return reserved_zero(pc, false, true, false);
    }

    expected<void> check_jmp(std::size_t pc) const {
        const instruction& insn = _code[pc];
        const bool is32 = op::cls(insn.opcode) == op::cls_jmp32;
        const bool from_register = op::source(insn.opcode) == op::src_x;
        switch (op::alu_op(insn.opcode)) {
        case op::jmp_ja:
            if (from_register) {
                return fail(pc, fmt::format("unknown opcode {:#04x}", insn.opcode));
            }
            if (insn.dst != 0) {
                return fail(pc, "unconditional jump with reserved destination register set");
            }
            // JMP32 ja ("gotol") carries its target in imm to reach beyond 16 bits of offset.
            return reserved_zero(pc, true, is32, !is32);
        case op::jmp_call:
            if (is32) {
                return fail(pc, fmt::format("unknown opcode {:#04x} (call exists only in the JMP class)", insn.opcode));
            }
            if (from_register) {
                // callx: the register holding the target is named in the dst field.
                if (auto regs = check_registers(pc, false, false); !regs) {
                    return regs;
                }
                return reserved_zero(pc, true, true, true);
            }
            if (insn.src > op::call_kfunc) {
                return fail(pc, fmt::format("call with unknown source {} (0: helper, 1: local function, 2: kfunc)",
                                            insn.src));
            }
            if (insn.dst != 0 || insn.offset != 0) {
                return fail(pc, "call with reserved destination register or offset set");
            }
            return {};
        case op::jmp_exit:
            if (is32 || from_register) {
                return fail(pc, fmt::format("unknown opcode {:#04x}", insn.opcode));
            }
            if (insn.dst != 0) {
                return fail(pc, "exit with reserved destination register set");
            }
            return reserved_zero(pc, true, true, true);
        case op::jmp_jcond:
            // BPF_JCOND exists only as JMP with an immediate; src names the condition and only may_goto (0) is
            // defined, "goto +offset once the loop budget is spent" (the kernel's check_cond_jmp_op()).
            if (is32 || from_register) {
                return fail(pc, fmt::format("unknown opcode {:#04x} (conditional pseudo-jumps exist only as {:#04x})",
                                            insn.opcode, op::may_goto));
            }
            if (insn.src != 0) {
                return fail(pc, fmt::format("conditional pseudo-jump with unknown condition {} in the source register "
                                            "field (0: may_goto)",
                                            insn.src));
            }
            if (insn.dst != 0 || insn.imm != 0) {
                return fail(pc, "may_goto with reserved destination register or immediate set");
            }
            return {};
        case 0xf0: return fail(pc, fmt::format("unknown opcode {:#04x}", insn.opcode));
        default: break;
        }
        if (auto regs = check_registers(pc, false, from_register); !regs) {
            return regs;
        }
        return reserved_zero(pc, !from_register, false, from_register);
    }

    /// Jumps, local calls and function addresses must land on the first slot of an instruction inside the program.
    expected<void> check_target(std::size_t pc) const {
        const instruction& insn = _code[pc];
        std::int64_t relative = 0;
        std::string_view what;
        if (op::is_jump(insn.opcode)) {
            const std::uint8_t operation = op::alu_op(insn.opcode);
            if (operation == op::jmp_exit || (operation == op::jmp_call && insn.src != op::call_local) ||
                insn.opcode == op::callx) {
                return {};
            }
            if (operation == op::jmp_call) {
                relative = insn.imm;
                what = "local call";
            } else {
                relative = insn.opcode == op::ja32 ? insn.imm : insn.offset;
                what = "jump";
            }
        } else if (insn.opcode == op::lddw && insn.src == op::pseudo_func) {
            relative = insn.imm;
            what = "function address";
        } else {
            return {};
        }
        const std::int64_t target = static_cast<std::int64_t>(pc) + 1 + relative;
        if (target < 0 || target >= static_cast<std::int64_t>(_code.size())) {
            return fail(pc, fmt::format("{} to instruction {} is outside the program (instructions 0 to {})", what,
                                        target, _code.size() - 1));
        }
        if (_second_half[static_cast<std::size_t>(target)]) {
            return fail(pc, fmt::format("{} to instruction {} lands in the second half of a 64-bit immediate load",
                                        what, target));
        }
        return {};
    }

    std::span<const instruction> _code;
    std::vector<bool> _second_half; ///< slot i holds the upper half of an lddw
};

} // namespace

expected<void> validate(std::span<const instruction> code) { return encoding_check(code).run(); }

} // namespace sluice::ebpf
