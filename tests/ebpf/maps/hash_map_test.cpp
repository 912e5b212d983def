// hash, percpu_hash, lru_hash, lru_percpu_hash: flags, error codes, iteration, per-CPU isolation, LRU eviction, and
// the kernel as oracle.
#include <vector>

#include <gtest/gtest.h>

#include "random_operations.hpp"

namespace sluice::ebpf {
namespace {

using testing::kernel_map;

std::unique_ptr<map> make(const map_definition& definition, unsigned cpus = 2) {
    return testing::make_map(definition, cpus);
}

TEST(HashMap, FlagsAndErrors) {
    auto table = make({map_type::hash, 4, 8, 2, 0, "h"});
    std::uint32_t key = 1;
    std::uint64_t value = 10;
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::exist), -ENOENT);
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::noexist), 0);
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::noexist), -EEXIST);
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::lock), -EINVAL);
    EXPECT_EQ(table->update_elem(&key, &value, 8), -EINVAL);
    key = 2;
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::any), 0);
    key = 3;
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::any), -E2BIG); // full
    key = 1;
    value = 11;
    EXPECT_EQ(table->update_elem(&key, &value, update_flag::exist), 0); // replacing works when full
    EXPECT_EQ(*static_cast<std::uint64_t*>(table->lookup(&key, 0)), 11U);
    EXPECT_EQ(table->delete_elem(&key), 0);
    EXPECT_EQ(table->delete_elem(&key), -ENOENT);
    EXPECT_EQ(table->lookup(&key, 0), nullptr);
    std::uint64_t out = 0;
    EXPECT_EQ(table->lookup_elem(&key, &out), -ENOENT);
}

TEST(HashMap, GetNextKeyWalksEveryKeyOnce) {
    auto table = make({map_type::hash, 4, 4, 64, 0, "h"});
    for (std::uint32_t key = 0; key < 50; ++key) {
        ASSERT_EQ(table->update_elem(&key, &key, 0), 0);
    }
    std::vector<bool> seen(50);
    std::uint32_t key = 0, next = 0;
    const void* from = nullptr;
    int count = 0;
    while (table->get_next_key(from, &next) == 0) {
        ASSERT_LT(next, 50U);
        ASSERT_FALSE(seen[next]);
        seen[next] = true;
        key = next;
        from = &key;
        ++count;
    }
    EXPECT_EQ(count, 50);
    std::uint32_t missing = 999;
    ASSERT_EQ(table->get_next_key(&missing, &next), 0); // a missing key restarts from the first
    std::uint32_t first = 0;
    ASSERT_EQ(table->get_next_key(nullptr, &first), 0);
    EXPECT_EQ(next, first);
}

TEST(HashMap, PerCpuSlotsAreIsolated) {
    auto table = make({map_type::percpu_hash, 4, 4, 4, 0, "h"}, 3);
    std::uint32_t key = 7, value = 5;
    ASSERT_EQ(table->update(&key, &value, 0, 1), 0); // a new element: cpu 1 set, others zeroed
    EXPECT_EQ(*static_cast<std::uint32_t*>(table->lookup(&key, 1)), 5U);
    EXPECT_EQ(*static_cast<std::uint32_t*>(table->lookup(&key, 0)), 0U);
    *static_cast<std::uint32_t*>(table->lookup(&key, 2)) = 9;
    value = 6;
    ASSERT_EQ(table->update(&key, &value, update_flag::exist, 0), 0);
    ASSERT_EQ(table->syscall_value_size(), 24U);
    std::uint64_t all[3];
    ASSERT_EQ(table->lookup_elem(&key, all), 0);
    EXPECT_EQ(all[0], 6U);
    EXPECT_EQ(all[1], 5U);
    EXPECT_EQ(all[2], 9U);
    const std::uint64_t written[3] = {1, 2, 3};
    ASSERT_EQ(table->update_elem(&key, written, 0), 0);
    EXPECT_EQ(*static_cast<std::uint32_t*>(table->lookup(&key, 2)), 3U);
}

