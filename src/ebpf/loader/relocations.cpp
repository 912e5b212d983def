// Programs by section, linked with their subprograms, with map references relocated — libbpf's
// bpf_object__init_progs, bpf_program__record_reloc and bpf_object__reloc_code, for XDP.
//
// Each global function of an XDP section is a program. A program's code is its own function followed by every
// function it calls or takes the address of (from `.text` or its own section), transitively, each appended once; the
// call's imm and the function address's imm become the distance to the appended copy. A relocation on `lddw` names
// a map (in `.maps` or `maps`: pseudo_map_idx, imm = map index) or a variable of global data (pseudo_map_idx_value,
// imm = map index, next imm = symbol value + the imm clang left, as libbpf computes it).
#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "ebpf/loader/loader_internal.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf::loader_detail {
namespace {

constexpr std::size_t instruction_bytes = sizeof(instruction);

/// A function of a code section, in instructions.
struct function_extent {
    std::string name;
    std::size_t first{};
    std::size_t count{};
    bool global{};
};

/// Functions of a section in instructions, with sizes filled in where the symbol gives none (hand-written assembly).
std::vector<function_extent> extents(const code_section& section) {
    std::vector<function_extent> result;
    const std::size_t total = section.instructions.size();
    for (std::size_t i = 0; i < section.functions.size(); ++i) {
        const elf_function& function = section.functions[i];
        const std::size_t first = function.offset / instruction_bytes;
        std::size_t count = function.size / instruction_bytes;
        if (count == 0) {
            const std::size_t next =
                i + 1 < section.functions.size() ? section.functions[i + 1].offset / instruction_bytes : total;
            count = next > first ? next - first : 0;
        }
        if (first >= total || count == 0) {
            continue;
        }
        result.push_back(function_extent{function.name, first, std::min(count, total - first), function.global});
    }
    return result;
}

class linker {
public:
    linker(const elf_object& elf, const object_maps& maps) : _elf(elf), _maps(maps) {
        for (const code_section& section : elf.code_sections()) {
            _sections[section.index] = &section;
            _functions[section.index] = extents(section);
            auto& by_offset = _relocations[section.index];
            for (const elf_relocation& relocation : section.relocations) {
                by_offset[relocation.offset] = &relocation;
            }
        }
    }

    expected<std::vector<program_spec>> run(std::vector<std::string>& notes) {
        std::vector<program_spec> programs;
        for (const code_section& section : _elf.code_sections()) {
            if (!section.is_program()) {
                continue;
            }
            const std::optional<program_section> kind = classify_section(section.name);
            const std::vector<function_extent>& functions = _functions[section.index];
            if (!kind) {
                notes.push_back(
                    fmt::format("section '{}' is not an XDP program section; its code is not loaded", section.name));
                continue;
            }
            bool any = false;
            for (const function_extent& function : functions) {
                if (!function.global) {
                    continue; // a static function of a program section is a subprogram of the programs calling it
                }
                any = true;
                auto program = link(section, function, *kind);
                if (!program) {
                    return program.error();
                }
                programs.push_back(std::move(*program));
            }
            if (!any && functions.empty() && !section.instructions.empty()) {
                // Hand-written objects may carry no function symbol: the whole section is the program.
                auto program =
                    link(section, function_extent{section.name, 0, section.instructions.size(), true}, *kind);
                if (!program) {
                    return program.error();
                }
                programs.push_back(std::move(*program));
            }
        }
        return programs;
    }

private:
    /// Where a linked instruction came from, to find its relocation and to name it in messages.
    struct origin {
        std::size_t section_index{};
        std::size_t instruction{};
    };

    error fail(const origin& at, std::string_view program, std::string_view what) const {
        return error{fmt::format("{}: program '{}': section '{}', instruction {}: {}", _elf.name(), program,
                                 _sections.at(at.section_index)->name, at.instruction, what)};
    }

    const elf_relocation* relocation_at(const origin& at) const {
        const auto& by_offset = _relocations.at(at.section_index);
        const auto found = by_offset.find(at.instruction * instruction_bytes);
        return found == by_offset.end() ? nullptr : found->second;
    }

    const function_extent* function_at(std::size_t section_index, std::size_t instruction) const {
        const auto found = _functions.find(section_index);
        if (found == _functions.end()) {
            return nullptr;
        }
        for (const function_extent& function : found->second) {
            if (instruction >= function.first && instruction < function.first + function.count) {
                return &function;
            }
        }
        return nullptr;
    }

    struct link_state {
        program_spec program;
        std::vector<origin> origins;                                       ///< per linked instruction
        std::map<std::pair<std::size_t, std::size_t>, std::size_t> placed; ///< (section, first) -> linked index
    };

