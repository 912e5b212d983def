// Loads, stores and atomics: which region a pointer reaches and whether the access stays inside it (the kernel's
// check_mem_access: check_ctx_access, check_packet_access, check_map_access, check_stack_read/write), and what the
// stack holds byte by byte.
#include <fmt/format.h>

#include "ebpf/verifier/analyzer.hpp"
#include "ebpf/verifier/messages.hpp"
#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::ebpf::verifier_detail {
namespace {

struct context_field {
    std::size_t offset;
    int size;
    reg_type type;
    const char* name;
};

constexpr context_field context_fields[] = {
    {xdp_context_data_offset, 8, reg_type::packet, "data"},
    {xdp_context_data_end_offset, 8, reg_type::packet_end, "data_end"},
    {xdp_context_data_meta_offset, 8, reg_type::packet_meta, "data_meta"},
    {xdp_context_ingress_ifindex_offset, 4, reg_type::scalar, "ingress_ifindex"},
    {xdp_context_rx_queue_index_offset, 4, reg_type::scalar, "rx_queue_index"},
    {xdp_context_egress_ifindex_offset, 4, reg_type::scalar, "egress_ifindex"},
};

const char* verb(bool write) {
    return write ? "writes" : "reads";
}

std::string bytes_text(int size) {
    return fmt::format("{} byte{}", size, size == 1 ? "" : "s");
}

std::size_t slot_index(std::int64_t offset) {
    return static_cast<std::size_t>((-offset - 1) / 8);
}
std::size_t byte_index(std::int64_t offset) {
    return static_cast<std::size_t>(offset + 8 * static_cast<std::int64_t>(slot_index(offset) + 1));
}

void ensure_slots(func_state& frame, std::int64_t lowest) {
    const std::size_t needed = slot_index(lowest) + 1;
    if (frame.stack.size() < needed) {
        frame.stack.resize(needed);
    }
}

void destroy_spill(stack_slot& slot) {
    for (slot_byte& b : slot.bytes) {
        if (b == slot_byte::spill) {
            b = slot_byte::misc;
        }
    }
    slot.spill_size = 0;
    slot.spill_start = 0;
    slot.spilled = reg_state{};
}

scalar_value loaded_value(int size, bool sign_extend) {
    scalar_value v = scalar_value::of_size(size);
    if (sign_extend && size < 8) {
        v = scalar_sign_extend(v, size * 8, true);
    }
    return v;
}

/// Writes `size` bytes at `offset` of `frame`: a register spill where the kernel keeps one, else data.
void stack_write(func_state& frame, std::int64_t offset, int size, const reg_state* value) {
    ensure_slots(frame, offset);
    for (std::int64_t a = offset; a < offset + size; ++a) {
        stack_slot& slot = frame.stack[slot_index(a)];
        if (slot.bytes[byte_index(a)] == slot_byte::spill) {
            destroy_spill(slot);
        }
    }
    const bool spill = value != nullptr && (size == 8 || value->is_scalar());
    if (spill) {
        stack_slot& slot = frame.stack[slot_index(offset)];
        if (slot.has_spill()) {
            destroy_spill(slot);
        }
        const std::size_t start = byte_index(offset);
        for (std::size_t b = start; b < start + static_cast<std::size_t>(size); ++b) {
            slot.bytes[b] = slot_byte::spill;
        }
        slot.spilled = *value;
        if (size < 8) {
            slot.spilled.value.truncate_to(size);
            slot.spilled.id = 0;
        }
        slot.spill_size = static_cast<std::uint8_t>(size);
        slot.spill_start = static_cast<std::uint8_t>(start);
        return;
    }
    const bool zero = value != nullptr && value->is_scalar() && value->value.is_constant() &&
                      (value->value.constant_value() & (size == 8 ? ~0ULL : (1ULL << (size * 8)) - 1)) == 0;
    for (std::int64_t a = offset; a < offset + size; ++a) {
        frame.stack[slot_index(a)].bytes[byte_index(a)] = zero ? slot_byte::zero : slot_byte::misc;
    }
}

/// The first byte in [offset, offset + size) never written, or nullopt.
std::optional<std::int64_t> first_uninitialised(const func_state& frame, std::int64_t offset, std::int64_t size) {
    for (std::int64_t a = offset; a < offset + size; ++a) {
        const std::size_t s = slot_index(a);
        if (s >= frame.stack.size() || frame.stack[s].bytes[byte_index(a)] == slot_byte::invalid) {
            return a;
        }
    }
    return std::nullopt;
}

/// A spilled pointer among the bytes [offset, offset + size), or nullptr.
const reg_state* spilled_pointer(const func_state& frame, std::int64_t offset, std::int64_t size) {
    for (std::int64_t a = offset; a < offset + size; ++a) {
        const std::size_t s = slot_index(a);
        if (s < frame.stack.size() && frame.stack[s].bytes[byte_index(a)] == slot_byte::spill &&
            !frame.stack[s].spilled.is_scalar()) {
            return &frame.stack[s].spilled;
        }
    }
    return nullptr;
}

std::string frame_text(std::uint32_t frame) {
    return frame > 0 ? fmt::format(" of frame {}", frame) : "";
}

} // namespace

