// Loader fixture: BTF-defined maps of several kinds, global data in every section libbpf knows, a `const volatile`
// knob, a prog array filled by `.values`, and programs in each XDP section name libbpf accepts.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct flow_key {
    __u32 source;
    __u32 destination;
    __u16 port;
    __u16 protocol;
};

struct flow_stats {
    __u64 packets;
    __u64 bytes;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct flow_key);
    __type(value, struct flow_stats);
} flows SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u64));
    __uint(max_entries, 16);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct flow_stats);
} per_cpu_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 128);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
    __type(key, __u64);
    __type(value, __u32);
    __uint(pinning, LIBBPF_PIN_BY_NAME); // ignored by sluice, with a note
} recent SEC(".maps");

// Runtime knobs: set before loading (libbpf skeleton style), read-only for the program.
const volatile __u32 rate_limit = 100;
const volatile __u8 verbose = 0;
// Global data: .data, .bss and a custom .data.* section.
__u64 packets_seen = 7;
__u32 drops;
__u32 custom_counter SEC(".data.custom") = 42;
static const char greeting[] = "sluice";

SEC("xdp")
int xdp_tail_target(struct xdp_md* ctx) {
    return XDP_DROP;
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 4);
    __uint(key_size, sizeof(__u32));
    __array(values, int(void*));
} jump_table SEC(".maps") = {
    .values = {[2] = (void*)&xdp_tail_target},
};

SEC("xdp")
int xdp_main(struct xdp_md* ctx) {
    __u32 key = 3;
    __u64* count = bpf_map_lookup_elem(&counters, &key);
    if (count) {
        *count += rate_limit;
    }
    packets_seen++;
    custom_counter += greeting[1];
    if (verbose) {
        drops++;
    }
    bpf_tail_call(ctx, &jump_table, 2);
    return XDP_PASS;
}

SEC("xdp.frags")
int xdp_frags_prog(struct xdp_md* ctx) {
    struct flow_key key = {.source = 1};
    struct flow_stats* stats = bpf_map_lookup_elem(&flows, &key);
    if (stats) {
        stats->packets++;
    }
    return XDP_PASS;
}

SEC("xdp/devmap")
int xdp_devmap_prog(struct xdp_md* ctx) {
    return ctx->egress_ifindex == 3 ? XDP_DROP : XDP_PASS;
}

SEC("xdp/cpumap")
int xdp_cpumap_prog(struct xdp_md* ctx) {
    __u32 key = 0;
    struct flow_stats* stats = bpf_map_lookup_elem(&per_cpu_stats, &key);
    return stats ? XDP_PASS : XDP_ABORTED;
}

SEC("xdp.frags/devmap")
int xdp_frags_devmap_prog(struct xdp_md* ctx) {
    __u64 key = 1;
    return bpf_map_lookup_elem(&recent, &key) ? XDP_PASS : XDP_DROP;
}

SEC("xdp_legacy_name")
int xdp_legacy_prog(struct xdp_md* ctx) {
    return XDP_TX;
}

char _license[] SEC("license") = "GPL";
