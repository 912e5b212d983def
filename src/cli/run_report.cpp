// `sluice run`'s report: the per-action table and its JSON form.
#include "run_report.hpp"

#include <fmt/format.h>

namespace sluice::cli {
namespace {

// Table order: what people look for first (what was dropped, what went through), then the rest.
constexpr std::array<xdp::action, xdp::action_count> table_order{xdp::action::drop, xdp::action::pass, xdp::action::tx,
                                                                 xdp::action::redirect, xdp::action::aborted};

double share(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

} // namespace

std::string format_script_line(const script_summary& summary) {
    const lua::script_stats& stats = summary.stats;
    std::string line = fmt::format("script: {} errors, {} bad returns, {} budget stops ({} packets aborted, {} grace "
                                   "calls), {} memory-limit aborts, {} reloads",
                                   stats.errors, stats.bad_returns, stats.budget_exceeded, stats.budget_aborted,
                                   stats.budget_grace_calls, stats.memory_exceeded, stats.reloads);
    if (stats.chained_calls != 0) {
        line += fmt::format(", {} bpf_sluice_lua calls ({} failed)", stats.chained_calls, stats.chained_failures);
    }
    line += fmt::format("; {} Lua state{}, {:.1f} KiB\n", summary.states, summary.states == 1 ? "" : "s",
                        static_cast<double>(summary.memory) / 1024.0);
    return line;
}

nlohmann::json format_script_json(const script_summary& summary) {
    const lua::script_stats& stats = summary.stats;
    return nlohmann::json{{"errors", stats.errors},
                          {"bad_returns", stats.bad_returns},
                          {"budget_exceeded", stats.budget_exceeded},
                          {"budget_aborted", stats.budget_aborted},
                          {"budget_grace_calls", stats.budget_grace_calls},
                          {"memory_exceeded", stats.memory_exceeded},
                          {"reloads", stats.reloads},
                          {"chained_calls", stats.chained_calls},
                          {"chained_failures", stats.chained_failures},
                          {"states", summary.states},
                          {"memory_in_use", summary.memory}};
}

std::string format_table(const run_summary& summary) {
    const xdp::executor_stats& stats = summary.stats;
    const std::uint64_t total = stats.received.packets;
    std::string text = fmt::format("{}: program {} ({}, {} mode, {}) over {}: {} packets in {:.3f} s\n",
                                   summary.object, summary.program, summary.verified ? "verified" : "not verified",
                                   summary.checked ? "checked" : "unchecked", summary.engine, summary.input, total,
                                   summary.seconds);
    text += fmt::format("{:<14}{:>12}{:>16}{:>9}\n", "action", "packets", "bytes", "share");
    const auto row = [&](std::string_view name, const xdp::counter& count) {
        text += fmt::format("{:<14}{:>12}{:>16}{:>8.2f}%\n", name, count.packets, count.bytes,
                            100.0 * share(count.packets, total));
    };
    for (const xdp::action kind : table_order) {
        row(xdp::kernel_name(kind), stats.of(kind));
    }
    row("errors", stats.errors);
    row("total", stats.received);
    if (stats.exceptions != 0) {
        text += fmt::format("exceptions (xdp_exception): {} = {} XDP_ABORTED returned, {} unknown return codes, {} "
                            "program faults, {} redirects without a target\n",
                            stats.exceptions,
                            stats.exceptions - stats.unknown_return_codes - stats.faults - stats.redirect_errors,
                            stats.unknown_return_codes, stats.faults, stats.redirect_errors);
    }
    if (summary.script) {
        text += format_script_line(*summary.script);
    }
    for (const output_summary& output : summary.outputs) {
        text += fmt::format("wrote {} {} packets to {}\n", output.written, xdp::name(output.kind), output.path);
    }
    return text;
}

nlohmann::json format_json(const run_summary& summary) {
    const xdp::executor_stats& stats = summary.stats;
    const std::uint64_t total = stats.received.packets;
    const auto entry = [&](const xdp::counter& count) {
        return nlohmann::json{
            {"packets", count.packets}, {"bytes", count.bytes}, {"share", share(count.packets, total)}};
    };
    nlohmann::json actions = nlohmann::json::object();
    for (const xdp::action kind : xdp::all_actions) {
        actions[std::string{xdp::name(kind)}] = entry(stats.of(kind));
    }
    nlohmann::json outputs = nlohmann::json::object();
    for (const output_summary& output : summary.outputs) {
        outputs[std::string{xdp::name(output.kind)}] = {{"file", output.path}, {"packets", output.written}};
    }
    nlohmann::json out{{"object", summary.object},
                       {"program", summary.program},
                       {"input", summary.input},
                       {"mode", summary.checked ? "checked" : "unchecked"},
                       {"verified", summary.verified},
                       {"engine", summary.engine},
                       {"seconds", summary.seconds},
                       {"packets", total},
                       {"bytes", stats.received.bytes},
                       {"actions", std::move(actions)},
                       {"errors", entry(stats.errors)},
                       {"exceptions", stats.exceptions},
                       {"unknown_return_codes", stats.unknown_return_codes},
                       {"faults", stats.faults},
                       {"redirect_errors", stats.redirect_errors},
                       {"outputs", std::move(outputs)}};
    if (summary.input_error) {
        out["input_error"] = *summary.input_error;
    }
    if (summary.script) {
        out["script"] = format_script_json(*summary.script);
    }
    return out;
}

} // namespace sluice::cli
