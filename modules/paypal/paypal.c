/*
 * modules/paypal/paypal.c - the PayPal gateway: descriptor, configuration,
 * init/fini and public_info.
 *
 * Config keys of a [gateway.<name>] section with module = paypal (the host
 * refuses any other key; every key below is read during init):
 *
 *   client_id            required. The REST app's client id (public).
 *   client_secret        required. Use env:NAME or file:PATH; sent only as
 *                        the Basic auth password of the token request.
 *   webhook_id           the id PayPal gave this endpoint's webhook;
 *                        part of every signed message. Without it every
 *                        webhook is refused as unverifiable.
 *   mode                 sandbox (default) or live: picks the API base,
 *                        https://api-m.sandbox.paypal.com or
 *                        https://api-m.paypal.com
 *   api_base             overrides mode's base (tests point it at a fake)
 *   webhook_verify       offline (default: certificate + SHA256withRSA
 *                        here) or api (POST
 *                        /v1/notifications/verify-webhook-signature)
 *   cert_hosts           comma list of host or host:port allowed in
 *                        PAYPAL-CERT-URL (default PayPal's API hosts)
 *   cert_ca_file         PEM trust anchors for the signing certificate's
 *                        chain (default: OpenSSL's default trust store)
 *   webhook_tolerance_s  1..86400, default 300
 *   timeout_ms           0..600000, default 0 = [server] http_timeout_ms
 *   brand_name           optional, shown on PayPal's pages (1..127)
 *   shipping_preference  optional GET_FROM_FILE, NO_SHIPPING or
 *                        SET_PROVIDED_ADDRESS
 *
 * A bad value fails init with a message that names the key and never
 * repeats a secret.
 */
#include "paypal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void paypal_instance_free(paypal_instance *inst)
{
    if (inst == NULL)
        return;
    if (inst->client_secret != NULL) {
        inst->h->cleanse(inst->client_secret, inst->client_secret_len);
        free(inst->client_secret);
    }
    inst->h->cleanse(inst->seal_key, sizeof inst->seal_key);
    paypal_cert_cache_clear(inst);
    pthread_mutex_destroy(&inst->token_mu);
    pthread_mutex_destroy(&inst->cert_mu);
    free(inst->name);
    free(inst->client_id);
    free(inst->webhook_id);
    free(inst->api_base);
    free(inst->cert_ca_file);
    free(inst->brand_name);
    free(inst->shipping_preference);
    free(inst->public_info);
    free(inst);
}

/* A copy of `v` into *dst, or PAYD_E_NOMEM. */
static int paypal_conf_copy(char **dst, const char *v, payd_error *e)
{
    *dst = strdup(v);
    return *dst != NULL ? PAYD_OK
                        : payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
}

/* client_id, client_secret and webhook_id. Secrets are never echoed. */
static int paypal_conf_credentials(paypal_instance *inst,
                                   const payd_config *cfg, payd_error *e)
{
    const payd_host *h = inst->h;
    const char *id = h->config_get(cfg, "client_id");
    const char *secret = h->config_get(cfg, "client_secret");
    const char *hook = h->config_get(cfg, "webhook_id");
    int rc;

    if (id == NULL || id[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID, "paypal: client_id is required");
    if (!payd_conf_token(id, 512))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid value for client_id: expected "
                         "printable characters without spaces");
    if (secret == NULL || secret[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: client_secret is required (use env:NAME "
                         "or file:PATH)");
    if (!payd_conf_token(secret, 512))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid value for client_secret: "
                         "expected printable characters without spaces");
    if (hook != NULL && (!payd_conf_token(hook, 128) || strchr(hook, '|')))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid value for webhook_id: expected "
                         "PayPal's webhook id");
    if ((rc = paypal_conf_copy(&inst->client_id, id, e)) != PAYD_OK ||
        (rc = paypal_conf_copy(&inst->client_secret, secret, e)) != PAYD_OK ||
        (hook != NULL &&
         (rc = paypal_conf_copy(&inst->webhook_id, hook, e)) != PAYD_OK))
        return rc;
    inst->client_secret_len = strlen(secret);
    return PAYD_OK;
}

