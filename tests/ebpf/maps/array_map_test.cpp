// array, percpu_array and prog_array: indices, flags, layout for the JIT, freeze, and the kernel as oracle.
#include <vector>

#include <gtest/gtest.h>

#include "random_operations.hpp"

namespace sluice::ebpf {
namespace {

using testing::kernel_map;

std::unique_ptr<map> make(const map_definition& definition, unsigned cpus = 2) {
    return testing::make_map(definition, cpus);
}

TEST(ArrayMap, IndicesFlagsAndErrors) {
    auto table = make({map_type::array, 4, 8, 4, 0, "a"});
    std::uint32_t index = 3;
    std::uint64_t value = 42;
    EXPECT_EQ(table->update(&index, &value, update_flag::any, 0), 0);
    EXPECT_EQ(table->update(&index, &value, update_flag::exist, 0), 0);
    EXPECT_EQ(table->update(&index, &value, update_flag::noexist, 0), -EEXIST);
    EXPECT_EQ(table->update(&index, &value, update_flag::lock, 0), -EINVAL);
    EXPECT_EQ(table->update(&index, &value, 8, 0), -EINVAL);
    index = 4;
    EXPECT_EQ(table->update(&index, &value, 0, 0), -E2BIG);
    EXPECT_EQ(table->lookup(&index, 0), nullptr);
    EXPECT_EQ(table->lookup_elem(&index, &value), -ENOENT);
    EXPECT_EQ(table->remove(&index, 0), -EINVAL);
    EXPECT_EQ(table->delete_elem(&index), -EINVAL);
    index = 3;
    EXPECT_EQ(*static_cast<std::uint64_t*>(table->lookup(&index, 0)), 42U);
}

TEST(ArrayMap, GetNextKey) {
    auto table = make({map_type::array, 4, 8, 3, 0, "a"});
    std::uint32_t next = 99;
    ASSERT_EQ(table->get_next_key(nullptr, &next), 0);
    EXPECT_EQ(next, 0U);
    std::uint32_t key = 1;
    ASSERT_EQ(table->get_next_key(&key, &next), 0);
    EXPECT_EQ(next, 2U);
    key = 2;
    EXPECT_EQ(table->get_next_key(&key, &next), -ENOENT);
    key = 77; // out of range: back to the first
    ASSERT_EQ(table->get_next_key(&key, &next), 0);
    EXPECT_EQ(next, 0U);
}

TEST(ArrayMap, LayoutForTheJit) {
    auto created = make({map_type::percpu_array, 4, 12, 5, 0, "a"}, 3);
    auto* table = dynamic_cast<array_map*>(created.get());
    ASSERT_NE(table, nullptr);
    EXPECT_EQ(table->value_stride(), 16U);
    EXPECT_GE(table->cpu_stride(), 5U * 16U);
    for (unsigned cpu = 0; cpu < 3; ++cpu) {
        for (std::uint32_t index = 0; index < 5; ++index) {
            EXPECT_EQ(table->lookup(&index, cpu),
                      table->values_base() + cpu * table->cpu_stride() + index * table->value_stride());
        }
    }
}

TEST(ArrayMap, PerCpuIsolationAndSyscallLayout) {
    auto table = make({map_type::percpu_array, 4, 4, 2, 0, "a"}, 3);
    std::uint32_t index = 1, value = 7;
    ASSERT_EQ(table->update(&index, &value, 0, 2), 0);
    EXPECT_EQ(*static_cast<std::uint32_t*>(table->lookup(&index, 2)), 7U);
    EXPECT_EQ(*static_cast<std::uint32_t*>(table->lookup(&index, 0)), 0U);
    std::uint64_t all[3] = {~0ULL, ~0ULL, ~0ULL};
    ASSERT_EQ(table->lookup_elem(&index, all), 0);
    EXPECT_EQ(all[0], 0U); // each cpu's slot rounded up to 8 bytes
    EXPECT_EQ(all[2], 7U);
    const std::uint64_t written[3] = {1, 2, 3};
    EXPECT_EQ(table->update_elem(&index, written, update_flag::noexist), -EEXIST);
    ASSERT_EQ(table->update_elem(&index, written, 0), 0);
    EXPECT_EQ(*static_cast<std::uint32_t*>(table->lookup(&index, 1)), 2U);
}

TEST(ArrayMap, FreezeAndAccessFlags) {
    auto rodata = make({map_type::array, 4, 8, 1, map_flag::rdonly_prog, ".rodata"});
    std::uint32_t index = 0;
    std::uint64_t value = 5;
    ASSERT_EQ(rodata->update_elem(&index, &value, 0), 0);
    EXPECT_FALSE(rodata->is_constant_for_programs());
    ASSERT_EQ(rodata->freeze(), 0);
    EXPECT_EQ(rodata->freeze(), -EPERM);
    EXPECT_TRUE(rodata->is_constant_for_programs());
    EXPECT_EQ(rodata->update_elem(&index, &value, 0), -EPERM);
    EXPECT_EQ(rodata->lookup_elem(&index, &value), 0);

    auto write_only = make({map_type::array, 4, 8, 1, map_flag::wronly, "w"});
    EXPECT_EQ(write_only->lookup_elem(&index, &value), -EPERM);
    EXPECT_EQ(write_only->update_elem(&index, &value, 0), 0);
    auto read_only = make({map_type::array, 4, 8, 1, map_flag::rdonly, "r"});
    EXPECT_EQ(read_only->update_elem(&index, &value, 0), -EPERM);
    EXPECT_EQ(read_only->freeze(), -EPERM);
}

TEST(ArrayMap, ForEachVisitsEveryIndex) {
    auto table = make({map_type::array, 4, 8, 4, 0, "a"});
    int visited = 0;
    ASSERT_EQ(table->for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
        EXPECT_EQ(key.size(), 4U);
        EXPECT_EQ(value.size(), 8U);
        ++visited;
        return true;
    }),
              0);
    EXPECT_EQ(visited, 4);
}

