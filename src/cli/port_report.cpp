// `sluice run --port ...`: live rates and the final accounting per port (port_report.hpp).
#include "port_report.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace sluice::cli {
namespace {

nlohmann::json to_json(const xdp::counter& value) {
    return {{"packets", value.packets}, {"bytes", value.bytes}};
}

/// "1.23M", "456k", "12": rates for people.
std::string scaled(double value) {
    if (value >= 1e9) {
        return fmt::format("{:.2f}G", value / 1e9);
    }
    if (value >= 1e6) {
        return fmt::format("{:.2f}M", value / 1e6);
    }
    if (value >= 1e3) {
        return fmt::format("{:.1f}k", value / 1e3);
    }
    return fmt::format("{:.0f}", value);
}

xdp::counter difference(const xdp::counter& later, const xdp::counter& earlier) {
    return {later.packets - earlier.packets, later.bytes - earlier.bytes};
}

/// Program outcomes summed over the workers.
xdp::executor_stats total_program(const std::vector<xdp::executor_stats>& programs) {
    xdp::executor_stats sum;
    for (const auto& one : programs) {
        sum.received.packets += one.received.packets;
        sum.received.bytes += one.received.bytes;
        for (std::size_t i = 0; i < xdp::action_count; ++i) {
            sum.actions[i].packets += one.actions[i].packets;
            sum.actions[i].bytes += one.actions[i].bytes;
        }
        sum.errors.packets += one.errors.packets;
        sum.errors.bytes += one.errors.bytes;
        sum.exceptions += one.exceptions;
        sum.unknown_return_codes += one.unknown_return_codes;
        sum.faults += one.faults;
        sum.redirect_errors += one.redirect_errors;
    }
    return sum;
}

} // namespace

std::string format_live(const xdp::engine_report& previous, const xdp::engine_report& now) {
    const double seconds = std::max(now.seconds - previous.seconds, 1e-9);
    std::string out;
    for (std::size_t i = 0; i < now.ports.size(); ++i) {
        const xdp::port_report& port = now.ports[i];
        const xdp::port_report empty;
        const xdp::port_report& before = i < previous.ports.size() ? previous.ports[i] : empty;
        // rx, then only the outcomes that happened in this second: a line a person can read at a glance.
        std::string line;
        const auto rate = [&](std::string_view label, const xdp::counter& later, const xdp::counter& earlier,
                              bool always) {
            const xdp::counter delta = difference(later, earlier);
            if (delta.packets == 0 && !always) {
                return;
            }
            line += fmt::format("{}{} {} pkt/s {}B/s", line.empty() ? "" : ", ", label,
                                scaled(static_cast<double>(delta.packets) / seconds),
                                scaled(static_cast<double>(delta.bytes) / seconds));
        };
        rate("rx", port.received, before.received, port.received.packets != 0);
        rate("drop", port.dropped, before.dropped, false);
        rate("pass", port.passed, before.passed, false);
        rate("tx", port.transmitted, before.transmitted, false);
        rate("redirect", port.redirected, before.redirected, false);
        rate("aborted", port.aborted, before.aborted, false);
        rate("errors", port.errors(), before.errors(), false);
        rate("sent", port.sent, before.sent, false);
        if (!line.empty()) {
            out += fmt::format("sluice run: {:.0f}s {}: {}\n", now.seconds, port.name, line);
        }
    }
    return out;
}

