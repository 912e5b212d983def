// The exploration loop, pruning against explored states, and how a rejection is told.
#include "ebpf/verifier/analyzer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

#include "ebpf/verifier/messages.hpp"
#include "sluice/ebpf/disassembler.hpp"
#include "sluice/ebpf/helpers.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

/// Explored states kept per instruction: beyond this, completed ones are replaced (the kernel also forgets states
/// that never helped). Memory stays bounded; pruning only gets weaker, never unsound.
constexpr std::size_t max_states_per_instruction = 64;
/// Instructions processed between two stored states (the kernel's heuristic in is_state_visited).
constexpr std::uint64_t min_instructions_between_states = 8;
/// may_goto fall-throughs on a path before the loop's changing scalars are widened: below it, numbers whose value
/// matters are followed exactly (those that do not are ignored by covers(), so such loops converge at once).
constexpr std::uint32_t max_may_goto_unrolled = 1024;
/// Log level 2 output stops growing here, as the kernel's log buffer does.
constexpr std::size_t max_log_bytes = 16U << 20;

/// Old-to-current id correspondence for pruning: ids must map one to one (the kernel's check_ids).
class id_map {
public:
    bool match(std::uint32_t old_id, std::uint32_t cur_id) {
        if (old_id == 0) {
            return true;
        }
        if (cur_id == 0) {
            cur_id = 0x8000'0000U + ++_fresh; // an unlinked value: unique, may match only once
        }
        for (std::size_t i = 0; i < _count; ++i) {
            const auto& [o, c] = _pairs[i];
            if (o == old_id || c == cur_id) {
                return o == old_id && c == cur_id;
            }
        }
        if (_count == _pairs.size()) {
            return false; // more links than tracked: do not prune (never unsound)
        }
        _pairs[_count++] = {old_id, cur_id};
        return true;
    }

private:
    // Pruning runs for every stored state at every prune point: no allocation here.
    std::array<std::pair<std::uint32_t, std::uint32_t>, 64> _pairs{};
    std::size_t _count{};
    std::uint32_t _fresh{};
};

bool pointer_to_spill(const stack_slot& slot) {
    return slot.has_spill() && !slot.spilled.is_scalar();
}

} // namespace

analyzer::analyzer(const verifier_input& input, const verifier_options& options, const program_structure& structure)
    : _input(input), _options(options), _structure(structure), _code(input.code),
      _helpers(input.helpers != nullptr ? input.helpers : &xdp_helper_table()) {
    _explored.resize(_code.size());
    _visits.assign(_code.size(), 0);
    _lookup_map.assign(_code.size(), -1);
    _reachable.assign(_code.size(), false);
    _decided.assign(_code.size(), false);
    _arithmetic.assign(_code.size(), false);
    _stack_through_pointer.assign(_code.size(), false);
    _stack_depth.assign(structure.functions.size(), 0);
    _calls.resize(structure.functions.size());
}

