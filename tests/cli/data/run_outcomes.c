// Programs for `sluice run`'s outcome tests: every way a packet can end, and bpf_printk.
//
// outcomes: by the last byte of the destination MAC address:
//   1 -> bpf_redirect(5, 0) (XDP_REDIRECT with a target), 2 -> XDP_REDIRECT with none, 3 -> return code 42 (unknown),
//   4 -> a write far past a map value (a checked-mode fault), 5 -> XDP_ABORTED; anything else XDP_PASS.
// printk_pass: prints each packet's length, then passes it.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} scratch SEC(".maps");

SEC("xdp")
int outcomes(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) {
        return XDP_DROP;
    }
    switch (eth->h_dest[5]) {
    case 1: return bpf_redirect(5, 0);
    case 2: return XDP_REDIRECT;
    case 3: return 42;
    case 4: {
        __u32 key = 0;
        volatile __u64* value = bpf_map_lookup_elem(&scratch, &key);
        if (value) {
            value[100000] = 1; // the kernel's verifier would refuse this; sluice's checked mode stops it at run time
        }
        return XDP_PASS;
    }
    case 5: return XDP_ABORTED;
    default: return XDP_PASS;
    }
}

SEC("xdp")
int printk_pass(struct xdp_md* ctx) {
    bpf_printk("packet of %d bytes", (int)(ctx->data_end - ctx->data));
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
