// object_spec and loaded_object: the loader's steps in order, the options set between open and load, and the
// names of things in messages.
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>

#include "ebpf/loader/loader_internal.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf {

std::string_view to_string(xdp_attach attach) {
    switch (attach) {
    case xdp_attach::device:
        return "xdp";
    case xdp_attach::devmap:
        return "xdp/devmap";
    case xdp_attach::cpumap:
        return "xdp/cpumap";
    }
    return "?";
}

std::string_view to_string(xdp_md_field field) {
    switch (field) {
    case xdp_md_field::data:
        return "data";
    case xdp_md_field::data_end:
        return "data_end";
    case xdp_md_field::data_meta:
        return "data_meta";
    case xdp_md_field::ingress_ifindex:
        return "ingress_ifindex";
    case xdp_md_field::rx_queue_index:
        return "rx_queue_index";
    case xdp_md_field::egress_ifindex:
        return "egress_ifindex";
    }
    return "?";
}

// libbpf 1.x's section_defs for XDP, then the names libbpf 0.x accepted by prefix (SEC_SLOPPY_PFX): `xdp_devmap/`,
// `xdp_cpumap/`, any other `xdp_*`, and `xdp/...`.
std::optional<program_section> classify_section(std::string_view name) {
    if (name == "xdp") {
        return program_section{xdp_attach::device, false};
    }
    if (name == "xdp.frags") {
        return program_section{xdp_attach::device, true};
    }
    if (name == "xdp/devmap" || name.starts_with("xdp_devmap/")) {
        return program_section{xdp_attach::devmap, false};
    }
    if (name == "xdp/cpumap" || name.starts_with("xdp_cpumap/")) {
        return program_section{xdp_attach::cpumap, false};
    }
    if (name == "xdp.frags/devmap") {
        return program_section{xdp_attach::devmap, true};
    }
    if (name == "xdp.frags/cpumap") {
        return program_section{xdp_attach::cpumap, true};
    }
    if (name.starts_with("xdp_") || name.starts_with("xdp/")) {
        return program_section{xdp_attach::device, false};
    }
    return std::nullopt;
}

namespace {

const line_info* line_in(const std::vector<line_info>& lines, std::size_t instruction) {
    const auto after = std::ranges::upper_bound(lines, instruction, {}, &line_info::instruction);
    return after == lines.begin() ? nullptr : &*std::prev(after);
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n')) {
        text.remove_suffix(1);
    }
    return text;
}

template <typename T> const T* find_named(const std::vector<T>& items, std::string_view name) {
    const auto found = std::ranges::find(items, name, &T::name);
    return found == items.end() ? nullptr : &*found;
}

std::optional<std::size_t> index_named(const std::vector<map_spec>& maps, std::string_view name) {
    const auto found = std::ranges::find(maps, name, &map_spec::name);
    if (found == maps.end()) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(found - maps.begin());
}

/// An integer in decimal, 0x hex or 0b binary, with an optional sign.
std::optional<std::pair<bool, std::uint64_t>> parse_integer(std::string_view text) {
    bool negative = false;
    if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
        negative = text.front() == '-';
        text.remove_prefix(1);
    }
    int base = 10;
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        base = 16;
        text.remove_prefix(2);
    } else if (text.size() > 2 && text[0] == '0' && (text[1] == 'b' || text[1] == 'B')) {
        base = 2;
        text.remove_prefix(2);
    }
    std::uint64_t magnitude = 0;
    const auto [end, problem] = std::from_chars(text.data(), text.data() + text.size(), magnitude, base);
    if (text.empty() || problem != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return std::make_pair(negative, magnitude);
}

} // namespace

const line_info* program_spec::line_at(std::size_t instruction) const {
    return line_in(lines, instruction);
}
const line_info* loaded_program::line_at(std::size_t instruction) const {
    return line_in(lines, instruction);
}

namespace loader_detail {

std::string describe_instruction(const program_spec& program, std::size_t instruction) {
    const line_info* line = program.line_at(instruction);
    if (line == nullptr) {
        return fmt::format("instruction {}", instruction);
    }
    const std::string_view file = std::string_view(line->file).substr(line->file.find_last_of('/') + 1);
    return fmt::format("instruction {} ({}:{}: `{}`)", instruction, file, line->line, trim(line->source));
}

} // namespace loader_detail

