// Where sluice and the kernel's BPF_PROG_TEST_RUN cannot agree, and why; what is compared there instead. Also the
// harness's own checks: a difference on either side is reported.
//
//  - Packets shorter than ETH_HLEN (14 bytes): BPF_PROG_TEST_RUN refuses them (-EINVAL), so there is no kernel result.
//    sluice runs them: generated programs (which check every access) must run to the end without a fault.
//  - Packets larger than 3520 bytes: BPF_PROG_TEST_RUN puts the bytes beyond its 4096-byte page into fragments, even
//    for programs without xdp.frags; the program sees 3520 linear bytes. sluice has no fragments: a jumbo frame holds
//    the whole packet linearly. Programs that only read headers agree on the action and the output bytes; anything
//    that depends on data_end (lengths, adjust_tail) cannot agree and is not compared.
//  - Linux 6.18's verifier loses precision through fetching atomics on stack slots and may remove code that runs
//    (see kernel_verifier_drops_code_after_fetching_atomic_on_stack): sluice follows the instruction set; the
//    generator does not emit that pattern by default.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "oracle.hpp"

namespace {

using namespace sluice;
using namespace sluice::oracle;
namespace op = ebpf::op;
using ebpf::make_instruction;

sluice::testing::generated_program raw_program(std::vector<ebpf::instruction> code) {
    sluice::testing::generated_program program;
    program.code = std::move(code);
    return program;
}

/// r0 = rx_queue_index (0 at run time, unknown to the verifier) & 6; a branch on it; the value goes through a stack
/// slot and a fetching atomic; r0 == 6 ? 2 : 1. The instruction set says 1.
std::vector<ebpf::instruction> fetching_atomic_program(std::int32_t atomic) {
    std::vector<ebpf::instruction> code{
        make_instruction(op::cls_ldx | op::size_w | op::mode_mem, 2, 1, 16),
        make_instruction(op::cls_alu64 | op::alu_and | op::src_k, 2, 0, 0, 6),
        make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, 3, 0, 0, 0),
    };
    // Jumps and instructions, so that the verifier keeps a state at the join below (its checkpoint heuristics).
    auto padding = [&code] {
        for (int i = 0; i < 3; ++i) {
            code.push_back(make_instruction(op::cls_jmp | op::jmp_jgt | op::src_k, 3, 0, 0, 5));
        }
        for (int i = 0; i < 9; ++i) {
            code.push_back(make_instruction(op::cls_alu64 | op::alu_add | op::src_k, 3, 0, 0, 1));
        }
    };
    padding();
    const std::size_t branch = code.size();
    code.push_back(make_instruction(op::cls_jmp | op::jmp_jslt | op::src_k, 2, 0, 0, 6)); // if r2 s< 6 goto join
    code.push_back(make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, 3, 0, 0, 0));
    padding();
    code[branch].offset = static_cast<std::int16_t>(code.size() - branch - 1);
    code.push_back(make_instruction(op::cls_stx | op::size_dw | op::mode_mem, 10, 2, -8));
    code.push_back(make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, 0, 0, 0, 0));
    code.push_back(make_instruction(op::cls_stx | op::size_dw | op::mode_atomic, 10, 0, -8, atomic));
    code.push_back(make_instruction(op::cls_jmp | op::jmp_jeq | op::src_k, 0, 0, 2, 6));
    code.push_back(make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, 0, 0, 0, 1));
    code.push_back(make_instruction(op::exit));
    code.push_back(make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, 0, 0, 0, 2));
    code.push_back(make_instruction(op::exit));
    return code;
}

