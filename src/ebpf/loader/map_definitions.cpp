// The maps an object declares, read as libbpf reads them (libbpf.c: bpf_object__init_user_btf_map,
// parse_btf_map_def, bpf_object__init_global_data_maps, bpf_object__collect_map_relos), plus the legacy `maps`
// section that libbpf 1.0 dropped but older objects still carry.
//
// Clang leaves the sizes of DATASECs and the offsets of their variables as zeros in an object file (libbpf fixes them
// up in btf_fixup_datasec); here the ELF symbol of each variable gives its offset, and the ELF section its size.
#include <bpf/btf.h>
#include <elf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "ebpf/loader/loader_internal.hpp"

namespace sluice::ebpf::loader_detail {
namespace {

constexpr std::uint32_t bpf_map_type_prog_array = 3;
constexpr std::uint32_t bpf_map_type_array_of_maps = 12;
constexpr std::uint32_t bpf_map_type_hash_of_maps = 13;
constexpr std::size_t kernel_name_length = 15; // BPF_OBJ_NAME_LEN - 1

const btf_type* skip_modifiers(const btf* types, std::uint32_t id, std::uint32_t* resolved = nullptr) {
    const btf_type* type = btf__type_by_id(types, id);
    while (type != nullptr && (btf_is_mod(type) || btf_is_typedef(type))) {
        id = type->type;
        type = btf__type_by_id(types, id);
    }
    if (resolved != nullptr) {
        *resolved = id;
    }
    return type;
}

std::string_view btf_name(const btf* types, std::uint32_t offset) {
    const char* name = btf__name_by_offset(types, offset);
    return name == nullptr ? std::string_view{} : std::string_view{name};
}

std::uint32_t read_u32(std::span<const std::byte> bytes, std::size_t at) {
    std::uint32_t value = 0;
    std::memcpy(&value, bytes.data() + at, sizeof(value)); // little-endian objects on little-endian hosts only
    return value;
}

/// Bytes made kernel-safe for a map name: [A-Za-z0-9_.], at most 15 characters (libbpf truncates the same way).
std::string kernel_map_name(std::string_view name) {
    std::string result(name.substr(0, kernel_name_length));
    for (char& c : result) {
        const bool allowed =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
        if (!allowed) {
            c = '_';
        }
    }
    return result;
}

/// libbpf's internal_map_name(): up to 8 characters of the object name, then the section name, unless the section
/// name has a dot after its first character (custom `.data.*`), which then stands alone.
std::string internal_map_name(std::string_view object, std::string_view section) {
    const std::size_t suffix = std::max<std::size_t>(7, section.size());
    std::size_t prefix = 0;
    if (section.substr(1).find('.') == std::string_view::npos) {
        prefix = std::min(kernel_name_length - std::min(suffix, kernel_name_length), object.size());
    }
    return kernel_map_name(std::string(object.substr(0, prefix)) + std::string(section));
}

bool is_global_data_section(std::string_view name) {
    return name == ".data" || name == ".rodata" || name == ".bss" || name.starts_with(".data.") ||
           name.starts_with(".rodata.");
}

class map_parser {
public:
    map_parser(const elf_object& elf, std::string_view object_name) : _elf(elf), _object_name(object_name) {}

    expected<object_maps> run() {
        for (auto step : {&map_parser::parse_legacy, &map_parser::parse_btf_maps, &map_parser::parse_global_data,
                          &map_parser::parse_map_values}) {
            if (auto done = (this->*step)(); !done) {
                return done.error();
            }
        }
        return std::move(_result);
    }

private:
    error fail(std::string_view what) const { return error{fmt::format("{}: {}", _elf.name(), what)}; }
    error fail_map(std::string_view map, std::string_view what) const {
        return error{fmt::format("{}: map '{}': {}", _elf.name(), map, what)};
    }

