// Reading the verifier's corpus (tests/ebpf/verifier/{unsafe,safe}/*.txt), for the tests that run it: sluice's
// verifier (verifier/corpus_test.cpp) and the kernel's (verifier_kernel/kernel_comparison_test.cpp). Header-only and
// test-only; SLUICE_VERIFIER_CORPUS_DIR names the folder that holds unsafe/ and safe/. Each case:
//
//   == name
//   -- maps              (optional) one map per line: NAME TYPE key=K value=V entries=E [flags=F]
//   -- options           (optional) attach=devmap, limit=N (complexity limit)
//   -- asm               conformance-syntax assembly, relocated as the loader leaves code: maps as `map:I`,
//                        global data as `map_value:I:OFFSET`, callbacks as `func:LABEL`; the context is sluice's
//                        rewritten layout (data at [r1+0], data_end at [r1+8], data_meta at [r1+16], 8 bytes each)
//   -- error             each line must appear in the rejection (unsafe)
//   -- at                (optional) the instruction the rejection must name
//   -- accept            (safe)
//
// Outside `-- asm`, blank lines and lines starting with '#' are skipped. An unknown map type, map field or option
// fails the calling test, so that a typo in the corpus cannot quietly change a case.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/ebpf/maps.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::ebpf::verifier_corpus {

struct corpus_case {
    std::string file; ///< the file's stem: unsafe/packet.txt gives "packet"
    std::string name;
    std::vector<map_definition> maps;
    std::string assembly;
    std::vector<std::string> expected_words;
    std::optional<std::size_t> at;
    bool accept{};
    xdp_attach attach{xdp_attach::device};
    std::uint64_t limit{1'000'000};

    /// "file/name", unique in a folder.
    std::string id() const { return file + "/" + name; }
};

// gtest prints a case by its name rather than its bytes.
inline void PrintTo(const corpus_case& c, std::ostream* out) {
    *out << c.id();
}

inline std::string corpus_trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t\r") - first + 1);
}

inline map_type corpus_map_type(const std::string& name) {
    static const std::map<std::string, map_type> types{
        {"hash", map_type::hash},
        {"array", map_type::array},
        {"prog_array", map_type::prog_array},
        {"percpu_hash", map_type::percpu_hash},
        {"percpu_array", map_type::percpu_array},
        {"lru_hash", map_type::lru_hash},
        {"lpm_trie", map_type::lpm_trie},
        {"queue", map_type::queue},
        {"stack", map_type::stack},
        {"ringbuf", map_type::ringbuf},
        {"devmap", map_type::devmap},
    };
    const auto found = types.find(name);
    EXPECT_NE(found, types.end()) << "unknown map type " << name;
    return found == types.end() ? map_type::array : found->second;
}

/// One line of `-- maps`: NAME TYPE key=K value=V entries=E [flags=F].
inline map_definition corpus_map(const std::string& line) {
    std::istringstream words(line);
    map_definition definition;
    std::string type;
    words >> definition.name >> type;
    definition.type = corpus_map_type(type);
    std::string field;
    while (words >> field) {
        const auto equals = field.find('=');
        const std::string key = field.substr(0, equals);
        const auto value = static_cast<std::uint32_t>(std::stoul(field.substr(equals + 1), nullptr, 0));
        if (key == "key") {
            definition.key_size = value;
        } else if (key == "value") {
            definition.value_size = value;
        } else if (key == "entries") {
            definition.max_entries = value;
        } else if (key == "flags") {
            definition.map_flags = value;
        } else {
            ADD_FAILURE() << "unknown map field " << key;
        }
    }
    return definition;
}

/// Every case of SLUICE_VERIFIER_CORPUS_DIR/`folder`/*.txt, files in name order, cases in file order.
inline std::vector<corpus_case> read_corpus(const std::string& folder) {
    std::vector<corpus_case> cases;
    std::vector<std::filesystem::path> files;
    for (const auto& entry :
         std::filesystem::directory_iterator(std::string(SLUICE_VERIFIER_CORPUS_DIR) + "/" + folder)) {
        if (entry.path().extension() == ".txt") {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
        std::ifstream in(path);
        std::string line;
        std::string section;
        while (std::getline(in, line)) {
            if (line.starts_with("== ")) {
                corpus_case next;
                next.file = path.stem().string();
                next.name = corpus_trim(line.substr(3));
                cases.push_back(std::move(next));
                section.clear();
                continue;
            }
            if (line.starts_with("-- ")) {
                section = corpus_trim(line.substr(3));
                if (!cases.empty() && section == "accept") {
                    cases.back().accept = true;
                }
                continue;
            }
            if (cases.empty()) {
                continue; // the file's heading comments
            }
            corpus_case& current = cases.back();
            const std::string text = corpus_trim(line);
            if (section == "asm") {
                current.assembly += line + "\n";
            } else if (text.empty() || text.starts_with("#")) {
                continue;
            } else if (section == "maps") {
                current.maps.push_back(corpus_map(text));
            } else if (section == "error") {
                current.expected_words.push_back(text);
            } else if (section == "at") {
                current.at = std::stoul(text);
            } else if (section == "options") {
                if (text == "attach=devmap") {
                    current.attach = xdp_attach::devmap;
                } else if (text.starts_with("limit=")) {
                    current.limit = std::stoull(text.substr(6));
                } else {
                    ADD_FAILURE() << "unknown option " << text;
                }
            }
        }
    }
    return cases;
}

} // namespace sluice::ebpf::verifier_corpus
