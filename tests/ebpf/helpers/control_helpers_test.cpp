// Tail calls, bpf_loop and bpf_for_each_map_elem run by the interpreter: chains, the limit of 33, empty slots,
// callbacks that count and stop early, callbacks over hash and array maps, and bad callback handles.

#include "helpers_test_support.hpp"
#include "sluice/ebpf/maps.hpp"

namespace {

using namespace sluice::ebpf;
using namespace sluice::ebpf::testing;

constexpr std::int32_t function_placeholder = 0x7777;

/// The index of the first `exit`, and of the lddw whose imm is function_placeholder.
std::size_t first_exit(const std::vector<instruction>& code) {
    for (std::size_t i = 0; i < code.size(); ++i) {
        if (code[i].opcode == op::exit) {
            return i;
        }
    }
    return code.size();
}

std::size_t placeholder(const std::vector<instruction>& code) {
    for (std::size_t i = 0; i < code.size(); ++i) {
        if (code[i].opcode == op::lddw && code[i].imm == function_placeholder) {
            return i;
        }
    }
    return code.size();
}

/// Assembles a program whose callback starts after the first exit, and links the placeholder lddw to it.
std::vector<instruction> with_callback(const std::string& text) {
    auto code = assemble_or_fail(text);
    if (!code.empty()) {
        make_function_address(code, placeholder(code), first_exit(code) + 1);
    }
    return code;
}

struct prog_array_fixture {
    std::unique_ptr<map> array;
    program_registry registry;
    std::vector<std::vector<instruction>> codes;

    prog_array_fixture() {
        auto created = create_map({map_type::prog_array, 4, 4, 8, 0, "jumps"}, 1);
        EXPECT_TRUE(created);
        array = std::move(*created);
        codes.reserve(8); // the runnable programs keep spans into these
    }

    std::uintptr_t address() const { return reinterpret_cast<std::uintptr_t>(array.get()); }

    void install(std::uint32_t slot, const std::string& text) {
        codes.push_back(assemble_or_fail(text));
        auto program = runnable_program::prepare(codes.back(), xdp_helper_table());
        ASSERT_TRUE(program) << program.error().message;
        // The handle is whatever the slot holds (the loader puts its loaded_program there); here the code's address.
        const void* handle = codes.back().data();
        registry.add(handle, *program);
        ASSERT_EQ(static_cast<prog_array_map&>(*array).set(slot, handle), 0);
    }
};

TEST(tail_call, chain_of_three) {
    prog_array_fixture jumps;
    const auto call_slot = [&](int slot, int fallback) {
        return fmt::format("lddw %r2, {:#x}\nmov %r3, {}\ncall {}\nmov %r0, {}\nexit", jumps.address(), slot,
                           static_cast<int>(BPF_FUNC_tail_call), fallback);
    };
    jumps.install(1, call_slot(2, 101));
    jumps.install(2, "mov %r0, 3\nexit");
    const auto entry = assemble_or_fail(call_slot(1, 100));

    packet_buffer buffer(64);
    execution_state state;
    state.programs = &jumps.registry;
    auto result = run_xdp(entry, buffer, state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(*result, 3u);

    // Without a registry no handle resolves: every tail call fails and the program continues.
    state.programs = nullptr;
    result = run_xdp(entry, buffer, state);
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, 100u);
}

TEST(tail_call, limit_of_33_then_the_call_fails_and_execution_continues) {
    prog_array_fixture jumps;
    std::uint64_t runs = 0;
    // Counts its runs in `runs`, then tail-calls itself; when the call fails, returns what the helper returned.
    jumps.install(0, fmt::format("lddw %r6, {:#x}\nldxdw %r7, [%r6]\nadd %r7, 1\nstxdw [%r6], %r7\n"
                                 "lddw %r2, {:#x}\nmov %r3, 0\ncall {}\nexit",
                                 reinterpret_cast<std::uintptr_t>(&runs), jumps.address(),
                                 static_cast<int>(BPF_FUNC_tail_call)));
    const auto entry = assemble_or_fail(fmt::format("lddw %r2, {:#x}\nmov %r3, 0\ncall {}\nmov %r0, 1\nexit",
                                                    jumps.address(), static_cast<int>(BPF_FUNC_tail_call)));
    packet_buffer buffer(64);
    execution_state state;
    state.programs = &jumps.registry;
    auto result = run_xdp(entry, buffer, state);
    ASSERT_TRUE(result) << result.error().message;
    EXPECT_EQ(runs, 33u); // 33 tail calls made (the first from the entry program), the 34th refused
    EXPECT_EQ(*result, negative(ENOENT));
}

TEST(tail_call, empty_slot_and_out_of_range_index_continue) {
    prog_array_fixture jumps;
    packet_buffer buffer(64);
    execution_state state;
    state.programs = &jumps.registry;
    for (const int slot : {3, 4, -1}) {
        const auto entry = assemble_or_fail(fmt::format("lddw %r2, {:#x}\nmov %r3, {}\ncall {}\nmov %r0, 7\nexit",
                                                        jumps.address(), slot, static_cast<int>(BPF_FUNC_tail_call)));
        auto result = run_xdp(entry, buffer, state);
        ASSERT_TRUE(result) << result.error().message;
        EXPECT_EQ(*result, 7u) << "slot " << slot;
    }
}

/// bpf_loop(count, callback, &counter, flags): the callback adds its index to the counter and stops at `stop_at`.
/// Returns r0 * 1000 + counter.
std::string loop_program(int count, int stop_at, int flags) {
    return fmt::format(R"(
        mov %r6, 0
        stxdw [%r10-8], %r6
        mov %r1, {}
        lddw %r2, {}
        mov %r3, %r10
        add %r3, -8
        mov %r4, {}
        call {}
        ldxdw %r1, [%r10-8]
        mul %r0, 1000
        add %r0, %r1
        exit
        ldxdw %r3, [%r2]
        add %r3, %r1
        stxdw [%r2], %r3
        mov %r0, 0
        jne %r1, {}, +1
        mov %r0, 1
        exit
    )",
                       count, function_placeholder, flags, static_cast<int>(BPF_FUNC_loop), stop_at);
}

