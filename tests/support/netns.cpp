// Network namespaces and veth pairs for tests (tests/support/netns.hpp has the contract).
#include "netns.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>

namespace sluice::test {

namespace {

constexpr const char* prefix = "sluice-";
constexpr const char* netns_directory = "/run/netns/";

std::string quiet(const std::string& command) {
    return command + " 2>&1";
}

// Namespaces "sluice-<pid>-*" whose process is gone were left by a test that crashed: remove them, once per process.
void remove_stale_namespaces() {
    static std::once_flag once;
    std::call_once(once, [] {
        DIR* directory = ::opendir(netns_directory);
        if (directory == nullptr) {
            return;
        }
        std::vector<std::string> stale;
        while (dirent* entry = ::readdir(directory)) {
            const std::string name = entry->d_name;
            if (name.rfind(prefix, 0) != 0) {
                continue;
            }
            const long pid = std::strtol(name.c_str() + std::strlen(prefix), nullptr, 10);
            if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
                stale.push_back(name);
            }
        }
        ::closedir(directory);
        for (const std::string& name : stale) {
            (void)run_command("ip netns del " + name);
        }
    });
}

std::uint16_t checksum(std::span<const std::uint8_t> bytes) {
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i + 1 < bytes.size(); i += 2) {
        sum += static_cast<std::uint32_t>((bytes[i] << 8) | bytes[i + 1]);
    }
    if (bytes.size() % 2 != 0) {
        sum += static_cast<std::uint32_t>(bytes.back() << 8);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<std::uint16_t>(~sum);
}

} // namespace

command_result run_command(const std::string& command) {
    command_result result;
    FILE* pipe = ::popen(quiet(command).c_str(), "r");
    if (pipe == nullptr) {
        result.output = std::string("popen: ") + std::strerror(errno);
        return result;
    }
    char buffer[512];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
        result.output += buffer;
    }
    const int status = ::pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

std::string skip_reason() {
    static const std::string reason = [] {
        if (::geteuid() != 0) {
            return std::string("needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) to create network namespaces and veth "
                               "pairs");
        }
        if (!run_command("ip -V").ok()) {
            return std::string("iproute2's `ip` is not installed");
        }
        std::string error;
        auto first = network_namespace::create("probe-a", &error);
        auto second = first ? network_namespace::create("probe-b", &error) : nullptr;
        if (!first || !second) {
            return "cannot create a network namespace: " + error;
        }
        if (!add_veth(*first, unique_interface("prb", "a"), "", *second, unique_interface("prb", "b"), "", &error)) {
            return "cannot create a veth pair: " + error;
        }
        return std::string();
    }();
    return reason;
}

std::unique_ptr<network_namespace> network_namespace::create(std::string_view tag, std::string* error) {
    remove_stale_namespaces();
    std::string name = std::string(prefix) + std::to_string(::getpid()) + "-" + std::string(tag);
    (void)run_command("ip netns del " + name); // a leftover of this very pid (pids are reused)
    const command_result created = run_command("ip netns add " + name);
    if (!created.ok()) {
        if (error != nullptr) {
            *error = "ip netns add " + name + ": " + created.output;
        }
        return nullptr;
    }
    std::unique_ptr<network_namespace> space(new network_namespace(std::move(name)));
    (void)space->ip("link set lo up");
    return space;
}

network_namespace::~network_namespace() {
    (void)run_command("ip netns del " + _name);
}

command_result network_namespace::ip(const std::string& arguments) const {
    return run_command("ip -n " + _name + " " + arguments);
}

