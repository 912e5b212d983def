// The x86-64 code generator (contract in jit.hpp).
//
// Why xbyak rather than asmjit (both are in Debian): xbyak is header-only (nothing to link, nothing to version at run
// time), it assembles exactly the mnemonic we write with no intermediate representation, register allocator or
// runtime code-generation layer between us and the bytes, so the per-instruction translation below reads like the
// kernel's emit_* functions and costs nothing beyond emitting the bytes. We never let xbyak own executable memory:
// it assembles into ordinary heap memory (an allocator that does not mprotect), and executable_memory copies the
// finished code into a mapping that is writable first and read+execute after, never both.
//
// Layout of one compiled program:
//   batch entry  | callback/run trampoline | function 0 (the program) | function ... | shared stubs | error sites
// Every eBPF function (the program and each subprogram, and any instruction a function address names) gets the same
// prologue: push r10 (rbp) and the callee-saved r6..r9 (rbx, r13, r14, r15), reserve 512 bytes, r10 = top of them.
// With 5 pushes and the return address the frame keeps rsp 16-byte aligned, as helper calls need. `exit` undoes the
// prologue and returns; the program's own `exit` returns to the entry code.
// A program with a may_goto reserves 16 more bytes per frame, below the 512: the frame's may_goto_budget (count at
// r10 - 528, timestamp at r10 - 520, as the kernel's timed may_goto lays them out), set to {0xffff, 0} by every
// prologue, so each frame (call, callback invocation, tail call target) starts with its own budget as in the
// interpreter. may_goto is the kernel's rewrite: load the count, jump if 0, else decrement and store, calling the
// refresh stub (may_goto_refresh() with r0..r5 kept) when it reaches 0.
//
// Unwinding: the entry code stores in run_state::base_rsp the stack pointer at which the program's first frame
// starts (the return address into the entry code on top). Stopping (a helper set call_context::stop), failing (call
// depth, callx to no helper, a failed tail call) and tail calls all reset rsp to it: a stop or failure then `ret`s
// into the entry code, a tail call jumps to the target's first function, which builds a fresh frame there.

#include <xbyak/xbyak.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <string>

#include <fmt/format.h>

#include "ebpf/jit/jit_internal.hpp"

namespace sluice::ebpf {
namespace {

using jit::run_state;

/// xbyak assembles into heap memory that it must never mprotect: executable_memory makes the real mapping. Stateless,
/// so compilers on several threads share it.
struct heap_allocator final : Xbyak::Allocator {
    bool useProtect() const override { return false; }
};
heap_allocator assembly_allocator;

constexpr int frame_bytes = stack_size; // one eBPF frame per function

std::int64_t offset_of_redirect() {
    const execution_state probe;
    return reinterpret_cast<const char*>(&probe.redirect) - reinterpret_cast<const char*>(&probe);
}
std::int64_t offset_of_packet_context() {
    const execution_state probe;
    return reinterpret_cast<const char*>(&probe.context) - reinterpret_cast<const char*>(&probe);
}

static_assert(sizeof(redirect_decision) % 8 == 0, "the batch entry copies the decision in 8-byte words");
static_assert(std::is_trivially_copyable_v<redirect_decision>);
static_assert(std::is_standard_layout_v<run_state>);

// Displacements from r12.
constexpr int state_context = offsetof(run_state, context);
constexpr int state_stop = state_context + offsetof(call_context, stop);
constexpr int state_stop_value = state_context + offsetof(call_context, stop_value);
constexpr int state_tail_call = state_context + offsetof(call_context, tail_call);
constexpr int state_tail_calls = state_context + offsetof(call_context, tail_calls);
constexpr int state_base_rsp = offsetof(run_state, base_rsp);
constexpr int state_saved_r1 = offsetof(run_state, saved_r1);
constexpr int state_depth = offsetof(run_state, depth);
constexpr int state_failed = offsetof(run_state, failed);
constexpr int state_error_kind = offsetof(run_state, error_kind);
constexpr int state_error_pc = offsetof(run_state, error_pc);
constexpr int state_error_value = offsetof(run_state, error_value);
constexpr int state_running = offsetof(run_state, running);
static_assert(sizeof(call_context::stop) == 1 && sizeof(call_context::tail_calls) == 4);

class compiler : public Xbyak::CodeGenerator {
public:
    compiler(std::span<const instruction> code, const helper_table& helpers, const jit_options& options,
             jit_program::implementation& output)
        : Xbyak::CodeGenerator(4096, Xbyak::AutoGrow, &assembly_allocator), _code(code), _helpers(helpers),
          _options(options), _output(output), _labels(code.size()) {}

    expected<void> run();

private:
    /// The x86-64 register holding eBPF register `r` (kernel mapping, see jit.hpp).
    const Xbyak::Reg64& reg(int r) const {
        static const Xbyak::Reg64 registers[16] = {
            Xbyak::util::rax, Xbyak::util::rdi, Xbyak::util::rsi, Xbyak::util::rdx, Xbyak::util::rcx, Xbyak::util::r8,
            Xbyak::util::rbx, Xbyak::util::r13, Xbyak::util::r14, Xbyak::util::r15, Xbyak::util::rbp, Xbyak::util::rbp,
            Xbyak::util::rbp, Xbyak::util::rbp, Xbyak::util::rbp, Xbyak::util::rbp};
        return registers[r & 15]; // r11..r15 do not exist (validate()); any nibble indexes safely
    }
    Xbyak::Reg sized(int r, bool wide) const { return wide ? Xbyak::Reg(reg(r)) : Xbyak::Reg(reg(r).cvt32()); }
    Xbyak::Address state(int displacement, int bytes) const {
        switch (bytes) {
        case 1:
            return byte[r12 + displacement];
        case 4:
            return dword[r12 + displacement];
        default:
            return qword[r12 + displacement];
        }
    }

