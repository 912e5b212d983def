// sluice_engine_bench: packets per second through the whole data path (memory port -> batch -> program -> dispatch
// -> pool), for the drop/pass, reflector and DDoS-filter examples, with 1 and 2 workers, in the interpreter and the
// JIT. Each worker reads its own memory port replaying the same generated packets (a copy into each frame, as a NIC
// DMA would); XDP_TX goes back out of the memory port (capture off: counted, released). The outcome shares of every
// variant of an example must agree (same packets, same program): a variant that disagrees is flagged.
//
//   sluice_engine_bench [--seconds S] [--packets N] [--examples a,b,c] [--engines interpreter,jit] [--workers 1,2]
//                       [--rounds R]
// --rounds R replays the packets exactly R times per worker instead of running for S seconds: a fixed amount of work,
// for instruction counts (valgrind --tool=callgrind) rather than rates.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/io/memory_port.hpp"
#include "sluice/io/traffic_generator.hpp"
#include "sluice/xdp/engine.hpp"
#include "sluice/xdp/executor.hpp"

namespace {

using namespace sluice;

std::vector<std::string> split(const std::string& text) {
    std::vector<std::string> parts;
    std::stringstream in(text);
    for (std::string part; std::getline(in, part, ',');) {
        if (!part.empty()) {
            parts.push_back(part);
        }
    }
    return parts;
}

struct result {
    double mpps{};
    double seconds{};
    std::array<double, 5> shares{}; ///< dropped, passed, transmitted, redirected, aborted: fractions of received
    std::string failure;
};

std::vector<std::vector<std::uint8_t>> generate(std::uint64_t count) {
    auto spec = io::traffic_spec::parse(fmt::format("packets={},size=64,attack=20@203.0.113.0/24", count));
    auto generator = io::traffic_generator::create(*spec);
    std::vector<std::vector<std::uint8_t>> packets;
    std::vector<std::uint8_t> buffer(2048);
    for (std::uint64_t i = 0; i < count; ++i) {
        xdp::packet_info info;
        const std::uint32_t length = generator->build(i, buffer, info);
        packets.emplace_back(buffer.begin(), buffer.begin() + length);
    }
    return packets;
}

/// The DDoS filter's operator input: block the generator's attack prefix (20% of the packets).
void prepare_maps(const std::string& example, ebpf::loaded_object& object) {
    if (example != "ddos_filter") {
        return;
    }
    if (ebpf::map* blocked = object.find_map("blocked_v4")) {
        const std::array<std::uint8_t, 8> key{24, 0, 0, 0, 203, 0, 113, 0};
        const std::uint32_t value = 1;
        (void)blocked->update_elem(key.data(), &value, 0);
    }
}

result measure(const std::string& example, xdp::execution_engine kind, unsigned workers,
               const std::vector<std::vector<std::uint8_t>>& packets, double seconds, std::uint64_t rounds) {
    result out;
    auto spec = ebpf::object_spec::open_file(std::string(SLUICE_EXAMPLES_DIR) + "/" + example + ".o");
    if (!spec) {
        out.failure = spec.error().message;
        return out;
    }
    if (example == "ddos_filter") {
        // Rate limiting depends on time, so its share would differ between variants of different speeds: a bucket
        // no source can exhaust leaves the blocklist as the only reason to drop.
        (void)spec->set_rodata("rate_pps=1000000000");
        (void)spec->set_rodata("burst=1000000000000");
    }
    ebpf::load_options load;
    load.cpus = workers;
    auto object = spec->load(load);
    if (!object) {
        out.failure = object.error().message;
        return out;
    }
    prepare_maps(example, *object);
    xdp::frame_pool pool(16384);
    std::vector<std::unique_ptr<io::memory_port>> ports;
    for (unsigned w = 0; w < workers; ++w) {
        io::memory_port_options options;
        options.capture = false;
        ports.push_back(std::make_unique<io::memory_port>(fmt::format("memory:bench{}", w), pool, options));
        for (const auto& packet : packets) {
            ports.back()->inject(packet);
        }
        ports.back()->repeat(rounds != 0 ? rounds : UINT64_MAX);
    }
    xdp::engine_config config;
    for (auto& port : ports) {
        config.ports.push_back({port.get(), std::nullopt});
    }
    config.workers = workers;
    config.pool = &pool;
    config.object = &*object;
    xdp::executor_options executor_options;
    executor_options.checked = false;
    executor_options.engine = kind;
    const ebpf::loaded_object* loaded = &*object;
    const ebpf::loaded_program* program = loaded->programs().front().get();
    config.make_program = [loaded, program, executor_options](unsigned, ebpf::execution_state& state)
        -> expected<std::unique_ptr<xdp::batch_program>> {
        auto made = xdp::executor::create(*loaded, *program, ebpf::xdp_helper_table(), state, executor_options);
        if (!made) {
            return made.error();
        }
        return std::unique_ptr<xdp::batch_program>(std::make_unique<xdp::executor>(std::move(*made)));
    };
    auto engine = xdp::engine::create(std::move(config));
    if (!engine) {
        out.failure = engine.error().message;
        return out;
    }
    if (rounds != 0) {
        for (auto& port : ports) {
            port->close_input(); // a fixed amount: the run ends when every port has delivered its rounds
        }
    }
    if (auto ran = (*engine)->run(std::chrono::duration<double>(rounds != 0 ? 0 : seconds)); !ran) {
        out.failure = ran.error().message;
        return out;
    }
    if (auto checked = (*engine)->check(); !checked) {
        out.failure = checked.error().message;
        return out;
    }
    const xdp::engine_report report = (*engine)->report();
    xdp::port_report total;
    for (const auto& port : report.ports) {
        total.received.packets += port.received.packets;
        total.dropped.packets += port.dropped.packets;
        total.passed.packets += port.passed.packets;
        total.transmitted.packets += port.transmitted.packets + port.tx_errors.packets;
        total.redirected.packets += port.redirected.packets;
        total.aborted.packets += port.aborted.packets;
    }
    out.seconds = report.seconds;
    out.mpps = static_cast<double>(total.received.packets) / report.seconds / 1e6;
    const double received = std::max<double>(1, static_cast<double>(total.received.packets));
    out.shares = {static_cast<double>(total.dropped.packets) / received,
                  static_cast<double>(total.passed.packets) / received,
                  static_cast<double>(total.transmitted.packets) / received,
                  static_cast<double>(total.redirected.packets) / received,
                  static_cast<double>(total.aborted.packets) / received};
    return out;
}

} // namespace

