// `sluice run` end to end: the command as a subprocess, the compiled examples, crafted pcaps in a temporary
// directory, and the per-action counts, output packets, JSON and maps it produces.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "sluice/io/pcap.hpp"
#include "sluice/xdp/frame.hpp"
#include "sluice_command.hpp"

namespace sluice::cli {
namespace {

using bytes = std::vector<std::uint8_t>;

constexpr std::uint8_t proto_icmp = 1;
constexpr std::uint8_t proto_tcp = 6;
constexpr std::uint8_t proto_udp = 17;

const std::array<std::uint8_t, 6> client_mac{0x02, 0, 0, 0, 0, 0x01};
const std::array<std::uint8_t, 6> server_mac{0x02, 0, 0, 0, 0, 0x02};

std::string example(const std::string& name) {
    return std::string(SLUICE_EXAMPLES_DIR) + "/" + name + ".o";
}

void put16(bytes& out, std::size_t at, std::uint16_t value) {
    out[at] = static_cast<std::uint8_t>(value >> 8);
    out[at + 1] = static_cast<std::uint8_t>(value);
}

/// Ethernet + IPv4 + a TCP, UDP or ICMP header, padded to `length` (at least 60) bytes.
bytes ipv4_packet(std::array<std::uint8_t, 4> source, std::array<std::uint8_t, 4> destination, std::uint8_t protocol,
                  std::uint16_t source_port = 1024, std::uint16_t destination_port = 80, std::size_t length = 64) {
    bytes out(std::max<std::size_t>(length, 60), 0);
    std::copy(server_mac.begin(), server_mac.end(), out.begin());
    std::copy(client_mac.begin(), client_mac.end(), out.begin() + 6);
    put16(out, 12, 0x0800);
    out[14] = 0x45;
    put16(out, 16, static_cast<std::uint16_t>(out.size() - 14));
    out[22] = 64;
    out[23] = protocol;
    std::copy(source.begin(), source.end(), out.begin() + 26);
    std::copy(destination.begin(), destination.end(), out.begin() + 30);
    std::uint32_t sum = 0;
    for (std::size_t i = 14; i < 34; i += 2) {
        sum += static_cast<std::uint32_t>(out[i] << 8 | out[i + 1]);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    put16(out, 24, static_cast<std::uint16_t>(~sum));
    if (protocol == proto_tcp || protocol == proto_udp) {
        put16(out, 34, source_port);
        put16(out, 36, destination_port);
        if (protocol == proto_tcp) {
            out[46] = 0x50;
        } else {
            put16(out, 38, static_cast<std::uint16_t>(out.size() - 34));
        }
    } else {
        out[34] = 8; // echo request
    }
    return out;
}

bytes ipv6_packet() {
    bytes out(74, 0);
    std::copy(server_mac.begin(), server_mac.end(), out.begin());
    std::copy(client_mac.begin(), client_mac.end(), out.begin() + 6);
    put16(out, 12, 0x86dd);
    out[14] = 0x60;
    put16(out, 18, 20);
    out[20] = proto_udp;
    out[21] = 64;
    out[22] = 0x20; // 2001:db8::1 -> 2001:db8::2
    out[23] = 0x01;
    out[24] = 0x0d;
    out[25] = 0xb8;
    out[37] = 1;
    std::copy(out.begin() + 22, out.begin() + 38, out.begin() + 38);
    out[53] = 2;
    return out;
}

bytes arp_packet() {
    bytes out(60, 0);
    std::fill(out.begin(), out.begin() + 6, 0xff);
    std::copy(client_mac.begin(), client_mac.end(), out.begin() + 6);
    put16(out, 12, 0x0806);
    return out;
}

struct captured {
    bytes data;
    std::uint64_t timestamp_ns{};
};

using command_testing::result;

class run_command_test : public command_testing::sluice_command_test {
protected:
    static constexpr std::uint64_t first_timestamp_ns = 1'700'000'000'123'456'789ULL;

    std::string write_pcap(const std::string& name, const std::vector<bytes>& packets) {
        const std::string file = path(name);
        auto writer = io::pcap_writer::create(file, io::timestamp_precision::nanosecond);
        EXPECT_TRUE(writer) << writer.error().message;
        for (std::size_t i = 0; i < packets.size(); ++i) {
            writer->write(packets[i], first_timestamp_ns + i * 1000);
        }
        EXPECT_TRUE(writer->close());
        return file;
    }

    std::string write_text(const std::string& name, const std::string& text) {
        const std::string file = path(name);
        std::ofstream(file) << text;
        return file;
    }

    static std::vector<captured> read_pcap(const std::string& file) {
        std::vector<captured> packets;
        auto reader = io::pcap_reader::open(file);
        EXPECT_TRUE(reader) << reader.error().message;
        if (!reader) {
            return packets;
        }
        xdp::frame_pool pool(16);
        std::array<xdp::frame*, 16> frames{};
        for (;;) {
            const std::size_t acquired = pool.acquire_batch(frames);
            const std::size_t count = reader->rx_batch({frames.data(), acquired});
            for (std::size_t i = 0; i < count; ++i) {
                const auto packet = frames[i]->packet();
                packets.push_back({bytes(packet.begin(), packet.end()), frames[i]->info().timestamp_ns});
            }
            pool.release_batch({frames.data(), acquired});
            if (count == 0) {
                break;
            }
        }
        return packets;
    }

    /// `sluice run ... --json`, parsed; fails the test on a non-zero exit.
    nlohmann::json run_json(std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(), "run");
        arguments.push_back("--json");
        const result done = sluice(arguments);
        EXPECT_EQ(done.status, 0) << done.err;
        auto parsed = nlohmann::json::parse(done.out, nullptr, false);
        EXPECT_FALSE(parsed.is_discarded()) << done.out;
        return parsed;
    }

    static std::uint64_t packets(const nlohmann::json& report, const std::string& action) {
        return report["actions"][action]["packets"].get<std::uint64_t>();
    }

    static const nlohmann::json& map_of(const nlohmann::json& report, const std::string& name) {
        for (const auto& entry : report["maps"]) {
            if (entry["name"] == name) {
                return entry;
            }
        }
        static const nlohmann::json none;
        ADD_FAILURE() << "no map " << name << " in the dump";
        return none;
    }
};

TEST_F(run_command_test, reflector_swaps_macs_and_keeps_timestamps) {
    const std::vector<bytes> input{ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp, 5000, 53),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp), arp_packet()};
    const std::string in = write_pcap("in.pcap", input);
    const std::string tx = path("tx.pcap");
    const auto report = run_json({example("reflector"), "--in", "pcap:" + in, "--out", "tx=" + tx});
    EXPECT_EQ(report["program"], "reflector");
    EXPECT_EQ(packets(report, "tx"), 3U);
    EXPECT_EQ(report["packets"], 3U);
    EXPECT_EQ(report["outputs"]["tx"]["packets"], 3U);

