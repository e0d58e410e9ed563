/*
 * modules/stripe/stripe.c - the Stripe gateway: descriptor, configuration,
 * init/fini and public_info.
 *
 * Config keys of a [gateway.<name>] section with module = stripe (the host
 * refuses any other key; every key below is read during init):
 *
 *   secret_key                 required. sk_... or rk_... Use env:NAME or
 *                              file:PATH; it is sent only as
 *                              Authorization: Bearer, never logged.
 *   publishable_key            optional pk_..., shown by GET /v1/gateways
 *                              as {"publishable_key": ...} for Stripe.js.
 *   webhook_secret             the endpoint's signing secret (whsec_...);
 *                              several, separated by commas, during a
 *                              rotation. Without it every webhook is
 *                              refused as unverifiable.
 *   api_base                   default https://api.stripe.com (tests point
 *                              it at a local fake)
 *   api_version                default 2024-06-20, sent as Stripe-Version
 *   webhook_tolerance_s        1..86400, default 300
 *   timeout_ms                 0..600000, default 0 = the host's
 *                              [server] http_timeout_ms
 *   statement_descriptor_suffix  optional, 1..22 characters
 *   automatic_payment_methods  true|false (default false): send
 *                              automatic_payment_methods[enabled]=true
 *                              instead of payment_method_types[]=card
 *
 * A bad value fails init with a message that names the key and never
 * repeats a secret.
 */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Free `s` after wiping its bytes. */
static void stripe_free_secret(const payd_host *h, char *s, size_t len)
{
    if (s == NULL)
        return;
    h->cleanse(s, len);
    free(s);
}

static void stripe_instance_free(stripe_instance *inst)
{
    size_t i;

    if (inst == NULL)
        return;
    stripe_free_secret(inst->h, inst->secret_key, inst->secret_key_len);
    for (i = 0; i < inst->webhook_secret_count; i++)
        stripe_free_secret(inst->h, inst->webhook_secrets[i],
                           inst->webhook_secret_lens[i]);
    free(inst->name);
    free(inst->publishable_key);
    free(inst->public_info);
    free(inst->api_base);
    free(inst->api_version);
    free(inst->statement_descriptor_suffix);
    free(inst);
}

/* The secret key: sk_ or rk_ then a token. Never echoed. */
static int stripe_conf_secret_key(stripe_instance *inst, const char *v,
                                  payd_error *e)
{
    size_t n;

    if (v == NULL || v[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: secret_key is required (use env:NAME or "
                         "file:PATH)");
    n = strlen(v);
    if (strncmp(v, "pk_", 3) == 0)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid value for secret_key: it is a "
                         "publishable key (pk_...), not a secret key");
    if (n < 8 || n > 512 || !payd_conf_token(v, 512) ||
        (strncmp(v, "sk_", 3) != 0 && strncmp(v, "rk_", 3) != 0))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid value for secret_key: expected a "
                         "Stripe secret key (sk_... or rk_...)");
    inst->secret_key = strdup(v);
    inst->secret_key_len = n;
    return inst->secret_key != NULL
               ? PAYD_OK
               : payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
}

/* webhook_secret: one or more secrets separated by commas (spaces around
 * them are ignored). Never echoed. */
static int stripe_conf_webhook_secrets(stripe_instance *inst, const char *v,
                                       payd_error *e)
{
    const char *p = v, *end;
    size_t n;

    if (v == NULL)
        return PAYD_OK;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strcspn(p, ",");
        n = (size_t)(end - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 || n > 512)
            return payd_fail(e, PAYD_E_INVALID,
                             "stripe: invalid value for webhook_secret: "
                             "expected one or more secrets of 1 to 512 "
                             "characters, separated by commas");
        if (inst->webhook_secret_count == STRIPE_MAX_WEBHOOK_SECRETS)
            return payd_fail(e, PAYD_E_INVALID,
                             "stripe: invalid value for webhook_secret: at "
                             "most %d secrets",
                             STRIPE_MAX_WEBHOOK_SECRETS);
        inst->webhook_secrets[inst->webhook_secret_count] = strndup(p, n);
        if (inst->webhook_secrets[inst->webhook_secret_count] == NULL)
            return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
        inst->webhook_secret_lens[inst->webhook_secret_count++] = n;
        if (*end == '\0')
            return PAYD_OK;
        p = end + 1;
    }
}

