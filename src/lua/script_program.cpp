// script_program: a Lua script as an xdp::batch_program (contract in include/sluice/lua/script_program.hpp).
//
// The engine-neutral half: accounting as the eBPF executor does it, failures turned into aborted packets and
// rate-limited log lines, the watchdog registration of each Lua state, hot reload, chaining, and the maps scripts
// declare (in a script_maps registry the program shares with the run's other programs, so that they outlive a reload
// and are one map across workers).
#include "sluice/lua/script_program.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "lua/engine.hpp"
#include "lua/watchdog.hpp"

namespace sluice::lua {
namespace {

constexpr std::uint64_t log_interval_ns = 1'000'000'000; // a flood of failures must not become a flood of lines

std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

} // namespace

namespace detail {

/// What a Lua state's host asks of its program: the maps, with the declaring script named in messages.
class map_source {
public:
    virtual ebpf::map* open_map(std::string_view name, std::string& why) = 0;
    virtual ebpf::map* declare_map(const ebpf::map_definition& definition, std::string_view declared_by,
                                   std::string& why) = 0;

protected:
    ~map_source() = default;
};

/// One Lua state with its watchdog entry. Destroying it unregisters first, so the watchdog never interrupts a
/// state being closed. It is its engine's host, so that declarations name this version of the script.
struct engine_slot final : host {
    detail::watched watch;
    std::unique_ptr<detail::engine> engine;
    std::string chunk_name;
    std::string declared_by; ///< "filter.lua on worker 1", for map declaration messages
    map_source* maps{};

    engine_slot() = default;
    engine_slot(const engine_slot&) = delete;
    engine_slot& operator=(const engine_slot&) = delete;
    ~engine_slot() {
        unwatch(watch);
        engine.reset();
    }

    static void interrupt(void* opaque, std::uint64_t sequence) {
        auto& self = *static_cast<engine_slot*>(opaque);
        self.interrupted.store(sequence, std::memory_order_release);
        self.engine->interrupt(sequence);
    }

    // ---- host ----
    ebpf::map* open_map(std::string_view name, std::string& why) override { return maps->open_map(name, why); }
    ebpf::map* declare_map(const ebpf::map_definition& definition, std::string& why) override {
        return maps->declare_map(definition, declared_by, why);
    }
    long get_next_key(ebpf::map& target, const void* key, void* next_key) override {
        return target.get_next_key(key, next_key);
    }
    ebpf::helper_function helper(std::uint32_t id) override { return ebpf::xdp_helper_table().find(id); }

    /// The progress value of the last call the watchdog found past its budget.
    std::atomic<std::uint64_t> interrupted{};
};

} // namespace detail

using detail::engine_slot;

std::string_view to_string(engine kind) {
    return kind == engine::luajit ? "luajit" : "lua5.4";
}

std::optional<engine> parse_engine(std::string_view text) {
    if (text == "lua" || text == "lua5.4" || text == "lua54") {
        return engine::lua54;
    }
    if (text == "luajit") {
        return engine::luajit;
    }
    return std::nullopt;
}

struct script_program::implementation final : detail::map_source {
    ebpf::execution_state* state{};
    ebpf::execution_state* chained{}; ///< the state attach_chaining() hooked
    options settings;
    std::shared_ptr<script_maps> maps; ///< before the states: they point into its maps
    std::unique_ptr<engine_slot> current;

    std::mutex pending_mutex;
    std::unique_ptr<engine_slot> pending;
    std::atomic<bool> has_pending{};
    std::atomic<std::uint64_t> versions{};

    xdp::executor_stats stats;
    script_stats script;
    std::array<ebpf::redirect_decision, xdp::max_batch_size> decisions{};
    std::array<detail::packet_result, xdp::max_batch_size> results{};
    std::array<std::uint64_t, xdp::max_batch_size> lengths{};
    std::array<bool, xdp::max_batch_size> failed{};
    std::size_t batch_size{};

    std::uint64_t last_log_ns{};
    std::uint64_t lines_not_shown{};
    bool logged_once{};

    // ---- map_source ----
    ebpf::map* open_map(std::string_view name, std::string& why) override {
        if (ebpf::map* declared = maps->find(name); declared != nullptr) {
            return declared;
        }
        if (settings.object != nullptr) {
            if (ebpf::map* found = settings.object->find_map(name); found != nullptr) {
                return found;
            }
        }
        why = settings.object != nullptr ? "no map of that name in the eBPF object, and no script declared one"
                                         : "no script declared a map of that name (and no eBPF object is loaded)";
        return nullptr;
    }

