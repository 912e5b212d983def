// sluice's verifier beside the kernel's, on the same objects: every example and every loader fixture that the kernel
// accepts must be accepted by sluice too (the kernel is the oracle for what a correct program is), and a program the
// kernel rejects for memory safety (run_outcomes.o's `outcomes`, which writes far past a map value) is rejected by
// both. The kernel half needs root and BPF; without them it is skipped with the reason, and sluice's half still runs.
//
// The verifier's unsafe corpus (tests/ebpf/verifier/unsafe/*.txt, assembly in sluice's relocated form) goes to the
// kernel too: each case is turned back into the kernel's form (context reads of sluice's xdp_context become reads of
// struct xdp_md, map references become the fds of maps created with bpf_map_create) and loaded with
// bpf_prog_load(BPF_PROG_TYPE_XDP), from a thread holding only CAP_BPF and CAP_NET_ADMIN: root's kernel (CAP_PERFMON)
// allows pointer leaks and uninitialised stack reads, which sluice never does. The kernel must reject every case but
// those listed in sluice_only_cases, each with the reason sluice is stricter there; root's verdicts are counted. The
// safe corpus is loaded too, and what the kernel says is reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <linux/capability.h>
#include <sys/syscall.h>

#include "../verifier_corpus.hpp"
#include "kernel_verifier.hpp"
#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/verifier.hpp"
#include "sluice/ebpf/xdp_context.hpp"

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

// ---- the verifier's corpus in the kernel ----

using verifier_corpus::corpus_case;
using verifier_corpus::read_corpus;

/// sluice's context offset -> struct xdp_md's, for the fields the kernel has.
std::optional<std::int16_t> xdp_md_offset(std::int16_t sluice_offset) {
    switch (sluice_offset) {
    case static_cast<std::int16_t>(xdp_context_data_offset):
        return 0;
    case static_cast<std::int16_t>(xdp_context_data_end_offset):
        return 4;
    case static_cast<std::int16_t>(xdp_context_data_meta_offset):
        return 8;
    case static_cast<std::int16_t>(xdp_context_ingress_ifindex_offset):
        return 12;
    case static_cast<std::int16_t>(xdp_context_rx_queue_index_offset):
        return 16;
    case static_cast<std::int16_t>(xdp_context_egress_ifindex_offset):
        return 20;
    default:
        return std::nullopt;
    }
}

/// The code as BPF_PROG_LOAD wants it: the loader's context rewrite undone (accesses through a register that holds
/// the context, followed in program order: r1 at entry and its copies, until overwritten or a call), pointer fields
/// back to 32 bits; map references by index become map fds.
std::vector<bpf_insn> kernel_form(std::vector<instruction> code, const std::vector<int>& fds) {
    std::set<int> context{1};
    for (std::size_t i = 0; i < code.size(); ++i) {
        instruction& insn = code[i];
        const std::uint8_t cls = op::cls(insn.opcode);
        const bool memory =
            (cls == op::cls_ldx || cls == op::cls_st || cls == op::cls_stx) && op::mode(insn.opcode) == op::mode_mem;
        const int base = cls == op::cls_ldx ? insn.src : insn.dst;
        if (memory && context.contains(base)) {
            if (const auto offset = xdp_md_offset(insn.offset); offset) {
                // sluice's 8-byte pointer fields are 4 bytes in xdp_md; other sizes stay (a wrong size stays wrong).
                if (op::size(insn.opcode) == op::size_dw && *offset <= 8) {
                    insn.opcode = static_cast<std::uint8_t>((insn.opcode & ~0x18) | op::size_w);
                }
                insn.offset = *offset;
            }
        }
        if (insn.opcode == op::lddw && i + 1 < code.size()) {
            if (insn.src == op::pseudo_map_idx && static_cast<std::size_t>(insn.imm) < fds.size()) {
                insn.src = op::pseudo_map_fd;
                insn.imm = fds[static_cast<std::size_t>(insn.imm)];
            } else if (insn.src == op::pseudo_map_idx_value && static_cast<std::size_t>(insn.imm) < fds.size()) {
                insn.src = op::pseudo_map_value;
                insn.imm = fds[static_cast<std::size_t>(insn.imm)];
            }
            context.erase(insn.dst);
            ++i;
            continue;
        }
        // Registers written lose the context, except plain copies of it.
        if (insn.opcode == op::call) {
            for (int r = 0; r <= 5; ++r) {
                context.erase(r);
            }
        } else if (op::is_alu(insn.opcode) || cls == op::cls_ldx) {
            const bool copy = insn.opcode == (op::cls_alu64 | op::alu_mov | op::src_x) && insn.offset == 0 &&
                              context.contains(insn.src);
            if (copy) {
                context.insert(insn.dst);
            } else {
                context.erase(insn.dst);
            }
        }
    }
    std::vector<bpf_insn> raw(code.size());
    std::memcpy(raw.data(), code.data(), code.size() * sizeof(instruction));
    return raw;
}

