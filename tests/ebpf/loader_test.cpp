// The loader over objects compiled from tests/ebpf/data/*.c: programs by section, maps and their definitions, global
// data, .rodata overrides, relocated code, subprograms, line info, and malformed objects with their messages.
#include <elf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::ebpf {
namespace {

std::string fixture(std::string_view name) {
    return std::string(SLUICE_LOADER_DATA_DIR) + "/" + std::string(name);
}

object_spec open_fixture(std::string_view name) {
    auto spec = object_spec::open_file(fixture(name));
    EXPECT_TRUE(spec) << (spec ? "" : spec.error().message);
    if (!spec) {
        std::abort();
    }
    return std::move(spec).value();
}

std::vector<std::byte> read_bytes(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::vector<char> chars{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    std::vector<std::byte> bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

std::string open_error(std::span<const std::byte> bytes, std::string name = "crafted.o") {
    auto elf = elf_object::from_memory(bytes, std::move(name));
    if (!elf) {
        return elf.error().message;
    }
    auto spec = object_spec::open(*elf);
    return spec ? std::string("(opened)") : spec.error().message;
}

/// The instruction index of each lddw in `code` whose pseudo source is `source`.
std::vector<std::size_t> lddw_with(const std::vector<instruction>& code, std::uint8_t source) {
    std::vector<std::size_t> found;
    for (std::size_t pc = 0; pc < code.size(); ++pc) {
        if (code[pc].opcode == op::lddw) {
            if (code[pc].src == source) {
                found.push_back(pc);
            }
            ++pc;
        }
    }
    return found;
}

TEST(loader_sections, classify_section_follows_libbpf) {
    struct expectation {
        std::string_view name;
        std::optional<program_section> kind;
    };
    const expectation cases[] = {
        {"xdp", program_section{xdp_attach::device, false}},
        {"xdp.frags", program_section{xdp_attach::device, true}},
        {"xdp/devmap", program_section{xdp_attach::devmap, false}},
        {"xdp/cpumap", program_section{xdp_attach::cpumap, false}},
        {"xdp.frags/devmap", program_section{xdp_attach::devmap, true}},
        {"xdp.frags/cpumap", program_section{xdp_attach::cpumap, true}},
        {"xdp_devmap/prog", program_section{xdp_attach::devmap, false}},
        {"xdp_cpumap/prog", program_section{xdp_attach::cpumap, false}},
        {"xdp_filter", program_section{xdp_attach::device, false}},
        {"xdp/anything", program_section{xdp_attach::device, false}},
        {"tc", std::nullopt},
        {"kprobe/sys_open", std::nullopt},
        {".text", std::nullopt},
        {"xdpfoo", std::nullopt},
    };
    for (const expectation& c : cases) {
        const auto kind = classify_section(c.name);
        ASSERT_EQ(kind.has_value(), c.kind.has_value()) << c.name;
        if (kind) {
            EXPECT_EQ(kind->attach, c.kind->attach) << c.name;
            EXPECT_EQ(kind->frags, c.kind->frags) << c.name;
        }
    }
}

TEST(loader_sections, every_global_function_of_every_xdp_section_is_a_program) {
    const object_spec spec = open_fixture("loader_maps.o");
    EXPECT_EQ(spec.name(), "loader_maps");
    EXPECT_EQ(spec.license(), "GPL");
    struct expectation {
        std::string_view name, section;
        xdp_attach attach;
        bool frags;
    };
    const expectation expected[] = {
        {"xdp_tail_target", "xdp", xdp_attach::device, false},
        {"xdp_main", "xdp", xdp_attach::device, false},
        {"xdp_frags_prog", "xdp.frags", xdp_attach::device, true},
        {"xdp_devmap_prog", "xdp/devmap", xdp_attach::devmap, false},
        {"xdp_cpumap_prog", "xdp/cpumap", xdp_attach::cpumap, false},
        {"xdp_frags_devmap_prog", "xdp.frags/devmap", xdp_attach::devmap, true},
        {"xdp_legacy_prog", "xdp_legacy_name", xdp_attach::device, false},
    };
    ASSERT_EQ(spec.programs().size(), std::size(expected));
    for (const expectation& e : expected) {
        const program_spec* program = spec.find_program(e.name);
        ASSERT_NE(program, nullptr) << e.name;
        EXPECT_EQ(program->section, e.section);
        EXPECT_EQ(program->kind.attach, e.attach) << e.name;
        EXPECT_EQ(program->kind.frags, e.frags) << e.name;
        ASSERT_FALSE(program->functions.empty());
        EXPECT_EQ(program->functions[0].name, e.name);
        EXPECT_EQ(program->functions[0].first, 0U);
    }
    // Two programs share section "xdp": each gets only its own function.
    EXPECT_EQ(spec.find_program("xdp_tail_target")->code.size(), 2U);
}

TEST(loader_maps, btf_definitions_with_sizes_and_types) {
    const object_spec spec = open_fixture("loader_maps.o");
    const map_spec* flows = spec.find_map("flows");
    ASSERT_NE(flows, nullptr);
    EXPECT_EQ(flows->origin, map_origin::btf);
    EXPECT_EQ(flows->section, ".maps");
    EXPECT_EQ(flows->definition.type, map_type::hash);
    EXPECT_EQ(flows->definition.key_size, 12U);
    EXPECT_EQ(flows->definition.value_size, 16U);
    EXPECT_EQ(flows->definition.max_entries, 1024U);
    EXPECT_NE(flows->key_type_id, 0U);
    EXPECT_NE(flows->value_type_id, 0U);
    EXPECT_EQ(flows->definition.name, "flows");

    const map_spec* counters = spec.find_map("counters");
    ASSERT_NE(counters, nullptr);
    EXPECT_EQ(counters->definition.type, map_type::array);
    EXPECT_EQ(counters->definition.key_size, 4U);
    EXPECT_EQ(counters->definition.value_size, 8U);
    EXPECT_EQ(counters->definition.max_entries, 16U);
    EXPECT_EQ(counters->key_type_id, 0U); // sizes given, not types

    const map_spec* per_cpu = spec.find_map("per_cpu_stats");
    ASSERT_NE(per_cpu, nullptr);
    EXPECT_EQ(per_cpu->definition.type, map_type::percpu_array);
    EXPECT_EQ(per_cpu->definition.value_size, 16U);

    const map_spec* recent = spec.find_map("recent");
    ASSERT_NE(recent, nullptr);
    EXPECT_EQ(recent->definition.type, map_type::lru_hash);
    EXPECT_EQ(recent->definition.map_flags, map_flag::no_common_lru);
    EXPECT_EQ(recent->definition.key_size, 8U);
    EXPECT_EQ(recent->definition.value_size, 4U);

    const map_spec* jump_table = spec.find_map("jump_table");
    ASSERT_NE(jump_table, nullptr);
    EXPECT_EQ(jump_table->definition.type, map_type::prog_array);
    EXPECT_EQ(jump_table->definition.key_size, 4U);
    EXPECT_EQ(jump_table->definition.value_size, 4U);
    ASSERT_EQ(jump_table->initial_programs.size(), 1U);
    EXPECT_EQ(jump_table->initial_programs[0].index, 2U);
    EXPECT_EQ(jump_table->initial_programs[0].program, "xdp_tail_target");
}

TEST(loader_maps, global_data_sections_are_single_entry_arrays) {
    const object_spec spec = open_fixture("loader_maps.o");
    const map_spec* rodata = spec.find_map(".rodata");
    ASSERT_NE(rodata, nullptr);
    EXPECT_EQ(rodata->origin, map_origin::global_data);
    EXPECT_TRUE(rodata->read_only);
    EXPECT_EQ(rodata->kernel_name, "loader_m.rodata"); // libbpf's internal name: 8 characters of the object name
    EXPECT_EQ(rodata->definition.type, map_type::array);
    EXPECT_EQ(rodata->definition.key_size, 4U);
    EXPECT_EQ(rodata->definition.max_entries, 1U);
    EXPECT_EQ(rodata->definition.value_size, rodata->initial_value.size());
    EXPECT_NE(rodata->definition.map_flags & map_flag::rdonly_prog, 0U);

    ASSERT_EQ(spec.rodata_variables().size(), 2U);
    const rodata_variable& rate_limit = spec.rodata_variables()[0];
    EXPECT_EQ(rate_limit.name, "rate_limit");
    EXPECT_EQ(rate_limit.size, 4U);
    std::uint32_t initial = 0;
    std::memcpy(&initial, rodata->initial_value.data() + rate_limit.offset, 4);
    EXPECT_EQ(initial, 100U);
    EXPECT_EQ(spec.rodata_variables()[1].name, "verbose");
    EXPECT_EQ(spec.rodata_variables()[1].size, 1U);

    const map_spec* data = spec.find_map(".data");
    ASSERT_NE(data, nullptr);
    EXPECT_FALSE(data->read_only);
    EXPECT_EQ(data->definition.map_flags & map_flag::rdonly_prog, 0U);
    ASSERT_EQ(data->initial_value.size(), 8U);
    std::uint64_t packets_seen = 0;
    std::memcpy(&packets_seen, data->initial_value.data(), 8);
    EXPECT_EQ(packets_seen, 7U);

    const map_spec* bss = spec.find_map(".bss");
    ASSERT_NE(bss, nullptr);
    EXPECT_EQ(bss->kernel_name, "loader_m.bss");
    EXPECT_EQ(bss->initial_value, std::vector<std::byte>(4, std::byte{0}));

    const map_spec* custom = spec.find_map(".data.custom");
    ASSERT_NE(custom, nullptr);
    EXPECT_EQ(custom->kernel_name, ".data.custom"); // custom sections stand alone, as in libbpf
    std::uint32_t custom_value = 0;
    std::memcpy(&custom_value, custom->initial_value.data(), 4);
    EXPECT_EQ(custom_value, 42U);

    // Map order: BTF maps first, then global data by section.
    ASSERT_TRUE(spec.map_index("jump_table") && spec.map_index(".rodata"));
    EXPECT_LT(*spec.map_index("jump_table"), *spec.map_index(".rodata"));
}

TEST(loader_maps, legacy_maps_section) {
    const object_spec spec = open_fixture("loader_legacy_maps.o");
    ASSERT_EQ(spec.maps().size(), 2U);
    const map_spec* counters = spec.find_map("legacy_counters");
    ASSERT_NE(counters, nullptr);
    EXPECT_EQ(counters->origin, map_origin::legacy);
    EXPECT_EQ(counters->definition.type, map_type::array);
    EXPECT_EQ(counters->definition.key_size, 4U);
    EXPECT_EQ(counters->definition.value_size, 8U);
    EXPECT_EQ(counters->definition.max_entries, 8U);
    const map_spec* hash = spec.find_map("legacy_hash");
    ASSERT_NE(hash, nullptr);
    EXPECT_EQ(hash->definition.type, map_type::hash);
    EXPECT_EQ(hash->definition.max_entries, 64U);

    const program_spec& program = spec.programs().at(0);
    const auto maps = lddw_with(program.code, op::pseudo_map_idx);
    ASSERT_EQ(maps.size(), 2U);
    EXPECT_EQ(static_cast<std::size_t>(program.code[maps[0]].imm), *spec.map_index("legacy_counters"));
    EXPECT_EQ(static_cast<std::size_t>(program.code[maps[1]].imm), *spec.map_index("legacy_hash"));

    // No license section: loading works, with a note.
    EXPECT_TRUE(spec.license().empty());
    ASSERT_FALSE(spec.notes().empty());
    EXPECT_NE(spec.notes().back().find("license"), std::string::npos);
}

TEST(loader_relocations, map_and_global_data_references_become_pseudo_sources) {
    const object_spec spec = open_fixture("loader_maps.o");
    const program_spec* main = spec.find_program("xdp_main");
    ASSERT_NE(main, nullptr);
    const auto maps = lddw_with(main->code, op::pseudo_map_idx);
    ASSERT_EQ(maps.size(), 2U); // counters, jump_table
    EXPECT_EQ(static_cast<std::size_t>(main->code[maps[0]].imm), *spec.map_index("counters"));
    EXPECT_EQ(static_cast<std::size_t>(main->code[maps[1]].imm), *spec.map_index("jump_table"));
    EXPECT_EQ(main->code[maps[0] + 1].imm, 0);

    // Globals: (map, offset in the section) in program order — rate_limit, packets_seen, custom_counter, verbose,
    // drops.
    const auto values = lddw_with(main->code, op::pseudo_map_idx_value);
    ASSERT_EQ(values.size(), 5U);
    auto reference = [&](std::size_t i) {
        return std::make_pair(static_cast<std::size_t>(main->code[values[i]].imm), main->code[values[i] + 1].imm);
    };
    const std::size_t rodata = *spec.map_index(".rodata");
    const auto variable_offset = [&](std::string_view name) {
        for (const rodata_variable& variable : spec.rodata_variables()) {
            if (variable.name == name) {
                return static_cast<std::int32_t>(variable.offset);
            }
        }
        return -1;
    };
    EXPECT_EQ(reference(0), std::make_pair(rodata, variable_offset("rate_limit")));
    EXPECT_EQ(reference(1), std::make_pair(*spec.map_index(".data"), 0));
    EXPECT_EQ(reference(2), std::make_pair(*spec.map_index(".data.custom"), 0));
    EXPECT_EQ(reference(3), std::make_pair(rodata, variable_offset("verbose")));
    EXPECT_EQ(reference(4), std::make_pair(*spec.map_index(".bss"), 0));
}

/// Where each local call and function address of `program` lands, by function name.
std::vector<std::string> call_targets(const program_spec& program) {
    std::vector<std::string> names;
    for (std::size_t pc = 0; pc < program.code.size(); ++pc) {
        const instruction& insn = program.code[pc];
        const bool call = insn.opcode == op::call && insn.src == op::call_local;
        const bool address = insn.opcode == op::lddw && insn.src == op::pseudo_func;
        if (call || address) {
            const std::size_t target = pc + 1 + static_cast<std::size_t>(static_cast<std::ptrdiff_t>(insn.imm));
            std::string name = "(not a function start)";
            for (const program_function& function : program.functions) {
                if (function.first == target) {
                    name = function.name;
                }
            }
            names.push_back((address ? "&" : "") + name);
        }
        if (insn.opcode == op::lddw) {
            ++pc;
        }
    }
    return names;
}

TEST(loader_relocations, subprograms_are_appended_once_and_calls_land_on_them) {
    const object_spec spec = open_fixture("loader_calls.o");
    const program_spec* calls = spec.find_program("xdp_calls");
    ASSERT_NE(calls, nullptr);
    // The callback's address comes first in the code, then the global .text function, then the static one.
    const std::vector<std::string> expected_targets{"&loop_step", "packet_length", "add_one"};
    EXPECT_EQ(call_targets(*calls), expected_targets);
    std::vector<std::string> functions;
    std::size_t total = 0;
    for (const program_function& function : calls->functions) {
        functions.push_back(function.name);
        EXPECT_EQ(function.first, total);
        total += function.count;
    }
    EXPECT_EQ(functions, (std::vector<std::string>{"xdp_calls", "loop_step", "packet_length", "add_one"}));
    EXPECT_EQ(total, calls->code.size());

    const program_spec* again = spec.find_program("xdp_calls_again");
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(call_targets(*again), std::vector<std::string>{"packet_length"});
    ASSERT_EQ(again->functions.size(), 2U); // add_one and loop_step are not called from here
    EXPECT_EQ(again->functions[1].name, "packet_length");

    // The loop total is .bss, referenced from the main program.
    const auto values = lddw_with(calls->code, op::pseudo_map_idx_value);
    ASSERT_EQ(values.size(), 1U);
    EXPECT_EQ(static_cast<std::size_t>(calls->code[values[0]].imm), *spec.map_index(".bss"));
}

TEST(loader_relocations, static_variable_through_the_section_symbol) {
    // `static_hits` is at byte 8 of .bss; clang names the section and leaves 8 in the instruction.
    const object_spec spec = open_fixture("loader_calls.o");
    const program_spec* again = spec.find_program("xdp_calls_again");
    const auto values = lddw_with(again->code, op::pseudo_map_idx_value);
    ASSERT_EQ(values.size(), 1U);
    EXPECT_EQ(static_cast<std::size_t>(again->code[values[0]].imm), *spec.map_index(".bss"));
    EXPECT_EQ(again->code[values[0] + 1].imm, 8);
}

TEST(loader_maps, pinning_is_ignored_with_a_note) {
    const object_spec spec = open_fixture("loader_maps.o");
    const auto note = std::ranges::find_if(
        spec.notes(), [](const std::string& text) { return text.starts_with("map 'recent': pinning is ignored"); });
    EXPECT_NE(note, spec.notes().end());
}

#ifdef SLUICE_EXAMPLES_DIR
TEST(loader_load, every_example_loads) {
    std::size_t count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR)) {
        if (entry.path().extension() != ".o") {
            continue;
        }
        auto spec = object_spec::open_file(entry.path().string());
        ASSERT_TRUE(spec) << spec.error().message;
        auto loaded = spec->load();
        ASSERT_TRUE(loaded) << loaded.error().message;
        EXPECT_FALSE(loaded->programs().empty());
        ++count;
    }
    EXPECT_GT(count, 0U);
}
#endif

TEST(loader_relocations, static_function_in_the_program_section) {
    const object_spec spec = open_fixture("loader_same_section.o");
    ASSERT_EQ(spec.programs().size(), 1U); // `twice` is static: a subprogram, not a program
    const program_spec& program = spec.programs()[0];
    EXPECT_EQ(call_targets(program), std::vector<std::string>{"twice"});
    // `twice` reads ctx->rx_queue_index through the r1 its caller passed.
    ASSERT_EQ(program.context_accesses.size(), 1U);
    EXPECT_EQ(program.context_accesses[0].field, xdp_md_field::rx_queue_index);
    EXPECT_GE(program.context_accesses[0].instruction, program.functions.at(1).first);
}

TEST(loader_relocations, line_info_follows_the_appended_code) {
    const object_spec spec = open_fixture("loader_calls.o");
    for (const program_spec& program : spec.programs()) {
        ASSERT_FALSE(program.lines.empty()) << program.name;
        for (std::size_t i = 0; i < program.lines.size(); ++i) {
            EXPECT_LT(program.lines[i].instruction, program.code.size());
            if (i > 0) {
                EXPECT_LE(program.lines[i - 1].instruction, program.lines[i].instruction);
            }
        }
    }
    const program_spec* again = spec.find_program("xdp_calls_again");
    const program_function& length = again->functions.at(1);
    bool found = false;
    for (std::size_t pc = length.first; pc < length.first + length.count; ++pc) {
        const line_info* line = again->line_at(pc);
        ASSERT_NE(line, nullptr);
        found |= line->source.find("ctx->data_end - ctx->data") != std::string::npos;
    }
    EXPECT_TRUE(found) << "the appended packet_length has no line info of its own source";
}

TEST(loader_context, every_field_is_rewritten_to_the_xdp_context) {
    const object_spec spec = open_fixture("loader_calls.o");
    const program_spec* fields = spec.find_program("xdp_fields");
    ASSERT_NE(fields, nullptr);
    struct expectation {
        std::uint8_t opcode;
        std::size_t offset;
    };
    const std::map<xdp_md_field, expectation> expected{
        {xdp_md_field::data, {op::cls_ldx | op::size_dw | op::mode_mem, xdp_context_data_offset}},
        {xdp_md_field::data_end, {op::cls_ldx | op::size_dw | op::mode_mem, xdp_context_data_end_offset}},
        {xdp_md_field::data_meta, {op::cls_ldx | op::size_dw | op::mode_mem, xdp_context_data_meta_offset}},
        {xdp_md_field::ingress_ifindex, {op::cls_ldx | op::size_w | op::mode_mem, xdp_context_ingress_ifindex_offset}},
        {xdp_md_field::rx_queue_index, {op::cls_ldx | op::size_w | op::mode_mem, xdp_context_rx_queue_index_offset}},
        {xdp_md_field::egress_ifindex, {op::cls_ldx | op::size_w | op::mode_mem, xdp_context_egress_ifindex_offset}},
    };
    ASSERT_EQ(fields->context_accesses.size(), expected.size());
    std::set<xdp_md_field> seen;
    for (const context_access& access : fields->context_accesses) {
        const instruction& insn = fields->code.at(access.instruction);
        const expectation& e = expected.at(access.field);
        EXPECT_EQ(insn.opcode, e.opcode) << to_string(access.field);
        EXPECT_EQ(static_cast<std::size_t>(insn.offset), e.offset) << to_string(access.field);
        EXPECT_EQ(insn.src, 1) << to_string(access.field); // still through r1, the context
        seen.insert(access.field);
    }
    EXPECT_EQ(seen.size(), expected.size());
}

TEST(loader_context, spilled_context_and_subprogram_arguments_are_followed) {
    const object_spec spec = open_fixture("loader_calls.o");
    const program_spec* spill = spec.find_program("xdp_spill");
    ASSERT_EQ(spill->context_accesses.size(), 1U);
    EXPECT_EQ(spill->context_accesses[0].field, xdp_md_field::rx_queue_index);
    const instruction& read = spill->code[spill->context_accesses[0].instruction];
    EXPECT_NE(read.src, 1); // through the register filled from the stack
    EXPECT_EQ(static_cast<std::size_t>(read.offset), xdp_context_rx_queue_index_offset);

    // packet_length reads data and data_end through the ctx its callers pass in r1; the bpf_loop callback's
    // loads through its own argument are left alone.
    for (std::string_view name : {"xdp_calls", "xdp_calls_again"}) {
        const program_spec* program = spec.find_program(name);
        std::set<xdp_md_field> fields;
        for (const context_access& access : program->context_accesses) {
            fields.insert(access.field);
        }
        EXPECT_EQ(fields, (std::set<xdp_md_field>{xdp_md_field::data, xdp_md_field::data_end})) << name;
    }
}

TEST(loader_rodata, override_by_name_and_by_assignment) {
    object_spec spec = open_fixture("loader_maps.o");
    const std::uint32_t limit = 250;
    ASSERT_TRUE(spec.set_rodata("rate_limit", std::as_bytes(std::span(&limit, 1))));
    const map_spec* rodata = spec.find_map(".rodata");
    std::uint32_t stored = 0;
    std::memcpy(&stored, rodata->initial_value.data() + spec.rodata_variables()[0].offset, 4);
    EXPECT_EQ(stored, 250U);

    ASSERT_TRUE(spec.set_rodata("rate_limit=0x10000"));
    std::memcpy(&stored, rodata->initial_value.data() + spec.rodata_variables()[0].offset, 4);
    EXPECT_EQ(stored, 0x10000U);
    ASSERT_TRUE(spec.set_rodata("verbose=true"));
    EXPECT_EQ(rodata->initial_value[spec.rodata_variables()[1].offset], std::byte{1});
    ASSERT_TRUE(spec.set_rodata("verbose=-1"));
    EXPECT_EQ(rodata->initial_value[spec.rodata_variables()[1].offset], std::byte{0xff});

    const std::uint16_t short_value = 1;
    auto wrong_size = spec.set_rodata("rate_limit", std::as_bytes(std::span(&short_value, 1)));
    ASSERT_FALSE(wrong_size);
    EXPECT_EQ(wrong_size.error().message, "loader_maps: variable 'rate_limit' has 4 bytes; the new value has 2");

    auto too_big = spec.set_rodata("verbose=256");
    ASSERT_FALSE(too_big);
    EXPECT_EQ(too_big.error().message, "loader_maps: 256 does not fit variable 'verbose' (1 byte)");
    auto not_number = spec.set_rodata("rate_limit=fast");
    ASSERT_FALSE(not_number);
    EXPECT_EQ(not_number.error().message, "loader_maps: 'fast' is not an integer (for variable 'rate_limit')");
    auto unknown = spec.set_rodata("burst=3");
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.error().message.find("no read-only global variable 'burst'"), std::string::npos);
    EXPECT_NE(unknown.error().message.find("rate_limit, verbose"), std::string::npos);
    EXPECT_FALSE(spec.set_rodata("no_equals_sign"));