std::string format_port_table(const port_run_summary& summary) {
    const xdp::engine_report& report = summary.report;
    std::string out =
        fmt::format("{}: program {} on {} worker{}, {}, {}, {}, {:.3f} s\n", summary.object, summary.program,
                    summary.workers, summary.workers == 1 ? "" : "s", summary.verified ? "verified" : "not verified",
                    summary.checked ? "checked" : "unchecked", summary.engine, report.seconds);
    std::size_t width = 4;
    for (const auto& port : report.ports) {
        width = std::max(width, port.name.size());
    }
    out += fmt::format("{:<{}}  {:>9}  {:>12}  {:>10}  {:>10}  {:>11}  {:>10}  {:>8}  {:>8}  {:>10}\n", "port", width,
                       "ifindex", "received", "dropped", "passed", "transmitted", "redirected", "aborted", "errors",
                       "sent");
    xdp::port_report total;
    const auto add = [](xdp::counter& into, const xdp::counter& more) {
        into.packets += more.packets;
        into.bytes += more.bytes;
    };
    for (const auto& port : report.ports) {
        out += fmt::format("{:<{}}  {:>9}  {:>12}  {:>10}  {:>10}  {:>11}  {:>10}  {:>8}  {:>8}  {:>10}{}\n", port.name,
                           width, port.ifindex, port.received.packets, port.dropped.packets, port.passed.packets,
                           port.transmitted.packets, port.redirected.packets, port.aborted.packets,
                           port.errors().packets, port.sent.packets, port.balanced() ? "" : "  MISMATCH");
        add(total.received, port.received);
        add(total.dropped, port.dropped);
        add(total.passed, port.passed);
        add(total.transmitted, port.transmitted);
        add(total.redirected, port.redirected);
        add(total.aborted, port.aborted);
        add(total.rx_errors, port.rx_errors);
        add(total.tx_errors, port.tx_errors);
        add(total.redirect_errors, port.redirect_errors);
        add(total.sent, port.sent);
        add(total.clones_sent, port.clones_sent);
        add(total.clones_dropped, port.clones_dropped);
    }
    out +=
        fmt::format("{:<{}}  {:>9}  {:>12}  {:>10}  {:>10}  {:>11}  {:>10}  {:>8}  {:>8}  {:>10}\n", "total", width, "",
                    total.received.packets, total.dropped.packets, total.passed.packets, total.transmitted.packets,
                    total.redirected.packets, total.aborted.packets, total.errors().packets, total.sent.packets);
    if (total.errors().packets != 0) {
        out += fmt::format("errors: {} not delivered by a port (rx), {} refused by a port (tx), {} with no usable "
                           "redirect target (redirect)\n",
                           total.rx_errors.packets, total.tx_errors.packets, total.redirect_errors.packets);
    }
    if (total.clones_sent.packets + total.clones_dropped.packets != 0) {
        out += fmt::format("broadcast copies: {} sent, {} dropped\n", total.clones_sent.packets,
                           total.clones_dropped.packets);
    }
    const xdp::executor_stats program = total_program(report.programs);
    if (program.exceptions != 0) {
        out += fmt::format("exceptions (xdp_exception): {} (unknown return codes {}, faults {}, redirects without a "
                           "target {})\n",
                           program.exceptions, program.unknown_return_codes, program.faults, program.redirect_errors);
    }
    if (summary.script) {
        out += format_script_line(*summary.script);
    }
    for (const auto& worker : report.workers) {
        if (worker.cpumap_in + worker.cpumap_out != 0) {
            out += fmt::format("worker {}: {} frames to other workers, {} from them (cpumap)\n", worker.index,
                               worker.cpumap_out, worker.cpumap_in);
        }
    }
    out += summary.accounting_error.empty()
               ? "accounting: every frame accounted for (received = dropped + passed + transmitted + redirected + "
                 "aborted + errors, per port)\n"
               : fmt::format("accounting: {}\n", summary.accounting_error);
    return out;
}

nlohmann::json format_port_json(const port_run_summary& summary) {
    const xdp::engine_report& report = summary.report;
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& port : report.ports) {
        ports.push_back({{"name", port.name},
                         {"kind", port.kind},
                         {"ifindex", port.ifindex},
                         {"received", to_json(port.received)},
                         {"dropped", to_json(port.dropped)},
                         {"passed", to_json(port.passed)},
                         {"transmitted", to_json(port.transmitted)},
                         {"redirected", to_json(port.redirected)},
                         {"aborted", to_json(port.aborted)},
                         {"errors",
                          {{"rx", to_json(port.rx_errors)},
                           {"tx", to_json(port.tx_errors)},
                           {"redirect", to_json(port.redirect_errors)}}},
                         {"clones", {{"sent", to_json(port.clones_sent)}, {"dropped", to_json(port.clones_dropped)}}},
                         {"sent", to_json(port.sent)},
                         {"balanced", port.balanced()}});
    }
    nlohmann::json workers = nlohmann::json::array();
    for (const auto& worker : report.workers) {
        workers.push_back({{"index", worker.index},
                           {"cpu", worker.cpu},
                           {"batches", worker.batches},
                           {"cpumap_in", worker.cpumap_in},
                           {"cpumap_out", worker.cpumap_out}});
    }
    const xdp::executor_stats program = total_program(report.programs);
    nlohmann::json actions = nlohmann::json::object();
    for (const xdp::action kind : xdp::all_actions) {
        actions[std::string(xdp::name(kind))] = to_json(program.of(kind));
    }
    nlohmann::json out{{"object", summary.object},
                       {"program", summary.program},
                       {"workers", summary.workers},
                       {"mode", summary.checked ? "checked" : "unchecked"},
                       {"verified", summary.verified},
                       {"engine", summary.engine},
                       {"seconds", report.seconds},
                       {"ports", std::move(ports)},
                       {"worker_stats", std::move(workers)},
                       {"program_stats",
                        {{"received", to_json(program.received)},
                         {"actions", std::move(actions)},
                         {"errors", to_json(program.errors)},
                         {"exceptions", program.exceptions},
                         {"unknown_return_codes", program.unknown_return_codes},
                         {"faults", program.faults},
                         {"redirect_errors", program.redirect_errors}}},
                       {"notes", summary.notes},
                       {"pool_outstanding", report.pool_outstanding},
                       {"accounting", summary.accounting_error.empty() ? std::string("ok") : summary.accounting_error}};
    if (summary.script) {
        out["script"] = format_script_json(*summary.script);
    }
    return out;
}

} // namespace sluice::cli
