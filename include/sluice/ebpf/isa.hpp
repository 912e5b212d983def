// The eBPF instruction set, as RFC 9669 defines it.
//
// An instruction is 8 bytes, little-endian: {u8 opcode; u8 dst:4 (low nibble), src:4 (high); s16 offset; s32 imm}.
// The 64-bit immediate load (`lddw`) takes two slots; the second carries the upper 32 bits in its imm and has every
// other field zero. Names follow the RFC; numbers agree with /usr/include/linux/bpf.h (checked in tests).
#pragma once

#include <cstdint>

namespace sluice::ebpf {

/// One 8-byte instruction slot exactly as it is stored in an object file.
struct instruction {
    std::uint8_t opcode{};
    std::uint8_t dst : 4 {}; ///< destination register
    std::uint8_t src : 4 {}; ///< source register, or pseudo source of lddw/call
    std::int16_t offset{};
    std::int32_t imm{};

    constexpr bool operator==(const instruction&) const = default;
};
static_assert(sizeof(instruction) == 8);

/// An instruction from its fields; registers are masked to their 4-bit fields.
constexpr instruction make_instruction(std::uint8_t opcode, std::uint8_t dst = 0, std::uint8_t src = 0,
                                       std::int16_t offset = 0, std::int32_t imm = 0) {
    instruction insn{};
    insn.opcode = opcode;
    insn.dst = dst & 0x0f;
    insn.src = src & 0x0f;
    insn.offset = offset;
    insn.imm = imm;
    return insn;
}

inline constexpr int register_count = 11;      ///< r0..r10
inline constexpr int frame_pointer = 10;       ///< r10: read-only
inline constexpr int stack_size = 512;         ///< bytes per function frame
inline constexpr int max_call_depth = 8;       ///< frames, as the kernel's MAX_CALL_FRAMES
inline constexpr int max_tail_calls = 33;      ///< as the kernel's MAX_TAIL_CALL_CNT

namespace op {

// Instruction classes (low 3 bits).
inline constexpr std::uint8_t cls_ld = 0x00;
inline constexpr std::uint8_t cls_ldx = 0x01;
inline constexpr std::uint8_t cls_st = 0x02;
inline constexpr std::uint8_t cls_stx = 0x03;
inline constexpr std::uint8_t cls_alu = 0x04;   // 32-bit arithmetic
inline constexpr std::uint8_t cls_jmp = 0x05;
inline constexpr std::uint8_t cls_jmp32 = 0x06;
inline constexpr std::uint8_t cls_alu64 = 0x07;

// Source operand (bit 3) for arithmetic and jumps.
inline constexpr std::uint8_t src_k = 0x00; // immediate
inline constexpr std::uint8_t src_x = 0x08; // register

// Arithmetic operations (high 4 bits).
inline constexpr std::uint8_t alu_add = 0x00;  // dst += src
inline constexpr std::uint8_t alu_sub = 0x10;  // dst -= src
inline constexpr std::uint8_t alu_mul = 0x20;  // dst *= src
inline constexpr std::uint8_t alu_div = 0x30;  // dst = src ? dst / src : 0  (offset 1: signed)
inline constexpr std::uint8_t alu_or = 0x40;   // dst |= src
inline constexpr std::uint8_t alu_and = 0x50;  // dst &= src
inline constexpr std::uint8_t alu_lsh = 0x60;  // dst <<= (src & mask)
inline constexpr std::uint8_t alu_rsh = 0x70;  // dst >>= (src & mask), zero fill
inline constexpr std::uint8_t alu_neg = 0x80;  // dst = -dst
inline constexpr std::uint8_t alu_mod = 0x90;  // dst = src ? dst % src : dst  (offset 1: signed)
inline constexpr std::uint8_t alu_xor = 0xa0;  // dst ^= src
inline constexpr std::uint8_t alu_mov = 0xb0;  // dst = src  (offset 8/16/32: sign-extend src)
inline constexpr std::uint8_t alu_arsh = 0xc0; // dst >>= (src & mask), sign fill
inline constexpr std::uint8_t alu_end = 0xd0;  // byte swap: le/be in ALU (src bit), bswap in ALU64

// Jump operations (high 4 bits).
inline constexpr std::uint8_t jmp_ja = 0x00;   // PC += offset (JMP32: PC += imm)
inline constexpr std::uint8_t jmp_jeq = 0x10;  // PC += offset if dst == src
inline constexpr std::uint8_t jmp_jgt = 0x20;  // unsigned >
inline constexpr std::uint8_t jmp_jge = 0x30;  // unsigned >=
inline constexpr std::uint8_t jmp_jset = 0x40; // dst & src
inline constexpr std::uint8_t jmp_jne = 0x50;  // !=
inline constexpr std::uint8_t jmp_jsgt = 0x60; // signed >
inline constexpr std::uint8_t jmp_jsge = 0x70; // signed >=
inline constexpr std::uint8_t jmp_call = 0x80; // helper (src 0), local function (src 1), kfunc (src 2)
inline constexpr std::uint8_t jmp_exit = 0x90; // return r0
inline constexpr std::uint8_t jmp_jlt = 0xa0;  // unsigned <
inline constexpr std::uint8_t jmp_jle = 0xb0;  // unsigned <=
inline constexpr std::uint8_t jmp_jslt = 0xc0; // signed <
inline constexpr std::uint8_t jmp_jsle = 0xd0; // signed <=
inline constexpr std::uint8_t jmp_jcond = 0xe0; // JMP only, K only; src selects the condition (0: may_goto)

// Load and store sizes (bits 3-4) and modes (bits 5-7).
inline constexpr std::uint8_t size_w = 0x00;  // 4 bytes
inline constexpr std::uint8_t size_h = 0x08;  // 2 bytes
inline constexpr std::uint8_t size_b = 0x10;  // 1 byte
inline constexpr std::uint8_t size_dw = 0x18; // 8 bytes
inline constexpr std::uint8_t mode_imm = 0x00;
inline constexpr std::uint8_t mode_abs = 0x20; // legacy packet access, not in XDP
inline constexpr std::uint8_t mode_ind = 0x40; // legacy packet access, not in XDP
inline constexpr std::uint8_t mode_mem = 0x60;
inline constexpr std::uint8_t mode_memsx = 0x80; // sign-extending load
inline constexpr std::uint8_t mode_atomic = 0xc0;

// Atomic operations (in imm).
inline constexpr std::int32_t atomic_fetch = 0x01;
inline constexpr std::int32_t atomic_add = 0x00;
inline constexpr std::int32_t atomic_or = 0x40;
inline constexpr std::int32_t atomic_and = 0x50;
inline constexpr std::int32_t atomic_xor = 0xa0;
inline constexpr std::int32_t atomic_xchg = 0xe0 | atomic_fetch;
inline constexpr std::int32_t atomic_cmpxchg = 0xf0 | atomic_fetch;

// Pseudo sources of the 64-bit immediate load (src field).
inline constexpr std::uint8_t pseudo_imm64 = 0;        // imm64 as is
inline constexpr std::uint8_t pseudo_map_fd = 1;       // map by fd
inline constexpr std::uint8_t pseudo_map_value = 2;    // address of map value + next imm
inline constexpr std::uint8_t pseudo_btf_id = 3;       // kernel variable by BTF id
inline constexpr std::uint8_t pseudo_func = 4;         // address of a local function
inline constexpr std::uint8_t pseudo_map_idx = 5;      // map by index
inline constexpr std::uint8_t pseudo_map_idx_value = 6;

// Call sources (src field of call).
inline constexpr std::uint8_t call_helper = 0;
inline constexpr std::uint8_t call_local = 1;
inline constexpr std::uint8_t call_kfunc = 2;

// Whole opcodes used by name.
inline constexpr std::uint8_t lddw = cls_ld | size_dw | mode_imm;   // 0x18
inline constexpr std::uint8_t call = cls_jmp | jmp_call;            // 0x85
inline constexpr std::uint8_t callx = cls_jmp | jmp_call | src_x;   // 0x8d
inline constexpr std::uint8_t exit = cls_jmp | jmp_exit;            // 0x95
inline constexpr std::uint8_t ja = cls_jmp | jmp_ja;                // 0x05
inline constexpr std::uint8_t ja32 = cls_jmp32 | jmp_ja;            // 0x06, "gotol"
inline constexpr std::uint8_t may_goto = cls_jmp | jmp_jcond;       // 0xe5, src 0: see interpreter.hpp

constexpr std::uint8_t cls(std::uint8_t opcode) { return opcode & 0x07; }
constexpr std::uint8_t alu_op(std::uint8_t opcode) { return opcode & 0xf0; }
constexpr std::uint8_t source(std::uint8_t opcode) { return opcode & 0x08; }
constexpr std::uint8_t size(std::uint8_t opcode) { return opcode & 0x18; }
constexpr std::uint8_t mode(std::uint8_t opcode) { return opcode & 0xe0; }
constexpr bool is_alu(std::uint8_t opcode) { return cls(opcode) == cls_alu || cls(opcode) == cls_alu64; }
constexpr bool is_jump(std::uint8_t opcode) { return cls(opcode) == cls_jmp || cls(opcode) == cls_jmp32; }
constexpr bool is_load_store(std::uint8_t opcode) { return cls(opcode) <= cls_stx; }

/// Bytes accessed by a load or store of this opcode.
constexpr int access_bytes(std::uint8_t opcode) {
    switch (size(opcode)) {
    case size_b: return 1;
    case size_h: return 2;
    case size_w: return 4;
    default: return 8;
    }
}

} // namespace op
} // namespace sluice::ebpf