TEST(bpf_loop, counts_stops_early_and_checks_arguments) {
    for (const bool checked : {false, true}) {
        const auto run = [&](int count, int stop_at, int flags) -> std::uint64_t {
            const auto code = with_callback(loop_program(count, stop_at, flags));
            auto machine = interpreter::create(code, xdp_helper_table(), {.checked = checked});
            EXPECT_TRUE(machine) << machine.error().message;
            packet_buffer buffer(64);
            execution_state state;
            auto result = machine->run({buffer.address(), 0, 0, 0, 0}, &state);
            EXPECT_TRUE(result) << result.error().message;
            return result ? *result : 0;
        };
        EXPECT_EQ(run(4, 99, 0), 4006u) << checked; // 4 iterations, 0+1+2+3
        EXPECT_EQ(run(10, 5, 0), 6015u) << checked; // stopped by the callback at index 5: 6 iterations
        EXPECT_EQ(run(0, 99, 0), 0u) << checked;
        EXPECT_EQ(run(3, 99, 1), negative(EINVAL) * 1000) << checked; // flags must be 0
    }
    // More than BPF_MAX_LOOPS: -E2BIG, the callback never runs.
    auto code = with_callback(loop_program(0, 99, 0));
    code[2].imm = static_cast<std::int32_t>(max_loops + 1);
    packet_buffer buffer(64);
    execution_state state;
    auto result = run_xdp(code, buffer, state);
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, negative(E2BIG) * 1000);
}

TEST(bpf_loop, a_handle_that_is_no_function_ends_the_program_with_an_error) {
    auto code = assemble_or_fail(loop_program(3, 99, 0));
    code[placeholder(code)].imm = 12345; // a plain number, not a linked function address
    packet_buffer buffer(64);
    execution_state state;
    auto result = run_xdp(code, buffer, state);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("names no instruction of the running program"), std::string::npos);
}

