/* Native twin of examples/tail_call_chain.c: the dispatcher calls the stage for the packet's protocol through a
 * table of function pointers (the prog array: an indirect call, as a tail call is an indirect jump); a missing stage
 * passes. The IPv4 stage drops ICMP and goes on to the accounting stage, which counts atomically (the example's
 * __sync_fetch_and_add on .bss). */
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <stdlib.h>

#include "native_twin.h"

enum stage {
    stage_ipv4,
    stage_ipv6,
    stage_account,
    stage_count,
};

struct state;
typedef uint32_t (*stage_function)(struct state* state, uint8_t* data, uint8_t* data_end);

struct state {
    stage_function stages[stage_count];
    uint64_t accounted_packets;
};

/* A tail call: the stage in `index`, or nothing when the slot is empty (the caller then goes on, as after a failed
 * bpf_tail_call). */
#define tail_call(state, index, data, data_end)                                                                       \
    do {                                                                                                               \
        stage_function target = (state)->stages[(index)];                                                              \
        if (target != NULL) {                                                                                          \
            return target((state), (data), (data_end));                                                                \
        }                                                                                                              \
    } while (0)

static uint32_t account_stage(struct state* state, uint8_t* data, uint8_t* data_end) {
    (void)data;
    (void)data_end;
    __atomic_fetch_add(&state->accounted_packets, 1, __ATOMIC_SEQ_CST);
    return XDP_PASS;
}

static uint32_t ipv4_stage(struct state* state, uint8_t* data, uint8_t* data_end) {
    struct iphdr* ip = (struct iphdr*)(data + sizeof(struct ethhdr));
    if ((uint8_t*)(ip + 1) > data_end) {
        return XDP_DROP;
    }
    if (ip->protocol == IPPROTO_ICMP) {
        return XDP_DROP;
    }
    tail_call(state, stage_account, data, data_end);
    return XDP_ABORTED;
}

static uint32_t ipv6_stage(struct state* state, uint8_t* data, uint8_t* data_end) {
    tail_call(state, stage_account, data, data_end);
    return XDP_ABORTED;
}

static uint32_t run(void* opaque, uint8_t* data, uint8_t* data_end) {
    struct state* state = opaque;
    struct ethhdr* eth = (struct ethhdr*)data;
    if ((uint8_t*)(eth + 1) > data_end) {
        return XDP_DROP;
    }
    if (eth->h_proto == htons(ETH_P_IP)) {
        tail_call(state, stage_ipv4, data, data_end);
    } else if (eth->h_proto == htons(ETH_P_IPV6)) {
        tail_call(state, stage_ipv6, data, data_end);
    }
    return XDP_PASS;
}

static void* create(void) {
    struct state* state = native_zalloc(sizeof(struct state));
    if (state != NULL) {
        state->stages[stage_ipv4] = ipv4_stage;
        state->stages[stage_ipv6] = ipv6_stage;
        state->stages[stage_account] = account_stage;
    }
    return state;
}

static void destroy(void* state) {
    free(state);
}

const struct native_twin tail_call_chain_twin = {
    "tail_call_chain", "dispatcher",
    create, destroy, native_no_knob, native_no_entry, run,
};
