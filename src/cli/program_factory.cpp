// The program factory of `sluice run` (program_factory.hpp).
#include "program_factory.hpp"

#include <fmt/format.h>

#include <optional>

namespace sluice::cli {
namespace {

/// An eBPF program with a Lua script beside it for bpf_sluice_lua (same worker, same execution state): the executor
/// runs the batches; the script serves the kfunc calls. Members in this order: the executor goes first.
class chained_program final : public xdp::batch_program {
public:
    chained_program(lua::script_program script, xdp::executor executor)
        : _script(std::move(script)), _executor(std::move(executor)) {
        _script.attach_chaining();
    }

    lua::script_program& script() { return _script; }

    void run_batch(std::span<xdp::frame* const> frames, std::span<xdp::action> out) override {
        _executor.run_batch(frames, out);
    }
    std::span<const ebpf::redirect_decision> redirect_decisions() const override {
        return _executor.redirect_decisions();
    }
    void count_port_errors(std::uint64_t packets, std::uint64_t bytes) override {
        _executor.count_port_errors(packets, bytes);
    }
    const xdp::executor_stats& stats() const override { return _executor.stats(); }

private:
    lua::script_program _script;
    xdp::executor _executor;
};

} // namespace

bool is_lua_script(std::string_view path) {
    return path.ends_with(".lua");
}

expected<std::unique_ptr<xdp::batch_program>> make_program(const program_options& options, unsigned worker,
                                                           ebpf::execution_state& state) {
    if (is_lua_script(options.path)) {
        // One Lua state per worker. The maps the script declares are in options.script.maps, the run's registry:
        // the first worker's state creates them, the others get the same maps (per-CPU ones with a slot per worker).
        lua::options settings = options.script;
        if (options.object != nullptr && !options.object->maps().empty()) {
            settings.object = options.object;
        }
        auto made = lua::script_program::load_file(options.path, state, settings);
        if (!made) {
            return error{fmt::format("{} (worker {}): {}", options.path, worker, made.error().message)};
        }
        auto program = std::make_unique<lua::script_program>(std::move(*made));
        if (options.scripts) {
            options.scripts->add(*program);
        }
        return std::unique_ptr<xdp::batch_program>(std::move(program));
    }
    if (options.object == nullptr || options.program == nullptr) {
        return error{fmt::format("{}: no program to run", options.path)};
    }
    std::optional<lua::script_program> chained;
    if (!options.chained_script.empty()) {
        lua::options settings = options.script;
        settings.object = options.object; // the script may open the object's maps
        auto script = lua::script_program::load_file(options.chained_script, state, settings);
        if (!script) {
            return error{
                fmt::format("--lua {} (worker {}): {}", options.chained_script, worker, script.error().message)};
        }
        chained.emplace(std::move(*script));
    }
    auto made =
        xdp::executor::create(*options.object, *options.program, ebpf::xdp_helper_table(), state, options.executor);
    if (!made) {
        return error{fmt::format("{}: program '{}' (worker {}): {}", options.path, options.program->name, worker,
                                 made.error().message)};
    }
    if (chained) {
        auto program = std::make_unique<chained_program>(std::move(*chained), std::move(*made));
        if (options.scripts) {
            options.scripts->add(program->script());
        }
        return std::unique_ptr<xdp::batch_program>(std::move(program));
    }
    return std::unique_ptr<xdp::batch_program>(std::make_unique<xdp::executor>(std::move(*made)));
}

} // namespace sluice::cli
