// pcap ports on libpcap (include/sluice/io/pcap.hpp has the contract).
//
// libpcap reads both pcap and pcapng and, opened with nanosecond precision, scales every timestamp to nanoseconds.
// What it does not tell is the file's own resolution, which the writer needs to keep ("nanosecond when the input had
// it"): sniff_precision() reads that from the file's first bytes.
#include "sluice/io/pcap.hpp"

#include <pcap/pcap.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <utility>

#include <fmt/format.h>

namespace sluice::io {

namespace {

constexpr std::uint32_t ethernet_header_length = 14; // ETH_HLEN: BPF_PROG_TEST_RUN refuses anything shorter

std::uint32_t read32(const std::uint8_t* bytes, bool big_endian) {
    if (big_endian) {
        return (std::uint32_t{bytes[0]} << 24) | (std::uint32_t{bytes[1]} << 16) | (std::uint32_t{bytes[2]} << 8) |
               bytes[3];
    }
    return (std::uint32_t{bytes[3]} << 24) | (std::uint32_t{bytes[2]} << 16) | (std::uint32_t{bytes[1]} << 8) |
           bytes[0];
}

std::uint16_t read16(const std::uint8_t* bytes, bool big_endian) {
    return big_endian ? static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1])
                      : static_cast<std::uint16_t>((bytes[1] << 8) | bytes[0]);
}

struct file_kind {
    bool pcapng{};
    timestamp_precision precision{timestamp_precision::microsecond};
};

// Classic pcap: the magic number says it (0xa1b23c4d is nanosecond). pcapng: the if_tsresol option (code 9) of the
// first Interface Description Block; 10^-6 when absent. A malformed head is left for libpcap to report.
file_kind sniff_kind(const std::string& path) {
    file_kind kind;
    std::ifstream in(path, std::ios::binary);
    std::array<std::uint8_t, 65536> head{};
    in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
    const auto size = static_cast<std::size_t>(in.gcount());
    if (size < 4) {
        return kind;
    }
    const std::uint32_t magic_le = read32(head.data(), false);
    if (magic_le == 0xa1b23c4d || read32(head.data(), true) == 0xa1b23c4d) {
        kind.precision = timestamp_precision::nanosecond;
        return kind;
    }
    if (magic_le != 0x0a0d0d0a || size < 12) {
        return kind;
    }
    kind.pcapng = true;
    const bool big_endian = read32(head.data() + 8, true) == 0x1a2b3c4d;
    std::size_t offset = 0;
    while (offset + 12 <= size) {
        const std::uint32_t type = read32(head.data() + offset, big_endian);
        const std::uint32_t length = read32(head.data() + offset + 4, big_endian);
        if (length < 12 || length % 4 != 0 || offset + length > size) {
            return kind;
        }
        if (type == 1) { // Interface Description Block: link type, reserved, snaplen, then options
            std::size_t option = offset + 16;
            const std::size_t options_end = offset + length - 4;
            while (option + 4 <= options_end) {
                const std::uint16_t code = read16(head.data() + option, big_endian);
                const std::uint16_t option_length = read16(head.data() + option + 2, big_endian);
                if (code == 0) {
                    break;
                }
                if (code == 9 && option_length == 1 && option + 5 <= options_end) {
                    const std::uint8_t resolution = head[option + 4];
                    const bool binary = (resolution & 0x80) != 0;
                    const unsigned exponent = resolution & 0x7fU;
                    // Finer than a microsecond keeps nanoseconds; 2^-20 is coarser than 10^-6, 2^-30 about 10^-9.
                    if ((!binary && exponent > 6) || (binary && exponent > 20)) {
                        kind.precision = timestamp_precision::nanosecond;
                    }
                    break;
                }
                option += 4 + ((option_length + 3U) & ~3U);
            }
            return kind;
        }
        offset += length;
    }
    return kind;
}

} // namespace

void pcap_reader::handle_close::operator()(::pcap* handle) const {
    pcap_close(handle);
}

pcap_reader::pcap_reader(pcap_reader&&) noexcept = default;
pcap_reader& pcap_reader::operator=(pcap_reader&&) noexcept = default;
pcap_reader::~pcap_reader() = default;

expected<pcap_reader> pcap_reader::open(const std::string& path) {
    std::array<char, PCAP_ERRBUF_SIZE> message{};
    ::pcap* handle = pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, message.data());
    if (handle == nullptr) {
        return error{fmt::format("cannot read {} as pcap or pcapng: {}", path, message.data())};
    }
    pcap_reader reader;
    reader._handle.reset(handle);
    reader._path = path;
    const int link_type = pcap_datalink(handle);
    if (link_type != DLT_EN10MB) {
        const char* link_name = pcap_datalink_val_to_name(link_type);
        return error{fmt::format("{}: link type {} ({}) is not supported; sluice reads Ethernet (EN10MB) captures only",
                                 path, link_name != nullptr ? link_name : "unknown", link_type)};
    }
    const file_kind kind = sniff_kind(path);
    reader._pcapng = kind.pcapng;
    reader._precision = kind.precision;
    reader._snapshot_length = static_cast<std::uint32_t>(std::max(pcap_snapshot(handle), 0));
    return reader;
}

