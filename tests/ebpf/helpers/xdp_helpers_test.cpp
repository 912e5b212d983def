// XDP buffer helpers at the kernel's limits, checksums, redirects, MTU and FIB lookups, trace_printk formats, map and
// ring buffer helpers, and the load-time refusal of helpers sluice lacks.

#include <sys/socket.h>

#include <thread>

#include "helpers_test_support.hpp"
#include "sluice/ebpf/maps.hpp"

namespace {

using namespace sluice::ebpf;
using namespace sluice::ebpf::testing;

constexpr std::uint64_t xdp_redirect = 4;

std::uint64_t adjust(std::uint32_t id, packet_buffer& buffer, std::int32_t offset) {
    execution_state state;
    return call_helper(id, state, buffer.address(), static_cast<std::uint64_t>(static_cast<std::int64_t>(offset)));
}

TEST(xdp_adjust_head, limits_are_the_frame_reserve_and_ethernet_header) {
    // Headroom 256 minus the 40-byte struct xdp_frame: the packet may grow by 216 bytes at most.
    packet_buffer grow(64);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_head, grow, -217), negative(EINVAL));
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_head, grow, -216), 0u);
    EXPECT_EQ(grow.context.data, grow.memory.data() + xdp_frame_header_size);
    EXPECT_EQ(grow.context.data_meta, grow.context.data);

    // Shrinking must leave ETH_HLEN bytes.
    packet_buffer shrink(64);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_head, shrink, 51), negative(EINVAL));
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_head, shrink, 50), 0u);
    EXPECT_EQ(shrink.packet().size(), 14u);
}

TEST(xdp_adjust_head, metadata_moves_with_data_and_counts_against_headroom) {
    packet_buffer buffer(64);
    ASSERT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, buffer, -8), 0u);
    std::memcpy(buffer.context.data_meta, "METADATA", 8);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_head, buffer, -209), negative(EINVAL)); // 216 - 8 metadata bytes
    ASSERT_EQ(adjust(BPF_FUNC_xdp_adjust_head, buffer, -208), 0u);
    EXPECT_EQ(buffer.context.data - buffer.context.data_meta, 8);
    EXPECT_EQ(std::memcmp(buffer.context.data_meta, "METADATA", 8), 0);
}

TEST(xdp_adjust_meta, alignment_size_and_headroom) {
    packet_buffer buffer(64);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, buffer, -2), negative(EACCES));   // not a multiple of 4
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, buffer, 4), negative(EINVAL));    // meta past data
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, buffer, -220), negative(EINVAL)); // into the xdp_frame reserve
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, buffer, -216), 0u);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, buffer, 212), 0u);
    EXPECT_EQ(buffer.context.data - buffer.context.data_meta, 4);

    // With more headroom than a standard frame, the 252-byte ceiling (skb_shared_info.meta_len is a u8) shows.
    packet_buffer roomy(64, 1024);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, roomy, -256), negative(EACCES));
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_meta, roomy, -252), 0u);
}

TEST(xdp_adjust_tail, grows_to_the_reserve_and_shrinks_to_ethernet_header) {
    packet_buffer buffer(100);
    const std::int32_t room = 4096 - 320 - 256 - 100; // up to xdp_data_hard_end
    buffer.context.data_end[0] = 0xaa;                // grown bytes must come back zeroed
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_tail, buffer, room + 1), negative(EINVAL));
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_tail, buffer, room), 0u);
    EXPECT_EQ(buffer.packet().size(), 3520u);
    EXPECT_EQ(buffer.context.data[100], 0);
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_tail, buffer, -(3520 - 13)), negative(EINVAL));
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_tail, buffer, -(3520 - 14)), 0u);
    EXPECT_EQ(buffer.packet().size(), 14u);

    packet_buffer jumbo(100);
    jumbo.context.frame_size = 4 * 4096; // "Too BIG xdp->frame_sz": refused whatever the offset
    EXPECT_EQ(adjust(BPF_FUNC_xdp_adjust_tail, jumbo, 0), negative(EINVAL));
}

