// The native twins as bench variants: same packets, same knobs and map entries, same timing loop.
#include "native_variant.hpp"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstring>

#include "sluice/ebpf/maps.hpp"
#include "sluice/xdp/action.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::bench {
namespace {

const std::array<const native_twin*, 7> twins{&xdp_pass_twin,     &xdp_parse_count_twin, &ddos_filter_twin,
                                              &reflector_twin,    &proto_count_twin,     &tail_call_chain_twin,
                                              &global_config_twin};

class native_bench_variant final : public cli::bench_variant {
public:
    native_bench_variant(const native_twin& twin, cli::bench_target target)
        : _twin(twin), _target(std::move(target)), _buffer(xdp::standard_frame_size) {}
    native_bench_variant(const native_bench_variant&) = delete;
    native_bench_variant& operator=(const native_bench_variant&) = delete;
    ~native_bench_variant() override { close(); }

    expected<void> reset() override {
        close();
        auto loaded = cli::load_bench_object(_target);
        if (!loaded) {
            return loaded.error();
        }
        _state = _twin.create();
        if (_state == nullptr) {
            return error{fmt::format("native {}: out of memory", _twin.example)};
        }
        const cli::bench_object& reference = **loaded;
        // Knobs the twin does not have are the example's own business (none of the examples has one the twin lacks);
        // map entries it cannot take would make the columns do different work, so they are an error.
        for (const ebpf::rodata_variable& variable : reference.spec.rodata_variables()) {
            const std::vector<std::byte> value = reference.rodata(variable.name);
            (void)_twin.set_knob(_state, variable.name.c_str(), value.data(), value.size());
        }
        for (const std::string& assignment : _target.maps) {
            const std::string name = assignment.substr(0, assignment.find('='));
            ebpf::map* source = reference.object.find_map(name);
            if (source == nullptr) {
                return error{fmt::format("native {}: no map {}", _twin.example, name)};
            }
            bool refused = false;
            source->for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
                refused =
                    _twin.add_entry(_state, name.c_str(), key.data(), key.size(), value.data(), value.size()) != 0;
                return !refused;
            });
            if (refused) {
                return error{
                    fmt::format("native {}: the twin has no map {} for the --map entries", _twin.example, name)};
            }
        }
        return {};
    }

    expected<cli::packet_outcome> run_once(std::span<const std::uint8_t> packet) override {
        std::uint8_t* data = load(packet);
        const std::uint32_t code = _twin.run(_state, data, data + packet.size());
        const auto action = xdp::from_return_code(code);
        return cli::packet_outcome{static_cast<std::uint32_t>(action.value_or(xdp::action::aborted)),
                                   {data, data + packet.size()}};
    }

    expected<double> time(std::span<const std::uint8_t> packet, std::uint64_t repeat) override {
        std::uint8_t* data = load(packet);
        std::uint8_t* data_end = data + packet.size();
        // Through the function pointer, never inlined into the loop: a call per packet, as an engine makes one.
        auto* const run = _twin.run;
        void* const state = _state;
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < repeat; ++i) {
            const std::uint32_t code = run(state, data, data_end);
            asm volatile("" : : "r"(code) : "memory"); // keep every call and its result
        }
        const auto elapsed = std::chrono::steady_clock::now() - start;
        return std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(repeat);
    }

private:
    /// The packet at the same place in a frame-sized buffer as in sluice's frames (after 256 bytes of headroom).
    std::uint8_t* load(std::span<const std::uint8_t> packet) {
        std::uint8_t* data = _buffer.data() + ebpf::xdp_packet_headroom;
        std::memcpy(data, packet.data(), packet.size());
        return data;
    }

    void close() {
        if (_state != nullptr) {
            _twin.destroy(_state);
            _state = nullptr;
        }
    }

    const native_twin& _twin;
    cli::bench_target _target;
    std::vector<std::uint8_t> _buffer;
    void* _state{};
};

} // namespace

const native_twin* find_native_twin(std::string_view example) {
    for (const native_twin* twin : twins) {
        if (example == twin->example) {
            return twin;
        }
    }
    return nullptr;
}

cli::variant_factory native_variant(const native_twin& twin) {
    return {"native", cli::variant_role::native,
            [&twin](const cli::bench_target& target) -> expected<std::unique_ptr<cli::bench_variant>> {
                if (target.program != twin.program) {
                    return error{fmt::format("no native twin: bench/native/{}.c twins program {}, not {}", twin.example,
                                             twin.program, target.program)};
                }
                return std::unique_ptr<cli::bench_variant>(std::make_unique<native_bench_variant>(twin, target));
            }};
}

} // namespace sluice::bench
