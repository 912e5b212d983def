// Maps for scripts: `maps.open` / `maps.declare`, map handles, and records (keys, values and views of values in a
// map) laid out by field lists (contract in include/sluice/lua/script_program.hpp).
//
// The data-path calls are the ones eBPF helpers make (ebpf::map::lookup/update/remove with the worker's cpu), so a
// script and an eBPF program sharing a map see the same semantics, flags and errnos. A view from lookup() points into
// the map's value slot like the pointer bpf_map_lookup_elem returns, and like that pointer it is only good during the
// program's run: it expires when the call into Lua ends.
#include <fmt/format.h>

#include <bit>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <iterator>
#include <new>

#include "lua/binding.hpp"

namespace sluice::lua::SLUICE_LUA_NS {
namespace {

constexpr const char* map_type_name = "sluice.map";
constexpr const char* record_type_name = "sluice.record";
constexpr std::size_t max_fields = 16;
constexpr std::size_t max_field_name = 31;

enum class field_type : std::uint8_t { u8, u16, u32, u64, i8, i16, i32, i64, be16, be32, bytes };

struct field {
    std::array<char, max_field_name + 1> name{};
    std::size_t name_length{};
    /// The name as the Lua state's string (push_handle anchors it): Lua interns short strings (5.4: up to 40 bytes;
    /// LuaJIT: all), so a script's "count" is this very pointer and a lookup by name is a pointer compare.
    const char* interned{};
    std::uint32_t offset{};
    std::uint32_t size{};
    field_type type{};
};

struct layout {
    std::size_t count{};
    std::uint32_t size{};
    std::array<field, max_fields> fields{};

    const field* find(std::string_view name) const {
        for (std::size_t i = 0; i < count; ++i) {
            if (fields[i].interned == name.data()) {
                return &fields[i];
            }
        }
        for (std::size_t i = 0; i < count; ++i) { // a name not interned (or not anchored): compare the bytes
            if (name == std::string_view(fields[i].name.data(), fields[i].name_length)) {
                return &fields[i];
            }
        }
        return nullptr;
    }
    /// The field a bare number stands for: the only field, when it is an integer.
    const field* scalar() const { return count == 1 && fields[0].type != field_type::bytes ? &fields[0] : nullptr; }
};

struct map_handle {
    userdata_tag tag;
    ebpf::map* target{};
    layout key;
    layout value;
};

struct record {
    userdata_tag tag;
    const layout* shape{};
    std::uint8_t* data{};
    std::uint64_t generation{}; ///< 0: the record owns its bytes (keys, values made by the script); else a view
};

struct type_name {
    std::string_view name;
    ebpf::map_type type;
};
constexpr std::array map_types{
    type_name{"hash", ebpf::map_type::hash},
    type_name{"array", ebpf::map_type::array},
    type_name{"percpu_hash", ebpf::map_type::percpu_hash},
    type_name{"percpu_array", ebpf::map_type::percpu_array},
    type_name{"lru_hash", ebpf::map_type::lru_hash},
    type_name{"lru_percpu_hash", ebpf::map_type::lru_percpu_hash},
    type_name{"lpm_trie", ebpf::map_type::lpm_trie},
    type_name{"queue", ebpf::map_type::queue},
    type_name{"stack", ebpf::map_type::stack},
};

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())) != 0) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) {
        text.remove_suffix(1);
    }
    return text;
}

