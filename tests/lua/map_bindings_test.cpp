// The map, record and helper bindings on both engines (Lua 5.4's C API bindings, LuaJIT's FFI ones in
// luajit_maps.cpp): every map type a script can declare, field types and their wrapping, records shared between maps
// of the same size, views that outlive their call, and the errors of each path, which must name the script's line
// and read the same on both engines.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "lua/lua_test_support.hpp"

namespace sluice::lua {
namespace {

using ::testing::HasSubstr;
using testing::ipv4_udp;
using testing::loaded_script;
using testing::packet_set;
using ::testing::StartsWith;
using testing::trace_capture;

class map_bindings_test : public ::testing::TestWithParam<engine> {};

/// Runs `source` over one packet (source address 10.0.1.7) per batch, `batches` times; what it printed.
std::vector<std::string> printed(engine kind, const std::string& source, int batches = 1) {
    loaded_script script(kind, source);
    if (!script.program) {
        return {"(did not load)"};
    }
    trace_capture trace(script.state);
    for (int batch = 0; batch < batches; ++batch) {
        packet_set packets;
        packets.add(ipv4_udp(0x0a000107, 0x0a000002, 1000, 53));
        packets.run(*script.program);
    }
    EXPECT_EQ(script.program->stats().exceptions, 0U) << ::testing::PrintToString(script.log);
    return trace.lines;
}

// Every map type maps.declare accepts, through lookup/get/add/update/delete/push/pop/peek/next_key/pairs; the
// asserts hold the kernel's answers (errnos, LRU eviction, longest prefix match).
constexpr const char* every_map_type = R"lua(
local h = maps.declare{name = "h", type = "hash", key = "u32 id", value = "u64 packets, be16 port, i8 delta, u8[4] tag",
                       max_entries = 4}
local a = maps.declare{name = "a", type = "array", key = "u32 index", value = "u32 count", max_entries = 2}
local pa = maps.declare{name = "pa", type = "percpu_array", key = "u32 index", value = "u64 count", max_entries = 2}
local ph = maps.declare{name = "ph", type = "percpu_hash", key = "be32 address", value = "u64 count", max_entries = 4}
local lru = maps.declare{name = "lru", type = "lru_hash", key = "u32 id", value = "u32 v", max_entries = 2}
local lpc = maps.declare{name = "lpc", type = "lru_percpu_hash", key = "u32 id", value = "i32 v", max_entries = 4}
local trie = maps.declare{name = "trie", type = "lpm_trie", key = "u32 prefixlen, be32 address", value = "u32 value",
                          max_entries = 8, flags = BPF_F_NO_PREALLOC}
local q = maps.declare{name = "q", type = "queue", value = "u32 v", max_entries = 2}
local s = maps.declare{name = "s", type = "stack", value = "u32 v", max_entries = 2}

function xdp(pkt)
    -- hash: flags and errnos, every field type, views write to the map, add wraps at the field's width
    assert(h:update(1, h:value{packets = 5, port = 443, delta = -3, tag = "ab"}) == 0)
    assert(h:update(1, h:value(), BPF_NOEXIST) == -17, "EEXIST")
    assert(h:update(2, h:value(), BPF_EXIST) == -2, "ENOENT")
    local v = h:lookup(1)
    assert(v.packets == 5 and v.port == 443 and v.delta == -3 and v.tag == "ab\0\0")
    v.port = 8080
    assert(h:get(1, "port") == 8080 and h:get(1) == 5)
    assert(h:add(1, "packets", 2, "delta", -126) == true)
    assert(v.packets == 7 and v.delta == 127, "i8: -129 wraps to 127")
    assert(h:add(1, "packets", 1, "port", 1, "delta", 1) and v.packets == 8 and v.port == 8081 and v.delta == -128)
    assert(h:add(9, "packets", 1) == false and h:get(9) == nil and h:lookup(9) == nil)
    print(tostring(v))
    local seen = 0
    assert(h:update(3, h:value{packets = 1}) == 0)
    for key, value in h:pairs() do seen = seen + value.packets + key.id end
    assert(seen == 8 + 1 + 1 + 3)
    assert(h:delete(1) == 0 and h:delete(1) == -2)
    -- array: fixed keys, E2BIG beyond, no delete, u32 wraps
    assert(a:update(0, 7) == 0 and a:get(0) == 7 and a:update(5, 1) == -7 and a:delete(0) == -22)
    assert(a:update(1, 4294967295) == 0 and a:add(1, "count", 2) and a:get(1) == 1)
    assert(a:get(2) == nil and a:lookup(-1) == nil and a:add(4294967296, "count", 1) and a:get(0) == 8,
           "indexes beyond max_entries are absent; keys keep their low 32 bits")
    assert(pa:get(2) == nil and not pcall(pa.lookup, pa, 1.5), "an index with a fraction is no key")
    -- per-CPU: the worker's slot
    assert(pa:add(1, "count", 3) and pa:get(1) == 3 and processor_id() == 0)
    assert(ph:update(0xc0a80001, 9) == 0 and ph:get(0xc0a80001) == 9)
    assert(ph:next_key(nil).address == 0xc0a80001)
    local _, errno = ph:next_key(0xc0a80001)
    assert(errno == -2, "ENOENT after the last key")
    -- LRU: the oldest entry goes
    lru:update(1, 10) lru:update(2, 20) lru:get(1) lru:update(3, 30)
    assert(lru:get(2) == nil and lru:get(1) == 10 and lru:get(3) == 30)
    -- a record of another map with the same size: the same bytes (be32 1 is the little-endian u32 0x01000000)
    assert(lpc:update(ph:key{address = 1}, -5) == 0 and lpc:get(0x01000000) == -5)
    -- LPM trie: longest prefix, a key filled from the packet (the IPv4 source at 26)
    assert(trie:update(trie:key{prefixlen = 24, address = 0x0a000100}, 24) == 0)
    assert(trie:update(trie:key{prefixlen = 16, address = 0x0a000000}, 16) == 0)
    local k = trie:key{prefixlen = 32}
    assert(k:fill("address", pkt, 26) == true and k.address == 0x0a000107)
    assert(trie:get(k) == 24)
    k.address = 0x0a00ff01
    assert(trie:lookup(k).value == 16)
    k.address = 0x0b000001
    assert(trie:lookup(k) == nil and k:fill("address", pkt, 58) == false)
    -- queue and stack
    assert(q:push(1) == 0 and q:push(2) == 0 and q:push(3) == -7, "E2BIG when full")
    assert(q:pop().v == 1 and q:peek().v == 2 and q:pop().v == 2)
    local none, empty = q:pop()
    assert(none == nil and empty == -2)
    assert(s:push(1) == 0 and s:push(2) == 0 and s:pop().v == 2 and s:pop().v == 1)
    print(tostring(h:key{id = 7}), tostring(trie:key{prefixlen = 8, address = 0x0a000000}))
    return XDP_PASS
end
)lua";

TEST_P(map_bindings_test, EveryMapTypeKeepsTheKernelsSemantics) {
    EXPECT_EQ(printed(GetParam(), every_map_type),
              (std::vector<std::string>{"{packets=8, port=8081, delta=-128, tag=61620000}",
                                        "{id=7}\t{prefixlen=8, address=167772160}"}));
}

// Integers beyond a field's width keep their low bits, as C's conversions do, for stores and adds alike (LuaJIT's
// FFI conversions alone would saturate numbers beyond int32).
constexpr const char* wrapping_fields = R"lua(
local m = maps.declare{name = "m", type = "array", key = "u32 index",
                       value = "u8 a, i8 b, u16 c, i16 d, u32 e, i32 f, be16 g, be32 h", max_entries = 1}
function xdp(pkt)
    local v = m:lookup(0)
    for _, n in ipairs({300, -1, -129, 70000, -70000, 4294967295, 1099511627779}) do
        v.a, v.b, v.c, v.d, v.e, v.f, v.g, v.h = n, n, n, n, n, n, n, n
        print(n, v.a, v.b, v.c, v.d, v.e, v.f, v.g, v.h)
    end
    m:add(0, "a", 4294967295, "b", 2147483648, "c", 1, "d", -1, "e", 2, "f", 1, "g", 65536, "h", 4294967296)
    print(v.a, v.b, v.c, v.d, v.e, v.f, v.g, v.h)
    return XDP_PASS
end
)lua";

