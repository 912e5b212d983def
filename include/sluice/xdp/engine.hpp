// The data path engine: workers that take batches from ports, run the XDP program over them and dispatch every frame
// by its action (DESIGN.md, "The data path").
//
// Contract:
// - Ports (io::port) are given to the engine, which does not own them; port i is read by worker i % workers (ports
//   without RX are only targets). When there is more than one worker, every call on a port (rx_batch, tx_batch,
//   flush, exhausted) is made under that port's lock, taken once per batch or per bulk, so any worker may send to any
//   port (the port contract allows one thread at a time).
// - Each worker has its own program instance (engine_config::make_program), its own ebpf::execution_state with
//   cpu = the worker's index (bpf_get_smp_processor_id, per-CPU map slots: load the object with cpus >= workers), a
//   frame_pool::cache of the engine's pool, and its own queues. Workers are pinned to CPUs where the process may run
//   on enough of them; a failure to pin is a note, not an error.
// - Dispatch after a batch ran: XDP_DROP and XDP_ABORTED release the frame; XDP_TX queues it for the port it came
//   from; XDP_PASS queues it for the port's pass target (engine_port::pass_target) or, without one, counts it as
//   passed and releases it; XDP_REDIRECT follows the program's redirect decision:
//     bpf_redirect(ifindex)        -> the port with that ifindex;
//     devmap / devmap_hash entry   -> the port with the entry's ifindex, after the entry's `xdp/devmap` program (run
//                                     with egress_ifindex set; XDP_PASS sends, XDP_DROP drops, anything else aborts);
//                                     BPF_F_BROADCAST clones the frame (a frame from the pool per extra copy) to every
//                                     entry, BPF_F_EXCLUDE_INGRESS skipping the ingress port; a broadcast with no
//                                     target drops the frame (the kernel frees it);
//     cpumap entry (cpu = worker)  -> that worker, through a single-producer single-consumer ring per pair of workers
//                                     (at most the entry's qsize frames waiting on each source worker's ring, up to
//                                     4096; the kernel has one ring of qsize per entry); there the entry's `xdp/cpumap`
//                                     program runs and its verdict applies (XDP_TX is not allowed there: aborted);
//                                     without a program the frame is passed (the kernel hands it to the stack);
//     xskmap entry                 -> the in-process socket's RX ring (xsk_socket.hpp).
//   Queues per target hold up to 16 frames (the kernel's devmap bulk) and are flushed when full and after each batch;
//   then every port written to is flush()ed.
// - Accounting, per port, for every frame the port received (or could not deliver), counted once where its fate is
//   decided (on the worker that decided it):
//       received = dropped + passed + transmitted + redirected + aborted + errors
//   where errors = rx_errors (the port could not deliver) + tx_errors (a port refused the frame: XDP_TX, pass target,
//   redirect target) + redirect_errors (no such port or worker, target not a redirect target, queue or ring full).
//   Bytes count each packet's length as received. Broadcast copies are not received frames: they count apart
//   (clones_sent, clones_dropped). check() verifies every port's balance, every program's own accounting and that
//   the pool has every frame back; a mismatch is an error naming the port and both sides.
// - Ports are read under their lock when there are several workers; a port whose rx_batch() waits (AF_XDP's poll
//   timeout) makes other workers' transmissions to it wait as long.
// - Shutdown: request_stop() (or every RX port exhausted, or the duration of run()) stops reading; workers then drain
//   the cpumap rings, flush every queue and exit once no frame is in flight anywhere.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/expected.hpp"
#include "sluice/io/port.hpp"
#include "sluice/xdp/batch_program.hpp"
#include "sluice/xdp/executor.hpp"
#include "sluice/xdp/frame.hpp"
#include "sluice/xdp/xsk_socket.hpp"