void analyzer::note_stack_depth(const verifier_state& st, std::uint32_t frame, std::int64_t offset) {
    if (frame >= st.frames.size()) {
        return;
    }
    std::uint32_t& depth = _stack_depth[st.frames[frame].function];
    depth = std::max(depth, static_cast<std::uint32_t>(-offset));
}

expected<void> analyzer::step_load_store(verifier_state& st, const instruction& insn) {
    const std::size_t pc = st.pc;
    const std::uint8_t cls = op::cls(insn.opcode);
    if (cls == op::cls_ld) {
        const instruction& upper = _code[pc + 1];
        reg_state loaded;
        switch (insn.src) {
        case op::pseudo_imm64:
            loaded = reg_state::constant(static_cast<std::uint32_t>(insn.imm) |
                                         (static_cast<std::uint64_t>(static_cast<std::uint32_t>(upper.imm)) << 32));
            break;
        case op::pseudo_map_idx:
        case op::pseudo_map_idx_value: {
            const auto index = static_cast<std::uint32_t>(insn.imm);
            if (index >= _input.maps.size()) {
                return reject(st, pc,
                              {fmt::format("refers to map {}, but the program has {} maps", index, _input.maps.size()),
                               "this is a loader bug or a hand-written program naming a missing map"});
            }
            if (insn.src == op::pseudo_map_idx) {
                loaded = reg_state::pointer(reg_type::map_ptr);
                loaded.map = index;
                break;
            }
            const auto offset = static_cast<std::uint32_t>(upper.imm);
            if (offset >= _input.maps[index].value_size) {
                return reject(st, pc,
                              {fmt::format("takes the address of byte {} of {}, whose value has {} bytes", offset,
                                           map_name(_input.maps, index), _input.maps[index].value_size),
                               "address a byte inside the value"});
            }
            loaded = reg_state::pointer(reg_type::map_value, static_cast<std::int32_t>(offset));
            loaded.map = index;
            break;
        }
        case op::pseudo_func:
            loaded = reg_state::pointer(reg_type::func);
            loaded.map = static_cast<std::uint32_t>(static_cast<std::int64_t>(pc) + 1 + insn.imm);
            break;
        default:
            return reject(st, pc,
                          {fmt::format("64-bit immediate load with pseudo source {}, which the verifier does not "
                                       "support (map references must be relocated to map indexes)",
                                       insn.src),
                           "load the object through sluice's loader, which relocates map references"});
        }
        st.reg(insn.dst) = loaded;
        st.pc = pc + 2;
        return {};
    }
    const int size = op::access_bytes(insn.opcode);
    const std::uint8_t mode = op::mode(insn.opcode);
    expected<void> done; // st.pc stays on this instruction while it is checked: messages name it
    if (cls == op::cls_ldx) {
        reg_state loaded;
        done =
            access_memory(st, insn.src, insn.offset, size, access_kind::read, nullptr, &loaded, mode == op::mode_memsx);
        if (done) {
            st.reg(insn.dst) = loaded;
        }
    } else if (cls == op::cls_st) {
        const reg_state value = reg_state::constant(static_cast<std::uint64_t>(static_cast<std::int64_t>(insn.imm)));
        done = access_memory(st, insn.dst, insn.offset, size, access_kind::write, &value, nullptr, false);
    } else if (mode == op::mode_atomic) {
        if (auto readable = check_readable(st, insn.src, "atomic operand"); !readable) {
            return readable;
        }
        if (insn.imm == op::atomic_cmpxchg) {
            if (auto readable = check_readable(st, 0, "value compared by cmpxchg"); !readable) {
                return readable;
            }
        }
        const reg_state value = st.reg(insn.src);
        if (!value.is_scalar()) {
            return reject(st, pc,
                          {fmt::format("the atomic operation would store r{} ({}) in memory: pointers may not be "
                                       "stored that way",
                                       insn.src, explain_register(value, _input.maps)),
                           "use numbers in atomic operations"});
        }
        reg_state loaded;
        done = access_memory(st, insn.dst, insn.offset, size, access_kind::atomic, &value, &loaded, false);
        if (done && (insn.imm & op::atomic_fetch) != 0) {
            st.reg(insn.imm == op::atomic_cmpxchg ? 0 : insn.src) = reg_state::scalar(scalar_value::of_size(size));
        }
    } else {
        if (auto readable = check_readable(st, insn.src, "value to store"); !readable) {
            return readable;
        }
        const reg_state value = st.reg(insn.src);
        done = access_memory(st, insn.dst, insn.offset, size, access_kind::write, &value, nullptr, false);
    }
    st.pc = pc + 1;
    return done;
}