    const auto output = read_pcap(tx);
    ASSERT_EQ(output.size(), 3U);
    for (std::size_t i = 0; i < output.size(); ++i) {
        const bytes& sent = input[i];
        const bytes& back = output[i].data;
        ASSERT_EQ(back.size(), sent.size());
        EXPECT_TRUE(std::equal(back.begin(), back.begin() + 6, sent.begin() + 6)) << "packet " << i;
        EXPECT_TRUE(std::equal(back.begin() + 6, back.begin() + 12, sent.begin())) << "packet " << i;
        EXPECT_EQ(output[i].timestamp_ns, first_timestamp_ns + i * 1000) << "packet " << i;
    }
    // UDP over IPv4: addresses and ports swapped too.
    EXPECT_TRUE(std::equal(output[0].data.begin() + 26, output[0].data.begin() + 30, input[0].begin() + 30));
    EXPECT_TRUE(std::equal(output[0].data.begin() + 34, output[0].data.begin() + 36, input[0].begin() + 36));
    // TCP: only the MACs.
    EXPECT_TRUE(std::equal(output[1].data.begin() + 12, output[1].data.end(), input[1].begin() + 12));
}

TEST_F(run_command_test, ddos_filter_drops_the_blocked_prefix) {
    const std::vector<bytes> input{
        ipv4_packet({198, 51, 100, 7}, {10, 0, 0, 2}, proto_udp), ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp),
        ipv4_packet({198, 51, 100, 200}, {10, 0, 0, 2}, proto_tcp), ipv4_packet({198, 51, 101, 1}, {10, 0, 0, 2}, 6),
        arp_packet()};
    const std::string in = write_pcap("in.pcap", input);
    const std::string blocklist = write_text("blocked.json", R"([{"key": [24, 0, 0, 0, 198, 51, 100, 0], "value": 1}])");
    const std::string dropped = path("drop.pcap");
    const std::string passed = path("pass.pcap");
    const auto report = run_json({example("ddos_filter"), "--in", "pcap:" + in, "--map", "blocked_v4=" + blocklist,
                                  "--out", "drop=" + dropped, "--out", "pass=" + passed, "--dump-maps"});
    EXPECT_EQ(packets(report, "drop"), 2U);
    EXPECT_EQ(packets(report, "pass"), 3U);
    EXPECT_EQ(report["packets"], 5U);

    const auto drops = read_pcap(dropped);
    ASSERT_EQ(drops.size(), 2U);
    EXPECT_EQ(drops[0].data, input[0]);
    EXPECT_EQ(drops[1].data, input[2]);
    EXPECT_EQ(read_pcap(passed).size(), 3U);

    // stats: passed, blocked prefix, rate limited, not IP, malformed (per-CPU, one CPU).
    const auto& stats = map_of(report, "stats");
    ASSERT_EQ(stats["entries"].size(), 5U);
    EXPECT_EQ(stats["entries"][0]["values"][0], "0200000000000000");
    EXPECT_EQ(stats["entries"][1]["values"][0], "0200000000000000");
    EXPECT_EQ(stats["entries"][3]["values"][0], "0100000000000000");
}