TEST(ProgArrayMap, HandlesIdsAndErrors) {
    auto created = make({map_type::prog_array, 4, 4, 4, 0, "p"});
    auto* programs = dynamic_cast<prog_array_map*>(created.get());
    ASSERT_NE(programs, nullptr);
    static const int first = 1, second = 2;
    programs->set_resolver(
        [](std::uint32_t id) -> const void* { return id == 10 ? &first : id == 20 ? &second : nullptr; },
        [](const void* program) -> std::uint32_t { return program == &first ? 10 : 20; });
    std::uint32_t index = 1, id = 10;
    EXPECT_EQ(programs->update_elem(&index, &id, update_flag::noexist), -EINVAL); // only BPF_ANY
    EXPECT_EQ(programs->update_elem(&index, &id, 0), 0);
    EXPECT_EQ(programs->program(1), &first);
    id = 33;
    EXPECT_EQ(programs->update_elem(&index, &id, 0), -EBADF);
    index = 4;
    id = 10;
    EXPECT_EQ(programs->update_elem(&index, &id, 0), -E2BIG);
    EXPECT_EQ(programs->program(4), nullptr);
    EXPECT_EQ(programs->set(2, &second), 0);
    index = 2;
    ASSERT_EQ(programs->lookup_elem(&index, &id), 0);
    EXPECT_EQ(id, 20U);
    EXPECT_EQ(programs->delete_elem(&index), 0);
    EXPECT_EQ(programs->delete_elem(&index), -ENOENT);
    EXPECT_EQ(programs->lookup_elem(&index, &id), -ENOENT);
    index = 9;
    EXPECT_EQ(programs->delete_elem(&index), -E2BIG);
}

class ArrayKernelOracle : public ::testing::TestWithParam<map_definition> {};

TEST_P(ArrayKernelOracle, SameResults) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    kernel_map theirs(GetParam());
    ASSERT_EQ(theirs.status(), 0);
    auto ours = make(GetParam(), testing::kernel_cpus());
    testing::operation_mix mix;
    mix.keys = GetParam().max_entries + 3; // some indices out of range
    mix.lookup_and_delete = false;         // -ENOTSUPP from the kernel's array, not worth a slot in the mix
    testing::compare_random_operations(*ours, theirs, 800, 7, mix);
    testing::expect_same_contents(*ours, theirs);
    std::uint32_t index = 0;
    std::vector<std::byte> value(ours->syscall_value_size());
    EXPECT_EQ(ours->lookup_and_delete_elem(&index, value.data()), theirs.lookup_and_delete_elem(&index, value.data()));
}

INSTANTIATE_TEST_SUITE_P(Kinds, ArrayKernelOracle,
                         ::testing::Values(map_definition{map_type::array, 4, 8, 8, 0, "a"},
                                           map_definition{map_type::array, 4, 3, 8, 0, "a"},
                                           map_definition{map_type::percpu_array, 4, 16, 8, 0, "a"}));

TEST(ArrayKernelOracle, FreezeAgrees) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    const map_definition definition{map_type::array, 4, 8, 1, map_flag::rdonly_prog, "ro"};
    kernel_map theirs(definition);
    ASSERT_EQ(theirs.status(), 0);
    auto ours = make(definition);
    std::uint32_t index = 0;
    std::uint64_t value = 1;
    EXPECT_EQ(ours->update_elem(&index, &value, 0), theirs.update_elem(&index, &value, 0));
    EXPECT_EQ(ours->freeze(), theirs.freeze());
    EXPECT_EQ(ours->freeze(), theirs.freeze());
    EXPECT_EQ(ours->update_elem(&index, &value, 0), theirs.update_elem(&index, &value, 0));
    EXPECT_EQ(ours->delete_elem(&index), theirs.delete_elem(&index));
}

} // namespace
} // namespace sluice::ebpf