/* api_base: an http(s) URL without query, stored without trailing '/'. */
static int stripe_conf_api_base(stripe_instance *inst, const char *v,
                                payd_error *e)
{
    size_t n;

    if (v == NULL)
        v = STRIPE_DEFAULT_API_BASE;
    n = strlen(v);
    if (n < 8 || n > 512 || !payd_conf_token(v, 512) || strchr(v, '?') ||
        strchr(v, '#') ||
        (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid value for api_base: expected an "
                         "http(s) URL such as %s",
                         STRIPE_DEFAULT_API_BASE);
    inst->api_base = strdup(v);
    if (inst->api_base == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    while (n > 0 && inst->api_base[n - 1] == '/')
        inst->api_base[--n] = '\0';
    if (strncmp(v, "http://", 7) == 0)
        inst->h->log(inst->h, PAYD_LOG_WARN,
                     "stripe: api_base is not https: use it only with a "
                     "local fake");
    return PAYD_OK;
}

/* api_version: Stripe's date versions (2024-06-20) and named ones
 * (2024-09-30.acacia). */
static int stripe_conf_api_version(stripe_instance *inst, const char *v,
                                   payd_error *e)
{
    size_t i, n;

    if (v == NULL)
        v = STRIPE_DEFAULT_API_VERSION;
    n = strlen(v);
    if (n < 10 || n > 40)
        goto bad;
    for (i = 0; i < 10; i++)
        if ((i == 4 || i == 7) ? v[i] != '-' : (v[i] < '0' || v[i] > '9'))
            goto bad;
    if (n > 10 && v[10] != '.')
        goto bad;
    for (i = 11; i < n; i++)
        if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') ||
              v[i] == '_' || v[i] == '-'))
            goto bad;
    inst->api_version = strdup(v);
    return inst->api_version != NULL
               ? PAYD_OK
               : payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
bad:
    return payd_fail(e, PAYD_E_INVALID,
                     "stripe: invalid value for api_version: expected a "
                     "Stripe API version such as %s",
                     STRIPE_DEFAULT_API_VERSION);
}

/* Stripe's rules for a statement descriptor suffix: 1..22 characters, at
 * least one letter, none of < > \ ' " *. */
