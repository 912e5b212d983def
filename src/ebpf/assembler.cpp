// The conformance suite's assembly syntax (contract in assembler.hpp).
//
// Two passes: the first finds every instruction's index (lddw takes two slots) and every label, so jumps may point
// forward; the second encodes. Mnemonics live in tables, so adding one is one line and the parser stays generic.

#include "sluice/ebpf/assembler.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace sluice::ebpf {
namespace {

using namespace op;

constexpr std::string_view whitespace = " \t\r\v\f";

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(whitespace);
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(whitespace) - first + 1);
}

std::vector<std::string_view> split_operands(std::string_view text) {
    std::vector<std::string_view> operands;
    if (trim(text).empty()) {
        return operands;
    }
    std::size_t start = 0;
    for (;;) {
        const auto comma = text.find(',', start);
        operands.push_back(trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start)));
        if (comma == std::string_view::npos) {
            return operands;
        }
        start = comma + 1;
    }
}

/// A signed or unsigned integer, decimal or 0x-hex, with an optional sign; anything that fits in 64 bits.
std::optional<std::int64_t> parse_integer(std::string_view text) {
    bool negative = false;
    if (!text.empty() && (text[0] == '-' || text[0] == '+')) {
        negative = text[0] == '-';
        text.remove_prefix(1);
    }
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    }
    std::uint64_t magnitude = 0;
    const auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), magnitude, base);
    if (text.empty() || failure != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    if (negative && magnitude > std::uint64_t{1} << 63) {
        return std::nullopt;
    }
    // Two's complement wrap: 0xffffffffffffffff and -1 are the same 64 bits.
    return static_cast<std::int64_t>(negative ? std::uint64_t{0} - magnitude : magnitude);
}

std::optional<std::uint8_t> parse_register(std::string_view text) {
    if (text.size() < 3 || text[0] != '%' || text[1] != 'r') {
        return std::nullopt;
    }
    const auto number = parse_integer(text.substr(2));
    if (!number || text[2] == '-' || text[2] == '+' || *number < 0 || *number >= register_count) {
        return std::nullopt;
    }
    return static_cast<std::uint8_t>(*number);
}

/// Registers come from parse_register (0..10), so masking to the 4-bit fields loses nothing.
constexpr instruction make(std::uint8_t opcode, std::uint8_t dst, std::uint8_t src, std::int16_t offset,
                           std::int32_t imm) {
    return make_instruction(opcode, dst, src, offset, imm);
}

struct memory_operand {
    std::uint8_t base{};
    std::int16_t offset{};
};

enum class alu_form { binary, unary, move_sign_extend, byte_order };

struct alu_mnemonic {
    std::uint8_t operation;
    alu_form form = alu_form::binary;
    std::int16_t offset = 0; ///< 1 for signed division, the width for movsx
};

const std::map<std::string_view, alu_mnemonic, std::less<>>& alu_mnemonics() {
    static const std::map<std::string_view, alu_mnemonic, std::less<>> table{
        {"add", {alu_add}},
        {"sub", {alu_sub}},
        {"mul", {alu_mul}},
        {"div", {alu_div}},
        {"sdiv", {alu_div, alu_form::binary, 1}},
        {"or", {alu_or}},
        {"and", {alu_and}},
        {"lsh", {alu_lsh}},
        {"rsh", {alu_rsh}},
        {"neg", {alu_neg, alu_form::unary}},
        {"mod", {alu_mod}},
        {"smod", {alu_mod, alu_form::binary, 1}},
        {"xor", {alu_xor}},
        {"mov", {alu_mov}},
        {"arsh", {alu_arsh}},
    };
    return table;
}

const std::map<std::string_view, std::uint8_t, std::less<>>& jump_mnemonics() {
    static const std::map<std::string_view, std::uint8_t, std::less<>> table{
        {"jeq", jmp_jeq}, {"jgt", jmp_jgt},   {"jge", jmp_jge},   {"jset", jmp_jset},
        {"jne", jmp_jne}, {"jsgt", jmp_jsgt}, {"jsge", jmp_jsge}, {"jlt", jmp_jlt},
        {"jle", jmp_jle}, {"jslt", jmp_jslt}, {"jsle", jmp_jsle},
    };
    return table;
}

