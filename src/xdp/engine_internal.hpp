// What the engine's parts share: per-worker counters readable while running, queue entries, the shared state of the
// workers, and the worker itself (engine.cpp sets them up and reports; worker.cpp runs the loop and dispatches).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sluice/xdp/engine.hpp"
#include "sluice/xdp/spsc_ring.hpp"

namespace sluice::xdp::detail {

/// A counter one worker writes and a monitor may read while it runs: plain loads and stores (no read-modify-write,
/// there is one writer), atomic so the reads are defined.
struct live_counter {
    std::atomic<std::uint64_t> packets{};
    std::atomic<std::uint64_t> bytes{};

    void add(std::uint64_t length, std::uint64_t count = 1) {
        packets.store(packets.load(std::memory_order_relaxed) + count, std::memory_order_relaxed);
        bytes.store(bytes.load(std::memory_order_relaxed) + length, std::memory_order_relaxed);
    }
    counter read() const { return {packets.load(std::memory_order_relaxed), bytes.load(std::memory_order_relaxed)}; }
};

/// Where a frame ended, for the accounting of the port it came from.
enum class outcome : std::uint8_t {
    dropped,
    passed,
    transmitted,
    redirected,
    aborted,
    rx_error,
    tx_error,
    redirect_error,
    clone_sent,
    clone_dropped,
    socket_sent, ///< a frame an xsk_socket's user sent (no ingress port)
};
inline constexpr std::size_t outcome_count = 11;

struct port_counters {
    live_counter received;
    std::array<live_counter, outcome_count> outcomes;
    live_counter sent; ///< as egress: frames this port accepted from this worker

    void count(outcome what, std::uint64_t length) { outcomes[static_cast<std::size_t>(what)].add(length); }
};

/// The same counts, plain: what a worker adds up during an iteration and publishes into port_counters once at its
/// end, so that the per-packet cost is an add, not an atomic store.
struct pending_counts {
    counter received;
    std::array<counter, outcome_count> outcomes{};
    counter sent;
    bool any{};
};

/// A frame waiting in a per-target queue, with what to count when the target takes it or refuses it.
struct queued {
    frame* item{};
    std::uint32_t length{}; ///< as received (accounting bytes)
    std::uint32_t origin{}; ///< port index; >= ports: socket index + ports (xsk TX)
    outcome on_success{outcome::transmitted};
};

/// A frame on its way to another worker through a cpumap ring.
struct cpumap_item {
    frame* item{};
    const void* program{}; ///< the entry's `xdp/cpumap` program, or nullptr
    std::uint32_t length{};
    std::uint32_t origin{};
    std::uint32_t qsize{}; ///< the entry's qsize: at most this many frames wait on the ring
};

struct shared_port {
    io::port* port{};
    std::optional<std::size_t> pass_target;
    std::uint32_t ifindex{};
    bool rx{};
    bool redirect_target{};
    unsigned owner{};
    std::mutex lock; ///< taken around every call when there is more than one worker
};

class worker;

struct engine_shared {
    engine_config config;
    std::vector<std::unique_ptr<shared_port>> ports;
    std::vector<std::unique_ptr<spsc_ring<cpumap_item>>> rings; ///< [source * workers + target]
    std::vector<std::unique_ptr<worker>> workers;
    bool lock_ports{};
    std::atomic<bool> stop{false};
    std::atomic<unsigned> done_reading{0};
    std::atomic<std::int64_t> in_flight{0}; ///< frames pushed on cpumap rings and not yet dispatched by the target
    std::atomic<unsigned> exited{0};

    spsc_ring<cpumap_item>& ring(unsigned source, unsigned target) {
        return *rings[std::size_t{source} * config.workers + target];
    }
    std::optional<std::size_t> port_by_ifindex(std::uint32_t ifindex) const {
        for (std::size_t i = 0; i < ports.size(); ++i) {
            if (ports[i]->ifindex == ifindex) {
                return i;
            }
        }
        return std::nullopt;
    }
};

inline constexpr std::uint32_t no_pass_target = UINT32_MAX;

/// The ring size per pair of workers; an entry's qsize limits it further.
inline constexpr std::size_t cpumap_ring_size = 4096;

class worker {
public:
    worker(engine_shared& shared, unsigned index);
    worker(const worker&) = delete;
    worker& operator=(const worker&) = delete;

