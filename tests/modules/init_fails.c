/*
 * init_fails.c - a gateway whose init refuses to start with
 * PAYD_E_INVALID and the message "missing api key", as a real module does
 * when a required setting is absent. The host must report the message and
 * the section, and must not call fini for an instance that never started.
 */
#include <payd/module.h>
#include <string.h>

static int fails_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)h, (void)cfg;
    *state = NULL;
    e->code = PAYD_E_INVALID;
    strncpy(e->message, "missing api key", sizeof e->message - 1);
    return PAYD_E_INVALID;
}

static void fails_fini(void *state)
{
    (void)state;
    __builtin_trap(); /* never reached: fini of an instance that failed init */
}

static int fails_op(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    (void)state, (void)req, (void)res, (void)a, (void)e;
    return PAYD_E_INTERNAL;
}

static const payd_gateway_ops fails_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = fails_op,
    .retrieve = fails_op,
};

static const payd_module fails_module = {
    PAYD_MODULE_V1,
    .name = "init_fails",
    .version = "0.0.1",
    .kind = PAYD_KIND_GATEWAY,
    .init = fails_init,
    .fini = fails_fini,
    .gateway = &fails_ops,
};

PAYD_DECLARE_MODULE(fails_module)