    void find_functions();
    /// Lookups whose map is known without the verifier: `lddw r1, MAP` earlier in the same basic block, r1 untouched
    /// since. Fills _known_maps.
    void find_known_maps();
    /// The map a bpf_map_lookup_elem at `at` always looks in, from the verifier's facts or find_known_maps().
    map* constant_map(std::size_t at) const;
    void emit_batch_entry();
    void emit_trampoline();
    /// What both entries from C++ (batch entry, trampoline) begin and end with: the host's callee-saved registers
    /// and the outer unwinding point (state_base_rsp, for nested entries) pushed on entry, rdi holding the
    /// run_state; popped again from r12 (the run_state) before returning.
    void emit_entry_save();
    void emit_entry_return();
    void emit_prologue();
    void emit_epilogue();
    void emit_instruction(std::size_t at);
    void emit_alu(std::size_t at, const instruction& ins);
    void emit_divide(const instruction& ins, bool wide, bool modulo);
    void emit_shift(const instruction& ins, bool wide);
    void emit_jump(std::size_t at, const instruction& ins);
    void emit_load(const instruction& ins);
    void emit_store(const instruction& ins);
    void emit_atomic(std::size_t at, const instruction& ins);
    void emit_call(std::size_t at, const instruction& ins);
    void emit_may_goto(std::size_t at, const instruction& ins);
    void emit_helper_call(helper_function function);
    bool emit_inline_lookup(std::size_t at);
    void emit_stubs();
    /// A cold exit: records the failure and unwinds.
    Xbyak::Label& error_site(jit::failure_kind kind, std::size_t at, bool with_value);

    std::size_t target_of(std::size_t at, std::int64_t relative) const {
        return static_cast<std::size_t>(static_cast<std::int64_t>(at) + 1 + relative);
    }

    std::span<const instruction> _code;
    const helper_table& _helpers;
    const jit_options& _options;
    jit_program::implementation& _output;
    std::vector<Xbyak::Label> _labels;                     ///< at each instruction, after any prologue
    std::vector<std::unique_ptr<Xbyak::Label>> _functions; ///< by instruction: the prologue of a function there
    std::vector<map*> _known_maps;                         ///< by instruction: r1's map at a lookup, or nullptr
    int _budget_bytes{}; ///< 16 when the program has a may_goto (see the layout above), else 0
    Xbyak::Label _may_goto_refresh;
    Xbyak::Label _stop;
    Xbyak::Label _tail_call;
    Xbyak::Label _abort;
    struct deferred_error {
        jit::failure_kind kind;
        std::size_t at;
        bool with_value;
        Xbyak::Label label;
    };
    std::vector<std::unique_ptr<deferred_error>> _errors;
};

void compiler::find_functions() {
    _functions.resize(_code.size());
    const auto mark = [&](std::size_t pc) {
        if (pc < _code.size() && !_functions[pc]) {
            _functions[pc] = std::make_unique<Xbyak::Label>();
        }
    };
    mark(0);
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        const instruction& ins = _code[pc];
        if (ins.opcode == op::call && ins.src == op::call_local) {
            mark(target_of(pc, ins.imm));
        } else if (ins.opcode == op::lddw) {
            if (ins.src == op::pseudo_func) {
                mark(target_of(pc, ins.imm)); // a callback: bpf_loop and friends enter there
            }
            ++pc;
        }
    }
}

void compiler::find_known_maps() {
    _known_maps.assign(_code.size(), nullptr);
    if (_options.maps.empty()) {
        return;
    }
    // Where control can arrive other than from the instruction before: the block's knowledge ends there.
    std::vector<bool> entered(_code.size(), false);
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        const instruction& ins = _code[pc];
        if (_functions[pc]) {
            entered[pc] = true;
        }
        if (ins.opcode == op::lddw) {
            ++pc;
            continue;
        }
        const std::uint8_t operation = op::alu_op(ins.opcode);
        if (op::is_jump(ins.opcode) && operation != op::jmp_call && operation != op::jmp_exit) {
            const std::size_t target = target_of(pc, ins.opcode == op::ja32 ? ins.imm : ins.offset);
            if (target < entered.size()) {
                entered[target] = true;
            }
        }
    }
    const auto map_at = [&](std::uint64_t address) -> map* {
        for (const auto& candidate : _options.maps) {
            if (reinterpret_cast<std::uint64_t>(candidate.get()) == address) {
                return candidate.get();
            }
        }
        return nullptr;
    };
    map* r1 = nullptr;
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        const instruction& ins = _code[pc];
        if (entered[pc]) {
            r1 = nullptr;
        }
        if (ins.opcode == op::lddw) {
            if (ins.dst == 1) {
                const std::uint64_t value =
                    static_cast<std::uint32_t>(ins.imm) |
                    (static_cast<std::uint64_t>(static_cast<std::uint32_t>(_code[pc + 1].imm)) << 32);
                r1 = ins.src == op::pseudo_imm64 ? map_at(value) : nullptr;
            }
            ++pc;
            continue;
        }
        switch (op::cls(ins.opcode)) {
        case op::cls_alu:
        case op::cls_alu64:
        case op::cls_ldx:
            if (ins.dst == 1) {
                r1 = nullptr;
            }
            break;
        case op::cls_stx:
            if (op::mode(ins.opcode) == op::mode_atomic && ins.src == 1) {
                r1 = nullptr; // the fetch forms write their source register
            }
            break;
        case op::cls_jmp:
            if (op::alu_op(ins.opcode) == op::jmp_call) {
                if (ins.opcode == op::call && ins.src == op::call_helper) {
                    _known_maps[pc] = r1;
                }
                r1 = nullptr; // calls clobber r1..r5
            }
            break;
        default:
            break;
        }
    }
}

