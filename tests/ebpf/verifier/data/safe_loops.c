// Loops the verifier must accept: a bounded loop over packet bytes, bpf_loop with a callback writing its context,
// and a BPF-to-BPF call that fills its caller's stack.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} sums SEC(".maps");

struct loop_state {
    __u64 total;
    __u32 step;
};

static long add_step(__u32 index, void *context) {
    struct loop_state *state = context;
    state->total += index * state->step;
    return state->total > 1000 ? 1 : 0;
}

static __attribute__((noinline)) int first_bytes(struct xdp_md *ctx, __u8 *out) {
    __u8 *data = (void *)(long)ctx->data;
    __u8 *end = (void *)(long)ctx->data_end;
    if (data + 8 > end)
        return -1;
#pragma clang loop unroll(disable)
    for (int i = 0; i < 8; i++)
        out[i] = data[i];
    return 0;
}

SEC("xdp")
int loops(struct xdp_md *ctx) {
    __u8 bytes[8] = {};
    if (first_bytes(ctx, bytes) < 0)
        return XDP_PASS;
    __u64 sum = 0;
#pragma clang loop unroll(disable)
    for (int i = 0; i < 8; i++)
        sum += bytes[i];
    struct loop_state state = {.total = sum, .step = bytes[0] | 1};
    bpf_loop(16, add_step, &state, 0);
    __u32 key = 0;
    __u64 *slot = bpf_map_lookup_elem(&sums, &key);
    if (slot)
        *slot += state.total;
    return sum & 1 ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
