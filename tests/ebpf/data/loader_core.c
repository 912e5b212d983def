// A program that reads a field through a CO-RE relocation (__builtin_preserve_access_index), as BPF_CORE_READ does:
// the loader must refuse it clearly rather than run it with the compiler's offsets.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct pair {
    int first;
    int second;
} __attribute__((preserve_access_index));

struct pair configured = {1, 2};

SEC("xdp")
int xdp_core(struct xdp_md* ctx) {
    return configured.second == 2 ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