struct kernel_corpus_verdict {
    bool loaded{};       ///< the kernel accepted it
    std::string problem; ///< could not be asked (a map the kernel would not create, no assembly)
    std::string log;
};

/// The calling thread without CAP_SYS_ADMIN and CAP_PERFMON (capabilities are per thread): the kernel then verifies
/// as for a loader with only CAP_BPF and CAP_NET_ADMIN, without the privileged relaxations (pointer leaks,
/// uninitialised stack reads) that sluice does not make.
bool drop_perfmon_and_sys_admin() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2]{};
    if (::syscall(SYS_capget, &header, data) != 0) {
        return false;
    }
    for (const int capability : {CAP_SYS_ADMIN, CAP_PERFMON}) {
        data[capability / 32].effective &= ~(1U << (capability % 32));
    }
    return ::syscall(SYS_capset, &header, data) == 0;
}

kernel_corpus_verdict kernel_verify_case_directly(const corpus_case& c) {
    kernel_corpus_verdict verdict;
    auto code = assemble(c.assembly);
    if (!code) {
        verdict.problem = "does not assemble: " + code.error().message;
        return verdict;
    }
    std::vector<int> fds;
    for (const map_definition& map : c.maps) {
        LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = map.map_flags);
        const int fd = bpf_map_create(static_cast<bpf_map_type>(map.type), map.name.c_str(), map.key_size,
                                      map.value_size, map.max_entries, &options);
        if (fd < 0) {
            verdict.problem = "bpf_map_create " + map.name + ": " + std::strerror(errno);
            break;
        }
        fds.push_back(fd);
    }
    if (verdict.problem.empty()) {
        const std::vector<bpf_insn> raw = kernel_form(*code, fds);
        std::vector<char> log(1 << 20);
        const bool devmap = c.attach == xdp_attach::devmap;
        LIBBPF_OPTS(bpf_prog_load_opts, options, .expected_attach_type = devmap ? BPF_XDP_DEVMAP : BPF_XDP,
                    .log_level = 1, .log_size = static_cast<std::uint32_t>(log.size()), .log_buf = log.data());
        const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "corpus", "GPL", raw.data(), raw.size(), &options);
        verdict.loaded = fd >= 0;
        const std::string text = log.data();
        // The end of the log holds the reason.
        verdict.log = text.size() > 600 ? text.substr(text.size() - 600) : text;
        if (fd >= 0) {
            ::close(fd);
        }
    }
    for (const int fd : fds) {
        ::close(fd);
    }
    return verdict;
}

/// The kernel's verdict: `privileged` as root (CAP_SYS_ADMIN), else with only CAP_BPF and CAP_NET_ADMIN, in a thread
/// of its own.
kernel_corpus_verdict kernel_verify_case(const corpus_case& c, bool privileged) {
    if (privileged) {
        return kernel_verify_case_directly(c);
    }
    kernel_corpus_verdict verdict;
    std::thread([&] {
        if (!drop_perfmon_and_sys_admin()) {
            verdict.problem = std::string("capset: ") + std::strerror(errno);
            return;
        }
        verdict = kernel_verify_case_directly(c);
    }).join();
    return verdict;
}

