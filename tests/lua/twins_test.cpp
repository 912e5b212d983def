// The Lua twins of the examples give the same verdicts and counters as their eBPF versions: examples/*.c compiled by
// clang, loaded with the loader and run with the executor, against examples/*.lua on both engines, on the same
// generated traffic.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "lua/lua_test_support.hpp"
#include "sluice/xdp/executor.hpp"

namespace sluice::lua {
namespace {

std::string read_text(const std::string& path) {
    std::ifstream file(path);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
}

/// The eBPF example, loaded and ready to run.
struct ebpf_example {
    ebpf::execution_state state;
    std::optional<ebpf::loaded_object> object;
    std::optional<xdp::executor> executor;

    ebpf_example(const std::string& name, const std::vector<std::string>& rodata = {}) {
        auto spec = ebpf::object_spec::open_file(std::string(SLUICE_EXAMPLES_DIR) + "/" + name + ".o");
        if (!spec) {
            ADD_FAILURE() << spec.error().message;
            return;
        }
        for (const std::string& assignment : rodata) {
            EXPECT_TRUE(spec->set_rodata(assignment));
        }
        auto loaded = spec->load();
        if (!loaded) {
            ADD_FAILURE() << loaded.error().message;
            return;
        }
        object.emplace(std::move(*loaded));
        auto made = xdp::executor::create(*object, *object->find_program(name), ebpf::xdp_helper_table(), state);
        if (!made) {
            ADD_FAILURE() << made.error().message;
            return;
        }
        executor.emplace(std::move(*made));
    }
};

/// Every key of an array-like map with `entries` u32 keys: the values (the syscall layout, per-CPU included).
std::vector<std::vector<std::byte>> values_of(ebpf::map& target, std::uint32_t entries) {
    std::vector<std::vector<std::byte>> values;
    for (std::uint32_t key = 0; key < entries; ++key) {
        std::vector<std::byte> value(target.syscall_value_size());
        EXPECT_EQ(target.lookup_elem(&key, value.data()), 0);
        values.push_back(std::move(value));
    }
    return values;
}

std::uint64_t word(const std::vector<std::byte>& value, std::size_t index) {
    std::uint64_t result = 0;
    std::memcpy(&result, value.data() + index * 8, 8);
    return result;
}

constexpr const char* traffic = "packets=20000,flows=500,size=60-1500,mix=tcp:60/udp:30/icmp:10,ipv6=15,vlan=10,"
                                "attack=30@203.0.113.0/24,attack_sources=8,seed=11";

/// The verdicts of an eBPF example and of its Lua twin on the same generated traffic (`traffic`), in packet order.
struct verdicts {
    std::vector<xdp::action> expected; ///< the eBPF example's
    std::vector<xdp::action> actual;   ///< the twin's
};

verdicts verdicts_on_traffic(xdp::batch_program& reference, xdp::batch_program& twin) {
    auto spec = io::traffic_spec::parse(traffic);
    if (!spec) {
        ADD_FAILURE() << spec.error().message;
        return {};
    }
    auto generator = io::traffic_generator::create(*spec);
    if (!generator) {
        ADD_FAILURE() << generator.error().message;
        return {};
    }
    verdicts found;
    found.expected = testing::run_generated(reference, *generator);
    generator->rewind();
    found.actual = testing::run_generated(twin, *generator);
    return found;
}

class twins_test : public ::testing::TestWithParam<engine> {};

TEST_P(twins_test, DdosFilterGivesTheSameVerdictsAndCounters) {
    // rate_pps = 0: no refill, so the rate limiter's verdicts do not depend on the clock (each source gets `burst`
    // packets, then is limited), and both versions must agree packet by packet.
    ebpf_example reference("ddos_filter", {"rate_pps=0", "burst=50"});
    ASSERT_TRUE(reference.executor);
    options settings;
    settings.config = {{"rate_pps", "0"}, {"burst", "50"}};
    testing::loaded_script twin(GetParam(), read_text(SLUICE_EXAMPLES_SOURCE_DIR "/ddos_filter.lua"), settings);
    ASSERT_TRUE(twin.program);

    // Block the attack prefix's lower half in both, by prefix; the upper half meets the rate limiter.
    struct {
        std::uint32_t prefixlen;
        std::uint8_t address[4];
    } blocked{25, {203, 0, 113, 0}};
    const std::uint32_t one = 1;
    ASSERT_EQ(reference.object->find_map("blocked_v4")->update_elem(&blocked, &one, 0), 0);
    ASSERT_EQ(twin.program->find_map("blocked_v4")->update_elem(&blocked, &one, 0), 0);

    const auto [expected, actual] = verdicts_on_traffic(*reference.executor, *twin.program);
    ASSERT_FALSE(expected.empty());
    ASSERT_EQ(actual.size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(actual[i], expected[i]) << "packet " << i + 1 << "\n" << ::testing::PrintToString(twin.log);
    }

    const auto reference_stats = values_of(*reference.object->find_map("stats"), 5);
    const auto twin_stats = values_of(*twin.program->find_map("stats"), 5);
    EXPECT_EQ(twin_stats, reference_stats);
    // Every verdict the traffic can produce happened, so the comparison covers them.
    EXPECT_GT(word(reference_stats[0], 0), 0U); // passed
    EXPECT_GT(word(reference_stats[1], 0), 0U); // blocked prefix
    EXPECT_GT(word(reference_stats[2], 0), 0U); // rate limited
    const xdp::executor_stats& stats = twin.program->stats();
    EXPECT_EQ(stats.exceptions, 0U);
    EXPECT_EQ(stats.of(xdp::action::drop), reference.executor->stats().of(xdp::action::drop));
    EXPECT_EQ(stats.of(xdp::action::pass), reference.executor->stats().of(xdp::action::pass));
    EXPECT_TRUE(twin.program->check_accounting());
}

TEST_P(twins_test, ProtoCountGivesTheSameCounters) {
    ebpf_example reference("proto_count");
    ASSERT_TRUE(reference.executor);
    testing::loaded_script twin(GetParam(), read_text(SLUICE_EXAMPLES_SOURCE_DIR "/proto_count.lua"));
    ASSERT_TRUE(twin.program);

    const auto [expected, actual] = verdicts_on_traffic(*reference.executor, *twin.program);
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(actual, expected);

    const auto reference_counts = values_of(*reference.object->find_map("protocols"), 11);
    const auto twin_counts = values_of(*twin.program->find_map("protocols"), 11);
    EXPECT_EQ(twin_counts, reference_counts);
    // Ethernet, VLAN, IPv4, IPv6, TCP, UDP, ICMP and ICMPv6 all counted something.
    for (std::size_t index = 0; index < 8; ++index) {
        EXPECT_GT(word(reference_counts[index], 0), 0U) << "protocol index " << index;
    }
    EXPECT_EQ(word(reference_counts[0], 0), 20000U);
    EXPECT_EQ(twin.program->stats().exceptions, 0U) << ::testing::PrintToString(twin.log);
}

INSTANTIATE_TEST_SUITE_P(engines, twins_test, ::testing::ValuesIn(testing::both_engines), testing::engine_name);

} // namespace
} // namespace sluice::lua
