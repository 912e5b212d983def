// sluice-gen: writes the traffic a `gen:` spec describes to a pcap file, for tests, benchmarks and other tools.
//
//   sluice-gen 'packets=100000,flows=1000,size=64-1500,mix=tcp:60/udp:30/icmp:10,attack=10@203.0.113.0/24' -o out.pcap
//
// The spec keys are documented in include/sluice/io/traffic_generator.hpp and by --help-spec.
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "sluice/io/traffic_generator.hpp"

namespace {

constexpr const char* spec_help = R"(Spec keys (KEY=VALUE, comma-separated, all optional, 'gen:' prefix optional):
  packets=N          packets to generate (default 1000)
  flows=N            normal flows (default 100)
  size=N|MIN-MAX|imix
                     frame length without FCS, 14..9216 (default 64); never shorter than the headers;
                     imix = 60/590/1514 bytes in the ratio 7:4:1
  mix=P:W[/P:W...]   protocol weights, P in tcp, udp, icmp (default tcp:60/udp:30/icmp:10)
  ipv6=PCT           percent of flows over IPv6 (default 0)
  vlan=PCT           percent of flows with an 802.1Q tag (default 0)
  attack=PCT@PREFIX  percent of packets from a few attack sources in PREFIX (IPv4 or IPv6 CIDR)
  attack_sources=N   number of attack sources (default 16)
  rate=N             packets per second, for timestamps (default 1000000)
  seed=N             seed; the same spec and seed give the same bytes (default 1)
)";

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"Write generated traffic to a pcap file (nanosecond timestamps, Ethernet)", "sluice-gen"};
    std::string spec_text;
    std::string output;
    bool show_spec_help = false;
    app.add_option("spec", spec_text, "traffic spec, e.g. packets=1000,size=imix,attack=10@203.0.113.0/24");
    app.add_option("-o,--output", output, "pcap file to write");
    app.add_flag("--help-spec", show_spec_help, "describe the spec keys");
    CLI11_PARSE(app, argc, argv);

    if (show_spec_help) {
        std::fputs(spec_help, stdout);
        return 0;
    }
    if (output.empty()) {
        fmt::print(stderr, "sluice-gen: an output file is required (-o FILE)\n");
        return 2;
    }
    auto spec = sluice::io::traffic_spec::parse(spec_text);
    if (!spec) {
        fmt::print(stderr, "sluice-gen: {}\n", spec.error().message);
        return 2;
    }
    auto generator = sluice::io::traffic_generator::create(*spec);
    if (!generator) {
        fmt::print(stderr, "sluice-gen: {}\n", generator.error().message);
        return 2;
    }
    auto written = generator->write_pcap(output);
    if (!written) {
        fmt::print(stderr, "sluice-gen: {}\n", written.error().message);
        return 1;
    }
    fmt::print("wrote {} packets to {}\n", *written, output);
    return 0;
}
