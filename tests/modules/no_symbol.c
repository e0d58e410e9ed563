/*
 * no_symbol.c - a shared object that is not a payd module: it exports a
 * function, but not payd_module_v1. The host must say so, naming the file.
 */
#include <payd/module.h>

static const payd_module not_exported = {
    PAYD_MODULE_V1,
    .name = "no_symbol",
    .version = "0.0.1",
    .kind = PAYD_KIND_GATEWAY,
};

/* A near miss: the right shape under the wrong name. */
PAYD_EXPORT const payd_module *payd_module_v0(void);
PAYD_EXPORT const payd_module *payd_module_v0(void)
{
    return &not_exported;
}
