// The watchdog: one thread for the process that stops calls into Lua which run past their CPU budget.
//
// Each Lua state registers a `watched` entry. The worker makes the entry's progress counter odd before a call into
// Lua and even after it (two stores per batch, nothing per packet), and records its thread's CPU clock. Every few
// hundred microseconds the watchdog samples the counters: a counter that stayed at the same odd value while its
// thread used `budget` of CPU time gets interrupt(): the engine arms a debug hook, which aborts the script at its
// next instruction. CPU time rather than wall time, so that a worker the kernel preempted is not blamed for it.
// Nothing runs while no entry is registered.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>

namespace sluice::lua::detail {

struct watched {
    std::atomic<std::uint64_t> progress{};  ///< odd while a call into Lua runs
    std::atomic<clockid_t> cpu_clock{};     ///< CPU clock of the thread making the call
    std::atomic<std::int64_t> budget_ns{}; ///< CPU time a call may use; the worker may change it between calls
    void (*interrupt)(void* opaque, std::uint64_t sequence){};
    void* opaque{};

    // The watchdog's own bookkeeping (under its lock).
    std::uint64_t seen{};
    std::int64_t started_ns{};
    bool fired{};

    /// The worker's side: mark a call into Lua as started / ended (from the same thread).
    void enter();
    void leave() { progress.store(progress.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
};

/// Registers an entry (starting the thread on first use). Its address must stay valid until remove().
void watch(watched& entry);
/// Unregisters; once it returns the watchdog no longer touches the entry or calls its interrupt.
void unwatch(watched& entry);

} // namespace sluice::lua::detail
