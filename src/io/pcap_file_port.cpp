// `pcap:FILE` as a port: the pcap_reader (include/sluice/io/pcap.hpp) for input, the pcap_writer for output.
//
// The reader port is RX only; its records keep their timestamps and record numbers. The writer port is TX only: it
// is where XDP_PASS (`--pass pcap:FILE`) or a redirect can send frames, each written and released at once.
#include <utility>

#include <fmt/format.h>

#include "io/port_support.hpp"
#include "sluice/io/pcap.hpp"

namespace sluice::io {

namespace {

class pcap_input_port final : public port {
public:
    pcap_input_port(std::string_view spec, pcap_reader reader, xdp::frame_pool& pool)
        : port(std::string(spec)), _reader(std::move(reader)), _pool(pool),
          _features(detail::reader_features(
              "pcap", _reader.path(),
              fmt::format("read, {}{}", _reader.is_pcapng() ? "pcapng" : "pcap",
                          _reader.precision() == timestamp_precision::nanosecond ? ", nanosecond" : ""),
              pool)) {}

    const port_features& features() const override { return _features; }

    std::size_t rx_batch(std::span<xdp::frame*> out) override {
        return detail::read_batch(_reader, _pool, out, _features.ifindex, _bytes);
    }

    std::size_t tx_batch(std::span<xdp::frame* const>) override { return 0; }
    bool exhausted() const override { return _reader.state() != rx_state::more; }

    port_stats stats() const override {
        port_stats result;
        result.rx_packets = _reader.delivered();
        result.rx_bytes = _bytes;
        result.rx_errors = _reader.errors();
        return result;
    }

private:
    pcap_reader _reader;
    xdp::frame_pool& _pool;
    port_features _features;
    std::uint64_t _bytes{};
};

class pcap_output_port final : public port {
public:
    pcap_output_port(std::string_view spec, std::string path, pcap_writer writer, xdp::frame_pool& pool)
        : port(std::string(spec)), _writer(std::move(writer)), _pool(pool) {
        _features.kind = "pcap";
        _features.interface = std::move(path);
        _features.ifindex = detail::next_sluice_ifindex();
        _features.tx = true;
        _features.redirect_target = true;
        _features.pass_target = true;
        _features.mode = fmt::format(
            "write, pcap, {}", _writer.precision() == timestamp_precision::nanosecond ? "nanosecond" : "microsecond");
    }

    ~pcap_output_port() override { (void)_writer.close(); }

    const port_features& features() const override { return _features; }
    std::size_t rx_batch(std::span<xdp::frame*>) override { return 0; }
    bool exhausted() const override { return true; } // nothing to read, ever

    std::size_t tx_batch(std::span<xdp::frame* const> frames) override {
        const std::size_t written = _writer.tx_batch(frames);
        for (std::size_t i = 0; i < frames.size(); ++i) {
            if (i < written) {
                ++_stats.tx_packets;
                _stats.tx_bytes += frames[i]->length();
            } else {
                ++_stats.tx_errors; // accepted, but the writer is closed
            }
            detail::release_frame(frames[i], _pool);
        }
        return frames.size();
    }

    port_stats stats() const override { return _stats; }

private:
    pcap_writer _writer;
    xdp::frame_pool& _pool;
    port_features _features;
    port_stats _stats;
};

} // namespace

expected<std::unique_ptr<port>> detail::open_pcap_port(std::string_view spec, std::string_view path,
                                                       xdp::frame_pool& pool, const port_options& options) {
    if (path.empty()) {
        return port_error(spec, "no file name (pcap:FILE)");
    }
    if (options.output) {
        auto writer = pcap_writer::create(std::string(path), options.nanosecond ? timestamp_precision::nanosecond
                                                                                : timestamp_precision::microsecond);
        if (!writer) {
            return port_error(spec, writer.error().message);
        }
        return std::unique_ptr<port>(
            std::make_unique<pcap_output_port>(spec, std::string(path), std::move(writer.value()), pool));
    }
    auto reader = pcap_reader::open(std::string(path));
    if (!reader) {
        return port_error(spec, reader.error().message);
    }
    return std::unique_ptr<port>(std::make_unique<pcap_input_port>(spec, std::move(reader.value()), pool));
}

} // namespace sluice::io
