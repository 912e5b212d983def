// Loading the LuaJIT engine, which lives in a plugin (libsluice_luajit.so), and why.
//
// Lua 5.4 and LuaJIT both define the C API under the same names (lua_pushinteger, luaL_newstate, ...), with
// different ABIs. Linked into one binary, every lua_* call would bind to whichever library the dynamic linker meets
// first, and one engine would run the other's functions (it crashes at once: tried). So:
//  - sluice_lua links Lua 5.4 (Debian's liblua5.4.so, whose symbols carry the version LUA_5.4);
//  - the same engine sources, compiled against LuaJIT's headers in their own namespace (sluice::lua::luajit), form
//    the plugin libsluice_luajit.so, linked to libluajit-5.1.so, exporting one symbol
//    (sluice_luajit_create_engine) and linking nothing of sluice (--no-undefined proves it): what it needs from
//    sluice reaches it through virtual calls (engine.hpp's host);
//  - the plugin is opened with RTLD_LOCAL, so its LuaJIT symbols never join the global scope, and RTLD_DEEPBIND, so
//    that the plugin and libluajit resolve lua_* in their own scope first instead of binding to Lua 5.4's, which
//    already is in the global scope (LuaJIT's symbols are unversioned, so a plain lookup would take Lua 5.4's).
// Linking LuaJIT statically into the plugin with its symbols hidden would avoid DEEPBIND, but Debian's
// libluajit-5.1.a is not position-independent (R_X86_64_TPOFF32), so it cannot go into a shared object.
//
// Where the plugin is: $SLUICE_LUAJIT_PLUGIN when set, else beside the running executable, else where this build
// put it (SLUICE_LUAJIT_PLUGIN_PATH).
#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>

#include "lua/engine.hpp"

#ifndef SLUICE_LUAJIT_PLUGIN_PATH
#define SLUICE_LUAJIT_PLUGIN_PATH "libsluice_luajit.so"
#endif

namespace sluice::lua::detail {

namespace {

struct plugin {
    create_engine_function create{};
    std::string error;
};

plugin open_plugin() {
    std::vector<std::string> candidates;
    if (const char* configured = std::getenv("SLUICE_LUAJIT_PLUGIN"); configured != nullptr && *configured != 0) {
        candidates.emplace_back(configured);
    } else {
        std::error_code ignored;
        const std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", ignored);
        if (!executable.empty()) {
            candidates.push_back((executable.parent_path() / "libsluice_luajit.so").string());
        }
        candidates.emplace_back(SLUICE_LUAJIT_PLUGIN_PATH);
    }
    std::string tried;
    for (const std::string& path : candidates) {
        if (access(path.c_str(), R_OK) != 0) {
            tried += fmt::format("{}{} (absent)", tried.empty() ? "" : ", ", path);
            continue;
        }
        void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
        if (handle == nullptr) {
            tried += fmt::format("{}{} ({})", tried.empty() ? "" : ", ", path, dlerror());
            continue;
        }
        void* entry = dlsym(handle, luajit_entry_point);
        if (entry == nullptr) {
            tried += fmt::format("{}{} (no {})", tried.empty() ? "" : ", ", path, luajit_entry_point);
            dlclose(handle);
            continue;
        }
        // Never closed: engines made by it may live until the process ends.
        return plugin{reinterpret_cast<create_engine_function>(entry), {}};
    }
    return plugin{nullptr, fmt::format("the LuaJIT engine plugin could not be loaded: tried {}", tried)};
}

} // namespace

create_engine_function luajit_engine_factory(std::string& why) {
    static const plugin loaded = open_plugin();
    why = loaded.error;
    return loaded.create;
}

} // namespace sluice::lua::detail
