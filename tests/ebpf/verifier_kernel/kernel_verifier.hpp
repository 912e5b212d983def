// The kernel's verifier as an oracle: load a BPF object's XDP programs into the running kernel through libbpf (as
// `bpftool prog load` would) or raw instructions through bpf_prog_load(), and report what the kernel said.
//
// Contract:
// - Needs root (CAP_BPF + CAP_SYS_ADMIN) and a kernel with BPF; kernel_bpf_available() says whether both are there
//   and why not. Nothing is attached: programs are loaded, asked about (bpf_prog_info) and closed.
// - kernel_verify_object() loads the whole object first (prog arrays filled from `.values` need every program). If
//   that fails it loads each program alone, so that one bad program does not hide the others' verdicts. Sections
//   libbpf does not know (legacy `xdp_*` names) are loaded as XDP programs, as sluice reads them; maps are not pinned.
// - kernel_verification_stats_of() asks the kernel for its own account (log level BPF_LOG_STATS): the time its
//   verifier took and the instructions it processed, for raw instructions or (kernel_loaded_object) a program of an
//   object after libbpf's relocations.
// - libbpf's messages are captured while a call runs (never printed); a rejection carries the kernel's log.
// Shared by tests/ebpf/verifier_kernel/ and bench/verifier_bench.cpp; header-only so that each links only libbpf.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::testing {

struct kernel_program_verdict {
    std::string name;
    bool accepted{};
    std::string log;                ///< libbpf's messages and the kernel's verifier log on rejection
    std::uint32_t verified_insns{}; ///< bpf_prog_info.verified_insns when accepted
};

struct kernel_object_verdict {
    bool opened{};     ///< libbpf could open (parse) the object
    std::string error; ///< why not, when !opened
    std::vector<kernel_program_verdict> programs;

    const kernel_program_verdict* find(const std::string& name) const {
        for (const kernel_program_verdict& program : programs) {
            if (program.name == name) {
                return &program;
            }
        }
        return nullptr;
    }
};

/// Why the kernel cannot be asked (empty when it can): not root, or BPF unavailable.
inline std::string kernel_bpf_unavailable() {
    if (::geteuid() != 0) {
        return "not root: loading programs into the kernel needs CAP_BPF and CAP_SYS_ADMIN";
    }
    // The smallest program there is: r0 = 2 (XDP_PASS); exit.
    const bpf_insn pass[] = {{BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, XDP_PASS}, {BPF_JMP | BPF_EXIT, 0, 0, 0, 0}};
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "probe", "GPL", pass, 2, nullptr);
    if (fd < 0) {
        return std::string("the kernel refuses BPF_PROG_LOAD: ") + std::strerror(errno);
    }
    ::close(fd);
    return {};
}

namespace detail {

inline std::string& libbpf_messages() {
    static std::string messages;
    return messages;
}

inline int capture_libbpf(libbpf_print_level, const char* format, va_list arguments) {
    char line[4096];
    std::vsnprintf(line, sizeof line, format, arguments);
    libbpf_messages() += line;
    return 0;
}

/// Captures libbpf's messages for its lifetime.
class libbpf_capture {
public:
    libbpf_capture() : _previous(libbpf_set_print(&capture_libbpf)) { libbpf_messages().clear(); }
    ~libbpf_capture() { libbpf_set_print(_previous); }
    libbpf_capture(const libbpf_capture&) = delete;
    libbpf_capture& operator=(const libbpf_capture&) = delete;
    std::string take() { return std::move(libbpf_messages()); }

private:
    libbpf_print_fn_t _previous;
};

/// Before load: XDP for sections libbpf does not know (sluice accepts legacy `xdp_*` names as XDP), and no pinning
/// (a test must leave nothing behind in /sys/fs/bpf, which need not even be mounted).
inline void prepare(bpf_object* object) {
    bpf_program* program = nullptr;
    bpf_object__for_each_program(program, object) {
        if (bpf_program__type(program) == BPF_PROG_TYPE_UNSPEC) {
            bpf_program__set_type(program, BPF_PROG_TYPE_XDP);
        }
    }
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, object) {
        bpf_map__set_pin_path(map, nullptr);
    }
}

inline std::uint32_t verified_insns(const bpf_program* program) {
    bpf_prog_info info{};
    std::uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(bpf_program__fd(program), &info, &length) != 0) {
        return 0;
    }
    return info.verified_insns;
}

/// Loads `path` with only `only` autoloaded (nullptr: every program). Fills `verdicts` for the programs loaded.
inline bool load_object(const std::string& path, const char* only, kernel_object_verdict& verdict) {
    libbpf_capture capture;
    bpf_object* object = bpf_object__open_file(path.c_str(), nullptr);
    if (object == nullptr) {
        verdict.opened = false;
        verdict.error = "libbpf cannot open it: " + std::string(std::strerror(errno)) + "\n" + capture.take();
        return false;
    }
    verdict.opened = true;
    prepare(object);
    bpf_program* program = nullptr;
    bpf_object__for_each_program(program, object) {
        if (only != nullptr) {
            bpf_program__set_autoload(program, std::strcmp(bpf_program__name(program), only) == 0);
        }
    }
    const int failed = bpf_object__load(object);
    const std::string log = capture.take();
    bpf_object__for_each_program(program, object) {
        const char* name = bpf_program__name(program);
        if (only != nullptr && std::strcmp(name, only) != 0) {
            continue;
        }
        kernel_program_verdict entry{name, failed == 0, failed == 0 ? std::string{} : log, 0};
        if (failed == 0) {
            entry.verified_insns = verified_insns(program);
        }
        verdict.programs.push_back(std::move(entry));
    }
    bpf_object__close(object);
    return failed == 0;
}

} // namespace detail

