// What `sluice bench` and bench/ print: the table with ratios, its JSON, and a gnuplot bar chart.
#include <stdlib.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "bench_command.hpp"

namespace sluice::cli {
namespace {

std::string role_name(variant_role role) {
    switch (role) {
    case variant_role::interpreter:
        return "interpreter";
    case variant_role::interpreter_checked:
        return "interpreter_checked";
    case variant_role::jit:
        return "jit";
    case variant_role::kernel:
        return "kernel";
    case variant_role::native:
        return "native";
    case variant_role::dpdk:
        return "dpdk";
    case variant_role::other:
        return "other";
    }
    return "other";
}

std::optional<double> time_of(const size_result& size, variant_role role) {
    for (const variant_result& variant : size.variants) {
        if (variant.role == role) {
            return variant.ns;
        }
    }
    return std::nullopt;
}

struct ratio {
    std::string name; ///< "JIT/kernel"
    std::string key;  ///< "jit_over_kernel"
    variant_role numerator;
    variant_role denominator;
};

/// The ratios the project's targets are stated in (JIT ≤ 0.7 × kernel, ≤ 1.3 × native), DPDK's, and the
/// interpreter's against the kernel for reference while the JIT is missing.
const std::vector<ratio>& ratios() {
    static const std::vector<ratio> all{
        {"JIT/kernel", "jit_over_kernel", variant_role::jit, variant_role::kernel},
        {"JIT/native", "jit_over_native", variant_role::jit, variant_role::native},
        {"JIT/DPDK", "jit_over_dpdk", variant_role::jit, variant_role::dpdk},
        {"interp/kernel", "interpreter_over_kernel", variant_role::interpreter, variant_role::kernel},
    };
    return all;
}

std::optional<double> ratio_of(const size_result& size, const ratio& which) {
    const auto top = time_of(size, which.numerator);
    const auto bottom = time_of(size, which.denominator);
    if (!top || !bottom || *bottom <= 0) {
        return std::nullopt;
    }
    return *top / *bottom;
}

/// Whether any program has a column with this role (ratios over variants nobody ran are left out of the table).
bool role_present(std::span<const program_result> results, variant_role role) {
    for (const program_result& program : results) {
        for (const size_result& size : program.sizes) {
            for (const variant_result& variant : size.variants) {
                if (variant.role == role) {
                    return true;
                }
            }
        }
    }
    return false;
}

std::string short_name(const std::string& object, const std::string& program) {
    const std::string stem = std::filesystem::path(object).stem().string();
    return stem == program ? program : fmt::format("{}:{}", stem, program);
}

std::string iso_date_utc() {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string cpu_model() {
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.starts_with("model name")) {
            const std::size_t colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(colon + 2);
        }
    }
    return "unknown";
}

/// The 1-minute load average: on a shared machine it says how much to trust absolute numbers.
std::string load_average() {
    std::ifstream loadavg("/proc/loadavg");
    std::string first;
    loadavg >> first;
    return first.empty() ? "unknown" : first;
}

} // namespace

std::string format_bench_table(std::span<const program_result> results) {
    if (results.empty()) {
        return "no results\n";
    }
    std::vector<std::string> columns;
    for (const program_result& program : results) {
        for (const size_result& size : program.sizes) {
            for (const variant_result& variant : size.variants) {
                if (std::ranges::find(columns, variant.name) == columns.end()) {
                    columns.push_back(variant.name);
                }
            }
        }
    }
    std::vector<const ratio*> shown;
    for (const ratio& which : ratios()) {
        if (role_present(results, which.numerator) && role_present(results, which.denominator)) {
            shown.push_back(&which);
        }
    }

    // Notes: each distinct reason once, numbered; a cell that did not run points to its note.
    std::vector<std::string> notes;
    auto note_number = [&notes](const std::string& text) {
        auto found = std::ranges::find(notes, text);
        if (found == notes.end()) {
            notes.push_back(text);
            return notes.size();
        }
        return static_cast<std::size_t>(found - notes.begin()) + 1;
    };

    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> header{"program", "size"};
    for (const std::string& column : columns) {
        header.push_back(column + " ns");
    }
    for (const ratio* which : shown) {
        header.push_back(which->name);
    }
    rows.push_back(header);
    for (const program_result& program : results) {
        for (const size_result& size : program.sizes) {
            std::vector<std::string> row{short_name(program.object, program.program), fmt::format("{}", size.size)};
            for (const std::string& column : columns) {
                const auto variant = std::ranges::find(size.variants, column, &variant_result::name);
                if (variant == size.variants.end()) {
                    row.emplace_back("-");
                } else if (variant->ns) {
                    row.push_back(fmt::format("{:.1f}", *variant->ns));
                } else if (variant->role == variant_role::jit && variant->note.find("no JIT") != std::string::npos) {
                    row.emplace_back("n/a (no JIT)");
                    note_number(fmt::format("{}: {}", variant->name, variant->note));
                } else {
                    row.push_back(
                        fmt::format("n/a [{}]", note_number(fmt::format("{}: {}", variant->name, variant->note))));
                }
            }
            for (const ratio* which : shown) {
                const auto value = ratio_of(size, *which);
                row.push_back(value ? fmt::format("{:.2f}", *value) : "n/a");
            }
            if (!size.disagreements.empty()) {
                row.emplace_back("DISAGREE");
            }
            rows.push_back(std::move(row));
        }
    }

    std::vector<std::size_t> widths;
    for (const auto& row : rows) {
        widths.resize(std::max(widths.size(), row.size()));
        for (std::size_t i = 0; i < row.size(); ++i) {
            widths[i] = std::max(widths[i], row[i].size());
        }
    }
    const program_result& first = results.front();
    std::string text = fmt::format("ns per packet (mean over {} packets per size, best of {} trials of {} runs each)\n",
                                   first.settings.packets, first.settings.trials, first.settings.repeat);
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += i < 2 ? fmt::format("{:<{}}  ", row[i], widths[i]) : fmt::format("{:>{}}  ", row[i], widths[i]);
        }
        while (!line.empty() && line.back() == ' ') {
            line.pop_back();
        }
        text += line + '\n';
    }
    for (std::size_t i = 0; i < notes.size(); ++i) {
        text += fmt::format("[{}] {}\n", i + 1, notes[i]);
    }
    text += fmt::format("machine: {} cpus, {}, load average {} at the end of the run\n",
                        std::thread::hardware_concurrency(), cpu_model(), load_average());
    for (const program_result& program : results) {
        for (const size_result& size : program.sizes) {
            for (const std::string& line : size.disagreements) {
                text += fmt::format("DISAGREEMENT {}: {}\n", short_name(program.object, program.program), line);
            }
        }
    }
    return text;
}