TEST_P(map_bindings_test, IntegersBeyondAFieldsWidthKeepTheirLowBits) {
    EXPECT_EQ(printed(GetParam(), wrapping_fields),
              (std::vector<std::string>{
                  "300	44	44	300	300	300	300	300	300",
                  "-1	255	-1	65535	-1	4294967295	-1	65535	4294967295",
                  "-129	127	127	65407	-129	4294967167	-129	65407	4294967167",
                  "70000	112	112	4464	4464	70000	70000	4464	70000",
                  "-70000	144	-112	61072	-4464	4294897296	-70000	61072	4294897296",
                  "4294967295	255	-1	65535	-1	4294967295	-1	65535	4294967295",
                  "1099511627779	3	3	3	3	3	3	3	3",
                  "2	3	4	2	5	4	3	3",
              }));
}

// Each failing call in a pcall of its own, on line `n` of the script; the message printed.
constexpr const char* failing_calls = R"lua(
local h = maps.declare{name = "h", type = "hash", key = "u32 id", value = "u64 packets, u8[4] tag", max_entries = 4}
local trie = maps.declare{name = "trie", type = "lpm_trie", key = "u32 prefixlen, be32 address", value = "u32 value",
                          max_entries = 8, flags = BPF_F_NO_PREALLOC}