map* compiler::constant_map(std::size_t at) const {
    if (at < _options.facts.size() && _options.facts[at].constant_map) {
        const std::uint32_t index = *_options.facts[at].constant_map;
        return index < _options.maps.size() ? _options.maps[index].get() : nullptr;
    }
    return _known_maps[at];
}

void compiler::emit_prologue() {
    push(rbp);
    push(rbx);
    push(r13);
    push(r14);
    push(r15);
    sub(rsp, frame_bytes + _budget_bytes);
    lea(rbp, ptr[rsp + frame_bytes + _budget_bytes]);
    if (_budget_bytes != 0) {
        static_assert(sizeof(may_goto_budget) == 16 && offsetof(may_goto_budget, timestamp) == 8);
        mov(qword[rsp + offsetof(may_goto_budget, count)], static_cast<std::uint32_t>(may_goto_chunk));
        mov(qword[rsp + offsetof(may_goto_budget, timestamp)], 0);
    }
}

void compiler::emit_epilogue() {
    mov(rsp, rbp); // r10 is read-only, so it still marks the top of this frame
    pop(r15);
    pop(r14);
    pop(r13);
    pop(rbx);
    pop(rbp);
    ret();
}

void compiler::emit_entry_save() {
    push(rbp);
    push(rbx);
    push(r12);
    push(r13);
    push(r14);
    push(r15);
    push(qword[rdi + state_base_rsp]); // nested entries (callbacks) restore the outer unwinding point
}

void compiler::emit_entry_return() {
    pop(qword[r12 + state_base_rsp]);
    pop(r15);
    pop(r14);
    pop(r13);
    pop(r12);
    pop(rbx);
    pop(rbp);
    ret();
}

// The batch entry, System V: rdi = run_state*, rsi = batch_arguments*, rdx = first index; returns the index reached.
// Per batch: host callee-saved registers, r12, the unwinding point. Per packet: the execution state's packet fields,
// the few call_context fields a run may leave behind, r1..r5, the call, r0 to results, the redirect decision.
void compiler::emit_batch_entry() {
    const std::int64_t redirect = offset_of_redirect();
    const std::int64_t packet_context = offset_of_packet_context();
    constexpr int args_slot = 0;
    constexpr int index_slot = 8;
    Xbyak::Label loop;
    Xbyak::Label next;
    Xbyak::Label finish;

    emit_entry_save();
    sub(rsp, 16); // locals; rsp stays 16-byte aligned (return address + 7 pushes + 16)
    mov(r12, rdi);
    mov(qword[rsp + args_slot], rsi);
    mov(qword[rsp + index_slot], rdx);
    lea(r11, ptr[rsp - 8]); // the program's frame starts below the return address of the call below
    mov(state(state_base_rsp, 8), r11);

    L(loop);
    mov(r11, qword[rsp + args_slot]);
    mov(rax, qword[rsp + index_slot]);
    cmp(rax, qword[r11 + offsetof(jit::batch_arguments, count)]);
    jae(finish, T_NEAR);
    mov(r10, qword[r11 + offsetof(jit::batch_arguments, contexts)]);
    mov(rdi, qword[r10 + rax * 8]);
    mov(r9, qword[r11 + offsetof(jit::batch_arguments, state)]);
    mov(qword[r9 + packet_context], rdi); // execution_state::begin_packet()
    for (std::size_t at = 0; at < sizeof(redirect_decision); at += 8) {
        mov(qword[r9 + redirect + static_cast<std::int64_t>(at)], 0);
    }
    xor_(eax, eax);
    mov(state(state_stop, 1), al);
    mov(state(state_tail_calls, 4), eax);
    mov(state(state_tail_call, 8), rax);
    mov(state(state_depth, 4), eax);
    mov(r11, reinterpret_cast<std::uint64_t>(&_output)); // a tail call in the last packet switched programs
    mov(state(state_running, 8), r11);
    xor_(esi, esi);
    xor_(edx, edx);
    xor_(ecx, ecx);
    xor_(r8d, r8d);
    call(*_functions[0]);
    cmp(state(state_failed, 4), 0);
    jne(finish, T_NEAR);
    mov(r11, qword[rsp + args_slot]);
    mov(r10, qword[rsp + index_slot]);
    mov(r9, qword[r11 + offsetof(jit::batch_arguments, results)]);
    mov(qword[r9 + r10 * 8], rax);
    cmp(eax, jit_xdp_redirect);
    jne(next, T_NEAR);
    imul(r10, r10, static_cast<int>(sizeof(redirect_decision)));
    add(r10, qword[r11 + offsetof(jit::batch_arguments, decisions)]);
    mov(r9, qword[r11 + offsetof(jit::batch_arguments, state)]);
    for (std::size_t at = 0; at < sizeof(redirect_decision); at += 8) {
        mov(rax, qword[r9 + redirect + static_cast<std::int64_t>(at)]);
        mov(qword[r10 + static_cast<std::int64_t>(at)], rax);
    }
    L(next);
    add(qword[rsp + index_slot], 1);
    jmp(loop, T_NEAR);

    L(finish);
    mov(rax, qword[rsp + index_slot]);
    add(rsp, 16);
    emit_entry_return();
}

