// What the Lua tests share: both engines, frames made from bytes or from the traffic generator, and a batch program
// run over all of them.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/io/traffic_generator.hpp"
#include "sluice/lua/script_program.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::lua::testing {

inline constexpr std::array<engine, 2> both_engines{engine::lua54, engine::luajit};

inline std::string engine_name(const ::testing::TestParamInfo<engine>& info) {
    return info.param == engine::luajit ? "luajit" : "lua54";
}

/// Ethernet (optionally one VLAN tag) + IPv4 + UDP with `payload` bytes of zeros; addresses and ports as given.
inline std::vector<std::uint8_t> ipv4_udp(std::uint32_t source, std::uint32_t destination, std::uint16_t source_port,
                                          std::uint16_t destination_port, std::size_t payload = 18,
                                          int vlan = -1) {
    std::vector<std::uint8_t> bytes{0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2};
    const auto be16 = [&](std::uint32_t value) {
        bytes.push_back(static_cast<std::uint8_t>(value >> 8U));
        bytes.push_back(static_cast<std::uint8_t>(value));
    };
    const auto be32 = [&](std::uint32_t value) {
        be16(value >> 16U);
        be16(value & 0xffffU);
    };
    if (vlan >= 0) {
        be16(0x8100);
        be16(static_cast<std::uint32_t>(vlan));
    }
    be16(0x0800);
    const auto total = static_cast<std::uint32_t>(20 + 8 + payload);
    bytes.push_back(0x45);
    bytes.push_back(0);
    be16(total);
    be32(0);
    bytes.push_back(64); // ttl
    bytes.push_back(17); // udp
    be16(0);
    be32(source);
    be32(destination);
    be16(source_port);
    be16(destination_port);
    be16(static_cast<std::uint32_t>(8 + payload));
    be16(0);
    bytes.resize(bytes.size() + payload, 0);
    return bytes;
}

/// Frames holding given packets, from one pool.
class packet_set {
public:
    explicit packet_set(std::size_t capacity = 256) : _pool(capacity) {}
    ~packet_set() {
        for (xdp::frame* item : _frames) {
            _pool.release(item);
        }
    }

    xdp::frame* add(const std::vector<std::uint8_t>& bytes) {
        xdp::frame* item = _pool.acquire();
        EXPECT_NE(item, nullptr);
        EXPECT_TRUE(item->assign(bytes));
        item->info().record = _frames.size() + 1;
        _frames.push_back(item);
        return item;
    }
    std::vector<xdp::frame*>& frames() { return _frames; }

    std::vector<xdp::action> run(xdp::batch_program& program) {
        std::vector<xdp::action> out(_frames.size());
        program.run_batch(_frames, out);
        return out;
    }

private:
    xdp::frame_pool _pool;
    std::vector<xdp::frame*> _frames;
};

/// Runs `program` over every packet of `generator` in batches of 64; the actions in packet order.
inline std::vector<xdp::action> run_generated(xdp::batch_program& program, io::traffic_generator& generator) {
    xdp::frame_pool pool(xdp::max_batch_size);
    std::vector<xdp::action> actions;
    std::array<xdp::frame*, xdp::max_batch_size> frames{};
    std::array<xdp::action, xdp::max_batch_size> out{};
    while (true) {
        const std::size_t acquired = pool.acquire_batch(frames);
        const std::size_t count = generator.rx_batch(std::span(frames.data(), acquired));
        if (count == 0) {
            pool.release_batch(std::span(frames.data(), acquired));
            break;
        }
        program.run_batch(std::span(frames.data(), count), std::span(out.data(), count));
        actions.insert(actions.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(count));
        pool.release_batch(std::span(frames.data(), acquired));
    }
    return actions;
}

/// Collects what scripts print (the trace sink bpf_trace_printk writes to).
struct trace_capture {
    std::vector<std::string> lines;

    explicit trace_capture(ebpf::execution_state& state) {
        state.trace = [](std::string_view line, unsigned, void* opaque) {
            static_cast<trace_capture*>(opaque)->lines.emplace_back(line);
        };
        state.trace_opaque = this;
    }
    trace_capture(const trace_capture&) = delete; // the state points at this object
    trace_capture& operator=(const trace_capture&) = delete;
};

/// A script_program that must load; lines it logs are kept.
struct loaded_script {
    ebpf::execution_state state;
    std::vector<std::string> log;
    std::optional<script_program> program;

    loaded_script(engine kind, const std::string& source, options settings = {}) {
        settings.engine = kind;
        settings.log = [this](std::string_view line) { log.emplace_back(line); };
        auto created = script_program::create(source, "test.lua", state, std::move(settings));
        if (!created) {
            ADD_FAILURE() << created.error().message;
            return;
        }
        program.emplace(std::move(*created));
    }
};

} // namespace sluice::lua::testing
