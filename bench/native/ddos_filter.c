/* Native twin of examples/ddos_filter.c: blocked source prefixes, a per-source token bucket, verdict counters.
 *
 * The maps as C structures:
 *  - blocked_v4 / blocked_v6 (LPM tries): arrays of prefixes scanned in order; a source is blocked when any prefix
 *    covers it, which is what an LPM lookup of a full-length key answers (the program only tests for a match).
 *    A list is what C code would use for the handful of prefixes an operator blocks (the benchmark blocks one).
 *  - rate_v4 (LRU hash of 65536 buckets): an open-addressing table of 131072 slots keyed by the source address.
 *    It never evicts: when it holds 65536 sources it starts empty again. The benchmark's traffic has about a
 *    thousand sources, so eviction never happens there, in the kernel or here.
 *  - stats (per-CPU array): plain counters, one worker.
 * The clock is CLOCK_MONOTONIC, as sluice's and the kernel's bpf_ktime_get_ns. */
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "native_twin.h"

enum verdict_index {
    verdict_passed,
    verdict_blocked_prefix,
    verdict_rate_limited,
    verdict_not_ip,
    verdict_malformed,
    verdict_count,
};

struct lpm_v4_key {
    uint32_t prefixlen;
    uint8_t address[4];
};

struct lpm_v6_key {
    uint32_t prefixlen;
    uint8_t address[16];
};

struct token_bucket {
    uint64_t last_refill_ns;
    uint64_t tokens;
};

enum { max_prefixes = 1024, rate_entries = 65536, rate_slots = 131072 };

struct rate_slot {
    uint32_t source;
    uint32_t used;
    struct token_bucket bucket;
};

struct state {
    struct lpm_v4_key blocked_v4[max_prefixes];
    uint32_t blocked_v4_count;
    struct lpm_v6_key blocked_v6[max_prefixes];
    uint32_t blocked_v6_count;
    struct rate_slot rate_v4[rate_slots];
    uint32_t rate_v4_count;
    uint64_t stats[verdict_count];
    uint64_t rate_pps; /* .rodata */
    uint64_t burst;    /* .rodata */
};

static uint64_t ktime_get_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
}

static int covers(const uint8_t* prefix, uint32_t length, const uint8_t* address) {
    uint32_t whole = length / 8;
    if (memcmp(prefix, address, whole) != 0) {
        return 0;
    }
    uint32_t rest = length % 8;
    if (rest == 0) {
        return 1;
    }
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (prefix[whole] & mask) == (address[whole] & mask);
}

static int blocked_v4(const struct state* state, const uint8_t* address) {
    for (uint32_t i = 0; i < state->blocked_v4_count; i++) {
        if (covers(state->blocked_v4[i].address, state->blocked_v4[i].prefixlen, address)) {
            return 1;
        }
    }
    return 0;
}

static int blocked_v6(const struct state* state, const uint8_t* address) {
    for (uint32_t i = 0; i < state->blocked_v6_count; i++) {
        if (covers(state->blocked_v6[i].address, state->blocked_v6[i].prefixlen, address)) {
            return 1;
        }
    }
    return 0;
}

static struct rate_slot* rate_slot_of(struct state* state, uint32_t source) {
    uint32_t slot = (uint32_t)((source * 0x9e3779b1U) >> 15) & (rate_slots - 1);
    while (state->rate_v4[slot].used && state->rate_v4[slot].source != source) {
        slot = (slot + 1) & (rate_slots - 1);
    }
    return &state->rate_v4[slot];
}

static int count(struct state* state, uint32_t index, int action) {
    state->stats[index] += 1;
    return action;
}

