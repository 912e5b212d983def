// `sluice run --port` end to end, as a user runs it: the command in the sluice namespace of topology.hpp, traffic
// from the other namespaces, SIGTERM to stop it (as Ctrl-C), and its JSON report with the accounting per port.
// The issue's own command line is the first test: an AF_XDP port and an AF_PACKET port, a TAP as pass target,
// two workers.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "netns.hpp"
#include "sluice_process.hpp"
#include "topology.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t datagrams = 40;

template <typename Predicate> bool wait_until(Predicate ready, std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!ready()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(20ms);
    }
    return true;
}

class sluice_run_ports : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string reason = skip_reason(); !reason.empty()) {
            GTEST_SKIP() << reason;
        }
        std::string error;
        ASSERT_TRUE(_net.build("run", error)) << error;
        _sender = udp_socket::open(*_net.a, sender_ip, sender_udp);
        ASSERT_TRUE(_sender);
    }

    void TearDown() override {
        _sluice.reset(); // killed if still running, before its namespace goes
        _sender.reset();
        _net = topology{};
    }

    void start(std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(), "run");
        _sluice = std::make_unique<sluice_process>(_net.sluice->name(), arguments);
        ASSERT_TRUE(_sluice->started());
    }

    // sluice holds vs1 once libxdp's program is attached to it.
    bool afxdp_ready(const std::string& interface) const {
        return wait_until(
            [&] { return _net.sluice->ip("link show dev " + interface).output.find(" xdp") != std::string::npos; });
    }
    // An AF_PACKET socket of the namespace is bound to `interface` (the namespace's /proc/net/packet lists it).
    bool afpacket_ready(const std::string& interface) const {
        const std::string ifindex = std::to_string(_net.sluice->ifindex_of(interface));
        return wait_until([&] {
            return _net.sluice->run([&] {
                std::ifstream list("/proc/thread-self/net/packet"); // this thread's namespace, not the process's
                std::string line;
                std::getline(list, line); // header: sk RefCnt Type Proto Iface R Rmem User Inode
                while (std::getline(list, line)) {
                    std::istringstream fields(line);
                    std::string sk, references, type, protocol, index;
                    fields >> sk >> references >> type >> protocol >> index;
                    if (index == ifindex) {
                        return true;
                    }
                }
                return false;
            });
        });
    }

    // The TAP sluice created, made the namespace's host side for 10.77.0.1 (vs1's MAC, the address).
    bool configure_tap(const std::string& tap) const {
        if (!wait_until([&] { return _net.sluice->ip("link show dev " + tap).ok(); })) {
            return false;
        }
        _net.sluice->sysctl("net/ipv6/conf/" + tap + "/disable_ipv6", "1");
        return _net.sluice->ip("link set dev " + tap + " address " + mac_text(_net.vs1_mac)).ok() &&
               _net.sluice->ip(std::string("addr add ") + service_ip + "/24 dev " + tap).ok();
    }

    void send(std::string_view marker) const {
        for (std::size_t i = 0; i < datagrams; ++i) {
            ASSERT_TRUE(_sender->send_to(service_ip, service_udp, payload(marker, i)));
        }
    }

    // SIGTERM, then the JSON report; checks the exit code and the accounting of every port.
    nlohmann::json stop() {
        const int status = _sluice->stop();
        EXPECT_EQ(status, 0) << _sluice->err();
        EXPECT_NE(_sluice->err().find("stopped by a signal"), std::string::npos) << _sluice->err();
        nlohmann::json report;
        try {
            report = nlohmann::json::parse(_sluice->out());
        } catch (const std::exception& failure) {
            ADD_FAILURE() << failure.what() << "\n" << _sluice->out() << _sluice->err();
            return report;
        }
        EXPECT_EQ(report["accounting"], "ok");
        EXPECT_EQ(report["pool_outstanding"], 0);
        for (const auto& port : report["ports"]) {
            EXPECT_TRUE(port["balanced"].get<bool>()) << port.dump();
        }
        return report;
    }

    static std::uint64_t packets(const nlohmann::json& counter) { return counter["packets"].get<std::uint64_t>(); }

    topology _net;
    std::unique_ptr<udp_socket> _sender;
    std::unique_ptr<sluice_process> _sluice;
};

