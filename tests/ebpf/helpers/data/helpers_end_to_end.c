// Helper fixture, run by sluice and by the kernel on the same packet: bpf_loop with an early stop, map updates,
// bpf_for_each_map_elem over an array, bpf_xdp_adjust_head, direct packet writes, and a tail call through a prog
// array that the object fills itself (`.values`).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

static int sum_step(__u32 index, void* context) {
    __u64* total = context;
    *total += index;
    return index == 9; // stop after 0..9
}

static long add_value(void* map, __u32* key, __u64* value, void* context) {
    __u64* total = context;
    *total += *value + *key;
    return 0;
}

SEC("xdp")
int xdp_last(struct xdp_md* ctx) {
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 16 > data_end) {
        return XDP_ABORTED;
    }
    data[15] = 0xee;
    return XDP_TX;
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, int(void*));
} jumps SEC(".maps") = {
    .values = {[1] = (void*)&xdp_last},
};

SEC("xdp")
int xdp_helpers(struct xdp_md* ctx) {
    __u64 total = 0;
    long loops = bpf_loop(100, sum_step, &total, 0);
    __u32 key = 0;
    __u64 value = total;
    bpf_map_update_elem(&counters, &key, &value, BPF_ANY);
    key = 1;
    value = (__u64)loops;
    bpf_map_update_elem(&counters, &key, &value, BPF_ANY);
    __u64 sum = 0;
    long visited = bpf_for_each_map_elem(&counters, add_value, &sum, 0);
    if (bpf_xdp_adjust_head(ctx, -8)) {
        return XDP_ABORTED;
    }
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 16 > data_end) {
        return XDP_ABORTED;
    }
    __u64 report = sum + (__u64)visited * 1000;
    __builtin_memcpy(data, &report, sizeof report);
    bpf_tail_call(ctx, &jumps, 1);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