TEST(kernel_differences, kernel_verifier_drops_code_after_fetching_atomic_on_stack) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    const test_packet packet{"64 zero bytes", std::vector<std::uint8_t>(64, 0), {}};
    int kernel_wrong = 0;
    for (const std::int32_t atomic :
         {op::atomic_or | op::atomic_fetch, op::atomic_add | op::atomic_fetch, op::atomic_xchg}) {
        auto pair = oracle_pair::from_generated(raw_program(fetching_atomic_program(atomic)));
        ASSERT_TRUE(pair) << pair.error().message;
        const run_result sluice = (*pair)->run_sluice(packet);
        const run_result kernel = (*pair)->run_kernel(packet);
        ASSERT_EQ(sluice.error, "");
        ASSERT_EQ(kernel.error, "");
        EXPECT_EQ(sluice.retval, 1U) << "atomic " << atomic << ": the instruction set's answer";
        if (kernel.retval != 1) {
            ++kernel_wrong;
            std::cout << "kernel difference: atomic " << std::hex << atomic << std::dec << " returned " << kernel.retval
                      << " (the instruction set says 1): its verifier removed code that runs\n"
                      << (*pair)->kernel_program_text();
        }
    }
    RecordProperty("kernel_wrong", kernel_wrong);
    // Without the fetch, the kernel agrees: the plain atomic and a load after it.
    std::vector<ebpf::instruction> plain = fetching_atomic_program(op::atomic_or);
    plain.insert(plain.end() - 5, make_instruction(op::cls_ldx | op::size_dw | op::mode_mem, 0, 10, -8));
    auto pair = oracle_pair::from_generated(raw_program(plain));
    ASSERT_TRUE(pair) << pair.error().message;
    EXPECT_EQ((*pair)->compare(packet), "");
    EXPECT_EQ((*pair)->run_kernel(packet).retval, 1U);
}

// bpf_loop beyond BPF_MAX_LOOPS (1 << 23): the helper returns -E2BIG as a long. The kernel's verifier inlines bpf_loop
// when its flags are a known 0 (inline_bpf_loop), and the inlined code sets r0 with a 32-bit move: the program sees
// 0x00000000fffffff9. sluice returns the helper's 64-bit -7. The low 32 bits agree; the test says what the kernel did.
TEST(kernel_differences, inlined_bpf_loop_returns_e2big_in_32_bits) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    auto pair = oracle_pair::from_object(std::string(SLUICE_ORACLE_PROGRAMS_DIR) + "/oracle_helpers.o", "loop_limit");
    ASSERT_TRUE(pair) << pair.error().message;
    const test_packet packet{"64 zero bytes", std::vector<std::uint8_t>(64, 0), {}};
    ASSERT_EQ((*pair)->run_kernel(packet).error, "");
    ASSERT_EQ((*pair)->run_sluice(packet).error, "");
    map_pair* results = (*pair)->find_map("results");
    ASSERT_NE(results, nullptr);
    const std::uint32_t slot = 30;
    std::int64_t kernel = 0;
    std::int64_t sluice = 0;
    ASSERT_EQ(bpf_map_lookup_elem(results->kernel_fd, &slot, &kernel), 0);
    ASSERT_EQ(results->sluice->lookup_elem(&slot, &sluice), 0);
    EXPECT_EQ(sluice, -7) << "sluice: the helper's 64-bit -E2BIG";
    EXPECT_EQ(static_cast<std::uint32_t>(kernel), static_cast<std::uint32_t>(sluice)) << "the low 32 bits agree";
    std::cout << "bpf_loop(1 << 24) returned: kernel " << std::hex << kernel << ", sluice " << sluice << std::dec
              << (kernel == 0xfffffff9 ? " (the kernel inlined bpf_loop: a 32-bit -E2BIG)" : "") << "\n";
}

TEST(kernel_differences, packets_shorter_than_ethernet_run_in_sluice_only) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    std::uint64_t runs = 0;
    for (std::uint64_t seed = 0; seed < 60; ++seed) {
        const auto program = sluice::testing::generate_program(0x5407'0000 + seed);
        auto pair = oracle_pair::from_generated(program);
        ASSERT_TRUE(pair) << pair.error().message;
        for (const test_packet& packet : short_packets()) {
            const run_result kernel = (*pair)->run_kernel(packet);
            EXPECT_EQ(kernel.error, "BPF_PROG_TEST_RUN: Invalid argument (22)") << packet.description;
            const run_result sluice = (*pair)->run_sluice(packet);
            EXPECT_EQ(sluice.error, "") << packet.description << "\n" << sluice::testing::describe(program);
            ++runs;
        }
    }
    std::cout << runs << " runs on packets of 0 to 13 bytes: the kernel refused each, sluice ran each to the end\n";
}