expected<verification_result> analyzer::run() {
    verifier_state st;
    func_state entry;
    entry.regs[1] = reg_state::pointer(reg_type::ctx);
    entry.regs[frame_pointer] = reg_state::pointer(reg_type::stack);
    st.frames.push_back(entry);

    for (;;) {
        const std::size_t pc = st.pc;
        if (_processed >= _options.complexity_limit) {
            return reject(st, pc,
                          {loop_message(), "bound the loop's counter with a constant (for (i = 0; i < N; i++)), "
                                           "or move the loop into bpf_loop() with a callback"});
        }
        ++_processed;
        bool path_ends = false;
        if (_structure.prune_point[pc]) {
            auto visited = visit(st);
            if (!visited) {
                return visited.error();
            }
            path_ends = *visited;
        }
        if (!path_ends) {
            _reachable[pc] = true;
            ++_visits[pc];
            if (_options.log_level >= 2 && _log.size() < max_log_bytes) {
                _log += fmt::format(
                    "{}: {}\n{}: {}\n", pc,
                    log_frame(st.frame(), st.frames.size() - 1, _input.maps, live_at(st, st.frames.size() - 1)), pc,
                    disassemble(_code, pc));
            }
            const instruction& insn = _code[pc];
            expected<void> done;
            switch (op::cls(insn.opcode)) {
            case op::cls_alu:
            case op::cls_alu64:
                done = step_alu(st, insn);
                st.pc = pc + 1;
                break;
            case op::cls_ld:
            case op::cls_ldx:
            case op::cls_st:
            case op::cls_stx:
                done = step_load_store(st, insn);
                break;
            default: {
                const std::uint8_t operation = op::alu_op(insn.opcode);
                if (operation == op::jmp_exit) {
                    done = step_exit(st, path_ends);
                } else if (operation == op::jmp_call) {
                    done = step_call(st, insn, path_ends);
                } else if (operation == op::jmp_ja) {
                    st.pc = program_structure::jump_target(insn, pc);
                } else if (program_structure::is_may_goto(insn)) {
                    // The runtime may take the jump at any iteration: both ways, bounded by the runtime.
                    verifier_state branch = st;
                    branch.pc = program_structure::jump_target(insn, pc);
                    branch.path = std::make_shared<const path_step>(path_step{pc, true, st.path});
                    st.path = std::make_shared<const path_step>(path_step{pc, false, st.path});
                    st.pc = pc + 1;
                    ++st.may_goto_depth;
                    fork(st, std::move(branch));
                } else {
                    std::size_t next = pc + 1;
                    done = step_branch(st, insn, next, path_ends);
                    st.pc = next;
                }
                break;
            }
            }
            if (!done) {
                return done.error();
            }
        }
        if (path_ends) {
            end_path(st);
            if (_pending.empty()) {
                break;
            }
            st = std::move(_pending.back());
            _pending.pop_back();
        }
    }
    if (auto depths = check_stack_depths(); !depths) {
        return depths.error();
    }

    verification_result result;
    result.facts.resize(_code.size());
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        result.facts[pc].reachable = _reachable[pc];
        if (_lookup_map[pc] >= 0) {
            result.facts[pc].constant_map = static_cast<std::uint32_t>(_lookup_map[pc]);
        }
    }
    result.instructions_processed = _processed;
    result.states_explored = _states;
    result.peak_states = _peak_states;
    if (_options.log_level >= 1) {
        _log += fmt::format("verification accepted: processed {} instructions, {} states explored, peak {} states\n",
                            _processed, _states, _peak_states);
    }
    result.log = std::move(_log);
    return result;
}

