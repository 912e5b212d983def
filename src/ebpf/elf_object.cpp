// Reading a BPF ELF object: libelf for the ELF structure, libbpf for .BTF, our own code only for .BTF.ext line info.
#include "sluice/ebpf/elf_object.hpp"

#include <bpf/btf.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace sluice::ebpf {
namespace {

constexpr std::size_t instruction_bytes = sizeof(instruction);

/// Little-endian field of a byte buffer the caller has bounds-checked; BPF objects are little-endian whatever the host.
std::uint32_t read_u32(std::span<const std::byte> bytes, std::size_t at) {
    return static_cast<std::uint32_t>(bytes[at]) | static_cast<std::uint32_t>(bytes[at + 1]) << 8 |
           static_cast<std::uint32_t>(bytes[at + 2]) << 16 | static_cast<std::uint32_t>(bytes[at + 3]) << 24;
}

std::uint16_t read_u16(std::span<const std::byte> bytes, std::size_t at) {
    return static_cast<std::uint16_t>(static_cast<unsigned>(bytes[at]) | static_cast<unsigned>(bytes[at + 1]) << 8);
}

// The 8 bytes as they are stored: struct instruction mirrors the little-endian layout (isa.hpp), and sluice runs on
// little-endian hosts only.
instruction decode_instruction(std::span<const std::byte> bytes, std::size_t at) {
    static_assert(std::endian::native == std::endian::little, "instructions are copied as stored: little-endian");
    instruction insn{};
    std::memcpy(&insn, bytes.data() + at, sizeof(insn));
    return insn;
}

std::string machine_name(unsigned machine) {
    switch (machine) {
    case EM_X86_64: return "x86-64";
    case EM_386: return "i386";
    case EM_AARCH64: return "AArch64";
    case EM_ARM: return "ARM";
    case EM_RISCV: return "RISC-V";
    default: return fmt::format("machine {}", machine);
    }
}

struct elf_closer {
    void operator()(Elf* elf) const { elf_end(elf); }
};

} // namespace

// Does the reading; a class so that the libelf handle, the file's name and the object under construction travel
// together through the steps. Friend of elf_object.
class elf_reader {
public:
    elf_reader(std::span<const std::byte> bytes, std::string name)
        : _bytes(reinterpret_cast<const char*>(bytes.data()),
                 reinterpret_cast<const char*>(bytes.data()) + bytes.size()) {
        _object._name = std::move(name);
    }

    expected<elf_object> read() {
        if (auto header = read_header(); !header) {
            return header.error();
        }
        for (auto step : {&elf_reader::read_sections, &elf_reader::read_symbols, &elf_reader::read_code,
                          &elf_reader::read_relocations, &elf_reader::read_btf, &elf_reader::read_line_info}) {
            if (auto done = (this->*step)(); !done) {
                return done.error();
            }
        }
        if (const elf_section* license = _object.find_section("license")) {
            const auto* begin = reinterpret_cast<const char*>(license->bytes.data());
            _object._license.assign(begin, ::strnlen(begin, license->bytes.size()));
        }
        return std::move(_object);
    }

private:
    error fail(std::string_view what) const { return error{fmt::format("{}: {}", _object._name, what)}; }
    error fail_section(std::string_view section, std::string_view what) const {
        return error{fmt::format("{}: section '{}': {}", _object._name, section, what)};
    }
    error fail_libelf(std::string_view doing) const {
        return fail(fmt::format("malformed or truncated ELF file ({}: {})", doing, elf_errmsg(-1)));
    }