static int over_rate(struct state* state, uint32_t source) {
    uint64_t now = ktime_get_ns();
    struct rate_slot* slot = rate_slot_of(state, source);
    if (!slot->used) {
        if (state->rate_v4_count == rate_entries) {
            memset(state->rate_v4, 0, sizeof(state->rate_v4));
            state->rate_v4_count = 0;
            slot = rate_slot_of(state, source);
        }
        slot->used = 1;
        slot->source = source;
        slot->bucket.last_refill_ns = now;
        slot->bucket.tokens = state->burst - 1;
        state->rate_v4_count++;
        return 0;
    }
    struct token_bucket* bucket = &slot->bucket;
    uint64_t elapsed = now - bucket->last_refill_ns;
    uint64_t earned = elapsed * state->rate_pps / 1000000000ULL;
    if (earned > 0) {
        uint64_t tokens = bucket->tokens + earned;
        bucket->tokens = tokens > state->burst ? state->burst : tokens;
        bucket->last_refill_ns = now;
    }
    if (bucket->tokens == 0) {
        return 1;
    }
    bucket->tokens -= 1;
    return 0;
}

struct vlan_hdr {
    uint16_t tci;
    uint16_t proto;
};

static uint32_t run(void* opaque, uint8_t* data, uint8_t* data_end) {
    struct state* state = opaque;
    struct ethhdr* eth = (struct ethhdr*)data;
    if ((uint8_t*)(eth + 1) > data_end) {
        return count(state, verdict_malformed, XDP_DROP);
    }
    uint16_t proto = eth->h_proto;
    uint8_t* next = (uint8_t*)(eth + 1);
    if (proto == htons(ETH_P_8021Q) || proto == htons(ETH_P_8021AD)) {
        struct vlan_hdr* vlan = (struct vlan_hdr*)next;
        if ((uint8_t*)(vlan + 1) > data_end) {
            return count(state, verdict_malformed, XDP_DROP);
        }
        proto = vlan->proto;
        next = (uint8_t*)(vlan + 1);
    }
    if (proto == htons(ETH_P_IP)) {
        struct iphdr* ip = (struct iphdr*)next;
        if ((uint8_t*)(ip + 1) > data_end) {
            return count(state, verdict_malformed, XDP_DROP);
        }
        if (blocked_v4(state, (const uint8_t*)&ip->saddr)) {
            return count(state, verdict_blocked_prefix, XDP_DROP);
        }
        if (over_rate(state, ip->saddr)) {
            return count(state, verdict_rate_limited, XDP_DROP);
        }
        return count(state, verdict_passed, XDP_PASS);
    }
    if (proto == htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = (struct ipv6hdr*)next;
        if ((uint8_t*)(ip6 + 1) > data_end) {
            return count(state, verdict_malformed, XDP_DROP);
        }
        if (blocked_v6(state, (const uint8_t*)&ip6->saddr)) {
            return count(state, verdict_blocked_prefix, XDP_DROP);
        }
        return count(state, verdict_passed, XDP_PASS);
    }
    return count(state, verdict_not_ip, XDP_PASS);
}

static void* create(void) {
    struct state* state = native_zalloc(sizeof(struct state));
    if (state != NULL) {
        state->rate_pps = 1000;
        state->burst = 100;
    }
    return state;
}

static void destroy(void* state) {
    free(state);
}

static int set_knob(void* opaque, const char* name, const void* value, size_t size) {
    struct state* state = opaque;
    if (native_copy_knob("rate_pps", &state->rate_pps, sizeof(state->rate_pps), name, value, size) == 0) {
        return 0;
    }
    return native_copy_knob("burst", &state->burst, sizeof(state->burst), name, value, size);
}

static int add_entry(void* opaque, const char* map, const void* key, size_t key_size, const void* value,
                     size_t value_size) {
    struct state* state = opaque;
    (void)value;
    (void)value_size;
    if (strcmp(map, "blocked_v4") == 0 && key_size == sizeof(struct lpm_v4_key) &&
        state->blocked_v4_count < max_prefixes) {
        memcpy(&state->blocked_v4[state->blocked_v4_count++], key, key_size);
        return 0;
    }
    if (strcmp(map, "blocked_v6") == 0 && key_size == sizeof(struct lpm_v6_key) &&
        state->blocked_v6_count < max_prefixes) {
        memcpy(&state->blocked_v6[state->blocked_v6_count++], key, key_size);
        return 0;
    }
    return -1;
}

const struct native_twin ddos_filter_twin = {"ddos_filter", "ddos_filter", create, destroy, set_knob, add_entry, run};