expected<bool> analyzer::visit(verifier_state& st) {
    const std::size_t pc = st.pc;
    auto& list = _explored[pc];
    const bool bounded_by_runtime = _structure.callback_entry[pc] || program_structure::is_may_goto(_code[pc]);
    explored_node* ancestor = nullptr;
    const std::uint64_t hash = exact_hash(st);
    // The kernel's eviction: a verified state that keeps failing to cover new ones only costs comparisons.
    bool evict = false;
    for (const auto& node : list) {
        if (node->live_paths == 0) {
            if (covers(node->state, st, false)) {
                ++node->hits;
                return true;
            }
            ++node->misses;
            evict = evict || node->misses > node->hits * 3 + 3;
            continue;
        }
        // A state still being explored is an ancestor of this path: we came back to it around a loop.
        if (bounded_by_runtime) {
            if (covers(node->state, st, false)) {
                return true;
            }
            ancestor = node.get();
        } else if (node->hash == hash && covers(node->state, st, true)) {
            return reject(st, pc,
                          {fmt::format("the loop through instruction {} never ends: the path comes back here with "
                                       "exactly the state it had before (infinite loop)",
                                       pc),
                           "make the loop's exit condition depend on a counter that changes at every iteration "
                           "and has a constant bound"});
        }
    }
    if (evict) {
        const auto before = list.size();
        std::erase_if(list, [](const auto& n) { return n->live_paths == 0 && n->misses > n->hits * 3 + 3; });
        _live_states -= before - list.size();
    }
    // A callback's entry is widened at once. A may_goto loop is first followed iteration by iteration, as the kernel
    // does (it prunes at a may_goto only where an earlier state covers the current one): a counter that matters,
    // such as a packet index bounded by its own `i != 64` test, would lose its bound to widening. Only a loop still
    // growing after max_may_goto_unrolled iterations is widened (the kernel would give up at its complexity limit).
    const bool widened =
        ancestor != nullptr && (_structure.callback_entry[pc] || st.may_goto_depth >= max_may_goto_unrolled);
    if (widened) {
        widen(st, ancestor->state);
    }
    // As the kernel, keep a new state only every few instructions: in a tight loop each iteration's state is new
    // and would only cost comparisons. States where the runtime bounds the loop are always kept (they converge).
    if (!bounded_by_runtime && _processed - _last_stored < min_instructions_between_states) {
        return false;
    }
    _last_stored = _processed;
    if (list.size() >= max_states_per_instruction) {
        const auto completed = std::find_if(list.begin(), list.end(), [](const auto& n) { return n->live_paths == 0; });
        if (completed != list.end()) {
            list.erase(completed);
            --_live_states;
        } else if (!widened) {
            return false;
        } // else: a widened state is what makes its loop converge; it is kept beyond the limit (one per loop path)
    }
    auto node = std::make_unique<explored_node>();
    node->state = st;
    node->state.path.reset();
    node->state.parent = nullptr;
    node->hash = ancestor != nullptr ? exact_hash(st) : hash; // widening changed the state
    node->live_paths = 1;
    node->parent = st.parent;
    st.parent = node.get();
    list.push_back(std::move(node));
    ++_states;
    ++_live_states;
    _peak_states = std::max(_peak_states, _live_states);
    return false;
}

bool analyzer::reg_covers(const reg_state& old, const reg_state& cur, bool exact) const {
    if (exact) {
        return old == cur;
    }
    if (old.type == reg_type::not_init) {
        return true;
    }
    if (old.type != cur.type) {
        return false;
    }
    if (old.type == reg_type::scalar) {
        return old.value.contains(cur.value);
    }
    return old.offset == cur.offset && old.map == cur.map && old.frame == cur.frame && old.mem_size == cur.mem_size &&
           old.read_only == cur.read_only && cur.range >= old.range && old.value.contains(cur.value);
}