const std::map<std::string_view, std::uint8_t, std::less<>>& size_suffixes() {
    static const std::map<std::string_view, std::uint8_t, std::less<>> table{
        {"b", size_b}, {"h", size_h}, {"w", size_w}, {"dw", size_dw}};
    return table;
}

const std::map<std::string_view, std::int32_t, std::less<>>& atomic_mnemonics() {
    static const std::map<std::string_view, std::int32_t, std::less<>> table{
        {"add", atomic_add}, {"or", atomic_or},     {"and", atomic_and},
        {"xor", atomic_xor}, {"xchg", atomic_xchg}, {"cmpxchg", atomic_cmpxchg}};
    return table;
}

struct source_line {
    std::size_t number{};  ///< 1-based, for messages
    std::string_view text; ///< as written, without comment
    std::string_view mnemonic;
    std::vector<std::string_view> operands;
    std::size_t pc{};
};

class encoder {
public:
    encoder(const source_line& line, const std::map<std::string, std::size_t, std::less<>>& labels)
        : _line(line), _labels(labels) {}

    expected<std::vector<instruction>> encode();

private:
    error fail(std::string_view what) const {
        return error{fmt::format("line {}: {} in '{}'", _line.number, what, _line.text)};
    }

    expected<std::vector<instruction>> one(instruction ins) const { return std::vector<instruction>{ins}; }

    std::optional<error> expect_operands(std::size_t count) const {
        if (_line.operands.size() != count) {
            return fail(fmt::format("'{}' takes {} operand{}, not {}", _line.mnemonic, count, count == 1 ? "" : "s",
                                    _line.operands.size()));
        }
        return std::nullopt;
    }

    expected<std::uint8_t> reg(std::size_t index) const {
        if (const auto number = parse_register(_line.operands[index])) {
            return *number;
        }
        return fail(fmt::format("'{}' is not a register (%r0 to %r10)", _line.operands[index]));
    }

    /// A 32-bit immediate: any 64-bit value is accepted and truncated, as the suite's assembler does.
    expected<std::int32_t> imm32(std::size_t index) const {
        if (const auto value = parse_integer(_line.operands[index])) {
            return static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<std::uint64_t>(*value)));
        }
        return fail(fmt::format("'{}' is not a number", _line.operands[index]));
    }

    expected<memory_operand> memory(std::size_t index) const {
        const std::string_view text = _line.operands[index];
        if (text.size() < 2 || text.front() != '[' || text.back() != ']') {
            return fail(fmt::format("'{}' is not a memory operand like [%r1+8]", text));
        }
        const std::string_view inner = trim(text.substr(1, text.size() - 2));
        const auto sign = inner.find_first_of("+-");
        const auto base = parse_register(trim(inner.substr(0, sign)));
        if (!base) {
            return fail(fmt::format("'{}' does not start with a register", text));
        }
        std::int64_t offset = 0;
        if (sign != std::string_view::npos) {
            const std::string_view offset_text = trim(inner.substr(sign + 1));
            const auto magnitude = parse_integer(offset_text);
            if (!magnitude || offset_text.starts_with('-') || offset_text.starts_with('+')) {
                return fail(fmt::format("'{}' has a bad offset", text));
            }
            offset = inner[sign] == '-' ? -*magnitude : *magnitude;
        }
        if (offset < std::numeric_limits<std::int16_t>::min() || offset > std::numeric_limits<std::int16_t>::max()) {
            return fail(fmt::format("offset in '{}' does not fit in 16 bits", text));
        }
        return memory_operand{*base, static_cast<std::int16_t>(offset)};
    }

    /// A jump or call target: a label, or a signed offset from the next instruction.
    expected<std::int64_t> target(std::size_t index) const {
        const std::string_view text = _line.operands[index];
        if (const auto offset = parse_integer(text)) {
            return *offset;
        }
        const auto label = _labels.find(text);
        if (label == _labels.end()) {
            return fail(fmt::format("label '{}' is not defined", text));
        }
        return static_cast<std::int64_t>(label->second) - static_cast<std::int64_t>(_line.pc) - 1;
    }

    /// `lddw %rN, map:I` (pseudo_map_idx), `map_value:I:OFFSET` (pseudo_map_idx_value) and `func:LABEL`
    /// (pseudo_func): relocated forms as the loader leaves them, for verifier tests. nullopt for a plain number.
    std::optional<expected<std::vector<instruction>>> encode_pseudo_load(std::uint8_t dst) const {
        const std::string_view text = _line.operands[1];
        const auto two = [&](std::uint8_t src, std::int64_t imm, std::int64_t upper) {
            return expected<std::vector<instruction>>{std::vector<instruction>{
                make(op::lddw, dst, src, 0, static_cast<std::int32_t>(imm)),
                make(0, 0, 0, 0, static_cast<std::int32_t>(upper))}};
        };
        if (text.starts_with("func:")) {
            const auto label = _labels.find(text.substr(5));
            if (label == _labels.end()) {
                return expected<std::vector<instruction>>{fail(fmt::format("label '{}' is not defined", text.substr(5)))};
            }
            return two(pseudo_func, static_cast<std::int64_t>(label->second) - static_cast<std::int64_t>(_line.pc) - 1,
                       0);
        }
        if (text.starts_with("map_value:")) {
            const std::string_view rest = text.substr(10);
            const auto colon = rest.find(':');
            const auto index = parse_integer(rest.substr(0, colon));
            const auto offset = colon == std::string_view::npos ? std::optional<std::int64_t>{0}
                                                                : parse_integer(rest.substr(colon + 1));
            if (!index || !offset) {
                return expected<std::vector<instruction>>{fail(fmt::format("'{}' is not map_value:INDEX:OFFSET", text))};
            }
            return two(pseudo_map_idx_value, *index, *offset);
        }
        if (text.starts_with("map:")) {
            const auto index = parse_integer(text.substr(4));
            if (!index) {
                return expected<std::vector<instruction>>{fail(fmt::format("'{}' is not map:INDEX", text))};
            }
            return two(pseudo_map_idx, *index, 0);
        }
        return std::nullopt;
    }

    expected<std::vector<instruction>> encode_alu(std::string_view name, bool is64);
    expected<std::vector<instruction>> encode_jump(std::string_view name, bool is32);
    expected<std::vector<instruction>> encode_call();
    expected<std::vector<instruction>> encode_atomic();
    expected<std::vector<instruction>> encode_load_store();

    const source_line& _line;
    const std::map<std::string, std::size_t, std::less<>>& _labels;
};

