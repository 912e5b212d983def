// The bpf_conformance suite through sluice's own runner: every .data file in SLUICE_CONFORMANCE_DIR, found at run
// time, is assembled, validated and run by the interpreter in checked mode, as PLUGIN.md describes the standard
// runner doing it. Files are read where they are, never copied into the repository. The file list, the per-file
// checks and the whole-suite check are conformance_runner.hpp's, shared with the JIT's suite.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include <gtest/gtest.h>

#include "conformance_runner.hpp"
#include "sluice/ebpf/conformance.hpp"

namespace {

using namespace sluice::ebpf;
namespace conf = sluice::ebpf::testing;

// Generous for the suite's loops (prime.data runs the longest) yet stops a runaway program in well under a second.
constexpr std::uint64_t instruction_limit = 10'000'000;

sluice::expected<std::uint64_t> run_interpreter(std::span<const instruction> code, std::span<std::uint8_t> memory) {
    return run_conformance_program(code, memory, instruction_limit);
}

class conformance : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(conformance, runs_as_expected) {
    const std::string failure = conf::run_conformance_file(GetParam(), run_interpreter);
    EXPECT_TRUE(failure.empty()) << GetParam().filename().string() << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(files, conformance, ::testing::ValuesIn(conf::conformance_files()),
                         conf::conformance_test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(conformance);

TEST(conformance_suite, every_file_is_found_and_passes) {
    conf::expect_every_conformance_file_passes(run_interpreter, "conformance");
}

} // namespace