TEST(LruHashMap, EvictsTheLeastRecentlyUsedInsteadOfFailing) {
    // One cpu and 4 entries: target_free is 2, so the first refill moves 2 free nodes to the local list, the second
    // the other 2; after that each refill shrinks the inactive list from its tail (the oldest insertions).
    auto table = make({map_type::lru_hash, 4, 8, 4, 0, "l"}, 1);
    std::uint64_t value = 0;
    for (std::uint32_t key = 0; key < 4; ++key) {
        ASSERT_EQ(table->update_elem(&key, &value, 0), 0);
    }
    std::uint32_t key = 0;
    ASSERT_NE(table->lookup(&key, 0), nullptr); // programs' lookups set the ref bit: key 0 survives
    key = 4;
    ASSERT_EQ(table->update_elem(&key, &value, 0), 0);
    key = 5;
    ASSERT_EQ(table->update_elem(&key, &value, 0), 0);
    std::vector<std::uint32_t> present;
    for (std::uint32_t each = 0; each < 6; ++each) {
        if (table->lookup_elem(&each, &value) == 0) {
            present.push_back(each);
        }
    }
    EXPECT_EQ(present, (std::vector<std::uint32_t>{0, 3, 4, 5}));
}

TEST(LruHashMap, PerCpuListsEachHoldTheirShare) {
    auto table = make({map_type::lru_hash, 4, 8, 4, map_flag::no_common_lru, "l"}, 2);
    std::uint64_t value = 0;
    // Cpu 1's list has 2 nodes: its third insertion evicts one of its own, never cpu 0's.
    for (std::uint32_t key = 0; key < 2; ++key) {
        ASSERT_EQ(table->update(&key, &value, 0, 0), 0);
    }
    for (std::uint32_t key = 10; key < 13; ++key) {
        ASSERT_EQ(table->update(&key, &value, 0, 1), 0);
    }
    for (std::uint32_t key = 0; key < 2; ++key) {
        EXPECT_EQ(table->lookup_elem(&key, &value), 0) << key;
    }
    std::uint32_t key = 10;
    EXPECT_EQ(table->lookup_elem(&key, &value), -ENOENT);
}

// ---- the kernel as oracle ----

struct oracle_case {
    const char* name;
    map_definition definition;
};

class HashKernelOracle : public ::testing::TestWithParam<oracle_case> {};

TEST_P(HashKernelOracle, SameResults) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    // The kernel's per-cpu LRU lists and free lists depend on the cpu making the call: one known cpu for all calls.
    testing::pin_to_cpu0 pinned;
    const map_definition& definition = GetParam().definition;
    kernel_map theirs(definition);
    ASSERT_EQ(theirs.status(), 0);
    auto ours = make(definition, testing::kernel_cpus());
    testing::operation_mix mix;
    mix.keys = definition.max_entries + 8; // overfull: -E2BIG for hashes, eviction for LRU
    for (std::uint32_t seed = 1; seed <= 4; ++seed) {
        testing::compare_random_operations(*ours, theirs, 600, seed, mix);
        if (HasFatalFailure()) {
            return;
        }
        testing::expect_same_contents(*ours, theirs);
    }
}

// BPF_F_ZERO_SEED makes the kernel's buckets, and so its get_next_key order, deterministic: we compare the order too.
INSTANTIATE_TEST_SUITE_P(
    Kinds, HashKernelOracle,
    ::testing::Values(oracle_case{"hash", {map_type::hash, 4, 8, 16, map_flag::zero_seed, "h"}},
                      oracle_case{"hash_odd_key", {map_type::hash, 7, 12, 16, map_flag::zero_seed, "h"}},
                      oracle_case{"hash_long_key", {map_type::hash, 29, 8, 16, map_flag::zero_seed, "h"}},
                      oracle_case{"hash_no_prealloc",
                                  {map_type::hash, 4, 8, 16, map_flag::zero_seed | map_flag::no_prealloc, "h"}},
                      oracle_case{"percpu_hash", {map_type::percpu_hash, 4, 8, 16, map_flag::zero_seed, "h"}},
                      oracle_case{"percpu_hash_odd", {map_type::percpu_hash, 4, 5, 16, map_flag::zero_seed, "h"}},
                      oracle_case{"lru_hash", {map_type::lru_hash, 4, 8, 16, map_flag::zero_seed, "l"}},
                      oracle_case{"lru_hash_percpu_lists",
                                  {map_type::lru_hash, 4, 8, 16, map_flag::zero_seed | map_flag::no_common_lru, "l"}},
                      oracle_case{"lru_percpu_hash", {map_type::lru_percpu_hash, 4, 8, 16, map_flag::zero_seed, "l"}}),
    [](const ::testing::TestParamInfo<oracle_case>& each) { return std::string(each.param.name); });

} // namespace
} // namespace sluice::ebpf
