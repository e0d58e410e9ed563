/*
 * abi2.c - a gateway that is valid in every way but claims ABI major 2.
 * The host must refuse it, naming the ABI and the module path.
 */
#include <payd/module.h>

static int abi2_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)h, (void)cfg, (void)e;
    *state = NULL;
    return PAYD_OK;
}

static int abi2_op(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    (void)state, (void)req, (void)a, (void)e;
    res->status = PAYD_PS_SUCCEEDED;
    return PAYD_OK;
}

static const payd_gateway_ops abi2_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = abi2_op,
    .retrieve = abi2_op,
};

static const payd_module abi2_module = {
    .abi_major = 2,
    .abi_minor = 0,
    .struct_size = (uint32_t)sizeof(payd_module),
    .name = "abi2",
    .version = "2.0.0",
    .description = "claims a future ABI major",
    .kind = PAYD_KIND_GATEWAY,
    .init = abi2_init,
    .gateway = &abi2_ops,
};

PAYD_DECLARE_MODULE(abi2_module)
