// DPDK's BPF JIT as a bench variant: the program sluice loaded (maps lowered to addresses, context accesses rewritten
// to loads from sluice's xdp_context) handed to rte_bpf_load, then run through rte_bpf_get_jit's native function on
// the frame's context.
//
// What DPDK's librte_bpf lacks, and so which programs it cannot run (the column says which, and why):
//  - maps: it has none. Helper calls go to external functions (rte_bpf_xsym) that we provide over sluice's own maps
//    (bpf_map_lookup_elem, bpf_map_update_elem, bpf_map_delete_elem) and clock (bpf_ktime_get_ns); other helpers
//    have no wrapper here.
//  - BPF-to-BPF calls and tail calls: not in its instruction set.
//  - a context with pointers in it: its validator refuses to dereference a pointer loaded from memory ("destination
//    is not a pointer"). So, as the kernel and sluice's loader rewrite context accesses for their own layout, the
//    DPDK column rewrites them for DPDK's: the program's argument is the packet itself (ctx->data and ctx->data_meta
//    become the argument register), and data_end, ingress_ifindex and rx_queue_index are read from a trailer at
//    fixed offsets behind the largest packet, in the frame's tailroom reserve (dpdk_trailer).
//  - global data: an immediate is a pointer for DPDK only when it is the address of a declared variable, so each
//    global-data address the program loads is declared as one.
//  - Its validator's own rules decide the rest: its refusal is quoted.
#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <map>

#include "dpdk_shim.h"
#include "dpdk_variant.hpp"
#include "sluice/ebpf/kernel_helpers.hpp"
#include "sluice/ebpf/maps.hpp"
#include "sluice/xdp/action.hpp"
#include "sluice/xdp/frame.hpp"