TEST(bpf_loop, callbacks_nest_until_the_call_depth_limit) {
    // The callback calls bpf_loop with itself: each level is a frame, so the eighth frame is refused.
    const auto code = with_callback(fmt::format(R"(
        mov %r1, 1
        lddw %r2, {0}
        mov %r3, 0
        mov %r4, 0
        call {1}
        exit
        mov %r1, 1
        lddw %r2, {0}
        mov %r3, 0
        mov %r4, 0
        call {1}
        mov %r0, 0
        exit
    )",
                                                function_placeholder, static_cast<int>(BPF_FUNC_loop)));
    auto linked = code;
    // The second lddw (inside the callback) points at the callback too.
    const std::size_t callback = first_exit(linked) + 1;
    make_function_address(linked, callback + 1, callback);
    packet_buffer buffer(64);
    execution_state state;
    auto result = run_xdp(linked, buffer, state);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find("callback nests deeper than 8 frames"), std::string::npos);
}

/// bpf_for_each_map_elem(map, callback, &sum, 0): the callback adds each value to sum and stops when it sees
/// `stop_value`. Returns r0 * 1000 + sum.
std::string for_each_program(std::uintptr_t map_address, int stop_value) {
    return fmt::format(R"(
        mov %r6, 0
        stxdw [%r10-8], %r6
        lddw %r1, {:#x}
        lddw %r2, {}
        mov %r3, %r10
        add %r3, -8
        mov %r4, 0
        call {}
        ldxdw %r1, [%r10-8]
        mul %r0, 1000
        add %r0, %r1
        exit
        ldxdw %r5, [%r3]
        ldxdw %r6, [%r4]
        add %r6, %r5
        stxdw [%r4], %r6
        mov %r0, 0
        jne %r5, {}, +1
        mov %r0, 1
        exit
    )",
                       map_address, function_placeholder, static_cast<int>(BPF_FUNC_for_each_map_elem), stop_value);
}

TEST(for_each_map_elem, checked_mode_lends_the_callback_its_key_and_value) {
    // In checked mode the callback may touch only what it is lent: the element's key and value, nothing beyond.
    for (const map_type type : {map_type::hash, map_type::lru_hash, map_type::array}) {
        auto created = create_map({type, 4, 8, 4, 0, "values"}, 1);
        ASSERT_TRUE(created);
        map& values = **created;
        execution_state state(0);
        for (std::uint32_t key = 0; key < 4; ++key) {
            const std::uint64_t value = key + 1;
            ASSERT_EQ(values.update(&key, &value, 0, state.cpu), 0);
        }
        packet_buffer buffer(64);
        const auto code = with_callback(for_each_program(reinterpret_cast<std::uintptr_t>(&values), 99));
        auto result = run_xdp(code, buffer, state, {.checked = true});
        ASSERT_TRUE(result) << to_string(type) << ": " << result.error().message;
        EXPECT_EQ(*result, 4010u) << to_string(type);
    }
}

TEST(for_each_map_elem, array_and_hash) {
    for (const map_type type : {map_type::array, map_type::hash, map_type::percpu_array}) {
        auto created = create_map({type, 4, 8, 4, 0, "values"}, 2);
        ASSERT_TRUE(created);
        map& values = **created;
        execution_state state(1);
        for (std::uint32_t key = 0; key < 4; ++key) {
            const std::uint64_t value = key + 1; // 1, 2, 3, 4
            ASSERT_EQ(values.update(&key, &value, 0, state.cpu), 0);
        }
        packet_buffer buffer(64);
        auto result =
            run_xdp(with_callback(for_each_program(reinterpret_cast<std::uintptr_t>(&values), 99)), buffer, state);
        ASSERT_TRUE(result) << result.error().message;
        EXPECT_EQ(*result, 4010u) << to_string(type); // 4 elements, sum 10

        result = run_xdp(with_callback(for_each_program(reinterpret_cast<std::uintptr_t>(&values), 1)), buffer, state);
        ASSERT_TRUE(result);
        EXPECT_GE(*result / 1000, 1u);
        EXPECT_LE(*result / 1000, 4u);
        if (type != map_type::hash) {
            EXPECT_EQ(*result, 1001u) << to_string(type); // arrays go in key order: stops at the first element
        }
    }
}

} // namespace
