// `sluice features PORT`: every kind of port, text and JSON, and the errors for ports that cannot be opened. The
// kernel ports are described inside a namespace the test creates (an AF_XDP port attaches libxdp's program for the
// moment it is described, and must leave the interface as it found it).
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "netns.hpp"
#include "sluice_process.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

TEST(sluice_features, generator_port_as_text) {
    const finished run = run_sluice("", {"features", "gen:packets=5"});
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_NE(run.out.find("port gen:packets=5\n"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("  kind              gen\n"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("  tx                no\n"), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("  XDP_DROP          yes: "), std::string::npos) << run.out;
    EXPECT_NE(run.out.find("  XDP_TX            no: a gen port cannot send"), std::string::npos) << run.out;
}

TEST(sluice_features, pcap_output_port_as_json) {
    const auto file =
        std::filesystem::temp_directory_path() / ("sluice-features-" + std::to_string(::getpid()) + ".pcap");
    const finished run = run_sluice("", {"features", "--json", "--output", "pcap:" + file.string()});
    std::filesystem::remove(file);
    ASSERT_EQ(run.status, 0) << run.err;
    const auto document = nlohmann::json::parse(run.out);
    EXPECT_EQ(document["kind"], "pcap");
    EXPECT_EQ(document["rx"], false);
    EXPECT_EQ(document["tx"], true);
    EXPECT_EQ(document["pass_target"], true);
    EXPECT_EQ(document["actions"]["XDP_PASS"]["works"], true);
    EXPECT_EQ(document["actions"]["XDP_TX"]["works"], false);
}

TEST(sluice_features, a_port_that_cannot_be_opened_is_an_error) {
    const finished unknown = run_sluice("", {"features", "dpdk:0"});
    EXPECT_EQ(unknown.status, 1);
    EXPECT_NE(unknown.err.find("sluice features: port 'dpdk:0': unknown kind 'dpdk'"), std::string::npos)
        << unknown.err;
    const finished missing = run_sluice("", {"features", "afpacket:sl-missing0"});
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.err.find("no such interface 'sl-missing0'"), std::string::npos) << missing.err;
}

// Without privileges each kernel port says which capability it lacks (run as nobody through setpriv).
TEST(sluice_features, without_privileges_the_missing_capability_is_named) {
    if (::geteuid() != 0 || !run_command("setpriv --version").ok()) {
        GTEST_SKIP() << "needs root and setpriv (util-linux) to run sluice as an unprivileged user";
    }
    const auto unprivileged = [](const std::string& spec) {
        return run_command("setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all " +
                           std::string(SLUICE_BINARY) + " features " + spec);
    };
    const command_result packet = unprivileged("afpacket:lo");
    EXPECT_NE(packet.status, 0);
    EXPECT_NE(packet.output.find("port 'afpacket:lo': socket(AF_PACKET): Operation not permitted (needs CAP_NET_RAW"),
              std::string::npos)
        << packet.output;
    const command_result xdp = unprivileged("afxdp:lo");
    EXPECT_NE(xdp.status, 0);
    EXPECT_NE(xdp.output.find("needs CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF"), std::string::npos) << xdp.output;
    const command_result tap = unprivileged("tap:" + unique_interface("np"));
    EXPECT_NE(tap.status, 0);
    EXPECT_NE(tap.output.find("Operation not permitted (needs CAP_NET_ADMIN"), std::string::npos) << tap.output;
}

class sluice_features_in_a_namespace : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string reason = skip_reason(); !reason.empty()) {
            GTEST_SKIP() << reason;
        }
        std::string error;
        _space = network_namespace::create("features", &error);
        ASSERT_TRUE(_space) << error;
        _peer = network_namespace::create("features-peer", &error);
        ASSERT_TRUE(_peer) << error;
        _interface = unique_interface("fv");
        ASSERT_TRUE(add_veth(*_space, _interface, "", *_peer, unique_interface("fp"), "", &error)) << error;
    }

    nlohmann::json features(const std::string& spec) {
        const finished run = run_sluice(_space->name(), {"features", "--json", spec});
        EXPECT_EQ(run.status, 0) << run.err;
        return run.status == 0 ? nlohmann::json::parse(run.out) : nlohmann::json{};
    }

    std::unique_ptr<network_namespace> _space;
    std::unique_ptr<network_namespace> _peer;
    std::string _interface;
};

TEST_F(sluice_features_in_a_namespace, afxdp_on_veth_is_copy_mode_and_leaves_no_program_behind) {
    const auto document = features("afxdp:" + _interface);
    EXPECT_EQ(document["kind"], "afxdp");
    EXPECT_EQ(document["zero_copy"], false);
    EXPECT_NE(document["mode"].get<std::string>().find("native XDP"), std::string::npos) << document["mode"];
    EXPECT_EQ(document["ifindex"], _space->ifindex_of(_interface));
    EXPECT_EQ(document["actions"]["XDP_TX"]["works"], true);
    const auto link = _space->ip("link show dev " + _interface);
    EXPECT_EQ(link.output.find("xdp"), std::string::npos) << "libxdp's program must be detached: " << link.output;

    const finished generic = run_sluice(_space->name(), {"features", "--generic", "afxdp:" + _interface});
    ASSERT_EQ(generic.status, 0) << generic.err;
    EXPECT_NE(generic.out.find("generic (SKB) XDP"), std::string::npos) << generic.out;
    const finished no_queue = run_sluice(_space->name(), {"features", "afxdp:" + _interface + ":3"});
    EXPECT_EQ(no_queue.status, 1);
    EXPECT_NE(no_queue.err.find("queue 3 does not exist: '" + _interface + "' has 1 RX queue"), std::string::npos)
        << no_queue.err;
}

TEST_F(sluice_features_in_a_namespace, afpacket_says_the_kernel_stack_keeps_its_copy) {
    const auto document = features("afpacket:" + _interface);
    EXPECT_EQ(document["kind"], "afpacket");
    EXPECT_EQ(document["tx"], true);
    EXPECT_NE(document["mode"].get<std::string>().find("TPACKET_V3 RX ring"), std::string::npos) << document["mode"];
    EXPECT_NE(document["actions"]["XDP_DROP"]["how"].get<std::string>().find("kernel stack has received"),
              std::string::npos);
}

TEST_F(sluice_features_in_a_namespace, tap_is_created_and_removed) {
    const std::string tap = unique_interface("ft");
    const auto document = features("tap:" + tap);
    EXPECT_EQ(document["kind"], "tap");
    EXPECT_EQ(document["pass_target"], true);
    EXPECT_FALSE(_space->ip("link show dev " + tap).ok()) << "the TAP goes away with the port";
}

} // namespace
} // namespace sluice::test
