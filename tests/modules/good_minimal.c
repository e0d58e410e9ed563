/*
 * good_minimal.c - the smallest valid gateway: create and retrieve, both
 * answering "succeeded". Loader tests use it as the control case.
 *
 * It also exports a second symbol with default visibility, to show that a
 * module exporting more than the entry symbol still loads (the host looks up
 * only payd_module_v1). It reads the optional key `label`, so a config may
 * set it without an "unknown key" error.
 */
#include <payd/module.h>

/* Deliberately exported besides the entry symbol. */
PAYD_EXPORT int good_minimal_extra_symbol(void);
PAYD_EXPORT int good_minimal_extra_symbol(void)
{
    return 42;
}

static int good_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)e;
    const char *label = h->config_get(cfg, "label");
    h->log(h, PAYD_LOG_DEBUG, "good_minimal ready%s%s", label ? ": " : "", label ? label : "");
    *state = (void *)h;
    return PAYD_OK;
}

static int good_succeed(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const payd_host *h = state;
    (void)e;
    res->status = PAYD_PS_SUCCEEDED;
    if (req->provider_ref) res->provider_ref = h->strdup(a, req->provider_ref);
    else res->provider_ref = h->sprintf(a, "good_%s", req->payment_id ? req->payment_id : "x");
    res->amount = req->amount;
    res->amount_captured = req->amount;
    return PAYD_OK;
}

static const payd_gateway_ops good_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = good_succeed,
    .retrieve = good_succeed,
};

static const payd_module good_module = {
    PAYD_MODULE_V1,
    .name = "good_minimal",
    .version = "0.0.1",
    .description = "minimal valid test gateway",
    .kind = PAYD_KIND_GATEWAY,
    .caps = 0,
    .init = good_init,
    .gateway = &good_ops,
};

PAYD_DECLARE_MODULE(good_module)
