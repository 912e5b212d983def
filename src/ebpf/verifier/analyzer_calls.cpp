// Calls and returns: helper arguments against their prototypes (the kernel's check_helper_call and
// check_func_arg), BPF-to-BPF calls in a new frame (check_func_call), callbacks of bpf_loop and
// bpf_for_each_map_elem, exit, and the combined stack depth of call chains (check_max_stack_depth).
#include <fmt/format.h>

#include <algorithm>

#include "ebpf/verifier/analyzer.hpp"
#include "ebpf/verifier/messages.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/kernel_helpers.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

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

/// After a frame ends, pointers into it (kept by its callers) point nowhere.
void drop_pointers_into(verifier_state& st, std::size_t frame) {
    for_each_reg(st, [&](reg_state& reg) {
        if (reg.type == reg_type::stack && reg.frame >= frame) {
            reg = reg_state{};
        }
    });
}

const char* argument_kind(arg_type type) {
    switch (type) {
    case arg_type::anything:
        return "a value";
    case arg_type::map_ptr:
        return "a map (&map)";
    case arg_type::map_key:
        return "a pointer to the key";
    case arg_type::map_value:
        return "a pointer to the value";
    case arg_type::uninit_map_value:
        return "a pointer to a buffer for the value";
    case arg_type::mem:
    case arg_type::mem_or_null:
        return "a pointer to memory";
    case arg_type::uninit_mem:
        return "a pointer to a buffer";
    case arg_type::const_size:
    case arg_type::const_size_or_zero:
        return "a size";
    case arg_type::ctx:
        return "the context (ctx)";
    case arg_type::func:
        return "a callback function";
    case arg_type::stack_or_null:
        return "a pointer to the stack or NULL";
    case arg_type::ringbuf_record:
        return "a ringbuf record";
    case arg_type::const_alloc_size:
        return "a constant size";
    case arg_type::int_ptr:
        return "a pointer to an int";
    case arg_type::spin_lock:
        return "a pointer to a bpf_spin_lock";
    case arg_type::none:
        break;
    }
    return "an argument";
}

/// The kernel's BPF_MAX_VAR_SIZ: larger helper memory sizes are refused.
constexpr std::uint64_t max_helper_size = std::uint64_t{1} << 29;

} // namespace

expected<void> analyzer::step_call(verifier_state& st, const instruction& insn, bool& path_ends) {
    (void)path_ends;
    if (insn.opcode == op::callx) {
        return reject(st, st.pc,
                      {"indirect calls (callx) cannot be verified: the target is not known before the "
                       "program runs",
                       "call functions and helpers directly"});
    }
    if (insn.src == op::call_local) {
        return call_local(st, insn);
    }
    if (insn.src == op::call_kfunc) {
        return reject(
            st, st.pc,
            {"calls a kernel function (kfunc), which sluice does not provide", "use BPF helpers instead of kfuncs"});
    }
    return call_helper(st, insn);
}

expected<void> analyzer::call_local(verifier_state& st, const instruction& insn) {
    const std::size_t pc = st.pc;
    const std::size_t target = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + 1 + insn.imm);
    if (st.frames.size() >= static_cast<std::size_t>(max_call_depth)) {
        return reject(st, pc,
                      {fmt::format("this call would be the {}th nested function frame; at most {} frames may be "
                                   "active at once (the kernel's limit); is the function recursive?",
                                   st.frames.size() + 1, max_call_depth),
                       "reduce the nesting of calls (mark small functions __always_inline) and do not recurse"});
    }
    const std::size_t callee = _structure.function_at[target];
    auto& calls = _calls[st.frame().function];
    if (std::find(calls.begin(), calls.end(), callee) == calls.end()) {
        calls.push_back(callee);
    }
    func_state frame;
    for (int r = 1; r <= 5; ++r) {
        frame.regs[static_cast<std::size_t>(r)] = st.reg(r);
    }
    frame.regs[frame_pointer] = reg_state::pointer(reg_type::stack);
    frame.regs[frame_pointer].frame = static_cast<std::uint32_t>(st.frames.size());
    frame.callsite = pc;
    frame.function = callee;
    st.frames.push_back(std::move(frame));
    st.pc = target;
    return {};
}

