// A DDoS filter: drops packets from blocked source prefixes and from sources that exceed a packet rate.
//
// - blocked_v4 / blocked_v6: LPM tries of source prefixes to drop (filled by the operator: `sluice run --map`).
// - rate_v4: per-source token buckets in an LRU hash, so that a flood of spoofed sources evicts old entries instead
//   of filling the table. Tokens are packets; the refill rate and burst come from .rodata (set them before load with
//   `sluice run --set rate_pps=... --set burst=...`, as a libbpf skeleton would).
// - stats: per-CPU counters of each verdict, read by the control plane without contention.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum verdict_index {
    verdict_passed,
    verdict_blocked_prefix,
    verdict_rate_limited,
    verdict_not_ip,
    verdict_malformed,
    verdict_count,
};

struct lpm_v4_key {
    __u32 prefixlen;
    __u8 address[4];
};

struct lpm_v6_key {
    __u32 prefixlen;
    __u8 address[16];
};

struct token_bucket {
    __u64 last_refill_ns;
    __u64 tokens;
};

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 1024);
    __type(key, struct lpm_v4_key);
    __type(value, __u32);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} blocked_v4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 1024);
    __type(key, struct lpm_v6_key);
    __type(value, __u32);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} blocked_v6 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 65536);
    __type(key, __u32);
    __type(value, struct token_bucket);
} rate_v4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, verdict_count);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

// Packets per second each source may send, and how many it may send at once after being quiet.
volatile const __u64 rate_pps = 1000;
volatile const __u64 burst = 100;

static __always_inline int count(__u32 index, int action) {
    __u64* counter = bpf_map_lookup_elem(&stats, &index);
    if (counter) {
        *counter += 1; // per-CPU slot: no atomic needed
    }
    return action;
}

// Token bucket: refill by elapsed time, spend one token per packet.
static __always_inline int over_rate(__u32 source) {
    __u64 now = bpf_ktime_get_ns();
    struct token_bucket* bucket = bpf_map_lookup_elem(&rate_v4, &source);
    if (!bucket) {
        struct token_bucket fresh = {.last_refill_ns = now, .tokens = burst - 1};
        bpf_map_update_elem(&rate_v4, &source, &fresh, BPF_ANY);
        return 0;
    }
    __u64 elapsed = now - bucket->last_refill_ns;
    __u64 earned = elapsed * rate_pps / 1000000000ULL;
    if (earned > 0) {
        __u64 tokens = bucket->tokens + earned;
        bucket->tokens = tokens > burst ? burst : tokens;
        bucket->last_refill_ns = now;
    }
    if (bucket->tokens == 0) {
        return 1;
    }
    bucket->tokens -= 1;
    return 0;
}

SEC("xdp")
int ddos_filter(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    struct ethhdr* eth = data;
    if ((void*)(eth + 1) > data_end) {
        return count(verdict_malformed, XDP_DROP);
    }
    __u16 proto = eth->h_proto;
    void* next = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
        struct vlan_hdr {
            __be16 tci;
            __be16 proto;
        }* vlan = next;
        if ((void*)(vlan + 1) > data_end) {
            return count(verdict_malformed, XDP_DROP);
        }
        proto = vlan->proto;
        next = vlan + 1;
    }
    if (proto == bpf_htons(ETH_P_IP)) {
        struct iphdr* ip = next;
        if ((void*)(ip + 1) > data_end) {
            return count(verdict_malformed, XDP_DROP);
        }
        struct lpm_v4_key key = {.prefixlen = 32};
        __builtin_memcpy(key.address, &ip->saddr, sizeof(key.address));
        if (bpf_map_lookup_elem(&blocked_v4, &key)) {
            return count(verdict_blocked_prefix, XDP_DROP);
        }
        if (over_rate(ip->saddr)) {
            return count(verdict_rate_limited, XDP_DROP);
        }
        return count(verdict_passed, XDP_PASS);
    }
    if (proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr* ip6 = next;
        if ((void*)(ip6 + 1) > data_end) {
            return count(verdict_malformed, XDP_DROP);
        }
        struct lpm_v6_key key = {.prefixlen = 128};
        __builtin_memcpy(key.address, &ip6->saddr, sizeof(key.address));
        if (bpf_map_lookup_elem(&blocked_v6, &key)) {
            return count(verdict_blocked_prefix, XDP_DROP);
        }
        return count(verdict_passed, XDP_PASS);
    }
    return count(verdict_not_ip, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
