// The kernel as the judge: the same tiny XDP programs run through BPF_PROG_TEST_RUN and through sluice's interpreter
// on the same packet; return values and output packets (metadata included) must agree. Skipped, saying why, when
// bpf() is not allowed here.

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "helpers_test_support.hpp"

namespace {

using namespace sluice::ebpf;
using namespace sluice::ebpf::testing;

struct kernel_result {
    std::uint32_t retval{};
    std::vector<std::uint8_t> output;
};

/// Loads `code` as an XDP program and runs it once on `packet`; an error text when the kernel refuses.
std::optional<kernel_result> kernel_run(const std::vector<instruction>& code, const std::vector<std::uint8_t>& packet,
                                        std::string& why) {
    std::string log(64 * 1024, '\0');
    LIBBPF_OPTS(bpf_prog_load_opts, load_options, .log_level = 1, .log_size = static_cast<__u32>(log.size()),
                .log_buf = log.data());
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "sluice_test", "GPL",
                                 reinterpret_cast<const bpf_insn*>(code.data()), code.size(), &load_options);
    if (fd < 0) {
        why = fmt::format("bpf_prog_load: {} ({})", std::strerror(-fd), log.c_str());
        return std::nullopt;
    }
    kernel_result result;
    result.output.resize(4096);
    LIBBPF_OPTS(bpf_test_run_opts, run_options, .data_in = packet.data(), .data_out = result.output.data(),
                .data_size_in = static_cast<__u32>(packet.size()),
                .data_size_out = static_cast<__u32>(result.output.size()), .repeat = 1);
    const int error = bpf_prog_test_run_opts(fd, &run_options);
    close(fd);
    if (error != 0) {
        why = fmt::format("bpf_prog_test_run_opts: {}", std::strerror(-error));
        return std::nullopt;
    }
    result.retval = run_options.retval;
    result.output.resize(run_options.data_size_out);
    return result;
}

/// Why the kernel cannot judge here (empty when it can): probed once with a program returning XDP_PASS.
std::string kernel_unavailable() {
    static const std::string reason = [] {
        std::string why;
        const std::vector<instruction> pass = assemble_or_fail("mov %r0, 2\nexit");
        if (!kernel_run(pass, std::vector<std::uint8_t>(64, 0), why)) {
            return why + " (kernel comparisons need root or CAP_BPF + CAP_NET_ADMIN on a kernel with BPF)";
        }
        return std::string();
    }();
    return reason;
}

#define REQUIRE_KERNEL()                                                                                               \
    do {                                                                                                               \
        if (const std::string reason = kernel_unavailable(); !reason.empty()) {                                        \
            GTEST_SKIP() << reason;                                                                                    \
        }                                                                                                              \
    } while (false)

/// Runs `text` in both on a `length`-byte packet and compares; `state` is sluice's worker state.
void compare(const std::string& text, std::size_t length, execution_state state = execution_state{}) {
    SCOPED_TRACE(text);
    const auto code = assemble_or_fail(text);
    packet_buffer buffer(length);
    const std::vector<std::uint8_t> input = buffer.packet();
    std::string why;
    const auto kernel = kernel_run(code, input, why);
    ASSERT_TRUE(kernel) << why;
    const auto sluice = run_xdp(code, buffer, state);
    ASSERT_TRUE(sluice) << sluice.error().message;
    EXPECT_EQ(static_cast<std::uint32_t>(*sluice), kernel->retval);
    EXPECT_EQ(buffer.meta_and_packet(), kernel->output);
}

std::string call_with_offset(int helper, int offset) {
    return fmt::format("mov %r2, {}\ncall {}\nexit", offset, helper);
}

TEST(kernel_comparison, xdp_adjust_head) {
    REQUIRE_KERNEL();
    for (const int offset : {-217, -216, -100, -1, 0, 1, 50, 51, 100}) {
        compare(call_with_offset(BPF_FUNC_xdp_adjust_head, offset), 64);
    }
    // With metadata: the 8 metadata bytes take headroom and move with the packet.
    for (const int offset : {-209, -208, 8, 50, 51}) {
        compare(fmt::format("mov %r6, %r1\nmov %r2, -8\ncall {}\nmov %r1, %r6\nmov %r2, {}\ncall {}\nexit",
                            static_cast<int>(BPF_FUNC_xdp_adjust_meta), offset,
                            static_cast<int>(BPF_FUNC_xdp_adjust_head)),
                64);
    }
}

TEST(kernel_comparison, xdp_adjust_meta) {
    REQUIRE_KERNEL();
    for (const int offset : {-256, -220, -217, -216, -212, -8, -4, -2, -1, 0, 4}) {
        compare(call_with_offset(BPF_FUNC_xdp_adjust_meta, offset), 64);
    }
}

TEST(kernel_comparison, xdp_adjust_tail) {
    REQUIRE_KERNEL();
    for (const int length : {14, 64, 1500, 3520}) {
        const int room = 3520 - length;
        for (const int offset : {room + 1, room, 1, 0, -1, -(length - 14), -(length - 13)}) {
            compare(call_with_offset(BPF_FUNC_xdp_adjust_tail, offset), static_cast<std::size_t>(length));
        }
    }
}

