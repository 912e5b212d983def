// A BPF ELF object as clang writes it, read but not yet loaded.
//
// elf_object::open() / from_memory() read a relocatable ELF object for EM_BPF (little-endian, 64-bit) and keep, as
// plain values that outlive the file: every section (name, type, flags, bytes), every symbol, the code sections
// (SHF_EXECINSTR: programs such as `xdp`, `xdp.frags`, `xdp/devmap`, legacy `xdp_*`, and `.text` subprograms) with
// their instructions, function symbols, relocations and BTF line info, the `license` string and the parsed `.BTF`.
// Nothing is resolved or patched: relocations are listed as the file states them, for the loader to apply.
//
// Errors name the file and, where one is to blame, the section: not an ELF file, a truncated file, another machine
// than BPF, a code section whose size is not a multiple of 8, a malformed .BTF or .BTF.ext. Bad input never crashes
// the reader. ELF parsing is libelf's and BTF parsing is libbpf's; only .BTF.ext line info, which libbpf does not
// expose for an object it has not loaded, is decoded here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ebpf/isa.hpp"
#include "sluice/expected.hpp"

struct btf; // libbpf's parsed BTF (<bpf/btf.h>); declared here so that embedders need not include libbpf

namespace sluice::ebpf {

/// One ELF section, as its header and contents say.
struct elf_section {
    std::size_t index{};           ///< in the section header table
    std::string name;
    std::uint32_t type{};          ///< SHT_*
    std::uint64_t flags{};         ///< SHF_*
    std::uint64_t size{};          ///< sh_size (for SHT_NOBITS, .bss, there are no bytes)
    std::vector<std::byte> bytes;  ///< contents; empty for SHT_NOBITS
    std::uint32_t link{};          ///< sh_link
    std::uint32_t info{};          ///< sh_info
};

/// One entry of the symbol table.
struct elf_symbol {
    std::string name;              ///< for a section symbol (STT_SECTION), the section's name
    std::size_t section_index{};   ///< st_shndx: SHN_UNDEF for externs, SHN_ABS, SHN_COMMON
    std::uint64_t value{};         ///< byte offset in its section (relocatable object)
    std::uint64_t size{};
    std::uint8_t type{};           ///< STT_FUNC, STT_OBJECT, STT_SECTION, STT_NOTYPE (labels such as LBB0_3)...
    std::uint8_t binding{};        ///< STB_LOCAL, STB_GLOBAL, STB_WEAK
};

/// A function inside a code section (an STT_FUNC symbol).
struct elf_function {
    std::string name;
    std::size_t offset{};          ///< bytes from the start of the section
    std::size_t size{};            ///< bytes
    bool global{};                 ///< STB_GLOBAL or STB_WEAK: an entry point, not a static subprogram
};

/// One relocation entry of a code section (from its SHT_REL section).
struct elf_relocation {
    std::size_t offset{};              ///< bytes from the start of the code section: the instruction to patch
    std::uint32_t type{};              ///< R_BPF_64_64 (lddw of a map or global), R_BPF_64_32 (call), ...
    std::string symbol_name;           ///< for a section symbol, the section's name
    std::uint8_t symbol_type{};        ///< STT_*
    std::size_t symbol_section_index{}; ///< where the symbol lives; SHN_UNDEF for externs
    std::string symbol_section_name;   ///< empty for SHN_UNDEF and special indices
    std::uint64_t symbol_value{};      ///< the symbol's offset in its section
};

/// BTF line info: which source line an instruction came from.
struct line_info {
    std::size_t instruction{};     ///< index of the instruction in its section
    std::string file;              ///< source file name as the compiler saw it
    std::string source;            ///< text of the source line
    std::uint32_t line{};          ///< 1-based
    std::uint32_t column{};
};

/// A section holding code (SHF_EXECINSTR).
struct code_section {
    std::size_t index{};                      ///< ELF section index
    std::string name;                         ///< `xdp`, `.text`, ...
    std::vector<instruction> instructions;
    std::vector<elf_function> functions;      ///< by offset
    std::vector<elf_relocation> relocations;  ///< by offset
    std::vector<line_info> lines;             ///< by instruction

    /// `.text` holds subprograms that programs call; every other code section is a program.
    bool is_program() const { return name != ".text"; }
};

class elf_object {
public:
    /// Reads the file at `path`.
    static expected<elf_object> open(const std::string& path);
    /// Reads an object already in memory; `name` stands for the file in messages.
    static expected<elf_object> from_memory(std::span<const std::byte> bytes, std::string name = "<memory>");

    const std::string& name() const { return _name; }
    const std::vector<elf_section>& sections() const { return _sections; }
    const std::vector<elf_symbol>& symbols() const { return _symbols; }
    const std::vector<code_section>& code_sections() const { return _code; }
    const elf_section* find_section(std::string_view name) const;
    const code_section* find_code_section(std::string_view name) const;
    /// Contents of the `license` section up to its first NUL; empty when there is none.
    const std::string& license() const { return _license; }
    /// Number of CO-RE relocation records in .BTF.ext (field offsets to adapt to a kernel's types); 0 when none.
    std::size_t core_relocation_count() const { return _core_relocation_count; }
    /// The parsed .BTF section, or nullptr when the object has none. Owned by this object.
    const struct ::btf* btf() const { return _btf.get(); }

private:
    std::string _name;
    std::vector<elf_section> _sections;
    std::vector<elf_symbol> _symbols;
    std::vector<code_section> _code;
    std::string _license;
    std::size_t _core_relocation_count{};
    std::shared_ptr<struct ::btf> _btf; // shared: copies of an elf_object share the read-only BTF

    friend class elf_reader;
};

} // namespace sluice::ebpf
