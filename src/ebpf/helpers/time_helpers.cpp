// Clocks, randomness and the cpu id (kernel/bpf/helpers.c): bpf_ktime_get_ns (CLOCK_MONOTONIC), bpf_ktime_get_boot_ns
// (CLOCK_BOOTTIME), bpf_ktime_get_coarse_ns (CLOCK_MONOTONIC_COARSE), bpf_jiffies64, bpf_get_prandom_u32,
// bpf_get_smp_processor_id. User-space clock_gettime reads the same clocks through the vDSO, with no system call.

#include <ctime>

#include "ebpf/helpers/helpers_internal.hpp"

namespace sluice::ebpf::helpers {
namespace {

std::uint64_t clock_ns(clockid_t clock) {
    timespec now{};
    clock_gettime(clock, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

std::uint64_t ktime_get_ns(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, call_context&) {
    return clock_ns(CLOCK_MONOTONIC);
}

std::uint64_t ktime_get_boot_ns(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                call_context&) {
    return clock_ns(CLOCK_BOOTTIME);
}

std::uint64_t ktime_get_coarse_ns(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                  call_context&) {
    return clock_ns(CLOCK_MONOTONIC_COARSE);
}

// bpf_jiffies64 returns get_jiffies_64(): ticks of 1/CONFIG_HZ since boot. CONFIG_HZ is invisible from user space,
// so the tick rate is execution_state::jiffies_hz (documented in helpers.hpp).
std::uint64_t jiffies64(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                        call_context& context) {
    const std::uint64_t hz = state_of(context).jiffies_hz;
    return hz == 0 ? 0 : clock_ns(CLOCK_MONOTONIC_COARSE) / (1'000'000'000ULL / hz);
}

// bpf_user_rnd_u32: prandom_u32_state() on a per-cpu state; here per worker, seeded deterministically.
std::uint64_t get_prandom_u32(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                              call_context& context) {
    return state_of(context).random.next();
}

std::uint64_t get_smp_processor_id(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t,
                                   call_context& context) {
    return state_of(context).cpu;
}

} // namespace

void register_time_helpers(helper_table& table) {
    add(table, BPF_FUNC_ktime_get_ns, ktime_get_ns);
    add(table, BPF_FUNC_ktime_get_boot_ns, ktime_get_boot_ns);
    add(table, BPF_FUNC_ktime_get_coarse_ns, ktime_get_coarse_ns);
    add(table, BPF_FUNC_jiffies64, jiffies64);
    add(table, BPF_FUNC_get_prandom_u32, get_prandom_u32);
    add(table, BPF_FUNC_get_smp_processor_id, get_smp_processor_id);
}

} // namespace sluice::ebpf::helpers