TEST(kernel_comparison, xdp_load_and_store_bytes) {
    REQUIRE_KERNEL();
    for (const int offset : {0, 56, 57, 100, 0xffff, 0x10000}) {
        compare(fmt::format("mov %r2, {}\nmov %r3, %r10\nadd %r3, -8\nmov %r4, 8\ncall {}\nexit", offset,
                            static_cast<int>(BPF_FUNC_xdp_load_bytes)),
                64);
        compare(fmt::format("mov %r6, 0x41424344\nstxdw [%r10-8], %r6\nmov %r2, {}\nmov %r3, %r10\nadd %r3, -8\n"
                            "mov %r4, 8\ncall {}\nexit",
                            offset, static_cast<int>(BPF_FUNC_xdp_store_bytes)),
                64);
    }
}

TEST(kernel_comparison, csum_diff) {
    REQUIRE_KERNEL();
    const std::array<std::uint64_t, 3> words{0x0073004500004000ULL, 0xffffffff00000000ULL, 0x0123456789abcdefULL};
    for (const std::uint64_t first : words) {
        for (const int seed : {0, 1, 0x1234, -1}) {
            for (const int from_size : {0, 2, 8}) {
                compare(fmt::format(R"(
                    lddw %r1, {:#x}
                    stxdw [%r10-16], %r1
                    lddw %r1, 0x11223344fedcba98
                    stxdw [%r10-8], %r1
                    mov %r1, %r10
                    add %r1, -8
                    mov %r2, {}
                    mov %r3, %r10
                    add %r3, -16
                    mov %r4, 16
                    mov %r5, {}
                    call {}
                    exit)",
                                    first, from_size, seed, static_cast<int>(BPF_FUNC_csum_diff)),
                        64);
            }
        }
    }
}

/// A program that puts `format` (with its NUL) on the stack and returns bpf_trace_printk(format, size, a, b, c).
std::string trace_printk_program(const std::string& format, std::int32_t a, std::int32_t b, std::int32_t c) {
    std::string bytes = format;
    bytes.push_back('\0');
    const std::size_t size = bytes.size();
    bytes.resize((bytes.size() + 7) / 8 * 8, '\0');
    std::string text;
    const auto base = static_cast<int>(bytes.size());
    for (std::size_t i = 0; i < bytes.size(); i += 8) {
        std::uint64_t chunk = 0;
        std::memcpy(&chunk, bytes.data() + i, 8);
        text += fmt::format("lddw %r1, {:#x}\nstxdw [%r10-{}], %r1\n", chunk, base - static_cast<int>(i));
    }
    text +=
        fmt::format("mov %r1, %r10\nadd %r1, -{}\nmov %r2, {}\nmov %r3, {}\nmov %r4, {}\nmov %r5, {}\ncall {}\nexit",
                    base, size, a, b, c, static_cast<int>(BPF_FUNC_trace_printk));
    return text;
}

TEST(kernel_comparison, check_mtu_on_the_test_run_device) {
    REQUIRE_KERNEL();
    // BPF_PROG_TEST_RUN's device is the namespace's loopback: ifindex 1, MTU 65536, hard header length 14 (Ethernet
    // emulation). sluice is told the same.
    execution_state state;
    state.mtus = {{1, 65536}};
    for (const std::int32_t mtu_length : {0, 1500, 65536, 65537}) {
        for (const std::int32_t difference : {0, 65536 - 64 + 14, 65536 - 64 + 15, -100}) {
            compare(fmt::format("mov %r6, {}\nstxw [%r10-4], %r6\nmov %r2, 0\nmov %r3, %r10\nadd %r3, -4\n"
                                "mov %r4, {}\nmov %r5, 0\ncall {}\nldxw %r1, [%r10-4]\nmul %r0, 100000\n"
                                "add %r0, %r1\nexit",
                                mtu_length, difference, static_cast<int>(BPF_FUNC_check_mtu)),
                    64, state);
        }
    }
}

TEST(kernel_comparison, trace_printk_formats_and_refusals) {
    REQUIRE_KERNEL();
    // The result is the formatted length or -EINVAL: both come from bpf_bprintf_prepare's rules and bstr_printf.
    for (const char* format : {"%d %u %x\n",
                               "%lld|%llx|%5d|",
                               "100%% %08X %-3u|",
                               "%c%c%c",
                               "%i %li %lli",
                               "% d|%+d|%-05d",
                               "%llu %lu %X",
                               "tab\tand space",
                               "%0d %10x",
                               "%hd",
                               "%.2d",
                               "%f",
                               "%d %d %d %d",
                               "%sfoo",
                               "%pZ",
                               "%lq",
                               "abc%",
                               "bad\x01",
                               "%%%%%%",
                               "%z"}) {
        compare(trace_printk_program(format, -5, 65, 0x7fffffff), 64);
    }
}

} // namespace