namespace sluice::bench {
namespace {

// The external functions, with DPDK's calling convention: five 64-bit arguments, maps as sluice map addresses (the
// lowered code's imm64), one worker (cpu 0).
std::uint64_t map_lookup(std::uint64_t map, std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t) {
    return reinterpret_cast<std::uint64_t>(
        reinterpret_cast<ebpf::map*>(map)->lookup(reinterpret_cast<const void*>(key), 0));
}

std::uint64_t map_update(std::uint64_t map, std::uint64_t key, std::uint64_t value, std::uint64_t flags,
                         std::uint64_t) {
    return static_cast<std::uint64_t>(reinterpret_cast<ebpf::map*>(map)->update(
        reinterpret_cast<const void*>(key), reinterpret_cast<const void*>(value), flags, 0));
}

std::uint64_t map_delete(std::uint64_t map, std::uint64_t key, std::uint64_t, std::uint64_t, std::uint64_t) {
    return static_cast<std::uint64_t>(reinterpret_cast<ebpf::map*>(map)->remove(reinterpret_cast<const void*>(key), 0));
}

std::uint64_t ktime_get_ns(std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t) {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

/// Where the rewritten context loads find the fields that are not the packet pointer: just past the largest packet a
/// standard frame holds, inside the 320-byte reserve no packet reaches.
struct dpdk_trailer {
    std::uint8_t* data_end;
    std::uint32_t ingress_ifindex;
    std::uint32_t rx_queue_index;
    std::uint32_t egress_ifindex;
};
constexpr std::size_t trailer_offset = xdp::standard_frame_capacity;
constexpr std::size_t argument_bytes = trailer_offset + sizeof(dpdk_trailer);

/// Rewrites the loader's context loads (loaded_program::context_accesses) for the DPDK argument layout above.
expected<void> rewrite_context(std::vector<ebpf::instruction>& code, const ebpf::loaded_program& program) {
    for (const ebpf::context_access& access : program.context_accesses) {
        ebpf::instruction& insn = code.at(access.instruction);
        if (ebpf::op::cls(insn.opcode) != ebpf::op::cls_ldx) {
            return error{
                fmt::format("skipped DPDK: context access at instruction {} is not a load", access.instruction)};
        }
        switch (access.field) {
        case ebpf::xdp_md_field::data:
        case ebpf::xdp_md_field::data_meta: // no metadata: data_meta == data
            insn =
                ebpf::make_instruction(ebpf::op::cls_alu64 | ebpf::op::alu_mov | ebpf::op::src_x, insn.dst, insn.src);
            break;
        case ebpf::xdp_md_field::data_end:
            insn.offset = static_cast<std::int16_t>(trailer_offset + offsetof(dpdk_trailer, data_end));
            break;
        case ebpf::xdp_md_field::ingress_ifindex:
            insn.offset = static_cast<std::int16_t>(trailer_offset + offsetof(dpdk_trailer, ingress_ifindex));
            break;
        case ebpf::xdp_md_field::rx_queue_index:
            insn.offset = static_cast<std::int16_t>(trailer_offset + offsetof(dpdk_trailer, rx_queue_index));
            break;
        case ebpf::xdp_md_field::egress_ifindex:
            insn.offset = static_cast<std::int16_t>(trailer_offset + offsetof(dpdk_trailer, egress_ifindex));
            break;
        }
    }
    return {};
}

constexpr std::uint32_t helper_map_lookup = 1;
constexpr std::uint32_t helper_map_update = 2;
constexpr std::uint32_t helper_map_delete = 3;
constexpr std::uint32_t helper_ktime_get_ns = 5;
constexpr std::uint32_t helper_tail_call = 12;

struct size_bounds {
    std::size_t smallest_key{};
    std::size_t smallest_value{};
    std::size_t largest_value{};
};

/// DPDK checks pointer arguments against a declared size: the smallest key and value of the object's maps is what every
/// call site passes at least, and a looked-up value is at most the largest value.
size_bounds bounds_of(const ebpf::loaded_object& object) {
    size_bounds bounds{SIZE_MAX, SIZE_MAX, 0};
    for (const auto& map : object.maps()) {
        if (map->key_size() != 0) {
            bounds.smallest_key = std::min<std::size_t>(bounds.smallest_key, map->key_size());
        }
        bounds.smallest_value = std::min<std::size_t>(bounds.smallest_value, map->value_size());
        bounds.largest_value = std::max<std::size_t>(bounds.largest_value, map->value_size());
    }
    if (bounds.smallest_key == SIZE_MAX) {
        bounds.smallest_key = 1;
    }
    if (bounds.smallest_value == SIZE_MAX) {
        bounds.smallest_value = 1;
    }
    return bounds;
}

class dpdk_bench_variant final : public cli::bench_variant {
public:
    explicit dpdk_bench_variant(cli::bench_target target) : _target(std::move(target)), _pool(1) {
        _frame = _pool.acquire();
    }
    dpdk_bench_variant(const dpdk_bench_variant&) = delete;
    dpdk_bench_variant& operator=(const dpdk_bench_variant&) = delete;
    ~dpdk_bench_variant() override { dpdk_program_destroy(_program); }

    expected<void> reset() override {
        dpdk_program_destroy(_program);
        _program = nullptr;
        _function = nullptr;
        auto loaded = cli::load_bench_object(_target);
        if (!loaded) {
            return loaded.error();
        }
        _object = std::move(*loaded);
        std::vector<ebpf::instruction> code = _object->program->code;
        if (auto rewritten = rewrite_context(code, *_object->program); !rewritten) {
            return rewritten;
        }
        std::vector<dpdk_helper> helpers;
        std::map<std::uint32_t, std::uint32_t> slot_of; // kernel helper id -> index in `helpers`
        const size_bounds bounds = bounds_of(_object->object);
        for (std::size_t i = 0; i < code.size(); ++i) {
            ebpf::instruction& insn = code[i];
            if (insn.opcode != (ebpf::op::cls_jmp | ebpf::op::jmp_call)) {
                continue;
            }
            if (insn.src == 1) {
                return error{fmt::format("skipped DPDK: instruction {} is a BPF-to-BPF call, which DPDK's librte_bpf "
                                         "does not support",
                                         i)};
            }
            const auto id = static_cast<std::uint32_t>(insn.imm);
            if (insn.src != 0 || id == helper_tail_call) {
                return error{fmt::format("skipped DPDK: instruction {} calls {}, which DPDK's librte_bpf does not "
                                         "support",
                                         i, insn.src != 0 ? "a kfunc" : "bpf_tail_call")};
            }
            if (!slot_of.contains(id)) {
                dpdk_helper helper{};
                switch (id) {
                case helper_map_lookup:
                    helper = {"bpf_map_lookup_elem", map_lookup, 2, {0, bounds.smallest_key}, bounds.largest_value};
                    break;
                case helper_map_update:
                    helper = {"bpf_map_update_elem", map_update, 4, {0, bounds.smallest_key, bounds.smallest_value}, 0};
                    break;
                case helper_map_delete:
                    helper = {"bpf_map_delete_elem", map_delete, 2, {0, bounds.smallest_key}, 0};
                    break;
                case helper_ktime_get_ns:
                    helper = {"bpf_ktime_get_ns", ktime_get_ns, 0, {}, 0};
                    break;
                default:
                    return error{fmt::format("skipped DPDK: instruction {} calls {}, for which this bench has no DPDK "
                                             "external function",
                                             i, ebpf::kernel_helper_name(id))};
                }
                slot_of[id] = static_cast<std::uint32_t>(helpers.size());
                helpers.push_back(helper);
            }
            insn.imm = static_cast<std::int32_t>(slot_of[id]);
        }
        // Global data: lddw of a map value (pseudo source 6 before lowering) becomes a DPDK variable of the bytes
        // from that address to the end of the value.
        std::vector<dpdk_variable> variables;
        const std::vector<ebpf::instruction>& relocated = _object->program->relocated;
        for (std::size_t i = 0; i + 1 < code.size() && i + 1 < relocated.size(); ++i) {
            if (relocated[i].opcode != ebpf::op::lddw || relocated[i].src != 6) {
                continue;
            }
            const ebpf::map& holder = *_object->object.maps().at(static_cast<std::size_t>(relocated[i].imm));
            const auto offset = static_cast<std::uint32_t>(relocated[i + 1].imm);
            const std::uint64_t address = static_cast<std::uint32_t>(code[i].imm) |
                                          (std::uint64_t{static_cast<std::uint32_t>(code[i + 1].imm)} << 32);
            variables.push_back({"global data", reinterpret_cast<void*>(address), holder.value_size() - offset});
            ++i;
        }
        std::array<char, 2048> why{};
        _program =
            dpdk_program_load(code.data(), static_cast<std::uint32_t>(code.size()), helpers.data(),
                              static_cast<std::uint32_t>(helpers.size()), variables.data(),
                              static_cast<std::uint32_t>(variables.size()), argument_bytes, why.data(), why.size());
        if (_program == nullptr) {
            return error{fmt::format("skipped DPDK: {}", why.data())};
        }
        _function = dpdk_program_jit(_program);
        if (_function == nullptr) {
            return error{"skipped DPDK: rte_bpf_get_jit gave no native code for this program"};
        }
        return {};
    }

    expected<cli::packet_outcome> run_once(std::span<const std::uint8_t> packet) override {
        if (auto loaded = load(packet); !loaded) {
            return loaded.error();
        }
        const std::uint64_t code = _function(_frame->context().data);
        const auto action = xdp::from_return_code(code);
        const auto bytes = _frame->packet();
        return cli::packet_outcome{static_cast<std::uint32_t>(action.value_or(xdp::action::aborted)),
                                   {bytes.begin(), bytes.end()}};
    }

    expected<double> time(std::span<const std::uint8_t> packet, std::uint64_t repeat) override {
        if (auto loaded = load(packet); !loaded) {
            return loaded.error();
        }
        auto* const function = _function;
        void* const context = _frame->context().data;
        const auto start = std::chrono::steady_clock::now();
        for (std::uint64_t i = 0; i < repeat; ++i) {
            const std::uint64_t code = function(context);
            asm volatile("" : : "r"(code) : "memory");
        }
        const auto elapsed = std::chrono::steady_clock::now() - start;
        return std::chrono::duration<double, std::nano>(elapsed).count() / static_cast<double>(repeat);
    }

private:
    expected<void> load(std::span<const std::uint8_t> packet) {
        if (_function == nullptr) {
            return error{"DPDK: variant not reset"};
        }
        if (!_frame->assign(packet)) {
            return error{fmt::format("DPDK: a packet of {} bytes does not fit a frame", packet.size())};
        }
        _frame->set_ingress(1, 0);
        const ebpf::xdp_context& context = _frame->context();
        const dpdk_trailer trailer{context.data_end, context.ingress_ifindex, context.rx_queue_index, 0};
        std::memcpy(context.data + trailer_offset, &trailer, sizeof trailer);
        return {};
    }

    cli::bench_target _target;
    std::unique_ptr<cli::bench_object> _object;
    dpdk_program* _program{};
    std::uint64_t (*_function)(void*){};
    xdp::frame_pool _pool;
    xdp::frame* _frame{};
};

} // namespace

cli::variant_factory dpdk_variant() {
    return {"DPDK", cli::variant_role::dpdk,
            [](const cli::bench_target& target) -> expected<std::unique_ptr<cli::bench_variant>> {
                return std::unique_ptr<cli::bench_variant>(std::make_unique<dpdk_bench_variant>(target));
            }};
}

} // namespace sluice::bench
