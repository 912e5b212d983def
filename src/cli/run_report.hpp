// What `sluice run` prints at the end: a per-action table for people, the same as JSON for programs.
//
// The table has one row per action, one for errors (packets that never reached the program) and a total; the total
// is the number of packets read, and the executor has checked that the rows add up to it. Exceptions (XDP_ABORTED
// returned, unknown return codes, faults, redirects with no target) are explained below the table when there are any.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/lua/script_program.hpp"
#include "sluice/xdp/executor.hpp"

namespace sluice::cli {

/// What the Lua scripts of a run counted beyond the actions: script_stats summed over the workers' Lua states.
struct script_summary {
    lua::script_stats stats;
    std::size_t states{}; ///< Lua programs (one per worker)
    std::size_t memory{}; ///< bytes their Lua states held at the end of the run
};

/// "script: 0 errors, 0 bad returns, 0 budget stops (...), ..." on one line (chained calls only when there were any).
std::string format_script_line(const script_summary& summary);

/// {"errors", "bad_returns", "budget_exceeded", "budget_aborted", "budget_grace_calls", "memory_exceeded", "reloads",
/// "chained_calls", "chained_failures", "states", "memory_in_use"}: the names of script_stats.
nlohmann::json format_script_json(const script_summary& summary);

/// An output file and how many packets went into it.
struct output_summary {
    xdp::action kind{};
    std::string path;
    std::uint64_t written{};
};

struct run_summary {
    std::string object;     ///< the object file
    std::string program;    ///< the program that ran
    std::string input;      ///< the --in spec
    bool checked{};         ///< checked mode
    bool verified{};        ///< the verifier accepted the program (and its tail-call targets) before the run
    std::string engine;     ///< what executed it: "JIT", "interpreter", or a Lua engine
    double seconds{};       ///< wall time of the run
    xdp::executor_stats stats;
    std::vector<output_summary> outputs;
    std::optional<std::string> input_error; ///< a truncated or corrupt input: where it stopped
    std::optional<script_summary> script;   ///< a Lua script ran (a .lua program, or --lua beside an object)
};

/// The table, with a header line naming the program and input.
std::string format_table(const run_summary& summary);

/// {"object", "program", "input", "mode" ("checked" or "unchecked"), "verified", "seconds", "packets", "bytes",
/// "actions": {"pass": {"packets", "bytes", "share"}, ...}, "errors": {...}, "exceptions", "unknown_return_codes",
/// "faults", "redirect_errors", "outputs", "input_error"?, "script"? (format_script_json)}. Shares are fractions of
/// packets read (0..1).
nlohmann::json format_json(const run_summary& summary);

} // namespace sluice::cli