// ---- object_spec ----

expected<object_spec> object_spec::open(const elf_object& elf) {
    object_spec spec;
    spec._name = loader_detail::object_name(elf.name());
    spec._license = elf.license();
    if (elf.core_relocation_count() != 0) {
        // Running with the compiler's field offsets instead of adapted ones would read the wrong bytes silently.
        return error{fmt::format("{}: .BTF.ext: the object carries {} CO-RE relocation(s) (BPF_CORE_READ, "
                                 "__builtin_preserve_access_index, vmlinux.h types); sluice does not apply CO-RE "
                                 "relocations yet: use the UAPI structs from <linux/*.h> instead",
                                 elf.name(), elf.core_relocation_count())};
    }
    auto maps = loader_detail::parse_maps(elf, spec._name);
    if (!maps) {
        return maps.error();
    }
    auto programs = loader_detail::link_programs(elf, *maps, spec._notes);
    if (!programs) {
        return programs.error();
    }
    if (programs->empty()) {
        return error{fmt::format("{}: no XDP program in the object: put each program in a section named \"xdp\" (or "
                                 "\"xdp.frags\", \"xdp/devmap\", \"xdp/cpumap\") with SEC(\"xdp\"), as a global "
                                 "function",
                                 elf.name())};
    }
    for (program_spec& program : *programs) {
        if (auto rewritten = loader_detail::rewrite_context(program); !rewritten) {
            return error{fmt::format("{}: {}", elf.name(), rewritten.error().message), rewritten.error().instruction};
        }
    }
    for (const loader_detail::map_value_relocation& value : maps->values) {
        map_spec& target = maps->maps[value.map_index];
        const program_spec* program = find_named(*programs, value.symbol_name);
        if (program == nullptr) {
            return error{fmt::format("{}: map '{}': slot {} of `values` names '{}', which is not a program of this "
                                     "object (programs are global functions in XDP sections)",
                                     elf.name(), target.name, value.slot, value.symbol_name)};
        }
        if (value.slot >= target.definition.max_entries) {
            return error{fmt::format("{}: map '{}': slot {} of `values` is past max_entries {}", elf.name(),
                                     target.name, value.slot, target.definition.max_entries)};
        }
        target.initial_programs.push_back(prog_array_slot{value.slot, value.symbol_name});
    }
    spec._maps = std::move(maps->maps);
    spec._rodata = std::move(maps->rodata);
    spec._programs = std::move(*programs);
    spec._notes.insert(spec._notes.end(), maps->notes.begin(), maps->notes.end());
    if (spec._license.empty()) {
        spec._notes.push_back("the object has no license section (char _license[] SEC(\"license\") = \"GPL\";): the "
                              "kernel would refuse GPL-only helpers to it");
    }
    return spec;
}

expected<object_spec> object_spec::open_file(const std::string& path) {
    auto elf = elf_object::open(path);
    if (!elf) {
        return elf.error();
    }
    return open(*elf);
}

const program_spec* object_spec::find_program(std::string_view name) const {
    return find_named(_programs, name);
}
const map_spec* object_spec::find_map(std::string_view name) const {
    return find_named(_maps, name);
}
std::optional<std::size_t> object_spec::map_index(std::string_view name) const {
    return index_named(_maps, name);
}

expected<void> object_spec::set_rodata(std::string_view variable, std::span<const std::byte> value) {
    const rodata_variable* found = find_named(_rodata, variable);
    if (found == nullptr) {
        std::string known;
        for (const rodata_variable& candidate : _rodata) {
            known += fmt::format("{}{}", known.empty() ? "" : ", ", candidate.name);
        }
        return error{fmt::format("{}: no read-only global variable '{}' (a `const volatile` global in .rodata); "
                                 "the object has: {}",
                                 _name, variable, known.empty() ? "none" : known)};
    }
    if (value.size() != found->size) {
        return error{fmt::format("{}: variable '{}' has {} byte{}; the new value has {}", _name, variable, found->size,
                                 found->size == 1 ? "" : "s", value.size())};
    }
    std::vector<std::byte>& bytes = _maps[found->map_index].initial_value;
    std::memcpy(bytes.data() + found->offset, value.data(), value.size());
    return {};
}

