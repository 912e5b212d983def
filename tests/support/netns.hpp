// Network namespaces and veth pairs for tests that move real packets, created by the test and removed by it.
//
// Contract:
// - network_namespace::create(tag) makes a namespace named "sluice-<pid>-<tag>"; its destructor deletes it (and with
//   it every interface inside), so a failing test leaves nothing behind. Namespaces of test processes that died
//   without cleaning up (their pid is gone) are removed the next time one is created.
// - run(fn) calls fn on a new thread that has joined the namespace and returns fn's result; sockets and ports opened
//   there stay in that namespace and may be used from any thread afterwards.
// - Nothing here touches the host's own namespace or interfaces: every `ip` command names its namespace (-n).
// - skip_reason() is empty when this process can make namespaces and veth pairs (root, iproute2, a kernel with veth);
//   otherwise it says what is missing, for GTEST_SKIP().
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

namespace sluice::test {

struct command_result {
    int status{-1};
    std::string output; ///< stdout and stderr together
    bool ok() const { return status == 0; }
};

/// Runs a shell command, capturing its output.
command_result run_command(const std::string& command);

/// Why namespace tests cannot run here, or empty.
std::string skip_reason();

using mac_address = std::array<std::uint8_t, 6>;

class network_namespace {
public:
    /// Creates "sluice-<pid>-<tag>" with its loopback up. Nullptr and `error` filled on failure.
    static std::unique_ptr<network_namespace> create(std::string_view tag, std::string* error = nullptr);
    network_namespace(const network_namespace&) = delete;
    network_namespace& operator=(const network_namespace&) = delete;
    ~network_namespace();

    const std::string& name() const { return _name; }

    /// Runs `ip -n NAME ARGS`; the result says what failed.
    command_result ip(const std::string& arguments) const;

    /// Calls fn inside the namespace (on a thread of its own) and returns what it returns.
    template <typename Function> auto run(Function&& function) const -> std::invoke_result_t<Function&> {
        using result = std::invoke_result_t<Function&>;
        if constexpr (std::is_void_v<result>) {
            std::thread worker([&] {
                if (enter()) {
                    function();
                }
            });
            worker.join();
        } else {
            std::optional<result> value;
            std::thread worker([&] {
                if (enter()) {
                    value.emplace(function());
                }
            });
            worker.join();
            if (!value) {
                return result{};
            }
            return std::move(*value);
        }
    }

    /// Writes a sysctl inside the namespace ("net/ipv6/conf/all/disable_ipv6", "1").
    bool sysctl(const std::string& key, const std::string& value) const;
    /// Makes the kernel fill in TCP/UDP checksums before a packet leaves the interface. A veth passes packets on with
    /// the checksum still to be done (CHECKSUM_PARTIAL): a program that captures one and sends it back (XDP_TX, a
    /// reflector) would send a wrong checksum, which a real NIC would have completed. Turned off by add_veth().
    bool disable_tx_checksum_offload(const std::string& interface) const;
    /// An interface's MAC address inside the namespace.
    std::optional<mac_address> mac_of(const std::string& interface) const;
    /// An interface's ifindex inside the namespace (0 if missing).
    std::uint32_t ifindex_of(const std::string& interface) const;

private:
    explicit network_namespace(std::string name) : _name(std::move(name)) {}
    /// setns() of the calling thread into this namespace.
    bool enter() const;

    std::string _name;
};

/// A veth pair with one end in each namespace, both up, IPv6 off (no router solicitations in the tests' traffic), TX
/// checksum offload off (complete checksums on the wire, as from a NIC),
/// with optional IPv4 addresses ("10.77.0.1/24") and `queues` RX and TX queues on each end. Names must be unique
/// (include the pid) and at most 15 characters.
bool add_veth(const network_namespace& first, const std::string& first_name, const std::string& first_address,
              const network_namespace& second, const std::string& second_name, const std::string& second_address,
              std::string* error = nullptr, unsigned queues = 1);

/// An interface name unique to this process: PREFIX + pid + SUFFIX (at most 15 characters).
std::string unique_interface(std::string_view prefix, std::string_view suffix = "");

/// An Ethernet + IPv4 + UDP frame with valid IPv4 checksum (UDP checksum 0, allowed over IPv4).
std::vector<std::uint8_t> udp_frame(const mac_address& source_mac, const mac_address& destination_mac,
                                    std::string_view source_ip, std::string_view destination_ip,
                                    std::uint16_t source_port, std::uint16_t destination_port,
                                    std::span<const std::uint8_t> payload);

/// The UDP payload of an Ethernet/IPv4/UDP frame, or empty when it is not one.
std::span<const std::uint8_t> udp_payload(std::span<const std::uint8_t> frame,
                                          std::uint16_t* destination_port = nullptr);

/// A UDP socket opened inside a namespace and bound to ADDRESS:PORT there.
class udp_socket {
public:
    static std::unique_ptr<udp_socket> open(const network_namespace& space, std::string_view address,
                                            std::uint16_t port);
    udp_socket(const udp_socket&) = delete;
    udp_socket& operator=(const udp_socket&) = delete;
    ~udp_socket();

    bool send_to(std::string_view address, std::uint16_t port, std::span<const std::uint8_t> payload) const;
    /// Waits up to `timeout` for one datagram.
    std::optional<std::vector<std::uint8_t>> receive(std::chrono::milliseconds timeout) const;
    /// Datagrams whose payload starts with `prefix`, collected until `count` arrived or `timeout` passed.
    std::size_t receive_matching(std::span<const std::uint8_t> prefix, std::size_t count,
                                 std::chrono::milliseconds timeout) const;

private:
    explicit udp_socket(int fd) : _fd(fd) {}
    int _fd;
};

} // namespace sluice::test
