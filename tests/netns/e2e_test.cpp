// The data path end to end on real interfaces (issue 6, "What it must show"): the engine (xdp/engine.hpp) with
// AF_XDP, AF_PACKET and TAP ports, between network namespaces this test creates and removes.
//
// The namespaces of topology.hpp, ports on vs1 and vs2, and for XDP_PASS a TAP (10.77.0.1/24 with vs1's MAC: the
// sluice namespace's own stack). a sends UDP datagrams to 10.77.0.1:5000. Then:
// - XDP_TX (examples/reflector.o) sends them back, addresses and ports swapped: a's socket receives every echo.
// - XDP_REDIRECT through a devmap whose entry 0 is vs2 forwards them into namespace b, where vb has vs1's MAC and
//   10.77.0.1: b's socket receives every datagram (sluice as a wire between a and b).
// - XDP_PASS with the TAP as pass target: the sluice namespace's own socket on the TAP's 10.77.0.1 receives them.
// - XDP_DROP: they vanish (a's socket receives nothing back, nothing reaches b) and are counted as dropped.
// Every test checks the engine's accounting: received = dropped + passed + transmitted + redirected + aborted +
// errors on every port, every frame back in the pool.
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "netns.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/io/port.hpp"
#include "sluice/xdp/engine.hpp"
#include "sluice/xdp/executor.hpp"
#include "topology.hpp"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t datagrams = 50;

class end_to_end : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string reason = skip_reason(); !reason.empty()) {
            GTEST_SKIP() << reason;
        }
        std::string error;
        ASSERT_TRUE(_net.build("e2e", error)) << error;
        _sluice = _net.sluice.get();
        _a = _net.a.get();
        _b = _net.b.get();
        _vs1 = _net.vs1;
        _vs2 = _net.vs2;
        _vs1_mac = _net.vs1_mac;
        _sender = udp_socket::open(*_a, sender_ip, sender_udp);
        ASSERT_TRUE(_sender);
    }

    void TearDown() override {
        _engine.reset();
        _ports.clear(); // in the sluice namespace's program and sockets: before the namespaces go
        _sender.reset();
        _net = topology{};
    }

    // The object lives in the fixture: the engine keeps pointers to its maps and programs until it is destroyed.
    ebpf::loaded_object& load(const std::string& path) {
        auto spec = ebpf::object_spec::open_file(path);
        if (!spec) {
            throw std::runtime_error(spec.error().message);
        }
        auto object = spec->load();
        if (!object) {
            throw std::runtime_error(object.error().message);
        }
        _objects.push_back(std::make_unique<ebpf::loaded_object>(std::move(object.value())));
        return *_objects.back();
    }

    io::port& open(const std::string& spec) {
        auto opened = _sluice->run([&] { return std::optional(io::open_port(spec, _pool)); });
        EXPECT_TRUE(opened && *opened) << (opened ? opened->error().message : "setns failed");
        if (!opened || !*opened) {
            throw std::runtime_error("cannot open " + spec);
        }
        _ports.push_back(std::move(opened->value()));
        return *_ports.back();
    }

    // The TAP as the sluice namespace's stack: vs1's MAC and 10.77.0.1, so what a sent to vs1 is for it.
    io::port& open_tap() {
        const std::string name = unique_interface("et");
        io::port& tap = open("tap:" + name);
        EXPECT_TRUE(_sluice->sysctl("net/ipv6/conf/" + name + "/disable_ipv6", "1"));
        auto done = _sluice->ip("link set dev " + name + " address " + mac_text(_vs1_mac));
        EXPECT_TRUE(done.ok()) << done.output;
        done = _sluice->ip(std::string("addr add ") + service_ip + "/24 dev " + name);
        EXPECT_TRUE(done.ok()) << done.output;
        return tap;
    }

    // Starts the engine with `program` of `object` on the ports opened so far (port 0 passes to `pass_target`).
    void start(const ebpf::loaded_object& object, const std::string& program, std::optional<std::size_t> pass_target,
               unsigned workers = 1, xdp::executor_options options = {}) {
        const ebpf::loaded_program* chosen = object.find_program(program);
        ASSERT_NE(chosen, nullptr) << program;
        xdp::engine_config config;
        for (std::size_t i = 0; i < _ports.size(); ++i) {
            config.ports.push_back({_ports[i].get(), i == 0 ? pass_target : std::nullopt});
        }
        config.workers = workers;
        config.pool = &_pool;
        config.object = &object;
        config.make_program = [&object, chosen,
                               options](unsigned,
                                        ebpf::execution_state& state) -> expected<std::unique_ptr<xdp::batch_program>> {
            auto made = xdp::executor::create(object, *chosen, ebpf::xdp_helper_table(), state, options);
            if (!made) {
                return made.error();
            }
            return std::unique_ptr<xdp::batch_program>(std::make_unique<xdp::executor>(std::move(made.value())));
        };
        auto created = xdp::engine::create(std::move(config));
        ASSERT_TRUE(created) << created.error().message;
        _engine = std::move(created.value());
        auto started = _engine->start();
        ASSERT_TRUE(started) << started.error().message;
    }

    void send(std::string_view marker) {
        for (std::size_t i = 0; i < datagrams; ++i) {
            ASSERT_TRUE(_sender->send_to(service_ip, service_udp, payload(marker, i)));
        }
    }

    // Waits until port `index` has received `count` frames (or 5 s), then stops the engine and checks its accounting.
    xdp::port_report finish(std::uint64_t count, std::size_t index = 0) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (_engine->report().ports[index].received.packets < count && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(10ms);
        }
        std::this_thread::sleep_for(100ms); // the last batch's frames reach their targets
        _engine->request_stop();
        _engine->wait();
        const auto checked = _engine->check();
        EXPECT_TRUE(checked) << checked.error().message;
        const xdp::engine_report report = _engine->report();
        for (const xdp::port_report& port : report.ports) {
            EXPECT_TRUE(port.balanced()) << port.name << ": received " << port.received.packets << ", accounted "
                                         << port.accounted().packets;
        }
        EXPECT_EQ(report.pool_outstanding, 0U);
        return report.ports[index];
    }

    xdp::frame_pool _pool{1024};
    topology _net;
    const network_namespace* _sluice{};
    const network_namespace* _a{};
    const network_namespace* _b{};
    std::string _vs1;
    std::string _vs2;
    mac_address _vs1_mac{};
    std::unique_ptr<udp_socket> _sender;
    std::vector<std::unique_ptr<ebpf::loaded_object>> _objects; ///< destroyed after the engine (declared before it)
    std::vector<std::unique_ptr<io::port>> _ports;
    std::unique_ptr<xdp::engine> _engine;
};

