/* The native twins: each example of examples/ written again as a plain C function over (data, data_end), with its
 * maps as C arrays and tables, compiled natively with -O2. They are the no-VM limit of the benchmark: what the same
 * work costs without any eBPF engine in between.
 *
 * Contract, for every twin:
 *  - The logic is the example's, branch for branch, with the same verdicts, the same packet rewrites and the same map
 *    updates; what a map does in the kernel (an LPM trie, an LRU hash) is done with the simplest C structure that
 *    gives the same answers for the benchmark's contents, and the twin's file says which.
 *  - create() gives a fresh state: empty maps, knobs at the object's defaults. The benchmark then copies the loaded
 *    object's state in: every .rodata variable through set_knob (the same bytes, after --set), every --map entry
 *    through add_entry (the same key and value bytes). Both return 0, or -1 for a name the twin does not have.
 *  - run() returns the XDP action (XDP_PASS, ...), as the program's r0. */
#ifndef SLUICE_BENCH_NATIVE_TWIN_H
#define SLUICE_BENCH_NATIVE_TWIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct native_twin {
    const char* example; /* examples/<example>.c */
    const char* program; /* the program of the example it twins (the entry point) */
    void* (*create)(void);
    void (*destroy)(void* state);
    int (*set_knob)(void* state, const char* name, const void* value, size_t size);
    int (*add_entry)(void* state, const char* map, const void* key, size_t key_size, const void* value,
                     size_t value_size);
    uint32_t (*run)(void* state, uint8_t* data, uint8_t* data_end);
};

extern const struct native_twin xdp_pass_twin;
extern const struct native_twin xdp_parse_count_twin;
extern const struct native_twin ddos_filter_twin;
extern const struct native_twin reflector_twin;
extern const struct native_twin proto_count_twin;
extern const struct native_twin tail_call_chain_twin;
extern const struct native_twin global_config_twin;

/* Helpers shared by the twins (native_twin.c). */
void* native_zalloc(size_t size);
int native_no_knob(void* state, const char* name, const void* value, size_t size);
int native_no_entry(void* state, const char* map, const void* key, size_t key_size, const void* value,
                    size_t value_size);
/* Copies a knob's bytes into `out` when `name` matches and the sizes agree; 0 on a match, -1 otherwise. */
int native_copy_knob(const char* wanted, void* out, size_t out_size, const char* name, const void* value, size_t size);

#ifdef __cplusplus
}
#endif

#endif