/* mode and api_base: an http(s) URL without query, no trailing '/'. */
static int paypal_conf_api_base(paypal_instance *inst, const payd_config *cfg,
                                payd_error *e)
{
    const char *mode = inst->h->config_get(cfg, "mode");
    const char *v = inst->h->config_get(cfg, "api_base");
    size_t n;

    if (mode == NULL || strcmp(mode, "sandbox") == 0)
        inst->live = 0;
    else if (strcmp(mode, "live") == 0)
        inst->live = 1;
    else
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid value for mode: expected sandbox "
                         "or live");
    if (v == NULL)
        v = inst->live ? PAYPAL_LIVE_API_BASE : PAYPAL_SANDBOX_API_BASE;
    n = strlen(v);
    if (n < 8 || !payd_conf_token(v, 512) || strchr(v, '?') ||
        strchr(v, '#') ||
        (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid value for api_base: expected an "
                         "http(s) URL such as %s",
                         PAYPAL_SANDBOX_API_BASE);
    if (paypal_conf_copy(&inst->api_base, v, e) != PAYD_OK)
        return PAYD_E_NOMEM;
    while (n > 0 && inst->api_base[n - 1] == '/')
        inst->api_base[--n] = '\0';
    if (strncmp(v, "http://", 7) == 0)
        inst->h->log(inst->h, PAYD_LOG_WARN,
                     "paypal: api_base is not https: use it only with a "
                     "local fake");
    return PAYD_OK;
}

/* webhook_verify, cert_hosts, cert_ca_file. */
static int paypal_conf_webhooks(paypal_instance *inst, const payd_config *cfg,
                                payd_error *e)
{
    const payd_host *h = inst->h;
    const char *verify = h->config_get(cfg, "webhook_verify");
    const char *hosts = h->config_get(cfg, "cert_hosts");
    const char *ca = h->config_get(cfg, "cert_ca_file");
    int rc;

    if (verify == NULL || strcmp(verify, "offline") == 0)
        inst->verify_mode = PAYPAL_VERIFY_OFFLINE;
    else if (strcmp(verify, "api") == 0)
        inst->verify_mode = PAYPAL_VERIFY_API;
    else
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid value for webhook_verify: "
                         "expected offline or api");
    rc = paypal_cert_hosts_parse(inst, hosts, e);
    if (rc != PAYD_OK)
        return rc;
    if (ca != NULL) {
        if (ca[0] == '\0' || access(ca, R_OK) != 0)
            return payd_fail(e, PAYD_E_INVALID,
                             "paypal: invalid value for cert_ca_file: not "
                             "a readable file");
        return paypal_conf_copy(&inst->cert_ca_file, ca, e);
    }
    return PAYD_OK;
}

/* brand_name and shipping_preference, for the buyer's PayPal pages. */
static int paypal_conf_experience(paypal_instance *inst,
                                  const payd_config *cfg, payd_error *e)
{
    const char *brand = inst->h->config_get(cfg, "brand_name");
    const char *ship = inst->h->config_get(cfg, "shipping_preference");

    if (brand != NULL) {
        if (!payd_text_ok(brand, 127))
            return payd_fail(e, PAYD_E_INVALID,
                             "paypal: invalid value for brand_name: "
                             "expected 1 to 127 characters");
        if (paypal_conf_copy(&inst->brand_name, brand, e) != PAYD_OK)
            return PAYD_E_NOMEM;
    }
    if (ship != NULL) {
        if (strcmp(ship, "GET_FROM_FILE") != 0 &&
            strcmp(ship, "NO_SHIPPING") != 0 &&
            strcmp(ship, "SET_PROVIDED_ADDRESS") != 0)
            return payd_fail(e, PAYD_E_INVALID,
                             "paypal: invalid value for shipping_preference: "
                             "expected GET_FROM_FILE, NO_SHIPPING or "
                             "SET_PROVIDED_ADDRESS");
        return paypal_conf_copy(&inst->shipping_preference, ship, e);
    }
    return PAYD_OK;
}

/* The public_info JSON: what PayPal's JS SDK needs, nothing secret. */
static int paypal_conf_public(paypal_instance *inst, payd_error *e)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "provider", "paypal", "client_id",
                          inst->client_id, "mode",
                          inst->live ? "live" : "sandbox");
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    inst->public_info = text;
    return text != NULL ? PAYD_OK
                        : payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
}

/* Every key this module knows. */
static const char *const paypal_conf_keys[] = {
    "client_id",      "client_secret",       "webhook_id",
    "mode",           "api_base",            "webhook_verify",
    "cert_hosts",     "cert_ca_file",        "webhook_tolerance_s",
    "timeout_ms",     "brand_name",          "shipping_preference",
};