TEST_F(run_command_test, global_config_set_changes_the_verdict) {
    const std::vector<bytes> input{ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp, 4000, 23),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp, 4000, 80),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp, 4000, 80)};
    const std::string in = write_pcap("in.pcap", input);
    const auto by_default = run_json({example("global_config"), "--in", "pcap:" + in});
    EXPECT_EQ(packets(by_default, "drop"), 1U) << "telnet (23) is blocked by default";
    EXPECT_EQ(packets(by_default, "pass"), 2U);

    const std::string dropped = path("drop.pcap");
    const auto with_set = run_json({example("global_config"), "--in", "pcap:" + in, "--set", "blocked_port=80",
                                    "--out", "drop=" + dropped, "--dump-maps"});
    EXPECT_EQ(packets(with_set, "drop"), 2U);
    EXPECT_EQ(packets(with_set, "pass"), 1U);
    const auto drops = read_pcap(dropped);
    ASSERT_EQ(drops.size(), 2U);
    EXPECT_EQ(drops[0].data, input[1]);
    EXPECT_EQ(drops[1].data, input[2]);
    // .data starts at 1000 and counts every packet; .bss counts the blocked ones.
    EXPECT_EQ(map_of(with_set, ".data")["entries"][0]["value"], "eb03000000000000");
    EXPECT_EQ(map_of(with_set, ".bss")["entries"][0]["value"], "0200000000000000");
    EXPECT_EQ(map_of(with_set, ".rodata")["entries"][0]["value"], "500001");
}

/// The hex --dump-maps --json prints for proto_count's `struct counter { __u64 packets; __u64 bytes; }`.
std::string counter_hex(std::uint64_t packet_count, std::uint64_t byte_count) {
    std::string hex;
    for (std::uint64_t field : {packet_count, byte_count}) {
        for (int shift = 0; shift < 64; shift += 8) {
            hex += fmt::format("{:02x}", (field >> shift) & 0xff);
        }
    }
    return hex;
}

