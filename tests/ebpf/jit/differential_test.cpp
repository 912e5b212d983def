// The interpreter is the reference for the JIT (DESIGN.md, "Correctness principles"): the same programs on the same
// random packets and map contents, once in each engine, must give the same return codes, output packets (the whole
// frame buffer: headroom, metadata, packet and tailroom, and where data, data_end and data_meta point), redirect
// decisions, trace lines and, after the run, the same contents in every map.
//
// - Every example object (build/examples/*.o), every program of it, through the batch executor with the interpreter
//   (unchecked) and with the JIT, over generated traffic (IPv4, IPv6, VLAN, TCP, UDP, ICMP, an attack prefix) with
//   some packets corrupted or cut short, and random map contents. Time-dependent helpers read a fake clock that
//   advances per call, the same in both engines, so that rate limiters decide alike.
// - Generated programs (tests/support/program_generator.hpp, verifier-safe): 2,000 programs x 12 packets per run,
//   the interpreter per packet, the JIT through its batch entry, compiled with the verifier's facts. A failure prints
//   the seed and the program.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/jit.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/ebpf/verifier.hpp"
#include "sluice/io/traffic_generator.hpp"
#include "sluice/xdp/executor.hpp"
#include "sluice/xdp/frame.hpp"
#include "support/program_generator.hpp"

