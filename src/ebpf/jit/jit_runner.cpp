// Running compiled programs (contract in jit.hpp): the run's state, callbacks into generated code, tail calls.
#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "ebpf/jit/jit_internal.hpp"

namespace sluice::ebpf {

struct jit_runner::implementation {
    jit::run_state state;
    const jit_program::implementation* program{};
    /// Tail-call targets by their eBPF code: a runnable_program names its code, and so does a compiled program.
    std::vector<std::pair<const instruction*, const jit_program::implementation*>> targets;
    std::optional<error> failure; ///< set by callbacks and tail calls (failure_kind::runtime)
    error last;

    const jit_program::implementation* find_target(const instruction* code) const {
        const auto found =
            std::lower_bound(targets.begin(), targets.end(), code,
                             [](const auto& entry, const instruction* key) { return entry.first < key; });
        return found != targets.end() && found->first == code ? found->second : nullptr;
    }

    /// Records a failure found in C++ and asks the program to stop.
    void fail(std::string message) {
        if (state.failed == 0) {
            failure = error{std::move(message)};
            state.failed = 1;
            state.error_kind = static_cast<std::uint32_t>(jit::failure_kind::runtime);
        }
        state.context.stop = true;
    }

    /// The error of a failed run, in the interpreter's words.
    error failed_run() const;

    void begin_run(void* user) {
        state.context = call_context{};
        state.context.user = user;
        state.context.engine = &state;
        state.context.caller = &call_function;
        state.depth = 0;
        state.failed = 0;
        state.error_kind = 0;
        state.running = program;
        failure.reset();
    }

    static bool call_function(void* engine, std::uint64_t function, const std::array<std::uint64_t, 5>& arguments,
                              std::span<const memory_region> lent, std::uint64_t& result);
};

namespace jit {

const void* resolve_tail_call(run_state* state) {
    auto& runner = *static_cast<jit_runner::implementation*>(state->runner);
    const runnable_program* target = state->context.tail_call;
    state->context.tail_call = nullptr;
    ++state->context.tail_calls;
    const jit_program::implementation* compiled = runner.find_target(target->code.data());
    if (compiled == nullptr) {
        runner.fail(fmt::format("tail call to a program of {} instructions that has no compiled code (the runner "
                                "knows it only through add_tail_call_target())",
                                target->code.size()));
        return nullptr;
    }
    state->running = compiled;
    return compiled->at(compiled->main_entry);
}

} // namespace jit

error jit_runner::implementation::failed_run() const {
    const auto kind = static_cast<jit::failure_kind>(state.error_kind);
    const std::size_t at = state.error_pc;
    switch (kind) {
    case jit::failure_kind::call_depth:
        return error::at(at, fmt::format("instruction {}: local call nests deeper than {} frames", at, max_call_depth));
    case jit::failure_kind::callx:
        return error::at(at, fmt::format("instruction {}: callx through r{} = {:#x}, which names no helper", at,
                                         state.running->code[at].dst, state.error_value));
    default:
        return failure ? *failure : error{"the JIT-compiled program failed"};
    }
}

bool jit_runner::implementation::call_function(void* engine, std::uint64_t function,
                                               const std::array<std::uint64_t, 5>& arguments,
                                               std::span<const memory_region>, std::uint64_t& result) {
    auto& state = *static_cast<jit::run_state*>(engine);
    auto& self = *static_cast<implementation*>(state.runner);
    if (state.failed != 0 || state.context.stop) {
        return false;
    }
    const jit_program::implementation& running = *state.running;
    const auto base = reinterpret_cast<std::uintptr_t>(running.code.data());
    const std::uintptr_t offset = function - base;
    if (function < base || offset % sizeof(instruction) != 0 || offset / sizeof(instruction) >= running.code.size()) {
        self.fail(fmt::format("callback handle {:#x} names no instruction of the running program", function));
        return false;
    }
    const void* entry = running.function_at(offset / sizeof(instruction));
    if (entry == nullptr) {
        // Only instructions that some lddw of a function address names were compiled as entry points.
        self.fail(fmt::format("callback handle {:#x} names instruction {}, which no function address of the program "
                              "names",
                              function, offset / sizeof(instruction)));
        return false;
    }
    // A callback is a frame like a local call's (the kernel's verifier counts it against MAX_CALL_FRAMES).
    if (state.depth + 1 >= static_cast<std::uint32_t>(max_call_depth)) {
        self.fail(fmt::format("callback nests deeper than {} frames", max_call_depth));
        return false;
    }
    const std::uint32_t saved_depth = state.depth;
    const std::uint64_t saved_r1 = state.saved_r1;
    ++state.context.callback_depth;
    state.depth = saved_depth + 1;
    const std::uint64_t returned = running.trampoline_entry()(&state, entry, arguments.data());
    state.depth = saved_depth;
    state.saved_r1 = saved_r1;
    --state.context.callback_depth;
    if (state.failed != 0) {
        state.context.stop = true;
        return false;
    }
    if (state.context.stop) {
        return false; // a helper inside the callback ended the program
    }
    result = returned;
    return true;
}

jit_runner::jit_runner(const jit_program& program) : _self(std::make_unique<implementation>()) {
    _self->program = program._self.get();
    _self->state.runner = _self.get();
    _self->state.running = _self->program;
    add_tail_call_target(program);
}

jit_runner::jit_runner(jit_runner&&) noexcept = default;
jit_runner& jit_runner::operator=(jit_runner&&) noexcept = default;
jit_runner::~jit_runner() = default;

void jit_runner::add_tail_call_target(const jit_program& target) {
    const instruction* key = target._self->code.data();
    auto& targets = _self->targets;
    const auto at = std::lower_bound(targets.begin(), targets.end(), key,
                                     [](const auto& entry, const instruction* code) { return entry.first < code; });
    if (at != targets.end() && at->first == key) {
        at->second = target._self.get();
        return;
    }
    targets.insert(at, {key, target._self.get()});
}

expected<std::uint64_t> jit_runner::run(const std::array<std::uint64_t, 5>& arguments, void* user) {
    implementation& self = *_self;
    self.begin_run(user);
    const std::uint64_t result =
        self.program->trampoline_entry()(&self.state, self.program->at(self.program->main_entry), arguments.data());
    if (self.state.failed != 0) {
        self.last = self.failed_run();
        return self.last;
    }
    return result;
}

std::size_t jit_runner::run_batch(std::span<xdp_context* const> contexts, std::span<std::uint64_t> results,
                                  std::span<redirect_decision> decisions, execution_state& state, std::size_t first) {
    implementation& self = *_self;
    if (first >= contexts.size()) {
        return contexts.size();
    }
    self.begin_run(&state);
    const jit::batch_arguments arguments{contexts.data(), results.data(), decisions.data(),
                                         std::min({contexts.size(), results.size(), decisions.size()}), &state};
    const auto reached = static_cast<std::size_t>(self.program->batch()(&self.state, &arguments, first));
    if (reached < arguments.count) {
        self.last = self.failed_run();
    }
    return reached;
}

const error& jit_runner::last_error() const {
    return _self->last;
}

} // namespace sluice::ebpf