TEST_F(run_command_test, proto_count_counts_each_layer) {
    bytes hop_by_hop = ipv6_packet();
    hop_by_hop[20] = 0;  // next header: hop-by-hop options...
    hop_by_hop[54] = 58; // ...then ICMPv6; extension length 0 means 8 bytes
    // An Ethernet header that announces IPv4 but ends 6 bytes later. (Shorter than 14 bytes, a frame never reaches
    // the program: ports count it as an error, as the kernel's BPF_PROG_TEST_RUN refuses it.)
    bytes cut_short = ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp);
    cut_short.resize(20);
    const std::vector<bytes> input{ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_icmp),
                                   ipv6_packet(),
                                   hop_by_hop,
                                   arp_packet(),
                                   cut_short};
    const std::string in = write_pcap("in.pcap", input);
    const auto report = run_json({example("proto_count"), "--in", "pcap:" + in, "--dump-maps"});
    EXPECT_EQ(packets(report, "pass"), 7U);
    const auto& entries = map_of(report, "protocols")["entries"];
    ASSERT_EQ(entries.size(), 11U);
    // Index order of examples/proto_count.c: ethernet, vlan, ipv4, ipv6, tcp, udp, icmp, icmpv6, other l3, other l4,
    // truncated. Sizes: IPv4 packets 64 bytes, IPv6 74, ARP 60, the cut IPv4 packet 20.
    const std::array<std::string, 11> expected{
        counter_hex(7, 3 * 64 + 2 * 74 + 60 + 20), counter_hex(0, 0),       counter_hex(3, 3 * 64),
        counter_hex(2, 2 * 74),                    counter_hex(1, 64),      counter_hex(2, 64 + 74),
        counter_hex(1, 64),                        counter_hex(1, 74),      counter_hex(1, 60),
        counter_hex(0, 0),                         counter_hex(1, 20)};
    for (std::size_t index = 0; index < expected.size(); ++index) {
        EXPECT_EQ(entries[index]["values"][0], expected[index]) << "protocol index " << index;
    }
}

TEST_F(run_command_test, tail_call_chain_drops_icmp_and_passes_the_rest) {
    const std::vector<bytes> input{ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_icmp),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp),
                                   ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp),
                                   ipv4_packet({10, 0, 0, 3}, {10, 0, 0, 2}, proto_icmp), ipv6_packet(), arp_packet()};
    const std::string in = write_pcap("in.pcap", input);
    const auto report = run_json({example("tail_call_chain"), "--in", "pcap:" + in, "--dump-maps"});
    EXPECT_EQ(report["program"], "dispatcher") << "the default program is the chain's entry, not a stage";
    EXPECT_EQ(packets(report, "drop"), 2U);
    EXPECT_EQ(packets(report, "pass"), 4U);
    EXPECT_EQ(packets(report, "aborted"), 0U);
    // TCP, UDP and IPv6 reached the accounting stage at the end of the chain.
    EXPECT_EQ(map_of(report, ".bss")["entries"][0]["value"], "0300000000000000");
}

