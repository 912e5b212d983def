/* The librte_bpf calls of the DPDK column (dpdk_shim.h). No EAL is needed: rte_bpf_load allocates with mmap and
 * logs through rte_log, whose stream we point at a memory buffer for the duration of the load. */
#include "dpdk_shim.h"

#include <rte_bpf.h>
#include <rte_errno.h>
#include <rte_log.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dpdk_program {
    struct rte_bpf* bpf;
    struct rte_bpf_xsym* symbols;
};

struct dpdk_program* dpdk_program_load(const void* instructions, uint32_t count, const struct dpdk_helper* helpers,
                                       uint32_t helper_count, const struct dpdk_variable* variables,
                                       uint32_t variable_count, size_t context_bytes, char* why, size_t why_size) {
    struct dpdk_program* program = calloc(1, sizeof(*program));
    if (program == NULL) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    const uint32_t symbol_count = helper_count + variable_count;
    program->symbols = calloc(symbol_count == 0 ? 1 : symbol_count, sizeof(struct rte_bpf_xsym));
    if (program->symbols == NULL) {
        free(program);
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < helper_count; i++) {
        struct rte_bpf_xsym* symbol = &program->symbols[i];
        symbol->name = helpers[i].name;
        symbol->type = RTE_BPF_XTYPE_FUNC;
        symbol->func.val = helpers[i].function;
        symbol->func.nb_args = helpers[i].arguments;
        for (uint32_t a = 0; a < helpers[i].arguments && a < EBPF_FUNC_MAX_ARGS; a++) {
            if (helpers[i].pointer_bytes[a] != 0) {
                symbol->func.args[a].type = RTE_BPF_ARG_PTR;
                symbol->func.args[a].size = helpers[i].pointer_bytes[a];
            } else {
                symbol->func.args[a].type = RTE_BPF_ARG_RAW;
                symbol->func.args[a].size = sizeof(uint64_t);
            }
        }
        if (helpers[i].returned_pointer_bytes != 0) {
            symbol->func.ret.type = RTE_BPF_ARG_PTR;
            symbol->func.ret.size = helpers[i].returned_pointer_bytes;
        } else {
            symbol->func.ret.type = RTE_BPF_ARG_RAW;
            symbol->func.ret.size = sizeof(uint64_t);
        }
    }
    for (uint32_t i = 0; i < variable_count; i++) {
        struct rte_bpf_xsym* symbol = &program->symbols[helper_count + i];
        symbol->name = variables[i].name;
        symbol->type = RTE_BPF_XTYPE_VAR;
        symbol->var.val = variables[i].address;
        symbol->var.desc.type = RTE_BPF_ARG_PTR;
        symbol->var.desc.size = variables[i].bytes;
    }
    struct rte_bpf_prm parameters;
    memset(&parameters, 0, sizeof(parameters));
    parameters.ins = instructions;
    parameters.nb_ins = count;
    parameters.xsym = program->symbols;
    parameters.nb_xsym = symbol_count;
    parameters.prog_arg.type = RTE_BPF_ARG_PTR;
    parameters.prog_arg.size = context_bytes;

    char* log = NULL;
    size_t log_size = 0;
    FILE* stream = open_memstream(&log, &log_size);
    FILE* previous = rte_log_get_stream();
    if (stream != NULL) {
        rte_openlog_stream(stream);
    }
    program->bpf = rte_bpf_load(&parameters);
    const int failure = rte_errno;
    if (stream != NULL) {
        rte_openlog_stream(previous);
        fclose(stream);
    }
    if (program->bpf == NULL) {
        /* The last line is DPDK's reason; earlier lines are context. Newlines become "; ". */
        snprintf(why, why_size, "rte_bpf_load: %s%s%s", strerror(failure), log != NULL && log[0] ? ": " : "",
                 log != NULL ? log : "");
        for (char* c = why; *c != '\0'; c++) {
            if (*c == '\n') {
                *c = c[1] == '\0' ? '\0' : ';';
            }
        }
        free(log);
        free(program->symbols);
        free(program);
        return NULL;
    }
    free(log);
    return program;
}

uint64_t (*dpdk_program_jit(const struct dpdk_program* program))(void*) {
    struct rte_bpf_jit jit;
    if (rte_bpf_get_jit(program->bpf, &jit) != 0) {
        return NULL;
    }
    return jit.func;
}

void dpdk_program_destroy(struct dpdk_program* program) {
    if (program != NULL) {
        rte_bpf_destroy(program->bpf);
        free(program->symbols);
        free(program);
    }
}
