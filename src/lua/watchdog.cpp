// The watchdog thread (contract in watchdog.hpp).
#include "lua/watchdog.hpp"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::lua::detail {
namespace {

class watchdog {
public:
    static watchdog& instance() {
        // Never destroyed: scripts may be torn down during static destruction, after any destructor of ours.
        static watchdog* single = new watchdog();
        return *single;
    }

    void add(watched& entry) {
        const std::lock_guard lock(_mutex);
        _entries.push_back(&entry);
        if (!_started) {
            _started = true;
            std::thread([this] { loop(); }).detach();
        }
        _wake.notify_one();
    }

    void remove(watched& entry) {
        const std::lock_guard lock(_mutex); // the scan holds it: after this no interrupt is in flight
        std::erase(_entries, &entry);
    }

private:
    static std::int64_t cpu_time_ns(clockid_t clock) {
        timespec now{};
        if (clock_gettime(clock, &now) != 0) {
            return -1; // the thread is gone
        }
        return static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
    }

    void loop() {
        std::unique_lock lock(_mutex);
        while (true) {
            if (_entries.empty()) {
                _wake.wait(lock);
                continue;
            }
            std::chrono::nanoseconds period{std::chrono::milliseconds(1)};
            for (watched* entry : _entries) {
                check(*entry);
                period = std::min(period, std::chrono::nanoseconds(entry->budget_ns.load(std::memory_order_relaxed) / 4));
            }
            _wake.wait_for(lock, std::max(period, std::chrono::nanoseconds(std::chrono::microseconds(50))));
        }
    }

    static void check(watched& entry) {
        const std::uint64_t sequence = entry.progress.load(std::memory_order_acquire);
        if ((sequence & 1U) == 0) {
            entry.seen = sequence;
            return;
        }
        const std::int64_t now = cpu_time_ns(entry.cpu_clock.load(std::memory_order_acquire));
        if (now < 0) {
            return;
        }
        if (sequence != entry.seen) {
            entry.seen = sequence;
            entry.started_ns = now;
            entry.fired = false;
            return;
        }
        if (!entry.fired && now - entry.started_ns >= entry.budget_ns.load(std::memory_order_relaxed)) {
            entry.fired = true;
            entry.interrupt(entry.opaque, sequence);
        }
    }

    std::mutex _mutex;
    std::condition_variable _wake;
    std::vector<watched*> _entries;
    bool _started{};
};

} // namespace

void watched::enter() {
    clockid_t clock{};
    if (pthread_getcpuclockid(pthread_self(), &clock) == 0) {
        cpu_clock.store(clock, std::memory_order_relaxed);
    }
    progress.store(progress.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void watch(watched& entry) {
    watchdog::instance().add(entry);
}

void unwatch(watched& entry) {
    watchdog::instance().remove(entry);
}

} // namespace sluice::lua::detail
