// The verifier's corpus, as data: unsafe/*.txt holds programs that must be rejected with the key words of their
// message, safe/*.txt programs that must be accepted (so that the verifier is not merely strict). Each case:
//
//   == name
//   -- maps              (optional) one map per line: NAME TYPE key=K value=V entries=E [flags=F]
//   -- options           (optional) attach=devmap, limit=N (complexity limit)
//   -- asm               conformance-syntax assembly, relocated as the loader leaves code: maps as `map:I`,
//                        global data as `map_value:I:OFFSET`, callbacks as `func:LABEL`; the context is sluice's
//                        rewritten layout (data at [r1+0], data_end at [r1+8], data_meta at [r1+16], 8 bytes each)
//   -- error             each line must appear in the rejection (unsafe)
//   -- at                (optional) the instruction the rejection must name
//   -- accept            (safe)
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../verifier_corpus.hpp"
#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::ebpf {
namespace {

using verifier_corpus::corpus_case;
using verifier_corpus::read_corpus;

expected<verification_result> verify_case(const corpus_case& c) {
    auto code = assemble(c.assembly);
    if (!code) {
        ADD_FAILURE() << c.file << "/" << c.name << ": does not assemble: " << code.error().message;
        return code.error();
    }
    verifier_input input;
    input.code = *code;
    input.maps = c.maps;
    input.attach = c.attach;
    verifier_options options;
    options.complexity_limit = c.limit;
    return verify(input, options);
}

std::string test_name(const ::testing::TestParamInfo<corpus_case>& info) {
    std::string name = info.param.file + "_" + info.param.name;
    for (char& ch : name) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0) {
            ch = '_';
        }
    }
    return name;
}

const std::vector<corpus_case>& unsafe_cases() {
    static const std::vector<corpus_case> cases = read_corpus("unsafe");
    return cases;
}

const std::vector<corpus_case>& safe_cases() {
    static const std::vector<corpus_case> cases = read_corpus("safe");
    return cases;
}

TEST(VerifierCorpus, IsLargeEnough) {
    EXPECT_GE(unsafe_cases().size(), 40U);
    EXPECT_GE(safe_cases().size(), 10U);
    for (const corpus_case& c : unsafe_cases()) {
        EXPECT_FALSE(c.accept) << c.name;
        EXPECT_FALSE(c.expected_words.empty()) << c.file << "/" << c.name << " checks no words of its message";
    }
}

class UnsafeProgram : public ::testing::TestWithParam<corpus_case> {};

TEST_P(UnsafeProgram, IsRejectedWithItsReason) {
    const corpus_case& c = GetParam();
    auto result = verify_case(c);
    ASSERT_FALSE(result) << c.name << " was accepted";
    const std::string& message = result.error().message;
    if (std::getenv("SLUICE_VERIFIER_PRINT") != nullptr) {
        std::printf("---- %s/%s\n%s\n", c.file.c_str(), c.name.c_str(), message.c_str());
    }
    for (const std::string& words : c.expected_words) {
        EXPECT_NE(message.find(words), std::string::npos) << "missing \"" << words << "\" in:\n" << message;
    }
    EXPECT_TRUE(result.error().instruction.has_value()) << message;
    if (c.at) {
        EXPECT_EQ(result.error().instruction, c.at) << message;
    }
    // Every rejection names the instruction first, and says what to change unless the program is malformed.
    EXPECT_TRUE(message.starts_with("instruction ")) << message;
}

INSTANTIATE_TEST_SUITE_P(Corpus, UnsafeProgram, ::testing::ValuesIn(unsafe_cases()), test_name);

class SafeProgram : public ::testing::TestWithParam<corpus_case> {};

TEST_P(SafeProgram, IsAccepted) {
    const corpus_case& c = GetParam();
    auto result = verify_case(c);
    ASSERT_TRUE(result) << c.name << " was rejected:\n" << result.error().message;
    EXPECT_TRUE(result->facts[0].reachable);
}

INSTANTIATE_TEST_SUITE_P(Corpus, SafeProgram, ::testing::ValuesIn(safe_cases()), test_name);

} // namespace
} // namespace sluice::ebpf
