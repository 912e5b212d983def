// Lua scripts across the workers of one run (issue 8: one Lua state per worker, maps shared): the data path engine
// over two memory ports, each read by its own worker running its own script_program, all given one script_maps
// registry and one script_group. A hash map written on one worker is read on the other; a per-CPU map has a slot per
// worker; declarations that disagree between workers fail with both definitions; a reload of the run reaches both
// workers, each batch runs on one version and no packet is lost or run twice. Both engines.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "lua/lua_test_support.hpp"
#include "sluice/io/memory_port.hpp"
#include "sluice/lua/script_group.hpp"
#include "sluice/lua/script_maps.hpp"
#include "sluice/xdp/engine.hpp"

namespace sluice::lua {
namespace {

using testing::ipv4_udp;

constexpr unsigned workers = 2;

/// A worker's script_program behind a check of every batch it runs: all of the batch's verdicts must be the one of
/// the version that ran it (version() after run_batch: only the worker swaps versions, at the start of run_batch).
class version_checked final : public xdp::batch_program {
public:
    version_checked(script_program program, std::vector<xdp::action> verdict_of_version,
                    std::atomic<std::uint64_t>& mixed)
        : _program(std::move(program)), _verdicts(std::move(verdict_of_version)), _mixed(mixed) {}

    script_program& program() { return _program; }

    void run_batch(std::span<xdp::frame* const> frames, std::span<xdp::action> out) override {
        _program.run_batch(frames, out);
        const std::uint64_t version = _program.version();
        const xdp::action expected = version < _verdicts.size() ? _verdicts[version] : xdp::action::aborted;
        for (const xdp::action verdict : out.first(frames.size())) {
            if (verdict != expected) {
                _mixed.fetch_add(1, std::memory_order_relaxed);
                break;
            }
        }
    }
    std::span<const ebpf::redirect_decision> redirect_decisions() const override {
        return _program.redirect_decisions();
    }
    void count_port_errors(std::uint64_t packets, std::uint64_t bytes) override {
        _program.count_port_errors(packets, bytes);
    }
    const xdp::executor_stats& stats() const override { return _program.stats(); }

private:
    script_program _program;
    std::vector<xdp::action> _verdicts;
    std::atomic<std::uint64_t>& _mixed;
};

class workers_test : public ::testing::TestWithParam<engine> {
protected:
    /// Worker w runs source_of(w); with `verdicts`, each batch is checked against its version's verdict.
    expected<void> make_engine(const std::function<std::string(unsigned worker)>& source_of,
                               std::vector<xdp::action> verdicts = {}) {
        for (unsigned i = 0; i < workers; ++i) {
            _ports.push_back(std::make_unique<io::memory_port>(fmt::format("port{}", i), _pool));
        }
        xdp::engine_config config;
        for (const auto& port : _ports) {
            config.ports.push_back({port.get(), std::nullopt});
        }
        config.workers = workers;
        config.pool = &_pool;
        config.pin_workers = false;
        config.make_program =
            [this, source_of, verdicts](unsigned worker,
                                        ebpf::execution_state& state) -> expected<std::unique_ptr<xdp::batch_program>> {
            options settings;
            settings.engine = GetParam();
            settings.maps = _maps;
            settings.cpus = workers;
            settings.log = [this](std::string_view line) {
                const std::lock_guard guard(_log_lock);
                _log.emplace_back(line);
            };
            auto made = script_program::create(source_of(worker), "workers.lua", state, std::move(settings));
            if (!made) {
                return made.error();
            }
            if (verdicts.empty()) {
                auto program = std::make_unique<script_program>(std::move(*made));
                _group.add(*program);
                return std::unique_ptr<xdp::batch_program>(std::move(program));
            }
            auto checked = std::make_unique<version_checked>(std::move(*made), verdicts, _mixed_batches);
            _group.add(checked->program());
            return std::unique_ptr<xdp::batch_program>(std::move(checked));
        };
        auto created = xdp::engine::create(std::move(config));
        if (!created) {
            return created.error();
        }
        _engine = std::move(*created);
        return {};
    }