// The trampoline, System V: rdi = run_state*, rsi = native function entry, rdx = five arguments; returns r0. run()
// and callbacks (call_context::call) enter generated code here.
void compiler::emit_trampoline() {
    emit_entry_save(); // rsp is 16-byte aligned again
    mov(r12, rdi);
    mov(rax, rsi);
    mov(r11, rdx);
    mov(rdi, qword[r11]);
    mov(rsi, qword[r11 + 8]);
    mov(rdx, qword[r11 + 16]);
    mov(rcx, qword[r11 + 24]);
    mov(r8, qword[r11 + 32]);
    lea(r11, ptr[rsp - 8]);
    mov(state(state_base_rsp, 8), r11);
    call(rax);
    emit_entry_return();
}

Xbyak::Label& compiler::error_site(jit::failure_kind kind, std::size_t at, bool with_value) {
    _errors.push_back(std::make_unique<deferred_error>(deferred_error{kind, at, with_value, {}}));
    return _errors.back()->label;
}

void compiler::emit_stubs() {
    if (_budget_bytes != 0) {
        // r11 = the frame's budget; returns its new count in r11. Called from a function body (rsp 16-byte aligned
        // there, 8 off after the call): seven pushes realign it. r0..r5 live in caller-saved registers.
        L(_may_goto_refresh);
        push(rax);
        push(rdi);
        push(rsi);
        push(rdx);
        push(rcx);
        push(r8);
        push(r9);
        mov(rdi, r11);
        mov(rax, reinterpret_cast<std::uint64_t>(&may_goto_refresh));
        call(rax);
        mov(r11, rax);
        pop(r9);
        pop(r8);
        pop(rcx);
        pop(rdx);
        pop(rsi);
        pop(rdi);
        pop(rax);
        ret();
    }

    // A helper set call_context::stop: the program ends with r0 = stop_value.
    L(_stop);
    mov(rax, state(state_stop_value, 8));
    mov(rsp, state(state_base_rsp, 8));
    ret();

    // A helper set call_context::tail_call: every frame dropped, r1 kept, the target's first function entered.
    L(_tail_call);
    mov(rdi, r12);
    mov(rax, reinterpret_cast<std::uint64_t>(&jit::resolve_tail_call));
    call(rax); // rsp is aligned: we came from a function body
    test(rax, rax);
    jz(_abort, T_NEAR);
    mov(rsp, state(state_base_rsp, 8));
    mov(rdi, state(state_saved_r1, 8));
    mov(state(state_depth, 4), 0);
    jmp(rax);

    L(_abort);
    mov(state(state_failed, 4), 1);
    mov(rsp, state(state_base_rsp, 8));
    ret();

    for (const auto& site : _errors) {
        L(site->label);
        if (site->with_value) {
            mov(state(state_error_value, 8), r11);
        }
        mov(state(state_error_kind, 4), static_cast<std::uint32_t>(site->kind));
        mov(state(state_error_pc, 4), static_cast<std::uint32_t>(site->at));
        jmp(_abort, T_NEAR);
    }
}

expected<void> compiler::run() {
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        if (_code[pc].opcode == op::may_goto) {
            _budget_bytes = sizeof(may_goto_budget);
        } else if (_code[pc].opcode == op::lddw) {
            ++pc;
        }
    }
    find_functions();
    find_known_maps();
    _output.batch_entry = getSize();
    emit_batch_entry();
    _output.trampoline = getSize();
    emit_trampoline();
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        if (_functions[pc]) {
            if (pc != 0) {
                // Falling into a function from the instruction before it skips its prologue, as the interpreter
                // simply runs on.
                jmp(_labels[pc], T_NEAR);
            }
            align(16);
            _output.functions.emplace_back(static_cast<std::uint32_t>(pc), static_cast<std::uint32_t>(getSize()));
            L(*_functions[pc]);
            emit_prologue();
        }
        L(_labels[pc]);
        emit_instruction(pc);
        if (_code[pc].opcode == op::lddw) {
            ++pc;
        }
    }
    emit_stubs();
    ready(); // resolves AutoGrow's jumps; the allocator keeps the buffer writable and never executable
    _output.main_entry = _output.functions.front().second;
    auto memory = jit::executable_memory::create({getCode(), getSize()});
    if (!memory) {
        return memory.error();
    }
    _output.memory = std::move(*memory);
    return {};
}

