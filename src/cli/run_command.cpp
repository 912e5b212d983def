// `sluice run`: load an object, prepare its maps, and run one program on packets, in one of two forms:
//  - `--in pcap:FILE|gen:SPEC [--out ACTION=FILE]`: one input, one thread; packets are written out by action and the
//    report counts what became of each packet. Per batch: frames from the pool -> the input fills them -> the program
//    runs over the batch -> frames go to the output file of their action (if any) -> back to the pool.
//  - `--port SPEC [--port SPEC ...] [--pass SPEC] [--workers N] [--duration S]`: the data path engine (xdp/engine.hpp)
//    over ports (io::open_port: pcap, gen, memory, afxdp, afpacket, tap), N workers, redirects between ports, live
//    rates every second, a clean stop on SIGINT/SIGTERM and the frame accounting per port at the end.
// Nothing allocates per packet: pools, batch arrays and writers are set up before the first packet.
#include "run_command.hpp"

#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include <filesystem>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "map_json.hpp"
#include "object_options.hpp"
#include "port_report.hpp"
#include "program_factory.hpp"
#include "run_report.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/io/pcap.hpp"
#include "sluice/io/port.hpp"
#include "sluice/io/traffic_generator.hpp"
#include "sluice/xdp/engine.hpp"
#include "sluice/xdp/executor.hpp"
#include "sluice/xdp/frame.hpp"
#include "verify_command.hpp"

namespace sluice::cli {
namespace {

struct run_options {
    std::string file;
    std::string input;
    std::vector<std::string> ports; ///< --port SPEC: the engine's ports
    std::string pass;               ///< --pass SPEC: where XDP_PASS frames of every --port go
    unsigned workers{1};
    double duration{};              ///< seconds; 0: until the inputs end or a signal
    std::string program;
    std::vector<std::string> outputs;
    std::vector<std::string> maps;
    std::vector<std::string> rodata;
    std::vector<std::string> prog_arrays;
    std::vector<std::string> dumped_maps; ///< --dump-map NAME: only these
    bool unchecked{}; ///< trust the program: neither verified nor checked
    bool checked{};   ///< checked mode even though the program is verified (debugging)
    bool no_verify{}; ///< skip the verifier, run in checked mode (a program the verifier wrongly rejects)
    bool json{};
    bool progress{};
    bool dump_maps{};
    bool trace{true};
    std::uint32_t ifindex{1};
    std::uint64_t instruction_limit{};
    std::string lua_engine{"lua5.4"}; ///< a `.lua` script: lua5.4 or luajit
    std::string engine{"jit"};        ///< an eBPF program run unchecked: jit or interpreter
    std::string chained_lua;          ///< --lua FILE: the script bpf_sluice_lua calls from an eBPF object
};

/// A failure the user must see: printed as "sluice run: MESSAGE", exit status 1.
[[noreturn]] void fail(std::string_view message) {
    fmt::print(stderr, "sluice run: {}\n", message);
    throw CLI::RuntimeError(1);
}

/// The input port: a pcap file or the generator, behind the one rx_batch interface.
class input_port {
public:
    static expected<input_port> open(const std::string& spec) {
        input_port port;
        if (spec.starts_with("pcap:")) {
            auto reader = io::pcap_reader::open(spec.substr(5));
            if (!reader) {
                return reader.error();
            }
            port._reader.emplace(std::move(*reader));
            return port;
        }
        if (spec.starts_with("gen:")) {
            auto parsed = io::traffic_spec::parse(spec.substr(4));
            if (!parsed) {
                return parsed.error();
            }
            auto generator = io::traffic_generator::create(*parsed);
            if (!generator) {
                return generator.error();
            }
            port._generator.emplace(std::move(*generator));
            return port;
        }
        return error{fmt::format("--in '{}': expected pcap:FILE or gen:SPEC", spec)};
    }

    std::size_t rx_batch(std::span<xdp::frame*> frames) {
        return _reader ? _reader->rx_batch(frames) : _generator->rx_batch(frames);
    }
    io::rx_state state() const { return _reader ? _reader->state() : _generator->state(); }
    std::uint64_t errors() const { return _reader ? _reader->errors() : _generator->errors(); }
    /// Packets read, delivered or not.
    std::uint64_t read() const { return _reader ? _reader->records() : _generator->generated(); }
    /// Known in advance for the generator only.
    std::optional<std::uint64_t> expected_packets() const {
        return _generator ? std::optional{_generator->spec().packets} : std::nullopt;
    }
    const std::optional<sluice::error>& failure() const { return _reader ? _reader->failure() : _no_failure; }
    io::timestamp_precision precision() const {
        return _reader ? _reader->precision() : io::timestamp_precision::nanosecond;
    }
    /// What the port said about packets it could not deliver.
    std::vector<std::string> error_messages() const {
        if (_reader) {
            std::vector<std::string> messages = _reader->messages();
            if (_reader->errors() > messages.size()) {
                messages.push_back(fmt::format("... and {} more records too large for a frame, counted as errors",
                                               _reader->errors() - messages.size()));
            }
            return messages;
        }
        if (_generator->errors() != 0) {
            return {fmt::format("{} generated packets larger than a frame ({} bytes) were counted as errors",
                                _generator->errors(), xdp::standard_frame_capacity)};
        }
        return {};
    }

private:
    input_port() = default;

