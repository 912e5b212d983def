// The engine: checks the configuration, installs the redirect maps' resolvers, runs the workers and reports their
// accounting (include/sluice/xdp/engine.hpp has the contract; worker.cpp the data path itself).
#include "sluice/xdp/engine.hpp"

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "xdp/engine_internal.hpp"

namespace sluice::xdp {

counter port_report::errors() const {
    return {rx_errors.packets + tx_errors.packets + redirect_errors.packets,
            rx_errors.bytes + tx_errors.bytes + redirect_errors.bytes};
}

counter port_report::accounted() const {
    counter sum = errors();
    for (const counter* part : {&dropped, &passed, &transmitted, &redirected, &aborted}) {
        sum.packets += part->packets;
        sum.bytes += part->bytes;
    }
    return sum;
}

struct engine::implementation {
    detail::engine_shared shared;
    std::vector<ebpf::redirect_map*> redirect_maps;
    std::chrono::steady_clock::time_point started;
    std::chrono::steady_clock::time_point finished_at;
    bool running{};
    bool joined{};

    void install_resolvers();
};

namespace {

ebpf::xdp_attach attach_for(ebpf::map_type type) {
    return type == ebpf::map_type::cpumap ? ebpf::xdp_attach::cpumap : ebpf::xdp_attach::devmap;
}

} // namespace

void engine::implementation::install_resolvers() {
    const ebpf::loaded_object* object = shared.config.object;
    if (object == nullptr) {
        return;
    }
    for (const auto& candidate : object->maps()) {
        const auto type = candidate->type();
        if (type != ebpf::map_type::devmap && type != ebpf::map_type::devmap_hash && type != ebpf::map_type::cpumap &&
            type != ebpf::map_type::xskmap) {
            continue;
        }
        auto* target = dynamic_cast<ebpf::redirect_map*>(candidate.get());
        if (target == nullptr) {
            continue;
        }
        ebpf::redirect_map::resolvers with;
        const ebpf::xdp_attach wanted = attach_for(type);
        with.program = [object, wanted](std::uint32_t id) -> const void* {
            // Program ids are 1-based positions among the object's programs (0 and negative: no program).
            if (id == 0 || id > object->programs().size()) {
                return nullptr;
            }
            const ebpf::loaded_program* program = object->programs()[id - 1].get();
            return program->kind.attach == wanted ? program : nullptr;
        };
        with.interface = [this](std::uint32_t ifindex) { return shared.port_by_ifindex(ifindex).has_value(); };
        with.socket = [this](std::uint32_t id, std::uint32_t& queue_id) -> void* {
            for (xsk_socket* socket : shared.config.sockets) {
                if (socket->id() == id) {
                    queue_id = socket->queue_id();
                    return socket;
                }
            }
            return nullptr;
        };
        target->set_resolvers(std::move(with));
        redirect_maps.push_back(target);
    }
}

engine::engine(std::unique_ptr<implementation> self) : _self(std::move(self)) {}

engine::~engine() {
    if (_self->running && !_self->joined) {
        request_stop();
        wait();
    }
    for (ebpf::redirect_map* target : _self->redirect_maps) {
        target->set_resolvers({}); // they point into this engine
    }
}

expected<std::unique_ptr<engine>> engine::create(engine_config config) {
    if (config.workers == 0) {
        return error{"engine: at least one worker is needed"};
    }
    if (config.pool == nullptr) {
        return error{"engine: no frame pool"};
    }
    if (!config.make_program) {
        return error{"engine: no program maker"};
    }
    if (config.ports.empty()) {
        return error{"engine: no port"};
    }
    if (config.ports.size() + config.sockets.size() > UINT32_MAX / 2) {
        return error{"engine: too many ports"};
    }
    for (std::size_t i = 0; i < config.ports.size(); ++i) {
        const engine_port& entry = config.ports[i];
        if (entry.port == nullptr) {
            return error{fmt::format("engine: port {} is missing", i)};
        }
        if (entry.pass_target) {
            if (*entry.pass_target >= config.ports.size()) {
                return error{fmt::format("engine: port '{}': pass target {} is not a port", entry.port->name(),
                                         *entry.pass_target)};
            }
            const io::port& target = *config.ports[*entry.pass_target].port;
            if (!target.features().tx) {
                return error{fmt::format("engine: port '{}': pass target '{}' cannot transmit", entry.port->name(),
                                         target.name())};
            }
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (config.ports[j].port == entry.port) {
                return error{fmt::format("engine: port '{}' is given twice", entry.port->name())};
            }
        }
    }
    if (config.object != nullptr) {
        for (std::size_t i = 0; i < config.object->maps().size(); ++i) {
            const ebpf::map& candidate = *config.object->maps()[i];
            if ((candidate.is_percpu() || candidate.type() == ebpf::map_type::cpumap) &&
                candidate.cpus() < config.workers) {
                return error{fmt::format("engine: map '{}' has {} cpu slots for {} workers (load the object with "
                                         "load_options::cpus = {})",
                                         config.object->map_specs()[i].name, candidate.cpus(), config.workers,
                                         config.workers)};
            }
        }
    }
    auto self = std::make_unique<implementation>();
    detail::engine_shared& shared = self->shared;
    shared.config = std::move(config);
    const unsigned workers = shared.config.workers;
    shared.lock_ports = workers > 1;
    for (std::size_t i = 0; i < shared.config.ports.size(); ++i) {
        auto entry = std::make_unique<detail::shared_port>();
        const engine_port& given = shared.config.ports[i];
        const io::port_features& features = given.port->features();
        entry->port = given.port;
        entry->pass_target = given.pass_target;
        entry->ifindex = features.ifindex;
        entry->rx = features.rx;
        entry->redirect_target = features.tx && features.redirect_target;
        entry->owner = static_cast<unsigned>(i % workers);
        shared.ports.push_back(std::move(entry));
    }
    for (unsigned i = 0; i < workers * workers; ++i) {
        shared.rings.push_back(std::make_unique<spsc_ring<detail::cpumap_item>>(detail::cpumap_ring_size));
    }
    self->install_resolvers();
    for (unsigned i = 0; i < workers; ++i) {
        shared.workers.push_back(std::make_unique<detail::worker>(shared, i));
        if (auto prepared = shared.workers.back()->prepare(); !prepared) {
            for (ebpf::redirect_map* target : self->redirect_maps) {
                target->set_resolvers({});
            }
            return prepared.error();
        }
    }
    return std::unique_ptr<engine>(new engine(std::move(self)));
}

expected<void> engine::start() {
    if (_self->running) {
        return error{"engine: already started"};
    }
    _self->running = true;
    _self->started = std::chrono::steady_clock::now();
    for (auto& worker : _self->shared.workers) {
        try {
            worker->thread() = std::thread([raw = worker.get()] { raw->run(); });
        } catch (const std::system_error& failure) {
            request_stop();
            wait();
            return error{fmt::format("engine: cannot start worker {}: {}", worker->index(), failure.what())};
        }
    }
    return {};
}

void engine::request_stop() {
    _self->shared.stop.store(true, std::memory_order_relaxed);
}

bool engine::finished() const {
    return _self->running && _self->shared.exited.load(std::memory_order_acquire) == _self->shared.config.workers;
}

void engine::wait() {
    if (!_self->running || _self->joined) {
        return;
    }
    for (auto& worker : _self->shared.workers) {
        if (worker->thread().joinable()) {
            worker->thread().join();
        }
    }
    _self->joined = true;
    _self->finished_at = std::chrono::steady_clock::now();
}

expected<void> engine::run(std::chrono::duration<double> duration, const std::atomic<bool>* stop,
                           const std::function<void(const engine_report&)>& tick) {
    if (!_self->running) {
        if (auto started = start(); !started) {
            return started;
        }
    }
    using clock = std::chrono::steady_clock;
    const auto begin = clock::now();
    auto next_tick = begin + std::chrono::seconds(1);
    while (!finished()) {
        const auto now = clock::now();
        if ((duration.count() > 0 && now - begin >= duration) ||
            (stop != nullptr && stop->load(std::memory_order_relaxed))) {
            break;
        }
        if (tick && now >= next_tick) {
            tick(report());
            next_tick += std::chrono::seconds(1);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    request_stop();
    wait();
    return {};
}

engine_report engine::report() const {
    const detail::engine_shared& shared = _self->shared;
    engine_report out;
    for (std::size_t p = 0; p < shared.ports.size(); ++p) {
        port_report port;
        const io::port& source = *shared.ports[p]->port;
        port.name = source.name();
        port.kind = source.features().kind;
        port.ifindex = shared.ports[p]->ifindex;
        const auto add = [](counter& into, const counter& more) {
            into.packets += more.packets;
            into.bytes += more.bytes;
        };
        for (const auto& worker : shared.workers) {
            const detail::port_counters& counters = worker->counters(p);
            const auto of = [&](detail::outcome what) {
                return counters.outcomes[static_cast<std::size_t>(what)].read();
            };
            add(port.received, counters.received.read());
            add(port.dropped, of(detail::outcome::dropped));
            add(port.passed, of(detail::outcome::passed));
            add(port.transmitted, of(detail::outcome::transmitted));
            add(port.redirected, of(detail::outcome::redirected));
            add(port.aborted, of(detail::outcome::aborted));
            add(port.rx_errors, of(detail::outcome::rx_error));
            add(port.tx_errors, of(detail::outcome::tx_error));
            add(port.redirect_errors, of(detail::outcome::redirect_error));
            add(port.clones_sent, of(detail::outcome::clone_sent));
            add(port.clones_dropped, of(detail::outcome::clone_dropped));
            add(port.sent, counters.sent.read());
        }
        out.ports.push_back(std::move(port));
    }
    for (const auto& worker : shared.workers) {
        out.workers.push_back(worker->report());
        if (_self->joined) {
            out.programs.push_back(worker->program().stats()); // written by the worker: read once it has exited
        }
    }
    out.pool_outstanding = shared.config.pool->outstanding();
    if (_self->running) {
        const auto end = _self->joined ? _self->finished_at : std::chrono::steady_clock::now();
        out.seconds = std::chrono::duration<double>(end - _self->started).count();
    }
    return out;
}

expected<void> engine::check() const {
    if (!_self->joined) {
        return error{"engine: check() needs the workers to have finished (wait())"};
    }
    const engine_report final_report = report();
    std::string problems;
    for (const port_report& port : final_report.ports) {
        if (!port.balanced()) {
            const counter sum = port.accounted();
            problems += fmt::format("{}port '{}': received {} packets ({} bytes) but accounted for {} ({} bytes)",
                                    problems.empty() ? "" : "; ", port.name, port.received.packets, port.received.bytes,
                                    sum.packets, sum.bytes);
        }
    }
    for (const auto& worker : _self->shared.workers) {
        if (auto checked = worker->check_programs(); !checked) {
            problems += fmt::format("{}{}", problems.empty() ? "" : "; ", checked.error().message);
        }
    }
    if (final_report.pool_outstanding != 0) {
        problems += fmt::format("{}{} frames are not back in the pool (held by a port or an xsk socket)",
                                problems.empty() ? "" : "; ", final_report.pool_outstanding);
    }
    if (!problems.empty()) {
        return error{"accounting mismatch: " + problems};
    }
    return {};
}

std::vector<std::string> engine::notes() const {
    std::vector<std::string> out;
    for (const auto& worker : _self->shared.workers) {
        if (!worker->note().empty()) {
            out.push_back(worker->note());
        }
    }
    return out;
}

} // namespace sluice::xdp