TEST_F(run_command_test, table_totals_add_up) {
    const std::string in = write_pcap("in.pcap", {ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp, 1, 23),
                                                  ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp, 1, 22)});
    const result done = sluice({"run", example("global_config"), "--in", "pcap:" + in});
    ASSERT_EQ(done.status, 0) << done.err;
    EXPECT_NE(done.out.find("program port_filter (verified, unchecked mode, JIT)"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("XDP_DROP"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("total"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("50.00%"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("100.00%"), std::string::npos) << done.out;
}

TEST_F(run_command_test, generator_input_is_counted_whole) {
    const auto report = run_json({example("ddos_filter"), "--in", "gen:packets=500,flows=10,size=64-1500,seed=3",
                                  "--set", "burst=1000000"});
    EXPECT_EQ(report["packets"], 500U);
    std::uint64_t sum = report["errors"]["packets"].get<std::uint64_t>();
    for (const auto& [name, entry] : report["actions"].items()) {
        sum += entry["packets"].get<std::uint64_t>();
    }
    EXPECT_EQ(sum, 500U);
    EXPECT_EQ(packets(report, "pass"), 500U);
    EXPECT_EQ(report["mode"], "unchecked") << "verified, so not checked at run time";
    EXPECT_EQ(report["verified"], true);
}

TEST_F(run_command_test, maps_round_trip_through_json) {
    // Every form of the file: byte arrays, hex strings, integers, per-CPU values.
    const std::string blocklist = write_text("blocked.json", R"([
        {"key": [24, 0, 0, 0, 198, 51, 100, 0], "value": 1},
        {"key": "10000000 c0a8 0000", "value": "02000000"}
    ])");
    const std::string stats = write_text("stats.json", R"([{"key": 3, "value": 40}, {"key": 4, "values": [7]}])");
    const std::string in = write_pcap("in.pcap", {arp_packet()});
    const auto first = run_json({example("ddos_filter"), "--in", "pcap:" + in, "--map", "blocked_v4=" + blocklist,
                                 "--map", "stats=" + stats, "--dump-maps", "--unchecked"});
    EXPECT_EQ(first["mode"], "unchecked");
    EXPECT_EQ(first["verified"], false) << "--unchecked trusts the program without verifying it";
    const auto& blocked = map_of(first, "blocked_v4");
    ASSERT_EQ(blocked["entries"].size(), 2U);
    const auto& counters = map_of(first, "stats");
    EXPECT_EQ(counters["entries"][3]["values"][0], "2900000000000000") << "40 + the one ARP packet";
    EXPECT_EQ(counters["entries"][4]["values"][0], "0700000000000000");

    // The dump's entries are a valid --map file, and give back the same contents.
    const std::string again = write_text("again.json", blocked["entries"].dump());
    const auto second = run_json({example("ddos_filter"), "--in", "pcap:" + in, "--map", "blocked_v4=" + again,
                                  "--dump-map", "blocked_v4"});
    ASSERT_EQ(second["maps"].size(), 1U);
    EXPECT_EQ(map_of(second, "blocked_v4")["entries"], blocked["entries"]);
}

TEST_F(run_command_test, a_bad_map_entry_names_the_map_and_entry) {
    const std::string bad =
        write_text("bad.json", R"([{"key": [24, 0, 0, 0, 198, 51, 100, 0], "value": 1}, {"key": "0102", "value": 1}])");
    const std::string in = write_pcap("in.pcap", {arp_packet()});
    const result done =
        sluice({"run", example("ddos_filter"), "--in", "pcap:" + in, "--map", "blocked_v4=" + bad});
    EXPECT_EQ(done.status, 1);
    EXPECT_NE(done.err.find("map blocked_v4: entry 2: key has 2 bytes, the map's keys have 8"), std::string::npos)
        << done.err;

    const result missing = sluice({"run", example("ddos_filter"), "--in", "pcap:" + in, "--map", "nosuch=" + bad});
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.err.find("has no map 'nosuch'"), std::string::npos) << missing.err;
}

TEST_F(run_command_test, a_truncated_pcap_names_the_record_and_counts_what_came_before) {
    std::vector<bytes> input;
    for (int i = 0; i < 5; ++i) {
        input.push_back(ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_tcp, 1, 22, 60));
    }
    const std::string in = write_pcap("in.pcap", input);
    // 24-byte file header, then 16-byte record headers: cut record 4 in the middle of its data.
    std::filesystem::resize_file(in, 24 + 3 * (16 + 60) + 16 + 30);
    const result done = sluice({"run", example("global_config"), "--in", "pcap:" + in, "--json"});
    EXPECT_NE(done.status, 0);
    EXPECT_NE(done.err.find("record 4"), std::string::npos) << done.err;
    const auto report = nlohmann::json::parse(done.out, nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << done.out;
    EXPECT_EQ(report["packets"], 3U);
    EXPECT_EQ(packets(report, "pass"), 3U);
    EXPECT_NE(report["input_error"].get<std::string>().find("record 4"), std::string::npos);
}

TEST_F(run_command_test, packets_too_large_for_a_frame_are_counted_as_errors) {
    const std::string in = write_pcap("in.pcap", {ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp),
                                                  bytes(xdp::standard_frame_capacity + 1, 0),
                                                  ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp)});
    const result done = sluice({"run", example("reflector"), "--in", "pcap:" + in, "--json"});
    EXPECT_EQ(done.status, 0) << done.err;
    const auto report = nlohmann::json::parse(done.out, nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << done.out;
    EXPECT_EQ(report["packets"], 3U);
    EXPECT_EQ(report["errors"]["packets"], 1U);
    EXPECT_EQ(packets(report, "tx"), 2U);
    EXPECT_NE(done.err.find("record 2"), std::string::npos) << done.err;
}

TEST_F(run_command_test, a_missing_program_is_a_clear_error) {
    const std::string in = write_pcap("in.pcap", {arp_packet()});
    const result done = sluice({"run", example("tail_call_chain"), "--in", "pcap:" + in, "--prog", "nosuch"});
    EXPECT_EQ(done.status, 1);
    EXPECT_NE(done.err.find("no program named 'nosuch'"), std::string::npos) << done.err;
    EXPECT_NE(done.err.find("dispatcher"), std::string::npos) << "the error lists the programs: " << done.err;

    const result chosen = sluice({"run", example("tail_call_chain"), "--in", "pcap:" + in, "--prog", "ipv6_stage"});
    EXPECT_EQ(chosen.status, 0) << chosen.err;
    EXPECT_NE(chosen.out.find("program ipv6_stage"), std::string::npos) << chosen.out;
}

