// Lua and eBPF together: maps of an eBPF object shared with a script (both directions), map semantics as the
// kernel's, and chaining: a clang-built XDP program calls a Lua function through bpf_sluice_lua and uses its verdict.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>

#include "lua/lua_test_support.hpp"
#include "sluice/xdp/executor.hpp"

namespace sluice::lua {
namespace {

using ::testing::HasSubstr;
using testing::ipv4_udp;
using testing::packet_set;
using testing::trace_capture;

/// chain_to_lua.o loaded, with a script attached to the executor's execution state.
struct chained {
    ebpf::execution_state state;
    std::vector<std::string> log;
    std::optional<ebpf::loaded_object> object;
    std::optional<xdp::executor> executor;
    std::optional<script_program> script;

    chained(engine kind, const std::string& source) {
        auto spec = ebpf::object_spec::open_file(SLUICE_LUA_DATA_DIR "/chain_to_lua.o");
        if (!spec) {
            ADD_FAILURE() << spec.error().message;
            return;
        }
        auto loaded = spec->load();
        if (!loaded) {
            ADD_FAILURE() << loaded.error().message;
            return;
        }
        object.emplace(std::move(*loaded));
        options settings;
        settings.engine = kind;
        settings.object = &*object;
        settings.log = [this](std::string_view line) { log.emplace_back(line); };
        auto made = script_program::create(source, "chain.lua", state, settings);
        if (!made) {
            ADD_FAILURE() << made.error().message;
            return;
        }
        script.emplace(std::move(*made));
        script->attach_chaining();
        auto run = xdp::executor::create(*object, *object->find_program("chain_to_lua"), ebpf::xdp_helper_table(),
                                         state);
        if (!run) {
            ADD_FAILURE() << run.error().message;
            return;
        }
        executor.emplace(std::move(*run));
    }
};

class chaining_test : public ::testing::TestWithParam<engine> {};

TEST_P(chaining_test, LoaderResolvesTheKfuncToSluicesHelper) {
    auto spec = ebpf::object_spec::open_file(SLUICE_LUA_DATA_DIR "/chain_to_lua.o");
    ASSERT_TRUE(spec) << spec.error().message;
    const ebpf::program_spec* program = spec->find_program("chain_to_lua");
    ASSERT_NE(program, nullptr);
    int calls = 0;
    for (const ebpf::instruction& insn : program->code) {
        if (insn.opcode == ebpf::op::call && insn.src == ebpf::op::call_helper &&
            insn.imm == static_cast<std::int32_t>(ebpf::sluice_lua_helper_id)) {
            ++calls;
        }
    }
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(ebpf::xdp_helper_table().name(ebpf::sluice_lua_helper_id), "bpf_sluice_lua");
}

TEST_P(chaining_test, EbpfUsesTheVerdictOfTheLuaFunction) {
    chained setup(GetParam(), R"lua(
local calls = maps.open("chain_calls")
function classify(pkt)
    local port = pkt:be16(36)
    if port == 53 then return XDP_DROP end
    if port == 80 then return redirect(4) end
    if port == 99 then error("no such service") end
    print("ipv4 packets so far", calls:get(0))
    return XDP_PASS
end
)lua");
    ASSERT_TRUE(setup.executor);
    trace_capture trace(setup.state);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 53));
    packets.add(ipv4_udp(1, 2, 3, 80));
    packets.add(ipv4_udp(1, 2, 3, 443));
    packets.add(ipv4_udp(1, 2, 3, 99));
    std::vector<std::uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06; // not IPv4: the eBPF program passes it without asking Lua
    packets.add(arp);
    const std::vector<xdp::action> out = packets.run(*setup.executor);
    EXPECT_EQ(out, (std::vector{xdp::action::drop, xdp::action::redirect, xdp::action::pass, xdp::action::aborted,
                                xdp::action::pass}));
    EXPECT_EQ(setup.executor->redirect_decisions()[1].ifindex, 4U) << "the Lua redirect set the eBPF packet's state";
    EXPECT_EQ(trace.lines, std::vector<std::string>{"ipv4 packets so far\t3"}) << "the script reads the eBPF map";
    const script_stats& stats = setup.script->script_statistics();
    EXPECT_EQ(stats.chained_calls, 4U);
    EXPECT_EQ(stats.chained_failures, 1U);
    ASSERT_EQ(setup.log.size(), 1U);
    EXPECT_THAT(setup.log[0], HasSubstr("chain.lua:7: no such service"));
}

TEST_P(chaining_test, MissingFunctionOrNoScriptAborts) {
    chained setup(GetParam(), "function other(pkt) return XDP_PASS end");
    ASSERT_TRUE(setup.executor);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 53));
    EXPECT_EQ(packets.run(*setup.executor), std::vector{xdp::action::aborted});
    ASSERT_EQ(setup.log.size(), 1U);
    EXPECT_THAT(setup.log[0], HasSubstr("defines no function 'classify'"));
    setup.script.reset(); // the script is gone: the kfunc aborts instead of calling it
    EXPECT_EQ(setup.state.script, nullptr);
    packet_set more;
    more.add(ipv4_udp(1, 2, 3, 53));
    EXPECT_EQ(more.run(*setup.executor), std::vector{xdp::action::aborted});
}