void compiler::emit_instruction(std::size_t at) {
    const instruction& ins = _code[at];
    switch (op::cls(ins.opcode)) {
    case op::cls_alu:
    case op::cls_alu64:
        emit_alu(at, ins);
        return;
    case op::cls_jmp:
    case op::cls_jmp32:
        emit_jump(at, ins);
        return;
    case op::cls_ldx:
        emit_load(ins);
        return;
    case op::cls_st:
        emit_store(ins);
        return;
    case op::cls_stx:
        if (op::mode(ins.opcode) == op::mode_atomic) {
            emit_atomic(at, ins);
        } else {
            emit_store(ins);
        }
        return;
    default: // cls_ld: lddw only (validate() refused the legacy packet loads)
        if (ins.src == op::pseudo_func) {
            // The function handle is the interpreter's: the address of the target instruction.
            mov(reg(ins.dst), reinterpret_cast<std::uint64_t>(_code.data() + target_of(at, ins.imm)));
        } else {
            const std::uint64_t value =
                static_cast<std::uint32_t>(ins.imm) |
                (static_cast<std::uint64_t>(static_cast<std::uint32_t>(_code[at + 1].imm)) << 32);
            mov(reg(ins.dst), value);
        }
        return;
    }
}

void compiler::emit_alu(std::size_t, const instruction& ins) {
    const bool wide = op::cls(ins.opcode) == op::cls_alu64;
    const bool immediate = op::source(ins.opcode) == op::src_k;
    const Xbyak::Reg dst = sized(ins.dst, wide);
    const Xbyak::Reg src = sized(ins.src, wide);
    const auto imm = static_cast<std::uint32_t>(ins.imm); // x86 sign-extends imm32 in 64-bit operations, as eBPF
    switch (op::alu_op(ins.opcode)) {
    case op::alu_add:
        immediate ? add(dst, imm) : add(dst, src);
        return;
    case op::alu_sub:
        immediate ? sub(dst, imm) : sub(dst, src);
        return;
    case op::alu_mul:
        immediate ? imul(dst, dst, static_cast<int>(ins.imm)) : imul(dst, src);
        return;
    case op::alu_div:
        emit_divide(ins, wide, false);
        return;
    case op::alu_mod:
        emit_divide(ins, wide, true);
        return;
    case op::alu_or:
        immediate ? or_(dst, imm) : or_(dst, src);
        return;
    case op::alu_and:
        immediate ? and_(dst, imm) : and_(dst, src);
        return;
    case op::alu_xor:
        immediate ? xor_(dst, imm) : xor_(dst, src);
        return;
    case op::alu_lsh:
    case op::alu_rsh:
    case op::alu_arsh:
        emit_shift(ins, wide);
        return;
    case op::alu_neg:
        neg(dst);
        return;
    case op::alu_mov:
        if (immediate) {
            if (wide) {
                mov(reg(ins.dst), static_cast<std::uint64_t>(static_cast<std::int64_t>(ins.imm)));
            } else {
                mov(dst, imm);
            }
            return;
        }
        switch (ins.offset) { // movsx: offset 8/16/32 sign-extends that many low bits
        case 8:
            movsx(dst, reg(ins.src).cvt8());
            return;
        case 16:
            movsx(dst, reg(ins.src).cvt16());
            return;
        case 32:
            if (wide) {
                movsxd(reg(ins.dst), reg(ins.src).cvt32());
                return;
            }
            break;
        default:
            break;
        }
        if (wide && ins.dst == ins.src) {
            return;
        }
        mov(dst, src); // a 32-bit mov zero-extends, even onto itself
        return;
    case op::alu_end:
        if (!wide && immediate) { // le: truncation on a little-endian host
            if (ins.imm == 16) {
                movzx(reg(ins.dst).cvt32(), reg(ins.dst).cvt16());
            } else if (ins.imm == 32) {
                mov(reg(ins.dst).cvt32(), reg(ins.dst).cvt32());
            }
            return;
        }
        // be (ALU, src bit) and bswap (ALU64): reverse the low imm bits' bytes, clear the rest.
        if (ins.imm == 16) {
            rol(reg(ins.dst).cvt16(), 8);
            movzx(reg(ins.dst).cvt32(), reg(ins.dst).cvt16());
        } else if (ins.imm == 32) {
            bswap(reg(ins.dst).cvt32());
        } else {
            bswap(reg(ins.dst));
        }
        return;
    default:
        return; // validate() refused it
    }
}

// div/mod: x86's div needs rdx:rax, which hold r3 and r0; both are kept in r9/r10 and restored. The divisor is in r11
// before anything moves. Zero divisors and, signed, -1 divisors (INT_MIN / -1 faults on x86) take the RFC's answers.
void compiler::emit_divide(const instruction& ins, bool wide, bool modulo) {
    const bool immediate = op::source(ins.opcode) == op::src_k;
    const bool is_signed = ins.offset == 1;
    const Xbyak::Reg divisor = wide ? Xbyak::Reg(r11) : Xbyak::Reg(r11d);
    const Xbyak::Reg result = wide ? Xbyak::Reg(rax) : Xbyak::Reg(eax);
    Xbyak::Label store;
    Xbyak::Label normal;
    if (immediate) {
        mov(r11, static_cast<std::uint64_t>(static_cast<std::int64_t>(ins.imm)));
    } else {
        mov(r11, reg(ins.src));
    }
    mov(r10, rax);
    mov(r9, rdx);
    if (ins.dst == 3) {
        mov(rax, r9);
    } else if (ins.dst != 0) {
        mov(rax, reg(ins.dst));
    }
    test(divisor, divisor);
    jnz(normal, T_NEAR);
    if (modulo) {
        if (!wide) {
            mov(eax, eax); // dividend unchanged, but as a 32-bit result
        }
    } else {
        xor_(eax, eax);
    }
    jmp(store, T_NEAR);
    L(normal);
    if (is_signed) {
        Xbyak::Label not_minus_one;
        cmp(divisor, -1);
        jne(not_minus_one, T_NEAR);
        if (modulo) {
            xor_(eax, eax);
        } else {
            neg(result); // wraps: INT_MIN / -1 = INT_MIN
        }
        jmp(store, T_NEAR);
        L(not_minus_one);
        if (wide) {
            cqo();
        } else {
            cdq();
        }
        idiv(divisor);
    } else {
        xor_(edx, edx);
        div(divisor);
    }
    if (modulo) {
        mov(result, wide ? Xbyak::Reg(rdx) : Xbyak::Reg(edx));
    }
    L(store);
    mov(r11, rax);
    mov(rax, r10);
    mov(rdx, r9);
    mov(reg(ins.dst), r11);
}

