// `sluice bench`'s core: every variant over the same packets, disagreements reported, unavailable variants explained,
// map contents copied to the kernel (the DDoS filter's blocklist must block there too).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "bench_command.hpp"
#include "sluice/xdp/action.hpp"

namespace {

using namespace sluice;
using namespace sluice::cli;

const std::string examples = SLUICE_EXAMPLES_DIR;

bench_settings quick_settings() {
    bench_settings settings;
    settings.sizes = {64};
    settings.packets = 8;
    settings.repeat = 64;
    settings.trials = 1;
    return settings;
}

bench_target target_of(const std::string& example) {
    bench_target target;
    target.file = fmt::format("{}/{}.o", examples, example);
    return target;
}

/// A variant that gives one fixed action for every packet and leaves the bytes alone.
class constant_variant final : public bench_variant {
public:
    explicit constant_variant(xdp::action verdict) : _verdict(verdict) {}
    expected<void> reset() override { return {}; }
    expected<packet_outcome> run_once(std::span<const std::uint8_t> packet) override {
        return packet_outcome{static_cast<std::uint32_t>(_verdict), {packet.begin(), packet.end()}};
    }
    expected<double> time(std::span<const std::uint8_t>, std::uint64_t) override { return 1.0; }

private:
    xdp::action _verdict;
};

variant_factory constant_factory(std::string name, xdp::action verdict) {
    return {std::move(name), variant_role::other,
            [verdict](const bench_target&) -> expected<std::unique_ptr<bench_variant>> {
                return std::unique_ptr<bench_variant>(std::make_unique<constant_variant>(verdict));
            }};
}

const variant_result* find(const size_result& size, variant_role role) {
    for (const variant_result& variant : size.variants) {
        if (variant.role == role) {
            return &variant;
        }
    }
    return nullptr;
}

TEST(bench_command, standard_variants_agree_and_are_timed) {
    auto result = run_bench(target_of("xdp_parse_count"), quick_settings(), standard_variants());
    ASSERT_TRUE(result) << result.error().message;
    ASSERT_EQ(result->sizes.size(), 1U);
    const size_result& size = result->sizes.front();
    EXPECT_TRUE(size.disagreements.empty()) << size.disagreements.front();
    EXPECT_TRUE(result->agreed());
    const variant_result* interpreter = find(size, variant_role::interpreter);
    const variant_result* checked = find(size, variant_role::interpreter_checked);
    ASSERT_NE(interpreter, nullptr);
    ASSERT_NE(checked, nullptr);
    ASSERT_TRUE(interpreter->ns) << interpreter->note;
    ASSERT_TRUE(checked->ns) << checked->note;
    EXPECT_GT(*interpreter->ns, 0.0);
    EXPECT_GT(*checked->ns, 0.0);
    const std::string table = format_bench_table(std::span{&*result, 1});
    EXPECT_NE(table.find("xdp_parse_count"), std::string::npos) << table;
    EXPECT_NE(table.find("interp/kernel"), std::string::npos) << table;
    const nlohmann::json json = bench_json(std::span{&*result, 1});
    EXPECT_TRUE(json["programs"][0]["sizes"][0]["agreed"].get<bool>());
    EXPECT_TRUE(json["programs"][0]["sizes"][0]["ratios"].contains("jit_over_kernel"));
}

TEST(bench_command, a_variant_that_disagrees_is_reported) {
    std::vector<variant_factory> factories = standard_variants();
    factories.resize(1); // the unchecked interpreter is the reference
    factories.push_back(constant_factory("always drop", xdp::action::drop));
    auto result = run_bench(target_of("xdp_pass"), quick_settings(), factories);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_FALSE(result->agreed());
    const auto& disagreements = result->sizes.front().disagreements;
    ASSERT_FALSE(disagreements.empty());
    EXPECT_NE(disagreements.front().find("always drop gave XDP_DROP instead of XDP_PASS"), std::string::npos)
        << disagreements.front();
    // Five packets are named, then the count of all of them.
    EXPECT_NE(disagreements.back().find("on 8 of 8 packets"), std::string::npos) << disagreements.back();
    const std::string table = format_bench_table(std::span{&*result, 1});
    EXPECT_NE(table.find("DISAGREE"), std::string::npos) << table;
}

TEST(bench_command, a_variant_that_cannot_run_says_why) {
    std::vector<variant_factory> factories = standard_variants();
    factories.resize(1);
    factories.push_back(
        {"missing", variant_role::dpdk, [](const bench_target&) -> expected<std::unique_ptr<bench_variant>> {
             return error{"skipped DPDK: not here"};
         }});
    auto result = run_bench(target_of("xdp_pass"), quick_settings(), factories);
    ASSERT_TRUE(result) << result.error().message;
    const variant_result* missing = find(result->sizes.front(), variant_role::dpdk);
    ASSERT_NE(missing, nullptr);
    EXPECT_FALSE(missing->ns);
    EXPECT_EQ(missing->note, "skipped DPDK: not here");
    const std::string table = format_bench_table(std::span{&*result, 1});
    EXPECT_NE(table.find("n/a [1]"), std::string::npos) << table;
    EXPECT_NE(table.find("[1] missing: skipped DPDK: not here"), std::string::npos) << table;
}

TEST(bench_command, bad_targets_are_errors_naming_the_problem) {
    bench_target target = target_of("ddos_filter");
    target.maps = {"no_such_map=/dev/null"};
    auto result = run_bench(target, quick_settings(), standard_variants());
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("no map 'no_such_map'"), std::string::npos) << result.error().message;

    target = target_of("xdp_pass");
    target.program = "nope";
    result = run_bench(target, quick_settings(), standard_variants());
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("no program named 'nope'"), std::string::npos) << result.error().message;
}

TEST(bench_command, the_kernel_gets_the_same_blocklist) {
    bench_target target = target_of("ddos_filter");
    target.maps = {std::string("blocked_v4=") + SLUICE_SOURCE_DIR + "/examples/ddos_blocklist.json"};
    bench_settings settings = quick_settings();
    settings.packets = 128; // 30% attack traffic: well over five packets from the blocked prefix
    std::vector<variant_factory> factories = standard_variants();
    // Reference: a variant that passes everything, so the blocklist's drops must show as a disagreement in sluice's
    // interpreter and in the kernel alike, with the same count.
    factories.insert(factories.begin(), constant_factory("pass everything", xdp::action::pass));
    auto result = run_bench(target, settings, factories);
    ASSERT_TRUE(result) << result.error().message;
    const size_result& size = result->sizes.front();
    const variant_result* kernel = find(size, variant_role::kernel);
    ASSERT_NE(kernel, nullptr);
    if (!kernel->ns) {
        GTEST_SKIP() << "the kernel variant cannot run here: " << kernel->note;
    }
    // "64 bytes: NAME disagreed with pass everything on N of 128 packets"
    auto dropped_by = [&size](std::string_view name) {
        const std::string needle = fmt::format(" bytes: {} disagreed with pass everything on ", name);
        for (const std::string& line : size.disagreements) {
            if (const std::size_t at = line.find(needle); at != std::string::npos) {
                return line.substr(at + needle.size());
            }
        }
        return std::string{};
    };
    const std::string interpreter_count = dropped_by("interpreter");
    const std::string kernel_count = dropped_by("kernel");
    ASSERT_FALSE(interpreter_count.empty()) << "the blocklist dropped fewer than 6 packets in sluice";
    EXPECT_EQ(kernel_count, interpreter_count) << "the kernel dropped a different number of packets";
}

} // namespace
