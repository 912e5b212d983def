// The traffic generator (include/sluice/io/traffic_generator.hpp has the contract and the spec keys).
#include "sluice/io/traffic_generator.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace sluice::io {

namespace {

__extension__ typedef unsigned __int128 uint128; // GCC and Clang both have it; __extension__ keeps -Wpedantic quiet

// splitmix64 (Vigna): a full-period mix whose output is the same everywhere, unlike std's distributions.
constexpr std::uint64_t mix64(std::uint64_t value) {
    value += 0x9e3779b97f4a7c15ULL;
    value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
    value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
    return value ^ (value >> 31);
}

// A uniform draw in [0, bound) from 64 random bits (Lemire's multiply-shift; bias below 2^-32 for our bounds).
constexpr std::uint64_t below(std::uint64_t random, std::uint64_t bound) {
    return static_cast<std::uint64_t>((static_cast<uint128>(random) * bound) >> 64);
}

// Weyl sequences frac(k * alpha) are equidistributed: the first n flows hold each attribute in its share to within a
// few flows, whatever n is. One irrational per attribute keeps the attributes independent of each other.
constexpr double golden = 0.6180339887498949;     // protocol
constexpr double sqrt2_frac = 0.4142135623730951; // IP version
constexpr double sqrt3_frac = 0.7320508075688772; // VLAN

double weyl(std::uint64_t index, double alpha, double offset) {
    const double value = offset + static_cast<double>(index) * alpha;
    return value - static_cast<double>(static_cast<std::uint64_t>(value));
}

double unit(std::uint64_t random) {
    return static_cast<double>(random >> 11) * 0x1.0p-53;
}

constexpr std::uint16_t ethertype_ipv4 = 0x0800;
constexpr std::uint16_t ethertype_ipv6 = 0x86dd;
constexpr std::uint16_t ethertype_vlan = 0x8100;
constexpr std::uint8_t ip_protocol_icmp = 1;
constexpr std::uint8_t ip_protocol_tcp = 6;
constexpr std::uint8_t ip_protocol_udp = 17;
constexpr std::uint8_t ip_protocol_icmpv6 = 58;
constexpr std::uint64_t start_seconds = 1'700'000'000;

constexpr std::uint32_t l4_header_length(protocol proto) {
    return proto == protocol::tcp ? 20 : 8;
}

std::uint32_t header_length(bool ipv6, bool vlan, protocol proto) {
    return 14 + (vlan ? 4U : 0U) + (ipv6 ? 40U : 20U) + l4_header_length(proto);
}

void put16(std::uint8_t* at, std::uint16_t value) {
    at[0] = static_cast<std::uint8_t>(value >> 8);
    at[1] = static_cast<std::uint8_t>(value);
}

void put32(std::uint8_t* at, std::uint32_t value) {
    put16(at, static_cast<std::uint16_t>(value >> 16));
    put16(at + 2, static_cast<std::uint16_t>(value));
}

// Ones'-complement sum of 16-bit big-endian words (RFC 1071), not yet folded or inverted.
std::uint64_t sum16(const std::uint8_t* bytes, std::size_t length, std::uint64_t sum = 0) {
    std::size_t i = 0;
    for (; i + 1 < length; i += 2) {
        sum += static_cast<std::uint64_t>((bytes[i] << 8) | bytes[i + 1]);
    }
    if (i < length) {
        sum += static_cast<std::uint64_t>(bytes[i] << 8);
    }
    return sum;
}

std::uint16_t fold(std::uint64_t sum) {
    while ((sum >> 16) != 0) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum & 0xffff);
}

// --- spec parsing ---------------------------------------------------------------------------------------------------

error spec_error(std::string_view key, std::string_view message) {
    return error{fmt::format("gen spec: key '{}': {}", key, message)};
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [stop, code] = std::from_chars(text.data(), end, value);
    if (text.empty() || code != std::errc{} || stop != end) {
        return std::nullopt;
    }
    return value;
}

expected<std::uint64_t> number_in(std::string_view key, std::string_view text, std::uint64_t low, std::uint64_t high) {
    const auto value = parse_number(text);
    if (!value || *value < low || *value > high) {
        return spec_error(key, fmt::format("'{}' is not a whole number from {} to {}", text, low, high));
    }
    return *value;
}