    ebpf::map* declare_map(const ebpf::map_definition& definition, std::string_view declared_by,
                           std::string& why) override {
        if (settings.object != nullptr && settings.object->find_map(definition.name) != nullptr) {
            why = "the eBPF object already has a map of that name: open it with maps.open";
            return nullptr;
        }
        auto declared = maps->declare(definition, declared_by, state->cpu);
        if (!declared) {
            why = declared.error().message;
            return nullptr;
        }
        return *declared;
    }

    /// The budget of a call into Lua. LuaJIT compiles traces in the calls that first run the code, which takes
    /// milliseconds of CPU for a script like the examples; that time must not count as a runaway script, so LuaJIT
    /// (trusted, and unstoppable inside compiled traces anyway) gets at least luajit_minimum_budget.
    std::int64_t call_budget_ns() const {
        constexpr std::chrono::milliseconds luajit_minimum_budget{20};
        auto budget = std::chrono::nanoseconds(settings.budget);
        if (settings.engine == engine::luajit) {
            budget = std::max(budget, std::chrono::nanoseconds(luajit_minimum_budget));
        }
        return budget.count();
    }

    // ---- engines ----
    expected<std::unique_ptr<engine_slot>> make_slot(std::string_view source, std::string chunk_name) {
        auto slot = std::make_unique<engine_slot>();
        slot->chunk_name = chunk_name;
        slot->declared_by = fmt::format("{} on worker {}", chunk_name, state->cpu);
        slot->maps = this;
        // The top level may create maps (an LRU hash of 65536 entries takes milliseconds): it gets a second of CPU.
        slot->watch.budget_ns = std::max<std::int64_t>(std::chrono::nanoseconds(settings.budget).count(),
                                                       std::chrono::nanoseconds(std::chrono::seconds(1)).count());
        slot->watch.interrupt = &engine_slot::interrupt;
        slot->watch.opaque = slot.get();
        detail::engine_settings engine_settings;
        engine_settings.services = slot.get();
        engine_settings.state = state;
        engine_settings.memory_limit = settings.memory_limit;
        engine_settings.progress = &slot->watch.progress;
        engine_settings.config = settings.config;
        std::string why;
        detail::engine* made = nullptr;
        if (settings.engine == engine::luajit) {
            const detail::create_engine_function create = detail::luajit_engine_factory(why);
            made = create != nullptr ? create(engine_settings, why) : nullptr;
        } else {
            made = detail::create_lua54_engine(engine_settings, why);
        }
        if (made == nullptr) {
            return error{fmt::format("{} ({}): {}", chunk_name, to_string(settings.engine), why)};
        }
        slot->engine.reset(made);
        detail::watch(slot->watch);
        slot->watch.enter();
        why = slot->engine->load(source, chunk_name);
        slot->watch.leave();
        slot->watch.budget_ns = call_budget_ns();
        if (!why.empty()) {
            // Lua names the chunk in most messages ("filter.lua:3: ..."), not in all (bytecode refused, memory).
            return error{why.starts_with(chunk_name) ? why : fmt::format("{}: {}", chunk_name, why)};
        }
        return slot;
    }

    /// At a batch boundary: the version reload() prepared replaces the running one.
    void swap_if_pending() {
        if (!has_pending.load(std::memory_order_acquire)) {
            return;
        }
        std::unique_ptr<engine_slot> next;
        {
            const std::lock_guard lock(pending_mutex);
            next = std::move(pending);
            has_pending.store(false, std::memory_order_release);
        }
        if (next) {
            current = std::move(next); // the old state closes here, in the worker that used it
            ++script.reloads;
            versions.fetch_add(1, std::memory_order_release);
        }
    }

    void log(std::string line) {
        const std::uint64_t now = now_ns();
        if (logged_once && now - last_log_ns < log_interval_ns) {
            ++lines_not_shown;
            return;
        }
        if (lines_not_shown != 0) {
            line += fmt::format(" [{} more failures since the last line, not shown]", lines_not_shown);
        }
        settings.log(line);
        logged_once = true;
        last_log_ns = now;
        lines_not_shown = 0;
    }

