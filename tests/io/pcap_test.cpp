// pcap ports on real files: round trips, pcapng input crafted from its block layout, truncated, empty, oversized and
// non-Ethernet captures.
#include "sluice/io/pcap.hpp"

#include <array>
#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

#include "temp_directory.hpp"

namespace sluice::io {
namespace {

using pcap_file = testing::temp_directory_test;

std::vector<std::uint8_t> make_packet(std::size_t length, std::uint8_t seed) {
    std::vector<std::uint8_t> bytes(length);
    for (std::size_t i = 0; i < length; ++i) {
        bytes[i] = static_cast<std::uint8_t>(seed + i * 13);
    }
    return bytes;
}

struct written_packet {
    std::vector<std::uint8_t> bytes;
    std::uint64_t timestamp_ns;
};

std::vector<written_packet> sample_packets(std::size_t count) {
    std::vector<written_packet> packets;
    for (std::size_t i = 0; i < count; ++i) {
        packets.push_back({make_packet(60 + (i * 37) % 1400, static_cast<std::uint8_t>(i)),
                           1'700'000'000'123'456'789ULL + i * 1'000'017ULL});
    }
    return packets;
}

void write_pcap(const std::string& file, const std::vector<written_packet>& packets, timestamp_precision precision) {
    auto writer = pcap_writer::create(file, precision);
    ASSERT_TRUE(writer) << writer.error().message;
    for (const auto& packet : packets) {
        writer->write(packet.bytes, packet.timestamp_ns);
    }
    ASSERT_TRUE(writer->close());
}

// Reads everything, batch by batch, releasing frames as the engine would; returns copies of the packets.
struct read_result {
    std::vector<written_packet> packets;
    std::vector<std::uint64_t> records;
    std::vector<std::size_t> batch_sizes;
};

read_result read_all(pcap_reader& reader, xdp::frame_pool& pool) {
    read_result result;
    std::array<xdp::frame*, max_batch> frames{};
    while (reader.state() == rx_state::more) {
        const std::size_t acquired = pool.acquire_batch(frames);
        const std::size_t count = reader.rx_batch({frames.data(), acquired});
        for (std::size_t i = 0; i < count; ++i) {
            const auto packet = frames[i]->packet();
            result.packets.push_back({{packet.begin(), packet.end()}, frames[i]->info().timestamp_ns});
            result.records.push_back(frames[i]->info().record);
        }
        if (count != 0) {
            result.batch_sizes.push_back(count);
        }
        pool.release_batch({frames.data(), acquired});
    }
    return result;
}

TEST_F(pcap_file, pcap_round_trip_keeps_bytes_and_nanosecond_timestamps) {
    const auto packets = sample_packets(100);
    write_pcap(path("out.pcap"), packets, timestamp_precision::nanosecond);

    auto reader = pcap_reader::open(path("out.pcap"));
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ(reader->precision(), timestamp_precision::nanosecond);
    EXPECT_FALSE(reader->is_pcapng());
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    EXPECT_EQ(reader->state(), rx_state::end);
    EXPECT_EQ(pool.outstanding(), 0U);
    ASSERT_EQ(result.packets.size(), packets.size());
    for (std::size_t i = 0; i < packets.size(); ++i) {
        EXPECT_EQ(result.packets[i].bytes, packets[i].bytes) << "packet " << i;
        EXPECT_EQ(result.packets[i].timestamp_ns, packets[i].timestamp_ns) << "packet " << i;
        EXPECT_EQ(result.records[i], i + 1);
    }
    EXPECT_EQ(result.batch_sizes, (std::vector<std::size_t>{64, 36}));
    EXPECT_EQ(reader->delivered(), 100U);
    EXPECT_EQ(reader->errors(), 0U);
}

TEST_F(pcap_file, microsecond_pcap_keeps_microseconds) {
    const auto packets = sample_packets(3);
    write_pcap(path("micro.pcap"), packets, timestamp_precision::microsecond);
    auto reader = pcap_reader::open(path("micro.pcap"));
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ(reader->precision(), timestamp_precision::microsecond);
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    ASSERT_EQ(result.packets.size(), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(result.packets[i].timestamp_ns, packets[i].timestamp_ns / 1000 * 1000);
    }
}

TEST_F(pcap_file, frames_written_by_tx_batch_read_back_equal) {
    xdp::frame_pool pool(8);
    std::array<xdp::frame*, 4> frames{};
    ASSERT_EQ(pool.acquire_batch(frames), 4U);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        ASSERT_TRUE(frames[i]->assign(make_packet(64 * (i + 1), static_cast<std::uint8_t>(i))));
        frames[i]->info().timestamp_ns = 5'000'000'001ULL * (i + 1);
    }
    auto writer = pcap_writer::create(path("tx.pcap"), timestamp_precision::nanosecond);
    ASSERT_TRUE(writer);
    EXPECT_EQ(writer->tx_batch(frames), 4U);
    ASSERT_TRUE(writer->close());
    EXPECT_EQ(pool.outstanding(), 4U); // tx_batch leaves the frames to the caller
    pool.release_batch(frames);