expected<size_spec> parse_size(std::string_view text) {
    if (text == "imix") {
        return size_spec{size_kind::imix, 60, 1514};
    }
    const auto dash = text.find('-');
    const auto bounds = fmt::format("a size is N, MIN-MAX or imix, with 14 <= N <= {}", generator_max_size);
    if (dash == std::string_view::npos) {
        const auto value = parse_number(text);
        if (!value || *value < 14 || *value > generator_max_size) {
            return spec_error("size", fmt::format("'{}' is not a size ({})", text, bounds));
        }
        return size_spec{size_kind::fixed, static_cast<std::uint32_t>(*value), static_cast<std::uint32_t>(*value)};
    }
    const auto low = parse_number(text.substr(0, dash));
    const auto high = parse_number(text.substr(dash + 1));
    if (!low || !high || *low < 14 || *high > generator_max_size || *low > *high) {
        return spec_error("size", fmt::format("'{}' is not a size range ({}, MIN <= MAX)", text, bounds));
    }
    return size_spec{size_kind::range, static_cast<std::uint32_t>(*low), static_cast<std::uint32_t>(*high)};
}

expected<std::array<std::uint32_t, 3>> parse_mix(std::string_view text) {
    std::array<std::uint32_t, 3> weights{};
    std::array<bool, 3> seen{};
    std::uint64_t total = 0;
    while (!text.empty()) {
        const auto slash = text.find('/');
        const std::string_view item = text.substr(0, slash);
        text = slash == std::string_view::npos ? std::string_view{} : text.substr(slash + 1);
        const auto colon = item.find(':');
        const std::string_view name = item.substr(0, colon);
        std::size_t index = 0;
        if (name == "tcp") {
            index = 0;
        } else if (name == "udp") {
            index = 1;
        } else if (name == "icmp") {
            index = 2;
        } else {
            return spec_error("mix", fmt::format("'{}' is not a protocol (tcp, udp, icmp)", name));
        }
        if (seen[index]) {
            return spec_error("mix", fmt::format("{} is given twice", name));
        }
        const auto weight = colon == std::string_view::npos ? std::nullopt : parse_number(item.substr(colon + 1));
        if (!weight || *weight > 1'000'000) {
            return spec_error("mix", fmt::format("'{}' is not PROTOCOL:WEIGHT (a whole number up to 1000000)", item));
        }
        seen[index] = true;
        weights[index] = static_cast<std::uint32_t>(*weight);
        total += *weight;
    }
    if (total == 0) {
        return spec_error("mix", "the weights add up to 0; give at least one protocol a weight");
    }
    return weights;
}

expected<ip_prefix> parse_prefix(std::string_view key, std::string_view text) {
    const auto slash = text.find('/');
    const std::string address(text.substr(0, slash));
    ip_prefix prefix;
    prefix.ipv6 = address.find(':') != std::string::npos;
    if (inet_pton(prefix.ipv6 ? AF_INET6 : AF_INET, address.c_str(), prefix.address.data()) != 1) {
        return spec_error(key, fmt::format("'{}' is not an IPv4 or IPv6 address", address));
    }
    const unsigned maximum = prefix.ipv6 ? 128 : 32;
    std::uint64_t length = maximum;
    if (slash != std::string_view::npos) {
        const auto value = parse_number(text.substr(slash + 1));
        if (!value || *value > maximum) {
            return spec_error(key,
                              fmt::format("'{}' is not a prefix length (0 to {})", text.substr(slash + 1), maximum));
        }
        length = *value;
    }
    prefix.length = static_cast<std::uint8_t>(length);
    for (unsigned bit = prefix.length; bit < maximum; ++bit) {
        prefix.address[bit / 8] = static_cast<std::uint8_t>(prefix.address[bit / 8] & ~(0x80U >> (bit % 8)));
    }
    return prefix;
}

constexpr std::string_view known_keys = "packets, flows, size, mix, ipv6, vlan, attack, attack_sources, rate, seed";

} // namespace

bool ip_prefix::contains(std::span<const std::uint8_t> address_bytes) const {
    const std::size_t width = ipv6 ? 16 : 4;
    if (address_bytes.size() < width) {
        return false;
    }
    for (unsigned bit = 0; bit < length; ++bit) {
        const auto mask = static_cast<std::uint8_t>(0x80U >> (bit % 8));
        if ((address_bytes[bit / 8] & mask) != (address[bit / 8] & mask)) {
            return false;
        }
    }
    return true;
}