expected<std::vector<instruction>> encoder::encode_alu(std::string_view name, bool is64) {
    const auto found = alu_mnemonics().find(name);
    const alu_mnemonic& mnemonic = found->second;
    const std::uint8_t cls_bits = is64 ? cls_alu64 : cls_alu;
    if (mnemonic.form == alu_form::unary) {
        if (auto bad = expect_operands(1)) {
            return *bad;
        }
        auto dst = reg(0);
        if (!dst) {
            return dst.error();
        }
        return one(make(static_cast<std::uint8_t>(cls_bits | mnemonic.operation), *dst, 0, 0, 0));
    }
    if (auto bad = expect_operands(2)) {
        return *bad;
    }
    auto dst = reg(0);
    if (!dst) {
        return dst.error();
    }
    if (parse_register(_line.operands[1])) {
        return one(make(static_cast<std::uint8_t>(cls_bits | src_x | mnemonic.operation), *dst,
                        *parse_register(_line.operands[1]), mnemonic.offset, 0));
    }
    auto imm = imm32(1);
    if (!imm) {
        return imm.error();
    }
    return one(make(static_cast<std::uint8_t>(cls_bits | src_k | mnemonic.operation), *dst, 0, mnemonic.offset, *imm));
}

expected<std::vector<instruction>> encoder::encode_jump(std::string_view name, bool is32) {
    const std::uint8_t cls_bits = is32 ? cls_jmp32 : cls_jmp;
    if (auto bad = expect_operands(3)) {
        return *bad;
    }
    auto dst = reg(0);
    if (!dst) {
        return dst.error();
    }
    auto offset = target(2);
    if (!offset) {
        return offset.error();
    }
    if (*offset < std::numeric_limits<std::int16_t>::min() || *offset > std::numeric_limits<std::int16_t>::max()) {
        return fail("jump offset does not fit in 16 bits");
    }
    const auto operation = jump_mnemonics().find(name)->second;
    const auto offset16 = static_cast<std::int16_t>(*offset);
    if (const auto source = parse_register(_line.operands[1])) {
        return one(make(static_cast<std::uint8_t>(cls_bits | src_x | operation), *dst, *source, offset16, 0));
    }
    auto imm = imm32(1);
    if (!imm) {
        return imm.error();
    }
    return one(make(static_cast<std::uint8_t>(cls_bits | src_k | operation), *dst, 0, offset16, *imm));
}