    /// The ELF symbol of a variable: STT_OBJECT (or NOTYPE, as some assemblers write) in `section`, by name.
    const elf_symbol* find_variable_symbol(std::string_view name, std::size_t section) const {
        for (const elf_symbol& symbol : _elf.symbols()) {
            if (symbol.section_index == section && symbol.name == name &&
                (symbol.type == STT_OBJECT || symbol.type == STT_NOTYPE)) {
                return &symbol;
            }
        }
        return nullptr;
    }

    void add(map_spec spec, map_location location) {
        _result.maps.push_back(std::move(spec));
        _result.locations.push_back(location);
    }

    // ---- legacy `maps`: struct bpf_map_def {type, key_size, value_size, max_entries, map_flags}, one per symbol ----

    expected<void> parse_legacy() {
        const elf_section* section = _elf.find_section("maps");
        if (section == nullptr) {
            return {};
        }
        std::vector<const elf_symbol*> symbols;
        for (const elf_symbol& symbol : _elf.symbols()) {
            if (symbol.section_index == section->index && symbol.type != STT_SECTION && symbol.type != STT_FILE &&
                (symbol.type == STT_OBJECT || symbol.binding == STB_GLOBAL)) {
                symbols.push_back(&symbol);
            }
        }
        if (symbols.empty()) {
            return {};
        }
        std::ranges::sort(symbols, {}, &elf_symbol::value);
        // As libbpf 0.x did: every definition has the same size, the section's size over the number of maps.
        const std::size_t definition_size = section->bytes.size() / symbols.size();
        constexpr std::size_t known_size = 5 * sizeof(std::uint32_t);
        if (definition_size < known_size || section->bytes.size() % symbols.size() != 0) {
            return fail(fmt::format("section 'maps': {} bytes for {} map definitions: each must be a struct "
                                    "bpf_map_def of at least {} bytes",
                                    section->bytes.size(), symbols.size(), known_size));
        }
        for (const elf_symbol* symbol : symbols) {
            if (symbol->value % definition_size != 0 || symbol->value + definition_size > section->bytes.size()) {
                return fail_map(symbol->name, fmt::format("legacy definition at byte {} of section 'maps' is not one "
                                                          "of its {}-byte slots",
                                                          symbol->value, definition_size));
            }
            const std::span<const std::byte> bytes =
                std::span<const std::byte>(section->bytes).subspan(symbol->value, definition_size);
            map_spec spec;
            spec.name = symbol->name;
            spec.kernel_name = kernel_map_name(symbol->name);
            spec.origin = map_origin::legacy;
            spec.section = section->name;
            spec.definition.type = static_cast<map_type>(read_u32(bytes, 0));
            spec.definition.key_size = read_u32(bytes, 4);
            spec.definition.value_size = read_u32(bytes, 8);
            spec.definition.max_entries = read_u32(bytes, 12);
            spec.definition.map_flags = read_u32(bytes, 16);
            spec.definition.name = spec.kernel_name;
            const bool extra_set =
                std::ranges::any_of(bytes.subspan(known_size), [](std::byte b) { return b != std::byte{0}; });
            if (extra_set) {
                _result.notes.push_back(fmt::format("map '{}': fields after map_flags in its legacy definition ({} "
                                                    "bytes, e.g. iproute2's id/pinning/inner map) are ignored",
                                                    spec.name, definition_size));
            }
            add(std::move(spec), map_location{section->index, symbol->value, definition_size});
        }
        return {};
    }

    // ---- BTF-defined maps in `.maps` ----

    expected<void> parse_btf_maps() {
        const elf_section* section = _elf.find_section(".maps");
        if (section == nullptr) {
            return {};
        }
        const btf* types = _elf.btf();
        if (types == nullptr) {
            return fail("section '.maps' needs BTF to describe its maps, and the object has no .BTF section: compile "
                        "with clang -g");
        }
        const std::int32_t datasec_id = btf__find_by_name_kind(types, ".maps", BTF_KIND_DATASEC);
        if (datasec_id < 0) {
            return fail("section '.maps' has no DATASEC '.maps' in .BTF");
        }
        const btf_type* datasec = btf__type_by_id(types, static_cast<std::uint32_t>(datasec_id));
        const btf_var_secinfo* variables = btf_var_secinfos(datasec);
        for (std::uint16_t i = 0; i < btf_vlen(datasec); ++i) {
            if (auto parsed = parse_btf_map(types, *section, variables[i]); !parsed) {
                return parsed;
            }
        }
        return {};
    }

