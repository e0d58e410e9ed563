/*
 * small_struct.c - a descriptor whose struct_size (16) is smaller than the
 * v1.0 payd_module. The host must refuse it without reading past it.
 */
#include <payd/module.h>

static int small_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)h, (void)cfg, (void)e;
    *state = NULL;
    return PAYD_OK;
}

static const payd_module small_module = {
    .abi_major = PAYD_ABI_MAJOR,
    .abi_minor = PAYD_ABI_MINOR,
    .struct_size = 16,
    .name = "small_struct",
    .version = "0.0.1",
    .kind = PAYD_KIND_GATEWAY,
    .init = small_init,
};

PAYD_DECLARE_MODULE(small_module)