local function try(f) local ok, message = pcall(f) print(ok, message) end
function xdp(pkt)
    h:update(1, h:value())
    local v = h:lookup(1)
    try(function() local r = h:lookup("x") return r end)
    try(function() local r = h:lookup(1.5) return r end)
    try(function() local r = trie:lookup(1) return r end)
    try(function() local r = h:lookup(trie:key()) return r end)
    try(function() local r = h:add(1, "nope", 1) return r end)
    try(function() local r = h:add(1, "tag", 1) return r end)
    try(function() local r = h:add(1, "packets") return r end)
    try(function() local r = h:add(1, "packets", 0.5) return r end)
    try(function() local r = h:add(1, "packets", 1, "packets", 1, "packets", "x") return r end)
    try(function() local r = v.nope return r end)
    try(function() v.packets = "x" end)
    try(function() v.tag = "too long" end)
    try(function() local r = h:update(1, v, "x") return r end)
    try(function() local r = h:get(1, "nope") return r end)
    try(function() local r = redirect("x") return r end)
    try(function() local r = redirect_map({}, 1) return r end)
    try(function() local r = v:fill("nope", pkt, 0) return r end)
    return XDP_PASS
end
)lua";

TEST_P(map_bindings_test, ErrorsNameTheScriptsLineAndWhatWasWrong) {
    const std::vector<std::string> lines = printed(GetParam(), failing_calls);
    const std::vector<std::string> expected{
        "false\ttest.lua:9: bad argument #2: a record (map key or value) expected, got string",
        "false\ttest.lua:10: bad argument #2: a record (map key or value) expected, got number",
        "false\ttest.lua:11: bad key: a number stands only for a layout of one integer field; make a record",
        "false\ttest.lua:12: bad key: a record of 8 bytes where the map has 4",
        "false\ttest.lua:13: the value has no integer field 'nope'",
        "false\ttest.lua:14: the value has no integer field 'tag'",
        "false\ttest.lua:15: m:add(key, field, delta [, field, delta ...]): pairs of a field and a delta expected",
        "false\ttest.lua:16: bad argument #4: an integer expected, got number",
        "false\ttest.lua:17: bad argument #8: an integer expected, got string",
        "false\ttest.lua:18: the record has no field 'nope'",
        "false\ttest.lua:19: bad argument #3: an integer expected, got string",
        "false\ttest.lua:20: field 'tag' holds 4 bytes, not 8",
        "false\ttest.lua:21: bad argument #4: an integer expected, got string",
        "false\ttest.lua:22: the value has no field 'nope'",
        "false\ttest.lua:23: bad argument #1: an integer expected, got string",
        "false\ttest.lua:24: bad argument #1: a map expected, got table",
        "false\ttest.lua:25: the record has no field 'nope'",
    };
    EXPECT_EQ(lines, expected);
}

