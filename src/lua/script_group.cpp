// The Lua programs of one run handled as one (contract in include/sluice/lua/script_group.hpp).
#include "sluice/lua/script_group.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace sluice::lua {

script_stats& operator+=(script_stats& total, const script_stats& part) {
    total.errors += part.errors;
    total.bad_returns += part.bad_returns;
    total.budget_exceeded += part.budget_exceeded;
    total.budget_aborted += part.budget_aborted;
    total.budget_grace_calls += part.budget_grace_calls;
    total.memory_exceeded += part.memory_exceeded;
    total.reloads += part.reloads;
    total.chained_calls += part.chained_calls;
    total.chained_failures += part.chained_failures;
    return total;
}

void script_group::add(script_program& program) {
    const std::lock_guard guard(_lock);
    _programs.push_back(&program);
}

std::size_t script_group::size() const {
    const std::lock_guard guard(_lock);
    return _programs.size();
}

expected<void> script_group::reload(std::string_view source, const std::string& chunk_name) {
    const std::lock_guard guard(_lock);
    if (_programs.empty()) {
        return error{fmt::format("{}: no running script to reload", chunk_name)};
    }
    // Every worker's version first: a script that fails on one worker (its top level may depend on the worker)
    // must leave all of them on the running version.
    std::vector<script_program::next_version> prepared;
    prepared.reserve(_programs.size());
    for (std::size_t i = 0; i < _programs.size(); ++i) {
        auto next = _programs[i]->prepare_reload(source, chunk_name);
        if (!next) {
            const std::string which =
                _programs.size() == 1 ? std::string{} : fmt::format(" (program {} of {})", i + 1, _programs.size());
            return error{fmt::format("reload refused{}, every worker keeps its running version: {}", which,
                                     next.error().message)};
        }
        prepared.push_back(std::move(*next));
    }
    for (std::size_t i = 0; i < _programs.size(); ++i) {
        _programs[i]->stage(std::move(prepared[i]));
    }
    return {};
}

expected<void> script_group::reload_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return error{fmt::format("{}: cannot read the script", path)};
    }
    std::ostringstream text;
    text << file.rdbuf();
    return reload(text.str(), std::filesystem::path(path).filename().string());
}

std::uint64_t script_group::version() const {
    const std::lock_guard guard(_lock);
    if (_programs.empty()) {
        return 0;
    }
    std::uint64_t lowest = std::numeric_limits<std::uint64_t>::max();
    for (const script_program* program : _programs) {
        lowest = std::min(lowest, program->version());
    }
    return lowest;
}

script_stats script_group::statistics() const {
    const std::lock_guard guard(_lock);
    script_stats total;
    for (const script_program* program : _programs) {
        total += program->script_statistics();
    }
    return total;
}

std::size_t script_group::memory_in_use() const {
    const std::lock_guard guard(_lock);
    std::size_t total = 0;
    for (const script_program* program : _programs) {
        total += program->memory_in_use();
    }
    return total;
}

} // namespace sluice::lua