expected<traffic_spec> traffic_spec::parse(std::string_view text) {
    if (text.starts_with("gen:")) {
        text.remove_prefix(4);
    }
    traffic_spec spec;
    std::vector<std::string_view> seen;
    while (!text.empty()) {
        const auto comma = text.find(',');
        const std::string_view item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        const auto equals = item.find('=');
        if (equals == std::string_view::npos) {
            return error{fmt::format("gen spec: '{}' is not KEY=VALUE (keys: {})", item, known_keys)};
        }
        const std::string_view key = item.substr(0, equals);
        const std::string_view value = item.substr(equals + 1);
        if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
            return spec_error(key, "given twice");
        }
        seen.push_back(key);
        if (key == "packets") {
            auto number = number_in(key, value, 0, UINT64_MAX);
            if (!number) {
                return number.error();
            }
            spec.packets = *number;
        } else if (key == "flows" || key == "attack_sources") {
            auto number = number_in(key, value, 1, 16'777'216);
            if (!number) {
                return number.error();
            }
            (key == "flows" ? spec.flows : spec.attack_sources) = static_cast<std::uint32_t>(*number);
        } else if (key == "size") {
            auto size = parse_size(value);
            if (!size) {
                return size.error();
            }
            spec.size = *size;
        } else if (key == "mix") {
            auto weights = parse_mix(value);
            if (!weights) {
                return weights.error();
            }
            spec.mix = *weights;
        } else if (key == "ipv6" || key == "vlan") {
            auto number = number_in(key, value, 0, 100);
            if (!number) {
                return number.error();
            }
            (key == "ipv6" ? spec.ipv6_percent : spec.vlan_percent) = static_cast<std::uint32_t>(*number);
        } else if (key == "attack") {
            const auto at = value.find('@');
            if (at == std::string_view::npos) {
                return spec_error(key, fmt::format("'{}' is not PERCENT@PREFIX (e.g. 10@203.0.113.0/24)", value));
            }
            auto percent = number_in(key, value.substr(0, at), 0, 100);
            if (!percent) {
                return percent.error();
            }
            auto prefix = parse_prefix(key, value.substr(at + 1));
            if (!prefix) {
                return prefix.error();
            }
            spec.attack_percent = static_cast<std::uint32_t>(*percent);
            spec.attack_prefix = *prefix;
        } else if (key == "rate") {
            auto number = number_in(key, value, 1, 1'000'000'000'000ULL);
            if (!number) {
                return number.error();
            }
            spec.rate = *number;
        } else if (key == "seed") {
            auto number = number_in(key, value, 0, UINT64_MAX);
            if (!number) {
                return number.error();
            }
            spec.seed = *number;
        } else {
            return error{fmt::format("gen spec: unknown key '{}' (keys: {})", key, known_keys)};
        }
    }
    return spec;
}