TEST(xdp_bytes, load_store_and_length) {
    packet_buffer buffer(60);
    execution_state state;
    std::array<std::uint8_t, 8> bytes{};
    const auto into = reinterpret_cast<std::uintptr_t>(bytes.data());
    EXPECT_EQ(call_helper(BPF_FUNC_xdp_load_bytes, state, buffer.address(), 52, into, 8), 0u);
    EXPECT_EQ(bytes[0], buffer.context.data[52]);
    EXPECT_EQ(call_helper(BPF_FUNC_xdp_load_bytes, state, buffer.address(), 53, into, 8), negative(EINVAL));
    EXPECT_EQ(call_helper(BPF_FUNC_xdp_load_bytes, state, buffer.address(), 0x10000, into, 8), negative(EFAULT));
    bytes.fill(0x5a);
    EXPECT_EQ(call_helper(BPF_FUNC_xdp_store_bytes, state, buffer.address(), 0, into, 8), 0u);
    EXPECT_EQ(buffer.context.data[7], 0x5a);
    EXPECT_EQ(call_helper(BPF_FUNC_xdp_store_bytes, state, buffer.address(), 56, into, 8), negative(EINVAL));
    EXPECT_EQ(call_helper(BPF_FUNC_xdp_get_buff_len, state, buffer.address()), 60u);
}

TEST(csum_diff, matches_a_hand_computed_checksum) {
    execution_state state;
    // The IPv4 header of RFC 1071-style examples: 4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7, checksum b861.
    const std::array<std::uint8_t, 20> header{0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                                              0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    const auto sum =
        call_helper(BPF_FUNC_csum_diff, state, 0, 0, reinterpret_cast<std::uintptr_t>(header.data()), 20, 0);
    // The folded sum is in memory byte order: 0x61b8 as a little-endian u16 is the bytes b8 61.
    EXPECT_EQ(checksum_fold(static_cast<std::uint32_t>(sum)), 0x61b8);

    // Diffing: replacing the TTL/protocol word 4011 by 3f11 and folding into the old checksum gives the new one.
    const std::uint32_t from = 0x1140; // bytes 40 11 as a little-endian word
    const std::uint32_t to = 0x113f;
    const auto diff = call_helper(BPF_FUNC_csum_diff, state, reinterpret_cast<std::uintptr_t>(&from), 4,
                                  reinterpret_cast<std::uintptr_t>(&to), 4, static_cast<std::uint16_t>(~0x61b8));
    EXPECT_EQ(checksum_fold(static_cast<std::uint32_t>(diff)), 0x61b9); // b9 61: one less in the TTL byte pair

    // Current kernels take any sizes (the 4-byte multiple and 512-byte limits went with the scratchpad): an odd tail
    // is summed as csum_partial does, a 16-bit half then a byte.
    const std::array<std::uint8_t, 3> odd{0x12, 0x34, 0x56};
    EXPECT_EQ(call_helper(BPF_FUNC_csum_diff, state, 0, 0, reinterpret_cast<std::uintptr_t>(odd.data()), 3, 0),
              0x3412u + 0x56u);
}

TEST(redirect, interface_and_flags) {
    execution_state state;
    EXPECT_EQ(call_helper(BPF_FUNC_redirect, state, 7, 1), 0u); // XDP_ABORTED: flags must be 0
    EXPECT_EQ(call_helper(BPF_FUNC_redirect, state, 7, 0), xdp_redirect);
    EXPECT_EQ(state.redirect.target, redirect_decision::kind::interface);
    EXPECT_EQ(state.redirect.ifindex, 7u);
}

TEST(redirect_map, records_target_or_returns_fallback_action) {
    auto created = create_map({map_type::hash, 4, 4, 8, 0, "targets"}, 1);
    ASSERT_TRUE(created);
    map& targets = **created;
    const std::uint32_t key = 3;
    const std::uint32_t value = 9;
    ASSERT_EQ(targets.update_elem(&key, &value, 0), 0);
    const auto address = reinterpret_cast<std::uintptr_t>(&targets);

    execution_state state;
    EXPECT_EQ(call_helper(BPF_FUNC_redirect_map, state, address, 3, 0), xdp_redirect);
    EXPECT_EQ(state.redirect.target, redirect_decision::kind::map);
    EXPECT_EQ(state.redirect.target_map, &targets);
    EXPECT_EQ(state.redirect.key, 3u);
    // A missing key: the low bits of flags are the action, and the decision is cleared.
    EXPECT_EQ(call_helper(BPF_FUNC_redirect_map, state, address, 4, 2), 2u); // XDP_PASS
    EXPECT_EQ(state.redirect.target, redirect_decision::kind::none);
    EXPECT_EQ(call_helper(BPF_FUNC_redirect_map, state, address, 4, 0), 0u);
    // Other flag bits (broadcast is devmap's only) abort.
    EXPECT_EQ(call_helper(BPF_FUNC_redirect_map, state, address, 3, redirect_broadcast), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_redirect_map, state, address, 3, 4), 0u);
}

