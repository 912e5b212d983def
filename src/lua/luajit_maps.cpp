// LuaJIT only: maps, records and helpers through the FFI, so that a script's map operations, field accesses and
// helper calls compile into LuaJIT's traces as plain calls, loads and stores instead of leaving the trace for the
// classic C API on every call (a lua_CFunction call cannot be compiled: it exits or stitches the trace).
//
// Same API, semantics and messages as lua_maps.cpp and lua_helpers.cpp (the tests run every case on both engines):
// - A map handle is a Lua table whose methods are closures made for that map, so the map pointer and its layouts are
//   constants in a trace. maps.open/declare are still lua_maps.cpp's (creating the map, parsing the layouts);
//   describe_map() hands the result to the setup code below.
// - Records a script makes (m:key(), m:value(), pop, next_key) are cdata of a packed struct made from the layout;
//   views of values in a map (m:lookup) are cdata {pointer, generation}. Both have a metatype per layout whose
//   accessors are generated Lua (integer fields as numbers, be16/be32 in host order, u8[N] as strings). A view
//   checks its generation against the engine's on every access (one compare): a view from an earlier call into Lua
//   is an error, never a read of an entry that may have been deleted or evicted since.
// - The C functions below are what the traces call. The rules that keep compiled traces sound (the previous FFI
//   layer, without them, crashed in traces on the DDoS filter): they never touch the lua_State (no lua_* call, no
//   Lua error, no state_engine::of), no C++ exception leaves them, every one takes cdata pointers only (never a
//   light userdata: in a trace LuaJIT passes those as tagged values, not as the pointer) and the setup casts each to
//   exactly its C signature below. Pointers into a map never outlive the call into Lua (generation), and nothing the
//   C side holds refers to a GC object.
#include <cerrno>
#include <cstring>
#include <exception>

#include "lua/binding.hpp"

