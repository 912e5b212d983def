/* Native twin of examples/xdp_parse_count.c: Ethernet, up to two VLAN tags, IPv4/IPv6; packets and bytes per
 * protocol in an array (the BTF array map), updated with atomic adds as the example's __sync_fetch_and_add; drops
 * expired TTL / hop limit (knob drop_expired) and malformed packets. */
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <stdlib.h>

#include "native_twin.h"

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
    uint64_t packets;
    uint64_t bytes;
};

struct vlan_header {
    uint16_t tci;
    uint16_t encapsulated_proto;
};

struct state {
    struct counter counters[counter_count];
    uint8_t drop_expired;
};

static void count(struct state* state, uint32_t index, uint64_t bytes) {
    struct counter* entry = &state->counters[index];
    __atomic_fetch_add(&entry->packets, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&entry->bytes, bytes, __ATOMIC_SEQ_CST);
}

static int skip_vlans(uint8_t* data, uint8_t* data_end, uint16_t* proto) {
    int offset = sizeof(struct ethhdr);
    for (int i = 0; i < 2; i++) {
        if (*proto != htons(ETH_P_8021Q) && *proto != htons(ETH_P_8021AD)) {
            break;
        }
        struct vlan_header* vlan = (struct vlan_header*)(data + offset);
        if ((uint8_t*)(vlan + 1) > data_end) {
            return -1;
        }
        *proto = vlan->encapsulated_proto;
        offset += sizeof(*vlan);
    }
    return offset;
}

static uint32_t run(void* opaque, uint8_t* data, uint8_t* data_end) {
    struct state* state = opaque;
    uint64_t bytes = (uint64_t)(data_end - data);
    struct ethhdr* eth = (struct ethhdr*)data;
    if (data + sizeof(*eth) > data_end) {
        count(state, counter_malformed, bytes);
        return XDP_DROP;
    }
    uint16_t proto = eth->h_proto;
    int offset = skip_vlans(data, data_end, &proto);
    if (offset < 0) {
        count(state, counter_malformed, bytes);
        return XDP_DROP;
    }
    if (offset > (int)sizeof(*eth)) {
        count(state, counter_vlan, bytes);
    }
    offset &= 0xff;
    if (proto == htons(ETH_P_IP)) {
        struct iphdr* ip = (struct iphdr*)(data + offset);
        if ((uint8_t*)(ip + 1) > data_end || ip->ihl < 5) {
            count(state, counter_malformed, bytes);
            return XDP_DROP;
        }
        if (state->drop_expired && ip->ttl <= 1) {
            count(state, counter_expired, bytes);
            return XDP_DROP;
        }
        count(state, counter_ipv4, bytes);
        return XDP_PASS;
    }
    if (proto == htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = (struct ipv6hdr*)(data + offset);
        if ((uint8_t*)(ip6 + 1) > data_end) {
            count(state, counter_malformed, bytes);
            return XDP_DROP;
        }
        if (state->drop_expired && ip6->hop_limit <= 1) {
            count(state, counter_expired, bytes);
            return XDP_DROP;
        }
        count(state, counter_ipv6, bytes);
        return XDP_PASS;
    }
    count(state, counter_other, bytes);
    return XDP_PASS;
}

static void* create(void) {
    struct state* state = native_zalloc(sizeof(struct state));
    if (state != NULL) {
        state->drop_expired = 1;
    }
    return state;
}

static void destroy(void* state) {
    free(state);
}

static int set_knob(void* opaque, const char* name, const void* value, size_t size) {
    struct state* state = opaque;
    return native_copy_knob("drop_expired", &state->drop_expired, sizeof(state->drop_expired), name, value, size);
}

const struct native_twin xdp_parse_count_twin = {
    "xdp_parse_count", "xdp_parse_count",
    create, destroy, set_knob, native_no_entry, run,
};