TEST(check_mtu, frame_needed_and_mtu_length) {
    packet_buffer buffer(1514);
    execution_state state;
    state.mtus = {{2, 9000}};
    std::uint32_t mtu = 0;
    const auto length = reinterpret_cast<std::uintptr_t>(&mtu);
    EXPECT_EQ(call_helper(BPF_FUNC_check_mtu, state, buffer.address(), 0, length, 0, 0), 0u); // 1514 fits 1500 + 14
    EXPECT_EQ(mtu, 1500u);
    mtu = 0;
    EXPECT_EQ(call_helper(BPF_FUNC_check_mtu, state, buffer.address(), 0, length, 1, 0), 1u); // FRAG_NEEDED
    mtu = 8986;
    EXPECT_EQ(call_helper(BPF_FUNC_check_mtu, state, buffer.address(), 2, length, 0, 0), 0u);
    EXPECT_EQ(mtu, 9000u);
    EXPECT_EQ(call_helper(BPF_FUNC_check_mtu, state, buffer.address(), 0, length, 0, 1), negative(EINVAL));
    state.default_mtu = 0;
    EXPECT_EQ(call_helper(BPF_FUNC_check_mtu, state, buffer.address(), 5, length, 0, 0), negative(ENODEV));
}

TEST(fib_lookup, without_routes_with_routes_and_errors) {
    packet_buffer buffer(64);
    execution_state state;
    bpf_fib_lookup params{};
    params.family = AF_INET;
    params.ifindex = 1;
    params.tot_len = 100;
    const std::array<std::uint8_t, 4> destination{10, 1, 2, 3};
    std::memcpy(&params.ipv4_dst, destination.data(), 4);
    const auto address = reinterpret_cast<std::uintptr_t>(&params);
    EXPECT_EQ(call_helper(BPF_FUNC_fib_lookup, state, buffer.address(), address, sizeof params, 0),
              fib_result::not_forwarded);

    route_table routes;
    route wide{.family = AF_INET, .prefix = {10}, .prefix_length = 8, .ifindex = 3};
    wide.has_gateway = true;
    wide.gateway = {10, 0, 0, 1};
    wide.has_neighbour = true;
    wide.source_mac = {2, 0, 0, 0, 0, 3};
    wide.destination_mac = {2, 0, 0, 0, 0, 1};
    routes.add(wide);
    route narrow{.family = AF_INET, .prefix = {10, 1}, .prefix_length = 16, .type = route::kind::blackhole};
    routes.add(narrow);
    state.routes = &routes;
    EXPECT_EQ(call_helper(BPF_FUNC_fib_lookup, state, buffer.address(), address, sizeof params, 0),
              fib_result::blackhole);

    const std::array<std::uint8_t, 4> elsewhere{10, 9, 9, 9};
    std::memcpy(&params.ipv4_dst, elsewhere.data(), 4);
    EXPECT_EQ(call_helper(BPF_FUNC_fib_lookup, state, buffer.address(), address, sizeof params, 0),
              fib_result::success);
    EXPECT_EQ(params.ifindex, 3u);
    EXPECT_EQ(std::memcmp(&params.ipv4_dst, wide.gateway.data(), 4), 0);
    EXPECT_EQ(params.dmac[5], 1);
    EXPECT_EQ(params.smac[5], 3);
    EXPECT_EQ(params.mtu_result, 1500);

    params.ifindex = 1;
    params.tot_len = 1501;
    EXPECT_EQ(call_helper(BPF_FUNC_fib_lookup, state, buffer.address(), address, sizeof params, 0),
              fib_result::fragmentation_needed);
    EXPECT_EQ(params.mtu_result, 1500);
    EXPECT_EQ(call_helper(BPF_FUNC_fib_lookup, state, buffer.address(), address, sizeof params - 1, 0),
              negative(EINVAL));
    params.family = 99;
    EXPECT_EQ(call_helper(BPF_FUNC_fib_lookup, state, buffer.address(), address, sizeof params, 0),
              negative(EAFNOSUPPORT));
}

