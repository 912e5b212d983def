// Parses Ethernet, up to two VLAN tags, IPv4 and IPv6, counts packets and bytes per protocol in a BTF-defined map,
// and decides: drop IPv4/IPv6 packets whose TTL/hop limit has run out (when configured) and malformed packets, pass
// the rest. Every header read is bounds-checked against data_end first, as the verifier demands. The VLAN parser is a
// separate non-inlined function, so the object holds a BPF-to-BPF call into .text.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum counter_index {
    counter_other,
    counter_ipv4,
    counter_ipv6,
    counter_vlan,
    counter_malformed,
    counter_expired,
    counter_count,
};

struct counter {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, counter_count);
    __type(key, __u32);
    __type(value, struct counter);
} counters SEC(".maps");

// Set by the loader before the program runs (lands in .rodata): drop packets whose TTL has run out.
volatile const __u8 drop_expired = 1;

struct vlan_header {
    __be16 tci;
    __be16 encapsulated_proto;
};

#define max_vlan_depth 2

static void count(__u32 index, __u64 bytes) {
    struct counter* entry = bpf_map_lookup_elem(&counters, &index);
    if (entry) {
        __sync_fetch_and_add(&entry->packets, 1);
        __sync_fetch_and_add(&entry->bytes, bytes);
    }
}

// Skips up to two VLAN tags after the Ethernet header. Returns the offset of the next header and stores its
// EtherType (network order) in *proto, or returns -1 when a tag is cut short.
static __noinline int skip_vlans(void* data, void* data_end, __be16* proto) {
    int offset = sizeof(struct ethhdr);
#pragma unroll
    for (int i = 0; i < max_vlan_depth; i++) {
        if (*proto != bpf_htons(ETH_P_8021Q) && *proto != bpf_htons(ETH_P_8021AD)) {
            break;
        }
        struct vlan_header* vlan = data + offset;
        if ((void*)(vlan + 1) > data_end) {
            return -1;
        }
        *proto = vlan->encapsulated_proto;
        offset += sizeof(*vlan);
    }
    return offset;
}

SEC("xdp")
int xdp_parse_count(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    __u64 bytes = data_end - data;

    struct ethhdr* eth = data;
    if (data + sizeof(*eth) > data_end) {
        count(counter_malformed, bytes);
        return XDP_DROP;
    }
    __be16 proto = eth->h_proto;
    int offset = skip_vlans(data, data_end, &proto);
    if (offset < 0) {
        count(counter_malformed, bytes);
        return XDP_DROP;
    }
    if (offset > (int)sizeof(*eth)) {
        count(counter_vlan, bytes);
    }
    offset &= 0xff; // tells the verifier the offset is small

    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr* ip = data + offset;
        if ((void*)(ip + 1) > data_end || ip->ihl < 5) {
            count(counter_malformed, bytes);
            return XDP_DROP;
        }
        if (drop_expired && ip->ttl <= 1) {
            count(counter_expired, bytes);
            return XDP_DROP;
        }
        count(counter_ipv4, bytes);
        return XDP_PASS;
    }
    if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = data + offset;
        if ((void*)(ip6 + 1) > data_end) {
            count(counter_malformed, bytes);
            return XDP_DROP;
        }
        if (drop_expired && ip6->hop_limit <= 1) {
            count(counter_expired, bytes);
            return XDP_DROP;
        }
        count(counter_ipv6, bytes);
        return XDP_PASS;
    }
    count(counter_other, bytes);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
