// The batch executor: the program over a batch, r0 to an action, every frame counted under one outcome.
#include "sluice/xdp/executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include "sluice/ebpf/jit.hpp"
#include "sluice/ebpf/verifier.hpp"
#include "xdp/checked_memory.hpp"

namespace sluice::xdp {
namespace {

constexpr std::uint64_t fault_log_interval_ns = 1'000'000'000; // a flood of faults must not become a flood of lines

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

} // namespace

counter executor_stats::accounted() const {
    counter sum = errors;
    for (const counter& outcome : actions) {
        sum.packets += outcome.packets;
        sum.bytes += outcome.bytes;
    }
    return sum;
}

struct executor::implementation {
    const ebpf::loaded_object* object{};
    const ebpf::loaded_program* program{};
    ebpf::execution_state* state{};
    executor_options options;
    checked_memory memory;                   ///< checked mode: the packet's fixed regions
    std::optional<ebpf::interpreter> interpreter;
    std::vector<ebpf::jit_program> compiled; ///< JIT: every program of the object (the first is `program`)
    std::optional<ebpf::jit_runner> runner;  ///< JIT: runs `compiled` over batches
    std::array<ebpf::xdp_context*, max_batch_size> contexts{}; ///< JIT: the batch's contexts
    std::array<std::uint64_t, max_batch_size> results{};      ///< JIT: r0 per frame
    std::array<std::uint64_t, max_batch_size> lengths{};      ///< JIT: each frame's length as received
    ebpf::program_registry registry;         ///< tail-call targets: every program of the object
    executor_stats stats;
    std::array<ebpf::redirect_decision, max_batch_size> decisions{};
    std::size_t batch_size{};
    bool tail_calls_possible{};              ///< a fault's instruction may then belong to another program
    std::uint64_t last_log_ns{};
    std::uint64_t faults_not_shown{};
    bool logged_once{};

