/*
 * modules/mock/mock.c - the mock gateway: descriptor, configuration,
 * init/fini.
 *
 * A faithful local stand-in for a Stripe-like provider, so the whole
 * asynchronous checkout runs with no account and no network: test cards
 * with Stripe's names, idempotency keys, manual capture, refunds, saved
 * methods, a 3-D Secure challenge page, delayed settlement, signed
 * webhooks it posts back to payd, and latency and fault injection.
 *
 * Config keys of a [gateway.<name>] section with module = mock, all
 * optional (the host refuses any other key):
 *
 *   webhook_secret       HMAC-SHA256 key of Mock-Signature, used as its
 *                        bytes (1..512). Default: 32 random bytes as hex,
 *                        new at every init, so set it when something
 *                        outside payd must sign or verify mock events.
 *   settle_ms            delay before pm_card_processing settles
 *                        (0..3600000, default 2000)
 *   latency_ms           sleep at the start of every mutating call
 *                        (0..60000, default 0)
 *   transient_rate       probability (0.0..1.0, default 0) that a mutating
 *                        call fails with PAYD_E_TRANSIENT before applying
 *                        anything, like a 503
 *   timeout_rate         probability (0.0..1.0, default 0) that a mutating
 *                        call applies its effect and then returns
 *                        PAYD_E_TRANSIENT, like a lost response
 *   webhooks             on|off: post events to payd (default on)
 *   webhook_tolerance_s  accepted |now - t| of incoming signatures
 *                        (1..86400, default 300)
 *   test_controls        on|off (default off): serve the test/ pages that
 *                        change intents and refunds behind payd's back, for
 *                        reconciliation tests. Never on for anything real.
 *
 * Read-only keys the host answers: payd.instance (scopes idempotency keys
 * and routes webhooks), payd.public_url (base of the 3-D Secure URL),
 * payd.webhook_url (where this instance's events are posted).
 *
 * Mutating calls: create, confirm, capture, cancel, refund, save_method,
 * delete_method. Reads (retrieve, refund_retrieve, list_methods, webhook,
 * page) never get latency or faults.
 */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A probability: digits with at most one '.', in [0, 1]. */
static int mock_conf_rate(const mock_instance *inst, const payd_config *cfg,
                          const char *key, double *out, payd_error *e)
{
    const char *v = inst->h->config_get(cfg, key);
    size_t i, len, digits = 0, dots = 0;
    char *end;
    double d;

    *out = 0.0;
    if (v == NULL)
        return PAYD_OK;
    len = strlen(v);
    if (len == 0 || len > 24)
        goto bad;
    for (i = 0; i < len; i++) {
        if (v[i] >= '0' && v[i] <= '9')
            digits++;
        else if (v[i] == '.')
            dots++;
        else
            goto bad;
    }
    if (digits == 0 || dots > 1)
        goto bad;
    d = strtod(v, &end);
    if (*end != '\0' || !(d >= 0.0 && d <= 1.0))
        goto bad;
    *out = d;
    return PAYD_OK;
bad:
    return payd_fail(e, PAYD_E_INVALID,
                     "mock: invalid value for %s: expected a number from 0.0 "
                     "to 1.0",
                     key);
}

static void mock_instance_free(mock_instance *inst)
{
    if (inst == NULL)
        return;
    if (inst->secret != NULL) {
        inst->h->cleanse(inst->secret, inst->secret_len);
        free(inst->secret);
    }
    free(inst->account);
    free(inst->public_url);
    free(inst->webhook_url);
    free(inst);
}

/* Read and check every key into `inst`. PAYD_OK, PAYD_E_INVALID naming the
 * key, PAYD_E_NOMEM or PAYD_E_INTERNAL. */
