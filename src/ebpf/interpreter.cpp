// The reference interpreter (contract in interpreter.hpp).
//
// Each RFC 9669 rule is one small constexpr function in `semantics`, so a reader checks the rule once, tests can pin
// it at compile time, and the JIT can reuse it for constant folding. The run loop is a single switch over the whole
// opcode byte; it is instantiated per mode (checked or not, limited or not) so the trusting loop carries no checks.

#include "sluice/ebpf/interpreter.hpp"

#include <bit>
#include <cstring>
#include <ctime>
#include <limits>
#include <type_traits>

#include <fmt/format.h>

#include "sluice/ebpf/kernel_helpers.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf {

namespace semantics {

static_assert(std::endian::native == std::endian::little, "le/be below assume a little-endian host");

constexpr std::uint32_t low(std::uint64_t value) {
    return static_cast<std::uint32_t>(value);
}

/// Unsigned division: by zero gives 0.
template <typename U> constexpr U divide(U dividend, U divisor) {
    return divisor == 0 ? U{0} : U(dividend / divisor);
}

/// Unsigned modulo: by zero leaves the dividend.
template <typename U> constexpr U modulo(U dividend, U divisor) {
    return divisor == 0 ? dividend : U(dividend % divisor);
}

/// Signed division (offset 1): by zero gives 0; INT_MIN / -1 gives INT_MIN (C++ would overflow; wrapping negation
/// is exactly the RFC's answer for every dividend when the divisor is -1).
template <typename U> constexpr U signed_divide(U dividend, U divisor) {
    using S = std::make_signed_t<U>;
    if (divisor == 0) {
        return 0;
    }
    if (static_cast<S>(divisor) == -1) {
        return U(U{0} - dividend);
    }
    return static_cast<U>(static_cast<S>(dividend) / static_cast<S>(divisor));
}

/// Signed modulo (offset 1): by zero leaves the dividend; anything % -1 is 0 (INT_MIN % -1 would overflow in C++).
/// The result takes the dividend's sign, as C's truncating remainder does.
template <typename U> constexpr U signed_modulo(U dividend, U divisor) {
    using S = std::make_signed_t<U>;
    if (divisor == 0) {
        return dividend;
    }
    if (static_cast<S>(divisor) == -1) {
        return 0;
    }
    return static_cast<U>(static_cast<S>(dividend) % static_cast<S>(divisor));
}

/// Shift amounts are masked to the operand width (& 31 or & 63), never undefined.
template <typename U> constexpr U shift_mask() {
    return U(std::numeric_limits<U>::digits - 1);
}
template <typename U> constexpr U shift_left(U value, U amount) {
    return U(value << (amount & shift_mask<U>()));
}
template <typename U> constexpr U shift_right(U value, U amount) {
    return U(value >> (amount & shift_mask<U>()));
}
template <typename U> constexpr U shift_right_arithmetic(U value, U amount) {
    using S = std::make_signed_t<U>;
    return static_cast<U>(static_cast<S>(value) >> (amount & shift_mask<U>())); // C++20: arithmetic shift
}

/// Sign-extends the low bits of `value` (as the signed type `From`) to 64 bits.
template <typename From> constexpr std::uint64_t sign_extend(std::uint64_t value) {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(static_cast<From>(value)));
}

/// mov in ALU64: offset 0 copies, 8/16/32 sign-extend that many low bits.
constexpr std::uint64_t move64(std::uint64_t source, std::int16_t offset) {
    switch (offset) {
    case 8:
        return sign_extend<std::int8_t>(source);
    case 16:
        return sign_extend<std::int16_t>(source);
    case 32:
        return sign_extend<std::int32_t>(source);
    default:
        return source;
    }
}

/// mov in ALU: as move64 but within 32 bits; the caller's write zero-extends.
constexpr std::uint32_t move32(std::uint64_t source, std::int16_t offset) {
    switch (offset) {
    case 8:
        return low(sign_extend<std::int8_t>(source));
    case 16:
        return low(sign_extend<std::int16_t>(source));
    default:
        return low(source);
    }
}

/// Reverses the low `width` bits' bytes (16, 32 or 64); upper bits become zero.
constexpr std::uint64_t byte_swap(std::uint64_t value, std::int32_t width) {
    switch (width) {
    case 16:
        return __builtin_bswap16(static_cast<std::uint16_t>(value));
    case 32:
        return __builtin_bswap32(static_cast<std::uint32_t>(value));
    default:
        return __builtin_bswap64(value);
    }
}

