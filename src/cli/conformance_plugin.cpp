// sluice_conformance_plugin: the executable the standard bpf_conformance runner starts once per test
// (protocol in ../shared/bpf-conformance/PLUGIN.md).
//
//   sluice_conformance_plugin [MEM_HEX] [--interpret | --jit] [--elf]   < program
//
// Stdin holds the program as hex bytes or, with --elf, a whole ELF object whose code is in `.text`. On success the
// plugin prints r0 in hex (no 0x) and a newline, and exits 0; on any failure it prints the error on stdout and exits
// non-zero, because the runner compares stdout with a test's `-- error` text. The program runs in checked mode:
// nothing has verified it, and a crash would count against us. --jit runs it through the x86-64 JIT instead,
// unchecked (the suite's programs are well-behaved; an arbitrary program could crash the plugin).

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>

#include "sluice/ebpf/conformance.hpp"

namespace {

using namespace sluice::ebpf;

/// Hex bytes separated by any whitespace ("00  01 ff"); nullopt on anything else.
std::optional<std::vector<std::uint8_t>> decode_hex(std::string_view text) {
    std::vector<std::uint8_t> bytes;
    std::istringstream input{std::string(text)};
    std::string token;
    while (input >> token) {
        if (token.size() != 2 || !std::isxdigit(static_cast<unsigned char>(token[0])) ||
            !std::isxdigit(static_cast<unsigned char>(token[1]))) {
            return std::nullopt;
        }
        bytes.push_back(static_cast<std::uint8_t>(std::stoul(token, nullptr, 16)));
    }
    return bytes;
}

/// The bytes of section `.text` of an ELF object held in memory.
sluice::expected<std::vector<std::uint8_t>> text_section(std::string& object) {
    if (elf_version(EV_CURRENT) == EV_NONE) {
        return sluice::error{"libelf is unusable"};
    }
    Elf* elf = elf_memory(object.data(), object.size());
    if (elf == nullptr || elf_kind(elf) != ELF_K_ELF) {
        if (elf != nullptr) {
            elf_end(elf);
        }
        return sluice::error{"stdin is not an ELF object"};
    }
    std::size_t names = 0;
    std::optional<std::vector<std::uint8_t>> code;
    if (elf_getshdrstrndx(elf, &names) == 0) {
        for (Elf_Scn* section = elf_nextscn(elf, nullptr); section != nullptr; section = elf_nextscn(elf, section)) {
            GElf_Shdr header;
            if (gelf_getshdr(section, &header) == nullptr) {
                continue;
            }
            const char* name = elf_strptr(elf, names, header.sh_name);
            if (name == nullptr || std::strcmp(name, ".text") != 0) {
                continue;
            }
            code.emplace();
            for (Elf_Data* data = elf_getdata(section, nullptr); data != nullptr; data = elf_getdata(section, data)) {
                const auto* begin = static_cast<const std::uint8_t*>(data->d_buf);
                if (begin != nullptr) {
                    code->insert(code->end(), begin, begin + data->d_size);
                }
            }
            break;
        }
    }
    elf_end(elf);
    if (!code) {
        return sluice::error{"the ELF object has no .text section"};
    }
    return *code;
}

// The runner reads the error from stdout (stderr only when stdout is empty), so failures go to stdout.
int fail(std::string_view message) {
    std::cout << message << '\n';
    return 1;
}

// Generous for the suite's loops, yet a program that never ends fails in well under a second instead of hanging.
constexpr std::uint64_t instruction_limit = 100'000'000;

} // namespace

int main(int argc, char** argv) {
    std::optional<std::vector<std::uint8_t>> memory;
    bool elf_mode = false;
    bool jit = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view argument = argv[i];
        if (argument.empty()) {
            continue; // the runner splits its options on single spaces, which can leave empty arguments
        }
        if (argument == "--interpret") {
            jit = false;
            continue;
        }
        if (argument == "--jit") {
            jit = true;
            continue;
        }
        if (argument == "--elf") {
            elf_mode = true;
        } else if (i == 1 && !argument.starts_with("--")) {
            memory = decode_hex(argument);
            if (!memory) {
                return fail("the memory argument is not hex bytes");
            }
        } else {
            return fail(fmt::format("unknown option '{}' (options: --interpret, --jit, --elf)", argument));
        }
    }

    std::string input{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    std::vector<std::uint8_t> bytes;
    if (elf_mode) {
        auto text = text_section(input);
        if (!text) {
            return fail(text.error().message);
        }
        bytes = std::move(text.value());
    } else {
        auto decoded = decode_hex(input);
        if (!decoded) {
            return fail("stdin is not a program in hex bytes");
        }
        bytes = std::move(*decoded);
    }
    if (bytes.empty() || bytes.size() % sizeof(instruction) != 0) {
        return fail(fmt::format("the program is {} bytes, not a whole number of 8-byte instructions", bytes.size()));
    }
    std::vector<instruction> code(bytes.size() / sizeof(instruction));
    std::memcpy(code.data(), bytes.data(), bytes.size());

    std::vector<std::uint8_t> no_memory;
    const auto result = jit ? run_conformance_program_jit(code, memory ? *memory : no_memory)
                            : run_conformance_program(code, memory ? *memory : no_memory, instruction_limit);
    if (!result) {
        return fail(result.error().message);
    }
    std::cout << fmt::format("{:x}\n", result.value());
    return 0;
}
