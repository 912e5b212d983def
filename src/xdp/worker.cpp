// A worker: reads its ports in batches, runs the program, dispatches every frame by its action through per-target
// queues flushed in bulk, and moves frames to and from other workers through cpumap rings (engine.hpp has the
// contract).
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "xdp/engine_internal.hpp"

namespace sluice::xdp::detail {
namespace {

/// A lock taken only when several workers share the ports.
class maybe_lock {
public:
    maybe_lock(std::mutex& lock, bool take) : _lock(take ? &lock : nullptr) {
        if (_lock != nullptr) {
            _lock->lock();
        }
    }
    ~maybe_lock() {
        if (_lock != nullptr) {
            _lock->unlock();
        }
    }
    maybe_lock(const maybe_lock&) = delete;
    maybe_lock& operator=(const maybe_lock&) = delete;

private:
    std::mutex* _lock;
};

} // namespace

worker::worker(engine_shared& shared, unsigned index)
    : _shared(shared), _index(index), _state(index), _counters(std::make_unique<port_counters[]>(shared.ports.size())),
      _pending(shared.ports.size()), _port_queues(shared.ports.size()), _written(shared.ports.size()),
      _cpu_staging(shared.config.workers), _socket_staging(shared.config.sockets.size()),
      _rx_errors_seen(shared.ports.size()) {
    for (auto& queue : _port_queues) {
        queue.reserve(redirect_bulk_size);
    }
    for (auto& queue : _cpu_staging) {
        queue.reserve(redirect_bulk_size);
    }
    for (auto& queue : _socket_staging) {
        queue.reserve(redirect_bulk_size);
    }
    _targets.reserve(256);
    for (std::size_t i = 0; i < shared.ports.size(); ++i) {
        if (shared.ports[i]->owner == index && shared.ports[i]->rx) {
            _owned.push_back(i);
        }
        const std::uint32_t ifindex = shared.ports[i]->ifindex;
        const auto known = std::find_if(_by_ifindex.begin(), _by_ifindex.end(),
                                        [&](const auto& entry) { return entry.first == ifindex; });
        if (known == _by_ifindex.end()) {
            _by_ifindex.emplace_back(ifindex, i);
        } else if (shared.ports[i]->owner == index && shared.ports[known->second]->owner != index) {
            known->second = i; // this worker's own queue of the interface
        }
        const auto& target = shared.ports[i]->pass_target;
        _pass_targets.push_back(target ? static_cast<std::uint32_t>(*target) : no_pass_target);
    }
}

expected<void> worker::prepare() {
    if (_shared.config.prepare_state) {
        _shared.config.prepare_state(_state);
    }
    auto made = _shared.config.make_program(_index, _state);
    if (!made) {
        return made.error();
    }
    if (*made == nullptr) {
        return error{fmt::format("worker {}: the program maker gave no program", _index)};
    }
    _program = std::move(*made);
    if (const ebpf::loaded_object* object = _shared.config.object; object != nullptr) {
        for (const auto& program : object->programs()) {
            if (program->kind.attach == ebpf::xdp_attach::device) {
                continue;
            }
            auto created =
                executor::create(*object, *program, ebpf::xdp_helper_table(), _state, _shared.config.attached_options);
            if (!created) {
                return error{fmt::format("worker {}: {} program '{}': {}", _index,
                                         ebpf::to_string(program->kind.attach), program->name,
                                         created.error().message)};
            }
            _attached.push_back({program.get(), std::make_unique<executor>(std::move(*created))});
        }
    }
    return {};
}

void worker::pin() {
    if (!_shared.config.pin_workers) {
        return;
    }
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        _note = fmt::format("worker {}: not pinned (sched_getaffinity: {})", _index, std::strerror(errno));
        return;
    }
    // The index-th CPU this process may use; with fewer CPUs than workers, pinning would stack workers: leave them
    // to the scheduler.
    if (static_cast<unsigned>(CPU_COUNT(&allowed)) < _shared.config.workers) {
        _note = fmt::format("worker {}: not pinned ({} workers, {} CPUs available)", _index, _shared.config.workers,
                            CPU_COUNT(&allowed));
        return;
    }
    unsigned seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (!CPU_ISSET(cpu, &allowed)) {
            continue;
        }
        if (seen++ == _index) {
            cpu_set_t only;
            CPU_ZERO(&only);
            CPU_SET(cpu, &only);
            if (const int failed = pthread_setaffinity_np(pthread_self(), sizeof only, &only); failed != 0) {
                _note = fmt::format("worker {}: not pinned to CPU {} ({})", _index, cpu, std::strerror(failed));
                return;
            }
            _cpu = cpu;
            return;
        }
    }
}

