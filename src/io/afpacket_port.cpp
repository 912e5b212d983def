// `afpacket:IFACE`: AF_PACKET with memory-mapped rings, for kernels or drivers without AF_XDP.
//
// RX is a TPACKET_V3 ring: the kernel fills blocks of packets and hands a block over when it is full or when
// tp_retire_blk_tov (the port's poll timeout) expires, so one poll() covers many packets. TX is a TPACKET_V3 ring
// too (the kernel takes V3 TX rings since 4.11; they are frame-based, as V2's: fixed slots, tp_next_offset 0, and
// the packet at TPACKET_ALIGN(sizeof(tpacket3_hdr))); a send() after each batch makes the kernel send every slot
// marked TP_STATUS_SEND_REQUEST.
//
// What AF_PACKET cannot do, and the port says so in features(): its RX is a copy. The kernel's stack gets every
// packet as well, whatever the program decides, so XDP_DROP drops only sluice's copy and XDP_PASS needs no target.
// Frames are copied from the ring into pool frames (rings are not frames) and from frames into the TX ring.
//
// PACKET_IGNORE_OUTGOING keeps packets this host sends (including our own TX) out of our RX ring, and
// PACKET_QDISC_BYPASS sends without the qdisc layer where the kernel allows it (a note in features().mode otherwise).
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "io/port_support.hpp"

namespace sluice::io {

namespace {

constexpr std::uint32_t ethernet_header_length = 14;
constexpr std::uint32_t rx_frame_hint = 2048;     // V3 packs packets in blocks; this only sizes tp_frame_nr
constexpr std::uint32_t rx_block_size = 1U << 18; // 256 KiB: ~170 full-size packets per poll
constexpr std::uint32_t tx_slot_size = 4096;      // holds a standard frame's largest packet (3520 bytes)
constexpr std::uint32_t tx_slots_per_block = 16;  // 64 KiB blocks
constexpr std::uint32_t tx_data_offset = TPACKET_ALIGN(sizeof(tpacket3_hdr));

// The ring's status words are shared with the kernel: read with acquire, write with release (the kernel's side of
// the protocol is smp_rmb/smp_wmb around them).
std::uint32_t load_status(const std::uint32_t& word) {
    return __atomic_load_n(&word, __ATOMIC_ACQUIRE);
}
void store_status(std::uint32_t& word, std::uint32_t value) {
    __atomic_store_n(&word, value, __ATOMIC_RELEASE);
}

class afpacket_port final : public port {
public:
    afpacket_port(std::string_view spec, int fd, std::uint8_t* ring, std::size_t ring_bytes, const tpacket_req3& rx,
                  const tpacket_req3& tx, const detail::interface_info& info, std::string name, bool qdisc_bypass,
                  xdp::frame_pool& pool, const port_options& options)
        : port(std::string(spec)), _fd(fd), _ring(ring), _ring_bytes(ring_bytes), _rx(rx), _tx(tx), _pool(pool),
          _poll_timeout_ms(static_cast<int>(options.poll_timeout_ms)) {
        _tx_ring = _ring + std::size_t{rx.tp_block_size} * rx.tp_block_nr;
        _features.kind = "afpacket";
        _features.interface = std::move(name);
        _features.ifindex = info.ifindex;
        _features.rx = true;
        _features.tx = true;
        _features.redirect_target = true;
        _features.mtu = info.mtu;
        _features.mode = fmt::format("TPACKET_V3 RX ring {} blocks of {} KiB (retire {} ms), TPACKET_V3 TX ring {} "
                                     "slots of {} bytes, {}; copy: the kernel stack also receives every packet",
                                     rx.tp_block_nr, rx.tp_block_size / 1024, rx.tp_retire_blk_tov, tx.tp_frame_nr,
                                     tx.tp_frame_size, qdisc_bypass ? "qdisc bypass" : "through the qdisc");
    }