    /// Polls the engine's report until `done` holds (a hang guard of a minute, not a timing assertion).
    bool wait_for(const std::function<bool(const xdp::engine_report&)>& done) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
        while (!done(_engine->report())) {
            if (std::chrono::steady_clock::now() > deadline) {
                ADD_FAILURE() << "the engine did not get there within a minute";
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return true;
    }

    /// Closes the inputs, waits for the workers, checks the accounting (every port, every program, every frame).
    xdp::engine_report finish() {
        for (const auto& port : _ports) {
            port->close_input();
        }
        _engine->wait();
        return checked_report();
    }

    xdp::engine_report checked_report() {
        const xdp::engine_report report = _engine->report();
        auto checked = _engine->check();
        EXPECT_TRUE(checked) << checked.error().message;
        for (const xdp::port_report& port : report.ports) {
            EXPECT_TRUE(port.balanced()) << port.name;
        }
        EXPECT_EQ(report.pool_outstanding, 0U);
        return report;
    }

    /// Every worker's u64 slot of per-CPU map `name` at `key`.
    std::vector<std::uint64_t> per_cpu_values(std::string_view name, std::uint32_t key) {
        ebpf::map* target = _maps->find(name);
        EXPECT_NE(target, nullptr) << name;
        std::vector<std::uint64_t> values(workers);
        if (target != nullptr) {
            EXPECT_EQ(target->lookup_elem(&key, values.data()), 0) << name << "[" << key << "]";
        }
        return values;
    }

    std::vector<std::string> log() {
        const std::lock_guard guard(_log_lock);
        return _log;
    }

    xdp::frame_pool _pool{8192};
    std::vector<std::unique_ptr<io::memory_port>> _ports;
    std::shared_ptr<script_maps> _maps = std::make_shared<script_maps>(workers);
    script_group _group;
    std::atomic<std::uint64_t> _mixed_batches{};
    std::mutex _log_lock;
    std::vector<std::string> _log;
    std::unique_ptr<xdp::engine> _engine; ///< last: its programs point at the members above
};

// Packets to destination 1 record their source and the worker that saw them; packets to destination 2 pass only if
// another worker recorded their source.
constexpr const char* shared_hash_script = R"lua(
local seen = maps.declare{name = "seen", type = "hash", key = "be32 source", value = "u32 writer, u32 packets",
                          max_entries = 1024}
local fresh = seen:value()
function xdp(pkt)
    local _, l3 = pkt:eth()
    local _, _, source, destination = pkt:ipv4(l3)
    if destination == 1 then
        if not seen:add(source, "packets", 1) then
            fresh.writer = processor_id()
            fresh.packets = 1
            seen:update(source, fresh, BPF_NOEXIST)
        end
        return XDP_DROP
    end
    local entry = seen:lookup(source)
    if entry and entry.writer ~= processor_id() then
        return XDP_PASS
    end
    return XDP_ABORTED
end
)lua";

TEST_P(workers_test, AHashMapWrittenOnOneWorkerIsReadOnTheOther) {
    ASSERT_TRUE(make_engine([](unsigned) { return std::string{shared_hash_script}; }));
    ASSERT_EQ(_group.size(), workers);
    constexpr std::uint32_t sources = 100;
    for (int round = 0; round < 2; ++round) {
        for (std::uint32_t source = 1; source <= sources; ++source) {
            _ports[0]->inject(ipv4_udp(source, 1, 1000, 2000)); // port 0: worker 0 writes
        }
    }
    ASSERT_TRUE(_engine->start());
    ASSERT_TRUE(wait_for([](const xdp::engine_report& now) { return now.ports[0].dropped.packets == 2 * sources; }));
    for (std::uint32_t source = 1; source <= sources; ++source) {
        _ports[1]->inject(ipv4_udp(source, 2, 1000, 2000)); // port 1: worker 1 reads
    }
    const xdp::engine_report report = finish();
    EXPECT_EQ(report.ports[0].dropped.packets, 2 * sources);
    EXPECT_EQ(report.ports[1].passed.packets, sources) << "worker 1 found every source worker 0 recorded";
    EXPECT_EQ(report.ports[1].aborted.packets, 0U);
    EXPECT_THAT(log(), ::testing::IsEmpty());

    ebpf::map* seen = _maps->find("seen");
    ASSERT_NE(seen, nullptr);
    EXPECT_EQ(_maps->list().size(), 1U) << "one map for the run, not one per worker";
    for (std::uint32_t source = 1; source <= sources; ++source) {
        const std::uint32_t key = __builtin_bswap32(source);
        std::array<std::uint32_t, 2> value{};
        ASSERT_EQ(seen->lookup_elem(&key, value.data()), 0) << source;
        EXPECT_EQ(value[0], 0U) << "written by worker 0";
        EXPECT_EQ(value[1], 2U) << "both of its packets counted in the one map";
    }
}

TEST_P(workers_test, APerCpuMapHasASlotPerWorkerThatAddUpToThePackets) {
    ASSERT_TRUE(make_engine([](unsigned) {
        return std::string{R"lua(
local counts = maps.declare{name = "counts", type = "percpu_array", key = "u32 index", value = "u64 packets",
                            max_entries = 2}
function xdp(pkt)
    counts:add(0, "packets", 1)
    counts:add(1, "packets", processor_id())
    return XDP_DROP
end
)lua"};
    }));
    const std::array<std::uint64_t, workers> sent{300, 500};
    for (unsigned port = 0; port < workers; ++port) {
        for (std::uint64_t i = 0; i < sent[port]; ++i) {
            _ports[port]->inject(ipv4_udp(static_cast<std::uint32_t>(i), 9, 1, 2));
        }
    }
    ASSERT_TRUE(_engine->start());
    const xdp::engine_report report = finish();
    const std::vector<std::uint64_t> packets = per_cpu_values("counts", 0);
    EXPECT_EQ(packets, (std::vector<std::uint64_t>{sent[0], sent[1]})) << "port i is read by worker i";
    EXPECT_EQ(packets[0] + packets[1], report.ports[0].received.packets + report.ports[1].received.packets);
    EXPECT_EQ(per_cpu_values("counts", 1), (std::vector<std::uint64_t>{0, sent[1]}))
        << "each slot was written by its own worker (processor_id)";
}

TEST_P(workers_test, DeclarationsThatDisagreeBetweenWorkersFailWithBothDefinitions) {
    const auto made = make_engine([](unsigned worker) {
        return fmt::format(R"lua(
maps.declare{{name = "flows", type = "hash", key = "u32 id", value = "u64 bytes", max_entries = {}}}
function xdp(pkt) return XDP_PASS end
)lua",
                           worker == 0 ? 16 : 32);
    });
    ASSERT_FALSE(made);
    const std::string& message = made.error().message;
    EXPECT_THAT(message, ::testing::HasSubstr("maps.declare{name='flows'}"));
    EXPECT_THAT(message, ::testing::HasSubstr("workers.lua on worker 1 declares it as (hash, key 4 bytes, value 8 "
                                              "bytes, max_entries 32, flags 0x0)"));
    EXPECT_THAT(message, ::testing::HasSubstr("another definition: (hash, key 4 bytes, value 8 bytes, max_entries 16, "
                                              "flags 0x0), declared by workers.lua on worker 0"));
}

/// Version `version` of a script that counts its packets by version in a per-CPU map and drops (0) or passes (1).
std::string version_source(int version) {
    return fmt::format(R"lua(
local runs = maps.declare{{name = "runs", type = "percpu_array", key = "u32 version", value = "u64 packets",
                          max_entries = 2}}
function xdp(pkt)
    runs:add({}, "packets", 1)
    return {}
end
)lua",
                       version, version == 0 ? "XDP_DROP" : "XDP_PASS");
}

