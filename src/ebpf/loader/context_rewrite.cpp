// The context rewrite: which loads read `struct xdp_md`, found as the kernel's verifier finds them, and rewritten
// into loads from sluice's xdp_context (net/core/filter.c: xdp_is_valid_access, xdp_convert_ctx_access).
//
// A forward data-flow analysis over the program's control-flow graph tracks, for each register and each 8-byte
// stack slot, whether it holds the context pointer: r1 at the entry of the program and of any function called with
// the context in r1, copied by mov, spilled to the stack and filled back. Where paths join, a value is the context
// only if every path agrees; a register that is the context on one path and something else on another is "mixed",
// and an access through it is refused, as the kernel refuses it ("same insn cannot be used with different
// pointers"). Stack pointers with a known offset are tracked so that spills through a copy of r10 count too.
//
// Limits, all on the side of refusing or leaving to the verifier: a context pointer spilled into the caller's stack
// and read by a callee through a pointer argument is not followed (clang does not do that at -O1 and above); writes
// by helpers into the stack are not modelled (the verifier, which knows each helper's arguments, checks them).
//
// Each rewrite replaces one instruction with one instruction, so jumps, calls and line info stay valid.
#include <fmt/format.h>

#include <array>
#include <deque>
#include <set>

#include "ebpf/loader/loader_internal.hpp"
#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::ebpf::loader_detail {
namespace {

constexpr std::int32_t xdp_md_size = 24;
constexpr std::size_t stack_slots = stack_size / 8;

enum class kind : std::uint8_t {
    none,          ///< no path has reached here yet (the bottom of the lattice)
    other,         ///< anything but the context: scalars, packet and map pointers, ...
    context,       ///< the context pointer, unchanged
    context_moved, ///< the context pointer with arithmetic applied: the kernel refuses accesses through it
    stack,         ///< this function's frame pointer plus `offset`
    mixed,         ///< the context on some paths, something else on others
};

struct value {
    kind what{kind::none};
    std::int32_t offset{}; ///< for stack

    bool operator==(const value&) const = default;
    bool involves_context() const {
        return what == kind::context || what == kind::context_moved || what == kind::mixed;
    }

    static value other() { return value{kind::other}; }
};

value join(value a, value b) {
    if (a.what == kind::none) {
        return b;
    }
    if (b.what == kind::none || a == b) {
        return a;
    }
    if (a.involves_context() || b.involves_context()) {
        return value{kind::mixed};
    }
    return value::other();
}

struct state {
    std::array<value, register_count> registers{};
    std::array<value, stack_slots> slots{};

    /// Joins `from` into this state; true if anything changed.
    bool absorb(const state& from) {
        bool changed = false;
        for (std::size_t i = 0; i < registers.size(); ++i) {
            const value joined = join(registers[i], from.registers[i]);
            changed |= joined != registers[i];
            registers[i] = joined;
        }
        for (std::size_t i = 0; i < slots.size(); ++i) {
            const value joined = join(slots[i], from.slots[i]);
            changed |= joined != slots[i];
            slots[i] = joined;
        }
        return changed;
    }
};

/// A function's entry: what its arguments hold; all else is unknown and its frame is fresh.
state entry_state(std::array<value, 5> arguments) {
    state result;
    for (value& r : result.registers) {
        r = value::other();
    }
    for (value& slot : result.slots) {
        slot = value::other();
    }
    for (std::size_t i = 0; i < arguments.size(); ++i) {
        result.registers[i + 1] = arguments[i];
    }
    result.registers[frame_pointer] = value{kind::stack, 0};
    return result;
}

struct field_info {
    xdp_md_field field;
    std::size_t context_offset;
    bool pointer;
};

constexpr std::array<field_info, 6> fields{{
    {xdp_md_field::data, xdp_context_data_offset, true},
    {xdp_md_field::data_end, xdp_context_data_end_offset, true},
    {xdp_md_field::data_meta, xdp_context_data_meta_offset, true},
    {xdp_md_field::ingress_ifindex, xdp_context_ingress_ifindex_offset, false},
    {xdp_md_field::rx_queue_index, xdp_context_rx_queue_index_offset, false},
    {xdp_md_field::egress_ifindex, xdp_context_egress_ifindex_offset, false},
}};

class context_analysis {
public:
    explicit context_analysis(program_spec& program) : _program(program), _code(program.code) {}