nlohmann::json bench_json(std::span<const program_result> results) {
    nlohmann::json programs = nlohmann::json::array();
    for (const program_result& program : results) {
        nlohmann::json sizes = nlohmann::json::array();
        for (const size_result& size : program.sizes) {
            nlohmann::json variants = nlohmann::json::array();
            for (const variant_result& variant : size.variants) {
                nlohmann::json entry{{"name", variant.name}, {"role", role_name(variant.role)}};
                if (variant.ns) {
                    entry["ns"] = *variant.ns;
                }
                if (!variant.note.empty()) {
                    entry["note"] = variant.note;
                }
                variants.push_back(std::move(entry));
            }
            nlohmann::json ratio_values = nlohmann::json::object();
            for (const ratio& which : ratios()) {
                const auto value = ratio_of(size, which);
                ratio_values[which.key] = value ? nlohmann::json(*value) : nlohmann::json(nullptr);
            }
            sizes.push_back({{"size", size.size},
                             {"variants", std::move(variants)},
                             {"ratios", std::move(ratio_values)},
                             {"agreed", size.disagreements.empty()},
                             {"disagreements", size.disagreements}});
        }
        programs.push_back({{"object", program.object},
                            {"program", program.program},
                            {"packets", program.settings.packets},
                            {"repeat", program.settings.repeat},
                            {"trials", program.settings.trials},
                            {"traffic", program.settings.traffic},
                            {"sizes", std::move(sizes)}});
    }
    return {{"date", iso_date_utc()},
            {"machine",
             {{"cpus", std::thread::hardware_concurrency()}, {"model", cpu_model()}, {"load_average", load_average()}}},
            {"programs", std::move(programs)}};
}

expected<void> write_bench_png(std::span<const program_result> results, const std::string& path) {
    std::vector<std::string> columns;
    for (const program_result& program : results) {
        for (const size_result& size : program.sizes) {
            for (const variant_result& variant : size.variants) {
                if (variant.ns && std::ranges::find(columns, variant.name) == columns.end()) {
                    columns.push_back(variant.name);
                }
            }
        }
    }
    if (columns.empty()) {
        return error{"no variant has a time to draw"};
    }
    char directory_template[] = "/tmp/sluice-bench-XXXXXX";
    if (::mkdtemp(directory_template) == nullptr) {
        return error{fmt::format("cannot make a temporary directory: {}", std::strerror(errno))};
    }
    const std::filesystem::path directory = directory_template;
    const std::filesystem::path data = directory / "bench.dat";
    const std::filesystem::path script = directory / "bench.gp";
    {
        std::ofstream out(data);
        out << "group";
        for (const std::string& column : columns) {
            out << '\t' << '"' << column << '"';
        }
        out << '\n';
        for (const program_result& program : results) {
            for (const size_result& size : program.sizes) {
                out << '"' << short_name(program.object, program.program) << ' ' << size.size << "B\"";
                for (const std::string& column : columns) {
                    const auto variant = std::ranges::find(size.variants, column, &variant_result::name);
                    out << '\t';
                    if (variant != size.variants.end() && variant->ns) {
                        out << fmt::format("{:.2f}", *variant->ns);
                    } else {
                        out << '?'; // gnuplot's missing value: no bar
                    }
                }
                out << '\n';
            }
        }
    }
    {
        std::ofstream out(script);
        const std::size_t groups = [&] {
            std::size_t count = 0;
            for (const program_result& program : results) {
                count += program.sizes.size();
            }
            return count;
        }();
        out << fmt::format("set terminal pngcairo noenhanced size {},600 font 'sans,9'\n",
                           std::max<std::size_t>(800, groups * 90));
        out << "set output '" << path << "'\n";
        out << "set title 'sluice bench: ns per packet (log scale; lower is better)'\n";
        out << "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n";
        out << "set datafile missing '?'\nset logscale y\nset ylabel 'ns per packet'\nset grid ytics\n";
        out << "set xtics rotate by -30\nset key outside right top\nset boxwidth 0.9\n";
        out << "plot for [i=2:" << columns.size() + 1 << "] '" << data.string()
            << "' using i:xtic(1) title columnheader(i)\n";
    }
    const std::string command = fmt::format("gnuplot '{}' 2>&1", script.string());
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
        return error{fmt::format("cannot start gnuplot: {}", std::strerror(errno))};
    }
    std::string output;
    char buffer[256];
    while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) {
        output += buffer;
    }
    const int status = ::pclose(pipe);
    std::error_code ignored;
    std::filesystem::remove_all(directory, ignored);
    if (status != 0) {
        return error{
            fmt::format("gnuplot failed (is gnuplot-nox installed?): {}", output.empty() ? "no output" : output)};
    }
    return {};
}

} // namespace sluice::cli
