/*
 * init_crash.c - a gateway whose init dereferences a wild pointer
 * (SIGSEGV), as a module with a bug in its config parsing would. payd must
 * survive it: the loader runs init first in a throwaway child, sees it die
 * by a signal, and refuses the module with "[gateway.x]: module init_crash
 * crashed in init (signal 11)" instead of crashing itself.
 */
#include <payd/module.h>

/* An address no process maps, read through a volatile so that neither the
 * compiler nor UBSan's null check turns the crash into something else. */
static volatile uintptr_t crash_address = 16;

static int crash_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)cfg, (void)e;
    h->log(h, PAYD_LOG_INFO, "init_crash: about to crash");
    *(volatile int *)crash_address = 1;
    *state = NULL;
    return PAYD_OK;
}

static int crash_op(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    (void)state, (void)req, (void)res, (void)a, (void)e;
    return PAYD_E_INTERNAL;
}

static const payd_gateway_ops crash_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = crash_op,
    .retrieve = crash_op,
};

static const payd_module crash_module = {
    PAYD_MODULE_V1,
    .name = "init_crash",
    .version = "0.0.1",
    .description = "crashes in init",
    .kind = PAYD_KIND_GATEWAY,
    .init = crash_init,
    .gateway = &crash_ops,
};

PAYD_DECLARE_MODULE(crash_module)
