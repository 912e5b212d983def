// may_goto (can_loop) against the kernel: oracle_may_goto.c's programs run by BPF_PROG_TEST_RUN and by sluice's
// interpreter and JIT (tests/oracle/programs/oracle_may_goto.c says what each leaves in `results`).
//
// A loop bounded only by can_loop runs for about 250 ms on Linux 6.18 x86-64 (timed may_goto), so its iteration count
// differs from run to run on either side: what must agree is its shape (a multiple of 0xffff, at least two of them),
// a spent budget ending the frame's next loop at once, and fresh budgets in subprogram frames and callbacks. Loops
// that end on their own condition must agree exactly, packet by packet.
#include <gtest/gtest.h>

#include <bpf/bpf.h>

#include "oracle.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace {

using namespace sluice;
using namespace sluice::oracle;

constexpr std::uint64_t chunk = 0xffff; // BPF_MAX_TIMED_LOOPS

std::string object_path() {
    return std::string(SLUICE_ORACLE_PROGRAMS_DIR) + "/oracle_may_goto.o";
}

/// results[0..3] on each side.
struct slots {
    std::array<std::uint64_t, 4> kernel{};
    std::array<std::uint64_t, 4> sluice{};
};

slots read_results(oracle_pair& pair) {
    slots read;
    map_pair* results = pair.find_map("results");
    EXPECT_NE(results, nullptr);
    if (results == nullptr) {
        return read;
    }
    for (std::uint32_t key = 0; key < read.kernel.size(); ++key) {
        EXPECT_EQ(bpf_map_lookup_elem(results->kernel_fd, &key, &read.kernel[key]), 0);
        EXPECT_EQ(results->sluice->lookup_elem(&key, &read.sluice[key]), 0);
    }
    return read;
}

test_packet small_packet() {
    return {"64 bytes", std::vector<std::uint8_t>(64, 0x5a), {}};
}

TEST(may_goto_verifier, accepts_every_program_with_loops_bounded_by_can_loop) {
    auto spec = ebpf::object_spec::open_file(object_path());
    ASSERT_TRUE(spec) << spec.error().message;
    auto object = spec->load();
    ASSERT_TRUE(object) << object.error().message;
    std::size_t verified = 0;
    for (const auto& program : object->programs()) {
        std::vector<ebpf::map_definition> definitions;
        auto result = ebpf::verify(ebpf::verifier_input::of(*program, *object, definitions));
        EXPECT_TRUE(result) << program->name << ":\n" << (result ? "" : result.error().message);
        verified += result ? 1 : 0;
    }
    EXPECT_EQ(verified, 5u); // spend, bounded, zero, tail_spend, tail_target
}

class may_goto_oracle : public ::testing::TestWithParam<sluice_engine> {};

TEST_P(may_goto_oracle, a_loop_bounded_only_by_can_loop_spends_the_frames_budget_as_the_kernel_does) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    auto pair = oracle_pair::from_object(object_path(), "spend", {.rodata = {}, .engine = GetParam()});
    ASSERT_TRUE(pair) << pair.error().message;
    const test_packet packet = small_packet();
    const run_result kernel = (*pair)->run_kernel(packet);
    const run_result ours = (*pair)->run_sluice(packet);
    ASSERT_EQ(kernel.error, "");
    ASSERT_EQ(ours.error, "");
    EXPECT_EQ(kernel.retval, ours.retval);
    const slots read = read_results(**pair);
    // The counts themselves depend on time; kept in the test's XML output (--gtest_output=xml) for comparison.
    RecordProperty("kernel_iterations", std::to_string(read.kernel[0]));
    RecordProperty("sluice_iterations", std::to_string(read.sluice[0]));
    for (const auto& [side, values] : {std::pair{"kernel", read.kernel}, std::pair{"sluice", read.sluice}}) {
        SCOPED_TRACE(side);
        EXPECT_EQ(values[0] % chunk, 0u) << values[0] << " iterations";
        EXPECT_GE(values[0], 2 * chunk);
        EXPECT_EQ(values[1], 0u) << "the frame's budget was spent by the first loop";
        EXPECT_EQ(values[2], 1000u) << "a subprogram's frame starts with its own budget";
        EXPECT_EQ(values[3], 4000u) << "each bpf_loop callback invocation starts with its own budget";
    }
}

TEST_P(may_goto_oracle, a_tail_call_target_starts_with_a_budget_of_its_own) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    auto pair = oracle_pair::from_object(object_path(), "tail_spend", {.rodata = {}, .engine = GetParam()});
    ASSERT_TRUE(pair) << pair.error().message;
    const test_packet packet = small_packet();
    const run_result kernel = (*pair)->run_kernel(packet);
    const run_result ours = (*pair)->run_sluice(packet);
    ASSERT_EQ(kernel.error, "");
    ASSERT_EQ(ours.error, "");
    EXPECT_EQ(kernel.retval, 3u); // XDP_TX: the target ran
    EXPECT_EQ(ours.retval, 3u);
    const slots read = read_results(**pair);
    for (const auto& [side, values] : {std::pair{"kernel", read.kernel}, std::pair{"sluice", read.sluice}}) {
        SCOPED_TRACE(side);
        EXPECT_EQ(values[0] % chunk, 0u) << values[0] << " iterations";
        EXPECT_EQ(values[1], 1000u) << "the tail call's target starts with a budget of its own";
    }
}

TEST_P(may_goto_oracle, may_goto_plus_zero_spends_nothing_as_the_kernel_removes_it) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    auto pair = oracle_pair::from_object(object_path(), "zero", {.rodata = {}, .engine = GetParam()});
    ASSERT_TRUE(pair) << pair.error().message;
    const test_packet packet = small_packet();
    ASSERT_EQ((*pair)->run_kernel(packet).error, "");
    ASSERT_EQ((*pair)->run_sluice(packet).error, "");
    const slots read = read_results(**pair);
    EXPECT_EQ(read.kernel[0] % chunk, read.sluice[0] % chunk) << read.kernel[0] << " and " << read.sluice[0];
    EXPECT_EQ(read.sluice[0] % chunk, 0u);
}

TEST_P(may_goto_oracle, loops_ending_on_their_own_condition_agree_packet_by_packet) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    auto pair = oracle_pair::from_object(object_path(), "bounded", {.rodata = {}, .engine = GetParam()});
    ASSERT_TRUE(pair) << pair.error().message;
    std::vector<test_packet> packets = packet_corpus(0x6d61'795f, 300);
    packets.push_back(
        {"first byte 0xff: 255,000 iterations, three refreshes", std::vector<std::uint8_t>(80, 0xff), {}});
    for (const test_packet& packet : packets) {
        const std::string differences = (*pair)->compare(packet);
        ASSERT_EQ(differences, "") << differences;
    }
    EXPECT_EQ((*pair)->counts().packets, packets.size());
}

INSTANTIATE_TEST_SUITE_P(engines, may_goto_oracle, ::testing::Values(sluice_engine::interpreter, sluice_engine::jit),
                         [](const ::testing::TestParamInfo<sluice_engine>& engine) {
                             return std::string(to_string(engine.param));
                         });

} // namespace