expected<void> analyzer::access_memory(verifier_state& st, int base_register, std::int32_t offset, int size,
                                       access_kind kind, const reg_state* stored, reg_state* loaded, bool sign_extend) {
    if (auto readable = check_readable(st, base_register, "address"); !readable) {
        return readable;
    }
    const reg_state base = st.reg(base_register);
    const bool write = kind != access_kind::read;
    const std::string base_text = fmt::format("r{} = {}", base_register, explain_register(base, _input.maps));
    const char* access =
        kind == access_kind::read ? "load" : (kind == access_kind::write ? "store" : "atomic operation");

    const bool leaves_program = base.type == reg_type::map_value || base.type == reg_type::mem ||
                                base.type == reg_type::packet || base.type == reg_type::packet_meta;
    if (write && stored != nullptr && is_pointer(stored->type) && leaves_program) {
        const char* where = base.type == reg_type::map_value ? "a map value"
                            : is_packet_kind(base.type)      ? "the packet"
                                                             : "a ringbuf record";
        return reject(st, st.pc,
                      {fmt::format("stores a pointer ({}) into {} ({}): a program may not leak addresses where "
                                   "they outlive it or leave the machine",
                                   explain_register(*stored, _input.maps), where, base_text),
                       "store numbers (an index, an id, a length), never addresses"});
    }

    switch (base.type) {
    case reg_type::not_init:
        break;
    case reg_type::scalar: {
        const bool null = base.value.is_constant() && base.value.constant_value() == 0;
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, which holds {}{}: a number is not a pointer", verb(write),
                                   base_register, explain_register(base, _input.maps), null ? " (NULL)" : ""),
                       "access memory through a pointer: the context, a packet pointer checked against data_end, "
                       "a map value checked against NULL, or the stack (r10)"});
    }
    case reg_type::stale_packet:
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, a packet pointer taken before a helper that can move or resize the "
                                   "packet (bpf_xdp_adjust_head, _meta, _tail) ran: the pointer is no longer valid",
                                   verb(write), base_register),
                       "after such a call, reload data and data_end from the context and check the bounds again"});
    case reg_type::released_record:
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, a ringbuf record pointer after the record was submitted or "
                                   "discarded: the record belongs to the reader now",
                                   verb(write), base_register),
                       "finish writing the record before bpf_ringbuf_submit() or bpf_ringbuf_discard()"});
    case reg_type::ctx: {
        if (write) {
            return reject(st, st.pc,
                          {fmt::format("{} the context (struct xdp_md), which XDP programs may only read",
                                       kind == access_kind::atomic ? "atomic operation on" : "writes to"),
                           "keep the value in a variable, or in the packet's metadata area (bpf_xdp_adjust_meta)"});
        }
        const std::int64_t at = std::int64_t{base.offset} + offset;
        for (const context_field& field : context_fields) {
            if (static_cast<std::int64_t>(field.offset) != at || field.size != size || sign_extend) {
                continue;
            }
            if (field.offset == xdp_context_egress_ifindex_offset && _input.attach != xdp_attach::devmap) {
                return reject(st, st.pc,
                              {"reads ctx->egress_ifindex, which only programs run from a devmap have",
                               "put the program in section \"xdp/devmap\""});
            }
            *loaded = field.type == reg_type::scalar ? reg_state::scalar(scalar_value::of_size(4))
                                                     : reg_state::pointer(field.type);
            return {};
        }
        return reject(st, st.pc,
                      {fmt::format("reads {}{} at offset {} of the context, which is not a field a program may read "
                                   "(after the loader's rewrite: data at 0, data_end at 8 and data_meta at 16, 8 "
                                   "bytes each; ingress_ifindex at 36, rx_queue_index at 40, egress_ifindex at 44, 4 "
                                   "bytes each)",
                                   sign_extend ? "sign-extended " : "", bytes_text(size), at),
                       "read struct xdp_md fields as whole __u32 fields (ctx->data, ctx->ingress_ifindex, ...)"});
    }
    case reg_type::packet:
    case reg_type::packet_meta: {
        const bool meta = base.type == reg_type::packet_meta;
        if (kind == access_kind::atomic) {
            return reject(st, st.pc,
                          {"atomic operations on packet data are not allowed (as in the kernel)",
                           "copy the value to the stack or a map value first"});
        }
        if (base.value.smin < 0) {
            return reject(st, st.pc,
                          {fmt::format("{} through r{} ({}), whose variable offset may be negative", verb(write),
                                       base_register, explain_register(base, _input.maps)),
                           "use an unsigned index, or check that it is >= 0 before adding it to the pointer"});
        }
        const std::int64_t low = std::int64_t{base.offset} + offset;
        const std::int64_t high = low + size;
        if (low < 0 || high > base.range) {
            const std::string at =
                base.has_variable_offset()
                    ? fmt::format("at offset {}..{} past the variable part of r{}", low, high - 1, base_register)
                    : fmt::format("at {} offset {}..{}", meta ? "metadata" : "packet", low, high - 1);
            std::string fix;
            if (low < 0) {
                fix = meta ? "metadata lies between data_meta and data; read at non-negative offsets from data_meta"
                           : "read at or after the start of the packet (data)";
            } else if (meta) {
                fix = fmt::format("add a check that data_meta + {} <= data before this {}", high, access);
            } else if (base.has_variable_offset()) {
                fix = fmt::format("add a check that r{} + {} <= data_end (after adding the variable offset) before "
                                  "this {}",
                                  base_register, offset + size, access);
            } else {
                fix = fmt::format("add a check that data + {} <= data_end before this {}", high, access);
            }
            return reject(
                st, st.pc,
                {fmt::format("{} {} {}, but the program only proved {} of {} ({}) on this path", verb(write),
                             bytes_text(size), at, bytes_text(base.range), meta ? "metadata" : "packet", base_text),
                 fix});
        }
        if (loaded != nullptr) {
            *loaded = reg_state::scalar(loaded_value(size, sign_extend));
        }
        return {};
    }
    case reg_type::packet_end:
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, the end of the packet (data_end): nothing lies there", verb(write),
                                   base_register),
                       "compare pointers with data_end; access the packet through data"});
    case reg_type::map_ptr:
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, which points to {} itself, not to one of its values", verb(write),
                                   base_register, map_name(_input.maps, base.map)),
                       "get a value pointer with bpf_map_lookup_elem() and check it against NULL"});
    case reg_type::func:
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, the address of a function", verb(write), base_register),
                       "function addresses are only for callbacks of helpers such as bpf_loop"});
    case reg_type::map_value_or_null:
    case reg_type::mem_or_null:
        return reject(st, st.pc,
                      {fmt::format("{} through r{}, which may be NULL ({})", verb(write), base_register,
                                   explain_register(base, _input.maps)),
                       base.type == reg_type::map_value_or_null
                           ? "check the result of bpf_map_lookup_elem() against NULL first (if (!value) return "
                             "XDP_PASS;)"
                           : "check the result of bpf_ringbuf_reserve() against NULL first"});
    case reg_type::map_value:
    case reg_type::mem: {
        const bool is_map = base.type == reg_type::map_value;
        const std::int64_t region =
            is_map ? (base.map < _input.maps.size() ? _input.maps[base.map].value_size : 0) : base.mem_size;
        const std::string region_text =
            is_map ? fmt::format("a value of {}", map_name(_input.maps, base.map))
                   : (base.read_only ? std::string("the key buffer") : std::string("the ringbuf record"));
        if (base.value.smin < 0) {
            return reject(st, st.pc,
                          {fmt::format("{} {} through r{} ({}), whose variable offset may be negative", verb(write),
                                       region_text, base_register, explain_register(base, _input.maps)),
                           "use an unsigned index, or check that it is >= 0"});
        }
        const std::int64_t low = std::int64_t{base.offset} + offset + base.value.smin;
        const std::int64_t high =
            std::int64_t{base.offset} + offset + static_cast<std::int64_t>(base.value.umax) + size;
        if (low < 0 || high > region) {
            const std::string at = base.has_variable_offset() ? fmt::format("at offsets {}..{} (variable offset {})",
                                                                            low, high - 1, base.value.describe())
                                                              : fmt::format("at offset {}..{}", low, high - 1);
            return reject(
                st, st.pc,
                {fmt::format("{} {} {} of {}, which has {} ({}): out of bounds", verb(write), bytes_text(size), at,
                             region_text, bytes_text(static_cast<int>(region)), base_text),
                 base.has_variable_offset()
                     ? fmt::format("bound the index so that offset + {} <= {} (if (i >= N) return ...;)", size, region)
                     : fmt::format("keep accesses inside the {} bytes", region)});
        }
        if (write) {
            const bool read_only = is_map ? (base.map < _input.maps.size() &&
                                             (_input.maps[base.map].map_flags & map_flag::rdonly_prog) != 0)
                                          : base.read_only;
            if (read_only) {
                return reject(st, st.pc,
                              {fmt::format("writes to {}, which programs may only read (.rodata or "
                                           "BPF_F_RDONLY_PROG)",
                                           region_text),
                               "write to a map programs may modify (.data, .bss, or a map without BPF_F_RDONLY_PROG)"});
            }
        }
        if (loaded != nullptr) {
            *loaded = reg_state::scalar(loaded_value(size, sign_extend));
        }
        return {};
    }
    case reg_type::stack:
        if (base_register != frame_pointer) {
            _stack_through_pointer[st.pc] = true;
        }
        return access_stack(st, base, offset, size, kind, stored, loaded, sign_extend, base_register);
    }
    return {};
}