    /// An integer attribute, `__uint(name, N)`: a pointer to an array of N elements.
    expected<std::uint32_t> integer_attribute(const btf* types, std::string_view map, const btf_member& member) const {
        const btf_type* pointer = skip_modifiers(types, member.type);
        const std::string_view name = btf_name(types, member.name_off);
        if (pointer == nullptr || !btf_is_ptr(pointer)) {
            return fail_map(
                map, fmt::format("attribute '{}' must be written __uint({}, N) (a pointer to an array)", name, name));
        }
        const btf_type* array = btf__type_by_id(types, pointer->type);
        if (array == nullptr || !btf_is_array(array)) {
            return fail_map(
                map, fmt::format("attribute '{}' must be written __uint({}, N) (a pointer to an array)", name, name));
        }
        return btf_array(array)->nelems;
    }

    /// A type attribute, `__type(name, T)`: a pointer to T. Returns T's id; `size` gets T's size.
    expected<std::uint32_t> type_attribute(const btf* types, std::string_view map, const btf_member& member,
                                           std::uint32_t& size) const {
        const btf_type* pointer = skip_modifiers(types, member.type);
        const std::string_view name = btf_name(types, member.name_off);
        if (pointer == nullptr || !btf_is_ptr(pointer)) {
            return fail_map(map,
                            fmt::format("attribute '{}' must be written __type({}, T) (a pointer to T)", name, name));
        }
        const long resolved = btf__resolve_size(types, pointer->type);
        if (resolved < 0) {
            return fail_map(map, fmt::format("cannot tell the size of the type of '{}'", name));
        }
        size = static_cast<std::uint32_t>(resolved);
        return pointer->type;
    }