    /// Appends a function (once) and returns where its first instruction now is.
    std::size_t place(link_state& state, std::size_t section_index, const function_extent& function) const {
        const auto key = std::make_pair(section_index, function.first);
        if (const auto found = state.placed.find(key); found != state.placed.end()) {
            return found->second;
        }
        const code_section& section = *_sections.at(section_index);
        const std::size_t start = state.program.code.size();
        state.placed[key] = start;
        for (std::size_t i = 0; i < function.count; ++i) {
            state.program.code.push_back(section.instructions[function.first + i]);
            state.origins.push_back(origin{section_index, function.first + i});
        }
        for (const line_info& line : section.lines) {
            if (line.instruction >= function.first && line.instruction < function.first + function.count) {
                line_info moved = line;
                moved.instruction = start + (line.instruction - function.first);
                state.program.lines.push_back(std::move(moved));
            }
        }
        state.program.functions.push_back(program_function{function.name, start, function.count});
        return start;
    }

    /// The linked index of instruction `target` of section `section_index`, appending its function if needed.
    expected<std::size_t> resolve_target(link_state& state, const origin& at, std::size_t section_index,
                                         std::int64_t target, std::string_view what) const {
        const auto section = _sections.find(section_index);
        if (section == _sections.end() || target < 0 ||
            static_cast<std::size_t>(target) >= section->second->instructions.size()) {
            return fail(at, state.program.name,
                        fmt::format("{} to instruction {} of section '{}', which is outside it", what, target,
                                    section == _sections.end() ? "?" : section->second->name));
        }
        const auto index = static_cast<std::size_t>(target);
        const function_extent* function = function_at(section_index, index);
        if (function == nullptr) {
            return fail(at, state.program.name,
                        fmt::format("{} to instruction {} of section '{}', which is in no function", what, target,
                                    section->second->name));
        }
        const std::size_t start = place(state, section_index, *function);
        return start + (index - function->first);
    }

    expected<program_spec> link(const code_section& section, const function_extent& main, program_section kind) {
        link_state state;
        state.program.name = main.name;
        state.program.section = section.name;
        state.program.kind = kind;
        place(state, section.index, main);
        // The loop runs over instructions appended while it runs: every callee gets relocated in turn.
        for (std::size_t i = 0; i < state.program.code.size(); ++i) {
            const origin at = state.origins[i];
            instruction& insn = state.program.code[i];
            const elf_relocation* relocation = relocation_at(at);
            if (insn.opcode == op::lddw) {
                if (i + 1 >= state.program.code.size() || state.origins[i + 1].section_index != at.section_index) {
                    return fail(at, state.program.name, "64-bit immediate load (lddw) cut off by the function's end");
                }
                if (auto done = relocate_lddw(state, i, at, relocation); !done) {
                    return done.error();
                }
                ++i;
                continue;
            }
            if (insn.opcode == op::call && (insn.src == op::call_local || relocation != nullptr)) {
                if (auto done = relocate_call(state, i, at, relocation); !done) {
                    return done.error();
                }
                continue;
            }
            if (relocation != nullptr) {
                return fail(at, state.program.name,
                            fmt::format("relocation against '{}' on an instruction that is neither lddw nor call "
                                        "(opcode {:#04x})",
                                        relocation->symbol_name, insn.opcode));
            }
        }
        std::ranges::stable_sort(state.program.lines, {}, &line_info::instruction);
        if (auto valid = validate(state.program.code); !valid) {
            return error{fmt::format("{}: program '{}' (section '{}'): {}", _elf.name(), state.program.name,
                                     section.name, valid.error().message),
                         valid.error().instruction};
        }
        return std::move(state.program);
    }

    expected<void> extern_error(const origin& at, std::string_view program, const elf_relocation& relocation) const {
        return fail(at, program,
                    fmt::format("'{}' is an extern (a __kconfig or __ksym variable, or a kfunc) that "
                                "this object does not define; sluice resolves no externs yet",
                                relocation.symbol_name));
    }

    expected<void> relocate_call(link_state& state, std::size_t i, const origin& at,
                                 const elf_relocation* relocation) const {
        const std::int32_t imm = state.program.code[i].imm;
        std::size_t target_section = at.section_index;
        std::int64_t target = 0;
        if (relocation != nullptr) {
            if (relocation->symbol_section_index == SHN_UNDEF) {
                if (relocation->symbol_name == sluice_lua_kfunc_name) {
                    // sluice's own kfunc (helpers.hpp): a call of the helper that serves it, so that every engine
                    // and the verifier treat it as a helper with a known prototype.
                    state.program.code[i].src = op::call_helper;
                    state.program.code[i].imm = static_cast<std::int32_t>(sluice_lua_helper_id);
                    return {};
                }
                return extern_error(at, state.program.name, *relocation);
            }
            if (!_sections.contains(relocation->symbol_section_index)) {
                return fail(at, state.program.name,
                            fmt::format("call relocated against '{}' in section '{}', which holds no code",
                                        relocation->symbol_name, relocation->symbol_section_name));
            }
            if (relocation->symbol_value % instruction_bytes != 0) {
                return fail(at, state.program.name,
                            fmt::format("call to '{}' at byte {}, which is not an instruction", relocation->symbol_name,
                                        relocation->symbol_value));
            }
            // For a global function imm is -1; for a static one the symbol is the section and imm the offset.
            target_section = relocation->symbol_section_index;
            target = static_cast<std::int64_t>(relocation->symbol_value / instruction_bytes) + imm + 1;
            state.program.code[i].src = op::call_local;
        } else {
            // A call within the same section carries no relocation: imm is relative to the original position.
            target = static_cast<std::int64_t>(at.instruction) + imm + 1;
        }
        auto placed = resolve_target(state, at, target_section, target, "call");
        if (!placed) {
            return placed.error();
        }
        state.program.code[i].imm =
            static_cast<std::int32_t>(static_cast<std::int64_t>(*placed) - static_cast<std::int64_t>(i) - 1);
        return {};
    }

