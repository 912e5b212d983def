// The bpf_conformance suite through sluice's own runner: every .data file in SLUICE_CONFORMANCE_DIR, found at run
// time, is assembled, validated and run by the interpreter in checked mode, as PLUGIN.md describes the standard
// runner doing it. Files are read where they are, never copied into the repository.

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "conformance_data.hpp"
#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/conformance.hpp"

namespace {

using namespace sluice::ebpf;

// All 313 files of the suite, so that a moved or empty folder fails loudly instead of passing with zero tests.
constexpr std::size_t expected_file_count = 313;

// Generous for the suite's loops (prime.data runs the longest) yet stops a runaway program in well under a second.
constexpr std::uint64_t instruction_limit = 10'000'000;

std::vector<std::filesystem::path> conformance_files() {
    std::vector<std::filesystem::path> files;
    std::error_code failure;
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_CONFORMANCE_DIR, failure)) {
        if (entry.path().extension() == ".data") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string hex_words(const std::vector<instruction>& code) {
    std::string text;
    for (const instruction& ins : code) {
        std::uint64_t word = 0;
        static_assert(sizeof word == sizeof ins);
        std::memcpy(&word, &ins, sizeof word);
        text += fmt::format("{:#018x} ", word);
    }
    return text;
}

/// Runs one file; the empty string means it passed, anything else says why not.
std::string run_file(const std::filesystem::path& path) {
    const auto text = sluice::ebpf::testing::read_text_file(path.string());
    if (!text) {
        return "cannot read the file";
    }
    std::string problem;
    auto test = sluice::ebpf::testing::parse_conformance(*text, problem);
    if (!test) {
        return problem;
    }
    auto code = assemble(test->assembly);
    if (!code) {
        return "assembler: " + code.error().message;
    }
    if (!test->raw.empty()) {
        std::vector<std::uint64_t> words(code->size());
        std::memcpy(words.data(), code->data(), words.size() * sizeof(std::uint64_t));
        if (words != test->raw) {
            return "assembled encoding differs from -- raw: " + hex_words(*code);
        }
    }

    std::vector<std::uint8_t> memory = test->memory; // private and writable, as the runner's copy
    const auto outcome = run_conformance_program(*code, memory, instruction_limit);

    if (test->error) {
        if (outcome) {
            return fmt::format("expected error '{}', got r0 = {:#x}", *test->error, outcome.value());
        }
        return outcome.error().message == *test->error
                   ? std::string{}
                   : fmt::format("expected error '{}', got '{}'", *test->error, outcome.error().message);
    }
    if (!outcome) {
        return "error: " + outcome.error().message;
    }
    if (outcome.value() != *test->result) {
        return fmt::format("r0 = {:#x}, expected {:#x}", outcome.value(), *test->result);
    }
    return {};
}

class conformance : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(conformance, runs_as_expected) {
    const std::string failure = run_file(GetParam());
    EXPECT_TRUE(failure.empty()) << GetParam().filename().string() << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(files, conformance, ::testing::ValuesIn(conformance_files()),
                         [](const ::testing::TestParamInfo<std::filesystem::path>& file) {
                             std::string name = file.param.stem().string();
                             std::replace_if(
                                 name.begin(), name.end(),
                                 [](char c) { return std::isalnum(static_cast<unsigned char>(c)) == 0; }, '_');
                             return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(conformance);

TEST(conformance_suite, every_file_is_found_and_passes) {
    const auto files = conformance_files();
    ASSERT_EQ(files.size(), expected_file_count) << "in " << SLUICE_CONFORMANCE_DIR;
    std::size_t passed = 0;
    std::string failures;
    for (const auto& path : files) {
        const std::string failure = run_file(path);
        if (failure.empty()) {
            ++passed;
        } else {
            failures += fmt::format("  {}: {}\n", path.filename().string(), failure);
        }
    }
    std::cout << fmt::format("conformance: {}/{} passed\n", passed, files.size());
    EXPECT_EQ(passed, files.size()) << failures;
}

} // namespace
