/* A thin C layer over DPDK's librte_bpf, so that DPDK's headers (and the flags they need) stay out of the C++ code:
 * load a program with its external functions, hand out its JIT-compiled function, and say why DPDK refused it. */
#ifndef SLUICE_BENCH_DPDK_SHIM_H
#define SLUICE_BENCH_DPDK_SHIM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t (*dpdk_function)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

/* An external function the program calls as `call INDEX` (INDEX into the array given to dpdk_program_load). Pointer
 * arguments are declared with the bytes the function reads or writes; 0 declares a scalar. */
struct dpdk_helper {
    const char* name;
    dpdk_function function;
    uint32_t arguments;
    size_t pointer_bytes[5];
    size_t returned_pointer_bytes; /* 0: returns a scalar */
};

/* Memory the program addresses with a 64-bit immediate (global data): DPDK lets the program dereference an immediate
 * only when it names such a variable. */
struct dpdk_variable {
    const char* name;
    void* address;
    size_t bytes;
};

struct dpdk_program;

/* rte_bpf_load() of `count` 8-byte eBPF instructions whose argument r1 points to `context_bytes` bytes; NULL with
 * DPDK's own log lines in `why` when it refuses. */
struct dpdk_program* dpdk_program_load(const void* instructions, uint32_t count, const struct dpdk_helper* helpers,
                                       uint32_t helper_count, const struct dpdk_variable* variables,
                                       uint32_t variable_count, size_t context_bytes, char* why, size_t why_size);
/* The JIT-compiled code (rte_bpf_get_jit), or NULL when DPDK could not compile it (it then interprets only). */
uint64_t (*dpdk_program_jit(const struct dpdk_program* program))(void*);
void dpdk_program_destroy(struct dpdk_program* program);

#ifdef __cplusplus
}
#endif

#endif