expected<void> object_spec::set_rodata(std::string_view assignment) {
    const std::size_t equals = assignment.find('=');
    if (equals == std::string_view::npos || equals == 0) {
        return error{fmt::format("'{}': expected NAME=VALUE", assignment)};
    }
    const std::string_view name = trim(assignment.substr(0, equals));
    const std::string_view text = trim(assignment.substr(equals + 1));
    const rodata_variable* found = find_named(_rodata, name);
    if (found == nullptr) {
        return set_rodata(name, {}); // for its message
    }
    const std::uint32_t size = found->size;
    if (size != 1 && size != 2 && size != 4 && size != 8) {
        return error{fmt::format("{}: variable '{}' has {} bytes: only integers of 1, 2, 4 or 8 bytes can be set "
                                 "as NAME=VALUE",
                                 _name, name, size)};
    }
    std::uint64_t bits = 0;
    if (text == "true" || text == "false") {
        bits = text == "true" ? 1 : 0;
    } else {
        const auto parsed = parse_integer(text);
        if (!parsed) {
            return error{fmt::format("{}: '{}' is not an integer (for variable '{}')", _name, text, name)};
        }
        const auto [negative, magnitude] = *parsed;
        const unsigned width = size * 8;
        const std::uint64_t unsigned_max =
            width == 64 ? std::numeric_limits<std::uint64_t>::max() : (std::uint64_t{1} << width) - 1;
        const std::uint64_t negative_limit = std::uint64_t{1} << (width - 1); // |most negative value|
        if ((!negative && magnitude > unsigned_max) || (negative && magnitude > negative_limit)) {
            return error{fmt::format("{}: {} does not fit variable '{}' ({} byte{})", _name, text, name, size,
                                     size == 1 ? "" : "s")};
        }
        bits = negative ? ~magnitude + 1 : magnitude;
    }
    std::vector<std::byte> bytes(size);
    for (std::uint32_t i = 0; i < size; ++i) {
        bytes[i] = static_cast<std::byte>(bits >> (8 * i)); // BPF objects are little-endian
    }
    return set_rodata(name, bytes);
}

expected<void> object_spec::set_prog_array_slot(std::string_view map, std::uint32_t index, std::string_view program) {
    const auto map_at = index_named(_maps, map);
    if (!map_at) {
        return error{fmt::format("{}: no map '{}'", _name, map)};
    }
    map_spec& target = _maps[*map_at];
    if (target.definition.type != map_type::prog_array) {
        return error{fmt::format("{}: map '{}' is not a prog array (BPF_MAP_TYPE_PROG_ARRAY)", _name, map)};
    }
    if (index >= target.definition.max_entries) {
        return error{fmt::format("{}: slot {} of map '{}' is past its max_entries {}", _name, index, map,
                                 target.definition.max_entries)};
    }
    if (find_named(_programs, program) == nullptr) {
        return error{fmt::format("{}: no program '{}' for slot {} of map '{}'", _name, program, index, map)};
    }
    std::erase_if(target.initial_programs, [&](const prog_array_slot& slot) { return slot.index == index; });
    target.initial_programs.push_back(prog_array_slot{index, std::string(program)});
    return {};
}

expected<void> object_spec::set_prog_array_slot(std::string_view assignment) {
    const std::size_t open = assignment.find('[');
    const std::size_t close = assignment.find(']');
    const std::size_t equals = assignment.find('=');
    if (open == std::string_view::npos || close == std::string_view::npos || equals == std::string_view::npos ||
        open == 0 || close < open || equals != close + 1) {
        return error{fmt::format("'{}': expected MAP[INDEX]=PROGRAM", assignment)};
    }
    const std::string_view index_text = assignment.substr(open + 1, close - open - 1);
    std::uint32_t index = 0;
    const auto [end, problem] = std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
    if (index_text.empty() || problem != std::errc{} || end != index_text.data() + index_text.size()) {
        return error{fmt::format("'{}': slot '{}' is not a number", assignment, index_text)};
    }
    return set_prog_array_slot(assignment.substr(0, open), index, assignment.substr(equals + 1));
}

