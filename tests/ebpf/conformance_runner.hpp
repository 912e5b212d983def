// The bpf_conformance suite through one engine, for the GoogleTest suites of each engine (the interpreter in
// conformance_test.cpp, the JIT in jit/jit_conformance_test.cpp): the list of .data files in SLUICE_CONFORMANCE_DIR,
// found at run time, one file assembled and run with what went wrong said in words, and the whole-suite check. The
// engine is a parameter, so both suites hold every file to the same checks. Header-only and test-only; the file
// format is read by conformance_data.hpp.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "conformance_data.hpp"
#include "sluice/ebpf/assembler.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf::testing {

/// Runs assembled code over the file's memory (r1 = memory, r2 = its length) and gives r0 or the engine's error.
using conformance_engine =
    std::function<expected<std::uint64_t>(std::span<const instruction> code, std::span<std::uint8_t> memory)>;

// All 313 files of the suite, so that a moved or empty folder fails loudly instead of passing with zero tests.
constexpr std::size_t expected_conformance_file_count = 313;

inline std::vector<std::filesystem::path> conformance_files() {
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

/// A GoogleTest name for one file: its stem with every character that is not a letter or digit made '_'.
inline std::string conformance_test_name(const ::testing::TestParamInfo<std::filesystem::path>& file) {
    std::string name = file.param.stem().string();
    std::replace_if(
        name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) == 0; }, '_');
    return name;
}

inline std::string hex_words(const std::vector<instruction>& code) {
    std::string text;
    for (const instruction& ins : code) {
        std::uint64_t word = 0;
        static_assert(sizeof word == sizeof ins);
        std::memcpy(&word, &ins, sizeof word);
        text += fmt::format("{:#018x} ", word);
    }
    return text;
}

/// Runs one file through `engine`; the empty string means it passed, anything else says why not. A file's `-- raw`
/// words, where it has them, must equal sluice's assembled encoding before the program runs.
inline std::string run_conformance_file(const std::filesystem::path& path, const conformance_engine& engine) {
    const auto text = read_text_file(path.string());
    if (!text) {
        return "cannot read the file";
    }
    std::string problem;
    auto test = parse_conformance(*text, problem);
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
    const auto outcome = engine(*code, memory);

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

/// The whole suite through `engine`: every file is found (all 313) and passes; prints "<label>: N/313 passed" and
/// fails the calling test with each failing file and why.
inline void expect_every_conformance_file_passes(const conformance_engine& engine, std::string_view label) {
    const auto files = conformance_files();
    ASSERT_EQ(files.size(), expected_conformance_file_count) << "in " << SLUICE_CONFORMANCE_DIR;
    std::size_t passed = 0;
    std::string failures;
    for (const auto& path : files) {
        const std::string failure = run_conformance_file(path, engine);
        if (failure.empty()) {
            ++passed;
        } else {
            failures += fmt::format("  {}: {}\n", path.filename().string(), failure);
        }
    }
    std::cout << fmt::format("{}: {}/{} passed\n", label, passed, files.size());
    EXPECT_EQ(passed, files.size()) << failures;
}

} // namespace sluice::ebpf::testing
