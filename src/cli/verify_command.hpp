// `sluice verify PROG.o [--program NAME] [--log-level 0|1|2] [--json]`: the verifier's verdict on every XDP program
// of an object (or one), as `bpftool prog load` shows the kernel's: "program X: verified (N instructions processed,
// S states, in T ms)", or the rejection with its explanation and exit status 1. And sluice run's verification step,
// which decides whether a program may run without checked mode.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"

namespace sluice::cli {

/// Adds the `verify` subcommand to `app`; it runs when the command line selects it.
void add_verify_command(CLI::App& app);

/// What sluice run's verification step proved.
struct run_verification {
    std::vector<std::string> programs; ///< every program verified: the one that runs first, then tail-call targets
    std::uint64_t instructions_processed{};
    double milliseconds{};
};

/// sluice run's verification step: verifies `program` and every program a tail call may reach from it. The executor
/// registers every program of the object as a tail-call target and prog_array slots may be filled from the command
/// line, so when the object has a prog_array every one of its programs must verify (as bpf_object__load loads them
/// all); without one, only `program` runs. The error names the rejected program and carries the verifier's
/// explanation; programs that pass may run without checked mode.
expected<run_verification> verify_for_run(const ebpf::loaded_object& object, const ebpf::loaded_program& program);

} // namespace sluice::cli
