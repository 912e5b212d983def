// Random programs (support/program_generator.hpp) that the kernel's verifier accepts, run in the kernel and in sluice
// on the same packets with the same map contents: return codes, output packets, metadata and maps must agree.
//
// The seeds are fixed, so CI runs the same programs every time; a failure prints the seed, the program and the
// packet. The programs are split into shards, each its own ctest test, so that they run in parallel. SLUICE_SEED_BASE
// (an environment variable) moves every shard to other seeds, to explore by hand.
#include <gtest/gtest.h>

#include <cstdlib>

#include "oracle.hpp"

namespace {

using namespace sluice;
using namespace sluice::oracle;

constexpr std::uint64_t shards = 8;
constexpr std::uint64_t programs_per_shard = 130; // 1,040 programs per run
constexpr std::size_t packets_per_program = 72;   // the crafted edge cases, then random ones
constexpr std::size_t fill_entries = 6;           // random map entries before the first packet

std::uint64_t seed_base() {
    const char* text = std::getenv("SLUICE_SEED_BASE");
    return text == nullptr ? 0x0a11'0000 : std::strtoull(text, nullptr, 0);
}

/// A shard of programs and what runs them on sluice's side.
struct shard_case {
    std::uint64_t shard{};
    sluice_engine engine{sluice_engine::interpreter};
};

void PrintTo(const shard_case& test_case, std::ostream* out) {
    *out << "shard " << test_case.shard << " on the " << to_string(test_case.engine);
}

std::vector<shard_case> shard_cases() {
    std::vector<shard_case> all;
    for (std::uint64_t shard = 0; shard < shards; ++shard) {
        all.push_back({shard, sluice_engine::interpreter});
    }
    // The JIT on programs of its own (shards after the interpreter's), half as many.
    for (std::uint64_t shard = shards; shard < shards + shards / 2; ++shard) {
        all.push_back({shard, sluice_engine::jit});
    }
    return all;
}

class generated_programs : public ::testing::TestWithParam<shard_case> {};

TEST_P(generated_programs, agree_with_the_kernel) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    const std::uint64_t shard = GetParam().shard;
    const sluice_engine engine = GetParam().engine;
    std::uint64_t programs = 0;
    std::uint64_t packets = 0;
    for (std::uint64_t n = 0; n < programs_per_shard; ++n) {
        const std::uint64_t seed = seed_base() + shard * programs_per_shard + n;
        sluice::testing::generator_options options;
        options.loops = n % 3 == 0;
        options.may_goto = n % 6 == 0; // half the loops test can_loop at their head
        options.max_instructions = n % 8 == 0 ? 1000 : (n % 4 == 0 ? 400 : 160);
        if (const char* only = std::getenv("SLUICE_ONLY_SEED");
            only != nullptr && std::strtoull(only, nullptr, 0) != seed) {
            continue; // debugging one program
        }
        const sluice::testing::generated_program program = sluice::testing::generate_program(seed, options);
        auto pair = oracle_pair::from_generated(program, engine);
        ASSERT_TRUE(pair) << "seed " << seed << ": " << pair.error().message << "\n"
                          << sluice::testing::describe(program);
        const std::string filled = (*pair)->fill_randomly(seed, fill_entries);
        ASSERT_EQ(filled, "") << "seed " << seed << "\n" << sluice::testing::describe(program);
        const std::vector<test_packet> corpus = packet_corpus(seed, packets_per_program);
        for (std::size_t i = 0; i < corpus.size(); ++i) {
            const std::string difference = (*pair)->compare(corpus[i]);
            if (!difference.empty()) {
                const std::string diagnosis =
                    locate_divergence(program, std::span(corpus).first(i + 1), seed, fill_entries);
                FAIL() << "program seed " << seed << " (SLUICE_SEED_BASE=" << seed_base() << "), packet " << i << "\n"
                       << difference << diagnosis << "\n"
                       << sluice::testing::describe(program);
            }
        }
        ++programs;
        packets += (*pair)->counts().packets;
    }
    std::cout << "shard " << shard << " (" << to_string(engine) << "): " << programs << " generated programs x "
              << packets_per_program << " packets = " << packets << " runs agreed with the kernel\n";
    RecordProperty("programs", static_cast<int>(programs));
    RecordProperty("packets", static_cast<int>(packets));
}

// Programs with safety measures dropped at random, which the kernel's verifier nonetheless accepts (a check that was
// redundant on every path, a register read that happens to be written): odd shapes that must agree too. Those it
// refuses are counted, not run.
TEST(generated_programs, unsafe_ones_the_kernel_accepts_agree_too) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    int accepted = 0;
    int refused = 0;
    for (std::uint64_t n = 0; n < 400; ++n) {
        const std::uint64_t seed = seed_base() + 0x00f0'0000 + n;
        sluice::testing::generator_options options;
        options.unsafe_probability = 0.01;
        options.unsafe_stack_reads = false; // the kernel lets root read unwritten stack: whatever it held
        options.loops = n % 2 == 0;
        options.max_instructions = 300;
        const sluice::testing::generated_program program = sluice::testing::generate_program(seed, options);
        auto pair = oracle_pair::from_generated(program);
        if (!pair) {
            ASSERT_TRUE(program.unsafe) << "a safe program was refused: " << pair.error().message << "\n"
                                        << sluice::testing::describe(program);
            ++refused;
            continue;
        }
        ++accepted;
        ASSERT_EQ((*pair)->fill_randomly(seed, fill_entries), "");
        const std::vector<test_packet> corpus = packet_corpus(seed, 24);
        for (std::size_t i = 0; i < corpus.size(); ++i) {
            const std::string difference = (*pair)->compare(corpus[i]);
            if (!difference.empty()) {
                FAIL() << "program seed " << seed << ", packet " << i << "\n"
                       << difference << locate_divergence(program, std::span(corpus).first(i + 1), seed, fill_entries)
                       << "\n"
                       << sluice::testing::describe(program);
            }
        }
    }
    std::cout << accepted << " programs accepted and agreed, " << refused << " refused by the kernel's verifier\n";
    EXPECT_GT(accepted, 50);
    EXPECT_GT(refused, 50);
}

INSTANTIATE_TEST_SUITE_P(shard, generated_programs, ::testing::ValuesIn(shard_cases()),
                         [](const ::testing::TestParamInfo<shard_case>& param_info) {
                             return std::to_string(param_info.param.shard) + "_" +
                                    std::string(to_string(param_info.param.engine));
                         });

} // namespace
