// `sluice run FILE.lua`: the command runs a script through program_factory, on both engines, with --set as its
// config, and counts what the eBPF twin counts on the same traffic.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct command_result {
    int status{};
    std::string output;
};

command_result run(const std::string& arguments) {
    const std::string command = std::string(SLUICE_BINARY) + " " + arguments + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    command_result result;
    if (pipe == nullptr) {
        result.status = -1;
        return result;
    }
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) {
        result.output += buffer.data();
    }
    result.status = ::pclose(pipe);
    return result;
}

constexpr const char* traffic =
    "gen:packets=5000,flows=200,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=10,attack=30@203.0.113.0/24,seed=3";

std::uint64_t packets_of(const nlohmann::json& report, const char* action) {
    return report.at("actions").at(action).at("packets").get<std::uint64_t>();
}

TEST(lua_run_command, ScriptCountsWhatItsEbpfTwinCounts) {
    const std::string knobs = " --set rate_pps=0 --set burst=20 --json --in ";
    const command_result ebpf = run(std::string("run ") + SLUICE_EXAMPLES_DIR "/ddos_filter.o" + knobs + traffic);
    ASSERT_EQ(ebpf.status, 0) << ebpf.output;
    const nlohmann::json expected = nlohmann::json::parse(ebpf.output);
    ASSERT_GT(packets_of(expected, "drop"), 0U);
    for (const char* engine : {"lua5.4", "luajit"}) {
        const command_result lua = run(std::string("run ") + SLUICE_EXAMPLES_SOURCE_DIR "/ddos_filter.lua" +
                                       " --lua-engine " + engine + knobs + traffic);
        ASSERT_EQ(lua.status, 0) << lua.output;
        const nlohmann::json actual = nlohmann::json::parse(lua.output);
        for (const char* action : {"drop", "pass", "aborted"}) {
            EXPECT_EQ(packets_of(actual, action), packets_of(expected, action)) << engine << " " << action;
        }
    }
}

TEST(lua_run_command, ScriptFailuresAndBadOptionsSayWhatIsWrong) {
    const command_result engine = run(std::string("run ") + SLUICE_EXAMPLES_SOURCE_DIR "/proto_count.lua" +
                                      " --lua-engine python --in gen:packets=10");
    EXPECT_NE(engine.status, 0);
    EXPECT_THAT(engine.output, ::testing::HasSubstr("--lua-engine python: lua5.4 or luajit"));
    const command_result program = run(std::string("run ") + SLUICE_EXAMPLES_SOURCE_DIR "/proto_count.lua" +
                                       " --prog xdp --in gen:packets=10");
    EXPECT_NE(program.status, 0);
    EXPECT_THAT(program.output, ::testing::HasSubstr("--prog, --prog-array and --lua are for eBPF objects"));
    const command_result maps = run(std::string("run ") + SLUICE_EXAMPLES_SOURCE_DIR "/proto_count.lua" +
                                    " --dump-map nosuch --in gen:packets=10");
    EXPECT_NE(maps.status, 0);
    EXPECT_THAT(maps.output, ::testing::HasSubstr("declared no such map (maps: protocols)"));
    const command_result missing = run("run /nonexistent/filter.lua --in gen:packets=10");
    EXPECT_NE(missing.status, 0);
    EXPECT_THAT(missing.output, ::testing::HasSubstr("cannot read the script"));
}

} // namespace

namespace {

TEST(lua_run_command, EbpfObjectChainsToTheScriptGivenWithLua) {
    const std::string object = std::string(SLUICE_LUA_DATA_DIR) + "/chain_to_lua.o";
    const std::string input = " --json --in gen:packets=2000,flows=100,mix=tcp:50/udp:50,seed=5";
    const command_result alone = run("run " + object + input);
    ASSERT_EQ(alone.status, 0) << alone.output;
    // Without a script, bpf_sluice_lua has no callee: every IPv4 packet is aborted (the generator sends only IPv4).
    EXPECT_EQ(packets_of(nlohmann::json::parse(alone.output), "aborted"), 2000U);
    for (const char* engine : {"lua5.4", "luajit"}) {
        const command_result chained = run("run " + object + " --lua " + SLUICE_LUA_SOURCE_DIR "/classify.lua" +
                                           " --lua-engine " + engine + input);
        ASSERT_EQ(chained.status, 0) << chained.output;
        const nlohmann::json report = nlohmann::json::parse(chained.output);
        EXPECT_EQ(packets_of(report, "aborted"), 0U) << engine;
        EXPECT_GT(packets_of(report, "drop"), 500U) << engine;
        EXPECT_GT(packets_of(report, "pass"), 500U) << engine;
        EXPECT_EQ(packets_of(report, "drop") + packets_of(report, "pass"), 2000U) << engine;
    }
}

} // namespace

namespace {

// --lua beside an object on two workers: each worker's program has its own Lua state serving its bpf_sluice_lua calls,
// and the report sums their counters.
TEST(lua_run_command, ChainedScriptsOnTwoWorkersReportTheirCalls) {
    const std::string object = std::string(SLUICE_LUA_DATA_DIR) + "/chain_to_lua.o";
    for (const char* engine : {"lua5.4", "luajit"}) {
        const command_result chained =
            run("run " + object + " --lua " + SLUICE_LUA_SOURCE_DIR "/classify.lua --lua-engine " + engine +
                " --json --workers 2 --port gen:packets=2000,flows=100,mix=tcp:50/udp:50,seed=5"
                " --port gen:packets=1000,flows=100,mix=tcp:50/udp:50,seed=6");
        ASSERT_EQ(chained.status, 0) << chained.output;
        const nlohmann::json report = nlohmann::json::parse(chained.output);
        ASSERT_TRUE(report.contains("script")) << engine;
        EXPECT_EQ(report.at("script").at("states"), 2) << engine;
        EXPECT_EQ(report.at("script").at("chained_calls"), 3000) << engine << ": the generator sends only IPv4";
        EXPECT_EQ(report.at("script").at("chained_failures"), 0) << engine;
        EXPECT_EQ(report.at("program_stats").at("exceptions"), 0) << engine;
    }
}

} // namespace