expected<traffic_generator> traffic_generator::create(const traffic_spec& spec) {
    if (spec.flows == 0) {
        return spec_error("flows", "there must be at least one flow");
    }
    if (spec.attack_sources == 0) {
        return spec_error("attack_sources", "there must be at least one attack source");
    }
    if (spec.ipv6_percent > 100 || spec.vlan_percent > 100 || spec.attack_percent > 100) {
        return error{"gen spec: percentages must be from 0 to 100"};
    }
    if (spec.attack_percent > 0 && !spec.attack_prefix) {
        return spec_error("attack", "an attack percentage needs a prefix (PERCENT@PREFIX)");
    }
    if (spec.size.min < 14 || spec.size.max > generator_max_size || spec.size.min > spec.size.max) {
        return spec_error("size", fmt::format("sizes must be from 14 to {}", generator_max_size));
    }
    if (spec.mix[0] == 0 && spec.mix[1] == 0 && spec.mix[2] == 0) {
        return spec_error("mix", "the weights add up to 0");
    }
    if (spec.rate == 0) {
        return spec_error("rate", "the rate must be at least 1 packet per second");
    }

    traffic_generator generator;
    generator._spec = spec;
    const double total_weight = static_cast<double>(spec.mix[0]) + spec.mix[1] + spec.mix[2];
    const double tcp_share = spec.mix[0] / total_weight;
    const double udp_share = tcp_share + spec.mix[1] / total_weight;
    const std::uint64_t seed = mix64(spec.seed);
    const double offset = unit(seed); // shifts the sequences with the seed, so seeds differ in flow layout too

    auto choose_protocol = [&](std::uint64_t k) {
        const double u = weyl(k, golden, offset);
        return u < tcp_share ? protocol::tcp : (u < udp_share ? protocol::udp : protocol::icmp);
    };
    auto fill_common = [&](flow& item, std::uint64_t k, std::uint64_t random) {
        item.proto = choose_protocol(k);
        item.vlan = weyl(k, sqrt3_frac, offset) * 100.0 < spec.vlan_percent
                        ? static_cast<std::uint16_t>(1 + below(mix64(random ^ 0x7f4a), 4094))
                        : std::uint16_t{0};
        const std::uint64_t mac = mix64(random ^ 0x3c);
        item.source_mac = {0x02,
                           0x00,
                           static_cast<std::uint8_t>(mac >> 24),
                           static_cast<std::uint8_t>(mac >> 16),
                           static_cast<std::uint8_t>(mac >> 8),
                           static_cast<std::uint8_t>(mac)};
        item.source_port = static_cast<std::uint16_t>(1024 + below(mix64(random ^ 0x51), 64512));
        static constexpr std::array<std::uint16_t, 4> tcp_ports{80, 443, 22, 8080};
        static constexpr std::array<std::uint16_t, 4> udp_ports{53, 123, 443, 4789};
        const auto pick = static_cast<std::size_t>(below(mix64(random ^ 0xd5), 4));
        item.destination_port = item.proto == protocol::tcp ? tcp_ports[pick] : udp_ports[pick];
    };
    auto fill_destination = [&](flow& item, std::uint64_t random) {
        const std::uint64_t bits = mix64(random ^ 0xde57);
        if (item.ipv6) {
            item.destination = {0xfd, 0x00, 0x00, 0x0b};
            for (std::size_t i = 8; i < 16; ++i) {
                item.destination[i] = static_cast<std::uint8_t>(bits >> (8 * (i - 8)));
            }
        } else { // 198.18.0.0/15, RFC 2544's benchmarking range
            item.destination = {198, static_cast<std::uint8_t>(18 + (bits & 1)), static_cast<std::uint8_t>(bits >> 8),
                                static_cast<std::uint8_t>(bits >> 16)};
        }
    };

    generator._flows.resize(spec.flows);
    for (std::uint64_t k = 0; k < spec.flows; ++k) {
        flow& item = generator._flows[k];
        const std::uint64_t random = mix64(seed ^ mix64(k));
        fill_common(item, k, random);
        item.ipv6 = weyl(k, sqrt2_frac, offset) * 100.0 < spec.ipv6_percent;
        const std::uint64_t bits = mix64(random ^ 0x5ce);
        if (item.ipv6) { // fd00:a::/32, unique local
            item.source = {0xfd, 0x00, 0x00, 0x0a};
            for (std::size_t i = 8; i < 16; ++i) {
                item.source[i] = static_cast<std::uint8_t>(bits >> (8 * (i - 8)));
            }
        } else { // 10.0.0.0/8
            item.source = {10, static_cast<std::uint8_t>(bits), static_cast<std::uint8_t>(bits >> 8),
                           static_cast<std::uint8_t>(bits >> 16)};
        }
        fill_destination(item, random);
    }

    if (spec.attack_prefix && spec.attack_percent > 0) {
        const ip_prefix& prefix = *spec.attack_prefix;
        generator._attack.resize(spec.attack_sources);
        for (std::uint64_t k = 0; k < spec.attack_sources; ++k) {
            flow& item = generator._attack[k];
            const std::uint64_t random = mix64(~seed ^ mix64(k));
            fill_common(item, k, random);
            item.attack = true;
            item.ipv6 = prefix.ipv6;
            // The prefix's bits, then random host bits.
            const std::uint64_t high = mix64(random ^ 0xa1), low = mix64(random ^ 0xa2);
            const unsigned width = prefix.ipv6 ? 128 : 32;
            for (unsigned bit = 0; bit < width; ++bit) {
                const auto byte = bit / 8;
                const auto mask = static_cast<std::uint8_t>(0x80U >> (bit % 8));
                const bool set = bit < prefix.length ? (prefix.address[byte] & mask) != 0
                                                     : (((bit < 64 ? high : low) >> (bit % 64)) & 1U) != 0;
                item.source[byte] = static_cast<std::uint8_t>(set ? (item.source[byte] | mask) : item.source[byte]);
            }
            fill_destination(item, random);
        }
    }
    return generator;
}