void analyzer::enter_callback(verifier_state& st, std::size_t callsite) {
    const auto helper = static_cast<std::uint32_t>(_code[callsite].imm);
    const func_state& caller = st.frame();
    const std::size_t target = caller.regs[2].map;
    func_state frame;
    frame.callsite = callsite;
    frame.function = _structure.function_at[target];
    frame.callback = true;
    frame.callback_helper = helper;
    frame.regs[frame_pointer] = reg_state::pointer(reg_type::stack);
    frame.regs[frame_pointer].frame = static_cast<std::uint32_t>(st.frames.size());
    if (helper == helper_id::loop) {
        frame.regs[1] = reg_state::scalar(scalar_value::unsigned_range(0, max_loops - 1));
        frame.regs[2] = caller.regs[3];
    } else {
        const std::uint32_t map = caller.regs[1].map;
        const map_definition* definition = map < _input.maps.size() ? &_input.maps[map] : nullptr;
        frame.regs[1] = caller.regs[1];
        frame.regs[2] = reg_state::pointer(reg_type::mem);
        frame.regs[2].mem_size = definition != nullptr ? definition->key_size : 0;
        frame.regs[2].read_only = true;
        frame.regs[3] = reg_state::pointer(reg_type::map_value);
        frame.regs[3].map = map;
        frame.regs[4] = caller.regs[3];
    }
    st.frames.push_back(std::move(frame));
    st.pc = target;
}

void analyzer::finish_helper(verifier_state& st, std::uint32_t helper, std::optional<std::uint32_t> map,
                             std::uint64_t alloc_size) {
    const helper_proto* proto = find_helper_proto(helper);
    for (int r = 1; r <= 5; ++r) {
        st.reg(r) = reg_state{};
    }
    reg_state result = reg_state::unknown_scalar();
    switch (proto->ret) {
    case return_type::integer:
        if (proto->max_return != 0) {
            result = reg_state::scalar(scalar_value::unsigned_range(0, proto->max_return));
        }
        break;
    case return_type::nothing:
        result = reg_state{};
        break;
    case return_type::map_value_or_null:
        result = reg_state::pointer(reg_type::map_value_or_null);
        result.map = map.value_or(0);
        result.id = new_id();
        break;
    case return_type::ringbuf_or_null:
        result = reg_state::pointer(reg_type::mem_or_null);
        result.mem_size = static_cast<std::uint32_t>(alloc_size);
        result.id = new_id();
        result.ref = new_id();
        st.refs.push_back(reference{result.ref, st.pc});
        break;
    }
    st.reg(0) = result;
    st.pc += 1;
}