/// Parses "u32 prefixlen, u8[4] address"; empty on success, else why.
std::string parse_layout(std::string_view text, layout& out) {
    out = {};
    while (!text.empty()) {
        const std::size_t comma = text.find(',');
        const std::string_view item = trim(text.substr(0, comma));
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        const std::size_t space = item.find_first_of(" \t");
        if (space == std::string_view::npos) {
            return fmt::format("field '{}': expected 'TYPE NAME' (e.g. 'u32 address')", item);
        }
        std::string_view type = item.substr(0, space);
        const std::string_view name = trim(item.substr(space + 1));
        if (name.empty() || name.size() > max_field_name) {
            return fmt::format("field '{}': a name of 1 to {} characters expected", item, max_field_name);
        }
        if (name.starts_with("_sluice")) { // LuaJIT's records name their C members so (luajit_maps.cpp)
            return fmt::format("field '{}': names beginning with _sluice are reserved", item);
        }
        if (out.count == max_fields) {
            return fmt::format("more than {} fields", max_fields);
        }
        field& entry = out.fields[out.count];
        std::memcpy(entry.name.data(), name.data(), name.size());
        entry.name_length = name.size();
        constexpr std::array<std::pair<std::string_view, field_type>, 10> scalars{{{"u8", field_type::u8},
                                                                                   {"u16", field_type::u16},
                                                                                   {"u32", field_type::u32},
                                                                                   {"u64", field_type::u64},
                                                                                   {"i8", field_type::i8},
                                                                                   {"i16", field_type::i16},
                                                                                   {"i32", field_type::i32},
                                                                                   {"i64", field_type::i64},
                                                                                   {"be16", field_type::be16},
                                                                                   {"be32", field_type::be32}}};
        constexpr std::array<std::uint32_t, 10> sizes{1, 2, 4, 8, 1, 2, 4, 8, 2, 4};
        bool known = false;
        for (std::size_t i = 0; i < scalars.size(); ++i) {
            if (type == scalars[i].first) {
                entry.type = scalars[i].second;
                entry.size = sizes[i];
                known = true;
            }
        }
        if (!known && type.starts_with("u8[") && type.ends_with("]")) {
            type = type.substr(3, type.size() - 4);
            std::uint32_t count = 0;
            const auto parsed = std::from_chars(type.data(), type.data() + type.size(), count);
            if (parsed.ec != std::errc{} || parsed.ptr != type.data() + type.size() || count == 0 || count > 4096) {
                return fmt::format("field '{}': u8[N] needs N from 1 to 4096", item);
            }
            entry.type = field_type::bytes;
            entry.size = count;
            known = true;
        }
        if (!known) {
            return fmt::format("field '{}': unknown type '{}' (u8 u16 u32 u64 i8 i16 i32 i64 be16 be32 u8[N])", item,
                               type);
        }
        entry.offset = out.size; // packed, as the fields are listed: say so in C with __attribute__((packed))
        out.size += entry.size;
        ++out.count;
    }
    if (out.count == 0) {
        return "no fields";
    }
    return {};
}

/// A layout for `size` bytes when the script names none: one integer `value` of 1, 2, 4 or 8 bytes, else bytes.
layout default_layout(std::uint32_t size) {
    layout out;
    out.count = 1;
    out.size = size;
    field& entry = out.fields[0];
    std::memcpy(entry.name.data(), "value", 5);
    entry.name_length = 5;
    entry.size = size;
    entry.type = size == 1   ? field_type::u8
                 : size == 2 ? field_type::u16
                 : size == 4 ? field_type::u32
                 : size == 8 ? field_type::u64
                             : field_type::bytes;
    return out;
}

// Fields are read and written as whole loads and stores of their width (the byte loops they replace were most of
// m:add's cost): little-endian integers as the host (x86-64, arm64) and the eBPF side store them, be16/be32 swapped.
static_assert(std::endian::native == std::endian::little, "record fields are read as host-order integers");

template <typename type> type load(const std::uint8_t* at) {
    type value;
    std::memcpy(&value, at, sizeof(value));
    return value;
}

template <typename type> void put(std::uint8_t* at, type value) {
    std::memcpy(at, &value, sizeof(value));
}

void store(const field& entry, std::uint8_t* data, std::int64_t value) {
    const auto bits = static_cast<std::uint64_t>(value);
    std::uint8_t* at = data + entry.offset;
    switch (entry.type) {
    case field_type::u8:
    case field_type::i8: *at = static_cast<std::uint8_t>(bits); return;
    case field_type::u16:
    case field_type::i16: put(at, static_cast<std::uint16_t>(bits)); return;
    case field_type::u32:
    case field_type::i32: put(at, static_cast<std::uint32_t>(bits)); return;
    case field_type::u64:
    case field_type::i64: put(at, bits); return;
    case field_type::be16: put(at, __builtin_bswap16(static_cast<std::uint16_t>(bits))); return;
    case field_type::be32: put(at, __builtin_bswap32(static_cast<std::uint32_t>(bits))); return;
    case field_type::bytes: return; // never an integer
    }
}

