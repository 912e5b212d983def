// open_port(): spec strings to ports, the errors that name what was wrong, and the pcap and generator adapters.
// These need no privileges; tests/io/netns_port_test.cpp moves real packets through AF_XDP, AF_PACKET and TAP.
#include "sluice/io/port.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/io/pcap.hpp"
#include "sluice/io/traffic_generator.hpp"
#include "temp_directory.hpp"

namespace sluice::io {
namespace {

using port_file = testing::temp_directory_test;

std::string open_error(const std::string& spec, const port_options& options = {}) {
    xdp::frame_pool pool(8);
    auto opened = open_port(spec, pool, options);
    return opened ? std::string("opened") : opened.error().message;
}

TEST(open_port, errors_name_the_spec_and_the_reason) {
    EXPECT_EQ(open_error("eth0"),
              "port 'eth0': no kind; expected one of pcap:FILE, gen:SPEC, memory:NAME, afxdp:IFACE[:QUEUE], "
              "afpacket:IFACE, tap:NAME");
    EXPECT_EQ(open_error("dpdk:0000:01:00.0"),
              "port 'dpdk:0000:01:00.0': unknown kind 'dpdk'; expected one of pcap:FILE, gen:SPEC, memory:NAME, "
              "afxdp:IFACE[:QUEUE], afpacket:IFACE, tap:NAME");
    EXPECT_EQ(open_error("pcap:"), "port 'pcap:': no file name (pcap:FILE)");
    EXPECT_EQ(open_error("afxdp:lo:x"), "port 'afxdp:lo:x': queue 'x' is not a number");
    EXPECT_EQ(open_error("afpacket:"), "port 'afpacket:': no interface name");
    EXPECT_EQ(open_error("tap:"), "port 'tap:': no device name (tap:NAME)");
    EXPECT_EQ(open_error("tap:a-name-longer-than-15"),
              "port 'tap:a-name-longer-than-15': device name 'a-name-longer-than-15' is longer than 15 characters");
    EXPECT_EQ(open_error("afxdp:lo,turbo"),
              "port 'afxdp:lo,turbo': setting 'turbo' is not one of copy, generic, ring=N, poll=MS");
    EXPECT_EQ(open_error("afpacket:lo,ring=many"),
              "port 'afpacket:lo,ring=many': setting 'ring=many' is not one of ring=N, poll=MS");
    EXPECT_EQ(open_error("tap:x,generic"), "port 'tap:x,generic': setting 'generic' is not one of poll=MS");
    const std::string missing = open_error("pcap:/nonexistent/in.pcap");
    EXPECT_EQ(missing.rfind("port 'pcap:/nonexistent/in.pcap': ", 0), 0U) << missing;
    EXPECT_NE(missing.find("/nonexistent/in.pcap"), std::string::npos) << missing;
    const std::string spec = open_error("gen:packets=10,size=5");
    EXPECT_EQ(spec.rfind("port 'gen:packets=10,size=5': gen spec: key 'size'", 0), 0U) << spec;
}

TEST(open_port, a_missing_interface_is_named) {
    // No interface has this name in any namespace: the test creates none (names are at most 15 characters).
    EXPECT_EQ(open_error("afpacket:sl-missing0"),
              "port 'afpacket:sl-missing0': no such interface 'sl-missing0' (in this network namespace)");
    EXPECT_EQ(open_error("afxdp:sl-missing0:0"),
              "port 'afxdp:sl-missing0:0': no such interface 'sl-missing0' (in this network namespace)");
}

TEST(open_port, generator_port_delivers_every_packet_then_is_exhausted) {
    xdp::frame_pool pool(64);
    auto opened = open_port("gen:packets=100,size=64-1500,seed=7", pool);
    ASSERT_TRUE(opened) << opened.error().message;
    port& generator = *opened.value();
    EXPECT_EQ(generator.features().kind, "gen");
    EXPECT_TRUE(generator.features().rx);
    EXPECT_FALSE(generator.features().tx);
    EXPECT_GE(generator.features().ifindex, 1U << 24) << "sluice's own ifindexes stay clear of the kernel's";

    auto reference = traffic_generator::create(traffic_spec::parse("packets=100,size=64-1500,seed=7").value());
    ASSERT_TRUE(reference);
    std::array<xdp::frame*, 64> frames{};
    std::uint64_t received = 0;
    std::uint64_t bytes = 0;
    while (!generator.exhausted()) {
        const std::size_t count = generator.rx_batch(frames);
        for (std::size_t i = 0; i < count; ++i) {
            xdp::packet_info info;
            std::vector<std::uint8_t> expected(generator_max_size);
            expected.resize(reference->build(received, expected, info));
            const auto packet = frames[i]->packet();
            EXPECT_EQ(std::vector<std::uint8_t>(packet.begin(), packet.end()), expected) << "packet " << received;
            EXPECT_EQ(frames[i]->context().ingress_ifindex, generator.features().ifindex);
            EXPECT_EQ(frames[i]->info().record, received + 1);
            bytes += packet.size();
            ++received;
        }
        pool.release_batch(std::span<xdp::frame* const>(frames.data(), count));
        if (count == 0) {
            break;
        }
    }
    EXPECT_EQ(received, 100U);
    EXPECT_EQ(generator.rx_batch(frames), 0U);
    EXPECT_EQ(generator.stats().rx_packets, 100U);
    EXPECT_EQ(generator.stats().rx_bytes, bytes);
    EXPECT_EQ(pool.outstanding(), 0U);
}

TEST(open_port, generator_port_never_takes_more_frames_than_the_pool_has) {
    xdp::frame_pool pool(3);
    auto opened = open_port("gen:packets=10", pool);
    ASSERT_TRUE(opened);
    std::array<xdp::frame*, 64> frames{};
    EXPECT_EQ(opened.value()->rx_batch(frames), 3U);
    EXPECT_EQ(opened.value()->rx_batch(frames), 0U) << "the pool is dry, the packets wait";
    pool.release_batch(std::span<xdp::frame* const>(frames.data(), 3));
    EXPECT_EQ(opened.value()->rx_batch(frames), 3U);
    pool.release_batch(std::span<xdp::frame* const>(frames.data(), 3));
    EXPECT_EQ(opened.value()->stats().rx_packets, 6U);
}

TEST(open_port, memory_port_is_a_target) {
    xdp::frame_pool pool(8);
    auto opened = open_port("memory:sink", pool);
    ASSERT_TRUE(opened) << opened.error().message;
    EXPECT_EQ(opened.value()->features().kind, "memory");
    EXPECT_TRUE(opened.value()->features().tx);
    xdp::frame* item = pool.acquire();
    ASSERT_NE(item, nullptr);
    ASSERT_TRUE(item->resize(60));
    EXPECT_EQ(opened.value()->tx_batch(std::span<xdp::frame* const>(&item, 1)), 1U);
    EXPECT_EQ(pool.outstanding(), 0U);
    EXPECT_EQ(opened.value()->stats().tx_packets, 1U);
}

TEST_F(port_file, pcap_port_reads_a_file_and_counts_oversized_records) {
    const std::string input = path("in.pcap");
    {
        auto writer = pcap_writer::create(input, timestamp_precision::nanosecond);
        ASSERT_TRUE(writer);
        for (std::uint32_t i = 0; i < 10; ++i) {
            std::vector<std::uint8_t> packet(i == 4 ? 5000 : 60 + i, static_cast<std::uint8_t>(i));
            writer->write(packet, 1'700'000'000'000'000'000ULL + i);
        }
        ASSERT_TRUE(writer->close());
    }
    xdp::frame_pool pool(16);
    auto opened = open_port("pcap:" + input, pool);
    ASSERT_TRUE(opened) << opened.error().message;
    port& reader = *opened.value();
    EXPECT_EQ(reader.features().kind, "pcap");
    EXPECT_EQ(reader.features().interface, input);
    EXPECT_EQ(reader.features().mode, "read, pcap, nanosecond");
    std::array<xdp::frame*, 64> frames{};
    const std::size_t count = reader.rx_batch(frames);
    ASSERT_EQ(count, 9U);
    EXPECT_EQ(frames[4]->length(), 65U) << "the 5000-byte record (5th) is skipped";
    EXPECT_EQ(frames[4]->info().record, 6U);
    EXPECT_EQ(frames[0]->info().timestamp_ns, 1'700'000'000'000'000'000ULL);
    pool.release_batch(std::span<xdp::frame* const>(frames.data(), count));
    EXPECT_EQ(reader.rx_batch(frames), 0U);
    EXPECT_TRUE(reader.exhausted());
    EXPECT_EQ(reader.stats().rx_packets, 9U);
    EXPECT_EQ(reader.stats().rx_errors, 1U);
    EXPECT_EQ(pool.outstanding(), 0U);
    EXPECT_EQ(reader.tx_batch(std::span<xdp::frame* const>(frames.data(), 0)), 0U);
}

TEST_F(port_file, pcap_output_port_writes_frames_and_gives_them_back) {
    const std::string output = path("out.pcap");
    xdp::frame_pool pool(8);
    port_options options;
    options.output = true;
    auto opened = open_port("pcap:" + output, pool, options);
    ASSERT_TRUE(opened) << opened.error().message;
    port& writer = *opened.value();
    EXPECT_FALSE(writer.features().rx);
    EXPECT_TRUE(writer.features().tx);
    EXPECT_TRUE(writer.features().pass_target);
    EXPECT_TRUE(writer.exhausted());
    std::array<xdp::frame*, 4> frames{};
    ASSERT_EQ(pool.acquire_batch(frames), 4U);
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::vector<std::uint8_t> packet(100 + i, static_cast<std::uint8_t>(0xa0 + i));
        ASSERT_TRUE(frames[i]->assign(packet));
        frames[i]->info().timestamp_ns = 1'700'000'000'000'000'000ULL + i * 1000;
    }
    EXPECT_EQ(writer.tx_batch(frames), 4U);
    EXPECT_EQ(pool.outstanding(), 0U) << "a copying port releases what it accepted";
    EXPECT_EQ(writer.stats().tx_packets, 4U);
    EXPECT_EQ(writer.stats().tx_bytes, 100U + 101 + 102 + 103);
    opened.value().reset(); // closes the file

    auto reader = pcap_reader::open(output);
    ASSERT_TRUE(reader);
    std::array<xdp::frame*, 8> back{};
    ASSERT_EQ(pool.acquire_batch(back), 8U);
    ASSERT_EQ(reader->rx_batch(back), 4U);
    EXPECT_EQ(back[3]->length(), 103U);
    EXPECT_EQ(back[3]->packet()[0], 0xa3);
    EXPECT_EQ(back[3]->info().timestamp_ns, 1'700'000'000'000'003'000ULL);
    pool.release_batch(back);
}

} // namespace
} // namespace sluice::io