bool network_namespace::enter() const {
    const int fd = ::open((netns_directory + _name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    const bool entered = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    return entered;
}

bool network_namespace::disable_tx_checksum_offload(const std::string& interface) const {
    return run([&] {
        const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return false;
        }
        ethtool_value value{};
        value.cmd = ETHTOOL_STXCSUM;
        value.data = 0;
        ifreq request{};
        std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
        request.ifr_data = reinterpret_cast<char*>(&value);
        const bool done = ::ioctl(fd, SIOCETHTOOL, &request) == 0;
        ::close(fd);
        return done;
    });
}

bool network_namespace::sysctl(const std::string& key, const std::string& value) const {
    return run([&] {
        std::ofstream file("/proc/sys/" + key);
        file << value;
        file.flush();
        return static_cast<bool>(file);
    });
}

std::optional<mac_address> network_namespace::mac_of(const std::string& interface) const {
    return run([&]() -> std::optional<mac_address> {
        const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return std::nullopt;
        }
        ifreq request{};
        std::strncpy(request.ifr_name, interface.c_str(), IFNAMSIZ - 1);
        const int status = ::ioctl(fd, SIOCGIFHWADDR, &request);
        ::close(fd);
        if (status != 0) {
            return std::nullopt;
        }
        mac_address mac{};
        std::memcpy(mac.data(), request.ifr_hwaddr.sa_data, mac.size());
        return mac;
    });
}

std::uint32_t network_namespace::ifindex_of(const std::string& interface) const {
    return run([&] { return static_cast<std::uint32_t>(::if_nametoindex(interface.c_str())); });
}

bool add_veth(const network_namespace& first, const std::string& first_name, const std::string& first_address,
              const network_namespace& second, const std::string& second_name, const std::string& second_address,
              std::string* error, unsigned queues) {
    const auto fail = [&](const std::string& what, const command_result& result) {
        if (error != nullptr) {
            *error = what + ": " + result.output;
        }
        return false;
    };
    const std::string queue_count =
        queues > 1 ? " numrxqueues " + std::to_string(queues) + " numtxqueues " + std::to_string(queues)
                   : std::string();
    const command_result created = first.ip("link add name " + first_name + queue_count + " type veth peer name " +
                                            second_name + queue_count + " netns " + second.name());
    if (!created.ok()) {
        return fail("ip link add veth " + first_name + "/" + second_name, created);
    }
    const std::pair<const network_namespace*, const std::string*> ends[] = {{&first, &first_name},
                                                                            {&second, &second_name}};
    const std::string* addresses[] = {&first_address, &second_address};
    for (std::size_t i = 0; i < 2; ++i) {
        const auto& [space, name] = ends[i];
        (void)space->sysctl("net/ipv6/conf/" + *name + "/disable_ipv6", "1");
        if (!space->disable_tx_checksum_offload(*name)) {
            if (error != nullptr) {
                *error = "cannot turn TX checksum offload off on " + *name;
            }
            return false;
        }
        if (!addresses[i]->empty()) {
            const command_result added = space->ip("addr add " + *addresses[i] + " dev " + *name);
            if (!added.ok()) {
                return fail("ip addr add " + *addresses[i], added);
            }
        }
        const command_result up = space->ip("link set " + *name + " up");
        if (!up.ok()) {
            return fail("ip link set " + *name + " up", up);
        }
    }
    return true;
}

std::string unique_interface(std::string_view prefix_text, std::string_view suffix) {
    std::string name = std::string(prefix_text) + std::to_string(::getpid()) + std::string(suffix);
    return name.substr(0, IFNAMSIZ - 1);
}

