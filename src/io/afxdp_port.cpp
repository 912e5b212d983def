// `afxdp:IFACE[:QUEUE]`: an AF_XDP socket on one queue of an interface, through libxdp.
//
// The UMEM is this port's own frame pool: 2 x ring_size frames of 4096 bytes in one page-aligned mapping, frame i
// being UMEM chunk i. The kernel writes a received packet at chunk + 256 (XDP_PACKET_HEADROOM; the UMEM's own
// headroom is 0), which is exactly where a sluice frame keeps its packet, so rx_batch() hands out the kernel's buffers
// as frames without copying. Frames the caller releases go back to the UMEM pool, and rx_batch() moves free frames of
// that pool into the fill ring before it reads the RX ring.
//
// TX: a frame of this UMEM goes into the TX ring as it is (XDP_TX without a copy: its address is its chunk plus the
// packet's offset); a frame of another pool is copied into a free UMEM frame and released to its own pool at once.
// Frames in the TX ring belong to the port until the completion ring returns them to the pool. flush() kicks the
// kernel (sendto) when it needs it and reclaims completions.
//
// Binding: libxdp loads its default program (a redirect of every packet of the queue into the socket's XSKMAP) in
// native mode, or SKB (generic) mode when port_options::force_generic is set or the driver has no native XDP. The
// socket asks for zero-copy first (XDP_ZEROCOPY) and falls back to copy mode where the driver cannot (veth, most
// virtual devices); features() says which it got. libxdp's and libbpf's messages go to sluice's debug log (stderr
// when SLUICE_DEBUG is set), and the last one is quoted in errors.
//
// Lifetime: every frame this port handed out must be back in its pool before the port is destroyed (the pool and
// the UMEM go with the port). The socket and the XDP program are tied to the network namespace the port was opened
// in; the destructor detaches there even when called from a thread that has since moved to another namespace.
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "io/port_support.hpp"