    /// Makes the main program and the attached (devmap/cpumap) programs. Called before the thread starts.
    expected<void> prepare();
    /// The thread's body.
    void run();

    unsigned index() const { return _index; }
    const port_counters& counters(std::size_t port) const { return _counters[port]; }
    worker_report report() const;
    const batch_program& program() const { return *_program; }
    /// The main program's and every attached program's own accounting.
    expected<void> check_programs() const;
    std::thread& thread() { return _thread; }
    const std::string& note() const { return _note; }

private:
    struct attached {
        const void* handle{};
        std::unique_ptr<executor> program;
    };
    struct broadcast_target {
        std::uint32_t ifindex{};
        const void* program{};
    };

    void pin();
    bool read_ports();
    void collect_rx_errors(std::size_t port);
    void process_received(std::size_t port, std::span<frame* const> frames);
    bool drain_rings();
    bool drain_sockets();
    void dispatch(frame* item, action verdict, const ebpf::redirect_decision* decision, std::uint32_t origin,
                  std::uint32_t length, bool on_cpumap);
    void redirect(frame* item, const ebpf::redirect_decision& decision, std::uint32_t origin, std::uint32_t length);
    void to_device(frame* item, std::uint32_t ifindex, const void* program, std::uint32_t origin, std::uint32_t length,
                   bool clone);
    void broadcast(frame* item, const ebpf::redirect_decision& decision, std::uint32_t origin, std::uint32_t length);
    frame* clone(const frame& original);
    void enqueue(std::size_t port, const queued& entry);
    void flush_port(std::size_t port);
    void flush_cpu(unsigned target);
    void flush_socket(std::size_t socket);
    void flush_all();
    executor* attached_program(const void* handle);
    void release(frame* item) {
        // The engine's pool through this worker's cache directly (no thread-local lookup); other pools (AF_XDP UMEM)
        // through their own release.
        if (item->pool() == _shared.config.pool && _cache != nullptr) {
            _cache->release(item);
        } else {
            item->pool()->release(item);
        }
    }
    void count(std::uint32_t origin, outcome what, std::uint32_t length) {
        pending_counts& counts = _pending[origin];
        counts.outcomes[static_cast<std::size_t>(what)].add(length);
        counts.any = true;
    }
    /// Moves the iteration's counts into the counters a monitor reads.
    void publish();

    engine_shared& _shared;
    unsigned _index;
    ebpf::execution_state _state;
    std::unique_ptr<batch_program> _program;
    std::vector<attached> _attached;
    std::unique_ptr<port_counters[]> _counters;
    std::vector<pending_counts> _pending; ///< per port, published at the end of each iteration
    /// ifindex -> the port a redirect to it uses: with several ports on one interface (AF_XDP queues), the one this
    /// worker owns, as the kernel transmits on the current CPU's queue; else the first.
    std::optional<std::size_t> port_for(std::uint32_t ifindex) const {
        for (const auto& [candidate, port] : _by_ifindex) {
            if (candidate == ifindex) {
                return port;
            }
        }
        return std::nullopt;
    }

    std::vector<std::pair<std::uint32_t, std::size_t>> _by_ifindex; ///< see port_for()
    std::vector<std::uint32_t> _pass_targets;           ///< per port: its pass target, or no_pass_target (a local copy:
                                                        ///< read per packet, it must not share a line with anything)
    frame_pool::cache* _cache{};                        ///< this thread's cache of the engine's pool, while it runs
    std::vector<std::vector<queued>> _port_queues;      ///< per port, up to redirect_bulk_size
    std::vector<bool> _written;                         ///< ports to flush() at the end of the iteration
    std::vector<std::vector<cpumap_item>> _cpu_staging; ///< per target worker
    std::vector<std::vector<queued>> _socket_staging;   ///< per socket
    std::vector<std::size_t> _owned;                    ///< ports this worker reads
    std::vector<std::uint64_t> _rx_errors_seen;         ///< per port, the port's rx_errors last seen
    std::uint64_t _reads{};                             ///< read_ports() calls, to look at port stats now and then
    std::vector<broadcast_target> _targets;             ///< broadcast scratch, reserved
    std::thread _thread;
    std::string _note;
    int _cpu{-1};
    std::atomic<std::uint64_t> _batches{};
    std::atomic<std::uint64_t> _cpumap_in{};
    std::atomic<std::uint64_t> _cpumap_out{};
};

} // namespace sluice::xdp::detail
