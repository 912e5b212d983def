// The random XDP program generator (program_generator.hpp).
//
// How it stays within what the kernel's verifier accepts: the generator keeps its own small abstract state as it
// emits code, the part of the verifier's state that decides acceptance here: which registers hold a scalar that may
// be read (r6 always holds ctx and is never written; pointers are never readable as scalars), which 8-byte stack
// slots are fully written, and which register is a loop counter the body must not touch. Where control flow joins,
// the states are intersected, as the verifier's would be for readability. Every construct is emitted whole: a packet
// access block loads data and data_end, checks `data + N > data_end` and only then reads and writes inside [0, N);
// a map lookup is followed by a null check before the value is used; a helper's memory arguments point at stack bytes
// written just before the call.
#include "program_generator.hpp"

#include <fmt/format.h>
#include <linux/bpf.h>

#include <algorithm>
#include <array>
#include <random>

#include "sluice/ebpf/disassembler.hpp"
#include "sluice/ebpf/loader.hpp"

namespace sluice::testing {
namespace {

using ebpf::instruction;
using ebpf::make_instruction;
namespace op = ebpf::op;

/// Where every choice comes from: a seeded generator, or a fuzzer's bytes (0 once they run out).
class entropy {
public:
    explicit entropy(std::uint64_t seed) : _engine(seed) {}
    explicit entropy(std::span<const std::uint8_t> bytes) : _bytes(bytes), _from_bytes(true) {}

    /// A value in [0, bound); bound > 0.
    std::uint64_t below(std::uint64_t bound) {
        if (!_from_bytes) {
            return _engine() % bound;
        }
        std::uint64_t value = 0;
        for (std::uint64_t span = 1; span < bound && span != 0; span <<= 8) {
            value = (value << 8) | next_byte();
        }
        return value % bound;
    }
    std::uint64_t next64() {
        if (!_from_bytes) {
            return _engine();
        }
        std::uint64_t value = 0;
        for (int i = 0; i < 8; ++i) {
            value = (value << 8) | next_byte();
        }
        return value;
    }
    /// Probability in [0, 1], to 1/65536.
    bool chance(double probability) {
        if (probability <= 0) {
            return false;
        }
        return static_cast<double>(below(65536)) < probability * 65536.0;
    }
    std::int64_t between(std::int64_t low, std::int64_t high) {
        return low + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(high - low + 1)));
    }
    bool exhausted() const { return _from_bytes && _position >= _bytes.size(); }

private:
    std::uint8_t next_byte() { return _position < _bytes.size() ? _bytes[_position++] : 0; }

    std::mt19937_64 _engine{0};
    std::span<const std::uint8_t> _bytes;
    std::size_t _position{};
    bool _from_bytes{};
};

constexpr int ctx_register = 6;
constexpr int registers = 10; // r0..r9; r10 is the frame pointer

enum class holds : std::uint8_t {
    nothing, ///< never written, or clobbered by a call: the verifier refuses a read
    pointer, ///< a pointer (ctx, packet, stack, map): readable, but its value differs between engines
    scalar,  ///< a number the program may read and overwrite
    counter, ///< a loop's counter: readable, not writable inside the loop
};

// Stack layout (offsets from r10). Slots 0..31 (-8 .. -256) are for spills; the rest hold helper arguments.
constexpr int spill_slots = 32;
constexpr std::int16_t key_offset = -272;   ///< map keys, up to 8 bytes
constexpr std::int16_t value_offset = -336; ///< map values for update, up to 48 bytes
constexpr std::int16_t buffer_a = -368;     ///< 16 bytes: load/store_bytes, csum_diff
constexpr std::int16_t buffer_b = -400;     ///< 16 bytes: csum_diff
constexpr std::uint32_t max_value_size = 48;

constexpr int slot_of(std::int32_t offset) {
    return (-offset) / 8 - 1;
} // offset: a multiple of 8 below 0
constexpr std::int16_t offset_of(int slot) {
    return static_cast<std::int16_t>(-8 * (slot + 1));
}

struct state {
    std::array<holds, registers> regs{};
    std::uint64_t stack{}; ///< bit i: slot i (offset -8(i+1)) has all 8 bytes written

    bool readable(int r) const {
        const holds what = regs[static_cast<std::size_t>(r)];
        return what == holds::scalar || what == holds::counter;
    }
    bool writable(int r) const { return r != ctx_register && regs[static_cast<std::size_t>(r)] != holds::counter; }
    void set(int r, holds what) { regs[static_cast<std::size_t>(r)] = what; }
    bool slot_written(int slot) const { return ((stack >> slot) & 1U) != 0; }
    void write_slot(int slot) { stack |= std::uint64_t{1} << slot; }

    /// What is readable on every path into a join.
    static state join(const state& a, const state& b) {
        state result;
        for (std::size_t r = 0; r < a.regs.size(); ++r) {
            if (a.regs[r] == b.regs[r]) {
                result.regs[r] = a.regs[r];
            } else {
                // A pointer on some path stays one: an unsafe read of it would leak an address.
                const bool pointer = a.regs[r] == holds::pointer || b.regs[r] == holds::pointer;
                result.regs[r] = pointer ? holds::pointer : holds::nothing;
            }
        }
        result.stack = a.stack & b.stack;
        return result;
    }
};

struct map_choice {
    std::uint32_t key_space{}; ///< keys are below this (a power of two)
};

class generator {
public:
    generator(entropy& random, const generator_options& options) : _random(random), _options(options) {
        _limit = std::max<std::size_t>(options.max_instructions, 24) - 6; // room for the epilogue
    }

    generated_program run() {
        choose_maps();
        prologue();
        statements(0, 1'000'000);
        epilogue();
        generated_program result;
        result.code = std::move(_code);
        result.maps = std::move(_maps);
        result.unsafe = _unsafe;
        return result;
    }

private:
    // ---- emission ----