/// Keeps the low `width` bits (16, 32 or 64): on a little-endian host, conversion to little-endian is just this.
constexpr std::uint64_t truncate(std::uint64_t value, std::int32_t width) {
    switch (width) {
    case 16:
        return static_cast<std::uint16_t>(value);
    case 32:
        return static_cast<std::uint32_t>(value);
    default:
        return value;
    }
}

static_assert(signed_divide<std::uint64_t>(std::uint64_t{1} << 63, ~std::uint64_t{0}) == std::uint64_t{1} << 63);
static_assert(signed_modulo<std::uint32_t>(0x80000000u, 0xffffffffu) == 0);
static_assert(divide<std::uint32_t>(7, 0) == 0 && modulo<std::uint64_t>(7, 0) == 7);
static_assert(shift_left<std::uint64_t>(1, 64) == 1 && shift_left<std::uint32_t>(1, 33) == 2);
static_assert(move64(0x80, 8) == 0xffffffffffffff80 && move32(0x8000, 16) == 0xffff8000);
static_assert(byte_swap(0x1122334455667788, 16) == 0x8877 && truncate(0x1122334455667788, 32) == 0x55667788);

} // namespace semantics

namespace {

using namespace semantics;
using namespace op;

template <typename T> T load(std::uint64_t address) {
    T value;
    std::memcpy(&value, reinterpret_cast<const void*>(address), sizeof value); // alignment not required
    return value;
}

template <typename T> void store(std::uint64_t address, T value) {
    std::memcpy(reinterpret_cast<void*>(address), &value, sizeof value);
}

/// Atomic read-modify-write of a T at `address`; `operation` is the instruction's imm. Real atomics because maps
/// are shared between workers. Returns false for an operation RFC 9669 does not define.
template <typename T>
bool atomic_update(std::uint64_t address, std::int32_t operation, std::uint64_t& source, std::uint64_t& r0) {
    auto* target = reinterpret_cast<T*>(address);
    const auto value = static_cast<T>(source);
    switch (operation) {
    case atomic_add:
        __atomic_fetch_add(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_or:
        __atomic_fetch_or(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_and:
        __atomic_fetch_and(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_xor:
        __atomic_fetch_xor(target, value, __ATOMIC_SEQ_CST);
        return true;
    // The fetch forms load the old value, zero-extended, into the source register.
    case atomic_add | atomic_fetch:
        source = __atomic_fetch_add(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_or | atomic_fetch:
        source = __atomic_fetch_or(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_and | atomic_fetch:
        source = __atomic_fetch_and(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_xor | atomic_fetch:
        source = __atomic_fetch_xor(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_xchg:
        source = __atomic_exchange_n(target, value, __ATOMIC_SEQ_CST);
        return true;
    case atomic_cmpxchg: {
        // Compares with r0; whatever happens, r0 receives the old value (compare_exchange writes it on failure, and
        // on success the old value equals the expected one).
        auto expected_value = static_cast<T>(r0);
        __atomic_compare_exchange_n(target, &expected_value, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
        r0 = expected_value;
        return true;
    }
    default:
        return false;
    }
}

struct saved_frame {
    std::size_t return_pc{};
    std::array<std::uint64_t, 4> callee_saved{}; ///< r6..r9
    may_goto_budget budget;                      ///< the caller's, while the callee runs with its own
};

std::uint64_t signed_imm(const instruction& ins) {
    return static_cast<std::uint64_t>(static_cast<std::int64_t>(ins.imm));
}

} // namespace

std::uint64_t may_goto_refresh(may_goto_budget* budget) noexcept {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const std::uint64_t time =
        static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<std::uint64_t>(now.tv_nsec);
    if (budget->timestamp == 0) {
        budget->timestamp = time;
        return may_goto_chunk;
    }
    return time - budget->timestamp >= may_goto_time_limit_ns ? 0 : may_goto_chunk;
}

void helper_table::set(std::uint32_t id, std::string_view name, helper_function function) {
    // Ids beyond max_helper_id are not helpers any program can name; ignoring them keeps lookups a bounded array.
    if (id >= max_helper_id) {
        return;
    }
    if (id >= _functions.size()) {
        _functions.resize(id + 1);
        _names.resize(id + 1);
    }
    _functions[id] = function;
    _names[id] = name;
}

interpreter::interpreter(std::span<const instruction> code, const helper_table& helpers, interpreter_options options)
    : _code(code), _helpers(&helpers), _options(options),
      _stack(static_cast<std::size_t>(max_call_depth) * stack_size + 16) {}

expected<void> check_helper_calls(std::span<const instruction> code, const helper_table& helpers) {
    // The run loop trusts the encoding (no per-instruction bounds checks on pc or registers), so it must be valid.
    if (auto valid = validate(code); !valid) {
        return valid.error();
    }
    for (std::size_t pc = 0; pc < code.size(); ++pc) {
        const instruction& ins = code[pc];
        if (ins.opcode == op::lddw) {
            ++pc; // the second slot is data, not an instruction
            continue;
        }
        if (ins.opcode == op::call && ins.src == op::call_helper) {
            const auto id = static_cast<std::uint32_t>(ins.imm);
            if (helpers.find(id) != nullptr) {
                continue;
            }
            const std::string_view name = kernel_helper_name(id);
            const std::string what =
                name.empty() ? fmt::format("helper {}", id) : fmt::format("{} (helper {})", name, id);
            const std::string where =
                helpers.provided_for().empty() ? std::string{} : fmt::format(" for {}", helpers.provided_for());
            return error::at(pc,
                             fmt::format("instruction {}: calls {}, which sluice does not provide{}", pc, what, where));
        }
        if (ins.opcode == op::call && ins.src == op::call_kfunc) {
            return error::at(pc, fmt::format("instruction {}: kernel function calls (kfuncs) are not supported", pc));
        }
    }
    return {};
}

expected<runnable_program> runnable_program::prepare(std::span<const instruction> code, const helper_table& helpers) {
    if (auto checked = check_helper_calls(code, helpers); !checked) {
        return checked.error();
    }
    return runnable_program(code, helpers);
}

expected<interpreter> interpreter::create(std::span<const instruction> code, const helper_table& helpers,
                                          interpreter_options options) {
    if (auto checked = check_helper_calls(code, helpers); !checked) {
        return checked.error();
    }
    return interpreter(code, helpers, options);
}

/// What one run shares between the program and the callbacks it makes: the program running now (a tail call
/// replaces it), the helpers' context, the instruction count, and the first error a callback met.
struct interpreter::run_state {
    interpreter* self{};
    const instruction* code{};
    std::size_t code_size{};
    const helper_table* helpers{};
    call_context context;
    std::uint64_t executed{};
    std::uintptr_t stack_top{};
    std::uintptr_t frame_top{}; ///< the calling frame's top at the helper call in progress
    std::size_t depth{};        ///< frames in use at the helper call in progress
    std::optional<error> failure;
};

bool interpreter::access_allowed(std::uintptr_t address, std::size_t bytes, bool write, std::uintptr_t stack_low,
                                 std::uintptr_t stack_high, std::string& message) const {
    const auto within = [&](std::uintptr_t begin, std::size_t size) {
        return address >= begin && address - begin <= size && bytes <= size - (address - begin);
    };
    if (within(stack_low, stack_high - stack_low)) {
        return true;
    }
    const char* kind = write ? "write" : "read";
    for (const memory_region& region : _regions) {
        if (within(region.begin, region.size)) {
            if (write && !region.writable) {
                message = fmt::format("{}-byte write at {:#x} targets the read-only {}", bytes, address,
                                      region.name.empty() ? std::string_view{"region"} : region.name);
                return false;
            }
            return true;
        }
    }
    std::string names = "stack";
    for (const memory_region& region : _regions) {
        names += ", ";
        names += region.name.empty() ? std::string_view{"unnamed region"} : region.name;
    }
    message = fmt::format("{}-byte {} at {:#x} is outside every region the program may access ({})", bytes, kind,
                          address, names);
    return false;
}

expected<std::uint64_t> interpreter::run(std::array<std::uint64_t, 5> arguments, void* user) {
    run_state state;
    state.self = this;
    state.code = _code.data();
    state.code_size = _code.size();
    state.helpers = _helpers;
    state.context.user = user;
    state.context.engine = &state;
    const auto stack_base = reinterpret_cast<std::uintptr_t>(_stack.data());
    state.stack_top = (stack_base + _stack.size()) & ~std::uintptr_t{15};
    if (_options.checked) {
        state.context.granter = &grant_region;
        if (_options.instruction_limit != 0) {
            state.context.caller = &call_function<true, true>;
            return execute<true, true>(state, 0, arguments, state.stack_top, 0);
        }
        state.context.caller = &call_function<true, false>;
        return execute<true, false>(state, 0, arguments, state.stack_top, 0);
    }
    if (_options.instruction_limit != 0) {
        state.context.caller = &call_function<false, true>;
        return execute<false, true>(state, 0, arguments, state.stack_top, 0);
    }
    state.context.caller = &call_function<false, false>;
    return execute<false, false>(state, 0, arguments, state.stack_top, 0);
}

void interpreter::grant_region(void* engine, const memory_region& region) {
    static_cast<run_state*>(engine)->self->_regions.push_back(region);
}

template <bool checked, bool limited>
bool interpreter::call_function(void* engine, std::uint64_t function, const std::array<std::uint64_t, 5>& arguments,
                                std::span<const memory_region> lent, std::uint64_t& result) {
    auto& state = *static_cast<run_state*>(engine);
    if (state.failure || state.context.stop) {
        return false;
    }
    const auto base = reinterpret_cast<std::uintptr_t>(state.code);
    const std::uintptr_t offset = function - base;
    if (function < base || offset % sizeof(instruction) != 0 || offset / sizeof(instruction) >= state.code_size) {
        state.failure =
            error{fmt::format("callback handle {:#x} names no instruction of the running program", function)};
        state.context.stop = true;
        return false;
    }
    // A callback is a frame like a local call's (the kernel's verifier counts it against MAX_CALL_FRAMES).
    if (state.depth + 1 >= static_cast<std::size_t>(max_call_depth)) {
        state.failure = error{fmt::format("callback nests deeper than {} frames", max_call_depth)};
        state.context.stop = true;
        return false;
    }
    // The helper call in progress owns state.frame_top/depth; a nested helper call overwrites them, so keep ours.
    const std::uintptr_t saved_top = state.frame_top;
    const std::size_t saved_depth = state.depth;
    ++state.context.callback_depth;
    std::vector<memory_region>& regions = state.self->_regions;
    const std::size_t regions_before = regions.size();
    if constexpr (checked) {
        regions.insert(regions.end(), lent.begin(), lent.end()); // grows once, then reuses its capacity
    }
    auto returned = state.self->execute<checked, limited>(state, offset / sizeof(instruction), arguments,
                                                          saved_top - stack_size, saved_depth + 1);
    regions.resize(regions_before);
    --state.context.callback_depth;
    state.frame_top = saved_top;
    state.depth = saved_depth;
    if (!returned) {
        if (!state.failure) {
            state.failure = returned.error();
        }
        state.context.stop = true;
        return false;
    }
    if (state.context.stop) {
        return false; // a helper inside the callback ended the program
    }
    result = *returned;
    return true;
}

template <bool checked, bool limited>
expected<std::uint64_t> interpreter::execute(run_state& state, std::size_t entry,
                                             const std::array<std::uint64_t, 5>& arguments, std::uintptr_t frame_top,
                                             std::size_t depth_base) {
    // 16 slots although only r0..r10 exist: any 4-bit register field indexes safely.
    std::array<std::uint64_t, 16> reg{};
    for (std::size_t i = 0; i < arguments.size(); ++i) {
        reg[i + 1] = arguments[i];
    }
    const std::uintptr_t stack_top = state.stack_top;
    reg[frame_pointer] = frame_top;

    std::array<saved_frame, max_call_depth> frames{};
    std::size_t depth = 0;  // local calls in progress in this activation
    may_goto_budget budget; // the current frame's (callbacks start here, so each invocation gets its own)
    call_context& context = state.context;
    std::string message;
    const instruction* code = state.code;
    const helper_table* helpers = state.helpers;
    std::size_t pc = entry;

    // Checked mode: the live stack is the current frame and every caller's frame above it.
    const auto check = [&](std::uint64_t address, std::size_t bytes, bool write) {
        return access_allowed(address, bytes, write, frame_top - stack_size, stack_top, message);
    };
    const auto fault = [&](std::size_t at) { return error::at(at, fmt::format("instruction {}: {}", at, message)); };
    // After a helper: a callback's error or a stop ends the run; a tail call replaces the program (kernel:
    // bpf_tail_call jumps to the target's first instruction, frames gone, r1 still the context).
    const auto after_helper = [&]() -> bool {
        if (context.stop) {
            return false;
        }
        if (context.tail_call != nullptr) {
            const runnable_program* target = context.tail_call;
            context.tail_call = nullptr;
            ++context.tail_calls;
            code = target->code.data();
            helpers = target->helpers;
            state.code = code;
            state.code_size = target->code.size();
            state.helpers = helpers;
            depth = 0;
            frame_top = stack_top;
            reg[frame_pointer] = frame_top;
            budget = may_goto_budget{};
            pc = 0;
        }
        return true;
    };
    const auto stopped = [&]() -> expected<std::uint64_t> {
        if (state.failure) {
            return *state.failure;
        }
        return context.stop_value;
    };

    for (;;) {
        const std::size_t at = pc;
        const instruction ins = code[pc++];
        if constexpr (limited) {
            if (++state.executed > _options.instruction_limit) {
                return error::at(
                    at, fmt::format("instruction {}: instruction limit of {} reached", at, _options.instruction_limit));
            }
        }
        std::uint64_t& dst = reg[ins.dst];
        const std::uint64_t src = reg[ins.src];
        const std::uint64_t imm = signed_imm(ins);
        const auto jump = [&]() { pc = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + ins.offset); };
        const std::uint64_t address_src = src + static_cast<std::uint64_t>(static_cast<std::int64_t>(ins.offset));
        const std::uint64_t address_dst = dst + static_cast<std::uint64_t>(static_cast<std::int64_t>(ins.offset));

        // One line per opcode reads as the RFC's table; formatting it would triple its length.
        // clang-format off
        switch (ins.opcode) {
        // ALU64, immediate and register forms.
        case cls_alu64 | src_k | alu_add: dst += imm; break;
        case cls_alu64 | src_x | alu_add: dst += src; break;
        case cls_alu64 | src_k | alu_sub: dst -= imm; break;
        case cls_alu64 | src_x | alu_sub: dst -= src; break;
        case cls_alu64 | src_k | alu_mul: dst *= imm; break;
        case cls_alu64 | src_x | alu_mul: dst *= src; break;
        case cls_alu64 | src_k | alu_div: dst = ins.offset == 1 ? signed_divide(dst, imm) : divide(dst, imm); break;
        case cls_alu64 | src_x | alu_div: dst = ins.offset == 1 ? signed_divide(dst, src) : divide(dst, src); break;
        case cls_alu64 | src_k | alu_or: dst |= imm; break;
        case cls_alu64 | src_x | alu_or: dst |= src; break;
        case cls_alu64 | src_k | alu_and: dst &= imm; break;
        case cls_alu64 | src_x | alu_and: dst &= src; break;
        case cls_alu64 | src_k | alu_lsh: dst = shift_left(dst, imm); break;
        case cls_alu64 | src_x | alu_lsh: dst = shift_left(dst, src); break;
        case cls_alu64 | src_k | alu_rsh: dst = shift_right(dst, imm); break;
        case cls_alu64 | src_x | alu_rsh: dst = shift_right(dst, src); break;
        case cls_alu64 | src_k | alu_neg: dst = std::uint64_t{0} - dst; break;
        case cls_alu64 | src_k | alu_mod: dst = ins.offset == 1 ? signed_modulo(dst, imm) : modulo(dst, imm); break;
        case cls_alu64 | src_x | alu_mod: dst = ins.offset == 1 ? signed_modulo(dst, src) : modulo(dst, src); break;
        case cls_alu64 | src_k | alu_xor: dst ^= imm; break;
        case cls_alu64 | src_x | alu_xor: dst ^= src; break;
        case cls_alu64 | src_k | alu_mov: dst = imm; break;
        case cls_alu64 | src_x | alu_mov: dst = move64(src, ins.offset); break;
        case cls_alu64 | src_k | alu_arsh: dst = shift_right_arithmetic(dst, imm); break;
        case cls_alu64 | src_x | alu_arsh: dst = shift_right_arithmetic(dst, src); break;
        case cls_alu64 | src_k | alu_end: dst = byte_swap(dst, ins.imm); break;

        // ALU (32-bit): operate on the low halves; assigning a uint32_t zero-extends the result.
        case cls_alu | src_k | alu_add: dst = low(dst) + low(imm); break;
        case cls_alu | src_x | alu_add: dst = low(dst) + low(src); break;
        case cls_alu | src_k | alu_sub: dst = low(dst) - low(imm); break;
        case cls_alu | src_x | alu_sub: dst = low(dst) - low(src); break;
        case cls_alu | src_k | alu_mul: dst = low(dst) * low(imm); break;
        case cls_alu | src_x | alu_mul: dst = low(dst) * low(src); break;
        case cls_alu | src_k | alu_div:
            dst = ins.offset == 1 ? signed_divide(low(dst), low(imm)) : divide(low(dst), low(imm));
            break;
        case cls_alu | src_x | alu_div:
            dst = ins.offset == 1 ? signed_divide(low(dst), low(src)) : divide(low(dst), low(src));
            break;
        case cls_alu | src_k | alu_or: dst = low(dst) | low(imm); break;
        case cls_alu | src_x | alu_or: dst = low(dst) | low(src); break;
        case cls_alu | src_k | alu_and: dst = low(dst) & low(imm); break;
        case cls_alu | src_x | alu_and: dst = low(dst) & low(src); break;
        case cls_alu | src_k | alu_lsh: dst = shift_left(low(dst), low(imm)); break;
        case cls_alu | src_x | alu_lsh: dst = shift_left(low(dst), low(src)); break;
        case cls_alu | src_k | alu_rsh: dst = shift_right(low(dst), low(imm)); break;
        case cls_alu | src_x | alu_rsh: dst = shift_right(low(dst), low(src)); break;
        case cls_alu | src_k | alu_neg: dst = std::uint32_t{0} - low(dst); break;
        case cls_alu | src_k | alu_mod:
            dst = ins.offset == 1 ? signed_modulo(low(dst), low(imm)) : modulo(low(dst), low(imm));
            break;
        case cls_alu | src_x | alu_mod:
            dst = ins.offset == 1 ? signed_modulo(low(dst), low(src)) : modulo(low(dst), low(src));
            break;
        case cls_alu | src_k | alu_xor: dst = low(dst) ^ low(imm); break;
        case cls_alu | src_x | alu_xor: dst = low(dst) ^ low(src); break;
        case cls_alu | src_k | alu_mov: dst = low(imm); break;
        case cls_alu | src_x | alu_mov: dst = move32(src, ins.offset); break;
        case cls_alu | src_k | alu_arsh: dst = shift_right_arithmetic(low(dst), low(imm)); break;
        case cls_alu | src_x | alu_arsh: dst = shift_right_arithmetic(low(dst), low(src)); break;
        case cls_alu | src_k | alu_end: dst = truncate(dst, ins.imm); break;                // le
        case cls_alu | src_x | alu_end: dst = byte_swap(dst, ins.imm); break;               // be

        // JMP: 64-bit comparisons.
        case cls_jmp | jmp_ja: jump(); break;
        // may_goto +0 does nothing: the kernel removes it (opt_remove_nops) rather than spend budget on it.
        case op::may_goto: if (ins.offset != 0 && may_goto_spent(budget)) { jump(); } break;
        case cls_jmp | src_k | jmp_jeq: if (dst == imm) { jump(); } break;
        case cls_jmp | src_x | jmp_jeq: if (dst == src) { jump(); } break;
        case cls_jmp | src_k | jmp_jgt: if (dst > imm) { jump(); } break;
        case cls_jmp | src_x | jmp_jgt: if (dst > src) { jump(); } break;
        case cls_jmp | src_k | jmp_jge: if (dst >= imm) { jump(); } break;
        case cls_jmp | src_x | jmp_jge: if (dst >= src) { jump(); } break;
        case cls_jmp | src_k | jmp_jset: if ((dst & imm) != 0) { jump(); } break;
        case cls_jmp | src_x | jmp_jset: if ((dst & src) != 0) { jump(); } break;
        case cls_jmp | src_k | jmp_jne: if (dst != imm) { jump(); } break;
        case cls_jmp | src_x | jmp_jne: if (dst != src) { jump(); } break;
        case cls_jmp | src_k | jmp_jsgt: if (std::int64_t(dst) > std::int64_t(imm)) { jump(); } break;
        case cls_jmp | src_x | jmp_jsgt: if (std::int64_t(dst) > std::int64_t(src)) { jump(); } break;
        case cls_jmp | src_k | jmp_jsge: if (std::int64_t(dst) >= std::int64_t(imm)) { jump(); } break;
        case cls_jmp | src_x | jmp_jsge: if (std::int64_t(dst) >= std::int64_t(src)) { jump(); } break;
        case cls_jmp | src_k | jmp_jlt: if (dst < imm) { jump(); } break;
        case cls_jmp | src_x | jmp_jlt: if (dst < src) { jump(); } break;
        case cls_jmp | src_k | jmp_jle: if (dst <= imm) { jump(); } break;
        case cls_jmp | src_x | jmp_jle: if (dst <= src) { jump(); } break;
        case cls_jmp | src_k | jmp_jslt: if (std::int64_t(dst) < std::int64_t(imm)) { jump(); } break;
        case cls_jmp | src_x | jmp_jslt: if (std::int64_t(dst) < std::int64_t(src)) { jump(); } break;
        case cls_jmp | src_k | jmp_jsle: if (std::int64_t(dst) <= std::int64_t(imm)) { jump(); } break;
        case cls_jmp | src_x | jmp_jsle: if (std::int64_t(dst) <= std::int64_t(src)) { jump(); } break;

        // JMP32: the same on the low halves; JMP32|JA ("gotol") takes its offset from imm.
        case cls_jmp32 | jmp_ja: pc = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + ins.imm); break;
        case cls_jmp32 | src_k | jmp_jeq: if (low(dst) == low(imm)) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jeq: if (low(dst) == low(src)) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jgt: if (low(dst) > low(imm)) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jgt: if (low(dst) > low(src)) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jge: if (low(dst) >= low(imm)) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jge: if (low(dst) >= low(src)) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jset: if ((low(dst) & low(imm)) != 0) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jset: if ((low(dst) & low(src)) != 0) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jne: if (low(dst) != low(imm)) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jne: if (low(dst) != low(src)) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jsgt: if (std::int32_t(low(dst)) > std::int32_t(low(imm))) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jsgt: if (std::int32_t(low(dst)) > std::int32_t(low(src))) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jsge: if (std::int32_t(low(dst)) >= std::int32_t(low(imm))) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jsge: if (std::int32_t(low(dst)) >= std::int32_t(low(src))) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jlt: if (low(dst) < low(imm)) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jlt: if (low(dst) < low(src)) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jle: if (low(dst) <= low(imm)) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jle: if (low(dst) <= low(src)) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jslt: if (std::int32_t(low(dst)) < std::int32_t(low(imm))) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jslt: if (std::int32_t(low(dst)) < std::int32_t(low(src))) { jump(); } break;
        case cls_jmp32 | src_k | jmp_jsle: if (std::int32_t(low(dst)) <= std::int32_t(low(imm))) { jump(); } break;
        case cls_jmp32 | src_x | jmp_jsle: if (std::int32_t(low(dst)) <= std::int32_t(low(src))) { jump(); } break;

        // clang-format on

        // 64-bit immediate load. A function address (pseudo_func) becomes this interpreter's function handle, the
        // address of the target instruction (header comment); other pseudo sources (map fd, map value, ...) are the
        // loader's to resolve, and until it has, the value is used as it stands.
        case op::lddw:
            if (ins.src == pseudo_func) {
                dst = reinterpret_cast<std::uintptr_t>(code + static_cast<std::ptrdiff_t>(pc) + ins.imm); // pc: at + 1
            } else {
                dst = static_cast<std::uint32_t>(ins.imm) |
                      (static_cast<std::uint64_t>(static_cast<std::uint32_t>(code[pc].imm)) << 32);
            }
            ++pc;
            break;

        // Loads: zero-extending (MEM) and sign-extending (MEMSX).
        case cls_ldx | mode_mem | size_b:
        case cls_ldx | mode_mem | size_h:
        case cls_ldx | mode_mem | size_w:
        case cls_ldx | mode_mem | size_dw:
        case cls_ldx | mode_memsx | size_b:
        case cls_ldx | mode_memsx | size_h:
        case cls_ldx | mode_memsx | size_w:
            if constexpr (checked) {
                if (!check(address_src, static_cast<std::size_t>(access_bytes(ins.opcode)), false)) {
                    return fault(at);
                }
            }
            switch (ins.opcode) {
            case cls_ldx | mode_mem | size_b:
                dst = load<std::uint8_t>(address_src);
                break;
            case cls_ldx | mode_mem | size_h:
                dst = load<std::uint16_t>(address_src);
                break;
            case cls_ldx | mode_mem | size_w:
                dst = load<std::uint32_t>(address_src);
                break;
            case cls_ldx | mode_mem | size_dw:
                dst = load<std::uint64_t>(address_src);
                break;
            case cls_ldx | mode_memsx | size_b:
                dst = sign_extend<std::int8_t>(load<std::uint8_t>(address_src));
                break;
            case cls_ldx | mode_memsx | size_h:
                dst = sign_extend<std::int16_t>(load<std::uint16_t>(address_src));
                break;
            default:
                dst = sign_extend<std::int32_t>(load<std::uint32_t>(address_src));
                break;
            }
            break;

        // Stores of an immediate (st) or a register (stx): the low bytes of the value.
        case cls_st | mode_mem | size_b:
        case cls_st | mode_mem | size_h:
        case cls_st | mode_mem | size_w:
        case cls_st | mode_mem | size_dw:
        case cls_stx | mode_mem | size_b:
        case cls_stx | mode_mem | size_h:
        case cls_stx | mode_mem | size_w:
        case cls_stx | mode_mem | size_dw: {
            if constexpr (checked) {
                if (!check(address_dst, static_cast<std::size_t>(access_bytes(ins.opcode)), true)) {
                    return fault(at);
                }
            }
            const std::uint64_t value = cls(ins.opcode) == cls_st ? imm : src;
            switch (size(ins.opcode)) {
            case size_b:
                store(address_dst, static_cast<std::uint8_t>(value));
                break;
            case size_h:
                store(address_dst, static_cast<std::uint16_t>(value));
                break;
            case size_w:
                store(address_dst, static_cast<std::uint32_t>(value));
                break;
            default:
                store(address_dst, value);
                break;
            }
            break;
        }

        // Atomics: the operation is in imm.
        case cls_stx | mode_atomic | size_w:
        case cls_stx | mode_atomic | size_dw: {
            const bool wide = size(ins.opcode) == size_dw;
            if constexpr (checked) {
                if (!check(address_dst, wide ? 8 : 4, true)) {
                    return fault(at);
                }
            }
            const bool done = wide ? atomic_update<std::uint64_t>(address_dst, ins.imm, reg[ins.src], reg[0])
                                   : atomic_update<std::uint32_t>(address_dst, ins.imm, reg[ins.src], reg[0]);
            if (!done) {
                return error::at(at, fmt::format("instruction {}: unknown atomic operation {:#x}", at, ins.imm));
            }
            break;
        }

        case op::call:
            if (ins.src == call_local) {
                if (depth_base + depth + 1 >= static_cast<std::size_t>(max_call_depth)) {
                    return error::at(
                        at, fmt::format("instruction {}: local call nests deeper than {} frames", at, max_call_depth));
                }
                frames[depth] = saved_frame{pc, {reg[6], reg[7], reg[8], reg[9]}, budget};
                budget = may_goto_budget{};
                ++depth;
                frame_top -= stack_size;
                reg[frame_pointer] = frame_top;
                pc = static_cast<std::size_t>(static_cast<std::int64_t>(pc) + ins.imm);
                break;
            }
            // check_helper_calls() proved the helper exists.
            state.frame_top = frame_top;
            state.depth = depth_base + depth;
            reg[0] =
                helpers->find(static_cast<std::uint32_t>(ins.imm))(reg[1], reg[2], reg[3], reg[4], reg[5], context);
            if (!after_helper()) {
                return stopped();
            }
            break;

        case op::callx: {
            // The register named in dst holds the helper id (the conformance suite's convention).
            const helper_function function =
                dst < max_helper_id ? helpers->find(static_cast<std::uint32_t>(dst)) : nullptr;
            if (function == nullptr) {
                return error::at(at, fmt::format("instruction {}: callx through r{} = {:#x}, which names no helper", at,
                                                 ins.dst, dst));
            }
            state.frame_top = frame_top;
            state.depth = depth_base + depth;
            reg[0] = function(reg[1], reg[2], reg[3], reg[4], reg[5], context);
            if (!after_helper()) {
                return stopped();
            }
            break;
        }

        case op::exit:
            if (depth == 0) {
                return reg[0];
            }
            --depth;
            pc = frames[depth].return_pc;
            std::copy(frames[depth].callee_saved.begin(), frames[depth].callee_saved.end(), reg.begin() + 6);
            budget = frames[depth].budget;
            frame_top += stack_size;
            reg[frame_pointer] = frame_top;
            break;

        default:
            // validate() should have refused it; say so rather than guess.
            return error::at(at, fmt::format("instruction {}: opcode {:#04x} is not executable", at, ins.opcode));
        }
    }
}

} // namespace sluice::ebpf