/// Unsafe cases the kernel accepts even without CAP_PERFMON: where sluice is deliberately stricter, and why.
const std::map<std::string, std::string>& sluice_only_cases() {
    static const std::map<std::string, std::string> cases{
        {"map/unchecked map value",
         "an array lookup with a constant key below max_entries cannot fail: recent kernels (6.18 here) drop the "
         "NULL check requirement there; sluice still asks for the check every C program has"},
        {"map/arithmetic on a pointer that may be null",
         "the same constant-key array lookup, which recent kernels know is never NULL"},
    };
    return cases;
}

TEST(verifier_kernel_comparison, the_kernel_rejects_the_unsafe_corpus_too) {
    const std::vector<corpus_case> cases = read_corpus("unsafe");
    ASSERT_GE(cases.size(), 40U);
    const std::string unavailable = testing::kernel_bpf_unavailable();
    if (!unavailable.empty()) {
        GTEST_SKIP() << "the kernel cannot be asked: " << unavailable;
    }
    std::size_t rejected = 0;
    std::size_t sluice_only = 0;
    std::size_t not_asked = 0;
    std::size_t rejected_privileged = 0;
    for (const corpus_case& c : cases) {
        // Root's kernel allows pointer leaks and uninitialised stack reads (CAP_PERFMON): counted, not compared.
        rejected_privileged += kernel_verify_case(c, true).loaded ? 0 : 1;
        const kernel_corpus_verdict verdict = kernel_verify_case(c, false);
        if (!verdict.problem.empty()) {
            ++not_asked;
            std::printf("  %-60s not asked: %s\n", c.id().c_str(), verdict.problem.c_str());
            continue;
        }
        const auto listed = sluice_only_cases().find(c.id());
        if (!verdict.loaded) {
            ++rejected;
            EXPECT_EQ(listed, sluice_only_cases().end()) << c.id() << " is listed as sluice-only, but the kernel "
                                                         << "rejects it now: take it off the list";
            continue;
        }
        if (listed != sluice_only_cases().end()) {
            ++sluice_only;
            std::printf("  %-60s kernel accepts; sluice-only: %s\n", c.id().c_str(), listed->second.c_str());
            continue;
        }
        ADD_FAILURE() << c.id() << ": the kernel (CAP_BPF + CAP_NET_ADMIN) accepts this unsafe case; sluice rejects "
                      << "it. If sluice is right to be stricter, list it in sluice_only_cases with the reason.";
    }
    std::printf("unsafe corpus: %zu cases; the kernel with CAP_BPF + CAP_NET_ADMIN rejects %zu, accepts %zu "
                "(sluice-only, listed), %zu not asked; as root (CAP_PERFMON: pointer leaks and uninitialised stack "
                "reads allowed) it rejects %zu\n",
                cases.size(), rejected, sluice_only, not_asked, rejected_privileged);
}

TEST(verifier_kernel_comparison, what_the_kernel_says_of_the_safe_corpus) {
    const std::vector<corpus_case> cases = read_corpus("safe");
    const std::string unavailable = testing::kernel_bpf_unavailable();
    if (!unavailable.empty()) {
        GTEST_SKIP() << "the kernel cannot be asked: " << unavailable;
    }
    std::size_t accepted = 0;
    for (const corpus_case& c : cases) {
        const kernel_corpus_verdict verdict = kernel_verify_case(c, true);
        accepted += verdict.loaded ? 1 : 0;
        if (!verdict.loaded) {
            std::printf("  %-60s kernel: %s\n", c.id().c_str(),
                        verdict.problem.empty() ? ("rejects: " + verdict.log).c_str() : verdict.problem.c_str());
        }
    }
    // Informational: a safe case is safe by sluice's rules; the kernel may be stricter (its complexity, its
    // loop handling), so its rejections are listed rather than failed.
    std::printf("safe corpus: %zu cases; the kernel accepts %zu\n", cases.size(), accepted);
    EXPECT_FALSE(cases.empty());
}

} // namespace
} // namespace sluice::ebpf
