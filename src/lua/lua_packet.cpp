// The packet a script gets as `pkt`: bounds-checked accessors, header parsers and the adjust helpers, never a copy
// of the packet (contract in include/sluice/lua/script_program.hpp).
//
// Lua 5.4: one userdata, made once per state, whose methods are C functions reading the engine's packet_view.
// LuaJIT: an FFI pointer to the same packet_view with a metatype whose methods are Lua, so that the JIT compiles
// packet reads into plain loads with a bounds check; adjust_* call back into C through an FFI function pointer.
// Both give the same answers: the tests run every accessor and parser on both engines.
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "lua/binding.hpp"

namespace sluice::lua::SLUICE_LUA_NS {

static_assert(offsetof(packet_view, context) == 0 && offsetof(packet_view, data) == 8 &&
                  offsetof(packet_view, length) == 16,
              "the LuaJIT cdef of struct sluice_view must match packet_view");
static_assert(offsetof(ebpf::xdp_context, data) == 0 && offsetof(ebpf::xdp_context, data_end) == 8 &&
                  offsetof(ebpf::xdp_context, data_meta) == 16 && offsetof(ebpf::xdp_context, ingress_ifindex) == 36 &&
                  offsetof(ebpf::xdp_context, rx_queue_index) == 40,
              "the LuaJIT cdef of struct sluice_xdp_context must match ebpf::xdp_context");

namespace {

enum adjust_kind : int { adjust_head, adjust_tail, adjust_meta };

/// adjust_head/tail/meta through the kernel-exact helpers; 0 or a negative errno.
std::int64_t adjust(state_engine& engine, int kind, std::int64_t delta) {
    if (engine.view.context == nullptr) {
        return -EINVAL;
    }
    const helper_slot slot = kind == adjust_head ? slot_adjust_head
                             : kind == adjust_tail ? slot_adjust_tail
                                                   : slot_adjust_meta;
    const auto result = static_cast<std::int64_t>(engine.call_helper(
        slot, reinterpret_cast<std::uint64_t>(engine.view.context), static_cast<std::uint64_t>(delta)));
    engine.refresh_view();
    return result;
}

} // namespace

#ifdef SLUICE_LUAJIT

extern "C" int sluice_luajit_adjust(void* engine, int kind, int delta) {
    return static_cast<int>(adjust(*static_cast<state_engine*>(engine), kind, delta));
}

namespace {

// Same semantics as the C functions of the Lua 5.4 side below, line for line.
constexpr const char* packet_source = R"lua(
local ffi, view_address, adjust_address, engine = ...
ffi.cdef[[
struct sluice_xdp_context { uint8_t* data; uint8_t* data_end; uint8_t* data_meta; uint8_t* data_hard_start;
                            uint32_t frame_size; uint32_t ingress_ifindex; uint32_t rx_queue_index;
                            uint32_t egress_ifindex; };
struct sluice_view { struct sluice_xdp_context* context; uint8_t* data; uint32_t length; uint32_t padding; };
]]
-- Not `const`: LuaJIT's optimiser takes const fields for immutable and reuses their loads across calls, but step()
-- and adjust_*() move the view between packets. (So a LuaJIT script could write them: LuaJIT is trusted code.)
local adjust_call = ffi.cast("int (*)(void*, int, int)", adjust_address)
engine = ffi.cast("void*", engine) -- light userdata to a C function is NYI in traces
local error, floor, type = error, math.floor, type

local function live(p)
    if p.context == nil then error("the packet view is used outside xdp()", 3) end
    return p.data, p.length
end
local function offset(o)
    if type(o) ~= "number" or o % 1 ~= 0 then error("bad argument: an integer offset expected", 3) end
    return o
end
local function u8(d, n, o) if o < 0 or o + 1 > n then return nil end return d[o] end
local function be16(d, n, o) if o < 0 or o + 2 > n then return nil end return d[o] * 256 + d[o + 1] end
local function be32(d, n, o)
    if o < 0 or o + 4 > n then return nil end
    return ((d[o] * 256 + d[o + 1]) * 256 + d[o + 2]) * 256 + d[o + 3]
end
local function store(d, n, o, size, v, name)
    if type(v) ~= "number" or v % 1 ~= 0 then error("bad argument: an integer value expected", 3) end
    if o < 0 or o + size > n then
        error(("pkt:%s(%d): beyond the packet (%d bytes)"):format(name, o, n), 3)
    end
    for i = size - 1, 0, -1 do
        d[o + i] = v % 256
        v = floor(v / 256)
    end
end
local function meta(p)
    local c = p.context
    if c == nil then error("the packet view is used outside xdp()", 3) end
    return c.data_meta, tonumber(c.data - c.data_meta)
end

local methods = {}
function methods.len(p) local _, n = live(p) return n end
function methods.u8(p, o) local d, n = live(p) return u8(d, n, offset(o)) end
function methods.be16(p, o) local d, n = live(p) return be16(d, n, offset(o)) end
function methods.be32(p, o) local d, n = live(p) return be32(d, n, offset(o)) end
function methods.set_u8(p, o, v) local d, n = live(p) store(d, n, offset(o), 1, v, "set_u8") end
function methods.set_be16(p, o, v) local d, n = live(p) store(d, n, offset(o), 2, v, "set_be16") end
function methods.set_be32(p, o, v) local d, n = live(p) store(d, n, offset(o), 4, v, "set_be32") end
function methods.ifindex(p) live(p) return p.context.ingress_ifindex end
function methods.rx_queue(p) live(p) return p.context.rx_queue_index end
function methods.meta_len(p) local _, n = meta(p) return n end
function methods.meta_be32(p, o) local d, n = meta(p) return be32(d, n, offset(o)) end
function methods.set_meta_be32(p, o, v) local d, n = meta(p) store(d, n, offset(o), 4, v, "set_meta_be32") end
function methods.adjust_head(p, delta) live(p) return adjust_call(engine, 0, offset(delta)) end
function methods.adjust_tail(p, delta) live(p) return adjust_call(engine, 1, offset(delta)) end
function methods.adjust_meta(p, delta) live(p) return adjust_call(engine, 2, offset(delta)) end

function methods.eth(p)
    local d, n = live(p)
    if n < 14 then return nil end
    local proto, o, vid = be16(d, n, 12), 14, nil
    for _ = 1, 2 do
        if proto ~= 0x8100 and proto ~= 0x88a8 then break end
        if o + 4 > n then return nil end
        if vid == nil then vid = be16(d, n, o) % 4096 end
        proto = be16(d, n, o + 2)
        o = o + 4
    end
    return proto, o, vid
end
function methods.vlan(p, o)
    local d, n = live(p)
    o = offset(o)
    if o < 0 or o + 4 > n then return nil end
    return be16(d, n, o) % 4096, be16(d, n, o + 2), o + 4
end
function methods.ipv4(p, o)
    local d, n = live(p)
    o = offset(o)
    if o < 0 or o + 20 > n then return nil end
    local vihl = d[o]
    local ihl = (vihl % 16) * 4
    if floor(vihl / 16) ~= 4 or ihl < 20 or o + ihl > n then return nil end
    return d[o + 9], o + ihl, be32(d, n, o + 12), be32(d, n, o + 16), be16(d, n, o + 2), d[o + 8]
end
function methods.ipv6(p, o)
    local d, n = live(p)
    o = offset(o)
    if o < 0 or o + 40 > n or floor(d[o] / 16) ~= 6 then return nil end
    local header, cursor = d[o + 6], o + 40
    for _ = 1, 4 do
        if header ~= 0 and header ~= 43 and header ~= 44 and header ~= 60 then break end
        if cursor + 2 > n then return nil end
        local size = header == 44 and 8 or (d[cursor + 1] + 1) * 8
        header = d[cursor]
        cursor = cursor + size
    end
    return header, cursor, be16(d, n, o + 4), d[o + 7]
end
function methods.tcp(p, o)
    local d, n = live(p)
    o = offset(o)
    if o < 0 or o + 20 > n then return nil end
    local size = floor(d[o + 12] / 16) * 4
    if size < 20 or o + size > n then return nil end
    return be16(d, n, o), be16(d, n, o + 2), d[o + 13], o + size
end
function methods.udp(p, o)
    local d, n = live(p)
    o = offset(o)
    if o < 0 or o + 8 > n then return nil end
    return be16(d, n, o), be16(d, n, o + 2), be16(d, n, o + 4), o + 8
end
function methods.icmp(p, o)
    local d, n = live(p)
    o = offset(o)
    if o < 0 or o + 8 > n then return nil end
    return d[o], d[o + 1], o + 8
end

ffi.metatype("struct sluice_view", {
    __index = methods,
    __len = function(p) local _, n = live(p) return n end,
    __tostring = function(p) return "sluice packet" end,
})
return ffi.cast("struct sluice_view*", view_address)
)lua";

} // namespace

