// Loops bounded by may_goto (can_loop), run by the kernel and by sluice (tests/oracle/may_goto_test.cpp).
//
// clang 14 does not know the may_goto mnemonic (LLVM 19 added it), so can_loop below is bpf_experimental.h's macro
// with the instruction written as bytes: `may_goto +1` over a `goto` to the loop's continuation. Budget left: the
// may_goto falls through to the goto, can_loop is true; budget spent: it jumps over the goto, can_loop is false.
//
// What each program leaves in `results` (Linux 6.18 on x86-64, the "timed may_goto", see interpreter.hpp):
//  - spend: [0] iterations of a loop bounded only by can_loop (k * 0xffff, k >= 2, about 250 ms: time decides k);
//    [1] iterations of a second such loop in the same frame (0: the frame's budget is spent); [2] a subprogram's
//    loop of at most 1000 iterations after that (1000: each frame has its own budget); [3] four bpf_loop callbacks
//    with the same loop (4000: each invocation is a new frame).
//  - bounded: loops that end on their own condition before the budget does, one of them after up to 255,000
//    iterations (several refreshes, far less than 250 ms); the results depend only on the packet, so they must match
//    the kernel's exactly.
//  - zero: three `may_goto +0` before a loop bounded only by can_loop; [0] its iterations (the kernel removes
//    may_goto +0, so a multiple of 0xffff, not 3 short of one).
//  - tail_spend: [0] a loop bounded only by can_loop, then a tail call to tail_target, whose loop of at most 1000
//    leaves [1] = 1000 (the target starts with a budget of its own) and returns XDP_TX.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define can_loop                                                                                                       \
    ({                                                                                                                 \
        __label__ l_continue, l_out;                                                                                   \
        int ret = 0;                                                                                                   \
        asm volatile goto(".byte 0xe5, 0, 1, 0, 0, 0, 0, 0\n\tgoto %l[l_continue]" :::: l_continue);                \
        goto l_out;                                                                                                    \
    l_continue:                                                                                                        \
        ret = 1;                                                                                                       \
    l_out:;                                                                                                            \
        ret;                                                                                                           \
    })

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} results SEC(".maps");

int tail_target(struct xdp_md* ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __uint(key_size, sizeof(__u32));
    __array(values, int(struct xdp_md*));
} targets SEC(".maps") = {
    .values = {[0] = &tail_target},
};

static __always_inline void record(__u32 slot, __u64 value) {
    bpf_map_update_elem(&results, &slot, &value, BPF_ANY);
}

/// Up to `limit` iterations, fewer if this frame's budget runs out first.
static __noinline __u64 bounded_loop(__u64 limit) {
    __u64 n = 0;
    while (n < limit && can_loop) {
        n++;
    }
    return n;
}

static long callback(__u64 index, void* data) {
    __u64* total = data;
    __u64 n = 0;
    while (n < 1000 && can_loop) {
        n++;
    }
    *total += n;
    return 0;
}

SEC("xdp")
int spend(struct xdp_md* ctx) {
    __u64 n = 0;
    while (can_loop) {
        n++;
    }
    record(0, n);
    __u64 m = 0;
    while (can_loop) {
        m++;
    }
    record(1, m);
    record(2, bounded_loop(1000));
    __u64 total = 0;
    bpf_loop(4, callback, &total, 0);
    record(3, total);
    return XDP_PASS;
}

SEC("xdp")
int bounded(struct xdp_md* ctx) {
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    __u64 sum = 0;
    __u32 i = 0;
    // One iteration per packet byte, at most 64.
    while (i < 64 && can_loop) {
        if (data + i + 1 > data_end) {
            break;
        }
        sum = sum * 31 + data[i];
        i++;
    }
    record(0, sum);
    record(1, i);
    // A count the packet chooses, up to 255 * 1000: beyond 0xffff it crosses a refresh of the budget. The loop reads
    // it from a map value on each test, so the verifier knows nothing of it and need not walk every count (a limit
    // in a register would be narrowed by each test, and no two iterations' states would ever match).
    record(4, data + 1 <= data_end ? (__u64)data[0] * 1000 : 7);
    __u32 key = 4;
    volatile __u64* limit = bpf_map_lookup_elem(&results, &key);
    if (!limit) {
        return XDP_ABORTED;
    }
    __u64 n = 0;
    while (n < *limit && can_loop) {
        n++;
    }
    record(2, n);
    return sum & 1 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int zero(struct xdp_md* ctx) {
    asm volatile(".byte 0xe5, 0, 0, 0, 0, 0, 0, 0\n\t"
                 ".byte 0xe5, 0, 0, 0, 0, 0, 0, 0\n\t"
                 ".byte 0xe5, 0, 0, 0, 0, 0, 0, 0");
    __u64 n = 0;
    while (can_loop) {
        n++;
    }
    record(0, n);
    return XDP_PASS;
}

SEC("xdp")
int tail_spend(struct xdp_md* ctx) {
    __u64 n = 0;
    while (can_loop) {
        n++;
    }
    record(0, n);
    bpf_tail_call(ctx, &targets, 0);
    return XDP_ABORTED;
}

SEC("xdp")
int tail_target(struct xdp_md* ctx) {
    __u64 n = 0;
    while (n < 1000 && can_loop) {
        n++;
    }
    record(1, n);
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
