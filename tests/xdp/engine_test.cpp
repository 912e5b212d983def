// The engine end to end on memory ports and real maps: every action dispatched to its place, redirects by ifindex,
// devmap (entries, fallback action, broadcast with and without the ingress port, entry programs), devmap_hash,
// cpumap between two workers (the cpumap program runs on the target worker), the in-process AF_XDP socket, TX
// errors; the accounting balances in every test and every frame returns to the pool.
#include "sluice/xdp/engine.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/io/memory_port.hpp"
#include "sluice/xdp/executor.hpp"

namespace sluice::xdp {
namespace {

using io::memory_port;

constexpr std::uint8_t drop = 0, pass = 1, tx = 2, abort_it = 3, redirect_ifindex = 4, devmap_key = 5, broadcast = 6,
                       broadcast_exclude = 7, devmap_fallback = 8, devmap_hash_key = 9, cpumap_key = 10,
                       xskmap_key = 11, unknown = 12;

/// A 64-byte packet: selector, key, then `fill` bytes numbered by `serial` so packets can be told apart.
std::vector<std::uint8_t> packet(std::uint8_t selector, std::uint8_t key = 0, std::uint8_t serial = 0,
                                 std::uint8_t byte6 = 0, std::uint8_t byte8 = 0) {
    std::vector<std::uint8_t> bytes(64, 0);
    bytes[0] = selector;
    bytes[1] = key;
    bytes[6] = byte6;
    bytes[8] = byte8;
    bytes[9] = serial;
    return bytes;
}

/// The serial (byte 9, set by packet()) of every frame `port` transmitted, in order.
std::vector<std::uint8_t> serials(const memory_port& port) {
    std::vector<std::uint8_t> found;
    for (const auto& frame : port.transmitted()) {
        found.push_back(frame.bytes.at(9));
    }
    return found;
}

std::uint32_t u32_at(const std::vector<std::uint8_t>& bytes, std::size_t offset) {
    std::uint32_t value;
    std::memcpy(&value, bytes.data() + offset, 4);
    return value;
}

class engine_test : public ::testing::Test {
protected:
    void load(unsigned workers) {
        auto spec = ebpf::object_spec::open_file(SLUICE_ENGINE_DATA_DIR "/engine_programs.o");
        ASSERT_TRUE(spec) << spec.error().message;
        ebpf::load_options options;
        options.cpus = workers;
        auto loaded = spec->load(options);
        ASSERT_TRUE(loaded) << loaded.error().message;
        _object = std::make_unique<ebpf::loaded_object>(std::move(*loaded));
        _workers = workers;
    }

    memory_port& add_port(const std::string& name, io::memory_port_options options = {}) {
        _ports.push_back(std::make_unique<memory_port>(name, _pool, options));
        return *_ports.back();
    }

    /// 1-based program id, as devmap and cpumap values name programs.
    std::uint32_t program_id(std::string_view name) const {
        for (std::size_t i = 0; i < _object->programs().size(); ++i) {
            if (_object->programs()[i]->name == name) {
                return static_cast<std::uint32_t>(i + 1);
            }
        }
        ADD_FAILURE() << "no program " << name;
        return 0;
    }

    void set(std::string_view map, std::uint32_t key, std::uint32_t first, std::uint32_t second = 0) {
        ebpf::map* target = _object->find_map(map);
        ASSERT_NE(target, nullptr);
        const std::array<std::uint32_t, 2> value{first, second};
        ASSERT_EQ(target->update_elem(&key, value.data(), 0), 0) << map << "[" << key << "]";
    }

    std::uint64_t counter_at(std::string_view map, std::uint32_t key) const {
        std::uint64_t value = 0;
        EXPECT_EQ(_object->find_map(map)->lookup_elem(&key, &value), 0);
        return value;
    }

