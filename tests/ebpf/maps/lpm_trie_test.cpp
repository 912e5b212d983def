// lpm_trie: longest-prefix match on IPv4 and IPv6 keys, /0 and full-length prefixes, overlapping prefixes, deleting a
// covering prefix, get_next_key's postorder, and the kernel as oracle on random prefixes.
#include <arpa/inet.h>

#include <array>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "random_operations.hpp"

namespace sluice::ebpf {
namespace {

using testing::kernel_map;

struct ipv4_key {
    std::uint32_t prefixlen;
    std::array<std::uint8_t, 4> data;
};
struct ipv6_key {
    std::uint32_t prefixlen;
    std::array<std::uint8_t, 16> data;
};

ipv4_key v4(const char* address, std::uint32_t prefixlen) {
    ipv4_key key{prefixlen, {}};
    inet_pton(AF_INET, address, key.data.data());
    return key;
}
ipv6_key v6(const char* address, std::uint32_t prefixlen) {
    ipv6_key key{prefixlen, {}};
    inet_pton(AF_INET6, address, key.data.data());
    return key;
}

std::unique_ptr<map> make(const map_definition& definition) {
    return testing::make_map(definition, 1);
}

template <typename Key> std::uint64_t match(map& trie, const Key& address) {
    const void* value = trie.lookup(&address, 0);
    return value != nullptr ? *static_cast<const std::uint64_t*>(value) : 0;
}

TEST(LpmTrie, Ipv4LongestPrefixWins) {
    auto trie = make({map_type::lpm_trie, 8, 8, 16, map_flag::no_prealloc, "t"});
    const std::pair<ipv4_key, std::uint64_t> routes[] = {
        {v4("0.0.0.0", 0), 1}, {v4("10.0.0.0", 8), 2}, {v4("10.1.0.0", 16), 3},
        {v4("10.1.2.0", 24), 4}, {v4("10.1.2.3", 32), 5}, {v4("192.168.0.0", 16), 6}};
    for (const auto& [key, value] : routes) {
        ASSERT_EQ(trie->update_elem(&key, &value, 0), 0);
    }
    EXPECT_EQ(match(*trie, v4("10.1.2.3", 32)), 5U);
    EXPECT_EQ(match(*trie, v4("10.1.2.4", 32)), 4U);
    EXPECT_EQ(match(*trie, v4("10.1.3.4", 32)), 3U);
    EXPECT_EQ(match(*trie, v4("10.2.3.4", 32)), 2U);
    EXPECT_EQ(match(*trie, v4("11.0.0.1", 32)), 1U);
    EXPECT_EQ(match(*trie, v4("192.168.7.7", 32)), 6U);
    EXPECT_EQ(match(*trie, v4("10.1.2.3", 20)), 3U); // the lookup key's own prefix length bounds the match

    // Deleting a covering prefix keeps the more specific ones and the ones above it.
    const auto covering = v4("10.1.0.0", 16);
    ASSERT_EQ(trie->delete_elem(&covering), 0);
    EXPECT_EQ(trie->delete_elem(&covering), -ENOENT);
    EXPECT_EQ(match(*trie, v4("10.1.3.4", 32)), 2U);
    EXPECT_EQ(match(*trie, v4("10.1.2.9", 32)), 4U);
    const auto root = v4("0.0.0.0", 0);
    ASSERT_EQ(trie->delete_elem(&root), 0);
    EXPECT_EQ(match(*trie, v4("11.0.0.1", 32)), 0U);
}

TEST(LpmTrie, Ipv6FullLengthAndErrors) {
    auto trie = make({map_type::lpm_trie, 20, 8, 4, map_flag::no_prealloc, "t"});
    const auto host = v6("2001:db8::1", 128);
    const auto net = v6("2001:db8::", 32);
    std::uint64_t value = 128;
    ASSERT_EQ(trie->update_elem(&host, &value, update_flag::noexist), 0);
    EXPECT_EQ(trie->update_elem(&host, &value, update_flag::noexist), -EEXIST);
    EXPECT_EQ(trie->update_elem(&net, &value, update_flag::exist), -ENOENT);
    value = 32;
    ASSERT_EQ(trie->update_elem(&net, &value, 0), 0);
    EXPECT_EQ(match(*trie, v6("2001:db8::1", 128)), 128U);
    EXPECT_EQ(match(*trie, v6("2001:db8::2", 128)), 32U);
    EXPECT_EQ(match(*trie, v6("2001:db9::1", 128)), 0U);
    const auto too_long = v6("2001:db8::", 129);
    EXPECT_EQ(trie->update_elem(&too_long, &value, 0), -EINVAL);
    EXPECT_EQ(trie->delete_elem(&too_long), -EINVAL);
    EXPECT_EQ(trie->update_elem(&host, &value, 4), -EINVAL);
    for (const char* address : {"::1", "::2", "::3"}) {
        const auto key = v6(address, 128);
        const long status = trie->update_elem(&key, &value, 0);
        EXPECT_EQ(status, std::string(address) == "::3" ? -ENOSPC : 0) << address;
    }
}

TEST(LpmTrie, GetNextKeyIsPostorder) {
    auto trie = make({map_type::lpm_trie, 8, 8, 8, map_flag::no_prealloc, "t"});
    const ipv4_key keys[] = {v4("192.168.0.0", 16), v4("192.168.0.0", 24), v4("192.168.1.0", 24),
                             v4("192.168.128.0", 24)};
    std::uint64_t value = 0;
    for (const auto& key : keys) {
        ASSERT_EQ(trie->update_elem(&key, &value, 0), 0);
    }
    // The kernel's own example: more specific prefixes first.
    const ipv4_key expected[] = {v4("192.168.0.0", 24), v4("192.168.1.0", 24), v4("192.168.128.0", 24),
                                 v4("192.168.0.0", 16)};
    ipv4_key current{}, next{};
    const void* from = nullptr;
    for (const auto& want : expected) {
        ASSERT_EQ(trie->get_next_key(from, &next), 0);
        EXPECT_EQ(next.prefixlen, want.prefixlen);
        EXPECT_EQ(next.data, want.data);
        current = next;
        from = &current;
    }
    EXPECT_EQ(trie->get_next_key(from, &next), -ENOENT);
}

// Random IPv4 prefixes drawn from a small space so that they overlap, nest and repeat.
std::uint32_t random_prefix(std::uint32_t draw, std::byte* key, std::size_t) {
    std::mt19937 random(draw);
    ipv4_key prefix{static_cast<std::uint32_t>(random() % 34), {}}; // 33: invalid
    const std::uint32_t address = (random() & 0xff00ff00U) | 0x0a000000U;
    for (int i = 0; i < 4; ++i) {
        prefix.data[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(address >> (24 - 8 * i));
    }
    std::memcpy(key, &prefix, sizeof prefix);
    return draw;
}

TEST(LpmTrieKernelOracle, SameResults) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    const map_definition definition{map_type::lpm_trie, 8, 8, 24, map_flag::no_prealloc, "t"};
    kernel_map theirs(definition);
    ASSERT_EQ(theirs.status(), 0);
    auto ours = make(definition);
    testing::operation_mix mix;
    mix.keys = 64;
    mix.lookup_and_delete = false;
    mix.make_key = random_prefix;
    for (std::uint32_t seed = 1; seed <= 4; ++seed) {
        testing::compare_random_operations(*ours, theirs, 800, seed, mix);
        if (HasFatalFailure()) {
            return;
        }
        testing::expect_same_contents(*ours, theirs);
        // Longest-prefix lookups of random addresses.
        std::mt19937 random(seed);
        for (int i = 0; i < 200; ++i) {
            ipv4_key address{32, {}};
            const std::uint32_t bits = (random() & 0xff00ffffU) | 0x0a000000U;
            for (int b = 0; b < 4; ++b) {
                address.data[static_cast<std::size_t>(b)] = static_cast<std::uint8_t>(bits >> (24 - 8 * b));
            }
            std::uint64_t our_value = 0, their_value = 0;
            ASSERT_EQ(ours->lookup_elem(&address, &our_value), theirs.lookup_elem(&address, &their_value));
            EXPECT_EQ(our_value, their_value);
        }
    }
}

TEST(LpmTrieKernelOracle, Ipv6SameResults) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    const map_definition definition{map_type::lpm_trie, 20, 8, 8, map_flag::no_prealloc, "t6"};
    kernel_map theirs(definition);
    ASSERT_EQ(theirs.status(), 0);
    auto ours = make(definition);
    const ipv6_key keys[] = {v6("::", 0), v6("2001:db8::", 32), v6("2001:db8::1", 128), v6("2001:db8:1::", 48),
                             v6("fe80::", 10)};
    std::uint64_t value = 1;
    for (const auto& key : keys) {
        ++value;
        ASSERT_EQ(ours->update_elem(&key, &value, 0), theirs.update_elem(&key, &value, 0));
    }
    testing::expect_same_contents(*ours, theirs);
    for (const char* address : {"2001:db8::1", "2001:db8::2", "2001:db8:1::5", "fe80::1", "::1"}) {
        const auto key = v6(address, 128);
        std::uint64_t our_value = 0, their_value = 0;
        ASSERT_EQ(ours->lookup_elem(&key, &our_value), theirs.lookup_elem(&key, &their_value)) << address;
        EXPECT_EQ(our_value, their_value) << address;
    }
}

} // namespace
} // namespace sluice::ebpf
