// pcap ports: packets from a pcap or pcapng file into frames, and frames out to a pcap file (through libpcap).
//
// Contract:
// - pcap_reader::open() accepts classic pcap (microsecond or nanosecond, either byte order) and pcapng. Only Ethernet
//   (DLT_EN10MB) captures are accepted for now; any other link type is refused at open() with its name.
// - rx_batch(frames) fills frames from the front, in file order, up to frames.size() (a batch is at most 64), and
//   returns how many it filled; frames past the count are untouched and stay the caller's. Each filled frame holds
//   the captured bytes, its timestamp in nanoseconds and its 1-based record number.
// - A record larger than the frames' capacity is not delivered: it is counted in errors() and described in
//   messages() (the first max_messages of them), never silently lost. Reading goes on with the next record.
// - A truncated or corrupt file stops the reader: every packet before the bad record is delivered (and counted), then
//   rx_batch returns 0, state() is failed and failure() names the record ("record 7: truncated dump file; ...").
// - At the end of a good file rx_batch returns 0 and state() is end.
// - pcap_writer writes classic pcap, Ethernet, with each frame's timestamp; nanosecond precision on request (use the
//   reader's precision to keep what the input had). tx_batch copies frames out and leaves them the caller's.
// - Neither allocates per packet; errors are values (no exceptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice/expected.hpp"
#include "sluice/xdp/frame.hpp"

struct pcap;        // libpcap's pcap_t, kept out of this header so that embedders need not have pcap.h
struct pcap_dumper; // libpcap's pcap_dumper_t

namespace sluice::io {

enum class timestamp_precision : std::uint8_t { microsecond, nanosecond };

/// Where a reader stands.
enum class rx_state : std::uint8_t {
    more,   ///< more packets may follow
    end,    ///< the file ended cleanly
    failed, ///< the file is truncated or corrupt; failure() says where
};

/// The largest batch a port hands the engine (DESIGN.md, "Batches").
inline constexpr std::size_t max_batch = 64;

class pcap_reader {
public:
    /// Opens `path` (pcap or pcapng). Errors: file missing or unreadable, not a capture file, link type not Ethernet.
    static expected<pcap_reader> open(const std::string& path);

    pcap_reader(pcap_reader&&) noexcept;
    pcap_reader& operator=(pcap_reader&&) noexcept;
    ~pcap_reader();

    /// Fills up to frames.size() frames; returns how many. 0 means state() is end or failed.
    std::size_t rx_batch(std::span<xdp::frame*> frames);

    rx_state state() const { return _state; }
    /// Set when state() is failed: the record number and libpcap's reason.
    const std::optional<sluice::error>& failure() const { return _failure; }

    std::uint64_t records() const { return _records; }     ///< records read, good or oversized
    std::uint64_t delivered() const { return _delivered; } ///< packets handed out in frames
    std::uint64_t errors() const { return _errors; }       ///< records not delivered (larger than a frame)
    /// Packets whose capture was cut (captured length < wire length): delivered as captured, counted here.
    std::uint64_t cut_captures() const { return _cut_captures; }
    /// Descriptions of the first max_messages errors ("record 12: 9014 bytes do not fit a frame of 3520").
    const std::vector<std::string>& messages() const { return _messages; }
    static constexpr std::size_t max_messages = 16;

    /// The file's timestamp resolution (pcap magic number, or pcapng's if_tsresol of the first interface).
    timestamp_precision precision() const { return _precision; }
    bool is_pcapng() const { return _pcapng; }
    std::uint32_t snapshot_length() const { return _snapshot_length; }
    const std::string& path() const { return _path; }

private:
    struct handle_close {
        void operator()(::pcap* handle) const;
    };

    pcap_reader() = default;
    void note(std::string message);

    std::unique_ptr<::pcap, handle_close> _handle;
    std::string _path;
    rx_state _state{rx_state::more};
    std::optional<sluice::error> _failure;
    std::vector<std::string> _messages;
    std::uint64_t _records{};
    std::uint64_t _delivered{};
    std::uint64_t _errors{};
    std::uint64_t _cut_captures{};
    timestamp_precision _precision{timestamp_precision::microsecond};
    bool _pcapng{};
    std::uint32_t _snapshot_length{};
};

class pcap_writer {
public:
    /// Creates (or truncates) `path` as an Ethernet pcap file with the given timestamp precision.
    static expected<pcap_writer> create(const std::string& path,
                                        timestamp_precision precision = timestamp_precision::microsecond,
                                        std::uint32_t snapshot_length = 262144);

    pcap_writer(pcap_writer&&) noexcept;
    pcap_writer& operator=(pcap_writer&&) noexcept;
    ~pcap_writer();

    /// Writes each frame's packet (data .. data_end) with its info().timestamp_ns and wire length. Returns how many
    /// were written (all of them unless the writer is closed). The frames stay the caller's.
    std::size_t tx_batch(std::span<xdp::frame* const> frames);
    /// Writes one packet from plain bytes (the generator writes pcaps this way, without frames).
    void write(std::span<const std::uint8_t> bytes, std::uint64_t timestamp_ns, std::uint32_t wire_length = 0);

    /// Flushes and closes; reports a write error (disk full, I/O error) if there was one. Idempotent.
    expected<void> close();

    std::uint64_t written() const { return _written; }
    timestamp_precision precision() const { return _precision; }

private:
    struct dead_close {
        void operator()(::pcap* handle) const;
    };
    struct dumper_close {
        void operator()(::pcap_dumper* dumper) const;
    };

    pcap_writer() = default;

    std::unique_ptr<::pcap, dead_close> _dead;
    std::unique_ptr<::pcap_dumper, dumper_close> _dumper;
    std::string _path;
    std::uint64_t _written{};
    timestamp_precision _precision{timestamp_precision::microsecond};
};

} // namespace sluice::io