bool analyzer::covers(const verifier_state& old, const verifier_state& cur, bool exact) const {
    if (old.frames.size() != cur.frames.size() || old.refs.size() != cur.refs.size()) {
        return false;
    }
    id_map ids;
    const auto reg_ok = [&](const reg_state& o, const reg_state& c) {
        if (!reg_covers(o, c, exact)) {
            return false;
        }
        if (exact || o.type == reg_type::not_init) {
            return true;
        }
        return ids.match(o.id, c.id) && ids.match(o.ref, c.ref);
    };
    for (std::size_t i = 0; i < old.refs.size(); ++i) {
        if (!ids.match(old.refs[i].id, cur.refs[i].id)) {
            return false;
        }
    }
    // Ids of numbers whose exact value matters: an imprecise copy of one of them must keep the link (a branch on
    // the copy narrows the precise one).
    std::array<std::uint32_t, 64> precise_ids{};
    std::size_t precise_id_count = 0;
    bool too_many_ids = false;
    const auto add_precise_id = [&](std::uint32_t id) {
        if (precise_id_count == precise_ids.size()) {
            too_many_ids = true; // then every linked number is compared exactly
        } else {
            precise_ids[precise_id_count++] = id;
        }
    };
    std::array<precision_set, max_call_depth> precision{};
    for (std::size_t f = 0; f < old.frames.size(); ++f) {
        precision[f] = exact ? precision_set{0x3ff, ~std::uint64_t{0}} : precise_at(cur, f);
        precision[f].registers &= live_at(cur, f);
        if (exact) {
            continue;
        }
        const func_state& of = old.frames[f];
        for (int r = 0; r < frame_pointer; ++r) {
            const reg_state& o = of.regs[static_cast<std::size_t>(r)];
            if ((precision[f].registers & (1U << r)) != 0 && o.is_scalar() && o.id != 0) {
                add_precise_id(o.id);
            }
        }
        for (std::size_t s = 0; s < of.stack.size(); ++s) {
            const bool slot_precise = s >= 64 || (precision[f].slots & (std::uint64_t{1} << s)) != 0;
            if (slot_precise && of.stack[s].has_spill() && of.stack[s].spilled.id != 0) {
                add_precise_id(of.stack[s].spilled.id);
            }
        }
    }
    const auto imprecise_number = [&](const reg_state& o) {
        if (!o.is_scalar()) {
            return false;
        }
        if (o.id == 0) {
            return true;
        }
        const auto end = precise_ids.begin() + static_cast<std::ptrdiff_t>(precise_id_count);
        return !too_many_ids && std::find(precise_ids.begin(), end, o.id) == end;
    };
    for (std::size_t f = 0; f < old.frames.size(); ++f) {
        const func_state& of = old.frames[f];
        const func_state& cf = cur.frames[f];
        if (of.callsite != cf.callsite || of.function != cf.function || of.callback != cf.callback) {
            return false;
        }
        const std::uint16_t live = live_at(cur, f);
        const std::uint16_t precise = precision[f].registers;
        for (int r = 0; r < frame_pointer; ++r) {
            if ((live & (1U << r)) == 0) {
                continue;
            }
            const reg_state& o = of.regs[static_cast<std::size_t>(r)];
            const reg_state& c = cf.regs[static_cast<std::size_t>(r)];
            if (!exact && (precise & (1U << r)) == 0 && c.is_scalar() && imprecise_number(o)) {
                continue; // no value of this number changes what is safe from here
            }
            if (!reg_ok(o, c)) {
                return false;
            }
        }
        const std::size_t slots = std::max(of.stack.size(), cf.stack.size());
        const stack_slot empty{};
        for (std::size_t s = 0; s < slots; ++s) {
            const stack_slot& os = s < of.stack.size() ? of.stack[s] : empty;
            const stack_slot& cs = s < cf.stack.size() ? cf.stack[s] : empty;
            if (exact) {
                if (!(os == cs)) {
                    return false;
                }
                continue;
            }
            if (!slot_live(cur, f, s)) {
                continue; // no path from here reads it
            }
            const bool slot_precise = s >= 64 || (precision[f].slots & (std::uint64_t{1} << s)) != 0;
            // In a slot no needed register is filled from, numbers (spilled, zero or other data) are all alike: the
            // current bytes must only be written, and hold no pointer.
            const bool numbers_alike = !slot_precise && (!os.has_spill() || imprecise_number(os.spilled));
            if (!numbers_alike && os.has_spill()) {
                if (!cs.has_spill() || os.spill_start != cs.spill_start || os.spill_size != cs.spill_size ||
                    !reg_ok(os.spilled, cs.spilled)) {
                    return false;
                }
            }
            for (std::size_t b = 0; b < 8; ++b) {
                const slot_byte ob = os.bytes[b];
                const slot_byte cb = cs.bytes[b];
                if (ob == slot_byte::invalid) {
                    continue;
                }
                if (ob == slot_byte::misc || numbers_alike) {
                    if (cb == slot_byte::invalid || (cb == slot_byte::spill && pointer_to_spill(cs))) {
                        return false;
                    }
                    continue;
                }
                if (cb != ob) {
                    return false; // zero must stay zero, a spill a spill
                }
            }
        }
    }
    return true;
}

