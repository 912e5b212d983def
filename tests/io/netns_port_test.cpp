// Real packets through the kernel-backed ports, between network namespaces the test creates and removes:
// - AF_XDP and AF_PACKET: UDP datagrams sent from a peer namespace arrive in rx_batch; frames given to tx_batch
//   arrive at the peer's UDP socket; frames received and sent back out (what XDP_TX does) reach the sender.
// - TAP: a frame written to the TAP reaches a UDP socket of the host stack (in its namespace); a datagram the host
//   sends out of the TAP arrives in rx_batch.
// Without root the tests skip, saying why. The host's own interfaces are never touched: every interface lives in a
// namespace named after this process, deleted when the test ends, pass or fail.
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <unistd.h>

#include "../support/netns.hpp"
#include "sluice/io/port.hpp"

namespace sluice::io {
namespace {

using namespace std::chrono_literals;
using test::mac_address;
using test::network_namespace;

constexpr const char* sluice_ip = "10.77.0.1";
constexpr const char* peer_ip = "10.77.0.2";
constexpr std::uint16_t sluice_udp = 5000;
constexpr std::uint16_t peer_udp = 6000;

std::vector<std::uint8_t> payload(std::string_view marker, std::size_t index) {
    std::string text = std::string(marker) + " " + std::to_string(index);
    return {text.begin(), text.end()};
}

std::span<const std::uint8_t> bytes_of(std::string_view text) {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

bool starts_with(std::span<const std::uint8_t> bytes, std::string_view prefix) {
    return bytes.size() >= prefix.size() && std::memcmp(bytes.data(), prefix.data(), prefix.size()) == 0;
}

// Two namespaces joined by a veth pair: "sluice" (where ports are opened, 10.77.0.1) and "peer" (10.77.0.2, which
// knows sluice's MAC statically: nothing answers ARP while a port holds the interface).
class veth_ports : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string reason = test::skip_reason(); !reason.empty()) {
            GTEST_SKIP() << reason;
        }
        std::string error;
        _sluice = network_namespace::create("ports-s", &error);
        ASSERT_TRUE(_sluice) << error;
        _peer = network_namespace::create("ports-p", &error);
        ASSERT_TRUE(_peer) << error;
        _sluice_if = test::unique_interface("vs");
        _peer_if = test::unique_interface("vp");
        ASSERT_TRUE(test::add_veth(*_sluice, _sluice_if, std::string(sluice_ip) + "/24", *_peer, _peer_if,
                                   std::string(peer_ip) + "/24", &error, queues()))
            << error;
        auto sluice_mac = _sluice->mac_of(_sluice_if);
        auto peer_mac = _peer->mac_of(_peer_if);
        ASSERT_TRUE(sluice_mac && peer_mac);
        _sluice_mac = *sluice_mac;
        _peer_mac = *peer_mac;
        const auto neighbor = _peer->ip(std::string("neigh replace ") + sluice_ip + " lladdr " + mac_text(_sluice_mac) +
                                        " dev " + _peer_if + " nud permanent");
        ASSERT_TRUE(neighbor.ok()) << neighbor.output;
        _socket = test::udp_socket::open(*_peer, peer_ip, peer_udp);
        ASSERT_TRUE(_socket);
    }

    virtual unsigned queues() const { return 1; }

    void TearDown() override {
        _port.reset(); // before the namespaces go: the AF_XDP port detaches its program there
        _socket.reset();
        _peer.reset();
        _sluice.reset();
    }