expected<std::vector<instruction>> encoder::encode_call() {
    // call N | call helper N | call local LABEL | call %rN (callx: the register goes in dst).
    const auto& operands = _line.operands;
    if (operands.size() != 1) {
        return fail(fmt::format("'call' takes 1 operand, not {}", operands.size()));
    }
    std::string_view operand = operands[0];
    std::string_view kind;
    if (const auto space = operand.find_first_of(whitespace); space != std::string_view::npos) {
        kind = operand.substr(0, space);
        operand = trim(operand.substr(space));
    }
    if (kind.empty() && operand.starts_with('%')) {
        auto dst = reg(0);
        if (!dst) {
            return dst.error();
        }
        return one(make(op::callx, *dst, 0, 0, 0));
    }
    if (kind == "local") {
        std::int64_t offset = 0;
        if (const auto number = parse_integer(operand)) {
            offset = *number;
        } else if (const auto label = _labels.find(operand); label != _labels.end()) {
            offset = static_cast<std::int64_t>(label->second) - static_cast<std::int64_t>(_line.pc) - 1;
        } else {
            return fail(fmt::format("label '{}' is not defined", operand));
        }
        return one(make(op::call, 0, call_local, 0, static_cast<std::int32_t>(offset)));
    }
    if (!kind.empty() && kind != "helper") {
        return fail(fmt::format("'call {}' is not a call (call N, call helper N, call local LABEL, call %rN)", kind));
    }
    const auto id = parse_integer(operand);
    if (!id) {
        return fail(fmt::format("'{}' is not a helper number", operand));
    }
    return one(make(op::call, 0, call_helper, 0, static_cast<std::int32_t>(*id)));
}

expected<std::vector<instruction>> encoder::encode_atomic() {
    // lock [fetch] op[32] [%rX+off], %rY; xchg and cmpxchg always fetch.
    std::string_view words = trim(_line.text.substr(_line.mnemonic.size()));
    const auto next_word = [&]() {
        const auto end = std::min(words.find_first_of(whitespace), words.size());
        const std::string_view word = words.substr(0, end);
        words = trim(words.substr(end));
        return word;
    };
    std::string_view name = next_word();
    bool fetch = false;
    if (name == "fetch") {
        fetch = true;
        name = next_word();
    }
    const bool is32 = name.ends_with("32");
    if (is32) {
        name.remove_suffix(2);
    }
    const auto found = atomic_mnemonics().find(name);
    if (found == atomic_mnemonics().end()) {
        return fail(fmt::format("'{}' is not an atomic operation (add, or, and, xor, xchg, cmpxchg)", name));
    }
    const std::vector<std::string_view> operands = split_operands(words);
    if (operands.size() != 2) {
        return fail(fmt::format("'lock' takes 2 operands, not {}", operands.size()));
    }
    source_line rest = _line;
    rest.operands = operands;
    const encoder inner(rest, _labels);
    auto target_memory = inner.memory(0);
    if (!target_memory) {
        return target_memory.error();
    }
    auto source = inner.reg(1);
    if (!source) {
        return source.error();
    }
    const std::int32_t operation = found->second | (fetch ? atomic_fetch : 0);
    return one(make(static_cast<std::uint8_t>(cls_stx | mode_atomic | (is32 ? size_w : size_dw)), target_memory->base,
                    *source, target_memory->offset, operation));
}

