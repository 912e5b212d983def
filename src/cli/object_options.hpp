// The object options `sluice run`, `sluice verify` and `sluice bench` share: --set NAME=VALUE on .rodata variables,
// --prog-array MAP[INDEX]=PROGRAM slots, and the load that refuses a call to a helper sluice lacks. Each returns an
// error naming the option that failed, so that every command reports it the same way.
#pragma once

#include <string>
#include <vector>

#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"

namespace sluice::cli {

/// Applies each `--set NAME=VALUE` to the object's .rodata, in order; the first failure names its assignment.
expected<void> apply_rodata(ebpf::object_spec& spec, const std::vector<std::string>& assignments);

/// Applies each `--prog-array MAP[INDEX]=PROGRAM`, in order; the first failure names its assignment.
expected<void> apply_prog_arrays(ebpf::object_spec& spec, const std::vector<std::string>& assignments);

/// Load options for an XDP program run by sluice: `cpus` per-CPU slots (one per worker), and every program's helper
/// calls checked against the XDP helper table, so that a helper sluice lacks is a load error naming the program.
ebpf::load_options xdp_load_options(unsigned cpus);

} // namespace sluice::cli
