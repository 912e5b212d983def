// `sluice run FILE.lua` around the maps and the workers (issue 8): --map fills a map the script declared and
// --dump-map prints it in the eBPF objects' formats; the DDoS filter twin takes the example blocklist and counts what
// the eBPF object counts, with one worker and with two (one map for the run, a per-CPU slot per worker); the reports
// carry the script's counters; SIGHUP reloads the script on every worker. Both Lua engines.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "sluice_command.hpp"

namespace sluice::cli {
namespace {

const std::string ddos_object = std::string(SLUICE_EXAMPLES_DIR) + "/ddos_filter.o";
const std::string ddos_script = std::string(SLUICE_EXAMPLES_SOURCE_DIR) + "/ddos_filter.lua";
const std::string proto_object = std::string(SLUICE_EXAMPLES_DIR) + "/proto_count.o";
const std::string proto_script = std::string(SLUICE_EXAMPLES_SOURCE_DIR) + "/proto_count.lua";
const std::string blocklist = std::string(SLUICE_EXAMPLES_SOURCE_DIR) + "/ddos_blocklist.json";

constexpr const char* traffic =
    "gen:packets=20000,flows=500,size=64-1500,mix=tcp:60/udp:30/icmp:10,ipv6=10,attack=30@203.0.113.0/24,seed=4";
constexpr const char* first_port = "gen:packets=30000,flows=400,attack=30@203.0.113.0/24,seed=1";
constexpr const char* second_port = "gen:packets=20000,flows=300,size=64-1500,ipv6=20,seed=2";

/// The little-endian u64 at `byte` of a hex string (dump_map_json's values).
std::uint64_t u64_at(const std::string& hex, std::size_t byte = 0) {
    std::uint64_t value = 0;
    for (std::size_t i = 8; i-- > 0;) {
        value = (value << 8U) | std::stoull(hex.substr(2 * (byte + i), 2), nullptr, 16);
    }
    return value;
}

const nlohmann::json& dumped(const nlohmann::json& report, const std::string& name) {
    for (const nlohmann::json& map : report.at("maps")) {
        if (map.at("name") == name) {
            return map;
        }
    }
    ADD_FAILURE() << "no map " << name << " in the report";
    static const nlohmann::json none = nlohmann::json::object();
    return none;
}

/// Every worker's u64 at `key` of a dumped per-CPU map.
std::vector<std::uint64_t> per_cpu(const nlohmann::json& map, std::size_t key) {
    std::vector<std::uint64_t> values;
    for (const nlohmann::json& value : map.at("entries").at(key).at("values")) {
        values.push_back(u64_at(value.get<std::string>()));
    }
    return values;
}

class lua_run_command_test : public command_testing::sluice_command_test,
                             public ::testing::WithParamInterface<std::string> {
protected:
    /// `sluice run ARGUMENTS --json`, which must succeed; the parsed report.
    nlohmann::json run_json(std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(), "run");
        arguments.emplace_back("--json");
        const command_testing::result done = sluice(arguments);
        EXPECT_EQ(done.status, 0) << done.err;
        try {
            return nlohmann::json::parse(done.out);
        } catch (const nlohmann::json::exception& failure) {
            ADD_FAILURE() << failure.what() << "\n" << done.out << done.err;
            return nlohmann::json::object();
        }
    }

    /// The script's arguments: FILE --lua-engine ENGINE.
    std::vector<std::string> script(const std::string& file) const { return {file, "--lua-engine", GetParam()}; }