expected<void> analyzer::call_helper(verifier_state& st, const instruction& insn) {
    const std::size_t pc = st.pc;
    const auto id = static_cast<std::uint32_t>(insn.imm);
    const std::string_view kernel_name = kernel_helper_name(id);
    const std::string name = kernel_name.empty() ? fmt::format("helper {}", id) : std::string(kernel_name);
    if (_helpers->find(id) == nullptr) {
        return reject(st, pc,
                      {fmt::format("calls {} (helper {}), which sluice does not provide for XDP programs", name, id),
                       "use a helper XDP programs have (see bpf-helpers(7)); sluice's list is in helpers.hpp"});
    }
    const helper_proto* proto = find_helper_proto(id);
    if (proto == nullptr) {
        return reject(st, pc,
                      {fmt::format("calls {} (helper {}), whose argument types the verifier does not know", name, id),
                       "this is a sluice bug: every helper needs a prototype in verifier/helper_prototypes"});
    }
    std::optional<std::uint32_t> map;
    int memory_register = -1;
    bool memory_nullable = false;
    bool memory_written = false;
    std::uint64_t alloc_size = 0;
    std::optional<std::size_t> callback;
    for (std::size_t i = 0; i < proto->args.size(); ++i) {
        const arg_type arg = proto->args[i];
        if (arg == arg_type::none) {
            break;
        }
        const int r = static_cast<int>(i) + 1;
        const reg_state reg = st.reg(r);
        const std::string arg_text = fmt::format("argument {} of {} (r{})", r, proto->name, r);
        if (reg.type == reg_type::not_init) {
            return reject(
                st, pc,
                {fmt::format("{} is not set on this path; the helper expects {}", arg_text, argument_kind(arg)),
                 fmt::format("set r{} before the call", r)});
        }
        const auto wrong = [&](std::string_view expected_text) {
            return reject(st, pc,
                          {fmt::format("{} must be {}, but r{} holds {}", arg_text, expected_text, r,
                                       explain_register(reg, _input.maps)),
                           fmt::format("pass {} as argument {}", expected_text, r)});
        };
        const auto map_size = [&](bool key) -> std::uint64_t {
            if (!map || *map >= _input.maps.size()) {
                return 0;
            }
            return key ? _input.maps[*map].key_size : _input.maps[*map].value_size;
        };
        switch (arg) {
        case arg_type::none:
        case arg_type::anything:
            break;
        case arg_type::map_ptr:
            if (reg.type != reg_type::map_ptr) {
                return wrong("a map (&map_name)");
            }
            map = reg.map;
            if (reg.map < _input.maps.size()) {
                if (auto why = map_refused(id, _input.maps[reg.map].type)) {
                    return reject(st, pc,
                                  {fmt::format("{}: {} ({})", arg_text, *why, map_name(_input.maps, reg.map)),
                                   "pass a map of a type the helper works on"});
                }
            }
            break;
        case arg_type::map_key:
        case arg_type::map_value:
        case arg_type::uninit_map_value: {
            const bool key = arg == arg_type::map_key;
            const std::uint64_t size = map_size(key);
            if (auto checked = check_helper_memory(
                    st, r, size, size, arg == arg_type::uninit_map_value,
                    fmt::format("the {} of {} ({})", key ? "key" : "value",
                                map ? map_name(_input.maps, *map) : std::string("the map"), arg_text));
                !checked) {
                return checked;
            }
            break;
        }
        case arg_type::mem:
        case arg_type::mem_or_null:
        case arg_type::uninit_mem:
            memory_register = r;
            memory_nullable = arg == arg_type::mem_or_null;
            memory_written = arg == arg_type::uninit_mem;
            break;
        case arg_type::const_size:
        case arg_type::const_size_or_zero: {
            if (!reg.is_scalar()) {
                return wrong("a size (a number)");
            }
            if (reg.value.umax >= max_helper_size) {
                return reject(st, pc,
                              {fmt::format("{} is a size, but its value is not bounded ({})", arg_text,
                                           explain_register(reg, _input.maps)),
                               "bound the size with a check (if (len > N) return ...;) or a mask"});
            }
            if (arg == arg_type::const_size && reg.value.umin == 0) {
                return reject(st, pc,
                              {fmt::format("{} is a size that may be 0 ({}), which this helper refuses", arg_text,
                                           explain_register(reg, _input.maps)),
                               "check that the size is at least 1 before the call"});
            }
            if (memory_register < 0) {
                break;
            }
            const reg_state& memory = st.reg(memory_register);
            if (memory_nullable && memory.is_scalar() && memory.value.is_constant() &&
                memory.value.constant_value() == 0) {
                if (reg.value.umax != 0) {
                    return reject(st, pc,
                                  {fmt::format("{} must be 0 when the buffer before it is NULL", arg_text),
                                   "pass size 0 with a NULL buffer"});
                }
                break;
            }
            if (auto checked = check_helper_memory(
                    st, memory_register, reg.value.umin, reg.value.umax, memory_written,
                    fmt::format("the buffer of {} (argument {}, size in r{})", proto->name, memory_register, r));
                !checked) {
                return checked;
            }
            break;
        }
        case arg_type::ctx:
            if (reg.type != reg_type::ctx || reg.offset != 0 || reg.has_variable_offset()) {
                return wrong("the context pointer (ctx)");
            }
            break;
        case arg_type::func:
            if (reg.type != reg_type::func) {
                return wrong("a callback function");
            }
            callback = reg.map;
            break;
        case arg_type::stack_or_null: {
            const bool null = reg.is_scalar() && reg.value.is_constant() && reg.value.constant_value() == 0;
            if (!null && (reg.type != reg_type::stack || reg.has_variable_offset())) {
                return wrong("a pointer to a stack variable, or NULL");
            }
            break;
        }
        case arg_type::ringbuf_record: {
            if (reg.type == reg_type::mem_or_null) {
                return reject(st, pc,
                              {fmt::format("{} may be NULL ({})", arg_text, explain_register(reg, _input.maps)),
                               "check the result of bpf_ringbuf_reserve() against NULL first"});
            }
            if (reg.type != reg_type::mem || reg.ref == 0 || reg.offset != 0 || reg.has_variable_offset()) {
                return wrong("a record returned by bpf_ringbuf_reserve(), unmoved");
            }
            const std::uint32_t ref = reg.ref;
            std::erase_if(st.refs, [&](const reference& held) { return held.id == ref; });
            for_each_reg(st, [&](reg_state& other) {
                if (other.ref == ref) {
                    other = reg_state::pointer(reg_type::released_record); // the record is gone, with its copies
                }
            });
            break;
        }
        case arg_type::const_alloc_size:
            if (!reg.is_scalar() || !reg.value.is_constant()) {
                return wrong("a constant size");
            }
            alloc_size = reg.value.constant_value();
            break;
        case arg_type::int_ptr:
            if (auto checked = check_helper_memory(st, r, 4, 4, false, fmt::format("the int of {}", arg_text));
                !checked) {
                return checked;
            }
            break;
        case arg_type::spin_lock:
            if (reg.type != reg_type::map_value) {
                return wrong("a pointer to a struct bpf_spin_lock in a map value");
            }
            break;
        }
    }

    if (id == helper_id::map_lookup_elem && map) {
        std::int64_t& seen = _lookup_map[pc];
        seen = seen == -1 || seen == static_cast<std::int64_t>(*map) ? static_cast<std::int64_t>(*map) : -2;
    }
    if (proto->changes_packet_data) {
        for_each_reg(st, [](reg_state& reg) {
            if (is_packet_kind(reg.type)) {
                reg = reg_state::pointer(reg_type::stale_packet);
            }
        });
    }
    if (callback) {
        if (st.frames.size() >= static_cast<std::size_t>(max_call_depth)) {
            return reject(st, pc,
                          {fmt::format("the callback of {} would be frame {}; at most {} frames may be active",
                                       proto->name, st.frames.size() + 1, max_call_depth),
                           "call the helper from a less nested function"});
        }
        const std::size_t callee = _structure.function_at[*callback];
        auto& calls = _calls[st.frame().function];
        if (std::find(calls.begin(), calls.end(), callee) == calls.end()) {
            calls.push_back(callee);
        }
        // The helper calls the callback zero or more times: after the call, and in the callback.
        verifier_state inside = st;
        enter_callback(inside, pc);
        fork(st, std::move(inside));
    }
    finish_helper(st, id, map, alloc_size);
    return {};
}

