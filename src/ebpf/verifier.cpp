// verify(): the encoding check, the program's static structure, then the path exploration (verifier/analyzer.hpp).
#include "sluice/ebpf/verifier.hpp"

#include <fmt/format.h>

#include <algorithm>

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

/// Argument registers whose values the helper's safety depends on: all but ARG_ANYTHING.
std::uint16_t helper_needs(std::uint32_t id) {
    const verifier_detail::helper_proto* proto = verifier_detail::find_helper_proto(id);
    if (proto == nullptr) {
        return 0x3e;
    }
    std::uint16_t needs = 0;
    for (std::size_t i = 0; i < proto->args.size(); ++i) {
        const verifier_detail::arg_type arg = proto->args[i];
        if (arg != verifier_detail::arg_type::none && arg != verifier_detail::arg_type::anything) {
            needs = static_cast<std::uint16_t>(needs | (1U << (i + 1)));
        }
    }
    return needs;
}

bool helper_calls_back(std::uint32_t id) {
    const verifier_detail::helper_proto* proto = verifier_detail::find_helper_proto(id);
    return proto == nullptr ||
           std::find(proto->args.begin(), proto->args.end(), verifier_detail::arg_type::func) != proto->args.end();
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
    // Precision by rounds: pruning compares exactly only the numbers that can matter, and which comparisons matter
    // (those whose direction some path knew for certain) is learned by exploring. Start assuming none; when a round
    // meets a decided comparison the previous round did not treat as one, its pruning may have been too bold:
    // explore again knowing more. The last round met no new one, so every prune it made was justified. A rejection
    // is always real (it was met on an explored path, in a sound state). Rounds only add comparisons, so they end;
    // after max_rounds the verifier treats every comparison as decided, which is always sound.
    constexpr int max_rounds = 8;
    std::vector<bool> decided(input.code.size(), false);
    std::vector<bool> arithmetic(input.code.size(), false);
    std::vector<bool> through_pointer(input.code.size(), false);
    std::uint64_t processed = 0;
    for (int round = 0;; ++round) {
        const bool last = round + 1 >= max_rounds;
        verifier_detail::precision_inputs precision{&decided, &arithmetic, &through_pointer, &helper_needs,
                                                    &helper_calls_back};
        if (last) {
            precision = verifier_detail::precision_inputs{}; // every comparison, addition and access counts
            precision.helper_needs = &helper_needs;
            precision.helper_calls_back = &helper_calls_back;
        }
        verifier_detail::compute_precision(*structure, input.code, precision);
        verifier_detail::analyzer analysis(input, options, *structure);
        auto result = analysis.run();
        if (!result) {
            return result;
        }
        processed += result->instructions_processed;
        bool learned = false;
        const auto learn = [&](const std::vector<bool>& met, std::vector<bool>& known) {
            for (std::size_t pc = 0; pc < met.size(); ++pc) {
                if (met[pc] && !known[pc]) {
                    known[pc] = true;
                    learned = true;
                }
            }
        };
        learn(analysis.decided_jumps(), decided);
        learn(analysis.pointer_arithmetic(), arithmetic);
        learn(analysis.stack_through_pointer(), through_pointer);
        if (!learned || last) {
            result->instructions_processed = processed;
            return result;
        }
    }
}

} // namespace sluice::ebpf