    expected<void> relocate_lddw(link_state& state, std::size_t i, const origin& at,
                                 const elf_relocation* relocation) const {
        instruction& first = state.program.code[i];
        instruction& second = state.program.code[i + 1];
        if (relocation == nullptr) {
            if (first.src == op::pseudo_func) {
                auto placed =
                    resolve_target(state, at, at.section_index,
                                   static_cast<std::int64_t>(at.instruction) + first.imm + 1, "function address");
                if (!placed) {
                    return placed.error();
                }
                state.program.code[i].imm =
                    static_cast<std::int32_t>(static_cast<std::int64_t>(*placed) - static_cast<std::int64_t>(i) - 1);
            }
            return {};
        }
        if (relocation->type != R_BPF_64_64) {
            return fail(at, state.program.name,
                        fmt::format("relocation type {} against '{}' on lddw (expected "
                                    "R_BPF_64_64)",
                                    relocation->type, relocation->symbol_name));
        }
        if (relocation->symbol_section_index == SHN_UNDEF) {
            return extern_error(at, state.program.name, *relocation);
        }
        // A function's address (bpf_loop, bpf_for_each_map_elem callbacks): clang leaves src 0, libbpf sets it.
        if (_sections.contains(relocation->symbol_section_index)) {
            if (relocation->symbol_value % instruction_bytes != 0 || first.imm % instruction_bytes != 0) {
                return fail(at, state.program.name,
                            fmt::format("address of '{}' is not at an instruction", relocation->symbol_name));
            }
            const std::int64_t target =
                (static_cast<std::int64_t>(relocation->symbol_value) + first.imm) / std::int64_t{instruction_bytes};
            auto placed = resolve_target(state, at, relocation->symbol_section_index, target, "function address");
            if (!placed) {
                return placed.error();
            }
            instruction& patched = state.program.code[i];
            patched.src = op::pseudo_func;
            patched.imm =
                static_cast<std::int32_t>(static_cast<std::int64_t>(*placed) - static_cast<std::int64_t>(i) - 1);
            state.program.code[i + 1].imm = 0;
            return {};
        }
        const std::string& section_name = relocation->symbol_section_name;
        for (std::size_t m = 0; m < _maps.maps.size(); ++m) {
            const map_spec& spec = _maps.maps[m];
            const map_location& location = _maps.locations[m];
            if (location.section_index != relocation->symbol_section_index) {
                continue;
            }
            if (spec.origin == map_origin::global_data) {
                const std::uint64_t offset =
                    relocation->symbol_value + static_cast<std::uint64_t>(static_cast<std::int64_t>(first.imm));
                if (offset >= location.size) {
                    return fail(at, state.program.name,
                                fmt::format("reference to '{}' at byte {} of section '{}', which has {} bytes",
                                            relocation->symbol_name, offset, section_name, location.size));
                }
                first.src = op::pseudo_map_idx_value;
                first.imm = static_cast<std::int32_t>(m);
                second.imm = static_cast<std::int32_t>(offset);
                return {};
            }
            if (location.offset == relocation->symbol_value) {
                first.src = op::pseudo_map_idx;
                first.imm = static_cast<std::int32_t>(m);
                second.imm = 0;
                return {};
            }
        }
        if (section_name == ".maps" || section_name == "maps") {
            return fail(at, state.program.name,
                        fmt::format("reference to '{}' in section '{}', where no map is "
                                    "defined at byte {}",
                                    relocation->symbol_name, section_name, relocation->symbol_value));
        }
        return fail(at, state.program.name,
                    fmt::format("reference to '{}' in section '{}', which is neither a map section ('.maps', 'maps') "
                                "nor global data ('.data', '.rodata', '.bss', '.data.*', '.rodata.*')",
                                relocation->symbol_name, section_name.empty() ? "?" : section_name));
    }

    const elf_object& _elf;
    const object_maps& _maps;
    std::unordered_map<std::size_t, const code_section*> _sections;
    std::unordered_map<std::size_t, std::vector<function_extent>> _functions;
    std::unordered_map<std::size_t, std::unordered_map<std::size_t, const elf_relocation*>> _relocations;
};

} // namespace

expected<std::vector<program_spec>> link_programs(const elf_object& elf, const object_maps& maps,
                                                  std::vector<std::string>& notes) {
    return linker(elf, maps).run(notes);
}

} // namespace sluice::ebpf::loader_detail