    void run_piece(std::span<xdp::frame* const> frames, std::span<xdp::action> out);
    void account(std::size_t index, const xdp::frame& item, xdp::action& out);
    std::uint64_t chain(ebpf::xdp_context& packet, std::string_view function);
};

void script_program::implementation::run_piece(std::span<xdp::frame* const> frames, std::span<xdp::action> out) {
    const std::size_t count = frames.size();
    batch_size = count;
    for (std::size_t i = 0; i < count; ++i) {
        lengths[i] = frames[i]->length(); // counted as received, whatever the script does to the packet
        stats.received.add(lengths[i]);
        failed[i] = false;
    }
    engine_slot& slot = *current;
    std::size_t first = 0;
    slot.watch.enter();
    const std::uint64_t sequence = slot.watch.progress.load(std::memory_order_relaxed);
    bool stopped = false;
    while (first < count) {
        detail::call_result result = slot.engine->run(frames, first, results.data(), decisions.data());
        first += result.decided;
        if (result.kind == detail::failure::none || first >= count) {
            break;
        }
        const xdp::frame& item = *frames[first];
        if (result.kind == detail::failure::budget) {
            stopped = true;
            ++script.budget_exceeded;
            script.budget_aborted += count - first;
            log(fmt::format("script {} aborted on packet {}: {} ({} packets of the batch aborted)", slot.chunk_name,
                            item.info().record, result.message, count - first));
            std::fill(failed.begin() + static_cast<std::ptrdiff_t>(first),
                      failed.begin() + static_cast<std::ptrdiff_t>(count), true);
            break;
        }
        if (result.kind == detail::failure::memory) {
            ++script.memory_exceeded;
        } else {
            ++script.errors;
        }
        log(fmt::format("script {} aborted on packet {}: {}", slot.chunk_name, item.info().record, result.message));
        failed[first] = true;
        ++first; // the batch goes on after the packet that failed
    }
    slot.watch.leave();
    if (!stopped && slot.interrupted.load(std::memory_order_acquire) == sequence) {
        ++script.budget_grace_calls;
    }
    for (std::size_t i = 0; i < count; ++i) {
        account(i, *frames[i], out[i]);
    }
}

void script_program::implementation::account(std::size_t index, const xdp::frame& item, xdp::action& out) {
    xdp::action outcome = xdp::action::aborted;
    if (failed[index]) {
        ++stats.faults;
        ++stats.exceptions;
    } else if (const detail::packet_result& result = results[index];
               !result.integer || result.code < 0 || result.code >= static_cast<std::int64_t>(xdp::action_count)) {
        ++stats.unknown_return_codes;
        ++stats.exceptions;
        ++script.bad_returns;
        const std::string what =
            result.integer ? fmt::format("{}", result.code) : std::string{"a value that is not an integer"};
        const std::string where = current->engine->xdp_location();
        log(fmt::format("script {}: xdp(){} returned {} for packet {}, which is no XDP action", current->chunk_name,
                        where.empty() ? "" : fmt::format(" (defined at {})", where), what, item.info().record));
    } else {
        outcome = static_cast<xdp::action>(result.code);
        if (outcome == xdp::action::aborted) {
            ++stats.exceptions;
        } else if (outcome == xdp::action::redirect &&
                   decisions[index].target == ebpf::redirect_decision::kind::none) {
            ++stats.redirect_errors;
            ++stats.exceptions;
            outcome = xdp::action::aborted;
        }
    }
    stats.actions[xdp::index(outcome)].add(lengths[index]);
    out = outcome;
}

std::uint64_t script_program::implementation::chain(ebpf::xdp_context& packet, std::string_view function) {
    constexpr std::uint64_t xdp_aborted = 0;
    swap_if_pending();
    ++script.chained_calls;
    engine_slot& slot = *current;
    detail::packet_result result;
    slot.watch.enter();
    const detail::call_result outcome = slot.engine->call(function, packet, result);
    slot.watch.leave();
    if (outcome.kind != detail::failure::none) {
        ++script.chained_failures;
        log(fmt::format("script {}: bpf_sluice_lua(\"{}\") aborted: {}", slot.chunk_name, function, outcome.message));
        return xdp_aborted;
    }
    if (!result.integer || result.code < 0 || result.code >= static_cast<std::int64_t>(xdp::action_count)) {
        ++script.chained_failures;
        log(fmt::format("script {}: {}() called by bpf_sluice_lua returned no XDP action", slot.chunk_name, function));
        return xdp_aborted;
    }
    return static_cast<std::uint64_t>(result.code);
}

script_program::script_program(std::unique_ptr<implementation> self) : _self(std::move(self)) {}
script_program::script_program(script_program&&) noexcept = default;
script_program& script_program::operator=(script_program&&) noexcept = default;
script_program::~script_program() {
    if (_self && _self->chained != nullptr && _self->chained->script_opaque == _self.get()) {
        _self->chained->script = nullptr; // chained programs must not call a script that is gone
        _self->chained->script_opaque = nullptr;
    }
}

expected<script_program> script_program::create(std::string_view source, std::string chunk_name,
                                                ebpf::execution_state& state, options settings) {
    auto self = std::make_unique<implementation>();
    self->state = &state;
    self->settings = std::move(settings);
    if (!self->settings.log) {
        self->settings.log = [](std::string_view line) { fmt::print(stderr, "sluice: {}\n", line); };
    }
    if (self->settings.budget.count() <= 0) {
        return error{"the CPU budget per call into Lua must be positive"};
    }
    self->maps = self->settings.maps ? self->settings.maps : std::make_shared<script_maps>(self->settings.cpus);
    if (state.cpu >= self->maps->cpus()) {
        // The maps' data-path calls index per-cpu state by the worker's cpu.
        return error{fmt::format("{}: the worker runs as cpu {}, but the script's maps are made for {} cpu{} "
                                 "(options::cpus, or the cpus of options::maps)",
                                 chunk_name, state.cpu, self->maps->cpus(), self->maps->cpus() == 1 ? "" : "s")};
    }
    auto slot = self->make_slot(source, std::move(chunk_name));
    if (!slot) {
        return slot.error();
    }
    self->current = std::move(*slot);
    return script_program(std::move(self));
}

expected<script_program> script_program::load_file(const std::string& path, ebpf::execution_state& state,
                                                   options settings) {
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        return error{fmt::format("{}: cannot read the script", path)};
    }
    std::ostringstream text;
    text << file.rdbuf();
    const std::string name = std::filesystem::path(path).filename().string();
    return create(text.str(), name, state, std::move(settings));
}

