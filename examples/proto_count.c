// A protocol counter: counts packets and bytes per protocol layer (Ethernet, VLAN, IPv4, IPv6, TCP, UDP, ICMP,
// ICMPv6) in a per-CPU array and passes every packet. IPv4 options are skipped by the header length; IPv6 extension
// headers (hop-by-hop, routing, fragment, destination options) are walked, at most four deep, so that the upper
// protocol is found behind them.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum protocol_index {
    protocol_ethernet,
    protocol_vlan,
    protocol_ipv4,
    protocol_ipv6,
    protocol_tcp,
    protocol_udp,
    protocol_icmp,
    protocol_icmpv6,
    protocol_other_l3,
    protocol_other_l4,
    protocol_truncated,
    protocol_count,
};

struct counter {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, protocol_count);
    __type(key, __u32);
    __type(value, struct counter);
} protocols SEC(".maps");

struct vlan_header {
    __be16 tci;
    __be16 proto;
};

struct extension_header {
    __u8 next;
    __u8 length; // in 8-byte units, not counting the first 8 bytes
};

static __always_inline void count(__u32 index, __u64 bytes) {
    struct counter* entry = bpf_map_lookup_elem(&protocols, &index);
    if (entry) {
        entry->packets += 1;
        entry->bytes += bytes;
    }
}

static __always_inline void count_l4(__u8 protocol, __u64 bytes) {
    switch (protocol) {
    case IPPROTO_TCP: count(protocol_tcp, bytes); break;
    case IPPROTO_UDP: count(protocol_udp, bytes); break;
    case IPPROTO_ICMP: count(protocol_icmp, bytes); break;
    case IPPROTO_ICMPV6: count(protocol_icmpv6, bytes); break;
    default: count(protocol_other_l4, bytes); break;
    }
}

SEC("xdp")
int proto_count(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    __u64 bytes = data_end - data;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) {
        count(protocol_truncated, bytes);
        return XDP_PASS;
    }
    count(protocol_ethernet, bytes);
    __u16 proto = eth->h_proto;
    void* next = eth + 1;
#pragma unroll
    for (int depth = 0; depth < 2; depth++) {
        if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD)) {
            break;
        }
        struct vlan_header* vlan = next;
        if ((void*)(vlan + 1) > data_end) {
            count(protocol_truncated, bytes);
            return XDP_PASS;
        }
        count(protocol_vlan, bytes);
        proto = vlan->proto;
        next = vlan + 1;
    }
    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr* ip = next;
        if ((void*)(ip + 1) > data_end || ip->ihl < 5) {
            count(protocol_truncated, bytes);
            return XDP_PASS;
        }
        count(protocol_ipv4, bytes);
        count_l4(ip->protocol, bytes);
        return XDP_PASS;
    }
    if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = next;
        if ((void*)(ip6 + 1) > data_end) {
            count(protocol_truncated, bytes);
            return XDP_PASS;
        }
        count(protocol_ipv6, bytes);
        __u8 header = ip6->nexthdr;
        void* cursor = ip6 + 1;
#pragma unroll
        for (int depth = 0; depth < 4; depth++) {
            if (header != IPPROTO_HOPOPTS && header != IPPROTO_ROUTING && header != IPPROTO_FRAGMENT &&
                header != IPPROTO_DSTOPTS) {
                break;
            }
            struct extension_header* extension = cursor;
            if ((void*)(extension + 1) > data_end) {
                count(protocol_truncated, bytes);
                return XDP_PASS;
            }
            header = extension->next;
            // The fragment header is always 8 bytes; the others say their length.
            cursor += header == IPPROTO_FRAGMENT ? 8 : (extension->length + 1) * 8;
        }
        count_l4(header, bytes);
        return XDP_PASS;
    }
    count(protocol_other_l3, bytes);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
