// Verification time, sluice's verifier beside the kernel's, on the same programs (issue 4). Not a test: it measures.
//
// Programs:
//  - the largest example (the program of build/examples/*.o with the most instructions), loaded by sluice's loader
//    for sluice and by libbpf for the kernel;
//  - a generated program of ~4,096 instructions (tests/support/program_generator.hpp, a safe program: packet
//    accesses after bounds checks, map lookups and updates, helpers, nested branches), with its maps created in the
//    kernel through bpf_map_create;
//  - a branchy program of exactly 4,096 instructions built here: a 64-byte bounds check, then blocks that each read
//    packet bytes and branch on them (if, if/else, JMP and JMP32, signed and unsigned), joining again, so that both
//    verifiers meet ~1,000 branches and must prune states to stay linear.
// Google Benchmark times sluice's verify() (BM_sluice_verify) and reports the kernel's own figure
// (BM_kernel_verify, manual time): the "verification time" the kernel prints at log level BPF_LOG_STATS, which
// excludes the JIT and the program's allocation; the whole BPF_PROG_LOAD is a counter beside it. The kernel half needs
// root; without it those benchmarks say why and are skipped. After the benchmarks, a table gives both medians over
// the same number of runs, the instructions each verifier processed, and the ratio sluice / kernel.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ebpf/verifier_kernel/kernel_verifier.hpp"
#include "sluice/ebpf/isa.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/verifier.hpp"
#include "sluice/ebpf/xdp_context.hpp"
#include "support/program_generator.hpp"

namespace {

using sluice::ebpf::instruction;
using sluice::ebpf::make_instruction;
namespace op = sluice::ebpf::op;

constexpr std::size_t branchy_size = 4096;

/// One program to verify, in both worlds.
struct subject {
    std::string label;
    std::size_t instructions{};
    // sluice: the verifier's input and what it points into
    std::unique_ptr<sluice::ebpf::loaded_object> object;
    std::vector<instruction> code; ///< for the branchy program (the example's code lives in `object`)
    std::vector<sluice::ebpf::map_definition> definitions;
    sluice::ebpf::verifier_input input;
    // the kernel
    std::optional<sluice::testing::kernel_loaded_object> kernel_object; ///< the example, relocated by libbpf
    std::string kernel_program;
    std::vector<bpf_insn> kernel_code; ///< a program built here, in the kernel's form (map fds in place)
    std::vector<int> kernel_maps;      ///< its maps, created in the kernel
    std::string kernel_unavailable;    ///< why the kernel cannot be asked, or empty
    std::optional<sluice::testing::instantiated_program> generated; ///< a generated program's maps and code

