// `sluice verify`: load an object as `sluice run` does (maps created, nothing run), verify each of its XDP programs and
// print the verdicts. The object is loaded rather than only opened because the verifier judges map accesses by the
// maps' definitions as created (global data sizes, .rodata read-only), exactly the world the program would run in.
#include "verify_command.hpp"

#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "object_options.hpp"
#include "sluice/ebpf/verifier.hpp"

namespace sluice::cli {
namespace {

struct verify_options {
    std::string file;
    std::string program;
    std::vector<std::string> rodata;
    int log_level{};
    bool json{};
};

/// A failure before any verdict (the object cannot be read or loaded, an unknown program): "sluice verify: MESSAGE".
[[noreturn]] void fail(std::string_view message) {
    fmt::print(stderr, "sluice verify: {}\n", message);
    throw CLI::RuntimeError(1);
}

/// One program's verdict.
struct verdict {
    const ebpf::loaded_program* program{};
    expected<ebpf::verification_result> result;
    double milliseconds{};
};

verdict verify_program(const ebpf::loaded_object& object, const ebpf::loaded_program& program, int log_level) {
    std::vector<ebpf::map_definition> definitions;
    const ebpf::verifier_input input = ebpf::verifier_input::of(program, object, definitions);
    ebpf::verifier_options options;
    options.log_level = log_level;
    const auto started = std::chrono::steady_clock::now();
    auto result = ebpf::verify(input, options);
    const double milliseconds =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    return verdict{&program, std::move(result), milliseconds};
}

std::string summary_line(const verdict& done) {
    const ebpf::verification_result& result = *done.result;
    return fmt::format("program {}: verified ({} instruction{} processed, {} state{}, in {:.3f} ms)",
                       done.program->name, result.instructions_processed, result.instructions_processed == 1 ? "" : "s",
                       result.states_explored, result.states_explored == 1 ? "" : "s", done.milliseconds);
}

std::string program_names(const ebpf::loaded_object& object) {
    std::string names;
    for (const auto& program : object.programs()) {
        names += fmt::format("{}{}", names.empty() ? "" : ", ", program->name);
    }
    return names;
}

nlohmann::json verdict_json(const verdict& done) {
    nlohmann::json entry{{"name", done.program->name},
                         {"section", done.program->section},
                         {"instructions", done.program->relocated.size()},
                         {"verified", done.result.has_value()},
                         {"milliseconds", done.milliseconds}};
    if (done.result) {
        entry["instructions_processed"] = done.result->instructions_processed;
        entry["states_explored"] = done.result->states_explored;
        entry["peak_states"] = done.result->peak_states;
        if (!done.result->log.empty()) {
            entry["log"] = done.result->log;
        }
    } else {
        nlohmann::json failure{{"message", done.result.error().message}};
        if (done.result.error().instruction) {
            failure["instruction"] = *done.result.error().instruction;
        }
        entry["error"] = std::move(failure);
    }
    return entry;
}

void verify_command(const verify_options& options) {
    auto spec = ebpf::object_spec::open_file(options.file);
    if (!spec) {
        fail(spec.error().message);
    }
    if (auto done = apply_rodata(*spec, options.rodata); !done) {
        fail(done.error().message);
    }
    // No check_program: a call to a helper sluice lacks is the verifier's to report, beside the program's other
    // faults, rather than a load error that hides every other program's verdict.
    auto object = spec->load();
    if (!object) {
        fail(object.error().message);
    }
    std::vector<const ebpf::loaded_program*> chosen;
    if (!options.program.empty()) {
        const auto* found = object->find_program(options.program);
        if (found == nullptr) {
            fail(fmt::format("{}: no program named '{}' (programs: {})", options.file, options.program,
                             program_names(*object)));
        }
        chosen.push_back(found);
    } else {
        for (const auto& program : object->programs()) {
            chosen.push_back(program.get());
        }
    }
    if (chosen.empty()) {
        fail(fmt::format("{}: no XDP program", options.file));
    }

    bool rejected = false;
    nlohmann::json programs = nlohmann::json::array();
    for (const ebpf::loaded_program* program : chosen) {
        const verdict done = verify_program(*object, *program, options.log_level);
        rejected = rejected || !done.result;
        if (options.json) {
            programs.push_back(verdict_json(done));
            continue;
        }
        if (done.result) {
            if (!done.result->log.empty()) {
                std::cout << done.result->log << (done.result->log.ends_with('\n') ? "" : "\n");
            }
            std::cout << summary_line(done) << '\n';
        } else {
            const std::string& message = done.result.error().message;
            std::cout << fmt::format("program {}: rejected\n{}{}", program->name, message,
                                     message.ends_with('\n') ? "" : "\n");
        }
    }
    if (options.json) {
        nlohmann::json report{{"object", options.file}, {"programs", std::move(programs)}};
        std::cout << report.dump(2) << '\n';
    }
    std::cout.flush();
    if (rejected) {
        throw CLI::RuntimeError(1);
    }
}

} // namespace

expected<run_verification> verify_for_run(const ebpf::loaded_object& object, const ebpf::loaded_program& program) {
    std::vector<const ebpf::loaded_program*> targets{&program};
    bool has_prog_array = false;
    for (const ebpf::map_spec& map : object.map_specs()) {
        has_prog_array = has_prog_array || map.definition.type == ebpf::map_type::prog_array;
    }
    if (has_prog_array) {
        for (const auto& other : object.programs()) {
            if (other.get() != &program) {
                targets.push_back(other.get());
            }
        }
    }
    run_verification verified;
    for (const ebpf::loaded_program* target : targets) {
        const verdict done = verify_program(object, *target, 0);
        if (!done.result) {
            const std::string role =
                target == &program ? "" : fmt::format(" (a possible tail-call target of {})", program.name);
            return error{fmt::format("program {}{} was rejected by the verifier:\n{}\n--no-verify runs it anyway, in "
                                     "checked mode (every memory access bounds-checked at run time)",
                                     target->name, role, done.result.error().message)};
        }
        verified.programs.push_back(target->name);
        verified.instructions_processed += done.result->instructions_processed;
        verified.milliseconds += done.milliseconds;
    }
    return verified;
}

void add_verify_command(CLI::App& app) {
    auto options = std::make_shared<verify_options>();
    CLI::App* command = app.add_subcommand(
        "verify",
        "Prove that an object's XDP programs are safe to run, or say why not, as the kernel's verifier would");
    command->footer(
        "Each program is verified as `sluice run` would load it: maps created, .rodata set (--set), prog arrays "
        "filled. A verified program runs without run-time bounds checks. A rejection names the instruction, its "
        "source line, the register and what it held, the branches that led there and what to change.\n\n"
        "Exit status: 0 when every program chosen is verified; 1 when one is rejected or the object cannot be loaded.");
    command->add_option("file", options->file, "BPF ELF object (clang -O2 -g -target bpf -c)")->required();
    command->add_option("--program,--prog", options->program, "Verify only this program (default: every one)");
    command
        ->add_option("--log-level", options->log_level,
                     "0: verdicts only; 1: also a summary of the work done; 2: the state of every register and "
                     "stack slot at each instruction, as the kernel's log level 2")
        ->check(CLI::Range(0, 2));
    command->add_option("--set", options->rodata,
                        "NAME=VALUE: set a .rodata variable (const volatile global) before load; repeatable");
    command->add_flag("--json", options->json, "Print the verdicts as JSON");
    command->callback([options] { verify_command(*options); });
}

} // namespace sluice::cli
