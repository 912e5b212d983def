// How `sluice run` makes the program each worker runs on the XDP hook: one function, so that each program type (an
// eBPF object today, a Lua script next) is one branch here and the rest of `sluice run` does not change.
#pragma once

#include <memory>
#include <string>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"
#include "sluice/lua/script_group.hpp"
#include "sluice/lua/script_program.hpp"
#include "sluice/xdp/batch_program.hpp"
#include "sluice/xdp/executor.hpp"

namespace sluice::cli {

struct program_options {
    std::string path;                      ///< the file given to `sluice run`
    const ebpf::loaded_object* object{};   ///< eBPF: the loaded object (lives as long as the programs)
    const ebpf::loaded_program* program{}; ///< eBPF: the program to run on the hook
    xdp::executor_options executor;        ///< eBPF: checked mode, engine, instruction limit
    /// Lua (a `.lua` path, or chained_script): engine, budget, config, and the run's script_maps registry
    /// (script.maps), shared by every worker's state so that a declared map is one map for the run.
    lua::options script;
    std::string chained_script; ///< eBPF: a Lua script whose functions bpf_sluice_lua calls (sluice run --lua)
    /// Every Lua program made is added here (the run's reload and report); may be null. The group points at the
    /// programs: it must not be used once they are gone.
    std::shared_ptr<lua::script_group> scripts;
};

/// A Lua script rather than an eBPF object: the path ends in `.lua`.
bool is_lua_script(std::string_view path);

/// The program worker `worker` runs; `state` is that worker's execution state (cpu = worker), which outlives it.
/// Errors name the file and the program.
expected<std::unique_ptr<xdp::batch_program>> make_program(const program_options& options, unsigned worker,
                                                           ebpf::execution_state& state);

} // namespace sluice::cli