// Shifts: x86 masks the count to 5 or 6 bits exactly as eBPF does. A register count must be in cl (r4's low byte).
void compiler::emit_shift(const instruction& ins, bool wide) {
    // `count` is an immediate (int) or cl.
    const auto shift = [&](const Xbyak::Operand& target, const auto& count) {
        switch (op::alu_op(ins.opcode)) {
        case op::alu_lsh:
            shl(target, count);
            break;
        case op::alu_rsh:
            shr(target, count);
            break;
        default:
            sar(target, count);
            break;
        }
    };
    const Xbyak::Reg dst = sized(ins.dst, wide);
    if (op::source(ins.opcode) == op::src_k) {
        const int count = ins.imm & (wide ? 63 : 31);
        if (count == 0) {
            if (!wide) {
                mov(dst, dst); // still a 32-bit write: the upper half becomes zero
            }
            return;
        }
        shift(dst, count);
        return;
    }
    if (ins.src == 4) {
        shift(dst, cl);
    } else {
        // cl must hold the count: rcx's value waits in r11, and when rcx is the destination the shift works on that
        // copy, which then goes back to rcx.
        const Xbyak::Reg target = ins.dst != 4 ? dst : wide ? Xbyak::Reg(r11) : Xbyak::Reg(r11d);
        mov(r11, rcx);
        mov(rcx, reg(ins.src));
        shift(target, cl);
        mov(rcx, r11);
    }
    if (!wide) {
        mov(dst, dst); // a zero count leaves the register untouched on x86; eBPF's 32-bit result is zero-extended
    }
}

void compiler::emit_jump(std::size_t at, const instruction& ins) {
    const std::uint8_t operation = op::alu_op(ins.opcode);
    const bool wide = op::cls(ins.opcode) == op::cls_jmp;
    if (operation == op::jmp_call) {
        emit_call(at, ins);
        return;
    }
    if (operation == op::jmp_exit) {
        emit_epilogue();
        return;
    }
    if (ins.opcode == op::may_goto) {
        emit_may_goto(at, ins);
        return;
    }
    if (operation == op::jmp_ja) {
        const std::size_t target = target_of(at, wide ? ins.offset : ins.imm);
        if (target != at + 1) {
            jmp(_labels[target], target <= at ? T_AUTO : T_NEAR);
        }
        return;
    }
    const Xbyak::Reg dst = sized(ins.dst, wide);
    const bool immediate = op::source(ins.opcode) == op::src_k;
    if (operation == op::jmp_jset) {
        if (immediate) {
            if (wide) {
                test(reg(ins.dst),
                     static_cast<std::uint32_t>(ins.imm)); // imm32 sign-extended, as the interpreter's 64-bit imm
            } else {
                test(dst, static_cast<std::uint32_t>(ins.imm));
            }
        } else {
            test(dst, sized(ins.src, wide));
        }
    } else if (immediate) {
        cmp(dst, static_cast<std::uint32_t>(ins.imm));
    } else {
        cmp(dst, sized(ins.src, wide));
    }
    Xbyak::Label& target = _labels[target_of(at, ins.offset)];
    const Xbyak::CodeGenerator::LabelType kind = target_of(at, ins.offset) <= at ? T_AUTO : T_NEAR;
    switch (operation) {
    case op::jmp_jeq:
        je(target, kind);
        break;
    case op::jmp_jgt:
        ja(target, kind);
        break;
    case op::jmp_jge:
        jae(target, kind);
        break;
    case op::jmp_jset:
        jnz(target, kind);
        break;
    case op::jmp_jne:
        jne(target, kind);
        break;
    case op::jmp_jsgt:
        jg(target, kind);
        break;
    case op::jmp_jsge:
        jge(target, kind);
        break;
    case op::jmp_jlt:
        jb(target, kind);
        break;
    case op::jmp_jle:
        jbe(target, kind);
        break;
    case op::jmp_jslt:
        jl(target, kind);
        break;
    case op::jmp_jsle:
        jle(target, kind);
        break;
    default:
        break;
    }
}