static int mock_configure(mock_instance *inst, const payd_config *cfg,
                          payd_error *e)
{
    const payd_host *h = inst->h;
    const char *name = h->config_get(cfg, "payd.instance");
    const char *pub = h->config_get(cfg, "payd.public_url");
    const char *hook = h->config_get(cfg, "payd.webhook_url");
    const char *secret = h->config_get(cfg, "webhook_secret");
    const char *webhooks = h->config_get(cfg, "webhooks");
    const char *controls = h->config_get(cfg, "test_controls");
    size_t n;
    int rc;

    if (name == NULL || name[0] == '\0')
        name = "mock";
    if (strlen(name) > MOCK_ID_MAX)
        return payd_fail(e, PAYD_E_INVALID, "mock: payd.instance too long");
    inst->account = strdup(name);
    inst->public_url = strdup(pub != NULL ? pub : "");
    inst->webhook_url = hook != NULL && hook[0] != '\0' ? strdup(hook) : NULL;
    if (inst->account == NULL || inst->public_url == NULL ||
        (hook != NULL && hook[0] != '\0' && inst->webhook_url == NULL))
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    n = strlen(inst->public_url);
    while (n > 0 && inst->public_url[n - 1] == '/')
        inst->public_url[--n] = '\0';

    if ((rc = payd_conf_int(inst->h, cfg, "settle_ms", 2000, 0, 3600000,
                            &inst->settle_ms, e, "mock")) != PAYD_OK ||
        (rc = payd_conf_int(inst->h, cfg, "latency_ms", 0, 0, 60000,
                            &inst->latency_ms, e, "mock")) != PAYD_OK ||
        (rc = payd_conf_int(inst->h, cfg, "webhook_tolerance_s", 300, 1,
                            86400, &inst->tolerance_s, e,
                            "mock")) != PAYD_OK ||
        (rc = mock_conf_rate(inst, cfg, "transient_rate",
                             &inst->transient_rate, e)) != PAYD_OK ||
        (rc = mock_conf_rate(inst, cfg, "timeout_rate", &inst->timeout_rate,
                             e)) != PAYD_OK)
        return rc;

    if (webhooks == NULL || strcasecmp(webhooks, "on") == 0)
        inst->webhooks = 1;
    else if (strcasecmp(webhooks, "off") == 0)
        inst->webhooks = 0;
    else
        return payd_fail(e, PAYD_E_INVALID,
                         "mock: invalid value for webhooks: expected on or "
                         "off");

    if (controls == NULL || strcasecmp(controls, "off") == 0)
        inst->test_controls = 0;
    else if (strcasecmp(controls, "on") == 0)
        inst->test_controls = 1;
    else
        return payd_fail(e, PAYD_E_INVALID,
                         "mock: invalid value for test_controls: expected "
                         "on or off");

    if (secret != NULL) {
        n = strlen(secret);
        if (n == 0 || n > 512)
            return payd_fail(e, PAYD_E_INVALID,
                             "mock: invalid value for webhook_secret: "
                             "expected 1 to 512 bytes");
        inst->secret = strdup(secret);
        inst->secret_len = n;
    } else {
        inst->secret = malloc(65);
        inst->secret_len = 64;
        if (inst->secret != NULL &&
            mock_random_hex(h, inst->secret, 32) != PAYD_OK)
            return payd_fail(e, PAYD_E_INTERNAL, "mock: no random bytes");
    }
    if (inst->secret == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    return PAYD_OK;
}

/*
 * init: check the host, read the config, and join the module-global
 * provider (the first instance creates it and starts the webhook thread).
 * Returns 0 with *state set, or PAYD_E_INVALID (a bad key is named in
 * e->message), PAYD_E_NOMEM or PAYD_E_INTERNAL. Called alone.
 */
static int mock_init(const payd_host *h, const payd_config *cfg, void **state,
                     payd_error *e)
{
    mock_instance *inst;
    int rc;

    if (h == NULL || h->abi_major != PAYD_ABI_MAJOR ||
        h->struct_size < sizeof(payd_host))
        return payd_fail(e, PAYD_E_INVALID,
                         "mock: host does not provide the ABI 1.0 services");
    inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    inst->h = h;
    rc = mock_configure(inst, cfg, e);
    if (rc == PAYD_OK)
        rc = mock_provider_acquire(inst, e);
    if (rc != PAYD_OK) {
        mock_instance_free(inst);
        return rc;
    }
    if (inst->webhooks && inst->webhook_url == NULL)
        h->log(h, PAYD_LOG_WARN,
               "mock: no payd.webhook_url, so no webhooks will be sent");
    h->log(h, PAYD_LOG_INFO,
           "mock gateway ready (test mode; webhooks %s, settle %lld ms, "
           "latency %lld ms, transient %.2f, timeout %.2f)",
           inst->webhooks ? "on" : "off", (long long)inst->settle_ms,
           (long long)inst->latency_ms, inst->transient_rate,
           inst->timeout_rate);
    *state = inst;
    return PAYD_OK;
}

/* fini: leave the provider (the last instance joins the webhook thread
 * and frees the registry), wipe the secret, free the instance. Alone. */
static void mock_fini(void *state)
{
    mock_instance *inst = state;

    if (inst == NULL)
        return;
    mock_provider_release(inst);
    mock_instance_free(inst);
}

/* Public, static: nothing here is secret. */
static const char *mock_public_info(void *state)
{
    (void)state;
    return "{\"test_mode\":true,\"provider\":\"mock\","
           "\"test_payment_methods\":[\"pm_card_visa\",\"pm_card_mastercard\","
           "\"pm_card_chargeDeclined\",\"pm_card_insufficientFunds\","
           "\"pm_card_expired\",\"pm_card_threeDSecure2Required\","
           "\"pm_card_processing\",\"pm_card_timeout\"]}";
}

static const payd_gateway_ops mock_gateway_ops = {
    .struct_size = (uint32_t)sizeof(payd_gateway_ops),
    .create = mock_create,
    .retrieve = mock_retrieve,
    .confirm = mock_confirm,
    .capture = mock_capture,
    .cancel = mock_cancel,
    .refund = mock_refund,
    .refund_retrieve = mock_refund_retrieve,
    .webhook = mock_webhook,
    .save_method = mock_save_method,
    .delete_method = mock_delete_method,
    .list_methods = mock_list_methods,
    .page = mock_page,
    .public_info = mock_public_info,
};

static const payd_module mock_module = {
    PAYD_MODULE_V1,
    .name = "mock",
    .version = MOCK_VERSION,
    .description = "Local test gateway: Stripe-like test cards, 3-D Secure, "
                   "signed webhooks and fault injection, no network",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_CAPTURE_LATER | PAYD_CAP_PARTIAL_CAPTURE |
            PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND | PAYD_CAP_WEBHOOKS |
            PAYD_CAP_SAVED_METHODS | PAYD_CAP_3DS | PAYD_CAP_REDIRECT |
            PAYD_CAP_CANCEL | PAYD_CAP_PAGES | PAYD_CAP_CONFIRM,
    .init = mock_init,
    .fini = mock_fini,
    .gateway = &mock_gateway_ops,
    .notifier = NULL,
};

PAYD_DECLARE_MODULE(mock_module)