std::uint64_t analyzer::exact_hash(const verifier_state& st) const {
    std::uint64_t h = 0xcbf2'9ce4'8422'2325ULL;
    const auto mix = [&h](std::uint64_t v) {
        h ^= v;
        h *= 0x100'0000'01b3ULL;
    };
    const auto mix_reg = [&mix](const reg_state& r) {
        mix(static_cast<std::uint64_t>(r.type) | (std::uint64_t{r.id} << 8) | (std::uint64_t{r.map} << 40));
        mix(static_cast<std::uint32_t>(r.offset) |
            (static_cast<std::uint64_t>(static_cast<std::uint32_t>(r.range)) << 32));
        mix(r.value.bits.value ^ (r.value.bits.mask << 1) ^ r.value.umin ^ (r.value.umax << 3) ^
            static_cast<std::uint64_t>(r.value.smin) ^ (static_cast<std::uint64_t>(r.value.smax) << 5));
    };
    mix(st.frames.size());
    mix(st.refs.size());
    for (std::size_t f = 0; f < st.frames.size(); ++f) {
        const func_state& frame = st.frames[f];
        mix(frame.callsite);
        const std::uint16_t live = live_at(st, f);
        for (int r = 0; r < frame_pointer; ++r) {
            if ((live & (1U << r)) != 0) {
                mix_reg(frame.regs[static_cast<std::size_t>(r)]);
            }
        }
        std::size_t used = frame.stack.size();
        while (used > 0 && frame.stack[used - 1] == stack_slot{}) {
            --used; // trailing never-written slots compare equal to missing ones
        }
        for (std::size_t s = 0; s < used; ++s) {
            const stack_slot& slot = frame.stack[s];
            std::uint64_t bytes = 0;
            for (const slot_byte b : slot.bytes) {
                bytes = (bytes << 8) | static_cast<std::uint64_t>(b);
            }
            mix(bytes);
            if (slot.has_spill()) {
                mix_reg(slot.spilled);
            }
        }
    }
    return h;
}

void analyzer::widen(verifier_state& cur, const verifier_state& old) const {
    if (old.frames.size() != cur.frames.size()) {
        return;
    }
    const auto widen_reg = [](reg_state& c, const reg_state& o) {
        if (c.is_scalar() && o.is_scalar() && !o.value.contains(c.value)) {
            c.value = scalar_value::unknown();
            c.id = 0;
        }
    };
    for (std::size_t f = 0; f < cur.frames.size(); ++f) {
        func_state& cf = cur.frames[f];
        const func_state& of = old.frames[f];
        for (std::size_t r = 0; r < frame_pointer; ++r) {
            widen_reg(cf.regs[r], of.regs[r]);
        }
        for (std::size_t s = 0; s < cf.stack.size() && s < of.stack.size(); ++s) {
            if (cf.stack[s].has_spill() && of.stack[s].has_spill()) {
                widen_reg(cf.stack[s].spilled, of.stack[s].spilled);
            }
        }
    }
}

void analyzer::fork(verifier_state& st, verifier_state branch) {
    branch.parent = st.parent;
    if (st.parent != nullptr) {
        ++st.parent->live_paths;
    }
    _pending.push_back(std::move(branch));
}

void analyzer::end_path(verifier_state& st) {
    for (explored_node* node = st.parent; node != nullptr; node = node->parent) {
        if (--node->live_paths > 0) {
            break;
        }
    }
    st.parent = nullptr;
}

std::uint16_t analyzer::live_at(const verifier_state& st, std::size_t frame) const {
    if (frame + 1 == st.frames.size()) {
        return st.pc < _structure.live_in.size() ? _structure.live_in[st.pc] : 0x3ff;
    }
    // A caller's registers matter from the instruction after its call; r0..r5 are rewritten by the return.
    const std::size_t resume = st.frames[frame + 1].callsite + 1;
    const std::uint16_t live = resume < _structure.live_in.size() ? _structure.live_in[resume] : 0x3ff;
    return static_cast<std::uint16_t>(live & 0x3c0);
}

bool analyzer::slot_live(const verifier_state& st, std::size_t frame, std::size_t slot) const {
    if (frame + 1 != st.frames.size() || slot >= 64 || st.pc >= _structure.live_slots_in.size()) {
        return true; // callers' frames may be read through pointers the callee holds
    }
    return (_structure.live_slots_in[st.pc] & (std::uint64_t{1} << slot)) != 0;
}

