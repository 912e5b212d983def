// The veth benchmarks' traffic generator, run by the kernel's XDP live-frames test run (BPF_PROG_TEST_RUN with
// BPF_F_TEST_XDP_LIVE_FRAMES, as xdp-trafficgen does) in the sending namespace: each run takes the frame the caller
// gave, optionally rewrites its IPv4 source address, counts it, and redirects it out of the sending veth.
//
// - Source addresses (config.sources != 0): a random share of config.blocked_per_256 / 256 of the frames comes from
//   config.blocked_base + a random host in config.blocked_host_mask, the rest from config.sources_base + a random
//   one of config.sources addresses (a power of two), so that a DDoS filter's blocklist and its per-source state both
//   have work. The IPv4 header checksum is recomputed (the kernel's ip_rcv drops bad ones before prerouting).
//   config.sources == 0 sends the frame unchanged.
// - sent: per-CPU count of frames handed to bpf_redirect: the offered load, read while the sender runs (its test run
//   call may last seconds, so the caller cannot count calls).
// The live-frames page pool keeps a frame's bytes between runs and resets only its pointers, so rewriting the same
// bytes every run is safe.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct traffic_config {
    __u32 ifindex;           ///< the sending veth: where frames are redirected
    __u32 blocked_per_256;   ///< share of frames from the blocked prefix, in 256ths
    __u32 blocked_base;      ///< host order
    __u32 blocked_host_mask; ///< host bits of the blocked prefix
    __u32 sources_base;      ///< host order
    __u32 sources;           ///< distinct other sources (a power of two); 0: do not rewrite
};

volatile const struct traffic_config config = {};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} sent SEC(".maps");

SEC("xdp")
int veth_traffic(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    if (config.sources != 0) {
        struct ethhdr* eth = data;
        struct iphdr* ip = (void*)(eth + 1);
        if ((void*)(ip + 1) > data_end) {
            return XDP_ABORTED;
        }
        __u32 random = bpf_get_prandom_u32();
        __u32 source = (random & 0xff) < config.blocked_per_256
                           ? config.blocked_base + ((random >> 8) & config.blocked_host_mask)
                           : config.sources_base + ((random >> 8) & (config.sources - 1));
        ip->saddr = bpf_htonl(source);
        ip->check = 0;
        __u16* words = (__u16*)ip;
        __u32 sum = 0;
#pragma unroll
        for (int i = 0; i < (int)(sizeof(*ip) / 2); ++i) {
            sum += words[i];
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        ip->check = (__u16)~sum;
    }
    __u32 key = 0;
    __u64* count = bpf_map_lookup_elem(&sent, &key);
    if (count) {
        *count += 1; // per-CPU slot: no atomic needed
    }
    return bpf_redirect(config.ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
