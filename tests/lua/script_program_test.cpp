// script_program on both engines: verdicts, the packet view, parsers, adjust_*, helpers, accounting.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>

#include "lua/lua_test_support.hpp"

namespace sluice::lua {
namespace {

using testing::ipv4_udp;
using testing::loaded_script;
using testing::packet_set;
using testing::trace_capture;

class script_program_test : public ::testing::TestWithParam<engine> {};

TEST_P(script_program_test, VerdictsFollowThePacket) {
    loaded_script script(GetParam(), R"lua(
function xdp(pkt)
    local port = pkt:be16(36)
    if port == 53 then return XDP_DROP end
    if port == 80 then return XDP_TX end
    return XDP_PASS
end
)lua");
    ASSERT_TRUE(script.program);
    packet_set packets;
    packets.add(ipv4_udp(0x0a000001, 0x0a000002, 1000, 53));
    packets.add(ipv4_udp(0x0a000001, 0x0a000002, 1000, 80));
    packets.add(ipv4_udp(0x0a000001, 0x0a000002, 1000, 443));
    const std::vector<xdp::action> out = packets.run(*script.program);
    EXPECT_EQ(out, (std::vector{xdp::action::drop, xdp::action::tx, xdp::action::pass}));
    const xdp::executor_stats& stats = script.program->stats();
    EXPECT_EQ(stats.received.packets, 3U);
    EXPECT_EQ(stats.of(xdp::action::drop).packets, 1U);
    EXPECT_EQ(stats.of(xdp::action::tx).packets, 1U);
    EXPECT_EQ(stats.of(xdp::action::pass).packets, 1U);
    EXPECT_EQ(stats.exceptions, 0U);
    EXPECT_TRUE(script.program->check_accounting());
}

TEST_P(script_program_test, AccessorsReadWriteAndStopAtTheEnd) {
    loaded_script script(GetParam(), R"lua(
function xdp(pkt)
    assert(pkt:len() == 60 and #pkt == 60)
    assert(pkt:u8(0) == 0x02 and pkt:u8(59) == 0 and pkt:u8(60) == nil and pkt:u8(-1) == nil)
    assert(pkt:be16(12) == 0x0800 and pkt:be16(59) == nil)
    assert(pkt:be32(26) == 0xc0a80101, "source")
    assert(pkt:be32(57) == nil)
    pkt:set_u8(0, 0xff)
    pkt:set_be16(34, 0xbeef)
    pkt:set_be32(30, 0xdeadbeef)
    assert(pkt:be32(30) == 0xdeadbeef)
    assert(not pcall(pkt.set_be32, pkt, 58, 1), "a write beyond the packet is an error")
    assert(pkt:ifindex() == 7 and pkt:rx_queue() == 3)
    return XDP_PASS
end
)lua");
    ASSERT_TRUE(script.program);
    packet_set packets;
    xdp::frame* item = packets.add(ipv4_udp(0xc0a80101, 0x0a000002, 1000, 53));
    item->set_ingress(7, 3);
    EXPECT_EQ(packets.run(*script.program), std::vector{xdp::action::pass}) << ::testing::PrintToString(script.log);
    const auto bytes = item->packet();
    EXPECT_EQ(bytes[0], 0xff);
    EXPECT_EQ(bytes[34], 0xbe);
    EXPECT_EQ(bytes[35], 0xef);
    EXPECT_EQ(bytes[30], 0xde);
    EXPECT_EQ(bytes[33], 0xef);
}

TEST_P(script_program_test, ParsersReturnFieldsAndNilForCutHeaders) {
    loaded_script script(GetParam(), R"lua(
function xdp(pkt)
    local proto, l3, vid = pkt:eth()
    if not proto then print("cut") return XDP_PASS end
    if proto == 0x0800 then
        local protocol, l4, source, destination, total, ttl = pkt:ipv4(l3)
        local sport, dport, length, payload = pkt:udp(l4)
        print(vid, protocol, l4, source, destination, total, ttl, sport, dport, length, payload, pkt:tcp(l4 + 100))
    elseif proto == 0x86dd then
        local header, l4, payload_length, hops = pkt:ipv6(l3)
        local sport, dport, flags, data = pkt:tcp(l4)
        local t, c, after = pkt:icmp(l4)
        print(vid, header, l4, payload_length, hops, sport, dport, flags, data, t, c, after, pkt:ipv4(l3))
    end
    return XDP_PASS
end
)lua");
    ASSERT_TRUE(script.program);
    trace_capture trace(script.state);
    packet_set packets;
    packets.add(ipv4_udp(0xc0a80101, 0x0a000002, 1000, 53, 10, 42));
    // IPv6 + a hop-by-hop header (8 bytes) + TCP with 4 bytes of options.
    std::vector<std::uint8_t> v6{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 32, 0, 255};
    v6.resize(14 + 40, 0x11);
    v6.insert(v6.end(), {6, 0, 0, 0, 0, 0, 0, 0}); // hop-by-hop: next header TCP, 8 bytes
    v6.insert(v6.end(), {0x30, 0x39, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x12, 0xff, 0xff, 0, 0, 0, 0, 1, 1,
                         1, 1}); // TCP 12345 -> 443, SYN|ACK, data offset 6 (24 bytes)
    packets.add(v6);
    packets.add({0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81}); // 13 bytes: no whole Ethernet header
    packets.run(*script.program);
    EXPECT_EQ(script.program->stats().exceptions, 0U) << ::testing::PrintToString(script.log);
    // VLAN 42; UDP at 18 + 20 = 38; 0xc0a80101 = 3232235777, 0x0a000002 = 167772162; total 38; payload at 46; the
    // TCP parse far beyond the packet gives nil, which print shows as the end of the line.
    EXPECT_EQ(trace.lines,
              (std::vector<std::string>{"42\t17\t38\t3232235777\t167772162\t38\t64\t1000\t53\t18\t46\tnil",
                                        "nil\t6\t62\t32\t255\t12345\t443\t18\t86\t48\t57\t70\tnil", "cut"}));
}

TEST_P(script_program_test, AdjustHelpersKeepTheKernelsLimits) {
    loaded_script script(GetParam(), R"lua(
function xdp(pkt)
    local n = pkt:len()
    assert(pkt:adjust_head(-14) == 0 and pkt:len() == n + 14, "head grows into the headroom")
    assert(pkt:adjust_head(-1000) == -22, "not beyond the headroom: -EINVAL")
    assert(pkt:adjust_head(14) == 0 and pkt:len() == n)
    assert(pkt:adjust_head(n) == -22, "at least an Ethernet header stays")
    assert(pkt:adjust_tail(-6) == 0 and pkt:len() == n - 6)
    assert(pkt:adjust_tail(100) == 0 and pkt:len() == n + 94 and pkt:u8(n + 93) == 0, "grown bytes are zero")
    assert(pkt:adjust_tail(5000) == -22)
    assert(pkt:adjust_meta(-8) == 0 and pkt:meta_len() == 8)
    pkt:set_meta_be32(4, 0x01020304)
    assert(pkt:meta_be32(4) == 0x01020304 and pkt:meta_be32(8) == nil)
    assert(pkt:adjust_meta(-3) == -13, "metadata in multiples of 4: -EACCES")
    return XDP_PASS
end
)lua");
    ASSERT_TRUE(script.program);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 4));
    EXPECT_EQ(packets.run(*script.program), std::vector{xdp::action::pass}) << ::testing::PrintToString(script.log);
    EXPECT_EQ(packets.frames()[0]->length(), 60U + 94U);
}

TEST_P(script_program_test, RedirectHelpersSetTheDecision) {
    loaded_script script(GetParam(), R"lua(
local devices = maps.declare{name = "ports", type = "array", key = "u32 index", value = "u32 ifindex",
                             max_entries = 4}
function xdp(pkt)
    local port = pkt:be16(36)
    if port == 1 then return redirect(9) end
    if port == 2 then return redirect_map(devices, 1) end
    if port == 3 then return redirect_map(devices, 99, XDP_PASS) end -- missing key: the action in flags
    if port == 4 then return redirect(9, 1) end                      -- flags: XDP_ABORTED
    return XDP_REDIRECT                                              -- no target: aborted and counted
end
)lua");
    ASSERT_TRUE(script.program);
    packet_set packets;
    for (std::uint16_t port = 1; port <= 5; ++port) {
        packets.add(ipv4_udp(1, 2, 3, port));
    }
    const std::vector<xdp::action> out = packets.run(*script.program);
    EXPECT_EQ(out, (std::vector{xdp::action::redirect, xdp::action::redirect, xdp::action::pass,
                                xdp::action::aborted, xdp::action::aborted}));
    const auto decisions = script.program->redirect_decisions();
    ASSERT_EQ(decisions.size(), 5U);
    EXPECT_EQ(decisions[0].target, ebpf::redirect_decision::kind::interface);
    EXPECT_EQ(decisions[0].ifindex, 9U);
    EXPECT_EQ(decisions[1].target, ebpf::redirect_decision::kind::map);
    EXPECT_EQ(decisions[1].target_map, script.program->find_map("ports"));
    EXPECT_EQ(decisions[1].key, 1U);
    const xdp::executor_stats& stats = script.program->stats();
    EXPECT_EQ(stats.redirect_errors, 1U);
    EXPECT_EQ(stats.exceptions, 2U); // XDP_ABORTED returned, and the redirect without a target
    EXPECT_TRUE(script.program->check_accounting());
}

TEST_P(script_program_test, TimeRandomnessProcessorAndPrint) {
    options settings;
    settings.config = {{"greeting", "hello"}, {"answer", "42"}};
    loaded_script script(GetParam(), R"lua(
function xdp(pkt)
    local t1 = ktime_ns()
    local t2 = ktime_ns()
    assert(t2 >= t1 and t1 > 0)
    print(prandom_u32(), prandom_u32(), processor_id(), config.greeting, config.answer + 1, SLUICE_ENGINE)
    return XDP_PASS
end
)lua",
                         settings);
    ASSERT_TRUE(script.program);
    script.state.cpu = 3;
    trace_capture trace(script.state);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 4));
    packets.run(*script.program);
    ebpf::prandom_state expected;
    expected.seed(ebpf::execution_state::default_seed(0)); // the state's own sequence, as bpf_get_prandom_u32
    const std::uint32_t first = expected.next();
    const std::uint32_t second = expected.next();
    ASSERT_EQ(trace.lines.size(), 1U) << ::testing::PrintToString(script.log);
    EXPECT_EQ(trace.lines[0], fmt::format("{}\t{}\t3\thello\t43\t{}", first, second,
                                          GetParam() == engine::luajit ? "luajit" : "lua5.4"));
}