    /// Creates the engine over the ports (pass targets by index), before maps naming ports or programs are filled.
    void make_engine(std::vector<std::optional<std::size_t>> pass_targets = {}) {
        engine_config config;
        for (std::size_t i = 0; i < _ports.size(); ++i) {
            config.ports.push_back({_ports[i].get(), i < pass_targets.size() ? pass_targets[i] : std::nullopt});
        }
        config.workers = _workers;
        config.pool = &_pool;
        config.object = _object.get();
        config.sockets = _sockets;
        const ebpf::loaded_object* object = _object.get();
        config.make_program = [object](unsigned,
                                       ebpf::execution_state& state) -> expected<std::unique_ptr<batch_program>> {
            auto made =
                executor::create(*object, *object->find_program("by_first_byte"), ebpf::xdp_helper_table(), state);
            if (!made) {
                return made.error();
            }
            return std::unique_ptr<batch_program>(std::make_unique<executor>(std::move(*made)));
        };
        auto created = engine::create(std::move(config));
        ASSERT_TRUE(created) << created.error().message;
        _engine = std::move(*created);
    }

    /// Closes every input, runs until the engine finishes, and checks the accounting.
    engine_report run() {
        for (auto& port : _ports) {
            port->close_input();
        }
        auto ran = _engine->run(std::chrono::seconds(20));
        EXPECT_TRUE(ran) << ran.error().message;
        EXPECT_TRUE(_engine->finished());
        const engine_report report = _engine->report();
        auto checked = _engine->check();
        EXPECT_TRUE(checked) << checked.error().message;
        for (const port_report& port : report.ports) {
            EXPECT_TRUE(port.balanced()) << port.name;
        }
        EXPECT_EQ(report.pool_outstanding, 0U);
        return report;
    }

