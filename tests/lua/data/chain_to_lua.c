// Chaining fixture: an eBPF program hands IPv4 packets to a Lua function through sluice's kfunc, uses its verdict,
// and counts how often it asked in a map the script can read.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// sluice's kfunc: runs the Lua function `fn` (a global of the script attached to the worker) on this packet and
// returns its verdict; XDP_ABORTED when no script is attached or the function fails.
extern int bpf_sluice_lua(struct xdp_md* ctx, const char* fn, int fn_len) __ksym;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 2);
    __type(key, __u32);
    __type(value, __u64);
} chain_calls SEC(".maps");

static const char classify[] = "classify";

SEC("xdp")
int chain_to_lua(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) {
        return XDP_DROP;
    }
    __u32 index = eth->h_proto == bpf_htons(ETH_P_IP) ? 0 : 1;
    __u64* calls = bpf_map_lookup_elem(&chain_calls, &index);
    if (calls) {
        *calls += 1;
    }
    if (index != 0) {
        return XDP_PASS;
    }
    return bpf_sluice_lua(ctx, classify, sizeof(classify) - 1);
}

char LICENSE[] SEC("license") = "GPL";
