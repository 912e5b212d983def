// The bpf_conformance suite's execution contract (see conformance.hpp).
#include "sluice/ebpf/conformance.hpp"

#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/jit.hpp"
#include "sluice/ebpf/program.hpp"

namespace sluice::ebpf {
namespace {

/// Helper 5 of the suite: returns r1, and ends the program with r0 = 0 when r1 is 0.
std::uint64_t unwind(std::uint64_t r1, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                     call_context& context) {
    if (r1 == 0) {
        context.stop = true;
        context.stop_value = 0;
    }
    return r1;
}

const helper_table& conformance_helpers() {
    static const helper_table helpers = [] {
        helper_table table;
        table.set(5, "unwind", unwind);
        return table;
    }();
    return helpers;
}

} // namespace

expected<std::uint64_t> run_conformance_program_jit(std::span<const instruction> code, std::span<std::uint8_t> memory) {
    if (auto valid = validate(code); !valid) {
        return valid.error();
    }
    auto compiled = jit_program::compile(code, conformance_helpers());
    if (!compiled) {
        return compiled.error();
    }
    jit_runner runner(*compiled);
    const auto address = memory.empty() ? std::uintptr_t{0} : reinterpret_cast<std::uintptr_t>(memory.data());
    return runner.run({address, memory.size(), 0, 0, 0});
}

expected<std::uint64_t> run_conformance_program(std::span<const instruction> code, std::span<std::uint8_t> memory,
                                                std::uint64_t instruction_limit) {
    if (auto valid = validate(code); !valid) {
        return valid.error();
    }
    helper_table helpers;
    helpers.set(5, "unwind", unwind);
    auto machine = interpreter::create(code, helpers, {.checked = true, .instruction_limit = instruction_limit});
    if (!machine) {
        return machine.error();
    }
    const auto address = memory.empty() ? std::uintptr_t{0} : reinterpret_cast<std::uintptr_t>(memory.data());
    if (!memory.empty()) {
        machine->add_region({address, memory.size(), true, "memory"});
    }
    return machine->run({address, memory.size(), 0, 0, 0});
}

} // namespace sluice::ebpf