TEST_F(run_command_test, bad_options_are_refused) {
    const std::string in = write_pcap("in.pcap", {arp_packet()});
    const result action = sluice({"run", example("reflector"), "--in", "pcap:" + in, "--out", "bounce=x.pcap"});
    EXPECT_EQ(action.status, 1);
    EXPECT_NE(action.err.find("expected ACTION=FILE"), std::string::npos) << action.err;

    const result input = sluice({"run", example("reflector"), "--in", "tap:eth0"});
    EXPECT_EQ(input.status, 1);
    EXPECT_NE(input.err.find("expected pcap:FILE or gen:SPEC"), std::string::npos) << input.err;

    const result rodata = sluice({"run", example("global_config"), "--in", "pcap:" + in, "--set", "nosuch=1"});
    EXPECT_EQ(rodata.status, 1);
    EXPECT_NE(rodata.err.find("nosuch"), std::string::npos) << rodata.err;
}

TEST_F(run_command_test, prog_array_slots_are_set_by_name) {
    // Point the IPv4 stage's slot at the accounting stage: ICMP is then no longer dropped.
    const std::string in = write_pcap("in.pcap", {ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_icmp)});
    const auto report = run_json(
        {example("tail_call_chain"), "--in", "pcap:" + in, "--prog-array", "stages[0]=account_stage", "--dump-maps"});
    EXPECT_EQ(packets(report, "pass"), 1U);
    EXPECT_EQ(map_of(report, ".bss")["entries"][0]["value"], "0100000000000000");
}

/// A packet for run_outcomes.o's `outcomes` program: the last byte of the destination MAC picks the outcome.
bytes outcome_packet(std::uint8_t selector) {
    bytes out = arp_packet();
    out[5] = selector;
    return out;
}

TEST_F(run_command_test, every_outcome_is_counted_and_written) {
    const std::vector<bytes> input{outcome_packet(0), outcome_packet(1), outcome_packet(2), outcome_packet(3),
                                   outcome_packet(4), outcome_packet(5), outcome_packet(0)};
    const std::string in = write_pcap("in.pcap", input);
    const std::string redirected = path("redirect.pcap");
    const std::string aborted = path("aborted.pcap");
    // `outcomes` writes far past a map value on purpose: the verifier rejects it, so it runs unverified, checked.
    const result done = sluice({"run", SLUICE_RUN_FIXTURE, "--in", "pcap:" + in, "--out", "redirect=" + redirected,
                                "--out", "aborted=" + aborted, "--json", "--no-verify"});
    ASSERT_EQ(done.status, 0) << done.err;
    const auto report = nlohmann::json::parse(done.out, nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << done.out;
    EXPECT_EQ(report["program"], "outcomes");
    EXPECT_EQ(packets(report, "pass"), 2U);
    EXPECT_EQ(packets(report, "redirect"), 1U);
    EXPECT_EQ(packets(report, "aborted"), 4U) << "no redirect target, unknown code, fault, XDP_ABORTED";
    EXPECT_EQ(report["exceptions"], 4U);
    EXPECT_EQ(report["unknown_return_codes"], 1U);
    EXPECT_EQ(report["faults"], 1U);
    EXPECT_EQ(report["redirect_errors"], 1U);
    EXPECT_EQ(report["packets"], 7U);

    // The fault's log line names the packet, the instruction and the source line.
    EXPECT_NE(done.err.find("program outcomes aborted on packet 5: instruction"), std::string::npos) << done.err;
    EXPECT_NE(done.err.find("run_outcomes.c"), std::string::npos) << done.err;
    EXPECT_NE(done.err.find("outside every region"), std::string::npos) << done.err;

    const auto redirects = read_pcap(redirected);
    ASSERT_EQ(redirects.size(), 1U);
    EXPECT_EQ(redirects[0].data, input[1]);
    const auto aborts = read_pcap(aborted);
    ASSERT_EQ(aborts.size(), 4U);
    EXPECT_EQ(aborts[0].data, input[2]);
    EXPECT_EQ(aborts[3].data, input[5]);
}

TEST_F(run_command_test, trace_printk_goes_to_stderr_unless_turned_off) {
    const std::string in = write_pcap("in.pcap", {arp_packet(), ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, 6)});
    const result traced = sluice({"run", SLUICE_RUN_FIXTURE, "--prog", "printk_pass", "--in", "pcap:" + in});
    ASSERT_EQ(traced.status, 0) << traced.err;
    EXPECT_NE(traced.err.find("packet of 60 bytes"), std::string::npos) << traced.err;
    EXPECT_NE(traced.err.find("packet of 64 bytes"), std::string::npos) << traced.err;
    EXPECT_EQ(traced.out.find("packet of"), std::string::npos) << "trace output stays off stdout";

    const result quiet =
        sluice({"run", SLUICE_RUN_FIXTURE, "--prog", "printk_pass", "--in", "pcap:" + in, "--no-trace"});
    ASSERT_EQ(quiet.status, 0) << quiet.err;
    EXPECT_EQ(quiet.err.find("packet of"), std::string::npos) << quiet.err;
}

