// What the helper tests share: a packet buffer laid out as xdp::frame lays it out, programs run in the interpreter
// with the XDP helper table, and direct helper calls.
#pragma once

#include <linux/bpf.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "sluice/ebpf/assembler.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"

namespace sluice::ebpf::testing {

/// One 4096-byte frame: 256 bytes of headroom, the packet, tailroom, the 320-byte reserve (xdp/frame.hpp).
struct packet_buffer {
    alignas(4096) std::array<std::uint8_t, 4096> memory{};
    xdp_context context;

    explicit packet_buffer(std::size_t length, std::uint32_t headroom = xdp_packet_headroom) {
        context.data_hard_start = memory.data();
        context.data = memory.data() + headroom;
        context.data_meta = context.data;
        context.data_end = context.data + length;
        context.frame_size = static_cast<std::uint32_t>(memory.size());
        context.ingress_ifindex = 1;
        for (std::size_t i = 0; i < length; ++i) {
            context.data[i] = static_cast<std::uint8_t>(i * 7 + 1);
        }
    }

    std::vector<std::uint8_t> packet() const { return {context.data, context.data_end}; }
    std::vector<std::uint8_t> meta_and_packet() const { return {context.data_meta, context.data_end}; }
    std::uint64_t address() { return reinterpret_cast<std::uintptr_t>(&context); }
};

inline std::uint64_t negative(long errno_value) {
    return static_cast<std::uint64_t>(-static_cast<std::int64_t>(errno_value));
}

/// Calls helper `id` of the XDP table directly, with `state` as the worker state.
inline std::uint64_t call_helper(std::uint32_t id, execution_state& state, std::uint64_t r1 = 0, std::uint64_t r2 = 0,
                                 std::uint64_t r3 = 0, std::uint64_t r4 = 0, std::uint64_t r5 = 0) {
    const helper_function function = xdp_helper_table().find(id);
    EXPECT_NE(function, nullptr) << "helper " << id;
    call_context context{&state};
    return function == nullptr ? 0 : function(r1, r2, r3, r4, r5, context);
}

/// Assembles `text`; fails the test on an error.
inline std::vector<instruction> assemble_or_fail(const std::string& text) {
    auto code = assemble(text);
    EXPECT_TRUE(code.has_value()) << (code ? "" : code.error().message) << "\n" << text;
    return code ? std::move(*code) : std::vector<instruction>{};
}

/// Makes the lddw at `at` a function address (pseudo_func) of instruction `target`, as the loader links it.
inline void make_function_address(std::vector<instruction>& code, std::size_t at, std::size_t target) {
    code[at].src = op::pseudo_func;
    code[at].imm = static_cast<std::int32_t>(static_cast<std::int64_t>(target) - static_cast<std::int64_t>(at) - 1);
    code[at + 1].imm = 0;
}

/// Runs `code` in the interpreter with the XDP helper table, ctx = the buffer's context.
inline expected<std::uint64_t> run_xdp(const std::vector<instruction>& code, packet_buffer& buffer,
                                       execution_state& state, interpreter_options options = {}) {
    auto machine = interpreter::create(code, xdp_helper_table(), options);
    if (!machine) {
        return machine.error();
    }
    state.begin_packet(buffer.context);
    return machine->run({buffer.address(), 0, 0, 0, 0}, &state);
}

} // namespace sluice::ebpf::testing