    subject() = default;
    subject(const subject&) = delete;
    subject& operator=(const subject&) = delete;
    ~subject() {
        for (const int fd : kernel_maps) {
            ::close(fd);
        }
    }
};

std::vector<bpf_insn> raw_instructions(std::span<const instruction> code) {
    std::vector<bpf_insn> raw(code.size());
    static_assert(sizeof(bpf_insn) == sizeof(instruction));
    std::memcpy(raw.data(), code.data(), code.size() * sizeof(instruction));
    return raw;
}

std::uint8_t register_number(int value) {
    return static_cast<std::uint8_t>(value);
}

/// The branchy program in the kernel's form (ctx->data and ctx->data_end as 32-bit loads from struct xdp_md) and in
/// sluice's (the same loads as the loader's context rewrite turns them: 64-bit loads from xdp_context). Only the two
/// context loads differ.
std::pair<std::vector<instruction>, std::vector<instruction>> branchy_program() {
    std::vector<instruction> code;
    const auto add = [&](std::uint8_t opcode, int dst, int src, int offset, std::int32_t imm) {
        code.push_back(make_instruction(opcode, register_number(dst), register_number(src),
                                        static_cast<std::int16_t>(offset), imm));
    };
    const std::uint8_t ldxw = op::cls_ldx | op::mode_mem | op::size_w;
    add(ldxw, 2, 1, 0, 0);                                     // r2 = ctx->data
    add(ldxw, 3, 1, 4, 0);                                     // r3 = ctx->data_end
    add(op::cls_alu64 | op::alu_mov | op::src_x, 4, 2, 0, 0);  // r4 = r2
    add(op::cls_alu64 | op::alu_add | op::src_k, 4, 0, 0, 64); // r4 += 64
    const std::size_t bounds_check = code.size();
    add(op::cls_jmp | op::jmp_jgt | op::src_x, 4, 3, 0, 0);   // if r4 > r3 goto drop (patched below)
    add(op::cls_alu64 | op::alu_mov | op::src_k, 0, 0, 0, 0); // r0 = 0
    constexpr std::size_t tail = 4;                           // r0 &= 3; exit; drop: r0 = 1; exit
    std::uint32_t state = 0x2545f491;                         // xorshift: the same program on every run
    const auto next = [&] {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        return state;
    };
    for (int block = 0; code.size() + 6 <= branchy_size - tail; ++block) {
        const auto offset = static_cast<int>(next() % 60);
        const auto constant = static_cast<std::int32_t>(next() % 256);
        switch (block % 3) {
        case 0: // if (byte > K) skip two updates
            add(op::cls_ldx | op::mode_mem | op::size_b, 5, 2, offset, 0);
            add(op::cls_jmp | op::jmp_jgt | op::src_k, 5, 0, 2, constant);
            add(op::cls_alu64 | op::alu_add | op::src_x, 0, 5, 0, 0);
            add(op::cls_alu64 | op::alu_xor | op::src_k, 0, 0, 0, constant);
            break;
        case 1: // r6 = (u16 == K) ? 2 : 1, in JMP32
            add(op::cls_ldx | op::mode_mem | op::size_h, 5, 2, offset, 0);
            add(op::cls_jmp32 | op::jmp_jeq | op::src_k, 5, 0, 2, constant);
            add(op::cls_alu64 | op::alu_mov | op::src_k, 6, 0, 0, 1);
            add(op::ja, 0, 0, 1, 0);
            add(op::cls_alu64 | op::alu_mov | op::src_k, 6, 0, 0, 2);
            add(op::cls_alu64 | op::alu_add | op::src_x, 0, 6, 0, 0);
            break;
        default: // if ((s32) word < K) skip a shift and a subtraction
            add(op::cls_ldx | op::mode_mem | op::size_w, 7, 2, offset, 0);
            add(op::cls_jmp | op::jmp_jslt | op::src_k, 7, 0, 2, constant);
            add(op::cls_alu64 | op::alu_rsh | op::src_k, 7, 0, 0, 3);
            add(op::cls_alu64 | op::alu_sub | op::src_x, 0, 7, 0, 0);
            add(op::cls_alu64 | op::alu_add | op::src_k, 0, 0, 0, 1);
            break;
        }
    }
    while (code.size() < branchy_size - tail) {
        add(op::cls_alu64 | op::alu_add | op::src_k, 0, 0, 0, 1);
    }
    add(op::cls_alu64 | op::alu_and | op::src_k, 0, 0, 0, 3); // an XDP action
    add(op::exit, 0, 0, 0, 0);
    code[bounds_check].offset = static_cast<std::int16_t>(code.size() - bounds_check - 1);
    add(op::cls_alu64 | op::alu_mov | op::src_k, 0, 0, 0, 1); // drop: XDP_DROP
    add(op::exit, 0, 0, 0, 0);

    std::vector<instruction> sluice_form = code;
    const std::uint8_t ldxdw = op::cls_ldx | op::mode_mem | op::size_dw;
    sluice_form[0] = make_instruction(ldxdw, 2, 1, sluice::ebpf::xdp_context_data_offset);
    sluice_form[1] = make_instruction(ldxdw, 3, 1, sluice::ebpf::xdp_context_data_end_offset);
    return {code, sluice_form};
}

std::vector<std::unique_ptr<subject>>& subjects() {
    static std::vector<std::unique_ptr<subject>> all;
    return all;
}

/// Prepares both subjects; a failure is printed and leaves that subject out.
void prepare_subjects() {
    const std::string unavailable = sluice::testing::kernel_bpf_unavailable();

    // The largest example, by instructions of one program.
    auto largest = std::make_unique<subject>();
    largest->kernel_unavailable = unavailable;
    const sluice::ebpf::loaded_program* chosen = nullptr;
    std::string chosen_path;
    for (const auto& entry : std::filesystem::directory_iterator(SLUICE_EXAMPLES_DIR)) {
        if (entry.path().extension() != ".o") {
            continue;
        }
        auto spec = sluice::ebpf::object_spec::open_file(entry.path().string());
        auto object = spec ? spec->load() : sluice::expected<sluice::ebpf::loaded_object>(spec.error());
        if (!object) {
            std::fprintf(stderr, "verifier_bench: %s: %s\n", entry.path().c_str(), object.error().message.c_str());
            continue;
        }
        auto loaded = std::make_unique<sluice::ebpf::loaded_object>(std::move(*object));
        const sluice::ebpf::loaded_program* biggest = nullptr;
        for (const auto& program : loaded->programs()) {
            if (biggest == nullptr || program->relocated.size() > biggest->relocated.size()) {
                biggest = program.get();
            }
        }
        if (biggest != nullptr && (chosen == nullptr || biggest->relocated.size() > chosen->relocated.size())) {
            chosen = biggest; // lives in *loaded, which the subject keeps
            chosen_path = entry.path().string();
            largest->object = std::move(loaded);
        }
    }
    if (chosen != nullptr) {
        largest->label = std::filesystem::path(chosen_path).stem().string() + "/" + chosen->name;
        largest->instructions = chosen->relocated.size();
        largest->input = sluice::ebpf::verifier_input::of(*chosen, *largest->object, largest->definitions);
        largest->kernel_program = chosen->name;
        if (unavailable.empty()) {
            std::string error;
            largest->kernel_object = sluice::testing::kernel_loaded_object::open(chosen_path, error);
            if (!largest->kernel_object) {
                largest->kernel_unavailable = error;
            }
        }
        subjects().push_back(std::move(largest));
    }

    // A generated program: the first seed whose program reaches 4,000 instructions.
    auto generated = std::make_unique<subject>();
    generated->kernel_unavailable = unavailable;
    sluice::testing::generator_options options;
    options.max_instructions = branchy_size;
    for (std::uint64_t seed = 1; seed <= 64; ++seed) {
        sluice::testing::generated_program program = sluice::testing::generate_program(seed, options);
        if (program.code.size() < 4000) {
            continue;
        }
        auto instantiated = sluice::testing::instantiate(program);
        if (!instantiated) {
            std::fprintf(stderr, "verifier_bench: generated seed %llu: %s\n", static_cast<unsigned long long>(seed),
                         instantiated.error().message.c_str());
            break;
        }
        generated->label = "generated_4096/seed_" + std::to_string(seed);
        generated->instructions = program.code.size();
        generated->definitions = program.maps;
        generated->generated.emplace(std::move(*instantiated));
        generated->input.code = generated->generated->relocated;
        generated->input.maps = generated->definitions;
        generated->kernel_program = "generated";
        if (unavailable.empty()) {
            for (const sluice::ebpf::map_definition& map : program.maps) {
                LIBBPF_OPTS(bpf_map_create_opts, map_options, .map_flags = map.map_flags);
                const int fd = bpf_map_create(static_cast<bpf_map_type>(map.type), map.name.c_str(), map.key_size,
                                              map.value_size, map.max_entries, &map_options);
                if (fd < 0) {
                    generated->kernel_unavailable = "bpf_map_create " + map.name + ": " + std::strerror(errno);
                    break;
                }
                generated->kernel_maps.push_back(fd);
            }
            generated->kernel_code =
                raw_instructions(sluice::testing::kernel_form(program.code, generated->kernel_maps));
        }
        subjects().push_back(std::move(generated));
        break;
    }

    auto branchy = std::make_unique<subject>();
    branchy->label = "branchy_4096";
    branchy->kernel_unavailable = unavailable;
    auto [kernel_form, sluice_form] = branchy_program();
    branchy->code = std::move(sluice_form);
    branchy->instructions = branchy->code.size();
    branchy->input.code = branchy->code;
    branchy->kernel_program = "branchy_4096";
    branchy->kernel_code = raw_instructions(kernel_form);
    subjects().push_back(std::move(branchy));
}

std::optional<sluice::testing::kernel_verification_stats> kernel_stats(const subject& target, std::string& error) {
    if (target.kernel_object) {
        return target.kernel_object->stats_of(target.kernel_program, error);
    }
    return sluice::testing::kernel_verification_stats_of(target.kernel_code.data(), target.kernel_code.size(),
                                                         target.kernel_program.substr(0, 15), error);
}

void sluice_verify(benchmark::State& state, const subject* target) {
    std::uint64_t processed = 0;
    for (auto _ : state) {
        auto result = sluice::ebpf::verify(target->input);
        if (!result) {
            state.SkipWithError(("sluice rejects it: " + result.error().message).c_str());
            return;
        }
        processed = result->instructions_processed;
        benchmark::DoNotOptimize(result);
    }
    state.counters["instructions"] = static_cast<double>(target->instructions);
    state.counters["processed"] = static_cast<double>(processed);
}

void kernel_verify(benchmark::State& state, const subject* target) {
    if (!target->kernel_unavailable.empty()) {
        state.SkipWithError(("the kernel cannot be asked: " + target->kernel_unavailable).c_str());
        return;
    }
    std::uint64_t processed = 0;
    double load_microseconds = 0;
    for (auto _ : state) {
        std::string error;
        const auto stats = kernel_stats(*target, error);
        if (!stats) {
            state.SkipWithError(error.c_str());
            return;
        }
        state.SetIterationTime(stats->verification_microseconds / 1e6);
        processed = stats->processed_insns;
        load_microseconds += stats->load_microseconds;
    }
    state.counters["instructions"] = static_cast<double>(target->instructions);
    state.counters["processed"] = static_cast<double>(processed);
    state.counters["prog_load_us"] = benchmark::Counter(load_microseconds, benchmark::Counter::kAvgIterations);
}

double median(std::vector<double> values) {
    std::ranges::sort(values);
    return values.empty() ? 0.0 : values[values.size() / 2];
}

/// The side-by-side table: medians over the same number of runs.
void print_comparison() {
    constexpr int runs = 21;
    std::printf("\n%-34s %6s | %12s %10s | %12s %10s %14s | %9s\n", "program", "insns", "sluice ms", "processed",
                "kernel ms", "processed", "BPF_PROG_LOAD", "sluice/kernel");
    for (const auto& target : subjects()) {
        std::vector<double> ours;
        std::uint64_t our_processed = 0;
        std::string rejection;
        for (int i = 0; i < runs && rejection.empty(); ++i) {
            const auto started = std::chrono::steady_clock::now();
            auto result = sluice::ebpf::verify(target->input);
            ours.push_back(
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
            if (!result) {
                rejection = result.error().message;
            } else {
                our_processed = result->instructions_processed;
            }
        }
        std::vector<double> theirs;
        std::vector<double> loads;
        std::uint64_t their_processed = 0;
        std::string kernel_error = target->kernel_unavailable;
        for (int i = 0; i < runs && kernel_error.empty(); ++i) {
            const auto stats = kernel_stats(*target, kernel_error);
            if (stats) {
                theirs.push_back(stats->verification_microseconds / 1000.0);
                loads.push_back(stats->load_microseconds / 1000.0);
                their_processed = stats->processed_insns;
            }
        }
        const double our_ms = median(ours);
        std::printf("%-34s %6zu | %12.3f %10llu | ", target->label.c_str(), target->instructions, our_ms,
                    static_cast<unsigned long long>(our_processed));
        if (theirs.empty()) {
            std::printf("%12s %10s %14s | %9s\n", "-", "-", "-", "-");
        } else {
            const double their_ms = median(theirs);
            std::printf("%12.3f %10llu %11.3f ms | %9.2f\n", their_ms, static_cast<unsigned long long>(their_processed),
                        median(loads), their_ms > 0 ? our_ms / their_ms : 0.0);
        }
        if (!rejection.empty()) {
            std::printf("  sluice REJECTS it: %s\n", rejection.c_str());
        }
        if (!kernel_error.empty()) {
            std::printf("  kernel: %s\n", kernel_error.substr(0, 2000).c_str());
        }
    }
    std::printf("(medians of %d runs; kernel ms is the verifier's own \"verification time\" at log level 4, "
                "BPF_PROG_LOAD the whole system call)\n",
                runs);
}

} // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    prepare_subjects();
    for (const auto& target : subjects()) {
        benchmark::RegisterBenchmark(("BM_sluice_verify/" + target->label).c_str(), sluice_verify, target.get())
            ->Unit(benchmark::kMillisecond);
        benchmark::RegisterBenchmark(("BM_kernel_verify/" + target->label).c_str(), kernel_verify, target.get())
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    }
    benchmark::RunSpecifiedBenchmarks();
    print_comparison();
    benchmark::Shutdown();
    return 0;
}