    std::size_t emit(instruction insn) {
        _code.push_back(insn);
        return _code.size() - 1;
    }
    void alu(bool is64, std::uint8_t operation, int dst, std::int32_t imm, std::int16_t offset = 0) {
        emit(make_instruction(static_cast<std::uint8_t>((is64 ? op::cls_alu64 : op::cls_alu) | op::src_k | operation),
                              static_cast<std::uint8_t>(dst), 0, offset, imm));
    }
    void alu_reg(bool is64, std::uint8_t operation, int dst, int src, std::int16_t offset = 0) {
        emit(make_instruction(static_cast<std::uint8_t>((is64 ? op::cls_alu64 : op::cls_alu) | op::src_x | operation),
                              static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(src), offset, 0));
    }
    void mov_imm(int dst, std::int32_t imm) {
        alu(true, op::alu_mov, dst, imm);
        _state.set(dst, holds::scalar);
    }
    void mov_reg(int dst, int src) { alu_reg(true, op::alu_mov, dst, src); }
    void lddw(int dst, std::uint8_t source, std::uint64_t value) {
        emit(make_instruction(op::lddw, static_cast<std::uint8_t>(dst), source, 0,
                              static_cast<std::int32_t>(static_cast<std::uint32_t>(value))));
        emit(make_instruction(0, 0, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(value >> 32))));
    }
    void load(std::uint8_t size, int dst, int base, std::int16_t offset, bool sign_extend = false) {
        emit(make_instruction(
            static_cast<std::uint8_t>(op::cls_ldx | size | (sign_extend ? op::mode_memsx : op::mode_mem)),
            static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(base), offset, 0));
    }
    void store_reg(std::uint8_t size, int base, std::int16_t offset, int src) {
        emit(make_instruction(static_cast<std::uint8_t>(op::cls_stx | size | op::mode_mem),
                              static_cast<std::uint8_t>(base), static_cast<std::uint8_t>(src), offset, 0));
    }
    void store_imm(std::uint8_t size, int base, std::int16_t offset, std::int32_t imm) {
        emit(make_instruction(static_cast<std::uint8_t>(op::cls_st | size | op::mode_mem),
                              static_cast<std::uint8_t>(base), 0, offset, imm));
    }
    void call(std::int32_t helper) {
        emit(make_instruction(op::call, 0, op::call_helper, 0, helper));
        for (int r = 1; r <= 5; ++r) {
            _state.set(r, holds::nothing);
        }
        _state.set(0, holds::scalar);
    }
    /// A forward jump to be patched; returns its index.
    std::size_t jump(std::uint8_t opcode, int dst, int src, std::int32_t imm) {
        return emit(make_instruction(opcode, static_cast<std::uint8_t>(dst), static_cast<std::uint8_t>(src), 0, imm));
    }
    /// Points the jump at `index` to the next instruction to be emitted.
    void land(std::size_t index) {
        const auto distance = static_cast<std::int64_t>(_code.size()) - static_cast<std::int64_t>(index) - 1;
        if (_code[index].opcode == op::ja32) {
            _code[index].imm = static_cast<std::int32_t>(distance);
        } else {
            _code[index].offset = static_cast<std::int16_t>(distance);
        }
    }

    bool room(std::size_t cost) const { return _code.size() + cost + _reserved <= _limit && !_random.exhausted(); }
    bool unsafe_now() {
        if (_random.chance(_options.unsafe_probability)) {
            _unsafe = true;
            return true;
        }
        return false;
    }

    // ---- values ----

    std::int32_t interesting_imm() {
        switch (_random.below(8)) {
        case 0:
            return static_cast<std::int32_t>(_random.between(-8, 8));
        case 1:
            return static_cast<std::int32_t>(_random.below(256));
        case 2:
            return static_cast<std::int32_t>(std::uint32_t{1} << _random.below(31));
        case 3:
            return -static_cast<std::int32_t>(std::uint32_t{1} << _random.below(31));
        case 4: {
            static constexpr std::array<std::int32_t, 8> edges{INT32_MIN, INT32_MAX, -1,      0x7fff,
                                                               0x8000,    0xffff,    0x10000, 0x7f};
            return edges[_random.below(edges.size())];
        }
        default:
            return static_cast<std::int32_t>(static_cast<std::uint32_t>(_random.next64()));
        }
    }
    std::uint64_t interesting_imm64() {
        switch (_random.below(4)) {
        case 0:
            return static_cast<std::uint64_t>(static_cast<std::int64_t>(interesting_imm()));
        case 1:
            return std::uint64_t{1} << _random.below(64);
        case 2: {
            static constexpr std::array<std::uint64_t, 5> edges{0x8000000000000000ULL, 0x7fffffffffffffffULL,
                                                                0xffffffffULL, 0x100000000ULL, 0xffffffff00000000ULL};
            return edges[_random.below(edges.size())];
        }
        default:
            return _random.next64();
        }
    }

    /// A register the program may read as a scalar, or -1. Unsafe: sometimes one it may not read.
    int readable_register(std::initializer_list<int> excluded = {}) {
        if (_options.unsafe_probability > 0 && unsafe_now()) {
            // A register never written (or clobbered by a call): the verifier must refuse the read. Never a pointer:
            // if the verifier let that through, the program would leak an address, which differs between engines.
            std::array<int, registers> unwritten{};
            std::size_t count = 0;
            for (int r = 0; r < registers; ++r) {
                if (_state.regs[static_cast<std::size_t>(r)] == holds::nothing) {
                    unwritten[count++] = r;
                }
            }
            if (count > 0) {
                return unwritten[_random.below(count)];
            }
        }
        std::array<int, registers> candidates{};
        std::size_t count = 0;
        for (int r = 0; r < registers; ++r) {
            if (_state.readable(r) && r != ctx_register &&
                std::find(excluded.begin(), excluded.end(), r) == excluded.end()) {
                candidates[count++] = r;
            }
        }
        return count == 0 ? -1 : candidates[_random.below(count)];
    }
    /// A register the program may overwrite (never r6 or a loop counter).
    int writable_register(std::initializer_list<int> excluded = {}) {
        std::array<int, registers> candidates{};
        std::size_t count = 0;
        for (int r = 0; r < registers; ++r) {
            if (_state.writable(r) && std::find(excluded.begin(), excluded.end(), r) == excluded.end()) {
                candidates[count++] = r;
            }
        }
        return count == 0 ? -1 : candidates[_random.below(count)];
    }
    /// A readable scalar register, made one from an immediate if there is none.
    int some_scalar(std::initializer_list<int> excluded = {}) {
        int r = readable_register(excluded);
        if (r < 0) {
            r = writable_register(excluded);
            mov_imm(r, interesting_imm());
        }
        return r;
    }

    // ---- program ----

    void choose_maps() {
        if (!_options.maps) {
            return;
        }
        const std::size_t count = _random.below(4);
        for (std::size_t i = 0; i < count; ++i) {
            ebpf::map_definition definition;
            static constexpr std::array<ebpf::map_type, 6> kinds{
                ebpf::map_type::array,       ebpf::map_type::percpu_array, ebpf::map_type::hash,
                ebpf::map_type::percpu_hash, ebpf::map_type::lru_hash,     ebpf::map_type::lru_percpu_hash};
            definition.type = kinds[_random.below(kinds.size())];
            definition.value_size = static_cast<std::uint32_t>(8 * _random.between(1, max_value_size / 8));
            map_choice choice;
            switch (definition.type) {
            case ebpf::map_type::array:
            case ebpf::map_type::percpu_array:
                definition.key_size = 4;
                definition.max_entries = 8;
                choice.key_space = 16; // half the keys are out of range: lookups fail, updates give -E2BIG
                break;
            case ebpf::map_type::hash:
            case ebpf::map_type::percpu_hash:
                definition.key_size = _random.chance(0.5) ? 4 : 8;
                definition.max_entries = 16;
                choice.key_space = 8;
                break;
            default:
                // LRU: free nodes always outnumber the kernel's per-cpu free target, so nothing is ever evicted.
                definition.key_size = _random.chance(0.5) ? 4 : 8;
                definition.max_entries = 32;
                choice.key_space = 8;
                break;
            }
            definition.name = fmt::format("gen_map_{}", i);
            _maps.push_back(definition);
            _map_choices.push_back(choice);
        }
    }

    void prologue() {
        _state = state{};
        mov_reg(ctx_register, 1); // r6 = ctx for the whole program; r1 is the context too, but calls clobber it
        _state.set(ctx_register, holds::pointer);
        _state.set(1, holds::pointer);
        for (int r = 7; r <= 9; ++r) {
            if (_random.chance(0.3)) {
                lddw(r, op::pseudo_imm64, interesting_imm64());
            } else {
                alu(true, op::alu_mov, r, interesting_imm());
            }
            _state.set(r, holds::scalar);
        }
        if (_random.chance(0.5)) {
            // ingress_ifindex (12) or rx_queue_index (16): context the harness sets on both sides.
            const int dst = static_cast<int>(_random.between(7, 9));
            load(op::size_w, dst, ctx_register, _random.chance(0.5) ? 12 : 16);
        }
        if (_options.packet_access && _random.chance(0.5)) {
            // The packet's length, as data_end - data: a scalar for root (pointer subtraction is allowed).
            load(op::size_w, 2, ctx_register, 0);
            load(op::size_w, 3, ctx_register, 4);
            alu_reg(true, op::alu_sub, 3, 2);
            _state.set(2, holds::pointer);
            _state.set(3, holds::scalar);
        }
    }

    void epilogue() {
        if (_options.unsafe_probability > 0 && _state.regs[0] == holds::nothing && unsafe_now()) {
            emit(make_instruction(op::exit)); // r0 unwritten: the verifier must refuse
            return;
        }
        const int source = readable_register({});
        const std::uint64_t kind = _random.below(8);
        if (source < 0 || kind == 0) {
            mov_imm(0, static_cast<std::int32_t>(_random.below(5)));
        } else if (kind <= 2) {
            // A table of actions, one exit each.
            const std::size_t branch =
                jump(op::cls_jmp | op::jmp_jgt | op::src_k, source, 0, static_cast<std::int32_t>(_random.below(64)));
            mov_imm(0, static_cast<std::int32_t>(_random.below(5)));
            emit(make_instruction(op::exit));
            land(branch);
            mov_imm(0, static_cast<std::int32_t>(_random.below(5)));
        } else {
            if (source != 0) {
                mov_reg(0, source);
            }
            if (kind == 3) {
                alu(true, op::alu_mod, 0, 5); // 0..4: every action
            } else if (kind == 4) {
                alu(false, op::alu_and, 0, 7); // now and then an unknown action code (5..7)
            } else {
                alu(false, op::alu_and, 0, 3); // aborted, drop, pass, tx
            }
        }
        emit(make_instruction(op::exit));
    }

    /// Statements until the budget runs out (depth 0) or `count` have been made.
    void statements(int depth, int count) {
        for (int made = 0; made < count && room(4); ++made) {
            statement(depth);
        }
    }

    void statement(int depth) {
        // Weights: arithmetic dominates, as in real programs; compound statements less often deeper down.
        const bool shallow = depth < 3;
        const std::uint64_t pick = _random.below(100);
        if (pick < 35) {
            arithmetic();
        } else if (pick < 40) {
            const int dst = writable_register();
            if (dst >= 0 && room(2)) {
                lddw(dst, op::pseudo_imm64, interesting_imm64());
                _state.set(dst, holds::scalar);
            }
        } else if (pick < 50) {
            stack_access();
        } else if (pick < 62 && shallow) {
            branch(depth);
        } else if (pick < 74 && _options.packet_access) {
            packet_block(depth);
        } else if (pick < 86 && _options.maps && !_maps.empty()) {
            map_operation(depth);
        } else if (pick < 95 && _options.helpers) {
            helper_call();
        } else if (pick < 100 && _options.loops && depth == 0 && !_in_loop) {
            loop(depth);
        } else {
            arithmetic();
        }
    }

    /// One ALU instruction (with the setup it needs) on scalars only.
    void arithmetic(std::initializer_list<int> excluded = {}) {
        if (!room(4)) {
            return;
        }
        const int dst = writable_register(excluded);
        if (dst < 0) {
            return;
        }
        bool is64 = _random.chance(0.6);
        const int width = is64 ? 64 : 32;
        if (!_state.readable(dst) || _state.regs[static_cast<std::size_t>(dst)] != holds::scalar) {
            // Not yet a scalar: only a move may write it.
            if (_random.chance(0.5)) {
                const int src = readable_register(excluded);
                if (src >= 0) {
                    alu_reg(is64, op::alu_mov, dst, src);
                    _state.set(dst, holds::scalar);
                    return;
                }
            }
            alu(is64, op::alu_mov, dst, interesting_imm());
            _state.set(dst, holds::scalar);
            return;
        }
        static constexpr std::array<std::uint8_t, 13> operations{
            op::alu_add, op::alu_sub, op::alu_mul, op::alu_div, op::alu_or,  op::alu_and, op::alu_lsh,
            op::alu_rsh, op::alu_neg, op::alu_mod, op::alu_xor, op::alu_mov, op::alu_arsh};
        const std::uint64_t pick = _random.below(operations.size() + 3);
        if (pick == operations.size()) {
            byte_swap(dst);
            return;
        }
        if (pick == operations.size() + 1 && _options.v4_instructions) {
            // Sign-extending move: movsx 64 from 8/16/32 bits, 32 from 8/16 bits.
            const int src = readable_register(excluded);
            if (src >= 0) {
                static constexpr std::array<std::int16_t, 3> widths{8, 16, 32};
                const std::int16_t from = widths[_random.below(is64 ? 3 : 2)];
                alu_reg(is64, op::alu_mov, dst, src, from);
                return;
            }
        }
        const std::uint8_t operation = operations[_random.below(operations.size())];
        const bool divides = operation == op::alu_div || operation == op::alu_mod;
        const std::int16_t signed_offset =
            divides && _options.v4_instructions && _random.chance(0.4) ? std::int16_t{1} : std::int16_t{0};
        if (operation == op::alu_neg) {
            alu(is64, op::alu_neg, dst, 0);
            return;
        }
        const bool shifts = operation == op::alu_lsh || operation == op::alu_rsh || operation == op::alu_arsh;
        int src = _random.chance(0.5) ? readable_register(excluded) : -1;
        if (src >= 0 && shifts && src != dst) {
            if (!_state.writable(src) || (_options.unsafe_probability > 0 && unsafe_now())) {
                src = -1; // a counter must not be masked in place; unsafe: shift by an unmasked amount
            } else {
                alu(true, op::alu_and, src, width - 1); // shift amounts masked, so every engine agrees
            }
        }
        if (src >= 0 && shifts && src == dst) {
            src = -1;
        }
        if (src >= 0) {
            alu_reg(is64, operation, dst, src, signed_offset);
            return;
        }
        std::int32_t imm = interesting_imm();
        if (shifts) {
            imm = static_cast<std::int32_t>(static_cast<std::uint32_t>(imm) & static_cast<std::uint32_t>(width - 1));
            if (_options.unsafe_probability > 0 && unsafe_now()) {
                imm = width + static_cast<std::int32_t>(_random.below(8)); // the kernel refuses shifts >= width
            }
        }
        if (divides && imm == 0) {
            imm = (_options.unsafe_probability > 0 && unsafe_now()) ? 0 : 3; // the kernel refuses division by 0
        }
        alu(is64, operation, dst, imm, signed_offset);
    }

    void byte_swap(int dst) {
        static constexpr std::array<std::int32_t, 3> widths{16, 32, 64};
        const std::int32_t bits = widths[_random.below(widths.size())];
        if (_options.v4_instructions && _random.chance(0.33)) {
            alu(true, op::alu_end, dst, bits); // bswap (ALU64, v4)
            return;
        }
        const bool to_big = _random.chance(0.5);
        emit(make_instruction(static_cast<std::uint8_t>(op::cls_alu | op::alu_end | (to_big ? op::src_x : op::src_k)),
                              static_cast<std::uint8_t>(dst), 0, 0, bits));
    }

    static std::uint8_t size_code(int bytes) {
        switch (bytes) {
        case 1:
            return op::size_b;
        case 2:
            return op::size_h;
        case 4:
            return op::size_w;
        default:
            return op::size_dw;
        }
    }

    /// Spills, partial stores, fills and atomics on the stack.
    void stack_access() {
        if (!room(3)) {
            return;
        }
        const std::uint64_t pick = _random.below(10);
        const int slot = static_cast<int>(_random.below(spill_slots));
        if (pick < 3 || (!_state.slot_written(slot) && pick < 6)) {
            // Whole-slot spill.
            const int src = _random.chance(0.7) ? readable_register() : -1;
            if (src >= 0) {
                store_reg(op::size_dw, frame(), offset_of(slot), src);
            } else {
                store_imm(op::size_dw, frame(), offset_of(slot), interesting_imm());
            }
            _state.write_slot(slot);
            return;
        }
        // The rest read or change a written slot (unsafe: maybe not written).
        int source_slot = written_slot();
        if (source_slot < 0) {
            if (_options.unsafe_probability > 0 && _options.unsafe_stack_reads && unsafe_now()) {
                source_slot = slot;
            } else {
                return;
            }
        }
        const int bytes = 1 << _random.below(4);
        const auto offset =
            static_cast<std::int16_t>(offset_of(source_slot) + bytes * static_cast<int>(_random.below(8 / bytes)));
        if (pick < 6) {
            const int src = readable_register();
            if (src >= 0 && _random.chance(0.6)) {
                store_reg(size_code(bytes), frame(), offset, src);
            } else {
                store_imm(size_code(bytes), frame(), offset, interesting_imm());
            }
        } else if (pick < 9 || !_options.atomics) {
            const int dst = writable_register();
            if (dst < 0) {
                return;
            }
            const bool sign_extend = _options.v4_instructions && bytes < 8 && _random.chance(0.3);
            load(size_code(bytes), dst, frame(), offset, sign_extend);
            _state.set(dst, holds::scalar);
        } else {
            atomic(frame(), offset_of(source_slot), 8, {}, _options.stack_fetch_atomics);
        }
    }

    static constexpr int frame() { return ebpf::frame_pointer; }

    int written_slot() {
        std::array<int, 64> candidates{};
        std::size_t count = 0;
        for (int slot = 0; slot < 64; ++slot) {
            if (_state.slot_written(slot)) {
                candidates[count++] = slot;
            }
        }
        return count == 0 ? -1 : candidates[_random.below(count)];
    }

    /// An atomic on [base + offset, + region) (naturally aligned, as the kernel requires of atomics).
    void atomic(int base, std::int16_t region_offset, std::uint32_t region, std::initializer_list<int> excluded,
                bool fetching = true) {
        const bool wide = region >= 8 && _random.chance(0.5);
        const int bytes = wide ? 8 : 4;
        const auto offset = static_cast<std::int16_t>(
            region_offset + bytes * static_cast<int>(_random.below(region / static_cast<std::uint32_t>(bytes))));
        static constexpr std::array<std::int32_t, 10> operations{op::atomic_add,
                                                                 op::atomic_or,
                                                                 op::atomic_and,
                                                                 op::atomic_xor,
                                                                 op::atomic_add | op::atomic_fetch,
                                                                 op::atomic_or | op::atomic_fetch,
                                                                 op::atomic_and | op::atomic_fetch,
                                                                 op::atomic_xor | op::atomic_fetch,
                                                                 op::atomic_xchg,
                                                                 op::atomic_cmpxchg};
        // The first four do not fetch.
        const std::int32_t operation = operations[_random.below(fetching ? operations.size() : 4)];
        const bool writes_source = (operation & op::atomic_fetch) != 0 && operation != op::atomic_cmpxchg;
        int src = -1;
        if (writes_source) {
            src = writable_register(excluded);
            if (src < 0) {
                return;
            }
            if (!_state.readable(src)) {
                mov_imm(src, interesting_imm());
            }
        } else {
            src = some_scalar(excluded);
        }
        if (operation == op::atomic_cmpxchg) {
            if (!_state.writable(0) || std::find(excluded.begin(), excluded.end(), 0) != excluded.end() || src == 0 ||
                base == 0) {
                return;
            }
            if (!_state.readable(0)) {
                mov_imm(0, interesting_imm()); // the value compared against
            }
        }
        emit(make_instruction(static_cast<std::uint8_t>(op::cls_stx | size_code(bytes) | op::mode_atomic),
                              static_cast<std::uint8_t>(base), static_cast<std::uint8_t>(src), offset, operation));
        if (writes_source) {
            _state.set(src, holds::scalar);
        }
    }

    /// if (cond) { ... } or if (cond) { ... } else { ... }, with JMP or JMP32 conditions.
    void branch(int depth) {
        if (!room(6)) {
            return;
        }
        static constexpr std::array<std::uint8_t, 11> conditions{op::jmp_jeq,  op::jmp_jne,  op::jmp_jgt,  op::jmp_jge,
                                                                 op::jmp_jlt,  op::jmp_jle,  op::jmp_jset, op::jmp_jsgt,
                                                                 op::jmp_jsge, op::jmp_jslt, op::jmp_jsle};
        const std::uint8_t condition = conditions[_random.below(conditions.size())];
        const std::uint8_t cls = _random.chance(0.35) ? op::cls_jmp32 : op::cls_jmp;
        const int left = some_scalar();
        const int right = _random.chance(0.4) ? readable_register() : -1;
        const std::size_t skip =
            right >= 0
                ? jump(static_cast<std::uint8_t>(cls | condition | op::src_x), left, right, 0)
                : jump(static_cast<std::uint8_t>(cls | condition | op::src_k), left, 0,
                       _random.chance(0.5) ? static_cast<std::int32_t>(_random.between(-4, 64)) : interesting_imm());
        const state before = _state;
        const bool with_else = _random.chance(0.35);
        _reserved += with_else ? 1 : 0;
        statements(depth + 1, static_cast<int>(_random.between(1, 4)));
        _reserved -= with_else ? 1 : 0;
        if (!with_else) {
            land(skip);
            _state = state::join(before, _state);
            return;
        }
        const bool long_jump = _options.v4_instructions && _random.chance(0.3);
        const std::size_t over = emit(make_instruction(long_jump ? op::ja32 : op::ja));
        const state then_state = _state;
        land(skip);
        _state = before;
        statements(depth + 1, static_cast<int>(_random.between(1, 3)));
        land(over);
        _state = state::join(then_state, _state);
    }

    /// Three distinct registers of r0..r5, none a counter.
    std::array<int, 3> scratch_registers() {
        std::array<int, 6> all{0, 1, 2, 3, 4, 5};
        for (std::size_t i = all.size() - 1; i > 0; --i) {
            std::swap(all[i], all[_random.below(i + 1)]);
        }
        return {all[0], all[1], all[2]};
    }

    /// data (or data_meta) + offset checked against data_end (or data), then reads and writes inside the range.
    void packet_block(int depth) {
        if (!room(14)) {
            return;
        }
        const auto [pointer, end, check] = scratch_registers();
        const bool metadata = _random.chance(0.15);
        // A variable offset from a scalar, masked so that the verifier can bound it.
        const int offset_source = !metadata && _random.chance(0.3) ? readable_register({pointer, end, check}) : -1;
        if (offset_source >= 0) {
            mov_reg(check, offset_source);
            alu(true, op::alu_and, check, static_cast<std::int32_t>((1U << _random.below(7)) - 1));
        }
        load(op::size_w, pointer, ctx_register, metadata ? 8 : 0);
        load(op::size_w, end, ctx_register, metadata ? 0 : 4);
        _state.set(pointer, holds::pointer);
        _state.set(end, holds::pointer);
        if (offset_source >= 0) {
            alu_reg(true, op::alu_add, pointer, check);
        }
        if (_random.chance(0.3)) {
            alu(true, op::alu_add, pointer, static_cast<std::int32_t>(_random.below(41)));
        }
        const int length = static_cast<int>(metadata ? 4 * _random.between(1, 8) : _random.between(1, 64));
        mov_reg(check, pointer);
        alu(true, op::alu_add, check, length);
        _state.set(check, holds::pointer);
        const bool checked = !(_options.unsafe_probability > 0 && unsafe_now());
        std::size_t skip = 0;
        if (checked) {
            skip = _random.chance(0.5) ? jump(op::cls_jmp | op::jmp_jgt | op::src_x, check, end, 0)
                                       : jump(op::cls_jmp | op::jmp_jlt | op::src_x, end, check, 0);
        }
        const state before = _state;
        const int accesses = static_cast<int>(_random.between(1, 5));
        for (int i = 0; i < accesses && room(3); ++i) {
            const std::uint64_t pick = _random.below(10);
            if (pick < 2) {
                arithmetic({pointer, end, check});
                continue;
            }
            int bytes = 1 << _random.below(4);
            while (bytes > length) {
                bytes /= 2;
            }
            int offset = bytes * static_cast<int>(_random.below(static_cast<std::uint64_t>(length / bytes)));
            if (_options.unsafe_probability > 0 && unsafe_now()) {
                offset = length - bytes + 1 + static_cast<int>(_random.below(8)); // past the checked range
            }
            if (pick < 6) {
                const int dst = writable_register({pointer, end, check});
                if (dst < 0) {
                    continue;
                }
                const bool sign_extend = _options.v4_instructions && bytes < 8 && _random.chance(0.25);
                load(size_code(bytes), dst, pointer, static_cast<std::int16_t>(offset), sign_extend);
                _state.set(dst, holds::scalar);
            } else if (pick < 8) {
                const int src = readable_register({pointer, end, check});
                if (src >= 0) {
                    store_reg(size_code(bytes), pointer, static_cast<std::int16_t>(offset), src);
                }
            } else {
                store_imm(size_code(bytes), pointer, static_cast<std::int16_t>(offset), interesting_imm());
            }
        }
        (void)depth;
        if (checked) {
            land(skip);
        }
        _state = state::join(before, _state);
    }

    /// r1 = map, r2 = &key (written from a scalar or an immediate, inside the map's key space).
    void map_and_key(std::size_t index) {
        const std::uint32_t space = _map_choices[index].key_space;
        const int source = _random.chance(0.7) ? readable_register() : -1;
        if (source >= 0) {
            mov_reg(1, source);
            alu(true, op::alu_and, 1, static_cast<std::int32_t>(space - 1));
            store_reg(op::size_dw, frame(), key_offset, 1);
        } else {
            store_imm(op::size_dw, frame(), key_offset, static_cast<std::int32_t>(_random.below(space)));
        }
        _state.write_slot(slot_of(key_offset));
        lddw(1, op::pseudo_map_idx, index);
        mov_reg(2, frame());
        alu(true, op::alu_add, 2, key_offset);
        _state.set(1, holds::pointer);
        _state.set(2, holds::pointer);
    }

    void map_operation(int depth) {
        if (!room(22)) {
            return;
        }
        const std::size_t index = _random.below(_maps.size());
        const ebpf::map_definition& definition = _maps[index];
        const std::uint64_t pick = _random.below(10);
        if (pick < 5) {
            map_and_key(index);
            call(1); // bpf_map_lookup_elem
            _state.set(0, holds::pointer);
            const bool checked = !(_options.unsafe_probability > 0 && unsafe_now());
            std::size_t skip = 0;
            if (checked) {
                skip = jump(op::cls_jmp | op::jmp_jeq | op::src_k, 0, 0, 0);
            }
            const int value = static_cast<int>(_random.between(1, 5));
            mov_reg(value, 0);
            _state.set(value, holds::pointer);
            const state before = _state;
            const int accesses = static_cast<int>(_random.between(1, 5));
            for (int i = 0; i < accesses && room(4); ++i) {
                value_access(value, definition.value_size);
            }
            (void)depth;
            if (checked) {
                land(skip);
            }
            _state = state::join(before, _state);
            return;
        }
        if (pick < 8) {
            // Update: the value from scalars and immediates, 8 bytes at a time.
            for (std::uint32_t at = 0; at < definition.value_size; at += 8) {
                const auto offset = static_cast<std::int16_t>(value_offset + static_cast<std::int32_t>(at));
                const int src = _random.chance(0.6) ? readable_register() : -1;
                if (src >= 0) {
                    store_reg(op::size_dw, frame(), offset, src);
                } else {
                    store_imm(op::size_dw, frame(), offset, interesting_imm());
                }
                _state.write_slot(slot_of(offset));
            }
            map_and_key(index);
            mov_reg(3, frame());
            alu(true, op::alu_add, 3, value_offset);
            static constexpr std::array<std::int32_t, 7> flags{0, 0, 1, 1, 2, 2, 4};
            std::int32_t flag = flags[_random.below(flags.size())];
            if (_random.chance(0.03)) {
                flag = 3; // -EINVAL
            }
            alu(true, op::alu_mov, 4, flag);
            call(2); // bpf_map_update_elem
            return;
        }
        map_and_key(index);
        call(3); // bpf_map_delete_elem
    }

    /// One read, write or atomic through a map value pointer in `value`.
    void value_access(int value, std::uint32_t value_size) {
        const std::uint64_t pick = _random.below(10);
        if (pick < 2) {
            arithmetic({value});
            return;
        }
        if (pick == 9 && _options.atomics) {
            atomic(value, 0, value_size, {value}, true);
            return;
        }
        const int bytes = 1 << _random.below(4);
        std::int32_t offset =
            bytes * static_cast<std::int32_t>(_random.below(value_size / static_cast<std::uint32_t>(bytes)));
        if (_options.unsafe_probability > 0 && unsafe_now()) {
            offset = static_cast<std::int32_t>(value_size) - bytes + 1 + static_cast<std::int32_t>(_random.below(8));
        }
        if (pick < 6) {
            const int dst = writable_register({value});
            if (dst < 0) {
                return;
            }
            load(size_code(bytes), dst, value, static_cast<std::int16_t>(offset),
                 _options.v4_instructions && bytes < 8 && _random.chance(0.25));
            _state.set(dst, holds::scalar);
        } else if (pick < 8) {
            const int src = readable_register({value});
            if (src >= 0) {
                store_reg(size_code(bytes), value, static_cast<std::int16_t>(offset), src);
            }
        } else {
            store_imm(size_code(bytes), value, static_cast<std::int16_t>(offset), interesting_imm());
        }
    }

    /// r2 = a delta for the adjust helpers: small mostly, now and then beyond what the kernel allows.
    void delta_argument() {
        const int source = _random.chance(0.15) ? readable_register({1}) : -1;
        if (source >= 0) {
            mov_reg(2, source);
            return;
        }
        static constexpr std::array<std::int32_t, 10> edges{-256, -300, -4096, 3000, 4000, 256, -14, 14, -252, 252};
        const std::int32_t delta = _random.chance(0.8) ? static_cast<std::int32_t>(_random.between(-64, 64))
                                                       : edges[_random.below(edges.size())];
        alu(true, op::alu_mov, 2, delta);
    }

    void fill_buffer(std::int16_t offset) {
        for (int at = 0; at < 16; at += 8) {
            const int src = _random.chance(0.5) ? readable_register() : -1;
            if (src >= 0) {
                store_reg(op::size_dw, frame(), static_cast<std::int16_t>(offset + at), src);
            } else {
                store_imm(op::size_dw, frame(), static_cast<std::int16_t>(offset + at), interesting_imm());
            }
            _state.write_slot(slot_of(offset + at));
        }
    }

    void helper_call() {
        if (!room(12)) {
            return;
        }
        std::uint64_t pick = _random.below(_options.nondeterministic_helpers ? 12 : 10);
        switch (pick) {
        case 0:
        case 1:
        case 2: {
            static constexpr std::array<std::int32_t, 3> adjust{BPF_FUNC_xdp_adjust_head, BPF_FUNC_xdp_adjust_tail,
                                                                BPF_FUNC_xdp_adjust_meta};
            delta_argument();
            mov_reg(1, ctx_register);
            call(adjust[pick]);
            return;
        }
        case 3:
            mov_reg(1, ctx_register);
            call(BPF_FUNC_xdp_get_buff_len);
            return;
        case 4:
        case 5: {
            fill_buffer(buffer_a);
            const int source = _random.chance(0.4) ? readable_register({1, 3, 4}) : -1;
            if (source >= 0) {
                mov_reg(2, source);
                if (_random.chance(0.8)) {
                    alu(true, op::alu_and, 2, 127);
                }
            } else {
                alu(true, op::alu_mov, 2, static_cast<std::int32_t>(_random.below(96)));
            }
            mov_reg(1, ctx_register);
            mov_reg(3, frame());
            alu(true, op::alu_add, 3, buffer_a);
            alu(true, op::alu_mov, 4, static_cast<std::int32_t>(_random.between(1, 16)));
            call(pick == 4 ? BPF_FUNC_xdp_load_bytes : BPF_FUNC_xdp_store_bytes);
            return;
        }
        case 6:
        case 7: {
            fill_buffer(buffer_a);
            fill_buffer(buffer_b);
            static constexpr std::array<std::int32_t, 6> sizes{0, 4, 8, 12, 16, 6};
            const std::int32_t from_size = sizes[_random.below(_random.chance(0.05) ? 6 : 5)];
            const std::int32_t to_size = sizes[_random.below(5)];
            if (from_size == 0 && _random.chance(0.5)) {
                alu(true, op::alu_mov, 1, 0); // NULL with size 0
            } else {
                mov_reg(1, frame());
                alu(true, op::alu_add, 1, buffer_a);
            }
            alu(true, op::alu_mov, 2, from_size);
            mov_reg(3, frame());
            alu(true, op::alu_add, 3, buffer_b);
            alu(true, op::alu_mov, 4, to_size);
            const int seed = readable_register({1, 2, 3, 4});
            if (seed >= 0) {
                mov_reg(5, seed);
            } else {
                alu(true, op::alu_mov, 5, interesting_imm());
            }
            call(BPF_FUNC_csum_diff);
            return;
        }
        case 8:
            alu(true, op::alu_mov, 1, static_cast<std::int32_t>(_random.between(1, 8)));
            alu(true, op::alu_mov, 2, _random.chance(0.9) ? 0 : static_cast<std::int32_t>(_random.between(1, 16)));
            call(BPF_FUNC_redirect);
            return;
        case 9: {
            // bpf_check_mtu(ctx, ifindex, &mtu_len, len_diff, flags): the context's device (0), the loopback (1) or
            // one that does not exist; mtu_len 0 (the packet's length) or an L3 length; now and then bad flags.
            static constexpr std::array<std::int32_t, 4> interfaces{0, 0, 1, 0x7fff0000};
            static constexpr std::array<std::int32_t, 5> lengths{0, 0, 1400, 9000, 70000};
            store_imm(op::size_dw, frame(), buffer_a, lengths[_random.below(lengths.size())]);
            _state.write_slot(slot_of(buffer_a));
            mov_reg(1, ctx_register);
            alu(true, op::alu_mov, 2, interfaces[_random.below(interfaces.size())]);
            mov_reg(3, frame());
            alu(true, op::alu_add, 3, buffer_a);
            static constexpr std::array<std::int32_t, 6> differences{0, -14, 100, -100, 65536, -70000};
            alu(true, op::alu_mov, 4, differences[_random.below(differences.size())]);
            alu(true, op::alu_mov, 5, _random.chance(0.9) ? 0 : 1);
            call(BPF_FUNC_check_mtu);
            return;
        }
        case 10:
            call(BPF_FUNC_get_prandom_u32);
            return;
        default:
            call(BPF_FUNC_ktime_get_ns);
            return;
        }
    }

    /// counter = K; do { body } while (--counter != 0); K <= 4, so the verifier walks every iteration.
    void loop(int depth) {
        if (!room(24)) {
            return;
        }
        int counter = -1;
        for (int attempt = 0; attempt < 4 && counter < 0; ++attempt) {
            const int candidate = static_cast<int>(_random.between(7, 9));
            if (_state.writable(candidate)) {
                counter = candidate;
            }
        }
        if (counter < 0) {
            return;
        }
        // A constant bound: with a bound from the data the verifier's walk through the loop need not converge.
        alu(true, op::alu_mov, counter, static_cast<std::int32_t>(_random.between(1, 4)));
        _state.set(counter, holds::counter);
        const state entry = _state;
        const std::size_t head = _code.size();
        // can_loop at the head: the budget (0xffff per frame) outlasts every loop here, but both ways are verified.
        const bool may_goto = _options.may_goto && _random.chance(0.5);
        if (may_goto) {
            emit(make_instruction(op::may_goto));
        }
        _in_loop = true;
        _reserved += 2 + registers; // decrement, back jump, restoring moves
        statements(depth + 1, static_cast<int>(_random.between(1, 4)));
        _reserved -= 2 + registers;
        _in_loop = false;
        // The next iteration starts from this state: what the body made unreadable is written again.
        for (int r = 0; r < registers; ++r) {
            if (entry.regs[static_cast<std::size_t>(r)] == holds::scalar && !_state.readable(r)) {
                mov_imm(r, interesting_imm());
            }
        }
        const bool narrow = _random.chance(0.3);
        alu(!narrow, op::alu_sub, counter, 1);
        const std::size_t back = emit(make_instruction(
            static_cast<std::uint8_t>((narrow ? op::cls_jmp32 : op::cls_jmp) | op::jmp_jne | op::src_k),
            static_cast<std::uint8_t>(counter), 0, 0, 0));
        _code[back].offset =
            static_cast<std::int16_t>(static_cast<std::int64_t>(head) - static_cast<std::int64_t>(back) - 1);
        if (may_goto) {
            // The budget spent: out of the loop from its head, with only what was readable there.
            _code[head].offset = static_cast<std::int16_t>(static_cast<std::int64_t>(_code.size()) -
                                                           static_cast<std::int64_t>(head) - 1);
            _state = state::join(entry, _state);
        }
        _state.set(counter, holds::scalar);
    }

    entropy& _random;
    const generator_options& _options;
    std::vector<instruction> _code;
    std::vector<ebpf::map_definition> _maps;
    std::vector<map_choice> _map_choices;
    state _state;
    std::size_t _limit{};
    std::size_t _reserved{};
    bool _in_loop{};
    bool _unsafe{};
};

} // namespace