void compiler::emit_may_goto(std::size_t at, const instruction& ins) {
    if (ins.offset == 0) {
        return; // the kernel removes may_goto +0 (opt_remove_nops); the interpreter skips it too
    }
    const int budget = -(frame_bytes + _budget_bytes);
    const std::size_t target = target_of(at, ins.offset);
    Xbyak::Label store;
    mov(r11, qword[rbp + budget]);
    test(r11, r11);
    jz(_labels[target], target <= at ? T_AUTO : T_NEAR);
    sub(r11, 1);
    jnz(store);
    lea(r11, ptr[rbp + budget]);
    call(_may_goto_refresh);
    L(store);
    mov(qword[rbp + budget], r11);
}

void compiler::emit_load(const instruction& ins) {
    const Xbyak::Reg64& dst = reg(ins.dst);
    const Xbyak::RegExp address = reg(ins.src) + ins.offset;
    const bool sign_extend = op::mode(ins.opcode) == op::mode_memsx;
    switch (op::size(ins.opcode)) {
    case op::size_b:
        sign_extend ? movsx(dst, byte[address]) : movzx(dst.cvt32(), byte[address]);
        return;
    case op::size_h:
        sign_extend ? movsx(dst, word[address]) : movzx(dst.cvt32(), word[address]);
        return;
    case op::size_w:
        sign_extend ? movsxd(dst, dword[address]) : mov(dst.cvt32(), dword[address]);
        return;
    default:
        mov(dst, qword[address]);
        return;
    }
}

void compiler::emit_store(const instruction& ins) {
    const Xbyak::RegExp address = reg(ins.dst) + ins.offset;
    if (op::cls(ins.opcode) == op::cls_st) {
        const auto imm = static_cast<std::uint32_t>(ins.imm);
        switch (op::size(ins.opcode)) {
        case op::size_b:
            mov(byte[address], imm & 0xff);
            return;
        case op::size_h:
            mov(word[address], imm & 0xffff);
            return;
        case op::size_w:
            mov(dword[address], imm);
            return;
        default: // imm32 sign-extended, as the interpreter stores it
            mov(qword[address], static_cast<std::uint64_t>(static_cast<std::int64_t>(ins.imm)));
            return;
        }
    }
    const Xbyak::Reg64& src = reg(ins.src);
    switch (op::size(ins.opcode)) {
    case op::size_b:
        mov(byte[address], src.cvt8());
        return;
    case op::size_h:
        mov(word[address], src.cvt16());
        return;
    case op::size_w:
        mov(dword[address], src.cvt32());
        return;
    default:
        mov(qword[address], src);
        return;
    }
}

// Atomics are real locked instructions: maps are shared between workers.
void compiler::emit_atomic(std::size_t, const instruction& ins) {
    const bool wide = op::size(ins.opcode) == op::size_dw;
    const Xbyak::RegExp address = reg(ins.dst) + ins.offset;
    const Xbyak::Address target = wide ? qword[address] : dword[address];
    const Xbyak::Reg src = sized(ins.src, wide);
    switch (ins.imm) {
    case op::atomic_add:
        lock();
        add(target, src);
        return;
    case op::atomic_or:
        lock();
        or_(target, src);
        return;
    case op::atomic_and:
        lock();
        and_(target, src);
        return;
    case op::atomic_xor:
        lock();
        xor_(target, src);
        return;
    case op::atomic_add | op::atomic_fetch:
        lock();
        xadd(target, src); // src receives the old value, zero-extended when 32 bits
        return;
    case op::atomic_xchg:
        xchg(target, src);
        return;
    case op::atomic_cmpxchg:
        lock();
        cmpxchg(target, src);
        if (!wide) {
            mov(eax, eax); // a successful 32-bit cmpxchg leaves rax's upper half; r0 is the zero-extended old value
        }
        return;
    default:
        break;
    }
    // or/and/xor with fetch: a compare-exchange loop through rax (r0 saved in r10), as the kernel's JIT does.
    const Xbyak::Reg scratch = wide ? Xbyak::Reg(r11) : Xbyak::Reg(r11d);
    const Xbyak::Reg old_value = wide ? Xbyak::Reg(rax) : Xbyak::Reg(eax);
    const Xbyak::Reg operand = ins.src == 0 ? (wide ? Xbyak::Reg(r10) : Xbyak::Reg(r10d)) : src;
    Xbyak::Label retry;
    lea(r9, ptr[address]);
    mov(r10, rax);
    const Xbyak::Address slot = wide ? qword[r9] : dword[r9];
    mov(old_value, slot);
    L(retry);
    mov(scratch, old_value);
    switch (ins.imm & ~op::atomic_fetch) {
    case op::atomic_or:
        or_(scratch, operand);
        break;
    case op::atomic_and:
        and_(scratch, operand);
        break;
    default:
        xor_(scratch, operand);
        break;
    }
    lock();
    cmpxchg(slot, scratch);
    jne(retry);
    if (ins.src != 0) {
        mov(src, old_value);
        mov(rax, r10);
    } // else r0 is the fetched register: it keeps the old value
}

void compiler::emit_helper_call(helper_function function) {
    mov(state(state_saved_r1, 8), rdi);
    lea(r9, ptr[r12 + state_context]);
    mov(rax, reinterpret_cast<std::uint64_t>(function));
    call(rax);
    cmp(state(state_stop, 1), 0);
    jne(_stop, T_NEAR);
    cmp(state(state_tail_call, 8), 0);
    jne(_tail_call, T_NEAR);
}

