/* Native twin of examples/global_config.c: drop TCP/UDP over IPv4 (no options) to the blocked port when enabled;
 * counters as the example's globals, updated atomically as its __sync_fetch_and_add. */
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stdlib.h>

#include "native_twin.h"

struct state {
    uint16_t blocked_port; /* .rodata */
    uint8_t enabled;       /* .rodata */
    uint64_t packets_seen; /* .data */
    uint64_t packets_blocked;
    uint64_t bytes_blocked;
};

static uint32_t run(void* opaque, uint8_t* data, uint8_t* data_end) {
    struct state* state = opaque;
    __atomic_fetch_add(&state->packets_seen, 1, __ATOMIC_SEQ_CST);
    if (!state->enabled) {
        return XDP_PASS;
    }
    struct ethhdr* eth = (struct ethhdr*)data;
    if ((uint8_t*)(eth + 1) > data_end || eth->h_proto != htons(ETH_P_IP)) {
        return XDP_PASS;
    }
    struct iphdr* ip = (struct iphdr*)(eth + 1);
    if ((uint8_t*)(ip + 1) > data_end || ip->ihl != 5) {
        return XDP_PASS;
    }
    uint16_t port;
    if (ip->protocol == IPPROTO_TCP) {
        struct tcphdr* tcp = (struct tcphdr*)(ip + 1);
        if ((uint8_t*)(tcp + 1) > data_end) {
            return XDP_PASS;
        }
        port = tcp->dest;
    } else if (ip->protocol == IPPROTO_UDP) {
        struct udphdr* udp = (struct udphdr*)(ip + 1);
        if ((uint8_t*)(udp + 1) > data_end) {
            return XDP_PASS;
        }
        port = udp->dest;
    } else {
        return XDP_PASS;
    }
    if (port != htons(state->blocked_port)) {
        return XDP_PASS;
    }
    __atomic_fetch_add(&state->packets_blocked, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&state->bytes_blocked, (uint64_t)(data_end - data), __ATOMIC_SEQ_CST);
    return XDP_DROP;
}

static void* create(void) {
    struct state* state = native_zalloc(sizeof(struct state));
    if (state != NULL) {
        state->blocked_port = 23;
        state->enabled = 1;
        state->packets_seen = 1000;
    }
    return state;
}

static void destroy(void* state) {
    free(state);
}

static int set_knob(void* opaque, const char* name, const void* value, size_t size) {
    struct state* state = opaque;
    if (native_copy_knob("blocked_port", &state->blocked_port, sizeof(state->blocked_port), name, value, size) == 0) {
        return 0;
    }
    return native_copy_knob("enabled", &state->enabled, sizeof(state->enabled), name, value, size);
}

const struct native_twin global_config_twin = {
    "global_config", "port_filter",
    create, destroy, set_knob, native_no_entry, run,
};
