// A Lua twin loaded to run exactly as its eBPF original does in a benchmark: the same knobs and the same map contents.
//
// load_lua_twin() loads `script` (examples/NAME.lua) for `state` and gives it what the eBPF object `reference` holds
// after its --map files and --set knobs (cli::load_bench_object): each .rodata knob becomes an entry of the script's
// `config` table (as a number), and the entries of each of the object's maps are copied into the map the script
// declares under the same name (a map the script lacks is skipped; one of another key or value size is an error).
// Used by sluice_lua_bench's ns-per-packet variants and its veth section, so both start from the same state.
#pragma once

#include <string>

#include "bench_command.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/expected.hpp"
#include "sluice/lua/script_program.hpp"

namespace sluice::bench {

expected<lua::script_program> load_lua_twin(const cli::bench_object& reference, const std::string& script,
                                            lua::engine kind, ebpf::execution_state& state);

} // namespace sluice::bench