    expected<void> run() {
        if (_code.empty()) {
            return {};
        }
        build_blocks();
        state start =
            entry_state({value{kind::context}, value::other(), value::other(), value::other(), value::other()});
        enter(0, start);
        while (!_work.empty()) {
            const std::size_t next = _work.front();
            _work.pop_front();
            _queued[next] = false;
            state current = _entry[next];
            (void)run_block(next, current, false); // refuses nothing: checks happen in the final pass
        }
        // Every reachable state is now final: check and rewrite in one more pass.
        for (std::size_t index = 0; index < _blocks.size(); ++index) {
            if (!_reached[index]) {
                continue;
            }
            state current = _entry[index];
            if (auto done = run_block(index, current, true); !done) {
                return done;
            }
        }
        return {};
    }

private:
    struct basic_block {
        std::size_t first{};
        std::size_t end{};      ///< one past the last instruction
        std::size_t function{}; ///< index in program.functions
    };

    std::size_t function_of(std::size_t pc) const {
        for (std::size_t f = 0; f < _program.functions.size(); ++f) {
            const program_function& function = _program.functions[f];
            if (pc >= function.first && pc < function.first + function.count) {
                return f;
            }
        }
        return 0;
    }

    static std::int64_t jump_target(const instruction& insn, std::size_t pc) {
        const std::int64_t relative = insn.opcode == op::ja32 ? insn.imm : insn.offset;
        return static_cast<std::int64_t>(pc) + 1 + relative;
    }

    static bool is_branch(const instruction& insn) {
        if (!op::is_jump(insn.opcode)) {
            return false;
        }
        const std::uint8_t operation = op::alu_op(insn.opcode);
        return operation != op::jmp_call && operation != op::jmp_exit;
    }

    void build_blocks() {
        const std::size_t size = _code.size();
        std::vector<bool> leader(size, false);
        leader[0] = true;
        for (const program_function& function : _program.functions) {
            if (function.first < size) {
                leader[function.first] = true;
            }
        }
        for (std::size_t pc = 0; pc < size; ++pc) {
            const instruction& insn = _code[pc];
            if (insn.opcode == op::lddw) {
                ++pc;
                continue;
            }
            if (is_branch(insn)) {
                const std::int64_t target = jump_target(insn, pc);
                if (target >= 0 && static_cast<std::size_t>(target) < size) {
                    leader[static_cast<std::size_t>(target)] = true;
                }
            }
            if ((is_branch(insn) || insn.opcode == op::exit) && pc + 1 < size) {
                leader[pc + 1] = true;
            }
        }
        _block_at.assign(size, SIZE_MAX);
        for (std::size_t pc = 0; pc < size; ++pc) {
            if (leader[pc]) {
                _block_at[pc] = _blocks.size();
                _blocks.push_back(basic_block{pc, pc + 1, function_of(pc)});
            } else {
                _blocks.back().end = pc + 1;
            }
        }
        _entry.assign(_blocks.size(), state{});
        _reached.assign(_blocks.size(), false);
        _queued.assign(_blocks.size(), false);
        _returns.assign(_program.functions.size(), value{});
        _callers.assign(_program.functions.size(), {});
    }

    void enter(std::size_t pc, const state& incoming) {
        if (pc >= _code.size() || _block_at[pc] == SIZE_MAX) {
            return; // validate() has refused jumps outside the program or into an lddw
        }
        const std::size_t target = _block_at[pc];
        const bool changed = _entry[target].absorb(incoming);
        if ((changed || !_reached[target]) && !_queued[target]) {
            _work.push_back(target);
            _queued[target] = true;
        }
        _reached[target] = true;
    }

    void requeue(std::size_t index) {
        if (!_queued[index]) {
            _work.push_back(index);
            _queued[index] = true;
        }
    }

    std::string where(std::size_t pc) const { return describe_instruction(_program, pc); }

    error refuse(std::size_t pc, std::string_view what) const {
        return error::at(pc, fmt::format("program '{}': {}: {}", _program.name, where(pc), what));
    }

