// open_port(): a spec string to a port (include/sluice/io/port.hpp has the contract), and what the ports share.
#include "sluice/io/port.hpp"

#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include "io/port_support.hpp"
#include "sluice/io/memory_port.hpp"

namespace sluice::io {

namespace detail {

sluice::error port_error(std::string_view spec, std::string_view reason) {
    return sluice::error{fmt::format("port '{}': {}", spec, reason)};
}

sluice::error system_error(std::string_view spec, std::string_view what, int error_number,
                           std::string_view capability) {
    if (error_number == EPERM || error_number == EACCES) {
        return port_error(spec, fmt::format("{}: {} (needs {}; run as root or grant it to the binary)", what,
                                            std::strerror(error_number), capability));
    }
    return port_error(spec, fmt::format("{}: {}", what, std::strerror(error_number)));
}

std::uint32_t next_sluice_ifindex() {
    // Kernel ifindexes are small positive ints; 1 << 24 leaves them all their room.
    static std::atomic<std::uint32_t> next{1U << 24};
    return next.fetch_add(1, std::memory_order_relaxed);
}

namespace {

struct socket_fd {
    int fd{-1};
    ~socket_fd() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
};

} // namespace

expected<interface_info> query_interface(std::string_view spec, std::string_view name) {
    if (name.empty()) {
        return port_error(spec, "no interface name");
    }
    if (name.size() >= IFNAMSIZ) {
        return port_error(spec, fmt::format("interface name '{}' is longer than {} characters", name, IFNAMSIZ - 1));
    }
    socket_fd control{::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (control.fd < 0) {
        return system_error(spec, "socket(AF_INET) for interface queries", errno);
    }
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), name.size());
    interface_info info;
    if (::ioctl(control.fd, SIOCGIFINDEX, &request) < 0) {
        if (errno == ENODEV) {
            return port_error(spec, fmt::format("no such interface '{}' (in this network namespace)", name));
        }
        return system_error(spec, fmt::format("interface '{}'", name), errno);
    }
    info.ifindex = static_cast<std::uint32_t>(request.ifr_ifindex);
    if (::ioctl(control.fd, SIOCGIFMTU, &request) == 0) {
        info.mtu = static_cast<std::uint32_t>(request.ifr_mtu);
    }
    if (::ioctl(control.fd, SIOCGIFHWADDR, &request) == 0) {
        std::memcpy(info.mac, request.ifr_hwaddr.sa_data, sizeof info.mac);
    }
    // The driver's channel count is the number of RX queues an AF_XDP socket can bind to; drivers without
    // ETHTOOL_GCHANNELS have one.
    ethtool_channels channels{};
    channels.cmd = ETHTOOL_GCHANNELS;
    request.ifr_data = reinterpret_cast<char*>(&channels);
    if (::ioctl(control.fd, SIOCETHTOOL, &request) == 0) {
        const std::uint32_t queues = channels.combined_count + channels.rx_count;
        info.rx_queues = queues == 0 ? 1 : queues;
    }
    return info;
}

bool wait_readable(int fd, int timeout_ms) {
    if (timeout_ms <= 0) {
        return false;
    }
    pollfd readable{fd, POLLIN, 0};
    const int ready = ::poll(&readable, 1, timeout_ms);
    if (ready <= 0) {
        return false;
    }
    if ((readable.revents & POLLIN) != 0) {
        return true;
    }
    int pending = 0;
    socklen_t length = sizeof pending;
    (void)::getsockopt(fd, SOL_SOCKET, SO_ERROR, &pending, &length); // fails harmlessly on a TAP's fd
    idle(timeout_ms);
    return false;
}

void idle(int timeout_ms) {
    if (timeout_ms > 0) {
        ::poll(nullptr, 0, timeout_ms);
    }
}

void release_frame(xdp::frame* item, xdp::frame_pool& fallback) {
    xdp::frame_pool* origin = item->pool();
    (origin != nullptr ? *origin : fallback).release(item);
}

} // namespace detail