void pcap_reader::note(std::string message) {
    ++_errors;
    if (_messages.size() < max_messages) {
        _messages.push_back(std::move(message));
    }
}

std::size_t pcap_reader::rx_batch(std::span<xdp::frame*> frames) {
    std::size_t filled = 0;
    while (filled < frames.size() && _state == rx_state::more) {
        pcap_pkthdr* header = nullptr;
        const u_char* bytes = nullptr;
        const int status = pcap_next_ex(_handle.get(), &header, &bytes);
        if (status == PCAP_ERROR_BREAK) {
            _state = rx_state::end;
            break;
        }
        if (status != 1) {
            // libpcap stops at the first bad record; everything before it has been handed out already.
            _state = rx_state::failed;
            _failure = error{fmt::format("{}: record {}: {}", _path, _records + 1, pcap_geterr(_handle.get()))};
            break;
        }
        ++_records;
        const std::uint32_t length = header->caplen;
        xdp::frame* item = frames[filled];
        if (length < ethernet_header_length) {
            note(fmt::format("record {}: {} bytes is shorter than an Ethernet header ({} bytes)", _records, length,
                             ethernet_header_length));
            continue;
        }
        if (!item->assign({bytes, length})) {
            note(fmt::format("record {}: a packet of {} bytes does not fit a frame of {} bytes (frame size {})",
                             _records, length, item->capacity(), item->frame_size()));
            continue;
        }
        if (header->len > length) {
            ++_cut_captures;
        }
        xdp::packet_info& info = item->info();
        // Opened with PCAP_TSTAMP_PRECISION_NANO, tv_usec holds nanoseconds.
        info.timestamp_ns = static_cast<std::uint64_t>(header->ts.tv_sec) * 1'000'000'000ULL +
                            static_cast<std::uint64_t>(header->ts.tv_usec);
        info.record = _records;
        info.wire_length = std::max(header->len, length);
        ++_delivered;
        ++filled;
    }
    return filled;
}

void pcap_writer::dead_close::operator()(::pcap* handle) const {
    pcap_close(handle);
}
void pcap_writer::dumper_close::operator()(::pcap_dumper* dumper) const {
    pcap_dump_close(dumper);
}

pcap_writer::pcap_writer(pcap_writer&&) noexcept = default;
pcap_writer& pcap_writer::operator=(pcap_writer&&) noexcept = default;
pcap_writer::~pcap_writer() = default;

expected<pcap_writer> pcap_writer::create(const std::string& path, timestamp_precision precision,
                                          std::uint32_t snapshot_length) {
    const auto libpcap_precision =
        precision == timestamp_precision::nanosecond ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO;
    pcap_writer writer;
    writer._dead.reset(pcap_open_dead_with_tstamp_precision(DLT_EN10MB, static_cast<int>(snapshot_length),
                                                            static_cast<u_int>(libpcap_precision)));
    if (!writer._dead) {
        return error{fmt::format("cannot create {}: libpcap could not set up a writer", path)};
    }
    ::pcap_dumper* dumper = pcap_dump_open(writer._dead.get(), path.c_str());
    if (dumper == nullptr) {
        return error{fmt::format("cannot create {}: {}", path, pcap_geterr(writer._dead.get()))};
    }
    writer._dumper.reset(dumper);
    writer._path = path;
    writer._precision = precision;
    return writer;
}

void pcap_writer::write(std::span<const std::uint8_t> bytes, std::uint64_t timestamp_ns, std::uint32_t wire_length) {
    if (!_dumper) {
        return;
    }
    pcap_pkthdr header{};
    header.ts.tv_sec = static_cast<decltype(header.ts.tv_sec)>(timestamp_ns / 1'000'000'000ULL);
    const std::uint64_t fraction = timestamp_ns % 1'000'000'000ULL;
    header.ts.tv_usec = static_cast<decltype(header.ts.tv_usec)>(
        _precision == timestamp_precision::nanosecond ? fraction : fraction / 1000);
    header.caplen = static_cast<bpf_u_int32>(bytes.size());
    header.len = std::max(header.caplen, wire_length);
    pcap_dump(reinterpret_cast<u_char*>(_dumper.get()), &header, bytes.data());
    ++_written;
}

std::size_t pcap_writer::tx_batch(std::span<xdp::frame* const> frames) {
    if (!_dumper) {
        return 0;
    }
    for (const xdp::frame* item : frames) {
        // Passed to write() as the wire length, which takes the larger of it and the packet: a capture cut by its
        // snaplen stays marked as cut, and a packet a program grew is never written shorter than it is.
        const std::uint32_t wire = item->info().wire_length;
        write(item->packet(), item->info().timestamp_ns, wire);
    }
    return frames.size();
}

expected<void> pcap_writer::close() {
    if (!_dumper) {
        return {};
    }
    const bool flushed = pcap_dump_flush(_dumper.get()) == 0;
    const bool clean = flushed && std::ferror(pcap_dump_file(_dumper.get())) == 0;
    _dumper.reset();
    _dead.reset();
    if (!clean) {
        return error{fmt::format("writing {} failed (disk full or I/O error)", _path)};
    }
    return {};
}

} // namespace sluice::io