namespace sluice::xdp {

/// Frames a redirect queue holds before it is flushed (the kernel's DEV_MAP_BULK_SIZE).
inline constexpr std::size_t redirect_bulk_size = 16;

struct engine_port {
    io::port* port{};                       ///< not owned; must outlive the engine
    std::optional<std::size_t> pass_target; ///< index in engine_config::ports where XDP_PASS frames go
};

/// Makes worker `worker`'s program; `state` is that worker's execution state (cpu = worker), living as long as the
/// program.
using program_maker =
    std::function<expected<std::unique_ptr<batch_program>>(unsigned worker, ebpf::execution_state& state)>;

struct engine_config {
    std::vector<engine_port> ports;
    unsigned workers{1};
    frame_pool* pool{}; ///< broadcast copies and the workers' caches; not owned
    program_maker make_program;
    /// The object the program came from: its devmap/cpumap/xskmap maps get resolvers (program ids are 1-based
    /// positions in object->programs(), see maps.hpp), and its `xdp/devmap` and `xdp/cpumap` programs run on
    /// entries. nullptr: no redirect maps.
    const ebpf::loaded_object* object{};
    executor_options attached_options; ///< how `xdp/devmap` and `xdp/cpumap` programs run
    std::vector<xsk_socket*> sockets;  ///< in-process AF_XDP sockets xskmaps may name; not owned
    bool pin_workers{true};
    /// Called for each worker's execution state before its program is made (trace sink, MTUs, routes, ...).
    std::function<void(ebpf::execution_state&)> prepare_state;
};

/// One port's accounting (as ingress) and what it sent (as egress).
struct port_report {
    std::string name;
    std::string kind;
    std::uint32_t ifindex{};
    counter received;
    counter dropped;
    counter passed;
    counter transmitted;
    counter redirected;
    counter aborted;
    counter rx_errors;
    counter tx_errors;
    counter redirect_errors;
    counter clones_sent;    ///< broadcast copies a target accepted
    counter clones_dropped; ///< broadcast copies dropped (no frame, refused, devmap program)
    counter sent;           ///< frames this port accepted for transmission, from any source

    counter errors() const;
    /// dropped + passed + transmitted + redirected + aborted + errors.
    counter accounted() const;
    bool balanced() const { return accounted() == received; }
};

struct worker_report {
    unsigned index{};
    int cpu{-1}; ///< the CPU it was pinned to, -1 if not pinned
    std::uint64_t batches{};
    std::uint64_t cpumap_in{};  ///< frames taken from other workers' cpumap rings
    std::uint64_t cpumap_out{}; ///< frames put on rings to other workers
};

struct engine_report {
    std::vector<port_report> ports;
    std::vector<worker_report> workers;
    std::vector<executor_stats> programs; ///< each worker's main program
    std::size_t pool_outstanding{};       ///< frames not back in the pool (0 after a clean shutdown of copying ports)
    double seconds{};                     ///< from start() to the last worker's exit (or now)
};

class engine {
public:
    /// Checks the configuration (ports, pass targets, per-CPU maps with enough cpus for the workers), installs the
    /// redirect maps' resolvers, and makes each worker's programs. Nothing runs yet.
    static expected<std::unique_ptr<engine>> create(engine_config config);
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    /// Starts the workers.
    expected<void> start();
    /// Stop reading; workers drain and exit (asynchronously: wait() for them). Safe from a signal-handling thread.
    void request_stop();
    /// True once every worker has exited.
    bool finished() const;
    /// Waits for every worker to exit.
    void wait();
    /// start() (unless started already), then waits until the workers finish, `duration` passes (0: no limit) or `stop`
    /// becomes true; calls `tick` about once a second while running; then stops and waits.
    expected<void> run(std::chrono::duration<double> duration, const std::atomic<bool>* stop = nullptr,
                       const std::function<void(const engine_report&)>& tick = {});

    /// Counters now (while running: a consistent-enough snapshot; after wait(): final).
    engine_report report() const;
    /// After wait(): every port balanced, every program's accounting, every frame back in the pool.
    expected<void> check() const;
    /// Things worth telling the user (pinning failures, ...).
    std::vector<std::string> notes() const;

private:
    struct implementation;
    explicit engine(std::unique_ptr<implementation> self);
    std::unique_ptr<implementation> _self;
};

} // namespace sluice::xdp