    expected<void> parse_btf_map(const btf* types, const elf_section& section, const btf_var_secinfo& info) {
        const btf_type* variable = btf__type_by_id(types, info.type);
        if (variable == nullptr || !btf_is_var(variable)) {
            return fail("DATASEC '.maps' holds something other than a variable");
        }
        const std::string name(btf_name(types, variable->name_off));
        const std::uint32_t linkage = btf_var(variable)->linkage;
        if (linkage != BTF_VAR_GLOBAL_ALLOCATED && linkage != BTF_VAR_STATIC) {
            return fail_map(name, "an extern map (declared, not defined here) cannot be loaded: define it in this "
                                  "object");
        }
        const btf_type* definition = skip_modifiers(types, variable->type);
        if (definition == nullptr || !btf_is_struct(definition)) {
            return fail_map(name, "its definition in '.maps' must be a struct (__uint, __type, __array members)");
        }
        const elf_symbol* symbol = find_variable_symbol(name, section.index);
        if (symbol == nullptr) {
            return fail_map(name, "no ELF symbol in section '.maps' for it");
        }
        // A prog array's `values` is a flexible array: the variable (its symbol) is larger than the struct type.
        const std::uint64_t size = std::max<std::uint64_t>({definition->size, symbol->size, info.size});
        if (symbol->value > section.size || size > section.size - symbol->value) {
            return fail_map(name, fmt::format("its definition ({} bytes at {}) lies outside section '.maps' ({} bytes)",
                                              size, symbol->value, section.size));
        }

        map_spec spec;
        spec.name = name;
        spec.kernel_name = kernel_map_name(name);
        spec.origin = map_origin::btf;
        spec.section = section.name;
        std::uint32_t key_size = 0;
        std::uint32_t value_size = 0;
        std::uint32_t type = 0;
        const btf_member* members = btf_members(definition);
        const std::uint16_t count = btf_vlen(definition);
        for (std::uint16_t i = 0; i < count; ++i) {
            const btf_member& member = members[i];
            const std::string_view field = btf_name(types, member.name_off);
            auto set_size = [&](std::uint32_t& target, std::uint32_t value, std::string_view what) -> expected<void> {
                if (target != 0 && target != value) {
                    return fail_map(name, fmt::format("conflicting {}: {} and {}", what, target, value));
                }
                target = value;
                return {};
            };
            if (field == "type" || field == "max_entries" || field == "map_flags" || field == "numa_node" ||
                field == "key_size" || field == "value_size" || field == "pinning" || field == "map_extra") {
                auto value = integer_attribute(types, name, member);
                if (!value) {
                    return value.error();
                }
                if (field == "type") {
                    type = *value;
                } else if (field == "max_entries") {
                    spec.definition.max_entries = *value;
                } else if (field == "map_flags") {
                    spec.definition.map_flags = *value;
                } else if (field == "key_size") {
                    if (auto set = set_size(key_size, *value, "key size"); !set) {
                        return set;
                    }
                } else if (field == "value_size") {
                    if (auto set = set_size(value_size, *value, "value size"); !set) {
                        return set;
                    }
                } else if (field == "pinning" && *value != 0) {
                    _result.notes.push_back(fmt::format("map '{}': pinning is ignored: sluice keeps maps in its own "
                                                        "process, there is no BPF file system to pin them in",
                                                        name));
                } else if (field == "map_extra" && *value != 0) {
                    _result.notes.push_back(fmt::format("map '{}': map_extra {} is ignored", name, *value));
                }
                // numa_node: one memory node as far as sluice is concerned.
            } else if (field == "key" || field == "value") {
                std::uint32_t resolved_size = 0;
                auto id = type_attribute(types, name, member, resolved_size);
                if (!id) {
                    return id.error();
                }
                if (field == "key") {
                    spec.key_type_id = *id;
                    if (auto set = set_size(key_size, resolved_size, "key size"); !set) {
                        return set;
                    }
                } else {
                    spec.value_type_id = *id;
                    if (auto set = set_size(value_size, resolved_size, "value size"); !set) {
                        return set;
                    }
                }
            } else if (field == "values") {
                if (auto values = parse_values_member(types, name, type, member, i + 1 == count); !values) {
                    return values;
                }
                if (auto set = set_size(value_size, 4, "value size"); !set) {
                    return set;
                }
            } else {
                return fail_map(name,
                                fmt::format("unknown attribute '{}' in its definition (libbpf refuses it too)", field));
            }
        }
        if (type == 0) {
            return fail_map(name, "its definition has no type: add __uint(type, BPF_MAP_TYPE_...)");
        }
        spec.definition.type = static_cast<map_type>(type);
        spec.definition.key_size = key_size;
        spec.definition.value_size = value_size;
        spec.definition.name = spec.kernel_name;
        add(std::move(spec), map_location{section.index, symbol->value, size});
        return {};
    }

    expected<void> parse_values_member(const btf* types, const std::string& name, std::uint32_t type,
                                       const btf_member& member, bool last) const {
        const bool map_in_map = type == bpf_map_type_array_of_maps || type == bpf_map_type_hash_of_maps;
        if (!last) {
            return fail_map(name, "'values' must be the last member of its definition");
        }
        const btf_type* array = btf__type_by_id(types, member.type);
        if (array == nullptr || !btf_is_array(array) || btf_array(array)->nelems != 0) {
            return fail_map(name, "'values' must be written __array(values, ...) (a zero-sized array of pointers)");
        }
        const btf_type* pointer = skip_modifiers(types, btf_array(array)->type);
        if (pointer == nullptr || !btf_is_ptr(pointer)) {
            return fail_map(name, "'values' must be written __array(values, ...) (an array of pointers)");
        }
        const btf_type* target = skip_modifiers(types, pointer->type);
        if (type == bpf_map_type_prog_array) {
            if (target == nullptr || !btf_is_func_proto(target)) {
                return fail_map(name, "'values' of a prog array must point to functions: __array(values, int(void*))");
            }
            return {};
        }
        if (map_in_map || (target != nullptr && btf_is_struct(target))) {
            return fail_map(name, "maps of maps (an inner map definition in __array(values, ...)) are not supported "
                                  "by sluice yet; use separate maps, or a larger value with the inner data in it");
        }
        return fail_map(name, "'values' is only for prog arrays (BPF_MAP_TYPE_PROG_ARRAY) and maps of maps");
    }