void push_packet_object(lua_State* L, state_engine& engine) {
    if (luaL_loadbufferx(L, packet_source, std::strlen(packet_source), "=sluice packet", "t") != 0) {
        lua_error(L); // sluice's own code: cannot fail unless broken, and then loudly
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, "ffi");
    lua_call(L, 1, 1);
    lua_pushlightuserdata(L, &engine.view);
    lua_pushlightuserdata(L, reinterpret_cast<void*>(&sluice_luajit_adjust));
    lua_pushlightuserdata(L, &engine);
    lua_call(L, 4, 1);
}

#else // Lua 5.4

namespace {

constexpr const char* packet_type = "sluice.packet";

struct packet_handle {
    userdata_tag tag;
};

/// The packet handle a method acts on: the one its closure is bound to (push_packet_object).
packet_handle& bound_packet(lua_State* L) {
    return *static_cast<packet_handle*>(lua_touserdata(L, lua_upvalueindex(1)));
}

/// The live view of the packet a method was called on, or a Lua error.
packet_view& live(lua_State* L) {
    packet_view& view = bound_packet(L).tag.engine->view;
    if (view.context == nullptr) {
        luaL_error(L, "the packet view is used outside xdp()");
    }
    return view;
}

std::int64_t offset_argument(lua_State* L, int index) {
    std::int64_t value = 0;
    if (!to_integer(L, index, value)) {
        luaL_error(L, "bad argument #%d: an integer offset expected, got %s", index - 1, luaL_typename(L, index));
    }
    return value;
}

bool fits(const packet_view& view, std::int64_t offset, std::int64_t size) {
    return offset >= 0 && offset + size <= static_cast<std::int64_t>(view.length);
}

std::uint32_t read_be16(const std::uint8_t* d, std::int64_t o) {
    return (std::uint32_t{d[o]} << 8U) | d[o + 1];
}

std::uint32_t read_be32(const std::uint8_t* d, std::int64_t o) {
    return (std::uint32_t{d[o]} << 24U) | (std::uint32_t{d[o + 1]} << 16U) | (std::uint32_t{d[o + 2]} << 8U) |
           d[o + 3];
}

/// A parser's answer for a cut header: one nil, as LuaJIT's `return nil` gives (print shows the same on both).
int push_nil(lua_State* L) {
    lua_pushnil(L);
    return 1;
}

int push(lua_State* L, std::int64_t value) {
    lua_pushinteger(L, static_cast<lua_Integer>(value));
    return 1;
}

template <int size> int read(lua_State* L, const std::uint8_t* data, std::uint32_t length) {
    const std::int64_t o = offset_argument(L, 2);
    if (o < 0 || o + size > static_cast<std::int64_t>(length)) {
        lua_pushnil(L);
        return 1;
    }
    if constexpr (size == 1) {
        return push(L, data[o]);
    } else if constexpr (size == 2) {
        return push(L, read_be16(data, o));
    } else {
        return push(L, read_be32(data, o));
    }
}

template <int size> int write(lua_State* L, std::uint8_t* data, std::uint32_t length, const char* name) {
    const std::int64_t o = offset_argument(L, 2);
    const std::int64_t value = check_integer(L, 3);
    if (o < 0 || o + size > static_cast<std::int64_t>(length)) {
        return luaL_error(L, "pkt:%s(%d): beyond the packet (%d bytes)", name, static_cast<int>(o),
                          static_cast<int>(length));
    }
    auto bits = static_cast<std::uint64_t>(value);
    for (int i = size - 1; i >= 0; --i) {
        data[o + i] = static_cast<std::uint8_t>(bits & 0xffU);
        bits >>= 8U;
    }
    return 0;
}

int packet_len(lua_State* L) {
    return push(L, live(L).length);
}
int packet_u8(lua_State* L) {
    packet_view& view = live(L);
    return read<1>(L, view.data, view.length);
}
int packet_be16(lua_State* L) {
    packet_view& view = live(L);
    return read<2>(L, view.data, view.length);
}
int packet_be32(lua_State* L) {
    packet_view& view = live(L);
    return read<4>(L, view.data, view.length);
}
int packet_set_u8(lua_State* L) {
    packet_view& view = live(L);
    return write<1>(L, view.data, view.length, "set_u8");
}
int packet_set_be16(lua_State* L) {
    packet_view& view = live(L);
    return write<2>(L, view.data, view.length, "set_be16");
}
int packet_set_be32(lua_State* L) {
    packet_view& view = live(L);
    return write<4>(L, view.data, view.length, "set_be32");
}
int packet_ifindex(lua_State* L) {
    return push(L, live(L).context->ingress_ifindex);
}
int packet_rx_queue(lua_State* L) {
    return push(L, live(L).context->rx_queue_index);
}
std::uint32_t meta_length(const packet_view& view) {
    return static_cast<std::uint32_t>(view.context->data - view.context->data_meta);
}
int packet_meta_len(lua_State* L) {
    return push(L, meta_length(live(L)));
}
int packet_meta_be32(lua_State* L) {
    packet_view& view = live(L);
    return read<4>(L, view.context->data_meta, meta_length(view));
}
int packet_set_meta_be32(lua_State* L) {
    packet_view& view = live(L);
    return write<4>(L, view.context->data_meta, meta_length(view), "set_meta_be32");
}
template <int kind> int packet_adjust(lua_State* L) {
    live(L);
    return push(L, adjust(*bound_packet(L).tag.engine, kind, offset_argument(L, 2)));
}

// The parsers: nil for a header the packet cuts (or that is not what it says), else its fields and the offset after.

int packet_eth(lua_State* L) {
    const packet_view& view = live(L);
    const std::uint8_t* d = view.data;
    if (view.length < 14) {
        return push_nil(L);
    }
    std::uint32_t proto = read_be16(d, 12);
    std::int64_t o = 14;
    std::int64_t vid = -1;
    for (int depth = 0; depth < 2; ++depth) {
        if (proto != 0x8100 && proto != 0x88a8) {
            break;
        }
        if (!fits(view, o, 4)) {
            return push_nil(L);
        }
        if (vid < 0) {
            vid = read_be16(d, o) & 0x0fffU;
        }
        proto = read_be16(d, o + 2);
        o += 4;
    }
    push(L, proto);
    push(L, o);
    if (vid < 0) {
        lua_pushnil(L);
    } else {
        push(L, vid);
    }
    return 3;
}

int packet_vlan(lua_State* L) {
    const packet_view& view = live(L);
    const std::int64_t o = offset_argument(L, 2);
    if (!fits(view, o, 4)) {
        return push_nil(L);
    }
    push(L, read_be16(view.data, o) & 0x0fffU);
    push(L, read_be16(view.data, o + 2));
    return push(L, o + 4) + 2;
}

int packet_ipv4(lua_State* L) {
    const packet_view& view = live(L);
    const std::uint8_t* d = view.data;
    const std::int64_t o = offset_argument(L, 2);
    if (!fits(view, o, 20)) {
        return push_nil(L);
    }
    const std::int64_t header_length = (d[o] & 0x0fU) * 4;
    if ((d[o] >> 4U) != 4 || header_length < 20 || !fits(view, o, header_length)) {
        return push_nil(L);
    }
    push(L, d[o + 9]);
    push(L, o + header_length);
    push(L, read_be32(d, o + 12));
    push(L, read_be32(d, o + 16));
    push(L, read_be16(d, o + 2));
    return push(L, d[o + 8]) + 5;
}

int packet_ipv6(lua_State* L) {
    const packet_view& view = live(L);
    const std::uint8_t* d = view.data;
    const std::int64_t o = offset_argument(L, 2);
    if (!fits(view, o, 40) || (d[o] >> 4U) != 6) {
        return push_nil(L);
    }
    std::uint32_t header = d[o + 6];
    std::int64_t cursor = o + 40;
    for (int depth = 0; depth < 4; ++depth) {
        // hop-by-hop (0), routing (43), fragment (44), destination options (60)
        if (header != 0 && header != 43 && header != 44 && header != 60) {
            break;
        }
        if (!fits(view, cursor, 2)) {
            return push_nil(L);
        }
        const std::int64_t size = header == 44 ? 8 : (std::int64_t{d[cursor + 1]} + 1) * 8;
        header = d[cursor];
        cursor += size;
    }
    push(L, header);
    push(L, cursor);
    push(L, read_be16(d, o + 4));
    return push(L, d[o + 7]) + 3;
}

int packet_tcp(lua_State* L) {
    const packet_view& view = live(L);
    const std::uint8_t* d = view.data;
    const std::int64_t o = offset_argument(L, 2);
    if (!fits(view, o, 20)) {
        return push_nil(L);
    }
    const std::int64_t size = (d[o + 12] >> 4U) * 4;
    if (size < 20 || !fits(view, o, size)) {
        return push_nil(L);
    }
    push(L, read_be16(d, o));
    push(L, read_be16(d, o + 2));
    push(L, d[o + 13]);
    return push(L, o + size) + 3;
}

int packet_udp(lua_State* L) {
    const packet_view& view = live(L);
    const std::int64_t o = offset_argument(L, 2);
    if (!fits(view, o, 8)) {
        return push_nil(L);
    }
    push(L, read_be16(view.data, o));
    push(L, read_be16(view.data, o + 2));
    push(L, read_be16(view.data, o + 4));
    return push(L, o + 8) + 3;
}

int packet_icmp(lua_State* L) {
    const packet_view& view = live(L);
    const std::int64_t o = offset_argument(L, 2);
    if (!fits(view, o, 8)) {
        return push_nil(L);
    }
    push(L, view.data[o]);
    push(L, view.data[o + 1]);
    return push(L, o + 8) + 2;
}

int packet_tostring(lua_State* L) {
    lua_pushstring(L, "sluice packet");
    return 1;
}

constexpr luaL_Reg packet_methods[] = {
    {"len", packet_len},
    {"u8", packet_u8},
    {"be16", packet_be16},
    {"be32", packet_be32},
    {"set_u8", packet_set_u8},
    {"set_be16", packet_set_be16},
    {"set_be32", packet_set_be32},
    {"ifindex", packet_ifindex},
    {"rx_queue", packet_rx_queue},
    {"meta_len", packet_meta_len},
    {"meta_be32", packet_meta_be32},
    {"set_meta_be32", packet_set_meta_be32},
    {"adjust_head", packet_adjust<adjust_head>},
    {"adjust_tail", packet_adjust<adjust_tail>},
    {"adjust_meta", packet_adjust<adjust_meta>},
    {"eth", packet_eth},
    {"vlan", packet_vlan},
    {"ipv4", packet_ipv4},
    {"ipv6", packet_ipv6},
    {"tcp", packet_tcp},
    {"udp", packet_udp},
    {"icmp", packet_icmp},
    {nullptr, nullptr},
};

} // namespace

