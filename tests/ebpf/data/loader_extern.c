// Loader fixture: a program reading a __kconfig extern, which has no definition in the object.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern unsigned int CONFIG_HZ __kconfig;

SEC("xdp")
int xdp_extern(struct xdp_md* ctx) {
    return CONFIG_HZ > 100 ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