namespace sluice::lua::luajit {
namespace {

state_engine& engine_of(void* engine) {
    return *static_cast<state_engine*>(engine);
}

ebpf::map& map_of(void* target) {
    return *static_cast<ebpf::map*>(target);
}

unsigned cpu_of(void* engine) {
    return engine_of(engine).settings.state->cpu;
}

} // namespace

// ---- what the traces call (C signatures: the casts in maps_source must match them exactly) ----

extern "C" void* sluice_luajit_map_lookup(void* engine, void* target, const void* key) noexcept {
    try {
        return map_of(target).lookup(key, cpu_of(engine));
    } catch (...) {
        return nullptr;
    }
}

extern "C" int sluice_luajit_map_update(void* engine, void* target, const void* key, const void* value,
                                        std::int64_t flags) noexcept {
    try {
        return static_cast<int>(map_of(target).update(key, value, static_cast<std::uint64_t>(flags), cpu_of(engine)));
    } catch (...) {
        return -ENOMEM; // a map that allocates (BPF_F_NO_PREALLOC) and found no memory
    }
}

extern "C" int sluice_luajit_map_delete(void* engine, void* target, const void* key) noexcept {
    try {
        return static_cast<int>(map_of(target).remove(key, cpu_of(engine)));
    } catch (...) {
        return -ENOMEM;
    }
}

extern "C" int sluice_luajit_map_push(void* target, const void* value, std::int64_t flags) noexcept {
    try {
        return static_cast<int>(map_of(target).push(value, static_cast<std::uint64_t>(flags)));
    } catch (...) {
        return -ENOMEM;
    }
}

extern "C" int sluice_luajit_map_pop(void* target, void* value, int remove) noexcept {
    try {
        return static_cast<int>(remove != 0 ? map_of(target).pop(value) : map_of(target).peek(value));
    } catch (...) {
        return -ENOMEM;
    }
}

extern "C" int sluice_luajit_map_next_key(void* engine, void* target, const void* key, void* next_key) noexcept {
    try {
        return static_cast<int>(engine_of(engine).settings.services->get_next_key(map_of(target), key, next_key));
    } catch (...) {
        return -ENOMEM;
    }
}

// Helpers return doubles: what LuaJIT's numbers are, so the trace needs no conversion of a 64-bit cdata (ktime is
// exact below 2^53 ns, 104 days of uptime; the others are 32-bit).
extern "C" double sluice_luajit_ktime(void* engine) noexcept {
    return static_cast<double>(engine_of(engine).call_helper(slot_ktime, 0));
}

extern "C" double sluice_luajit_prandom(void* engine) noexcept {
    return static_cast<double>(engine_of(engine).call_helper(slot_prandom, 0));
}

extern "C" double sluice_luajit_redirect(void* engine, std::int64_t ifindex, std::int64_t flags) noexcept {
    return static_cast<double>(engine_of(engine).call_helper(slot_redirect, static_cast<std::uint64_t>(ifindex),
                                                             static_cast<std::uint64_t>(flags)));
}

extern "C" double sluice_luajit_redirect_map(void* engine, void* target, std::int64_t key,
                                             std::int64_t flags) noexcept {
    return static_cast<double>(engine_of(engine).call_helper(slot_redirect_map, reinterpret_cast<std::uint64_t>(target),
                                                             static_cast<std::uint64_t>(key),
                                                             static_cast<std::uint64_t>(flags)));
}

namespace {

// The trusted setup: replaces the environment's maps.open/declare and the helpers by FFI versions. Messages are
// lua_maps.cpp's and lua_helpers.cpp's, word for word; error levels point at the script's line.
constexpr const char* maps_source = R"lua(
local env, ffi, describe, address = ...
local bit = require("bit")
local bswap, rshift, tobit = bit.bswap, bit.rshift, bit.tobit
local cast, istype, copy, zero, typeof, string_of = ffi.cast, ffi.istype, ffi.copy, ffi.fill, ffi.typeof, ffi.string
local error, type, tostring, tonumber, pairs, ipairs, setmetatable, select, loadstring =
      error, type, tostring, tonumber, pairs, ipairs, setmetatable, select, loadstring
local concat, format = table.concat, string.format

local engine = cast("void*", address.engine)
local generation = cast("uint64_t*", address.generation)
local cpu = cast("uint32_t*", address.cpu)
local view = cast("struct sluice_view*", address.view)
local lookup_c = cast("void* (*)(void*, void*, const void*)", address.lookup)
local update_c = cast("int (*)(void*, void*, const void*, const void*, int64_t)", address.update)
local delete_c = cast("int (*)(void*, void*, const void*)", address.delete)
local push_c = cast("int (*)(void*, const void*, int64_t)", address.push)
local pop_c = cast("int (*)(void*, void*, int)", address.pop)
local next_key_c = cast("int (*)(void*, void*, const void*, void*)", address.next_key)
local ktime_c = cast("double (*)(void*)", address.ktime)
local prandom_c = cast("double (*)(void*)", address.prandom)
local redirect_c = cast("double (*)(void*, int64_t, int64_t)", address.redirect)
local redirect_map_c = cast("double (*)(void*, void*, int64_t, int64_t)", address.redirect_map)
local u8p, int64 = typeof("uint8_t*"), typeof("int64_t")

-- What to_integer() accepts on LuaJIT: a number without a fraction, exact (|n| <= 2^53).
local function integral(v)
    return type(v) == "number" and v % 1 == 0 and v >= -9007199254740992 and v <= 9007199254740992
end
local function bad_integer(n, v, level)
    error(format("bad argument #%d: an integer expected, got %s", n, type(v)), level + 1)
end
local function stale(level)
    error("a map value from an earlier call: lookup() results last for one call, as in eBPF", level + 1)
end
local function no_field(k, level)
    error(format("the record has no field '%s'", tostring(k)), level + 1)
end

-- Accessors of one layout, generated so that each field's offset and type are constants of its own functions:
-- read[name](p) -> the field of the struct (or pointer to it) p, write[name](p, v), add[name](p, delta) (integer
-- fields: wraps at the field's width, as C's += does), fill[name](p, from) copies the field's size of bytes.
local function generate(shape)
    local lines = {"local bswap, rshift, tobit, tonumber, string_of, copy, zero, int64, u8p, cast, error, type, " ..
                   "format = ...",
                   "local read, write, add, fill = {}, {}, {}, {}"}
    for i, field in ipairs(shape) do
        local name, c, size = format("%q", field.name), "p._sluice_" .. i, field.size
        local t = field.type
        local get, set, plus
        if t == "u64" or t == "i64" then
            get = format("tonumber(%s)", c)
            set = format("%s = int64(v)", c)
            plus = format("%s = %s + int64(d)", c, c)
        elseif t == "be16" then
            get = format("rshift(bswap(%s), 16)", c)
            set = format("%s = rshift(bswap(v), 16)", c)
            plus = format("%s = rshift(bswap(rshift(bswap(%s), 16) + d), 16)", c, c)
        elseif t == "be32" then
            get = format("bswap(%s) %% 4294967296", c)
            set = format("%s = bswap(v)", c)
            plus = format("%s = bswap(bswap(%s) + d)", c, c)
        elseif t == "bytes" then
            get = format("string_of(%s, %d)", c, size)
            set = format([[if type(v) ~= "string" then error(format("bad argument #3: a string expected, got %%s", ]] ..
                         [[type(v)), 3) end if #v > %d then error(format("field '%%s' holds %%d bytes, not %%d", ]] ..
                         [[%s, %d, #v), 3) end zero(%s, %d) copy(%s, v, #v)]], size, name, size, c, size, c)
        else -- through tobit: a C conversion of a number beyond int32 would not wrap (x86-64 gives INT_MIN)
            get = c
            set = format("%s = tobit(v)", c)
            plus = format("%s = tobit(%s + d)", c, c)
        end
        lines[#lines + 1] = format("read[%s] = function(p) return %s end", name, get)
        lines[#lines + 1] = format("write[%s] = function(p, v) %s end", name, set)
        if plus then lines[#lines + 1] = format("add[%s] = function(p, d) %s end", name, plus) end
        lines[#lines + 1] = format("fill[%s] = function(p, from) copy(cast(u8p, p) + %d, from, %d) end", name,
                                   field.offset, size)
    end
    lines[#lines + 1] = "return read, write, add, fill"
    return loadstring(concat(lines, "\n"), "=sluice record")(bswap, rshift, tobit, tonumber, string_of, copy, zero,
                                                               int64, u8p, cast, error, type, format)
end

local c_types = {u8 = "uint8_t", u16 = "uint16_t", u32 = "uint32_t", u64 = "uint64_t", i8 = "int8_t",
                 i16 = "int16_t", i32 = "int32_t", i64 = "int64_t", be16 = "uint16_t", be32 = "int32_t"}
local counter = 0
local all_types = {} -- every layout's types: records of another layout of the same size are accepted, as in 5.4

local function hex(p, size)
    local digits = {}
    for i = 0, size - 1 do digits[#digits + 1] = format("%02x", p[i]) end
    return concat(digits)
end

local by_layout = {} -- the types made for a layout, by its text: LuaJIT never frees a ctype, so one set per layout

-- The FFI types of one layout: `own` (a record holding its bytes), `view` ({pointer, generation}), `pointer`.
local function record_types(shape)
    if shape.size == 0 then shape = {size = 0} end -- queues and stacks have no key
    local text = {}
    for i, field in ipairs(shape) do text[i] = format("%s %s %d", field.type, field.name, field.size) end
    text = concat(text, ",")
    if by_layout[text] then return by_layout[text] end
    counter = counter + 1
    local field_of, integer = {}, {}
    for _, field in ipairs(shape) do
        field_of[field.name] = field
        integer[field.name] = field.type ~= "bytes"
    end
    local members = {}
    for i, field in ipairs(shape) do
        members[i] = field.type == "bytes" and format("uint8_t _sluice_%d[%d];", i, field.size)
                     or format("%s _sluice_%d;", c_types[field.type], i)
    end
    if #members == 0 then members = {"uint8_t _sluice_none;"} end
    ffi.cdef(format("struct __attribute__((packed)) sluice_record_%d { %s };", counter, concat(members, " ")))
    ffi.cdef(format("struct sluice_value_%d { struct sluice_record_%d* _sluice_p; uint64_t _sluice_gen; };",
                    counter, counter))
    local read, write, add, fill = generate(shape)
    local types = {size = shape.size, read = read, write = write, add = add,
                   pointer = typeof(format("struct sluice_record_%d*", counter))}
    local function describe_record(p)
        local parts = {}
        for _, field in ipairs(shape) do
            local text = field.type == "bytes" and hex(cast(u8p, p) + field.offset, field.size)
                         or tostring(read[field.name](p))
            parts[#parts + 1] = field.name .. "=" .. text
        end
        return "{" .. concat(parts, ", ") .. "}"
    end
    -- rec:fill(field, pkt, offset): the field's size of packet bytes at offset, false beyond the packet.
    local function fill_from_packet(p, name, offset)
        local into = fill[name]
        if not into then no_field(name, 3) end
        if view.context == nil then error("the packet view is used outside xdp()", 3) end
        if not integral(offset) then bad_integer(4, offset, 3) end
        local size = field_of[name].size
        if offset < 0 or offset + size > view.length then return false end
        into(p, view.data + offset)
        return true
    end
    -- Not tail calls: the frame they keep is the level error() names (the script's line).
    local function fill_own(r, name, _, offset)
        local done = fill_from_packet(r, name, offset)
        return done
    end
    local function fill_view(v, name, _, offset)
        if v._sluice_gen ~= generation[0] then stale(2) end
        local done = fill_from_packet(v._sluice_p, name, offset)
        return done
    end
    types.own = ffi.metatype(format("struct sluice_record_%d", counter), {
        __index = function(r, k)
            local get = read[k]
            if get then return get(r) end
            if k == "fill" then return fill_own end
            no_field(k, 2)
        end,
        __newindex = function(r, k, v)
            local set = write[k]
            if not set then no_field(k, 2) end
            if integer[k] and not integral(v) then bad_integer(3, v, 2) end
            set(r, v)
        end,
        __tostring = describe_record,
    })
    types.view = ffi.metatype(format("struct sluice_value_%d", counter), {
        __index = function(v, k)
            if v._sluice_gen ~= generation[0] then stale(2) end
            local get = read[k]
            if get then return get(v._sluice_p) end
            if k == "fill" then return fill_view end
            no_field(k, 2)
        end,
        __newindex = function(v, k, value)
            if v._sluice_gen ~= generation[0] then stale(2) end
            local set = write[k]
            if not set then no_field(k, 2) end
            if integer[k] and not integral(value) then bad_integer(3, value, 2) end
            set(v._sluice_p, value)
        end,
        __tostring = function(v)
            if v._sluice_gen ~= generation[0] then stale(2) end
            return describe_record(v._sluice_p)
        end,
    })
    -- A key or value of one integer field may be a number: encoded into a scratch record the map reads at once.
    local only = #shape == 1 and shape[1].type ~= "bytes" and shape[1] or nil
    if only then
        local scratch, set = types.own(), write[only.name]
        types.scalar = function(n) set(scratch, n) return scratch end
    end
    all_types[#all_types + 1] = types
    by_layout[text] = types
    return types
end

-- The bytes of a key or value argument (argument number n): a record or view of the layout's size, or a number
-- for a one-integer layout.
local function bytes_of(types, argument, what, n)
    if istype(types.own, argument) then return argument end
    if istype(types.view, argument) then
        if argument._sluice_gen ~= generation[0] then stale(3) end
        return argument._sluice_p
    end
    if type(argument) == "number" and integral(argument) then
        if not types.scalar then
            error(format("bad %s: a number stands only for a layout of one integer field; make a record", what), 3)
        end
        return types.scalar(argument)
    end
    for _, other in ipairs(all_types) do
        local own, is_view = istype(other.own, argument), istype(other.view, argument)
        if own or is_view then
            if other.size ~= types.size then
                error(format("bad %s: a record of %d bytes where the map has %d", what, other.size, types.size), 3)
            end
            if own then return argument end
            if argument._sluice_gen ~= generation[0] then stale(3) end
            return argument._sluice_p
        end
    end
    error(format("bad argument #%d: a record (map key or value) expected, got %s", n, type(argument)), 3)
end

local function flags_of(flags, n)
    if flags == nil then return 0 end
    if not integral(flags) then bad_integer(n, flags, 3) end
    return flags
end

local map_of = setmetatable({}, {__mode = "k"}) -- handle -> the map (a cdata pointer), for redirect_map

-- Arrays: a number key's value is at base + cpu * cpu_stride + index * stride, found without a call, as the eBPF JIT
-- inlines array lookups (for keys laid out as a little-endian u32 or i32, whose bytes are the index). A function of
-- the key -> the value's address or nil; nil for other maps.
local function array_slot(array, map, key_shape, key_types, value_pointer)
    local key_type = key_shape[1] and key_shape[1].type
    if not array or (key_type ~= "u32" and key_type ~= "i32") then return nil end
    local base, stride, cpu_stride = cast(u8p, array.base), array.stride, array.cpu_stride
    local entries, cpus = array.entries, array.cpus
    return function(key)
        local index, worker = key % 4294967296, cpu[0]
        if index >= entries then return nil end
        if cpu_stride ~= 0 and worker >= cpus then return lookup_c(engine, map, key_types.scalar(key)) end
        return cast(value_pointer, base + (worker * cpu_stride + index * stride))
    end
end

local function wrap(handle)
    local map_address, key_shape, value_shape, array = describe(handle)
    local map = cast("void*", map_address)
    local key_types, value_types = record_types(key_shape), record_types(value_shape)
    local value_pointer, read, adders = value_types.pointer, value_types.read, value_types.add
    local slot = array_slot(array, map, key_shape, key_types, value_pointer)
    local first = read[value_shape[1].name]
    local m = {}

    function m.lookup(_, key)
        local p
        if slot and type(key) == "number" and integral(key) then
            p = slot(key)
        else
            p = lookup_c(engine, map, bytes_of(key_types, key, "key", 2))
        end
        if p == nil then return nil end
        return value_types.view(p, generation[0])
    end
    function m.get(_, key, name)
        local get = first
        if name ~= nil then
            get = read[name]
            if not get then error(format("the value has no field '%s'", tostring(name)), 2) end
        end
        local p
        if slot and type(key) == "number" and integral(key) then
            p = slot(key)
        else
            p = lookup_c(engine, map, bytes_of(key_types, key, "key", 2))
        end
        if p == nil then return nil end
        return get(cast(value_pointer, p))
    end
    local function add_to(p, name, delta, n, level)
        local plus = adders[name]
        if not plus then error(format("the value has no integer field '%s'", tostring(name)), level + 1) end
        if not integral(delta) then bad_integer(n, delta, level + 1) end
        plus(p, delta)
    end
    -- m:add(key, field, delta [, field, delta ...]): the first two pairs are parameters (the common case compiles
    -- best), the rest a vararg.
    local function add_rest(p, ...)
        for i = 1, select("#", ...), 2 do
            local name, delta = select(i, ...)
            add_to(p, name, delta, 7 + i, 3)
        end
    end
    function m.add(_, key, name, delta, name2, delta2, ...)
        local extra = select("#", ...)
        if delta == nil or (name2 ~= nil and delta2 == nil) or extra % 2 ~= 0 then
            error("m:add(key, field, delta [, field, delta ...]): pairs of a field and a delta expected", 2)
        end
        local p
        if slot and type(key) == "number" and integral(key) then
            p = slot(key)
        else
            p = lookup_c(engine, map, bytes_of(key_types, key, "key", 2))
        end
        if p == nil then return false end
        p = cast(value_pointer, p)
        add_to(p, name, delta, 4, 2)
        if name2 ~= nil then
            add_to(p, name2, delta2, 6, 2)
            if extra > 0 then add_rest(p, ...) end
        end
        return true
    end
    function m.update(_, key, value, flags)
        local k = bytes_of(key_types, key, "key", 2)
        return update_c(engine, map, k, bytes_of(value_types, value, "value", 3), flags_of(flags, 4))
    end
    function m.delete(_, key)
        return delete_c(engine, map, bytes_of(key_types, key, "key", 2))
    end
    function m.push(_, value, flags)
        return push_c(map, bytes_of(value_types, value, "value", 2), flags_of(flags, 3))
    end
    local function take(remove)
        local out = value_types.own()
        local result = pop_c(map, out, remove)
        if result ~= 0 then return nil, result end
        return out
    end
    function m.pop() return take(1) end
    function m.peek() return take(0) end
    function m.next_key(_, key)
        local previous = nil
        if key ~= nil then previous = bytes_of(key_types, key, "key", 2) end
        local out = key_types.own()
        local result = next_key_c(engine, map, previous, out)
        if result ~= 0 then return nil, result end
        return out
    end
    local function iterate(_, previous)
        local key = m.next_key(nil, previous)
        if key == nil then return nil end
        local p = lookup_c(engine, map, key)
        if p == nil then return key, nil end -- deleted since get_next_key found it
        return key, value_types.view(p, generation[0])
    end
    function m.pairs() return iterate, m, nil end
    local function make(types, initial)
        local r = types.own()
        if initial ~= nil then
            if type(initial) ~= "table" then
                error(format("bad argument #2: a table expected, got %s", type(initial)), 3)
            end
            for name, value in pairs(initial) do r[name] = value end
        end
        return r
    end
    function m.key(_, initial) return make(key_types, initial) end
    function m.value(_, initial) return make(value_types, initial) end

    local text = tostring(handle)
    local object = setmetatable({}, {__index = m, __metatable = "sluice map",
                                     __tostring = function() return text end})
    map_of[object] = map
    return object
end

local maps = env.maps
local open_c, declare_c = maps.open, maps.declare
function maps.open(...) return wrap(open_c(...)) end
function maps.declare(...) return wrap(declare_c(...)) end

function env.ktime_ns() return ktime_c(engine) end
function env.prandom_u32() return prandom_c(engine) end
function env.processor_id() return cpu[0] end
function env.redirect(ifindex, flags)
    if not integral(ifindex) then bad_integer(1, ifindex, 2) end
    return redirect_c(engine, ifindex, flags_of(flags, 2))
end
function env.redirect_map(m, key, flags)
    local map = map_of[m]
    if map == nil then error(format("bad argument #1: a map expected, got %s", type(m)), 2) end
    if not integral(key) then bad_integer(2, key, 2) end
    return redirect_map_c(engine, map, key, flags_of(flags, 3))
end
)lua";

} // namespace

void use_ffi_maps(lua_State* L, state_engine& engine, int environment_ref) {
    if (luaL_loadbufferx(L, maps_source, std::strlen(maps_source), "=sluice maps", "t") != 0) {
        lua_error(L); // sluice's own code: cannot fail unless broken, and then loudly
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, environment_ref);
    lua_getglobal(L, "require");
    lua_pushstring(L, "ffi");
    lua_call(L, 1, 1);
    lua_pushcfunction(L, describe_map);
    lua_newtable(L);
    const std::array<std::pair<const char*, void*>, 14> addresses{{
        {"engine", &engine},
        {"generation", &engine.generation},
        {"cpu", &engine.settings.state->cpu},
        {"view", &engine.view},
        {"lookup", reinterpret_cast<void*>(&sluice_luajit_map_lookup)},
        {"update", reinterpret_cast<void*>(&sluice_luajit_map_update)},
        {"delete", reinterpret_cast<void*>(&sluice_luajit_map_delete)},
        {"push", reinterpret_cast<void*>(&sluice_luajit_map_push)},
        {"pop", reinterpret_cast<void*>(&sluice_luajit_map_pop)},
        {"next_key", reinterpret_cast<void*>(&sluice_luajit_map_next_key)},
        {"ktime", reinterpret_cast<void*>(&sluice_luajit_ktime)},
        {"prandom", reinterpret_cast<void*>(&sluice_luajit_prandom)},
        {"redirect", reinterpret_cast<void*>(&sluice_luajit_redirect)},
        {"redirect_map", reinterpret_cast<void*>(&sluice_luajit_redirect_map)},
    }};
    for (const auto& [name, pointer] : addresses) {
        lua_pushlightuserdata(L, pointer);
        lua_setfield(L, -2, name);
    }
    lua_call(L, 4, 0);
}

} // namespace sluice::lua::luajit
