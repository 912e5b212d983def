// A tail-call chain: a dispatcher parses Ethernet and jumps, through a prog array filled at load time from the
// object's own initial values (libbpf's `.values = { [i] = &prog }`), to a program per network protocol. The IPv4
// stage drops ICMP and jumps on to a final accounting stage; a missing stage falls through and passes the packet.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum stage {
    stage_ipv4,
    stage_ipv6,
    stage_account,
    stage_count,
};

// Packets that reached the accounting stage (the end of the chain), in .bss.
__u64 accounted_packets = 0;

int ipv4_stage(struct xdp_md* ctx);
int ipv6_stage(struct xdp_md* ctx);
int account_stage(struct xdp_md* ctx);

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, stage_count);
    __uint(key_size, sizeof(__u32)); // prog arrays carry no key/value BTF types, as in libbpf's selftests
    __array(values, int(struct xdp_md*));
} stages SEC(".maps") = {
    .values =
        {
            [stage_ipv4] = &ipv4_stage,
            [stage_ipv6] = &ipv6_stage,
            [stage_account] = &account_stage,
        },
};

SEC("xdp")
int dispatcher(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) {
        return XDP_DROP;
    }
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        bpf_tail_call(ctx, &stages, stage_ipv4);
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        bpf_tail_call(ctx, &stages, stage_ipv6);
    }
    return XDP_PASS; // no stage for this protocol, or the tail call failed
}

SEC("xdp")
int ipv4_stage(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct iphdr* ip = data + sizeof(struct ethhdr);
    if ((void*)(ip + 1) > data_end) {
        return XDP_DROP;
    }
    if (ip->protocol == IPPROTO_ICMP) {
        return XDP_DROP;
    }
    bpf_tail_call(ctx, &stages, stage_account);
    return XDP_ABORTED; // the accounting stage is always there: reaching this is a bug
}

SEC("xdp")
int ipv6_stage(struct xdp_md* ctx) {
    bpf_tail_call(ctx, &stages, stage_account);
    return XDP_ABORTED;
}

SEC("xdp")
int account_stage(struct xdp_md* ctx) {
    __sync_fetch_and_add(&accounted_packets, 1);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