    static std::optional<std::size_t> slot_of(std::int64_t offset, int bytes) {
        if (offset < -stack_size || offset + bytes > 0) {
            return std::nullopt;
        }
        return static_cast<std::size_t>((offset + stack_size) / 8);
    }

    /// A store of `bytes` at frame offset `offset`: the slot takes `stored` only for an aligned 8-byte spill.
    static void store_to_stack(state& s, std::int64_t offset, int bytes, value stored) {
        if (offset < -stack_size || offset + bytes > 0) {
            return;
        }
        const bool whole = bytes == 8 && offset % 8 == 0;
        const auto first = static_cast<std::size_t>((offset + stack_size) / 8);
        const auto last = static_cast<std::size_t>((offset + bytes - 1 + stack_size) / 8);
        for (std::size_t slot = first; slot <= last && slot < stack_slots; ++slot) {
            s.slots[slot] = whole ? stored : value::other();
        }
    }

    expected<void> check_base(std::size_t pc, value base, std::string_view access) const {
        if (base.what == kind::mixed) {
            return refuse(pc, fmt::format("this {} goes through the context pointer (ctx) on one path and through "
                                          "another pointer on another path; the kernel refuses that (\"same insn "
                                          "cannot be used with different pointers\"). Read the ctx field into a "
                                          "variable on each path before the paths join",
                                          access));
        }
        if (base.what == kind::context_moved) {
            return refuse(pc, fmt::format("this {} goes through the context pointer after arithmetic changed it; "
                                          "the kernel allows only ctx->field at the field's own offset. Access "
                                          "fields as ctx->field",
                                          access));
        }
        return {};
    }

    expected<void> check_and_rewrite_read(std::size_t pc) {
        instruction& insn = _code[pc];
        const std::int32_t offset = insn.offset;
        const int bytes = op::access_bytes(insn.opcode);
        if (offset < 0 || offset >= xdp_md_size) {
            return refuse(pc, fmt::format("reads byte {} of struct xdp_md, which has {} bytes (data, data_end, "
                                          "data_meta, ingress_ifindex, rx_queue_index, egress_ifindex)",
                                          offset, xdp_md_size));
        }
        if (offset % 4 != 0) {
            return refuse(pc, fmt::format("reads struct xdp_md at offset {}, inside a field: fields start at "
                                          "multiples of 4; read the whole field and take the part you need",
                                          offset));
        }
        const field_info& field = fields[static_cast<std::size_t>(offset / 4)];
        if (bytes != 4) {
            return refuse(pc, fmt::format("reads {} byte{} of ctx->{}; the kernel allows only 4-byte reads of "
                                          "xdp_md fields. Read the whole __u32 field, then narrow or widen the "
                                          "variable",
                                          bytes, bytes == 1 ? "" : "s", to_string(field.field)));
        }
        const bool sign_extending = op::mode(insn.opcode) == op::mode_memsx;
        if (sign_extending && field.pointer) {
            return refuse(pc, fmt::format("sign-extending read of ctx->{}, which holds a pointer; read it as an "
                                          "unsigned __u32",
                                          to_string(field.field)));
        }
        if (field.field == xdp_md_field::egress_ifindex && _program.kind.attach != xdp_attach::devmap) {
            return refuse(pc, fmt::format("reads ctx->egress_ifindex, which only programs run from a devmap have; "
                                          "put the program in section \"xdp/devmap\" (this one is in \"{}\")",
                                          _program.section));
        }
        const std::uint8_t size = field.pointer ? op::size_dw : op::size_w;
        insn.opcode = static_cast<std::uint8_t>(op::cls_ldx | size | (sign_extending ? op::mode_memsx : op::mode_mem));
        insn.offset = static_cast<std::int16_t>(field.context_offset);
        _program.context_accesses.push_back(context_access{pc, field.field});
        return {};
    }