    std::optional<io::pcap_reader> _reader;
    std::optional<io::traffic_generator> _generator;
    std::optional<sluice::error> _no_failure;
};

void drop_trace(std::string_view, unsigned, void*) {}

constexpr std::uint64_t checked_default_limit = 1'000'000;

/// The programs the object's own prog_array initial values (`.values = {[i] = &prog}`) hold: tail-call stages, not
/// entry points. Taken before --prog-array changes the slots, so that a changed slot does not turn a stage into an entry.
std::set<std::string> tail_call_stages(const ebpf::object_spec& spec) {
    std::set<std::string> stages;
    for (const ebpf::map_spec& map : spec.maps()) {
        for (const ebpf::prog_array_slot& slot : map.initial_programs) {
            stages.insert(slot.program);
        }
    }
    return stages;
}

/// The program `--prog` names; by default the first program attached to a device that no prog_array holds (the
/// entry point of a tail-call chain), else the first program.
const ebpf::loaded_program& choose_program(const ebpf::loaded_object& object, const run_options& options,
                                           const std::set<std::string>& stages) {
    if (!options.program.empty()) {
        if (const auto* found = object.find_program(options.program); found != nullptr) {
            return *found;
        }
        std::string names;
        for (const auto& program : object.programs()) {
            names += fmt::format("{}{}", names.empty() ? "" : ", ", program->name);
        }
        fail(fmt::format("{}: no program named '{}' (programs: {})", options.file, options.program, names));
    }
    if (object.programs().empty()) {
        fail(fmt::format("{}: no XDP program", options.file));
    }
    for (const auto& program : object.programs()) {
        if (program->kind.attach == ebpf::xdp_attach::device && !stages.contains(program->name)) {
            return *program;
        }
    }
    return *object.programs().front();
}

/// A map --map and --dump-map can name: one of the eBPF object's, or one a Lua script of the run declared.
struct named_map {
    std::string name;
    ebpf::map* map{};
};

/// The run's maps: the object's, in its order, then those the run's scripts declared, in declaration order.
std::vector<named_map> run_maps(const ebpf::loaded_object& object, const lua::script_maps* declared) {
    std::vector<named_map> maps;
    for (std::size_t i = 0; i < object.maps().size(); ++i) {
        maps.push_back({object.map_specs()[i].name, object.maps()[i].get()});
    }
    if (declared != nullptr) {
        for (const lua::script_maps::entry& entry : declared->list()) {
            maps.push_back({entry.name, entry.map});
        }
    }
    return maps;
}

std::string map_names(const std::vector<named_map>& maps) {
    std::string names;
    for (const named_map& entry : maps) {
        names += fmt::format("{}{}", names.empty() ? "" : ", ", entry.name);
    }
    return names.empty() ? std::string{"none"} : names;
}

ebpf::map* find_named(const std::vector<named_map>& maps, std::string_view name) {
    const auto found = std::ranges::find(maps, name, &named_map::name);
    return found == maps.end() ? nullptr : found->map;
}

/// How the run's maps are named in errors: the object's, or what the script declared.
std::string owner_of_maps(const run_options& options) {
    return is_lua_script(options.file) ? fmt::format("the script {} declared", options.file)
                                       : fmt::format("{} has", options.file);
}

/// --map NAME=FILE.json: after the programs are made (a script's maps exist once its top level ran; devmap and cpumap
/// values name the engine's ports and the object's programs).
void fill_maps(const std::vector<named_map>& maps, const run_options& options) {
    for (const std::string& assignment : options.maps) {
        const std::size_t equals = assignment.find('=');
        if (equals == std::string::npos || equals == 0) {
            fail(fmt::format("--map '{}': expected NAME=FILE.json", assignment));
        }
        const std::string name = assignment.substr(0, equals);
        ebpf::map* target = find_named(maps, name);
        if (target == nullptr) {
            fail(fmt::format("--map {}: {} no map '{}' (maps: {})", assignment, owner_of_maps(options), name,
                             map_names(maps)));
        }
        if (auto filled = fill_map_from_file(*target, name, assignment.substr(equals + 1)); !filled) {
            fail(filled.error().message);
        }
    }
}

/// The maps --dump-maps (all) and --dump-map NAME ask for, in the run's order.
std::vector<named_map> maps_to_dump(const std::vector<named_map>& maps, const run_options& options) {
    for (const std::string& name : options.dumped_maps) {
        if (find_named(maps, name) == nullptr) {
            fail(
                fmt::format("--dump-map {}: {} no such map (maps: {})", name, owner_of_maps(options), map_names(maps)));
        }
    }
    std::vector<named_map> dumped;
    for (const named_map& entry : maps) {
        if (options.dump_maps || std::ranges::find(options.dumped_maps, entry.name) != options.dumped_maps.end()) {
            dumped.push_back(entry);
        }
    }
    return dumped;
}

/// The output writers, indexed by action; empty where no --out asked for one.
using output_table = std::array<std::optional<io::pcap_writer>, xdp::action_count>;

output_table open_outputs(const run_options& options, io::timestamp_precision precision,
                          std::vector<output_summary>& summaries) {
    output_table writers;
    for (const std::string& assignment : options.outputs) {
        const std::size_t equals = assignment.find('=');
        const auto kind = equals == std::string::npos ? std::nullopt
                                                      : xdp::parse_action(std::string_view{assignment}.substr(0, equals));
        if (!kind || equals + 1 == assignment.size()) {
            fail(fmt::format("--out '{}': expected ACTION=FILE with ACTION one of pass, tx, redirect, drop, aborted",
                             assignment));
        }
        const std::string path = assignment.substr(equals + 1);
        auto writer = io::pcap_writer::create(path, precision);
        if (!writer) {
            fail(fmt::format("--out {}: {}", assignment, writer.error().message));
        }
        writers[xdp::index(*kind)].emplace(std::move(*writer));
        summaries.push_back({*kind, path, 0});
    }
    return writers;
}

class progress_meter {
public:
    explicit progress_meter(bool enabled) : _enabled(enabled), _start(clock::now()), _next(_start + interval) {}