traffic_generator::plan traffic_generator::plan_packet(std::uint64_t index) const {
    const std::uint64_t random = mix64(mix64(_spec.seed) ^ mix64(index ^ 0x9ac4e7));
    const std::uint64_t pick = mix64(random ^ 1);
    const flow* chosen = nullptr;
    if (!_attack.empty() && below(mix64(random ^ 2), 100) < _spec.attack_percent) {
        chosen = &_attack[below(pick, _attack.size())];
    } else {
        chosen = &_flows[below(pick, _flows.size())];
    }
    std::uint32_t length = _spec.size.min;
    const std::uint64_t size_random = mix64(random ^ 3);
    if (_spec.size.kind == size_kind::range) {
        length =
            _spec.size.min + static_cast<std::uint32_t>(below(size_random, _spec.size.max - _spec.size.min + 1ULL));
    } else if (_spec.size.kind == size_kind::imix) {
        const std::uint64_t slot = below(size_random, 12);
        length = slot < 7 ? 60 : (slot < 11 ? 590 : 1514);
    }
    length = std::max(length, header_length(chosen->ipv6, chosen->vlan != 0, chosen->proto));
    return {chosen, length, random};
}

std::uint32_t traffic_generator::packet_length(std::uint64_t index) const {
    return plan_packet(index).length;
}

std::uint32_t traffic_generator::max_packet_size() const {
    return std::max(_spec.size.kind == size_kind::imix ? 1514U : _spec.size.max,
                    header_length(true, true, protocol::tcp));
}

