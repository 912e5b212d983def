// The helper table agrees with <linux/bpf.h>, the authority for helper numbers.
#include "sluice/ebpf/kernel_helpers.hpp"

#include <gtest/gtest.h>
#include <linux/bpf.h>

namespace sluice::ebpf {
namespace {

TEST(kernel_helpers, names_match_the_kernel_numbering) {
    EXPECT_EQ(kernel_helper_name(BPF_FUNC_map_lookup_elem), "bpf_map_lookup_elem");
    EXPECT_EQ(kernel_helper_name(BPF_FUNC_redirect_map), "bpf_redirect_map");
    EXPECT_EQ(kernel_helper_name(BPF_FUNC_xdp_adjust_tail), "bpf_xdp_adjust_tail");
    EXPECT_EQ(kernel_helper_name(BPF_FUNC_loop), "bpf_loop");
    EXPECT_EQ(kernel_helper_count(), static_cast<std::uint32_t>(__BPF_FUNC_MAX_ID));
}

TEST(kernel_helpers, unknown_ids_have_no_name) {
    EXPECT_EQ(kernel_helper_name(0), "");
    EXPECT_EQ(kernel_helper_name(__BPF_FUNC_MAX_ID), "");
    EXPECT_EQ(kernel_helper_name(0xffffffffU), "");
}

TEST(kernel_helpers, ids_by_name_with_or_without_prefix) {
    EXPECT_EQ(kernel_helper_id("bpf_tail_call"), static_cast<std::uint32_t>(BPF_FUNC_tail_call));
    EXPECT_EQ(kernel_helper_id("ktime_get_ns"), static_cast<std::uint32_t>(BPF_FUNC_ktime_get_ns));
    EXPECT_EQ(kernel_helper_id("bpf_no_such_helper"), std::nullopt);
}

} // namespace
} // namespace sluice::ebpf