    void update(const xdp::executor_stats& stats, std::optional<std::uint64_t> total) {
        if (!_enabled) {
            return;
        }
        const auto now = clock::now();
        if (now < _next) {
            return;
        }
        _next = now + interval;
        const double seconds = std::chrono::duration<double>(now - _start).count();
        const std::uint64_t done = stats.received.packets;
        std::string line = fmt::format("sluice run: {} packets", done);
        if (total && *total != 0) {
            line += fmt::format(" of {} ({:.0f}%)", *total, 100.0 * static_cast<double>(done) /
                                                                 static_cast<double>(*total));
        }
        line += fmt::format(", {:.0f} packets/s, {} dropped, {} passed", static_cast<double>(done) / seconds,
                            stats.of(xdp::action::drop).packets, stats.of(xdp::action::pass).packets);
        fmt::print(stderr, "{}\n", line);
    }

private:
    using clock = std::chrono::steady_clock;
    static constexpr std::chrono::seconds interval{1};

    bool _enabled;
    clock::time_point _start;
    clock::time_point _next;
};

/// SIGINT and SIGTERM during a --port run: stop reading, drain the queues, report.
std::atomic<bool> stop_signal{false};

extern "C" void on_stop_signal(int) { stop_signal.store(true, std::memory_order_relaxed); }

/// Installs the stop handler for SIGINT and SIGTERM, and puts the previous handlers back.
class stop_signals {
public:
    stop_signals() {
        stop_signal.store(false);
        struct sigaction action{};
        action.sa_handler = &on_stop_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, &_previous_interrupt);
        sigaction(SIGTERM, &action, &_previous_terminate);
    }
    ~stop_signals() {
        sigaction(SIGINT, &_previous_interrupt, nullptr);
        sigaction(SIGTERM, &_previous_terminate, nullptr);
    }
    stop_signals(const stop_signals&) = delete;
    stop_signals& operator=(const stop_signals&) = delete;

private:
    struct sigaction _previous_interrupt{};
    struct sigaction _previous_terminate{};
};

/// SIGHUP during a --port run of a Lua script (a .lua program, or --lua beside an object): reload the script's file
/// on every worker (script_group::reload: all or none; each worker swaps at its next batch).
std::atomic<bool> reload_signal{false};

extern "C" void on_reload_signal(int) { reload_signal.store(true, std::memory_order_relaxed); }

/// Installs the reload handler for SIGHUP, and puts the previous handler back.
class reload_signals {
public:
    reload_signals() {
        reload_signal.store(false);
        struct sigaction action{};
        action.sa_handler = &on_reload_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGHUP, &action, &_previous);
    }
    ~reload_signals() { sigaction(SIGHUP, &_previous, nullptr); }
    reload_signals(const reload_signals&) = delete;
    reload_signals& operator=(const reload_signals&) = delete;

private:
    struct sigaction _previous{};
};

/// Whether the verifier proves the program (and its tail-call targets) safe before it runs: unless --unchecked
/// (trust it) or --no-verify (run it checked instead). Lua scripts are sandboxed instead; the verifier is for eBPF.
bool verifies(const run_options& options) {
    return !is_lua_script(options.file) && !options.unchecked && !options.no_verify;
}

/// Checked mode: asked for (--checked), or the safety net of a program the verifier did not see (--no-verify). A
/// verified program needs none: the verifier's proof replaces the run-time checks.
bool runs_checked(const run_options& options) { return options.checked || options.no_verify; }

