/*
 * cap_without_fn.c - advertises PAYD_CAP_WEBHOOKS but leaves webhook NULL.
 * The host must refuse it at load time rather than crash on the first
 * incoming webhook.
 */
#include <payd/module.h>

static int cap_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)h, (void)cfg, (void)e;
    *state = NULL;
    return PAYD_OK;
}

static int cap_op(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    (void)state, (void)req, (void)a, (void)e;
    res->status = PAYD_PS_SUCCEEDED;
    return PAYD_OK;
}

static const payd_gateway_ops cap_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = cap_op,
    .retrieve = cap_op,
    .webhook = NULL,
};

static const payd_module cap_module = {
    PAYD_MODULE_V1,
    .name = "cap_without_fn",
    .version = "0.0.1",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_WEBHOOKS,
    .init = cap_init,
    .gateway = &cap_ops,
};

PAYD_DECLARE_MODULE(cap_module)