    static std::string mac_text(const mac_address& mac) {
        char text[18];
        std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                      mac[5]);
        return text;
    }

    void open(const std::string& kind, port_options options = {}) {
        const std::string spec = kind + ":" + _sluice_if;
        auto opened = _sluice->run([&] { return std::optional(open_port(spec, _pool, options)); });
        ASSERT_TRUE(opened && *opened) << (opened ? opened->error().message : "setns failed");
        _port = std::move(opened->value());
    }

    // The peer sends `count` datagrams; returns how many arrived in rx_batch (other traffic is released and
    // ignored). Every frame goes back to its pool.
    std::size_t send_and_receive(std::string_view marker, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) {
            EXPECT_TRUE(_socket->send_to(sluice_ip, sluice_udp, payload(marker, i)));
        }
        std::size_t received = 0;
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        std::array<xdp::frame*, 64> frames{};
        while (received < count && std::chrono::steady_clock::now() < deadline) {
            const std::size_t got = _port->rx_batch(frames);
            for (std::size_t i = 0; i < got; ++i) {
                std::uint16_t port = 0;
                if (starts_with(test::udp_payload(frames[i]->packet(), &port), marker) && port == sluice_udp) {
                    EXPECT_EQ(frames[i]->context().ingress_ifindex, _port->features().ifindex);
                    EXPECT_GT(frames[i]->info().timestamp_ns, 0U);
                    ++received;
                }
                frames[i]->pool()->release(frames[i]);
            }
        }
        return received;
    }

    // tx_batch of `count` frames built in the caller's pool, addressed to the peer's socket.
    void send_from_pool(std::string_view marker, std::size_t count) {
        std::vector<xdp::frame*> frames;
        for (std::size_t i = 0; i < count; ++i) {
            xdp::frame* item = _pool.acquire();
            ASSERT_NE(item, nullptr);
            const auto bytes =
                test::udp_frame(_sluice_mac, _peer_mac, sluice_ip, peer_ip, sluice_udp, peer_udp, payload(marker, i));
            ASSERT_TRUE(item->assign(bytes));
            frames.push_back(item);
        }
        std::size_t sent = 0;
        const auto deadline = std::chrono::steady_clock::now() + 2s;
        while (sent < frames.size() && std::chrono::steady_clock::now() < deadline) {
            sent += _port->tx_batch(std::span<xdp::frame* const>(frames).subspan(sent));
            _port->flush();
        }
        EXPECT_EQ(sent, count);
        for (std::size_t i = sent; i < frames.size(); ++i) {
            _pool.release(frames[i]);
        }
    }

    // What XDP_TX does, by hand: every datagram from the peer is turned around (MACs, addresses, ports swapped) and
    // sent back out of the port it came in on, in the frame it came in. Returns how many were sent back.
    std::size_t reflect(std::string_view marker, std::size_t count) {
        for (std::size_t i = 0; i < count; ++i) {
            EXPECT_TRUE(_socket->send_to(sluice_ip, sluice_udp, payload(marker, i)));
        }
        std::size_t reflected = 0;
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        std::array<xdp::frame*, 64> frames{};
        while (reflected < count && std::chrono::steady_clock::now() < deadline) {
            const std::size_t got = _port->rx_batch(frames);
            std::vector<xdp::frame*> back;
            for (std::size_t i = 0; i < got; ++i) {
                if (!starts_with(test::udp_payload(frames[i]->packet()), marker)) {
                    frames[i]->pool()->release(frames[i]);
                    continue;
                }
                std::uint8_t* data = frames[i]->packet().data();
                std::uint8_t swap[6];
                std::memcpy(swap, data, 6);
                std::memcpy(data, data + 6, 6);
                std::memcpy(data + 6, swap, 6);
                std::uint8_t address[4];
                std::memcpy(address, data + 26, 4);
                std::memcpy(data + 26, data + 30, 4);
                std::memcpy(data + 30, address, 4);
                std::uint8_t ports[2];
                std::memcpy(ports, data + 34, 2);
                std::memcpy(data + 34, data + 36, 2);
                std::memcpy(data + 36, ports, 2);
                back.push_back(frames[i]);
            }
            const std::size_t accepted = _port->tx_batch(back);
            for (std::size_t i = accepted; i < back.size(); ++i) {
                back[i]->pool()->release(back[i]);
            }
            _port->flush();
            reflected += accepted;
        }
        return reflected;
    }

    xdp::frame_pool _pool{256};
    std::unique_ptr<network_namespace> _sluice;
    std::unique_ptr<network_namespace> _peer;
    std::string _sluice_if;
    std::string _peer_if;
    mac_address _sluice_mac{};
    mac_address _peer_mac{};
    std::unique_ptr<test::udp_socket> _socket;
    std::unique_ptr<port> _port;
};

