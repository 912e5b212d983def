// The Lua programs of one run, one per worker, handled as one: a reload reaches every worker's program, and the
// script counters and memory are summed for the report.
//
// Contract:
// - add() registers a program (the run's program factory does, as each worker's program is made); the group does not
//   own them: they must outlive every later call on the group (the engine owns them until it is destroyed).
// - reload() compiles the new version once per program, in the caller's thread, and stages it only when every
//   program's compiled and ran its top level: all programs move to the new version or none does (an error names the
//   worker that refused it, and the running versions stay). Each worker then swaps at the start of its next batch, so
//   every batch runs wholly on one version and no packet is lost or run twice (script_program.hpp, hot reload).
// - statistics() and memory_in_use() read the workers' counters: exact once the workers stopped (the report at the
//   end of a run), a snapshot while they run. version() and size() are safe at any time. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/expected.hpp"
#include "sluice/lua/script_program.hpp"

namespace sluice::lua {

/// script_stats of several programs, added field by field.
script_stats& operator+=(script_stats& total, const script_stats& part);

class script_group {
public:
    script_group() = default;
    script_group(const script_group&) = delete;
    script_group& operator=(const script_group&) = delete;

    void add(script_program& program);
    std::size_t size() const;

    /// Compiles `source` (named `chunk_name`) for every program and stages it in all of them, or in none.
    expected<void> reload(std::string_view source, const std::string& chunk_name);
    /// Reads `path` and reload()s with its file name as the chunk name.
    expected<void> reload_file(const std::string& path);

    /// The version every program has swapped in: the smallest of their version()s (0 with no program).
    std::uint64_t version() const;
    /// The programs' script_stats, summed.
    script_stats statistics() const;
    /// Bytes the programs' current Lua states hold, summed.
    std::size_t memory_in_use() const;

private:
    mutable std::mutex _lock; ///< also serialises reloads, so that two cannot interleave their stages
    std::vector<script_program*> _programs;
};

} // namespace sluice::lua