expected<void> analyzer::access_stack(verifier_state& st, const reg_state& base, std::int32_t offset, int size,
                                      access_kind kind, const reg_state* stored, reg_state* loaded, bool sign_extend,
                                      int base_register) {
    const bool write = kind != access_kind::read;
    if (base.frame >= st.frames.size()) {
        return reject(st, st.pc,
                      {"accesses the stack of a function that has returned", "do not keep pointers to a "
                                                                             "callee's stack"});
    }
    func_state& frame = st.frames[base.frame];
    if (base.has_variable_offset()) {
        const std::int64_t low = std::int64_t{base.offset} + offset + base.value.smin;
        const std::int64_t high = std::int64_t{base.offset} + offset + base.value.smax + size;
        if (low < -stack_size || high > 0) {
            return reject(st, st.pc,
                          {fmt::format("{} {} at fp{:+}..fp{:+}{} (r{} has a variable offset {}), outside the "
                                       "stack frame (fp-512 to fp-1)",
                                       verb(write), bytes_text(size), low, high - 1, frame_text(base.frame),
                                       base_register, base.value.describe()),
                           "bound the index so that the access stays inside the array on the stack"});
        }
        note_stack_depth(st, base.frame, low);
        if (kind != access_kind::write) {
            if (const auto missing = first_uninitialised(frame, low, high - low)) {
                return reject(st, st.pc,
                              {fmt::format("reads stack bytes fp{:+}..fp{:+}{} through a variable offset, but fp{:+} "
                                           "was never written on this path (uninitialised stack)",
                                           low, high - 1, frame_text(base.frame), *missing),
                               "initialise the whole array before indexing it"});
            }
        }
        if (write) {
            ensure_slots(frame, low);
            for (std::int64_t a = low; a < high; ++a) {
                stack_slot& slot = frame.stack[slot_index(a)];
                slot_byte& b = slot.bytes[byte_index(a)];
                if (b == slot_byte::spill) {
                    destroy_spill(slot);
                }
                if (b == slot_byte::zero) {
                    b = slot_byte::misc;
                }
            }
        }
        if (loaded != nullptr) {
            *loaded = reg_state::scalar(loaded_value(size, sign_extend));
        }
        return {};
    }
    const std::int64_t at = std::int64_t{base.offset} + offset;
    if (at < -stack_size || at + size > 0) {
        return reject(st, st.pc,
                      {fmt::format("{} {} at fp{:+}{} ({}), outside the stack frame (fp-512 to fp-1)", verb(write),
                                   bytes_text(size), at, frame_text(base.frame),
                                   fmt::format("r{} = {}", base_register, explain_register(base, _input.maps))),
                       at + size > 0 ? "the stack grows down from r10: use negative offsets (r10 - 8 ...)"
                                     : "a function's stack holds 512 bytes; keep large buffers in a map (a per-CPU "
                                       "array)"});
    }
    if (at % size != 0) {
        return reject(st, st.pc,
                      {fmt::format("{} {} at fp{:+}, which is not aligned to {} bytes (stack accesses must be "
                                   "aligned, as in the kernel)",
                                   verb(write), bytes_text(size), at, size),
                       "align stack variables to their size"});
    }
    note_stack_depth(st, base.frame, at);
    if (kind != access_kind::write) {
        if (const auto missing = first_uninitialised(frame, at, size)) {
            return reject(st, st.pc,
                          {fmt::format("reads {} at fp{:+}{}, but fp{:+} was never written on this path "
                                       "(uninitialised stack)",
                                       bytes_text(size), at, frame_text(base.frame), *missing),
                           "initialise the variable (or the whole struct, e.g. with __builtin_memset) before reading "
                           "it"});
        }
    }
    if (kind == access_kind::read) {
        const stack_slot& slot = frame.stack[slot_index(at)];
        const std::size_t start = byte_index(at);
        if (slot.has_spill() && slot.spill_start == start && slot.spill_size == size) {
            reg_state value = slot.spilled;
            if (sign_extend && size < 8) {
                if (!value.is_scalar()) {
                    return reject(st, st.pc, {"sign-extending load of a spilled pointer", "load pointers whole"});
                }
                value = reg_state::scalar(scalar_sign_extend(value.value, size * 8, true));
            }
            *loaded = value;
            return {};
        }
        if (const reg_state* pointer = spilled_pointer(frame, at, size)) {
            return reject(st, st.pc,
                          {fmt::format("reads {} of a spilled pointer ({}) at fp{:+}: a pointer can only be "
                                       "filled back whole",
                                       bytes_text(size), explain_register(*pointer, _input.maps), at),
                           "load the 8 bytes the pointer was stored in"});
        }
        bool all_zero = true;
        for (std::int64_t a = at; a < at + size; ++a) {
            all_zero = all_zero && slot.bytes[byte_index(a)] == slot_byte::zero;
        }
        *loaded = all_zero ? reg_state::constant(0) : reg_state::scalar(loaded_value(size, sign_extend));
        return {};
    }
    if (stored != nullptr && is_pointer(stored->type) && size != 8) {
        return reject(st, st.pc,
                      {fmt::format("stores {} of a pointer ({}) on the stack: pointers are spilled whole",
                                   bytes_text(size), explain_register(*stored, _input.maps)),
                       "store pointers with 8-byte stores"});
    }
    if (kind == access_kind::atomic) {
        if (spilled_pointer(frame, at, size) != nullptr) {
            return reject(st, st.pc, {"atomic operation on a spilled pointer", "use atomics on numbers only"});
        }
        stack_write(frame, at, size, nullptr);
        if (loaded != nullptr) {
            *loaded = reg_state::scalar(scalar_value::of_size(size));
        }
        return {};
    }
    stack_write(frame, at, size, stored);
    return {};
}