    expected<void> read_header() {
        // Checked before libelf sees the bytes, so that the common mistakes get plain words.
        if (_bytes.size() < SELFMAG || std::memcmp(_bytes.data(), ELFMAG, SELFMAG) != 0) {
            return fail("not an ELF file");
        }
        if (_bytes.size() < sizeof(Elf64_Ehdr)) {
            return fail(fmt::format("truncated ELF file: {} bytes, shorter than the ELF header", _bytes.size()));
        }
        if (elf_version(EV_CURRENT) == EV_NONE) {
            return fail_libelf("elf_version");
        }
        _elf.reset(elf_memory(_bytes.data(), _bytes.size()));
        if (!_elf || elf_kind(_elf.get()) != ELF_K_ELF) {
            return fail_libelf("elf_memory");
        }
        if (gelf_getclass(_elf.get()) != ELFCLASS64) {
            return fail("not a 64-bit ELF object (BPF objects are ELFCLASS64)");
        }
        GElf_Ehdr header{};
        if (gelf_getehdr(_elf.get(), &header) == nullptr) {
            return fail_libelf("ELF header");
        }
        if (header.e_machine != EM_BPF) {
            return fail(fmt::format("not a BPF object: built for {} (e_machine {}), expected BPF (e_machine {})",
                                    machine_name(header.e_machine), header.e_machine, EM_BPF));
        }
        if (header.e_ident[EI_DATA] != ELFDATA2LSB) {
            return fail("big-endian BPF object (-target bpfeb): only little-endian objects are supported");
        }
        if (header.e_type != ET_REL) {
            return fail(fmt::format("not a relocatable object (e_type {}): compile with clang -c", header.e_type));
        }
        // libelf reads the section header table lazily and reports a short file only vaguely; say it plainly.
        const std::uint64_t table_end = header.e_shoff + std::uint64_t{header.e_shnum} * header.e_shentsize;
        if (header.e_shoff > _bytes.size() || table_end > _bytes.size()) {
            return fail(fmt::format("truncated ELF file: the section header table ends at byte {}, the file has {}",
                                    table_end, _bytes.size()));
        }
        if (elf_getshdrstrndx(_elf.get(), &_names_index) != 0) {
            return fail_libelf("section name table");
        }
        return {};
    }

    expected<void> read_sections() {
        std::size_t count = 0;
        if (elf_getshdrnum(_elf.get(), &count) != 0) {
            return fail_libelf("section count");
        }
        _object._sections.resize(count);
        for (Elf_Scn* scn = elf_nextscn(_elf.get(), nullptr); scn != nullptr; scn = elf_nextscn(_elf.get(), scn)) {
            GElf_Shdr header{};
            if (gelf_getshdr(scn, &header) == nullptr) {
                return fail_libelf("section header");
            }
            elf_section section;
            section.index = elf_ndxscn(scn);
            const char* name = elf_strptr(_elf.get(), _names_index, header.sh_name);
            if (name == nullptr) {
                return fail_libelf(fmt::format("name of section {}", section.index));
            }
            section.name = name;
            section.type = header.sh_type;
            section.flags = header.sh_flags;
            section.size = header.sh_size;
            section.link = header.sh_link;
            section.info = header.sh_info;
            if (header.sh_type != SHT_NOBITS && header.sh_type != SHT_NULL) {
                if (header.sh_offset > _bytes.size() || header.sh_size > _bytes.size() - header.sh_offset) {
                    return fail_section(section.name,
                                        fmt::format("truncated ELF file: the section ends at byte {}, the file has {}",
                                                    header.sh_offset + header.sh_size, _bytes.size()));
                }
                const auto* begin = reinterpret_cast<const std::byte*>(_bytes.data() + header.sh_offset);
                section.bytes.assign(begin, begin + header.sh_size);
            }
            if (section.index >= count) {
                return fail_libelf("section index");
            }
            _object._sections[section.index] = std::move(section);
        }
        return {};
    }

