/*
 * v1_0_header.c - a gateway compiled against the FROZEN v1.0 header
 * (tests/modules/abi-v1.0/payd/module.h, included by relative path, so the
 * -Isdk/include of the build does not matter). It stands for every module
 * a third party built before the current header: the current host must
 * load it and serve payments and refunds through it.
 *
 * Its in-process "provider" answers at once: create succeeds (captured in
 * full), retrieve reports the same, refunds succeed. Provider refs encode
 * the amount ("v10_<payment id>_<amount>") so no state is kept.
 */
#include "abi-v1.0/payd/module.h"

#include <stdlib.h>

#if PAYD_ABI_MAJOR != 1 || PAYD_ABI_MINOR != 0
#error "v1_0_header.c must be built against the frozen v1.0 header"
#endif

static int v10_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)cfg, (void)e;
    *state = (void *)h;
    return PAYD_OK;
}

static int64_t v10_amount_of(const char *ref)
{
    const char *last = ref;
    for (const char *p = ref; *p; p++)
        if (*p == '_') last = p + 1;
    return strtoll(last, NULL, 10);
}

static int v10_create(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const payd_host *h = state;
    (void)e;
    res->status = PAYD_PS_SUCCEEDED;
    res->provider_ref = h->sprintf(a, "v10_%s_%lld", req->payment_id ? req->payment_id : "x",
                                   (long long)req->amount);
    res->amount = req->amount;
    res->amount_captured = req->amount;
    return res->provider_ref ? PAYD_OK : PAYD_E_NOMEM;
}

static int v10_retrieve(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const payd_host *h = state;
    if (!req->provider_ref) {
        e->code = PAYD_E_INVALID;
        return PAYD_E_INVALID;
    }
    res->status = PAYD_PS_SUCCEEDED;
    res->provider_ref = h->strdup(a, req->provider_ref);
    res->amount = res->amount_captured = v10_amount_of(req->provider_ref);
    return res->provider_ref ? PAYD_OK : PAYD_E_NOMEM;
}

static int v10_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res))
{
    const payd_host *h = state;
    if (!req->provider_ref || req->amount <= 0 || req->amount > v10_amount_of(req->provider_ref)) {
        e->code = PAYD_E_INVALID;
        return PAYD_E_INVALID;
    }
    res->status = PAYD_RS_SUCCEEDED;
    res->refund_ref = h->sprintf(a, "v10re_%s", req->refund_id ? req->refund_id : "x");
    return res->refund_ref ? PAYD_OK : PAYD_E_NOMEM;
}

static const payd_gateway_ops v10_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = v10_create,
    .retrieve = v10_retrieve,
    .refund = v10_refund,
};

static const payd_module v10_module = {
    PAYD_MODULE_V1,
    .name = "v1_0_header",
    .version = "1.0.0",
    .description = "built against the frozen ABI 1.0 header",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND,
    .init = v10_init,
    .gateway = &v10_ops,
};

PAYD_DECLARE_MODULE(v10_module)
