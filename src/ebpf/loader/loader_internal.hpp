// The loader's steps, shared between its files; not a public API.
//
//   map_definitions.cpp  maps of the object: BTF `.maps`, legacy `maps`, global data, `.rodata` variables
//   relocations.cpp      programs by section, subprograms appended, calls and map references relocated
//   context_rewrite.cpp  which registers hold the context (data flow), and xdp_md reads rewritten
//   lowering.cpp         pseudo map loads turned into addresses for execution
//   loader.cpp           object_spec and loaded_object: the steps in order, options, messages
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ebpf/elf_object.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf::loader_detail {

/// Where a map's definition or data lives in the file, for relocations that point at it.
struct map_location {
    std::size_t section_index{};
    std::uint64_t offset{}; ///< of the definition in its section (BTF, legacy); 0 for global data
    std::uint64_t size{};   ///< bytes of the definition (BTF, legacy) or of the section (global data)
};

/// `.values = {[i] = &prog}` of a prog_array, from the relocations of `.maps`.
struct map_value_relocation {
    std::size_t map_index{};
    std::uint32_t slot{};
    std::string symbol_name;
    std::size_t symbol_section_index{};
};

struct object_maps {
    std::vector<map_spec> maps;
    std::vector<map_location> locations; ///< parallel to maps
    std::vector<rodata_variable> rodata;
    std::vector<map_value_relocation> values;
    std::vector<std::string> notes;
};

/// The object's name as libbpf derives it: the file's base name up to its first dot.
std::string object_name(std::string_view path);

/// All maps of the object, in libbpf's order: legacy `maps`, BTF `.maps`, then global data by section.
expected<object_maps> parse_maps(const elf_object& elf, std::string_view object_name);

/// The programs of the object, each linked with its subprograms and with map references relocated to
/// pseudo_map_idx / pseudo_map_idx_value against `maps`. Sections of other program kinds are skipped with a note.
expected<std::vector<program_spec>> link_programs(const elf_object& elf, const object_maps& maps,
                                                  std::vector<std::string>& notes);

/// Rewrites the program's reads of `struct xdp_md` into reads of sluice's xdp_context, or says which instruction
/// the kernel would refuse and why.
expected<void> rewrite_context(program_spec& program);

/// "instruction 12 (file.c:40: `source`)": where an error is, for messages.
std::string describe_instruction(const program_spec& program, std::size_t instruction);

} // namespace sluice::ebpf::loader_detail