std::uint32_t traffic_generator::build(std::uint64_t index, std::span<std::uint8_t> out, xdp::packet_info& info) const {
    const plan packet = plan_packet(index);
    const flow& item = *packet.chosen;
    if (out.size() < packet.length) {
        return 0;
    }
    std::uint8_t* const base = out.data();
    std::uint8_t* at = base;

    static constexpr std::array<std::uint8_t, 6> destination_mac{0x02, 0x00, 0x00, 0xff, 0x00, 0x01};
    std::memcpy(at, destination_mac.data(), 6);
    std::memcpy(at + 6, item.source_mac.data(), 6);
    at += 12;
    if (item.vlan != 0) {
        put16(at, ethertype_vlan);
        put16(at + 2, item.vlan); // PCP 0, DEI 0
        at += 4;
    }
    put16(at, item.ipv6 ? ethertype_ipv6 : ethertype_ipv4);
    at += 2;

    std::uint8_t* const ip = at;
    const std::uint32_t ip_length = packet.length - static_cast<std::uint32_t>(ip - base);
    const std::uint32_t l4_length = ip_length - (item.ipv6 ? 40U : 20U);
    std::uint8_t ip_protocol = ip_protocol_udp;
    if (item.proto == protocol::tcp) {
        ip_protocol = ip_protocol_tcp;
    } else if (item.proto == protocol::icmp) {
        ip_protocol = item.ipv6 ? ip_protocol_icmpv6 : ip_protocol_icmp;
    }
    std::uint64_t pseudo = 0; // the pseudo-header's sum, for TCP, UDP and ICMPv6
    if (item.ipv6) {
        put32(ip, 0x60000000U | static_cast<std::uint32_t>(packet.random & 0xfffff)); // version 6, flow label
        put16(ip + 4, static_cast<std::uint16_t>(l4_length));
        ip[6] = ip_protocol;
        ip[7] = 64; // hop limit
        std::memcpy(ip + 8, item.source.data(), 16);
        std::memcpy(ip + 24, item.destination.data(), 16);
        pseudo = sum16(ip + 8, 32, l4_length + ip_protocol);
        at = ip + 40;
    } else {
        ip[0] = 0x45;
        ip[1] = 0;
        put16(ip + 2, static_cast<std::uint16_t>(ip_length));
        put16(ip + 4, static_cast<std::uint16_t>(index)); // identification
        put16(ip + 6, 0x4000);                            // don't fragment
        ip[8] = 64;
        ip[9] = ip_protocol;
        put16(ip + 10, 0);
        std::memcpy(ip + 12, item.source.data(), 4);
        std::memcpy(ip + 16, item.destination.data(), 4);
        put16(ip + 10, fold(sum16(ip, 20)));
        pseudo = sum16(ip + 12, 8, l4_length + ip_protocol);
        at = ip + 20;
    }

    std::uint8_t* const l4 = at;
    const std::uint32_t header = l4_header_length(item.proto);
    std::uint8_t* const payload = l4 + header;
    const std::uint32_t payload_length = l4_length - header;
    for (std::uint32_t i = 0; i < payload_length; ++i) {
        payload[i] = static_cast<std::uint8_t>(index + i);
    }
    switch (item.proto) {
    case protocol::tcp:
        put16(l4, item.source_port);
        put16(l4 + 2, item.destination_port);
        put32(l4 + 4, static_cast<std::uint32_t>(mix64(packet.random ^ 4))); // sequence
        put32(l4 + 8, item.attack ? 0 : static_cast<std::uint32_t>(mix64(packet.random ^ 5)));
        l4[12] = 5 << 4;                    // data offset: 5 words, no options
        l4[13] = item.attack ? 0x02 : 0x18; // SYN flood; ACK|PSH
        put16(l4 + 14, 65535);              // window
        put16(l4 + 16, 0);
        put16(l4 + 18, 0); // urgent pointer
        put16(l4 + 16, fold(sum16(l4, l4_length, pseudo)));
        break;
    case protocol::udp: {
        put16(l4, item.source_port);
        put16(l4 + 2, item.destination_port);
        put16(l4 + 4, static_cast<std::uint16_t>(l4_length));
        put16(l4 + 6, 0);
        const std::uint16_t checksum = fold(sum16(l4, l4_length, pseudo));
        put16(l4 + 6, checksum == 0 ? 0xffff : checksum); // 0 means "no checksum" in UDP (RFC 768)
        break;
    }
    case protocol::icmp:
        l4[0] = item.ipv6 ? 128 : 8; // echo request
        l4[1] = 0;
        put16(l4 + 2, 0);
        put16(l4 + 4, item.source_port);                  // identifier
        put16(l4 + 6, static_cast<std::uint16_t>(index)); // sequence
        // ICMP sums the message alone; ICMPv6 adds the pseudo-header (RFC 4443).
        put16(l4 + 2, fold(sum16(l4, l4_length, item.ipv6 ? pseudo : 0)));
        break;
    }

    info.timestamp_ns = start_seconds * 1'000'000'000ULL +
                        static_cast<std::uint64_t>(static_cast<uint128>(index) * 1'000'000'000ULL / _spec.rate);
    info.record = index + 1;
    info.wire_length = packet.length;
    return packet.length;
}

std::size_t traffic_generator::rx_batch(std::span<xdp::frame*> frames) {
    std::size_t filled = 0;
    while (filled < frames.size() && _next < _spec.packets) {
        xdp::frame* item = frames[filled];
        const std::uint64_t index = _next++;
        const std::uint32_t length = packet_length(index);
        if (!item->resize(length)) {
            ++_errors;
            continue;
        }
        xdp::packet_info info;
        build(index, item->packet(), info);
        item->info() = info;
        ++filled;
    }
    return filled;
}

void traffic_generator::rewind() {
    _next = 0;
    _errors = 0;
}

expected<std::uint64_t> traffic_generator::write_pcap(const std::string& path) const {
    auto writer = pcap_writer::create(path, timestamp_precision::nanosecond);
    if (!writer) {
        return writer.error();
    }
    std::vector<std::uint8_t> buffer(max_packet_size());
    for (std::uint64_t index = 0; index < _spec.packets; ++index) {
        xdp::packet_info info;
        const std::uint32_t length = build(index, buffer, info);
        writer->write({buffer.data(), length}, info.timestamp_ns, info.wire_length);
    }
    auto closed = writer->close();
    if (!closed) {
        return closed.error();
    }
    return writer->written();
}

} // namespace sluice::io
