// The object options the commands share (object_options.hpp).
#include "object_options.hpp"

#include <fmt/format.h>

#include "sluice/ebpf/helpers.hpp"

namespace sluice::cli {

expected<void> apply_rodata(ebpf::object_spec& spec, const std::vector<std::string>& assignments) {
    for (const std::string& assignment : assignments) {
        if (auto done = spec.set_rodata(assignment); !done) {
            return error{fmt::format("--set {}: {}", assignment, done.error().message)};
        }
    }
    return {};
}

expected<void> apply_prog_arrays(ebpf::object_spec& spec, const std::vector<std::string>& assignments) {
    for (const std::string& assignment : assignments) {
        if (auto done = spec.set_prog_array_slot(assignment); !done) {
            return error{fmt::format("--prog-array {}: {}", assignment, done.error().message)};
        }
    }
    return {};
}

ebpf::load_options xdp_load_options(unsigned cpus) {
    ebpf::load_options options;
    options.cpus = cpus;
    options.check_program = [](const ebpf::program_spec& program) -> expected<void> {
        if (auto checked = ebpf::check_helper_calls(program.code, ebpf::xdp_helper_table()); !checked) {
            return error{fmt::format("program {}: {}", program.name, checked.error().message)};
        }
        return {};
    };
    return options;
}

} // namespace sluice::cli