TEST(kernel_differences, jumbo_packets_agree_where_only_headers_are_read) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    // A header check: r0 = (data + 34 <= data_end) ? byte 23 (the IPv4 protocol) & 3 : 1.
    const std::vector<ebpf::instruction> code{
        make_instruction(op::cls_ldx | op::size_w | op::mode_mem, 2, 1, 0),
        make_instruction(op::cls_ldx | op::size_w | op::mode_mem, 3, 1, 4),
        make_instruction(op::cls_alu64 | op::alu_mov | op::src_k, 0, 0, 0, 1),
        make_instruction(op::cls_alu64 | op::alu_mov | op::src_x, 4, 2),
        make_instruction(op::cls_alu64 | op::alu_add | op::src_k, 4, 0, 0, 34),
        make_instruction(op::cls_jmp | op::jmp_jgt | op::src_x, 4, 3, 2),
        make_instruction(op::cls_ldx | op::size_b | op::mode_mem, 0, 2, 23),
        make_instruction(op::cls_alu64 | op::alu_and | op::src_k, 0, 0, 0, 3),
        make_instruction(op::exit),
    };
    auto pair = oracle_pair::from_generated(raw_program(code));
    ASSERT_TRUE(pair) << pair.error().message;
    for (const std::size_t length : {3521UL, 4000UL, 9000UL}) {
        test_packet packet = crafted_packets().front();
        packet.description = fmt::format("{}-byte IPv4 packet", length);
        packet.bytes.resize(length, 0x5a);
        packet.bytes[23] = 17;
        EXPECT_EQ((*pair)->compare(packet), "") << "the kernel puts bytes beyond 3520 in fragments";
    }
}

TEST(oracle_harness, reports_differences_in_results_and_maps) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    // r0 = ctx->ingress_ifindex: the same packet on two interfaces must differ.
    const std::vector<ebpf::instruction> code{make_instruction(op::cls_ldx | op::size_w | op::mode_mem, 0, 1, 12),
                                              make_instruction(op::exit)};
    sluice::testing::generated_program program = raw_program(code);
    program.maps.push_back({ebpf::map_type::hash, 4, 8, 16, 0, "harness_check"});
    auto pair = oracle_pair::from_generated(program);
    ASSERT_TRUE(pair) << pair.error().message;
    const test_packet packet = crafted_packets()[4];
    EXPECT_EQ((*pair)->compare(packet), "");
    EXPECT_EQ((*pair)->run_kernel(packet, 1).retval, 1U);
    EXPECT_EQ((*pair)->run_sluice(packet, 7).retval, 7U);
    // A map entry only sluice has.
    const std::uint32_t key = 3;
    const std::uint64_t value = 42;
    ASSERT_EQ((*pair)->maps()[0].sluice->update_elem(&key, &value, 0), 0);
    const std::string report = (*pair)->compare(packet);
    EXPECT_NE(report.find("map 'harness_check'"), std::string::npos) << report;
    EXPECT_NE(report.find("only in sluice"), std::string::npos) << report;
    // Same on both sides again, then a value that differs.
    const std::uint64_t other = 7;
    ASSERT_EQ(bpf_map_update_elem((*pair)->maps()[0].kernel_fd, &key, &other, 0), 0);
    const std::string values = (*pair)->compare_maps();
    EXPECT_NE(values.find("kernel 07 00"), std::string::npos) << values;
    EXPECT_NE(values.find("sluice 2a 00"), std::string::npos) << values;
    // Keys only: the values may differ.
    (*pair)->maps()[0].compare = map_pair::comparison::keys_only;
    EXPECT_EQ((*pair)->compare_maps(), "");
}

} // namespace
