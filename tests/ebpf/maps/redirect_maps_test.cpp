// devmap, devmap_hash, cpumap and xskmap: creation checks, update/lookup/delete/get_next_key semantics against the
// kernel's own maps (the same calls on both, return codes and values compared), and what the data path reads.
#include <net/if.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "creation_cases.hpp"

namespace sluice::ebpf {
namespace {

using testing::kernel_map;

// ---- creation ----

using testing::creation_case;

std::vector<creation_case> creation_cases() {
    using enum map_type;
    return {
        {"devmap 4-byte value", {devmap, 4, 4, 4, 0, "d"}, 0, ""},
        {"devmap 8-byte value", {devmap, 4, 8, 4, 0, "d"}, 0, ""},
        {"devmap value 12", {devmap, 4, 12, 4, 0, "d"}, EINVAL, "value_size"},
        {"devmap value 5", {devmap, 4, 5, 4, 0, "d"}, EINVAL, "value_size"},
        {"devmap key 8", {devmap, 8, 4, 4, 0, "d"}, EINVAL, "key_size"},
        {"devmap max_entries 0", {devmap, 4, 4, 0, 0, "d"}, EINVAL, "max_entries"},
        {"devmap rdonly_prog", {devmap, 4, 4, 4, map_flag::rdonly_prog, "d"}, EINVAL, "map_flags"},
        {"devmap numa_node", {devmap, 4, 4, 4, map_flag::numa_node, "d"}, 0, ""},
        {"devmap rdonly", {devmap, 4, 4, 4, map_flag::rdonly, "d"}, 0, ""},
        {"devmap no_prealloc", {devmap, 4, 4, 4, map_flag::no_prealloc, "d"}, EINVAL, "map_flags"},
        {"devmap_hash ok", {devmap_hash, 4, 8, 4, 0, "h"}, 0, ""},
        {"devmap_hash no_prealloc", {devmap_hash, 4, 4, 4, map_flag::no_prealloc, "h"}, EINVAL, "map_flags"},
        {"cpumap 4-byte value", {cpumap, 4, 4, 2, 0, "c"}, 0, ""},
        {"cpumap 8-byte value", {cpumap, 4, 8, 64, 0, "c"}, 0, ""},
        {"cpumap value 12", {cpumap, 4, 12, 4, 0, "c"}, EINVAL, "value_size"},
        {"cpumap rdonly", {cpumap, 4, 4, 4, map_flag::rdonly, "c"}, EINVAL, "map_flags"},
        {"cpumap rdonly_prog", {cpumap, 4, 4, 4, map_flag::rdonly_prog, "c"}, EINVAL, "map_flags"},
        {"cpumap numa_node", {cpumap, 4, 4, 4, map_flag::numa_node, "c"}, 0, ""},
        {"xskmap ok", {xskmap, 4, 4, 4, 0, "x"}, 0, ""},
        {"xskmap value 8", {xskmap, 4, 8, 4, 0, "x"}, EINVAL, "value_size"},
        {"xskmap rdonly", {xskmap, 4, 4, 4, map_flag::rdonly, "x"}, 0, ""},
        {"xskmap rdonly_prog", {xskmap, 4, 4, 4, map_flag::rdonly_prog, "x"}, EINVAL, "map_flags"},
        {"xskmap max_entries 0", {xskmap, 4, 4, 0, 0, "x"}, EINVAL, "max_entries"},
    };
}

TEST(RedirectMapCreation, SluiceChecksNameTheField) {
    testing::expect_sluice_checks_name_the_field(creation_cases());
    // NR_CPUS: sluice takes a distribution kernel's 8192 (this machine's kernel may be built with fewer).
    const auto too_many = check_definition({map_type::cpumap, 4, 4, 8193, 0, "c"}, 2);
    ASSERT_TRUE(too_many.has_value());
    EXPECT_EQ(too_many->errno_value, E2BIG);
}

TEST(RedirectMapCreation, KernelAgrees) {
    testing::expect_kernel_agrees(creation_cases());
}

// ---- control-plane semantics, step by step on both ----

enum class op { update, lookup, remove, next, next_first };

struct step {
    op what;
    std::uint32_t key;
    std::uint32_t first{};  ///< ifindex, qsize or socket
    std::uint32_t second{}; ///< program id / fd
    std::uint64_t flags{};
};

/// Every interface of this network namespace exists for sluice's devmaps too, as dev_get_by_index sees them.
bool interface_exists(std::uint32_t ifindex) {
    std::array<char, IF_NAMESIZE> name{};
    return if_indextoname(ifindex, name.data()) != nullptr;
}

/// Runs `steps` on a sluice map and, if allowed, the kernel's; every return code and value must agree.
void compare_with_kernel(const map_definition& definition, const std::vector<step>& steps) {
    SLUICE_REQUIRE_KERNEL_MAPS();
    testing::pin_to_cpu0 pinned;
    kernel_map kernel(definition);
    ASSERT_EQ(kernel.status(), 0);
    auto ours = testing::make_map(definition, testing::kernel_cpus());
    ASSERT_NE(ours, nullptr);
    auto* redirect = dynamic_cast<redirect_map*>(ours.get());
    ASSERT_NE(redirect, nullptr);
    // No programs and no sockets exist on either side: every program id / fd and socket id is refused.
    redirect->set_resolvers({.program = [](std::uint32_t) -> const void* { return nullptr; },
                             .interface = interface_exists,
                             .socket = [](std::uint32_t, std::uint32_t&) -> void* { return nullptr; }});
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const step& s = steps[i];
        SCOPED_TRACE(::testing::Message() << "step " << i << " key " << s.key << " values " << s.first << ","
                                          << s.second << " flags " << s.flags);
        const std::array<std::uint32_t, 2> value{s.first, s.second};
        std::array<std::uint32_t, 2> kernel_out{};
        std::array<std::uint32_t, 2> our_out{};
        switch (s.what) {
        case op::update:
            EXPECT_EQ(ours->update_elem(&s.key, value.data(), s.flags),
                      kernel.update_elem(&s.key, value.data(), s.flags));
            break;
        case op::lookup:
            EXPECT_EQ(ours->lookup_elem(&s.key, our_out.data()), kernel.lookup_elem(&s.key, kernel_out.data()));
            EXPECT_EQ(our_out, kernel_out);
            break;
        case op::remove:
            EXPECT_EQ(ours->delete_elem(&s.key), kernel.delete_elem(&s.key));
            break;
        case op::next:
            EXPECT_EQ(ours->get_next_key(&s.key, our_out.data()), kernel.get_next_key(&s.key, kernel_out.data()));
            EXPECT_EQ(our_out[0], kernel_out[0]);
            break;
        case op::next_first:
            EXPECT_EQ(ours->get_next_key(nullptr, our_out.data()), kernel.get_next_key(nullptr, kernel_out.data()));
            EXPECT_EQ(our_out[0], kernel_out[0]);
            break;
        }
    }
}

constexpr std::uint32_t loopback = 1;
constexpr std::uint32_t no_interface = 999'999;

TEST(Devmap, KernelAgrees) {
    using enum op;
    compare_with_kernel({map_type::devmap, 4, 8, 4, 0, "d"}, {{update, 0, loopback},
                                                              {update, 0, loopback, 0, 1},
                                                              {update, 0, loopback, 0, 2},
                                                              {update, 1, loopback, 0, 2},
                                                              {update, 4, loopback},
                                                              {update, 1, no_interface},
                                                              {update, 1, 0},
                                                              {update, 1, 0, 5},
                                                              {update, 1, loopback, 0xffffffff},
                                                              {update, 2, loopback, 99},
                                                              {update, 0, loopback, 0, 3},
                                                              {update, 0, loopback, 0, 4},
                                                              {lookup, 0},
                                                              {lookup, 1},
                                                              {lookup, 2},
                                                              {lookup, 9},
                                                              {remove, 1},
                                                              {remove, 0},
                                                              {remove, 0},
                                                              {remove, 9},
                                                              {next, 0},
                                                              {next, 3},
                                                              {next, 9},
                                                              {next_first, 0},
                                                              {lookup, 1}});
}

TEST(Devmap, FourByteValuesHaveNoProgram) {
    using enum op;
    compare_with_kernel({map_type::devmap, 4, 4, 2, 0, "d"},
                        {{update, 0, loopback}, {lookup, 0}, {update, 1, no_interface}, {lookup, 1}});
}

TEST(DevmapHash, KernelAgrees) {
    using enum op;
    compare_with_kernel({map_type::devmap_hash, 4, 8, 2, 0, "h"}, {{update, 5, loopback},
                                                                   {update, 5, loopback, 0, 1},
                                                                   {update, 6, loopback, 0, 2},
                                                                   {update, 7, loopback},
                                                                   {update, 9, 0},
                                                                   {update, 9, no_interface},
                                                                   {update, 5, loopback, 0, 3},
                                                                   {update, 7, loopback, 0, 2},
                                                                   {update, 5, loopback, 99},
                                                                   {lookup, 5},
                                                                   {lookup, 8},
                                                                   {remove, 8},
                                                                   {next, 5},
                                                                   {next, 6},
                                                                   {next, 7},
                                                                   {next_first, 0},
                                                                   {remove, 6},
                                                                   {next, 6},
                                                                   {next, 5},
                                                                   {next_first, 0},
                                                                   {remove, 5},
                                                                   {next_first, 0}});
}

TEST(DevmapHash, BucketOrderAsTheKernel) {
    using enum op;
    // 8 buckets: keys 3 and 11 share bucket 3, 20 is in bucket 4; a replaced key moves to the head of its bucket.
    compare_with_kernel({map_type::devmap_hash, 4, 4, 8, 0, "h"}, {{update, 3, loopback},
                                                                   {update, 11, loopback},
                                                                   {update, 20, loopback},
                                                                   {next_first, 0},
                                                                   {next, 11},
                                                                   {next, 3},
                                                                   {next, 20},
                                                                   {update, 3, loopback},
                                                                   {next_first, 0},
                                                                   {next, 3},
                                                                   {next, 11}});
}

TEST(Cpumap, KernelAgrees) {
    using enum op;
    // Possible cpus: the kernel's, and sluice's map made with as many workers.
    const std::uint32_t beyond_cpus = testing::kernel_cpus();
    compare_with_kernel({map_type::cpumap, 4, 8, beyond_cpus + 2, 0, "c"}, {{update, 0, 128},
                                                                            {update, 0, 128, 0, 1},
                                                                            {update, 1, 128, 0, 2},
                                                                            {update, beyond_cpus + 2, 128},
                                                                            {update, 1, 16385},
                                                                            {update, 1, 16384},
                                                                            {update, beyond_cpus, 128},
                                                                            {update, 1, 0},
                                                                            {update, 1, 128, 99},
                                                                            {update, 1, 128, 0xffffffff},
                                                                            {update, 0, 128, 0, 3},
                                                                            {lookup, 0},
                                                                            {lookup, 1},
                                                                            {lookup, beyond_cpus},
                                                                            {lookup, 99},
                                                                            {remove, 0},
                                                                            {remove, 0},
                                                                            {remove, 99},
                                                                            {next, 0},
                                                                            {next, beyond_cpus + 1},
                                                                            {next, 99},
                                                                            {next_first, 0}});
}

TEST(Xskmap, KernelAgrees) {
    using enum op;
    // fd 999 is no open file in the kernel; socket id 999 is no socket in sluice.
    compare_with_kernel({map_type::xskmap, 4, 4, 4, 0, "x"}, {{update, 0, 999},
                                                              {update, 9, 999},
                                                              {update, 0, 999, 0, 4},
                                                              {lookup, 0},
                                                              {remove, 0},
                                                              {remove, 9},
                                                              {next, 0},
                                                              {next, 3},
                                                              {next_first, 0}});
}

// ---- what the data path reads ----

TEST(Devmap, EntriesCarryTheResolvedProgram) {
    auto created = testing::make_map({map_type::devmap, 4, 8, 4, 0, "d"});
    auto* devmap = dynamic_cast<redirect_map*>(created.get());
    ASSERT_NE(devmap, nullptr);
    EXPECT_TRUE(devmap->definition().map_flags & map_flag::rdonly_prog); // as the kernel: programs only read it
    static constexpr int egress_program = 0;
    redirect_map::resolvers with;
    with.program = [](std::uint32_t id) -> const void* { return id == 7 ? &egress_program : nullptr; };
    with.interface = [](std::uint32_t ifindex) { return ifindex == 10 || ifindex == 11; };
    devmap->set_resolvers(with);
    const std::uint32_t key0 = 0;
    const std::uint32_t key2 = 2;
    const std::array<std::uint32_t, 2> with_program{10, 7};
    const std::array<std::uint32_t, 2> without{11, 0};
    const std::array<std::uint32_t, 2> unknown_interface{12, 0};
    const std::array<std::uint32_t, 2> unknown_program{10, 8};
    ASSERT_EQ(devmap->update_elem(&key0, with_program.data(), 0), 0);
    ASSERT_EQ(devmap->update_elem(&key2, without.data(), 0), 0);
    EXPECT_EQ(devmap->update_elem(&key0, unknown_interface.data(), 0), -EINVAL);
    EXPECT_EQ(devmap->update_elem(&key0, unknown_program.data(), 0), -EINVAL);
    const auto* entry = static_cast<const devmap_entry*>(devmap->lookup(&key0, 1));
    ASSERT_NE(entry, nullptr);
    EXPECT_EQ(entry->ifindex, 10U);
    EXPECT_EQ(entry->program_id, 7U);
    EXPECT_EQ(entry->program, &egress_program);
    // A program's lookup sees struct bpf_devmap_val at the entry's start.
    std::array<std::uint32_t, 2> seen{};
    std::memcpy(seen.data(), entry, 8);
    EXPECT_EQ(seen, with_program);
    std::vector<std::uint32_t> keys;
    devmap->for_each_entry([](std::uint32_t key, void*,
                              void* opaque) { static_cast<std::vector<std::uint32_t>*>(opaque)->push_back(key); },
                           &keys);
    EXPECT_EQ(keys, (std::vector<std::uint32_t>{0, 2}));
    const std::uint32_t key1 = 1;
    EXPECT_EQ(devmap->lookup(&key1, 0), nullptr);
    // Programs may not write a devmap.
    EXPECT_EQ(devmap->update(&key1, without.data(), 0, 0), -EINVAL);
}

TEST(Cpumap, PossibleCpusAreTheWorkers) {
    auto created = testing::make_map({map_type::cpumap, 4, 8, 8, 0, "c"}, 3);
    auto* cpus = dynamic_cast<redirect_map*>(created.get());
    ASSERT_NE(cpus, nullptr);
    static constexpr int cpu_program = 0;
    redirect_map::resolvers with;
    with.program = [](std::uint32_t id) -> const void* { return id == 1 ? &cpu_program : nullptr; };
    cpus->set_resolvers(with);
    const std::array<std::uint32_t, 2> value{64, 1};
    for (std::uint32_t key = 0; key < 8; ++key) {
        EXPECT_EQ(cpus->update_elem(&key, value.data(), 0), key < 3 ? 0 : -ENODEV) << key;
    }
    const std::uint32_t key = 2;
    const auto* entry = static_cast<const cpumap_entry*>(cpus->lookup(&key, 0));
    ASSERT_NE(entry, nullptr);
    EXPECT_EQ(entry->qsize, 64U);
    EXPECT_EQ(entry->program, &cpu_program);
}

TEST(Xskmap, SocketsBySluiceId) {
    auto created = testing::make_map({map_type::xskmap, 4, 4, 4, 0, "x"});
    auto* sockets = dynamic_cast<redirect_map*>(created.get());
    ASSERT_NE(sockets, nullptr);
    static int socket_a = 0;
    static int socket_b = 0;
    redirect_map::resolvers with;
    with.socket = [](std::uint32_t id, std::uint32_t& queue) -> void* {
        queue = id == 1 ? 3 : 0;
        return id == 1 ? static_cast<void*>(&socket_a) : id == 2 ? static_cast<void*>(&socket_b) : nullptr;
    };
    sockets->set_resolvers(with);
    const std::uint32_t key = 1;
    const std::uint32_t a = 1;
    const std::uint32_t b = 2;
    EXPECT_EQ(sockets->update_elem(&key, &a, update_flag::exist), -ENOENT);
    EXPECT_EQ(sockets->update_elem(&key, &a, update_flag::noexist), 0);
    EXPECT_EQ(sockets->update_elem(&key, &a, update_flag::noexist), 0); // the same socket again
    EXPECT_EQ(sockets->update_elem(&key, &b, update_flag::noexist), -EEXIST);
    const auto* entry = static_cast<const xsk_entry*>(sockets->lookup(&key, 0));
    ASSERT_NE(entry, nullptr);
    EXPECT_EQ(entry->socket, &socket_a);
    EXPECT_EQ(entry->queue_id, 3U); // what a program reads as bpf_xdp_sock.queue_id
    EXPECT_EQ(sockets->update_elem(&key, &b, update_flag::exist), 0);
    EXPECT_EQ(static_cast<const xsk_entry*>(sockets->lookup(&key, 0))->socket, &socket_b);
    std::uint32_t out = 0;
    EXPECT_EQ(sockets->lookup_elem(&key, &out), -EOPNOTSUPP);
}

} // namespace
} // namespace sluice::ebpf
