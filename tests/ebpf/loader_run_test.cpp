// End to end: objects compiled by clang, loaded, and run by the reference interpreter on crafted packets, with the
// xdp_context pointing into a frame buffer as the data path lays it out.
#include <gtest/gtest.h>

#include <array>
#include <cstring>

#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/xdp_context.hpp"

namespace sluice::ebpf {
namespace {

constexpr std::uint64_t xdp_drop = 1;
constexpr std::uint64_t xdp_pass = 2;

/// A frame: headroom, then `length` packet bytes, described by an xdp_context.
struct frame {
    explicit frame(std::size_t length) : buffer(xdp_packet_headroom + length + 320) {
        context.data_hard_start = buffer.data();
        context.data = buffer.data() + xdp_packet_headroom;
        context.data_meta = context.data;
        context.data_end = context.data + length;
        context.frame_size = static_cast<std::uint32_t>(buffer.size());
        context.ingress_ifindex = 7;
        context.rx_queue_index = 3;
        context.egress_ifindex = 9;
    }
    std::vector<std::uint8_t> buffer;
    xdp_context context;
};

expected<std::uint64_t> run(const loaded_program& program, frame& packet) {
    static const helper_table no_helpers;
    auto machine = interpreter::create(program.code, no_helpers);
    if (!machine) {
        return machine.error();
    }
    return machine->run({reinterpret_cast<std::uintptr_t>(&packet.context), 0, 0, 0, 0});
}

TEST(loader_run, global_subprogram_reads_packet_bounds) {
    auto spec = object_spec::open_file(std::string(SLUICE_LOADER_DATA_DIR) + "/loader_calls.o");
    ASSERT_TRUE(spec) << spec.error().message;
    auto loaded = spec->load();
    ASSERT_TRUE(loaded) << loaded.error().message;
    const loaded_program* program = loaded->find_program("xdp_calls_again");
    ASSERT_NE(program, nullptr);
    frame small(64);
    frame large(1500);
    auto verdict = run(*program, small);
    ASSERT_TRUE(verdict) << verdict.error().message;
    EXPECT_EQ(*verdict, xdp_pass);
    verdict = run(*program, large);
    ASSERT_TRUE(verdict) << verdict.error().message;
    EXPECT_EQ(*verdict, xdp_drop);
}

TEST(loader_run, every_field_and_global_data) {
    auto spec = object_spec::open_file(std::string(SLUICE_LOADER_DATA_DIR) + "/loader_calls.o");
    ASSERT_TRUE(spec) << spec.error().message;
    auto loaded = spec->load();
    ASSERT_TRUE(loaded) << loaded.error().message;
    const loaded_program* program = loaded->find_program("xdp_fields");
    ASSERT_NE(program, nullptr);
    frame packet(60);
    auto verdict = run(*program, packet);
    ASSERT_TRUE(verdict) << verdict.error().message;
    EXPECT_EQ(*verdict, xdp_pass);
    // `sink` (in .bss) was written last with egress_ifindex, through the lowered address of the map value.
    map* bss = loaded->find_map(".bss");
    ASSERT_NE(bss, nullptr);
    std::vector<std::byte> value(bss->value_size());
    const std::uint32_t key = 0;
    ASSERT_EQ(bss->lookup_elem(&key, value.data()), 0);
    std::uint32_t sink = 0;
    bool found = false;
    for (std::size_t at = 0; at + 4 <= value.size(); at += 4) {
        std::memcpy(&sink, value.data() + at, 4);
        found |= sink == 9;
    }
    EXPECT_TRUE(found) << "egress_ifindex 9 not stored in .bss";

    // Metadata after data: the program drops.
    frame bad(60);
    bad.context.data_meta = bad.context.data + 1;
    verdict = run(*program, bad);
    ASSERT_TRUE(verdict) << verdict.error().message;
    EXPECT_EQ(*verdict, xdp_drop);
}

TEST(loader_run, static_subprogram_in_program_section) {
    auto spec = object_spec::open_file(std::string(SLUICE_LOADER_DATA_DIR) + "/loader_same_section.o");
    ASSERT_TRUE(spec) << spec.error().message;
    auto loaded = spec->load();
    ASSERT_TRUE(loaded) << loaded.error().message;
    frame packet(60); // rx_queue_index 3: twice() gives 6 > 4
    auto verdict = run(*loaded->programs().at(0), packet);
    ASSERT_TRUE(verdict) << verdict.error().message;
    EXPECT_EQ(*verdict, xdp_drop);
    packet.context.rx_queue_index = 1;
    verdict = run(*loaded->programs().at(0), packet);
    ASSERT_TRUE(verdict) << verdict.error().message;
    EXPECT_EQ(*verdict, xdp_pass);
}

} // namespace
} // namespace sluice::ebpf