    expected<void> read_symbols() {
        const auto table = std::find_if(_object._sections.begin(), _object._sections.end(),
                                        [](const elf_section& section) { return section.type == SHT_SYMTAB; });
        if (table == _object._sections.end()) {
            return {}; // an object without symbols: no functions, no relocations
        }
        Elf_Data* data = elf_getdata(elf_getscn(_elf.get(), table->index), nullptr);
        if (data == nullptr) {
            return fail_libelf("symbol table");
        }
        const std::size_t count = data->d_size / sizeof(Elf64_Sym);
        for (std::size_t i = 0; i < count; ++i) {
            GElf_Sym entry{};
            if (gelf_getsym(data, static_cast<int>(i), &entry) == nullptr) {
                return fail_libelf("symbol");
            }
            elf_symbol symbol;
            symbol.section_index = entry.st_shndx;
            symbol.value = entry.st_value;
            symbol.size = entry.st_size;
            symbol.type = static_cast<std::uint8_t>(GELF_ST_TYPE(entry.st_info));
            symbol.binding = static_cast<std::uint8_t>(GELF_ST_BIND(entry.st_info));
            if (symbol.type == STT_SECTION && symbol.section_index < _object._sections.size()) {
                symbol.name = _object._sections[symbol.section_index].name;
            } else if (const char* name = elf_strptr(_elf.get(), table->link, entry.st_name)) {
                symbol.name = name;
            } else {
                return fail_libelf(fmt::format("name of symbol {}", i));
            }
            _object._symbols.push_back(std::move(symbol));
        }
        return {};
    }

    expected<void> read_code() {
        for (const elf_section& section : _object._sections) {
            if (section.type != SHT_PROGBITS || (section.flags & SHF_EXECINSTR) == 0) {
                continue;
            }
            if (section.size % instruction_bytes != 0) {
                return fail_section(section.name, fmt::format("size {} is not a multiple of {} (the instruction size)",
                                                              section.size, instruction_bytes));
            }
            code_section code;
            code.index = section.index;
            code.name = section.name;
            for (std::size_t at = 0; at < section.bytes.size(); at += instruction_bytes) {
                code.instructions.push_back(decode_instruction(section.bytes, at));
            }
            for (const elf_symbol& symbol : _object._symbols) {
                if (symbol.type != STT_FUNC || symbol.section_index != section.index) {
                    continue;
                }
                if (symbol.value > section.size || symbol.size > section.size - symbol.value) {
                    return fail_section(section.name,
                                        fmt::format("function '{}' ({} bytes at {}) lies outside the section ({} bytes)",
                                                    symbol.name, symbol.size, symbol.value, section.size));
                }
                code.functions.push_back(elf_function{symbol.name, symbol.value, symbol.size,
                                                      symbol.binding == STB_GLOBAL || symbol.binding == STB_WEAK});
            }
            std::ranges::sort(code.functions, {}, &elf_function::offset);
            _object._code.push_back(std::move(code));
        }
        return {};
    }

    code_section* code_by_index(std::size_t index) {
        const auto found = std::ranges::find(_object._code, index, &code_section::index);
        return found == _object._code.end() ? nullptr : &*found;
    }

    expected<void> read_relocations() {
        for (const elf_section& section : _object._sections) {
            if (section.type != SHT_REL) {
                continue;
            }
            code_section* code = code_by_index(section.info);
            if (code == nullptr) {
                continue; // relocations of debug info and BTF: nothing a loader applies
            }
            Elf_Data* data = elf_getdata(elf_getscn(_elf.get(), section.index), nullptr);
            if (data == nullptr) {
                return fail_libelf(fmt::format("relocations in section '{}'", section.name));
            }
            const std::size_t count = data->d_size / sizeof(Elf64_Rel);
            for (std::size_t i = 0; i < count; ++i) {
                GElf_Rel entry{};
                if (gelf_getrel(data, static_cast<int>(i), &entry) == nullptr) {
                    return fail_libelf(fmt::format("relocation in section '{}'", section.name));
                }
                const std::size_t symbol_index = GELF_R_SYM(entry.r_info);
                if (symbol_index >= _object._symbols.size()) {
                    return fail_section(section.name, fmt::format("relocation {} names symbol {}, the table has {}", i,
                                                                  symbol_index, _object._symbols.size()));
                }
                const std::size_t code_bytes = code->instructions.size() * instruction_bytes;
                if (entry.r_offset >= code_bytes || entry.r_offset % instruction_bytes != 0) {
                    return fail_section(section.name, fmt::format("relocation {} at byte {} is not at an instruction "
                                                                  "of section '{}'",
                                                                  i, entry.r_offset, code->name));
                }
                const elf_symbol& symbol = _object._symbols[symbol_index];
                elf_relocation relocation;
                relocation.offset = entry.r_offset;
                relocation.type = static_cast<std::uint32_t>(GELF_R_TYPE(entry.r_info));
                relocation.symbol_name = symbol.name;
                relocation.symbol_type = symbol.type;
                relocation.symbol_section_index = symbol.section_index;
                relocation.symbol_value = symbol.value;
                if (symbol.section_index != SHN_UNDEF && symbol.section_index < _object._sections.size()) {
                    relocation.symbol_section_name = _object._sections[symbol.section_index].name;
                }
                code->relocations.push_back(std::move(relocation));
            }
            std::ranges::sort(code->relocations, {}, &elf_relocation::offset);
        }
        return {};
    }