/// The JIT runs what needs no run-time checks (it relies on the verifier's proofs, or on --unchecked's trust, and
/// has no instruction limit); checked mode and instruction limits are the interpreter's.
bool runs_jit(const run_options& options) {
    return !is_lua_script(options.file) && !runs_checked(options) && options.instruction_limit == 0 &&
           options.engine == "jit";
}

/// What executes the program, for the report: the JIT, the interpreter, or a script's Lua engine.
std::string engine_name(const run_options& options) {
    if (is_lua_script(options.file)) {
        return options.lua_engine;
    }
    return runs_jit(options) ? "JIT" : "interpreter";
}

/// How a Lua script runs: its engine, and --set NAME=VALUE as its `config` table (defaults for an eBPF object).
lua::options script_options(const run_options& options) {
    lua::options settings;
    if (!is_lua_script(options.file) && options.chained_lua.empty()) {
        return settings;
    }
    const auto engine = lua::parse_engine(options.lua_engine);
    if (!engine) {
        fail(fmt::format("--lua-engine {}: lua5.4 or luajit", options.lua_engine));
    }
    settings.engine = *engine;
    settings.cpus = options.workers;
    // One registry for the run: every worker's Lua state declares into it, so a declared map is one map with a
    // per-CPU slot per worker, and --map / --dump-map reach it.
    settings.maps = std::make_shared<lua::script_maps>(options.workers);
    for (const std::string& assignment : options.rodata) {
        const std::size_t equals = assignment.find('=');
        if (equals == std::string::npos || equals == 0) {
            fail(fmt::format("--set {}: expected NAME=VALUE", assignment));
        }
        settings.config.emplace_back(assignment.substr(0, equals), assignment.substr(equals + 1));
    }
    return settings;
}

/// How eBPF programs run. An unverified program in checked mode stops a packet's run (aborted, counted) after as many
/// instructions as the kernel's verifier would ever process (BPF_COMPLEXITY_LIMIT_INSNS), since nothing has proven
/// that it ends; a verified one needs no limit.
xdp::executor_options execution_options(const run_options& options) {
    xdp::executor_options executor_options;
    executor_options.checked = runs_checked(options);
    executor_options.engine = runs_jit(options) ? xdp::execution_engine::jit : xdp::execution_engine::interpreter;
    executor_options.instruction_limit = options.instruction_limit != 0 ? options.instruction_limit
                                         : (runs_checked(options) && !verifies(options)) ? checked_default_limit
                                                                                         : 0;
    return executor_options;
}

/// What both reports (--in and --port) say of the run: the object, the program, and how it was checked and executed.
template <typename summary_type>
void describe_run(summary_type& summary, const run_options& options, const ebpf::loaded_program& program) {
    summary.object = options.file;
    summary.program = program.name;
    summary.checked = runs_checked(options);
    summary.verified = verifies(options);
    summary.engine = engine_name(options);
}

/// The report on stdout: the JSON document (with a "maps" array when maps are dumped) or the table followed by the
/// dumped maps as text. Only the form asked for is formatted.
void print_report(bool json, const std::vector<named_map>& dumped, const std::function<nlohmann::json()>& as_json,
                  const std::function<std::string()>& as_table) {
    if (json) {
        nlohmann::json report = as_json();
        if (!dumped.empty()) {
            nlohmann::json maps = nlohmann::json::array();
            for (const named_map& entry : dumped) {
                maps.push_back(dump_map_json(entry.name, *entry.map));
            }
            report["maps"] = std::move(maps);
        }
        std::cout << report.dump(2) << '\n';
    } else {
        std::cout << as_table();
        for (const named_map& entry : dumped) {
            std::cout << dump_map_text(entry.name, *entry.map);
        }
    }
    std::cout.flush();
}

/// The program factory's options for this run; `scripts` collects the Lua programs it makes (may be null).
program_options program_options_of(const run_options& options, const ebpf::loaded_object& object,
                                   const ebpf::loaded_program& program,
                                   const std::shared_ptr<lua::script_group>& scripts) {
    return program_options{options.file,        &object, &program, execution_options(options), script_options(options),
                           options.chained_lua, scripts};
}

/// The scripts' counters for the report, when a script ran.
std::optional<script_summary> summarize_scripts(const lua::script_group& scripts) {
    if (scripts.size() == 0) {
        return std::nullopt;
    }
    return script_summary{scripts.statistics(), scripts.size(), scripts.memory_in_use()};
}

