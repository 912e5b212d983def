// `sluice run PROG.o --in pcap:FILE|gen:SPEC [--out ACTION=FILE ...]`: an unmodified XDP object over packets, in the
// interpreter, with a per-action count table at the end (JSON with --json). The full option list is in --help and
// in run_command.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace sluice::cli {

/// Adds the `run` subcommand to `app`; it runs when the command line selects it.
void add_run_command(CLI::App& app);

} // namespace sluice::cli
