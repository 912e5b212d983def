// The batch executor: every outcome counted once, the accounting identity, checked-mode faults, redirect decisions.
//
// The test program returns the packet's first byte as its return code, so one batch exercises every outcome:
//   0..4   the action with that code (4 without a bpf_redirect call: a redirect error)
//   5      calls bpf_redirect(9, 0) and returns its result (XDP_REDIRECT with a target)
//   7      an unknown return code
//   0xff   reads 4096 bytes before the packet: outside every region, a checked-mode fault
#include <gtest/gtest.h>

#include <linux/bpf.h>

#include <array>
#include <string>
#include <vector>

#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/xdp/executor.hpp"

namespace sluice::xdp {
namespace {

constexpr std::string_view first_byte_program = R"(
    ldxdw %r2, [%r1+0]
    ldxb %r0, [%r2+0]
    jeq %r0, 0xff, fault
    jeq %r0, 5, redirect
    exit
fault:
    ldxb %r0, [%r2-4096]
    exit
redirect:
    mov %r1, 9
    mov %r2, 0
    call 23
    exit
)";

class executor_test : public ::testing::Test {
protected:
    void SetUp() override {
        auto code = ebpf::assemble(first_byte_program);
        ASSERT_TRUE(code) << code.error().message;
        _program.name = "first_byte";
        _program.section = "xdp";
        _program.code = *code;
    }

    expected<executor> make(bool checked, std::vector<std::string>* log = nullptr) {
        executor_options options;
        options.checked = checked;
        if (log != nullptr) {
            options.log = [log](std::string_view line) { log->emplace_back(line); };
        }
        return executor::create(_object, _program, ebpf::xdp_helper_table(), _state, std::move(options));
    }

    /// Frames whose first bytes are `codes`, each `length` bytes long.
    std::vector<frame*> frames(const std::vector<std::uint8_t>& codes, std::uint32_t length = 60) {
        std::vector<frame*> out;
        for (const std::uint8_t code : codes) {
            frame* item = _pool.acquire();
            EXPECT_NE(item, nullptr);
            std::vector<std::uint8_t> bytes(length, 0);
            bytes[0] = code;
            EXPECT_TRUE(item->assign(bytes));
            item->info().record = out.size() + 1;
            out.push_back(item);
        }
        return out;
    }

