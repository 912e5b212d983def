// Uses a map value without checking the lookup's result against NULL: the verifier must refuse it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} packets SEC(".maps");

SEC("xdp")
int map_value(struct xdp_md *ctx) {
    __u32 key = ctx->rx_queue_index & 3;
    __u64 *count = bpf_map_lookup_elem(&packets, &key);
    *count += 1;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
