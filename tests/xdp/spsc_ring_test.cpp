// The cpumap ring: bounded, FIFO, bulk push and pop, a limit below capacity (an entry's qsize), and two threads
// moving a million numbered items through it without loss, duplication or reordering.
#include "sluice/xdp/spsc_ring.hpp"

#include <array>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::xdp {
namespace {

TEST(spsc_ring, capacity_is_a_power_of_two_and_bounds_pushes) {
    spsc_ring<int> ring(5);
    EXPECT_EQ(ring.capacity(), 8U);
    const std::array<int, 10> items{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    EXPECT_EQ(ring.push(items), 8U); // a prefix: what fits
    EXPECT_EQ(ring.size(), 8U);
    EXPECT_EQ(ring.push(items), 0U);
    std::array<int, 3> out{};
    ASSERT_EQ(ring.pop(out), 3U);
    EXPECT_EQ(out, (std::array<int, 3>{0, 1, 2}));
    // Wraps around: the next pushes land at the start of the storage.
    EXPECT_EQ(ring.push(std::span<const int>(items).subspan(8)), 2U);
    std::array<int, 16> rest{};
    ASSERT_EQ(ring.pop(rest), 7U);
    EXPECT_EQ(rest[0], 3);
    EXPECT_EQ(rest[4], 7);
    EXPECT_EQ(rest[5], 8);
    EXPECT_EQ(rest[6], 9);
    EXPECT_EQ(ring.pop(rest), 0U);
}

TEST(spsc_ring, a_limit_below_capacity_is_what_may_wait) {
    spsc_ring<int> ring(64);
    const std::array<int, 16> items{};
    EXPECT_EQ(ring.push(items, 10), 10U); // qsize 10
    EXPECT_EQ(ring.push(items, 10), 0U);
    std::array<int, 4> out{};
    ASSERT_EQ(ring.pop(out), 4U);
    EXPECT_EQ(ring.push(items, 10), 4U);
}

TEST(spsc_ring, two_threads_move_every_item_once_in_order) {
    constexpr std::uint64_t total = 1'000'000;
    spsc_ring<std::uint64_t> ring(256);
    std::thread producer([&] {
        std::array<std::uint64_t, 16> bulk{};
        std::uint64_t next = 0;
        while (next < total) {
            std::size_t count = 0;
            while (count < bulk.size() && next + count < total) {
                bulk[count] = next + count;
                ++count;
            }
            const std::size_t pushed = ring.push(std::span<const std::uint64_t>(bulk.data(), count));
            next += pushed;
            if (pushed == 0) {
                std::this_thread::yield();
            }
        }
    });
    std::uint64_t expected = 0;
    bool in_order = true;
    std::array<std::uint64_t, 64> out{};
    while (expected < total) {
        const std::size_t taken = ring.pop(out);
        for (std::size_t i = 0; i < taken; ++i) {
            in_order = in_order && out[i] == expected;
            ++expected;
        }
        if (taken == 0) {
            std::this_thread::yield();
        }
    }
    producer.join();
    EXPECT_TRUE(in_order);
    EXPECT_EQ(expected, total);
    EXPECT_EQ(ring.size(), 0U);
}

} // namespace
} // namespace sluice::xdp
