// The program factory of `sluice run` (program_factory.hpp).
#include "program_factory.hpp"

#include <fmt/format.h>

namespace sluice::cli {

expected<std::unique_ptr<xdp::batch_program>> make_program(const program_options& options, unsigned worker,
                                                           ebpf::execution_state& state) {
    if (options.object == nullptr || options.program == nullptr) {
        return error{fmt::format("{}: no program to run", options.path)};
    }
    auto made = xdp::executor::create(*options.object, *options.program, ebpf::xdp_helper_table(), state,
                                      options.executor);
    if (!made) {
        return error{fmt::format("{}: program '{}' (worker {}): {}", options.path, options.program->name, worker,
                                 made.error().message)};
    }
    return std::unique_ptr<xdp::batch_program>(std::make_unique<xdp::executor>(std::move(*made)));
}

} // namespace sluice::cli