    std::string write_text(const std::string& name, const std::string& text) {
        const std::string file = path(name);
        std::ofstream(file) << text;
        return file;
    }
};

std::vector<std::string> operator+(std::vector<std::string> left, const std::vector<std::string>& right) {
    left.insert(left.end(), right.begin(), right.end());
    return left;
}

// rate_pps=0: the buckets never refill, so which packets the rate limiter drops does not depend on time.
TEST_P(lua_run_command_test, TheDdosTwinTakesTheBlocklistAndCountsWhatTheObjectCounts) {
    const std::vector<std::string> settings{
        "--set",      "rate_pps=0", "--set",      "burst=20", "--map", "blocked_v4=" + blocklist,
        "--dump-map", "blocked_v4", "--dump-map", "stats",    "--in",  traffic};
    const nlohmann::json expected = run_json(std::vector<std::string>{ddos_object} + settings);
    const nlohmann::json actual = run_json(script(ddos_script) + settings);
    ASSERT_TRUE(expected.contains("maps") && actual.contains("maps"));
    EXPECT_EQ(actual.at("actions"), expected.at("actions"));
    EXPECT_EQ(dumped(actual, "stats").at("entries"), dumped(expected, "stats").at("entries"));
    EXPECT_EQ(dumped(actual, "blocked_v4"), dumped(expected, "blocked_v4")) << "the same map, filled the same way";
    EXPECT_GT(per_cpu(dumped(actual, "stats"), 1).at(0), 0U) << "packets of the blocked prefix were dropped";
    EXPECT_GT(per_cpu(dumped(actual, "stats"), 2).at(0), 0U) << "the rate limiter dropped packets too";
    EXPECT_FALSE(expected.contains("script"));
    ASSERT_TRUE(actual.contains("script"));
    EXPECT_EQ(actual.at("script").at("errors"), 0);
    EXPECT_EQ(actual.at("script").at("states"), 1);
}

// Two workers: one map for the run. The rate limiter's burst is never reached, so each packet's verdict depends on
// its prefix only, whichever worker runs it and whenever.
TEST_P(lua_run_command_test, TwoWorkersShareTheScriptsMapsWithAPerCpuSlotEach) {
    const std::vector<std::string> settings{
        "--set",  "burst=1000000", "--map",      "blocked_v4=" + blocklist, "--workers", "2", "--port", first_port,
        "--port", second_port,     "--dump-maps"};
    const nlohmann::json expected = run_json(std::vector<std::string>{ddos_object} + settings);
    const nlohmann::json actual = run_json(script(ddos_script) + settings);
    ASSERT_TRUE(expected.contains("maps") && actual.contains("maps"));
    for (std::size_t port = 0; port < 2; ++port) {
        for (const char* outcome : {"received", "dropped", "passed", "aborted"}) {
            EXPECT_EQ(actual.at("ports").at(port).at(outcome), expected.at("ports").at(port).at(outcome))
                << "port " << port << " " << outcome;
        }
    }
    const nlohmann::json& stats = dumped(actual, "stats");
    EXPECT_EQ(stats.at("entries"), dumped(expected, "stats").at("entries"));
    std::uint64_t counted = 0;
    for (std::size_t verdict = 0; verdict < 5; ++verdict) {
        const std::vector<std::uint64_t> slots = per_cpu(stats, verdict);
        ASSERT_EQ(slots.size(), 2U) << "one slot per worker";
        counted += slots[0] + slots[1];
    }
    EXPECT_EQ(counted, 50000U) << "every packet counted once, in its worker's slot";
    EXPECT_EQ(per_cpu(stats, 1), (std::vector<std::uint64_t>{
                                     actual.at("ports").at(0).at("dropped").at("packets").get<std::uint64_t>(), 0}))
        << "the attack prefix comes in on port 0 only, read by worker 0";
    std::vector<std::string> names;
    for (const nlohmann::json& map : actual.at("maps")) {
        names.push_back(map.at("name"));
    }
    EXPECT_EQ(names, (std::vector<std::string>{"blocked_v4", "blocked_v6", "rate_v4", "stats"}))
        << "--dump-maps: the script's maps, once each";
    EXPECT_EQ(actual.at("script").at("states"), 2);
}

TEST_P(lua_run_command_test, TheProtocolCounterHasAPerCpuSlotPerWorker) {
    const std::vector<std::string> settings{"--workers", "2",         "--port",     first_port,
                                            "--port",    second_port, "--dump-map", "protocols"};
    const nlohmann::json expected = run_json(std::vector<std::string>{proto_object} + settings);
    const nlohmann::json actual = run_json(script(proto_script) + settings);
    ASSERT_TRUE(expected.contains("maps") && actual.contains("maps"));
    const nlohmann::json& protocols = dumped(actual, "protocols");
    EXPECT_EQ(protocols.at("entries"), dumped(expected, "protocols").at("entries"));
    EXPECT_EQ(per_cpu(protocols, 0), (std::vector<std::uint64_t>{30000, 20000}))
        << "Ethernet packets: port i is read by worker i";
}

TEST_P(lua_run_command_test, MapOptionsOnAScriptSayWhatIsWrong) {
    const auto run = [&](const std::vector<std::string>& more) {
        return sluice(std::vector<std::string>{"run"} + script(ddos_script) + more +
                      std::vector<std::string>{"--in", "gen:packets=10"});
    };
    const command_testing::result unknown = run({"--map", "nosuch=" + blocklist});
    EXPECT_EQ(unknown.status, 1);
    EXPECT_THAT(unknown.err, ::testing::HasSubstr("declared no map 'nosuch' (maps: blocked_v4, blocked_v6, rate_v4, "
                                                  "stats)"));
    const std::string bad = write_text("bad.json", R"([{"key": [1, 2], "value": 1}])");
    const command_testing::result wrong = run({"--map", "blocked_v4=" + bad});
    EXPECT_EQ(wrong.status, 1);
    EXPECT_THAT(wrong.err, ::testing::HasSubstr("map blocked_v4: entry 1: key has 2 bytes, the map's keys have 8"));
    const command_testing::result dump = run({"--dump-map", "stat"});
    EXPECT_EQ(dump.status, 1);
    EXPECT_THAT(dump.err, ::testing::HasSubstr("--dump-map stat: the script"));
    EXPECT_THAT(dump.err, ::testing::HasSubstr("declared no such map"));
}

// Packets over 1000 bytes raise an error, those over 800 return no action: the report counts both, as script
// counters and as the executor's exceptions, with one worker and summed over two.
constexpr const char* failing_script = R"lua(
function xdp(pkt)
    if pkt:len() > 1000 then
        error("too long")
    end
    if pkt:len() > 800 then
        return "no action"
    end
    return XDP_PASS
end
)lua";

