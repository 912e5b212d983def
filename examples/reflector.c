// A reflector: sends every Ethernet frame back out of the port it came in on, source and destination MAC addresses
// swapped (XDP_TX). For UDP over IPv4 it also swaps addresses and ports, so the sender gets an echo it can match;
// the swap keeps the IPv4 and UDP checksums valid because both are sums over the same 16-bit words.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

static __always_inline void swap_mac(struct ethhdr* eth) {
    __u8 saved[ETH_ALEN];
    __builtin_memcpy(saved, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, saved, ETH_ALEN);
}

SEC("xdp")
int reflector(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) {
        return XDP_DROP;
    }
    swap_mac(eth);
    if (eth->h_proto != bpf_htons(ETH_P_IP)) {
        return XDP_TX;
    }
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP) {
        return XDP_TX;
    }
    struct udphdr* udp = (void*)(ip + 1);
    if ((void*)(udp + 1) > data_end) {
        return XDP_TX;
    }
    __be32 address = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = address;
    __be16 port = udp->source;
    udp->source = udp->dest;
    udp->dest = port;
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
