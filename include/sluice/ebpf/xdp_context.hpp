// The XDP program's context as sluice lays it out: what `struct xdp_md *ctx` points to at run time.
//
// Programs are compiled against the kernel's `struct xdp_md`, whose fields are 32 bits wide even where they stand
// for pointers. As in the kernel (which rewrites them into loads from `struct xdp_buff`), the loader rewrites every
// context access into a load from this descriptor, so `ctx->data` yields a real 64-bit pointer. The layout is
// sluice's own and may change; only the loader's rewrite and the helpers depend on it.
//
// Buffer layout (one frame):
//   data_hard_start ... [kernel-like frame header reserve] ... data_meta ... data ... data_end ... tailroom ...
//   data_hard_start + frame_size
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::ebpf {

inline constexpr std::uint32_t xdp_packet_headroom = 256; ///< XDP_PACKET_HEADROOM
inline constexpr std::uint32_t xdp_frame_header_size = 40; ///< sizeof(struct xdp_frame) the kernel keeps in headroom
inline constexpr std::uint32_t xdp_metadata_max = 252;     ///< largest metadata area current kernels accept

struct xdp_context {
    std::uint8_t* data{};            ///< first byte of the packet
    std::uint8_t* data_end{};        ///< one past the last byte of the packet
    std::uint8_t* data_meta{};       ///< start of metadata; == data when there is none
    std::uint8_t* data_hard_start{}; ///< start of the buffer (headroom begins here)
    std::uint32_t frame_size{};      ///< buffer bytes from data_hard_start, tailroom reserve included (xdp_buff.frame_sz)
    std::uint32_t ingress_ifindex{}; ///< xdp_md.ingress_ifindex
    std::uint32_t rx_queue_index{};  ///< xdp_md.rx_queue_index
    std::uint32_t egress_ifindex{};  ///< xdp_md.egress_ifindex (devmap programs)
};

// Offsets the loader's context rewrite loads from.
inline constexpr std::size_t xdp_context_data_offset = offsetof(xdp_context, data);
inline constexpr std::size_t xdp_context_data_end_offset = offsetof(xdp_context, data_end);
inline constexpr std::size_t xdp_context_data_meta_offset = offsetof(xdp_context, data_meta);
inline constexpr std::size_t xdp_context_ingress_ifindex_offset = offsetof(xdp_context, ingress_ifindex);
inline constexpr std::size_t xdp_context_rx_queue_index_offset = offsetof(xdp_context, rx_queue_index);
inline constexpr std::size_t xdp_context_egress_ifindex_offset = offsetof(xdp_context, egress_ifindex);

} // namespace sluice::ebpf