struct captured_trace {
    std::vector<std::string> lines;
    static void sink(std::string_view line, unsigned, void* opaque) {
        static_cast<captured_trace*>(opaque)->lines.emplace_back(line);
    }
};

std::uint64_t printk(execution_state& state, const std::string& format, std::uint64_t a = 0, std::uint64_t b = 0,
                     std::uint64_t c = 0) {
    return call_helper(BPF_FUNC_trace_printk, state, reinterpret_cast<std::uintptr_t>(format.c_str()),
                       format.size() + 1, a, b, c);
}

TEST(trace_printk, formats_like_the_kernel) {
    captured_trace captured;
    execution_state state;
    state.trace = &captured_trace::sink;
    state.trace_opaque = &captured;
    const std::string word = "xdp";
    const std::array<std::uint8_t, 4> ip{192, 168, 0, 1};
    EXPECT_EQ(printk(state, "%d %u %x\n", 0xffffffffULL, 0xffffffffULL, 255), 17u); // the length, newline included
    EXPECT_EQ(printk(state, "%lld|%llx|%5d|", static_cast<std::uint64_t>(-5), 0xabcULL, 42), 13u);
    printk(state, "%s: %c %pI4", reinterpret_cast<std::uintptr_t>(word.c_str()), 'A',
           reinterpret_cast<std::uintptr_t>(ip.data()));
    printk(state, "100%% %08X %-3u|", 0xbeef, 7);
    ASSERT_EQ(captured.lines.size(), 4u);
    EXPECT_EQ(captured.lines[0], "-1 4294967295 ff");
    EXPECT_EQ(captured.lines[1], "-5|abc|   42|");
    EXPECT_EQ(captured.lines[2], "xdp: A 192.168.0.1");
    EXPECT_EQ(captured.lines[3], "100% 0000BEEF 7  |");
}

TEST(trace_printk, refuses_what_the_kernel_refuses) {
    execution_state state;
    state.trace = nullptr;
    for (const char* format : {"%hd", "%.2d", "%f", "%n", "%d %d %d %d", "%sfoo", "%pZ", "tab\x01", "%lq"}) {
        EXPECT_EQ(printk(state, format, 1, 2, 3), negative(EINVAL)) << format;
    }
    const std::string unterminated = "abc";
    EXPECT_EQ(call_helper(BPF_FUNC_trace_printk, state, reinterpret_cast<std::uintptr_t>(unterminated.data()), 3),
              negative(EINVAL));
    EXPECT_EQ(printk(state, "%d %d %d", 1, 2, 3), 5u);
}

