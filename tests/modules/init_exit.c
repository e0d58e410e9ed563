/*
 * init_exit.c - a gateway whose init calls exit(3), as a module that
 * "handles" a fatal config error the wrong way would. The loader's probe
 * child sees the process end during init and payd refuses the module
 * ("module init_exit ended the process in init (exit status 3)") instead
 * of vanishing without a word.
 */
#include <payd/module.h>
#include <stdlib.h>

static int exit_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    (void)h, (void)cfg, (void)e, (void)state;
    exit(3);
}

static int exit_op(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    (void)state, (void)req, (void)res, (void)a, (void)e;
    return PAYD_E_INTERNAL;
}

static const payd_gateway_ops exit_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = exit_op,
    .retrieve = exit_op,
};

static const payd_module exit_module = {
    PAYD_MODULE_V1,
    .name = "init_exit",
    .version = "0.0.1",
    .description = "calls exit() in init",
    .kind = PAYD_KIND_GATEWAY,
    .init = exit_init,
    .gateway = &exit_ops,
};

PAYD_DECLARE_MODULE(exit_module)