    /// Runs one block from its entry state; in the final pass also checks and rewrites.
    expected<void> run_block(std::size_t block_index, state& s, bool final) {
        const basic_block b = _blocks[block_index];
        for (std::size_t pc = b.first; pc < b.end; ++pc) {
            if (auto done = step(block_index, pc, s, final); !done) {
                return done;
            }
            if (_code[pc].opcode == op::lddw) {
                ++pc;
            }
        }
        // Fall through into the next block unless the last instruction ends the path.
        const std::size_t last = last_instruction(b);
        const instruction& insn = _code[last];
        const bool ends = insn.opcode == op::exit || insn.opcode == op::ja || insn.opcode == op::ja32;
        if (!final) {
            if (is_branch(insn)) {
                const std::int64_t target = jump_target(insn, last);
                if (target >= 0) {
                    enter(static_cast<std::size_t>(target), s);
                }
            }
            if (!ends && b.end < _code.size()) {
                enter(b.end, s);
            }
        }
        return {};
    }

    std::size_t last_instruction(const basic_block& b) const {
        std::size_t last = b.first;
        for (std::size_t pc = b.first; pc < b.end; ++pc) {
            last = pc;
            if (_code[pc].opcode == op::lddw) {
                ++pc;
            }
        }
        return last;
    }

    expected<void> step(std::size_t block_index, std::size_t pc, state& s, bool final) {
        const instruction insn = _code[pc];
        const std::uint8_t cls = op::cls(insn.opcode);
        auto& r = s.registers;
        switch (cls) {
        case op::cls_ld:
            if (insn.opcode == op::lddw) {
                if (insn.src == op::pseudo_func && !final) {
                    // A callback (bpf_loop, for_each_map_elem): called by a helper with arguments that are never the
                    // program's context.
                    call_function(
                        block_index, pc, insn,
                        entry_state({value::other(), value::other(), value::other(), value::other(), value::other()}));
                }
                r[insn.dst] = value::other();
            }
            return {};
        case op::cls_ldx: {
            const value base = r[insn.src];
            if (final) {
                if (auto checked = check_base(pc, base, "read"); !checked) {
                    return checked;
                }
                if (base.what == kind::context) {
                    if (auto rewritten = check_and_rewrite_read(pc); !rewritten) {
                        return rewritten;
                    }
                }
            }
            value loaded = value::other();
            if (base.what == kind::stack && op::access_bytes(insn.opcode) == 8 &&
                op::mode(insn.opcode) == op::mode_mem) {
                const std::int64_t offset = std::int64_t{base.offset} + insn.offset;
                if (const auto slot = slot_of(offset, 8); slot && offset % 8 == 0) {
                    loaded = s.slots[*slot];
                }
            }
            r[insn.dst] = loaded;
            return {};
        }
        case op::cls_st:
        case op::cls_stx: {
            const value base = r[insn.dst];
            const bool atomic = op::mode(insn.opcode) == op::mode_atomic;
            if (final) {
                if (base.what == kind::context) {
                    return refuse(pc, atomic ? "atomic operation on the context (struct xdp_md): its fields are "
                                               "read-only; copy the field into a variable"
                                             : "writes to the context (struct xdp_md), which XDP programs may only "
                                               "read; keep the value in a variable, or in packet metadata "
                                               "(bpf_xdp_adjust_meta)");
                }
                if (auto checked = check_base(pc, base, atomic ? "atomic operation" : "write"); !checked) {
                    return checked;
                }
            }
            if (base.what == kind::stack) {
                const std::int64_t offset = std::int64_t{base.offset} + insn.offset;
                const bool spill = cls == op::cls_stx && !atomic;
                store_to_stack(s, offset, op::access_bytes(insn.opcode), spill ? r[insn.src] : value::other());
            }
            if (atomic && (insn.imm & op::atomic_fetch) != 0) {
                r[insn.imm == op::atomic_cmpxchg ? 0 : insn.src] = value::other();
            }
            return {};
        }
        case op::cls_alu:
        case op::cls_alu64:
            step_alu(insn, s);
            return {};
        default:
            break;
        }
        // Jumps: only calls change state.
        if (insn.opcode == op::call && insn.src == op::call_local) {
            state callee = entry_state({r[1], r[2], r[3], r[4], r[5]});
            const std::size_t function =
                final ? function_of(static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + insn.imm))
                      : call_function(block_index, pc, insn, callee);
            r[0] = _returns[function];
            for (int i = 1; i <= 5; ++i) {
                r[static_cast<std::size_t>(i)] = value::other();
            }
            return {};
        }
        if (insn.opcode == op::call || insn.opcode == op::callx) {
            // Helpers (the tail call among them: it does not return when it succeeds) and kfuncs.
            for (int i = 0; i <= 5; ++i) {
                r[static_cast<std::size_t>(i)] = value::other();
            }
            return {};
        }
        if (insn.opcode == op::exit && !final) {
            const std::size_t function = _blocks[block_index].function;
            const value joined = join(_returns[function], r[0]);
            if (joined != _returns[function]) {
                _returns[function] = joined;
                for (const std::size_t caller : _callers[function]) {
                    requeue(caller);
                }
            }
        }
        return {};
    }