generated_program generate_program(std::uint64_t seed, const generator_options& options) {
    entropy random(seed);
    generated_program program = generator(random, options).run();
    program.seed = seed;
    return program;
}

generated_program generate_program(std::span<const std::uint8_t> fuzz_bytes, const generator_options& options) {
    entropy random(fuzz_bytes);
    generated_program program = generator(random, options).run();
    std::uint64_t hash = 0xcbf29ce484222325ULL; // FNV-1a, so a failure names its input
    for (const std::uint8_t byte : fuzz_bytes) {
        hash = (hash ^ byte) * 0x100000001b3ULL;
    }
    program.seed = hash;
    return program;
}

expected<instantiated_program> instantiate(const generated_program& program, unsigned cpus) {
    instantiated_program result;
    std::vector<ebpf::map*> maps;
    for (const ebpf::map_definition& definition : program.maps) {
        auto created = ebpf::create_map(definition, cpus);
        if (!created) {
            return created.error();
        }
        maps.push_back(created->get());
        result.maps.push_back(std::move(created.value()));
    }
    auto rewritten = ebpf::rewrite_context_accesses(program.code);
    if (!rewritten) {
        return rewritten.error();
    }
    result.relocated = std::move(rewritten.value());
    auto lowered = ebpf::lower_map_references(result.relocated, maps);
    if (!lowered) {
        return lowered.error();
    }
    result.code = std::move(lowered.value());
    return result;
}

