// The traffic generator: determinism, valid headers and checksums (recomputed here independently), the shares the
// spec asks for, attack sources, and the spec string's errors.
#include "sluice/io/traffic_generator.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "temp_directory.hpp"

namespace sluice::io {
namespace {

using generator_file = testing::temp_directory_test;

traffic_generator make(std::string_view text) {
    auto spec = traffic_spec::parse(text);
    EXPECT_TRUE(spec) << spec.error().message;
    auto generator = traffic_generator::create(*spec);
    EXPECT_TRUE(generator) << generator.error().message;
    return std::move(*generator);
}

std::vector<std::vector<std::uint8_t>> generate_all(traffic_generator& generator) {
    xdp::frame_pool pool(max_batch, xdp::jumbo_frame_size);
    std::vector<std::vector<std::uint8_t>> packets;
    std::array<xdp::frame*, max_batch> frames{};
    while (generator.state() == rx_state::more) {
        const std::size_t acquired = pool.acquire_batch(frames);
        const std::size_t count = generator.rx_batch({frames.data(), acquired});
        for (std::size_t i = 0; i < count; ++i) {
            const auto bytes = frames[i]->packet();
            packets.emplace_back(bytes.begin(), bytes.end());
        }
        pool.release_batch({frames.data(), acquired});
    }
    return packets;
}

double ratio(std::size_t part, std::size_t whole) {
    return static_cast<double>(part) / static_cast<double>(whole);
}

std::uint16_t get16(const std::uint8_t* at) {
    return static_cast<std::uint16_t>((at[0] << 8) | at[1]);
}

// RFC 1071 over a buffer that includes its checksum field: a correct checksum makes the folded sum 0xffff.
std::uint32_t ones_sum(const std::uint8_t* bytes, std::size_t length, std::uint32_t sum = 0) {
    for (std::size_t i = 0; i < length; i += 2) {
        sum += static_cast<std::uint32_t>(bytes[i] << 8) + (i + 1 < length ? bytes[i + 1] : 0U);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return sum;
}

struct decoded {
    bool vlan{};
    bool ipv6{};
    std::uint8_t protocol{};
    const std::uint8_t* source{};
    std::uint8_t tcp_flags{};
};

// Decodes one generated packet and checks every length and checksum in it.
decoded check_packet(const std::vector<std::uint8_t>& packet) {
    decoded result;
    const std::uint8_t* at = packet.data();
    std::size_t offset = 12;
    std::uint16_t type = get16(at + offset);
    if (type == 0x8100) {
        result.vlan = true;
        const std::uint16_t vlan_id = get16(at + offset + 2) & 0x0fff;
        EXPECT_TRUE(vlan_id >= 1 && vlan_id <= 4094);
        offset += 4;
        type = get16(at + offset);
    }
    offset += 2;
    const std::uint8_t* ip = at + offset;
    const std::size_t ip_length = packet.size() - offset;
    std::uint32_t pseudo = 0;
    const std::uint8_t* l4 = nullptr;
    std::size_t l4_length = 0;
    if (type == 0x0800) {
        EXPECT_EQ(ip[0], 0x45);
        EXPECT_EQ(get16(ip + 2), ip_length);
        EXPECT_EQ(ones_sum(ip, 20), 0xffffU) << "IPv4 header checksum";
        result.protocol = ip[9];
        result.source = ip + 12;
        l4 = ip + 20;
        l4_length = ip_length - 20;
        pseudo = ones_sum(ip + 12, 8, static_cast<std::uint32_t>(l4_length + result.protocol));
    } else {
        EXPECT_EQ(type, 0x86dd);
        result.ipv6 = true;
        EXPECT_EQ(ip[0] >> 4, 6);
        EXPECT_EQ(get16(ip + 4), ip_length - 40);
        result.protocol = ip[6];
        result.source = ip + 8;
        l4 = ip + 40;
        l4_length = ip_length - 40;
        pseudo = ones_sum(ip + 8, 32, static_cast<std::uint32_t>(l4_length + result.protocol));
    }
    switch (result.protocol) {
    case 6:
        EXPECT_GE(l4_length, 20U);
        EXPECT_EQ(l4[12] >> 4, 5);
        result.tcp_flags = l4[13];
        EXPECT_EQ(ones_sum(l4, l4_length, pseudo), 0xffffU) << "TCP checksum";
        break;
    case 17:
        EXPECT_EQ(get16(l4 + 4), l4_length);
        EXPECT_NE(get16(l4 + 6), 0);
        EXPECT_EQ(ones_sum(l4, l4_length, pseudo), 0xffffU) << "UDP checksum";
        break;
    case 1:
        EXPECT_FALSE(result.ipv6);
        EXPECT_EQ(l4[0], 8);
        EXPECT_EQ(ones_sum(l4, l4_length), 0xffffU) << "ICMP checksum";
        break;
    case 58:
        EXPECT_TRUE(result.ipv6);
        EXPECT_EQ(l4[0], 128);
        EXPECT_EQ(ones_sum(l4, l4_length, pseudo), 0xffffU) << "ICMPv6 checksum";
        break;
    default:
        ADD_FAILURE() << "unexpected protocol " << int{result.protocol};
    }
    return result;
}

TEST(traffic_generator, same_seed_gives_the_same_bytes_and_rewind_replays) {
    auto first = make("gen:packets=500,flows=50,size=64-1500,ipv6=30,vlan=20,attack=10@203.0.113.0/24,seed=7");
    auto second = make("gen:packets=500,flows=50,size=64-1500,ipv6=30,vlan=20,attack=10@203.0.113.0/24,seed=7");
    auto other = make("gen:packets=500,flows=50,size=64-1500,ipv6=30,vlan=20,attack=10@203.0.113.0/24,seed=8");
    const auto packets = generate_all(first);
    ASSERT_EQ(packets.size(), 500U);
    EXPECT_EQ(packets, generate_all(second));
    EXPECT_NE(packets, generate_all(other));
    first.rewind();
    EXPECT_EQ(packets, generate_all(first));
}

TEST(traffic_generator, every_packet_has_correct_lengths_and_checksums) {
    auto generator = make("packets=5000,flows=300,size=14-1600,mix=tcp:1/udp:1/icmp:1,ipv6=40,vlan=30,"
                          "attack=20@2001:db8::/32,seed=3");
    for (const auto& packet : generate_all(generator)) {
        check_packet(packet);
        if (::testing::Test::HasFailure()) {
            break;
        }
    }
}

TEST(traffic_generator, protocol_ip_version_and_vlan_shares_follow_the_spec) {
    auto generator = make("gen:packets=100000,flows=1000,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=20,vlan=5,seed=1");
    std::map<std::uint8_t, std::size_t> protocols;
    std::size_t ipv6 = 0, vlan = 0;
    const auto packets = generate_all(generator);
    ASSERT_EQ(packets.size(), 100000U);
    for (const auto& packet : packets) {
        const decoded fields = check_packet(packet);
        ++protocols[fields.protocol == 58 ? std::uint8_t{1} : fields.protocol];
        ipv6 += fields.ipv6 ? 1 : 0;
        vlan += fields.vlan ? 1 : 0;
        EXPECT_TRUE(packet.size() >= 64 && packet.size() <= 1500) << packet.size();
    }
    const auto share = [&](std::size_t count) { return ratio(count, packets.size()); };
    EXPECT_NEAR(share(protocols[6]), 0.60, 0.02);
    EXPECT_NEAR(share(protocols[17]), 0.30, 0.02);
    EXPECT_NEAR(share(protocols[1]), 0.10, 0.02);
    EXPECT_NEAR(share(ipv6), 0.20, 0.02);
    EXPECT_NEAR(share(vlan), 0.05, 0.015);
}

TEST(traffic_generator, attack_sources_come_from_the_prefix_at_a_higher_rate) {
    auto generator = make("gen:packets=50000,flows=1000,attack=10@203.0.113.0/24,attack_sources=8,seed=2");
    auto prefix = traffic_spec::parse("attack=1@203.0.113.0/24");
    ASSERT_TRUE(prefix);
    std::map<std::array<std::uint8_t, 4>, std::size_t> attack_sources;
    std::size_t attack = 0;
    const auto packets = generate_all(generator);
    for (const auto& packet : packets) {
        const decoded fields = check_packet(packet);
        ASSERT_FALSE(fields.ipv6);
        if (prefix->attack_prefix->contains({fields.source, 4})) {
            ++attack;
            ++attack_sources[{fields.source[0], fields.source[1], fields.source[2], fields.source[3]}];
            if (fields.protocol == 6) {
                EXPECT_EQ(fields.tcp_flags, 0x02); // SYN flood
            }
        }
    }
    EXPECT_NEAR(ratio(attack, packets.size()), 0.10, 0.01);
    EXPECT_LE(attack_sources.size(), 8U);
    EXPECT_GE(attack_sources.size(), 4U);
    // A normal flow sends about 45000 / 1000 = 45 packets; each attack source about 5000 / 8 = 625.
    for (const auto& [source, count] : attack_sources) {
        EXPECT_GT(count, 300U);
    }
}

TEST(traffic_generator, ipv6_attack_prefix_gives_ipv6_attack_packets) {
    auto generator = make("packets=2000,flows=10,attack=50@2001:db8:5::/48,seed=4");
    auto prefix = traffic_spec::parse("attack=1@2001:db8:5::/48");
    std::size_t attack = 0;
    for (const auto& packet : generate_all(generator)) {
        const decoded fields = check_packet(packet);
        if (fields.ipv6 && prefix->attack_prefix->contains({fields.source, 16})) {
            ++attack;
        }
    }
    EXPECT_NEAR(ratio(attack, 2000), 0.5, 0.05);
}

TEST(traffic_generator, sizes_fixed_range_and_imix) {
    auto fixed = make("packets=200,size=128,mix=udp:1");
    for (const auto& packet : generate_all(fixed)) {
        EXPECT_EQ(packet.size(), 128U);
    }
    // A size below the headers gets the headers: 14 + 4 + 40 + 20 for VLAN + IPv6 + TCP.
    auto tiny = make("packets=50,size=14,mix=tcp:1,ipv6=100,vlan=100");
    for (const auto& packet : generate_all(tiny)) {
        EXPECT_EQ(packet.size(), 78U);
    }
    auto imix = make("packets=12000,size=imix,mix=udp:1");
    std::map<std::size_t, std::size_t> sizes;
    for (const auto& packet : generate_all(imix)) {
        ++sizes[packet.size()];
    }
    ASSERT_EQ(sizes.size(), 3U);
    EXPECT_NEAR(ratio(sizes[60], 12000), 7.0 / 12, 0.02);
    EXPECT_NEAR(ratio(sizes[590], 12000), 4.0 / 12, 0.02);
    EXPECT_NEAR(ratio(sizes[1514], 12000), 1.0 / 12, 0.02);
}

TEST(traffic_generator, packets_larger_than_the_frames_are_counted) {
    auto generator = make("packets=10,size=9000");
    xdp::frame_pool pool(16);
    std::array<xdp::frame*, 16> frames{};
    ASSERT_EQ(pool.acquire_batch(frames), 16U);
    EXPECT_EQ(generator.rx_batch(frames), 0U);
    EXPECT_EQ(generator.errors(), 10U);
    EXPECT_EQ(generator.state(), rx_state::end);
    generator.rewind();
    xdp::frame_pool jumbo(16, xdp::jumbo_frame_size);
    ASSERT_EQ(jumbo.acquire_batch(frames), 16U);
    EXPECT_EQ(generator.rx_batch(frames), 10U);
    EXPECT_EQ(frames[0]->length(), 9000U);
    EXPECT_EQ(frames[9]->info().record, 10U);
}

TEST_F(generator_file, pcap_output_reads_back_as_the_frames_the_port_gives) {
    auto generator = make("gen:packets=300,flows=20,size=imix,ipv6=50,vlan=10,rate=1000,seed=9");
    auto written = generator.write_pcap(path("gen.pcap"));
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(*written, 300U);
    auto reader = pcap_reader::open(path("gen.pcap"));
    ASSERT_TRUE(reader) << reader.error().message;
    EXPECT_EQ(reader->precision(), timestamp_precision::nanosecond);
    xdp::frame_pool pool(max_batch);
    std::array<xdp::frame*, max_batch> frames{};
    const auto expected_packets = generate_all(generator);
    std::size_t index = 0;
    while (reader->state() == rx_state::more) {
        const std::size_t acquired = pool.acquire_batch(frames);
        const std::size_t count = reader->rx_batch({frames.data(), acquired});
        for (std::size_t i = 0; i < count; ++i, ++index) {
            const auto bytes = frames[i]->packet();
            EXPECT_EQ(std::vector<std::uint8_t>(bytes.begin(), bytes.end()), expected_packets[index]);
            EXPECT_EQ(frames[i]->info().timestamp_ns, 1'700'000'000'000'000'000ULL + index * 1'000'000ULL);
        }
        pool.release_batch({frames.data(), acquired});
    }
    EXPECT_EQ(index, 300U);
    EXPECT_EQ(reader->state(), rx_state::end);
}

TEST(traffic_spec, parses_every_key) {
    auto spec = traffic_spec::parse("gen:packets=100000,flows=1000,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=20,"
                                    "vlan=5,attack=10@203.0.113.7/24,attack_sources=4,rate=5000,seed=42");
    ASSERT_TRUE(spec) << spec.error().message;
    EXPECT_EQ(spec->packets, 100000U);
    EXPECT_EQ(spec->flows, 1000U);
    EXPECT_EQ(spec->size.kind, size_kind::range);
    EXPECT_EQ(spec->size.min, 64U);
    EXPECT_EQ(spec->size.max, 1500U);
    EXPECT_EQ(spec->mix, (std::array<std::uint32_t, 3>{60, 30, 10}));
    EXPECT_EQ(spec->ipv6_percent, 20U);
    EXPECT_EQ(spec->vlan_percent, 5U);
    EXPECT_EQ(spec->attack_percent, 10U);
    ASSERT_TRUE(spec->attack_prefix.has_value());
    EXPECT_EQ(spec->attack_prefix->length, 24);
    EXPECT_EQ(spec->attack_prefix->address[3], 0); // host bits cleared
    EXPECT_EQ(spec->attack_sources, 4U);
    EXPECT_EQ(spec->rate, 5000U);
    EXPECT_EQ(spec->seed, 42U);
    auto empty = traffic_spec::parse("gen:");
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->packets, 1000U);
    auto partial_mix = traffic_spec::parse("mix=udp:5");
    ASSERT_TRUE(partial_mix);
    EXPECT_EQ(partial_mix->mix, (std::array<std::uint32_t, 3>{0, 5, 0}));
}

TEST(traffic_spec, errors_name_the_bad_key) {
    const std::vector<std::pair<std::string, std::string>> cases{
        {"gen:packets=10,colour=red", "unknown key 'colour'"},
        {"packets=ten", "key 'packets'"},
        {"flows=0", "key 'flows'"},
        {"size=64-", "key 'size'"},
        {"size=1500-64", "key 'size'"},
        {"size=10", "key 'size'"},
        {"size=20000", "key 'size'"},
        {"mix=tcp:60/sctp:40", "key 'mix'"},
        {"mix=tcp:0", "key 'mix'"},
        {"mix=tcp", "key 'mix'"},
        {"ipv6=101", "key 'ipv6'"},
        {"vlan=-1", "key 'vlan'"},
        {"attack=10", "key 'attack'"},
        {"attack=10@203.0.113.0/33", "key 'attack'"},
        {"attack=10@not-an-address/24", "key 'attack'"},
        {"attack_sources=0", "key 'attack_sources'"},
        {"rate=0", "key 'rate'"},
        {"seed=1,seed=2", "key 'seed': given twice"},
        {"packets", "'packets' is not KEY=VALUE"},
    };
    for (const auto& [text, expected_message] : cases) {
        auto spec = traffic_spec::parse(text);
        ASSERT_FALSE(spec) << text;
        EXPECT_NE(spec.error().message.find(expected_message), std::string::npos)
            << text << " -> " << spec.error().message;
    }
}

} // namespace
} // namespace sluice::io
