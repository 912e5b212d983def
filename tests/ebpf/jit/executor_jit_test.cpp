// The batch executor with execution_engine::jit: what it refuses, and that it runs, counts and redirects through the
// JIT's batch entry (the differential test compares it with the interpreter on every example).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/xdp/executor.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::xdp {
namespace {

ebpf::loaded_object load_example(const std::string& name) {
    auto spec = ebpf::object_spec::open_file(std::string(SLUICE_EXAMPLES_DIR) + "/" + name + ".o");
    EXPECT_TRUE(spec) << spec.error().message;
    auto loaded = spec->load();
    EXPECT_TRUE(loaded) << loaded.error().message;
    return std::move(loaded.value());
}

TEST(executor_jit, refuses_checked_mode_and_instruction_limits) {
    const ebpf::loaded_object object = load_example("xdp_pass");
    ebpf::execution_state state;
    executor_options options;
    options.engine = execution_engine::jit;
    options.checked = true;
    auto checked = executor::create(object, *object.programs().front(), ebpf::xdp_helper_table(), state, options);
    ASSERT_FALSE(checked);
    EXPECT_NE(checked.error().message.find("the JIT runs only verified programs"), std::string::npos)
        << checked.error().message;
    options.checked = false;
    options.instruction_limit = 1000;
    auto limited = executor::create(object, *object.programs().front(), ebpf::xdp_helper_table(), state, options);
    ASSERT_FALSE(limited);
    EXPECT_NE(limited.error().message.find("no instruction limit"), std::string::npos) << limited.error().message;
}

TEST(executor_jit, runs_batches_larger_than_one_piece_and_accounts_for_every_frame) {
    const ebpf::loaded_object object = load_example("xdp_pass");
    ebpf::execution_state state;
    executor_options options;
    options.engine = execution_engine::jit;
    options.checked = false;
    auto created = executor::create(object, *object.programs().front(), ebpf::xdp_helper_table(), state, options);
    ASSERT_TRUE(created) << created.error().message;
    frame_pool pool(150);
    std::vector<frame*> frames(150);
    ASSERT_EQ(pool.acquire_batch(frames), frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
        std::vector<std::uint8_t> bytes(14 + i, static_cast<std::uint8_t>(i));
        ASSERT_TRUE(frames[i]->assign(bytes));
    }
    std::vector<action> out(frames.size(), action::aborted);
    created->run_batch(frames, out);
    for (const action outcome : out) {
        EXPECT_EQ(outcome, action::pass);
    }
    EXPECT_EQ(created->stats().of(action::pass).packets, frames.size());
    EXPECT_TRUE(created->check_accounting());
}

} // namespace
} // namespace sluice::xdp
