// `sluice verify` and sluice run's verification step end to end: the command as a subprocess on the compiled examples
// and the CLI's fixtures (run_outcomes.o, whose `outcomes` writes far past a map value; verify_tail_call.o, whose
// tail-call stage reads the packet unchecked).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sluice_command.hpp"

namespace sluice::cli {
namespace {

std::string example(const std::string& name) {
    return std::string(SLUICE_EXAMPLES_DIR) + "/" + name + ".o";
}

using command_testing::result;

std::size_t count_of(const std::string& text, const std::string& needle) {
    std::size_t count = 0;
    for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++count;
    }
    return count;
}

class verify_command_test : public command_testing::sluice_command_test {
protected:
    /// A pcap file of `count` 60-byte ARP-like packets.
    std::string small_pcap(int count) {
        const std::string file = path("in.pcap");
        std::ofstream out(file, std::ios::binary);
        const auto put32 = [&](std::uint32_t value) { out.write(reinterpret_cast<const char*>(&value), 4); };
        const auto put16 = [&](std::uint16_t value) { out.write(reinterpret_cast<const char*>(&value), 2); };
        put32(0xa1b2c3d4);
        put16(2);
        put16(4);
        put32(0);
        put32(0);
        put32(65535);
        put32(1); // Ethernet
        for (int i = 0; i < count; ++i) {
            put32(1'700'000'000);
            put32(static_cast<std::uint32_t>(i));
            put32(60);
            put32(60);
            std::vector<char> packet(60, 0);
            packet[12] = 0x08;
            packet[13] = 0x06;
            out.write(packet.data(), static_cast<std::streamsize>(packet.size()));
        }
        return file;
    }
};

TEST_F(verify_command_test, every_example_verifies) {
    std::size_t programs = 0;
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR)) {
        if (entry.path().extension() != ".o") {
            continue;
        }
        const result done = sluice({"verify", entry.path().string()});
        EXPECT_EQ(done.status, 0) << entry.path() << ":\n" << done.out << done.err;
        EXPECT_EQ(done.out.find("rejected"), std::string::npos) << done.out;
        programs += count_of(done.out, ": verified (");
    }
    EXPECT_GE(programs, 10U) << "7 examples, 4 programs in tail_call_chain";
}

TEST_F(verify_command_test, the_summary_line_counts_the_work) {
    const result done = sluice({"verify", example("xdp_pass")});
    ASSERT_EQ(done.status, 0) << done.out << done.err;
    EXPECT_NE(done.out.find("program xdp_pass: verified ("), std::string::npos) << done.out;
    EXPECT_NE(done.out.find(" instructions processed, "), std::string::npos) << done.out;
    EXPECT_NE(done.out.find(" states, in "), std::string::npos) << done.out;
    EXPECT_NE(done.out.find(" ms)"), std::string::npos) << done.out;
}

TEST_F(verify_command_test, a_rejection_explains_itself_and_exits_1) {
    const result done = sluice({"verify", SLUICE_RUN_FIXTURE});
    EXPECT_EQ(done.status, 1) << done.out << done.err;
    EXPECT_NE(done.out.find("program outcomes: rejected"), std::string::npos) << done.out;
    EXPECT_NE(done.out.find("value of map 'scratch'"), std::string::npos)
        << "the message names the region: " << done.out;
    EXPECT_NE(done.out.find("run_outcomes.c"), std::string::npos) << "the message names the source: " << done.out;
    EXPECT_NE(done.out.find("program printk_pass: verified"), std::string::npos)
        << "one rejection does not hide the other programs' verdicts: " << done.out;
}

TEST_F(verify_command_test, program_chooses_one) {
    const result one = sluice({"verify", SLUICE_RUN_FIXTURE, "--program", "printk_pass"});
    EXPECT_EQ(one.status, 0) << one.out << one.err;
    EXPECT_EQ(count_of(one.out, "program "), 1U) << one.out;

    const result missing = sluice({"verify", SLUICE_RUN_FIXTURE, "--program", "nosuch"});
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.err.find("no program named 'nosuch' (programs: outcomes, printk_pass)"), std::string::npos)
        << missing.err;
}