namespace sluice::io {

namespace {

constexpr std::uint32_t umem_frame_size = xdp::standard_frame_size; // one page per chunk, as drivers use
constexpr std::uint32_t ethernet_header_length = 14;

// libxdp and libbpf print warnings (dispatcher fallbacks, missing bpffs) to stderr by default. They are useful when
// something fails, noise when it works: keep the last warning for error messages, print only when SLUICE_DEBUG is set.
std::mutex log_lock;
std::string last_library_message;

int library_print(bool warning, const char* format, va_list arguments) {
    char line[512];
    const int length = std::vsnprintf(line, sizeof line, format, arguments);
    if (length <= 0) {
        return 0;
    }
    std::string text(line);
    while (!text.empty() && text.back() == '\n') {
        text.pop_back();
    }
    if (std::getenv("SLUICE_DEBUG") != nullptr) {
        std::fprintf(stderr, "sluice debug: %s\n", text.c_str());
    }
    if (warning) {
        const std::scoped_lock guard(log_lock);
        last_library_message = std::move(text);
    }
    return length;
}

int libxdp_print(enum libxdp_print_level level, const char* format, va_list arguments) {
    if (level == LIBXDP_DEBUG && std::getenv("SLUICE_DEBUG") == nullptr) {
        return 0;
    }
    return library_print(level == LIBXDP_WARN, format, arguments);
}
int libbpf_print(enum libbpf_print_level level, const char* format, va_list arguments) {
    if (level == LIBBPF_DEBUG) {
        return 0; // libbpf's debug level is a trace of every step of a load
    }
    return library_print(level == LIBBPF_WARN, format, arguments);
}

void route_library_messages() {
    static std::once_flag once;
    std::call_once(once, [] {
        libxdp_set_print(libxdp_print);
        libbpf_set_print(libbpf_print);
    });
}

std::string take_library_message() {
    const std::scoped_lock guard(log_lock);
    std::string text = std::move(last_library_message);
    last_library_message.clear();
    return text;
}

std::uint64_t now_ns() {
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

ino_t current_netns() {
    struct stat status {};
    return ::stat("/proc/thread-self/ns/net", &status) == 0 ? status.st_ino : 0;
}

// What one attempt at binding needs and gives back; owned by the port once an attempt succeeds. Never copied or
// moved: libxdp keeps pointers to the ring structures (to unmap them in xsk_socket__delete and xsk_umem__delete), so
// they live on the heap at one address from xsk_umem__create to the end.
struct xsk_handles {
    xsk_handles() = default;
    xsk_handles(const xsk_handles&) = delete;
    xsk_handles& operator=(const xsk_handles&) = delete;

    xsk_umem* umem{};
    xsk_socket* socket{};
    xsk_ring_prod fill{};
    xsk_ring_cons completion{};
    xsk_ring_cons rx{};
    xsk_ring_prod tx{};

    void destroy() {
        if (socket != nullptr) {
            xsk_socket__delete(socket);
            socket = nullptr;
        }
        if (umem != nullptr) {
            xsk_umem__delete(umem);
            umem = nullptr;
        }
    }
};

class afxdp_port final : public port {
public:
    afxdp_port(std::string_view spec, std::string interface, std::uint32_t queue, const detail::interface_info& info,
               std::uint8_t* area, std::size_t area_bytes, std::unique_ptr<xsk_handles> handles, bool generic,
               xdp::frame_pool& caller_pool, const port_options& options)
        : port(std::string(spec)), _area(area), _area_bytes(area_bytes), _xsk(std::move(handles)),
          _pool(std::span<std::uint8_t>(area, area_bytes), umem_frame_size), _caller_pool(caller_pool),
          _fd(xsk_socket__fd(_xsk->socket)), _queue(queue), _ring_size(options.ring_size),
          _poll_timeout_ms(static_cast<int>(options.poll_timeout_ms)), _netns(current_netns()) {
        _netns_fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        xdp_options socket_options{};
        socklen_t length = sizeof socket_options;
        if (::getsockopt(_fd, SOL_XDP, XDP_OPTIONS, &socket_options, &length) == 0) {
            _zero_copy = (socket_options.flags & XDP_OPTIONS_ZEROCOPY) != 0;
        }
        _features.kind = "afxdp";
        _features.interface = std::move(interface);
        _features.ifindex = info.ifindex;
        _features.rx = true;
        _features.tx = true;
        _features.zero_copy = _zero_copy;
        _features.redirect_target = true;
        _features.queues = info.rx_queues;
        _features.mtu = info.mtu;
        _features.mode = fmt::format("{} XDP (libxdp redirect program), {}, queue {}, {} UMEM frames of {} bytes",
                                     generic ? "generic (SKB)" : "native", _zero_copy ? "zero-copy" : "copy", queue,
                                     _pool.size(), umem_frame_size);
        refill();
    }

    ~afxdp_port() override {
        // libxdp detaches its program by ifindex in the calling thread's namespace: make sure that is ours.
        if (_netns_fd >= 0 && current_netns() != _netns) {
            bool entered = false;
            std::thread detach([this, &entered] {
                entered = ::setns(_netns_fd, CLONE_NEWNET) == 0;
                if (entered) {
                    _xsk->destroy();
                }
            });
            detach.join();
            if (!entered) {
                // Detaching here could remove the program of another interface with the same ifindex in this
                // namespace: leave the socket to the end of the process instead.
                _xsk->socket = nullptr;
                _xsk->umem = nullptr;
            }
        }
        _xsk->destroy(); // no-op if done above
        if (_netns_fd >= 0) {
            ::close(_netns_fd);
        }
    }

    const port_features& features() const override { return _features; }

    std::size_t rx_batch(std::span<xdp::frame*> out) override {
        reclaim_completions();
        refill();
        const std::uint32_t wanted = static_cast<std::uint32_t>(std::min(out.size(), max_batch));
        std::uint32_t index = 0;
        std::uint32_t received = xsk_ring_cons__peek(&_xsk->rx, wanted, &index);
        if (received == 0 && detail::wait_readable(_fd, _poll_timeout_ms)) {
            received = xsk_ring_cons__peek(&_xsk->rx, wanted, &index);
        }
        if (received == 0) {
            return 0;
        }
        const std::uint64_t timestamp = now_ns();
        std::size_t filled = 0;
        for (std::uint32_t i = 0; i < received; ++i) {
            const xdp_desc* descriptor = xsk_ring_cons__rx_desc(&_xsk->rx, index + i);
            xdp::frame* item = frame_at(descriptor->addr);
            const std::uint64_t offset = descriptor->addr % umem_frame_size;
            if (item == nullptr) {
                ++_stats.rx_errors; // an address outside the UMEM: a kernel or libxdp bug; never hand it out
                continue;
            }
            item->reset();
            auto& context = item->context();
            if (descriptor->len < ethernet_header_length || offset < ebpf::xdp_packet_headroom ||
                context.data_hard_start + offset + descriptor->len > item->hard_end()) {
                ++_stats.rx_errors;
                _pool.release(item);
                continue;
            }
            // Where the kernel put the packet (chunk + 256 unless a driver reserves more): the program sees that
            // headroom, as it would in the kernel.
            context.data = context.data_hard_start + offset;
            context.data_meta = context.data;
            context.data_end = context.data + descriptor->len;
            item->set_ingress(_features.ifindex, _queue);
            item->info().timestamp_ns = timestamp;
            item->info().record = ++_records;
            item->info().wire_length = descriptor->len;
            ++_stats.rx_packets;
            _stats.rx_bytes += descriptor->len;
            out[filled++] = item;
        }
        xsk_ring_cons__release(&_xsk->rx, received);
        refill();
        return filled;
    }

    std::size_t tx_batch(std::span<xdp::frame* const> frames) override {
        reclaim_completions();
        // At most max_batch descriptors at a time; a shorter piece means the ring or the UMEM ran out.
        std::size_t total = 0;
        while (total < frames.size()) {
            const std::size_t piece = std::min(frames.size() - total, max_batch);
            const std::size_t accepted = tx_piece(frames.subspan(total, piece));
            total += accepted;
            if (accepted < piece) {
                break;
            }
        }
        return total;
    }

    std::size_t tx_piece(std::span<xdp::frame* const> frames) {
        const std::uint32_t room = xsk_prod_nb_free(&_xsk->tx, static_cast<std::uint32_t>(frames.size()));
        // The kernel drops what exceeds the MTU (plus Ethernet header and one VLAN tag) without a word (it counts
        // tx_invalid_descs): such frames, and runts, are accepted and counted as TX errors here.
        const std::size_t largest =
            _features.mtu == 0 ? _pool.frame_capacity()
                               : std::min<std::size_t>(_pool.frame_capacity(), std::size_t{_features.mtu} + 18);
        std::array<xdp_desc, max_batch> descriptors{};
        std::size_t used = 0;
        std::size_t accepted = 0;
        while (accepted < frames.size() && used < room) {
            xdp::frame* item = frames[accepted];
            const auto packet = item->packet();
            if (packet.size() < ethernet_header_length || packet.size() > largest) {
                ++_stats.tx_errors;
                detail::release_frame(item, _caller_pool);
                ++accepted;
                continue;
            }
            xdp_desc& descriptor = descriptors[used];
            descriptor.len = static_cast<std::uint32_t>(packet.size());
            if (item->pool() == &_pool) {
                // A frame of this UMEM goes out as it is: its chunk plus where its packet starts now.
                descriptor.addr = _pool.index_of(item) * std::uint64_t{umem_frame_size} +
                                  static_cast<std::uint64_t>(item->context().data - item->hard_start());
            } else {
                // Another pool's frame is copied into a UMEM frame; without a free one the rest stay the caller's.
                xdp::frame* copy = _pool.acquire();
                if (copy == nullptr) {
                    break;
                }
                (void)copy->assign(packet); // fits: packet.size() <= the UMEM frames' capacity
                descriptor.addr = _pool.index_of(copy) * std::uint64_t{umem_frame_size} + ebpf::xdp_packet_headroom;
                detail::release_frame(item, _caller_pool);
            }
            ++used;
            ++accepted;
            ++_stats.tx_packets;
            _stats.tx_bytes += packet.size();
        }
        if (used != 0) {
            std::uint32_t index = 0;
            // nb_free said there was room, and only this thread produces: the reservation cannot fail.
            (void)xsk_ring_prod__reserve(&_xsk->tx, static_cast<std::uint32_t>(used), &index);
            for (std::size_t i = 0; i < used; ++i) {
                *xsk_ring_prod__tx_desc(&_xsk->tx, index + static_cast<std::uint32_t>(i)) = descriptors[i];
            }
            xsk_ring_prod__submit(&_xsk->tx, static_cast<std::uint32_t>(used));
            _tx_pending += static_cast<std::uint32_t>(used);
        }
        return accepted;
    }

    void flush() override {
        if (_tx_pending != 0) {
            if (_zero_copy) {
                // The driver sends on its own; it asks to be woken only when it went idle.
                if (xsk_ring_prod__needs_wakeup(&_xsk->tx)) {
                    kick();
                }
                _tx_pending = 0;
            } else {
                // Copy mode sends only from sendto(), at most 32 descriptors a call (the kernel's TX budget): kick
                // until the kernel has taken every descriptor, or it stops making progress (queue full, link down).
                for (int round = 0; round < 64 && unsent() != 0; ++round) {
                    const std::uint32_t before = unsent();
                    if (!kick() || unsent() == before) {
                        break;
                    }
                }
                _tx_pending = unsent();
            }
        }
        reclaim_completions();
    }

    port_stats stats() const override {
        port_stats result = _stats;
        xdp_statistics kernel{};
        socklen_t length = sizeof kernel;
        if (::getsockopt(_fd, SOL_XDP, XDP_STATISTICS, &kernel, &length) == 0) {
            // Kernels count a drop for a full RX ring or an empty fill ring in rx_dropped as well (6.18 does; older
            // ones may not): the larger of the two is every drop, counted once.
            result.rx_missed =
                std::max<std::uint64_t>(kernel.rx_dropped, kernel.rx_ring_full + kernel.rx_fill_ring_empty_descs);
        }
        return result;
    }
    xdp::frame_pool* own_pool() const override { return &_pool; }

private:
    struct area_unmap {
        std::uint8_t* area;
        std::size_t bytes;
        ~area_unmap() { ::munmap(area, bytes); }
    };

    // Descriptors in the TX ring that the kernel has not consumed yet.
    std::uint32_t unsent() { return _ring_size - xsk_prod_nb_free(&_xsk->tx, _ring_size); }

    bool kick() {
        return ::sendto(_fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0) >= 0 || errno == EAGAIN || errno == EBUSY ||
               errno == ENOBUFS;
    }

    xdp::frame* frame_at(std::uint64_t address) {
        const std::uint64_t index = address / umem_frame_size;
        return index < _pool.size() ? _pool.at(index) : nullptr;
    }

    // Free UMEM frames go to the kernel so it has somewhere to write; a dry fill ring drops packets in the kernel.
    void refill() {
        std::array<xdp::frame*, max_batch> spare{};
        for (;;) {
            const std::uint32_t room = xsk_prod_nb_free(&_xsk->fill, static_cast<std::uint32_t>(spare.size()));
            const std::size_t wanted = std::min<std::size_t>(room, spare.size());
            if (wanted == 0) {
                break;
            }
            const std::size_t got = _pool.acquire_batch(std::span<xdp::frame*>(spare.data(), wanted));
            if (got == 0) {
                break;
            }
            std::uint32_t index = 0;
            (void)xsk_ring_prod__reserve(&_xsk->fill, static_cast<std::uint32_t>(got), &index);
            for (std::size_t i = 0; i < got; ++i) {
                *xsk_ring_prod__fill_addr(&_xsk->fill, index + static_cast<std::uint32_t>(i)) =
                    _pool.index_of(spare[i]) * std::uint64_t{umem_frame_size};
            }
            xsk_ring_prod__submit(&_xsk->fill, static_cast<std::uint32_t>(got));
            if (got < wanted) {
                break;
            }
        }
        if (xsk_ring_prod__needs_wakeup(&_xsk->fill)) {
            (void)::recvfrom(_fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
        }
    }

    void reclaim_completions() {
        std::uint32_t index = 0;
        const std::uint32_t done = xsk_ring_cons__peek(&_xsk->completion, _ring_size, &index);
        for (std::uint32_t i = 0; i < done; ++i) {
            if (xdp::frame* item = frame_at(*xsk_ring_cons__comp_addr(&_xsk->completion, index + i))) {
                _pool.release(item);
            }
        }
        if (done != 0) {
            xsk_ring_cons__release(&_xsk->completion, done);
        }
    }

    std::uint8_t* _area;
    std::size_t _area_bytes;
    area_unmap _unmap{_area, _area_bytes}; ///< destroyed after _pool (declared before it)
    std::unique_ptr<xsk_handles> _xsk;     ///< at a fixed address: libxdp keeps pointers to its rings
    mutable xdp::frame_pool _pool;         ///< the UMEM's frames
    xdp::frame_pool& _caller_pool;
    int _fd;
    std::uint32_t _queue;
    std::uint32_t _ring_size;
    int _poll_timeout_ms;
    ino_t _netns;
    int _netns_fd{-1};
    bool _zero_copy{};
    port_features _features;
    port_stats _stats;
    std::uint64_t _records{};
    std::uint32_t _tx_pending{};
};

std::uint32_t power_of_two_at_least(std::uint32_t value) {
    std::uint32_t result = 64;
    while (result < value && result < (1U << 16)) {
        result <<= 1;
    }
    return result;
}

// One attempt: a UMEM over `area` and a socket bound with `bind_flags`, the program attached in `xdp_flags` mode.
int try_bind(std::string_view interface, std::uint32_t queue, std::uint8_t* area, std::size_t area_bytes,
             std::uint32_t ring_size, std::uint32_t xdp_flags, std::uint16_t bind_flags, xsk_handles& handles) {
    xsk_umem_config umem_config{};
    umem_config.fill_size = ring_size;
    umem_config.comp_size = ring_size;
    umem_config.frame_size = umem_frame_size;
    umem_config.frame_headroom = 0; // the kernel's own 256 bytes are the frame's headroom
    umem_config.flags = 0;
    int status = xsk_umem__create(&handles.umem, area, area_bytes, &handles.fill, &handles.completion, &umem_config);
    if (status != 0) {
        handles.umem = nullptr;
        return status;
    }
    xsk_socket_config socket_config{};
    socket_config.rx_size = ring_size;
    socket_config.tx_size = ring_size;
    socket_config.libxdp_flags = 0; // let libxdp load its redirect program
    socket_config.xdp_flags = xdp_flags;
    socket_config.bind_flags = bind_flags;
    const std::string name(interface);
    status = xsk_socket__create(&handles.socket, name.c_str(), queue, handles.umem, &handles.rx, &handles.tx,
                                &socket_config);
    if (status != 0) {
        handles.socket = nullptr;
        handles.destroy();
    }
    return status;
}

} // namespace

expected<std::unique_ptr<port>> detail::open_afxdp_port(std::string_view spec, std::string_view interface,
                                                        std::uint32_t queue, xdp::frame_pool& pool,
                                                        const port_options& options) {
    route_library_messages();
    auto info = query_interface(spec, interface);
    if (!info) {
        return info.error();
    }
    if (queue >= info->rx_queues) {
        return port_error(spec, fmt::format("queue {} does not exist: '{}' has {} RX queue{}", queue, interface,
                                            info->rx_queues, info->rx_queues == 1 ? "" : "s"));
    }
    const std::uint32_t ring_size = power_of_two_at_least(options.ring_size);
    const std::size_t frames = 2 * std::size_t{ring_size}; // a fill ring's worth for the kernel, as much again for us
    const std::size_t area_bytes = frames * umem_frame_size;
    void* area = ::mmap(nullptr, area_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (area == MAP_FAILED) {
        return system_error(spec, fmt::format("mmap of a {} KiB UMEM", area_bytes / 1024), errno);
    }
    auto* bytes = static_cast<std::uint8_t*>(area);

    // Zero-copy first, copy mode where the driver cannot; native XDP first, generic where the driver has none.
    const bool generic_only = options.force_generic;
    struct attempt {
        std::uint32_t xdp_flags;
        std::uint16_t bind_flags;
    };
    const std::uint16_t wakeup = XDP_USE_NEED_WAKEUP;
    std::vector<attempt> attempts;
    for (const std::uint32_t mode : {std::uint32_t{XDP_FLAGS_DRV_MODE}, std::uint32_t{XDP_FLAGS_SKB_MODE}}) {
        if (generic_only && mode == XDP_FLAGS_DRV_MODE) {
            continue;
        }
        if (!options.force_copy) {
            attempts.push_back({mode, static_cast<std::uint16_t>(wakeup | XDP_ZEROCOPY)});
        }
        attempts.push_back({mode, static_cast<std::uint16_t>(wakeup | XDP_COPY)});
    }
    auto handles = std::make_unique<xsk_handles>();
    int status = -EINVAL;
    std::string reason;
    bool generic = false;
    for (const attempt& next : attempts) {
        (void)take_library_message();
        status = try_bind(interface, queue, bytes, area_bytes, ring_size, next.xdp_flags, next.bind_flags, *handles);
        // A socket closed a moment ago still holds the queue: the kernel releases its buffer pool from a work queue
        // after close() returns. Wait for that (up to a quarter of a second) before calling the queue busy.
        for (int retry = 0; status == -EBUSY && retry < 12; ++retry) {
            ::poll(nullptr, 0, 20);
            status =
                try_bind(interface, queue, bytes, area_bytes, ring_size, next.xdp_flags, next.bind_flags, *handles);
        }
        if (status == 0) {
            generic = next.xdp_flags == XDP_FLAGS_SKB_MODE;
            break;
        }
        // The last attempt's reason: it is the least demanding one (copy mode, generic XDP) or the one that stopped.
        const std::string message = take_library_message();
        reason = fmt::format("{}{}{}", std::strerror(-status), message.empty() ? "" : "; ", message);
        if (status == -EPERM || status == -EACCES || status == -ENODEV || status == -EBUSY) {
            break; // no mode or copy setting changes these
        }
    }
    if (status != 0) {
        ::munmap(area, area_bytes);
        if (status == -EPERM || status == -EACCES) {
            return system_error(spec, fmt::format("AF_XDP socket on '{}' queue {}", interface, queue), -status,
                                "CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF");
        }
        if (status == -EBUSY) {
            return port_error(spec, fmt::format("'{}' queue {} is busy: another AF_XDP socket or XDP program holds it "
                                                "({})",
                                                interface, queue, reason));
        }
        return port_error(spec,
                          fmt::format("cannot open an AF_XDP socket on '{}' queue {}: {}", interface, queue, reason));
    }
    port_options used = options;
    used.ring_size = ring_size;
    return std::unique_ptr<port>(std::make_unique<afxdp_port>(spec, std::string(interface), queue, info.value(), bytes,
                                                              area_bytes, std::move(handles), generic, pool, used));
}

} // namespace sluice::io
