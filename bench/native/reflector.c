/* Native twin of examples/reflector.c: MAC addresses swapped, and for UDP over IPv4 addresses and ports too;
 * XDP_TX. */
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <stdlib.h>
#include <string.h>

#include "native_twin.h"

static void swap_mac(struct ethhdr* eth) {
    uint8_t saved[ETH_ALEN];
    memcpy(saved, eth->h_source, ETH_ALEN);
    memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    memcpy(eth->h_dest, saved, ETH_ALEN);
}

static uint32_t run(void* state, uint8_t* data, uint8_t* data_end) {
    (void)state;
    struct ethhdr* eth = (struct ethhdr*)data;
    if ((uint8_t*)(eth + 1) > data_end) {
        return XDP_DROP;
    }
    swap_mac(eth);
    if (eth->h_proto != htons(ETH_P_IP)) {
        return XDP_TX;
    }
    struct iphdr* ip = (struct iphdr*)(eth + 1);
    if ((uint8_t*)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_UDP) {
        return XDP_TX;
    }
    struct udphdr* udp = (struct udphdr*)(ip + 1);
    if ((uint8_t*)(udp + 1) > data_end) {
        return XDP_TX;
    }
    uint32_t address = ip->saddr;
    ip->saddr = ip->daddr;
    ip->daddr = address;
    uint16_t port = udp->source;
    udp->source = udp->dest;
    udp->dest = port;
    return XDP_TX;
}

static void* create(void) {
    return native_zalloc(1);
}

static void destroy(void* state) {
    free(state);
}

const struct native_twin reflector_twin = {
    "reflector", "reflector",
    create, destroy, native_no_knob, native_no_entry, run,
};