expected<void> analyzer::step_exit(verifier_state& st, bool& path_ends) {
    if (auto readable = check_readable(st, 0, "the return value"); !readable) {
        return readable;
    }
    const reg_state result = st.reg(0);
    if (st.frames.size() == 1) {
        if (!result.is_scalar()) {
            return reject(st, st.pc,
                          {fmt::format("the program returns r0 = {}: an XDP program returns a number (an XDP "
                                       "action), never a pointer",
                                       explain_register(result, _input.maps)),
                           "return XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT or XDP_ABORTED"});
        }
        if (!st.refs.empty()) {
            return reject(st, st.pc,
                          {fmt::format("the program ends while it still holds the ringbuf record reserved at "
                                       "instruction {}: a reserved record must be submitted or discarded on every path",
                                       st.refs.front().acquired_at),
                           "call bpf_ringbuf_submit() or bpf_ringbuf_discard() on this path"});
        }
        path_ends = true;
        return {};
    }
    const func_state& callee = st.frame();
    const std::size_t depth = st.frames.size() - 1;
    if (result.type == reg_type::stack && result.frame >= depth) {
        return reject(st, st.pc,
                      {"the function returns a pointer into its own stack frame, which ends with it",
                       "return a number, or write results through a pointer the caller passed"});
    }
    const std::size_t callsite = callee.callsite;
    if (callee.callback) {
        if (!result.is_scalar() || result.value.umax > 1 || result.value.smin < 0) {
            return reject(st, st.pc,
                          {fmt::format("the callback returns r0 = {}; callbacks of bpf_loop and "
                                       "bpf_for_each_map_elem return 0 (continue) or 1 (stop)",
                                       explain_register(result, _input.maps)),
                           "return 0 or 1 from the callback"});
        }
        const auto helper = static_cast<std::uint32_t>(callee.callback_helper);
        st.frames.pop_back();
        drop_pointers_into(st, depth);
        st.pc = callsite;
        // Another iteration, with whatever the callback changed in its caller's memory.
        verifier_state again = st;
        enter_callback(again, callsite);
        fork(st, std::move(again));
        std::optional<std::uint32_t> map;
        if (st.reg(1).type == reg_type::map_ptr) {
            map = st.reg(1).map;
        }
        finish_helper(st, helper, map, 0);
        return {};
    }
    st.frames.pop_back();
    drop_pointers_into(st, depth);
    st.reg(0) = result;
    for (int r = 1; r <= 5; ++r) {
        st.reg(r) = reg_state{};
    }
    st.pc = callsite + 1;
    return {};
}