// A view kept past its call: every use is an error naming the line, on both engines, and the engine goes on.
constexpr const char* stale_views = R"lua(
local h = maps.declare{name = "h", type = "hash", key = "u32 id", value = "u32 n, u32 m", max_entries = 4}
local function try(f) local ok, message = pcall(f) print(ok, message) end
function xdp(pkt)
    if not saved then
        h:update(1, h:value{n = 1})
        saved = h:lookup(1)
        saved.n = 2 -- good during its own call
        return XDP_PASS
    end
    try(function() local r = saved.n return r end)
    try(function() saved.m = 3 end)
    try(function() local r = h:update(2, saved) return r end)
    try(function() local r = saved:fill("n", pkt, 0) return r end)
    print(h:get(1, "n"), h:get(2))
    return XDP_PASS
end
)lua";

TEST_P(map_bindings_test, ViewsFromAnEarlierCallAreErrors) {
    const std::vector<std::string> lines = printed(GetParam(), stale_views, 2);
    ASSERT_EQ(lines.size(), 5U) << ::testing::PrintToString(lines);
    for (int i = 0; i < 4; ++i) {
        EXPECT_THAT(lines[static_cast<std::size_t>(i)],
                    StartsWith(fmt::format("false\ttest.lua:{}: a map value from an earlier call", 11 + i)));
    }
    EXPECT_EQ(lines[4], "2\tnil");
}

// Map objects are tables of the map's methods on both engines (bound methods: no metatable lookup per call); their
// metatables stay hidden, and the packet takes no new fields.
constexpr const char* objects = R"lua(
local m = maps.declare{name = "m", type = "hash", key = "u32 id", value = "u32 n", max_entries = 4}
function xdp(pkt)
    local update, get = m.update, m.get
    print(type(m), getmetatable(m), tostring(m), update(m, 1, 5), get(m, 1), #pkt == pkt:len())
    print(pcall(setmetatable, m, {}), (pcall(function() pkt.extra = 1 end)))
    return XDP_PASS
end
)lua";

TEST_P(map_bindings_test, MapsAreTablesOfTheirMethodsAndThePacketTakesNoFields) {
    EXPECT_EQ(printed(GetParam(), objects),
              (std::vector<std::string>{"table\tsluice map\tmap m (key 4 bytes, value 4 bytes)\t0\t5\ttrue",
                                        "false\tfalse"}));
}

TEST_P(map_bindings_test, LayoutNamesOfSluicesOwnAreRefused) {
    ebpf::execution_state state;
    options settings;
    settings.engine = GetParam();
    auto refused = script_program::create(
        "maps.declare{name = 'm', type = 'hash', key = 'u32 _sluice_p', value = 'u32 v', max_entries = 1}", "x.lua",
        state, settings);
    ASSERT_FALSE(refused);
    EXPECT_THAT(refused.error().message, HasSubstr("names beginning with _sluice are reserved"));
}

INSTANTIATE_TEST_SUITE_P(engines, map_bindings_test, ::testing::ValuesIn(testing::both_engines), testing::engine_name);

} // namespace
} // namespace sluice::lua