std::vector<instruction> kernel_form(std::span<const instruction> code, std::span<const int> map_fds) {
    std::vector<instruction> result(code.begin(), code.end());
    for (std::size_t pc = 0; pc + 1 < result.size(); ++pc) {
        if (result[pc].opcode != op::lddw) {
            continue;
        }
        if (result[pc].src == op::pseudo_map_idx) {
            const auto index = static_cast<std::size_t>(result[pc].imm);
            result[pc].src = op::pseudo_map_fd;
            result[pc].imm = index < map_fds.size() ? map_fds[index] : -1;
        }
        ++pc;
    }
    return result;
}

std::string describe(const generated_program& program) {
    std::string text = fmt::format("generated program, seed {:#x}{}, {} instructions\n", program.seed,
                                   program.unsafe ? " (unsafe)" : "", program.code.size());
    for (std::size_t i = 0; i < program.maps.size(); ++i) {
        const ebpf::map_definition& map = program.maps[i];
        text += fmt::format("  map {} '{}': {} key {} value {} max_entries {}\n", i, map.name,
                            ebpf::to_string(map.type), map.key_size, map.value_size, map.max_entries);
    }
    for (std::size_t pc = 0; pc < program.code.size(); ++pc) {
        text += fmt::format("  {:4}: {}\n", pc, ebpf::disassemble(program.code, pc));
        if (program.code[pc].opcode == op::lddw) {
            ++pc;
        }
    }
    return text;
}

} // namespace sluice::testing
