// The kernel as the judge of sluice's maps: the same definition created through libbpf, the same calls made on both.
//
// kernel_map wraps a real map fd with the calls of sluice's control plane, each returning 0 or -errno as
// libbpf >= 1.0 does. SLUICE_REQUIRE_KERNEL_MAPS() skips the test, saying why, when bpf() is not allowed (not root,
// no CAP_BPF, a seccomp filter) or missing. Comparisons pin the calling thread to cpu 0, so that the kernel's per-cpu
// choices (LRU local lists, per-cpu free lists) are made on one known cpu, as sluice's control plane makes them on its
// own one.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "sluice/ebpf/maps.hpp"

namespace sluice::ebpf::testing {

/// A sluice map for a test; a refused definition fails the test with the map module's message.
inline std::unique_ptr<map> make_map(const map_definition& definition, unsigned cpus = 2) {
    auto created = create_map(definition, cpus);
    EXPECT_TRUE(created.has_value()) << created.error().message;
    return created ? std::move(created.value()) : nullptr;
}

/// Why kernel maps are unavailable, or empty if they are.
inline std::string kernel_maps_unavailable() {
    static const std::string reason = [] {
        const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "probe", 4, 8, 1, nullptr);
        if (fd >= 0) {
            close(fd);
            return std::string();
        }
        return "the kernel refused bpf(BPF_MAP_CREATE): " + std::string(std::strerror(-fd)) +
               " (kernel-oracle comparisons need root or CAP_BPF on a kernel with BPF)";
    }();
    return reason;
}

#define SLUICE_REQUIRE_KERNEL_MAPS()                                                                                  \
    do {                                                                                                              \
        if (const std::string reason = ::sluice::ebpf::testing::kernel_maps_unavailable(); !reason.empty()) {       \
            GTEST_SKIP() << reason;                                                                                   \
        }                                                                                                             \
    } while (false)

/// The kernel's number of possible cpus: per-CPU values from the kernel come in that many slots.
inline unsigned kernel_cpus() { return static_cast<unsigned>(libbpf_num_possible_cpus()); }

/// Runs the calling thread on cpu 0 until destroyed.
class pin_to_cpu0 {
public:
    pin_to_cpu0() {
        sched_getaffinity(0, sizeof _saved, &_saved);
        cpu_set_t only;
        CPU_ZERO(&only);
        CPU_SET(0, &only);
        sched_setaffinity(0, sizeof only, &only);
    }
    ~pin_to_cpu0() { sched_setaffinity(0, sizeof _saved, &_saved); }
    pin_to_cpu0(const pin_to_cpu0&) = delete;
    pin_to_cpu0& operator=(const pin_to_cpu0&) = delete;

private:
    cpu_set_t _saved{};
};

class kernel_map {
public:
    explicit kernel_map(const map_definition& definition) {
        LIBBPF_OPTS(bpf_map_create_opts, options, .map_flags = definition.map_flags);
        _fd = bpf_map_create(static_cast<bpf_map_type>(definition.type),
                             definition.name.empty() ? nullptr : definition.name.c_str(), definition.key_size,
                             definition.value_size, definition.max_entries, &options);
    }
    ~kernel_map() {
        if (_fd >= 0) {
            close(_fd);
        }
    }
    kernel_map(const kernel_map&) = delete;
    kernel_map& operator=(const kernel_map&) = delete;

    /// 0 if the map was created, else -errno.
    int status() const { return _fd >= 0 ? 0 : _fd; }
    int fd() const { return _fd; }

    long lookup_elem(const void* key, void* value) { return bpf_map_lookup_elem(_fd, key, value); }
    long update_elem(const void* key, const void* value, std::uint64_t flags) {
        return bpf_map_update_elem(_fd, key, value, flags);
    }
    long delete_elem(const void* key) { return bpf_map_delete_elem(_fd, key); }
    long get_next_key(const void* key, void* next_key) { return bpf_map_get_next_key(_fd, key, next_key); }
    long lookup_and_delete_elem(const void* key, void* value) {
        return bpf_map_lookup_and_delete_elem(_fd, key, value);
    }
    long freeze() { return bpf_map_freeze(_fd); }

private:
    int _fd{-1};
};

} // namespace sluice::ebpf::testing
