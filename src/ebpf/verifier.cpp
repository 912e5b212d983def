// verify(): the encoding check, the program's static structure, then the path exploration (verifier/analyzer.hpp).
#include "sluice/ebpf/verifier.hpp"

#include <fmt/format.h>

#include "ebpf/verifier/analyzer.hpp"
#include "ebpf/verifier/messages.hpp"
#include "ebpf/verifier/program_structure.hpp"
#include "sluice/ebpf/disassembler.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf {
namespace {

std::string describe_location(const void* context, std::size_t pc) {
    const auto& input = *static_cast<const verifier_input*>(context);
    std::string text = fmt::format("instruction {}: {}", pc, disassemble(input.code, pc));
    if (const std::string source = verifier_detail::source_of(input.lines, pc); !source.empty()) {
        text += fmt::format("    ({})", source);
    }
    return text;
}

int helper_arguments(std::uint32_t id) {
    const verifier_detail::helper_proto* proto = verifier_detail::find_helper_proto(id);
    if (proto == nullptr) {
        return 5;
    }
    int count = 0;
    while (count < 5 && proto->args[static_cast<std::size_t>(count)] != verifier_detail::arg_type::none) {
        ++count;
    }
    return count;
}

} // namespace

verifier_input verifier_input::of(const loaded_program& program, const loaded_object& object,
                                  std::vector<map_definition>& definitions_storage) {
    definitions_storage.clear();
    for (const auto& created : object.maps()) {
        definitions_storage.push_back(created->definition());
    }
    verifier_input input;
    input.code = program.relocated;
    input.maps = definitions_storage;
    input.lines = program.lines;
    input.functions = program.functions;
    input.attach = program.kind.attach;
    return input;
}

expected<verification_result> verify(const verifier_input& input, const verifier_options& options) {
    if (input.code.empty()) {
        return error{"the program has no instructions"};
    }
    if (auto valid = validate(input.code); !valid) {
        // validate() names the instruction; say it as the verifier's other messages do.
        std::string reason = valid.error().message;
        if (valid.error().instruction) {
            const std::string prefix = fmt::format("instruction {}: ", *valid.error().instruction);
            if (reason.starts_with(prefix)) {
                reason = reason.substr(prefix.size());
            }
            return error::at(*valid.error().instruction,
                             fmt::format("{}\n{}", describe_location(&input, *valid.error().instruction), reason));
        }
        return valid.error();
    }
    auto structure =
        verifier_detail::analyse_structure(input.code, input.functions, &describe_location, &input, &helper_arguments);
    if (!structure) {
        return structure.error();
    }
    verifier_detail::analyzer analysis(input, options, *structure);
    return analysis.run();
}

} // namespace sluice::ebpf