/// An integer field's bits, in host order (not sign-extended).
std::uint64_t read_bits(const field& entry, const std::uint8_t* data) {
    const std::uint8_t* at = data + entry.offset;
    switch (entry.type) {
    case field_type::u8:
    case field_type::i8: return *at;
    case field_type::u16:
    case field_type::i16: return load<std::uint16_t>(at);
    case field_type::u32:
    case field_type::i32: return load<std::uint32_t>(at);
    case field_type::u64:
    case field_type::i64: return load<std::uint64_t>(at);
    case field_type::be16: return __builtin_bswap16(load<std::uint16_t>(at));
    case field_type::be32: return __builtin_bswap32(load<std::uint32_t>(at));
    case field_type::bytes: return 0;
    }
    return 0;
}

void push_field(lua_State* L, const field& entry, const std::uint8_t* data) {
    if (entry.type == field_type::bytes) {
        lua_pushlstring(L, reinterpret_cast<const char*>(data + entry.offset), entry.size);
        return;
    }
    const std::uint64_t bits = read_bits(entry, data);
    switch (entry.type) {
    case field_type::i8: lua_pushinteger(L, static_cast<std::int8_t>(bits)); return;
    case field_type::i16: lua_pushinteger(L, static_cast<std::int16_t>(bits)); return;
    case field_type::i32: lua_pushinteger(L, static_cast<std::int32_t>(bits)); return;
    case field_type::i64: lua_pushinteger(L, static_cast<lua_Integer>(static_cast<std::int64_t>(bits))); return;
    default: push_unsigned(L, bits); return;
    }
}

map_handle& check_map(lua_State* L, int index) {
    return *static_cast<map_handle*>(check_userdata(L, index, type_map));
}

/// The map a method acts on: the handle its closure is bound to (Lua 5.4's map objects are tables of bound methods,
/// see push_map_object), else the handle given as argument 1.
map_handle& bound_map(lua_State* L) {
    if (void* bound = lua_touserdata(L, lua_upvalueindex(1)); bound != nullptr) {
        return *static_cast<map_handle*>(bound);
    }
    return check_map(L, 1);
}

record& check_record(lua_State* L, int index) {
    auto& entry = *static_cast<record*>(check_userdata(L, index, type_record));
    if (entry.generation != 0 && entry.generation != entry.tag.engine->generation) {
        luaL_error(L, "a map value from an earlier call: lookup() results last for one call, as in eBPF");
    }
    return entry;
}

record& new_record(lua_State* L, state_engine& engine, const layout& shape, std::uint8_t* view) {
    const std::size_t bytes = sizeof(record) + (view == nullptr ? shape.size : 0);
    auto& entry = *static_cast<record*>(new_userdata(L, bytes));
    entry.tag = make_tag(type_record, engine);
    entry.shape = &shape;
    if (view == nullptr) {
        entry.data = reinterpret_cast<std::uint8_t*>(&entry + 1);
        std::memset(entry.data, 0, shape.size);
        entry.generation = 0;
    } else {
        entry.data = view;
        entry.generation = engine.generation;
    }
    set_metatable(L, type_record, engine);
    return entry;
}

/// The bytes of a key or value argument: a record of the right size, or a number for a one-integer layout (encoded
/// into `scratch`).
const std::uint8_t* argument_bytes(lua_State* L, int index, const layout& shape, std::uint8_t* scratch,
                                   const char* what) {
    std::int64_t number = 0;
    if (to_integer(L, index, number)) {
        const field* only = shape.scalar();
        if (only == nullptr) {
            luaL_error(L, "bad %s: a number stands only for a layout of one integer field; make a record", what);
        }
        // The one field is the whole layout (packed): store() writes every byte.
        store(*only, scratch, number);
        return scratch;
    }
    record& entry = check_record(L, index);
    if (entry.shape->size != shape.size) {
        luaL_error(L, "bad %s: a record of %d bytes where the map has %d", what, static_cast<int>(entry.shape->size),
                   static_cast<int>(shape.size));
    }
    return entry.data;
}

/// Stack scratch for keys and values given as numbers (one integer field: at most 8 bytes).
using scratch = std::array<std::uint8_t, 8>;

int map_lookup(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch key_buffer{};
    const std::uint8_t* key = argument_bytes(L, 2, handle.key, key_buffer.data(), "key");
    void* value = handle.target->lookup(key, handle.tag.engine->settings.state->cpu);
    if (value == nullptr) {
        lua_pushnil(L);
        return 1;
    }
    new_record(L, *handle.tag.engine, handle.value, static_cast<std::uint8_t*>(value));
    return 1;
}