namespace {

constexpr std::string_view known_kinds =
    "pcap:FILE, gen:SPEC, memory:NAME, afxdp:IFACE[:QUEUE], afpacket:IFACE, tap:NAME";

bool parse_number(std::string_view text, std::uint32_t& value) {
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), value);
    return !text.empty() && status == std::errc{} && end == text.data() + text.size();
}

// The settings after a kernel port's name, comma-separated: `copy` and `generic` (AF_XDP), `ring=N` (AF_XDP and
// AF_PACKET descriptors per ring), `poll=MS` (how long rx_batch waits).
expected<void> apply_settings(std::string_view spec, std::string_view kind, std::string_view list,
                              port_options& options) {
    while (!list.empty()) {
        const auto comma = list.find(',');
        const std::string_view setting = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        const auto equals = setting.find('=');
        const std::string_view key = setting.substr(0, equals);
        const std::string_view value =
            equals == std::string_view::npos ? std::string_view{} : setting.substr(equals + 1);
        std::uint32_t number = 0;
        if (kind == "afxdp" && setting == "copy") {
            options.force_copy = true;
        } else if (kind == "afxdp" && setting == "generic") {
            options.force_generic = true;
        } else if (kind != "tap" && key == "ring" && parse_number(value, number) && number > 0) {
            options.ring_size = number;
        } else if (key == "poll" && parse_number(value, number)) {
            options.poll_timeout_ms = number;
        } else {
            return detail::port_error(spec, fmt::format("setting '{}' is not one of {}", setting,
                                                        kind == "afxdp"      ? "copy, generic, ring=N, poll=MS"
                                                        : kind == "afpacket" ? "ring=N, poll=MS"
                                                                             : "poll=MS"));
        }
    }
    return {};
}

} // namespace

expected<std::unique_ptr<port>> open_port(std::string_view spec, xdp::frame_pool& pool, const port_options& options) {
    const auto colon = spec.find(':');
    if (colon == std::string_view::npos) {
        return detail::port_error(spec, fmt::format("no kind; expected one of {}", known_kinds));
    }
    const std::string_view kind = spec.substr(0, colon);
    const std::string_view body = spec.substr(colon + 1);
    if (kind == "pcap") {
        return detail::open_pcap_port(spec, body, pool, options);
    }
    if (kind == "gen") {
        return detail::open_generator_port(spec, body, pool, options);
    }
    if (kind == "memory") {
        return open_memory_port(spec, body, pool, options);
    }
    if (kind != "tap" && kind != "afpacket" && kind != "afxdp") {
        return detail::port_error(spec, fmt::format("unknown kind '{}'; expected one of {}", kind, known_kinds));
    }
    // Kernel ports take settings after the name: afxdp:veth0:1,generic,copy,ring=4096,poll=5.
    port_options adjusted = options;
    std::string_view rest = body;
    if (const auto comma = body.find(','); comma != std::string_view::npos) {
        rest = body.substr(0, comma);
        if (auto applied = apply_settings(spec, kind, body.substr(comma + 1), adjusted); !applied) {
            return applied.error();
        }
    }
    if (kind == "tap") {
        return detail::open_tap_port(spec, rest, pool, adjusted);
    }
    if (kind == "afpacket") {
        return detail::open_afpacket_port(spec, rest, pool, adjusted);
    }
    // afxdp:IFACE[:QUEUE]; the queue in the spec wins over options.queue.
    std::string_view interface = rest;
    std::uint32_t queue = adjusted.queue;
    if (const auto queue_colon = rest.rfind(':'); queue_colon != std::string_view::npos) {
        interface = rest.substr(0, queue_colon);
        const std::string_view text = rest.substr(queue_colon + 1);
        if (!parse_number(text, queue)) {
            return detail::port_error(spec, fmt::format("queue '{}' is not a number", text));
        }
    }
    return detail::open_afxdp_port(spec, interface, queue, pool, adjusted);
}
} // namespace sluice::io