    ebpf::loaded_object _object;
    ebpf::loaded_program _program;
    ebpf::execution_state _state{0};
    frame_pool _pool{256};
};

TEST_F(executor_test, every_outcome_is_counted_once) {
    std::vector<std::string> log;
    auto run = make(true, &log);
    ASSERT_TRUE(run) << run.error().message;
    const auto batch = frames({0, 1, 2, 3, 4, 5, 7, 0xff, 2, 1});
    std::array<action, max_batch_size> out{};
    run->run_batch(batch, out);

    EXPECT_EQ(out[0], action::aborted);
    EXPECT_EQ(out[1], action::drop);
    EXPECT_EQ(out[2], action::pass);
    EXPECT_EQ(out[3], action::tx);
    EXPECT_EQ(out[4], action::aborted) << "XDP_REDIRECT without bpf_redirect is a failed redirect";
    EXPECT_EQ(out[5], action::redirect);
    EXPECT_EQ(out[6], action::aborted) << "unknown return code";
    EXPECT_EQ(out[7], action::aborted) << "checked-mode fault";
    EXPECT_EQ(out[8], action::pass);
    EXPECT_EQ(out[9], action::drop);

    const executor_stats& stats = run->stats();
    EXPECT_EQ(stats.received, (counter{10, 600}));
    EXPECT_EQ(stats.of(action::aborted), (counter{4, 240}));
    EXPECT_EQ(stats.of(action::drop), (counter{2, 120}));
    EXPECT_EQ(stats.of(action::pass), (counter{2, 120}));
    EXPECT_EQ(stats.of(action::tx), (counter{1, 60}));
    EXPECT_EQ(stats.of(action::redirect), (counter{1, 60}));
    EXPECT_EQ(stats.exceptions, 4U); // XDP_ABORTED, failed redirect, unknown code, fault
    EXPECT_EQ(stats.unknown_return_codes, 1U);
    EXPECT_EQ(stats.faults, 1U);
    EXPECT_EQ(stats.redirect_errors, 1U);
    EXPECT_TRUE(run->check_accounting());

    ASSERT_EQ(run->redirect_decisions().size(), batch.size());
    const ebpf::redirect_decision& decision = run->redirect_decisions()[5];
    EXPECT_EQ(decision.target, ebpf::redirect_decision::kind::interface);
    EXPECT_EQ(decision.ifindex, 9U);

    ASSERT_EQ(log.size(), 1U);
    EXPECT_NE(log[0].find("program first_byte aborted on packet 8"), std::string::npos) << log[0];
    EXPECT_NE(log[0].find("instruction 5"), std::string::npos) << log[0];
}

TEST_F(executor_test, port_errors_are_outcomes) {
    auto run = make(true);
    ASSERT_TRUE(run) << run.error().message;
    const auto batch = frames({2, 2});
    std::array<action, max_batch_size> out{};
    run->run_batch(batch, out);
    run->count_port_errors(3, 27000);
    EXPECT_EQ(run->stats().received, (counter{5, 27120}));
    EXPECT_EQ(run->stats().errors, (counter{3, 27000}));
    EXPECT_EQ(run->stats().accounted(), run->stats().received);
    EXPECT_TRUE(run->check_accounting());
}

TEST_F(executor_test, faults_are_logged_at_most_once_a_second) {
    std::vector<std::string> log;
    auto run = make(true, &log);
    ASSERT_TRUE(run) << run.error().message;
    const auto batch = frames(std::vector<std::uint8_t>(50, 0xff));
    std::array<action, max_batch_size> out{};
    run->run_batch(batch, out);
    EXPECT_EQ(run->stats().faults, 50U);
    EXPECT_EQ(run->stats().of(action::aborted).packets, 50U);
    EXPECT_EQ(log.size(), 1U);
    EXPECT_TRUE(run->check_accounting());
}

TEST_F(executor_test, the_return_code_is_read_from_its_low_32_bits) {
    // As the kernel's drivers (u32 act = bpf_prog_run_xdp(...)): 0x1'00000002 is XDP_PASS.
    auto code = ebpf::assemble("lddw %r0, 0x100000002\nexit");
    ASSERT_TRUE(code) << code.error().message;
    _program.code = *code;
    auto run = make(false);
    ASSERT_TRUE(run) << run.error().message;
    const auto batch = frames({0});
    std::array<action, 1> out{};
    run->run_batch(batch, out);
    EXPECT_EQ(out[0], action::pass);
}

TEST_F(executor_test, batches_larger_than_the_limit_run_in_pieces) {
    auto run = make(false);
    ASSERT_TRUE(run) << run.error().message;
    const auto batch = frames(std::vector<std::uint8_t>(150, 3));
    std::vector<action> out(batch.size(), action::aborted);
    run->run_batch(batch, out);
    EXPECT_EQ(run->stats().of(action::tx).packets, 150U);
    EXPECT_EQ(std::count(out.begin(), out.end(), action::tx), 150);
    EXPECT_TRUE(run->check_accounting());
}

TEST_F(executor_test, a_missing_helper_is_refused_at_creation) {
    auto code = ebpf::assemble("call 26\nexit"); // bpf_skb_load_bytes: not an XDP helper
    ASSERT_TRUE(code) << code.error().message;
    _program.code = *code;
    auto run = make(true);
    ASSERT_FALSE(run);
    EXPECT_NE(run.error().message.find("program first_byte"), std::string::npos) << run.error().message;
}

TEST(executor_stats, a_mismatch_is_reported) {
    executor_stats stats;
    stats.received = {3, 300};
    stats.actions[index(action::pass)] = {2, 200};
    EXPECT_NE(stats.accounted(), stats.received);
}

} // namespace
} // namespace sluice::xdp