// ---- sluice run --port: the data path engine ----

TEST_F(run_command_test, two_ports_and_two_workers_pass_to_one_output) {
    std::vector<bytes> first;
    std::vector<bytes> second;
    for (int i = 0; i < 300; ++i) {
        first.push_back(ipv4_packet({10, 0, 0, 1}, {10, 0, 1, static_cast<std::uint8_t>(i)}, proto_udp));
    }
    for (int i = 0; i < 200; ++i) {
        second.push_back(ipv4_packet({10, 0, 0, 2}, {10, 0, 2, static_cast<std::uint8_t>(i)}, proto_tcp, 1024, 80, 128));
    }
    const std::string a = write_pcap("a.pcap", first);
    const std::string b = write_pcap("b.pcap", second);
    const std::string out = path("passed.pcap");
    const auto report = run_json({example("xdp_pass"), "--port", "pcap:" + a, "--port", "pcap:" + b, "--pass",
                                  "pcap:" + out, "--workers", "2"});
    EXPECT_EQ(report["workers"], 2);
    EXPECT_EQ(report["accounting"], "ok");
    ASSERT_EQ(report["ports"].size(), 3U);
    EXPECT_EQ(report["ports"][0]["received"]["packets"], 300);
    EXPECT_EQ(report["ports"][0]["passed"]["packets"], 300);
    EXPECT_EQ(report["ports"][1]["received"]["packets"], 200);
    EXPECT_EQ(report["ports"][1]["received"]["bytes"], 200 * 128);
    EXPECT_EQ(report["ports"][1]["passed"]["packets"], 200);
    EXPECT_EQ(report["ports"][2]["sent"]["packets"], 500);
    for (const auto& port : report["ports"]) {
        EXPECT_TRUE(port["balanced"].get<bool>()) << port["name"];
    }
    // Each worker read its own port.
    EXPECT_EQ(report["worker_stats"].size(), 2U);
    EXPECT_EQ(report["program_stats"]["received"]["packets"], 500);
    EXPECT_EQ(read_pcap(out).size(), 500U);
}