TEST_P(lua_run_command_test, TheReportsCarryTheScriptsCounters) {
    const std::string file = write_text("failing.lua", failing_script);
    const nlohmann::json alone = run_json(script(file) + std::vector<std::string>{"--in", traffic});
    ASSERT_TRUE(alone.contains("script"));
    const nlohmann::json& counters = alone.at("script");
    EXPECT_GT(counters.at("errors").get<std::uint64_t>(), 0U);
    EXPECT_GT(counters.at("bad_returns").get<std::uint64_t>(), 0U);
    EXPECT_EQ(counters.at("errors"), alone.at("faults"));
    EXPECT_EQ(counters.at("bad_returns"), alone.at("unknown_return_codes"));
    EXPECT_EQ(counters.at("budget_exceeded"), 0);
    EXPECT_EQ(counters.at("reloads"), 0);
    EXPECT_GT(counters.at("memory_in_use").get<std::uint64_t>(), 0U);

    const command_testing::result table =
        sluice(std::vector<std::string>{"run"} + script(file) + std::vector<std::string>{"--in", traffic});
    EXPECT_EQ(table.status, 0) << table.err;
    EXPECT_THAT(table.out, ::testing::HasSubstr(fmt::format("script: {} errors, {} bad returns, 0 budget stops",
                                                            counters.at("errors").get<std::uint64_t>(),
                                                            counters.at("bad_returns").get<std::uint64_t>())));
    EXPECT_THAT(table.err, ::testing::HasSubstr("too long")) << "the rate-limited log line names the error";

    const nlohmann::json workers = run_json(
        script(file) + std::vector<std::string>{"--workers", "2", "--port", first_port, "--port", second_port});
    ASSERT_TRUE(workers.contains("script"));
    EXPECT_EQ(workers.at("script").at("states"), 2);
    EXPECT_EQ(workers.at("script").at("errors"), workers.at("program_stats").at("faults"));
    EXPECT_EQ(workers.at("script").at("bad_returns"), workers.at("program_stats").at("unknown_return_codes"));
    EXPECT_GT(workers.at("script").at("errors").get<std::uint64_t>(), 0U);
}

