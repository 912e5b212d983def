// queue and stack: order, -E2BIG when full, BPF_EXIST overwriting the oldest, -ENOENT when empty, and the kernel as
// oracle.
#include <random>

#include <gtest/gtest.h>

#include "kernel_oracle.hpp"

namespace sluice::ebpf {
namespace {

using testing::kernel_map;

std::unique_ptr<map> make(map_type type, std::uint32_t entries) {
    return testing::make_map({type, 0, 4, entries, 0, "q"}, 1);
}

TEST(QueueMap, FifoOrderAndOverwrite) {
    auto queue = make(map_type::queue, 3);
    for (std::uint32_t value = 1; value <= 3; ++value) {
        ASSERT_EQ(queue->push(&value, 0), 0);
    }
    std::uint32_t value = 4;
    EXPECT_EQ(queue->push(&value, 0), -E2BIG);
    EXPECT_EQ(queue->push(&value, update_flag::noexist), -EINVAL);
    EXPECT_EQ(queue->push(&value, update_flag::exist), 0); // drops 1
    std::uint32_t out = 0;
    ASSERT_EQ(queue->peek(&out), 0);
    EXPECT_EQ(out, 2U);
    for (std::uint32_t want : {2U, 3U, 4U}) {
        ASSERT_EQ(queue->pop(&out), 0);
        EXPECT_EQ(out, want);
    }
    out = 77;
    EXPECT_EQ(queue->pop(&out), -ENOENT);
    EXPECT_EQ(out, 0U);
    EXPECT_EQ(queue->peek(&out), -ENOENT);
    EXPECT_EQ(queue->delete_elem(nullptr), -EINVAL);
    EXPECT_EQ(queue->get_next_key(nullptr, &out), -EINVAL);
}

TEST(StackMap, LifoOrderAndOverwrite) {
    auto stack = make(map_type::stack, 3);
    for (std::uint32_t value = 1; value <= 3; ++value) {
        ASSERT_EQ(stack->update_elem(nullptr, &value, 0), 0);
    }
    std::uint32_t value = 4;
    EXPECT_EQ(stack->update_elem(nullptr, &value, 0), -E2BIG);
    EXPECT_EQ(stack->update_elem(nullptr, &value, update_flag::exist), 0); // drops the oldest, 1
    std::uint32_t out = 0;
    ASSERT_EQ(stack->lookup_elem(nullptr, &out), 0);
    EXPECT_EQ(out, 4U);
    for (std::uint32_t want : {4U, 3U, 2U}) {
        ASSERT_EQ(stack->lookup_and_delete_elem(nullptr, &out), 0);
        EXPECT_EQ(out, want);
    }
    EXPECT_EQ(stack->lookup_and_delete_elem(nullptr, &out), -ENOENT);
}

class QueueStackKernelOracle : public ::testing::TestWithParam<map_type> {};

TEST_P(QueueStackKernelOracle, SameResults) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    const map_definition definition{GetParam(), 0, 4, 5, 0, "qs"};
    kernel_map theirs(definition);
    ASSERT_EQ(theirs.status(), 0);
    auto ours = make(GetParam(), 5);
    std::mt19937 random(3);
    static constexpr std::uint64_t flags[] = {update_flag::any, update_flag::exist, update_flag::noexist, 8};
    for (int step = 0; step < 2000; ++step) {
        SCOPED_TRACE(step);
        auto value = static_cast<std::uint32_t>(random());
        std::uint32_t our_out = 1, their_out = 2;
        switch (random() % 2) {
        case 0: {
            const std::uint64_t flag = flags[random() % 4];
            ASSERT_EQ(ours->update_elem(nullptr, &value, flag), theirs.update_elem(nullptr, &value, flag));
            break;
        }
        case 2:
        default: {
            // A failed peek or pop leaves the caller's buffer alone in both (1 and 2 stay 1 and 2).
            const bool pop = random() % 2 == 0;
            const long status = pop ? ours->lookup_and_delete_elem(nullptr, &our_out)
                                    : ours->lookup_elem(nullptr, &our_out);
            ASSERT_EQ(status, pop ? theirs.lookup_and_delete_elem(nullptr, &their_out)
                                  : theirs.lookup_elem(nullptr, &their_out));
            if (status == 0) {
                ASSERT_EQ(our_out, their_out);
            } else {
                ASSERT_EQ(our_out, 1U);
                ASSERT_EQ(their_out, 2U);
            }
            break;
        }
        }
    }
    std::uint32_t key = 0;
    EXPECT_EQ(ours->delete_elem(&key), theirs.delete_elem(&key));
    EXPECT_EQ(ours->get_next_key(nullptr, &key), theirs.get_next_key(nullptr, &key));
}

INSTANTIATE_TEST_SUITE_P(Kinds, QueueStackKernelOracle, ::testing::Values(map_type::queue, map_type::stack),
                         [](const ::testing::TestParamInfo<map_type>& each) { return std::string(to_string(each.param)); });

} // namespace
} // namespace sluice::ebpf
