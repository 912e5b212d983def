// Loader fixture: BPF-to-BPF calls (a static subprogram, a global .text function called from two programs), a
// bpf_loop callback (a function address), and context reads of every xdp_md field, also through a spilled context
// pointer and inside a subprogram that takes the context.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 loop_total;

static __noinline int add_one(int value) {
    return value + 1;
}

// A global function in .text: libbpf appends it to each program that calls it.
__noinline int packet_length(struct xdp_md* ctx) {
    if (!ctx) {
        return 0;
    }
    return (int)(ctx->data_end - ctx->data);
}

static int loop_step(__u32 index, void* context) {
    __u64* total = context;
    *total += index;
    return 0;
}

SEC("xdp")
int xdp_calls(struct xdp_md* ctx) {
    __u64 total = 0;
    bpf_loop(4, loop_step, &total, 0);
    loop_total = total;
    return add_one(packet_length(ctx)) > 60 ? XDP_PASS : XDP_DROP;
}

// A static variable: clang relocates against the section symbol `.bss`, with the offset in the instruction's imm.
static __u32 static_hits;

SEC("xdp")
int xdp_calls_again(struct xdp_md* ctx) {
    static_hits++;
    return packet_length(ctx) > 1000 ? XDP_DROP : XDP_PASS;
}

// Reads every field; the volatile store keeps the compiler from reordering the reads away.
volatile __u32 sink;

SEC("xdp/devmap")
int xdp_fields(struct xdp_md* ctx) {
    void* data = (void*)(long)ctx->data;
    void* data_end = (void*)(long)ctx->data_end;
    void* data_meta = (void*)(long)ctx->data_meta;
    sink = ctx->ingress_ifindex;
    sink = ctx->rx_queue_index;
    sink = ctx->egress_ifindex;
    if (data_meta > data || data + 1 > data_end) {
        return XDP_DROP;
    }
    return XDP_PASS;
}

// The context pointer is spilled to the stack across a helper call and read back.
SEC("xdp")
int xdp_spill(struct xdp_md* ctx) {
    struct xdp_md* volatile saved = ctx;
    __u32 now = (__u32)bpf_ktime_get_ns();
    struct xdp_md* restored = saved;
    return restored->rx_queue_index + now > 0 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
