// What the port implementations share: their factories (open_port() dispatches to them by the spec's kind), error
// texts that name the spec and the reason, and the few system calls every kernel-backed port makes.
//
// Each factory gets the spec as the user wrote it (for error messages) and the part after the kind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

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

} // namespace sluice::io::detail