    auto reader = pcap_reader::open(path("tx.pcap"));
    ASSERT_TRUE(reader);
    const auto result = read_all(*reader, pool);
    ASSERT_EQ(result.packets.size(), 4U);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(result.packets[i].bytes, make_packet(64 * (i + 1), static_cast<std::uint8_t>(i)));
        EXPECT_EQ(result.packets[i].timestamp_ns, 5'000'000'001ULL * (i + 1));
    }
}

// pcapng, little-endian, built from the block layout of draft-ietf-opsawg-pcapng: Section Header Block, Interface
// Description Block (optionally with if_tsresol), Enhanced Packet Blocks. libpcap cannot write pcapng.
class pcapng_builder {
public:
    explicit pcapng_builder(std::optional<std::uint8_t> tsresol) {
        block(0x0a0d0d0a, [&] {
            put32(0x1a2b3c4d); // byte-order magic
            put16(1);          // major
            put16(0);          // minor
            put32(0xffffffff); // section length unknown (64 bits)
            put32(0xffffffff);
        });
        block(1, [&] {
            put16(1); // LINKTYPE_ETHERNET
            put16(0);
            put32(262144);
            if (tsresol) {
                put16(9); // if_tsresol
                put16(1);
                _bytes.push_back(*tsresol);
                pad();
                put32(0); // opt_endofopt
            }
        });
    }

    void packet(std::uint64_t timestamp_units, const std::vector<std::uint8_t>& data) {
        block(6, [&] {
            put32(0); // interface 0
            put32(static_cast<std::uint32_t>(timestamp_units >> 32));
            put32(static_cast<std::uint32_t>(timestamp_units));
            put32(static_cast<std::uint32_t>(data.size()));
            put32(static_cast<std::uint32_t>(data.size()));
            _bytes.insert(_bytes.end(), data.begin(), data.end());
            pad();
        });
    }

