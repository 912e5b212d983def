// The program factory of `sluice run` (program_factory.hpp).
#include "program_factory.hpp"

#include <fmt/format.h>

namespace sluice::cli {

bool is_lua_script(std::string_view path) {
    return path.ends_with(".lua");
}

expected<std::unique_ptr<xdp::batch_program>> make_program(const program_options& options, unsigned worker,
                                                           ebpf::execution_state& state) {
    if (is_lua_script(options.path)) {
        // One Lua state per worker. Maps the script declares belong to its state, so with several workers each has
        // its own (as per-CPU maps are); maps of an eBPF object given in options.object are shared.
        lua::options settings = options.script;
        if (options.object != nullptr && !options.object->maps().empty()) {
            settings.object = options.object;
        }
        auto made = lua::script_program::load_file(options.path, state, settings);
        if (!made) {
            return error{fmt::format("{} (worker {}): {}", options.path, worker, made.error().message)};
        }
        return std::unique_ptr<xdp::batch_program>(std::make_unique<lua::script_program>(std::move(*made)));
    }
    if (options.object == nullptr || options.program == nullptr) {
        return error{fmt::format("{}: no program to run", options.path)};
    }
    auto made =
        xdp::executor::create(*options.object, *options.program, ebpf::xdp_helper_table(), state, options.executor);
    if (!made) {
        return error{fmt::format("{}: program '{}' (worker {}): {}", options.path, options.program->name, worker,
                                 made.error().message)};
    }
    return std::unique_ptr<xdp::batch_program>(std::make_unique<xdp::executor>(std::move(*made)));
}

} // namespace sluice::cli
