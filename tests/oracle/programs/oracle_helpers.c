// Helpers with their error returns, run by the kernel and by sluice on the same packets (tests/oracle). Every helper's
// return code goes into `results` (slot = what was called), so the map comparison after each packet checks them all;
// the packet, its length and the metadata left behind are compared too. Arguments come from the packet's bytes and
// length, so that 1,200 packets reach both the successes and the failures.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum { slots = 32 };

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, slots);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

static __always_inline void record(__u32 slot, __s64 value) {
    bpf_map_update_elem(&results, &slot, &value, BPF_ANY);
}

static __always_inline __u32 packet_length(struct xdp_md* ctx) {
    return (__u32)(ctx->data_end - ctx->data);
}

/// The first byte of the packet (0 when there is none): the selector of the arguments.
static __always_inline __u8 first_byte(struct xdp_md* ctx) {
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 1 > data_end) {
        return 0;
    }
    return data[0] ^ data[(data + 14 <= data_end) ? 13 : 0];
}

// bpf_xdp_adjust_head: within the headroom, past it, past the packet (the kernel keeps ETH_HLEN), and back.
SEC("xdp")
int adjust_head(struct xdp_md* ctx) {
    __u32 length = packet_length(ctx);
    int delta;
    switch (first_byte(ctx) % 12) {
    case 0: delta = -256; break;
    case 1: delta = -257; break;
    case 2: delta = -300; break;
    case 3: delta = -14; break;
    case 4: delta = -1; break;
    case 5: delta = 0; break;
    case 6: delta = 1; break;
    case 7: delta = 14; break;
    case 8: delta = 100; break;
    case 9: delta = 4000; break;
    case 10: delta = (int)length - 14; break;
    default: delta = (int)length - 13; break;
    }
    long first = bpf_xdp_adjust_head(ctx, delta);
    record(0, first);
    record(1, packet_length(ctx));
    long back = bpf_xdp_adjust_head(ctx, -delta);
    record(2, back);
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 2 > data_end) {
        return XDP_DROP;
    }
    data[1] = (unsigned char)delta;
    return first == 0 ? XDP_TX : XDP_PASS;
}

// bpf_xdp_adjust_tail: shrink to ETH_HLEN and below it, grow into the tailroom and past it.
SEC("xdp")
int adjust_tail(struct xdp_md* ctx) {
    __u32 length = packet_length(ctx);
    __u8 pick = first_byte(ctx) % 9;
    int delta;
    switch (pick) {
    case 0: delta = -(int)length; break;
    case 1: delta = 14 - (int)length; break;
    case 2: delta = 13 - (int)length; break;
    case 3: delta = -1; break;
    case 4: delta = 100; break;
    case 5: delta = 3520 - (int)length; break;
    case 6: delta = 3521 - (int)length; break;
    case 7: delta = 4000; break;
    default: delta = 0; break;
    }
    long done = bpf_xdp_adjust_tail(ctx, delta);
    record(3, done);
    record(4, packet_length(ctx));
    record(5, bpf_xdp_get_buff_len(ctx));
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 20 <= data_end) {
        data[19] ^= 1;
    }
    return done == 0 ? XDP_PASS : XDP_DROP;
}

// bpf_xdp_adjust_meta: aligned and not, up to the kernel's limit and past it; then write and read the metadata.
SEC("xdp")
int adjust_meta(struct xdp_md* ctx) {
    __u8 pick = first_byte(ctx) % 10;
    int delta;
    switch (pick) {
    case 0: delta = -4; break;
    case 1: delta = -8; break;
    case 2: delta = -32; break;
    case 3: delta = -36; break;
    case 4: delta = -64; break;
    case 5: delta = -252; break;
    case 6: delta = -256; break;
    case 7: delta = -3; break;
    case 8: delta = 4; break;
    default: delta = 0; break;
    }
    long done = bpf_xdp_adjust_meta(ctx, delta);
    record(6, done);
    unsigned char* meta = (void*)(long)ctx->data_meta;
    unsigned char* data = (void*)(long)ctx->data;
    record(7, data - meta);
    if (meta + 4 <= data) {
        meta[0] = 0xab;
        meta[3] = pick;
    }
    // Moving data back over the metadata fails while there is metadata (the kernel keeps them apart).
    record(8, bpf_xdp_adjust_head(ctx, -8));
    return XDP_PASS;
}

// bpf_xdp_load_bytes / bpf_xdp_store_bytes at offsets inside and past the packet.
SEC("xdp")
int load_store_bytes(struct xdp_md* ctx) {
    __u8 buffer[16] = {};
    __u32 length = packet_length(ctx);
    __u32 offset = first_byte(ctx) % 4 == 0 ? length - 8 : (first_byte(ctx) % 4 == 1 ? length : first_byte(ctx) % 64);
    long loaded = bpf_xdp_load_bytes(ctx, offset, buffer, sizeof buffer);
    record(9, loaded);
    __u64 word = 0;
    __builtin_memcpy(&word, buffer, sizeof word);
    record(10, (__s64)word);
    buffer[0] ^= 0xff;
    long stored = bpf_xdp_store_bytes(ctx, offset / 2, buffer, 8);
    record(11, stored);
    return XDP_TX;
}