    // Loaded: the .rodata map holds the new value, and it is frozen.
    auto loaded = spec.load();
    ASSERT_TRUE(loaded) << loaded.error().message;
    map* map = loaded->find_map(".rodata");
    ASSERT_NE(map, nullptr);
    std::vector<std::byte> value(map->value_size());
    const std::uint32_t key = 0;
    ASSERT_EQ(map->lookup_elem(&key, value.data()), 0);
    std::memcpy(&stored, value.data() + spec.rodata_variables()[0].offset, 4);
    EXPECT_EQ(stored, 0x10000U);
    EXPECT_TRUE(map->frozen());
    EXPECT_TRUE(map->is_constant_for_programs());
}

TEST(loader_prog_array, slots_from_values_and_by_name) {
    object_spec spec = open_fixture("loader_maps.o");
    ASSERT_TRUE(spec.set_prog_array_slot("jump_table[0]=xdp_legacy_prog"));
    auto bad_program = spec.set_prog_array_slot("jump_table[1]=nope");
    ASSERT_FALSE(bad_program);
    EXPECT_EQ(bad_program.error().message, "loader_maps: no program 'nope' for slot 1 of map 'jump_table'");
    auto bad_slot = spec.set_prog_array_slot("jump_table", 4, "xdp_main");
    ASSERT_FALSE(bad_slot);
    EXPECT_EQ(bad_slot.error().message, "loader_maps: slot 4 of map 'jump_table' is past its max_entries 4");
    auto not_prog_array = spec.set_prog_array_slot("flows[0]=xdp_main");
    ASSERT_FALSE(not_prog_array);
    EXPECT_EQ(not_prog_array.error().message, "loader_maps: map 'flows' is not a prog array (BPF_MAP_TYPE_PROG_ARRAY)");
    EXPECT_FALSE(spec.set_prog_array_slot("jump_table[x]=xdp_main"));

    auto loaded = spec.load();
    ASSERT_TRUE(loaded) << loaded.error().message;
    auto* table = dynamic_cast<prog_array_map*>(loaded->find_map("jump_table"));
    ASSERT_NE(table, nullptr);
    EXPECT_EQ(table->program(0), loaded->find_program("xdp_legacy_prog"));
    EXPECT_EQ(table->program(1), nullptr);
    EXPECT_EQ(table->program(2), loaded->find_program("xdp_tail_target"));
}

