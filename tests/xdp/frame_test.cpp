// Frame layout as the kernel's (headroom, tailroom reserve, adjust_tail limits), reuse, and pool accounting.
#include "sluice/xdp/frame.hpp"

#include <array>
#include <atomic>
#include <cstdint>
#include <set>
#include <thread>
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

TEST(frame_pool, frames_over_external_memory_are_its_chunks_in_order) {
    // As an AF_XDP UMEM: 2048-byte chunks, not rounded, frame i at base + i * 2048; a partial chunk is not a frame.
    std::vector<std::uint8_t> umem(4 * 2048 + 100);
    frame_pool pool(umem, 2048);
    EXPECT_EQ(pool.size(), 4U);
    EXPECT_EQ(pool.frame_size(), 2048U);
    EXPECT_EQ(pool.memory(), umem.data());
    for (std::size_t i = 0; i < pool.size(); ++i) {
        frame* item = pool.at(i);
        EXPECT_EQ(item->hard_start(), umem.data() + i * 2048);
        EXPECT_EQ(pool.index_of(item), i);
        EXPECT_EQ(item->pool(), &pool);
        EXPECT_EQ(item->capacity(), 2048U - 256 - 320);
    }
    frame* first = pool.acquire();
    EXPECT_EQ(first, pool.at(0));
    std::array<std::uint8_t, 1472> bytes{};
    bytes.fill(0x5a);
    ASSERT_TRUE(first->assign(bytes));
    EXPECT_EQ(umem[256], 0x5a); // the packet lands in the caller's memory, after the headroom
    first->pool()->release(first);
    EXPECT_EQ(pool.available(), 4U);

    std::vector<std::uint8_t> tiny(4096);
    frame_pool too_small(tiny, 256); // smaller than headroom + reserve: no frames rather than broken ones
    EXPECT_EQ(too_small.size(), 0U);
    EXPECT_EQ(too_small.acquire(), nullptr);
}

TEST(frame_pool, a_thread_cache_takes_and_gives_back_in_bulk) {
    frame_pool pool(300);
    {
        frame_pool::cache local(pool);
        frame* item = pool.acquire(); // through the cache: it took a bulk of 64 from the shared stack
        ASSERT_NE(item, nullptr);
        EXPECT_EQ(local.size(), frame_pool::bulk - 1);
        EXPECT_EQ(pool.available(), 299U);
        std::vector<frame*> many(200);
        EXPECT_EQ(pool.acquire_batch(many), 200U);
        EXPECT_EQ(pool.outstanding(), 201U);
        pool.release_batch(many);
        pool.release(item);
        EXPECT_LE(local.size(), 2 * frame_pool::bulk); // spilled past its capacity
        EXPECT_EQ(pool.available(), 300U);
        pool.release(item);
        EXPECT_EQ(pool.bad_releases(), 1U); // double release still caught through the cache
    }
    EXPECT_EQ(pool.available(), 300U); // the cache gave its frames back when it ended
    std::vector<frame*> all(300);
    EXPECT_EQ(pool.acquire_batch(all), 300U);
    pool.release_batch(all);
}

TEST(frame_pool, frames_acquired_on_one_thread_are_released_on_another) {
    // cpumap's situation: worker 0 acquires, worker 1 releases; both with their own caches, frames are conserved.
    constexpr std::size_t frames_per_round = 100;
    constexpr int rounds = 200;
    frame_pool pool(512);
    std::vector<frame*> handoff(frames_per_round);
    std::atomic<int> turn{0}; // even: producer's turn, odd: consumer's
    std::atomic<std::size_t> null_acquires{0};
    std::thread producer([&] {
        frame_pool::cache local(pool);
        for (int round = 0; round < rounds; ++round) {
            while (turn.load(std::memory_order_acquire) != 2 * round) {
                std::this_thread::yield();
            }
            if (pool.acquire_batch(handoff) != frames_per_round) {
                null_acquires.fetch_add(1);
            }
            turn.store(2 * round + 1, std::memory_order_release);
        }
    });
    std::thread consumer([&] {
        frame_pool::cache local(pool);
        for (int round = 0; round < rounds; ++round) {
            while (turn.load(std::memory_order_acquire) != 2 * round + 1) {
                std::this_thread::yield();
            }
            pool.release_batch(handoff);
            turn.store(2 * round + 2, std::memory_order_release);
        }
    });
    producer.join();
    consumer.join();
    EXPECT_EQ(null_acquires.load(), 0U);
    EXPECT_EQ(pool.bad_releases(), 0U);
    EXPECT_EQ(pool.available(), 512U);
}

} // namespace
} // namespace sluice::xdp