TEST_F(run_command_test, port_errors_are_counted_per_port) {
    const std::string a = write_pcap("a.pcap", {ipv4_packet({10, 0, 0, 1}, {10, 0, 0, 2}, proto_udp), arp_packet()});
    // The reflector sends everything back out (XDP_TX); a pcap input cannot transmit: TX errors, still balanced.
    const result done = sluice({"run", example("reflector"), "--port", "pcap:" + a, "--port", "gen:packets=40"});
    ASSERT_EQ(done.status, 0) << done.err;
    EXPECT_NE(done.out.find("accounting: every frame accounted for"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("refused by a port (tx)"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("pcap:" + a), std::string::npos) << done.out;
}

TEST_F(run_command_test, port_options_are_checked) {
    const std::string a = write_pcap("a.pcap", {arp_packet()});
    const result both = sluice({"run", example("xdp_pass"), "--in", "pcap:" + a, "--port", "pcap:" + a});
    EXPECT_EQ(both.status, 1);
    EXPECT_NE(both.err.find("not both"), std::string::npos) << both.err;
    const result workers_alone = sluice({"run", example("xdp_pass"), "--in", "pcap:" + a, "--workers", "2"});
    EXPECT_EQ(workers_alone.status, 1);
    EXPECT_NE(workers_alone.err.find("go with --port"), std::string::npos) << workers_alone.err;
    const result bad_port = sluice({"run", example("xdp_pass"), "--port", "nosuch:thing"});
    EXPECT_EQ(bad_port.status, 1);
    EXPECT_NE(bad_port.err.find("--port nosuch:thing"), std::string::npos) << bad_port.err;
}

TEST_F(run_command_test, duration_stops_an_endless_source_with_balanced_accounting) {
    const auto started = std::chrono::steady_clock::now();
    const auto report = run_json({example("xdp_pass"), "--port", "gen:packets=1000000000", "--workers", "2",
                                  "--duration", "0.5"});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    EXPECT_LT(seconds, 30.0);
    EXPECT_EQ(report["accounting"], "ok");
    const auto received = report["ports"][0]["received"]["packets"].get<std::uint64_t>();
    EXPECT_GT(received, 0U);
    EXPECT_LT(received, 1000000000U);
    EXPECT_EQ(report["ports"][0]["passed"]["packets"].get<std::uint64_t>(), received);
}

TEST_F(run_command_test, sigterm_stops_reading_drains_and_reports) {
    const std::string out = path("signal_out.txt");
    const std::string err = path("signal_err.txt");
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        const std::string object = example("reflector");
        execl(SLUICE_BINARY, SLUICE_BINARY, "run", object.c_str(), "--port", "gen:packets=1000000000", "--workers",
              "2", static_cast<char*>(nullptr));
        _exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    kill(child, SIGTERM);
    int raw = 0;
    ASSERT_EQ(waitpid(child, &raw, 0), child);
    ASSERT_TRUE(WIFEXITED(raw));
    EXPECT_EQ(WEXITSTATUS(raw), 0);
    const std::string table = text_of(out);
    const std::string messages = text_of(err);
    EXPECT_NE(messages.find("stopped by a signal"), std::string::npos) << messages;
    EXPECT_NE(table.find("accounting: every frame accounted for"), std::string::npos) << table;
}

TEST_F(run_command_test, devmap_redirect_through_an_entry_program_by_command_line) {
    // engine_programs.o: byte 0 == 5 redirects through devices[byte 1]; the entry's xdp/devmap program (mark_egress,
    // the object's second program: id 2) writes the egress ifindex into bytes 2..5.
    std::vector<bytes> input;
    for (int i = 0; i < 20; ++i) {
        bytes packet(64, 0);
        packet[0] = 5;
        packet[1] = 1;
        packet[9] = static_cast<std::uint8_t>(i);
        input.push_back(packet);
    }
    const std::string in = write_pcap("in.pcap", input);
    const std::string out = path("redirected.pcap");
    // Ports get sluice's ifindexes in the order they are opened: --port first (16777216), then --pass (16777217).
    const std::uint64_t target = 16777217;
    const std::uint64_t value = target | (std::uint64_t{2} << 32);
    const std::string devices = write_text("devices.json", fmt::format(R"([{{"key": 1, "value": {}}}])", value));
    const auto report = run_json({SLUICE_ENGINE_FIXTURE, "--prog", "by_first_byte", "--port", "pcap:" + in, "--pass",
                                  "pcap:" + out, "--map", "devices=" + devices, "--dump-map", "devices"});
    EXPECT_EQ(report["accounting"], "ok");
    EXPECT_EQ(report["ports"][1]["ifindex"], target);
    EXPECT_EQ(report["ports"][0]["redirected"]["packets"], 20);
    EXPECT_EQ(report["ports"][1]["sent"]["packets"], 20);
    const auto written = read_pcap(out);
    ASSERT_EQ(written.size(), 20U);
    for (std::size_t i = 0; i < written.size(); ++i) {
        std::uint32_t egress = 0;
        std::memcpy(&egress, written[i].data.data() + 2, 4);
        EXPECT_EQ(egress, target);
        EXPECT_EQ(written[i].data[9], i);
    }
    // A program id of the wrong kind is refused as the kernel refuses it (by_first_byte is an xdp program).
    const std::string wrong = write_text("wrong.json", fmt::format(R"([{{"key": 1, "value": {}}}])",
                                                                   target | (std::uint64_t{1} << 32)));
    const result refused = sluice({"run", SLUICE_ENGINE_FIXTURE, "--prog", "by_first_byte", "--port", "pcap:" + in,
                                   "--pass", "pcap:" + out, "--map", "devices=" + wrong});
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.err.find("devices"), std::string::npos) << refused.err;
}

} // namespace
} // namespace sluice::cli