TEST(trace_printk, rate_limited) {
    captured_trace captured;
    execution_state state;
    state.trace = &captured_trace::sink;
    state.trace_opaque = &captured;
    state.trace_lines_per_second = 3;
    for (int i = 0; i < 10; ++i) {
        printk(state, "line");
    }
    EXPECT_LE(captured.lines.size(), 6u); // two one-second windows at most while the loop runs
    EXPECT_EQ(captured.lines.size() + state.trace_dropped, 10u);
}

TEST(map_helpers, lookup_update_delete_push_pop_peek) {
    auto hash = create_map({map_type::hash, 4, 8, 4, 0, "h"}, 2);
    auto queue = create_map({map_type::queue, 0, 4, 2, 0, "q"}, 2);
    ASSERT_TRUE(hash);
    ASSERT_TRUE(queue);
    const auto h = reinterpret_cast<std::uintptr_t>(hash->get());
    const auto q = reinterpret_cast<std::uintptr_t>(queue->get());
    execution_state state(1);
    const std::uint32_t key = 5;
    const std::uint64_t value = 77;
    const auto k = reinterpret_cast<std::uintptr_t>(&key);
    const auto v = reinterpret_cast<std::uintptr_t>(&value);
    EXPECT_EQ(call_helper(BPF_FUNC_map_lookup_elem, state, h, k), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_update_elem, state, h, k, v, update_flag::exist), negative(ENOENT));
    EXPECT_EQ(call_helper(BPF_FUNC_map_update_elem, state, h, k, v, update_flag::noexist), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_update_elem, state, h, k, v, update_flag::noexist), negative(EEXIST));
    const auto found = call_helper(BPF_FUNC_map_lookup_elem, state, h, k);
    ASSERT_NE(found, 0u);
    EXPECT_EQ(*reinterpret_cast<const std::uint64_t*>(found), 77u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_delete_elem, state, h, k), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_delete_elem, state, h, k), negative(ENOENT));

    std::uint32_t item = 1;
    const auto i = reinterpret_cast<std::uintptr_t>(&item);
    EXPECT_EQ(call_helper(BPF_FUNC_map_push_elem, state, q, i, 0), 0u);
    item = 2;
    EXPECT_EQ(call_helper(BPF_FUNC_map_push_elem, state, q, i, 0), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_push_elem, state, q, i, 0), negative(E2BIG));
    EXPECT_EQ(call_helper(BPF_FUNC_map_peek_elem, state, q, i), 0u);
    EXPECT_EQ(item, 1u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_pop_elem, state, q, i), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_pop_elem, state, q, i), 0u);
    EXPECT_EQ(item, 2u);
    EXPECT_EQ(call_helper(BPF_FUNC_map_pop_elem, state, q, i), negative(ENOENT));
}

TEST(spin_lock, serialises_workers_on_a_map_value) {
    struct value_with_lock {
        std::uint32_t lock; // struct bpf_spin_lock
        std::uint32_t pad;
        std::uint64_t counter;
    } shared{};
    const auto lock = reinterpret_cast<std::uintptr_t>(&shared.lock);
    const auto work = [&](unsigned worker) {
        execution_state state(worker);
        for (int i = 0; i < 20000; ++i) {
            call_helper(BPF_FUNC_spin_lock, state, lock);
            shared.counter = shared.counter + 1; // not atomic: only the lock keeps increments apart
            call_helper(BPF_FUNC_spin_unlock, state, lock);
        }
    };
    std::thread first(work, 0);
    std::thread second(work, 1);
    first.join();
    second.join();
    EXPECT_EQ(shared.counter, 40000u);
    EXPECT_EQ(shared.lock, 0u);
}