void worker::run() {
    frame_pool::cache cache(*_shared.config.pool); // this thread's frames come and go in bulk
    _cache = &cache;
    pin();
    const unsigned workers = _shared.config.workers;
    bool reading = true;
    bool counted_done = false;
    unsigned idle = 0;
    while (true) {
        bool busy = false;
        if (reading) {
            if (_shared.stop.load(std::memory_order_relaxed)) {
                reading = false;
            } else {
                busy |= read_ports();
                bool exhausted = true;
                for (const std::size_t port : _owned) {
                    shared_port& target = *_shared.ports[port];
                    maybe_lock guard(target.lock, _shared.lock_ports);
                    exhausted = exhausted && target.port->exhausted();
                }
                reading = !exhausted;
            }
        }
        busy |= drain_rings();
        busy |= drain_sockets();
        flush_all();
        publish();
        if (!reading) {
            if (!counted_done) {
                for (const std::size_t port : _owned) {
                    collect_rx_errors(port);
                }
                publish();
                // Everything this worker read is dispatched and flushed (or on a ring, counted in in_flight).
                _shared.done_reading.fetch_add(1, std::memory_order_acq_rel);
                counted_done = true;
            }
            if (_shared.done_reading.load(std::memory_order_acquire) == workers &&
                _shared.in_flight.load(std::memory_order_acquire) == 0) {
                break;
            }
        }
        if (busy) {
            idle = 0;
        } else if (++idle < 16) {
            std::this_thread::yield();
        } else {
            // Nothing to do: do not spin a core another worker (or another process) could use.
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }
    publish();
    _cache = nullptr; // the cache ends with this scope
    _shared.exited.fetch_add(1, std::memory_order_acq_rel);
}

bool worker::read_ports() {
    bool any = false;
    std::array<frame*, max_batch_size> frames{};
    ++_reads;
    for (const std::size_t port : _owned) {
        shared_port& source = *_shared.ports[port];
        std::size_t received = 0;
        {
            maybe_lock guard(source.lock, _shared.lock_ports);
            received = source.port->rx_batch(frames);
        }
        // A port's stats() may be a system call (AF_XDP, AF_PACKET): looked at when the port is not busy, else every
        // 64 batches; and once more when reading stops, so that the final accounting has every error.
        if (received < frames.size() || (_reads & 63) == 0) {
            collect_rx_errors(port);
        }
        if (received != 0) {
            process_received(port, {frames.data(), received});
            flush_all(); // the end of a batch: every queue out, every port written to kicked
            any = true;
        }
    }
    return any;
}

void worker::collect_rx_errors(std::size_t port) {
    shared_port& source = *_shared.ports[port];
    std::uint64_t rx_errors = 0;
    {
        maybe_lock guard(source.lock, _shared.lock_ports);
        rx_errors = source.port->stats().rx_errors;
    }
    if (rx_errors != _rx_errors_seen[port]) {
        // Packets the port could not put in a frame: outcomes of this port too.
        const std::uint64_t fresh = rx_errors - _rx_errors_seen[port];
        _rx_errors_seen[port] = rx_errors;
        _pending[port].received.packets += fresh;
        _pending[port].outcomes[static_cast<std::size_t>(outcome::rx_error)].packets += fresh;
        _pending[port].any = true;
        _program->count_port_errors(fresh);
    }
}

void worker::process_received(std::size_t port, std::span<frame* const> frames) {
    std::array<std::uint32_t, max_batch_size> lengths; // filled below for every frame of the batch
    std::array<action, max_batch_size> verdicts;       // filled by run_batch for every frame
    std::uint64_t bytes = 0;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        lengths[i] = frames[i]->length();
        bytes += lengths[i];
    }
    _pending[port].received.packets += frames.size();
    _pending[port].received.bytes += bytes;
    _pending[port].any = true;
    _program->run_batch(frames, verdicts);
    const auto decisions = _program->redirect_decisions();
    for (std::size_t i = 0; i < frames.size(); ++i) {
        const ebpf::redirect_decision* decision = i < decisions.size() ? &decisions[i] : nullptr;
        dispatch(frames[i], verdicts[i], decision, static_cast<std::uint32_t>(port), lengths[i], false);
    }
    _batches.store(_batches.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void worker::publish() {
    for (std::size_t port = 0; port < _pending.size(); ++port) {
        pending_counts& counts = _pending[port];
        if (!counts.any) {
            continue;
        }
        port_counters& live = _counters[port];
        if (counts.received.packets != 0) {
            live.received.add(counts.received.bytes, counts.received.packets);
        }
        for (std::size_t what = 0; what < outcome_count; ++what) {
            if (counts.outcomes[what].packets != 0) {
                live.outcomes[what].add(counts.outcomes[what].bytes, counts.outcomes[what].packets);
            }
        }
        if (counts.sent.packets != 0) {
            live.sent.add(counts.sent.bytes, counts.sent.packets);
        }
        counts = pending_counts{};
    }
}

void worker::dispatch(frame* item, action verdict, const ebpf::redirect_decision* decision, std::uint32_t origin,
                      std::uint32_t length, bool on_cpumap) {
    switch (verdict) {
    case action::drop:
        release(item);
        count(origin, outcome::dropped, length);
        return;
    case action::aborted:
        release(item);
        count(origin, outcome::aborted, length);
        return;
    case action::pass:
        if (const std::uint32_t target = _pass_targets[origin]; target != no_pass_target) {
            enqueue(target, {item, length, origin, outcome::passed});
            return;
        }
        release(item);
        count(origin, outcome::passed, length);
        return;
    case action::tx:
        if (on_cpumap) {
            release(item); // cpu_map_bpf_prog_run_xdp: XDP_TX is an invalid action there
            count(origin, outcome::aborted, length);
            return;
        }
        enqueue(origin, {item, length, origin, outcome::transmitted});
        return;
    case action::redirect:
        if (decision == nullptr) {
            release(item);
            count(origin, outcome::redirect_error, length);
            return;
        }
        redirect(item, *decision, origin, length);
        return;
    }
    release(item);
    count(origin, outcome::aborted, length);
}

void worker::redirect(frame* item, const ebpf::redirect_decision& decision, std::uint32_t origin,
                      std::uint32_t length) {
    using kind = ebpf::redirect_decision::kind;
    if (decision.target == kind::interface) {
        to_device(item, decision.ifindex, nullptr, origin, length, false);
        return;
    }
    if (decision.target != kind::map || decision.target_map == nullptr) {
        release(item);
        count(origin, outcome::redirect_error, length);
        return;
    }
    switch (decision.target_map->type()) {
    case ebpf::map_type::devmap:
    case ebpf::map_type::devmap_hash:
        if ((decision.flags & ebpf::redirect_broadcast) != 0) {
            broadcast(item, decision, origin, length);
            return;
        }
        if (const auto* entry = static_cast<const ebpf::devmap_entry*>(decision.value); entry != nullptr) {
            to_device(item, __atomic_load_n(&entry->ifindex, __ATOMIC_ACQUIRE),
                      __atomic_load_n(&entry->program, __ATOMIC_RELAXED), origin, length, false);
            return;
        }
        break;
    case ebpf::map_type::cpumap: {
        const auto* entry = static_cast<const ebpf::cpumap_entry*>(decision.value);
        const std::uint32_t target = decision.key;
        if (entry == nullptr || target >= _shared.config.workers) {
            break;
        }
        auto& staging = _cpu_staging[target];
        staging.push_back({item, __atomic_load_n(&entry->program, __ATOMIC_RELAXED), length, origin,
                           __atomic_load_n(&entry->qsize, __ATOMIC_RELAXED)});
        if (staging.size() == redirect_bulk_size) {
            flush_cpu(target);
        }
        return;
    }
    case ebpf::map_type::xskmap: {
        const auto* entry = static_cast<const ebpf::xsk_entry*>(decision.value);
        void* socket = entry != nullptr ? __atomic_load_n(&entry->socket, __ATOMIC_ACQUIRE) : nullptr;
        const auto& sockets = _shared.config.sockets;
        const auto found = std::find(sockets.begin(), sockets.end(), static_cast<xsk_socket*>(socket));
        if (socket == nullptr || found == sockets.end()) {
            break;
        }
        const auto index = static_cast<std::size_t>(found - sockets.begin());
        _socket_staging[index].push_back({item, length, origin, outcome::redirected});
        if (_socket_staging[index].size() == redirect_bulk_size) {
            flush_socket(index);
        }
        return;
    }
    default:
        break;
    }
    release(item);
    count(origin, outcome::redirect_error, length);
}

executor* worker::attached_program(const void* handle) {
    for (attached& candidate : _attached) {
        if (candidate.handle == handle) {
            return candidate.program.get();
        }
    }
    return nullptr;
}

void worker::to_device(frame* item, std::uint32_t ifindex, const void* program, std::uint32_t origin,
                       std::uint32_t length, bool clone) {
    const auto port = port_for(ifindex);
    if (!port || !_shared.ports[*port]->redirect_target) {
        release(item);
        count(origin, clone ? outcome::clone_dropped : outcome::redirect_error, length);
        return;
    }
    if (program != nullptr) {
        executor* egress = attached_program(program);
        action verdict = action::aborted;
        if (egress != nullptr) {
            // dev_map_bpf_prog_run: the program sees the device it is about to leave through.
            item->context().egress_ifindex = ifindex;
            egress->run_batch({&item, 1}, {&verdict, 1});
        }
        if (verdict != action::pass) {
            release(item);
            count(origin,
                  clone                     ? outcome::clone_dropped
                  : verdict == action::drop ? outcome::dropped
                                            : outcome::aborted,
                  length);
            return;
        }
    }
    item->context().egress_ifindex = ifindex;
    enqueue(*port, {item, length, origin, clone ? outcome::clone_sent : outcome::redirected});
}

frame* worker::clone(const frame& original) {
    frame* copy = _shared.config.pool->acquire();
    if (copy == nullptr) {
        return nullptr;
    }
    // xdpf_clone: metadata and packet at the same offsets, so the copy's headroom is the original's.
    const ebpf::xdp_context& from = original.context();
    const auto meta_offset = static_cast<std::size_t>(from.data_meta - from.data_hard_start);
    const auto data_offset = static_cast<std::size_t>(from.data - from.data_hard_start);
    const auto end_offset = static_cast<std::size_t>(from.data_end - from.data_hard_start);
    if (copy->hard_start() + end_offset > copy->hard_end()) {
        copy->pool()->release(copy);
        return nullptr;
    }
    std::memcpy(copy->hard_start() + meta_offset, from.data_meta, end_offset - meta_offset);
    ebpf::xdp_context& to = copy->context();
    to.data_meta = to.data_hard_start + meta_offset;
    to.data = to.data_hard_start + data_offset;
    to.data_end = to.data_hard_start + end_offset;
    copy->set_ingress(from.ingress_ifindex, from.rx_queue_index);
    copy->info() = original.info();
    return copy;
}

void worker::broadcast(frame* item, const ebpf::redirect_decision& decision, std::uint32_t origin,
                       std::uint32_t length) {
    // dev_map_enqueue_multi: every entry whose device can transmit, but the ingress one when excluded; the original
    // goes to the last, each other gets a copy.
    _targets.clear();
    struct context {
        worker* self;
        std::uint32_t excluded;
    } visit_context{this, (decision.flags & ebpf::redirect_exclude_ingress) != 0 ? item->context().ingress_ifindex : 0};
    auto* target_map = static_cast<ebpf::redirect_map*>(decision.target_map);
    target_map->for_each_entry(
        [](std::uint32_t, void* entry, void* opaque) {
            auto& [self, excluded] = *static_cast<context*>(opaque);
            const auto& device = *static_cast<const ebpf::devmap_entry*>(entry);
            const std::uint32_t ifindex = __atomic_load_n(&device.ifindex, __ATOMIC_ACQUIRE);
            if (ifindex == 0 || (excluded != 0 && ifindex == excluded)) {
                return;
            }
            const auto port = self->port_for(ifindex);
            if (!port || !self->_shared.ports[*port]->redirect_target) {
                return; // is_valid_dst: a device that cannot transmit XDP frames is skipped
            }
            self->_targets.push_back({ifindex, __atomic_load_n(&device.program, __ATOMIC_RELAXED)});
        },
        &visit_context);
    if (_targets.empty()) {
        release(item); // the kernel frees the frame and reports success; sluice counts what happened to it
        count(origin, outcome::dropped, length);
        return;
    }
    for (std::size_t i = 0; i + 1 < _targets.size(); ++i) {
        frame* copy = clone(*item);
        if (copy == nullptr) {
            count(origin, outcome::clone_dropped, length);
            continue;
        }
        to_device(copy, _targets[i].ifindex, _targets[i].program, origin, length, true);
    }
    to_device(item, _targets.back().ifindex, _targets.back().program, origin, length, false);
}

void worker::enqueue(std::size_t port, const queued& entry) {
    auto& queue = _port_queues[port];
    queue.push_back(entry);
    if (queue.size() == redirect_bulk_size) {
        flush_port(port);
    }
}

void worker::flush_port(std::size_t port) {
    auto& queue = _port_queues[port];
    if (queue.empty()) {
        return;
    }
    std::array<frame*, redirect_bulk_size> frames{};
    std::array<std::uint32_t, redirect_bulk_size> sent_lengths{};
    for (std::size_t i = 0; i < queue.size(); ++i) {
        frames[i] = queue[i].item;
        sent_lengths[i] = queue[i].item->length(); // read before the port owns (and may release) the frame
    }
    shared_port& target = *_shared.ports[port];
    std::size_t accepted = 0;
    {
        maybe_lock guard(target.lock, _shared.lock_ports);
        accepted = target.port->tx_batch({frames.data(), queue.size()});
    }
    _written[port] = true;
    const std::size_t ports = _shared.ports.size();
    for (std::size_t i = 0; i < queue.size(); ++i) {
        const queued& entry = queue[i];
        const bool taken = i < accepted;
        if (taken) {
            _pending[port].sent.add(sent_lengths[i]);
            _pending[port].any = true;
        } else {
            release(entry.item);
        }
        if (entry.origin >= ports) {
            _shared.config.sockets[entry.origin - ports]->count_transmitted(taken ? 1 : 0, taken ? 0 : 1);
            continue;
        }
        const outcome failed = entry.on_success == outcome::clone_sent ? outcome::clone_dropped : outcome::tx_error;
        count(entry.origin, taken ? entry.on_success : failed, entry.length);
    }
    queue.clear();
}

void worker::flush_cpu(unsigned target) {
    auto& staging = _cpu_staging[target];
    if (staging.empty()) {
        return;
    }
    // The entry's qsize bounds what may wait for the target (the kernel's ptr_ring of qsize per cpu entry).
    std::size_t limit = cpumap_ring_size;
    for (const cpumap_item& entry : staging) {
        limit = std::min<std::size_t>(limit, entry.qsize);
    }
    // Count the frames as in flight before the target can see them, so that it cannot finish in between.
    _shared.in_flight.fetch_add(static_cast<std::int64_t>(staging.size()), std::memory_order_acq_rel);
    const std::size_t pushed = _shared.ring(_index, target).push(staging, limit);
    if (pushed != staging.size()) {
        _shared.in_flight.fetch_sub(static_cast<std::int64_t>(staging.size() - pushed), std::memory_order_acq_rel);
        for (std::size_t i = pushed; i < staging.size(); ++i) {
            release(staging[i].item);
            count(staging[i].origin, outcome::redirect_error, staging[i].length); // ring full: cpumap drops
        }
    }
    _cpumap_out.store(_cpumap_out.load(std::memory_order_relaxed) + pushed, std::memory_order_relaxed);
    staging.clear();
}

void worker::flush_socket(std::size_t socket) {
    auto& staging = _socket_staging[socket];
    if (staging.empty()) {
        return;
    }
    std::array<frame*, redirect_bulk_size> frames{};
    for (std::size_t i = 0; i < staging.size(); ++i) {
        frames[i] = staging[i].item;
    }
    const std::size_t taken = _shared.config.sockets[socket]->deliver({frames.data(), staging.size()});
    for (std::size_t i = 0; i < staging.size(); ++i) {
        if (i < taken) {
            count(staging[i].origin, outcome::redirected, staging[i].length);
        } else {
            release(staging[i].item); // RX ring full: xsk_rcv fails with -ENOBUFS
            count(staging[i].origin, outcome::redirect_error, staging[i].length);
        }
    }
    staging.clear();
}

bool worker::drain_rings() {
    bool any = false;
    std::array<cpumap_item, max_batch_size> items{};
    std::array<frame*, max_batch_size> frames{};
    std::array<action, max_batch_size> verdicts{};
    for (unsigned source = 0; source < _shared.config.workers; ++source) {
        // A worker redirecting to its own cpu goes through its own ring too: it is both ends, still one of each.
        const std::size_t taken = _shared.ring(source, _index).pop(items);
        if (taken == 0) {
            continue;
        }
        any = true;
        _cpumap_in.store(_cpumap_in.load(std::memory_order_relaxed) + taken, std::memory_order_relaxed);
        // Runs of frames for the same program go through it as one batch.
        std::size_t first = 0;
        while (first < taken) {
            std::size_t last = first + 1;
            while (last < taken && items[last].program == items[first].program) {
                ++last;
            }
            const std::size_t count = last - first;
            executor* program = items[first].program != nullptr ? attached_program(items[first].program) : nullptr;
            if (program == nullptr) {
                for (std::size_t i = first; i < last; ++i) {
                    // No program (or none this worker knows): the kernel builds an skb for the stack: XDP_PASS.
                    dispatch(items[i].item, items[first].program == nullptr ? action::pass : action::aborted, nullptr,
                             items[i].origin, items[i].length, true);
                }
            } else {
                for (std::size_t i = 0; i < count; ++i) {
                    frames[i] = items[first + i].item;
                }
                program->run_batch({frames.data(), count}, {verdicts.data(), count});
                const auto decisions = program->redirect_decisions();
                for (std::size_t i = 0; i < count; ++i) {
                    dispatch(frames[i], verdicts[i], i < decisions.size() ? &decisions[i] : nullptr,
                             items[first + i].origin, items[first + i].length, true);
                }
            }
            first = last;
        }
        // Their fate is decided (or they sit in this worker's queues, flushed before it can finish, or on another
        // ring, counted there): no longer in flight.
        flush_all();
        _shared.in_flight.fetch_sub(static_cast<std::int64_t>(taken), std::memory_order_acq_rel);
    }
    return any;
}

bool worker::drain_sockets() {
    bool any = false;
    const std::size_t ports = _shared.ports.size();
    std::array<frame*, redirect_bulk_size> frames{};
    for (std::size_t s = 0; s < _shared.config.sockets.size(); ++s) {
        xsk_socket& socket = *_shared.config.sockets[s];
        const auto port = _shared.port_by_ifindex(socket.bound_ifindex());
        if (!port || _shared.ports[*port]->owner != _index) {
            continue; // the worker that owns the bound port transmits for the socket
        }
        const std::size_t taken = socket.take_for_transmit(frames);
        for (std::size_t i = 0; i < taken; ++i) {
            enqueue(*port,
                    {frames[i], frames[i]->length(), static_cast<std::uint32_t>(ports + s), outcome::socket_sent});
        }
        any |= taken != 0;
    }
    return any;
}

void worker::flush_all() {
    for (unsigned target = 0; target < _cpu_staging.size(); ++target) {
        flush_cpu(target);
    }
    for (std::size_t socket = 0; socket < _socket_staging.size(); ++socket) {
        flush_socket(socket);
    }
    for (std::size_t port = 0; port < _port_queues.size(); ++port) {
        flush_port(port);
    }
    for (std::size_t port = 0; port < _written.size(); ++port) {
        if (_written[port]) {
            shared_port& target = *_shared.ports[port];
            maybe_lock guard(target.lock, _shared.lock_ports);
            target.port->flush();
            _written[port] = false;
        }
    }
}

worker_report worker::report() const {
    worker_report out;
    out.index = _index;
    out.cpu = _cpu;
    out.batches = _batches.load(std::memory_order_relaxed);
    out.cpumap_in = _cpumap_in.load(std::memory_order_relaxed);
    out.cpumap_out = _cpumap_out.load(std::memory_order_relaxed);
    return out;
}

expected<void> worker::check_programs() const {
    if (auto checked = _program->check_accounting(); !checked) {
        return error{fmt::format("worker {}: program: {}", _index, checked.error().message)};
    }
    for (const attached& program : _attached) {
        if (auto checked = program.program->check_accounting(); !checked) {
            return error{fmt::format("worker {}: {} program '{}': {}", _index,
                                     ebpf::to_string(program.program->program().kind.attach),
                                     program.program->program().name, checked.error().message)};
        }
    }
    return {};
}

} // namespace sluice::xdp::detail
