// The random program generator (tests/support/program_generator.hpp): deterministic, bounded, complete for any fuzz
// input, and its safe programs are accepted by the kernel's verifier and run in sluice's checked interpreter without
// a fault. The kernel part is skipped, saying why, where bpf() is not allowed.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/program.hpp"
#include "support/program_generator.hpp"

namespace {

using namespace sluice;
using namespace sluice::testing;

/// Creates the program's maps in the kernel and loads it; "" when accepted, else the reason with the verifier log.
std::string kernel_verdict(const generated_program& program) {
    std::vector<int> fds;
    std::string verdict;
    for (const ebpf::map_definition& map : program.maps) {
        const int fd = bpf_map_create(static_cast<bpf_map_type>(map.type), map.name.c_str(), map.key_size,
                                      map.value_size, map.max_entries, nullptr);
        if (fd < 0) {
            verdict = fmt::format("bpf_map_create '{}': {}", map.name, std::strerror(-fd));
        }
        fds.push_back(fd);
    }
    if (verdict.empty()) {
        const std::vector<ebpf::instruction> code = kernel_form(program.code, fds);
        std::string log(1 << 20, '\0');
        LIBBPF_OPTS(bpf_prog_load_opts, options, .log_level = 1, .log_size = static_cast<__u32>(log.size()),
                    .log_buf = log.data());
        const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "generated", "GPL",
                                     reinterpret_cast<const bpf_insn*>(code.data()), code.size(), &options);
        if (fd < 0) {
            const std::string text = log.c_str();
            // The end of the log says why.
            verdict = fmt::format("bpf_prog_load: {}\n...{}", std::strerror(-fd),
                                  text.size() > 3000 ? text.substr(text.size() - 3000) : text);
        } else {
            close(fd);
        }
    }
    for (const int fd : fds) {
        if (fd >= 0) {
            close(fd);
        }
    }
    return verdict;
}

std::string kernel_unavailable() {
    static const std::string reason = [] {
        const ebpf::instruction pass[] = {ebpf::make_instruction(0xb7, 0, 0, 0, 2), ebpf::make_instruction(0x95)};
        const int fd =
            bpf_prog_load(BPF_PROG_TYPE_XDP, "probe", "GPL", reinterpret_cast<const bpf_insn*>(pass), 2, nullptr);
        if (fd < 0) {
            return fmt::format("the kernel refused BPF_PROG_LOAD: {} (the kernel's verifier is the judge here; it "
                               "needs root or CAP_BPF on a kernel with BPF)",
                               std::strerror(-fd));
        }
        close(fd);
        return std::string();
    }();
    return reason;
}

/// Seeds start here: 0 in CI; SLUICE_SEED_BASE=N explores other programs by hand.
std::uint64_t seed_base() {
    const char* text = std::getenv("SLUICE_SEED_BASE");
    return text == nullptr ? 0 : std::strtoull(text, nullptr, 0);
}

TEST(program_generator, same_seed_same_program) {
    for (std::uint64_t seed = 0; seed < 50; ++seed) {
        const generated_program a = generate_program(seed);
        const generated_program b = generate_program(seed);
        EXPECT_EQ(a.code, b.code) << seed;
        EXPECT_EQ(a.maps.size(), b.maps.size()) << seed;
        EXPECT_EQ(a.seed, seed);
    }
    EXPECT_NE(generate_program(1).code, generate_program(2).code);
}

TEST(program_generator, stays_within_max_instructions_and_validates) {
    for (const std::size_t limit : {24UL, 64UL, 200UL, 1000UL}) {
        generator_options options;
        options.max_instructions = limit;
        options.loops = true;
        options.may_goto = limit >= 200;
        for (std::uint64_t seed = 0; seed < 200; ++seed) {
            const generated_program program = generate_program(seed, options);
            EXPECT_LE(program.code.size(), limit) << seed;
            EXPECT_FALSE(program.unsafe);
            const auto valid = ebpf::validate(program.code);
            EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << describe(program);
        }
    }
}

