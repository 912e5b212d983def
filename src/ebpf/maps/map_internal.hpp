// What the map kinds share: sizes, whole-word value copies, the update-side spinlock, the kernel's jhash, and each
// kind's factory and creation checks (one .cpp per kind).
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::maps {

constexpr std::size_t round_up8(std::size_t size) { return (size + 7) & ~std::size_t{7}; }

inline constexpr std::uint32_t pcpu_min_unit_size = 32 * 1024;        ///< PCPU_MIN_UNIT_SIZE
inline constexpr std::uint64_t kmalloc_max_size = std::uint64_t{1} << 22; ///< x86-64: PAGE_SHIFT + MAX_PAGE_ORDER
inline constexpr std::uint32_t page_size = 4096;

/// Copies a value so that each aligned 8-byte word is written (and read) whole: a lockless reader of an 8-byte
/// counter sees the old or the new value, never a mix, as with the kernel's copy_map_value on x86-64.
inline void copy_value(void* destination, const void* source, std::size_t size) {
    auto* to = static_cast<std::byte*>(destination);
    const auto* from = static_cast<const std::byte*>(source);
    if ((reinterpret_cast<std::uintptr_t>(to) & 7) == 0) {
        while (size >= 8) {
            std::uint64_t word;
            std::memcpy(&word, from, 8);
            __atomic_store_n(reinterpret_cast<std::uint64_t*>(to), word, __ATOMIC_RELAXED);
            to += 8;
            from += 8;
            size -= 8;
        }
    }
    std::memcpy(to, from, size);
}

/// Reads a value written by copy_value, word by word.
inline void read_value(void* destination, const void* source, std::size_t size) {
    auto* to = static_cast<std::byte*>(destination);
    const auto* from = static_cast<const std::byte*>(source);
    if ((reinterpret_cast<std::uintptr_t>(from) & 7) == 0) {
        while (size >= 8) {
            const std::uint64_t word = __atomic_load_n(reinterpret_cast<const std::uint64_t*>(from), __ATOMIC_RELAXED);
            std::memcpy(to, &word, 8);
            to += 8;
            from += 8;
            size -= 8;
        }
    }
    std::memcpy(to, from, size);
}

/// The index an array-like map's 4-byte key holds (host order).
inline std::uint32_t array_index(const void* key) {
    std::uint32_t index;
    std::memcpy(&index, key, sizeof index);
    return index;
}

/// array_map_get_next_key, shared by arrays and prog arrays as in the kernel: a missing or out-of-range key gives
/// index 0, the last index gives -ENOENT.
inline long array_get_next_key(const void* key, void* next_key, std::uint32_t max_entries) {
    const std::uint32_t index = key != nullptr ? array_index(key) : UINT32_MAX;
    std::uint32_t next = 0;
    if (index < max_entries) {
        if (index == max_entries - 1) {
            return -ENOENT;
        }
        next = index + 1;
    }
    std::memcpy(next_key, &next, sizeof next);
    return 0;
}

/// The kernel's raw spinlocks on the update side: held for a few dozen instructions, never across a wait.
class spinlock {
public:
    void lock() {
        while (_locked.exchange(true, std::memory_order_acquire)) {
            while (_locked.load(std::memory_order_relaxed)) {
                __builtin_ia32_pause();
            }
        }
    }
    void unlock() { _locked.store(false, std::memory_order_release); }

private:
    std::atomic<bool> _locked{false};
};

/// The kernel's jhash (Bob Jenkins' lookup3) over bytes, as htab_map_hash uses it, so that with BPF_F_ZERO_SEED the
/// buckets, and so the get_next_key order, are the kernel's.
std::uint32_t jhash(const void* key, std::uint32_t length, std::uint32_t seed);

/// A problem with one field, for check_definition.
inline std::optional<definition_problem> problem(long errno_value, std::string field, std::string reason) {
    return definition_problem{errno_value, std::move(field), std::move(reason)};
}

/// map_flags outside `allowed`, or both BPF_F_RDONLY_PROG and BPF_F_WRONLY_PROG (bpf_map_flags_access_ok).
std::optional<definition_problem> check_flags_allowed(std::uint32_t flags, std::uint32_t allowed);

std::optional<definition_problem> check_array(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_hash(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_lpm_trie(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_queue_stack(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_ringbuf(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_prog_array(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_devmap(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_cpumap(const map_definition& definition, unsigned cpus);
std::optional<definition_problem> check_xskmap(const map_definition& definition, unsigned cpus);

// Factories; the definition has passed check_definition. They throw std::bad_alloc when memory runs out.
std::unique_ptr<map> make_array(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_hash(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_lpm_trie(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_queue_stack(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_ringbuf(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_prog_array(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_devmap(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_devmap_hash(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_cpumap(const map_definition& definition, unsigned cpus);
std::unique_ptr<map> make_xskmap(const map_definition& definition, unsigned cpus);

/// A program id as the kernel reads the value's bpf_prog.fd: a signed int, > 0 names a program.
inline bool names_program(std::uint32_t id) { return static_cast<std::int32_t>(id) > 0; }

} // namespace sluice::ebpf::maps
