// Test-only tool for the plugin test: reads one .data file and prints, on three lines, what the standard runner
// would hand the plugin and expect back:
//   1. the memory as hex bytes, or "-" when the file has no -- mem section (the plugin then gets no MEM_HEX);
//   2. the assembled program as hex bytes (the runner's stdin);
//   3. "result HEX" (r0 in lowercase hex without 0x) or "error TEXT".
// Exits non-zero with a message on stderr when the file cannot be read or assembled.

#include <cstring>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "conformance_data.hpp"
#include "sluice/ebpf/assembler.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: conformance_hex FILE.data\n";
        return 2;
    }
    const auto text = sluice::ebpf::testing::read_text_file(argv[1]);
    if (!text) {
        std::cerr << argv[1] << ": cannot read\n";
        return 1;
    }
    std::string problem;
    const auto test = sluice::ebpf::testing::parse_conformance(*text, problem);
    if (!test) {
        std::cerr << argv[1] << ": " << problem << '\n';
        return 1;
    }
    const auto code = sluice::ebpf::assemble(test->assembly);
    if (!code) {
        std::cerr << argv[1] << ": " << code.error().message << '\n';
        return 1;
    }
    // Two spaces after each byte, as the runner writes them.
    std::string memory = test->has_memory ? std::string{} : std::string{"-"};
    for (const std::uint8_t byte : test->memory) {
        memory += fmt::format("{:02x}  ", byte);
    }
    std::string program;
    for (const sluice::ebpf::instruction& ins : *code) {
        unsigned char bytes[sizeof ins];
        std::memcpy(bytes, &ins, sizeof ins);
        for (const unsigned char byte : bytes) {
            program += fmt::format("{:02x}  ", byte);
        }
    }
    std::cout << memory << '\n' << program << '\n';
    if (test->error) {
        std::cout << "error " << *test->error << '\n';
    } else {
        std::cout << fmt::format("result {:x}\n", *test->result);
    }
    return 0;
}