int map_get(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch key_buffer{};
    const std::uint8_t* key = argument_bytes(L, 2, handle.key, key_buffer.data(), "key");
    const field* entry = &handle.value.fields[0];
    if (!lua_isnoneornil(L, 3)) {
        entry = handle.value.find(luaL_checkstring(L, 3));
        if (entry == nullptr) {
            return luaL_error(L, "the value has no field '%s'", lua_tostring(L, 3));
        }
    }
    const void* value = handle.target->lookup(key, handle.tag.engine->settings.state->cpu);
    if (value == nullptr) {
        lua_pushnil(L);
        return 1;
    }
    push_field(L, *entry, static_cast<const std::uint8_t*>(value));
    return 1;
}

/// m:add(key, field, delta [, field, delta ...]) -> true, or false when the key is absent: adds to integer fields of
/// the value in place, as `entry->packets += 1` through a looked-up pointer does (not atomic; per-CPU maps: the
/// worker's slot). One call instead of a lookup and a read and a write per field.
int map_add(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch key_buffer{};
    const std::uint8_t* key = argument_bytes(L, 2, handle.key, key_buffer.data(), "key");
    const int top = lua_gettop(L);
    if (top < 4 || (top - 2) % 2 != 0) {
        return luaL_error(L, "m:add(key, field, delta [, field, delta ...]): pairs of a field and a delta expected");
    }
    auto* value = static_cast<std::uint8_t*>(handle.target->lookup(key, handle.tag.engine->settings.state->cpu));
    if (value == nullptr) {
        lua_pushboolean(L, 0);
        return 1;
    }
    for (int index = 3; index < top; index += 2) {
        std::size_t length = 0;
        const char* name = luaL_checklstring(L, index, &length);
        const field* entry = handle.value.find({name, length});
        if (entry == nullptr || entry->type == field_type::bytes) {
            return luaL_error(L, "the value has no integer field '%s'", name);
        }
        const std::int64_t delta = check_integer(L, index + 1);
        // Wraps at the field's width, as the C addition does.
        store(*entry, value, static_cast<std::int64_t>(read_bits(*entry, value) + static_cast<std::uint64_t>(delta)));
    }
    lua_pushboolean(L, 1);
    return 1;
}

std::uint64_t flags_argument(lua_State* L, int index) {
    return lua_isnoneornil(L, index) ? 0 : static_cast<std::uint64_t>(check_integer(L, index));
}

int map_update(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch key_buffer{};
    scratch value_buffer{};
    const std::uint8_t* key = argument_bytes(L, 2, handle.key, key_buffer.data(), "key");
    const std::uint8_t* value = argument_bytes(L, 3, handle.value, value_buffer.data(), "value");
    const long result =
        handle.target->update(key, value, flags_argument(L, 4), handle.tag.engine->settings.state->cpu);
    lua_pushinteger(L, result);
    return 1;
}

int map_delete(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch key_buffer{};
    const std::uint8_t* key = argument_bytes(L, 2, handle.key, key_buffer.data(), "key");
    lua_pushinteger(L, handle.target->remove(key, handle.tag.engine->settings.state->cpu));
    return 1;
}

int map_push(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch value_buffer{};
    const std::uint8_t* value = argument_bytes(L, 2, handle.value, value_buffer.data(), "value");
    lua_pushinteger(L, handle.target->push(value, flags_argument(L, 3)));
    return 1;
}

/// The results of a call that filled the record on top of the stack: the record when `result` is 0, else nil and the
/// errno (the record is dropped).
int record_or_errno(lua_State* L, long result) {
    if (result != 0) {
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_pushinteger(L, result);
        return 2;
    }
    return 1;
}

template <bool remove> int map_pop(lua_State* L) {
    map_handle& handle = bound_map(L);
    record& out = new_record(L, *handle.tag.engine, handle.value, nullptr);
    const long result = remove ? handle.target->pop(out.data) : handle.target->peek(out.data);
    return record_or_errno(L, result);
}

/// next_key(key or nil) -> the next key (a record), or nil and the errno (-ENOENT after the last).
int map_next_key(lua_State* L) {
    map_handle& handle = bound_map(L);
    scratch key_buffer{};
    const std::uint8_t* key =
        lua_isnoneornil(L, 2) ? nullptr : argument_bytes(L, 2, handle.key, key_buffer.data(), "key");
    record& next = new_record(L, *handle.tag.engine, handle.key, nullptr);
    const long result = handle.tag.engine->settings.services->get_next_key(*handle.target, key, next.data);
    return record_or_errno(L, result);
}