static int stripe_conf_descriptor(stripe_instance *inst, const char *v,
                                  payd_error *e)
{
    size_t i, n;
    int letter = 0;

    if (v == NULL)
        return PAYD_OK;
    n = strlen(v);
    if (n == 0 || n > 22)
        goto bad;
    for (i = 0; i < n; i++) {
        if (v[i] < ' ' || v[i] > '~' || strchr("<>\\'\"*", v[i]) != NULL)
            goto bad;
        if ((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z'))
            letter = 1;
    }
    if (!letter)
        goto bad;
    inst->statement_descriptor_suffix = strdup(v);
    return inst->statement_descriptor_suffix != NULL
               ? PAYD_OK
               : payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
bad:
    return payd_fail(e, PAYD_E_INVALID,
                     "stripe: invalid value for statement_descriptor_suffix: "
                     "expected 1 to 22 characters with a letter and none "
                     "of < > \\ ' \" *");
}

static int stripe_conf_bool(const char *v, int def, int *out)
{
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
        !strcasecmp(v, "on") || !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off") || !strcmp(v, "0"))
        *out = 0;
    else
        return -1;
    return 0;
}

/* The publishable key and the public_info JSON built from it. */
static int stripe_conf_public(stripe_instance *inst, const char *v,
                              payd_error *e)
{
    json_t *o;
    char *text;

    if (v != NULL) {
        size_t n = strlen(v);

        if (n < 8 || n > 512 || strncmp(v, "pk_", 3) != 0 ||
            !payd_conf_token(v, 512))
            return payd_fail(e, PAYD_E_INVALID,
                             "stripe: invalid value for publishable_key: "
                             "expected a Stripe publishable key (pk_...)");
        inst->publishable_key = strdup(v);
        if (inst->publishable_key == NULL)
            return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    }
    o = json_pack("{s:s, s:s?, s:s}", "provider", "stripe", "publishable_key",
                  inst->publishable_key, "api_version", inst->api_version);
    text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    inst->public_info = text;
    return text != NULL ? PAYD_OK
                        : payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
}

/* Read and check every key into `inst`. PAYD_OK, PAYD_E_INVALID naming the
 * key, or PAYD_E_NOMEM. */
static int stripe_configure(stripe_instance *inst, const payd_config *cfg,
                            payd_error *e)
{
    const payd_host *h = inst->h;
    const char *name = h->config_get(cfg, "payd.instance");
    const char *secret = h->config_get(cfg, "secret_key");
    const char *pub = h->config_get(cfg, "publishable_key");
    const char *hooks = h->config_get(cfg, "webhook_secret");
    const char *base = h->config_get(cfg, "api_base");
    const char *version = h->config_get(cfg, "api_version");
    const char *suffix = h->config_get(cfg, "statement_descriptor_suffix");
    const char *apm = h->config_get(cfg, "automatic_payment_methods");
    int64_t tolerance = 0, timeout = 0;
    int rc;

    inst->name = strdup(name != NULL && name[0] != '\0' ? name : "stripe");
    if (inst->name == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    rc = payd_conf_int(inst->h, cfg, "webhook_tolerance_s", 300, 1, 86400,
                       &tolerance, e, "stripe");
    if (rc == PAYD_OK)
        rc = payd_conf_int(inst->h, cfg, "timeout_ms", 0, 0, 600000,
                           &timeout, e, "stripe");
    if (rc != PAYD_OK)
        return rc;
    inst->tolerance_s = tolerance;
    inst->timeout_ms = (long)timeout;
    if ((rc = stripe_conf_secret_key(inst, secret, e)) != PAYD_OK ||
        (rc = stripe_conf_webhook_secrets(inst, hooks, e)) != PAYD_OK ||
        (rc = stripe_conf_api_base(inst, base, e)) != PAYD_OK ||
        (rc = stripe_conf_api_version(inst, version, e)) != PAYD_OK ||
        (rc = stripe_conf_descriptor(inst, suffix, e)) != PAYD_OK ||
        (rc = stripe_conf_public(inst, pub, e)) != PAYD_OK)
        return rc;
    if (stripe_conf_bool(apm, 0, &inst->automatic_payment_methods) != 0)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid value for "
                         "automatic_payment_methods: expected true or "
                         "false");
    return PAYD_OK;
}

/*
 * init: check the host, read and check the config. Returns 0 with *state
 * set, or PAYD_E_INVALID (the bad key is named in e->message, its value
 * never repeated), PAYD_E_NOMEM. Called alone, once per instance.
 */
static int stripe_init(const payd_host *h, const payd_config *cfg,
                       void **state, payd_error *e)
{
    stripe_instance *inst;
    int rc;

    if (h == NULL || h->abi_major != PAYD_ABI_MAJOR ||
        h->struct_size < sizeof(payd_host))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: host does not provide the ABI 1.0 "
                         "services");
    inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    inst->h = h;
    rc = stripe_configure(inst, cfg, e);
    if (rc != PAYD_OK) {
        stripe_instance_free(inst);
        return rc;
    }
    if (inst->webhook_secret_count == 0)
        h->log(h, PAYD_LOG_WARN,
               "stripe: no webhook_secret: incoming webhooks will be "
               "refused");
    h->log(h, PAYD_LOG_INFO,
           "stripe gateway ready (%s mode, api %s, version %s, %zu webhook "
           "secret(s), tolerance %lld s)",
           strncmp(inst->secret_key + 3, "live_", 5) == 0 ? "live" : "test",
           inst->api_base, inst->api_version, inst->webhook_secret_count,
           (long long)inst->tolerance_s);
    *state = inst;
    return PAYD_OK;
}

/* fini: wipe the secrets and free the instance. Called alone. */
static void stripe_fini(void *state)
{
    stripe_instance_free(state);
}

/* Public, non-secret data: the publishable key for Stripe.js. The string
 * lives as long as the instance. Thread-safe (immutable). */
static const char *stripe_public_info(void *state)
{
    const stripe_instance *inst = state;

    return inst != NULL ? inst->public_info : NULL;
}

static const payd_gateway_ops stripe_gateway_ops = {
    .struct_size = (uint32_t)sizeof(payd_gateway_ops),
    .create = stripe_create,
    .retrieve = stripe_retrieve,
    .confirm = stripe_confirm,
    .capture = stripe_capture,
    .cancel = stripe_cancel,
    .refund = stripe_refund,
    .refund_retrieve = stripe_refund_retrieve,
    .webhook = stripe_webhook,
    .save_method = stripe_save_method,
    .delete_method = stripe_delete_method,
    .list_methods = stripe_list_methods,
    .page = NULL,
    .public_info = stripe_public_info,
};

static const payd_module stripe_module = {
    PAYD_MODULE_V1,
    .name = "stripe",
    .version = STRIPE_VERSION,
    .description = "Stripe: PaymentIntents, Refunds, saved cards and signed "
                   "webhooks over the Stripe API",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_CAPTURE_LATER | PAYD_CAP_PARTIAL_CAPTURE |
            PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND | PAYD_CAP_WEBHOOKS |
            PAYD_CAP_SAVED_METHODS | PAYD_CAP_3DS | PAYD_CAP_REDIRECT |
            PAYD_CAP_CANCEL | PAYD_CAP_CONFIRM,
    .init = stripe_init,
    .fini = stripe_fini,
    .gateway = &stripe_gateway_ops,
    .notifier = NULL,
};

PAYD_DECLARE_MODULE(stripe_module)
