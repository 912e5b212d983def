// A tail-call chain whose second stage is unsafe, for `sluice run`'s verification step: the dispatcher itself is
// fine, but a tail call can reach `unsafe_stage`, which reads the packet without checking its length, so running the
// dispatcher unchecked would run that stage unchecked too. sluice run must refuse it and name the stage.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int unsafe_stage(struct xdp_md* ctx) {
    unsigned char* data = (unsigned char*)(long)ctx->data;
    return data[20] == 6 ? XDP_DROP : XDP_PASS; // no data_end check: the verifier must refuse this
}

struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __array(values, int(void*));
} stages SEC(".maps") = {
    .values = {[0] = (void*)&unsafe_stage},
};

SEC("xdp")
int dispatcher(struct xdp_md* ctx) {
    bpf_tail_call(ctx, &stages, 0);
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
