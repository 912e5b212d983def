// Real programs verify: every example and every loader fixture the loader accepts, listed by name so that a new
// example is noticed (the directory test fails until it is added here), in milliseconds each.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <string>

#include "ebpf/verifier/helper_prototypes.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::ebpf {
namespace {

struct verified_program {
    std::string name;
    verification_result result;
    double milliseconds{};
};

/// Loads `path` and verifies each of its programs; fails the test on any rejection.
std::vector<verified_program> verify_object(const std::string& path) {
    std::vector<verified_program> verified;
    auto spec = object_spec::open_file(path);
    EXPECT_TRUE(spec) << path << ": " << (spec ? "" : spec.error().message);
    if (!spec) {
        return verified;
    }
    auto object = spec->load();
    EXPECT_TRUE(object) << path << ": " << (object ? "" : object.error().message);
    if (!object) {
        return verified;
    }
    for (const auto& program : object->programs()) {
        std::vector<map_definition> definitions;
        const verifier_input input = verifier_input::of(*program, *object, definitions);
        const auto start = std::chrono::steady_clock::now();
        auto result = verify(input);
        const auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
        EXPECT_TRUE(result) << path << " program " << program->name << " rejected:\n"
                            << (result ? "" : result.error().message);
        if (result) {
            EXPECT_EQ(result->facts.size(), program->relocated.size());
            EXPECT_TRUE(result->facts[0].reachable);
            verified.push_back(verified_program{program->name, std::move(*result), elapsed.count()});
        }
    }
    return verified;
}

#ifdef SLUICE_EXAMPLES_DIR
const std::set<std::string>& example_names() {
    static const std::set<std::string> names{"xdp_pass",    "xdp_parse_count", "ddos_filter",  "reflector",
                                             "proto_count", "tail_call_chain", "global_config"};
    return names;
}

TEST(VerifierPrograms, EveryExampleIsListed) {
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR)) {
        if (entry.path().extension() == ".o") {
            EXPECT_TRUE(example_names().contains(entry.path().stem().string()))
                << entry.path() << " is a new example: add it to example_names() in " << __FILE__;
        }
    }
}

class VerifierExample : public ::testing::TestWithParam<std::string> {};

TEST_P(VerifierExample, Verifies) {
    const auto verified = verify_object(std::string(SLUICE_EXAMPLES_DIR) + "/" + GetParam() + ".o");
    ASSERT_FALSE(verified.empty());
    for (const verified_program& program : verified) {
        EXPECT_GT(program.result.instructions_processed, 0U);
        // "The examples verify in milliseconds": a generous bound that still catches a state explosion.
        EXPECT_LT(program.milliseconds, 500.0) << program.name;
        std::printf("%s/%s: %llu instructions processed, %llu states, peak %llu, %.3f ms\n", GetParam().c_str(),
                    program.name.c_str(), static_cast<unsigned long long>(program.result.instructions_processed),
                    static_cast<unsigned long long>(program.result.states_explored),
                    static_cast<unsigned long long>(program.result.peak_states), program.milliseconds);
    }
}

INSTANTIATE_TEST_SUITE_P(Examples, VerifierExample,
                         ::testing::Values("xdp_pass", "xdp_parse_count", "ddos_filter", "reflector", "proto_count",
                                           "tail_call_chain", "global_config"));

TEST(VerifierPrograms, ParseCountFacts) {
    const auto verified = verify_object(std::string(SLUICE_EXAMPLES_DIR) + "/xdp_parse_count.o");
    ASSERT_EQ(verified.size(), 1U);
    // Its lookups all name the one counters map: each call site gets the map as a fact.
    std::size_t constant_lookups = 0;
    for (const instruction_facts& fact : verified[0].result.facts) {
        constant_lookups += fact.constant_map.has_value() ? 1 : 0;
    }
    EXPECT_GE(constant_lookups, 2U);
}

TEST(VerifierPrograms, LogLevels) {
    auto spec = object_spec::open_file(std::string(SLUICE_EXAMPLES_DIR) + "/xdp_parse_count.o");
    ASSERT_TRUE(spec);
    auto object = spec->load();
    ASSERT_TRUE(object);
    std::vector<map_definition> definitions;
    const verifier_input input = verifier_input::of(*object->programs()[0], *object, definitions);
    auto quiet = verify(input);
    ASSERT_TRUE(quiet);
    EXPECT_TRUE(quiet->log.empty());
    verifier_options summary;
    summary.log_level = 1;
    auto level1 = verify(input, summary);
    ASSERT_TRUE(level1);
    EXPECT_NE(level1->log.find("processed"), std::string::npos) << level1->log;
    verifier_options full;
    full.log_level = 2;
    auto level2 = verify(input, full);
    ASSERT_TRUE(level2);
    EXPECT_NE(level2->log.find("0: R1=ctx() R10=fp0"), std::string::npos) << level2->log.substr(0, 400);
    EXPECT_NE(level2->log.find("pkt("), std::string::npos);
    EXPECT_NE(level2->log.find("pkt_end()"), std::string::npos);
    EXPECT_NE(level2->log.find("map_value"), std::string::npos);
}
#endif

class VerifierFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(VerifierFixture, Verifies) {
    const auto verified = verify_object(std::string(SLUICE_LOADER_DATA_DIR) + "/" + GetParam() + ".o");
    EXPECT_FALSE(verified.empty());
}

// The loader fixtures the loader accepts (loader_core, loader_extern, loader_map_in_map and loader_no_program are
// refused before verification, by design), and the helpers' end-to-end fixture (bpf_loop, for_each_map_elem,
// adjust_head, tail call).
INSTANTIATE_TEST_SUITE_P(LoaderFixtures, VerifierFixture,
                         ::testing::Values("loader_maps", "loader_calls", "loader_legacy_maps", "loader_same_section",
                                           "helpers_end_to_end"));

TEST(VerifierHelpers, EveryHelperSluiceProvidesHasAPrototype) {
    int helpers = 0;
    for (std::uint32_t id = 0; id < max_helper_id; ++id) {
        if (xdp_helper_table().find(id) == nullptr) {
            continue;
        }
        ++helpers;
        const verifier_detail::helper_proto* proto = verifier_detail::find_helper_proto(id);
        ASSERT_NE(proto, nullptr) << "helper " << id << " (" << xdp_helper_table().name(id)
                                  << ") has no prototype in src/ebpf/verifier/helper_prototypes.cpp";
        EXPECT_EQ(proto->name, xdp_helper_table().name(id));
    }
    EXPECT_GT(helpers, 30);
}

/// The rejection of the only program of a C object in verifier/data/.
std::string rejection_of(const std::string& name) {
    auto spec = object_spec::open_file(std::string(SLUICE_VERIFIER_DATA_DIR) + "/" + name + ".o");
    EXPECT_TRUE(spec);
    if (!spec) {
        return {};
    }
    auto object = spec->load();
    EXPECT_TRUE(object);
    if (!object) {
        return {};
    }
    std::vector<map_definition> definitions;
    auto result = verify(verifier_input::of(*object->programs()[0], *object, definitions));
    EXPECT_FALSE(result) << name << " was accepted";
    if (result) {
        return {};
    }
    EXPECT_TRUE(result.error().instruction.has_value());
    return result.error().message;
}

TEST(VerifierCPrograms, UncheckedPacketReadNamesItsSourceLine) {
    const std::string message = rejection_of("unsafe_packet_read");
    EXPECT_NE(message.find("(unsafe_packet_read.c:11: if (eth->h_proto == __builtin_bswap16(ETH_P_IP)))"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("at packet offset 12..12, but the program only proved 0 bytes of packet"), std::string::npos)
        << message;
    EXPECT_NE(message.find("fix: add a check that data + 13 <= data_end before this load"), std::string::npos)
        << message;
}

TEST(VerifierCPrograms, UncheckedMapValueNamesItsSourceLine) {
    const std::string message = rejection_of("unsafe_map_value");
    EXPECT_NE(message.find("(unsafe_map_value.c:16: *count += 1;)"), std::string::npos) << message;
    EXPECT_NE(message.find("which may be NULL (pointer to a value of map 'packets' or NULL"), std::string::npos)
        << message;
}

TEST(VerifierCPrograms, RouterIdiomsVerify) {
    // Variable-length IPv4 header, checksum loop, fib_lookup, csum_diff, adjust_head then fresh checks, redirect.
    const auto verified = verify_object(std::string(SLUICE_VERIFIER_DATA_DIR) + "/safe_router.o");
    ASSERT_EQ(verified.size(), 1U);
    EXPECT_LT(verified[0].result.instructions_processed, 100'000U);
}

TEST(VerifierCPrograms, LoopsCallbacksAndCallsVerify) {
    const auto verified = verify_object(std::string(SLUICE_VERIFIER_DATA_DIR) + "/safe_loops.o");
    ASSERT_EQ(verified.size(), 1U);
    EXPECT_GT(verified[0].result.states_explored, 0U);
}

} // namespace
} // namespace sluice::ebpf