TEST_F(verify_command_test, json_has_every_verdict) {
    const result done = sluice({"verify", SLUICE_RUN_FIXTURE, "--json"});
    EXPECT_EQ(done.status, 1);
    const auto report = nlohmann::json::parse(done.out, nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << done.out;
    ASSERT_EQ(report["programs"].size(), 2U);
    for (const auto& program : report["programs"]) {
        if (program["name"] == "outcomes") {
            EXPECT_FALSE(program["verified"].get<bool>());
            EXPECT_NE(program["error"]["message"].get<std::string>().find("value of map 'scratch'"), std::string::npos);
            EXPECT_TRUE(program["error"].contains("instruction"));
        } else {
            EXPECT_EQ(program["name"], "printk_pass");
            EXPECT_TRUE(program["verified"].get<bool>());
            EXPECT_GT(program["instructions_processed"].get<std::uint64_t>(), 0U);
        }
    }
}

TEST_F(verify_command_test, log_level_2_shows_the_state_at_each_instruction) {
    const result quiet = sluice({"verify", example("reflector")});
    const result summary = sluice({"verify", example("reflector"), "--log-level", "1"});
    const result detailed = sluice({"verify", example("reflector"), "--log-level", "2"});
    ASSERT_EQ(quiet.status, 0) << quiet.out;
    ASSERT_EQ(summary.status, 0) << summary.out;
    ASSERT_EQ(detailed.status, 0) << detailed.out;
    EXPECT_GT(summary.out.size(), quiet.out.size()) << summary.out;
    EXPECT_GT(detailed.out.size(), summary.out.size()) << detailed.out;
    EXPECT_NE(detailed.out.find("R10"), std::string::npos) << "registers appear in the state: " << detailed.out;

    const result bad = sluice({"verify", example("reflector"), "--log-level", "3"});
    EXPECT_NE(bad.status, 0);
}

TEST_F(verify_command_test, a_file_that_is_no_object_is_a_clear_error) {
    const std::string file = path("not_an_object.o");
    std::ofstream(file) << "this is text";
    const result done = sluice({"verify", file});
    EXPECT_EQ(done.status, 1);
    EXPECT_NE(done.err.find("sluice verify: "), std::string::npos) << done.err;
    EXPECT_NE(done.err.find("not_an_object.o"), std::string::npos) << done.err;
}

// sluice run: the program is verified first, and a verified program runs without checked mode.

TEST_F(verify_command_test, run_verifies_then_runs_unchecked) {
    const std::string in = small_pcap(3);
    const result done = sluice({"run", example("reflector"), "--in", "pcap:" + in, "--json"});
    ASSERT_EQ(done.status, 0) << done.err;
    const auto report = nlohmann::json::parse(done.out, nullptr, false);
    ASSERT_FALSE(report.is_discarded()) << done.out;
    EXPECT_EQ(report["verified"], true);
    EXPECT_EQ(report["mode"], "unchecked");
    EXPECT_EQ(report["engine"], "JIT") << "a verified program runs as native code by default";
    EXPECT_EQ(report["packets"], 3U);

    const result text = sluice({"run", example("reflector"), "--in", "pcap:" + in});
    ASSERT_EQ(text.status, 0) << text.err;
    EXPECT_NE(text.out.find("program reflector (verified, unchecked mode, JIT)"), std::string::npos) << text.out;
}

TEST_F(verify_command_test, run_checked_keeps_checked_mode_for_a_verified_program) {
    const std::string in = small_pcap(2);
    const result done = sluice({"run", example("reflector"), "--in", "pcap:" + in, "--checked", "--json"});
    ASSERT_EQ(done.status, 0) << done.err;
    const auto report = nlohmann::json::parse(done.out, nullptr, false);
    EXPECT_EQ(report["verified"], true);
    EXPECT_EQ(report["mode"], "checked");
}

TEST_F(verify_command_test, run_refuses_a_rejected_program_and_no_verify_runs_it_checked) {
    const std::string in = small_pcap(2);
    const result refused = sluice({"run", SLUICE_RUN_FIXTURE, "--in", "pcap:" + in});
    EXPECT_EQ(refused.status, 1);
    EXPECT_EQ(refused.out, "") << "nothing ran";
    EXPECT_NE(refused.err.find("sluice run: program outcomes was rejected by the verifier"), std::string::npos)
        << refused.err;
    EXPECT_NE(refused.err.find("value of map 'scratch'"), std::string::npos) << refused.err;
    EXPECT_NE(refused.err.find("--no-verify"), std::string::npos) << "the way out is named: " << refused.err;

    const result forced = sluice({"run", SLUICE_RUN_FIXTURE, "--in", "pcap:" + in, "--no-verify", "--json"});
    ASSERT_EQ(forced.status, 0) << forced.err;
    const auto report = nlohmann::json::parse(forced.out, nullptr, false);
    EXPECT_EQ(report["verified"], false);
    EXPECT_EQ(report["mode"], "checked");
    EXPECT_EQ(report["packets"], 2U);
}

TEST_F(verify_command_test, run_verifies_tail_call_targets) {
    const std::string in = small_pcap(1);
    const result refused = sluice({"run", SLUICE_TAIL_CALL_FIXTURE, "--prog", "dispatcher", "--in", "pcap:" + in});
    EXPECT_EQ(refused.status, 1);
    EXPECT_NE(refused.err.find("program unsafe_stage (a possible tail-call target of dispatcher) was rejected"),
              std::string::npos)
        << refused.err;

    const result chain = sluice({"run", example("tail_call_chain"), "--in", "pcap:" + in, "--json"});
    ASSERT_EQ(chain.status, 0) << chain.err;
    EXPECT_EQ(nlohmann::json::parse(chain.out, nullptr, false)["verified"], true);
}

TEST_F(verify_command_test, run_unchecked_trusts_without_verifying_and_combines_with_nothing) {
    const std::string in = small_pcap(1);
    const result trusted = sluice({"run", example("reflector"), "--in", "pcap:" + in, "--unchecked", "--json"});
    ASSERT_EQ(trusted.status, 0) << trusted.err;
    const auto report = nlohmann::json::parse(trusted.out, nullptr, false);
    EXPECT_EQ(report["verified"], false);
    EXPECT_EQ(report["mode"], "unchecked");

    const result both = sluice({"run", example("reflector"), "--in", "pcap:" + in, "--unchecked", "--checked"});
    EXPECT_EQ(both.status, 1);
    EXPECT_NE(both.err.find("--unchecked"), std::string::npos) << both.err;
}

TEST_F(verify_command_test, run_engine_choice_gives_the_same_outcomes) {
    // The same generated traffic through the DDoS filter in the JIT, the interpreter and checked mode: the verdicts
    // the program can decide without the clock (blocklist drops, passes) agree; each report names its engine.
    const std::string blocklist = std::string{SLUICE_SOURCE_DIR} + "/examples/ddos_blocklist.json";
    const std::string traffic = "gen:packets=3000,flows=50,size=64-512,attack=30@203.0.113.0/24,seed=7";
    std::vector<nlohmann::json> reports;
    for (const std::vector<std::string>& engine : std::vector<std::vector<std::string>>{
             {"--engine", "jit"}, {"--engine", "interpreter"}, {"--checked"}}) {
        std::vector<std::string> arguments{"run", example("ddos_filter"), "--in", traffic, "--map",
                                           "blocked_v4=" + blocklist, "--dump-map", "stats", "--json"};
        arguments.insert(arguments.end(), engine.begin(), engine.end());
        const result done = sluice(arguments);
        ASSERT_EQ(done.status, 0) << done.err;
        reports.push_back(nlohmann::json::parse(done.out, nullptr, false));
        ASSERT_FALSE(reports.back().is_discarded()) << done.out;
    }
    EXPECT_EQ(reports[0]["engine"], "JIT");
    EXPECT_EQ(reports[1]["engine"], "interpreter");
    EXPECT_EQ(reports[2]["engine"], "interpreter") << "checked mode is the interpreter's";
    // stats[1] counts blocklisted packets: decided by the LPM lookup alone, so equal in every engine.
    const auto blocked = [](const nlohmann::json& report) {
        for (const auto& map : report["maps"]) {
            if (map["name"] == "stats") {
                return map["entries"][1]["values"][0].get<std::string>();
            }
        }
        return std::string{"no stats map"};
    };
    for (const auto& report : reports) {
        EXPECT_EQ(report["packets"], 3000U);
        EXPECT_EQ(report["actions"]["aborted"]["packets"], 0U);
        EXPECT_EQ(blocked(report), blocked(reports[0]));
    }
    EXPECT_NE(blocked(reports[0]), "0000000000000000") << "the traffic must hit the blocklist";

    const result bad = sluice({"run", example("reflector"), "--in", "pcap:" + small_pcap(1), "--engine", "llvm"});
    EXPECT_EQ(bad.status, 1);
    EXPECT_NE(bad.err.find("--engine llvm: jit or interpreter"), std::string::npos) << bad.err;
}

} // namespace
} // namespace sluice::cli
