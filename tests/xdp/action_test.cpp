// Actions carry the kernel's return codes and names.
#include "sluice/xdp/action.hpp"

#include <linux/bpf.h>

#include <gtest/gtest.h>

namespace sluice::xdp {
namespace {

TEST(action, values_are_the_kernel_return_codes) {
    EXPECT_EQ(static_cast<std::uint32_t>(action::aborted), std::uint32_t{XDP_ABORTED});
    EXPECT_EQ(static_cast<std::uint32_t>(action::drop), std::uint32_t{XDP_DROP});
    EXPECT_EQ(static_cast<std::uint32_t>(action::pass), std::uint32_t{XDP_PASS});
    EXPECT_EQ(static_cast<std::uint32_t>(action::tx), std::uint32_t{XDP_TX});
    EXPECT_EQ(static_cast<std::uint32_t>(action::redirect), std::uint32_t{XDP_REDIRECT});
}

TEST(action, names_round_trip) {
    for (const action value : all_actions) {
        EXPECT_EQ(parse_action(name(value)), value);
        EXPECT_EQ(parse_action(kernel_name(value)), value);
    }
    EXPECT_EQ(kernel_name(action::pass), "XDP_PASS");
    EXPECT_EQ(name(action::redirect), "redirect");
    EXPECT_FALSE(parse_action("forward").has_value());
}

TEST(action, return_codes_use_the_low_32_bits_and_reject_unknown_values) {
    EXPECT_EQ(from_return_code(2), action::pass);
    EXPECT_EQ(from_return_code(0x1'0000'0002ULL), action::pass);
    EXPECT_FALSE(from_return_code(5).has_value());
    EXPECT_FALSE(from_return_code(0xffff'ffffULL).has_value());
}

} // namespace
} // namespace sluice::xdp