/// The iterator of pairs(): (map, previous key) -> next key, its value view.
int map_iterate(lua_State* L) {
    lua_settop(L, 2);
    lua_pushcfunction(L, map_next_key);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 1);
    if (lua_isnil(L, -1)) {
        return 1;
    }
    map_handle& handle = bound_map(L);
    auto& key = *static_cast<record*>(lua_touserdata(L, -1));
    void* value = handle.target->lookup(key.data, handle.tag.engine->settings.state->cpu);
    if (value == nullptr) {
        lua_pushnil(L); // deleted since get_next_key found it
    } else {
        new_record(L, *handle.tag.engine, handle.value, static_cast<std::uint8_t*>(value));
    }
    return 2;
}

int map_pairs(lua_State* L) {
    bound_map(L);
    lua_pushcfunction(L, map_iterate);
    // The iteration's state is the handle itself (map_iterate and map_next_key read it as argument 1).
    lua_pushvalue(L, lua_type(L, lua_upvalueindex(1)) == LUA_TUSERDATA ? lua_upvalueindex(1) : 1);
    lua_pushnil(L);
    return 3;
}

/// Sets the fields of the record on top of the stack from the table at `index`.
void fill_from_table(lua_State* L, int index, record& entry) {
    if (lua_isnoneornil(L, index)) {
        return;
    }
    luaL_checktype(L, index, LUA_TTABLE);
    const int target = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, index) != 0) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_setfield(L, target, lua_tostring(L, -2)); // through __newindex: the same checks as rec.field = v
        lua_pop(L, 1);
    }
    (void)entry;
}

int map_key(lua_State* L) {
    lua_settop(L, 2); // the new record goes above the optional table
    map_handle& handle = bound_map(L);
    record& entry = new_record(L, *handle.tag.engine, handle.key, nullptr);
    fill_from_table(L, 2, entry);
    return 1;
}

int map_value(lua_State* L) {
    lua_settop(L, 2);
    map_handle& handle = bound_map(L);
    record& entry = new_record(L, *handle.tag.engine, handle.value, nullptr);
    fill_from_table(L, 2, entry);
    return 1;
}

int map_tostring(lua_State* L) {
    map_handle& handle = bound_map(L);
    const ebpf::map_definition& definition = handle.target->definition();
    lua_pushfstring(L, "map %s (key %d bytes, value %d bytes)", definition.name.c_str(),
                    static_cast<int>(definition.key_size), static_cast<int>(definition.value_size));
    return 1;
}

#ifdef SLUICE_LUAJIT
void push_shape(lua_State* L, const layout& shape) {
    constexpr std::array<const char*, 11> type_names{"u8",  "u16", "u32", "u64",  "i8",   "i16",
                                                     "i32", "i64", "be16", "be32", "bytes"};
    lua_newtable(L);
    lua_pushinteger(L, shape.size);
    lua_setfield(L, -2, "size");
    for (std::size_t i = 0; i < shape.count; ++i) {
        const field& entry = shape.fields[i];
        lua_newtable(L);
        lua_pushlstring(L, entry.name.data(), entry.name_length);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, type_names[static_cast<std::size_t>(entry.type)]);
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, entry.offset);
        lua_setfield(L, -2, "offset");
        lua_pushinteger(L, entry.size);
        lua_setfield(L, -2, "size");
        lua_rawseti(L, -2, static_cast<int>(i + 1));
    }
}
#endif

constexpr luaL_Reg map_methods[] = {
    {"lookup", map_lookup}, {"get", map_get},         {"update", map_update},   {"delete", map_delete},
    {"push", map_push},     {"pop", map_pop<true>},   {"peek", map_pop<false>}, {"next_key", map_next_key},
    {"pairs", map_pairs},   {"key", map_key},         {"value", map_value},     {"add", map_add},
    {nullptr, nullptr},
};

// ---- records ----

/// rec:fill(field, pkt, offset): copies the field's size of packet bytes at `offset` into it (an IPv6 address into
/// a key) without making a Lua string of them. False when the packet is too short.
int record_fill(lua_State* L) {
    record& entry = check_record(L, 1);
    const field* target = entry.shape->find(luaL_checkstring(L, 2));
    if (target == nullptr) {
        return luaL_error(L, "the record has no field '%s'", lua_tostring(L, 2));
    }
    const packet_view& view = entry.tag.engine->view;
    if (view.context == nullptr) {
        return luaL_error(L, "the packet view is used outside xdp()");
    }
    const std::int64_t offset = check_integer(L, 4);
    if (offset < 0 || offset + target->size > view.length) {
        lua_pushboolean(L, 0);
        return 1;
    }
    std::memcpy(entry.data + target->offset, view.data + offset, target->size);
    lua_pushboolean(L, 1);
    return 1;
}