TEST(loader_load, maps_are_created_and_code_is_lowered_to_addresses) {
    const object_spec spec = open_fixture("loader_maps.o");
    auto loaded = spec.load(load_options{.cpus = 3, .check_program = {}});
    ASSERT_TRUE(loaded) << loaded.error().message;
    ASSERT_EQ(loaded->maps().size(), spec.maps().size());
    EXPECT_EQ(loaded->find_map("per_cpu_stats")->cpus(), 3U);
    EXPECT_EQ(loaded->find_map("flows")->type(), map_type::hash);

    const loaded_program* main = loaded->find_program("xdp_main");
    ASSERT_NE(main, nullptr);
    EXPECT_EQ(main->code.size(), main->relocated.size());
    EXPECT_TRUE(lddw_with(main->code, op::pseudo_map_idx).empty());
    EXPECT_TRUE(lddw_with(main->code, op::pseudo_map_idx_value).empty());
    auto address = [&](std::size_t pc) {
        return static_cast<std::uint64_t>(static_cast<std::uint32_t>(main->code[pc].imm)) |
               static_cast<std::uint64_t>(static_cast<std::uint32_t>(main->code[pc + 1].imm)) << 32;
    };
    const std::size_t counters_at = lddw_with(main->relocated, op::pseudo_map_idx)[0];
    EXPECT_EQ(address(counters_at), reinterpret_cast<std::uintptr_t>(loaded->find_map("counters")));
    const std::size_t verbose_at = lddw_with(main->relocated, op::pseudo_map_idx_value)[3];
    const std::uint32_t key = 0;
    auto* rodata = static_cast<std::byte*>(loaded->find_map(".rodata")->lookup(&key, 0));
    EXPECT_EQ(address(verbose_at), reinterpret_cast<std::uintptr_t>(
                                       rodata + static_cast<std::uint32_t>(main->relocated[verbose_at + 1].imm)));
    EXPECT_EQ(*reinterpret_cast<std::uint8_t*>(address(verbose_at)), 0); // verbose's initial value

    // The helpers module's hook sees every program and can refuse one.
    auto refused =
        spec.load(load_options{.cpus = 1, .check_program = [](const program_spec& program) -> expected<void> {
                                   if (program.name == "xdp_cpumap_prog") {
                                       return error{"helper 1 is not available"};
                                   }
                                   return {};
                               }});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().message, "loader_maps: program 'xdp_cpumap_prog': helper 1 is not available");
}