/// `--in`: one input, one thread, packets written out by action.
void run_input(const run_options& options, const ebpf::loaded_object& object, const ebpf::loaded_program& program) {
    auto input = input_port::open(options.input);
    if (!input) {
        fail(input.error().message);
    }
    run_summary summary;
    describe_run(summary, options, program);
    summary.input = options.input;
    output_table writers = open_outputs(options, input->precision(), summary.outputs);

    ebpf::execution_state state(0);
    if (!options.trace) {
        state.trace = &drop_trace;
    }
    const auto scripts = std::make_shared<lua::script_group>();
    const program_options made_from = program_options_of(options, object, program, scripts);
    auto executor = make_program(made_from, 0, state);
    if (!executor) {
        fail(executor.error().message);
    }
    xdp::batch_program& runner = **executor;
    const std::vector<named_map> maps = run_maps(object, made_from.script.maps.get());
    fill_maps(maps, options);
    const std::vector<named_map> dumped = maps_to_dump(maps, options);

    xdp::frame_pool pool(xdp::max_batch_size);
    std::array<xdp::frame*, xdp::max_batch_size> batch{};
    std::array<xdp::action, xdp::max_batch_size> verdicts{};
    std::array<std::array<xdp::frame*, xdp::max_batch_size>, xdp::action_count> by_action{};
    std::array<std::size_t, xdp::action_count> counts{};
    std::uint64_t port_errors = 0;
    progress_meter progress(options.progress || ::isatty(STDERR_FILENO) != 0);
    const auto started = std::chrono::steady_clock::now(); // the run itself, not the load

    while (input->state() == io::rx_state::more) {
        const std::size_t acquired = pool.acquire_batch(batch);
        const std::size_t received = input->rx_batch({batch.data(), acquired});
        if (input->errors() != port_errors) {
            runner.count_port_errors(input->errors() - port_errors);
            port_errors = input->errors();
        }
        for (std::size_t i = 0; i < received; ++i) {
            batch[i]->set_ingress(options.ifindex, 0);
        }
        runner.run_batch({batch.data(), received}, verdicts);
        counts.fill(0);
        for (std::size_t i = 0; i < received; ++i) {
            const std::size_t kind = xdp::index(verdicts[i]);
            by_action[kind][counts[kind]++] = batch[i];
        }
        for (std::size_t kind = 0; kind < xdp::action_count; ++kind) {
            if (writers[kind] && counts[kind] != 0) {
                writers[kind]->tx_batch({by_action[kind].data(), counts[kind]});
            }
        }
        pool.release_batch({batch.data(), acquired});
        progress.update(runner.stats(), input->expected_packets());
    }

    summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    summary.stats = runner.stats();
    summary.script = summarize_scripts(*scripts);
    bool failed = false;
    for (output_summary& output : summary.outputs) {
        auto& writer = writers[xdp::index(output.kind)];
        output.written = writer->written();
        if (auto closed = writer->close(); !closed) {
            fmt::print(stderr, "sluice run: --out {}: {}\n", output.path, closed.error().message);
            failed = true;
        }
    }
    for (const std::string& message : input->error_messages()) {
        fmt::print(stderr, "sluice run: {}\n", message);
    }
    if (input->failure()) {
        summary.input_error = input->failure()->message;
    }
    if (state.trace_dropped != 0) {
        fmt::print(stderr, "sluice run: {} bpf_trace_printk lines over the limit of {} a second were not shown\n",
                   state.trace_dropped, state.trace_lines_per_second);
    }

    print_report(
        options.json, dumped, [&] { return format_json(summary); }, [&] { return format_table(summary); });

    // Every packet read must be under exactly one outcome; a mismatch is a bug in sluice, and must not pass quietly.
    if (auto accounted = runner.check_accounting(); !accounted) {
        fmt::print(stderr, "sluice run: {}\n", accounted.error().message);
        failed = true;
    }
    if (runner.stats().received.packets != input->read()) {
        fmt::print(stderr, "sluice run: accounting mismatch: {} packets read, {} counted\n", input->read(),
                   runner.stats().received.packets);
        failed = true;
    }
    if (input->failure()) {
        fmt::print(stderr, "sluice run: {}: {} (the {} packets before it were processed and counted)\n",
                   options.input, input->failure()->message, runner.stats().received.packets);
        failed = true;
    }
    if (failed) {
        throw CLI::RuntimeError(1);
    }
}

/// The frames the engine's pool holds: a batch in flight per port and worker, the 16-frame queues of every worker to
/// every port, the cpumap rings, with room to spare; at least 4096.
std::size_t pool_frames(std::size_t ports, unsigned workers) {
    const std::size_t per_worker = ports * (xdp::max_batch_size + xdp::redirect_bulk_size) + 2 * xdp::max_batch_size;
    return std::max<std::size_t>(4096, 2 * workers * per_worker + workers * workers * 512);
}