int record_index(lua_State* L) {
    record& entry = check_record(L, 1);
    std::size_t length = 0;
    const char* name = luaL_checklstring(L, 2, &length);
    if (const field* found = entry.shape->find({name, length}); found != nullptr) {
        push_field(L, *found, entry.data);
        return 1;
    }
    if (std::strcmp(name, "fill") == 0) {
        lua_pushcfunction(L, record_fill);
        return 1;
    }
    return luaL_error(L, "the record has no field '%s'", name);
}

int record_newindex(lua_State* L) {
    record& entry = check_record(L, 1);
    std::size_t length = 0;
    const char* name = luaL_checklstring(L, 2, &length);
    const field* found = entry.shape->find({name, length});
    if (found == nullptr) {
        return luaL_error(L, "the record has no field '%s'", name);
    }
    if (found->type == field_type::bytes) {
        std::size_t size = 0;
        const char* bytes = luaL_checklstring(L, 3, &size);
        if (size > found->size) {
            return luaL_error(L, "field '%s' holds %d bytes, not %d", name, static_cast<int>(found->size),
                              static_cast<int>(size));
        }
        std::memset(entry.data + found->offset, 0, found->size);
        std::memcpy(entry.data + found->offset, bytes, size);
        return 0;
    }
    store(*found, entry.data, check_integer(L, 3));
    return 0;
}

int record_tostring(lua_State* L) {
    record& entry = check_record(L, 1);
    luaL_Buffer buffer;
    luaL_buffinit(L, &buffer);
    luaL_addstring(&buffer, "{");
    for (std::size_t i = 0; i < entry.shape->count; ++i) {
        const field& item = entry.shape->fields[i];
        luaL_addstring(&buffer, i == 0 ? "" : ", ");
        luaL_addstring(&buffer, item.name.data());
        luaL_addstring(&buffer, "=");
        if (item.type == field_type::bytes) {
            for (std::uint32_t b = 0; b < item.size; ++b) {
                constexpr std::string_view digits = "0123456789abcdef";
                luaL_addchar(&buffer, digits[entry.data[item.offset + b] >> 4U]);
                luaL_addchar(&buffer, digits[entry.data[item.offset + b] & 0x0fU]);
            }
        } else {
            push_field(L, item, entry.data);
            luaL_addvalue(&buffer);
        }
    }
    luaL_addstring(&buffer, "}");
    luaL_pushresult(&buffer);
    return 1;
}

// ---- maps.open / maps.declare ----
//
// These build messages in C++ strings: each does its work in a function that leaves the message on the Lua stack
// and returns false, and raises the error only once those strings are gone (binding.hpp, longjmp).

void push_message(lua_State* L, const std::string& message) {
    lua_pushlstring(L, message.data(), message.size());
}

#ifndef SLUICE_LUAJIT
/// Replaces the handle on top of the stack by the object scripts get on Lua 5.4: a table of the map's methods, each a
/// closure bound to the handle. `m:lookup(k)` then finds its method in the table itself, where on a userdata Lua
/// goes through the metatable's __index (about 100 instructions of each call, callgrind). The object's metatable is
/// its own and protected (__metatable): it keeps the handle at [1] for redirect_map. (LuaJIT wraps the handle itself,
/// luajit_maps.cpp.) A method acts on its own map whatever it is called on, as a bound method does.
void push_map_object(lua_State* L) {
    const int handle = lua_gettop(L);
    lua_createtable(L, 0, static_cast<int>(std::size(map_methods) - 1));
    for (const luaL_Reg* method = map_methods; method->name != nullptr; ++method) {
        lua_pushvalue(L, handle);
        lua_pushcclosure(L, method->func, 1);
        lua_setfield(L, -2, method->name);
    }
    lua_createtable(L, 1, 2);
    lua_pushvalue(L, handle);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, handle);
    lua_pushcclosure(L, map_tostring, 1);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "sluice map");
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_replace(L, handle);
}
#endif