TEST_P(script_program_test, PortErrorsAreOutcomesToo) {
    loaded_script script(GetParam(), "function xdp(pkt) return XDP_DROP end");
    ASSERT_TRUE(script.program);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 4));
    packets.run(*script.program);
    script.program->count_port_errors(2, 20000);
    const xdp::executor_stats& stats = script.program->stats();
    EXPECT_EQ(stats.received.packets, 3U);
    EXPECT_EQ(stats.errors.packets, 2U);
    EXPECT_EQ(stats.received.bytes, 60U + 20000U);
    EXPECT_TRUE(script.program->check_accounting());
}

TEST_P(script_program_test, LargeSpansRunInPiecesOfABatch) {
    loaded_script script(GetParam(), R"lua(
seen = 0
function xdp(pkt)
    seen = seen + 1
    return seen % 2 == 0 and XDP_DROP or XDP_PASS
end
)lua");
    ASSERT_TRUE(script.program);
    packet_set packets(300);
    for (int i = 0; i < 150; ++i) {
        packets.add(ipv4_udp(1, 2, 3, 4));
    }
    const std::vector<xdp::action> out = packets.run(*script.program);
    EXPECT_EQ(std::count(out.begin(), out.end(), xdp::action::drop), 75);
    EXPECT_EQ(script.program->redirect_decisions().size(), 150U - 128U); // the last piece of at most 64
    EXPECT_EQ(script.program->stats().received.packets, 150U);
}