TEST_F(veth_ports, afxdp_features_on_veth) {
    open("afxdp");
    const port_features& features = _port->features();
    EXPECT_EQ(features.kind, "afxdp");
    EXPECT_EQ(features.interface, _sluice_if);
    EXPECT_EQ(features.ifindex, _sluice->ifindex_of(_sluice_if));
    EXPECT_TRUE(features.rx);
    EXPECT_TRUE(features.tx);
    EXPECT_TRUE(features.redirect_target);
    EXPECT_FALSE(features.zero_copy) << "veth has no zero-copy AF_XDP";
    EXPECT_NE(features.mode.find("copy"), std::string::npos) << features.mode;
    EXPECT_EQ(features.mtu, 1500U);
}

TEST_F(veth_ports, afxdp_receives_from_the_peer) {
    open("afxdp");
    EXPECT_EQ(send_and_receive("sluice afxdp rx", 40), 40U);
    EXPECT_GE(_port->stats().rx_packets, 40U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

TEST_F(veth_ports, afxdp_sends_frames_of_another_pool_to_the_peer) {
    open("afxdp");
    send_from_pool("sluice afxdp tx", 40);
    EXPECT_EQ(_socket->receive_matching(bytes_of("sluice afxdp tx"), 40, 3s), 40U);
    EXPECT_EQ(_pool.outstanding(), 0U) << "copied frames go back to their pool at once";
    EXPECT_EQ(_port->stats().tx_packets, 40U);
}

TEST_F(veth_ports, afxdp_takes_more_than_a_batch_in_one_call) {
    open("afxdp");
    std::vector<xdp::frame*> frames;
    for (std::size_t i = 0; i < 200; ++i) {
        xdp::frame* item = _pool.acquire();
        ASSERT_NE(item, nullptr);
        ASSERT_TRUE(item->assign(test::udp_frame(_sluice_mac, _peer_mac, sluice_ip, peer_ip, sluice_udp, peer_udp,
                                                 payload("sluice afxdp many", i))));
        frames.push_back(item);
    }
    EXPECT_EQ(_port->tx_batch(frames), 200U);
    _port->flush();
    EXPECT_EQ(_socket->receive_matching(bytes_of("sluice afxdp many"), 200, 3s), 200U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

TEST_F(veth_ports, afxdp_sends_received_frames_back_without_a_copy) {
    open("afxdp");
    EXPECT_EQ(reflect("sluice afxdp echo", 40), 40U);
    const std::string marker = "sluice afxdp echo";
    EXPECT_EQ(_socket->receive_matching(bytes_of(marker), 40, 3s), 40U);
    EXPECT_EQ(_pool.outstanding(), 0U) << "UMEM frames never come from the caller's pool";
}

// Many times more packets than the UMEM has frames, received and sent back: frames return from the completion ring and
// from the caller to the fill ring, and none is lost on the way.
TEST_F(veth_ports, afxdp_recycles_umem_frames_through_rx_and_tx) {
    port_options options;
    options.ring_size = 64; // 128 UMEM frames
    open("afxdp", options);
    ASSERT_NE(_port->own_pool(), nullptr);
    EXPECT_EQ(_port->own_pool()->size(), 128U);
    for (int round = 0; round < 20; ++round) {
        const std::string marker = "sluice recycle " + std::to_string(round);
        ASSERT_EQ(reflect(marker, 50), 50U) << "round " << round;
        ASSERT_EQ(_socket->receive_matching(bytes_of(marker), 50, 3s), 50U) << "round " << round;
    }
    _port->flush();
    // What is not free is in the kernel's fill ring, waiting for packets: at most the ring's size.
    EXPECT_LE(_port->own_pool()->outstanding(), 64U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

TEST_F(veth_ports, afxdp_settings_in_the_spec) {
    const std::string spec = "afxdp:" + _sluice_if + ":0,generic,copy,ring=64,poll=1";
    auto opened = _sluice->run([&] { return std::optional(open_port(spec, _pool)); });
    ASSERT_TRUE(opened && *opened) << (opened ? opened->error().message : "setns failed");
    _port = std::move(opened->value());
    EXPECT_EQ(_port->name(), spec);
    EXPECT_EQ(_port->features().interface, _sluice_if);
    EXPECT_NE(_port->features().mode.find("generic (SKB) XDP"), std::string::npos) << _port->features().mode;
    EXPECT_EQ(_port->own_pool()->size(), 128U) << "ring=64: a UMEM of two rings' worth";
    EXPECT_EQ(send_and_receive("sluice afxdp settings", 20), 20U);
}

// What the kernel drops because nobody reads (RX ring full) is reported as missed, not lost silently.
TEST_F(veth_ports, afxdp_counts_what_the_kernel_dropped_as_missed) {
    port_options options;
    options.ring_size = 64;
    open("afxdp", options);
    for (std::size_t i = 0; i < 400; ++i) {
        ASSERT_TRUE(_socket->send_to(sluice_ip, sluice_udp, payload("sluice missed", i)));
    }
    std::this_thread::sleep_for(100ms);
    const port_stats stats = _port->stats();
    // At most 128 fit (64 in the RX ring, 64 fill buffers); veth itself may drop a few of a burst before XDP sees them.
    EXPECT_GE(stats.rx_missed, 200U) << "a 64-slot RX ring and 64 fill buffers hold at most 128";
    EXPECT_LE(stats.rx_missed, 400U);
    EXPECT_EQ(stats.rx_packets, 0U);
}

// An interface that already runs someone's XDP program keeps it: the port refuses, saying why.
TEST_F(veth_ports, afxdp_leaves_another_program_in_place) {
    const bpf_insn pass[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_PASS},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    const int program = bpf_prog_load(BPF_PROG_TYPE_XDP, "someone_else", "GPL", pass, std::size(pass), nullptr);
    ASSERT_GE(program, 0) << std::strerror(errno);
    const int ifindex = static_cast<int>(_sluice->ifindex_of(_sluice_if));
    ASSERT_EQ(_sluice->run([&] { return bpf_xdp_attach(ifindex, program, XDP_FLAGS_DRV_MODE, nullptr); }), 0);
    std::uint32_t before = 0;
    ASSERT_EQ(_sluice->run([&] { return bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &before); }), 0);
    const std::string spec = "afxdp:" + _sluice_if;
    auto opened = _sluice->run([&] { return std::optional(open_port(spec, _pool)); });
    ASSERT_TRUE(opened);
    ASSERT_FALSE(*opened);
    EXPECT_NE(opened->error().message.find("busy"), std::string::npos) << opened->error().message;
    std::uint32_t after = 0;
    ASSERT_EQ(_sluice->run([&] { return bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &after); }), 0);
    EXPECT_EQ(after, before) << "the program that was there is still attached";
    ::close(program);
}

TEST_F(veth_ports, afxdp_in_generic_mode) {
    port_options options;
    options.force_generic = true;
    open("afxdp", options);
    EXPECT_NE(_port->features().mode.find("generic"), std::string::npos) << _port->features().mode;
    EXPECT_EQ(send_and_receive("sluice afxdp generic", 20), 20U);
}

TEST_F(veth_ports, afxdp_a_second_socket_on_the_same_queue_is_an_error) {
    open("afxdp");
    const std::string spec = "afxdp:" + _sluice_if + ":0";
    auto second = _sluice->run([&] { return std::optional(open_port(spec, _pool)); });
    ASSERT_TRUE(second);
    ASSERT_FALSE(*second);
    EXPECT_EQ(second->error().message.rfind("port '" + spec + "': ", 0), 0U) << second->error().message;
    EXPECT_NE(second->error().message.find("busy"), std::string::npos) << second->error().message;
    EXPECT_EQ(send_and_receive("sluice afxdp still", 10), 10U) << "the first socket keeps working";
}

TEST_F(veth_ports, afxdp_can_be_opened_again_once_closed) {
    open("afxdp");
    EXPECT_EQ(send_and_receive("sluice afxdp first", 10), 10U);
    _port.reset();
    open("afxdp");
    EXPECT_EQ(send_and_receive("sluice afxdp second", 10), 10U);
    _port.reset();
    open("afxdp");
    _port.reset();
    const auto link = _sluice->ip("link show dev " + _sluice_if);
    EXPECT_EQ(link.output.find("xdp"), std::string::npos) << "no program left behind: " << link.output;
}

TEST_F(veth_ports, afpacket_counts_what_the_kernel_dropped_as_missed) {
    port_options options;
    options.ring_size = 1; // the smallest ring: 4 blocks of 256 KiB
    open("afpacket", options);
    const std::vector<std::uint8_t> large(1400, 0x42);
    for (std::size_t i = 0; i < 2000; ++i) {
        ASSERT_TRUE(_socket->send_to(sluice_ip, sluice_udp, large));
    }
    std::this_thread::sleep_for(100ms);
    const std::uint64_t missed = _port->stats().rx_missed;
    EXPECT_GT(missed, 0U) << "1 MiB of ring cannot hold 2000 packets of 1442 bytes";
    EXPECT_EQ(_port->stats().rx_missed, missed) << "read twice, counted once";
}

TEST_F(veth_ports, afpacket_features) {
    open("afpacket");
    const port_features& features = _port->features();
    EXPECT_EQ(features.kind, "afpacket");
    EXPECT_EQ(features.ifindex, _sluice->ifindex_of(_sluice_if));
    EXPECT_TRUE(features.rx);
    EXPECT_TRUE(features.tx);
    EXPECT_FALSE(features.zero_copy);
    EXPECT_NE(features.mode.find("TPACKET_V3"), std::string::npos) << features.mode;
}

TEST_F(veth_ports, afpacket_receives_from_the_peer) {
    open("afpacket");
    EXPECT_EQ(send_and_receive("sluice afpacket rx", 40), 40U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

TEST_F(veth_ports, afpacket_sends_to_the_peer) {
    open("afpacket");
    send_from_pool("sluice afpacket tx", 40);
    const std::string marker = "sluice afpacket tx";
    EXPECT_EQ(_socket->receive_matching(bytes_of(marker), 40, 3s), 40U);
    EXPECT_EQ(_pool.outstanding(), 0U);
    EXPECT_EQ(_port->stats().tx_packets, 40U);
    EXPECT_EQ(_port->stats().tx_errors, 0U);
}

TEST_F(veth_ports, afxdp_counts_a_frame_larger_than_the_mtu_as_a_tx_error) {
    open("afxdp");
    std::vector<xdp::frame*> frames;
    for (std::size_t i = 0; i < 3; ++i) {
        xdp::frame* item = _pool.acquire();
        ASSERT_NE(item, nullptr);
        const std::vector<std::uint8_t> body =
            i == 1 ? std::vector<std::uint8_t>(2000, 0x33) : payload("sluice mtu", i);
        ASSERT_TRUE(
            item->assign(test::udp_frame(_sluice_mac, _peer_mac, sluice_ip, peer_ip, sluice_udp, peer_udp, body)));
        frames.push_back(item);
    }
    EXPECT_EQ(_port->tx_batch(frames), 3U) << "the large frame in the middle does not stop the others";
    _port->flush();
    EXPECT_EQ(_port->stats().tx_errors, 1U);
    EXPECT_EQ(_port->stats().tx_packets, 2U);
    EXPECT_EQ(_socket->receive_matching(bytes_of("sluice mtu"), 2, 3s), 2U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

TEST_F(veth_ports, afpacket_counts_a_frame_larger_than_the_mtu_as_a_tx_error) {
    open("afpacket");
    xdp::frame* large = _pool.acquire();
    ASSERT_NE(large, nullptr);
    ASSERT_TRUE(large->assign(test::udp_frame(_sluice_mac, _peer_mac, sluice_ip, peer_ip, sluice_udp, peer_udp,
                                              std::vector<std::uint8_t>(2000, 0x33))));
    EXPECT_EQ(_port->tx_batch(std::span<xdp::frame* const>(&large, 1)), 1U) << "accepted, then counted";
    EXPECT_EQ(_port->stats().tx_errors, 1U);
    send_from_pool("sluice afpacket after", 10);
    EXPECT_EQ(_socket->receive_matching(bytes_of("sluice afpacket after"), 10, 3s), 10U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

TEST_F(veth_ports, afpacket_sends_received_frames_back_and_does_not_see_its_own_tx) {
    open("afpacket");
    EXPECT_EQ(reflect("sluice afpacket echo", 40), 40U);
    const std::string marker = "sluice afpacket echo";
    EXPECT_EQ(_socket->receive_matching(bytes_of(marker), 40, 3s), 40U);
    // PACKET_IGNORE_OUTGOING: the echoes went out of this interface and must not come back in.
    std::array<xdp::frame*, 64> frames{};
    std::size_t echoes_seen = 0;
    for (int round = 0; round < 5; ++round) {
        const std::size_t got = _port->rx_batch(frames);
        for (std::size_t i = 0; i < got; ++i) {
            std::uint16_t port = 0;
            if (starts_with(test::udp_payload(frames[i]->packet(), &port), marker) && port == peer_udp) {
                ++echoes_seen;
            }
            _pool.release(frames[i]);
        }
    }
    EXPECT_EQ(echoes_seen, 0U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

// tx_batch accepts a prefix when its ring is full; the rest stay the caller's; everything accepted arrives once
// flushed.
void expect_tx_prefix(port& sender, xdp::frame_pool& pool, test::udp_socket& receiver, const test::mac_address& from,
                      const test::mac_address& to, std::size_t ring) {
    const std::string marker = "sluice full ring";
    std::vector<xdp::frame*> frames;
    for (std::size_t i = 0; i < 3 * ring; ++i) {
        xdp::frame* item = pool.acquire();
        ASSERT_NE(item, nullptr);
        ASSERT_TRUE(
            item->assign(test::udp_frame(from, to, sluice_ip, peer_ip, sluice_udp, peer_udp, payload(marker, i))));
        frames.push_back(item);
    }
    // No flush between the calls: the ring fills up.
    std::size_t accepted = 0;
    for (int round = 0; round < 3; ++round) {
        accepted += sender.tx_batch(std::span<xdp::frame* const>(frames).subspan(accepted));
    }
    EXPECT_GE(accepted, ring / 2);
    EXPECT_LE(accepted, ring) << "no more than the ring holds before a flush";
    pool.release_batch(std::span<xdp::frame* const>(frames).subspan(accepted));
    sender.flush();
    EXPECT_EQ(receiver.receive_matching(bytes_of(marker), accepted, 3s), accepted);
    EXPECT_EQ(pool.outstanding(), 0U);
    EXPECT_EQ(sender.stats().tx_packets, accepted);
}

TEST_F(veth_ports, afxdp_tx_batch_takes_a_prefix_when_the_ring_is_full) {
    port_options options;
    options.ring_size = 64;
    open("afxdp", options);
    expect_tx_prefix(*_port, _pool, *_socket, _sluice_mac, _peer_mac, 64);
}

TEST_F(veth_ports, afpacket_tx_batch_takes_a_prefix_when_the_ring_is_full) {
    port_options options;
    options.ring_size = 16;
    open("afpacket", options);
    expect_tx_prefix(*_port, _pool, *_socket, _sluice_mac, _peer_mac, 16);
}

// A veth with two queues: AF_XDP sockets queue by queue, both at once on one interface.
class two_queue_veth_ports : public veth_ports {
protected:
    unsigned queues() const override { return 2; }
};

TEST_F(two_queue_veth_ports, afxdp_one_socket_per_queue) {
    port_options first;
    first.queue = 0;
    open("afxdp", first);
    std::unique_ptr<port> queue0 = std::move(_port);
    const std::string spec = "afxdp:" + _sluice_if + ":1";
    auto second = _sluice->run([&] { return std::optional(open_port(spec, _pool)); });
    ASSERT_TRUE(second && *second) << (second ? second->error().message : "setns failed");
    std::unique_ptr<port> queue1 = std::move(second->value());
    EXPECT_EQ(queue0->features().queues, 2U);
    EXPECT_NE(queue1->features().mode.find("queue 1"), std::string::npos) << queue1->features().mode;

    // Datagrams from many source ports spread over the peer's two TX queues, which veth maps to our two RX queues.
    std::vector<std::unique_ptr<test::udp_socket>> senders;
    for (std::uint16_t i = 0; i < 16; ++i) {
        senders.push_back(test::udp_socket::open(*_peer, peer_ip, static_cast<std::uint16_t>(7000 + i)));
        ASSERT_TRUE(senders.back());
        for (std::size_t j = 0; j < 4; ++j) {
            ASSERT_TRUE(senders.back()->send_to(sluice_ip, sluice_udp, payload("sluice queues", j)));
        }
    }
    std::array<std::size_t, 2> received{};
    std::array<xdp::frame*, 64> frames{};
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (received[0] + received[1] < 64 && std::chrono::steady_clock::now() < deadline) {
        for (std::uint32_t queue = 0; queue < 2; ++queue) {
            port& reader = queue == 0 ? *queue0 : *queue1;
            const std::size_t got = reader.rx_batch(frames);
            for (std::size_t i = 0; i < got; ++i) {
                if (starts_with(test::udp_payload(frames[i]->packet()), "sluice queues")) {
                    EXPECT_EQ(frames[i]->context().rx_queue_index, queue);
                    ++received[queue];
                }
                frames[i]->pool()->release(frames[i]);
            }
        }
    }
    EXPECT_EQ(received[0] + received[1], 64U) << "queue 0: " << received[0] << ", queue 1: " << received[1];
    queue0.reset();
    queue1.reset();
}

// When the interface goes away under a port (the veth is deleted), the port delivers nothing, refuses or counts what
// it is given, and waits its poll timeout instead of spinning: the engine keeps running and stays responsive.
void expect_a_quiet_dead_port(port& dead, xdp::frame_pool& pool) {
    std::array<xdp::frame*, 64> frames{};
    const auto start = std::chrono::steady_clock::now();
    for (int round = 0; round < 10; ++round) {
        EXPECT_EQ(dead.rx_batch(frames), 0U);
    }
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_GE(elapsed, 50ms) << "10 calls with a 10 ms poll timeout must not return at once (a spinning worker)";
    xdp::frame* item = pool.acquire();
    ASSERT_NE(item, nullptr);
    ASSERT_TRUE(item->resize(60));
    const std::size_t accepted = dead.tx_batch(std::span<xdp::frame* const>(&item, 1));
    dead.flush();
    if (accepted == 0) {
        pool.release(item);
    }
    EXPECT_EQ(pool.outstanding(), 0U);
}

TEST_F(veth_ports, afxdp_survives_its_interface_going_away) {
    open("afxdp");
    ASSERT_TRUE(_sluice->ip("link del " + _sluice_if).ok());
    expect_a_quiet_dead_port(*_port, _pool);
}

TEST_F(veth_ports, afpacket_survives_its_interface_going_away) {
    open("afpacket");
    ASSERT_TRUE(_sluice->ip("link del " + _sluice_if).ok());
    expect_a_quiet_dead_port(*_port, _pool);
}

// The TAP lives in a namespace of its own; its host side is that namespace's stack (10.78.0.1 on the TAP).
class tap_ports : public ::testing::Test {
protected:
    void SetUp() override {
        if (const std::string reason = test::skip_reason(); !reason.empty()) {
            GTEST_SKIP() << reason;
        }
        std::string error;
        _host = network_namespace::create("tap", &error);
        ASSERT_TRUE(_host) << error;
        _tap = test::unique_interface("st");
        auto opened = _host->run([&] { return std::optional(open_port("tap:" + _tap, _pool)); });
        ASSERT_TRUE(opened && *opened) << (opened ? opened->error().message : "setns failed");
        _port = std::move(opened->value());
        ASSERT_TRUE(_host->sysctl("net/ipv6/conf/" + _tap + "/disable_ipv6", "1"));
        const auto address = _host->ip("addr add 10.78.0.1/24 dev " + _tap);
        ASSERT_TRUE(address.ok()) << address.output;
    }
    void TearDown() override {
        _port.reset();
        _host.reset();
    }

    xdp::frame_pool _pool{64};
    std::unique_ptr<network_namespace> _host;
    std::string _tap;
    std::unique_ptr<port> _port;
};

TEST_F(tap_ports, survives_its_device_going_away) {
    ASSERT_TRUE(_host->ip("link del " + _tap).ok());
    expect_a_quiet_dead_port(*_port, _pool);
}

// A packet larger than a frame (a 9000-byte MTU, frames of 3520 bytes) is counted as an RX error, never cut.
TEST_F(tap_ports, a_packet_larger_than_a_frame_is_an_rx_error) {
    ASSERT_TRUE(_host->ip("link set dev " + _tap + " mtu 9000").ok());
    ASSERT_TRUE(_host->ip("neigh replace 10.78.0.2 lladdr 02:00:00:00:00:01 dev " + _tap + " nud permanent").ok());
    auto socket = test::udp_socket::open(*_host, "10.78.0.1", 7003);
    ASSERT_TRUE(socket);
    ASSERT_TRUE(socket->send_to("10.78.0.2", 7004, std::vector<std::uint8_t>(5000, 0x17)));
    ASSERT_TRUE(socket->send_to("10.78.0.2", 7004, payload("sluice tap small", 0)));
    std::array<xdp::frame*, 64> frames{};
    std::size_t small = 0;
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (small == 0 && std::chrono::steady_clock::now() < deadline) {
        const std::size_t got = _port->rx_batch(frames);
        for (std::size_t i = 0; i < got; ++i) {
            EXPECT_LE(frames[i]->length(), frames[i]->capacity());
            if (starts_with(test::udp_payload(frames[i]->packet()), "sluice tap small")) {
                ++small;
            }
            _pool.release(frames[i]);
        }
    }
    EXPECT_EQ(small, 1U) << "the packet after the large one still arrives";
    EXPECT_EQ(_port->stats().rx_errors, 1U);
}

TEST_F(tap_ports, features) {
    const port_features& features = _port->features();
    EXPECT_EQ(features.kind, "tap");
    EXPECT_EQ(features.interface, _tap);
    EXPECT_EQ(features.ifindex, _host->ifindex_of(_tap));
    EXPECT_TRUE(features.rx && features.tx && features.pass_target && features.redirect_target);
    EXPECT_EQ(features.mtu, 1500U);
}

TEST_F(tap_ports, a_written_frame_reaches_a_host_socket) {
    auto socket = test::udp_socket::open(*_host, "10.78.0.1", 7000);
    ASSERT_TRUE(socket);
    auto mac = _host->mac_of(_tap);
    ASSERT_TRUE(mac);
    const std::string marker = "sluice tap tx";
    std::vector<xdp::frame*> frames;
    for (std::size_t i = 0; i < 10; ++i) {
        xdp::frame* item = _pool.acquire();
        ASSERT_NE(item, nullptr);
        ASSERT_TRUE(item->assign(
            test::udp_frame({0x02, 0, 0, 0, 0, 0x01}, *mac, "10.78.0.2", "10.78.0.1", 9, 7000, payload(marker, i))));
        frames.push_back(item);
    }
    EXPECT_EQ(_port->tx_batch(frames), 10U);
    EXPECT_EQ(_pool.outstanding(), 0U);
    EXPECT_EQ(socket->receive_matching(bytes_of(marker), 10, 3s), 10U);
    EXPECT_EQ(_port->stats().tx_packets, 10U);
}

TEST_F(tap_ports, what_the_host_sends_arrives_in_rx_batch) {
    const auto neighbor = _host->ip("neigh replace 10.78.0.2 lladdr 02:00:00:00:00:01 dev " + _tap + " nud permanent");
    ASSERT_TRUE(neighbor.ok()) << neighbor.output;
    auto socket = test::udp_socket::open(*_host, "10.78.0.1", 7001);
    ASSERT_TRUE(socket);
    const std::string marker = "sluice tap rx";
    for (std::size_t i = 0; i < 10; ++i) {
        ASSERT_TRUE(socket->send_to("10.78.0.2", 7002, payload(marker, i)));
    }
    std::size_t received = 0;
    std::array<xdp::frame*, 64> frames{};
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    while (received < 10 && std::chrono::steady_clock::now() < deadline) {
        const std::size_t got = _port->rx_batch(frames);
        for (std::size_t i = 0; i < got; ++i) {
            std::uint16_t port = 0;
            if (starts_with(test::udp_payload(frames[i]->packet(), &port), marker) && port == 7002) {
                EXPECT_EQ(frames[i]->context().ingress_ifindex, _port->features().ifindex);
                ++received;
            }
            _pool.release(frames[i]);
        }
    }
    EXPECT_EQ(received, 10U);
    EXPECT_EQ(_pool.outstanding(), 0U);
}

} // namespace
} // namespace sluice::io
