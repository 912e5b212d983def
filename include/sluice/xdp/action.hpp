// What an XDP program decided for one packet.
//
// The values are the kernel's return codes (enum xdp_action in linux/bpf.h, XDP_ABORTED = 0 .. XDP_REDIRECT = 4), so
// a program's r0 converts without a table. Any other return code is not an action: from_return_code() says so with an
// empty optional, and the data path then treats the frame as XDP_ABORTED does (dropped, counted as an exception), as
// the kernel's bpf_warn_invalid_xdp_action() path does.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::xdp {

enum class action : std::uint32_t {
    aborted,  // XDP_ABORTED: drop, count an exception (xdp:xdp_exception)
    drop,     // XDP_DROP: return the frame to the pool
    pass,     // XDP_PASS: hand the frame to the port's pass target
    tx,       // XDP_TX: send out of the port the frame came from
    redirect, // XDP_REDIRECT: send where the last bpf_redirect*() pointed
};

inline constexpr std::size_t action_count = 5;

/// All actions in return-code order, for tables indexed by action (counters, output ports).
inline constexpr std::array<action, action_count> all_actions{action::aborted, action::drop, action::pass, action::tx,
                                                              action::redirect};

/// The kernel's name: "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT".
constexpr std::string_view kernel_name(action value) {
    constexpr std::array<std::string_view, action_count> names{"XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX",
                                                               "XDP_REDIRECT"};
    const auto index = static_cast<std::size_t>(value);
    return index < action_count ? names[index] : std::string_view{"XDP_UNKNOWN"};
}

/// The short lowercase name used on the command line and in JSON: "aborted", "drop", "pass", "tx", "redirect".
constexpr std::string_view name(action value) {
    constexpr std::array<std::string_view, action_count> names{"aborted", "drop", "pass", "tx", "redirect"};
    const auto index = static_cast<std::size_t>(value);
    return index < action_count ? names[index] : std::string_view{"unknown"};
}

/// Parses a short or kernel name ("pass", "XDP_PASS"); empty when it is neither.
constexpr std::optional<action> parse_action(std::string_view text) {
    for (const action value : all_actions) {
        if (text == name(value) || text == kernel_name(value)) {
            return value;
        }
    }
    return std::nullopt;
}

/// The action a program's return value stands for; empty for codes the kernel does not know (the caller counts an
/// exception and drops, as for aborted). Only the low 32 bits count: the kernel's drivers keep r0 in a u32
/// (`u32 act = bpf_prog_run_xdp(...)`), so 0x1'00000002 is XDP_PASS there and must be here too.
constexpr std::optional<action> from_return_code(std::uint64_t code) {
    const auto low = static_cast<std::uint32_t>(code);
    if (low < action_count) {
        return static_cast<action>(low);
    }
    return std::nullopt;
}

constexpr std::size_t index(action value) {
    return static_cast<std::size_t>(value);
}

} // namespace sluice::xdp