// bpf_map_lookup_elem(map, &key) on a constant array map: the kernel's array_map_gen_lookup, with this worker's slot
// of a per-CPU array. r2 (rsi) points to the 4-byte key. The map is constant when the verifier says so, or when the
// lowered code loads its address into r1 in the same basic block (what clang emits for every lookup of a named map).
bool compiler::emit_inline_lookup(std::size_t at) {
    map* known = constant_map(at);
    if (known == nullptr) {
        return false;
    }
    map& target = *known;
    if (target.type() != map_type::array && target.type() != map_type::percpu_array) {
        return false;
    }
    auto& array = static_cast<array_map&>(target);
    if (array.value_stride() > 0x7fffffff || (array.cpu_stride() != 0 && _options.cpu >= array.cpus())) {
        return false;
    }
    const auto base = reinterpret_cast<std::uint64_t>(array.values_base()) + _options.cpu * array.cpu_stride();
    Xbyak::Label missing;
    Xbyak::Label done;
    mov(eax, dword[rsi]);
    cmp(eax, array.max_entries());
    jae(missing, T_NEAR);
    imul(rax, rax, static_cast<int>(array.value_stride()));
    mov(r11, base);
    add(rax, r11);
    jmp(done, T_NEAR);
    L(missing);
    xor_(eax, eax);
    L(done);
    ++_output.inlined_lookups;
    return true;
}

void compiler::emit_call(std::size_t at, const instruction& ins) {
    if (ins.opcode == op::callx) {
        // The register named in dst holds the helper id (the conformance suite's convention).
        Xbyak::Label& no_helper = error_site(jit::failure_kind::callx, at, true);
        mov(r11, reg(ins.dst));
        cmp(r11, static_cast<std::uint32_t>(_output.callx_table.size()));
        jae(no_helper, T_NEAR);
        mov(r10, reinterpret_cast<std::uint64_t>(_output.callx_table.data()));
        mov(r10, qword[r10 + r11 * 8]);
        test(r10, r10);
        jz(no_helper, T_NEAR);
        mov(state(state_saved_r1, 8), rdi);
        lea(r9, ptr[r12 + state_context]);
        call(r10);
        cmp(state(state_stop, 1), 0);
        jne(_stop, T_NEAR);
        cmp(state(state_tail_call, 8), 0);
        jne(_tail_call, T_NEAR);
        return;
    }
    if (ins.src == op::call_local) {
        Xbyak::Label& too_deep = error_site(jit::failure_kind::call_depth, at, false);
        cmp(state(state_depth, 4), max_call_depth - 1);
        jae(too_deep, T_NEAR);
        add(state(state_depth, 4), 1);
        call(*_functions[target_of(at, ins.imm)]);
        sub(state(state_depth, 4), 1);
        return;
    }
    const auto id = static_cast<std::uint32_t>(ins.imm);
    constexpr std::uint32_t map_lookup_elem = 1; // BPF_FUNC_map_lookup_elem
    if (id == map_lookup_elem && emit_inline_lookup(at)) {
        return;
    }
    emit_helper_call(_helpers.find(id)); // check_helper_calls() proved it exists
}

} // namespace

const void* jit_program::implementation::function_at(std::size_t pc) const {
    const auto found = std::lower_bound(functions.begin(), functions.end(), pc,
                                        [](const auto& entry, std::size_t key) { return entry.first < key; });
    return found != functions.end() && found->first == pc ? at(found->second) : nullptr;
}

jit::trampoline_function jit_program::implementation::trampoline_entry() const {
    return reinterpret_cast<jit::trampoline_function>(reinterpret_cast<std::uintptr_t>(at(trampoline)));
}

jit::batch_function jit_program::implementation::batch() const {
    return reinterpret_cast<jit::batch_function>(reinterpret_cast<std::uintptr_t>(at(batch_entry)));
}

jit_program::jit_program(std::unique_ptr<implementation> self) : _self(std::move(self)) {}
jit_program::jit_program(jit_program&&) noexcept = default;
jit_program& jit_program::operator=(jit_program&&) noexcept = default;
jit_program::~jit_program() = default;

std::span<const instruction> jit_program::code() const {
    return _self->code;
}
const std::uint8_t* jit_program::native_code() const {
    return _self->memory.data();
}
std::size_t jit_program::native_size() const {
    return _self->memory.size();
}
std::size_t jit_program::inlined_lookups() const {
    return _self->inlined_lookups;
}

expected<jit_program> jit_program::compile(std::span<const instruction> code, const helper_table& helpers,
                                           const jit_options& options) {
    // The generator trusts the encoding (targets in range, lddw pairs whole, helpers present).
    if (auto checked = check_helper_calls(code, helpers); !checked) {
        return checked.error();
    }
    auto self = std::make_unique<implementation>();
    self->code = code;
    self->helpers = &helpers;
    self->callx_table.resize(max_helper_id);
    for (std::uint32_t id = 0; id < max_helper_id; ++id) {
        self->callx_table[id] = helpers.find(id);
    }
    try {
        compiler generator(code, helpers, options, *self);
        if (auto generated = generator.run(); !generated) {
            return generated.error();
        }
    } catch (const Xbyak::Error& failure) {
        return error{fmt::format("the JIT's assembler failed: {}", Xbyak::ConvertErrorToString(failure))};
    } catch (const std::exception& failure) {
        return error{fmt::format("the JIT failed: {}", failure.what())};
    }
    return jit_program(std::move(self));
}

} // namespace sluice::ebpf
