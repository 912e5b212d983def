// Programs for the end-to-end tests between network namespaces (tests/netns/e2e_test.cpp): one per action, so that
// each test sees exactly one outcome. XDP_TX uses examples/reflector.c.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Entry 0: the ifindex of the port frames are forwarded to (filled by the test with --map).
struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} forward_ports SEC(".maps");

SEC("xdp")
int drop_all(struct xdp_md* ctx) {
    return XDP_DROP;
}

SEC("xdp")
int pass_all(struct xdp_md* ctx) {
    return XDP_PASS;
}

// To the port in entry 0; XDP_ABORTED (counted as an exception) when the entry is missing, so a test with a wrong
// map cannot pass by accident.
SEC("xdp")
int forward(struct xdp_md* ctx) {
    return bpf_redirect_map(&forward_ports, 0, XDP_ABORTED);
}

char LICENSE[] SEC("license") = "GPL";