TEST_P(workers_test, AReloadReachesEveryWorkerWithNoPacketLostOrRunTwice) {
    ASSERT_TRUE(make_engine([](unsigned) { return version_source(0); }, {xdp::action::drop, xdp::action::pass}));
    for (const auto& port : _ports) {
        for (std::uint32_t i = 0; i < 64; ++i) {
            port->inject(ipv4_udp(i, 9, 1, 2));
        }
        port->repeat(1'000'000'000); // endless: the test stops the engine
    }
    ASSERT_TRUE(_engine->start());
    constexpr std::uint64_t some = 64 * 20;
    ASSERT_TRUE(wait_for([&](const xdp::engine_report& now) {
        return now.ports[0].received.packets > some && now.ports[1].received.packets > some;
    }));
    const auto refused = _group.reload("function xdp(pkt) return", "broken.lua");
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message, ::testing::HasSubstr("every worker keeps its running version"));
    ASSERT_TRUE(_group.reload(version_source(1), "workers.lua"));
    ASSERT_TRUE(wait_for([&](const xdp::engine_report& now) {
        return _group.version() == 1 && now.ports[0].passed.packets > some && now.ports[1].passed.packets > some;
    }));
    _engine->request_stop();
    _engine->wait();
    const xdp::engine_report report = checked_report();

    EXPECT_EQ(_mixed_batches.load(), 0U) << "a batch ran on two versions";
    EXPECT_EQ(_group.statistics().reloads, workers) << "one swap per worker";
    const std::vector<std::uint64_t> first = per_cpu_values("runs", 0);
    const std::vector<std::uint64_t> second = per_cpu_values("runs", 1);
    for (unsigned worker = 0; worker < workers; ++worker) {
        const xdp::port_report& port = report.ports[worker];
        EXPECT_GT(first[worker], 0U);
        EXPECT_GT(second[worker], 0U);
        EXPECT_EQ(first[worker], port.dropped.packets) << "worker " << worker;
        EXPECT_EQ(second[worker], port.passed.packets) << "worker " << worker;
        EXPECT_EQ(first[worker] + second[worker], port.received.packets)
            << "worker " << worker << ": every packet run once, by one version";
    }
}

