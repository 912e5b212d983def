// Configuration and state in global variables, as libbpf skeletons use them:
// - .rodata (`const volatile`): a blocked TCP/UDP destination port and a switch, set before load
//   (`sluice run --set blocked_port=23`);
// - .data: a counter that starts at a non-zero value, to show that initial contents come from the object;
// - .bss: zero-initialised counters;
// - a custom .data.* section, which libbpf maps as its own global-data map.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

volatile const __u16 blocked_port = 23; // telnet, by default
volatile const __u8 enabled = 1;

__u64 packets_seen = 1000; // .data: counting starts here
__u64 packets_blocked;     // .bss
__u64 bytes_blocked SEC(".data.blocked") = 0;

SEC("xdp")
int port_filter(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    __sync_fetch_and_add(&packets_seen, 1);
    if (!enabled) {
        return XDP_PASS;
    }
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) {
        return XDP_PASS;
    }
    struct iphdr* ip = (void*)(eth + 1);
    if ((void*)(ip + 1) > data_end || ip->ihl != 5) {
        return XDP_PASS;
    }
    __u16 port;
    if (ip->protocol == IPPROTO_TCP) {
        struct tcphdr* tcp = (void*)(ip + 1);
        if ((void*)(tcp + 1) > data_end) {
            return XDP_PASS;
        }
        port = tcp->dest;
    } else if (ip->protocol == IPPROTO_UDP) {
        struct udphdr* udp = (void*)(ip + 1);
        if ((void*)(udp + 1) > data_end) {
            return XDP_PASS;
        }
        port = udp->dest;
    } else {
        return XDP_PASS;
    }
    if (port != bpf_htons(blocked_port)) {
        return XDP_PASS;
    }
    __sync_fetch_and_add(&packets_blocked, 1);
    __sync_fetch_and_add(&bytes_blocked, data_end - data);
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
