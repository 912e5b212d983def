// Every example (build/examples/*.o) and every XDP program of the test fixtures the kernel loads (tests/ebpf/data,
// tests/ebpf/helpers/data), run in the kernel and in sluice on the same 1,200 packets with the same map contents:
// return codes, output packets, metadata and maps must agree after every packet.
//
// Deliberate differences, named where they apply: ddos_filter's token buckets hold bpf_ktime_get_ns() timestamps and
// refill by elapsed time, which differs between two runs; its rate map is compared by keys (default knobs) or by the
// token count alone (rate_pps = 0, so that no time-based refill happens).
#include <gtest/gtest.h>

#include <bpf/libbpf.h>

#include <algorithm>
#include <filesystem>
#include <functional>

#include <fmt/format.h>

#include "oracle.hpp"

namespace {

using namespace sluice;
using namespace sluice::oracle;

constexpr std::size_t packets_per_program = 1200;
constexpr std::uint64_t packet_seed = 0x0b1e'c700;

struct object_case {
    std::string name; ///< test name
    std::string object;
    std::string program;
    object_options options;
    std::function<std::string(oracle_pair&)> setup; ///< fills maps on both sides; "" or what went wrong
    bool jumbo{}; ///< reads headers only: jumbo packets compare too (the kernel puts their tail in fragments)
};

/// How ctest names the case.
void PrintTo(const object_case& test_case, std::ostream* out) {
    *out << test_case.object << ":" << test_case.program << " on the " << to_string(test_case.options.engine);
}

std::string examples_dir() {
    return SLUICE_EXAMPLES_DIR;
}

std::vector<std::uint8_t> lpm_key(std::uint32_t prefix, std::initializer_list<std::uint8_t> address) {
    std::vector<std::uint8_t> key(4 + address.size());
    for (std::size_t i = 0; i < 4; ++i) {
        key[i] = static_cast<std::uint8_t>(prefix >> (8 * i)); // prefixlen is in host order (little-endian)
    }
    std::size_t at = 4;
    for (const std::uint8_t byte : address) {
        key[at++] = byte;
    }
    return key;
}

std::string ddos_setup(oracle_pair& pair, bool time_free) {
    std::string problems;
    const std::vector<std::uint8_t> one{1, 0, 0, 0};
    // Half of all IPv4 sources (0.0.0.0/1), one documentation host, the crafted IPv6 source.
    problems += pair.update_both("blocked_v4", lpm_key(1, {0, 0, 0, 0}), one);
    problems += pair.update_both("blocked_v4", lpm_key(32, {198, 51, 100, 7}), one);
    problems +=
        pair.update_both("blocked_v6", lpm_key(128, {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), one);
    map_pair* rate = pair.find_map("rate_v4");
    if (rate == nullptr) {
        return problems + "no map rate_v4";
    }
    if (time_free) {
        rate->value_bytes = std::pair<std::size_t, std::size_t>{8, 8};
        rate->why_not_full = "last_refill_ns is bpf_ktime_get_ns(); only the token count is compared";
    } else {
        rate->compare = map_pair::comparison::keys_only;
        rate->why_not_full = "token buckets hold bpf_ktime_get_ns() and refill by elapsed time";
    }
    return problems;
}

std::vector<object_case> example_cases() {
    std::vector<object_case> interpreted{
        {"xdp_pass", "xdp_pass.o", "xdp_pass", {}, nullptr, true},
        {"xdp_parse_count", "xdp_parse_count.o", "xdp_parse_count", {}, nullptr, false},
        {"xdp_parse_count_keep_expired", "xdp_parse_count.o", "xdp_parse_count", {{"drop_expired=0"}}, nullptr, false},
        {"ddos_filter", "ddos_filter.o", "ddos_filter", {}, [](oracle_pair& p) { return ddos_setup(p, false); }, true},
        {"ddos_filter_rate_limited",
         "ddos_filter.o",
         "ddos_filter",
         {{"rate_pps=0", "burst=3"}},
         [](oracle_pair& p) { return ddos_setup(p, true); },
         true},
        {"reflector", "reflector.o", "reflector", {}, nullptr, false},
        {"proto_count", "proto_count.o", "proto_count", {}, nullptr, false},
        {"tail_call_chain", "tail_call_chain.o", "dispatcher", {}, nullptr, false},
        {"global_config", "global_config.o", "port_filter", {}, nullptr, false},
        {"global_config_udp_53", "global_config.o", "port_filter", {{"blocked_port=53"}}, nullptr, false},
        {"global_config_disabled", "global_config.o", "port_filter", {{"enabled=0"}}, nullptr, false},
    };
    // The same again with sluice's JIT.
    std::vector<object_case> all = interpreted;
    for (object_case test_case : interpreted) {
        test_case.name += "_jit";
        test_case.options.engine = sluice_engine::jit;
        all.push_back(std::move(test_case));
    }
    return all;
}

/// Runs the corpus (and jumbo packets when the case allows) through both; fails with the first difference.
void run_case(const object_case& test_case, const std::string& path) {
    auto pair = oracle_pair::from_object(path, test_case.program, test_case.options);
    ASSERT_TRUE(pair) << pair.error().message;
    if (test_case.setup) {
        ASSERT_EQ(test_case.setup(**pair), "");
    }
    std::vector<test_packet> corpus = packet_corpus(packet_seed, packets_per_program);
    if (test_case.jumbo) {
        for (const std::size_t length : {4000UL, 9000UL}) {
            test_packet jumbo = *std::find_if(corpus.begin(), corpus.end(), [](const test_packet& packet) {
                return packet.description == "Ethernet + IPv4 + UDP of 1500 bytes";
            });
            jumbo.description = fmt::format("{} padded to {} bytes", jumbo.description, length);
            jumbo.bytes.resize(length, 0x6b);
            corpus.push_back(jumbo);
        }
    }
    for (std::size_t i = 0; i < corpus.size(); ++i) {
        const std::string difference = (*pair)->compare(corpus[i]);
        ASSERT_EQ(difference, "") << test_case.object << " program " << test_case.program << ", packet " << i
                                  << " (packet seed " << packet_seed << ")";
    }
    std::cout << test_case.name << ": " << (*pair)->counts().packets << " packets agreed, maps compared "
              << (*pair)->counts().map_comparisons << " times\n";
}

class examples : public ::testing::TestWithParam<object_case> {};

TEST_P(examples, agree_with_the_kernel) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    run_case(GetParam(), examples_dir() + "/" + GetParam().object);
}

INSTANTIATE_TEST_SUITE_P(oracle, examples, ::testing::ValuesIn(example_cases()),
                         [](const ::testing::TestParamInfo<object_case>& param_info) { return param_info.param.name; });

/// XDP programs for a device (what BPF_PROG_TEST_RUN runs) in an object, by libbpf's reading.
std::vector<std::string> device_programs(const std::string& path, std::string& why) {
    std::vector<std::string> names;
    libbpf_set_print(nullptr);
    bpf_object* object = bpf_object__open_file(path.c_str(), nullptr);
    if (object == nullptr) {
        why = fmt::format("libbpf cannot open it: {}", std::strerror(errno));
        return names;
    }
    bpf_program* program = nullptr;
    bpf_object__for_each_program(program, object) {
        const bool legacy = bpf_program__type(program) == BPF_PROG_TYPE_UNSPEC &&
                            std::string_view(bpf_program__section_name(program)).starts_with("xdp_");
        if (legacy || (bpf_program__type(program) == BPF_PROG_TYPE_XDP &&
                       bpf_program__expected_attach_type(program) == BPF_XDP)) {
            names.emplace_back(bpf_program__name(program));
        }
    }
    bpf_object__close(object);
    return names;
}

TEST(fixtures, every_program_the_kernel_loads_agrees) {
    SLUICE_REQUIRE_KERNEL_ORACLE();
    std::vector<std::string> objects;
    for (const std::string dir : {SLUICE_LOADER_DATA_DIR}) {
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            if (entry.path().extension() == ".o") {
                objects.push_back(entry.path().string());
            }
        }
    }
    std::sort(objects.begin(), objects.end());
    ASSERT_FALSE(objects.empty()) << "no fixture objects in " << SLUICE_LOADER_DATA_DIR;
    int compared = 0;
    std::string skipped;
    for (const std::string& path : objects) {
        std::string why;
        const std::vector<std::string> programs = device_programs(path, why);
        if (!why.empty() || programs.empty()) {
            skipped += fmt::format("  {}: {}\n", path, why.empty() ? "no XDP device program" : why);
            continue;
        }
        for (const std::string& program : programs) {
            auto pair = oracle_pair::from_object(path, program);
            if (!pair) {
                // Objects written to be refused (map-in-map, externs, CO-RE, legacy maps libbpf 1.x refuses).
                skipped += fmt::format("  {} {}: {}\n", path, program,
                                       pair.error().message.substr(0, pair.error().message.find('\n')));
                continue;
            }
            ASSERT_EQ((*pair)->fill_randomly(packet_seed, 8), "") << path << " " << program;
            const std::vector<test_packet> corpus = packet_corpus(packet_seed + 1, packets_per_program);
            for (std::size_t i = 0; i < corpus.size(); ++i) {
                ASSERT_EQ((*pair)->compare(corpus[i]), "") << path << " program " << program << ", packet " << i;
            }
            ++compared;
            std::cout << path << " " << program << ": " << corpus.size() << " packets agreed\n";
        }
    }
    std::cout << "not compared:\n" << skipped;
    EXPECT_GE(compared, 8) << "fixture programs compared; not compared:\n" << skipped;
}

} // namespace