// The object scripts get as `pkt` is a table of the packet's methods, each a closure bound to the packet handle (a
// userdata, whose tag says it is one): `pkt:be16(12)` then finds its method in the table itself, where on a userdata
// Lua goes through the metatable's __index (about 100 instructions of each call, callgrind). Its metatable is
// protected (__metatable) and refuses new fields; a method acts on the packet whatever it is called on.
int packet_newindex(lua_State* L) {
    return luaL_error(L, "the packet has no field '%s' to set", luaL_tolstring(L, 2, nullptr));
}

void push_packet_object(lua_State* L, state_engine& engine) {
    auto* handle = static_cast<packet_handle*>(new_userdata(L, sizeof(packet_handle)));
    handle->tag = make_tag(type_packet, engine);
    const int bound = lua_gettop(L);
    lua_createtable(L, 0, static_cast<int>(std::size(packet_methods) - 1));
    for (const luaL_Reg* method = packet_methods; method->name != nullptr; ++method) {
        lua_pushvalue(L, bound);
        lua_pushcclosure(L, method->func, 1);
        lua_setfield(L, -2, method->name);
    }
    luaL_newmetatable(L, packet_type);
    remember_metatable(L, type_packet);
    lua_pushvalue(L, bound);
    lua_pushcclosure(L, packet_len, 1);
    lua_setfield(L, -2, "__len");
    lua_pushcfunction(L, packet_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, packet_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushstring(L, "sluice packet");
    lua_setfield(L, -2, "__metatable"); // getmetatable(pkt) must not hand out the metatable
    lua_setmetatable(L, -2);
    lua_replace(L, bound); // the handle stays alive as the closures' upvalue
}

#endif

} // namespace sluice::lua::SLUICE_LUA_NS