    expected<void> read_btf() {
        const elf_section* section = _object.find_section(".BTF");
        if (section == nullptr) {
            return {};
        }
        struct ::btf* parsed = btf__new(section->bytes.data(), static_cast<std::uint32_t>(section->bytes.size()));
        if (parsed == nullptr) {
            return fail_section(".BTF", fmt::format("malformed BTF ({})", std::strerror(errno)));
        }
        _object._btf.reset(parsed, btf__free);
        return {};
    }

    // libbpf 1.1 parses .BTF.ext (btf_ext__new) but keeps the records behind an opaque struct; it hands out line info
    // only for a program it has loaded (bpf_program__line_info), after relocation. A disassembler and the verifier's
    // messages need it straight from the object, so the line_info subsection is decoded here, in the layout of
    // libbpf's struct btf_ext_header and the kernel's struct bpf_line_info (linux/bpf.h). Strings still come from
    // libbpf (btf__name_by_offset).
    expected<void> read_line_info() {
        const elf_section* section = _object.find_section(".BTF.ext");
        if (section == nullptr) {
            return {};
        }
        const std::span<const std::byte> bytes = section->bytes;
        constexpr std::size_t header_minimum = 24; // magic..line_info_len: the fields every version has
        if (bytes.size() < header_minimum || read_u16(bytes, 0) != 0xeb9f) {
            return fail_section(".BTF.ext", "not BTF.ext data (bad magic or too short)");
        }
        if (static_cast<unsigned>(bytes[2]) != 1) {
            return fail_section(".BTF.ext", fmt::format("unsupported version {}", static_cast<unsigned>(bytes[2])));
        }
        if (!_object._btf) {
            return fail_section(".BTF.ext", "present without a .BTF section to resolve its names");
        }
        const std::size_t header_length = read_u32(bytes, 4);
        const std::size_t line_offset = read_u32(bytes, 16);
        const std::size_t line_length = read_u32(bytes, 20);
        if (header_length < header_minimum || header_length > bytes.size() ||
            line_offset > bytes.size() - header_length || line_length > bytes.size() - header_length - line_offset) {
            return fail_section(".BTF.ext", "line info lies outside the section");
        }
        if (auto counted = count_core_relocations(bytes, header_length); !counted) {
            return counted;
        }
        if (line_length == 0) {
            return {};
        }
        const std::span<const std::byte> lines = bytes.subspan(header_length + line_offset, line_length);
        constexpr std::size_t line_record_minimum = 16; // struct bpf_line_info
        if (lines.size() < 4) {
            return fail_section(".BTF.ext", "line info too short for its record size");
        }
        const std::size_t record_size = read_u32(lines, 0);
        if (record_size < line_record_minimum || record_size % 4 != 0) {
            return fail_section(".BTF.ext", fmt::format("line info record size {} is not supported", record_size));
        }
        std::size_t at = 4;
        while (at < lines.size()) {
            if (lines.size() - at < 8) {
                return fail_section(".BTF.ext", "line info section header cut short");
            }
            const char* section_name = btf__name_by_offset(_object._btf.get(), read_u32(lines, at));
            const std::size_t count = read_u32(lines, at + 4);
            at += 8;
            if (section_name == nullptr || count > (lines.size() - at) / record_size) {
                return fail_section(".BTF.ext", "line info names a string outside .BTF or runs past the section");
            }
            code_section* code = nullptr;
            for (code_section& candidate : _object._code) {
                if (candidate.name == section_name) {
                    code = &candidate;
                }
            }
            if (code == nullptr) {
                return fail_section(".BTF.ext", fmt::format("line info for '{}', which is not a code section",
                                                            section_name));
            }
            for (std::size_t i = 0; i < count; ++i, at += record_size) {
                const std::uint32_t byte_offset = read_u32(lines, at);
                const char* file = btf__name_by_offset(_object._btf.get(), read_u32(lines, at + 4));
                const char* source = btf__name_by_offset(_object._btf.get(), read_u32(lines, at + 8));
                const std::uint32_t line_column = read_u32(lines, at + 12);
                if (byte_offset % instruction_bytes != 0 ||
                    byte_offset / instruction_bytes >= code->instructions.size() || file == nullptr ||
                    source == nullptr) {
                    return fail_section(".BTF.ext", fmt::format("line info record {} of '{}' is out of range", i,
                                                                code->name));
                }
                // The kernel packs line and column as BPF_LINE_INFO_LINE_NUM (>> 10) and _LINE_COL (& 0x3ff).
                code->lines.push_back(line_info{byte_offset / instruction_bytes, file, source, line_column >> 10,
                                                line_column & 0x3ff});
            }
        }
        for (code_section& code : _object._code) {
            std::ranges::stable_sort(code.lines, {}, &line_info::instruction);
        }
        return {};
    }

