// The bpf_conformance suite through the JIT: every .data file in SLUICE_CONFORMANCE_DIR is assembled, compiled to
// x86-64 and run natively under the suite's contract (conformance.hpp, run_conformance_program_jit: r1 = memory,
// r2 = its length, helper 5 is "unwind"), and must give the file's result, as it does in the interpreter
// (tests/ebpf/conformance_test.cpp). The ctest conformance_plugin_jit drives the plugin's --jit the same way.

#include <algorithm>
#include <cctype>
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

constexpr std::size_t expected_file_count = 313; // all of them: a moved or empty folder must fail, not pass

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

/// Runs one file through the JIT; the empty string means it passed, anything else says why not.
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
    std::vector<std::uint8_t> memory = test->memory; // private and writable, as the runner's copy
    const auto outcome = run_conformance_program_jit(*code, memory);
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

class jit_conformance : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(jit_conformance, runs_as_expected) {
    const std::string failure = run_file(GetParam());
    EXPECT_TRUE(failure.empty()) << GetParam().filename().string() << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(files, jit_conformance, ::testing::ValuesIn(conformance_files()),
                         [](const ::testing::TestParamInfo<std::filesystem::path>& file) {
                             std::string name = file.param.stem().string();
                             std::replace_if(
                                 name.begin(), name.end(),
                                 [](char c) { return std::isalnum(static_cast<unsigned char>(c)) == 0; }, '_');
                             return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(jit_conformance);

TEST(jit_conformance_suite, every_file_is_found_and_passes) {
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
    std::cout << fmt::format("conformance through the JIT: {}/{} passed\n", passed, files.size());
    EXPECT_EQ(passed, files.size()) << failures;
}

} // namespace