    // ---- global data: `.data`, `.rodata`, `.bss`, `.data.*`, `.rodata.*` ----

    expected<void> parse_global_data() {
        for (const elf_section& section : _elf.sections()) {
            if (!is_global_data_section(section.name) || (section.flags & SHF_EXECINSTR) != 0) {
                continue;
            }
            if (section.type != SHT_PROGBITS && section.type != SHT_NOBITS) {
                continue;
            }
            if (section.size == 0) {
                continue; // nothing to hold, and the kernel refuses a value size of 0
            }
            if (section.size > UINT32_MAX) {
                return fail(fmt::format("section '{}' has {} bytes of global data; a map value holds at most 4 GiB",
                                        section.name, section.size));
            }
            map_spec spec;
            spec.name = section.name;
            spec.kernel_name = internal_map_name(_object_name, section.name);
            spec.origin = map_origin::global_data;
            spec.section = section.name;
            spec.read_only = section.name.starts_with(".rodata");
            spec.definition.type = map_type::array;
            spec.definition.key_size = sizeof(std::uint32_t);
            spec.definition.value_size = static_cast<std::uint32_t>(section.size);
            spec.definition.max_entries = 1;
            spec.definition.map_flags = map_flag::mmapable | (spec.read_only ? map_flag::rdonly_prog : 0U);
            spec.definition.name = spec.kernel_name;
            if (section.type == SHT_NOBITS) {
                spec.initial_value.assign(section.size, std::byte{0});
            } else {
                spec.initial_value = section.bytes;
            }
            if (const btf* types = _elf.btf()) {
                const std::int32_t id = btf__find_by_name_kind(types, section.name.c_str(), BTF_KIND_DATASEC);
                if (id > 0) {
                    spec.value_type_id = static_cast<std::uint32_t>(id);
                    if (spec.read_only) {
                        collect_rodata(types, section, static_cast<std::uint32_t>(id), _result.maps.size());
                    }
                }
            }
            add(std::move(spec), map_location{section.index, 0, section.size});
        }
        return {};
    }

    void collect_rodata(const btf* types, const elf_section& section, std::uint32_t datasec_id, std::size_t map_index) {
        const btf_type* datasec = btf__type_by_id(types, datasec_id);
        const btf_var_secinfo* variables = btf_var_secinfos(datasec);
        for (std::uint16_t i = 0; i < btf_vlen(datasec); ++i) {
            const btf_type* variable = btf__type_by_id(types, variables[i].type);
            if (variable == nullptr || !btf_is_var(variable)) {
                continue;
            }
            const std::string name(btf_name(types, variable->name_off));
            const elf_symbol* symbol = find_variable_symbol(name, section.index);
            const std::uint64_t offset = symbol != nullptr ? symbol->value : variables[i].offset;
            const std::uint32_t size = variables[i].size;
            if (offset > section.size || size > section.size - offset) {
                continue; // a variable BTF places outside its section cannot be set; the loader never writes there
            }
            _result.rodata.push_back(
                rodata_variable{name, section.name, map_index, static_cast<std::uint32_t>(offset), size});
        }
    }

    // ---- `.values = {[i] = &prog}` of prog arrays: relocations of `.maps` ----