    // Header fields core_relo_off/core_relo_len exist from a 32-byte header on (libbpf's btf_ext_header). Only the
    // number of records is kept: the loader refuses such objects rather than run with unadapted field offsets.
    expected<void> count_core_relocations(std::span<const std::byte> bytes, std::size_t header_length) {
        constexpr std::size_t header_with_core = 32;
        if (header_length < header_with_core) {
            return {};
        }
        const std::size_t core_offset = read_u32(bytes, 24);
        const std::size_t core_length = read_u32(bytes, 28);
        if (core_length == 0) {
            return {};
        }
        if (core_offset > bytes.size() - header_length || core_length > bytes.size() - header_length - core_offset ||
            core_length < 4) {
            return fail_section(".BTF.ext", "CO-RE relocations lie outside the section");
        }
        const std::span<const std::byte> records = bytes.subspan(header_length + core_offset, core_length);
        const std::size_t record_size = read_u32(records, 0);
        if (record_size == 0) {
            return fail_section(".BTF.ext", "CO-RE relocation record size is 0");
        }
        for (std::size_t at = 4; at + 8 <= records.size();) {
            const std::size_t count = read_u32(records, at + 4);
            at += 8;
            if (count > (records.size() - at) / record_size) {
                return fail_section(".BTF.ext", "CO-RE relocations run past the section");
            }
            _object._core_relocation_count += count;
            at += count * record_size;
        }
        return {};
    }

    std::vector<char> _bytes; // libelf wants a mutable image even to read
    std::unique_ptr<Elf, elf_closer> _elf;
    std::size_t _names_index{};
    elf_object _object;
};

expected<elf_object> elf_object::open(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return error{fmt::format("{}: cannot open: {}", path, std::strerror(errno))};
    }
    std::vector<char> contents{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    if (file.bad()) {
        return error{fmt::format("{}: cannot read: {}", path, std::strerror(errno))};
    }
    return from_memory(std::as_bytes(std::span<const char>(contents)), path);
}

expected<elf_object> elf_object::from_memory(std::span<const std::byte> bytes, std::string name) {
    return elf_reader(bytes, std::move(name)).read();
}

const elf_section* elf_object::find_section(std::string_view name) const {
    const auto found = std::ranges::find(_sections, name, &elf_section::name);
    return found == _sections.end() ? nullptr : &*found;
}

const code_section* elf_object::find_code_section(std::string_view name) const {
    const auto found = std::ranges::find(_code, name, &code_section::name);
    return found == _code.end() ? nullptr : &*found;
}

} // namespace sluice::ebpf