expected<void> analyzer::check_stack_depths() const {
    // The deepest chain of frames, each rounded up to 16 bytes as the kernel rounds them for JIT-compiled programs.
    const auto frame_size = [&](std::size_t f) -> std::uint32_t {
        return (_stack_depth[f] + 15) / 16 * 16; // round_up_stack_depth() when the program is JIT-compiled
    };
    std::vector<std::size_t> chain;
    std::vector<std::size_t> worst_chain;
    std::uint32_t worst = 0;
    std::vector<bool> on_chain(_stack_depth.size(), false);
    const auto walk = [&](auto&& self, std::size_t f, std::uint32_t total) -> void {
        if (on_chain[f]) {
            return;
        }
        on_chain[f] = true;
        chain.push_back(f);
        total += frame_size(f);
        if (total > worst) {
            worst = total;
            worst_chain = chain;
        }
        for (const std::size_t callee : _calls[f]) {
            self(self, callee, total);
        }
        chain.pop_back();
        on_chain[f] = false;
    };
    walk(walk, 0, 0);
    if (worst <= static_cast<std::uint32_t>(stack_size)) {
        return {};
    }
    std::string text;
    for (const std::size_t f : worst_chain) {
        const std::size_t first = _structure.functions[f].first;
        std::string name = fmt::format("function at instruction {}", first);
        for (const program_function& declared : _input.functions) {
            if (declared.first == first && !declared.name.empty()) {
                name = declared.name;
            }
        }
        text += fmt::format("{}{} ({} bytes)", text.empty() ? "" : " -> ", name, frame_size(f));
    }
    const std::size_t at = _structure.functions[worst_chain.back()].first;
    return error::at(at, fmt::format("{}\nthe stack frames of the call chain {} add up to {} bytes; at most {} bytes "
                                     "of stack may be in use at once (the kernel's limit)\nfix: move large local "
                                     "buffers into a map (a per-CPU array), or inline the functions",
                                     location(at), text, worst, stack_size));
}

} // namespace sluice::ebpf::verifier_detail
