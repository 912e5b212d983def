/* Native twin of examples/xdp_pass.c: every packet goes on to the host stack. */
#include <linux/bpf.h>

#include <stdlib.h>

#include "native_twin.h"

static uint32_t run(void* state, uint8_t* data, uint8_t* data_end) {
    (void)state;
    (void)data;
    (void)data_end;
    return XDP_PASS;
}

static void* create(void) {
    return native_zalloc(1);
}

static void destroy(void* state) {
    free(state);
}

const struct native_twin xdp_pass_twin = {
    "xdp_pass", "xdp_pass",
    create, destroy, native_no_knob, native_no_entry, run,
};