TEST_F(sluice_run_ports, afxdp_and_afpacket_ports_two_workers_and_a_tap_reflect_both_senders) {
    const std::string tap = unique_interface("rt");
    auto second_sender = udp_socket::open(*_net.b, service_ip, sender_udp);
    ASSERT_TRUE(second_sender);
    start({std::string(SLUICE_EXAMPLES_DIR) + "/reflector.o", "--port", "afxdp:" + _net.vs1, "--port",
           "afpacket:" + _net.vs2, "--pass", "tap:" + tap, "--workers", "2", "--json"});
    ASSERT_TRUE(afxdp_ready(_net.vs1)) << _sluice->err();
    ASSERT_TRUE(afpacket_ready(_net.vs2)) << _sluice->err();
    send("run worker 0");
    for (std::size_t i = 0; i < datagrams; ++i) {
        ASSERT_TRUE(second_sender->send_to(second_service_ip, service_udp, payload("run worker 1", i)));
    }
    EXPECT_EQ(_sender->receive_matching(bytes_of("run worker 0"), datagrams, 5s), datagrams);
    EXPECT_EQ(second_sender->receive_matching(bytes_of("run worker 1"), datagrams, 5s), datagrams);
    const nlohmann::json report = stop();
    ASSERT_EQ(report["ports"].size(), 3U);
    EXPECT_EQ(report["workers"], 2);
    EXPECT_EQ(packets(report["ports"][0]["transmitted"]), datagrams);
    EXPECT_EQ(packets(report["ports"][1]["transmitted"]), datagrams);
    EXPECT_EQ(report["ports"][2]["kind"], "tap");
}

TEST_F(sluice_run_ports, xdp_pass_to_a_tap_reaches_the_host_stack) {
    const std::string tap = unique_interface("rt");
    start(
        {SLUICE_NETNS_FIXTURE, "--prog", "pass_all", "--port", "afxdp:" + _net.vs1, "--pass", "tap:" + tap, "--json"});
    ASSERT_TRUE(configure_tap(tap)) << _sluice->err();
    ASSERT_TRUE(afxdp_ready(_net.vs1)) << _sluice->err();
    auto host = udp_socket::open(*_net.sluice, service_ip, service_udp);
    ASSERT_TRUE(host);
    send("run pass");
    EXPECT_EQ(host->receive_matching(bytes_of("run pass"), datagrams, 5s), datagrams);
    const nlohmann::json report = stop();
    EXPECT_EQ(packets(report["ports"][0]["received"]), datagrams);
    EXPECT_EQ(packets(report["ports"][0]["passed"]), datagrams);
    EXPECT_EQ(packets(report["ports"][1]["sent"]), datagrams);
}

TEST_F(sluice_run_ports, xdp_redirect_through_a_devmap_filled_with_map) {
    const auto file = std::filesystem::temp_directory_path() / ("sluice-run-" + std::to_string(::getpid()) + ".json");
    {
        std::ofstream out(file);
        out << nlohmann::json::array({{{"key", 0}, {"value", _net.sluice->ifindex_of(_net.vs2)}}}).dump();
    }
    auto receiver = udp_socket::open(*_net.b, service_ip, service_udp);
    ASSERT_TRUE(receiver);
    start({SLUICE_NETNS_FIXTURE, "--prog", "forward", "--port", "afxdp:" + _net.vs1, "--port", "afxdp:" + _net.vs2,
           "--map", "forward_ports=" + file.string(), "--json"});
    ASSERT_TRUE(afxdp_ready(_net.vs1)) << _sluice->err();
    ASSERT_TRUE(afxdp_ready(_net.vs2)) << _sluice->err();
    send("run redirect");
    EXPECT_EQ(receiver->receive_matching(bytes_of("run redirect"), datagrams, 5s), datagrams);
    const nlohmann::json report = stop();
    std::filesystem::remove(file);
    EXPECT_EQ(packets(report["ports"][0]["redirected"]), datagrams);
    EXPECT_EQ(packets(report["ports"][1]["sent"]), datagrams);
}

TEST_F(sluice_run_ports, xdp_drop_is_counted) {
    start({SLUICE_NETNS_FIXTURE, "--prog", "drop_all", "--port", "afpacket:" + _net.vs1, "--json"});
    ASSERT_TRUE(afpacket_ready(_net.vs1)) << _sluice->err();
    send("run drop");
    std::this_thread::sleep_for(300ms);
    const nlohmann::json report = stop();
    EXPECT_EQ(packets(report["ports"][0]["received"]), datagrams);
    EXPECT_EQ(packets(report["ports"][0]["dropped"]), datagrams);
    EXPECT_EQ(packets(report["program_stats"]["actions"]["drop"]), datagrams);
}

TEST_F(sluice_run_ports, a_port_that_cannot_be_opened_stops_the_run_with_its_reason) {
    const finished run = run_sluice(
        _net.sluice->name(), {"run", SLUICE_NETNS_FIXTURE, "--prog", "drop_all", "--port", "afxdp:" + _net.vs1 + ":7"});
    EXPECT_NE(run.status, 0);
    EXPECT_NE(run.err.find("queue 7 does not exist"), std::string::npos) << run.err;
}

} // namespace
} // namespace sluice::test
