/*
 * params.c - checks shared by every request body the domain reads.
 */
#include "params.h"

#include <string.h>

int params_only(json_t *in, const char *const *allowed, fault *f)
{
    const char *key;
    json_t *val;

    if (!in) return 0;
    json_object_foreach(in, key, val) {
        int known = 0;
        for (int i = 0; allowed[i] && !known; i++) known = strcmp(allowed[i], key) == 0;
        if (!known) return fault_invalid(f, "parameter_unknown", key, "unknown parameter %.64s", key);
    }
    return 0;
}