/// Pushes a new handle for `target`; layouts parsed from the arguments at key_index and value_index (0 or nil:
/// default). False with a message pushed when a layout is wrong.
bool push_handle(lua_State* L, ebpf::map* target, int key_index, int value_index) {
    state_engine& engine = state_engine::of(L);
    auto& handle = *static_cast<map_handle*>(new_userdata(L, sizeof(map_handle)));
    new (&handle) map_handle{};
    handle.tag = make_tag(type_map, engine);
    handle.target = target;
    const ebpf::map_definition& definition = target->definition();
    const std::array<std::pair<int, layout*>, 2> parts{{{key_index, &handle.key}, {value_index, &handle.value}}};
    const std::array<std::uint32_t, 2> sizes{definition.key_size, definition.value_size};
    for (std::size_t i = 0; i < 2; ++i) {
        const auto [index, shape] = parts[i];
        const char* part = i == 0 ? "key" : "value";
        if (index == 0 || lua_isnoneornil(L, index)) {
            *shape = default_layout(sizes[i]);
            continue;
        }
        const char* text = lua_tostring(L, index);
        if (text == nullptr) {
            push_message(L, fmt::format("map {}: the {} layout must be a string", definition.name, part));
            return false;
        }
        if (const std::string why = parse_layout(text, *shape); !why.empty()) {
            push_message(L, fmt::format("map {}: {} layout: {}", definition.name, part, why));
            return false;
        }
        if (shape->size != sizes[i]) {
            push_message(L, fmt::format("map {}: the {} layout has {} bytes, the map's {} has {}", definition.name,
                                        part, shape->size, part, sizes[i]));
            return false;
        }
    }
    set_metatable(L, type_map, engine);
    // Anchored for the state's life: records point at the handle's layouts, and the layouts at their field names
    // (kept as keys of the same table).
    lua_getfield(L, LUA_REGISTRYINDEX, "sluice.map.handles");
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, static_cast<int>(table_length(L, -2) + 1));
    for (layout* shape : {&handle.key, &handle.value}) {
        for (std::size_t i = 0; i < shape->count; ++i) {
            field& entry = shape->fields[i];
            lua_pushlstring(L, entry.name.data(), entry.name_length);
            entry.interned = lua_tostring(L, -1);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
    }
    lua_pop(L, 1);
#ifndef SLUICE_LUAJIT
    push_map_object(L);
#endif
    return true;
}

bool open_map(lua_State* L) {
    lua_settop(L, 3); // the handle goes above the optional layouts
    const char* name = lua_tostring(L, 1);
    if (name == nullptr) {
        push_message(L, "maps.open(name): the name must be a string");
        return false;
    }
    std::string why;
    ebpf::map* target = state_engine::of(L).settings.services->open_map(name, why);
    if (target == nullptr) {
        push_message(L, fmt::format("maps.open('{}'): {}", name, why));
        return false;
    }
    return push_handle(L, target, 2, 3);
}

int maps_open(lua_State* L) {
    if (!open_map(L)) {
        return lua_error(L);
    }
    return 1;
}

bool integer_field(lua_State* L, int table, const char* name, std::uint32_t& out) {
    lua_getfield(L, table, name);
    std::int64_t value = 0;
    const bool absent = lua_isnil(L, -1);
    const bool valid = absent || (to_integer(L, -1, value) && value >= 0 && value <= 0xffffffffLL);
    lua_pop(L, 1);
    if (!absent && valid) {
        out = static_cast<std::uint32_t>(value);
    }
    return valid;
}

