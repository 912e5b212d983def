// The bpf_conformance suite through the JIT: every .data file in SLUICE_CONFORMANCE_DIR is assembled, compiled to
// x86-64 and run natively under the suite's contract (conformance.hpp, run_conformance_program_jit: r1 = memory,
// r2 = its length, helper 5 is "unwind"), and must give the file's result, as it does in the interpreter
// (tests/ebpf/conformance_test.cpp; both suites run conformance_runner.hpp's checks). The ctest
// conformance_plugin_jit drives the plugin's --jit the same way.

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "conformance_runner.hpp"
#include "sluice/ebpf/conformance.hpp"

namespace {

using namespace sluice::ebpf;
namespace conf = sluice::ebpf::testing;

class jit_conformance : public ::testing::TestWithParam<std::filesystem::path> {};

TEST_P(jit_conformance, runs_as_expected) {
    const std::string failure = conf::run_conformance_file(GetParam(), run_conformance_program_jit);
    EXPECT_TRUE(failure.empty()) << GetParam().filename().string() << ": " << failure;
}

INSTANTIATE_TEST_SUITE_P(files, jit_conformance, ::testing::ValuesIn(conf::conformance_files()),
                         conf::conformance_test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(jit_conformance);

TEST(jit_conformance_suite, every_file_is_found_and_passes) {
    conf::expect_every_conformance_file_passes(run_conformance_program_jit, "conformance through the JIT");
}

} // namespace