TEST_P(chaining_test, ScriptAndProgramShareMapsBothWays) {
    chained setup(GetParam(), R"lua(
local calls = maps.open("chain_calls", "u32 index", "u64 count")
calls:update(1, 1000)                 -- the top level seeds the eBPF program's counter
function xdp(pkt)
    local entry = calls:lookup(0)
    entry.count = entry.count + 10     -- through the view: the eBPF side sees it
    return XDP_PASS
end
)lua");
    ASSERT_TRUE(setup.executor);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 443)); // eBPF: counts index 0, asks classify, which this script lacks: aborted
    std::vector<std::uint8_t> arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    packets.add(arp);
    packets.run(*setup.executor);
    packet_set lua_packets;
    lua_packets.add(ipv4_udp(1, 2, 3, 443));
    lua_packets.run(*setup.script);
    ebpf::map& calls = *setup.object->find_map("chain_calls");
    std::uint32_t key = 0;
    std::uint64_t value = 0;
    ASSERT_EQ(calls.lookup_elem(&key, &value), 0);
    EXPECT_EQ(value, 1U + 10U);
    key = 1;
    ASSERT_EQ(calls.lookup_elem(&key, &value), 0);
    EXPECT_EQ(value, 1000U + 1U);
    EXPECT_EQ(setup.script->find_map("chain_calls"), &calls);
}

TEST_P(chaining_test, MapsFromScriptsKeepTheKernelsSemantics) {
    testing::loaded_script script(GetParam(), R"lua(
local h = maps.declare{name = "flows", type = "hash", key = "be32 address, u16 port", value = "u64 bytes",
                       max_entries = 2}
local a = maps.declare{name = "slots", type = "array", key = "u32 index", value = "u32 value", max_entries = 4}
local k = h:key{address = 0x0a000001, port = 80}
local results = {}
local function note(value) results[#results + 1] = tostring(value) end
note(h:update(k, 5, BPF_NOEXIST))          -- 0
note(h:update(k, 6, BPF_NOEXIST))          -- -EEXIST
note(h:get(k))                             -- 5
note(h:update(h:key{port = 1}, 7, BPF_EXIST)) -- -ENOENT
note(h:update(h:key{port = 2}, 8))         -- 0
note(h:update(h:key{port = 3}, 9))         -- -E2BIG: full
note(h:delete(h:key{port = 2}))            -- 0
note(h:delete(h:key{port = 2}))            -- -ENOENT
note(a:delete(1))                          -- -EINVAL: arrays cannot delete
note(a:update(9, 1))                       -- -E2BIG: out of range
note(a:get(9))                             -- nil
note(a:add(2, "value", 7))                 -- true
note(a:add(2, "value", -8))                -- true: wraps as the u32 does
note(a:get(2))                             -- 4294967295
note(h:add(h:key{port = 9}, "bytes", 1))   -- false: absent
local keys = 0
for key, value in h:pairs() do keys = keys + 1 note(key.port .. "=" .. value.bytes) end
note(keys)
note(select(2, h:next_key(k)))              -- after the last key: nil, -ENOENT
note(k)
summary = table.concat(results, " ")
function xdp(pkt) print(summary) return XDP_PASS end
)lua");
    ASSERT_TRUE(script.program);
    trace_capture trace(script.state);
    packet_set packets;
    packets.add(ipv4_udp(1, 2, 3, 4));
    packets.run(*script.program);
    ASSERT_EQ(trace.lines.size(), 1U) << ::testing::PrintToString(script.log);
    EXPECT_EQ(trace.lines[0], fmt::format("0 {} 5 {} 0 {} 0 {} {} {} nil true true 4294967295 false 80=5 1 {} "
                                          "{{address=167772161, port=80}}",
                                          -EEXIST, -ENOENT, -E2BIG, -ENOENT, -EINVAL, -E2BIG, -ENOENT));
}

TEST_P(chaining_test, MapErrorsNameWhatIsWrong) {
    ebpf::execution_state state;
    options settings;
    settings.engine = GetParam();
    auto missing = script_program::create("maps.open('nope')", "m.lua", state, settings);
    ASSERT_FALSE(missing);
    EXPECT_THAT(missing.error().message, HasSubstr("maps.open('nope'): "));
    auto layout = script_program::create("maps.declare{name='x', type='hash', key='u33 a', value='u32 b', "
                                         "max_entries=1}",
                                         "m.lua", state, settings);
    ASSERT_FALSE(layout);
    EXPECT_THAT(layout.error().message, HasSubstr("unknown type 'u33'"));
    auto kind = script_program::create("maps.declare{name='x', type='tree', key='u32 a', value='u32 b'}", "m.lua",
                                       state, settings);
    ASSERT_FALSE(kind);
    EXPECT_THAT(kind.error().message, HasSubstr("'type' must be one of"));
    auto kernel = script_program::create("maps.declare{name='x', type='lpm_trie', key='u32 a, u32 b', value='u32 c', "
                                         "max_entries=4}",
                                         "m.lua", state, settings);
    ASSERT_FALSE(kernel);
    EXPECT_THAT(kernel.error().message, HasSubstr("map_flags")) << "lpm_trie needs BPF_F_NO_PREALLOC, as in the kernel";
}

INSTANTIATE_TEST_SUITE_P(engines, chaining_test, ::testing::ValuesIn(testing::both_engines), testing::engine_name);

} // namespace
} // namespace sluice::lua