expected<std::vector<instruction>> encoder::encode_load_store() {
    std::string_view name = _line.mnemonic;
    std::uint8_t cls_bits = 0;
    std::uint8_t mode_bits = mode_mem;
    if (name.starts_with("ldxs") && size_suffixes().contains(name.substr(4)) && name.substr(4) != "dw") {
        cls_bits = cls_ldx;
        mode_bits = mode_memsx;
        name.remove_prefix(4);
    } else if (name.starts_with("ldx")) {
        cls_bits = cls_ldx;
        name.remove_prefix(3);
    } else if (name.starts_with("stx")) {
        cls_bits = cls_stx;
        name.remove_prefix(3);
    } else {
        cls_bits = cls_st;
        name.remove_prefix(2);
    }
    const std::uint8_t opcode = static_cast<std::uint8_t>(cls_bits | mode_bits | size_suffixes().find(name)->second);
    if (auto bad = expect_operands(2)) {
        return *bad;
    }
    if (cls_bits == cls_ldx) {
        auto dst = reg(0);
        if (!dst) {
            return dst.error();
        }
        auto source = memory(1);
        if (!source) {
            return source.error();
        }
        return one(make(opcode, *dst, source->base, source->offset, 0));
    }
    auto destination = memory(0);
    if (!destination) {
        return destination.error();
    }
    if (cls_bits == cls_stx) {
        auto source = reg(1);
        if (!source) {
            return source.error();
        }
        return one(make(opcode, destination->base, *source, destination->offset, 0));
    }
    auto imm = imm32(1);
    if (!imm) {
        return imm.error();
    }
    return one(make(opcode, destination->base, 0, destination->offset, *imm));
}

bool is_load_store_mnemonic(std::string_view name) {
    for (const std::string_view prefix : {"ldxs", "ldx", "stx", "st"}) {
        if (name.starts_with(prefix) && size_suffixes().contains(name.substr(prefix.size())) &&
            !(prefix == "ldxs" && name.substr(prefix.size()) == "dw")) {
            return true;
        }
    }
    return false;
}

expected<std::vector<instruction>> encoder::encode() {
    const std::string_view name = _line.mnemonic;
    if (name == "exit") {
        if (auto bad = expect_operands(0)) {
            return *bad;
        }
        return one(make(op::exit, 0, 0, 0, 0));
    }
    if (name == "lddw") {
        if (auto bad = expect_operands(2)) {
            return *bad;
        }
        auto dst = reg(0);
        if (!dst) {
            return dst.error();
        }
        if (auto pseudo = encode_pseudo_load(*dst)) {
            return *pseudo;
        }
        const auto value = parse_integer(_line.operands[1]);
        if (!value) {
            return fail(fmt::format("'{}' is not a number", _line.operands[1]));
        }
        const auto bits = static_cast<std::uint64_t>(*value);
        return std::vector<instruction>{
            make(op::lddw, *dst, pseudo_imm64, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(bits))),
            make(0, 0, 0, 0, static_cast<std::int32_t>(static_cast<std::uint32_t>(bits >> 32)))};
    }
    if (name == "call") {
        return encode_call();
    }
    if (name == "lock") {
        return encode_atomic();
    }
    if (name == "may_goto") { // the kernel's BPF_JMP | BPF_JCOND, condition 0: jumps once the loop budget is spent
        if (auto bad = expect_operands(1)) {
            return *bad;
        }
        auto offset = target(0);
        if (!offset) {
            return offset.error();
        }
        if (*offset < std::numeric_limits<std::int16_t>::min() || *offset > std::numeric_limits<std::int16_t>::max()) {
            return fail("jump offset does not fit in 16 bits");
        }
        return one(make(op::may_goto, 0, 0, static_cast<std::int16_t>(*offset), 0));
    }
    if (name == "ja" || name == "ja32") {
        if (auto bad = expect_operands(1)) {
            return *bad;
        }
        auto offset = target(0);
        if (!offset) {
            return offset.error();
        }
        if (name == "ja32") { // "gotol": the offset is in imm, 32 bits wide
            return one(make(op::ja32, 0, 0, 0, static_cast<std::int32_t>(*offset)));
        }
        if (*offset < std::numeric_limits<std::int16_t>::min() || *offset > std::numeric_limits<std::int16_t>::max()) {
            return fail("jump offset does not fit in 16 bits (use ja32)");
        }
        return one(make(op::ja, 0, 0, static_cast<std::int16_t>(*offset), 0));
    }
    // Byte order: be/le are ALU class (be sets the source bit), swap/bswap are ALU64; imm is the width.
    for (const auto& [prefix, opcode] : {std::pair<std::string_view, std::uint8_t>{"le", cls_alu | alu_end | src_k},
                                         {"be", cls_alu | alu_end | src_x},
                                         {"bswap", cls_alu64 | alu_end},
                                         {"swap", cls_alu64 | alu_end}}) {
        const std::string_view width = name.substr(std::min(name.size(), prefix.size()));
        if (name.starts_with(prefix) && (width == "16" || width == "32" || width == "64")) {
            if (auto bad = expect_operands(1)) {
                return *bad;
            }
            auto dst = reg(0);
            if (!dst) {
                return dst.error();
            }
            return one(make(opcode, *dst, 0, 0, static_cast<std::int32_t>(parse_integer(width).value_or(0))));
        }
    }
    // movsx<from><to>: sign-extending move of the low `from` bits, in ALU (to 32) or ALU64 (to 64).
    for (const auto& [spelling, is64, from] : {std::tuple<std::string_view, bool, std::int16_t>{"movsx832", false, 8},
                                               {"movsx1632", false, 16},
                                               {"movsx864", true, 8},
                                               {"movsx1664", true, 16},
                                               {"movsx3264", true, 32}}) {
        if (name == spelling) {
            if (auto bad = expect_operands(2)) {
                return *bad;
            }
            auto dst = reg(0);
            if (!dst) {
                return dst.error();
            }
            auto source = reg(1);
            if (!source) {
                return source.error();
            }
            return one(make(static_cast<std::uint8_t>((is64 ? cls_alu64 : cls_alu) | src_x | alu_mov), *dst, *source,
                            from, 0));
        }
    }
    if (is_load_store_mnemonic(name)) {
        return encode_load_store();
    }
    // Arithmetic and conditional jumps: a base name, then "32" for the 32-bit class ("64" is accepted for 64).
    std::string_view base = name;
    bool narrow = false;
    if (base.ends_with("32")) {
        narrow = true;
        base.remove_suffix(2);
    } else if (base.ends_with("64")) {
        base.remove_suffix(2);
    }
    if (alu_mnemonics().contains(base)) {
        return encode_alu(base, !narrow);
    }
    if (jump_mnemonics().contains(base)) {
        return encode_jump(base, narrow);
    }
    return fail(fmt::format("unknown instruction '{}'", name));
}