// SIGHUP during a --port run: a version that does not load is refused on every worker (the running one stays); the
// next one reaches both workers, each swaps at a batch boundary, and every frame is accounted for. The shell waits
// for what the script prints (its first packet, the new version's first packet) before each signal, so nothing
// depends on timing; --duration only bounds a run that would otherwise hang.
TEST_P(lua_run_command_test, SighupReloadsTheScriptOnEveryWorker) {
    const std::string live = path("live.lua");
    write_text("v1.lua", R"lua(
local said = false
function xdp(pkt)
    if not said then print("v1 running"); said = true end
    return XDP_DROP
end
)lua");
    write_text("v2.lua", R"lua(
local said = false
function xdp(pkt)
    if not said then print("v2 running"); said = true end
    return XDP_PASS
end
)lua");
    write_text("broken.lua", "function xdp(pkt) return");
    const std::string out = path("out.json");
    const std::string err = path("err.txt");
    const std::string shell = fmt::format(
        R"sh(cp '{dir}/v1.lua' '{live}'
'{sluice}' run '{live}' --lua-engine {engine} --workers 2 --duration 120 --json \
    --port gen:packets=2000000000,seed=1 --port gen:packets=2000000000,seed=2 >'{out}' 2>'{err}' &
pid=$!
wait_for() {{ tries=0; until [ "$(grep -c "$1" '{err}')" -ge "$2" ]; do
    tries=$((tries + 1)); [ $tries -gt 1200 ] && return 1; sleep 0.05; done; }}
wait_for 'v1 running' 2 || exit 11
cp '{dir}/broken.lua' '{live}'; kill -HUP $pid
wait_for 'every worker keeps its running version' 1 || exit 12
cp '{dir}/v2.lua' '{live}'; kill -HUP $pid
wait_for 'v2 running' 2 || exit 13
kill -INT $pid
wait $pid
)sh",
        fmt::arg("dir", path("")), fmt::arg("live", live), fmt::arg("sluice", SLUICE_BINARY),
        fmt::arg("engine", GetParam()), fmt::arg("out", out), fmt::arg("err", err));
    const std::string script_file = write_text("reload.sh", shell);
    const int raw = std::system(("sh '" + script_file + "'").c_str());
    ASSERT_TRUE(WIFEXITED(raw));
    const std::string errors = text_of(err);
    ASSERT_EQ(WEXITSTATUS(raw), 0) << errors;
    EXPECT_THAT(errors, ::testing::HasSubstr("live.lua reloaded on 2 workers"));
    const nlohmann::json report = nlohmann::json::parse(text_of(out));
    EXPECT_EQ(report.at("accounting"), "ok");
    EXPECT_EQ(report.at("script").at("reloads"), 2) << "one swap per worker, and none for the refused version";
    for (const nlohmann::json& port : report.at("ports")) {
        EXPECT_GT(port.at("dropped").at("packets").get<std::uint64_t>(), 0U) << "version 1";
        EXPECT_GT(port.at("passed").at("packets").get<std::uint64_t>(), 0U) << "version 2";
        EXPECT_EQ(port.at("aborted").at("packets"), 0);
    }
}

std::string engine_name(const ::testing::TestParamInfo<std::string>& engine) {
    return engine.param == "luajit" ? std::string{"luajit"} : std::string{"lua54"};
}

INSTANTIATE_TEST_SUITE_P(engines, lua_run_command_test, ::testing::Values("lua5.4", "luajit"), engine_name);

} // namespace
} // namespace sluice::cli
