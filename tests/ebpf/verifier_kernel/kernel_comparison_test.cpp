// sluice's verifier beside the kernel's, on the same objects: every example and every loader fixture that the kernel
// accepts must be accepted by sluice too (the kernel is the oracle for what a correct program is), and a program the
// kernel rejects for memory safety (run_outcomes.o's `outcomes`, which writes far past a map value) is rejected by
// both. The kernel half needs root and BPF; without them it is skipped with the reason, and sluice's half still runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "kernel_verifier.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::ebpf {
namespace {

struct sluice_program_verdict {
    std::string name;
    bool accepted{};
    std::string message; ///< the rejection
    std::uint64_t instructions_processed{};
};

struct sluice_object_verdict {
    bool loaded{};
    std::string error; ///< why sluice's loader refused the object
    std::vector<sluice_program_verdict> programs;
};

sluice_object_verdict sluice_verify_object(const std::string& path) {
    sluice_object_verdict verdict;
    auto spec = object_spec::open_file(path);
    if (!spec) {
        verdict.error = spec.error().message;
        return verdict;
    }
    auto object = spec->load();
    if (!object) {
        verdict.error = object.error().message;
        return verdict;
    }
    verdict.loaded = true;
    for (const auto& program : object->programs()) {
        std::vector<map_definition> definitions;
        auto result = verify(verifier_input::of(*program, *object, definitions));
        verdict.programs.push_back({program->name, result.has_value(), result ? "" : result.error().message,
                                    result ? result->instructions_processed : 0});
    }
    return verdict;
}

std::vector<std::string> objects_in(const std::string& directory) {
    std::vector<std::string> paths;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
        if (entry.path().extension() == ".o") {
            paths.push_back(entry.path().string());
        }
    }
    std::ranges::sort(paths);
    return paths;
}

/// Checks that sluice and (when it can be asked) the kernel accept every program of `path`; returns the programs
/// compared with the kernel.
std::size_t expect_both_accept(const std::string& path, bool ask_kernel) {
    SCOPED_TRACE(path);
    const sluice_object_verdict ours = sluice_verify_object(path);
    EXPECT_TRUE(ours.loaded) << ours.error;
    EXPECT_FALSE(ours.programs.empty());
    for (const sluice_program_verdict& program : ours.programs) {
        EXPECT_TRUE(program.accepted) << "sluice rejects " << program.name << ":\n" << program.message;
    }
    if (!ask_kernel) {
        return 0;
    }
    const testing::kernel_object_verdict kernel = testing::kernel_verify_object(path);
    EXPECT_TRUE(kernel.opened) << kernel.error;
    std::size_t compared = 0;
    for (const sluice_program_verdict& program : ours.programs) {
        const testing::kernel_program_verdict* theirs = kernel.find(program.name);
        if (theirs == nullptr) {
            ADD_FAILURE() << "libbpf does not see program " << program.name;
            continue;
        }
        ++compared;
        EXPECT_TRUE(theirs->accepted) << "the kernel rejects " << program.name << ":\n" << theirs->log;
        std::printf("  %-28s %-24s kernel: %-8s (%6u insns verified)  sluice: %-8s (%6llu instructions processed)\n",
                    std::filesystem::path(path).filename().c_str(), program.name.c_str(),
                    theirs->accepted ? "accepts" : "REJECTS", theirs->verified_insns,
                    program.accepted ? "accepts" : "REJECTS",
                    static_cast<unsigned long long>(program.instructions_processed));
    }
    return compared;
}

TEST(verifier_kernel_comparison, every_example_is_accepted_by_both) {
    const std::string unavailable = testing::kernel_bpf_unavailable();
    const std::vector<std::string> examples = objects_in(SLUICE_EXAMPLES_DIR);
    ASSERT_GE(examples.size(), 7U) << "the examples are built into " << SLUICE_EXAMPLES_DIR;
    std::size_t compared = 0;
    for (const std::string& path : examples) {
        compared += expect_both_accept(path, unavailable.empty());
    }
    if (!unavailable.empty()) {
        GTEST_SKIP() << "sluice accepted every example; the kernel half was skipped: " << unavailable;
    }
    EXPECT_GE(compared, 10U);
    std::printf("%zu example programs: accepted by the kernel and by sluice\n", compared);
}