bool is_label_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.';
    });
}

} // namespace

expected<std::vector<instruction>> assemble(std::string_view text) {
    std::vector<source_line> lines;
    std::map<std::string, std::size_t, std::less<>> labels;
    bool exit_seen = false;
    std::size_t pc = 0;
    std::size_t number = 0;
    std::size_t start = 0;
    while (start <= text.size()) {
        const auto end = std::min(text.find('\n', start), text.size());
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++number;
        line = trim(line.substr(0, line.find('#')));
        // Labels: "name:" alone or before an instruction on the same line.
        while (!line.empty()) {
            const auto colon = line.find(':');
            if (colon == std::string_view::npos || !is_label_name(trim(line.substr(0, colon)))) {
                break;
            }
            const std::string_view label = trim(line.substr(0, colon));
            if (!labels.emplace(std::string(label), pc).second) {
                return error{fmt::format("line {}: label '{}' is defined twice", number, label)};
            }
            line = trim(line.substr(colon + 1));
        }
        if (line.empty()) {
            continue;
        }
        source_line parsed;
        parsed.number = number;
        parsed.text = line;
        const auto space = std::min(line.find_first_of(whitespace), line.size());
        parsed.mnemonic = line.substr(0, space);
        parsed.operands = split_operands(line.substr(space));
        parsed.pc = pc;
        if (parsed.mnemonic == "exit" && !exit_seen) {
            // The suite's assembler lets jumps name the first exit as "exit" (jset32-reg.data relies on it).
            exit_seen = true;
            labels.emplace("exit", pc);
        }
        pc += parsed.mnemonic == "lddw" ? 2 : 1;
        lines.push_back(std::move(parsed));
    }

    std::vector<instruction> code;
    code.reserve(pc);
    for (const source_line& line : lines) {
        auto encoded = encoder(line, labels).encode();
        if (!encoded) {
            return encoded.error();
        }
        code.insert(code.end(), encoded->begin(), encoded->end());
    }
    return code;
}

} // namespace sluice::ebpf
