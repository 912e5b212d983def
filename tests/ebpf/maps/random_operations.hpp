// Random control-plane operations applied to a sluice map and a kernel map in lockstep: every return code, every
// value read and every key get_next_key gives must be the same.
#pragma once

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "kernel_oracle.hpp"

namespace sluice::ebpf::testing {

struct operation_mix {
    std::uint32_t keys = 24;           ///< keys are drawn from [0, keys)
    bool compare_order = true;         ///< get_next_key results must match (needs BPF_F_ZERO_SEED for hashes)
    bool lookup_and_delete = true;     ///< the kind supports BPF_MAP_LOOKUP_AND_DELETE_ELEM
    std::uint32_t (*make_key)(std::uint32_t draw, std::byte* key, std::size_t key_size) = nullptr;
};

/// Writes `draw` into a key of key_size bytes (little-endian, zero padded).
inline std::uint32_t plain_key(std::uint32_t draw, std::byte* key, std::size_t key_size) {
    std::memset(key, 0, key_size);
    std::memcpy(key, &draw, std::min<std::size_t>(4, key_size));
    return draw;
}

inline void compare_random_operations(map& ours, kernel_map& theirs, int steps, std::uint32_t seed,
                                     const operation_mix& mix = {}) {
    std::mt19937 random(seed);
    const std::size_t key_size = ours.key_size();
    const std::size_t value_size = ours.syscall_value_size();
    std::vector<std::byte> key(key_size), our_next(key_size), their_next(key_size);
    std::vector<std::byte> value(value_size), our_value(value_size), their_value(value_size);
    const auto make_key = mix.make_key != nullptr ? mix.make_key : plain_key;
    static constexpr std::uint64_t flag_choices[] = {update_flag::any,  update_flag::any,   update_flag::noexist,
                                                     update_flag::exist, update_flag::lock, 8};
    for (int step = 0; step < steps; ++step) {
        make_key(static_cast<std::uint32_t>(random()) % mix.keys, key.data(), key_size);
        for (auto& byte : value) {
            byte = static_cast<std::byte>(random());
        }
        const auto choice = static_cast<unsigned>(random() % 10);
        SCOPED_TRACE(::testing::Message() << "step " << step << " operation " << choice);
        if (choice < 4) {
            const std::uint64_t flags = flag_choices[random() % std::size(flag_choices)];
            ASSERT_EQ(ours.update_elem(key.data(), value.data(), flags),
                      theirs.update_elem(key.data(), value.data(), flags))
                << "update flags " << flags;
        } else if (choice < 6) {
            ASSERT_EQ(ours.delete_elem(key.data()), theirs.delete_elem(key.data()));
        } else if (choice < 8) {
            const long our_status = ours.lookup_elem(key.data(), our_value.data());
            ASSERT_EQ(our_status, theirs.lookup_elem(key.data(), their_value.data()));
            if (our_status == 0) {
                ASSERT_EQ(our_value, their_value);
            }
        } else if (choice < 9) {
            const bool from_start = random() % 4 == 0;
            const void* from = from_start ? nullptr : key.data();
            const long our_status = ours.get_next_key(from, our_next.data());
            ASSERT_EQ(our_status, theirs.get_next_key(from, their_next.data()));
            if (our_status == 0 && mix.compare_order) {
                ASSERT_EQ(our_next, their_next);
            }
        } else if (mix.lookup_and_delete) {
            const long our_status = ours.lookup_and_delete_elem(key.data(), our_value.data());
            ASSERT_EQ(our_status, theirs.lookup_and_delete_elem(key.data(), their_value.data()));
            if (our_status == 0) {
                ASSERT_EQ(our_value, their_value);
            }
        }
    }
}

/// Every key in get_next_key order, with its value, must be the same in both maps.
inline void expect_same_contents(map& ours, kernel_map& theirs, bool compare_order = true) {
    const std::size_t key_size = ours.key_size();
    // Keys as strings: sorting vectors of std::byte trips a false GCC 12 -Wstringop-overread.
    const auto text = [](const std::vector<std::byte>& bytes) {
        return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    };
    std::vector<std::string> our_keys, their_keys;
    std::vector<std::byte> key(key_size), next(key_size);
    for (const void* from = nullptr; ours.get_next_key(from, next.data()) == 0; from = key.data()) {
        our_keys.push_back(text(next));
        key = next;
    }
    for (const void* from = nullptr; theirs.get_next_key(from, next.data()) == 0; from = key.data()) {
        their_keys.push_back(text(next));
        key = next;
    }
    if (!compare_order) {
        std::sort(our_keys.begin(), our_keys.end());
        std::sort(their_keys.begin(), their_keys.end());
    }
    ASSERT_EQ(our_keys, their_keys);
    std::vector<std::byte> our_value(ours.syscall_value_size()), their_value(ours.syscall_value_size());
    for (const auto& each : our_keys) {
        ASSERT_EQ(ours.lookup_elem(each.data(), our_value.data()), 0);
        ASSERT_EQ(theirs.lookup_elem(each.data(), their_value.data()), 0);
        ASSERT_EQ(our_value, their_value);
    }
}

} // namespace sluice::ebpf::testing
