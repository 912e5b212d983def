// What `sluice run --port ...` prints: live statistics per port and action once a second (packets/s, bytes/s) and,
// at the end, the frame accounting per port (a table for people, JSON for programs).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "run_report.hpp"
#include "sluice/xdp/engine.hpp"

namespace sluice::cli {

struct port_run_summary {
    std::string object;
    std::string program;
    unsigned workers{};
    bool checked{};
    bool verified{}; ///< the verifier accepted the program (and its tail-call targets) before the run
    std::string engine;     ///< what executed it: "JIT", "interpreter", or a Lua engine
    xdp::engine_report report;
    std::vector<std::string> notes;
    std::string accounting_error; ///< empty when every frame is accounted for
    std::optional<script_summary> script; ///< a Lua script ran: its counters over every worker
};

/// The rates between two reports, one line per port: "PORT: rx P pkt/s B B/s; drop ...; pass ...; ...".
std::string format_live(const xdp::engine_report& previous, const xdp::engine_report& now);

/// The final table: one row per port (received and each outcome, errors, what it sent), then the accounting verdict.
std::string format_port_table(const port_run_summary& summary);

/// {"object", "program", "workers" (count), "mode", "verified", "seconds", "ports": [{"name", "kind", "ifindex", "received":
/// {packets, bytes}, "dropped", "passed", "transmitted", "redirected", "aborted", "errors": {"rx", "tx",
/// "redirect"}, "clones": {"sent", "dropped"}, "sent", "balanced"}], "worker_stats": [{"index", "cpu", "batches",
/// "cpumap_in", "cpumap_out"}], "program_stats": {"received", "actions", "errors", "exceptions", "faults", ...},
/// "notes", "pool_outstanding", "accounting": "ok" | the mismatch, "script"? (format_script_json)}.
nlohmann::json format_port_json(const port_run_summary& summary);

} // namespace sluice::cli