expected<void> analyzer::check_helper_memory(verifier_state& st, int r, std::uint64_t min_size, std::uint64_t max_size,
                                             bool helper_writes, std::string_view what) {
    (void)min_size;
    const reg_state reg = st.reg(r);
    if (max_size == 0) {
        return {};
    }
    const auto size = static_cast<std::int64_t>(max_size);
    const std::string reg_text = fmt::format("r{} = {}", r, explain_register(reg, _input.maps));
    switch (reg.type) {
    case reg_type::stack: {
        if (reg.has_variable_offset()) {
            return reject(st, st.pc,
                          {fmt::format("passes {} as a stack pointer with a variable offset ({}): helpers take stack "
                                       "memory at fixed offsets only",
                                       what, reg_text),
                           "pass the address of a stack variable directly"});
        }
        if (reg.frame >= st.frames.size()) {
            return reject(st, st.pc, {fmt::format("passes {} in the stack of a function that returned", what), ""});
        }
        const std::int64_t at = reg.offset;
        if (at < -stack_size || at + size > 0) {
            return reject(st, st.pc,
                          {fmt::format("passes {} of {} at fp{:+} ({}), which does not fit inside the stack frame "
                                       "(fp-512 to fp-1)",
                                       what, bytes_text(static_cast<int>(size)), at, reg_text),
                           "make the buffer smaller or keep it in a map"});
        }
        note_stack_depth(st, reg.frame, at);
        _stack_through_pointer[st.pc] = true; // the helper reads or writes the stack: its slots are live here
        func_state& frame = st.frames[reg.frame];
        if (helper_writes) {
            ensure_slots(frame, at);
            for (std::int64_t a = at; a < at + size; ++a) {
                stack_slot& slot = frame.stack[slot_index(a)];
                if (slot.bytes[byte_index(a)] == slot_byte::spill) {
                    destroy_spill(slot);
                }
                slot.bytes[byte_index(a)] = slot_byte::misc;
            }
            return {};
        }
        if (const auto missing = first_uninitialised(frame, at, size)) {
            return reject(st, st.pc,
                          {fmt::format("passes {} of {} at fp{:+}{}, but fp{:+} was never written on this path "
                                       "(uninitialised stack)",
                                       what, bytes_text(static_cast<int>(size)), at, frame_text(reg.frame), *missing),
                           "initialise every byte of the buffer first (including padding: __builtin_memset the "
                           "struct, then set its fields)"});
        }
        if (const reg_state* pointer = spilled_pointer(frame, at, size)) {
            return reject(st, st.pc,
                          {fmt::format("passes {} at fp{:+} holding a pointer ({}) to a helper", what, at,
                                       explain_register(*pointer, _input.maps)),
                           "pass buffers of numbers only"});
        }
        return {};
    }
    case reg_type::packet:
    case reg_type::packet_meta: {
        const std::int64_t low = reg.offset;
        const std::int64_t high = low + size;
        if (reg.value.smin < 0 || low < 0 || high > reg.range) {
            return reject(
                st, st.pc,
                {fmt::format("passes {} of {} at packet offset {}..{}, but the program only proved {} of "
                             "packet ({}) on this path",
                             what, bytes_text(static_cast<int>(size)), low, high - 1, bytes_text(reg.range), reg_text),
                 fmt::format("add a check that the pointer + {} <= data_end before the call", size)});
        }
        return {};
    }
    case reg_type::map_value:
    case reg_type::mem: {
        const bool is_map = reg.type == reg_type::map_value;
        const std::int64_t region =
            is_map ? (reg.map < _input.maps.size() ? _input.maps[reg.map].value_size : 0) : reg.mem_size;
        const std::int64_t low = std::int64_t{reg.offset} + reg.value.smin;
        const std::int64_t high = std::int64_t{reg.offset} + static_cast<std::int64_t>(reg.value.umax) + size;
        if (reg.value.smin < 0 || low < 0 || high > region) {
            return reject(st, st.pc,
                          {fmt::format("passes {} of {} at offset {}..{} of a {}-byte {}: out of bounds ({})", what,
                                       bytes_text(static_cast<int>(size)), low, high - 1, region,
                                       is_map ? "map value" : "buffer", reg_text),
                           "pass a size that fits the value"});
        }
        const bool read_only =
            is_map ? (reg.map < _input.maps.size() && (_input.maps[reg.map].map_flags & map_flag::rdonly_prog) != 0)
                   : reg.read_only;
        if (helper_writes && read_only) {
            return reject(st, st.pc,
                          {fmt::format("passes read-only memory ({}) for the helper to write", reg_text),
                           "pass writable memory"});
        }
        return {};
    }
    case reg_type::map_value_or_null:
    case reg_type::mem_or_null:
        return reject(
            st, st.pc,
            {fmt::format("passes {} in r{}, which may be NULL ({})", what, r, explain_register(reg, _input.maps)),
             "check the pointer against NULL before the call"});
    default:
        return reject(st, st.pc,
                      {fmt::format("passes {} in r{}, which must point to memory (the stack, the packet or a map "
                                   "value), but holds {}",
                                   what, r, explain_register(reg, _input.maps)),
                       "pass a pointer to a buffer of the right size, e.g. the address of a stack variable"});
    }
}

} // namespace sluice::ebpf::verifier_detail