TEST_F(end_to_end, xdp_tx_over_afxdp_sends_every_datagram_back_to_the_sender) {
    const auto& object = load(std::string(SLUICE_EXAMPLES_DIR) + "/reflector.o");
    open("afxdp:" + _vs1);
    start(object, "reflector", std::nullopt);
    send("e2e afxdp tx");
    EXPECT_EQ(_sender->receive_matching(bytes_of("e2e afxdp tx"), datagrams, 5s), datagrams);
    const xdp::port_report port = finish(datagrams);
    EXPECT_EQ(port.received.packets, datagrams);
    EXPECT_EQ(port.transmitted.packets, datagrams);
    EXPECT_EQ(port.tx_errors.packets, 0U);
}

// The fast path as deployed: the program compiled by the JIT, on UMEM frames.
TEST_F(end_to_end, xdp_tx_over_afxdp_with_the_jit) {
    const auto& object = load(std::string(SLUICE_EXAMPLES_DIR) + "/reflector.o");
    open("afxdp:" + _vs1);
    xdp::executor_options options;
    options.checked = false;
    options.engine = xdp::execution_engine::jit;
    start(object, "reflector", std::nullopt, 1, options);
    send("e2e jit tx");
    EXPECT_EQ(_sender->receive_matching(bytes_of("e2e jit tx"), datagrams, 5s), datagrams);
    const xdp::port_report port = finish(datagrams);
    EXPECT_EQ(port.transmitted.packets, datagrams);
}

TEST_F(end_to_end, xdp_tx_over_afpacket_sends_every_datagram_back_to_the_sender) {
    const auto& object = load(std::string(SLUICE_EXAMPLES_DIR) + "/reflector.o");
    open("afpacket:" + _vs1);
    start(object, "reflector", std::nullopt);
    send("e2e afpacket tx");
    EXPECT_EQ(_sender->receive_matching(bytes_of("e2e afpacket tx"), datagrams, 5s), datagrams);
    const xdp::port_report port = finish(datagrams);
    EXPECT_EQ(port.received.packets, datagrams) << "PACKET_IGNORE_OUTGOING: the echoes do not come back in";
    EXPECT_EQ(port.transmitted.packets, datagrams);
}

