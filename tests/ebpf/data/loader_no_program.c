// Loader fixture: an object with a map and a .text function but no program section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} lonely SEC(".maps");

__noinline int helper_only(int value) {
    return value * 2;
}

char _license[] SEC("license") = "GPL";
