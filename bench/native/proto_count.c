/* Native twin of examples/proto_count.c: packets and bytes per protocol layer in an array (the per-CPU array of one
 * worker: plain adds), IPv6 extension headers walked at most four deep; every packet passes. */
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <stdlib.h>

#include "native_twin.h"

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
    uint64_t packets;
    uint64_t bytes;
};

struct vlan_header {
    uint16_t tci;
    uint16_t proto;
};

struct extension_header {
    uint8_t next;
    uint8_t length;
};

struct state {
    struct counter protocols[protocol_count];
};

static void count(struct state* state, uint32_t index, uint64_t bytes) {
    state->protocols[index].packets += 1;
    state->protocols[index].bytes += bytes;
}

static void count_l4(struct state* state, uint8_t protocol, uint64_t bytes) {
    switch (protocol) {
    case IPPROTO_TCP: count(state, protocol_tcp, bytes); break;
    case IPPROTO_UDP: count(state, protocol_udp, bytes); break;
    case IPPROTO_ICMP: count(state, protocol_icmp, bytes); break;
    case IPPROTO_ICMPV6: count(state, protocol_icmpv6, bytes); break;
    default: count(state, protocol_other_l4, bytes); break;
    }
}

static uint32_t run(void* opaque, uint8_t* data, uint8_t* data_end) {
    struct state* state = opaque;
    uint64_t bytes = (uint64_t)(data_end - data);
    struct ethhdr* eth = (struct ethhdr*)data;
    if ((uint8_t*)(eth + 1) > data_end) {
        count(state, protocol_truncated, bytes);
        return XDP_PASS;
    }
    count(state, protocol_ethernet, bytes);
    uint16_t proto = eth->h_proto;
    uint8_t* next = (uint8_t*)(eth + 1);
    for (int depth = 0; depth < 2; depth++) {
        if (proto != htons(ETH_P_8021Q) && proto != htons(ETH_P_8021AD)) {
            break;
        }
        struct vlan_header* vlan = (struct vlan_header*)next;
        if ((uint8_t*)(vlan + 1) > data_end) {
            count(state, protocol_truncated, bytes);
            return XDP_PASS;
        }
        count(state, protocol_vlan, bytes);
        proto = vlan->proto;
        next = (uint8_t*)(vlan + 1);
    }
    if (proto == htons(ETH_P_IP)) {
        struct iphdr* ip = (struct iphdr*)next;
        if ((uint8_t*)(ip + 1) > data_end || ip->ihl < 5) {
            count(state, protocol_truncated, bytes);
            return XDP_PASS;
        }
        count(state, protocol_ipv4, bytes);
        count_l4(state, ip->protocol, bytes);
        return XDP_PASS;
    }
    if (proto == htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = (struct ipv6hdr*)next;
        if ((uint8_t*)(ip6 + 1) > data_end) {
            count(state, protocol_truncated, bytes);
            return XDP_PASS;
        }
        count(state, protocol_ipv6, bytes);
        uint8_t header = ip6->nexthdr;
        uint8_t* cursor = (uint8_t*)(ip6 + 1);
        for (int depth = 0; depth < 4; depth++) {
            if (header != IPPROTO_HOPOPTS && header != IPPROTO_ROUTING && header != IPPROTO_FRAGMENT &&
                header != IPPROTO_DSTOPTS) {
                break;
            }
            struct extension_header* extension = (struct extension_header*)cursor;
            if ((uint8_t*)(extension + 1) > data_end) {
                count(state, protocol_truncated, bytes);
                return XDP_PASS;
            }
            header = extension->next;
            /* As the example: the test reads the header just loaded (the next one's type). */
            cursor += header == IPPROTO_FRAGMENT ? 8 : (extension->length + 1) * 8;
        }
        count_l4(state, header, bytes);
        return XDP_PASS;
    }
    count(state, protocol_other_l3, bytes);
    return XDP_PASS;
}

static void* create(void) {
    return native_zalloc(sizeof(struct state));
}

static void destroy(void* state) {
    free(state);
}

const struct native_twin proto_count_twin = {
    "proto_count", "proto_count",
    create, destroy, native_no_knob, native_no_entry, run,
};
