// End to end: a clang-compiled object using bpf_loop, bpf_for_each_map_elem, map updates, bpf_xdp_adjust_head and a
// tail call through its own prog array, loaded by sluice's loader with the helper check and run by the interpreter,
// and loaded by libbpf and run by the kernel (BPF_PROG_TEST_RUN) on the same packet: same verdict, same bytes.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <optional>

#include "helpers_test_support.hpp"
#include "sluice/ebpf/loader.hpp"

namespace {

using namespace sluice::ebpf;
using namespace sluice::ebpf::testing;

const std::string object_path = std::string(SLUICE_HELPERS_DATA_DIR) + "/helpers_end_to_end.o";

struct verdict {
    std::uint32_t action{};
    std::vector<std::uint8_t> packet;
};

/// The kernel's answer, or nullopt with `why` when the kernel cannot be asked here.
std::optional<verdict> kernel_verdict(const std::vector<std::uint8_t>& packet, std::string& why) {
    bpf_object* object = bpf_object__open_file(object_path.c_str(), nullptr);
    if (object == nullptr) {
        why = "libbpf cannot open " + object_path;
        return std::nullopt;
    }
    std::optional<verdict> result;
    if (const int error = bpf_object__load(object); error != 0) {
        why = fmt::format("bpf_object__load: {} (kernel comparisons need root or CAP_BPF on a kernel with BPF)",
                          std::strerror(-error));
    } else {
        const int fd = bpf_program__fd(bpf_object__find_program_by_name(object, "xdp_helpers"));
        verdict answer;
        answer.packet.resize(4096);
        LIBBPF_OPTS(bpf_test_run_opts, options, .data_in = packet.data(), .data_out = answer.packet.data(),
                    .data_size_in = static_cast<__u32>(packet.size()),
                    .data_size_out = static_cast<__u32>(answer.packet.size()), .repeat = 1);
        if (const int failed = bpf_prog_test_run_opts(fd, &options); failed != 0) {
            why = fmt::format("bpf_prog_test_run_opts: {}", std::strerror(-failed));
        } else {
            answer.action = options.retval;
            answer.packet.resize(options.data_size_out);
            result = std::move(answer);
        }
    }
    bpf_object__close(object);
    return result;
}

TEST(end_to_end, loop_for_each_adjust_head_and_tail_call_agree_with_the_kernel) {
    auto spec = object_spec::open_file(object_path);
    ASSERT_TRUE(spec) << spec.error().message;
    load_options options;
    options.check_program = [](const program_spec& program) {
        return check_helper_calls(program.code, xdp_helper_table());
    };
    auto loaded = spec->load(options);
    ASSERT_TRUE(loaded) << loaded.error().message;

    // prog_array slots hold the loader's `const loaded_program*`; the registry turns them into runnable programs.
    program_registry registry;
    for (const auto& program : loaded->programs()) {
        auto runnable = runnable_program::prepare(program->code, xdp_helper_table());
        ASSERT_TRUE(runnable) << runnable.error().message;
        registry.add(program.get(), *runnable);
    }
    const loaded_program* entry = loaded->find_program("xdp_helpers");
    ASSERT_NE(entry, nullptr);

    packet_buffer buffer(64);
    const std::vector<std::uint8_t> input = buffer.packet();
    execution_state state;
    state.programs = &registry;
    auto machine = interpreter::create(entry->code, xdp_helper_table(), {.checked = false});
    ASSERT_TRUE(machine) << machine.error().message;
    state.begin_packet(buffer.context);
    auto result = machine->run({buffer.address(), 0, 0, 0, 0}, &state);
    ASSERT_TRUE(result) << result.error().message;

    // Expected by hand: bpf_loop sums 0..9 = 45 in 10 iterations; the array holds {45, 10, 0, 0}; for_each adds
    // value + key for 4 elements: 45 + 10 + 0 + 0 + (0 + 1 + 2 + 3) = 61; report = 61 + 4 * 1000 = 4061; the tail
    // call into xdp_last marks byte 15 and returns XDP_TX.
    EXPECT_EQ(*result, 3u);
    const std::vector<std::uint8_t> output = buffer.packet();
    ASSERT_EQ(output.size(), input.size() + 8);
    std::uint64_t report = 0;
    std::memcpy(&report, output.data(), sizeof report);
    EXPECT_EQ(report, 4061u);
    EXPECT_EQ(output[15], 0xee);

    std::string why;
    const auto kernel = kernel_verdict(input, why);
    if (!kernel) {
        GTEST_SKIP() << "sluice's run checked by hand; the kernel comparison was skipped: " << why;
    }
    EXPECT_EQ(static_cast<std::uint32_t>(*result), kernel->action);
    EXPECT_EQ(buffer.meta_and_packet(), kernel->packet);
}

TEST(end_to_end, the_loader_check_refuses_missing_helpers_by_name) {
    // A hand-made program calling bpf_skb_load_bytes, as the loader's check_program hook sees it.
    program_spec program;
    program.code = assemble_or_fail("mov %r2, 0\ncall 26\nexit");
    auto checked = check_helper_calls(program.code, xdp_helper_table());
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error().message,
              "instruction 1: calls bpf_skb_load_bytes (helper 26), which sluice does not provide for XDP programs");
}

} // namespace
