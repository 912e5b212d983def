// libFuzzer target for the verifier: what it accepts must be safe.
//
// Each input becomes a program, in one of two ways chosen by its first byte:
//  - generated (most inputs): tests/support/program_generator.hpp draws a program's every choice from the bytes,
//    sometimes dropping a safety measure (a bounds check, a null check, a stack initialisation), so the verifier sees
//    both programs it must accept and programs it must refuse;
//  - raw: the bytes are taken as instructions in the kernel's form, as a hostile object file would hold them; the
//    encoding check (validate) and the context rewrite come first, as in the loader.
// The program is verified. A program the verifier accepts runs in the interpreter's checked mode on a few packets
// (empty, short, Ethernet-sized, full-sized, random content): every access is bounds-checked against the packet
// buffer, the context, the stack and the map values helpers hand out, and a run is cut after 1,000,000 instructions.
// A checked-mode violation, an instruction-limit hit (unless the program has a may_goto: the runtime bounds its loops,
// for 250 ms) or any other run error in an accepted program means the
// verifier passed something it should not have: the target prints the program's disassembly, the packet and the
// error, and aborts, so libFuzzer keeps the input. Rejections and crashes anywhere in sluice are the other findings
// (the sanitizers and libFuzzer report crashes themselves).
//
// A rejected program the generator built to be safe is the verifier being stricter than the kernel, not unsafe: it is
// counted and printed at exit, and aborts only when SLUICE_FUZZ_STRICT=1 (the kernel comparison test is where
// over-strictness fails a build).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "sluice/ebpf/disassembler.hpp"
#include "sluice/ebpf/helpers.hpp"
#include "sluice/ebpf/interpreter.hpp"
#include "sluice/ebpf/loader.hpp"
#include "sluice/ebpf/program.hpp"
#include "sluice/ebpf/verifier.hpp"
#include "sluice/xdp/frame.hpp"
#include "support/program_generator.hpp"

namespace {

using sluice::ebpf::instruction;

constexpr std::uint64_t run_instruction_limit = 1'000'000; ///< BPF_COMPLEXITY_LIMIT_INSNS: no verified path is longer
constexpr std::uint8_t raw_mode_mask = 0x07;               ///< first byte & 7 == 0: raw instructions (1 input in 8)

/// A program ready to verify and run: the verifier's view and the interpreter's.
struct candidate {
    std::vector<instruction> relocated;             ///< what the verifier judges
    std::vector<instruction> code;                  ///< what the interpreter runs
    std::vector<sluice::ebpf::map_definition> maps; ///< by index, as the lddw imms name them
    std::vector<std::unique_ptr<sluice::ebpf::map>> live_maps;
    std::string description; ///< for the report when something goes wrong
    std::uint64_t seed{};
    bool meant_safe{}; ///< generated without dropping any safety measure: the kernel accepts it
};

/// Safe programs the verifier rejected: how many, and the first message, printed when the fuzzer exits.
struct safe_rejections {
    std::uint64_t count{};
    std::string first;