// bpf_csum_diff: sizes that are multiples of 4 and not, with a seed from the packet.
SEC("xdp")
int checksum(struct xdp_md* ctx) {
    __be32 from[4] = {0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10};
    __be32 to[4] = {0x11121314, 0x15161718, 0x191a1b1c, 0x1d1e1f20};
    __u8 pick = first_byte(ctx);
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 16 <= data_end) {
        __builtin_memcpy(to, data, 16);
    }
    __u32 from_size = (pick & 3) * 4;
    __u32 to_size = ((pick >> 2) & 3) * 4;
    record(12, bpf_csum_diff(from, from_size, to, to_size, pick));
    record(13, bpf_csum_diff(0, 0, to, 16, 0));
    record(14, bpf_csum_diff(from, 6, to, 8, 0)); // not a multiple of 4: -EINVAL
    return XDP_PASS;
}

// bpf_redirect: its action, and XDP_ABORTED for unknown flags.
SEC("xdp")
int redirect(struct xdp_md* ctx) {
    __u8 pick = first_byte(ctx);
    long action = bpf_redirect(pick % 4 + 1, pick % 5 == 0 ? 1 : 0);
    record(15, action);
    return pick % 3 == 0 ? (int)action : XDP_PASS;
}

// bpf_check_mtu on the ingress device (ifindex 0 = the context's): within and beyond the loopback's MTU.
SEC("xdp")
int check_mtu(struct xdp_md* ctx) {
    __u32 mtu = 0;
    __s32 diff = (__s32)(first_byte(ctx) % 3) * 40000 - 20000;
    long status = bpf_check_mtu(ctx, 0, &mtu, diff, 0);
    record(16, status);
    record(17, mtu);
    return XDP_PASS;
}

static long sum_step(__u32 index, void* context) {
    __u64* total = context;
    *total += index * 3;
    return *total > 200; // stop early on some packets
}

static long visit(void* map, __u32* key, __s64* value, void* context) {
    __u64* count = context;
    *count += 1;
    return *key >= 20; // stop at slot 20
}

// bpf_loop (with its limit and an early stop) and bpf_for_each_map_elem.
SEC("xdp")
int loops(struct xdp_md* ctx) {
    __u64 total = first_byte(ctx);
    long iterations = bpf_loop(first_byte(ctx) % 40, sum_step, &total, 0);
    record(18, iterations);
    record(19, total);
    // Past BPF_MAX_LOOPS: -E2BIG. Known difference: the kernel's verifier inlines bpf_loop when flags are a known 0
    // (inline_bpf_loop), and the inlined code sets -E2BIG with a 32-bit move, so r0 is 0x00000000fffffff9, not the
    // helper's 64-bit -7; sluice returns the helper's. Only the low 32 bits are compared here.
    record(20, (__s32)bpf_loop(1 << 24, sum_step, &total, 0));
    record(21, bpf_loop(1, sum_step, &total, 1));       // flags must be 0: -EINVAL
    __u64 count = 0;
    record(22, bpf_for_each_map_elem(&results, visit, &count, 0));
    record(23, count);
    return XDP_PASS;
}

// bpf_loop past BPF_MAX_LOOPS, its whole 64-bit return in slot 30: the kernel's inlined bpf_loop and sluice differ in
// the upper half (tests/oracle/kernel_differences_test.cpp), so the `loops` case above compares the low half only.
SEC("xdp")
int loop_limit(struct xdp_md* ctx) {
    __u64 total = 0;
    record(30, bpf_loop(1 << 24, sum_step, &total, 0));
    return XDP_PASS;
}

// Time, randomness and the cpu: compared where they can be (a clock that moves forward, a cpu of 0 on the pinned
// test thread); the values themselves differ between two runs by nature.
SEC("xdp")
int environment(struct xdp_md* ctx) {
    __u64 first = bpf_ktime_get_ns();
    __u64 second = bpf_ktime_get_ns();
    record(24, first != 0 && second >= first);
    __u64 boot = bpf_ktime_get_boot_ns();
    record(25, boot >= first);
    record(26, bpf_jiffies64() != 0);
    __u32 random = bpf_get_prandom_u32();
    record(27, random <= 0xffffffffULL); // called; the value itself differs between two runs
    record(28, bpf_get_smp_processor_id());
    return XDP_PASS;
}

// bpf_trace_printk's return code (the bytes written) and the packet after it.
SEC("xdp")
int trace(struct xdp_md* ctx) {
    static const char format[] = "oracle %d %x\n";
    record(29, bpf_trace_printk(format, sizeof format, first_byte(ctx), packet_length(ctx)));
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
