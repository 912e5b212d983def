// Reading one bpf_conformance `.data` file (format in ../shared/bpf-conformance/PLUGIN.md), for the ctest runner and
// the tool that feeds the plugin test. Header-only and test-only: the engine itself never reads these files.
//
// Sections: `-- asm`, `-- mem` (hex bytes), `-- result` (hex with 0x, or decimal), `-- error` (text), `-- raw`
// (64-bit words, one per line). Any other section (`-- c`, `-- no register offset`) is information and is skipped.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::ebpf::testing {

struct conformance_case {
    std::string assembly;
    std::vector<std::uint8_t> memory;
    bool has_memory{};
    std::optional<std::uint64_t> result;
    std::optional<std::string> error;
    std::vector<std::uint64_t> raw;
};

inline std::string trim_text(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

/// Parses the text of a .data file; returns nullopt (with `problem` set) when a section cannot be read.
inline std::optional<conformance_case> parse_conformance(const std::string& text, std::string& problem) {
    conformance_case parsed;
    std::istringstream input(text);
    std::string line;
    std::string section;
    while (std::getline(input, line)) {
        if (line.starts_with("--")) {
            section = trim_text(line.substr(2));
            if (section == "mem") {
                parsed.has_memory = true;
            }
            // "-- error TEXT" may carry its text on the same line.
            if (section.starts_with("error")) {
                const std::string inline_text = trim_text(section.substr(5));
                section = "error";
                if (!inline_text.empty()) {
                    parsed.error = inline_text;
                }
            }
            continue;
        }
        if (section == "asm") {
            parsed.assembly += line;
            parsed.assembly += '\n';
            continue;
        }
        // Outside assembly (where '#' starts a comment the assembler handles), skip comment lines.
        const std::string content = trim_text(line);
        if (content.empty() || content.starts_with('#')) {
            continue;
        }
        try {
            if (section == "mem") {
                std::istringstream bytes(content);
                std::string byte;
                while (bytes >> byte) {
                    parsed.memory.push_back(static_cast<std::uint8_t>(std::stoul(byte, nullptr, 16)));
                }
            } else if (section == "result") {
                parsed.result = content.starts_with("0x") || content.starts_with("0X")
                                    ? std::stoull(content, nullptr, 16)
                                    : static_cast<std::uint64_t>(std::stoll(content, nullptr, 10));
            } else if (section == "error") {
                parsed.error = parsed.error ? *parsed.error + "\n" + content : content;
            } else if (section == "raw") {
                parsed.raw.push_back(std::stoull(content, nullptr, 16));
            }
        } catch (const std::exception&) {
            problem = "cannot read '" + content + "' in section -- " + section;
            return std::nullopt;
        }
    }
    if (!parsed.result && !parsed.error) {
        problem = "no -- result or -- error section";
        return std::nullopt;
    }
    return parsed;
}

inline std::optional<std::string> read_text_file(const std::string& path) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return std::nullopt;
    }
    std::ostringstream contents;
    contents << file.rdbuf();
    return contents.str();
}

} // namespace sluice::ebpf::testing
