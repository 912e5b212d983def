// Hot reload: a new version of the script replaces the running one at a batch boundary, with no packet dropped or
// run twice, while a worker keeps running batches.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "lua/lua_test_support.hpp"

namespace sluice::lua {
namespace {

using testing::ipv4_udp;
using testing::packet_set;

class reload_test : public ::testing::TestWithParam<engine> {};

constexpr const char* counting_script = R"lua(
local seen = maps.declare{name = "seen", type = "array", key = "u32 index", value = "u64 packets", max_entries = 1}
function xdp(pkt)
    local entry = seen:lookup(0)
    entry.packets = entry.packets + 1
    return ACTION
end
)lua";

std::string version_of(const char* action) {
    std::string source = counting_script;
    source.replace(source.find("ACTION"), 6, action);
    return source;
}

TEST_P(reload_test, SwapsAtTheNextBatchAndKeepsDeclaredMaps) {
    testing::loaded_script script(GetParam(), version_of("XDP_DROP"));
    ASSERT_TRUE(script.program);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 4));
    EXPECT_EQ(packets.run(*script.program), std::vector{xdp::action::drop});
    ASSERT_TRUE(script.program->reload(version_of("XDP_PASS"), "v2.lua"));
    EXPECT_EQ(script.program->version(), 0U) << "not before the next batch";
    EXPECT_EQ(packets.run(*script.program), std::vector{xdp::action::pass});
    EXPECT_EQ(script.program->version(), 1U);
    EXPECT_EQ(script.program->script_statistics().reloads, 1U);
    std::uint32_t key = 0;
    std::uint64_t value = 0;
    ASSERT_EQ(script.program->find_map("seen")->lookup_elem(&key, &value), 0);
    EXPECT_EQ(value, 2U) << "the new version counts on in the map the first one declared";
}

TEST_P(reload_test, AFailedReloadKeepsTheRunningVersion) {
    testing::loaded_script script(GetParam(), version_of("XDP_DROP"));
    ASSERT_TRUE(script.program);
    const auto broken = script.program->reload("function xdp(pkt) return", "broken.lua");
    ASSERT_FALSE(broken);
    EXPECT_THAT(broken.error().message, ::testing::HasSubstr("broken.lua:"));
    const auto clash = script.program->reload(
        "maps.declare{name = 'seen', type = 'hash', key = 'u32 a', value = 'u64 b', max_entries = 8}", "clash.lua");
    ASSERT_FALSE(clash);
    EXPECT_THAT(clash.error().message, ::testing::HasSubstr("another definition"));
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 4));
    EXPECT_EQ(packets.run(*script.program), std::vector{xdp::action::drop});
    EXPECT_EQ(script.program->version(), 0U);
}

TEST_P(reload_test, ReloadsWhileAWorkerRunsLoseNoPacket) {
    testing::loaded_script script(GetParam(), version_of("XDP_DROP"));
    ASSERT_TRUE(script.program);
    constexpr int batches = 400;
    constexpr int batch_size = 32;
    std::atomic<bool> worker_done{false};
    std::vector<std::vector<xdp::action>> outcomes;
    std::thread worker([&] {
        packet_set packets(batch_size);
        for (int i = 0; i < batch_size; ++i) {
            packets.add(ipv4_udp(1, 2, 3, 4));
        }
        for (int batch = 0; batch < batches; ++batch) {
            outcomes.push_back(packets.run(*script.program));
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        worker_done = true;
    });
    int reloads = 0;
    while (!worker_done) {
        const char* next = reloads % 2 == 0 ? "XDP_PASS" : "XDP_DROP";
        ASSERT_TRUE(script.program->reload(version_of(next), fmt::format("v{}.lua", reloads + 2)));
        ++reloads;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    worker.join();
    ASSERT_EQ(outcomes.size(), static_cast<std::size_t>(batches));
    int changes = 0;
    for (std::size_t batch = 0; batch < outcomes.size(); ++batch) {
        const std::vector<xdp::action>& out = outcomes[batch];
        ASSERT_EQ(out.size(), static_cast<std::size_t>(batch_size));
        EXPECT_EQ(std::count(out.begin(), out.end(), out.front()), batch_size) << "batch " << batch << " is one version";
        EXPECT_NE(out.front(), xdp::action::aborted);
        changes += batch > 0 && out.front() != outcomes[batch - 1].front() ? 1 : 0;
    }
    EXPECT_GT(changes, 0) << "some reload took effect while the worker ran";
    EXPECT_GT(script.program->version(), 0U);
    const xdp::executor_stats& stats = script.program->stats();
    EXPECT_EQ(stats.received.packets, static_cast<std::uint64_t>(batches * batch_size));
    EXPECT_EQ(stats.exceptions, 0U);
    EXPECT_TRUE(script.program->check_accounting());
    std::uint32_t key = 0;
    std::uint64_t value = 0;
    ASSERT_EQ(script.program->find_map("seen")->lookup_elem(&key, &value), 0);
    EXPECT_EQ(value, static_cast<std::uint64_t>(batches * batch_size)) << "every packet ran exactly once";
}

INSTANTIATE_TEST_SUITE_P(engines, reload_test, ::testing::ValuesIn(testing::both_engines), testing::engine_name);

} // namespace
} // namespace sluice::lua