void script_program::run_batch(std::span<xdp::frame* const> frames, std::span<xdp::action> out) {
    implementation& self = *_self;
    self.swap_if_pending();
    while (!frames.empty()) {
        const std::size_t count = std::min(frames.size(), xdp::max_batch_size);
        self.run_piece(frames.first(count), out.first(count));
        frames = frames.subspan(count);
        out = out.subspan(count);
    }
}

std::span<const ebpf::redirect_decision> script_program::redirect_decisions() const {
    return {_self->decisions.data(), _self->batch_size};
}

void script_program::count_port_errors(std::uint64_t packets, std::uint64_t bytes) {
    _self->stats.received.packets += packets;
    _self->stats.received.bytes += bytes;
    _self->stats.errors.packets += packets;
    _self->stats.errors.bytes += bytes;
}

const xdp::executor_stats& script_program::stats() const {
    return _self->stats;
}

const script_stats& script_program::script_statistics() const {
    return _self->script;
}

script_program::next_version::next_version(std::unique_ptr<detail::engine_slot> slot) : _slot(std::move(slot)) {}
script_program::next_version::next_version(next_version&&) noexcept = default;
script_program::next_version& script_program::next_version::operator=(next_version&&) noexcept = default;
script_program::next_version::~next_version() = default;

expected<script_program::next_version> script_program::prepare_reload(std::string_view source, std::string chunk_name) {
    auto slot = _self->make_slot(source, std::move(chunk_name));
    if (!slot) {
        return slot.error();
    }
    return next_version(std::move(*slot));
}

void script_program::stage(next_version next) {
    std::unique_ptr<engine_slot> replaced;
    {
        const std::lock_guard lock(_self->pending_mutex);
        replaced = std::move(_self->pending); // a version prepared but never swapped in is dropped
        _self->pending = std::move(next._slot);
        _self->has_pending.store(true, std::memory_order_release);
    }
}

expected<void> script_program::reload(std::string_view source, std::string chunk_name) {
    auto next = prepare_reload(source, std::move(chunk_name));
    if (!next) {
        return next.error();
    }
    stage(std::move(*next));
    return {};
}

std::uint64_t script_program::version() const {
    return _self->versions.load(std::memory_order_acquire);
}

void script_program::attach_chaining() {
    ebpf::execution_state& state = *_self->state;
    state.script = [](void* opaque, ebpf::xdp_context& packet, std::string_view function) {
        return static_cast<implementation*>(opaque)->chain(packet, function);
    };
    state.script_opaque = _self.get();
    _self->chained = &state;
}

ebpf::map* script_program::find_map(std::string_view name) const {
    if (ebpf::map* declared = _self->maps->find(name); declared != nullptr) {
        return declared;
    }
    return _self->settings.object != nullptr ? _self->settings.object->find_map(name) : nullptr;
}

const std::shared_ptr<script_maps>& script_program::declared_maps() const {
    return _self->maps;
}

std::size_t script_program::memory_in_use() const {
    return _self->current->engine->memory_in_use();
}

} // namespace sluice::lua
