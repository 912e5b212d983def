// The memory port: packets in order with their records and the port's ifindex, packets too large for a frame counted
// as errors, replay rounds, a live input until closed, TX capture and a TX capacity that refuses frames.
#include "sluice/io/memory_port.hpp"

#include <array>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::io {
namespace {

std::vector<std::uint8_t> bytes_of(std::size_t length, std::uint8_t first) {
    std::vector<std::uint8_t> out(length, 0xab);
    out[0] = first;
    return out;
}

TEST(memory_port, delivers_in_order_with_ingress_and_records) {
    xdp::frame_pool pool(16);
    memory_port port("memory:test", pool);
    EXPECT_EQ(port.features().kind, "memory");
    EXPECT_GE(port.ifindex(), 1U << 24); // sluice's own ifindexes are above the kernel's
    port.inject(bytes_of(60, 1));
    port.inject(bytes_of(100, 2), 77);
    port.inject(bytes_of(5000, 3)); // larger than a standard frame: not delivered, an rx error
    port.inject(bytes_of(64, 4));
    EXPECT_FALSE(port.exhausted()); // live until closed
    std::array<xdp::frame*, 8> frames{};
    ASSERT_EQ(port.rx_batch(frames), 3U);
    EXPECT_EQ(frames[0]->packet()[0], 1);
    EXPECT_EQ(frames[0]->length(), 60U);
    EXPECT_EQ(frames[0]->info().record, 1U);
    EXPECT_EQ(frames[1]->info().record, 77U);
    EXPECT_EQ(frames[2]->packet()[0], 4);
    EXPECT_EQ(frames[2]->context().ingress_ifindex, port.ifindex());
    EXPECT_EQ(port.stats().rx_packets, 3U);
    EXPECT_EQ(port.stats().rx_errors, 1U);
    EXPECT_EQ(pool.outstanding(), 3U); // the frames for the refused packet went back
    EXPECT_FALSE(port.exhausted());
    port.close_input();
    EXPECT_TRUE(port.exhausted());
    pool.release_batch(std::span<xdp::frame* const>(frames.data(), 3));
}

TEST(memory_port, replays_rounds_and_waits_for_frames) {
    xdp::frame_pool pool(4);
    memory_port port("memory:replay", pool);
    port.inject(bytes_of(60, 1));
    port.inject(bytes_of(60, 2));
    port.inject(bytes_of(60, 3));
    port.repeat(3);
    port.close_input();
    std::vector<std::uint8_t> seen;
    std::array<xdp::frame*, 8> frames{};
    while (!port.exhausted()) {
        const std::size_t count = port.rx_batch(frames); // at most 4 at a time: the pool's size
        ASSERT_LE(count, 4U);
        ASSERT_NE(count, 0U);
        for (std::size_t i = 0; i < count; ++i) {
            seen.push_back(frames[i]->packet()[0]);
        }
        pool.release_batch(std::span<xdp::frame* const>(frames.data(), count));
    }
    EXPECT_EQ(seen, (std::vector<std::uint8_t>{1, 2, 3, 1, 2, 3, 1, 2, 3}));
    EXPECT_EQ(port.rx_batch(frames), 0U);
}

TEST(memory_port, transmits_copies_and_refuses_beyond_its_capacity) {
    xdp::frame_pool pool(8);
    memory_port_options options;
    options.tx_capacity = 2;
    memory_port port("memory:out", pool, options);
    std::array<xdp::frame*, 3> frames{};
    ASSERT_EQ(pool.acquire_batch(frames), 3U);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        ASSERT_TRUE(frames[i]->assign(bytes_of(64, static_cast<std::uint8_t>(10 + i))));
        frames[i]->context().egress_ifindex = 5;
    }
    ASSERT_EQ(port.tx_batch(frames), 2U); // a prefix; the third stays the caller's
    EXPECT_EQ(pool.outstanding(), 1U);
    const auto sent = port.transmitted();
    ASSERT_EQ(sent.size(), 2U);
    EXPECT_EQ(sent[1].bytes[0], 11);
    EXPECT_EQ(sent[1].egress_ifindex, 5U);
    EXPECT_EQ(port.stats().tx_packets, 2U);
    EXPECT_EQ(port.stats().tx_bytes, 128U);
    pool.release(frames[2]);

    memory_port_options closed;
    closed.tx_capacity = 0;
    memory_port refusing("memory:closed", pool, closed);
    EXPECT_FALSE(refusing.features().tx);
    xdp::frame* one = pool.acquire();
    EXPECT_EQ(refusing.tx_batch({&one, 1}), 0U);
    pool.release(one);
}

TEST(memory_port, open_memory_port_gives_a_closed_target) {
    xdp::frame_pool pool(4);
    auto opened = open_memory_port("memory:sink", "sink", pool);
    ASSERT_TRUE(opened) << opened.error().message;
    EXPECT_TRUE((*opened)->exhausted());
    EXPECT_TRUE((*opened)->features().redirect_target);
    auto unnamed = open_memory_port("memory:", "", pool);
    ASSERT_FALSE(unnamed);
    EXPECT_NE(unnamed.error().message.find("memory:"), std::string::npos);
}

} // namespace
} // namespace sluice::io
