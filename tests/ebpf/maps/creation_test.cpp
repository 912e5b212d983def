// map_create's checks: each definition is judged by sluice and, where bpf() is allowed, by the kernel; the errno
// must agree, and sluice's error must name the field.
#include <vector>

#include <gtest/gtest.h>

#include "creation_cases.hpp"

namespace sluice::ebpf {
namespace {

using testing::creation_case;

constexpr std::uint32_t no_prealloc = map_flag::no_prealloc;

std::vector<creation_case> cases() {
    using enum map_type;
    return {
        {"array ok", {array, 4, 8, 16, 0, "a"}, 0, ""},
        {"array key_size 8", {array, 8, 8, 16, 0, "a"}, EINVAL, "key_size"},
        {"array value_size 0", {array, 4, 0, 16, 0, "a"}, EINVAL, "value_size"},
        {"array max_entries 0", {array, 4, 8, 0, 0, "a"}, EINVAL, "max_entries"},
        {"array mmapable", {array, 4, 8, 16, map_flag::mmapable, "a"}, 0, ""},
        {"array rdonly_prog", {array, 4, 8, 1, map_flag::rdonly_prog, ".rodata"}, 0, ""},
        {"array rdonly_prog|wronly_prog", {array, 4, 8, 1, map_flag::rdonly_prog | map_flag::wronly_prog, "a"}, EINVAL,
         "map_flags"},
        {"array rdonly|wronly", {array, 4, 8, 1, map_flag::rdonly | map_flag::wronly, "a"}, EINVAL, "map_flags"},
        {"array no_prealloc", {array, 4, 8, 1, no_prealloc, "a"}, EINVAL, "map_flags"},
        {"array zero_seed", {array, 4, 8, 1, map_flag::zero_seed, "a"}, EINVAL, "map_flags"},
        {"percpu_array mmapable", {percpu_array, 4, 8, 1, map_flag::mmapable, "a"}, EINVAL, "map_flags"},
        {"percpu_array value too big", {percpu_array, 4, 32769, 1, 0, "a"}, E2BIG, "value_size"},
        {"percpu_array value 32768", {percpu_array, 4, 32768, 1, 0, "a"}, 0, ""},
        {"hash ok", {hash, 8, 8, 16, 0, "h"}, 0, ""},
        {"hash key_size 0", {hash, 0, 8, 16, 0, "h"}, EINVAL, "key_size"},
        {"hash value_size 0", {hash, 4, 0, 16, 0, "h"}, EINVAL, "value_size"},
        {"hash max_entries 0", {hash, 4, 8, 0, 0, "h"}, EINVAL, "max_entries"},
        {"hash no_prealloc", {hash, 4, 8, 16, no_prealloc, "h"}, 0, ""},
        {"hash zero_seed", {hash, 4, 8, 16, map_flag::zero_seed, "h"}, 0, ""},
        {"hash no_common_lru", {hash, 4, 8, 16, map_flag::no_common_lru, "h"}, EINVAL, "map_flags"},
        {"hash mmapable", {hash, 4, 8, 16, map_flag::mmapable, "h"}, EINVAL, "map_flags"},
        {"percpu_hash value too big", {percpu_hash, 4, 40000, 16, 0, "h"}, E2BIG, "value_size"},
        {"lru_hash ok", {lru_hash, 4, 8, 16, 0, "l"}, 0, ""},
        {"lru_hash no_common_lru", {lru_hash, 4, 8, 16, map_flag::no_common_lru, "l"}, 0, ""},
        {"lru_hash no_prealloc", {lru_hash, 4, 8, 16, no_prealloc, "l"}, enotsupp, "map_flags"},
        {"lru_percpu_hash no_common_lru", {lru_percpu_hash, 4, 8, 16, map_flag::no_common_lru, "l"}, 0, ""},
        {"lpm ok", {lpm_trie, 8, 8, 16, no_prealloc, "t"}, 0, ""},
        {"lpm without no_prealloc", {lpm_trie, 8, 8, 16, 0, "t"}, EINVAL, "map_flags"},
        {"lpm key_size 4", {lpm_trie, 4, 8, 16, no_prealloc, "t"}, EINVAL, "key_size"},
        {"lpm key_size 261", {lpm_trie, 261, 8, 16, no_prealloc, "t"}, EINVAL, "key_size"},
        {"lpm key_size 260", {lpm_trie, 260, 8, 16, no_prealloc, "t"}, 0, ""},
        {"lpm value_size 0", {lpm_trie, 8, 0, 16, no_prealloc, "t"}, EINVAL, "value_size"},
        {"lpm max_entries 0", {lpm_trie, 8, 8, 0, no_prealloc, "t"}, EINVAL, "max_entries"},
        {"queue ok", {queue, 0, 8, 4, 0, "q"}, 0, ""},
        {"queue key_size 4", {queue, 4, 8, 4, 0, "q"}, EINVAL, "key_size"},
        {"stack value_size 0", {stack, 0, 0, 4, 0, "s"}, EINVAL, "value_size"},
        {"stack no_prealloc", {stack, 0, 8, 4, no_prealloc, "s"}, EINVAL, "map_flags"},
        {"ringbuf ok", {ringbuf, 0, 0, 4096, 0, "r"}, 0, ""},
        {"ringbuf 4096*3", {ringbuf, 0, 0, 3 * 4096, 0, "r"}, EINVAL, "max_entries"},
        {"ringbuf 2048", {ringbuf, 0, 0, 2048, 0, "r"}, EINVAL, "max_entries"},
        {"ringbuf key_size", {ringbuf, 4, 0, 4096, 0, "r"}, EINVAL, "key_size"},
        {"ringbuf value_size", {ringbuf, 0, 4, 4096, 0, "r"}, EINVAL, "value_size"},
        {"ringbuf rdonly_prog", {ringbuf, 0, 0, 4096, map_flag::rdonly_prog, "r"}, EINVAL, "map_flags"},
        {"prog_array ok", {prog_array, 4, 4, 8, 0, "p"}, 0, ""},
        {"prog_array value_size 8", {prog_array, 4, 8, 8, 0, "p"}, EINVAL, "value_size"},
        {"prog_array rdonly_prog", {prog_array, 4, 4, 8, map_flag::rdonly_prog, "p"}, EINVAL, "map_flags"},
        {"bad name", {array, 4, 8, 1, 0, "a-b"}, EINVAL, "name"},
    };
}

TEST(MapCreation, SluiceChecksNameTheField) {
    testing::expect_sluice_checks_name_the_field(cases());
}

TEST(MapCreation, NameLimits) {
    EXPECT_FALSE(check_definition({map_type::array, 4, 8, 1, 0, "fifteen_chars_x"}, 1).has_value());
    const auto found = check_definition({map_type::array, 4, 8, 1, 0, "sixteen_chars_xx"}, 1);
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(found->field, "name");
    EXPECT_FALSE(check_definition({map_type::array, 4, 8, 1, 0, ".rodata"}, 1).has_value());
}

TEST(MapCreation, KernelAgrees) {
    testing::expect_kernel_agrees(cases());
}

TEST(MapCreation, PerCpuLruRoundsMaxEntriesToCpus) {
    const auto created = create_map({map_type::lru_hash, 4, 8, 5, map_flag::no_common_lru, "l"}, 4);
    ASSERT_TRUE(created.has_value());
    EXPECT_EQ((*created)->max_entries(), 8U);
}

} // namespace
} // namespace sluice::ebpf
