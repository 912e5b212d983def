// ringbuf: record headers and alignment, reserve/submit/discard/output, query, the consumer, wraparound across the
// end of the data area, refusal when full, and the kernel's answers to map calls.
#include <cstring>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf {
namespace {

std::unique_ptr<map> make_map(std::uint32_t size) {
    auto created = create_map({map_type::ringbuf, 0, 0, size, 0, "rb"}, 1);
    EXPECT_TRUE(created.has_value()) << created.error().message;
    return std::move(created.value());
}

std::vector<std::vector<std::byte>> drain(ringbuf_map& ring) {
    std::vector<std::vector<std::byte>> records;
    ring.consume([&](std::span<const std::byte> record) {
        records.emplace_back(record.begin(), record.end());
        return 0;
    });
    return records;
}

TEST(Ringbuf, ReserveSubmitDiscardAndQuery) {
    auto owner = make_map(4096);
    auto& ring = dynamic_cast<ringbuf_map&>(*owner);
    EXPECT_EQ(ring.query(ringbuf_map::ring_size), 4096U);
    EXPECT_EQ(ring.reserve(8, 1), nullptr); // flags must be 0
    auto* first = static_cast<std::byte*>(ring.reserve(5, 0));
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(first) % 8, 0U);
    std::uint32_t header;
    std::memcpy(&header, first - 8, 4);
    EXPECT_EQ(header, 5U | ringbuf_map::busy_bit);
    EXPECT_EQ(ring.query(ringbuf_map::prod_pos), 16U); // 8-byte header + 5 rounded up to 8
    EXPECT_EQ(ring.query(ringbuf_map::avail_data), 16U);
    EXPECT_TRUE(drain(ring).empty()); // still busy
    std::memset(first, 0xab, 5);
    auto* second = ring.reserve(3, 0);
    ring.discard(second, 0);
    ring.submit(first, 0);
    const std::uint32_t payload = 0x01020304;
    EXPECT_EQ(ring.output(&payload, 4, 4), -EINVAL);
    EXPECT_EQ(ring.output(&payload, 4, ringbuf_map::no_wakeup), 0);
    const auto records = drain(ring);
    ASSERT_EQ(records.size(), 2U); // the discarded record is skipped
    EXPECT_EQ(records[0], std::vector<std::byte>(5, std::byte{0xab}));
    EXPECT_EQ(records[1].size(), 4U);
    EXPECT_EQ(ring.query(ringbuf_map::cons_pos), ring.query(ringbuf_map::prod_pos));
    EXPECT_EQ(ring.query(ringbuf_map::avail_data), 0U);
    EXPECT_EQ(ring.query(99), 0U);
}

TEST(Ringbuf, FullRingRefusesThenWrapsAround) {
    auto owner = make_map(4096);
    auto& ring = dynamic_cast<ringbuf_map&>(*owner);
    std::vector<std::byte> payload(1000);
    int accepted = 0;
    while (ring.output(payload.data(), payload.size(), 0) == 0) {
        ++accepted;
    }
    EXPECT_EQ(accepted, 4); // 4 * 1008 = 4032: a fifth would leave the producer more than size - 1 ahead
    EXPECT_EQ(ring.output(payload.data(), payload.size(), 0), -EAGAIN);
    EXPECT_EQ(ring.reserve(4096, 0), nullptr); // 4096 + 8 can never fit
    EXPECT_EQ(drain(ring).size(), 4U);
    // Records now cross the end of the data area; the double mapping keeps each contiguous.
    for (int round = 0; round < 20; ++round) {
        std::iota(reinterpret_cast<std::uint8_t*>(payload.data()),
                  reinterpret_cast<std::uint8_t*>(payload.data()) + payload.size(), static_cast<std::uint8_t>(round));
        ASSERT_EQ(ring.output(payload.data(), payload.size(), 0), 0);
        ASSERT_EQ(ring.output(payload.data(), 700, 0), 0);
        const auto records = drain(ring);
        ASSERT_EQ(records.size(), 2U);
        EXPECT_EQ(records[0], payload);
        EXPECT_EQ(records[1], std::vector<std::byte>(payload.begin(), payload.begin() + 700));
    }
    EXPECT_GT(ring.query(ringbuf_map::prod_pos), 4096U * 5);
}

TEST(Ringbuf, UncommittedRecordHoldsBackTheConsumer) {
    auto owner = make_map(4096);
    auto& ring = dynamic_cast<ringbuf_map&>(*owner);
    void* held = ring.reserve(16, 0);
    const std::uint64_t value = 1;
    ASSERT_EQ(ring.output(&value, 8, 0), 0);
    EXPECT_TRUE(drain(ring).empty());
    ring.submit(held, 0);
    EXPECT_EQ(drain(ring).size(), 2U);
    EXPECT_GE(ring.wakeups(), 1U);
}

TEST(Ringbuf, MapCallsAreNotSupported) {
    auto ring = make_map(8192);
    std::uint32_t key = 0, value = 0;
    EXPECT_EQ(ring->lookup_elem(&key, &value), -enotsupp);
    EXPECT_EQ(ring->update_elem(&key, &value, 0), -enotsupp);
    EXPECT_EQ(ring->delete_elem(&key), -enotsupp);
    EXPECT_EQ(ring->get_next_key(nullptr, &key), -enotsupp);
}

} // namespace
} // namespace sluice::ebpf