    ~afpacket_port() override {
        ::munmap(_ring, _ring_bytes);
        ::close(_fd);
    }

    const port_features& features() const override { return _features; }

    std::size_t rx_batch(std::span<xdp::frame*> out) override {
        const std::size_t wanted = std::min(out.size(), max_batch);
        std::size_t filled = 0;
        bool waited = false;
        while (filled < wanted) {
            if (_packet == nullptr && !open_block()) {
                if (filled != 0 || waited || _poll_timeout_ms <= 0) {
                    break;
                }
                waited = true;
                if (!detail::wait_readable(_fd, _poll_timeout_ms)) {
                    break;
                }
                continue;
            }
            xdp::frame* item = _pool.acquire();
            if (item == nullptr) {
                break; // the pool is dry; the packet stays in the ring for the next call
            }
            const auto* header = reinterpret_cast<const tpacket3_hdr*>(_packet);
            if (deliver(*header, *item)) {
                out[filled++] = item;
            } else {
                _pool.release(item);
            }
            next_packet(*header);
        }
        return filled;
    }

    std::size_t tx_batch(std::span<xdp::frame* const> frames) override {
        std::size_t accepted = 0;
        for (xdp::frame* item : frames) {
            auto* header = reinterpret_cast<tpacket3_hdr*>(_tx_ring + std::size_t{_tx_next} * tx_slot_size);
            const std::uint32_t status = load_status(header->tp_status);
            if (status == TP_STATUS_SEND_REQUEST || status == TP_STATUS_SENDING) {
                break; // the ring is full: the rest stay the caller's
            }
            if (status == TP_STATUS_WRONG_FORMAT) {
                // The kernel refused the packet that last used this slot: it was counted as sent, it was not.
                --_stats.tx_packets;
                ++_stats.tx_errors;
            }
            const auto packet = item->packet();
            // The kernel refuses what exceeds the MTU (plus Ethernet header and one VLAN tag) and then stops sending
            // the ring: count such frames here instead.
            const std::size_t largest =
                _features.mtu == 0 ? tx_slot_size - tx_data_offset
                                   : std::min<std::size_t>(tx_slot_size - tx_data_offset,
                                                           std::size_t{_features.mtu} + ethernet_header_length + 4);
            if (packet.size() > largest || packet.size() < ethernet_header_length) {
                ++_stats.tx_errors;
                store_status(header->tp_status, TP_STATUS_AVAILABLE);
            } else {
                std::memcpy(reinterpret_cast<std::uint8_t*>(header) + tx_data_offset, packet.data(), packet.size());
                header->tp_len = static_cast<std::uint32_t>(packet.size());
                header->tp_snaplen = header->tp_len;
                header->tp_next_offset = 0;
                store_status(header->tp_status, TP_STATUS_SEND_REQUEST);
                ++_stats.tx_packets;
                _stats.tx_bytes += packet.size();
                ++_tx_pending;
                _tx_next = (_tx_next + 1) % _tx.tp_frame_nr;
            }
            detail::release_frame(item, _pool);
            ++accepted;
        }
        return accepted;
    }

    void flush() override {
        if (_tx_pending == 0) {
            return;
        }
        // Non-blocking: the kernel walks the ring from its own position and sends every SEND_REQUEST slot.
        if (::send(_fd, nullptr, 0, MSG_DONTWAIT) >= 0 || errno == EAGAIN || errno == ENOBUFS) {
            _tx_pending = 0;
        }
    }

    port_stats stats() const override {
        // PACKET_STATISTICS counts since its last read: add each read up.
        tpacket_stats_v3 kernel{};
        socklen_t length = sizeof kernel;
        if (::getsockopt(_fd, SOL_PACKET, PACKET_STATISTICS, &kernel, &length) == 0) {
            _missed += kernel.tp_drops;
        }
        port_stats result = _stats;
        result.rx_missed = _missed;
        return result;
    }

private:
    std::uint8_t* block(std::uint32_t index) const { return _ring + std::size_t{index} * _rx.tp_block_size; }