    /// Enters a called function (or callback) with `arguments`, remembering the caller's block so that it runs again
    /// when the function's return value changes. Returns the function's index.
    std::size_t call_function(std::size_t block_index, std::size_t pc, const instruction& insn,
                              const state& arguments) {
        const std::int64_t target = static_cast<std::int64_t>(pc) + 1 + insn.imm;
        if (target < 0 || static_cast<std::size_t>(target) >= _code.size()) {
            return 0;
        }
        const std::size_t function = function_of(static_cast<std::size_t>(target));
        _callers[function].insert(block_index);
        enter(static_cast<std::size_t>(target), arguments);
        return function;
    }

    static void step_alu(const instruction& insn, state& s) {
        auto& r = s.registers;
        const bool is64 = op::cls(insn.opcode) == op::cls_alu64;
        const bool from_register = op::source(insn.opcode) == op::src_x;
        const std::uint8_t operation = op::alu_op(insn.opcode);
        const value destination = r[insn.dst];
        const value source = from_register ? r[insn.src] : value::other();
        if (operation == op::alu_mov) {
            if (!from_register) {
                r[insn.dst] = value::other();
            } else if (is64 && insn.offset == 0) {
                r[insn.dst] = source;
            } else {
                // A 32-bit or sign-extending copy of a pointer is no longer a usable pointer.
                r[insn.dst] = source.involves_context() ? value{kind::context_moved} : value::other();
            }
            return;
        }
        if (is64 && !from_register && (operation == op::alu_add || operation == op::alu_sub)) {
            const std::int64_t delta = operation == op::alu_add ? std::int64_t{insn.imm} : -std::int64_t{insn.imm};
            if (destination.what == kind::stack) {
                const std::int64_t moved = destination.offset + delta;
                r[insn.dst] = moved >= INT32_MIN && moved <= INT32_MAX
                                  ? value{kind::stack, static_cast<std::int32_t>(moved)}
                                  : value::other();
                return;
            }
            if (destination.what == kind::context && delta == 0) {
                return;
            }
        }
        if (destination.what == kind::mixed || source.what == kind::mixed) {
            r[insn.dst] = value{kind::mixed};
        } else if (destination.involves_context() || source.involves_context()) {
            r[insn.dst] = value{kind::context_moved};
        } else {
            r[insn.dst] = value::other();
        }
    }

    program_spec& _program;
    std::vector<instruction>& _code;
    std::vector<basic_block> _blocks;
    std::vector<std::size_t> _block_at;
    std::vector<state> _entry;
    std::vector<bool> _reached;
    std::vector<bool> _queued;
    std::deque<std::size_t> _work;
    std::vector<value> _returns;                 ///< per function: join of r0 at its exits
    std::vector<std::set<std::size_t>> _callers; ///< per function: blocks that call it
};

} // namespace

expected<void> rewrite_context(program_spec& program) {
    program.context_accesses.clear();
    return context_analysis(program).run();
}

} // namespace sluice::ebpf::loader_detail

namespace sluice::ebpf {

expected<std::vector<instruction>> rewrite_context_accesses(std::span<const instruction> code, xdp_attach attach) {
    program_spec program;
    program.name = "program";
    program.section = attach == xdp_attach::devmap ? "xdp/devmap" : attach == xdp_attach::cpumap ? "xdp/cpumap" : "xdp";
    program.kind.attach = attach;
    program.code.assign(code.begin(), code.end());
    program.functions.push_back(program_function{program.name, 0, program.code.size()});
    if (auto done = loader_detail::rewrite_context(program); !done) {
        return done.error();
    }
    return std::move(program.code);
}

} // namespace sluice::ebpf
