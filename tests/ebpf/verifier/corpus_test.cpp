// The verifier's corpus, as data: unsafe/*.txt holds programs that must be rejected with the key words of their
// message, safe/*.txt programs that must be accepted (so that the verifier is not merely strict). Each case:
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
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::ebpf {
namespace {

struct corpus_case {
    std::string file;
    std::string name;
    std::vector<map_definition> maps;
    std::string assembly;
    std::vector<std::string> expected_words;
    std::optional<std::size_t> at;
    bool accept{};
    xdp_attach attach{xdp_attach::device};
    std::uint64_t limit{1'000'000};
};

std::string trim(const std::string& text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r");
    return text.substr(first, last - first + 1);
}

map_type parse_map_type(const std::string& name) {
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

map_definition parse_map(const std::string& line) {
    std::istringstream words(line);
    map_definition definition;
    std::string type;
    words >> definition.name >> type;
    definition.type = parse_map_type(type);
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

std::vector<corpus_case> read_corpus(const std::string& folder) {
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
                next.name = trim(line.substr(3));
                cases.push_back(std::move(next));
                section.clear();
                continue;
            }
            if (line.starts_with("-- ")) {
                section = trim(line.substr(3));
                if (!cases.empty() && section == "accept") {
                    cases.back().accept = true;
                }
                continue;
            }
            if (cases.empty()) {
                continue; // the file's heading comments
            }
            corpus_case& current = cases.back();
            const std::string text = trim(line);
            if (section == "asm") {
                current.assembly += line + "\n";
            } else if (text.empty() || text.starts_with("#")) {
                continue;
            } else if (section == "maps") {
                current.maps.push_back(parse_map(text));
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

// gtest prints a case by its name rather than its bytes.
void PrintTo(const corpus_case& c, std::ostream* out) {
    *out << c.file << "/" << c.name;
}

expected<verification_result> verify_case(const corpus_case& c) {
    auto code = assemble(c.assembly);
    if (!code) {
        ADD_FAILURE() << c.file << "/" << c.name << ": does not assemble: " << code.error().message;
        return code.error();
    }
    verifier_input input;
    input.code = *code;
    input.maps = c.maps;
    input.attach = c.attach;
    verifier_options options;
    options.complexity_limit = c.limit;
    return verify(input, options);
}

std::string test_name(const ::testing::TestParamInfo<corpus_case>& info) {
    std::string name = info.param.file + "_" + info.param.name;
    for (char& ch : name) {
        if (std::isalnum(static_cast<unsigned char>(ch)) == 0) {
            ch = '_';
        }
    }
    return name;
}

const std::vector<corpus_case>& unsafe_cases() {
    static const std::vector<corpus_case> cases = read_corpus("unsafe");
    return cases;
}

const std::vector<corpus_case>& safe_cases() {
    static const std::vector<corpus_case> cases = read_corpus("safe");
    return cases;
}

TEST(VerifierCorpus, IsLargeEnough) {
    EXPECT_GE(unsafe_cases().size(), 40U);
    EXPECT_GE(safe_cases().size(), 10U);
    for (const corpus_case& c : unsafe_cases()) {
        EXPECT_FALSE(c.accept) << c.name;
        EXPECT_FALSE(c.expected_words.empty()) << c.file << "/" << c.name << " checks no words of its message";
    }
}

class UnsafeProgram : public ::testing::TestWithParam<corpus_case> {};

TEST_P(UnsafeProgram, IsRejectedWithItsReason) {
    const corpus_case& c = GetParam();
    auto result = verify_case(c);
    ASSERT_FALSE(result) << c.name << " was accepted";
    const std::string& message = result.error().message;
    if (std::getenv("SLUICE_VERIFIER_PRINT") != nullptr) {
        std::printf("---- %s/%s\n%s\n", c.file.c_str(), c.name.c_str(), message.c_str());
    }
    for (const std::string& words : c.expected_words) {
        EXPECT_NE(message.find(words), std::string::npos) << "missing \"" << words << "\" in:\n" << message;
    }
    EXPECT_TRUE(result.error().instruction.has_value()) << message;
    if (c.at) {
        EXPECT_EQ(result.error().instruction, c.at) << message;
    }
    // Every rejection names the instruction first, and says what to change unless the program is malformed.
    EXPECT_TRUE(message.starts_with("instruction ")) << message;
}

INSTANTIATE_TEST_SUITE_P(Corpus, UnsafeProgram, ::testing::ValuesIn(unsafe_cases()), test_name);

class SafeProgram : public ::testing::TestWithParam<corpus_case> {};

TEST_P(SafeProgram, IsAccepted) {
    const corpus_case& c = GetParam();
    auto result = verify_case(c);
    ASSERT_TRUE(result) << c.name << " was rejected:\n" << result.error().message;
    EXPECT_TRUE(result->facts[0].reachable);
}

INSTANTIATE_TEST_SUITE_P(Corpus, SafeProgram, ::testing::ValuesIn(safe_cases()), test_name);

} // namespace
} // namespace sluice::ebpf