bool declare_map(lua_State* L) {
    if (lua_type(L, 1) != LUA_TTABLE) {
        push_message(L, "maps.declare{name=, type=, key=, value=, max_entries=, flags=}: a table expected");
        return false;
    }
    lua_settop(L, 1);
    ebpf::map_definition definition;
    lua_getfield(L, 1, "name"); // 2
    const char* name = lua_tostring(L, 2);
    if (name == nullptr) {
        push_message(L, "maps.declare: 'name' (a string) is required");
        return false;
    }
    definition.name = name;
    lua_getfield(L, 1, "type"); // 3
    const char* type = lua_tostring(L, 3);
    bool known = false;
    for (const type_name& candidate : map_types) {
        if (type != nullptr && candidate.name == type) {
            definition.type = candidate.type;
            known = true;
        }
    }
    if (!known) {
        push_message(L, fmt::format("maps.declare{{name='{}'}}: 'type' must be one of hash, array, percpu_hash, "
                                    "percpu_array, lru_hash, lru_percpu_hash, lpm_trie, queue, stack",
                                    name));
        return false;
    }
    lua_getfield(L, 1, "key");   // 4
    lua_getfield(L, 1, "value"); // 5
    const bool keyless = definition.type == ebpf::map_type::queue || definition.type == ebpf::map_type::stack;
    std::array<layout, 2> shapes{};
    for (int i = 0; i < 2; ++i) {
        const int index = 4 + i;
        if (i == 0 && keyless) {
            continue; // queues and stacks have no key
        }
        const char* text = lua_tostring(L, index);
        const std::string why = text == nullptr ? std::string{"a layout string is required"}
                                                : parse_layout(text, shapes[static_cast<std::size_t>(i)]);
        if (!why.empty()) {
            push_message(L, fmt::format("maps.declare{{name='{}'}}: {}: {}", name, i == 0 ? "key" : "value", why));
            return false;
        }
    }
    definition.key_size = shapes[0].size;
    definition.value_size = shapes[1].size;
    if (!integer_field(L, 1, "max_entries", definition.max_entries) ||
        !integer_field(L, 1, "flags", definition.map_flags)) {
        push_message(L, fmt::format("maps.declare{{name='{}'}}: 'max_entries' and 'flags' must be integers from 0 "
                                    "to 2^32-1",
                                    name));
        return false;
    }
    std::string why;
    ebpf::map* target = state_engine::of(L).settings.services->declare_map(definition, why);
    if (target == nullptr) {
        push_message(L, fmt::format("maps.declare{{name='{}'}}: {}", name, why));
        return false;
    }
    return push_handle(L, target, keyless ? 0 : 4, 5);
}

int maps_declare(lua_State* L) {
    if (!declare_map(L)) {
        return lua_error(L);
    }
    return 1;
}

} // namespace

ebpf::map* check_map_target(lua_State* L, int index) {
#ifndef SLUICE_LUAJIT
    if (lua_type(L, index) == LUA_TTABLE && lua_getmetatable(L, index) != 0) { // a map object (push_map_object)
        lua_rawgeti(L, -1, 1);
        void* handle = test_userdata(L, -1, type_map);
        lua_pop(L, 2);
        if (handle != nullptr) {
            return static_cast<map_handle*>(handle)->target;
        }
    }
#endif
    return check_map(L, index).target;
}

#ifdef SLUICE_LUAJIT
int describe_map(lua_State* L) {
    map_handle& handle = check_map(L, 1);
    lua_pushlightuserdata(L, handle.target);
    push_shape(L, handle.key);
    push_shape(L, handle.value);
    const ebpf::map_type type = handle.target->type();
    if (type != ebpf::map_type::array && type != ebpf::map_type::percpu_array) {
        return 3;
    }
    // Arrays keep their values contiguous for the map's life (ebpf::array_map, as the JIT's inlined lookups use
    // them): the address of a value is arithmetic, no call. A static_cast on the type, as the JIT does: the plugin
    // links no RTTI of sluice's.
    auto& array = static_cast<ebpf::array_map&>(*handle.target);
    lua_newtable(L);
    lua_pushlightuserdata(L, array.values_base());
    lua_setfield(L, -2, "base");
    lua_pushinteger(L, static_cast<lua_Integer>(array.value_stride()));
    lua_setfield(L, -2, "stride");
    lua_pushinteger(L, static_cast<lua_Integer>(array.cpu_stride()));
    lua_setfield(L, -2, "cpu_stride");
    lua_pushinteger(L, static_cast<lua_Integer>(array.definition().max_entries));
    lua_setfield(L, -2, "entries");
    lua_pushinteger(L, static_cast<lua_Integer>(array.cpus()));
    lua_setfield(L, -2, "cpus");
    return 4;
}
#endif

void register_maps(lua_State* L) {
    lua_pushcfunction(L, maps_open);
    lua_setfield(L, -2, "open");
    lua_pushcfunction(L, maps_declare);
    lua_setfield(L, -2, "declare");

    luaL_newmetatable(L, map_type_name);
    remember_metatable(L, type_map);
    lua_newtable(L);
    luaL_setfuncs(L, map_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, map_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "sluice map");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    luaL_newmetatable(L, record_type_name);
    remember_metatable(L, type_record);
    lua_pushcfunction(L, record_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, record_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, record_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushstring(L, "sluice record");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);

    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "sluice.map.handles");
}

} // namespace sluice::lua::SLUICE_LUA_NS