    const std::vector<std::uint8_t>& bytes() const { return _bytes; }

private:
    template <typename Body> void block(std::uint32_t type, Body body) {
        const std::size_t start = _bytes.size();
        put32(type);
        put32(0); // length, patched below
        body();
        const auto length = static_cast<std::uint32_t>(_bytes.size() - start + 4);
        put32(length);
        for (int i = 0; i < 4; ++i) {
            _bytes[start + 4 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(length >> (8 * i));
        }
    }
    void put16(std::uint16_t value) {
        _bytes.push_back(static_cast<std::uint8_t>(value));
        _bytes.push_back(static_cast<std::uint8_t>(value >> 8));
    }
    void put32(std::uint32_t value) {
        put16(static_cast<std::uint16_t>(value));
        put16(static_cast<std::uint16_t>(value >> 16));
    }
    void pad() {
        while (_bytes.size() % 4 != 0) {
            _bytes.push_back(0);
        }
    }

    std::vector<std::uint8_t> _bytes;
};

TEST_F(pcap_file, pcapng_with_nanosecond_resolution_is_read) {
    pcapng_builder builder(std::uint8_t{9});
    builder.packet(1'700'000'000'000'000'001ULL, make_packet(60, 1));
    builder.packet(1'700'000'000'000'000'999ULL, make_packet(61, 2)); // 61: the block needs padding
    write_file(path("in.pcapng"), builder.bytes());

    auto reader = pcap_reader::open(path("in.pcapng"));
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_TRUE(reader->is_pcapng());
    EXPECT_EQ(reader->precision(), timestamp_precision::nanosecond);
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    EXPECT_EQ(reader->state(), rx_state::end);
    ASSERT_EQ(result.packets.size(), 2U);
    EXPECT_EQ(result.packets[0].bytes, make_packet(60, 1));
    EXPECT_EQ(result.packets[1].bytes, make_packet(61, 2));
    EXPECT_EQ(result.packets[0].timestamp_ns, 1'700'000'000'000'000'001ULL);
    EXPECT_EQ(result.packets[1].timestamp_ns, 1'700'000'000'000'000'999ULL);
}

TEST_F(pcap_file, pcapng_without_tsresol_is_microseconds) {
    pcapng_builder builder(std::nullopt);
    builder.packet(1'700'000'000'000'001ULL, make_packet(100, 3));
    write_file(path("in.pcapng"), builder.bytes());

    auto reader = pcap_reader::open(path("in.pcapng"));
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ(reader->precision(), timestamp_precision::microsecond);
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    ASSERT_EQ(result.packets.size(), 1U);
    EXPECT_EQ(result.packets[0].timestamp_ns, 1'700'000'000'000'001'000ULL);
}

TEST_F(pcap_file, truncated_file_delivers_the_packets_before_and_names_the_record) {
    const auto packets = sample_packets(5);
    write_pcap(path("full.pcap"), packets, timestamp_precision::microsecond);
    auto bytes = read_file(path("full.pcap"));
    // 24-byte file header, then 16-byte record headers: cut record 4 in the middle of its data.
    std::size_t offset = 24;
    for (std::size_t i = 0; i < 3; ++i) {
        offset += 16 + packets[i].bytes.size();
    }
    bytes.resize(offset + 16 + packets[3].bytes.size() / 2);
    write_file(path("cut.pcap"), bytes);

    auto reader = pcap_reader::open(path("cut.pcap"));
    ASSERT_TRUE(reader) << reader.error().message;
    xdp::frame_pool pool(2); // batches of 2: the error comes in the second batch, after one good packet
    const auto result = read_all(*reader, pool);
    EXPECT_EQ(reader->state(), rx_state::failed);
    ASSERT_TRUE(reader->failure().has_value());
    EXPECT_NE(reader->failure()->message.find("record 4"), std::string::npos) << reader->failure()->message;
    EXPECT_NE(reader->failure()->message.find("truncated"), std::string::npos) << reader->failure()->message;
    ASSERT_EQ(result.packets.size(), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(result.packets[i].bytes, packets[i].bytes);
    }
    EXPECT_EQ(reader->delivered(), 3U);
    EXPECT_EQ(pool.outstanding(), 0U);
}

TEST_F(pcap_file, truncated_record_header_is_an_error_too) {
    const auto packets = sample_packets(2);
    write_pcap(path("full.pcap"), packets, timestamp_precision::microsecond);
    auto bytes = read_file(path("full.pcap"));
    bytes.resize(24 + 16 + packets[0].bytes.size() + 7);
    write_file(path("cut.pcap"), bytes);
    auto reader = pcap_reader::open(path("cut.pcap"));
    ASSERT_TRUE(reader);
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    EXPECT_EQ(result.packets.size(), 1U);
    EXPECT_EQ(reader->state(), rx_state::failed);
    EXPECT_NE(reader->failure()->message.find("record 2"), std::string::npos) << reader->failure()->message;
}

TEST_F(pcap_file, empty_capture_ends_at_once_and_empty_file_is_refused) {
    write_pcap(path("empty.pcap"), {}, timestamp_precision::microsecond);
    auto reader = pcap_reader::open(path("empty.pcap"));
    ASSERT_TRUE(reader) << reader.error().message;
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    EXPECT_TRUE(result.packets.empty());
    EXPECT_EQ(reader->state(), rx_state::end);
    EXPECT_EQ(reader->records(), 0U);

    write_file(path("zero.pcap"), {});
    auto zero = pcap_reader::open(path("zero.pcap"));
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.error().message.find("zero.pcap"), std::string::npos) << zero.error().message;

    auto missing = pcap_reader::open(path("missing.pcap"));
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("missing.pcap"), std::string::npos);
}

TEST_F(pcap_file, packets_larger_than_a_frame_are_counted_with_a_message) {
    std::vector<written_packet> packets{{make_packet(100, 1), 1000},
                                        {make_packet(9000, 2), 2000},
                                        {make_packet(10, 3), 3000},
                                        {make_packet(3520, 4), 4000}};
    write_pcap(path("big.pcap"), packets, timestamp_precision::microsecond);
    auto reader = pcap_reader::open(path("big.pcap"));
    ASSERT_TRUE(reader);
    xdp::frame_pool pool(max_batch);
    const auto result = read_all(*reader, pool);
    EXPECT_EQ(reader->state(), rx_state::end);
    ASSERT_EQ(result.packets.size(), 2U);
    EXPECT_EQ(result.records, (std::vector<std::uint64_t>{1, 4}));
    EXPECT_EQ(reader->errors(), 2U);
    EXPECT_EQ(reader->records(), 4U);
    ASSERT_EQ(reader->messages().size(), 2U);
    EXPECT_NE(reader->messages()[0].find("record 2"), std::string::npos) << reader->messages()[0];
    EXPECT_NE(reader->messages()[0].find("9000"), std::string::npos);
    EXPECT_NE(reader->messages()[1].find("record 3"), std::string::npos) << reader->messages()[1];

    // The same file through jumbo frames: the 9000-byte packet fits.
    auto again = pcap_reader::open(path("big.pcap"));
    ASSERT_TRUE(again);
    xdp::frame_pool jumbo(max_batch, xdp::jumbo_frame_size);
    const auto jumbo_result = read_all(*again, jumbo);
    EXPECT_EQ(jumbo_result.packets.size(), 3U);
    EXPECT_EQ(again->errors(), 1U);
}

TEST_F(pcap_file, non_ethernet_link_type_is_refused) {
    // Classic pcap header, little-endian, link type 101 (LINKTYPE_RAW).
    std::vector<std::uint8_t> header{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0,   0, 0, 0,
                                     0,    0,    0,    0,    0, 0, 4, 0, 101, 0, 0, 0};
    write_file(path("raw.pcap"), header);
    auto reader = pcap_reader::open(path("raw.pcap"));
    ASSERT_FALSE(reader);
    EXPECT_NE(reader.error().message.find("link type"), std::string::npos) << reader.error().message;
    EXPECT_NE(reader.error().message.find("RAW"), std::string::npos) << reader.error().message;
}

TEST_F(pcap_file, writer_reports_a_path_it_cannot_create) {
    auto writer = pcap_writer::create(path("no/such/dir/out.pcap"));
    ASSERT_FALSE(writer);
    EXPECT_NE(writer.error().message.find("out.pcap"), std::string::npos);
}

} // namespace
} // namespace sluice::io
