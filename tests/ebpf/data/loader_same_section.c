// Loader fixture: a static function placed in the program's own section, called without a relocation (the call's
// imm is relative to its position in the section). libbpf 1.x refuses static functions outside .text; sluice links
// them as subprograms.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static __noinline __attribute__((section("xdp"))) int twice(struct xdp_md* ctx) {
    return (int)ctx->rx_queue_index * 2;
}

SEC("xdp")
int xdp_same_section(struct xdp_md* ctx) {
    return twice(ctx) > 4 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
