// The frame sluice's bench variants run a packet on (the executor's in bench_variants.cpp, the Lua twins' in
// bench/lua_bench.cpp): one buffer run again and again, as BPF_PROG_TEST_RUN's repeat does, in batches as the data
// path runs, with the ingress BPF_PROG_TEST_RUN gives the program. The program is a template parameter so that a
// final program type (xdp::executor) is called directly, as the data path calls it.
#pragma once

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>

#include "bench_command.hpp"
#include "sluice/xdp/batch_program.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::cli {

/// The ifindex the program sees as ingress: the loopback, as BPF_PROG_TEST_RUN gives it.
inline constexpr std::uint32_t bench_ifindex = 1;

/// A trace sink that drops bpf_printk lines: they would be timed as output, not as the program.
inline void drop_bench_trace(std::string_view, unsigned, void*) {}

class bench_frame {
public:
    bench_frame() : _pool(1), _frame(_pool.acquire()) {}

    /// Runs `packet` once through `program` (nullptr: the variant was not reset).
    template <typename program_type>
    expected<packet_outcome> run_once(program_type* program, std::span<const std::uint8_t> packet) {
        if (auto loaded = load(program != nullptr, packet); !loaded) {
            return loaded.error();
        }
        xdp::frame* frames[1] = {_frame};
        std::array<xdp::action, 1> actions{};
        program->run_batch(frames, actions);
        const auto bytes = _frame->packet();
        return packet_outcome{static_cast<std::uint32_t>(actions[0]), {bytes.begin(), bytes.end()}};
    }

    /// ns per run of `program` over `repeat` runs (rounded up to whole batches) on the one buffer holding `packet`.
    template <typename program_type>
    expected<double> time(program_type* program, std::span<const std::uint8_t> packet, std::uint64_t repeat) {
        if (auto loaded = load(program != nullptr, packet); !loaded) {
            return loaded.error();
        }
        std::array<xdp::frame*, xdp::max_batch_size> frames{};
        frames.fill(_frame);
        std::array<xdp::action, xdp::max_batch_size> actions{};
        const std::uint64_t batches = (repeat + xdp::max_batch_size - 1) / xdp::max_batch_size;
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < batches; ++i) {
            program->run_batch(frames, actions);
        }
        const auto elapsed = std::chrono::steady_clock::now() - start;
        return std::chrono::duration<double, std::nano>(elapsed).count() /
               static_cast<double>(batches * xdp::max_batch_size);
    }

private:
    expected<void> load(bool ready, std::span<const std::uint8_t> packet) {
        if (!ready) {
            return error{"bench: variant not reset"};
        }
        if (!_frame->assign(packet)) {
            return error{fmt::format("bench: a packet of {} bytes does not fit a frame", packet.size())};
        }
        _frame->set_ingress(bench_ifindex, 0);
        return {};
    }

    xdp::frame_pool _pool;
    xdp::frame* _frame;
};

} // namespace sluice::cli