/* Read and check every key into `inst`. */
static int paypal_configure(paypal_instance *inst, const payd_config *cfg,
                            payd_error *e)
{
    const char *name = inst->h->config_get(cfg, "payd.instance");
    int64_t tolerance = 0, timeout = 0;
    size_t i;
    int rc;

    /* The host reports keys init never read as unknown: read them all
     * first, so a bad value names only itself, not the keys after it. */
    for (i = 0; i < sizeof paypal_conf_keys / sizeof *paypal_conf_keys; i++)
        (void)inst->h->config_get(cfg, paypal_conf_keys[i]);

    inst->name = strdup(name != NULL && name[0] != '\0' ? name : "paypal");
    if (inst->name == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    if ((rc = payd_conf_int(inst->h, cfg, "webhook_tolerance_s", 300, 1,
                            86400, &tolerance, e, "paypal")) != PAYD_OK ||
        (rc = payd_conf_int(inst->h, cfg, "timeout_ms", 0, 0, 600000,
                            &timeout, e, "paypal")) != PAYD_OK)
        return rc;
    inst->tolerance_s = tolerance;
    inst->timeout_ms = (long)timeout;
    if ((rc = paypal_conf_credentials(inst, cfg, e)) != PAYD_OK ||
        (rc = paypal_conf_api_base(inst, cfg, e)) != PAYD_OK ||
        (rc = paypal_conf_webhooks(inst, cfg, e)) != PAYD_OK ||
        (rc = paypal_conf_experience(inst, cfg, e)) != PAYD_OK ||
        (rc = paypal_conf_public(inst, e)) != PAYD_OK)
        return rc;
    return PAYD_OK;
}

/*
 * init: check the host, read and check the config. Returns 0 with *state
 * set, or PAYD_E_INVALID (the bad key is named, its value never
 * repeated), PAYD_E_NOMEM. No network: the first token is fetched by the
 * first call that needs it. Called alone, once per instance.
 */
static int paypal_init(const payd_host *h, const payd_config *cfg,
                       void **state, payd_error *e)
{
    paypal_instance *inst;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (h == NULL || h->abi_major != PAYD_ABI_MAJOR ||
        h->struct_size < offsetof(payd_host, arena_new))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: host does not provide the ABI 1.0 "
                         "services");
    inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    inst->h = h;
    pthread_mutex_init(&inst->token_mu, NULL);
    pthread_mutex_init(&inst->cert_mu, NULL);
    rc = paypal_configure(inst, cfg, e);
    if (rc == PAYD_OK &&
        paypal_seal_key(h, inst, inst->seal_key, inst->token_cache_key) != PAYD_OK)
        rc = payd_fail(e, PAYD_E_INVALID,
                       "paypal: client_id or api_base is too long");
    if (rc != PAYD_OK) {
        paypal_instance_free(inst);
        return rc;
    }
    if (inst->webhook_id == NULL)
        h->log(h, PAYD_LOG_WARN,
               "paypal: no webhook_id: incoming webhooks will be refused");
    h->log(h, PAYD_LOG_INFO,
           "paypal gateway ready (%s, api %s, webhooks verified %s, "
           "tolerance %lld s)",
           inst->live ? "live" : "sandbox", inst->api_base,
           inst->verify_mode == PAYPAL_VERIFY_API ? "by the API" : "offline",
           (long long)inst->tolerance_s);
    *state = inst;
    return PAYD_OK;
}

/* fini: wipe the secret, drop cached certificates, free. Called alone. */
static void paypal_fini(void *state)
{
    paypal_instance_free(state);
}

/* Public, non-secret data: the client id and mode for PayPal's JS SDK.
 * Lives as long as the instance. Thread-safe (immutable). */
static const char *paypal_public_info(void *state)
{
    const paypal_instance *inst = state;

    return inst != NULL ? inst->public_info : NULL;
}

static const payd_gateway_ops paypal_gateway_ops = {
    .struct_size = (uint32_t)sizeof(payd_gateway_ops),
    .create = paypal_create,
    .retrieve = paypal_retrieve,
    .confirm = paypal_confirm,
    .capture = paypal_capture,
    .cancel = paypal_cancel,
    .refund = paypal_refund,
    .refund_retrieve = paypal_refund_retrieve,
    .webhook = paypal_webhook,
    .save_method = NULL,
    .delete_method = NULL,
    .list_methods = NULL,
    .page = NULL,
    .public_info = paypal_public_info,
};

static const payd_module paypal_module = {
    PAYD_MODULE_V1,
    .name = "paypal",
    .version = PAYPAL_VERSION,
    .description = "PayPal: Orders v2 with buyer approval, authorizations, "
                   "refunds and offline-verified webhooks",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_CAPTURE_LATER | PAYD_CAP_PARTIAL_CAPTURE |
            PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND | PAYD_CAP_WEBHOOKS |
            PAYD_CAP_REDIRECT | PAYD_CAP_CANCEL | PAYD_CAP_CONFIRM,
    .init = paypal_init,
    .fini = paypal_fini,
    .gateway = &paypal_gateway_ops,
    .notifier = NULL,
};

PAYD_DECLARE_MODULE(paypal_module)