expected<loaded_object> object_spec::load(const load_options& options) const {
    if (options.cpus == 0) {
        return error{fmt::format("{}: per-CPU maps need at least one cpu slot", _name)};
    }
    if (options.check_program) {
        for (const program_spec& program : _programs) {
            if (auto checked = options.check_program(program); !checked) {
                return error{fmt::format("{}: program '{}': {}", _name, program.name, checked.error().message),
                             checked.error().instruction};
            }
        }
    }
    loaded_object result;
    result._license = _license;
    result._notes = _notes;
    result._map_specs = _maps;
    for (const map_spec& spec : _maps) {
        auto created = create_map(spec.definition, options.cpus);
        if (!created) {
            return error{fmt::format("{}: {}", _name, created.error().message)};
        }
        map& made = **created;
        if (spec.origin == map_origin::global_data) {
            const std::uint32_t key = 0;
            if (const long failed = made.update_elem(&key, spec.initial_value.data(), update_flag::any); failed < 0) {
                return error{fmt::format("{}: map '{}': writing its initial contents failed ({})", _name, spec.name,
                                         std::strerror(static_cast<int>(-failed)))};
            }
            if (spec.read_only) {
                if (const long failed = made.freeze(); failed < 0) {
                    return error{fmt::format("{}: map '{}': freezing it failed ({})", _name, spec.name,
                                             std::strerror(static_cast<int>(-failed)))};
                }
            }
        }
        result._maps.push_back(std::move(*created));
    }
    std::vector<map*> addresses;
    for (const auto& made : result._maps) {
        addresses.push_back(made.get());
    }
    for (const program_spec& spec : _programs) {
        auto lowered = lower_map_references(spec.code, addresses);
        if (!lowered) {
            return error{fmt::format("{}: program '{}': {}", _name, spec.name, lowered.error().message),
                         lowered.error().instruction};
        }
        if (auto valid = validate(*lowered); !valid) {
            return error{fmt::format("{}: program '{}' after lowering: {}", _name, spec.name, valid.error().message),
                         valid.error().instruction};
        }
        auto program = std::make_unique<loaded_program>();
        program->name = spec.name;
        program->section = spec.section;
        program->kind = spec.kind;
        program->code = std::move(*lowered);
        program->relocated = spec.code;
        program->lines = spec.lines;
        program->functions = spec.functions;
        program->context_accesses = spec.context_accesses;
        result._programs.push_back(std::move(program));
    }
    // Prog arrays hold `const loaded_program*`; the control plane names programs by their index in programs().
    std::vector<const loaded_program*> handles;
    for (const auto& program : result._programs) {
        handles.push_back(program.get());
    }
    for (std::size_t m = 0; m < _maps.size(); ++m) {
        if (_maps[m].definition.type != map_type::prog_array) {
            continue;
        }
        auto* slots = dynamic_cast<prog_array_map*>(result._maps[m].get());
        if (slots == nullptr) {
            return error{fmt::format("{}: map '{}': the maps module made no prog array for it", _name, _maps[m].name)};
        }
        slots->set_resolver(
            [handles](std::uint32_t id) -> const void* { return id < handles.size() ? handles[id] : nullptr; },
            [handles](const void* program) -> std::uint32_t {
                const auto found = std::ranges::find(handles, program);
                return static_cast<std::uint32_t>(found - handles.begin());
            });
        for (const prog_array_slot& slot : _maps[m].initial_programs) {
            const auto found = std::ranges::find(handles, slot.program, &loaded_program::name);
            if (found == handles.end()) {
                return error{fmt::format("{}: map '{}': no program '{}' for slot {}", _name, _maps[m].name,
                                         slot.program, slot.index)};
            }
            if (const long failed = slots->set(slot.index, *found); failed < 0) {
                return error{fmt::format("{}: map '{}': setting slot {} to '{}' failed ({})", _name, _maps[m].name,
                                         slot.index, slot.program, std::strerror(static_cast<int>(-failed)))};
            }
        }
    }
    return result;
}

// ---- loaded_object ----

const loaded_program* loaded_object::find_program(std::string_view name) const {
    const auto found = std::ranges::find(_programs, name, [](const auto& program) { return program->name; });
    return found == _programs.end() ? nullptr : found->get();
}

std::optional<std::size_t> loaded_object::map_index(std::string_view name) const {
    return index_named(_map_specs, name);
}

map* loaded_object::find_map(std::string_view name) const {
    const auto index = map_index(name);
    return index ? _maps[*index].get() : nullptr;
}

} // namespace sluice::ebpf