namespace sluice {
namespace {

using ebpf::execution_state;

// ---- what both engines share: a deterministic clock, captured trace lines ----

/// An execution state whose time helpers read a counter that advances 1 µs per call.
struct test_state : execution_state {
    std::uint64_t clock_ns{1'000'000'000};
    std::vector<std::string> trace_lines;

    test_state() {
        trace = [](std::string_view line, unsigned, void* opaque) {
            static_cast<test_state*>(opaque)->trace_lines.emplace_back(line);
        };
        trace_opaque = this;
        trace_lines_per_second = 0;
    }
};

std::uint64_t fake_clock(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                         ebpf::call_context& context) {
    auto& state = *static_cast<test_state*>(static_cast<execution_state*>(context.user));
    state.clock_ns += 1000;
    return state.clock_ns;
}

std::uint64_t fake_jiffies(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                           ebpf::call_context& context) {
    return fake_clock(0, 0, 0, 0, 0, context) / 1'000'000;
}

/// The XDP helpers, with the clock made deterministic.
const ebpf::helper_table& deterministic_helpers() {
    static const ebpf::helper_table table = [] {
        ebpf::helper_table copy = ebpf::xdp_helper_table();
        copy.set(BPF_FUNC_ktime_get_ns, "bpf_ktime_get_ns", fake_clock);
        copy.set(BPF_FUNC_ktime_get_boot_ns, "bpf_ktime_get_boot_ns", fake_clock);
        copy.set(BPF_FUNC_ktime_get_coarse_ns, "bpf_ktime_get_coarse_ns", fake_clock);
        copy.set(BPF_FUNC_jiffies64, "bpf_jiffies64", fake_jiffies);
        return copy;
    }();
    return table;
}

// ---- maps ----

/// Fills `target` with contents drawn from `random`: the same seed gives the same contents in another instance.
void fill_map(ebpf::map& target, std::mt19937_64& random) {
    const auto bytes = [&](std::size_t count) {
        std::vector<std::uint8_t> out(count);
        for (auto& byte : out) {
            byte = static_cast<std::uint8_t>(random());
        }
        return out;
    };
    switch (target.type()) {
    case ebpf::map_type::array:
    case ebpf::map_type::percpu_array:
        for (std::uint32_t key = 0; key < std::min<std::uint32_t>(target.max_entries(), 64); ++key) {
            auto value = bytes(target.syscall_value_size());
            (void)target.update_elem(&key, value.data(), ebpf::update_flag::any); // .rodata refuses: it stays
        }
        return;
    case ebpf::map_type::hash:
    case ebpf::map_type::percpu_hash:
    case ebpf::map_type::lru_hash:
    case ebpf::map_type::lru_percpu_hash:
        for (std::uint32_t i = 0; i < std::min<std::uint32_t>(target.max_entries() / 2, 16); ++i) {
            auto key = bytes(target.key_size());
            auto value = bytes(target.syscall_value_size());
            (void)target.update_elem(key.data(), value.data(), ebpf::update_flag::any);
        }
        return;
    case ebpf::map_type::lpm_trie: {
        // The generator's attack prefix, and random prefixes (struct { u32 prefixlen; u8 data[]; }).
        const std::uint32_t data_bits = (target.key_size() - 4) * 8;
        auto value = bytes(target.value_size());
        std::vector<std::uint8_t> key(target.key_size());
        const std::uint32_t attack_length = data_bits == 32 ? 24 : 32;
        std::memcpy(key.data(), &attack_length, 4);
        const std::array<std::uint8_t, 4> attack_v4{203, 0, 113, 0};
        const std::array<std::uint8_t, 4> attack_v6{0x20, 0x01, 0x0d, 0xb8};
        std::memcpy(key.data() + 4, data_bits == 32 ? attack_v4.data() : attack_v6.data(), 4);
        (void)target.update_elem(key.data(), value.data(), ebpf::update_flag::any);
        for (int i = 0; i < 8; ++i) {
            key = bytes(target.key_size());
            const auto length = static_cast<std::uint32_t>(random() % (data_bits + 1));
            std::memcpy(key.data(), &length, 4);
            (void)target.update_elem(key.data(), value.data(), ebpf::update_flag::any);
        }
        return;
    }
    default:
        return; // prog arrays keep what the loader put there; ringbufs and queues start empty
    }
}

using map_contents = std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>>;

/// Every key and its syscall-layout value, sorted by key (hash maps iterate in seed order, which differs).
map_contents contents_of(ebpf::map& source) {
    map_contents contents;
    if (source.type() == ebpf::map_type::prog_array || source.type() == ebpf::map_type::ringbuf) {
        return contents; // handles, not data; the programs here write no ringbuf
    }
    (void)source.for_each([&](std::span<const std::byte> key, std::span<const std::byte> value) {
        contents.emplace_back(std::vector<std::byte>(key.begin(), key.end()),
                              std::vector<std::byte>(value.begin(), value.end()));
        return true;
    });
    std::sort(contents.begin(), contents.end());
    return contents;
}

/// The index of `target` in `maps`, or -1: redirect decisions name maps of their own object.
int index_of(const std::vector<std::unique_ptr<ebpf::map>>& maps, const ebpf::map* target) {
    for (std::size_t i = 0; i < maps.size(); ++i) {
        if (maps[i].get() == target) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

// ---- packets ----

/// Generated traffic, then now and then corrupted (random bytes overwritten) or cut short.
class packet_source {
public:
    explicit packet_source(std::uint64_t seed) : _random(seed) {
        auto spec = io::traffic_spec::parse(fmt::format(
            "packets=1000000,flows=64,size=14-1500,mix=tcp:50/udp:35/icmp:15,ipv6=30,vlan=10,attack=25@203.0.113.0/24,"
            "seed={}",
            seed));
        _generator.emplace(std::move(io::traffic_generator::create(*spec).value()));
    }

    std::vector<std::uint8_t> next() {
        std::vector<std::uint8_t> packet(io::generator_max_size);
        xdp::packet_info info;
        packet.resize(_generator->build(_index++, packet, info));
        const auto roll = _random() % 10;
        if (roll < 2 && !packet.empty()) {
            for (int i = 0; i < 4; ++i) {
                packet[_random() % packet.size()] = static_cast<std::uint8_t>(_random());
            }
        } else if (roll < 4) {
            packet.resize(_random() % (packet.size() + 1));
        }
        return packet;
    }

private:
    std::mt19937_64 _random;
    std::optional<io::traffic_generator> _generator;
    std::uint64_t _index{};
};

/// Fills `item` with `bytes`, after zeroing its whole buffer, so that both engines' frames start identical.
void load_frame(xdp::frame& item, std::span<const std::uint8_t> bytes, std::uint32_t ifindex) {
    std::memset(item.hard_start(), 0, item.frame_size());
    ASSERT_TRUE(item.assign(bytes));
    item.set_ingress(ifindex, ifindex % 4);
}

/// The frame as the program left it: buffer bytes and where data, data_end and data_meta point.
std::string frame_difference(const xdp::frame& left, const xdp::frame& right) {
    const auto offsets = [](const xdp::frame& item) {
        const auto& context = item.context();
        return std::array<std::ptrdiff_t, 3>{context.data - context.data_hard_start,
                                             context.data_end - context.data_hard_start,
                                             context.data_meta - context.data_hard_start};
    };
    if (offsets(left) != offsets(right)) {
        const auto a = offsets(left);
        const auto b = offsets(right);
        return fmt::format("data/data_end/data_meta at {}/{}/{} in the interpreter, {}/{}/{} in the JIT", a[0], a[1],
                           a[2], b[0], b[1], b[2]);
    }
    for (std::uint32_t i = 0; i < left.frame_size(); ++i) {
        if (left.hard_start()[i] != right.hard_start()[i]) {
            return fmt::format("frame byte {} is {:#04x} in the interpreter, {:#04x} in the JIT", i,
                               left.hard_start()[i], right.hard_start()[i]);
        }
    }
    return {};
}

// ---- the examples, through the executor ----

std::vector<std::filesystem::path> example_objects() {
    std::vector<std::filesystem::path> objects;
    std::error_code failure;
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR, failure)) {
        if (entry.path().extension() == ".o") {
            objects.push_back(entry.path());
        }
    }
    std::sort(objects.begin(), objects.end());
    return objects;
}

/// One engine's side: its own load of the object (its own maps), state and executor.
struct side {
    ebpf::loaded_object object;
    test_state state;
    std::optional<xdp::executor> executor;
    xdp::frame_pool pool{xdp::max_batch_size};
};

TEST(jit_differential, every_example_program_agrees_on_packets_actions_and_maps) {
    const auto objects = example_objects();
    ASSERT_GE(objects.size(), 7u) << "examples in " << SLUICE_EXAMPLES_DIR;
    std::size_t programs = 0;
    std::size_t packets = 0;
    for (const auto& path : objects) {
        auto spec = ebpf::object_spec::open_file(path.string());
        ASSERT_TRUE(spec) << spec.error().message;
        for (const ebpf::program_spec& program : spec->programs()) {
            const std::string where = fmt::format("{} program {}", path.filename().string(), program.name);
            std::array<side, 2> sides;
            for (std::size_t engine = 0; engine < 2; ++engine) {
                auto loaded = spec->load();
                ASSERT_TRUE(loaded) << where << ": " << loaded.error().message;
                sides[engine].object = std::move(*loaded);
                std::mt19937_64 random(programs + 1);
                for (const auto& target : sides[engine].object.maps()) {
                    fill_map(*target, random);
                }
                xdp::executor_options options;
                options.checked = false;
                options.engine = engine == 0 ? xdp::execution_engine::interpreter : xdp::execution_engine::jit;
                options.log = [](std::string_view) {};
                auto created =
                    xdp::executor::create(sides[engine].object, *sides[engine].object.find_program(program.name),
                                          deterministic_helpers(), sides[engine].state, options);
                ASSERT_TRUE(created) << where << ": " << created.error().message;
                sides[engine].executor.emplace(std::move(*created));
            }
            ++programs;
            packet_source source(programs);
            std::mt19937_64 random(programs * 7919);
            for (int batch = 0; batch < 16; ++batch) {
                const std::size_t count = 1 + random() % xdp::max_batch_size;
                std::array<std::vector<xdp::frame*>, 2> frames;
                for (std::size_t i = 0; i < count; ++i) {
                    const auto bytes = source.next();
                    const auto ifindex = static_cast<std::uint32_t>(1 + random() % 8);
                    for (std::size_t engine = 0; engine < 2; ++engine) {
                        xdp::frame* item = sides[engine].pool.acquire();
                        ASSERT_NE(item, nullptr);
                        load_frame(*item, bytes, ifindex);
                        frames[engine].push_back(item);
                    }
                }
                std::array<std::vector<xdp::action>, 2> actions{std::vector<xdp::action>(count),
                                                                std::vector<xdp::action>(count)};
                for (std::size_t engine = 0; engine < 2; ++engine) {
                    sides[engine].executor->run_batch(frames[engine], actions[engine]);
                }
                for (std::size_t i = 0; i < count; ++i) {
                    const std::string packet = fmt::format("{}, batch {}, packet {}", where, batch, i);
                    ASSERT_EQ(actions[0][i], actions[1][i]) << packet;
                    const std::string difference = frame_difference(*frames[0][i], *frames[1][i]);
                    ASSERT_TRUE(difference.empty()) << packet << ": " << difference;
                    if (actions[0][i] == xdp::action::redirect) {
                        const auto& left = sides[0].executor->redirect_decisions()[i];
                        const auto& right = sides[1].executor->redirect_decisions()[i];
                        EXPECT_EQ(left.target, right.target) << packet;
                        EXPECT_EQ(left.ifindex, right.ifindex) << packet;
                        EXPECT_EQ(left.key, right.key) << packet;
                        EXPECT_EQ(left.flags, right.flags) << packet;
                        EXPECT_EQ(index_of(sides[0].object.maps(), left.target_map),
                                  index_of(sides[1].object.maps(), right.target_map))
                            << packet;
                    }
                }
                packets += count;
                for (std::size_t engine = 0; engine < 2; ++engine) {
                    sides[engine].pool.release_batch(frames[engine]);
                }
            }
            for (std::size_t index = 0; index < sides[0].object.maps().size(); ++index) {
                EXPECT_EQ(contents_of(*sides[0].object.maps()[index]), contents_of(*sides[1].object.maps()[index]))
                    << where << ": map " << sides[0].object.map_specs()[index].name;
            }
            EXPECT_EQ(sides[0].state.trace_lines, sides[1].state.trace_lines) << where;
            EXPECT_EQ(sides[0].state.clock_ns, sides[1].state.clock_ns) << where << ": time helper calls";
            const auto& left = sides[0].executor->stats();
            const auto& right = sides[1].executor->stats();
            EXPECT_EQ(left.actions, right.actions) << where;
            EXPECT_EQ(left.exceptions, right.exceptions) << where;
            EXPECT_TRUE(sides[1].executor->check_accounting()) << where;
        }
    }
    std::cout << fmt::format("examples: {} programs, {} packets, interpreter and JIT agree\n", programs, packets);
    EXPECT_GE(programs, objects.size());
}

// ---- generated programs ----

TEST(jit_differential, generated_programs_agree_on_at_least_ten_thousand_program_packet_pairs) {
    constexpr std::size_t program_count = 2000;
    constexpr std::size_t packets_per_program = 12;
    // A different base each run widens the search over time; the seed of a failure is printed to replay it.
    const std::uint64_t base_seed =
        static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count() / 1000 % 1'000'000'000);
    std::cout << fmt::format("generated programs from seed {}\n", base_seed);
    const ebpf::helper_table& helpers = ebpf::xdp_helper_table();
    xdp::frame_pool interpreter_pool(1);
    xdp::frame_pool jit_pool(packets_per_program);
    packet_source source(base_seed);
    std::size_t pairs = 0;
    std::size_t inlined = 0;
    std::size_t verified_count = 0;
    for (std::size_t n = 0; n < program_count; ++n) {
        const std::uint64_t seed = base_seed + n;
        testing::generator_options options;
        options.loops = seed % 2 == 0;
        options.may_goto = seed % 4 == 0; // half the loops test can_loop at their head
        const testing::generated_program program = testing::generate_program(seed, options);
        const std::string replay = fmt::format("seed {} (loops {}, may_goto {}):\n{}", seed, options.loops,
                                               options.may_goto, testing::describe(program));
        auto reference = testing::instantiate(program);
        auto native = testing::instantiate(program);
        ASSERT_TRUE(reference && native) << replay;
        std::mt19937_64 random(seed);
        for (auto& target : reference->maps) {
            fill_map(*target, random);
        }
        random.seed(seed);
        for (auto& target : native->maps) {
            fill_map(*target, random);
        }
        auto machine = ebpf::interpreter::create(reference->code, helpers);
        ASSERT_TRUE(machine) << replay << machine.error().message;
        // With the maps, lookups in constant array maps are inlined: where the verifier's facts say the map is
        // constant, and where the compiler sees the map loaded in the lookup's block.
        ebpf::verifier_input input;
        input.code = native->relocated;
        input.maps = program.maps;
        const auto verified = ebpf::verify(input);
        verified_count += verified ? 1 : 0;
        const std::span<const ebpf::instruction_facts> facts =
            verified ? std::span<const ebpf::instruction_facts>(verified->facts)
                     : std::span<const ebpf::instruction_facts>{};
        auto compiled =
            ebpf::jit_program::compile(native->code, helpers, {.facts = facts, .maps = native->maps, .cpu = 0});
        ASSERT_TRUE(compiled) << replay << compiled.error().message;
        inlined += compiled->inlined_lookups();
        ebpf::jit_runner runner(*compiled);

        // The JIT gets the whole batch through its batch entry; the interpreter one packet at a time.
        std::vector<std::vector<std::uint8_t>> inputs;
        std::vector<xdp::frame*> frames;
        std::vector<ebpf::xdp_context*> contexts;
        for (std::size_t i = 0; i < packets_per_program; ++i) {
            inputs.push_back(source.next());
            xdp::frame* item = jit_pool.acquire();
            load_frame(*item, inputs.back(), static_cast<std::uint32_t>(1 + i % 3));
            frames.push_back(item);
            contexts.push_back(&item->context());
        }
        std::vector<std::uint64_t> results(packets_per_program);
        std::vector<ebpf::redirect_decision> decisions(packets_per_program);
        execution_state native_state;
        const std::size_t reached = runner.run_batch(contexts, results, decisions, native_state);
        ASSERT_EQ(reached, packets_per_program) << replay << runner.last_error().message;

        execution_state reference_state;
        for (std::size_t i = 0; i < packets_per_program; ++i) {
            xdp::frame* item = interpreter_pool.acquire();
            load_frame(*item, inputs[i], static_cast<std::uint32_t>(1 + i % 3));
            reference_state.begin_packet(item->context());
            auto expected =
                machine->run({reinterpret_cast<std::uint64_t>(&item->context()), 0, 0, 0, 0}, &reference_state);
            ASSERT_TRUE(expected) << replay << expected.error().message;
            ASSERT_EQ(*expected, results[i]) << replay << "packet " << i;
            const std::string difference = frame_difference(*item, *frames[i]);
            ASSERT_TRUE(difference.empty()) << replay << "packet " << i << ": " << difference;
            if (static_cast<std::uint32_t>(*expected) == ebpf::jit_xdp_redirect) {
                EXPECT_EQ(reference_state.redirect.target, decisions[i].target) << replay;
                EXPECT_EQ(reference_state.redirect.ifindex, decisions[i].ifindex) << replay;
            }
            interpreter_pool.release(item);
            ++pairs;
        }
        jit_pool.release_batch(frames);
        for (std::size_t index = 0; index < reference->maps.size(); ++index) {
            ASSERT_EQ(contents_of(*reference->maps[index]), contents_of(*native->maps[index]))
                << replay << "map " << index;
        }
    }
    std::cout << fmt::format("generated: {} programs ({} verified, compiled with the verifier's facts), {} "
                             "program/packet pairs agree ({} array lookups inlined)\n",
                             program_count, verified_count, pairs, inlined);
    EXPECT_GT(inlined, 0u);
    EXPECT_GE(pairs, 10'000u);
}

} // namespace
} // namespace sluice