precision_set analyzer::precise_at(const verifier_state& st, std::size_t frame) const {
    if (frame + 1 == st.frames.size()) {
        return st.pc < _structure.precise_in.size() ? _structure.precise_in[st.pc]
                                                    : precision_set{0x3ff, ~std::uint64_t{0}};
    }
    // A caller: its r6-r9 as needed where it resumes; its stack entirely (callees reach it through pointers).
    const std::size_t resume = st.frames[frame + 1].callsite + 1;
    const std::uint16_t registers =
        resume < _structure.precise_in.size() ? _structure.precise_in[resume].registers : 0x3ff;
    return precision_set{static_cast<std::uint16_t>(registers & 0x3c0), ~std::uint64_t{0}};
}

std::string analyzer::location(std::size_t pc) const {
    std::string text = fmt::format("instruction {}: {}", pc, disassemble(_code, pc));
    if (const std::string source = source_of(_input.lines, pc); !source.empty()) {
        text += fmt::format("    ({})", source);
    }
    return text;
}

std::string analyzer::path_text(const verifier_state& st) const {
    // Decisions oldest first, with runs of the same decision (a loop going round) folded: "3 (...: true) x40".
    struct run {
        std::size_t pc;
        bool taken;
        std::size_t count;
    };
    std::vector<run> runs;
    for (const path_step* step = st.path.get(); step != nullptr; step = step->previous.get()) {
        if (!runs.empty() && runs.back().pc == step->pc && runs.back().taken == step->taken) {
            ++runs.back().count;
        } else {
            runs.push_back(run{step->pc, step->taken, 1});
        }
    }
    if (runs.empty()) {
        return {};
    }
    constexpr std::size_t shown = 12;
    std::string text = "branches taken at ";
    if (runs.size() > shown) {
        std::size_t hidden = 0;
        for (std::size_t i = shown; i < runs.size(); ++i) {
            hidden += runs[i].count;
        }
        text += fmt::format("... ({} earlier) -> ", hidden);
    }
    for (std::size_t i = std::min(runs.size(), shown); i-- > 0;) {
        const run& r = runs[i];
        std::string condition = disassemble(_code, r.pc);
        if (const auto cut = condition.find(" goto"); cut != std::string::npos) {
            condition = condition.substr(0, cut);
        }
        text += fmt::format("{} ({}: {}){}{}", r.pc, condition, r.taken ? "true" : "false",
                            r.count > 1 ? fmt::format(" x{}", r.count) : "", i > 0 ? " -> " : "");
    }
    return text;
}

std::string analyzer::loop_message() const {
    std::size_t head = _code.size();
    std::uint64_t most = 0;
    for (std::size_t pc = 0; pc < _code.size(); ++pc) {
        const instruction& insn = _code[pc];
        if (_structure.second_half[pc] || !op::is_jump(insn.opcode)) {
            continue;
        }
        const std::uint8_t operation = op::alu_op(insn.opcode);
        if (operation == op::jmp_call || operation == op::jmp_exit) {
            continue;
        }
        const std::size_t target = program_structure::jump_target(insn, pc);
        if (target <= pc && target < _code.size() && _visits[target] > most) {
            most = _visits[target];
            head = target;
        }
    }
    if (head == _code.size()) {
        return fmt::format("the program is too complex to verify: {} instructions were processed over all its paths "
                           "(the limit, as the kernel's)",
                           _options.complexity_limit);
    }
    return fmt::format("the loop at instruction {} does not end within the verifier's limit: bound its counter ({} "
                       "instructions processed over all paths, {} of them passes through instruction {})",
                       head, _options.complexity_limit, most, head);
}

error analyzer::reject(const verifier_state& st, std::size_t pc, const rejection& why) const {
    std::string text = location(pc);
    text += "\n" + why.what;
    if (const std::string path = path_text(st); !path.empty()) {
        text += "\non this path: " + path;
    }
    if (!why.fix.empty()) {
        text += "\nfix: " + why.fix;
    }
    if (_options.log_level >= 1) {
        text += fmt::format("\n\nverifier log:\n{}processed {} instructions, {} states explored, peak {} states\n",
                            _log, _processed, _states, _peak_states);
    }
    return error::at(pc, std::move(text));
}

} // namespace sluice::ebpf::verifier_detail