    ~safe_rejections() {
        if (count != 0) {
            std::fprintf(stderr, "verifier_fuzz: %llu programs generated safe were rejected; the first:\n%s\n",
                         static_cast<unsigned long long>(count), first.c_str());
        }
    }
};
safe_rejections rejected_safe;

void note_safe_rejection(const candidate& program, const std::string& message) {
    if (rejected_safe.count++ == 0) {
        rejected_safe.first = message + "\n" + program.description;
    }
    if (const char* strict = std::getenv("SLUICE_FUZZ_STRICT"); strict != nullptr && std::string(strict) == "1") {
        std::fprintf(stderr, "verifier_fuzz: a program generated safe was rejected:\n%s\n%s\n", message.c_str(),
                     program.description.c_str());
        std::abort();
    }
}

std::string disassembly(std::span<const instruction> code) {
    std::string text;
    for (std::size_t i = 0; i < code.size(); ++i) {
        text += std::to_string(i) + ": " + sluice::ebpf::disassemble(code, i) + "\n";
        if (code[i].opcode == sluice::ebpf::op::lddw) {
            ++i;
        }
    }
    return text;
}

std::uint64_t hash_bytes(std::span<const std::uint8_t> bytes) {
    std::uint64_t hash = 0xcbf29ce484222325ULL; // FNV-1a
    for (const std::uint8_t byte : bytes) {
        hash = (hash ^ byte) * 0x100000001b3ULL;
    }
    return hash;
}

/// The bytes as kernel-form instructions: encoding checked, context reads rewritten as the loader rewrites them.
bool raw_candidate(std::span<const std::uint8_t> bytes, candidate& out) {
    const std::size_t count = bytes.size() / sizeof(instruction);
    if (count == 0) {
        return false;
    }
    std::vector<instruction> code(count);
    std::memcpy(code.data(), bytes.data(), count * sizeof(instruction));
    if (!sluice::ebpf::validate(code)) {
        return false;
    }
    auto rewritten = sluice::ebpf::rewrite_context_accesses(code, sluice::ebpf::xdp_attach::device);
    if (!rewritten) {
        return false;
    }
    out.relocated = *rewritten;
    out.code = *rewritten; // no maps: nothing to lower (a pseudo map load names no map and must be refused)
    out.description = "raw instructions (kernel form):\n" + disassembly(code);
    out.seed = hash_bytes(bytes);
    return true;
}

bool generated_candidate(std::uint8_t mode, std::span<const std::uint8_t> bytes, candidate& out) {
    sluice::testing::generator_options options;
    // Half the programs are meant to be safe, half may not be: the verifier must accept the first kind, and each
    // program of the second kind it accepts is run to see whether it really was safe.
    options.unsafe_probability = (mode & 0x08) != 0 ? 0.0 : 0.05 + 0.05 * ((mode >> 4) & 0x03);
    options.loops = (mode & 0x40) != 0;
    options.may_goto = (mode & 0x04) != 0;
    options.max_instructions = (mode & 0x80) != 0 ? 400 : 120;
    sluice::testing::generated_program program = sluice::testing::generate_program(bytes, options);
    auto instantiated = sluice::testing::instantiate(program);
    if (!instantiated) {
        if (program.unsafe) {
            return false; // the loader's context rewrite refuses some unsafe programs before the verifier sees them
        }
        std::fprintf(stderr, "verifier_fuzz: a safe generated program did not instantiate: %s\n%s",
                     instantiated.error().message.c_str(), sluice::testing::describe(program).c_str());
        std::abort(); // a generator or loader bug: every safe generated program must instantiate
    }
    out.relocated = std::move(instantiated->relocated);
    out.code = std::move(instantiated->code);
    out.maps = program.maps;
    out.live_maps = std::move(instantiated->maps);
    out.description =
        sluice::testing::describe(program) + "\nafter the context rewrite:\n" + disassembly(out.relocated);
    out.seed = program.seed;
    out.meant_safe = !program.unsafe;
    return true;
}

/// Packets of the sizes programs care about: empty, shorter than an Ethernet header, minimal frames, full MTU.
std::vector<std::vector<std::uint8_t>> packets_for(std::uint64_t seed) {
    std::mt19937_64 random(seed);
    std::vector<std::vector<std::uint8_t>> packets;
    for (const std::size_t length : {std::size_t{0}, std::size_t{9}, std::size_t{60}, std::size_t{1514},
                                     static_cast<std::size_t>(random() % 256)}) {
        std::vector<std::uint8_t> packet(length);
        for (std::uint8_t& byte : packet) {
            byte = static_cast<std::uint8_t>(random());
        }
        if (length >= 14) {
            packet[12] = (random() & 1) != 0 ? 0x08 : 0x86; // IPv4 or IPv6 EtherType half the time
            packet[13] = packet[12] == 0x08 ? 0x00 : 0xdd;
        }
        packets.push_back(std::move(packet));
    }
    return packets;
}

[[noreturn]] void verifier_bug(const candidate& program, const sluice::ebpf::verification_result& verdict,
                               const std::vector<std::uint8_t>& packet, const std::string& failure) {
    std::fprintf(stderr,
                 "verifier_fuzz: VERIFIER BUG: an accepted program (%llu instructions processed) failed at run time "
                 "on a packet of %zu bytes:\n  %s\n%s\n",
                 static_cast<unsigned long long>(verdict.instructions_processed), packet.size(), failure.c_str(),
                 program.description.c_str());
    std::abort();
}

void run_accepted(const candidate& program, const sluice::ebpf::verification_result& verdict) {
    const sluice::ebpf::helper_table& helpers = sluice::ebpf::xdp_helper_table();
    auto engine = sluice::ebpf::interpreter::create(
        program.code, helpers,
        sluice::ebpf::interpreter_options{.checked = true, .instruction_limit = run_instruction_limit});
    if (!engine) {
        verifier_bug(program, verdict, {}, "the interpreter refused it: " + engine.error().message);
    }
    static sluice::xdp::frame_pool pool(1);
    // The verifier does not bound loops that may_goto bounds (the runtime does): their runs may meet the limit.
    const bool runtime_bounded = std::any_of(program.code.begin(), program.code.end(), [](const instruction& insn) {
        return insn.opcode == sluice::ebpf::op::may_goto; // an lddw's second half has opcode 0: no false match
    });
    for (const std::vector<std::uint8_t>& packet : packets_for(program.seed)) {
        sluice::xdp::frame* item = nullptr;
        if (pool.acquire_batch({&item, 1}) != 1) {
            std::abort(); // the one frame was not given back: a bug in this target
        }
        if (!item->assign(packet)) {
            std::abort();
        }
        item->set_ingress(1, 0);
        // As the executor's checked mode: the usable buffer (helpers move data within it), the context read-only;
        // map values are granted by the helpers that hand them out.
        engine->clear_regions();
        engine->add_region({reinterpret_cast<std::uintptr_t>(item->hard_start()),
                            static_cast<std::size_t>(item->hard_end() - item->hard_start()), true, "packet"});
        engine->add_region(
            {reinterpret_cast<std::uintptr_t>(&item->context()), sizeof(sluice::ebpf::xdp_context), false, "context"});
        sluice::ebpf::execution_state state(0);
        state.trace_lines_per_second = 0;
        state.trace = [](std::string_view, unsigned, void*) {};
        state.begin_packet(item->context());
        auto result = engine->run({reinterpret_cast<std::uint64_t>(&item->context()), 0, 0, 0, 0}, &state);
        pool.release(item);
        if (!result && runtime_bounded && result.error().message.find("instruction limit") != std::string::npos) {
            continue; // a may_goto loop runs until its 250 ms budget is spent; every access until the cut was checked
        }
        if (!result) {
            verifier_bug(program, verdict, packet, result.error().message);
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    const std::span<const std::uint8_t> rest(data + 1, size - 1);
    candidate program;
    const bool built =
        (mode & raw_mode_mask) == 0 ? raw_candidate(rest, program) : generated_candidate(mode, rest, program);
    if (!built) {
        return 0;
    }
    sluice::ebpf::verifier_input input;
    input.code = program.relocated;
    input.maps = program.maps;
    input.attach = sluice::ebpf::xdp_attach::device;
    auto verdict = sluice::ebpf::verify(input);
    if (!verdict) {
        if (program.meant_safe) {
            note_safe_rejection(program, verdict.error().message);
        }
        return 0;
    }
    run_accepted(program, *verdict);
    return 0;
}
