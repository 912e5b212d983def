// `tap:NAME`: a TAP device (/dev/net/tun, IFF_TAP | IFF_NO_PI) as a port.
//
// Seen from sluice, the TAP is a wire whose other end is the host's network stack: rx_batch() reads the Ethernet
// frames the host sends out of the TAP, tx_batch() writes frames that the host receives as if from a NIC. That makes
// it the target of XDP_PASS (`--pass tap:NAME`): a passed frame goes up the host stack, as it would in the kernel.
//
// The device is created if missing (a persistent TAP of that name is attached to instead) and brought up; it goes
// away with the port unless it was persistent. Creating it needs CAP_NET_ADMIN. Every frame is copied once each way
// (read()/write() on the tun fd): no ring, one system call per packet, so the TAP is for the host path and tests,
// not for line rate.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "io/port_support.hpp"

namespace sluice::io {

namespace {

constexpr std::uint32_t ethernet_header_length = 14;

std::uint64_t now_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

class tap_port final : public port {
public:
    tap_port(std::string_view spec, int fd, const detail::interface_info& info, std::string name, xdp::frame_pool& pool,
             const port_options& options)
        : port(std::string(spec)), _fd(fd), _pool(pool), _poll_timeout_ms(static_cast<int>(options.poll_timeout_ms)) {
        _features.kind = "tap";
        _features.interface = std::move(name);
        _features.ifindex = info.ifindex;
        _features.rx = true;
        _features.tx = true;
        _features.redirect_target = true;
        _features.pass_target = true;
        _features.mtu = info.mtu;
        _features.mode = "copy (read/write on /dev/net/tun, one system call per packet)";
    }

    ~tap_port() override { ::close(_fd); }

    const port_features& features() const override { return _features; }

    std::size_t rx_batch(std::span<xdp::frame*> out) override {
        const std::size_t wanted = std::min(out.size(), max_batch);
        std::size_t filled = 0;
        bool waited = false;
        while (filled < wanted) {
            xdp::frame* item = _pool.acquire();
            if (item == nullptr) {
                break; // the pool is dry: the caller holds every frame; the packets wait in the TAP's queue
            }
            if (!item->resize(item->capacity())) {
                _pool.release(item);
                break;
            }
            // One byte more than a frame holds: tun cuts a packet to the buffer and returns the cut length, so only
            // a read that fills the extra byte tells an oversized packet (the byte lands in the frame's tailroom
            // reserve, inside its buffer).
            const ssize_t length = ::read(_fd, item->packet().data(), item->capacity() + 1);
            if (length < 0) {
                _pool.release(item);
                if (errno == EINTR) {
                    continue;
                }
                if (errno != EAGAIN) {
                    // EBADFD: the device was deleted under us. Wait as for an idle device instead of spinning.
                    if (filled == 0) {
                        detail::idle(_poll_timeout_ms);
                    }
                    break;
                }
                if (filled == 0 && !waited) {
                    waited = true;
                    if (detail::wait_readable(_fd, _poll_timeout_ms)) {
                        continue;
                    }
                }
                break;
            }
            const auto bytes = static_cast<std::uint32_t>(length);
            if (bytes < ethernet_header_length || bytes > item->capacity()) {
                ++_stats.rx_errors; // a runt without an Ethernet header, or a packet larger than a frame
                _pool.release(item);
                continue;
            }
            (void)item->resize(bytes);
            item->set_ingress(_features.ifindex, 0);
            item->info().timestamp_ns = now_ns();
            item->info().record = ++_records;
            item->info().wire_length = bytes;
            ++_stats.rx_packets;
            _stats.rx_bytes += bytes;
            out[filled++] = item;
        }
        return filled;
    }

    std::size_t tx_batch(std::span<xdp::frame* const> frames) override {
        std::size_t accepted = 0;
        for (xdp::frame* item : frames) {
            const auto packet = item->packet();
            const ssize_t written = ::write(_fd, packet.data(), packet.size());
            if (written < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
                break; // the host's backlog is full: the rest stay the caller's
            }
            if (written == static_cast<ssize_t>(packet.size())) {
                ++_stats.tx_packets;
                _stats.tx_bytes += packet.size();
            } else {
                ++_stats.tx_errors; // the device is down, or the frame is not a packet the host takes
            }
            detail::release_frame(item, _pool);
            ++accepted;
        }
        return accepted;
    }

    port_stats stats() const override { return _stats; }

private:
    int _fd;
    xdp::frame_pool& _pool;
    int _poll_timeout_ms;
    port_features _features;
    port_stats _stats;
    std::uint64_t _records{};
};

} // namespace

expected<std::unique_ptr<port>> detail::open_tap_port(std::string_view spec, std::string_view name,
                                                      xdp::frame_pool& pool, const port_options& options) {
    if (name.empty()) {
        return port_error(spec, "no device name (tap:NAME)");
    }
    if (name.size() >= IFNAMSIZ) {
        return port_error(spec, fmt::format("device name '{}' is longer than {} characters", name, IFNAMSIZ - 1));
    }
    const int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        return system_error(spec, "open /dev/net/tun", errno);
    }
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), name.size());
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (::ioctl(fd, TUNSETIFF, &request) < 0) {
        const int saved = errno;
        ::close(fd);
        if (saved == EINVAL || saved == EBUSY) {
            return port_error(spec, fmt::format("cannot create TAP '{}': {} (is it another kind of device, or a TAP "
                                                "another process holds?)",
                                                name, std::strerror(saved)));
        }
        return system_error(spec, fmt::format("create TAP '{}'", name), saved);
    }
    // Up, so that the host routes to it and we can write to it (a TAP that is down drops every write).
    const int control = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control < 0) {
        const int saved = errno;
        ::close(fd);
        return system_error(spec, "socket(AF_INET)", saved);
    }
    ifreq flags{};
    std::memcpy(flags.ifr_name, request.ifr_name, IFNAMSIZ);
    int status = ::ioctl(control, SIOCGIFFLAGS, &flags);
    if (status == 0 && (flags.ifr_flags & IFF_UP) == 0) {
        flags.ifr_flags = static_cast<short>(flags.ifr_flags | IFF_UP);
        status = ::ioctl(control, SIOCSIFFLAGS, &flags);
    }
    const int saved = errno;
    ::close(control);
    if (status < 0) {
        ::close(fd);
        return system_error(spec, fmt::format("bring TAP '{}' up", name), saved);
    }
    auto info = query_interface(spec, request.ifr_name);
    if (!info) {
        ::close(fd);
        return info.error();
    }
    return std::unique_ptr<port>(
        std::make_unique<tap_port>(spec, fd, info.value(), std::string(request.ifr_name), pool, options));
}

} // namespace sluice::io