std::vector<std::uint8_t> udp_frame(const mac_address& source_mac, const mac_address& destination_mac,
                                    std::string_view source_ip, std::string_view destination_ip,
                                    std::uint16_t source_port, std::uint16_t destination_port,
                                    std::span<const std::uint8_t> payload) {
    std::vector<std::uint8_t> frame(14 + 20 + 8 + payload.size());
    std::memcpy(frame.data(), destination_mac.data(), 6);
    std::memcpy(frame.data() + 6, source_mac.data(), 6);
    frame[12] = 0x08;
    frame[13] = 0x00;
    std::uint8_t* ip = frame.data() + 14;
    const auto ip_length = static_cast<std::uint16_t>(20 + 8 + payload.size());
    ip[0] = 0x45;
    ip[2] = static_cast<std::uint8_t>(ip_length >> 8);
    ip[3] = static_cast<std::uint8_t>(ip_length);
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ::inet_pton(AF_INET, std::string(source_ip).c_str(), ip + 12);
    ::inet_pton(AF_INET, std::string(destination_ip).c_str(), ip + 16);
    const std::uint16_t sum = checksum({ip, 20});
    ip[10] = static_cast<std::uint8_t>(sum >> 8);
    ip[11] = static_cast<std::uint8_t>(sum);
    std::uint8_t* udp = ip + 20;
    udp[0] = static_cast<std::uint8_t>(source_port >> 8);
    udp[1] = static_cast<std::uint8_t>(source_port);
    udp[2] = static_cast<std::uint8_t>(destination_port >> 8);
    udp[3] = static_cast<std::uint8_t>(destination_port);
    const auto udp_length = static_cast<std::uint16_t>(8 + payload.size());
    udp[4] = static_cast<std::uint8_t>(udp_length >> 8);
    udp[5] = static_cast<std::uint8_t>(udp_length);
    if (!payload.empty()) {
        std::memcpy(udp + 8, payload.data(), payload.size());
    }
    return frame;
}

std::span<const std::uint8_t> udp_payload(std::span<const std::uint8_t> frame, std::uint16_t* destination_port) {
    if (frame.size() < 14 + 20 + 8 || frame[12] != 0x08 || frame[13] != 0x00 || (frame[14] >> 4) != 4) {
        return {};
    }
    const std::size_t header = static_cast<std::size_t>(frame[14] & 0x0f) * 4;
    if (frame[14 + 9] != 17 || frame.size() < 14 + header + 8) {
        return {};
    }
    const std::uint8_t* udp = frame.data() + 14 + header;
    if (destination_port != nullptr) {
        *destination_port = static_cast<std::uint16_t>((udp[2] << 8) | udp[3]);
    }
    const std::size_t length = static_cast<std::size_t>((udp[4] << 8) | udp[5]);
    if (length < 8 || 14 + header + length > frame.size()) {
        return {};
    }
    return frame.subspan(14 + header + 8, length - 8);
}

std::unique_ptr<udp_socket> udp_socket::open(const network_namespace& space, std::string_view address,
                                             std::uint16_t port) {
    const int fd = space.run([&] {
        const int socket_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (socket_fd < 0) {
            return -1;
        }
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_port = htons(port);
        ::inet_pton(AF_INET, std::string(address).c_str(), &local.sin_addr);
        if (::bind(socket_fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
            ::close(socket_fd);
            return -1;
        }
        return socket_fd;
    });
    if (fd < 0) {
        return nullptr;
    }
    return std::unique_ptr<udp_socket>(new udp_socket(fd));
}

udp_socket::~udp_socket() {
    ::close(_fd);
}

bool udp_socket::send_to(std::string_view address, std::uint16_t port, std::span<const std::uint8_t> payload) const {
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = htons(port);
    ::inet_pton(AF_INET, std::string(address).c_str(), &remote.sin_addr);
    return ::sendto(_fd, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&remote),
                    sizeof remote) == static_cast<ssize_t>(payload.size());
}

std::optional<std::vector<std::uint8_t>> udp_socket::receive(std::chrono::milliseconds timeout) const {
    pollfd readable{_fd, POLLIN, 0};
    if (::poll(&readable, 1, static_cast<int>(timeout.count())) <= 0) {
        return std::nullopt;
    }
    std::vector<std::uint8_t> buffer(65536);
    const ssize_t length = ::recv(_fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (length < 0) {
        return std::nullopt;
    }
    buffer.resize(static_cast<std::size_t>(length));
    return buffer;
}

std::size_t udp_socket::receive_matching(std::span<const std::uint8_t> prefix_bytes, std::size_t count,
                                         std::chrono::milliseconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::size_t matched = 0;
    while (matched < count) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            break;
        }
        const auto datagram = receive(left);
        if (!datagram) {
            break;
        }
        if (datagram->size() >= prefix_bytes.size() &&
            std::equal(prefix_bytes.begin(), prefix_bytes.end(), datagram->begin())) {
            ++matched;
        }
    }
    return matched;
}

} // namespace sluice::test