TEST(program_generator, any_fuzz_input_gives_a_complete_program) {
    std::mt19937_64 random(7);
    for (int round = 0; round < 500; ++round) {
        std::vector<std::uint8_t> bytes(random() % 300);
        for (auto& byte : bytes) {
            byte = static_cast<std::uint8_t>(random());
        }
        generator_options options;
        options.unsafe_probability = round % 2 == 0 ? 0.0 : 0.2;
        options.loops = true;
        const generated_program program = generate_program(bytes, options);
        ASSERT_FALSE(program.code.empty());
        EXPECT_EQ(program.code.back().opcode, ebpf::op::exit);
        const auto valid = ebpf::validate(program.code);
        EXPECT_TRUE(valid) << (valid ? "" : valid.error().message) << "\n" << describe(program);
    }
    EXPECT_EQ(generate_program(std::span<const std::uint8_t>{}).code.back().opcode, ebpf::op::exit);
}

TEST(program_generator, safe_programs_run_in_checked_mode_without_fault) {
    for (std::uint64_t seed = 0; seed < 300; ++seed) {
        generator_options options;
        options.loops = seed % 2 == 0;
        const generated_program program = generate_program(seed, options);
        auto ready = instantiate(program, 1);
        ASSERT_TRUE(ready) << ready.error().message << "\n" << describe(program);
        auto machine = ebpf::interpreter::create(ready->code, ebpf::xdp_helper_table(), {.checked = true});
        ASSERT_TRUE(machine) << machine.error().message;
        alignas(4096) static std::uint8_t buffer[4096];
        for (std::size_t i = 0; i < sizeof buffer; ++i) {
            buffer[i] = static_cast<std::uint8_t>(i * 31 + seed);
        }
        ebpf::xdp_context context{};
        context.data_hard_start = buffer;
        context.data = buffer + 256;
        context.data_meta = context.data;
        context.data_end = context.data + 60 + seed % 200;
        context.frame_size = sizeof buffer;
        context.ingress_ifindex = 1;
        machine->add_region({reinterpret_cast<std::uintptr_t>(buffer), sizeof buffer - 320, true, "packet"});
        machine->add_region({reinterpret_cast<std::uintptr_t>(&context), sizeof context, false, "context"});
        ebpf::execution_state state;
        state.begin_packet(context);
        const auto result = machine->run({reinterpret_cast<std::uintptr_t>(&context), 0, 0, 0, 0}, &state);
        EXPECT_TRUE(result) << (result ? "" : result.error().message) << "\n" << describe(program);
    }
}

TEST(program_generator, kernel_verifier_accepts_safe_programs) {
    if (const std::string reason = kernel_unavailable(); !reason.empty()) {
        GTEST_SKIP() << reason;
    }
    int accepted = 0;
    int with_may_goto = 0;
    for (std::uint64_t seed = seed_base(); seed < seed_base() + 400; ++seed) {
        generator_options options;
        options.loops = seed % 2 == 0;
        options.may_goto = seed % 4 == 0;
        options.max_instructions = seed % 3 == 0 ? 400 : 200;
        const generated_program program = generate_program(seed, options);
        const std::string verdict = kernel_verdict(program);
        EXPECT_EQ(verdict, "") << describe(program);
        accepted += verdict.empty() ? 1 : 0;
        with_may_goto += std::any_of(program.code.begin(), program.code.end(),
                                     [](const ebpf::instruction& insn) { return insn.opcode == ebpf::op::may_goto; });
    }
    EXPECT_EQ(accepted, 400);
    EXPECT_GT(with_may_goto, 0) << "no program tested can_loop";
}

TEST(program_generator, kernel_verifier_refuses_most_unsafe_programs) {
    if (const std::string reason = kernel_unavailable(); !reason.empty()) {
        GTEST_SKIP() << reason;
    }
    int unsafe = 0;
    int refused = 0;
    for (std::uint64_t seed = 0; seed < 200; ++seed) {
        generator_options options;
        options.unsafe_probability = 0.1;
        const generated_program program = generate_program(seed, options);
        if (!program.unsafe) {
            EXPECT_EQ(kernel_verdict(program), "") << describe(program);
            continue;
        }
        ++unsafe;
        refused += kernel_verdict(program).empty() ? 0 : 1;
    }
    // Some dropped measures are harmless on the paths taken (a read of a register that happens to be written); most
    // are not.
    EXPECT_GT(unsafe, 50);
    EXPECT_GT(refused, unsafe / 2);
}

} // namespace