/// `--port`: the engine over ports, with workers, live rates and the accounting per port.
void run_ports(const run_options& options, const ebpf::loaded_object& object, const ebpf::loaded_program& program) {
    if (!options.outputs.empty()) {
        fail("--out writes the packets of one --in by action; with --port, give the pass target with --pass and "
             "redirect to ports");
    }
    xdp::frame_pool pool(pool_frames(options.ports.size() + (options.pass.empty() ? 0 : 1), options.workers));
    std::vector<std::unique_ptr<io::port>> ports;
    for (const std::string& spec : options.ports) {
        auto opened = io::open_port(spec, pool);
        if (!opened) {
            fail(fmt::format("--port {}: {}", spec, opened.error().message));
        }
        ports.push_back(std::move(*opened));
    }
    std::optional<std::size_t> pass_target;
    if (!options.pass.empty()) {
        io::port_options pass_options;
        pass_options.output = true; // pcap:FILE as a pass target is written, not read
        auto opened = io::open_port(options.pass, pool, pass_options);
        if (!opened) {
            fail(fmt::format("--pass {}: {}", options.pass, opened.error().message));
        }
        if (!(*opened)->features().tx) {
            fail(fmt::format("--pass {}: this port cannot transmit, so it cannot take XDP_PASS frames", options.pass));
        }
        pass_target = ports.size();
        ports.push_back(std::move(*opened));
    }

    xdp::engine_config config;
    for (std::size_t i = 0; i < ports.size(); ++i) {
        config.ports.push_back({ports[i].get(), pass_target && i != *pass_target ? pass_target : std::nullopt});
    }
    config.workers = options.workers;
    config.pool = &pool;
    config.object = &object;
    config.attached_options = execution_options(options);
    if (verifies(options) && !is_lua_script(options.file)) {
        // Programs on devmap and cpumap entries run unchecked like the main one, so the verifier must have proven
        // them too (libbpf loads, and so verifies, every program of an object).
        for (const auto& attached : object.programs()) {
            if (attached->kind.attach == ebpf::xdp_attach::device || attached.get() == &program) {
                continue;
            }
            if (auto verified = verify_for_run(object, *attached); !verified) {
                fail(verified.error().message);
            }
        }
    }
    const auto scripts = std::make_shared<lua::script_group>();
    const program_options made_from = program_options_of(options, object, program, scripts);
    config.make_program = [made_from](unsigned worker, ebpf::execution_state& state) {
        return make_program(made_from, worker, state);
    };
    const bool trace = options.trace;
    config.prepare_state = [trace](ebpf::execution_state& state) {
        if (!trace) {
            state.trace = &drop_trace;
        }
    };
    auto engine = xdp::engine::create(std::move(config));
    if (!engine) {
        fail(engine.error().message);
    }
    // After the engine: devmap and cpumap values name its ports and the object's programs, which it resolves, and
    // the scripts' top levels (one per worker) have declared their maps.
    const std::vector<named_map> maps = run_maps(object, made_from.script.maps.get());
    fill_maps(maps, options);
    const std::vector<named_map> dumped = maps_to_dump(maps, options);

    const bool live = options.progress || options.duration > 0 || ::isatty(STDERR_FILENO) != 0;
    xdp::engine_report previous;
    const std::string script_file = is_lua_script(options.file) ? options.file : options.chained_lua;
    const auto tick = [&](const xdp::engine_report& now) {
        if (live) {
            fmt::print(stderr, "{}", format_live(previous, now));
        }
        previous = now;
        if (reload_signal.exchange(false, std::memory_order_relaxed) && scripts->size() != 0) {
            if (auto reloaded = scripts->reload_file(script_file); reloaded) {
                fmt::print(stderr, "sluice run: SIGHUP: {} reloaded on {} worker{}, each swaps at its next batch\n",
                           script_file, scripts->size(), scripts->size() == 1 ? "" : "s");
            } else {
                fmt::print(stderr, "sluice run: SIGHUP: {}\n", reloaded.error().message);
            }
        }
    };
    {
        stop_signals signals;
        std::optional<reload_signals> reloads;
        if (scripts->size() != 0) {
            reloads.emplace();
        }
        if (auto ran = (*engine)->run(std::chrono::duration<double>(options.duration), &stop_signal, tick); !ran) {
            fail(ran.error().message);
        }
    }
    if (stop_signal.load()) {
        fmt::print(stderr, "sluice run: stopped by a signal; queues drained\n");
    }

    port_run_summary summary;
    describe_run(summary, options, program);
    summary.workers = options.workers;
    summary.report = (*engine)->report();
    summary.script = summarize_scripts(*scripts);
    summary.notes = (*engine)->notes();
    if (auto checked = (*engine)->check(); !checked) {
        summary.accounting_error = checked.error().message;
    }
    for (const std::string& note : summary.notes) {
        fmt::print(stderr, "sluice run: note: {}\n", note);
    }
    print_report(
        options.json, dumped, [&] { return format_port_json(summary); }, [&] { return format_port_table(summary); });
    if (!summary.accounting_error.empty()) {
        fmt::print(stderr, "sluice run: {}\n", summary.accounting_error);
        throw CLI::RuntimeError(1);
    }
}

