// LuaJIT only: maps and records through the FFI, so that a script's map lookups and field accesses compile into
// plain calls and loads inside the JIT's traces instead of leaving them for the classic C API on every call.
//
// Same API and semantics as lua_maps.cpp (the tests run every case on both engines): the handle maps.open/declare
// return is a Lua object wrapping the C handle (which still creates the map and parses the layouts); records are
// FFI structs of the layout's bytes with accessors per field, views of values in a map are {pointer, generation}
// and refuse to work after the call that looked them up; the data-path calls go straight to ebpf::map's virtual
// functions through the extern "C" functions below, with the worker's cpu.
#include <cstring>

#include "lua/binding.hpp"

namespace sluice::lua::luajit {
namespace {

extern "C" void* sluice_luajit_map_lookup(void* target, const void* key, std::uint32_t cpu) {
    return static_cast<ebpf::map*>(target)->lookup(key, cpu);
}

extern "C" int sluice_luajit_map_update(void* target, const void* key, const void* value, std::uint64_t flags,
                                        std::uint32_t cpu) {
    return static_cast<int>(static_cast<ebpf::map*>(target)->update(key, value, flags, cpu));
}

extern "C" int sluice_luajit_map_delete(void* target, const void* key, std::uint32_t cpu) {
    return static_cast<int>(static_cast<ebpf::map*>(target)->remove(key, cpu));
}

extern "C" int sluice_luajit_map_next_key(void* engine, void* target, const void* key, void* next_key) {
    return static_cast<int>(static_cast<state_engine*>(engine)->settings.services->get_next_key(
        *static_cast<ebpf::map*>(target), key, next_key));
}

extern "C" int sluice_luajit_map_push(void* target, const void* value, std::uint64_t flags) {
    return static_cast<int>(static_cast<ebpf::map*>(target)->push(value, flags));
}

extern "C" int sluice_luajit_map_pop(void* target, void* value, int remove) {
    auto& map = *static_cast<ebpf::map*>(target);
    return static_cast<int>(remove != 0 ? map.pop(value) : map.peek(value));
}

extern "C" double sluice_luajit_ktime(void* engine) {
    return static_cast<double>(static_cast<state_engine*>(engine)->call_helper(slot_ktime, 0));
}

constexpr const char* maps_source = R"lua(
local env, ffi, functions, view_address, generation_address, cpu_address = ...
local bit = require("bit")
local bswap, rshift = bit.bswap, bit.rshift
local cast, istype, copy, fill_bytes, new = ffi.cast, ffi.istype, ffi.copy, ffi.fill, ffi.new
local error, type, tostring, tonumber, pairs, ipairs, setmetatable = error, type, tostring, tonumber, pairs, ipairs,
                                                                    setmetatable
local concat, format, max = table.concat, string.format, math.max

local lookup_c = cast("void* (*)(void*, const void*, uint32_t)", functions.lookup)
local update_c = cast("int (*)(void*, const void*, const void*, uint64_t, uint32_t)", functions.update)
local delete_c = cast("int (*)(void*, const void*, uint32_t)", functions.delete)
local next_key_c = cast("int (*)(void*, void*, const void*, void*)", functions.next_key)
local push_c = cast("int (*)(void*, const void*, uint64_t)", functions.push)
local pop_c = cast("int (*)(void*, void*, int)", functions.pop)
local ktime_c = cast("double (*)(void*)", functions.ktime)
local engine = functions.engine
local generation = cast("uint64_t*", generation_address)
local cpu = cast("uint32_t*", cpu_address)
local view = cast("struct sluice_view*", view_address)
local u8p, u16p, u32p, u64p = ffi.typeof("uint8_t*"), ffi.typeof("uint16_t*"), ffi.typeof("uint32_t*"),
                              ffi.typeof("uint64_t*")
local i8p, i16p, i32p, i64p = ffi.typeof("int8_t*"), ffi.typeof("int16_t*"), ffi.typeof("int32_t*"),
                              ffi.typeof("int64_t*")

-- Reads and writes of one field at base + offset, as lua_maps.cpp's push_field and store.
local function accessors(field)
    local o, t, size = field.offset, field.type, field.size
    if t == "u8" then return function(b) return b[o] end, function(b, v) b[o] = v end end
    if t == "u16" then return function(b) return cast(u16p, b + o)[0] end, function(b, v) cast(u16p, b + o)[0] = v end end
    if t == "u32" then return function(b) return cast(u32p, b + o)[0] end, function(b, v) cast(u32p, b + o)[0] = v end end
    if t == "u64" then
        return function(b) return tonumber(cast(u64p, b + o)[0]) end, function(b, v) cast(u64p, b + o)[0] = v end
    end
    if t == "i8" then return function(b) return cast(i8p, b + o)[0] end, function(b, v) cast(i8p, b + o)[0] = v end end
    if t == "i16" then return function(b) return cast(i16p, b + o)[0] end, function(b, v) cast(i16p, b + o)[0] = v end end
    if t == "i32" then return function(b) return cast(i32p, b + o)[0] end, function(b, v) cast(i32p, b + o)[0] = v end end
    if t == "i64" then
        return function(b) return tonumber(cast(i64p, b + o)[0]) end, function(b, v) cast(i64p, b + o)[0] = v end
    end
    if t == "be16" then
        return function(b) return rshift(bswap(cast(u16p, b + o)[0]), 16) end,
               function(b, v) cast(u16p, b + o)[0] = rshift(bswap(v), 16) end
    end
    if t == "be32" then
        return function(b)
                   local x = bswap(cast(u32p, b + o)[0])
                   if x < 0 then x = x + 4294967296 end
                   return x
               end,
               function(b, v) cast(u32p, b + o)[0] = bswap(v) end
    end
    return function(b) return ffi.string(b + o, size) end,
           function(b, v)
               if type(v) ~= "string" then error("bad argument: a string expected for a u8[N] field", 3) end
               if #v > size then error(format("field '%s' holds %d bytes, not %d", field.name, size, #v), 3) end
               fill_bytes(b + o, size)
               copy(b + o, v, #v)
           end
end

local function hex(b, o, size)
    local digits = {}
    for i = 0, size - 1 do digits[#digits + 1] = format("%02x", b[o + i]) end
    return concat(digits)
end

local counter = 0
-- FFI types for one layout: owned records (the bytes themselves) and views ({pointer, generation}).
local function record_types(shape)
    counter = counter + 1
    ffi.cdef(format("struct sluice_record_%d { uint8_t b[%d]; }; struct sluice_value_%d { uint8_t* p; uint64_t gen; };",
                    counter, max(shape.size, 1), counter))
    local getters, setters, fields = {}, {}, {}
    for _, field in ipairs(shape) do
        getters[field.name], setters[field.name] = accessors(field)
        fields[field.name] = field
    end
    local function describe(b)
        local parts = {}
        for _, field in ipairs(shape) do
            local value = field.type == "bytes" and hex(b, field.offset, field.size) or tostring(getters[field.name](b))
            parts[#parts + 1] = field.name .. "=" .. value
        end
        return "{" .. concat(parts, ", ") .. "}"
    end
    local function fill_into(b, name, offset)
        local field = fields[name]
        if not field then error(format("the record has no field '%s'", tostring(name)), 3) end
        if view.context == nil then error("the packet view is used outside xdp()", 3) end
        if type(offset) ~= "number" then error("bad argument #4: an integer expected", 3) end
        if offset < 0 or offset + field.size > view.length then return false end
        copy(b + field.offset, view.data + offset, field.size)
        return true
    end
    local function live(v)
        if v.gen ~= generation[0] then
            error("a map value from an earlier call: lookup() results last for one call, as in eBPF", 3)
        end
        return v.p
    end
    local function fill_owned(r, name, _, offset) return fill_into(r.b, name, offset) end
    local function fill_view(v, name, _, offset) return fill_into(live(v), name, offset) end
    local own = ffi.metatype(format("struct sluice_record_%d", counter), {
        __index = function(r, k)
            local get = getters[k]
            if get then return get(r.b) end
            if k == "fill" then return fill_owned end
            error(format("the record has no field '%s'", tostring(k)), 2)
        end,
        __newindex = function(r, k, v)
            local set = setters[k]
            if not set then error(format("the record has no field '%s'", tostring(k)), 2) end
            set(r.b, v)
        end,
        __tostring = function(r) return describe(r.b) end,
    })
    local value_view = ffi.metatype(format("struct sluice_value_%d", counter), {
        __index = function(v, k)
            local b = live(v)
            local get = getters[k]
            if get then return get(b) end
            if k == "fill" then return fill_view end
            error(format("the record has no field '%s'", tostring(k)), 2)
        end,
        __newindex = function(v, k, value)
            local b = live(v)
            local set = setters[k]
            if not set then error(format("the record has no field '%s'", tostring(k)), 2) end
            set(b, value)
        end,
        __tostring = function(v) return describe(live(v)) end,
    })
    local only = #shape == 1 and shape[1].type ~= "bytes" and shape[1] or nil
    return {own = own, view = value_view, size = shape.size, getters = getters, first = getters[shape[1].name],
            scalar = only and setters[only.name], scratch = own(), describe = describe}
end

-- Records of any layout, by FFI type, for arguments from another map with the same size (lua_maps.cpp accepts them).
local all_types = {}

local function bytes_of(types, argument, what)
    if type(argument) == "number" then
        if not types.scalar then
            error(format("bad %s: a number stands only for a layout of one integer field; make a record", what), 3)
        end
        if argument % 1 ~= 0 then error(format("bad %s: an integer expected", what), 3) end
        local scratch = types.scratch
        fill_bytes(scratch.b, types.size)
        types.scalar(scratch.b, argument)
        return scratch.b
    end
    if istype(types.own, argument) then return argument.b end
    if istype(types.view, argument) then
        if argument.gen ~= generation[0] then
            error("a map value from an earlier call: lookup() results last for one call, as in eBPF", 3)
        end
        return argument.p
    end
    for _, other in ipairs(all_types) do
        if other.size == types.size then
            if istype(other.own, argument) then return argument.b end
            if istype(other.view, argument) then return argument.p end
        end
    end
    error(format("bad %s: a record of the map's layout (%d bytes) expected, got %s", what, types.size,
                 type(argument)), 3)
end

local map_methods = {}
local map_meta = {__index = map_methods, __metatable = "sluice map",
                  __tostring = function(m) return tostring(m.handle) end}

function map_methods.lookup(m, key)
    local p = lookup_c(m.map, bytes_of(m.key_types, key, "key"), cpu[0])
    if p == nil then return nil end
    local v = m.value_types.view()
    v.p = p
    v.gen = generation[0]
    return v
end

function map_methods.get(m, key, name)
    local get = m.value_types.first
    if name ~= nil then
        get = m.value_types.getters[name]
        if not get then error(format("the value has no field '%s'", tostring(name)), 2) end
    end
    local p = lookup_c(m.map, bytes_of(m.key_types, key, "key"), cpu[0])
    if p == nil then return nil end
    return get(cast(u8p, p))
end

function map_methods.update(m, key, value, flags)
    local k = bytes_of(m.key_types, key, "key")
    return update_c(m.map, k, bytes_of(m.value_types, value, "value"), flags or 0, cpu[0])
end

function map_methods.delete(m, key)
    return delete_c(m.map, bytes_of(m.key_types, key, "key"), cpu[0])
end

function map_methods.push(m, value, flags)
    return push_c(m.map, bytes_of(m.value_types, value, "value"), flags or 0)
end

local function take(m, remove)
    local out = m.value_types.own()
    local result = pop_c(m.map, out.b, remove)
    if result ~= 0 then return nil, result end
    return out
end
function map_methods.pop(m) return take(m, 1) end
function map_methods.peek(m) return take(m, 0) end

function map_methods.next_key(m, key)
    local out = m.key_types.own()
    local result = next_key_c(engine, m.map, key ~= nil and bytes_of(m.key_types, key, "key") or nil, out.b)
    if result ~= 0 then return nil, result end
    return out
end

function map_methods.pairs(m)
    return function(_, previous)
        local key = map_methods.next_key(m, previous)
        if key == nil then return nil end
        return key, map_methods.lookup(m, key)
    end, m, nil
end

local function make(types, initial)
    local r = types.own()
    if initial ~= nil then
        if type(initial) ~= "table" then error("bad argument #2: a table of fields expected", 3) end
        for name, value in pairs(initial) do r[name] = value end
    end
    return r
end
function map_methods.key(m, initial) return make(m.key_types, initial) end
function map_methods.value(m, initial) return make(m.value_types, initial) end

local function wrap(handle)
    local map, key_shape, value_shape = handle:_describe()
    local m = {handle = handle, map = map, key_types = record_types(key_shape),
               value_types = record_types(value_shape)}
    all_types[#all_types + 1] = m.key_types
    all_types[#all_types + 1] = m.value_types
    return setmetatable(m, map_meta)
end

local maps = env.maps
local open_c, declare_c = maps.open, maps.declare
function maps.open(...) return wrap(open_c(...)) end
function maps.declare(...) return wrap(declare_c(...)) end
local redirect_map_c = env.redirect_map
function env.redirect_map(m, key, flags)
    if getmetatable(m) == "sluice map" and type(m) == "table" then m = m.handle end
    return redirect_map_c(m, key, flags)
end
function env.ktime_ns() return ktime_c(engine) end
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
    lua_newtable(L);
    const std::array<std::pair<const char*, void*>, 8> functions{{
        {"lookup", reinterpret_cast<void*>(&sluice_luajit_map_lookup)},
        {"update", reinterpret_cast<void*>(&sluice_luajit_map_update)},
        {"delete", reinterpret_cast<void*>(&sluice_luajit_map_delete)},
        {"next_key", reinterpret_cast<void*>(&sluice_luajit_map_next_key)},
        {"push", reinterpret_cast<void*>(&sluice_luajit_map_push)},
        {"pop", reinterpret_cast<void*>(&sluice_luajit_map_pop)},
        {"ktime", reinterpret_cast<void*>(&sluice_luajit_ktime)},
        {"engine", &engine},
    }};
    for (const auto& [name, address] : functions) {
        lua_pushlightuserdata(L, address);
        lua_setfield(L, -2, name);
    }
    lua_pushlightuserdata(L, &engine.view);
    lua_pushlightuserdata(L, &engine.generation);
    lua_pushlightuserdata(L, &engine.settings.state->cpu);
    lua_call(L, 6, 0);
}

} // namespace sluice::lua::luajit
