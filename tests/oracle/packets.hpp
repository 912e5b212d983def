// Packets for the oracle: crafted edge cases and random ones, each with a description for failure messages.
//
// Contract:
//  - crafted_packets(): fixed edge cases of at least 14 bytes (ETH_HLEN, the least BPF_PROG_TEST_RUN accepts): a bare
//    Ethernet header, exactly the header sizes of each layer, VLAN and double VLAN (802.1ad), IPv4 with options and
//    with impossible IHL and total length values, IPv6 with every extension header the parsers know, IPv4 and IPv6
//    fragments, ARP, unknown EtherTypes, 1500 bytes and the largest linear packet (3520 bytes), some with metadata.
//  - short_packets(): 0 to 13 bytes, which the kernel's BPF_PROG_TEST_RUN refuses (-EINVAL): sluice runs them alone.
//  - random_packets(seed, count): a pure function of (seed, count): well-formed traffic from io::traffic_generator,
//    and random header stacks with valid and invalid lengths, truncated anywhere, random bytes, some with metadata.
//  - Metadata is a multiple of 4 bytes up to 32, what BPF_PROG_TEST_RUN accepts before the packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice::oracle {

struct test_packet {
    std::string description;
    std::vector<std::uint8_t> bytes;
    std::vector<std::uint8_t> meta; ///< metadata before the packet (data_meta .. data)
};

inline constexpr std::size_t largest_linear_packet = 3520; ///< 4096 - 256 headroom - 320 shared-info reserve

std::vector<test_packet> crafted_packets();
std::vector<test_packet> short_packets();
std::vector<test_packet> random_packets(std::uint64_t seed, std::size_t count);
/// crafted_packets() followed by random packets up to `total` (at least all the crafted ones).
std::vector<test_packet> packet_corpus(std::uint64_t seed, std::size_t total);

/// "0000: 45 00 ..." lines, 16 bytes each, from byte `from` (rounded down to 16) for at most `limit` bytes.
std::string hex_dump(const std::vector<std::uint8_t>& bytes, std::size_t indent = 4, std::size_t from = 0,
                     std::size_t limit = 256);

} // namespace sluice::oracle
