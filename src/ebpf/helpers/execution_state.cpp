// The helpers' per-worker state and the XDP helper table (contract in helpers.hpp).

#include <algorithm>
#include <cstdio>

#include "ebpf/helpers/helpers_internal.hpp"

namespace sluice::ebpf {

// lib/random32.c, prandom_seed_state(): the four LFSR113 words need minimum values (2, 8, 16, 128).
void prandom_state::seed(std::uint64_t value) {
    const auto mixed = static_cast<std::uint32_t>((value >> 32) ^ (value << 10) ^ value);
    const auto at_least = [](std::uint32_t x, std::uint32_t minimum) { return x < minimum ? x + minimum : x; };
    s = {at_least(mixed, 2U), at_least(mixed, 8U), at_least(mixed, 16U), at_least(mixed, 128U)};
}

// lib/random32.c, prandom_u32_state().
std::uint32_t prandom_state::next() {
    const auto tausworthe = [](std::uint32_t word, unsigned a, unsigned b, std::uint32_t c, unsigned d) {
        return ((word & c) << d) ^ (((word << a) ^ word) >> b);
    };
    s[0] = tausworthe(s[0], 6U, 13U, 4294967294U, 18U);
    s[1] = tausworthe(s[1], 2U, 27U, 4294967288U, 2U);
    s[2] = tausworthe(s[2], 13U, 21U, 4294967280U, 7U);
    s[3] = tausworthe(s[3], 3U, 12U, 4294967168U, 13U);
    return s[0] ^ s[1] ^ s[2] ^ s[3];
}

std::uint32_t execution_state::mtu_of(std::uint32_t ifindex) const {
    for (const auto& [index, mtu] : mtus) {
        if (index == ifindex) {
            return mtu;
        }
    }
    return default_mtu;
}

const route* route_table::lookup(std::uint8_t family, const std::uint8_t* address) const {
    const route* best = nullptr;
    for (const route& entry : _routes) {
        if (entry.family != family || (best != nullptr && best->prefix_length >= entry.prefix_length)) {
            continue;
        }
        const unsigned bits = entry.prefix_length;
        const unsigned whole = bits / 8;
        bool match = std::equal(entry.prefix.begin(), entry.prefix.begin() + whole, address);
        if (match && bits % 8 != 0) {
            const auto mask = static_cast<std::uint8_t>(0xff << (8 - bits % 8));
            match = (entry.prefix[whole] & mask) == (address[whole] & mask);
        }
        if (match) {
            best = &entry;
        }
    }
    return best;
}

void program_registry::add(const void* handle, const runnable_program& program) {
    const auto at = std::lower_bound(_programs.begin(), _programs.end(), handle,
                                     [](const auto& entry, const void* key) { return entry.first < key; });
    if (at != _programs.end() && at->first == handle) {
        at->second = program;
        return;
    }
    _programs.insert(at, {handle, program});
}

const runnable_program* program_registry::find(const void* handle) const {
    const auto at = std::lower_bound(_programs.begin(), _programs.end(), handle,
                                     [](const auto& entry, const void* key) { return entry.first < key; });
    return at != _programs.end() && at->first == handle ? &at->second : nullptr;
}

void trace_to_stderr(std::string_view line, unsigned cpu, void*) {
    std::fprintf(stderr, "[%03u] bpf_trace_printk: %.*s\n", cpu, static_cast<int>(line.size()), line.data());
}

const helper_table& xdp_helper_table() {
    static const helper_table table = [] {
        helper_table built("XDP programs");
        helpers::register_map_helpers(built);
        helpers::register_control_helpers(built);
        helpers::register_time_helpers(built);
        helpers::register_xdp_helpers(built);
        helpers::register_fib_lookup(built);
        helpers::register_ringbuf_helpers(built);
        helpers::register_trace_printk(built);
        helpers::register_script_call(built);
        return built;
    }();
    return table;
}

} // namespace sluice::ebpf
