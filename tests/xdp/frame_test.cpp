// Frame layout as the kernel's (headroom, tailroom reserve, adjust_tail limits), reuse, and pool accounting.
#include "sluice/xdp/frame.hpp"

#include <array>
#include <cstdint>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace sluice::xdp {
namespace {

// bpf_xdp_adjust_tail's acceptance test on a linear buffer (net/core/filter.c), written against our context, so that
// the tests below state the kernel's numbers: BPF_PROG_TEST_RUN lets a 64-byte packet grow by at most 3456 bytes.
bool kernel_accepts_adjust_tail(const ebpf::xdp_context& context, std::int64_t delta) {
    const std::int64_t hard_end = static_cast<std::int64_t>(context.frame_size) - frame_tailroom_reserve;
    const std::int64_t data = context.data - context.data_hard_start;
    const std::int64_t data_end = (context.data_end - context.data_hard_start) + delta;
    if (data_end > hard_end || context.frame_size > page_size) {
        return false;
    }
    return data_end >= data + 14;
}

TEST(frame, standard_frame_has_the_kernel_layout) {
    frame_pool pool(4);
    frame* item = pool.acquire();
    ASSERT_NE(item, nullptr);
    const auto& context = item->context();
    EXPECT_EQ(context.frame_size, 4096U);
    EXPECT_EQ(context.data - context.data_hard_start, 256);
    EXPECT_EQ(context.data_meta, context.data);
    EXPECT_EQ(context.data_end, context.data);
    EXPECT_EQ(item->capacity(), 3520U);
    EXPECT_EQ(item->hard_end() - item->hard_start(), 4096 - 320);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(item->hard_start()) % 4096, 0U);
    EXPECT_FALSE(item->is_larger_than_page());
}

TEST(frame, adjust_tail_limits_match_bpf_prog_test_run) {
    frame_pool pool(1);
    frame* item = pool.acquire();
    std::array<std::uint8_t, 64> bytes{};
    ASSERT_TRUE(item->assign(bytes));
    // test_run: data at 256, frame_sz 4096, data_hard_end at 4096 - 320 = 3776, so 64 + 3456 is the limit.
    EXPECT_TRUE(kernel_accepts_adjust_tail(item->context(), 3456));
    EXPECT_FALSE(kernel_accepts_adjust_tail(item->context(), 3457));
    EXPECT_TRUE(kernel_accepts_adjust_tail(item->context(), -50));
    EXPECT_FALSE(kernel_accepts_adjust_tail(item->context(), -51));
    EXPECT_EQ(item->hard_end() - item->context().data_end, 3456);
}

TEST(frame, assign_copies_and_refuses_packets_larger_than_the_frame) {
    frame_pool pool(1);
    frame* item = pool.acquire();
    std::vector<std::uint8_t> bytes(3520);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<std::uint8_t>(i * 7);
    }
    ASSERT_TRUE(item->assign(bytes));
    EXPECT_EQ(item->length(), 3520U);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), item->packet().begin()));
    bytes.push_back(0);
    EXPECT_FALSE(item->assign(bytes));
    EXPECT_EQ(item->length(), 0U);
    EXPECT_TRUE(item->assign({}));
    EXPECT_EQ(item->length(), 0U);
}

TEST(frame, reset_restores_a_frame_a_program_moved) {
    frame_pool pool(1);
    frame* item = pool.acquire();
    std::array<std::uint8_t, 100> bytes{};
    ASSERT_TRUE(item->assign(bytes));
    item->set_ingress(3, 1);
    item->info().record = 9;
    auto& context = item->context();
    context.data -= 20; // as bpf_xdp_adjust_head(ctx, -20)
    context.data_meta = context.data - 8;
    context.data_end += 30;
    item->reset();
    EXPECT_EQ(context.data - context.data_hard_start, 256);
    EXPECT_EQ(context.data_meta, context.data);
    EXPECT_EQ(context.data_end, context.data);
    EXPECT_EQ(context.ingress_ifindex, 0U);
    EXPECT_EQ(item->info().record, 0U);
}

TEST(frame, jumbo_frames_hold_9000_bytes_and_are_marked_larger_than_a_page) {
    EXPECT_EQ(frame_size_for(64), standard_frame_size);
    EXPECT_EQ(frame_size_for(3520), standard_frame_size);
    EXPECT_EQ(frame_size_for(3521), 2 * page_size);
    EXPECT_EQ(frame_size_for(9000), 3 * page_size);
    frame_pool pool(2, jumbo_frame_size);
    frame* item = pool.acquire();
    EXPECT_EQ(item->capacity(), 16384U - 256 - 320);
    std::vector<std::uint8_t> bytes(9000, 0xab);
    ASSERT_TRUE(item->assign(bytes));
    EXPECT_TRUE(item->is_larger_than_page());
    EXPECT_FALSE(kernel_accepts_adjust_tail(item->context(), -10)); // the kernel's frame_sz > PAGE_SIZE check
}

TEST(frame_pool, accounts_for_every_frame) {
    frame_pool pool(8);
    EXPECT_EQ(pool.size(), 8U);
    EXPECT_EQ(pool.available(), 8U);
    std::array<frame*, 5> batch{};
    EXPECT_EQ(pool.acquire_batch(batch), 5U);
    EXPECT_EQ(pool.outstanding(), 5U);
    std::set<std::uint8_t*> buffers;
    for (frame* item : batch) {
        buffers.insert(item->hard_start());
    }
    EXPECT_EQ(buffers.size(), 5U);
    std::array<frame*, 5> more{};
    EXPECT_EQ(pool.acquire_batch(more), 3U);
    EXPECT_EQ(pool.acquire(), nullptr);
    EXPECT_EQ(pool.outstanding(), 8U);
    pool.release_batch(batch);
    pool.release_batch(std::span<frame* const>(more.data(), 3));
    EXPECT_EQ(pool.outstanding(), 0U);
    EXPECT_EQ(pool.bad_releases(), 0U);
}

TEST(frame_pool, double_and_foreign_releases_are_ignored_and_counted) {
    frame_pool pool(2);
    frame_pool other(1);
    frame* item = pool.acquire();
    pool.release(item);
    pool.release(item);
    pool.release(other.acquire());
    pool.release(nullptr);
    EXPECT_EQ(pool.bad_releases(), 3U);
    EXPECT_EQ(pool.available(), 2U);
}

TEST(frame_pool, recycled_frames_come_back_reset) {
    frame_pool pool(1);
    frame* item = pool.acquire();
    std::array<std::uint8_t, 60> bytes{};
    ASSERT_TRUE(item->assign(bytes));
    item->context().data += 14;
    pool.release(item);
    frame* again = pool.acquire();
    EXPECT_EQ(again, item);
    EXPECT_EQ(again->length(), 0U);
    EXPECT_EQ(again->context().data - again->context().data_hard_start, 256);
}

} // namespace
} // namespace sluice::xdp
