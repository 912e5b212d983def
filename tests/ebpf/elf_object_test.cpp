// elf_object: what it reads from the compiled examples (sections, symbols, relocations, BTF line info), and the clear
// errors it gives for malformed objects, built at test time from the examples' own bytes.
#include "sluice/ebpf/elf_object.hpp"

#include <elf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace sluice::ebpf {
namespace {

const std::string examples_dir = SLUICE_EXAMPLES_DIR;
const std::string parse_count_path = examples_dir + "/xdp_parse_count.o";
const std::string pass_path = examples_dir + "/xdp_pass.o";

std::vector<std::byte> file_bytes(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    std::vector<char> chars{std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
    std::vector<std::byte> bytes(chars.size());
    std::memcpy(bytes.data(), chars.data(), chars.size());
    return bytes;
}

elf_object open_or_fail(const std::string& path) {
    auto object = elf_object::open(path);
    if (!object) {
        ADD_FAILURE() << object.error().message;
        return {};
    }
    return std::move(object.value());
}

std::string rejection(const std::vector<std::byte>& bytes, const std::string& name = "bad.o") {
    auto object = elf_object::from_memory(bytes, name);
    return object ? std::string{} : object.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The section header of `name` inside raw object bytes, to corrupt it in place.
Elf64_Shdr* raw_section_header(std::vector<std::byte>& bytes, const std::string& name) {
    Elf64_Ehdr header;
    std::memcpy(&header, bytes.data(), sizeof(header));
    auto* sections = reinterpret_cast<Elf64_Shdr*>(bytes.data() + header.e_shoff);
    const char* names = reinterpret_cast<const char*>(bytes.data() + sections[header.e_shstrndx].sh_offset);
    for (std::size_t i = 0; i < header.e_shnum; ++i) {
        if (name == names + sections[i].sh_name) {
            return &sections[i];
        }
    }
    return nullptr;
}

TEST(elf_object, lists_program_and_subprogram_sections) {
    const elf_object object = open_or_fail(parse_count_path);
    ASSERT_NE(object.find_code_section("xdp"), nullptr);
    ASSERT_NE(object.find_code_section(".text"), nullptr);
    EXPECT_TRUE(object.find_code_section("xdp")->is_program());
    EXPECT_FALSE(object.find_code_section(".text")->is_program());
    EXPECT_EQ(object.find_code_section(".BTF"), nullptr);
    EXPECT_EQ(object.name(), parse_count_path);
    EXPECT_EQ(object.license(), "GPL");
    EXPECT_NE(object.btf(), nullptr);
}

TEST(elf_object, finds_functions_with_offsets_and_sizes) {
    const elf_object object = open_or_fail(parse_count_path);
    const code_section* xdp = object.find_code_section("xdp");
    const code_section* text = object.find_code_section(".text");
    ASSERT_TRUE(xdp && text);
    ASSERT_EQ(xdp->functions.size(), 1U);
    EXPECT_EQ(xdp->functions[0].name, "xdp_parse_count");
    EXPECT_EQ(xdp->functions[0].offset, 0U);
    EXPECT_EQ(xdp->functions[0].size, xdp->instructions.size() * sizeof(instruction));
    EXPECT_TRUE(xdp->functions[0].global);
    ASSERT_EQ(text->functions.size(), 1U);
    EXPECT_EQ(text->functions[0].name, "skip_vlans");
    EXPECT_FALSE(text->functions[0].global);
    EXPECT_EQ(text->functions[0].size, text->instructions.size() * sizeof(instruction));
    // Instructions are the section's bytes: the program returns somewhere.
    EXPECT_TRUE(
        std::ranges::any_of(xdp->instructions, [](const instruction& insn) { return insn.opcode == op::exit; }));
}

TEST(elf_object, lists_relocations_of_maps_globals_and_calls) {
    const elf_object object = open_or_fail(parse_count_path);
    const code_section* xdp = object.find_code_section("xdp");
    ASSERT_NE(xdp, nullptr);
    ASSERT_FALSE(xdp->relocations.empty());
    EXPECT_TRUE(std::ranges::is_sorted(xdp->relocations, {}, &elf_relocation::offset));
    bool map = false;
    bool global = false;
    bool call = false;
    for (const elf_relocation& relocation : xdp->relocations) {
        const instruction& target = xdp->instructions.at(relocation.offset / sizeof(instruction));
        if (relocation.symbol_name == "counters") {
            map = true;
            EXPECT_EQ(relocation.type, R_BPF_64_64);
            EXPECT_EQ(relocation.symbol_section_name, ".maps");
            EXPECT_EQ(target.opcode, op::lddw);
        } else if (relocation.symbol_name == "drop_expired") {
            global = true;
            EXPECT_EQ(relocation.symbol_section_name, ".rodata");
            EXPECT_EQ(target.opcode, op::lddw);
        } else if (relocation.symbol_name == ".text") {
            call = true;
            EXPECT_EQ(relocation.type, R_BPF_64_32);
            EXPECT_EQ(relocation.symbol_type, STT_SECTION);
            EXPECT_EQ(target.opcode, op::call);
            EXPECT_EQ(target.src, op::call_local);
        }
        EXPECT_EQ(object.sections().at(relocation.symbol_section_index).name, relocation.symbol_section_name);
    }
    EXPECT_TRUE(map && global && call);
    EXPECT_TRUE(object.find_code_section(".text")->relocations.empty());
}

TEST(elf_object, reads_btf_line_info) {
    const elf_object object = open_or_fail(parse_count_path);
    for (const char* name : {"xdp", ".text"}) {
        const code_section* code = object.find_code_section(name);
        ASSERT_NE(code, nullptr);
        ASSERT_FALSE(code->lines.empty()) << name;
        EXPECT_EQ(code->lines.front().instruction, 0U) << name;
        for (const line_info& line : code->lines) {
            EXPECT_LT(line.instruction, code->instructions.size());
            EXPECT_TRUE(contains(line.file, "xdp_parse_count.c")) << line.file;
        }
        // clang adds records with line 0 for code of no particular line; the rest name real lines.
        EXPECT_TRUE(std::ranges::any_of(code->lines, [](const line_info& line) { return line.line > 0; }));
    }
    const code_section* xdp = object.find_code_section("xdp");
    EXPECT_TRUE(std::ranges::any_of(xdp->lines, [](const line_info& line) {
        return contains(line.source, "void* data_end = (void*)(long)ctx->data_end;");
    }));
    const code_section* text = object.find_code_section(".text");
    EXPECT_TRUE(std::ranges::any_of(text->lines, [](const line_info& line) {
        return contains(line.source, "*proto = vlan->encapsulated_proto;");
    }));
}

TEST(elf_object, minimal_program) {
    const elf_object object = open_or_fail(pass_path);
    const code_section* xdp = object.find_code_section("xdp");
    ASSERT_NE(xdp, nullptr);
    ASSERT_EQ(xdp->instructions.size(), 2U);
    EXPECT_EQ(xdp->instructions[0].opcode, op::cls_alu64 | op::alu_mov | op::src_k);
    EXPECT_EQ(xdp->instructions[0].imm, 2); // XDP_PASS
    EXPECT_TRUE(xdp->relocations.empty());
    ASSERT_EQ(xdp->functions.size(), 1U);
    EXPECT_EQ(xdp->functions[0].name, "xdp_pass");
    // clang always emits .text; here it is empty.
    const code_section* text = object.find_code_section(".text");
    ASSERT_NE(text, nullptr);
    EXPECT_TRUE(text->instructions.empty());
}

TEST(elf_object, from_memory_reads_what_open_reads) {
    const elf_object from_file = open_or_fail(parse_count_path);
    auto from_memory = elf_object::from_memory(file_bytes(parse_count_path), "copy.o");
    ASSERT_TRUE(from_memory) << from_memory.error().message;
    ASSERT_EQ(from_memory->code_sections().size(), from_file.code_sections().size());
    for (std::size_t i = 0; i < from_file.code_sections().size(); ++i) {
        EXPECT_EQ(from_memory->code_sections()[i].instructions, from_file.code_sections()[i].instructions);
        EXPECT_EQ(from_memory->code_sections()[i].lines.size(), from_file.code_sections()[i].lines.size());
    }
    EXPECT_EQ(from_memory->name(), "copy.o");
}

TEST(elf_object, missing_file_is_named) {
    auto object = elf_object::open(examples_dir + "/no_such_file.o");
    ASSERT_FALSE(object);
    EXPECT_TRUE(contains(object.error().message, "no_such_file.o: cannot open")) << object.error().message;
}

TEST(elf_object, rejects_what_is_not_elf) {
    EXPECT_EQ(rejection({}), "bad.o: not an ELF file");
    const std::string text = "int main() { return 0; }\n";
    std::vector<std::byte> bytes(text.size());
    std::memcpy(bytes.data(), text.data(), text.size());
    EXPECT_EQ(rejection(bytes), "bad.o: not an ELF file");
}

TEST(elf_object, rejects_truncated_files) {
    const auto whole = file_bytes(parse_count_path);
    const std::string short_header = rejection({whole.begin(), whole.begin() + 20});
    EXPECT_TRUE(contains(short_header, "bad.o: truncated ELF file")) << short_header;
    const std::string half = rejection({whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(whole.size() / 2)});
    EXPECT_TRUE(contains(half, "bad.o: truncated ELF file")) << half;
    // Every cut is an error, never a crash and never a silently partial object.
    for (std::size_t size = 0; size < whole.size(); size += 61) {
        EXPECT_NE(rejection({whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(size)}), "") << size;
    }
}

TEST(elf_object, rejects_other_machines) {
    auto bytes = file_bytes(pass_path);
    const std::uint16_t x86_64 = EM_X86_64;
    std::memcpy(bytes.data() + offsetof(Elf64_Ehdr, e_machine), &x86_64, sizeof(x86_64));
    const std::string message = rejection(bytes, "host.o");
    EXPECT_TRUE(contains(message, "host.o: not a BPF object")) << message;
    EXPECT_TRUE(contains(message, "x86-64")) << message;
}

TEST(elf_object, rejects_big_endian_and_32_bit_objects) {
    auto big = file_bytes(pass_path);
    big[EI_DATA] = std::byte{ELFDATA2MSB};
    EXPECT_NE(rejection(big), "");
    auto narrow = file_bytes(pass_path);
    narrow[EI_CLASS] = std::byte{ELFCLASS32};
    EXPECT_NE(rejection(narrow), "");
}

TEST(elf_object, rejects_code_section_of_partial_instructions) {
    auto bytes = file_bytes(pass_path);
    Elf64_Shdr* xdp = raw_section_header(bytes, "xdp");
    ASSERT_NE(xdp, nullptr);
    xdp->sh_size -= 3;
    EXPECT_EQ(rejection(bytes, "odd.o"), "odd.o: section 'xdp': size 13 is not a multiple of 8 (the instruction size)");
}

TEST(elf_object, rejects_section_past_the_end_of_the_file) {
    auto bytes = file_bytes(pass_path);
    Elf64_Shdr* xdp = raw_section_header(bytes, "xdp");
    ASSERT_NE(xdp, nullptr);
    xdp->sh_offset = bytes.size() - 8;
    xdp->sh_size = 64;
    const std::string message = rejection(bytes);
    EXPECT_TRUE(contains(message, "bad.o: section 'xdp': truncated ELF file")) << message;
}

TEST(elf_object, corrupted_bytes_never_crash) {
    // A small fuzz: every 5th byte of a real object flipped in turn. Any outcome but a crash is acceptable.
    const auto whole = file_bytes(parse_count_path);
    std::size_t rejected = 0;
    for (std::size_t at = 0; at < whole.size(); at += 5) {
        auto bytes = whole;
        bytes[at] ^= std::byte{0xff};
        if (!elf_object::from_memory(bytes, "fuzz.o")) {
            ++rejected;
        }
    }
    EXPECT_GT(rejected, 0U);
}

} // namespace
} // namespace sluice::ebpf
