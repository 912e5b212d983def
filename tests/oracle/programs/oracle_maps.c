// Every map kind sluice supports, from an XDP program, with the error returns (tests/oracle): the kernel and sluice
// run it on the same packets; each call's return code goes into `results`, and every map is compared after every
// packet (queues and stacks in order, the ring buffer's records one by one).
//
// Keys come from the packet, so 1,200 packets fill, overwrite, evict and empty the maps many times over.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 32);
    __type(key, __u32);
    __type(value, __s64);
} results SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} percpu_array SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} hash SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
    __uint(max_entries, 8);
    __type(key, __u32);
    __type(value, __u64);
} percpu_hash SEC(".maps");

// LRU: more keys than entries, so the kernel evicts; its order is defined by its LRU lists on the one cpu the test
// runs on.
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} lru SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} lru_percpu SEC(".maps");

struct lpm_key {
    __u32 prefixlen;
    __u8 address[4];
};

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 16);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct lpm_key);
    __type(value, __u32);
} lpm SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_QUEUE);
    __uint(max_entries, 4);
    __type(value, __u32);
} queue SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK);
    __uint(max_entries, 4);
    __type(value, __u32);
} stack SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4096);
} ring SEC(".maps");

static __always_inline void record(__u32 slot, __s64 value) {
    bpf_map_update_elem(&results, &slot, &value, BPF_ANY);
}

/// Two bytes of the packet (zeros when it is too short) pick keys and flags.
static __always_inline __u32 selector(struct xdp_md* ctx) {
    unsigned char* data = (void*)(long)ctx->data;
    unsigned char* data_end = (void*)(long)ctx->data_end;
    if (data + 40 > data_end) {
        return (__u32)(data_end - data);
    }
    return data[39] | (__u32)data[38] << 8 | (__u32)(data_end - data) << 16;
}

SEC("xdp")
int arrays(struct xdp_md* ctx) {
    __u32 pick = selector(ctx);
    __u32 key = pick % 10; // 8 and 9 are out of range
    __u64 value = pick;
    __u64 flags = (pick >> 4) % 4; // BPF_ANY, BPF_NOEXIST (-EEXIST on arrays), BPF_EXIST, 3 (-EINVAL)
    record(0, bpf_map_update_elem(&array, &key, &value, flags));
    record(1, bpf_map_update_elem(&percpu_array, &key, &value, flags));
    record(2, bpf_map_delete_elem(&array, &key)); // -EINVAL on arrays
    __u64* found = bpf_map_lookup_elem(&array, &key);
    record(3, found ? (__s64)*found : -1);
    __u64* mine = bpf_map_lookup_elem(&percpu_array, &key);
    if (mine) {
        __sync_fetch_and_add(mine, 1);
        record(4, (__s64)*mine);
    }
    return XDP_PASS;
}

SEC("xdp")
int hashes(struct xdp_md* ctx) {
    __u32 pick = selector(ctx);
    __u32 key = pick % 12; // 12 keys, 8 entries: -E2BIG when full
    __u64 value = pick * 7;
    __u64 flags = (pick >> 3) % 3;
    record(5, bpf_map_update_elem(&hash, &key, &value, flags));
    record(6, bpf_map_update_elem(&percpu_hash, &key, &value, flags));
    __u32 other = (pick >> 5) % 12;
    if ((pick & 0x300) == 0x100) {
        record(7, bpf_map_delete_elem(&hash, &other)); // -ENOENT when absent
        record(8, bpf_map_delete_elem(&percpu_hash, &other));
    }
    __u64* found = bpf_map_lookup_elem(&hash, &other);
    if (found) {
        __sync_fetch_and_add(found, 3);
        record(9, (__s64)*found);
    } else {
        record(9, -1);
    }
    return XDP_PASS;
}

SEC("xdp")
int lru_maps(struct xdp_md* ctx) {
    __u32 pick = selector(ctx);
    __u32 key = pick % 40; // 40 keys for 16 entries
    __u64 value = pick;
    record(10, bpf_map_update_elem(&lru, &key, &value, BPF_ANY));
    record(11, bpf_map_update_elem(&lru_percpu, &key, &value, BPF_ANY));
    __u32 other = (pick >> 6) % 40;
    __u64* found = bpf_map_lookup_elem(&lru, &other); // a lookup makes an entry recent
    record(12, found ? (__s64)*found : -1);
    record(13, bpf_map_update_elem(&lru, &other, &value, BPF_NOEXIST));
    return XDP_PASS;
}

SEC("xdp")
int lpm_trie(struct xdp_md* ctx) {
    __u32 pick = selector(ctx);
    struct lpm_key key = {.prefixlen = pick % 34, .address = {10, (__u8)(pick >> 8), (__u8)pick, 0}};
    __u32 value = pick;
    // Prefix lengths 33 and beyond are -EINVAL; 16 entries fill up (-ENOSPC).
    record(14, bpf_map_update_elem(&lpm, &key, &value, (pick >> 10) % 2 ? BPF_NOEXIST : BPF_ANY));
    struct lpm_key probe = {.prefixlen = 32, .address = {10, (__u8)(pick >> 3), (__u8)(pick >> 1), 7}};
    __u32* match = bpf_map_lookup_elem(&lpm, &probe);
    record(15, match ? (__s64)*match : -1);
    if ((pick & 0x1f) == 3) {
        record(16, bpf_map_delete_elem(&lpm, &key));
    }
    return XDP_PASS;
}

SEC("xdp")
int queues(struct xdp_md* ctx) {
    __u32 pick = selector(ctx);
    __u32 value = pick;
    __u64 flags = (pick >> 2) % 2 ? BPF_EXIST : 0; // BPF_EXIST overwrites the oldest when full
    switch (pick % 4) {
    case 0:
    case 1:
        record(17, bpf_map_push_elem(&queue, &value, flags)); // -E2BIG when full without BPF_EXIST
        record(18, bpf_map_push_elem(&stack, &value, flags));
        break;
    case 2: {
        __u32 out = 0;
        record(19, bpf_map_pop_elem(&queue, &out)); // -ENOENT when empty
        record(20, out);
        record(21, bpf_map_pop_elem(&stack, &out));
        record(22, out);
        break;
    }
    default: {
        __u32 out = 0;
        record(23, bpf_map_peek_elem(&queue, &out));
        record(24, out);
        break;
    }
    }
    return XDP_PASS;
}

SEC("xdp")
int ringbuf(struct xdp_md* ctx) {
    __u32 pick = selector(ctx);
    __u64 record_value = pick;
    record(25, bpf_ringbuf_output(&ring, &record_value, sizeof record_value, 0));
    record(26, bpf_ringbuf_output(&ring, &record_value, sizeof record_value, 7)); // unknown flags: -EINVAL
    __u32* reserved = pick % 3 == 0 ? bpf_ringbuf_reserve(&ring, 4, 0)
                      : pick % 3 == 1 ? bpf_ringbuf_reserve(&ring, 12, 0)
                                      : bpf_ringbuf_reserve(&ring, 5000, 0); // larger than the ring: NULL
    if (reserved) {
        *reserved = pick;
        if (pick % 2) {
            bpf_ringbuf_submit(reserved, 0);
        } else {
            bpf_ringbuf_discard(reserved, 0);
        }
    }
    record(27, bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA));
    record(28, bpf_ringbuf_query(&ring, BPF_RB_RING_SIZE));
    record(29, bpf_ringbuf_query(&ring, BPF_RB_PROD_POS) - bpf_ringbuf_query(&ring, BPF_RB_CONS_POS));
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