/// The loader fixtures: those sluice and libbpf both load must be accepted by both; those only sluice loads must be
/// accepted by sluice; those sluice's loader refuses are the loader tests' business. Each says why it is not compared.
struct fixture {
    const char* name;
    bool sluice_loads;
    const char* kernel_cannot; ///< why libbpf cannot load it, or nullptr
};
constexpr fixture loader_fixtures[] = {
    {"loader_maps", true, nullptr},
    {"loader_calls", true, nullptr},
    {"loader_legacy_maps", true, "legacy `maps` section: libbpf 1.x no longer loads it"},
    {"loader_same_section", true, "a static function as a program: libbpf refuses it"},
    {"loader_map_in_map", false, nullptr},
    {"loader_extern", false, nullptr},
    {"loader_core", false, nullptr},
    {"loader_no_program", false, nullptr},
};

TEST(verifier_kernel_comparison, every_loadable_loader_fixture_is_accepted_by_both) {
    const std::string unavailable = testing::kernel_bpf_unavailable();
    std::size_t compared = 0;
    for (const fixture& entry : loader_fixtures) {
        const std::string path = std::string(SLUICE_LOADER_DATA_DIR) + "/" + entry.name + ".o";
        ASSERT_TRUE(std::filesystem::exists(path)) << path;
        if (!entry.sluice_loads) {
            std::printf("  %-28s not compared: sluice's loader refuses it (map-in-map, externs, CO-RE or no program)\n",
                        entry.name);
            EXPECT_FALSE(sluice_verify_object(path).loaded) << entry.name << " loads now: compare it";
            continue;
        }
        if (entry.kernel_cannot != nullptr) {
            std::printf("  %-28s sluice only: %s\n", entry.name, entry.kernel_cannot);
        }
        compared += expect_both_accept(path, unavailable.empty() && entry.kernel_cannot == nullptr);
    }
    // Every fixture in the folder is in the table, so a new one is not silently left out.
    for (const std::string& path : objects_in(SLUICE_LOADER_DATA_DIR)) {
        const std::string stem = std::filesystem::path(path).stem().string();
        if (!stem.starts_with("loader_")) {
            continue;
        }
        EXPECT_TRUE(std::ranges::any_of(loader_fixtures, [&](const fixture& entry) { return stem == entry.name; }))
            << stem << " is not in this test's table of loader fixtures";
    }
    if (!unavailable.empty()) {
        GTEST_SKIP() << "sluice accepted every loadable fixture; the kernel half was skipped: " << unavailable;
    }
    EXPECT_GE(compared, 11U);
    std::printf("%zu loader fixture programs: accepted by the kernel and by sluice\n", compared);
}

TEST(verifier_kernel_comparison, a_write_past_a_map_value_is_rejected_by_both) {
    const std::string path = SLUICE_RUN_FIXTURE;
    const sluice_object_verdict ours = sluice_verify_object(path);
    ASSERT_TRUE(ours.loaded) << ours.error;
    const auto outcomes = std::ranges::find(ours.programs, "outcomes", &sluice_program_verdict::name);
    const auto printk = std::ranges::find(ours.programs, "printk_pass", &sluice_program_verdict::name);
    ASSERT_NE(outcomes, ours.programs.end());
    ASSERT_NE(printk, ours.programs.end());
    EXPECT_FALSE(outcomes->accepted) << "value[100000] = 1 on an 8-byte map value must be refused";
    EXPECT_NE(outcomes->message.find("value of map 'scratch'"), std::string::npos) << outcomes->message;
    EXPECT_NE(outcomes->message.find("out of bounds"), std::string::npos) << outcomes->message;
    EXPECT_TRUE(printk->accepted) << printk->message;

    const std::string unavailable = testing::kernel_bpf_unavailable();
    if (!unavailable.empty()) {
        GTEST_SKIP() << "the kernel half was skipped: " << unavailable;
    }
    const testing::kernel_object_verdict kernel = testing::kernel_verify_object(path);
    ASSERT_TRUE(kernel.opened) << kernel.error;
    const testing::kernel_program_verdict* kernel_outcomes = kernel.find("outcomes");
    const testing::kernel_program_verdict* kernel_printk = kernel.find("printk_pass");
    ASSERT_NE(kernel_outcomes, nullptr);
    ASSERT_NE(kernel_printk, nullptr);
    EXPECT_FALSE(kernel_outcomes->accepted);
    EXPECT_NE(kernel_outcomes->log.find("invalid access to map value"), std::string::npos) << kernel_outcomes->log;
    EXPECT_TRUE(kernel_printk->accepted) << kernel_printk->log;
}

} // namespace
} // namespace sluice::ebpf
