// Loader fixture: a map in the legacy `maps` section (struct bpf_map_def, as iproute2 and old samples wrote them).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct bpf_map_def {
    unsigned int type;
    unsigned int key_size;
    unsigned int value_size;
    unsigned int max_entries;
    unsigned int map_flags;
};

struct bpf_map_def SEC("maps") legacy_counters = {
    .type = BPF_MAP_TYPE_ARRAY,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u64),
    .max_entries = 8,
};

struct bpf_map_def SEC("maps") legacy_hash = {
    .type = BPF_MAP_TYPE_HASH,
    .key_size = sizeof(__u32),
    .value_size = sizeof(__u32),
    .max_entries = 64,
};

SEC("xdp")
int xdp_legacy_maps(struct xdp_md* ctx) {
    __u32 key = 1;
    __u64* value = bpf_map_lookup_elem(&legacy_counters, &key);
    if (value) {
        *value += 1;
    }
    return bpf_map_lookup_elem(&legacy_hash, &key) ? XDP_PASS : XDP_DROP;
}