    action run_one(frame& item, ebpf::redirect_decision& decision);
    /// The JIT's batch: contexts in, r0s out, then each frame's outcome as run_one() decides it.
    void run_compiled(std::span<frame* const> frames, std::span<action> out);
    /// r0 (or the run's error) to the frame's action, counted under exactly one outcome.
    action settle(const frame& item, std::uint64_t length, const expected<std::uint64_t>& result,
                  ebpf::redirect_decision& decision);
    expected<void> compile(const ebpf::helper_table& helpers);
    void report_fault(const frame& item, const sluice::error& failure);
};

executor::executor(std::unique_ptr<implementation> self) : _self(std::move(self)) {}
executor::executor(executor&&) noexcept = default;
executor& executor::operator=(executor&&) noexcept = default;
executor::~executor() = default;

expected<executor> executor::create(const ebpf::loaded_object& object, const ebpf::loaded_program& program,
                                    const ebpf::helper_table& helpers, ebpf::execution_state& state,
                                    executor_options options) {
    auto self = std::make_unique<implementation>();
    self->object = &object;
    self->program = &program;
    self->state = &state;
    self->options = std::move(options);
    if (self->options.engine == execution_engine::jit) {
        // The JIT trusts the program as the unchecked interpreter does: it is for programs the verifier accepted.
        if (self->options.checked) {
            return error{fmt::format("program {}: the JIT runs only verified programs and cannot bounds-check every "
                                     "access; use checked mode with the interpreter, or turn checked mode off",
                                     program.name)};
        }
        if (self->options.instruction_limit != 0) {
            return error{fmt::format("program {}: the JIT has no instruction limit (a verified program terminates); "
                                     "set the limit to 0 or use the interpreter",
                                     program.name)};
        }
    }
    if (!self->options.log) {
        self->options.log = [](std::string_view line) { fmt::print(stderr, "sluice: {}\n", line); };
    }
    if (self->options.checked) {
        self->memory.register_maps(object);
    }

    if (self->options.engine == execution_engine::jit) {
        if (auto compiled = self->compile(helpers); !compiled) {
            return compiled.error();
        }
    }
    auto interpreter = ebpf::interpreter::create(
        program.code, helpers, ebpf::interpreter_options{self->options.checked, self->options.instruction_limit});
    if (!interpreter) {
        sluice::error failure = interpreter.error();
        failure.message = fmt::format("program {}: {}", program.name, failure.message);
        return failure;
    }
    self->interpreter.emplace(std::move(*interpreter));
    self->memory.attach(*self->interpreter);

    for (const auto& candidate : object.programs()) {
        auto runnable = ebpf::runnable_program::prepare(candidate->code, helpers);
        if (!runnable) {
            // Only a program some prog_array could name matters; report it as the load would.
            sluice::error failure = runnable.error();
            failure.message = fmt::format("program {} (a tail-call target): {}", candidate->name, failure.message);
            return failure;
        }
        self->registry.add(candidate.get(), *runnable);
    }
    for (const auto& target : object.maps()) {
        self->tail_calls_possible = self->tail_calls_possible || target->type() == ebpf::map_type::prog_array;
    }
    state.programs = &self->registry;
    return executor(std::move(self));
}

expected<void> executor::implementation::compile(const ebpf::helper_table& helpers) {
    std::vector<ebpf::map_definition> definitions;
    const auto add = [&](const ebpf::loaded_program& candidate, std::string_view role) -> expected<void> {
        // The verifier's facts let the JIT inline lookups it cannot see through on its own (a map pointer kept in
        // another register, or from another block). The caller vouched for the program by turning checked mode off;
        // a program the verifier cannot prove is still compiled, with generic helper calls.
        ebpf::verifier_input input = ebpf::verifier_input::of(candidate, *object, definitions);
        input.helpers = &helpers;
        const auto verified = ebpf::verify(input);
        // Per-CPU array lookups the JIT inlines address this worker's slot.
        const ebpf::jit_options jit_options{
            .facts = verified ? std::span<const ebpf::instruction_facts>(verified->facts)
                              : std::span<const ebpf::instruction_facts>{},
            .maps = object->maps(),
            .cpu = state->cpu};
        auto code = ebpf::jit_program::compile(candidate.code, helpers, jit_options);
        if (!code) {
            sluice::error failure = code.error();
            failure.message = fmt::format("program {}{}: {}", candidate.name, role, failure.message);
            return failure;
        }
        compiled.push_back(std::move(*code));
        return {};
    };
    if (auto added = add(*program, ""); !added) {
        return added;
    }
    for (const auto& candidate : object->programs()) {
        if (candidate.get() != program) {
            if (auto added = add(*candidate, " (a tail-call target)"); !added) {
                return added;
            }
        }
    }
    runner.emplace(compiled.front());
    for (const ebpf::jit_program& target : compiled) {
        runner->add_tail_call_target(target);
    }
    return {};
}

void executor::run_batch(std::span<frame* const> frames, std::span<action> out) {
    implementation& self = *_self;
    // Larger spans run in pieces, so that redirect decisions always fit their table.
    while (!frames.empty()) {
        const std::size_t count = std::min(frames.size(), max_batch_size);
        self.batch_size = count;
        if (self.runner) {
            self.run_compiled(frames.first(count), out.first(count));
            frames = frames.subspan(count);
            out = out.subspan(count);
            continue;
        }
        for (std::size_t i = 0; i < count; ++i) {
            frame& item = *frames[i];
            self.stats.received.add(item.length());
            out[i] = self.run_one(item, self.decisions[i]);
        }
        frames = frames.subspan(count);
        out = out.subspan(count);
    }
}

void executor::implementation::run_compiled(std::span<frame* const> frames, std::span<action> out) {
    const std::size_t count = frames.size();
    std::uint64_t received_bytes = 0; // summed here: one update of the shared counter per batch, not per packet
    for (std::size_t i = 0; i < count; ++i) {
        contexts[i] = &frames[i]->context();
        lengths[i] = frames[i]->length(); // counted as received, whatever the program does to the packet
        received_bytes += lengths[i];
    }
    stats.received.packets += count;
    stats.received.bytes += received_bytes;
    const std::span<ebpf::xdp_context* const> batch(contexts.data(), count);
    std::size_t first = 0;
    while (first < count) {
        const std::size_t failed = runner->run_batch(batch, results, decisions, *state, first);
        for (std::size_t i = first; i < failed; ++i) {
            out[i] = settle(*frames[i], lengths[i], results[i], decisions[i]);
        }
        if (failed < count) {
            out[failed] = settle(*frames[failed], lengths[failed], runner->last_error(), decisions[failed]);
        }
        first = failed + 1;
    }
}

action executor::implementation::run_one(frame& item, ebpf::redirect_decision& decision) {
    const std::uint64_t length = item.length(); // counted as received, whatever the program does to the packet
    ebpf::xdp_context& context = item.context();
    state->begin_packet(context);
    if (options.checked) {
        memory.begin_packet(item);
    }
    auto result = interpreter->run({reinterpret_cast<std::uint64_t>(&context), 0, 0, 0, 0}, state);
    if (result) {
        decision = state->redirect;
    }
    return settle(item, length, result, decision);
}

action executor::implementation::settle(const frame& item, std::uint64_t length,
                                        const expected<std::uint64_t>& result, ebpf::redirect_decision& decision) {
    action outcome = action::aborted;
    if (!result) {
        ++stats.faults;
        ++stats.exceptions;
        report_fault(item, result.error());
    } else if (const auto decided = from_return_code(*result); !decided) {
        ++stats.unknown_return_codes;
        ++stats.exceptions;
    } else {
        outcome = *decided;
        if (outcome == action::aborted) {
            ++stats.exceptions;
        } else if (outcome == action::redirect) {
            // The engine copied the decision of the program's last bpf_redirect*() call.
            if (decision.target == ebpf::redirect_decision::kind::none) {
                ++stats.redirect_errors;
                ++stats.exceptions;
                outcome = action::aborted;
            }
        }
    }
    stats.actions[index(outcome)].add(length);
    return outcome;
}

void executor::implementation::report_fault(const frame& item, const sluice::error& failure) {
    const std::uint64_t now = now_ns();
    if (logged_once && now - last_log_ns < fault_log_interval_ns) {
        ++faults_not_shown;
        return;
    }
    std::string line =
        fmt::format("program {} aborted on packet {}: {}", program->name, item.info().record, failure.message);
    // After a tail call the index may be another program's, whose source line we cannot tell apart.
    if (failure.instruction && !tail_calls_possible) {
        if (const ebpf::line_info* source = program->line_at(*failure.instruction); source != nullptr) {
            std::string_view text = source->source;
            text.remove_prefix(std::min(text.find_first_not_of(" \t"), text.size()));
            line += fmt::format(" ({}:{}: {})", source->file, source->line, text);
        }
    }
    if (faults_not_shown != 0) {
        line += fmt::format(" [{} more faults since the last line, not shown]", faults_not_shown);
    }
    options.log(line);
    logged_once = true;
    last_log_ns = now;
    faults_not_shown = 0;
}

std::span<const ebpf::redirect_decision> executor::redirect_decisions() const {
    return {_self->decisions.data(), _self->batch_size};
}

void executor::count_port_errors(std::uint64_t packets, std::uint64_t bytes) {
    _self->stats.received.packets += packets;
    _self->stats.received.bytes += bytes;
    _self->stats.errors.packets += packets;
    _self->stats.errors.bytes += bytes;
}

const executor_stats& executor::stats() const {
    return _self->stats;
}

const ebpf::loaded_program& executor::program() const {
    return *_self->program;
}

expected<void> batch_program::check_accounting() const {
    const executor_stats& stats = this->stats();
    const counter sum = stats.accounted();
    if (sum == stats.received) {
        return {};
    }
    return error{fmt::format("accounting mismatch: received {} packets ({} bytes), but outcomes add up to {} packets "
                             "({} bytes)",
                             stats.received.packets, stats.received.bytes, sum.packets, sum.bytes)};
}

} // namespace sluice::xdp
