// The control plane updates maps on one thread while a "worker" looks values up without a lock on another: no crash,
// and every 8-byte value read is one that was written whole (each value written is k * 0x0101010101010101 for some
// byte k, so a torn read shows up as mixed bytes).
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf {
namespace {

constexpr std::uint64_t spread = 0x0101010101010101ULL;

bool whole(std::uint64_t value) { return value == (value & 0xff) * spread; }

class Concurrency : public ::testing::TestWithParam<map_definition> {};

TEST_P(Concurrency, LookupsSeeWholeOldOrNewValues) {
    auto created = create_map(GetParam(), 2);
    ASSERT_TRUE(created.has_value()) << created.error().message;
    map& table = **created;
    const bool trie = GetParam().type == map_type::lpm_trie;
    const auto make_key = [&](std::uint32_t index, std::byte* key) {
        std::memset(key, 0, table.key_size());
        if (trie) {
            const std::uint32_t prefixlen = 32;
            std::memcpy(key, &prefixlen, 4);
            std::memcpy(key + 4, &index, 4);
        } else {
            std::memcpy(key, &index, 4);
        }
    };
    constexpr std::uint32_t keys = 8;
    std::atomic<bool> done{false}, started{false};
    std::atomic<std::uint64_t> torn{0}, hits{0};
    std::thread worker([&] {
        started = true;
        std::byte key[8];
        for (std::uint64_t round = 0; !done.load(std::memory_order_relaxed); ++round) {
            make_key(static_cast<std::uint32_t>(round % keys), key);
            if (const void* slot = table.lookup(key, 1); slot != nullptr) {
                const std::uint64_t value = __atomic_load_n(static_cast<const std::uint64_t*>(slot), __ATOMIC_RELAXED);
                hits.fetch_add(1, std::memory_order_relaxed);
                if (!whole(value)) {
                    torn.fetch_add(1, std::memory_order_relaxed);
                }
            }
        }
    });
    while (!started) { // the writer is fast: it must not finish before the reader begins
        std::this_thread::yield();
    }
    std::byte key[8];
    std::uint64_t values[2]; // per-CPU maps take one value per cpu from the control plane
    // At least 200'000 updates, and on until the reader has seen values: on a busy machine it may get little time.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (std::uint32_t round = 0;
         round < 200'000 || (hits.load(std::memory_order_relaxed) < 1000 && std::chrono::steady_clock::now() < deadline);
         ++round) {
        make_key(round % keys, key);
        values[0] = values[1] = (round & 0xff) * spread;
        if (round % 5 == 4 && table.type() != map_type::array && table.type() != map_type::percpu_array) {
            (void)table.delete_elem(key);
        } else {
            ASSERT_EQ(table.update_elem(key, values, update_flag::any), 0);
        }
    }
    done = true;
    worker.join();
    EXPECT_EQ(torn.load(), 0U);
    EXPECT_GT(hits.load(), 0U);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, Concurrency,
    ::testing::Values(map_definition{map_type::array, 4, 8, 8, 0, "a"},
                      map_definition{map_type::percpu_array, 4, 8, 8, 0, "a"},
                      map_definition{map_type::hash, 4, 8, 8, 0, "h"},
                      map_definition{map_type::percpu_hash, 4, 8, 8, 0, "h"},
                      map_definition{map_type::lru_hash, 4, 8, 8, 0, "l"},
                      map_definition{map_type::lru_percpu_hash, 4, 8, 16, 0, "l"},
                      map_definition{map_type::lpm_trie, 8, 8, 8, map_flag::no_prealloc, "t"}),
    [](const ::testing::TestParamInfo<map_definition>& each) { return std::string(to_string(each.param.type)); });

// Two workers update the same hash from their own cpus while the control plane deletes: no lost element, no crash.
TEST(Concurrency, WorkersUpdateWhileControlPlaneDeletes) {
    auto created = create_map({map_type::hash, 4, 8, 64, 0, "h"}, 2);
    ASSERT_TRUE(created.has_value());
    map& table = **created;
    std::atomic<bool> done{false};
    const auto work = [&](unsigned cpu) {
        for (std::uint64_t round = 0; !done.load(std::memory_order_relaxed); ++round) {
            const auto key = static_cast<std::uint32_t>(round % 32 + cpu * 32);
            const std::uint64_t value = (round & 0xff) * spread;
            const long status = table.update(&key, &value, update_flag::any, cpu);
            EXPECT_TRUE(status == 0 || status == -E2BIG) << status;
        }
    };
    std::thread first(work, 0U), second(work, 1U);
    for (std::uint32_t round = 0; round < 100'000; ++round) {
        const std::uint32_t key = round % 64;
        (void)table.delete_elem(&key);
    }
    done = true;
    first.join();
    second.join();
    int count = 0;
    ASSERT_EQ(table.for_each([&](std::span<const std::byte>, std::span<const std::byte> value) {
        std::uint64_t word;
        std::memcpy(&word, value.data(), 8);
        EXPECT_TRUE(whole(word));
        ++count;
        return true;
    }),
              0);
    EXPECT_LE(count, 64);
}

} // namespace
} // namespace sluice::ebpf