TEST(ringbuf_helpers, reserve_submit_discard_output_query) {
    auto created = create_map({map_type::ringbuf, 0, 0, 4096, 0, "events"}, 1);
    ASSERT_TRUE(created);
    auto& ring = static_cast<ringbuf_map&>(**created);
    const auto r = reinterpret_cast<std::uintptr_t>(&ring);
    execution_state state;
    const auto sample = call_helper(BPF_FUNC_ringbuf_reserve, state, r, 8, 0);
    ASSERT_NE(sample, 0u);
    std::memcpy(reinterpret_cast<void*>(sample), "reserved", 8);
    const auto dropped = call_helper(BPF_FUNC_ringbuf_reserve, state, r, 8, 0);
    ASSERT_NE(dropped, 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_ringbuf_reserve, state, r, 8, 1), 0u); // flags must be 0
    EXPECT_EQ(call_helper(BPF_FUNC_ringbuf_submit, state, sample, 0), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_ringbuf_discard, state, dropped, 0), 0u);
    const std::array<char, 6> text{'o', 'u', 't', 'p', 'u', 't'};
    EXPECT_EQ(call_helper(BPF_FUNC_ringbuf_output, state, r, reinterpret_cast<std::uintptr_t>(text.data()), 6, 0), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_ringbuf_output, state, r, reinterpret_cast<std::uintptr_t>(text.data()), 6, 4),
              negative(EINVAL));
    EXPECT_EQ(call_helper(BPF_FUNC_ringbuf_query, state, r, ringbuf_map::ring_size), 4096u);
    EXPECT_GT(call_helper(BPF_FUNC_ringbuf_query, state, r, ringbuf_map::avail_data), 0u);

    std::vector<std::string> records;
    ring.consume([&](std::span<const std::byte> record) {
        records.emplace_back(reinterpret_cast<const char*>(record.data()), record.size());
        return 0;
    });
    EXPECT_EQ(records, (std::vector<std::string>{"reserved", "output"}));
}

TEST(time_helpers, clocks_random_and_cpu) {
    execution_state state(3);
    const auto before = call_helper(BPF_FUNC_ktime_get_ns, state);
    EXPECT_GE(call_helper(BPF_FUNC_ktime_get_ns, state), before);
    EXPECT_GT(call_helper(BPF_FUNC_ktime_get_boot_ns, state), 0u);
    EXPECT_GT(call_helper(BPF_FUNC_ktime_get_coarse_ns, state), 0u);
    EXPECT_GT(call_helper(BPF_FUNC_jiffies64, state), 0u);
    EXPECT_EQ(call_helper(BPF_FUNC_get_smp_processor_id, state), 3u);

    // Deterministic per worker and settable.
    execution_state same(3);
    execution_state other(4);
    const auto first = call_helper(BPF_FUNC_get_prandom_u32, state);
    EXPECT_EQ(call_helper(BPF_FUNC_get_prandom_u32, same), first);
    EXPECT_NE(call_helper(BPF_FUNC_get_prandom_u32, other), first);
    state.random.seed(42);
    same.random.seed(42);
    EXPECT_EQ(call_helper(BPF_FUNC_get_prandom_u32, state), call_helper(BPF_FUNC_get_prandom_u32, same));
}

TEST(helper_table, kernel_ids_and_names) {
    const helper_table& table = xdp_helper_table();
    EXPECT_EQ(table.name(BPF_FUNC_map_lookup_elem), "bpf_map_lookup_elem");
    EXPECT_EQ(table.name(BPF_FUNC_xdp_adjust_head), "bpf_xdp_adjust_head");
    EXPECT_EQ(table.name(BPF_FUNC_loop), "bpf_loop");
    EXPECT_EQ(table.find(BPF_FUNC_skb_load_bytes), nullptr);
    EXPECT_EQ(table.provided_for(), "XDP programs");
}

TEST(helper_table, programs_calling_missing_helpers_are_refused_by_name) {
    const auto code = assemble_or_fail("mov %r0, 0\nmov %r0, 0\nmov %r0, 0\ncall 26\nexit");
    auto machine = interpreter::create(code, xdp_helper_table());
    ASSERT_FALSE(machine);
    EXPECT_EQ(machine.error().message,
              "instruction 3: calls bpf_skb_load_bytes (helper 26), which sluice does not provide for XDP programs");
    EXPECT_EQ(machine.error().instruction, 3u);
}

} // namespace