INSTANTIATE_TEST_SUITE_P(engines, workers_test, ::testing::ValuesIn(testing::both_engines), testing::engine_name);

// The registry without an engine: programs given the same script_maps share a declared map; one without makes its
// own; a worker whose cpu the maps were not made for is refused.
TEST(script_maps, ProgramsGivenTheSameRegistryShareDeclaredMaps) {
    const std::string source = R"lua(
local m = maps.declare{name = "shared", type = "array", key = "u32 i", value = "u64 v", max_entries = 4}
function xdp(pkt) return XDP_PASS end
)lua";
    auto maps = std::make_shared<script_maps>(2);
    options settings;
    settings.maps = maps;
    testing::loaded_script first(engine::lua54, source, settings);
    testing::loaded_script second(engine::lua54, source, settings);
    testing::loaded_script alone(engine::lua54, source);
    ASSERT_TRUE(first.program && second.program && alone.program);
    EXPECT_EQ(first.program->find_map("shared"), second.program->find_map("shared"));
    EXPECT_EQ(first.program->find_map("shared"), maps->find("shared"));
    EXPECT_EQ(first.program->declared_maps(), maps);
    EXPECT_NE(alone.program->find_map("shared"), maps->find("shared")) << "no registry given: its own maps";

    ebpf::execution_state third_worker(2);
    options on_cpu_two;
    on_cpu_two.maps = maps;
    const auto refused = script_program::create(source, "third.lua", third_worker, on_cpu_two);
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message,
                ::testing::HasSubstr("third.lua: the worker runs as cpu 2, but the script's maps are made for 2 cpus"));
    const auto declared = maps->declare({ebpf::map_type::hash, 4, 8, 16, 0, "late"}, "late.lua on worker 2", 2);
    ASSERT_FALSE(declared);
    EXPECT_THAT(declared.error().message, ::testing::HasSubstr("late.lua on worker 2 runs as cpu 2, but the run's maps "
                                                               "have 2 cpus"));
}

} // namespace
} // namespace sluice::lua
