// `sluice disasm` against `llvm-objdump -d` on every compiled example: the same instructions, bytes and text.
//
// Normalised on both sides, and only this: runs of whitespace become one space (llvm-objdump separates ld_pseudo's
// operands with a tab) and a trailing jump label (` <LBB0_3>`, ` <xdp+0x80>`) is dropped, since labels depend on the
// symbols each tool chooses. Everything else must match character for character. Source lines and relocation lines
// are not instructions and are not compared.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

namespace {

struct listed_instruction {
    std::string bytes;
    std::string text;
};

/// (section, index) -> instruction, from llvm-objdump -d style output.
using listing = std::map<std::pair<std::string, std::size_t>, listed_instruction>;

std::string run(const std::string& command) {
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
    if (!pipe) {
        return {};
    }
    std::string output;
    std::array<char, 4096> buffer{};
    while (std::size_t count = std::fread(buffer.data(), 1, buffer.size(), pipe.get())) {
        output.append(buffer.data(), count);
    }
    return output;
}

std::string normalise(std::string text) {
    static const std::regex label{R"( <[^<>]*>$)"};
    static const std::regex spaces{R"(\s+)"};
    text = std::regex_replace(text, spaces, " ");
    while (!text.empty() && text.back() == ' ') {
        text.pop_back();
    }
    return std::regex_replace(text, label, "");
}

listing parse(const std::string& output) {
    static const std::regex section_line{R"(^Disassembly of section (.*):$)"};
    static const std::regex instruction_line{R"(^\s*(\d+):\t([0-9a-f ]+)\t(.*)$)"};
    listing result;
    std::string section;
    std::size_t start = 0;
    while (start < output.size()) {
        std::size_t end = output.find('\n', start);
        end = end == std::string::npos ? output.size() : end;
        const std::string line = output.substr(start, end - start);
        start = end + 1;
        std::smatch match;
        if (std::regex_match(line, match, section_line)) {
            section = match[1];
        } else if (std::regex_match(line, match, instruction_line)) {
            result[{section, std::stoul(match[1])}] = {normalise(match[2]), normalise(match[3])};
        }
    }
    return result;
}

std::vector<std::filesystem::path> example_objects() {
    std::vector<std::filesystem::path> objects;
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR)) {
        if (entry.path().extension() == ".o") {
            objects.push_back(entry.path());
        }
    }
    std::sort(objects.begin(), objects.end());
    return objects;
}

TEST(disasm_objdump, every_example_matches_llvm_objdump) {
    const std::string objdump = SLUICE_LLVM_OBJDUMP;
    if (objdump.empty() || !std::filesystem::exists(objdump)) {
        GTEST_SKIP() << "llvm-objdump not found at configure time: nothing to compare against";
    }
    const auto objects = example_objects();
    ASSERT_FALSE(objects.empty()) << "no compiled examples in " << SLUICE_EXAMPLES_DIR;
    std::size_t compared = 0;
    std::size_t differing = 0;
    for (const auto& object : objects) {
        const listing expected = parse(run(objdump + " -d '" + object.string() + "'"));
        const listing actual = parse(run(std::string(SLUICE_BINARY) + " disasm '" + object.string() + "'"));
        ASSERT_FALSE(expected.empty()) << object;
        EXPECT_EQ(actual.size(), expected.size()) << object << ": instruction counts differ";
        for (const auto& [where, want] : expected) {
            ++compared;
            const auto found = actual.find(where);
            const std::string got =
                found == actual.end() ? "(missing)" : found->second.bytes + " | " + found->second.text;
            if (found == actual.end() || found->second.bytes != want.bytes || found->second.text != want.text) {
                ++differing;
                ADD_FAILURE() << object.filename().string() << " section " << where.first << " instruction "
                              << where.second << ":\n  llvm-objdump: " << want.bytes << " | " << want.text
                              << "\n  sluice:       " << got;
            }
        }
    }
    std::cout << "compared " << compared << " instructions in " << objects.size() << " objects, " << differing
              << " differ\n";
    RecordProperty("instructions_compared", static_cast<int>(compared));
    RecordProperty("instructions_differing", static_cast<int>(differing));
}

TEST(disasm_objdump, source_lines_and_json) {
    const auto objects = example_objects();
    ASSERT_FALSE(objects.empty());
    const std::string object = std::string(SLUICE_EXAMPLES_DIR) + "/xdp_parse_count.o";
    const std::string text = run(std::string(SLUICE_BINARY) + " disasm '" + object + "'");
    EXPECT_NE(text.find("Disassembly of section xdp:"), std::string::npos);
    EXPECT_NE(text.find("0000000000000000 <xdp_parse_count>:"), std::string::npos);
    static const std::regex source_line{R"(\n;\s+\*proto = vlan->encapsulated_proto;\n)"};
    EXPECT_TRUE(std::regex_search(text, source_line)) << text;
    EXPECT_NE(text.find("R_BPF_64_64\tcounters"), std::string::npos);
    const std::string json = run(std::string(SLUICE_BINARY) + " disasm --json --section .text '" + object + "' 2>&1");
    EXPECT_NE(json.find("\"name\": \"skip_vlans\""), std::string::npos) << json;
    EXPECT_EQ(json.find("xdp_parse_count\""), std::string::npos) << "--section .text shows only .text";
    const std::string missing = run(std::string(SLUICE_BINARY) + " disasm --section nope '" + object + "' 2>&1");
    EXPECT_NE(missing.find("no code section named 'nope'"), std::string::npos) << missing;
}

} // namespace
