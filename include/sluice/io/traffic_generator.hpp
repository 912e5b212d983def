// A deterministic traffic generator: the `gen:` port, and pcap files for tests and benchmarks (sluice-gen).
//
// Contract:
// - Packet i is a pure function of (spec, i): the same spec and seed give the same bytes on every machine and run,
//   and rewind() replays them. (Our own PRNG, splitmix64: std's distributions are not the same across libraries.)
// - Every packet is Ethernet (optionally one 802.1Q tag) + IPv4 or IPv6 + TCP, UDP or ICMP / ICMPv6 echo request,
//   with correct lengths and checksums (IPv4 header, TCP/UDP/ICMPv6 with the pseudo-header, ICMP).
// - `flows` normal flows, each a fixed 5-tuple with a fixed protocol, IP version and VLAN; their share follows the
//   mix, ipv6 and vlan percentages (assigned by an equidistributed sequence, so shares hold even for few flows).
//   Each packet picks a flow at random. Attack packets (attack percent of all packets) come from attack_sources
//   sources inside the attack prefix; there are few of them, so each sends at a much higher rate than a normal flow.
//   Attack TCP packets are SYNs, normal TCP packets ACK|PSH.
// - Timestamps start at 2023-11-14T22:13:20Z (1.7e9 s) and advance by 1/rate seconds per packet.
// - rx_batch fills frames without allocating; a packet larger than the frames' capacity is counted in errors() and
//   skipped (never silently lost).
//
// Spec string (keys in any order, all optional; `gen:` prefix optional), e.g.
//   gen:packets=100000,flows=1000,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=20,vlan=5,attack=10@203.0.113.0/24,seed=1
//   packets=N          packets to generate (default 1000; 0 is allowed)
//   flows=N            normal flows, >= 1 (default 100)
//   size=N | MIN-MAX | imix
//                      frame length in bytes, Ethernet header to end of payload, no FCS (default 64); 14..9216.
//                      A packet never gets shorter than its headers (e.g. 78 bytes for VLAN+IPv6+TCP).
//                      imix: 60, 590 and 1514 bytes in the ratio 7:4:1 (the simple IMIX's 40/576/1500-byte IP packets
//                      plus the Ethernet header, the smallest padded to Ethernet's 60-byte minimum)
//   mix=P:W[/P:W...]   protocol weights, P in tcp, udp, icmp (default tcp:60/udp:30/icmp:10; unnamed ones get 0)
//   ipv6=PCT           percent of flows over IPv6 (default 0)
//   vlan=PCT           percent of flows with an 802.1Q tag (default 0)
//   attack=PCT@PREFIX  percent of packets from attack sources in PREFIX (IPv4 or IPv6 CIDR); the prefix's family
//                      decides the attack packets' IP version (default none)
//   attack_sources=N   number of attack sources, >= 1 (default 16)
//   rate=N             packets per second, for timestamps (default 1000000)
//   seed=N             64-bit seed (default 1)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/expected.hpp"
#include "sluice/io/pcap.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::io {

enum class size_kind : std::uint8_t { fixed, range, imix };

struct size_spec {
    size_kind kind{size_kind::fixed};
    std::uint32_t min{64}; ///< fixed: the size; range: the smallest
    std::uint32_t max{64}; ///< range: the largest (inclusive)
};

struct ip_prefix {
    bool ipv6{};
    std::array<std::uint8_t, 16> address{}; ///< network byte order; IPv4 in the first 4 bytes; host bits zero
    std::uint8_t length{};                  ///< prefix length in bits

    bool contains(std::span<const std::uint8_t> address_bytes) const;
};

enum class protocol : std::uint8_t { tcp, udp, icmp };

struct traffic_spec {
    std::uint64_t packets{1000};
    std::uint32_t flows{100};
    size_spec size{};
    std::array<std::uint32_t, 3> mix{60, 30, 10}; ///< weights indexed by protocol
    std::uint32_t ipv6_percent{};
    std::uint32_t vlan_percent{};
    std::uint32_t attack_percent{};
    std::optional<ip_prefix> attack_prefix{};
    std::uint32_t attack_sources{16};
    std::uint64_t rate{1'000'000};
    std::uint64_t seed{1};

    /// Parses the spec string documented above. Errors name the bad key ("gen spec: key 'size': ...").
    static expected<traffic_spec> parse(std::string_view text);
};

inline constexpr std::uint32_t generator_max_size = 9216;

class traffic_generator {
public:
    /// Checks the spec (sizes, percentages, weights) and lays out the flows. Allocates here, never per packet.
    static expected<traffic_generator> create(const traffic_spec& spec);

    /// Fills up to frames.size() frames with the next packets; returns how many (0 when all have been generated).
    std::size_t rx_batch(std::span<xdp::frame*> frames);
    rx_state state() const { return _next < _spec.packets ? rx_state::more : rx_state::end; }
    /// Starts again from packet 1, with the same bytes.
    void rewind();

    /// Builds packet `index` (0-based) into `out`; returns its length, or 0 when `out` is too small. Sets info
    /// (timestamp, record = index + 1, wire length).
    std::uint32_t build(std::uint64_t index, std::span<std::uint8_t> out, xdp::packet_info& info) const;
    /// The length packet `index` will have.
    std::uint32_t packet_length(std::uint64_t index) const;

    /// Writes every packet to a nanosecond pcap file; returns how many were written.
    expected<std::uint64_t> write_pcap(const std::string& path) const;

    const traffic_spec& spec() const { return _spec; }
    std::uint64_t generated() const { return _next; } ///< packets produced or skipped so far
    std::uint64_t errors() const { return _errors; }  ///< packets skipped: larger than the frames given
    std::uint32_t max_packet_size() const;            ///< the largest packet this spec produces

private:
    struct flow {
        std::array<std::uint8_t, 16> source{};
        std::array<std::uint8_t, 16> destination{};
        std::array<std::uint8_t, 6> source_mac{};
        std::uint16_t source_port{};
        std::uint16_t destination_port{};
        std::uint16_t vlan{}; ///< 0: untagged
        protocol proto{};
        bool ipv6{};
        bool attack{};
    };
    struct plan {
        const flow* chosen;
        std::uint32_t length;
        std::uint64_t random;
    };

    traffic_generator() = default;
    plan plan_packet(std::uint64_t index) const;

    traffic_spec _spec;
    std::vector<flow> _flows;  ///< normal flows
    std::vector<flow> _attack; ///< attack sources
    std::uint64_t _next{};
    std::uint64_t _errors{};
};

} // namespace sluice::io
