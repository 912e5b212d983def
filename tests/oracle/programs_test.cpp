// Programs written for the oracle (tests/oracle/programs/): each supported helper and map kind with its error
// returns, run in the kernel and in sluice on 1,200 packets each; return codes land in maps, which are compared after
// every packet with the output packet and the metadata.
//
// The environment sluice stands in for: bpf_check_mtu reads the ingress device's MTU; BPF_PROG_TEST_RUN runs on the
// loopback device (MTU 65536), so sluice is told the same. bpf_trace_printk's lines go nowhere here (their return
// codes are compared). Time, randomness and the cpu are compared only where they can be (see oracle_helpers.c).
#include <gtest/gtest.h>

#include <bpf/libbpf.h>

#include "oracle.hpp"

namespace {

using namespace sluice;
using namespace sluice::oracle;

constexpr std::size_t packets_per_program = 1200;
constexpr std::uint64_t packet_seed = 0x0000'9a11;

struct program_case {
    std::string object;
    std::string program;
    sluice_engine engine{sluice_engine::interpreter};
};

std::vector<program_case> cases() {
    std::vector<program_case> all;
    for (const sluice_engine engine : {sluice_engine::interpreter, sluice_engine::jit}) {
        for (const char* program : {"adjust_head", "adjust_tail", "adjust_meta", "load_store_bytes", "checksum",
                                    "redirect", "check_mtu", "loops", "environment", "trace"}) {
            all.push_back({"oracle_helpers", program, engine});
        }
        for (const char* program : {"arrays", "hashes", "lru_maps", "lpm_trie", "queues", "ringbuf"}) {
            all.push_back({"oracle_maps", program, engine});
        }
    }
    return all;
}

/// How ctest names the case.
void PrintTo(const program_case& test_case, std::ostream* out) {
    *out << test_case.object << ":" << test_case.program << " on the " << to_string(test_case.engine);
}

void no_trace(std::string_view, unsigned, void*) {}

class written_programs : public ::testing::TestWithParam<program_case> {};

TEST_P(written_programs, agree_with_the_kernel) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    const program_case& test_case = GetParam();
    auto pair = oracle_pair::from_object(std::string(SLUICE_ORACLE_PROGRAMS_DIR) + "/" + test_case.object + ".o",
                                         test_case.program, {.rodata = {}, .engine = test_case.engine});
    ASSERT_TRUE(pair) << pair.error().message;
    ebpf::execution_state& state = (*pair)->sluice_state();
    state.mtus = {{loopback_ifindex, 65536}}; // the loopback device's MTU, where BPF_PROG_TEST_RUN runs
    state.trace = &no_trace;
    state.trace_lines_per_second = 0;
    const std::vector<test_packet> corpus = packet_corpus(packet_seed, packets_per_program);
    for (std::size_t i = 0; i < corpus.size(); ++i) {
        ASSERT_EQ((*pair)->compare(corpus[i]), "") << test_case.object << " program " << test_case.program
                                                   << ", packet " << i << " (seed " << packet_seed << ")";
    }
    std::cout << test_case.object << " " << test_case.program << " (" << to_string(test_case.engine)
              << "): " << (*pair)->counts().packets << " packets agreed, maps compared "
              << (*pair)->counts().map_comparisons << " times\n";
}

INSTANTIATE_TEST_SUITE_P(oracle, written_programs, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<program_case>& param_info) {
                             return param_info.param.object + "_" + param_info.param.program + "_" +
                                    std::string(to_string(param_info.param.engine));
                         });

} // namespace
