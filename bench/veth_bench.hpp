// The veth rig the benchmarks that move real packets share (sluice_port_bench, sluice_lua_bench's veth section): two
// network namespaces joined by a veth pair, a sender in one pushing frames as fast as the kernel can, receivers
// measured one at a time on the other end, and the clocks they are measured with.
//
// Contract:
// - veth_rig::create(tag) makes namespaces "sluice-<pid>-<tag>-s" (receiving) and "sluice-<pid>-<tag>-a" (sending)
//   and a veth pair between them, GRO on the receiving end (frames redirected into a veth need NAPI there: an XDP
//   program gives it, GRO gives it to the stack's receivers, AF_PACKET and nftables). Destroying the rig deletes both
//   namespaces and with them the veth pair and everything attached inside (XDP programs, nftables tables): nothing
//   outlives the rig, whatever path the caller leaves by. A rig left by a process that died is removed by the next
//   one (tests/support/netns.hpp).
// - live_sender is the kernel as traffic generator (xdp-trafficgen's method): BPF_PROG_TEST_RUN with
//   BPF_F_TEST_XDP_LIVE_FRAMES runs bench/veth_traffic.bpf.c, which redirects the frame out of the sending veth,
//   on a thread of its own in the sending namespace, until stop(). Each test run call is long (2^30 runs) and is
//   ended by a signal: on this project's VM a call of 4,096 runs slept in the kernel (D state) about 25 ms on top of
//   its work (set-up and teardown of its page pool), so a sender of short calls idled most of the time (0.16 Mpps
//   offered against 6 with long calls). The frames sent are counted by the program itself (sent()), so the offered
//   load can be read at any moment. The sender's CPU time includes the softirq work the kernel does in its
//   context: on veth, the receiving end's NAPI (its XDP program, the copy into AF_XDP, GRO and the stack's hooks)
//   usually runs there.
// - Failures are values: an error says what is missing (privileges, the traffic object, the kernel's live frames).
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "netns.hpp"
#include "sluice/expected.hpp"

struct bpf_object;

namespace sluice::bench {

/// The calling thread's CPU time, in seconds.
double thread_cpu_seconds();
/// The process's CPU time (all threads), in seconds.
double process_cpu_seconds();

/// A receiving loop's view of the measurement window: poll() once a turn; when the window opens, the loop's count
/// restarts and the thread's CPU clock is read, so that cpu_seconds() covers the window (and what follows until the
/// loop stops).
class receive_window {
public:
    explicit receive_window(const std::atomic<bool>& window) : _window(window) {}

    void poll(std::uint64_t& received) {
        if (!_counting && _window.load(std::memory_order_relaxed)) {
            _counting = true;
            received = 0;
            _cpu_before = thread_cpu_seconds();
        }
    }

    double cpu_seconds() const { return thread_cpu_seconds() - _cpu_before; }

private:
    const std::atomic<bool>& _window;
    bool _counting{false};
    double _cpu_before{};
};

class veth_rig {
public:
    /// The namespaces, the veth pair (names unique to this process) and GRO on the receiving end.
    static expected<std::unique_ptr<veth_rig>> create(std::string_view tag);

    test::network_namespace& receiver() const { return *_receiver; }
    test::network_namespace& sender() const { return *_sender; }
    const std::string& receiver_interface() const { return _receiver_interface; }
    const std::string& sender_interface() const { return _sender_interface; }
    /// The receiving end's MAC address: frames are addressed to it.
    const test::mac_address& destination() const { return _destination; }

private:
    veth_rig() = default;

    std::unique_ptr<test::network_namespace> _receiver;
    std::unique_ptr<test::network_namespace> _sender;
    std::string _receiver_interface;
    std::string _sender_interface;
    test::mac_address _destination{};
};

/// bench/veth_traffic.bpf.c's `config` (.rodata), field for field.
struct traffic_config {
    std::uint32_t ifindex{};           ///< filled by live_sender: the sending veth
    std::uint32_t blocked_per_256{};   ///< share of frames from the blocked prefix, in 256ths
    std::uint32_t blocked_base{};      ///< host order
    std::uint32_t blocked_host_mask{}; ///< host bits of the blocked prefix
    std::uint32_t sources_base{};      ///< host order
    std::uint32_t sources{};           ///< distinct other sources (a power of two); 0: frames go out unchanged
};

class live_sender {
public:
    /// Loads `traffic_object` (bench/veth_traffic.o) with `config` and starts sending `frame` out of the rig's sending
    /// end. Fails when the kernel refuses the program or the live-frames test run (the first call's error).
    /// `cpu` >= 0 pins the sending thread to that CPU (and with it the softirq work the kernel does in its context).
    static expected<std::unique_ptr<live_sender>> start(const veth_rig& rig, const std::string& traffic_object,
                                                        traffic_config config, std::vector<std::uint8_t> frame,
                                                        int cpu = -1);
    live_sender(const live_sender&) = delete;
    live_sender& operator=(const live_sender&) = delete;
    ~live_sender();

    /// Ends the current test run call (a signal to the sending thread) and joins it. Idempotent.
    void stop();
    /// Frames sent so far (the program's per-CPU count, summed).
    std::uint64_t sent() const;
    /// The sending thread's CPU time so far, in seconds (with the softirq work run in its context).
    double cpu_seconds() const;

private:
    live_sender() = default;
    void run(const veth_rig& rig);

    bpf_object* _object{};
    int _program_fd{-1};
    int _sent_fd{-1};
    std::vector<std::uint8_t> _frame;
    int _cpu{-1};
    std::thread _thread;
    std::atomic<bool> _stop{false};
    std::atomic<bool> _started{false}; ///< the thread made its first call (or failed): _clock and _failure are set
    std::atomic<bool> _done{false};
    std::atomic<unsigned long> _thread_id{0}; ///< pthread_t of the thread in the namespace (for the signal)
    std::mutex _signal_lock;
    clockid_t _clock{};
    std::string _failure;
};

} // namespace sluice::bench
