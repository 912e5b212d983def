// Loader fixture: a map of maps with an inner map definition, which sluice does not support (yet).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, __u32);
    __array(values, struct inner);
} outer SEC(".maps");

SEC("xdp")
int xdp_outer(struct xdp_md* ctx) {
    __u32 key = 0;
    return bpf_map_lookup_elem(&outer, &key) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
