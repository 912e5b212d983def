// `sluice disasm`: text in llvm-objdump -d's layout (so that people and diff tools can compare the two) with the BTF
// source lines llvm-objdump -S would show and the relocations llvm-objdump -r would show; JSON for programs.
#include "disasm_command.hpp"

#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "sluice/ebpf/disassembler.hpp"
#include "sluice/ebpf/elf_object.hpp"

namespace sluice::cli {
namespace {

using ebpf::code_section;
using ebpf::elf_object;
using ebpf::instruction;

struct disasm_options {
    std::string file;
    std::string section;
    bool json{};
};

std::string relocation_type_name(std::uint32_t type) {
    switch (type) {
    case 0: return "R_BPF_NONE";
    case 1: return "R_BPF_64_64";
    case 2: return "R_BPF_64_ABS64";
    case 3: return "R_BPF_64_ABS32";
    case 4: return "R_BPF_64_NODYLD32";
    case 10: return "R_BPF_64_32";
    default: return fmt::format("R_BPF_{}", type);
    }
}

/// Slots the instruction at `index` occupies: a 64-bit immediate load takes two.
std::size_t slots(std::span<const instruction> code, std::size_t index) {
    return code[index].opcode == ebpf::op::lddw && index + 1 < code.size() ? 2 : 1;
}

std::string hex_bytes(std::span<const instruction> code, std::size_t index) {
    std::string text;
    for (std::size_t slot = index; slot < index + slots(code, index); ++slot) {
        const auto* bytes = reinterpret_cast<const unsigned char*>(&code[slot]);
        for (std::size_t i = 0; i < sizeof(instruction); ++i) {
            text += fmt::format("{}{:02x}", text.empty() ? "" : " ", bytes[i]);
        }
    }
    return text;
}

/// Index of the instruction a jump lands on, for jumps with a pc-relative target (not calls, not exit).
std::optional<std::int64_t> jump_target(std::span<const instruction> code, std::size_t index) {
    const instruction& insn = code[index];
    namespace op = ebpf::op;
    if (!op::is_jump(insn.opcode) || op::alu_op(insn.opcode) == op::jmp_call ||
        op::alu_op(insn.opcode) == op::jmp_exit) {
        return std::nullopt;
    }
    const std::int64_t offset = insn.opcode == op::ja32 ? insn.imm : insn.offset;
    return static_cast<std::int64_t>(index) + 1 + offset;
}

/// The symbols llvm-objdump prints as headers in a code section: functions and labels, by offset.
std::vector<const ebpf::elf_symbol*> section_labels(const elf_object& object, const code_section& code) {
    std::vector<const ebpf::elf_symbol*> labels;
    for (const ebpf::elf_symbol& symbol : object.symbols()) {
        if (symbol.section_index == code.index && !symbol.name.empty() &&
            (symbol.type == STT_FUNC || symbol.type == STT_NOTYPE)) {
            labels.push_back(&symbol);
        }
    }
    std::ranges::stable_sort(labels, {}, &ebpf::elf_symbol::value);
    return labels;
}

/// ` <LBB0_3>` or ` <func+0x28>`: where a jump lands, named as llvm-objdump names it.
std::string target_label(const std::vector<const ebpf::elf_symbol*>& labels, const code_section& code,
                         std::int64_t target) {
    const std::uint64_t offset = static_cast<std::uint64_t>(target) * sizeof(instruction);
    const ebpf::elf_symbol* before = nullptr;
    for (const ebpf::elf_symbol* label : labels) {
        if (label->value == offset) {
            return fmt::format(" <{}>", label->name);
        }
        if (label->value < offset) {
            before = label;
        }
    }
    if (before != nullptr) {
        return fmt::format(" <{}+{:#x}>", before->name, offset - before->value);
    }
    return fmt::format(" <{}+{:#x}>", code.name, offset);
}

void print_text(const elf_object& object, const std::vector<const code_section*>& sections) {
    fmt::print("\n{}:\tfile format elf64-bpf\n", object.name());
    for (const code_section* code : sections) {
        if (code->instructions.empty()) {
            continue; // llvm-objdump skips empty sections (clang always emits .text)
        }
        fmt::print("\nDisassembly of section {}:\n", code->name);
        const auto labels = section_labels(object, *code);
        const std::span<const instruction> insns = code->instructions;
        auto label = labels.begin();
        auto line = code->lines.begin();
        auto relocation = code->relocations.begin();
        // BTF has a record per statement and column; like llvm-objdump -S, show a line only when it changes.
        const ebpf::line_info* last_line = nullptr;
        for (std::size_t index = 0; index < insns.size(); index += slots(insns, index)) {
            const std::size_t offset = index * sizeof(instruction);
            bool header_printed = false;
            for (; label != labels.end() && (*label)->value <= offset; ++label) {
                if (!header_printed && (*label)->value == offset) {
                    fmt::print("\n{:016x} <{}>:\n", offset, (*label)->name);
                    header_printed = true;
                }
            }
            for (; line != code->lines.end() && line->instruction <= index; ++line) {
                const bool changed = last_line == nullptr || header_printed || last_line->line != line->line ||
                                     last_line->file != line->file;
                if (line->instruction == index && changed && !line->source.empty()) {
                    fmt::print("; {}\n", line->source);
                    header_printed = false;
                }
                last_line = &*line;
            }
            std::string text = ebpf::disassemble(insns, index);
            if (const auto target = jump_target(insns, index)) {
                text += target_label(labels, *code, *target);
            }
            fmt::print("{:>8}:\t{}\t{}\n", index, hex_bytes(insns, index), text);
            const std::size_t end = (index + slots(insns, index)) * sizeof(instruction);
            for (; relocation != code->relocations.end() && relocation->offset < end; ++relocation) {
                fmt::print("\t\t{:016x}:  {}\t{}\n", relocation->offset, relocation_type_name(relocation->type),
                           relocation->symbol_name);
            }
        }
    }
}

nlohmann::json to_json(const elf_object& object, const std::vector<const code_section*>& sections) {
    nlohmann::json document{{"file", object.name()}, {"license", object.license()}};
    nlohmann::json& out = document["sections"] = nlohmann::json::array();
    for (const code_section* code : sections) {
        nlohmann::json functions = nlohmann::json::array();
        for (const ebpf::elf_function& function : code->functions) {
            functions.push_back({{"name", function.name}, {"offset", function.offset}, {"size", function.size},
                                 {"global", function.global}});
        }
        nlohmann::json relocations = nlohmann::json::array();
        for (const ebpf::elf_relocation& relocation : code->relocations) {
            relocations.push_back({{"offset", relocation.offset},
                                   {"instruction", relocation.offset / sizeof(instruction)},
                                   {"type", relocation_type_name(relocation.type)},
                                   {"symbol", relocation.symbol_name},
                                   {"symbol_section", relocation.symbol_section_name},
                                   {"symbol_value", relocation.symbol_value}});
        }
        nlohmann::json instructions = nlohmann::json::array();
        const std::span<const instruction> insns = code->instructions;
        for (std::size_t index = 0; index < insns.size(); index += slots(insns, index)) {
            nlohmann::json entry{{"index", index},
                                 {"offset", index * sizeof(instruction)},
                                 {"bytes", hex_bytes(insns, index)},
                                 {"text", ebpf::disassemble(insns, index)}};
            if (const auto target = jump_target(insns, index)) {
                entry["target"] = *target;
            }
            const auto line = std::ranges::find(code->lines, index, &ebpf::line_info::instruction);
            if (line != code->lines.end()) {
                entry["source"] = {{"file", line->file}, {"line", line->line}, {"column", line->column},
                                   {"text", line->source}};
            }
            instructions.push_back(std::move(entry));
        }
        out.push_back({{"name", code->name},
                       {"index", code->index},
                       {"program", code->is_program()},
                       {"functions", std::move(functions)},
                       {"relocations", std::move(relocations)},
                       {"instructions", std::move(instructions)}});
    }
    return document;
}

void run(const disasm_options& options) {
    auto object = elf_object::open(options.file);
    if (!object) {
        fmt::print(stderr, "sluice disasm: {}\n", object.error().message);
        throw CLI::RuntimeError(1);
    }
    std::vector<const code_section*> sections;
    for (const code_section& code : object->code_sections()) {
        if (options.section.empty() || code.name == options.section) {
            sections.push_back(&code);
        }
    }
    if (!options.section.empty() && sections.empty()) {
        std::string names;
        for (const code_section& code : object->code_sections()) {
            names += fmt::format("{}{}", names.empty() ? "" : ", ", code.name);
        }
        fmt::print(stderr, "sluice disasm: {}: no code section named '{}' (code sections: {})\n", options.file,
                   options.section, names);
        throw CLI::RuntimeError(1);
    }
    if (options.json) {
        std::cout << to_json(*object, sections).dump(2) << '\n';
    } else {
        print_text(*object, sections);
    }
}

} // namespace

void add_disasm_command(CLI::App& app) {
    auto options = std::make_shared<disasm_options>();
    CLI::App* command = app.add_subcommand("disasm", "Print the instructions of a BPF object, with source lines");
    command->add_option("file", options->file, "BPF ELF object (clang -O2 -g -target bpf -c)")->required();
    command->add_option("--section", options->section, "Only this code section (xdp, .text, ...)");
    command->add_flag("--json", options->json, "JSON for programs instead of text");
    command->callback([options] { run(*options); });
}

} // namespace sluice::cli
