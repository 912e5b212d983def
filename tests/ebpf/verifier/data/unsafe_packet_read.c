// Reads the EtherType without checking that the Ethernet header lies before data_end: the verifier must refuse it,
// naming this file's line.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int packet_read(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data;
    struct ethhdr *eth = data;
    if (eth->h_proto == __builtin_bswap16(ETH_P_IP))
        return XDP_DROP;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