    // The current block, if the kernel has handed it over; positions _packet on its first packet.
    bool open_block() {
        auto* descriptor = reinterpret_cast<tpacket_block_desc*>(block(_block));
        if ((load_status(descriptor->hdr.bh1.block_status) & TP_STATUS_USER) == 0) {
            return false;
        }
        _left = descriptor->hdr.bh1.num_pkts;
        if (_left == 0) {
            close_block(*descriptor);
            return false;
        }
        _packet = block(_block) + descriptor->hdr.bh1.offset_to_first_pkt;
        return true;
    }

    void close_block(tpacket_block_desc& descriptor) {
        store_status(descriptor.hdr.bh1.block_status, TP_STATUS_KERNEL);
        _block = (_block + 1) % _rx.tp_block_nr;
        _packet = nullptr;
    }

    void next_packet(const tpacket3_hdr& header) {
        if (--_left == 0) {
            close_block(*reinterpret_cast<tpacket_block_desc*>(block(_block)));
        } else {
            _packet += header.tp_next_offset;
        }
    }

    // Copies one ring packet into a frame, putting back the VLAN tag the kernel took out of the packet
    // (TP_STATUS_VLAN_VALID), so that a program sees the bytes that were on the wire, as XDP does.
    bool deliver(const tpacket3_hdr& header, xdp::frame& item) {
        const std::uint8_t* bytes = _packet + header.tp_mac;
        const std::uint32_t captured = header.tp_snaplen;
        const bool tagged = (header.tp_status & TP_STATUS_VLAN_VALID) != 0 && captured >= 12;
        const std::uint32_t length = captured + (tagged ? 4 : 0);
        if (captured < ethernet_header_length || header.tp_snaplen < header.tp_len || !item.resize(length)) {
            ++_stats.rx_errors; // a runt, or a packet cut by the ring or larger than a frame
            return false;
        }
        std::uint8_t* data = item.packet().data();
        if (tagged) {
            const std::uint16_t tpid = (header.tp_status & TP_STATUS_VLAN_TPID_VALID) != 0
                                           ? header.hv1.tp_vlan_tpid
                                           : static_cast<std::uint16_t>(ETH_P_8021Q);
            const std::uint16_t tag[2] = {htons(tpid), htons(static_cast<std::uint16_t>(header.hv1.tp_vlan_tci))};
            std::memcpy(data, bytes, 12);
            std::memcpy(data + 12, tag, 4);
            std::memcpy(data + 16, bytes + 12, captured - 12);
        } else {
            std::memcpy(data, bytes, captured);
        }
        item.set_ingress(_features.ifindex, 0);
        item.info().timestamp_ns = std::uint64_t{header.tp_sec} * 1'000'000'000ULL + header.tp_nsec;
        item.info().record = ++_records;
        item.info().wire_length = header.tp_len + (tagged ? 4 : 0);
        ++_stats.rx_packets;
        _stats.rx_bytes += length;
        return true;
    }

