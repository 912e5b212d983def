// What the port implementations share: their factories (open_port() dispatches to them by the spec's kind), error
// texts that name the spec and the reason, and the few system calls every kernel-backed port makes.
//
// Each factory gets the spec as the user wrote it (for error messages) and the part after the kind.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/expected.hpp"
#include "sluice/io/pcap.hpp" // io::max_batch
#include "sluice/io/port.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::io::detail {

expected<std::unique_ptr<port>> open_pcap_port(std::string_view spec, std::string_view path, xdp::frame_pool& pool,
                                               const port_options& options);
expected<std::unique_ptr<port>> open_generator_port(std::string_view spec, std::string_view text, xdp::frame_pool& pool,
                                                    const port_options& options);
expected<std::unique_ptr<port>> open_tap_port(std::string_view spec, std::string_view name, xdp::frame_pool& pool,
                                              const port_options& options);
expected<std::unique_ptr<port>> open_afpacket_port(std::string_view spec, std::string_view interface,
                                                   xdp::frame_pool& pool, const port_options& options);
expected<std::unique_ptr<port>> open_afxdp_port(std::string_view spec, std::string_view interface, std::uint32_t queue,
                                                xdp::frame_pool& pool, const port_options& options);

/// "port 'SPEC': REASON".
sluice::error port_error(std::string_view spec, std::string_view reason);
/// "port 'SPEC': WHAT: strerror(errno)", with the capability that is missing when errno is EPERM or EACCES.
sluice::error system_error(std::string_view spec, std::string_view what, int error_number,
                           std::string_view capability = "CAP_NET_ADMIN");

/// An ifindex for ports that are not kernel interfaces (pcap, gen, memory): unique in the process and far above the
/// kernel's numbers, so that bpf_redirect() to one can never mean a real interface.
std::uint32_t next_sluice_ifindex();

/// A kernel interface as a port sees it: index, MTU, MAC. Errors name the interface ("no such interface 'x'").
struct interface_info {
    std::uint32_t ifindex{};
    std::uint32_t mtu{};
    std::uint32_t rx_queues{1};
    std::uint8_t mac[6]{};
};
expected<interface_info> query_interface(std::string_view spec, std::string_view name);

/// Waits up to `timeout_ms` for `fd` to become readable. When the socket or device reports an error instead (its
/// interface went away: ENETDOWN, ENXIO, EBADFD), the socket's pending error is read (which clears it) and the call
/// sleeps for the timeout anyway, so that a worker calling rx_batch() in a loop on a dead port waits instead of
/// spinning. True when there is something to read.
bool wait_readable(int fd, int timeout_ms);
/// Sleeps for `timeout_ms`: what a port does instead of returning at once when its device is gone.
void idle(int timeout_ms);

/// Gives a frame back to the pool it came from (the caller's pool unless the frame knows better).
void release_frame(xdp::frame* item, xdp::frame_pool& fallback);

/// The features of a port that reads packets sluice makes or stores itself (pcap:FILE, gen:SPEC): RX only, with
/// metadata, a sluice ifindex of its own, and the pool's frame capacity as its MTU.
inline port_features reader_features(std::string kind, std::string interface, std::string mode,
                                     const xdp::frame_pool& pool) {
    port_features features;
    features.kind = std::move(kind);
    features.interface = std::move(interface);
    features.ifindex = next_sluice_ifindex();
    features.rx = true;
    features.metadata = true;
    features.mtu = pool.frame_capacity();
    features.mode = std::move(mode);
    return features;
}

/// rx_batch of such a port: up to max_batch frames from the pool filled by `source` (a pcap_reader or a
/// traffic_generator), the unused ones given back, each filled frame's ingress set to `ifindex` and its length added
/// to `bytes`. Returns how many were filled.
template <typename source_type>
std::size_t read_batch(source_type& source, xdp::frame_pool& pool, std::span<xdp::frame*> out, std::uint32_t ifindex,
                       std::uint64_t& bytes) {
    const std::size_t wanted = std::min(out.size(), max_batch);
    const std::size_t acquired = pool.acquire_batch(out.first(wanted));
    const std::size_t filled = source.rx_batch(out.first(acquired));
    pool.release_batch(out.subspan(filled, acquired - filled));
    for (std::size_t i = 0; i < filled; ++i) {
        out[i]->set_ingress(ifindex, 0);
        bytes += out[i]->length();
    }
    return filled;
}

} // namespace sluice::io::detail