void run(const run_options& options) {
    if (options.input.empty() == options.ports.empty()) {
        fail("give the packets either with --in pcap:FILE|gen:SPEC (one input) or with one or more --port SPEC (the "
             "data path engine), not both");
    }
    if (options.ports.empty() && (options.workers != 1 || !options.pass.empty() || options.duration != 0)) {
        fail("--workers, --pass and --duration go with --port");
    }
    if (options.workers == 0 || options.workers > 1024) {
        fail(fmt::format("--workers {}: between 1 and 1024", options.workers));
    }
    if (options.duration < 0) {
        fail("--duration: seconds, 0 or more");
    }
    if (is_lua_script(options.file)) {
        // A Lua script has no object, programs or prog arrays; --map and --dump-map name the maps it declares.
        if (!options.prog_arrays.empty() || !options.program.empty() || !options.chained_lua.empty()) {
            fail("--prog, --prog-array and --lua are for eBPF objects: a Lua script is one program, and declares its "
                 "maps itself (maps.declare; --map NAME=FILE.json fills them, --dump-map NAME prints them)");
        }
        static const ebpf::loaded_object no_object;
        ebpf::loaded_program script;
        script.name = std::filesystem::path(options.file).filename().string();
        script.section = "lua";
        if (options.ports.empty()) {
            run_input(options, no_object, script);
        } else {
            run_ports(options, no_object, script);
        }
        return;
    }
    auto spec = ebpf::object_spec::open_file(options.file);
    if (!spec) {
        fail(spec.error().message);
    }
    if (auto done = apply_rodata(*spec, options.rodata); !done) {
        fail(done.error().message);
    }
    const std::set<std::string> stages = tail_call_stages(*spec); // the object's own slots, before --prog-array's
    if (auto done = apply_prog_arrays(*spec, options.prog_arrays); !done) {
        fail(done.error().message);
    }
    // per-CPU map slots and cpumap entries: one per worker
    const ebpf::load_options load = xdp_load_options(options.workers);
    auto object = spec->load(load);
    if (!object) {
        fail(object.error().message);
    }
    for (const std::string& note : object->notes()) {
        fmt::print(stderr, "sluice run: note: {}\n", note);
    }
    const ebpf::loaded_program& program = choose_program(*object, options, stages);
    if (options.unchecked && (options.checked || options.no_verify)) {
        fail("--unchecked trusts the program without verifying or checking it; it does not combine with --checked or "
             "--no-verify");
    }
    if (options.engine != "jit" && options.engine != "interpreter") {
        fail(fmt::format("--engine {}: jit or interpreter", options.engine));
    }
    if (options.engine == "jit" && !options.checked && !options.no_verify && options.instruction_limit != 0) {
        fmt::print(stderr, "sluice run: note: --instruction-limit runs the program in the interpreter (the JIT has "
                           "no instruction limit)\n");
    }
    if (verifies(options)) {
        if (auto verified = verify_for_run(*object, program); !verified) {
            fail(verified.error().message);
        }
    }
    if (options.ports.empty()) {
        run_input(options, *object, program);
    } else {
        run_ports(options, *object, program);
    }
}

} // namespace