/// Every program of the object, accepted or rejected by the kernel (see the header comment).
inline kernel_object_verdict kernel_verify_object(const std::string& path) {
    kernel_object_verdict verdict;
    if (detail::load_object(path, nullptr, verdict) || !verdict.opened) {
        return verdict;
    }
    std::vector<std::string> names;
    for (const kernel_program_verdict& program : verdict.programs) {
        names.push_back(program.name);
    }
    verdict.programs.clear();
    for (const std::string& name : names) {
        detail::load_object(path, name.c_str(), verdict);
    }
    return verdict;
}

/// The kernel's own account of verifying one program (BPF_LOG_STATS).
struct kernel_verification_stats {
    double verification_microseconds{}; ///< "verification time N usec"
    std::uint64_t processed_insns{};    ///< "processed N insns"
    std::uint32_t verified_insns{};     ///< bpf_prog_info.verified_insns
    double load_microseconds{};         ///< wall time of BPF_PROG_LOAD (verification, JIT, allocation)
};

/// Loads `count` instructions (map references already fds) with BPF_PROG_LOAD at log level BPF_LOG_STATS (4) and reads
/// the kernel's statistics; nullopt with `error` (and the kernel's log) when the kernel rejects them.
inline std::optional<kernel_verification_stats>
kernel_verification_stats_of(const bpf_insn* code, std::size_t count, const std::string& name, std::string& error,
                             bpf_prog_type type = BPF_PROG_TYPE_XDP, bpf_attach_type attach = BPF_XDP,
                             std::uint32_t flags = 0) {
    std::vector<char> log(1 << 16);
    LIBBPF_OPTS(bpf_prog_load_opts, options, .expected_attach_type = attach, .prog_flags = flags, .log_level = 4,
                .log_size = static_cast<std::uint32_t>(log.size()), .log_buf = log.data());
    const auto started = std::chrono::steady_clock::now();
    const int fd = bpf_prog_load(type, name.c_str(), "GPL", code, count, &options);
    const auto finished = std::chrono::steady_clock::now();
    if (fd < 0) {
        error = "BPF_PROG_LOAD of " + name + " failed: " + std::strerror(errno) + "\n" + log.data();
        return std::nullopt;
    }
    kernel_verification_stats stats;
    stats.load_microseconds = std::chrono::duration<double, std::micro>(finished - started).count();
    unsigned long long number = 0;
    if (const char* at = std::strstr(log.data(), "verification time ");
        at != nullptr && std::sscanf(at, "verification time %llu", &number) == 1) {
        stats.verification_microseconds = static_cast<double>(number);
    }
    if (const char* at = std::strstr(log.data(), "processed ");
        at != nullptr && std::sscanf(at, "processed %llu insns", &number) == 1) {
        stats.processed_insns = number;
    }
    bpf_prog_info info{};
    std::uint32_t length = sizeof info;
    if (bpf_obj_get_info_by_fd(fd, &info, &length) == 0) {
        stats.verified_insns = info.verified_insns;
    }
    ::close(fd);
    return stats;
}

/// A program of an object as the kernel sees it after libbpf's relocations (map fds in place), kept open so that
/// it can be loaded again and again for timing. Move-only; closes the object (and its maps) when destroyed.
class kernel_loaded_object {
public:
    /// Opens and loads `path` through libbpf (every program, maps created); nullopt with `error` on failure.
    static std::optional<kernel_loaded_object> open(const std::string& path, std::string& error) {
        detail::libbpf_capture capture;
        bpf_object* object = bpf_object__open_file(path.c_str(), nullptr);
        if (object == nullptr) {
            error = "libbpf cannot open " + path + ": " + capture.take();
            return std::nullopt;
        }
        detail::prepare(object);
        if (bpf_object__load(object) != 0) {
            error = "libbpf cannot load " + path + ": " + capture.take();
            bpf_object__close(object);
            return std::nullopt;
        }
        return kernel_loaded_object(object);
    }

    kernel_loaded_object(kernel_loaded_object&& other) noexcept : _object(std::exchange(other._object, nullptr)) {}
    kernel_loaded_object& operator=(kernel_loaded_object&& other) noexcept {
        std::swap(_object, other._object);
        return *this;
    }
    kernel_loaded_object(const kernel_loaded_object&) = delete;
    kernel_loaded_object& operator=(const kernel_loaded_object&) = delete;
    ~kernel_loaded_object() {
        if (_object != nullptr) {
            bpf_object__close(_object);
        }
    }

    /// Program `name`'s final instructions loaded once more, with the kernel's statistics.
    std::optional<kernel_verification_stats> stats_of(const std::string& name, std::string& error) const {
        const bpf_program* program = bpf_object__find_program_by_name(_object, name.c_str());
        if (program == nullptr) {
            error = "libbpf has no program " + name;
            return std::nullopt;
        }
        return kernel_verification_stats_of(bpf_program__insns(program), bpf_program__insn_cnt(program), name, error,
                                            bpf_program__type(program), bpf_program__expected_attach_type(program),
                                            bpf_program__flags(program));
    }

private:
    explicit kernel_loaded_object(bpf_object* object) : _object(object) {}

    bpf_object* _object;
};

} // namespace sluice::testing
