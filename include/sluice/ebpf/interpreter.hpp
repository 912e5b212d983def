// The reference interpreter: RFC 9669 semantics, instruction by instruction.
//
// It executes a program that validate() accepted. In its default mode it trusts the program (the verifier's proofs
// replace run-time checks); in checked mode every load, store and atomic is bounds-checked against the regions the
// caller registered plus the interpreter's own stack, and a violation stops the program with an error naming the
// instruction. Checked mode is the safety net until a program is verified, and a cross-check of the verifier after.
//
// One interpreter owns its stack: use one per thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/ebpf/isa.hpp"
#include "sluice/expected.hpp"

namespace sluice::ebpf {

/// What a helper sees besides its five arguments. A helper may end the program at once (as the conformance suite's
/// "unwind" helper and the kernel's bpf_throw do) by setting `stop`; r0 is then `stop_value`.
struct call_context {
    void* user{};             ///< the embedder's state (frame, maps, engine), passed through untouched
    bool stop{};              ///< set by a helper: end the program after this call
    std::uint64_t stop_value{}; ///< r0 when stopping
};

using helper_function = std::uint64_t (*)(std::uint64_t r1, std::uint64_t r2, std::uint64_t r3, std::uint64_t r4,
                                          std::uint64_t r5, call_context& context);

inline constexpr std::size_t max_helper_id = 512;

/// Helpers by id (the kernel's numbering for the kernel's helpers). A missing entry is a helper sluice lacks.
class helper_table {
public:
    void set(std::uint32_t id, std::string_view name, helper_function function);
    helper_function find(std::uint32_t id) const { return id < _functions.size() ? _functions[id] : nullptr; }
    std::string_view name(std::uint32_t id) const { return id < _names.size() ? _names[id] : std::string_view{}; }

private:
    std::vector<helper_function> _functions;
    std::vector<std::string_view> _names;
};

/// A memory range a program may touch in checked mode.
struct memory_region {
    std::uintptr_t begin{};
    std::size_t size{};
    bool writable{};
    std::string_view name; ///< "packet", "context", "map value", ... for messages
};

struct interpreter_options {
    bool checked{};                     ///< bounds-check every access against the registered regions
    std::uint64_t instruction_limit{};  ///< stop after this many executed instructions (0: no limit)
};

class interpreter {
public:
    /// Fails, naming the instruction, when a static helper call names a helper the table lacks.
    /// `code` and `helpers` must outlive the interpreter.
    static expected<interpreter> create(std::span<const instruction> code, const helper_table& helpers,
                                        interpreter_options options = {});

    /// Registers a region for checked mode; regions stay until clear_regions().
    void add_region(memory_region region) { _regions.push_back(region); }
    void clear_regions() { _regions.clear(); }

    /// Runs from instruction 0 with r1..r5 set and r10 at the top of a fresh stack frame.
    /// Errors: checked-mode violations, the instruction limit, a callx to no helper, call depth over max_call_depth.
    expected<std::uint64_t> run(std::array<std::uint64_t, 5> arguments, void* user = nullptr);

private:
    interpreter(std::span<const instruction> code, const helper_table& helpers, interpreter_options options);

    /// The run loop, compiled once per mode so that the unchecked loop carries no checks at all.
    template <bool checked, bool limited>
    expected<std::uint64_t> execute(std::array<std::uint64_t, 5> arguments, void* user);

    /// Checked mode: whether [address, address + bytes) lies in the live stack or one registered region.
    /// On failure `message` says why, naming the access.
    bool access_allowed(std::uintptr_t address, std::size_t bytes, bool write, std::uintptr_t stack_low,
                        std::uintptr_t stack_high, std::string& message) const;

    std::span<const instruction> _code;
    const helper_table* _helpers;
    interpreter_options _options;
    std::vector<memory_region> _regions;
    std::vector<std::uint8_t> _stack; ///< max_call_depth frames of stack_size bytes, 16-byte aligned base
};

} // namespace sluice::ebpf