// ---- malformed objects ----

TEST(loader_errors, truncated_elf) {
    const std::vector<std::byte> bytes = read_bytes(fixture("loader_maps.o"));
    const std::string message = open_error(std::span(bytes).first(200));
    EXPECT_NE(message.find("crafted.o"), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST(loader_errors, object_without_program) {
    auto spec = object_spec::open_file(fixture("loader_no_program.o"));
    ASSERT_FALSE(spec);
    EXPECT_NE(spec.error().message.find("loader_no_program.o: no XDP program in the object"), std::string::npos)
        << spec.error().message;
}

TEST(loader_errors, extern_variable) {
    auto spec = object_spec::open_file(fixture("loader_extern.o"));
    ASSERT_FALSE(spec);
    EXPECT_NE(spec.error().message.find("program 'xdp_extern': section 'xdp', instruction 0: 'CONFIG_HZ' is an "
                                        "extern"),
              std::string::npos)
        << spec.error().message;
}

TEST(loader_errors, core_relocations_are_refused_not_ignored) {
    auto elf = elf_object::open(fixture("loader_core.o"));
    ASSERT_TRUE(elf) << elf.error().message;
    EXPECT_EQ(elf->core_relocation_count(), 1U);
    auto spec = object_spec::open(*elf);
    ASSERT_FALSE(spec);
    EXPECT_NE(spec.error().message.find("carries 1 CO-RE relocation(s)"), std::string::npos) << spec.error().message;
}

TEST(loader_errors, inner_map_of_map_in_map) {
    auto spec = object_spec::open_file(fixture("loader_map_in_map.o"));
    ASSERT_FALSE(spec);
    EXPECT_NE(spec.error().message.find("map 'outer': maps of maps"), std::string::npos) << spec.error().message;
}

/// Edits an ELF object in memory: the symbol table and the relocations of one section.
class elf_editor {
public:
    explicit elf_editor(std::vector<std::byte> bytes) : _bytes(std::move(bytes)) {
        std::memcpy(&_header, _bytes.data(), sizeof(_header));
    }

    Elf64_Shdr section(std::size_t index) const {
        Elf64_Shdr header{};
        std::memcpy(&header, _bytes.data() + _header.e_shoff + index * sizeof(Elf64_Shdr), sizeof(header));
        return header;
    }

    std::size_t section_named(std::string_view name) const {
        const Elf64_Shdr names = section(_header.e_shstrndx);
        for (std::size_t i = 0; i < _header.e_shnum; ++i) {
            const char* text = reinterpret_cast<const char*>(_bytes.data() + names.sh_offset + section(i).sh_name);
            if (name == text) {
                return i;
            }
        }
        return 0;
    }

    /// Index and a pointer to the symbol named `name`.
    std::pair<std::size_t, Elf64_Sym*> symbol(std::string_view name) {
        const Elf64_Shdr table = section(section_named(".symtab"));
        const Elf64_Shdr strings = section(table.sh_link);
        for (std::size_t i = 0; i < table.sh_size / sizeof(Elf64_Sym); ++i) {
            auto* entry = reinterpret_cast<Elf64_Sym*>(_bytes.data() + table.sh_offset + i * sizeof(Elf64_Sym));
            if (name == reinterpret_cast<const char*>(_bytes.data() + strings.sh_offset + entry->st_name)) {
                return {i, entry};
            }
        }
        return {0, nullptr};
    }

    /// The relocations of section `relocation_section`.
    std::span<Elf64_Rel> relocations(std::string_view relocation_section) {
        const Elf64_Shdr header = section(section_named(relocation_section));
        return {reinterpret_cast<Elf64_Rel*>(_bytes.data() + header.sh_offset), header.sh_size / sizeof(Elf64_Rel)};
    }

    const std::vector<std::byte>& bytes() const { return _bytes; }

private:
    std::vector<std::byte> _bytes;
    Elf64_Ehdr _header{};
};

TEST(loader_errors, relocation_to_a_missing_map) {
    // Turn label LBB1_2 into a symbol at byte 44 of .maps, between map definitions, and point the reference to
    // `counters` in xdp_main at it.
    elf_editor editor(read_bytes(fixture("loader_maps.o")));
    const auto [label_index, label] = editor.symbol("LBB1_2");
    const auto [counters_index, counters] = editor.symbol("counters");
    ASSERT_NE(label, nullptr);
    ASSERT_NE(counters, nullptr);
    label->st_shndx = counters->st_shndx;
    label->st_value = counters->st_value + 4;
    label->st_info = ELF64_ST_INFO(STB_GLOBAL, STT_OBJECT);
    bool patched = false;
    for (Elf64_Rel& relocation : editor.relocations(".relxdp")) {
        if (ELF64_R_SYM(relocation.r_info) == counters_index) {
            relocation.r_info = ELF64_R_INFO(label_index, ELF64_R_TYPE(relocation.r_info));
            patched = true;
        }
    }
    ASSERT_TRUE(patched);
    const std::string message = open_error(editor.bytes());
    EXPECT_EQ(message, "crafted.o: program 'xdp_main': section 'xdp', instruction 7: reference to 'LBB1_2' in section "
                       "'.maps', where no map is defined at byte 52");
}

TEST(loader_errors, relocation_outside_map_and_data_sections) {
    // The reference to `counters` now names `_license`, which lives in section "license".
    elf_editor editor(read_bytes(fixture("loader_maps.o")));
    const auto [license_index, license] = editor.symbol("_license");
    const auto [counters_index, counters] = editor.symbol("counters");
    ASSERT_NE(license, nullptr);
    for (Elf64_Rel& relocation : editor.relocations(".relxdp")) {
        if (ELF64_R_SYM(relocation.r_info) == counters_index) {
            relocation.r_info = ELF64_R_INFO(license_index, ELF64_R_TYPE(relocation.r_info));
        }
    }
    const std::string message = open_error(editor.bytes());
    EXPECT_NE(message.find("instruction 7: reference to '_license' in section 'license', which is neither a map "
                           "section"),
              std::string::npos)
        << message;
}

} // namespace
} // namespace sluice::ebpf