    frame_pool _pool{2048};
    std::unique_ptr<ebpf::loaded_object> _object;
    std::vector<std::unique_ptr<memory_port>> _ports;
    std::vector<xsk_socket*> _sockets;
    std::unique_ptr<engine> _engine;
    unsigned _workers{1};
};

TEST_F(engine_test, every_action_goes_to_its_place) {
    load(1);
    memory_port& in = add_port("in");
    memory_port& out = add_port("out");
    memory_port& host = add_port("host");
    make_engine({2}); // XDP_PASS from "in" goes to "host"
    set("config", 0, out.ifindex());
    const std::vector<std::uint8_t> selectors{drop,    pass, tx,   drop, abort_it,        redirect_ifindex,
                                              unknown, tx,   drop, pass, redirect_ifindex};
    for (std::size_t i = 0; i < selectors.size(); ++i) {
        in.inject(packet(selectors[i], 0, static_cast<std::uint8_t>(i)));
    }
    const engine_report report = run();
    const port_report& ingress = report.ports[0];
    EXPECT_EQ(ingress.received.packets, 11U);
    EXPECT_EQ(ingress.received.bytes, 11U * 64);
    EXPECT_EQ(ingress.dropped.packets, 3U);
    EXPECT_EQ(ingress.passed.packets, 2U);
    EXPECT_EQ(ingress.transmitted.packets, 2U);
    EXPECT_EQ(ingress.redirected.packets, 2U);
    EXPECT_EQ(ingress.aborted.packets, 2U); // XDP_ABORTED and the unknown return code
    EXPECT_EQ(ingress.errors().packets, 0U);
    // Each frame where its action sends it, in order.
    EXPECT_EQ(serials(in), (std::vector<std::uint8_t>{2, 7}));
    ASSERT_EQ(serials(out), (std::vector<std::uint8_t>{5, 10}));
    EXPECT_EQ(out.transmitted()[0].ingress_ifindex, in.ifindex());
    EXPECT_EQ(serials(host), (std::vector<std::uint8_t>{1, 9}));
    EXPECT_EQ(report.ports[1].sent.packets, 2U);
    EXPECT_EQ(report.ports[2].sent.packets, 2U);
    EXPECT_EQ(report.programs.at(0).received.packets, 11U);
}

TEST_F(engine_test, refused_frames_are_tx_and_redirect_errors) {
    load(1);
    memory_port& in = add_port("in", {.ifindex = 0, .capture = true, .tx_capacity = 1, .rx_queue = 0});
    memory_port& closed = add_port("closed", {.ifindex = 0, .capture = true, .tx_capacity = 0, .rx_queue = 0});
    make_engine();
    set("config", 0, 4242); // no port has this ifindex
    for (int i = 0; i < 3; ++i) {
        in.inject(packet(tx)); // one batch: the port takes one per call, the other two are refused
    }
    in.inject(packet(redirect_ifindex));
    in.inject(packet(devmap_key, 3)); // no entry, no fallback: XDP_ABORTED from the helper
    in.inject(std::vector<std::uint8_t>(5000, 1)); // larger than a frame: the port counts an rx error
    const engine_report report = run();
    const port_report& ingress = report.ports[0];
    EXPECT_EQ(ingress.received.packets, 6U);
    EXPECT_EQ(ingress.rx_errors.packets, 1U);
    EXPECT_EQ(report.programs.at(0).errors.packets, 1U); // the program's accounting has it too
    EXPECT_EQ(ingress.transmitted.packets, 1U);
    EXPECT_EQ(ingress.tx_errors.packets, 2U);
    EXPECT_EQ(ingress.redirect_errors.packets, 1U);
    EXPECT_EQ(ingress.aborted.packets, 1U);
    EXPECT_EQ(in.transmitted().size(), 1U);
    EXPECT_TRUE(closed.transmitted().empty());
}

TEST_F(engine_test, devmap_redirects_between_ports_and_falls_back_on_a_missing_key) {
    load(1);
    memory_port& a = add_port("a");
    memory_port& b = add_port("b");
    make_engine();
    set("devices", 1, b.ifindex());
    set("devices", 2, a.ifindex());
    a.inject(packet(devmap_key, 1, 1));      // a -> b
    b.inject(packet(devmap_key, 2, 2));      // b -> a
    a.inject(packet(devmap_fallback, 5, 3)); // no entry 5: the flags' XDP_PASS
    a.inject(packet(devmap_fallback, 1, 4)); // entry 1: b
    a.inject(packet(devmap_key, 7, 5));      // no entry 7, flags 0: XDP_ABORTED
    const engine_report report = run();
    ASSERT_EQ(serials(b), (std::vector<std::uint8_t>{1, 4}));
    EXPECT_EQ(b.transmitted()[0].egress_ifindex, b.ifindex());
    EXPECT_EQ(serials(a), std::vector<std::uint8_t>{2});
    EXPECT_EQ(report.ports[0].redirected.packets, 2U);
    EXPECT_EQ(report.ports[0].passed.packets, 1U);
    EXPECT_EQ(report.ports[0].aborted.packets, 1U);
    EXPECT_EQ(report.ports[1].redirected.packets, 1U);
}

TEST_F(engine_test, broadcast_with_and_without_the_ingress_port) {
    load(1);
    memory_port& a = add_port("a");
    memory_port& b = add_port("b");
    memory_port& c = add_port("c");
    make_engine();
    set("devices", 0, a.ifindex());
    set("devices", 3, b.ifindex());
    set("devices", 5, c.ifindex());
    a.inject(packet(broadcast, 0, 1));
    a.inject(packet(broadcast_exclude, 0, 2));
    const engine_report report = run();
    // Every entry gets a copy; the ingress port only without BPF_F_EXCLUDE_INGRESS.
    ASSERT_EQ(serials(a), std::vector<std::uint8_t>{1});
    EXPECT_EQ(serials(b), (std::vector<std::uint8_t>{1, 2}));
    ASSERT_EQ(serials(c), (std::vector<std::uint8_t>{1, 2}));
    EXPECT_EQ(c.transmitted()[0].bytes, a.transmitted()[0].bytes); // a copy is the same packet
    const port_report& ingress = report.ports[0];
    EXPECT_EQ(ingress.received.packets, 2U);
    EXPECT_EQ(ingress.redirected.packets, 2U);  // each original, once
    EXPECT_EQ(ingress.clones_sent.packets, 3U); // 2 copies for the first, 1 for the second
    EXPECT_EQ(ingress.clones_dropped.packets, 0U);
}

TEST_F(engine_test, devmap_hash_entries) {
    load(1);
    memory_port& a = add_port("a");
    memory_port& b = add_port("b");
    make_engine();
    set("devices_by_id", 200, b.ifindex());
    a.inject(packet(devmap_hash_key, 200, 1));
    a.inject(packet(devmap_hash_key, 201, 2)); // absent: XDP_ABORTED
    const engine_report report = run();
    EXPECT_EQ(serials(b), std::vector<std::uint8_t>{1});
    EXPECT_EQ(report.ports[0].redirected.packets, 1U);
    EXPECT_EQ(report.ports[0].aborted.packets, 1U);
}

TEST_F(engine_test, a_devmap_entry_program_runs_before_the_frame_leaves) {
    load(1);
    memory_port& a = add_port("a");
    memory_port& b = add_port("b");
    make_engine();
    // The value's program field names a program of the object: its 1-based position; the wrong attach kind is
    // refused as the kernel refuses it.
    const std::array<std::uint32_t, 2> wrong{b.ifindex(), program_id("on_cpu")};
    const std::uint32_t key = 1;
    EXPECT_EQ(_object->find_map("devices")->update_elem(&key, wrong.data(), 0), -EINVAL);
    set("devices", 1, b.ifindex(), program_id("mark_egress"));
    a.inject(packet(devmap_key, 1, 1));
    a.inject(packet(devmap_key, 1, 2, 0xdd)); // the entry program drops it
    a.inject(packet(broadcast, 0, 3));
    const engine_report report = run();
    ASSERT_EQ(serials(b), (std::vector<std::uint8_t>{1, 3}));
    const auto at_b = b.transmitted();
    EXPECT_EQ(u32_at(at_b[0].bytes, 2), b.ifindex()); // the program read egress_ifindex
    EXPECT_EQ(u32_at(at_b[1].bytes, 2), b.ifindex());
    EXPECT_EQ(report.ports[0].redirected.packets, 2U);
    EXPECT_EQ(report.ports[0].dropped.packets, 1U);
}

TEST_F(engine_test, cpumap_moves_frames_to_the_other_worker_which_runs_the_entry_program) {
    load(2);
    memory_port& a = add_port("a"); // port 0: read by worker 0
    memory_port& b = add_port("b"); // port 1: read by worker 1
    memory_port& host = add_port("host");
    make_engine({2, std::nullopt, std::nullopt});
    set("cpus", 1, 512, program_id("on_cpu"));
    set("cpus", 0, 512); // no program: the frame is passed on the target worker
    set("devices", 4, b.ifindex());
    constexpr int count = 100;
    for (int i = 0; i < count; ++i) {
        a.inject(packet(cpumap_key, 1, static_cast<std::uint8_t>(i)));
    }
    a.inject(packet(cpumap_key, 1, 200, 0, 0xdd));     // dropped by the cpumap program
    auto onward = packet(cpumap_key, 1, 201, 0, 0xee); // redirected by it through devices[byte 10]
    onward[10] = 4;
    a.inject(onward);
    b.inject(packet(cpumap_key, 0, 202)); // worker 1 to worker 0, no program: passed
    b.inject(packet(cpumap_key, 3, 203)); // no entry for cpu 3: XDP_ABORTED
    const engine_report report = run();
    // Processed on worker 1: the cpumap program saw cpu 1 every time, the device program ran on worker 0 for "a".
    EXPECT_EQ(counter_at("cpumap_cpus", 1), count + 2U);
    EXPECT_EQ(counter_at("cpumap_cpus", 0), 0U);
    EXPECT_EQ(counter_at("device_cpus", 0), count + 2U);
    EXPECT_EQ(counter_at("device_cpus", 1), 2U);
    const auto passed = host.transmitted();
    ASSERT_EQ(passed.size(), static_cast<std::size_t>(count));
    for (const auto& item : passed) {
        EXPECT_EQ(item.bytes[7], 1); // written by the cpumap program: bpf_get_smp_processor_id() == 1
    }
    EXPECT_EQ(serials(b), std::vector<std::uint8_t>{201});
    // Counted once, under the port they came from.
    const port_report& from_a = report.ports[0];
    EXPECT_EQ(from_a.received.packets, count + 2U);
    EXPECT_EQ(from_a.passed.packets, static_cast<std::uint64_t>(count));
    EXPECT_EQ(from_a.dropped.packets, 1U);
    EXPECT_EQ(from_a.redirected.packets, 1U);
    const port_report& from_b = report.ports[1];
    EXPECT_EQ(from_b.received.packets, 2U);
    EXPECT_EQ(from_b.passed.packets, 1U);
    EXPECT_EQ(from_b.aborted.packets, 1U);
    EXPECT_EQ(report.workers[0].cpumap_out, count + 2U);
    EXPECT_EQ(report.workers[1].cpumap_in, count + 2U);
    EXPECT_EQ(report.workers[0].cpumap_in, 1U);
}

TEST_F(engine_test, xskmap_to_the_in_process_socket_and_back) {
    load(1);
    memory_port& a = add_port("a");
    // The socket is bound to port "a" (its ifindex); register it before the engine installs the resolvers.
    xsk_socket bound(5, a.ifindex(), 3, 64);
    _sockets.push_back(&bound);
    make_engine();
    set("sockets", 0, 5);
    const std::uint32_t missing_socket = 6;
    const std::uint32_t key = 1;
    EXPECT_EQ(_object->find_map("sockets")->update_elem(&key, &missing_socket, 0), -EBADF);
    for (int i = 0; i < 10; ++i) {
        a.inject(packet(xskmap_key, 0, static_cast<std::uint8_t>(i)));
    }
    a.inject(packet(xskmap_key, 1)); // empty slot: XDP_ABORTED
    ASSERT_TRUE(_engine->start());
    // The user's side: read what arrives, change it, send it back out of the bound port.
    std::vector<frame*> received;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (received.size() < 10 && std::chrono::steady_clock::now() < deadline) {
        std::array<frame*, 8> some{};
        const std::size_t got = bound.receive(some);
        received.insert(received.end(), some.begin(), some.begin() + static_cast<std::ptrdiff_t>(got));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(received.size(), 10U);
    for (frame* item : received) {
        item->packet()[0] = 0x77;
    }
    ASSERT_EQ(bound.send(received), 10U);
    while (bound.tx_pending() != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const engine_report report = run();
    const auto out = a.transmitted();
    ASSERT_EQ(out.size(), 10U);
    for (std::size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].bytes[0], 0x77);
        EXPECT_EQ(out[i].bytes[9], i);
    }
    EXPECT_EQ(bound.stats().rx_packets, 10U);
    EXPECT_EQ(bound.stats().tx_packets, 10U);
    EXPECT_EQ(report.ports[0].redirected.packets, 10U);
    EXPECT_EQ(report.ports[0].aborted.packets, 1U);
    EXPECT_EQ(report.ports[0].sent.packets, 10U);
}

TEST_F(engine_test, a_full_cpumap_queue_drops_and_counts) {
    load(2);
    memory_port& a = add_port("a");
    add_port("b");
    make_engine();
    set("cpus", 1, 8); // qsize 8: at most 8 frames wait for worker 1
    for (int i = 0; i < 64; ++i) {
        a.inject(packet(cpumap_key, 1)); // one batch of 64: more than the queue holds before worker 1 drains it
    }
    const engine_report report = run();
    const port_report& from_a = report.ports[0];
    EXPECT_EQ(from_a.received.packets, 64U);
    EXPECT_GE(from_a.redirect_errors.packets, 64U - 8U * 4U); // 4 flushes of 16 into a queue of 8 within a batch
    EXPECT_EQ(from_a.passed.packets + from_a.redirect_errors.packets, 64U);
}

TEST_F(engine_test, two_workers_two_ports_many_batches) {
    load(2);
    memory_port& a = add_port("a", {.ifindex = 0, .capture = false, .tx_capacity = SIZE_MAX, .rx_queue = 0});
    memory_port& b = add_port("b", {.ifindex = 0, .capture = false, .tx_capacity = SIZE_MAX, .rx_queue = 0});
    make_engine();
    set("devices", 0, b.ifindex());
    for (int i = 0; i < 50; ++i) {
        a.inject(packet(static_cast<std::uint8_t>(i % 3 == 0 ? devmap_key : i % 3 == 1 ? tx : drop)));
        b.inject(packet(pass));
    }
    a.repeat(100);
    b.repeat(100);
    const engine_report report = run();
    EXPECT_EQ(report.ports[0].received.packets, 5000U);
    EXPECT_EQ(report.ports[1].received.packets, 5000U);
    EXPECT_EQ(report.ports[0].redirected.packets, 1700U);
    EXPECT_EQ(report.ports[0].transmitted.packets, 1700U);
    EXPECT_EQ(report.ports[0].dropped.packets, 1600U);
    EXPECT_EQ(report.ports[1].passed.packets, 5000U);
    EXPECT_EQ(report.ports[1].sent.packets, 1700U);
    EXPECT_EQ(counter_at("device_cpus", 0), 5000U); // each port's worker: its own cpu
    EXPECT_EQ(counter_at("device_cpus", 1), 5000U);
}

TEST_F(engine_test, a_stop_request_drains_and_balances) {
    load(2);
    memory_port& a = add_port("a", {.ifindex = 0, .capture = false, .tx_capacity = SIZE_MAX, .rx_queue = 0});
    add_port("b", {.ifindex = 0, .capture = false, .tx_capacity = SIZE_MAX, .rx_queue = 0});
    make_engine();
    set("cpus", 1, 256, program_id("on_cpu"));
    a.inject(packet(cpumap_key, 1));
    a.repeat(UINT64_MAX); // endless: only a stop ends it
    ASSERT_TRUE(_engine->start());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    _engine->request_stop();
    _engine->wait();
    EXPECT_TRUE(_engine->finished());
    const engine_report report = _engine->report();
    auto checked = _engine->check();
    EXPECT_TRUE(checked) << checked.error().message;
    EXPECT_GT(report.ports[0].received.packets, 0U);
    EXPECT_EQ(report.ports[0].passed.packets + report.ports[0].redirect_errors.packets,
              report.ports[0].received.packets);
    EXPECT_EQ(report.pool_outstanding, 0U);
}

TEST_F(engine_test, queues_of_one_interface_share_its_ifindex_and_each_worker_sends_on_its_own) {
    load(2);
    // Two ports on one interface (as AF_XDP queues 0 and 1), read by workers 0 and 1, and one input per worker.
    memory_port& queue0 = add_port("queue0", {.ifindex = 500, .capture = true, .tx_capacity = SIZE_MAX, .rx_queue = 0});
    memory_port& queue1 = add_port("queue1", {.ifindex = 500, .capture = true, .tx_capacity = SIZE_MAX, .rx_queue = 1});
    memory_port& a = add_port("a"); // worker 0
    memory_port& b = add_port("b"); // worker 1
    make_engine();
    set("config", 0, 500);
    for (int i = 0; i < 5; ++i) {
        a.inject(packet(redirect_ifindex, 0, 1));
        b.inject(packet(redirect_ifindex, 0, 2));
    }
    const engine_report report = run();
    // The kernel transmits on the current CPU's queue: each worker on the queue it owns.
    ASSERT_EQ(queue0.transmitted().size(), 5U);
    ASSERT_EQ(queue1.transmitted().size(), 5U);
    EXPECT_EQ(queue0.transmitted()[0].bytes[9], 1);
    EXPECT_EQ(queue1.transmitted()[0].bytes[9], 2);
    EXPECT_EQ(report.ports[2].redirected.packets, 5U);
    EXPECT_EQ(report.ports[3].redirected.packets, 5U);
}

TEST_F(engine_test, configuration_errors_name_the_problem) {
    load(2);
    memory_port& a = add_port("a");
    engine_config config;
    config.ports.push_back({&a, 3});
    config.workers = 2;
    config.pool = &_pool;
    config.make_program = [](unsigned, ebpf::execution_state&) -> expected<std::unique_ptr<batch_program>> {
        return error{"unused"};
    };
    auto bad_target = engine::create(config);
    ASSERT_FALSE(bad_target);
    EXPECT_NE(bad_target.error().message.find("pass target 3"), std::string::npos) << bad_target.error().message;
    config.ports[0].pass_target.reset();
    config.workers = 3;
    config.object = _object.get(); // loaded for 2 cpus: cpumap and per-CPU slots are short
    auto short_maps = engine::create(config);
    ASSERT_FALSE(short_maps);
    EXPECT_NE(short_maps.error().message.find("cpus = 3"), std::string::npos) << short_maps.error().message;
    config.workers = 2;
    auto failing_program = engine::create(config);
    ASSERT_FALSE(failing_program);
    EXPECT_NE(failing_program.error().message.find("unused"), std::string::npos);
}

} // namespace
} // namespace sluice::xdp