int main(int argc, char** argv) {
    double seconds = 2;
    std::uint64_t packet_count = 1024;
    std::uint64_t rounds = 0;
    std::vector<std::string> examples{"xdp_pass", "reflector", "ddos_filter"};
    std::vector<std::string> engines{"interpreter", "jit"};
    std::vector<unsigned> worker_counts{1, 2};
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string key = argv[i];
        const std::string value = argv[i + 1];
        if (key == "--seconds") {
            seconds = std::stod(value);
        } else if (key == "--rounds") {
            rounds = std::stoull(value);
        } else if (key == "--packets") {
            packet_count = std::stoull(value);
        } else if (key == "--examples") {
            examples = split(value);
        } else if (key == "--engines") {
            engines = split(value);
        } else if (key == "--workers") {
            worker_counts.clear();
            for (const std::string& count : split(value)) {
                worker_counts.push_back(static_cast<unsigned>(std::stoul(count)));
            }
        } else {
            fmt::print(stderr, "unknown option {}\n", key);
            return 2;
        }
    }
    const auto packets = generate(packet_count);
    fmt::print("{:<14} {:<12} {:>7} {:>9} {:>10}  {}\n", "example", "engine", "workers", "Mpps", "x 1 worker",
               "shares drop/pass/tx/redirect/aborted");
    int status = 0;
    for (const std::string& example : examples) {
        std::optional<std::array<double, 5>> reference;
        for (const std::string& engine_name : engines) {
            const auto kind = engine_name == "jit" ? xdp::execution_engine::jit : xdp::execution_engine::interpreter;
            double single = 0;
            for (const unsigned workers : worker_counts) {
                const result measured = measure(example, kind, workers, packets, seconds, rounds);
                if (!measured.failure.empty()) {
                    fmt::print("{:<14} {:<12} {:>7} skipped: {}\n", example, engine_name, workers, measured.failure);
                    continue;
                }
                if (workers == 1) {
                    single = measured.mpps;
                }
                bool agrees = true;
                if (!reference) {
                    reference = measured.shares;
                } else {
                    for (std::size_t k = 0; k < measured.shares.size(); ++k) {
                        agrees = agrees && std::fabs(measured.shares[k] - (*reference)[k]) < 0.01;
                    }
                }
                fmt::print("{:<14} {:<12} {:>7} {:>9.2f} {:>10}  {:.3f}/{:.3f}/{:.3f}/{:.3f}/{:.3f}{}\n", example,
                           engine_name, workers, measured.mpps,
                           single > 0 && workers != 1 ? fmt::format("{:.2f}", measured.mpps / single) : "",
                           measured.shares[0], measured.shares[1], measured.shares[2], measured.shares[3],
                           measured.shares[4], agrees ? "" : "  DISAGREES");
                if (!agrees) {
                    status = 1;
                }
            }
        }
    }
    return status;
}