void add_run_command(CLI::App& app) {
    auto options = std::make_shared<run_options>();
    CLI::App* command = app.add_subcommand(
        "run", "Run an XDP program over packets in the interpreter and count what it did with them");
    command->footer(
        "The program is verified before it runs (as `sluice verify` does; with a prog array, every program of the "
        "object, since each may be a tail-call target): a rejection stops the run with the verifier's explanation, "
        "and a verified program runs without run-time checks. --checked bounds-checks every memory access anyway "
        "(packet buffer, context, stack, map values; a stray access aborts that packet, counted and logged), for "
        "debugging. --no-verify skips the verifier and runs in checked mode, for a program the verifier wrongly "
        "rejects (please report it). --unchecked skips both: it trusts the program (only for programs you know the "
        "kernel's verifier accepts).\n\n"
        "--map FILE.json format: a list of entries, [{\"key\": K, \"value\": V}, ...], where K and V are hex strings "
        "of the bytes (\"0a000001\"), arrays of byte values ([10, 0, 0, 1]), or integers for 4- and 8-byte keys and "
        "values (stored little-endian, as the program reads them). Per-CPU maps take \"values\": [V0, V1, ...], or "
        "one \"value\" for every CPU. The entries of a --dump-maps --json map have the same form.\n\n"
        "With --port, sluice runs the data path engine: every port is read in batches of up to 64 frames by its "
        "worker, XDP_TX sends a frame back out of its port, XDP_PASS to the --pass port, XDP_REDIRECT to the port "
        "bpf_redirect() or a devmap/devmap_hash entry names (by ifindex: see each port's in the table; a pcap, gen "
        "or memory port gets a sluice-assigned one from 16777216 up), to another worker through a cpumap, or to an "
        "in-process AF_XDP socket through an xskmap (library use). A devmap or cpumap value's program field names a "
        "program of the object by its position among the object's programs, counting from 1 (0: none), as the "
        "kernel's takes a program fd; it must be an `xdp/devmap` or `xdp/cpumap` program. Rates per port and action "
        "are printed every second on stderr (with --progress, --duration or a terminal); SIGINT or SIGTERM stops "
        "reading, drains the queues and prints the final table, where for every port received = dropped + passed + "
        "transmitted + redirected + aborted + errors.\n\n"
        "A Lua script (FILE.lua, or --lua beside an object) has one Lua state per worker; the maps it declares are one "
        "map for the run (per-CPU maps with a slot per worker), so --map and --dump-map reach them as an object's. "
        "With --port, SIGHUP reloads the script file on every worker (all of them or, if it fails to load, none); each "
        "swaps at its next batch, so no packet is lost or run twice.\n\n"
        "Exit status: 0 when every packet was read and counted; 1 on any error (load, options, a truncated or corrupt "
        "pcap after the packets before it were processed, an output write error, a frame accounting mismatch).");
    command->add_option("file", options->file,
                        "BPF ELF object (clang -O2 -g -target bpf -c), or a Lua script (.lua) defining xdp(pkt)")
        ->required();
    command->add_option("--in", options->input, "Packets: pcap:FILE (pcap or pcapng) or gen:SPEC (see sluice-gen)");
    command->add_option("--port", options->ports,
                        "A port for the data path engine: pcap:FILE, gen:SPEC, memory:NAME, afxdp:IFACE[:QUEUE], "
                        "afpacket:IFACE, tap:NAME; repeatable (instead of --in)");
    command->add_option("--pass", options->pass,
                        "With --port: where XDP_PASS frames go (tap:NAME towards the host stack, pcap:FILE written); "
                        "without it they are counted and dropped");
    command->add_option("--workers", options->workers,
                        "With --port: worker threads (default 1); port i is read by worker i % N; "
                        "bpf_get_smp_processor_id() is the worker's index");
    command->add_option("--duration", options->duration,
                        "With --port: stop after this many seconds (default: when every input ends, or on "
                        "SIGINT/SIGTERM)");
    command->add_option("--prog", options->program, "Program to run (default: the first XDP program that is not a tail-call stage of a prog array)");
    command->add_option("--out", options->outputs,
                        "ACTION=FILE: write packets of ACTION (pass, tx, redirect, drop, aborted) to a pcap file, "
                        "timestamps kept; repeatable");
    command->add_flag("--checked", options->checked,
                      "Bounds-check every memory access at run time even though the program is verified");
    command->add_flag("--no-verify", options->no_verify,
                      "Skip the verifier and run in checked mode (for a program the verifier wrongly rejects)");
    command->add_flag("--unchecked", options->unchecked,
                      "Trust the program: neither verify it nor bounds-check it at run time");
    command->add_flag("--json", options->json, "Print the report (and --dump-maps) as JSON");
    command->add_flag("--progress", options->progress,
                      "Print progress to stderr every second (default: only when stderr is a terminal)");
    command->add_option("--map", options->maps,
                        "NAME=FILE.json: fill map NAME before the run (an object's map, or one a Lua script declared: "
                        "filled once its top level ran); repeatable");
    command->add_flag("--dump-maps", options->dump_maps,
                      "Print every map after the run (the object's, then those Lua scripts declared)");
    command->add_option("--dump-map", options->dumped_maps, "NAME: print this map after the run; repeatable");
    command->add_option("--set", options->rodata,
                        "NAME=VALUE: set a .rodata variable (const volatile global) before load; repeatable");
    command->add_option("--prog-array", options->prog_arrays,
                        "MAP[INDEX]=PROGRAM: put a program of the object in a prog array slot; repeatable");
    command->add_flag("--trace,!--no-trace", options->trace, "Print bpf_trace_printk output on stderr (default: on)");
    command->add_option("--ifindex", options->ifindex,
                        "ingress_ifindex the program sees (default 1, the loopback, as BPF_PROG_TEST_RUN)");
    command->add_option("--lua", options->chained_lua,
                        "With an eBPF object: a Lua script whose global functions the program calls with sluice's "
                        "kfunc bpf_sluice_lua(ctx, \"fn\", len), using their verdicts; it may open the object's maps");
    command->add_option("--lua-engine", options->lua_engine,
                        "For a .lua script: lua5.4 (default; sandboxed, CPU budget enforced) or luajit (faster; "
                        "trusted code: compiled traces ignore the budget). --set NAME=VALUE fills its `config` table");
    command->add_option("--engine", options->engine,
                        "What runs a verified (or --unchecked) eBPF program: jit (default; x86-64 native code) or "
                        "interpreter (the reference). Checked mode (--checked, --no-verify) and --instruction-limit "
                        "always use the interpreter");
    command->add_option("--instruction-limit", options->instruction_limit,
                        "Abort a packet's run after this many instructions (default: 1000000 with --no-verify, none "
                        "otherwise)");
    command->callback([options] { run(*options); });
}

} // namespace sluice::cli
