// Common XDP idioms the verifier must accept: a variable-length IPv4 header (ihl), a bounded checksum loop over it,
// bpf_fib_lookup with a zeroed struct on the stack, bpf_csum_diff, bpf_xdp_adjust_head followed by fresh bounds
// checks, MAC rewriting with __builtin_memcpy, and bpf_redirect.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define AF_INET 2

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void count(__u32 verdict) {
    __u64 *slot = bpf_map_lookup_elem(&verdicts, &verdict);
    if (slot)
        *slot += 1;
}

static __always_inline __u16 header_checksum(struct iphdr *iph, void *data_end) {
    __u32 sum = 0;
    __u16 *words = (__u16 *)iph;
#pragma clang loop unroll(disable)
    for (int i = 0; i < 30; i++) {
        if ((void *)(words + i + 1) > data_end || i >= iph->ihl * 2)
            break;
        sum += words[i];
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)~sum;
}

SEC("xdp")
int router(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > data_end)
        return XDP_DROP;
    if (eth->h_proto != bpf_htons(ETH_P_IP))
        return XDP_PASS;
    struct iphdr *iph = (void *)(eth + 1);
    if ((void *)(iph + 1) > data_end)
        return XDP_DROP;
    __u32 header_length = iph->ihl * 4;
    if (header_length < sizeof(*iph))
        return XDP_DROP;
    struct udphdr *udph = (void *)iph + header_length;
    if ((void *)(udph + 1) > data_end)
        return XDP_DROP;
    if (header_checksum(iph, data_end) != 0) {
        count(0);
        return XDP_DROP;
    }
    if (iph->protocol == IPPROTO_UDP && udph->dest == bpf_htons(4789)) {
        // Strip the outer Ethernet header: a decapsulation stand-in.
        if (bpf_xdp_adjust_head(ctx, (int)sizeof(struct ethhdr)))
            return XDP_ABORTED;
        data = (void *)(long)ctx->data;
        data_end = (void *)(long)ctx->data_end;
        if (data + 1 > data_end)
            return XDP_DROP;
        count(1);
        return XDP_PASS;
    }
    struct bpf_fib_lookup params;
    __builtin_memset(&params, 0, sizeof(params));
    params.family = AF_INET;
    params.tos = iph->tos;
    params.l4_protocol = iph->protocol;
    params.tot_len = bpf_ntohs(iph->tot_len);
    params.ipv4_src = iph->saddr;
    params.ipv4_dst = iph->daddr;
    params.ifindex = ctx->ingress_ifindex;
    long result = bpf_fib_lookup(ctx, &params, sizeof(params), 0);
    if (result != BPF_FIB_LKUP_RET_SUCCESS) {
        count(2);
        return XDP_PASS;
    }
    __u32 old_ttl = iph->ttl;
    __u32 new_ttl = old_ttl - 1;
    iph->check = (__u16)bpf_csum_diff(&old_ttl, sizeof(old_ttl), &new_ttl, sizeof(new_ttl), iph->check);
    iph->ttl = (__u8)new_ttl;
    __builtin_memcpy(eth->h_dest, params.dmac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, params.smac, ETH_ALEN);
    count(3);
    return bpf_redirect(params.ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
