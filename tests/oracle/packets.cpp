// Packets for the oracle (packets.hpp).
#include "packets.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "sluice/io/traffic_generator.hpp"

namespace sluice::oracle {
namespace {

constexpr std::uint16_t ethertype_ipv4 = 0x0800;
constexpr std::uint16_t ethertype_ipv6 = 0x86dd;
constexpr std::uint16_t ethertype_vlan = 0x8100;
constexpr std::uint16_t ethertype_qinq = 0x88a8;
constexpr std::uint16_t ethertype_arp = 0x0806;
constexpr std::uint8_t ip_icmp = 1;
constexpr std::uint8_t ip_tcp = 6;
constexpr std::uint8_t ip_udp = 17;
constexpr std::uint8_t ip_icmpv6 = 58;
constexpr std::uint8_t ipv6_hop_by_hop = 0;
constexpr std::uint8_t ipv6_routing = 43;
constexpr std::uint8_t ipv6_fragment = 44;
constexpr std::uint8_t ipv6_destination = 60;
constexpr std::uint8_t ipv6_auth = 51;
constexpr std::uint8_t ipv6_none = 59;

/// splitmix64: the same numbers everywhere (std's distributions differ between libraries).
class random_source {
public:
    explicit random_source(std::uint64_t seed) : _state(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::uint64_t below(std::uint64_t bound) { return bound == 0 ? 0 : next() % bound; }
    bool chance(unsigned percent) { return below(100) < percent; }

private:
    std::uint64_t _state;
};

using bytes = std::vector<std::uint8_t>;

void put16(bytes& out, std::uint16_t value) {
    out.push_back(static_cast<std::uint8_t>(value >> 8));
    out.push_back(static_cast<std::uint8_t>(value));
}
void put32(bytes& out, std::uint32_t value) {
    put16(out, static_cast<std::uint16_t>(value >> 16));
    put16(out, static_cast<std::uint16_t>(value));
}
void pattern(bytes& out, std::size_t count, std::uint8_t start = 0x30) {
    for (std::size_t i = 0; i < count; ++i) {
        out.push_back(static_cast<std::uint8_t>(start + i));
    }
}

void ethernet(bytes& out, std::uint16_t type) {
    for (const int byte : {0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01}) {
        out.push_back(static_cast<std::uint8_t>(byte));
    }
    put16(out, type);
}
/// One 802.1Q/802.1ad tag: TCI, then the inner EtherType.
void vlan(bytes& out, std::uint16_t tci, std::uint16_t inner) {
    put16(out, tci);
    put16(out, inner);
}

std::uint16_t checksum(const std::uint8_t* data, std::size_t length) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < length; i += 2) {
        sum += static_cast<std::uint32_t>(data[i] << 8 | data[i + 1]);
    }
    if (length % 2 != 0) {
        sum += static_cast<std::uint32_t>(data[length - 1] << 8);
    }
    while (sum >> 16 != 0) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

struct ipv4_fields {
    std::uint8_t protocol{ip_udp};
    std::uint8_t ihl{5};
    std::uint16_t payload{8};
    int total_length{-1};           ///< -1: 4 * ihl + payload
    std::uint16_t fragment{0x4000}; ///< flags and offset: DF by default
    std::uint32_t source{0xc0000201};
    std::uint32_t destination{0xc6336402};
    std::uint8_t ttl{64};
};

void ipv4(bytes& out, const ipv4_fields& fields) {
    const std::size_t start = out.size();
    out.push_back(static_cast<std::uint8_t>(0x40 | (fields.ihl & 0x0f)));
    out.push_back(0);
    const int total = fields.total_length >= 0 ? fields.total_length : fields.ihl * 4 + fields.payload;
    put16(out, static_cast<std::uint16_t>(total));
    put16(out, 0x1234);
    put16(out, fields.fragment);
    out.push_back(fields.ttl);
    out.push_back(fields.protocol);
    put16(out, 0);
    put32(out, fields.source);
    put32(out, fields.destination);
    for (int option = 5; option < fields.ihl; ++option) {
        put32(out, option == fields.ihl - 1 ? 0x00000000 : 0x01010101); // NOPs, then end of options
    }
    const std::size_t header = std::min<std::size_t>(out.size() - start, std::size_t{fields.ihl} * 4);
    const std::uint16_t sum = checksum(out.data() + start, header);
    out[start + 10] = static_cast<std::uint8_t>(sum >> 8);
    out[start + 11] = static_cast<std::uint8_t>(sum);
}

void ipv6(bytes& out, std::uint8_t next, std::uint16_t payload) {
    put32(out, 0x60000000);
    put16(out, payload);
    out.push_back(next);
    out.push_back(64);
    for (const std::uint32_t word : {0x20010db8U, 0U, 0U, 1U, 0x20010db8U, 0U, 0U, 2U}) {
        put32(out, word);
    }
}

/// An IPv6 extension header of `type` whose next header is `next`; `units` sets its length field.
void ipv6_extension(bytes& out, std::uint8_t type, std::uint8_t next, std::uint8_t units = 0,
                    std::uint16_t fragment = 0) {
    out.push_back(next);
    if (type == ipv6_fragment) {
        out.push_back(0);
        put16(out, fragment);
        put32(out, 0xabcdef01);
        return;
    }
    out.push_back(units);
    const std::size_t length = type == ipv6_auth ? (std::size_t{units} + 2) * 4 : (std::size_t{units} + 1) * 8;
    pattern(out, length - 2, 0x01);
}

void udp(bytes& out, std::uint16_t payload, int length = -1) {
    put16(out, 40000);
    put16(out, 53);
    put16(out, static_cast<std::uint16_t>(length >= 0 ? length : 8 + payload));
    put16(out, 0);
    pattern(out, payload);
}

void tcp(bytes& out, std::uint8_t flags, std::uint8_t data_offset = 5, std::uint16_t payload = 0) {
    put16(out, 43210);
    put16(out, 80);
    put32(out, 1000);
    put32(out, 2000);
    out.push_back(static_cast<std::uint8_t>(data_offset << 4));
    out.push_back(flags);
    put16(out, 65535);
    put16(out, 0);
    put16(out, 0);
    for (int word = 5; word < data_offset; ++word) {
        put32(out, 0x01010101);
    }
    pattern(out, payload);
}

void icmp(bytes& out, std::uint16_t payload = 0) {
    out.push_back(8);
    out.push_back(0);
    put16(out, 0);
    put32(out, 0x00010001);
    pattern(out, payload);
}

test_packet make(std::string description, bytes data, bytes meta = {}) {
    return test_packet{std::move(description), std::move(data), std::move(meta)};
}

bytes ipv4_udp(std::uint16_t payload, std::uint16_t outer = 0) {
    bytes out;
    if (outer != 0) {
        ethernet(out, outer);
        vlan(out, 100, ethertype_ipv4);
    } else {
        ethernet(out, ethertype_ipv4);
    }
    ipv4(out, {.payload = static_cast<std::uint16_t>(8 + payload)});
    udp(out, payload);
    return out;
}

/// A frame of exactly `length` bytes: Ethernet + IPv4 + UDP with lengths that agree.
bytes ipv4_udp_of_length(std::size_t length) {
    return ipv4_udp(static_cast<std::uint16_t>(length - 42));
}

} // namespace

std::vector<test_packet> crafted_packets() {
    std::vector<test_packet> packets;
    {
        bytes out;
        ethernet(out, ethertype_ipv4);
        packets.push_back(make("Ethernet header only (14 bytes), EtherType IPv4", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        packets.push_back(make("Ethernet header only (14 bytes), EtherType IPv6", out));
        packets.push_back(make("14 zero bytes", bytes(14, 0)));
        packets.push_back(make("64 bytes of 0xff", bytes(64, 0xff)));
    }
    {
        bytes out;
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 0});
        packets.push_back(make("Ethernet + IPv4, exactly 34 bytes", out));
        out.resize(33);
        packets.push_back(make("Ethernet + IPv4 cut one byte short (33 bytes)", out));
        packets.push_back(make("Ethernet + IPv4 + UDP, exactly 42 bytes", ipv4_udp(0)));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.protocol = ip_tcp, .payload = 20});
        tcp(out, 0x02);
        packets.push_back(make("Ethernet + IPv4 + TCP SYN, exactly 54 bytes", out));
        out.resize(53);
        packets.push_back(make("Ethernet + IPv4 + TCP cut one byte short (53 bytes)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.protocol = ip_tcp, .payload = 60});
        tcp(out, 0x18, 15);
        packets.push_back(make("IPv4 + TCP with 40 bytes of options (data offset 15)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.protocol = ip_tcp, .payload = 20});
        tcp(out, 0x10, 3);
        packets.push_back(make("IPv4 + TCP with data offset 3 (invalid)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.protocol = ip_icmp, .payload = 8});
        icmp(out);
        packets.push_back(make("Ethernet + IPv4 + ICMP echo, exactly 42 bytes", out));
    }
    {
        bytes out;
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_none, 0);
        packets.push_back(make("Ethernet + IPv6, exactly 54 bytes", out));
        out.resize(53);
        packets.push_back(make("Ethernet + IPv6 cut one byte short (53 bytes)", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ip_udp, 8);
        udp(out, 0);
        packets.push_back(make("Ethernet + IPv6 + UDP, exactly 62 bytes", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ip_tcp, 20);
        tcp(out, 0x02);
        packets.push_back(make("Ethernet + IPv6 + TCP SYN, exactly 74 bytes", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ip_icmpv6, 8);
        icmp(out);
        out[54] = 128; // ICMPv6 echo request
        packets.push_back(make("Ethernet + IPv6 + ICMPv6 echo, exactly 62 bytes", out));
    }
    // VLAN tags.
    packets.push_back(make("802.1Q VLAN + IPv4 + UDP", ipv4_udp(18, ethertype_vlan)));
    {
        bytes out;
        ethernet(out, ethertype_qinq);
        vlan(out, 200, ethertype_vlan);
        vlan(out, 100, ethertype_ipv4);
        ipv4(out, {.protocol = ip_tcp, .payload = 20});
        tcp(out, 0x18);
        packets.push_back(make("double VLAN (802.1ad + 802.1Q) + IPv4 + TCP", out));
        out.clear();
        ethernet(out, ethertype_vlan);
        vlan(out, 200, ethertype_vlan);
        vlan(out, 100, ethertype_ipv6);
        ipv6(out, ip_udp, 8);
        udp(out, 0);
        packets.push_back(make("double 802.1Q VLAN + IPv6 + UDP", out));
        out.clear();
        ethernet(out, ethertype_vlan);
        vlan(out, 1, ethertype_vlan);
        vlan(out, 2, ethertype_vlan);
        vlan(out, 3, ethertype_ipv4);
        ipv4(out, {.payload = 8});
        udp(out, 0);
        packets.push_back(make("triple VLAN + IPv4 + UDP", out));
        out.clear();
        ethernet(out, ethertype_vlan);
        vlan(out, 100, ethertype_ipv4);
        packets.push_back(make("VLAN tag with nothing after it (18 bytes)", out));
        out.clear();
        ethernet(out, ethertype_vlan);
        out.push_back(0);
        packets.push_back(make("VLAN tag cut short (15 bytes)", out));
    }
    // IPv4 header lengths, total lengths and fragments.
    for (const int header_words : {6, 10, 15}) {
        const auto ihl = static_cast<std::uint8_t>(header_words);
        bytes out;
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.ihl = ihl, .payload = 8});
        udp(out, 0);
        packets.push_back(make(fmt::format("IPv4 with options (IHL {}) + UDP", ihl), out));
    }
    {
        bytes out;
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.ihl = 4, .payload = 8});
        udp(out, 0);
        packets.push_back(make("IPv4 with IHL 4 (shorter than the fixed header)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.ihl = 5, .payload = 8});
        udp(out, 0);
        out[14] = 0x4f; // IHL 15 claimed, 20 bytes present
        packets.push_back(make("IPv4 claiming IHL 15 with a 20-byte header and UDP after it", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 8, .total_length = 1400});
        udp(out, 0);
        packets.push_back(make("IPv4 total length 1400 in a 42-byte frame", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 8, .total_length = 12});
        udp(out, 0);
        packets.push_back(make("IPv4 total length 12 (below its header)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 8, .fragment = 0x2000});
        udp(out, 0);
        packets.push_back(make("IPv4 first fragment (MF, offset 0) + UDP", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 16, .fragment = 0x00b9});
        pattern(out, 16);
        packets.push_back(make("IPv4 last fragment (offset 185 * 8), no transport header", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 16, .fragment = 0x2010});
        pattern(out, 16);
        packets.push_back(make("IPv4 middle fragment (MF, offset 128)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.protocol = 0xfd, .payload = 16});
        pattern(out, 16);
        packets.push_back(make("IPv4 with an experimental protocol (253)", out));
        out.clear();
        ethernet(out, ethertype_ipv4);
        ipv4(out, {.payload = 8});
        udp(out, 0);
        out[14] = 0x65; // version 6 in an IPv4 EtherType
        packets.push_back(make("IPv4 EtherType with IP version 6", out));
    }
    // IPv6 extension headers and fragments.
    {
        bytes out;
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_hop_by_hop, 16);
        ipv6_extension(out, ipv6_hop_by_hop, ip_udp);
        udp(out, 0);
        packets.push_back(make("IPv6 + hop-by-hop options + UDP", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_hop_by_hop, 8 + 24 + 8 + 16 + 16 + 20);
        ipv6_extension(out, ipv6_hop_by_hop, ipv6_routing);
        ipv6_extension(out, ipv6_routing, ipv6_fragment, 2);
        ipv6_extension(out, ipv6_fragment, ipv6_destination);
        ipv6_extension(out, ipv6_destination, ipv6_auth, 1);
        ipv6_extension(out, ipv6_auth, ip_tcp, 2);
        tcp(out, 0x18);
        packets.push_back(make("IPv6 + hop-by-hop + routing + fragment + destination options + AH + TCP", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_fragment, 16);
        ipv6_extension(out, ipv6_fragment, ip_udp, 0, 0x0001);
        udp(out, 0);
        packets.push_back(make("IPv6 first fragment (M, offset 0) + UDP", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_fragment, 24);
        ipv6_extension(out, ipv6_fragment, ip_udp, 0, 0x0100);
        pattern(out, 16);
        packets.push_back(make("IPv6 non-first fragment (offset 32 * 8)", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_routing, 200);
        ipv6_extension(out, ipv6_routing, ip_udp, 30);
        out.resize(54 + 40);
        packets.push_back(make("IPv6 routing header claiming 248 bytes, cut at 40", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ipv6_destination, 1);
        out.push_back(ip_udp);
        packets.push_back(make("IPv6 destination options header cut after one byte", out));
        out.clear();
        ethernet(out, ethertype_ipv6);
        ipv6(out, ip_udp, 900);
        udp(out, 0);
        packets.push_back(make("IPv6 payload length 900 in a 62-byte frame", out));
    }
    {
        bytes out;
        ethernet(out, ethertype_arp);
        put16(out, 1);
        put16(out, 0x0800);
        out.push_back(6);
        out.push_back(4);
        put16(out, 1);
        pattern(out, 20);
        packets.push_back(make("ARP request (42 bytes)", out));
        for (const int ethertype : {0x88cc, 0x0000, 0xffff, 0x0600}) {
            const auto type = static_cast<std::uint16_t>(ethertype);
            out.clear();
            ethernet(out, type);
            pattern(out, 46);
            packets.push_back(make(fmt::format("EtherType {:#06x} with 46 bytes of payload", type), out));
        }
    }
    // Sizes.
    for (const std::size_t length : {60UL, 64UL, 128UL, 1500UL, 1514UL, largest_linear_packet}) {
        packets.push_back(make(fmt::format("Ethernet + IPv4 + UDP of {} bytes", length), ipv4_udp_of_length(length)));
    }
    // Metadata before the packet.
    for (const std::size_t meta : {4UL, 8UL, 32UL}) {
        bytes data(meta);
        for (std::size_t i = 0; i < meta; ++i) {
            data[i] = static_cast<std::uint8_t>(0xa0 + i);
        }
        packets.push_back(make(fmt::format("IPv4 + UDP with {} bytes of metadata", meta), ipv4_udp(10), data));
    }
    return packets;
}

std::vector<test_packet> short_packets() {
    std::vector<test_packet> packets;
    for (std::size_t length = 0; length < 14; ++length) {
        bytes out = ipv4_udp(0);
        out.resize(length);
        packets.push_back(make(fmt::format("{} bytes (shorter than an Ethernet header)", length), out));
    }
    return packets;
}

std::vector<test_packet> random_packets(std::uint64_t seed, std::size_t count) {
    std::vector<test_packet> packets;
    random_source random(seed);
    io::traffic_spec spec;
    spec.packets = count;
    spec.flows = 64;
    spec.size = {io::size_kind::range, 60, 1514};
    spec.ipv6_percent = 30;
    spec.vlan_percent = 20;
    spec.seed = seed;
    auto traffic = io::traffic_generator::create(spec);
    std::uint64_t traffic_index = 0;
    bytes buffer(io::generator_max_size);
    for (std::size_t n = 0; n < count; ++n) {
        bytes out;
        std::string description;
        const std::uint64_t kind = random.below(10);
        if (kind < 3 && traffic) {
            xdp::packet_info info;
            const std::uint32_t length = traffic->build(traffic_index, buffer, info);
            out.assign(buffer.begin(), buffer.begin() + length);
            description = fmt::format("traffic generator packet {} (seed {})", traffic_index, seed);
            ++traffic_index;
        } else if (kind < 9) {
            // A random stack of headers; lengths valid or not.
            const std::uint64_t tags = random.chance(70) ? 0 : random.below(3) + 1;
            const bool is_ipv6 = random.chance(40);
            const std::uint16_t inner = random.chance(90) ? (is_ipv6 ? ethertype_ipv6 : ethertype_ipv4)
                                                          : static_cast<std::uint16_t>(random.next());
            ethernet(out, tags == 0 ? inner : (random.chance(50) ? ethertype_qinq : ethertype_vlan));
            for (std::uint64_t tag = 0; tag < tags; ++tag) {
                vlan(out, static_cast<std::uint16_t>(random.below(4096)), tag + 1 == tags ? inner : ethertype_vlan);
            }
            static constexpr std::uint8_t protocols[] = {ip_tcp, ip_udp, ip_icmp, ip_icmpv6, 0xfd};
            const std::uint8_t protocol = protocols[random.below(5)];
            const auto payload = static_cast<std::uint16_t>(random.below(random.chance(20) ? 1400 : 64));
            const std::uint16_t l4 = protocol == ip_tcp ? 20 : 8;
            if (is_ipv6) {
                std::uint8_t next = protocol;
                const std::uint64_t extensions = random.chance(60) ? 0 : random.below(4) + 1;
                static constexpr std::uint8_t kinds[] = {ipv6_hop_by_hop, ipv6_routing, ipv6_fragment, ipv6_destination,
                                                         ipv6_auth};
                std::vector<std::uint8_t> chain;
                for (std::uint64_t e = 0; e < extensions; ++e) {
                    chain.push_back(kinds[random.below(5)]);
                }
                const bool valid_length = random.chance(80);
                ipv6(out, chain.empty() ? next : chain.front(),
                     static_cast<std::uint16_t>(valid_length ? l4 + payload + 8 * chain.size() : random.below(65536)));
                for (std::size_t e = 0; e < chain.size(); ++e) {
                    ipv6_extension(out, chain[e], e + 1 < chain.size() ? chain[e + 1] : next,
                                   static_cast<std::uint8_t>(random.chance(80) ? 0 : random.below(256)),
                                   static_cast<std::uint16_t>(random.next()));
                }
            } else {
                ipv4_fields fields;
                fields.protocol = protocol;
                fields.ihl = static_cast<std::uint8_t>(random.chance(75) ? 5 : random.below(16));
                fields.payload = static_cast<std::uint16_t>(l4 + payload);
                if (random.chance(20)) {
                    fields.total_length = static_cast<int>(random.below(65536));
                }
                if (random.chance(20)) {
                    fields.fragment = static_cast<std::uint16_t>(random.next());
                }
                fields.source = static_cast<std::uint32_t>(random.next());
                fields.destination = static_cast<std::uint32_t>(random.next());
                fields.ttl = static_cast<std::uint8_t>(random.below(3) == 0 ? random.below(3) : 64);
                ipv4(out, fields);
            }
            if (protocol == ip_tcp) {
                tcp(out, static_cast<std::uint8_t>(random.next()),
                    static_cast<std::uint8_t>(random.chance(80) ? 5 : random.below(16)), payload);
            } else if (protocol == ip_udp) {
                udp(out, payload, random.chance(80) ? -1 : static_cast<int>(random.below(65536)));
            } else {
                icmp(out, payload);
            }
            if (random.chance(20)) {
                out.resize(14 + random.below(out.size() - 13)); // cut anywhere after the Ethernet header
            }
            description = fmt::format("random header stack (seed {}, packet {})", seed, n);
        } else {
            out.resize(14 + random.below(200));
            for (auto& byte : out) {
                byte = static_cast<std::uint8_t>(random.next());
            }
            description = fmt::format("random bytes (seed {}, packet {})", seed, n);
        }
        out.resize(std::min(out.size(), largest_linear_packet));
        bytes meta;
        if (random.chance(12)) {
            meta.resize(4 * (random.below(8) + 1));
            for (auto& byte : meta) {
                byte = static_cast<std::uint8_t>(random.next());
            }
        }
        packets.push_back(make(std::move(description), std::move(out), std::move(meta)));
    }
    return packets;
}

std::vector<test_packet> packet_corpus(std::uint64_t seed, std::size_t total) {
    std::vector<test_packet> packets = crafted_packets();
    const std::size_t crafted = packets.size();
    if (total > crafted) {
        std::vector<test_packet> more = random_packets(seed, total - crafted);
        packets.insert(packets.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    return packets;
}

std::string hex_dump(const std::vector<std::uint8_t>& data, std::size_t indent, std::size_t from, std::size_t limit) {
    std::string text;
    from &= ~std::size_t{15};
    const std::size_t end = std::min(data.size(), from + limit);
    if (from > 0 && from < data.size()) {
        text += fmt::format("{:{}}... ({} bytes before)\n", "", indent, from);
    }
    for (std::size_t line = from; line < end; line += 16) {
        text += fmt::format("{:{}}{:04x}:", "", indent, line);
        for (std::size_t i = line; i < std::min(end, line + 16); ++i) {
            text += fmt::format(" {:02x}", data[i]);
        }
        text += '\n';
    }
    if (end < data.size()) {
        text += fmt::format("{:{}}... ({} more bytes)\n", "", indent, data.size() - end);
    }
    if (data.empty()) {
        text += fmt::format("{:{}}(empty)\n", "", indent);
    }
    return text;
}

} // namespace sluice::oracle