TEST_P(script_program_test, MapValueViewsLastOneCall) {
    loaded_script script(GetParam(), R"lua(
local counters = maps.declare{name = "counters", type = "array", key = "u32 index", value = "u64 n", max_entries = 1}
function xdp(pkt)
    if saved then
        local ok, message = pcall(function() return saved.n end)
        print(ok, message)
        return XDP_PASS
    end
    saved = counters:lookup(0)
    saved.n = 5
    return XDP_DROP
end
)lua");
    ASSERT_TRUE(script.program);
    trace_capture trace(script.state);
    for (int batch = 0; batch < 2; ++batch) {
        packet_set packets;
        packets.add(ipv4_udp(1, 2, 3, 4));
        packets.run(*script.program);
    }
    ASSERT_EQ(trace.lines.size(), 1U);
    EXPECT_THAT(trace.lines[0], ::testing::StartsWith("false\ttest.lua:5: a map value from an earlier call"));
    std::uint32_t key = 0;
    std::uint64_t value = 0;
    ASSERT_EQ(script.program->find_map("counters")->lookup_elem(&key, &value), 0);
    EXPECT_EQ(value, 5U); // the write went to the map
}

INSTANTIATE_TEST_SUITE_P(engines, script_program_test, ::testing::ValuesIn(testing::both_engines),
                         testing::engine_name);

} // namespace
} // namespace sluice::lua