    expected<void> parse_map_values() {
        const elf_section* maps = _elf.find_section(".maps");
        if (maps == nullptr) {
            return {};
        }
        const auto& sections = _elf.sections();
        const auto relocations = std::ranges::find_if(
            sections, [&](const elf_section& s) { return s.type == SHT_REL && s.info == maps->index; });
        if (relocations == sections.end()) {
            return {};
        }
        const btf* types = _elf.btf();
        constexpr std::size_t entry_size = sizeof(Elf64_Rel);
        for (std::size_t at = 0; at + entry_size <= relocations->bytes.size(); at += entry_size) {
            Elf64_Rel entry{};
            std::memcpy(&entry, relocations->bytes.data() + at, entry_size);
            const std::size_t symbol_index = ELF64_R_SYM(entry.r_info);
            if (symbol_index >= _elf.symbols().size()) {
                return fail(fmt::format("section '{}': relocation {} names symbol {}, the table has {}",
                                        relocations->name, at / entry_size, symbol_index, _elf.symbols().size()));
            }
            const elf_symbol& symbol = _elf.symbols()[symbol_index];
            auto owner = std::ranges::find_if(_result.locations, [&](const map_location& location) {
                return location.section_index == maps->index && entry.r_offset >= location.offset &&
                       entry.r_offset < location.offset + location.size;
            });
            if (owner == _result.locations.end()) {
                return fail(fmt::format("section '.maps': relocation at byte {} (to '{}') is inside no map definition",
                                        entry.r_offset, symbol.name));
            }
            const std::size_t map_index = static_cast<std::size_t>(owner - _result.locations.begin());
            map_spec& spec = _result.maps[map_index];
            if (static_cast<std::uint32_t>(spec.definition.type) != bpf_map_type_prog_array) {
                return fail_map(spec.name, fmt::format("initial value '{}' in `values`: only prog arrays can be "
                                                       "initialised this way in sluice",
                                                       symbol.name));
            }
            // The slot is the pointer's index in the last member, `values`, which starts at that member's offset.
            const std::int32_t datasec_id = btf__find_by_name_kind(types, ".maps", BTF_KIND_DATASEC);
            std::uint64_t values_offset = 0;
            if (datasec_id > 0) {
                const btf_type* datasec = btf__type_by_id(types, static_cast<std::uint32_t>(datasec_id));
                const btf_var_secinfo* variables = btf_var_secinfos(datasec);
                for (std::uint16_t i = 0; i < btf_vlen(datasec); ++i) {
                    const btf_type* variable = btf__type_by_id(types, variables[i].type);
                    if (variable == nullptr || btf_name(types, variable->name_off) != spec.name) {
                        continue;
                    }
                    const btf_type* definition = skip_modifiers(types, variable->type);
                    const std::uint16_t count = btf_vlen(definition);
                    if (count > 0) {
                        values_offset = btf_member_bit_offset(definition, count - 1) / 8;
                    }
                }
            }
            const std::uint64_t within = entry.r_offset - owner->offset;
            if (within < values_offset || (within - values_offset) % sizeof(std::uint64_t) != 0) {
                return fail_map(spec.name, fmt::format("initial value '{}' is not at a slot of `values`", symbol.name));
            }
            const auto slot = static_cast<std::uint32_t>((within - values_offset) / sizeof(std::uint64_t));
            _result.values.push_back(map_value_relocation{map_index, slot, symbol.name, symbol.section_index});
        }
        return {};
    }

    const elf_object& _elf;
    std::string_view _object_name;
    object_maps _result;
};

} // namespace

std::string object_name(std::string_view path) {
    const std::size_t slash = path.find_last_of('/');
    std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
    const std::size_t dot = base.find('.');
    return std::string(dot == std::string_view::npos ? base : base.substr(0, dot));
}

expected<object_maps> parse_maps(const elf_object& elf, std::string_view object_name) {
    return map_parser(elf, object_name).run();
}

} // namespace sluice::ebpf::loader_detail
