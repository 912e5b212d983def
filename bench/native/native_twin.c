/* Shared helpers of the native twins. */
#include "native_twin.h"

#include <stdlib.h>
#include <string.h>

void* native_zalloc(size_t size) {
    return calloc(1, size);
}

int native_no_knob(void* state, const char* name, const void* value, size_t size) {
    (void)state;
    (void)name;
    (void)value;
    (void)size;
    return -1;
}

int native_no_entry(void* state, const char* map, const void* key, size_t key_size, const void* value,
                    size_t value_size) {
    (void)state;
    (void)map;
    (void)key;
    (void)key_size;
    (void)value;
    (void)value_size;
    return -1;
}

int native_copy_knob(const char* wanted, void* out, size_t out_size, const char* name, const void* value, size_t size) {
    if (strcmp(wanted, name) != 0 || out_size != size) {
        return -1;
    }
    memcpy(out, value, size);
    return 0;
}
