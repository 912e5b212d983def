// `gen:SPEC` as a port: the traffic generator (include/sluice/io/traffic_generator.hpp) behind rx_batch. RX only;
// exhausted() once the spec's packet count has been generated.
#include <utility>

#include <fmt/format.h>

#include "io/port_support.hpp"
#include "sluice/io/traffic_generator.hpp"

namespace sluice::io {

namespace {

class generator_port final : public port {
public:
    generator_port(std::string_view spec, traffic_generator generator, xdp::frame_pool& pool)
        : port(std::string(spec)), _generator(std::move(generator)), _pool(pool),
          _features(detail::reader_features(
              "gen", std::string(spec.substr(spec.find(':') + 1)),
              fmt::format("generator, {} packets, seed {}", _generator.spec().packets, _generator.spec().seed), pool)) {
    }

    const port_features& features() const override { return _features; }

    std::size_t rx_batch(std::span<xdp::frame*> out) override {
        const std::size_t filled = detail::read_batch(_generator, _pool, out, _features.ifindex, _stats.rx_bytes);
        _stats.rx_packets += filled;
        _stats.rx_errors = _generator.errors();
        return filled;
    }

    std::size_t tx_batch(std::span<xdp::frame* const>) override { return 0; }
    bool exhausted() const override { return _generator.state() != rx_state::more; }
    port_stats stats() const override { return _stats; }

private:
    traffic_generator _generator;
    xdp::frame_pool& _pool;
    port_features _features;
    port_stats _stats;
};

} // namespace

expected<std::unique_ptr<port>> detail::open_generator_port(std::string_view spec, std::string_view text,
                                                            xdp::frame_pool& pool, const port_options&) {
    auto parsed = traffic_spec::parse(text);
    if (!parsed) {
        return port_error(spec, parsed.error().message);
    }
    auto generator = traffic_generator::create(parsed.value());
    if (!generator) {
        return port_error(spec, generator.error().message);
    }
    return std::unique_ptr<port>(std::make_unique<generator_port>(spec, std::move(generator.value()), pool));
}

} // namespace sluice::io
