// `sluice disasm FILE.o [--section NAME] [--json]`: the instructions of a BPF object, as llvm-objdump -d prints them,
// with BTF source lines and relocations between them.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::cli {

/// Adds the `disasm` subcommand to `app`; it runs when the command line selects it.
void add_disasm_command(CLI::App& app);

} // namespace sluice::cli