TEST_F(end_to_end, xdp_redirect_through_a_devmap_forwards_into_a_third_namespace) {
    auto& object = load(SLUICE_NETNS_FIXTURE);
    auto receiver = udp_socket::open(*_b, service_ip, service_udp);
    ASSERT_TRUE(receiver);
    open("afxdp:" + _vs1);
    io::port& target = open("afpacket:" + _vs2); // AF_XDP in, AF_PACKET out: UMEM frames copied into the TX ring
    ebpf::map* devmap = object.find_map("forward_ports");
    ASSERT_NE(devmap, nullptr);
    const std::uint32_t key = 0;
    const std::uint32_t ifindex = target.features().ifindex;
    ASSERT_EQ(ifindex, _sluice->ifindex_of(_vs2));
    ASSERT_EQ(devmap->update_elem(&key, &ifindex, 0), 0);
    start(object, "forward", std::nullopt);
    send("e2e redirect");
    EXPECT_EQ(receiver->receive_matching(bytes_of("e2e redirect"), datagrams, 5s), datagrams);
    const xdp::port_report port = finish(datagrams);
    EXPECT_EQ(port.received.packets, datagrams);
    EXPECT_EQ(port.redirected.packets, datagrams);
    EXPECT_EQ(_engine->report().ports[1].sent.packets, datagrams);
}

TEST_F(end_to_end, xdp_pass_through_a_tap_reaches_a_socket_of_the_host_stack) {
    const auto& object = load(SLUICE_NETNS_FIXTURE);
    open("afxdp:" + _vs1);
    open_tap();
    auto host = udp_socket::open(*_sluice, service_ip, service_udp);
    ASSERT_TRUE(host);
    start(object, "pass_all", 1);
    send("e2e pass");
    EXPECT_EQ(host->receive_matching(bytes_of("e2e pass"), datagrams, 5s), datagrams);
    const xdp::port_report port = finish(datagrams);
    EXPECT_EQ(port.received.packets, datagrams);
    EXPECT_EQ(port.passed.packets, datagrams);
    EXPECT_EQ(_engine->report().ports[1].sent.packets, datagrams) << "every passed frame went into the TAP";
}

TEST_F(end_to_end, xdp_drop_makes_datagrams_vanish_and_counts_them) {
    const auto& object = load(SLUICE_NETNS_FIXTURE);
    auto receiver = udp_socket::open(*_b, service_ip, service_udp);
    ASSERT_TRUE(receiver);
    open("afxdp:" + _vs1);
    start(object, "drop_all", std::nullopt);
    send("e2e drop");
    const xdp::port_report port = finish(datagrams);
    EXPECT_EQ(port.received.packets, datagrams);
    EXPECT_EQ(port.dropped.packets, datagrams);
    EXPECT_EQ(_sender->receive_matching(bytes_of("e2e drop"), 1, 200ms), 0U) << "nothing comes back";
    EXPECT_EQ(receiver->receive_matching(bytes_of("e2e drop"), 1, 200ms), 0U) << "nothing goes through";
}

// The deployment in small: an AF_XDP port and an AF_PACKET port, two workers (port i on worker i), each port
// reflecting its own sender's datagrams.
TEST_F(end_to_end, two_workers_reflect_on_an_afxdp_and_an_afpacket_port) {
    const auto& object = load(std::string(SLUICE_EXAMPLES_DIR) + "/reflector.o");
    open("afxdp:" + _vs1);
    io::port& second = open("afpacket:" + _vs2);
    // b is the second sender: from its 10.77.0.1 to 10.77.0.9, whose MAC is vs2's (topology.hpp).
    auto second_sender = udp_socket::open(*_b, service_ip, sender_udp);
    ASSERT_TRUE(second_sender);
    start(object, "reflector", std::nullopt, 2);
    send("e2e worker 0");
    for (std::size_t i = 0; i < datagrams; ++i) {
        ASSERT_TRUE(second_sender->send_to(second_service_ip, service_udp, payload("e2e worker 1", i)));
    }
    EXPECT_EQ(_sender->receive_matching(bytes_of("e2e worker 0"), datagrams, 5s), datagrams);
    EXPECT_EQ(second_sender->receive_matching(bytes_of("e2e worker 1"), datagrams, 5s), datagrams);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (_engine->report().ports[1].received.packets < datagrams && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    const xdp::port_report first = finish(datagrams);
    const xdp::engine_report report = _engine->report();
    EXPECT_EQ(first.transmitted.packets, datagrams);
    EXPECT_EQ(report.ports[1].name, second.name());
    EXPECT_EQ(report.ports[1].received.packets, datagrams);
    EXPECT_EQ(report.ports[1].transmitted.packets, datagrams);
    ASSERT_EQ(report.workers.size(), 2U);
    EXPECT_GT(report.workers[0].batches, 0U);
    EXPECT_GT(report.workers[1].batches, 0U);
}

} // namespace
} // namespace sluice::test
