/*
 * old_minor_ops.c - a gateway whose ops table is SHORTER than the host's:
 * its struct_size stops right before `refund`, as a module built against an
 * older minor that ended there would. The host must copy only what
 * struct_size covers and treat the rest as absent.
 *
 * To prove the host does not read past struct_size, the static table does
 * hold functions beyond it (refund, refund_retrieve, webhook, page,
 * public_info), all of which trap: a host that called any of them would
 * crash. A refund through this gateway must come back as "not supported".
 */
#include <payd/module.h>

static int old_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)cfg, (void)e;
    *state = (void *)h;
    return PAYD_OK;
}

static int old_pay(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const payd_host *h = state;
    (void)e;
    res->status = PAYD_PS_SUCCEEDED;
    res->provider_ref = req->provider_ref ? h->strdup(a, req->provider_ref)
                                          : h->sprintf(a, "old_%s", req->payment_id ? req->payment_id : "x");
    res->amount = req->amount;
    res->amount_captured = req->amount;
    return res->provider_ref ? PAYD_OK : PAYD_E_NOMEM;
}

static int old_trap_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res))
{
    (void)state, (void)req, (void)res, (void)a, (void)e;
    __builtin_trap();
}

static int old_trap_webhook(PAYD_OP_ARGS(payd_webhook_req, payd_event))
{
    (void)state, (void)req, (void)res, (void)a, (void)e;
    __builtin_trap();
}

static int old_trap_page(PAYD_OP_ARGS(payd_page_req, payd_page_res))
{
    (void)state, (void)req, (void)res, (void)a, (void)e;
    __builtin_trap();
}

static const char *old_trap_info(void *state)
{
    (void)state;
    __builtin_trap();
}

static const payd_gateway_ops old_ops = {
    /* An older minor: everything from `refund` on did not exist yet. */
    .struct_size = (uint32_t)offsetof(payd_gateway_ops, refund),
    .create = old_pay,
    .retrieve = old_pay,
    .confirm = old_pay,
    .capture = old_pay,
    .cancel = old_pay,
    /* Beyond struct_size: must never be called. */
    .refund = old_trap_refund,
    .refund_retrieve = old_trap_refund,
    .webhook = old_trap_webhook,
    .page = old_trap_page,
    .public_info = old_trap_info,
};

static const payd_module old_module = {
    PAYD_MODULE_V1,
    .name = "old_minor_ops",
    .version = "0.9.0",
    .description = "ops table from an older minor",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_CONFIRM | PAYD_CAP_CANCEL,
    .init = old_init,
    .gateway = &old_ops,
};

PAYD_DECLARE_MODULE(old_module)
