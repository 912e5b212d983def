// Engine test programs: the first byte of a packet chooses what the device program does with it, so one object
// exercises every action and every redirect target; the second byte is a map key where one is needed.
//   0 drop, 1 pass, 2 tx, 3 aborted, 4 bpf_redirect(config[0]), 5 devmap[key], 6 devmap broadcast,
//   7 devmap broadcast excluding ingress, 8 devmap[key] falling back to XDP_PASS, 9 devmap_hash[key],
//   10 cpumap[key], 11 xskmap[key], anything else: an unknown return code.
// Each program counts the cpu it ran on (bpf_get_smp_processor_id) in its own array.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, struct bpf_devmap_val);
} devices SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, struct bpf_devmap_val);
} devices_by_id SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_CPUMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, struct bpf_cpumap_val);
} cpus SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 4);
    __type(key, __u32);
    __type(value, __u32);
} sockets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} device_cpus SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} cpumap_cpus SEC(".maps");

static __always_inline void count_cpu(void* counts) {
    __u32 cpu = bpf_get_smp_processor_id();
    __u64* seen = bpf_map_lookup_elem(counts, &cpu);
    if (seen) {
        __sync_fetch_and_add(seen, 1);
    }
}

SEC("xdp")
int by_first_byte(struct xdp_md* ctx) {
    unsigned char* data = (unsigned char*)(long)ctx->data;
    unsigned char* end = (unsigned char*)(long)ctx->data_end;
    count_cpu(&device_cpus);
    if (data + 2 > end) {
        return XDP_DROP;
    }
    __u32 key = data[1];
    __u32 zero = 0;
    switch (data[0]) {
    case 0: return XDP_DROP;
    case 1: return XDP_PASS;
    case 2: return XDP_TX;
    case 3: return XDP_ABORTED;
    case 4: {
        __u32* ifindex = bpf_map_lookup_elem(&config, &zero);
        return ifindex ? bpf_redirect(*ifindex, 0) : XDP_ABORTED;
    }
    case 5: return bpf_redirect_map(&devices, key, 0);
    case 6: return bpf_redirect_map(&devices, 0, BPF_F_BROADCAST);
    case 7: return bpf_redirect_map(&devices, 0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS);
    case 8: return bpf_redirect_map(&devices, key, XDP_PASS);
    case 9: return bpf_redirect_map(&devices_by_id, key, 0);
    case 10: return bpf_redirect_map(&cpus, key, 0);
    case 11: return bpf_redirect_map(&sockets, key, 0);
    default: return 99;
    }
}

// On a devmap entry: writes the egress ifindex into bytes 2..5; byte 6 == 0xdd drops the frame.
SEC("xdp/devmap")
int mark_egress(struct xdp_md* ctx) {
    unsigned char* data = (unsigned char*)(long)ctx->data;
    unsigned char* end = (unsigned char*)(long)ctx->data_end;
    if (data + 7 > end) {
        return XDP_PASS;
    }
    __u32 egress = ctx->egress_ifindex;
    __builtin_memcpy(data + 2, &egress, 4);
    return data[6] == 0xdd ? XDP_DROP : XDP_PASS;
}

// On a cpumap entry: counts and writes the cpu it runs on into byte 7; byte 8 == 0xdd drops, 0xee redirects through
// devices[byte 10].
SEC("xdp/cpumap")
int on_cpu(struct xdp_md* ctx) {
    unsigned char* data = (unsigned char*)(long)ctx->data;
    unsigned char* end = (unsigned char*)(long)ctx->data_end;
    count_cpu(&cpumap_cpus);
    if (data + 11 > end) {
        return XDP_PASS;
    }
    data[7] = (unsigned char)bpf_get_smp_processor_id();
    if (data[8] == 0xdd) {
        return XDP_DROP;
    }
    if (data[8] == 0xee) {
        return bpf_redirect_map(&devices, data[10], 0);
    }
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