    int _fd;
    std::uint8_t* _ring;
    std::size_t _ring_bytes;
    tpacket_req3 _rx;
    tpacket_req3 _tx;
    std::uint8_t* _tx_ring{};
    xdp::frame_pool& _pool;
    int _poll_timeout_ms;
    port_features _features;
    port_stats _stats;
    std::uint64_t _records{};
    mutable std::uint64_t _missed{}; ///< PACKET_STATISTICS drops read so far
    std::uint32_t _block{};          ///< RX block we read next
    std::uint8_t* _packet{};         ///< next packet in the open block, nullptr when no block is open
    std::uint32_t _left{};           ///< packets left in the open block
    std::uint32_t _tx_next{};        ///< TX slot we fill next
    std::uint32_t _tx_pending{};     ///< slots marked since the last send()
};

struct fd_guard {
    int fd;
    ~fd_guard() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    int release() { return std::exchange(fd, -1); }
};

} // namespace

expected<std::unique_ptr<port>> detail::open_afpacket_port(std::string_view spec, std::string_view interface,
                                                           xdp::frame_pool& pool, const port_options& options) {
    auto info = query_interface(spec, interface);
    if (!info) {
        return info.error();
    }
    fd_guard socket{::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL))};
    if (socket.fd < 0) {
        return system_error(spec, "socket(AF_PACKET)", errno, "CAP_NET_RAW");
    }
    int version = TPACKET_V3;
    if (::setsockopt(socket.fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0) {
        return system_error(spec, "PACKET_VERSION TPACKET_V3", errno);
    }
    const int one = 1;
    if (::setsockopt(socket.fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) {
        return system_error(spec, "PACKET_IGNORE_OUTGOING (kernel 4.20 or later)", errno);
    }
    const bool qdisc_bypass = ::setsockopt(socket.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) == 0;

    // RX: ring_size frames' worth of 2 KiB, in 256 KiB blocks, at least 4 blocks so the kernel can fill some while
    // we read one.
    const std::uint64_t rx_bytes = std::uint64_t{std::max<std::uint32_t>(options.ring_size, 1)} * rx_frame_hint;
    tpacket_req3 rx{};
    rx.tp_block_size = rx_block_size;
    rx.tp_block_nr =
        static_cast<std::uint32_t>(std::max<std::uint64_t>(4, (rx_bytes + rx_block_size - 1) / rx_block_size));
    rx.tp_frame_size = rx_frame_hint;
    rx.tp_frame_nr = rx.tp_block_nr * (rx_block_size / rx_frame_hint);
    rx.tp_retire_blk_tov = std::max<std::uint32_t>(options.poll_timeout_ms, 1);
    if (::setsockopt(socket.fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx) < 0) {
        return system_error(
            spec, fmt::format("PACKET_RX_RING ({} blocks of {} bytes)", rx.tp_block_nr, rx.tp_block_size), errno);
    }
    // TX: fixed slots (the kernel refuses block parameters on a V3 TX ring).
    tpacket_req3 tx{};
    const std::uint32_t slots = std::max<std::uint32_t>(options.ring_size, tx_slots_per_block);
    tx.tp_block_size = tx_slot_size * tx_slots_per_block;
    tx.tp_block_nr = (slots + tx_slots_per_block - 1) / tx_slots_per_block;
    tx.tp_frame_size = tx_slot_size;
    tx.tp_frame_nr = tx.tp_block_nr * tx_slots_per_block;
    if (::setsockopt(socket.fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx) < 0) {
        return system_error(
            spec,
            fmt::format("PACKET_TX_RING TPACKET_V3 ({} slots of {} bytes; V3 TX rings need kernel 4.11 or later)",
                        tx.tp_frame_nr, tx.tp_frame_size),
            errno);
    }
    const std::size_t ring_bytes =
        std::size_t{rx.tp_block_size} * rx.tp_block_nr + std::size_t{tx.tp_block_size} * tx.tp_block_nr;
    void* ring = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, socket.fd, 0);
    if (ring == MAP_FAILED) {
        return system_error(spec, fmt::format("mmap of the {} KiB rings", ring_bytes / 1024), errno);
    }
    sockaddr_ll address{};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = static_cast<int>(info->ifindex);
    if (::bind(socket.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        const int saved = errno;
        ::munmap(ring, ring_bytes);
        return system_error(spec, fmt::format("bind to '{}'", interface), saved);
    }
    return std::unique_ptr<port>(
        std::make_unique<afpacket_port>(spec, socket.release(), static_cast<std::uint8_t*>(ring), ring_bytes, rx, tx,
                                        info.value(), std::string(interface), qdisc_bypass, pool, options));
}

} // namespace sluice::io
