/*
 * tests/unit/test_paypal_module.c - the PayPal gateway, driven through its
 * ABI with no network.
 *
 * The module is dlopen'ed exactly as payd loads it (PAYD_PAYPAL_SO, else
 * $PAYD_BUILD/modules/paypal.so, else build/modules/paypal.so) and given
 * the services of tests/unit/fake_host.c, except three this file lends:
 *   http   records each request (method, url, body, the headers PayPal
 *          cares about, Basic auth user) and answers: the token endpoint
 *          with a numbered token (tok1, tok2, ...), registered certificate
 *          URLs with their PEM, everything else with the next scripted
 *          status, body and Paypal-Debug-Id (or a default answer);
 *   cache  a real cache with expiry on the fake clock, as the host's is;
 *   so the tests see exactly what goes over the wire and decide exactly
 *   what PayPal answers.
 *
 * The pure amount conversion (paypal_amount.c, with the JSON and ABI
 * helpers it uses) is compiled into this file, h2o style, to test it
 * directly; the module's copy in the .so is separate and hidden.
 *
 * Covered: amount conversion both ways and rejection of bad strings,
 * config checks, the create request (intent, ids, value, headers, bearer
 * token), payer-action/approve links, confirm/capture/cancel/refund
 * paths, the error mapping, the token cache (reuse, expiry, 401 refresh
 * once, 32 threads -> one token request), event mapping of every listed
 * event, and offline webhook verification against a CA made here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "assert_text.h"
#include "fake_host.h"

/* The pure pieces, compiled in (their symbols are this binary's own). */
#include "../../modules/paypal/paypal_abi.c"
#include "../../modules/paypal/paypal_amount.c"
#include "../../modules/paypal/paypal_json.c"

#define CLIENT_ID "AUnitClientId0123"
#define CLIENT_SECRET "EUnitS3cr3t_do_not_leak_9876"
#define WEBHOOK_ID "8PT597110X687430LKGECATA"
#define API_BASE "http://127.0.0.1:9/pp"
#define CERT_HOST "certs.test:8443"
#define CERT_URL "https://certs.test:8443/certs/CERT-360caa42"

static void *dl;
static const payd_module *mod;
static const payd_gateway_ops *gw;
static void *st;
static payd_arena *arena;
static payd_host th; /* fake_host's services with our http and cache */

/* ------------------------------------------------------------------------ */
/* The scripted HTTP client                                                 */
/* ------------------------------------------------------------------------ */

typedef struct answer {
    long status;       /* 0 = transport error (timeout) */
    const char *body;
    const char *debug_id;
} answer;

typedef struct call {
    char method[8];
    char url[512];
    char body[8192];
    char request_id[160];
    char auth[600];
    char prefer[64];
    char ctype[128];
} call;

#define MAX_CALLS 64

static pthread_mutex_t http_mu = PTHREAD_MUTEX_INITIALIZER;
static answer script[32];
static size_t nscript, script_pos;
static answer default_answer;
static call calls[MAX_CALLS];
static size_t ncalls;
/* The token endpoint. */
static int token_requests;
static long token_status;
static int token_delay_ms;
static char token_user[128], token_body[256];
static int token_had_password;
/* Certificate URLs and what they serve. */
static struct {
    char url[256];
    char *pem;
} cert_routes[4];
static int cert_downloads;

static void script_reset(void)
{
    size_t i;

    pthread_mutex_lock(&http_mu);
    nscript = script_pos = ncalls = 0;
    default_answer = (answer){200, "{}", NULL};
    token_requests = 0;
    token_status = 200;
    token_delay_ms = 0;
    token_user[0] = token_body[0] = '\0';
    token_had_password = 0;
    for (i = 0; i < 4; i++) {
        free(cert_routes[i].pem);
        memset(&cert_routes[i], 0, sizeof cert_routes[i]);
    }
    cert_downloads = 0;
    pthread_mutex_unlock(&http_mu);
}

static void script_push(long status, const char *body, const char *debug_id)
{
    pthread_mutex_lock(&http_mu);
    if (nscript < sizeof script / sizeof script[0])
        script[nscript++] = (answer){status, body, debug_id};
    pthread_mutex_unlock(&http_mu);
}

static void cert_route(const char *url, const char *pem)
{
    size_t i;

    pthread_mutex_lock(&http_mu);
    for (i = 0; i < 4; i++) {
        if (cert_routes[i].url[0] == '\0' || strcmp(cert_routes[i].url, url) == 0) {
            snprintf(cert_routes[i].url, sizeof cert_routes[i].url, "%s", url);
            free(cert_routes[i].pem);
            cert_routes[i].pem = strdup(pem);
            break;
        }
    }
    pthread_mutex_unlock(&http_mu);
}

static const char *hdr(const payd_http_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->header_count; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static void copy_hdr(char *dst, size_t n, const payd_http_request *req,
                     const char *name)
{
    snprintf(dst, n, "%s", hdr(req, name) ? hdr(req, name) : "");
}

static void respond(payd_http_response *res, payd_arena *a, long status,
                    const char *body, const char *debug_id)
{
    res->status = status;
    res->body = th.strdup(a, body);
    res->body_len = strlen(body);
    if (debug_id != NULL) {
        res->headers = th.alloc(a, sizeof(payd_header));
        res->headers[0].name = "Paypal-Debug-Id";
        res->headers[0].value = th.strdup(a, debug_id);
        res->header_count = 1;
    }
}

static int th_http(const payd_host *h, const payd_http_request *req,
                   payd_http_response *res, payd_arena *a, payd_error *e)
{
    answer ans;
    call *c;
    size_t i;

    (void)h;
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    if (strstr(req->url, "/v1/oauth2/token") != NULL) {
        char body[160];
        long status;
        int n;

        pthread_mutex_lock(&http_mu);
        n = ++token_requests;
        status = token_status;
        snprintf(token_user, sizeof token_user, "%s",
                 req->username ? req->username : "");
        snprintf(token_body, sizeof token_body, "%.*s", (int)req->body_len,
                 req->body ? req->body : "");
        token_had_password = req->password != NULL &&
                             strcmp(req->password, CLIENT_SECRET) == 0;
        pthread_mutex_unlock(&http_mu);
        if (token_delay_ms > 0)
            usleep((useconds_t)token_delay_ms * 1000);
        if (status != 200) {
            respond(res, a, status,
                    "{\"error\":\"invalid_client\",\"error_description\":"
                    "\"Client Authentication failed\"}",
                    NULL);
            return PAYD_OK;
        }
        snprintf(body, sizeof body,
                 "{\"scope\":\"openid\",\"access_token\":\"tok%d\","
                 "\"token_type\":\"Bearer\",\"app_id\":\"APP-1\","
                 "\"expires_in\":32400,\"nonce\":\"n\"}",
                 n);
        respond(res, a, 200, body, NULL);
        return PAYD_OK;
    }
    pthread_mutex_lock(&http_mu);
    for (i = 0; i < 4; i++) {
        if (cert_routes[i].url[0] != '\0' &&
            strcmp(cert_routes[i].url, req->url) == 0) {
            char *pem = th.strdup(a, cert_routes[i].pem);

            cert_downloads++;
            pthread_mutex_unlock(&http_mu);
            respond(res, a, 200, pem, NULL);
            return PAYD_OK;
        }
    }
    ans = script_pos < nscript ? script[script_pos++] : default_answer;
    if (ncalls < MAX_CALLS) {
        c = &calls[ncalls++];
        memset(c, 0, sizeof *c);
        snprintf(c->method, sizeof c->method, "%s", req->method);
        snprintf(c->url, sizeof c->url, "%s", req->url);
        snprintf(c->body, sizeof c->body, "%.*s", (int)req->body_len,
                 req->body ? req->body : "");
        copy_hdr(c->request_id, sizeof c->request_id, req, "PayPal-Request-Id");
        copy_hdr(c->auth, sizeof c->auth, req, "Authorization");
        copy_hdr(c->prefer, sizeof c->prefer, req, "Prefer");
        copy_hdr(c->ctype, sizeof c->ctype, req, "Content-Type");
    }
    pthread_mutex_unlock(&http_mu);
    if (ans.status == 0) {
        e->code = PAYD_E_TRANSIENT;
        snprintf(e->message, sizeof e->message,
                 "POST 127.0.0.1: Timeout was reached");
        return PAYD_E_TRANSIENT;
    }
    respond(res, a, ans.status, ans.body, ans.debug_id);
    return PAYD_OK;
}

static call call_at(size_t i)
{
    call c;

    pthread_mutex_lock(&http_mu);
    assert_true(i < ncalls);
    c = calls[i];
    pthread_mutex_unlock(&http_mu);
    return c;
}

static size_t call_count(void)
{
    size_t n;

    pthread_mutex_lock(&http_mu);
    n = ncalls;
    pthread_mutex_unlock(&http_mu);
    return n;
}

static int tokens_asked(void)
{
    int n;

    pthread_mutex_lock(&http_mu);
    n = token_requests;
    pthread_mutex_unlock(&http_mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* A cache with expiry on the fake clock, like the host's                   */
/* ------------------------------------------------------------------------ */

#define CACHE_SLOTS 8

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char key[64];
    char *value;
    size_t len;
    int64_t expires;
} cache[CACHE_SLOTS];
static int cache_last_ttl;

static void cache_reset(void)
{
    size_t i;

    pthread_mutex_lock(&cache_mu);
    for (i = 0; i < CACHE_SLOTS; i++) {
        free(cache[i].value);
        memset(&cache[i], 0, sizeof cache[i]);
    }
    cache_last_ttl = 0;
    pthread_mutex_unlock(&cache_mu);
}

static int th_cache_get(const payd_host *h, const char *key, payd_arena *a,
                        char **value, size_t *value_len)
{
    int64_t now = h->now(h);
    int rc = PAYD_E_NOTFOUND;
    size_t i;

    pthread_mutex_lock(&cache_mu);
    for (i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].value != NULL && strcmp(cache[i].key, key) == 0 &&
            cache[i].expires > now) {
            *value = th.strndup(a, cache[i].value, cache[i].len);
            *value_len = cache[i].len;
            rc = PAYD_OK;
        }
    }
    pthread_mutex_unlock(&cache_mu);
    return rc;
}

static int th_cache_set(const payd_host *h, const char *key, const void *value,
                        size_t value_len, int ttl_s)
{
    size_t i, slot = CACHE_SLOTS;

    pthread_mutex_lock(&cache_mu);
    for (i = 0; i < CACHE_SLOTS; i++) {
        if (strcmp(cache[i].key, key) == 0 || (cache[i].value == NULL && slot == CACHE_SLOTS))
            slot = i;
    }
    if (slot < CACHE_SLOTS) {
        free(cache[slot].value);
        snprintf(cache[slot].key, sizeof cache[slot].key, "%s", key);
        cache[slot].value = malloc(value_len + 1);
        memcpy(cache[slot].value, value, value_len);
        cache[slot].value[value_len] = '\0';
        cache[slot].len = value_len;
        cache[slot].expires = h->now(h) + ttl_s;
        cache_last_ttl = ttl_s;
    }
    pthread_mutex_unlock(&cache_mu);
    return PAYD_OK;
}

/* The module's token entries are "oauth_token.v1.<key id>". */
#define TOKEN_ENTRY "oauth_token.v1."

/* The `nth` cached entry whose key starts with `prefix` (in slot order):
 * its key to `key` (64 bytes, may be NULL) and a malloc'd copy of its
 * value, or NULL when there is none. */
static char *cache_peek(const char *prefix, int nth, char *key)
{
    char *v = NULL;
    size_t i;

    pthread_mutex_lock(&cache_mu);
    for (i = 0; i < CACHE_SLOTS && v == NULL; i++)
        if (cache[i].value != NULL && strncmp(cache[i].key, prefix, strlen(prefix)) == 0 && nth-- == 0) {
            v = strdup(cache[i].value);
            if (key != NULL)
                snprintf(key, 64, "%s", cache[i].key);
        }
    pthread_mutex_unlock(&cache_mu);
    return v;
}

/* How many cached entries have keys starting with `prefix`. */
static int cache_count(const char *prefix)
{
    int n = 0;
    size_t i;

    pthread_mutex_lock(&cache_mu);
    for (i = 0; i < CACHE_SLOTS; i++)
        n += cache[i].value != NULL && strncmp(cache[i].key, prefix, strlen(prefix)) == 0;
    pthread_mutex_unlock(&cache_mu);
    return n;
}

/* Replaces the value under exactly `key` (which must exist). */
static void cache_put(const char *key, const char *value)
{
    size_t i;

    pthread_mutex_lock(&cache_mu);
    for (i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].value != NULL && strcmp(cache[i].key, key) == 0) {
            free(cache[i].value);
            cache[i].value = strdup(value);
            cache[i].len = strlen(value);
        }
    pthread_mutex_unlock(&cache_mu);
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    mod = fake_module_load("paypal", &dl);
    if (mod == NULL)
        return -1;
    gw = mod->gateway;
    th = *fake_host();
    th.http = th_http;
    th.cache_get = th_cache_get;
    th.cache_set = th_cache_set;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    script_reset();
    cache_reset();
    fake_module_unload(dl);
    return 0;
}

static void default_config(void)
{
    fake_config_set("payd.instance", "paypal");
    fake_config_set("client_id", CLIENT_ID);
    fake_config_set("client_secret", CLIENT_SECRET);
    fake_config_set("webhook_id", WEBHOOK_ID);
    fake_config_set("api_base", API_BASE "/");
    fake_config_set("cert_hosts", "api.paypal.com, " CERT_HOST);
}

static int start_instance(payd_error *e)
{
    return fake_module_start(mod, &th, &st, e);
}

static int setup(void **state)
{
    payd_error e;

    (void)state;
    fake_host_reset();
    script_reset();
    cache_reset();
    default_config();
    arena = fake_arena_new();
    return start_instance(&e) == PAYD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fake_module_stop(mod, &st);
    fake_arena_free(arena);
    arena = NULL;
    /* Nothing the module logged may hold the secret or a token. */
    assert_false(fake_log_contains(CLIENT_SECRET));
    assert_false(fake_log_contains("S3cr3t"));
    assert_false(fake_log_contains("tok1"));
    assert_false(fake_log_contains("tok2"));
    return 0;
}

/* Restart the instance with key, value, ..., NULL over the defaults (a NULL
 * value removes the key). Returns init's code; e gets its message. */
#define restart_with(e, ...) fake_module_restart_with(mod, &th, &st, (e), __VA_ARGS__)

static payd_payment_req pay_req(void)
{
    payd_payment_req r;

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.payment_id = "pay_unit1";
    r.order_id = "ord_unit1";
    r.order_number = "1042";
    r.idempotency_key = "payd-pay_unit1-create-1";
    r.amount = 1999;
    r.currency = "USD";
    r.currency_exponent = 2;
    r.capture_method = PAYD_CAPTURE_AUTOMATIC;
    r.return_url = "https://shop.test/return?o=1042";
    return r;
}

/* The string at `path` of call body `body` (parsed), copied. */
static void body_str(const char *body, const char *path, char *out, size_t n)
{
    json_t *o = json_loads(body, 0, NULL);
    const char *s = paypal_jstr(o, path);

    assert_non_null(o);
    snprintf(out, n, "%s", s != NULL ? s : "(absent)");
    json_decref(o);
}

static void expect_body_str(const char *body, const char *path,
                            const char *want)
{
    char got[512];

    body_str(body, path, got, sizeof got);
    if (strcmp(got, want) != 0) {
        print_error("%s: expected \"%s\", got \"%s\" in %s\n", path, want, got,
                    body);
        fail();
    }
}

/* An order JSON: `status`, the purchase unit's amount and `payments`
 * (a JSON object text or NULL), `links` (array text or NULL). */
static const char *order_json(const char *status, const char *value,
                              const char *payments, const char *links)
{
    static char buf[4096];

    snprintf(buf, sizeof buf,
             "{\"id\":\"5O190127TN364715T\",\"status\":\"%s\","
             "\"intent\":\"CAPTURE\",\"payer\":{\"email_address\":"
             "\"buyer@example.com\",\"name\":{\"given_name\":\"Ann\"}},"
             "\"purchase_units\":[{\"reference_id\":\"ord_unit1\","
             "\"custom_id\":\"pay_unit1\",\"invoice_id\":\"1042\","
             "\"amount\":{\"currency_code\":\"USD\",\"value\":\"%s\"}%s%s}],"
             "\"links\":%s}",
             status, value, payments ? ",\"payments\":" : "",
             payments ? payments : "",
             links ? links
                   : "[{\"href\":\"https://api-m.sandbox.paypal.com/v2/checkout/"
                     "orders/5O190127TN364715T\",\"rel\":\"self\","
                     "\"method\":\"GET\"}]");
    return buf;
}

#define APPROVE_LINKS                                                         \
    "[{\"href\":\"https://api-m.sandbox.paypal.com/v2/checkout/orders/"      \
    "5O190127TN364715T\",\"rel\":\"self\",\"method\":\"GET\"},"              \
    "{\"href\":\"https://www.sandbox.paypal.com/checkoutnow?token="          \
    "5O190127TN364715T\",\"rel\":\"approve\",\"method\":\"GET\"}]"
#define PAYER_ACTION_LINKS                                                    \
    "[{\"href\":\"https://www.sandbox.paypal.com/checkoutnow?token="          \
    "5O190127TN364715T\",\"rel\":\"payer-action\",\"method\":\"GET\"}]"

#define CAPTURES(status, value)                                               \
    "{\"captures\":[{\"id\":\"3C679366HH908993F\",\"status\":\"" status      \
    "\",\"amount\":{\"currency_code\":\"USD\",\"value\":\"" value "\"},"     \
    "\"custom_id\":\"pay_unit1\"}]}"
#define AUTHORIZATIONS(status, value)                                         \
    "{\"authorizations\":[{\"id\":\"0VF52814937998046\",\"status\":\""       \
    status "\",\"amount\":{\"currency_code\":\"USD\",\"value\":\"" value     \
    "\"}}]}"

/* ------------------------------------------------------------------------ */
/* Amounts                                                                  */
/* ------------------------------------------------------------------------ */

static void expect_format(int64_t minor, const char *currency, int exp,
                          const char *want)
{
    char out[PAYPAL_AMOUNT_TEXT_MAX];
    int64_t back = -1;

    assert_int_equal(paypal_amount_format(minor, currency, exp, out), PAYD_OK);
    assert_string_equal(out, want);
    /* And back again: the round trip is exact. */
    assert_int_equal(paypal_amount_parse(out, paypal_currency_exponent(currency),
                                         &back),
                     PAYD_OK);
    assert_int_equal(back, minor);
}

static void test_amount_minor_units_become_decimal_strings_by_exponent(void **state)
{
    (void)state;
    expect_format(1999, "USD", 2, "19.99");
    expect_format(5, "USD", 2, "0.05");
    expect_format(100000, "EUR", 2, "1000.00");
    expect_format(500, "JPY", 0, "500");
    expect_format(1, "JPY", 0, "1");
    expect_format(1234, "KWD", 3, "1.234");
    expect_format(7, "KWD", 3, "0.007");
    expect_format(99999999999LL, "USD", 2, "999999999.99");
    assert_int_equal(paypal_currency_exponent("JPY"), 0);
    assert_int_equal(paypal_currency_exponent("KWD"), 3);
    assert_int_equal(paypal_currency_exponent("USD"), 2);
    assert_int_equal(paypal_currency_exponent("usd"), -1);
}

static void test_amount_whole_unit_currencies_refuse_fractions(void **state)
{
    char out[PAYPAL_AMOUNT_TEXT_MAX];
    int64_t minor = 0;

    (void)state;
    /* HUF and TWD have two decimals in ISO 4217 but none at PayPal. */
    assert_int_equal(paypal_amount_format(150000, "HUF", 2, out), PAYD_OK);
    assert_string_equal(out, "1500");
    assert_int_equal(paypal_amount_format(150050, "HUF", 2, out), PAYD_E_INVALID);
    assert_int_equal(paypal_amount_parse("1500", 2, &minor), PAYD_OK);
    assert_int_equal(minor, 150000);
    assert_int_equal(paypal_amount_format(-1, "USD", 2, out), PAYD_E_INVALID);
    assert_int_equal(paypal_amount_format(1, "USD", 5, out), PAYD_E_INVALID);
}

static void test_amount_decimal_strings_parse_into_minor_units(void **state)
{
    int64_t minor = 0;

    (void)state;
    assert_int_equal(paypal_amount_parse("19.99", 2, &minor), PAYD_OK);
    assert_int_equal(minor, 1999);
    assert_int_equal(paypal_amount_parse("19.9", 2, &minor), PAYD_OK);
    assert_int_equal(minor, 1990);
    assert_int_equal(paypal_amount_parse("20", 2, &minor), PAYD_OK);
    assert_int_equal(minor, 2000);
    assert_int_equal(paypal_amount_parse("500", 0, &minor), PAYD_OK);
    assert_int_equal(minor, 500);
    assert_int_equal(paypal_amount_parse("1.234", 3, &minor), PAYD_OK);
    assert_int_equal(minor, 1234);
    assert_int_equal(paypal_amount_parse("0.00", 2, &minor), PAYD_OK);
    assert_int_equal(minor, 0);
}

static void test_amount_bad_decimal_strings_are_rejected(void **state)
{
    static const struct {
        const char *text;
        int exp;
    } bad[] = {
        {"", 2},        {"-1.00", 2},      {"+1.00", 2},  {"1.", 2},
        {".50", 2},     {"1.999", 2},      {"1,00", 2},   {" 1.00", 2},
        {"1.00 ", 2},   {"1e3", 2},        {"0x10", 2},   {"1.2.3", 2},
        {"1.5", 0},     {"1.2345", 3},     {"NaN", 2},    {"1000000000000000", 2},
        {"99999999999999999999", 0},
    };
    int64_t minor = 42;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (paypal_amount_parse(bad[i].text, bad[i].exp, &minor) != PAYD_E_INVALID) {
            print_error("\"%s\" (exponent %d) was accepted\n", bad[i].text,
                        bad[i].exp);
            fail();
        }
    }
    assert_int_equal(paypal_amount_parse(NULL, 2, &minor), PAYD_E_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Config                                                                   */
/* ------------------------------------------------------------------------ */

static void test_init_requires_credentials_and_names_bad_keys(void **state)
{
    payd_error e;

    (void)state;
    assert_int_equal(restart_with(&e, "client_id", NULL, NULL), PAYD_E_INVALID);
    assert_contains(e.message, "client_id");
    fake_config_set("client_id", CLIENT_ID);
    assert_int_equal(restart_with(&e, "client_secret", NULL, NULL), PAYD_E_INVALID);
    assert_contains(e.message, "client_secret");
    assert_int_equal(restart_with(&e, "client_secret", "has space " CLIENT_SECRET, NULL),
                     PAYD_E_INVALID);
    assert_not_contains(e.message, "S3cr3t");
    fake_config_set("client_secret", CLIENT_SECRET);
    assert_int_equal(restart_with(&e, "mode", "production", NULL), PAYD_E_INVALID);
    assert_contains(e.message, "mode");
    fake_config_set("mode", NULL);
    assert_int_equal(restart_with(&e, "webhook_verify", "maybe", NULL), PAYD_E_INVALID);
    assert_contains(e.message, "webhook_verify");
    fake_config_set("webhook_verify", NULL);
    assert_int_equal(restart_with(&e, "cert_hosts", "good.host, bad host", NULL),
                     PAYD_E_INVALID);
    assert_contains(e.message, "cert_hosts");
    assert_int_equal(restart_with(&e, "cert_hosts", "h:99999", NULL), PAYD_E_INVALID);
    fake_config_set("cert_hosts", NULL);
    assert_int_equal(restart_with(&e, "cert_ca_file", "/nonexistent/ca.pem", NULL),
                     PAYD_E_INVALID);
    assert_contains(e.message, "cert_ca_file");
    fake_config_set("cert_ca_file", NULL);
    assert_int_equal(restart_with(&e, "webhook_tolerance_s", "0", NULL), PAYD_E_INVALID);
    assert_contains(e.message, "webhook_tolerance_s");
    fake_config_set("webhook_tolerance_s", NULL);
    assert_int_equal(restart_with(&e, "shipping_preference", "ANYWHERE", NULL),
                     PAYD_E_INVALID);
    fake_config_set("shipping_preference", NULL);
    assert_int_equal(restart_with(&e, "api_base", "ftp://x", NULL), PAYD_E_INVALID);
    assert_contains(e.message, "api_base");
    /* Init makes no request: the first token comes with the first call. */
    assert_int_equal(restart_with(&e, "api_base", API_BASE, NULL), PAYD_OK);
    assert_int_equal(tokens_asked(), 0);
}

static void test_public_info_and_descriptor(void **state)
{
    const char *info;
    payd_error e;

    (void)state;
    info = gw->public_info(st);
    assert_contains(info, "\"client_id\":\"" CLIENT_ID "\"");
    assert_contains(info, "\"mode\":\"sandbox\"");
    assert_not_contains(info, "S3cr3t");
    assert_int_equal(restart_with(&e, "mode", "live", "api_base", NULL, NULL), PAYD_OK);
    assert_contains(gw->public_info(st), "\"mode\":\"live\"");
    assert_string_equal(mod->name, "paypal");
    assert_true(mod->caps & PAYD_CAP_REDIRECT);
    assert_true(mod->caps & PAYD_CAP_CAPTURE_LATER);
    assert_true(mod->caps & PAYD_CAP_PARTIAL_REFUND);
    assert_true(mod->caps & PAYD_CAP_WEBHOOKS);
    assert_false(mod->caps & PAYD_CAP_SAVED_METHODS);
    assert_non_null(gw->confirm);
    assert_non_null(gw->refund_retrieve);
}

/* ------------------------------------------------------------------------ */
/* Create                                                                   */
/* ------------------------------------------------------------------------ */

static void test_create_builds_the_order_request_with_bearer_and_request_id(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    call c;

    (void)state;
    script_push(200, order_json("PAYER_ACTION_REQUIRED", "19.99", NULL,
                                PAYER_ACTION_LINKS),
                "dbg-create-1");
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_OK);

    /* The token: Basic client_id:client_secret, client credentials. */
    assert_int_equal(tokens_asked(), 1);
    assert_string_equal(token_user, CLIENT_ID);
    assert_true(token_had_password);
    assert_string_equal(token_body, "grant_type=client_credentials");

    assert_int_equal(call_count(), 1);
    c = call_at(0);
    assert_string_equal(c.method, "POST");
    assert_string_equal(c.url, API_BASE "/v2/checkout/orders");
    assert_string_equal(c.request_id, "payd-pay_unit1-create-1");
    assert_string_equal(c.auth, "Bearer tok1");
    assert_string_equal(c.ctype, "application/json");
    assert_string_equal(c.prefer, "return=representation");
    expect_body_str(c.body, "intent", "CAPTURE");
    expect_body_str(c.body, "purchase_units.0.custom_id", "pay_unit1");
    expect_body_str(c.body, "purchase_units.0.invoice_id", "1042");
    expect_body_str(c.body, "purchase_units.0.reference_id", "ord_unit1");
    expect_body_str(c.body, "purchase_units.0.amount.currency_code", "USD");
    expect_body_str(c.body, "purchase_units.0.amount.value", "19.99");
    expect_body_str(c.body, "payment_source.paypal.experience_context.return_url",
                    "https://shop.test/return?o=1042");
    expect_body_str(c.body, "payment_source.paypal.experience_context.cancel_url",
                    "https://shop.test/return?o=1042");
    expect_body_str(c.body, "payment_source.paypal.experience_context.user_action",
                    "PAY_NOW");

    /* The payer-action link is the redirect. */
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    assert_int_equal(res.next_action, PAYD_NA_REDIRECT_URL);
    assert_string_equal(res.next_action_url,
                        "https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T");
    assert_string_equal(res.provider_ref, "5O190127TN364715T");
    assert_int_equal(res.amount, 1999);
    assert_string_equal(res.provider_request_id, "dbg-create-1");
    /* The audit copy keeps ids and status, not the buyer's data. */
    assert_contains(res.raw, "PAYER_ACTION_REQUIRED");
    assert_not_contains(res.raw, "buyer@example.com");
}

static void test_create_sends_each_currency_by_its_exponent(void **state)
{
    static const struct {
        int64_t amount;
        const char *currency;
        int exp;
        const char *value;
    } cases[] = {{1999, "USD", 2, "19.99"}, {500, "JPY", 0, "500"}, {1234, "KWD", 3, "1.234"}};
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        payd_payment_req r = pay_req();
        payd_payment_res res = {.struct_size = sizeof res};
        payd_error e = {0};

        r.amount = cases[i].amount;
        r.currency = cases[i].currency;
        r.currency_exponent = cases[i].exp;
        script_push(201, order_json("CREATED", "1", NULL, APPROVE_LINKS), NULL);
        assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_OK);
        expect_body_str(call_at(i).body, "purchase_units.0.amount.value",
                        cases[i].value);
        expect_body_str(call_at(i).body, "purchase_units.0.amount.currency_code",
                        cases[i].currency);
    }
}

static void test_create_manual_capture_asks_for_intent_authorize_with_approve_link(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    payd_error e2;

    (void)state;
    assert_int_equal(restart_with(&e2, "brand_name", "Unit Shop",
                                  "shipping_preference", "NO_SHIPPING", NULL),
                     PAYD_OK);
    r.capture_method = PAYD_CAPTURE_MANUAL;
    script_push(201, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL);
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_OK);
    expect_body_str(call_at(0).body, "intent", "AUTHORIZE");
    expect_body_str(call_at(0).body, "payment_source.paypal.experience_context.brand_name",
                    "Unit Shop");
    expect_body_str(call_at(0).body,
                    "payment_source.paypal.experience_context.shipping_preference",
                    "NO_SHIPPING");
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    assert_int_equal(res.next_action, PAYD_NA_REDIRECT_URL);
    assert_string_equal(res.next_action_url,
                        "https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T");
}

static void test_create_refuses_bad_input_before_any_request(void **state)
{
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    payd_payment_req r;

    (void)state;
    r = pay_req();
    r.amount = 0;
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_INVALID);
    r = pay_req();
    r.currency = "usd";
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_INVALID);
    r = pay_req();
    r.return_url = "javascript:alert(1)";
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_INVALID);
    r = pay_req();
    r.idempotency_key = NULL;
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_INVALID);
    r = pay_req();
    r.currency = "HUF";
    r.amount = 150050;
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_INVALID);
    assert_int_equal(call_count(), 0);
}

/* ------------------------------------------------------------------------ */
/* Confirm, capture, cancel, retrieve                                       */
/* ------------------------------------------------------------------------ */

static payd_payment_req op_req(const char *op)
{
    static char key[64];
    payd_payment_req r = pay_req();

    snprintf(key, sizeof key, "payd-pay_unit1-%s-2", op);
    r.idempotency_key = key;
    r.provider_ref = "5O190127TN364715T";
    return r;
}

static void test_confirm_captures_the_approved_order(void **state)
{
    payd_payment_req r = op_req("confirm");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(201, order_json("COMPLETED", "19.99", CAPTURES("COMPLETED", "19.99"), NULL),
                "dbg-cap");
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(0).url, API_BASE "/v2/checkout/orders/5O190127TN364715T/capture");
    assert_string_equal(call_at(0).request_id, "payd-pay_unit1-confirm-2");
    assert_string_equal(call_at(0).body, "{}");
    assert_int_equal(res.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(res.amount_captured, 1999);
    assert_string_equal(res.provider_request_id, "dbg-cap");

    script_push(201, order_json("COMPLETED", "19.99", CAPTURES("PENDING", "19.99"), NULL), NULL);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_PROCESSING);

    script_push(201, order_json("COMPLETED", "19.99", CAPTURES("DECLINED", "19.99"), NULL), NULL);
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_E_DECLINED);
    assert_int_equal(res.status, PAYD_PS_FAILED);
    assert_string_equal(e.failure_code, "card_declined");
}

static void test_confirm_manual_authorizes_and_reports_capturable(void **state)
{
    payd_payment_req r = op_req("confirm");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    r.capture_method = PAYD_CAPTURE_MANUAL;
    script_push(201, order_json("COMPLETED", "19.99", AUTHORIZATIONS("CREATED", "19.99"), NULL),
                NULL);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(0).url,
                        API_BASE "/v2/checkout/orders/5O190127TN364715T/authorize");
    assert_int_equal(res.status, PAYD_PS_REQUIRES_CAPTURE);
    assert_int_equal(res.amount_capturable, 1999);
    assert_int_equal(res.amount_captured, 0);
}

static void test_confirm_before_approval_is_requires_action_again(void **state)
{
    payd_payment_req r = op_req("confirm");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(422,
                "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":"
                "\"ORDER_NOT_APPROVED\",\"description\":\"Payer has not yet "
                "approved the Order for payment.\"}],\"debug_id\":\"dbg-na\"}",
                NULL);
    script_push(200, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(call_count(), 2);
    assert_string_equal(call_at(1).method, "GET");
    assert_string_equal(call_at(1).url, API_BASE "/v2/checkout/orders/5O190127TN364715T");
    assert_string_equal(call_at(1).request_id, ""); /* only POSTs carry one */
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    assert_int_equal(res.next_action, PAYD_NA_REDIRECT_URL);
    assert_contains(res.next_action_url, "checkoutnow?token=5O190127TN364715T");
    assert_int_equal(e.code, 0);
}

static void test_confirm_instrument_declined_with_link_asks_for_another_source(void **state)
{
    payd_payment_req r = op_req("confirm");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(422,
                "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":"
                "\"INSTRUMENT_DECLINED\",\"description\":\"The instrument "
                "presented was declined.\"}],\"debug_id\":\"dbg-id1\","
                "\"links\":[{\"href\":\"https://www.sandbox.paypal.com/"
                "checkoutnow?token=5O190127TN364715T\",\"rel\":\"redirect\","
                "\"method\":\"GET\"}]}",
                NULL);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    assert_string_equal(res.next_action_url,
                        "https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T");
    assert_string_equal(e.provider_request_id, "dbg-id1");

    /* Without a link it is a decline. */
    script_push(422,
                "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":"
                "\"INSTRUMENT_DECLINED\"}],\"debug_id\":\"dbg-id2\"}",
                NULL);
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_E_DECLINED);
    assert_string_equal(e.failure_code, "card_declined");
    assert_string_equal(e.provider_request_id, "dbg-id2");
}

static void test_capture_partial_sends_amount_and_final_capture(void **state)
{
    payd_payment_req r = op_req("capture");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    r.capture_method = PAYD_CAPTURE_MANUAL;
    r.amount_to_capture = 1000;
    script_push(200, order_json("COMPLETED", "19.99", AUTHORIZATIONS("CREATED", "19.99"), NULL),
                NULL);
    script_push(201,
                "{\"id\":\"2GG279541U471931P\",\"status\":\"COMPLETED\","
                "\"amount\":{\"currency_code\":\"USD\",\"value\":\"10.00\"},"
                "\"final_capture\":true}",
                "dbg-c");
    assert_int_equal(gw->capture(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(0).method, "GET");
    assert_string_equal(call_at(1).url,
                        API_BASE "/v2/payments/authorizations/0VF52814937998046/capture");
    assert_string_equal(call_at(1).request_id, "payd-pay_unit1-capture-2");
    expect_body_str(call_at(1).body, "amount.value", "10.00");
    expect_body_str(call_at(1).body, "amount.currency_code", "USD");
    assert_contains(call_at(1).body, "\"final_capture\":true");
    assert_int_equal(res.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(res.amount_captured, 1000);
    assert_string_equal(res.provider_ref, "5O190127TN364715T");

    /* The whole authorization: an empty body. */
    r.amount_to_capture = 1999;
    script_push(200, order_json("COMPLETED", "19.99", AUTHORIZATIONS("CREATED", "19.99"), NULL),
                NULL);
    script_push(201,
                "{\"id\":\"2GG279541U471931Q\",\"status\":\"COMPLETED\","
                "\"amount\":{\"currency_code\":\"USD\",\"value\":\"19.99\"}}",
                NULL);
    assert_int_equal(gw->capture(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(3).body, "{}");
    assert_int_equal(res.amount_captured, 1999);

    /* More than authorized never reaches PayPal's capture. */
    r.amount_to_capture = 2000;
    script_push(200, order_json("COMPLETED", "19.99", AUTHORIZATIONS("CREATED", "19.99"), NULL),
                NULL);
    assert_int_equal(gw->capture(st, &r, &res, arena, &e), PAYD_E_INVALID);
    assert_int_equal(call_count(), 5);
}

static void test_cancel_voids_the_authorization_or_needs_no_call(void **state)
{
    payd_payment_req r = op_req("cancel");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(200, order_json("COMPLETED", "19.99", AUTHORIZATIONS("CREATED", "19.99"), NULL),
                NULL);
    script_push(204, "", "dbg-void");
    assert_int_equal(gw->cancel(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(1).method, "POST");
    assert_string_equal(call_at(1).url,
                        API_BASE "/v2/payments/authorizations/0VF52814937998046/void");
    assert_string_equal(call_at(1).request_id, "payd-pay_unit1-cancel-2");
    assert_int_equal(res.status, PAYD_PS_CANCELED);

    /* An order the buyer never approved: nothing to call at PayPal. */
    script_push(200, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL);
    assert_int_equal(gw->cancel(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(call_count(), 3);
    assert_int_equal(res.status, PAYD_PS_CANCELED);

    /* Captured money is refunded, not canceled. */
    script_push(200, order_json("COMPLETED", "19.99", CAPTURES("COMPLETED", "19.99"), NULL), NULL);
    assert_int_equal(gw->cancel(st, &r, &res, arena, &e), PAYD_E_INVALID);
    assert_int_equal(call_count(), 4);
}

static void test_retrieve_maps_every_order_and_payment_status(void **state)
{
    static const struct {
        const char *status;
        const char *payments;
        int want;
    } cases[] = {
        {"CREATED", NULL, PAYD_PS_REQUIRES_ACTION},
        {"PAYER_ACTION_REQUIRED", NULL, PAYD_PS_REQUIRES_ACTION},
        {"APPROVED", NULL, PAYD_PS_REQUIRES_CONFIRMATION},
        {"SAVED", NULL, PAYD_PS_REQUIRES_CONFIRMATION},
        {"VOIDED", NULL, PAYD_PS_CANCELED},
        {"COMPLETED", CAPTURES("COMPLETED", "19.99"), PAYD_PS_SUCCEEDED},
        {"COMPLETED", CAPTURES("PARTIALLY_REFUNDED", "19.99"), PAYD_PS_SUCCEEDED},
        {"COMPLETED", CAPTURES("REFUNDED", "19.99"), PAYD_PS_SUCCEEDED},
        {"COMPLETED", CAPTURES("PENDING", "19.99"), PAYD_PS_PROCESSING},
        {"COMPLETED", CAPTURES("DECLINED", "19.99"), PAYD_PS_FAILED},
        {"COMPLETED", CAPTURES("FAILED", "19.99"), PAYD_PS_FAILED},
        {"COMPLETED", AUTHORIZATIONS("CREATED", "19.99"), PAYD_PS_REQUIRES_CAPTURE},
        {"COMPLETED", AUTHORIZATIONS("PENDING", "19.99"), PAYD_PS_PROCESSING},
        {"COMPLETED", AUTHORIZATIONS("CAPTURED", "19.99"), PAYD_PS_SUCCEEDED},
        {"COMPLETED", AUTHORIZATIONS("VOIDED", "19.99"), PAYD_PS_CANCELED},
        {"COMPLETED", AUTHORIZATIONS("EXPIRED", "19.99"), PAYD_PS_CANCELED},
        {"COMPLETED", AUTHORIZATIONS("DENIED", "19.99"), PAYD_PS_FAILED},
    };
    payd_payment_req r = op_req("retrieve");
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        payd_payment_res res = {.struct_size = sizeof res};
        payd_error e = {0};

        script_push(200, order_json(cases[i].status, "19.99", cases[i].payments, NULL), NULL);
        if (gw->retrieve(st, &r, &res, arena, &e) != PAYD_OK) {
            print_error("case %zu (%s): %s\n", i, cases[i].status, e.message);
            fail();
        }
        if (res.status != cases[i].want) {
            print_error("case %zu (%s %s): status %d, want %d\n", i, cases[i].status,
                        cases[i].payments ? cases[i].payments : "", res.status,
                        cases[i].want);
            fail();
        }
        assert_string_equal(call_at(i).method, "GET");
    }
    /* An order status payd does not know is an unknown outcome. */
    {
        payd_payment_res res = {.struct_size = sizeof res};
        payd_error e = {0};

        script_push(200, order_json("SOMETHING_NEW", "19.99", NULL, NULL), NULL);
        assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_E_TRANSIENT);
    }
}

static void test_completed_capture_with_an_unreadable_amount_is_an_unknown_outcome(void **state)
{
    static const char *const values[] = {"19.999", "-19.99", "1e3", ""};
    payd_payment_req r = op_req("retrieve");
    size_t i;

    (void)state;
    /* Reading 0 would book less money than PayPal took: ask again later. */
    for (i = 0; i < sizeof values / sizeof values[0]; i++) {
        payd_payment_res res = {.struct_size = sizeof res};
        payd_error e = {0};
        char payments[512];

        snprintf(payments, sizeof payments,
                 "{\"captures\":[{\"id\":\"3C679366HH908993F\",\"status\":"
                 "\"COMPLETED\",\"amount\":{\"currency_code\":\"USD\","
                 "\"value\":\"%s\"}}]}",
                 values[i]);
        script_push(200, order_json("COMPLETED", "19.99", payments, NULL), NULL);
        assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_E_TRANSIENT);
        assert_contains(e.message, "amount");
    }
}

/* The same for the answer of a capture of an authorization: a COMPLETED
 * capture whose amount cannot be read is an unknown outcome, not 0. */
static void test_capture_answered_completed_with_an_unreadable_amount_is_an_unknown_outcome(void **state)
{
    payd_payment_req r = op_req("capture");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    r.capture_method = PAYD_CAPTURE_MANUAL;
    r.amount_to_capture = 1000;
    script_push(200, order_json("COMPLETED", "19.99", AUTHORIZATIONS("CREATED", "19.99"), NULL),
                NULL);
    script_push(201,
                "{\"id\":\"2GG279541U471931P\",\"status\":\"COMPLETED\","
                "\"amount\":{\"currency_code\":\"USD\",\"value\":\"10.009\"}}",
                NULL);
    assert_int_equal(gw->capture(st, &r, &res, arena, &e), PAYD_E_TRANSIENT);
    assert_contains(e.message, "amount");
    assert_int_equal(res.amount_captured, 0);
}

static void test_redirect_links_are_https_or_a_real_loopback_host(void **state)
{
    static const char *const rels[] = {"approve", NULL};
    static const struct {
        const char *href;
        int ok;
    } cases[] = {
        {"https://www.paypal.com/checkoutnow?token=5O1", 1},
        {"http://127.0.0.1:8080/checkoutnow?token=5O1", 1},
        {"http://127.0.0.1/x", 1},
        {"http://localhost:9000/x", 1},
        {"http://[::1]:9000/x", 1},
        {"http://127.0.0.1@shop.evil/x", 0},
        {"http://127.0.0.1.evil.example/x", 0},
        {"http://127.evil.example/x", 0},
        {"http://localhost.evil.example/x", 0},
        {"http://[::1].evil.example/x", 0},
        {"http://www.paypal.com/checkoutnow", 0},
        {"javascript:alert(1)", 0},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *links = json_pack("[{s:s, s:s}]", "rel", "approve", "href",
                                  cases[i].href);
        const char *got = paypal_link(links, rels);

        if ((got != NULL) != cases[i].ok) {
            print_error("%s: %s, want %s\n", cases[i].href,
                        got ? "accepted" : "refused",
                        cases[i].ok ? "accepted" : "refused");
            json_decref(links);
            fail();
        }
        json_decref(links);
    }
}

/* ------------------------------------------------------------------------ */
/* Refunds                                                                  */
/* ------------------------------------------------------------------------ */

static void test_refund_posts_to_the_capture_with_the_request_id(void **state)
{
    payd_refund_req r;
    payd_refund_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.refund_id = "re_unit1";
    r.payment_id = "pay_unit1";
    r.idempotency_key = "payd-re_unit1-refund-1";
    r.provider_ref = "5O190127TN364715T";
    r.amount = 500;
    r.currency = "USD";
    r.currency_exponent = 2;
    r.reason = "requested_by_customer";
    script_push(200, order_json("COMPLETED", "19.99", CAPTURES("COMPLETED", "19.99"), NULL), NULL);
    script_push(201, "{\"id\":\"1JU08902781691411\",\"status\":\"COMPLETED\"}", "dbg-r");
    assert_int_equal(gw->refund(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(1).url,
                        API_BASE "/v2/payments/captures/3C679366HH908993F/refund");
    assert_string_equal(call_at(1).request_id, "payd-re_unit1-refund-1");
    assert_string_equal(call_at(1).auth, "Bearer tok1");
    expect_body_str(call_at(1).body, "amount.value", "5.00");
    expect_body_str(call_at(1).body, "amount.currency_code", "USD");
    expect_body_str(call_at(1).body, "custom_id", "re_unit1");
    assert_int_equal(res.status, PAYD_RS_SUCCEEDED);
    assert_string_equal(res.refund_ref, "1JU08902781691411");
    assert_string_equal(res.provider_request_id, "dbg-r");

    /* Retrieve, and the other statuses. */
    r.refund_ref = "1JU08902781691411";
    script_push(200, "{\"id\":\"1JU08902781691411\",\"status\":\"PENDING\"}", NULL);
    assert_int_equal(gw->refund_retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(2).url, API_BASE "/v2/payments/refunds/1JU08902781691411");
    assert_int_equal(res.status, PAYD_RS_PENDING);
    script_push(200, "{\"id\":\"1JU08902781691411\",\"status\":\"FAILED\"}", NULL);
    assert_int_equal(gw->refund_retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_RS_FAILED);
    assert_non_null(res.failure_code);
    script_push(200, "{\"id\":\"1JU08902781691411\",\"status\":\"CANCELLED\"}", NULL);
    assert_int_equal(gw->refund_retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_RS_CANCELED);

    /* Nothing captured: nothing to refund. */
    script_push(200, order_json("CREATED", "19.99", NULL, NULL), NULL);
    assert_int_equal(gw->refund(st, &r, &res, arena, &e), PAYD_E_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static void test_errors_map_to_payd_codes(void **state)
{
    static const struct {
        long status;
        const char *body;
        const char *debug_header;
        int want;
        const char *failure_code;
        const char *debug_id;
    } cases[] = {
        {422, "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":\"INSTRUMENT_DECLINED\"}],\"debug_id\":\"d1\"}",
         NULL, PAYD_E_DECLINED, "card_declined", "d1"},
        {422, "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":\"PAYER_ACTION_REQUIRED\"}],\"debug_id\":\"d2\"}",
         NULL, PAYD_E_DECLINED, "authentication_required", "d2"},
        {422, "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":\"CURRENCY_NOT_SUPPORTED\"}],\"debug_id\":\"d3\"}",
         NULL, PAYD_E_INVALID, "", "d3"},
        {422, "{\"name\":\"UNPROCESSABLE_ENTITY\",\"debug_id\":\"d4\"}", NULL, PAYD_E_INVALID, "", "d4"},
        {400, "{\"name\":\"INVALID_REQUEST\",\"details\":[{\"issue\":\"MISSING_REQUIRED_PARAMETER\"}],\"debug_id\":\"d5\"}",
         NULL, PAYD_E_INVALID, "", "d5"},
        {404, "{\"name\":\"RESOURCE_NOT_FOUND\",\"details\":[{\"issue\":\"INVALID_RESOURCE_ID\"}],\"debug_id\":\"d6\"}",
         NULL, PAYD_E_NOTFOUND, "", "d6"},
        {409, "{\"name\":\"RESOURCE_CONFLICT\",\"details\":[{\"issue\":\"PREVIOUS_REQUEST_IN_PROGRESS\"}]}",
         "h7", PAYD_E_TRANSIENT, "", "h7"},
        {422, "{\"name\":\"UNPROCESSABLE_ENTITY\",\"details\":[{\"issue\":\"DUPLICATE_INVOICE_ID\"}]}",
         NULL, PAYD_E_PROVIDER, "", ""},
        {403, "{\"name\":\"NOT_AUTHORIZED\"}", NULL, PAYD_E_AUTH, "", ""},
        {429, "{\"name\":\"RATE_LIMIT_REACHED\",\"debug_id\":\"d9\"}", NULL, PAYD_E_TRANSIENT, "", "d9"},
        {500, "{\"name\":\"INTERNAL_SERVER_ERROR\",\"debug_id\":\"d10\"}", "h10", PAYD_E_TRANSIENT, "", "h10"},
        {503, "<html>unavailable</html>", NULL, PAYD_E_TRANSIENT, "", ""},
        {0, "", NULL, PAYD_E_TRANSIENT, "", ""}, /* timeout */
        {201, "not json at all", NULL, PAYD_E_TRANSIENT, "", ""},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        payd_payment_req r = pay_req();
        payd_payment_res res = {.struct_size = sizeof res};
        payd_error e = {0};
        int rc;

        script_push(cases[i].status, cases[i].body, cases[i].debug_header);
        rc = gw->create(st, &r, &res, arena, &e);
        if (rc != cases[i].want || strcmp(e.failure_code, cases[i].failure_code) != 0 ||
            strcmp(e.provider_request_id, cases[i].debug_id) != 0) {
            print_error("case %zu (HTTP %ld %s): rc %d failure_code \"%s\" debug \"%s\"\n",
                        i, cases[i].status, cases[i].body, rc, e.failure_code,
                        e.provider_request_id);
            fail();
        }
        assert_int_equal(e.code, rc);
        assert_true(e.message[0] != '\0');
    }
    /* A message that could carry a card number is not passed on. */
    {
        payd_payment_req r = pay_req();
        payd_payment_res res = {.struct_size = sizeof res};
        payd_error e = {0};

        script_push(400,
                    "{\"name\":\"INVALID_REQUEST\",\"details\":[{\"issue\":\"X\","
                    "\"description\":\"card 4111 1111 1111 1111 is bad\"}]}",
                    NULL);
        assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_INVALID);
        assert_not_contains(e.message, "4111");
    }
}

/* ------------------------------------------------------------------------ */
/* The token                                                                */
/* ------------------------------------------------------------------------ */

static void test_token_is_cached_and_reused_until_shortly_before_expiry(void **state)
{
    payd_payment_req r = op_req("retrieve");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    default_answer = (answer){200, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL};
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 1);
    /* 60 s before PayPal's expires_in of 32400. */
    assert_int_equal(cache_last_ttl, 32400 - 60);
    assert_string_equal(call_at(2).auth, "Bearer tok1");

    /* Past the cached lifetime a new token is fetched. */
    fake_clock_shift(32400 - 59);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 2);
    assert_string_equal(call_at(3).auth, "Bearer tok2");
}

static void test_401_refreshes_the_token_once_and_retries_with_the_same_request_id(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(401, "{\"error\":\"invalid_token\",\"error_description\":\"Token signature verification failed\"}",
                NULL);
    script_push(201, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL);
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 2);
    assert_int_equal(call_count(), 2);
    assert_string_equal(call_at(0).auth, "Bearer tok1");
    assert_string_equal(call_at(1).auth, "Bearer tok2");
    assert_string_equal(call_at(0).request_id, call_at(1).request_id);
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    /* The fresh token is the cached one now. */
    script_push(201, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL);
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 2);
    assert_string_equal(call_at(2).auth, "Bearer tok2");
}

static void test_401_twice_is_an_auth_error(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(401, "{\"error\":\"invalid_token\"}", NULL);
    script_push(401, "{\"error\":\"invalid_token\"}", NULL);
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_AUTH);
    assert_int_equal(e.code, PAYD_E_AUTH);
    assert_int_equal(tokens_asked(), 2);
    assert_int_equal(call_count(), 2);
}

static void test_refused_client_credentials_are_an_auth_error(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    token_status = 401;
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_AUTH);
    assert_int_equal(call_count(), 0);
    assert_not_contains(e.message, "S3cr3t");
    token_status = 503;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->create(st, &r, &res, arena, &e), PAYD_E_TRANSIENT);
}

#define RACERS 32

static pthread_barrier_t race_start;
static int race_rc[RACERS];

static void *race_create(void *arg)
{
    int i = (int)(intptr_t)arg;
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    payd_arena *a = fake_arena_new();

    pthread_barrier_wait(&race_start);
    race_rc[i] = gw->create(st, &r, &res, a, &e);
    if (race_rc[i] == PAYD_OK && res.status != PAYD_PS_REQUIRES_ACTION)
        race_rc[i] = -100;
    fake_arena_free(a);
    return NULL;
}

/* The shared cache (Redis in production) never holds a usable token:
 * what is stored is sealed, under an entry named by a key id, and neither
 * the token nor the secret shows. */
static void test_the_shared_cache_holds_the_token_sealed_not_in_clear(void **state)
{
    payd_payment_req r = op_req("retrieve");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    char *stored, key[64];

    (void)state;
    default_answer = (answer){200, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL};
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(call_at(0).auth, "Bearer tok1");
    assert_int_equal(cache_count(""), 1);
    stored = cache_peek(TOKEN_ENTRY, 0, key);
    assert_non_null(stored);
    assert_int_equal(strlen(key), strlen(TOKEN_ENTRY) + 16);
    assert_null(strstr(stored, "tok1"));
    assert_null(strstr(stored, "S3cr3t"));
    /* nonce (12) + "tok1" (4) + tag (16) = 32 bytes, as base64. */
    assert_int_equal(strlen(stored), 44);
    free(stored);

    /* It still serves: the next call reuses it. */
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 1);
    assert_string_equal(call_at(1).auth, "Bearer tok1");
}

/* A cached value someone changed does not open: it is a miss, and a
 * fresh token replaces it, which is then reused. */
static void test_a_changed_cached_token_is_a_miss_and_a_new_token_is_fetched(void **state)
{
    payd_payment_req r = op_req("retrieve");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    char key[64], *stored;

    (void)state;
    default_answer = (answer){200, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL};
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 1);
    stored = cache_peek(TOKEN_ENTRY, 0, key);
    assert_non_null(stored);
    stored[strlen(stored) / 2] = stored[strlen(stored) / 2] == 'A' ? 'B' : 'A';
    cache_put(key, stored);
    free(stored);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 2);
    assert_string_equal(call_at(2).auth, "Bearer tok2");
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 2);
    assert_string_equal(call_at(3).auth, "Bearer tok2");
}

/* Another process with the same credentials shares the cached token.
 * Another client secret, client id or API base names another entry (no
 * fight over one entry during a rotation), and a value sealed under one
 * key does not open under another. */
static void test_the_cached_token_opens_only_under_the_same_credentials(void **state)
{
    payd_payment_req r = op_req("retrieve");
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    char first_key[64], other_key[64], *first, *other;

    (void)state;
    default_answer = (answer){200, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL};
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(restart_with(&e, NULL), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 1);
    assert_string_equal(call_at(1).auth, "Bearer tok1");

    assert_int_equal(restart_with(&e, "client_secret", "EAnotherS3cr3t_of_another_app", NULL), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 2);
    assert_string_equal(call_at(2).auth, "Bearer tok2");
    assert_int_equal(cache_count(TOKEN_ENTRY), 2);

    /* The first credentials' sealed token, put under the second's entry,
     * does not open: a fresh token. */
    first = cache_peek(TOKEN_ENTRY, 0, first_key);
    other = cache_peek(TOKEN_ENTRY, 1, other_key);
    assert_non_null(first);
    assert_non_null(other);
    assert_string_not_equal(first_key, other_key);
    cache_put(other_key, first);
    free(first);
    free(other);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 3);
    assert_string_equal(call_at(3).auth, "Bearer tok3");

    /* Another client id, or another API base: their own entries. */
    assert_int_equal(restart_with(&e, "client_secret", CLIENT_SECRET, "client_id", "AOtherClientId9876", NULL), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 4);
    assert_int_equal(restart_with(&e, "client_id", CLIENT_ID, "api_base", API_BASE "2/", NULL), PAYD_OK);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(tokens_asked(), 5);
    assert_int_equal(cache_count(TOKEN_ENTRY), 4);
}

static void test_32_threads_with_an_empty_cache_cause_one_token_request(void **state)
{
    pthread_t t[RACERS];
    size_t i;

    (void)state;
    default_answer = (answer){201, order_json("CREATED", "19.99", NULL, APPROVE_LINKS), NULL};
    token_delay_ms = 100; /* a slow token endpoint keeps every racer waiting */
    pthread_barrier_init(&race_start, NULL, RACERS);
    for (i = 0; i < RACERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_create, (void *)(intptr_t)i), 0);
    for (i = 0; i < RACERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race_start);
    for (i = 0; i < RACERS; i++)
        assert_int_equal(race_rc[i], PAYD_OK);
    assert_int_equal(tokens_asked(), 1);
    assert_int_equal(call_count(), RACERS);
    for (i = 0; i < RACERS; i++)
        assert_string_equal(call_at(i).auth, "Bearer tok1");
}

/* ------------------------------------------------------------------------ */
/* Webhooks: event mapping (verified through the API fallback)             */
/* ------------------------------------------------------------------------ */

/* RFC 3339 of the fake clock plus `offset` seconds. */
static void rfc3339(int64_t offset, char out[32])
{
    time_t t = (time_t)(th.now(&th) + offset);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

typedef struct delivery {
    char time[32];
    const char *id;
    const char *sig;
    const char *cert_url;
    const char *algo;
    payd_header headers[6];
    size_t count;
} delivery;

static void delivery_init(delivery *d, int64_t offset, const char *sig)
{
    memset(d, 0, sizeof *d);
    rfc3339(offset, d->time);
    d->id = "b2384410-f8d2-11e7-8d9f-4b1d5e5ee01b";
    d->sig = sig;
    d->cert_url = CERT_URL;
    d->algo = "SHA256withRSA";
}

static int deliver(delivery *d, const char *body, payd_event *ev, payd_error *e)
{
    payd_webhook_req req;

    d->count = 0;
    if (d->id)
        d->headers[d->count++] = (payd_header){"Paypal-Transmission-Id", d->id};
    if (d->time[0])
        d->headers[d->count++] = (payd_header){"PAYPAL-TRANSMISSION-TIME", d->time};
    if (d->sig)
        d->headers[d->count++] = (payd_header){"paypal-transmission-sig", d->sig};
    if (d->cert_url)
        d->headers[d->count++] = (payd_header){"PAYPAL-CERT-URL", d->cert_url};
    if (d->algo)
        d->headers[d->count++] = (payd_header){"PAYPAL-AUTH-ALGO", d->algo};
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.headers = d->headers;
    req.header_count = d->count;
    req.body = body;
    req.body_len = strlen(body);
    memset(ev, 0, sizeof *ev);
    ev->struct_size = sizeof *ev;
    memset(e, 0, sizeof *e);
    return gw->webhook(st, &req, ev, arena, e);
}

static const char *event_json(const char *type, const char *resource)
{
    static char buf[4096];

    snprintf(buf, sizeof buf,
             "{\"id\":\"WH-58D329510W468432D-8HN650336L201105X\","
             "\"create_time\":\"2026-11-22T10:00:00Z\",\"resource_type\":\"capture\","
             "\"event_type\":\"%s\",\"summary\":\"s\",\"resource\":%s}",
             type, resource);
    return buf;
}

#define CAPTURE_RESOURCE(status)                                              \
    "{\"id\":\"3C679366HH908993F\",\"status\":\"" status "\",\"amount\":"    \
    "{\"currency_code\":\"USD\",\"value\":\"19.99\"},\"custom_id\":"         \
    "\"pay_unit1\",\"supplementary_data\":{\"related_ids\":{\"order_id\":"   \
    "\"5O190127TN364715T\"}}}"

static void test_every_listed_event_maps_and_others_are_ignored(void **state)
{
    static const struct {
        const char *type;
        const char *resource;
        int want;
    } cases[] = {
        {"CHECKOUT.ORDER.APPROVED",
         "{\"id\":\"5O190127TN364715T\",\"status\":\"APPROVED\",\"purchase_units\":[{"
         "\"custom_id\":\"pay_unit1\",\"amount\":{\"currency_code\":\"USD\",\"value\":\"19.99\"}}]}",
         PAYD_EV_IGNORED},
        {"PAYMENT.CAPTURE.COMPLETED", CAPTURE_RESOURCE("COMPLETED"), PAYD_EV_PAYMENT_SUCCEEDED},
        {"PAYMENT.CAPTURE.DENIED", CAPTURE_RESOURCE("DECLINED"), PAYD_EV_PAYMENT_FAILED},
        {"PAYMENT.CAPTURE.PENDING", CAPTURE_RESOURCE("PENDING"), PAYD_EV_PAYMENT_PROCESSING},
        {"PAYMENT.CAPTURE.REVERSED", CAPTURE_RESOURCE("REVERSED"), PAYD_EV_DISPUTE_CREATED},
        {"PAYMENT.AUTHORIZATION.VOIDED", CAPTURE_RESOURCE("VOIDED"), PAYD_EV_PAYMENT_CANCELED},
        {"PAYMENT.CAPTURE.REFUNDED",
         "{\"id\":\"1JU08902781691411\",\"status\":\"COMPLETED\",\"amount\":{\"currency_code\":"
         "\"USD\",\"value\":\"5.00\"},\"custom_id\":\"re_unit1\"}",
         PAYD_EV_REFUND_SUCCEEDED},
        {"CUSTOMER.DISPUTE.CREATED",
         "{\"dispute_id\":\"PP-D-1\",\"dispute_amount\":{\"currency_code\":\"USD\",\"value\":"
         "\"19.99\"},\"disputed_transactions\":[{\"seller_transaction_id\":\"3C679366HH908993F\","
         "\"custom\":\"pay_unit1\"}]}",
         PAYD_EV_DISPUTE_CREATED},
        {"CUSTOMER.DISPUTE.RESOLVED",
         "{\"dispute_id\":\"PP-D-1\",\"dispute_amount\":{\"currency_code\":\"USD\",\"value\":"
         "\"19.99\"},\"disputed_transactions\":[{\"custom\":\"pay_unit1\"}]}",
         PAYD_EV_DISPUTE_CLOSED},
        {"BILLING.SUBSCRIPTION.CREATED", "{\"id\":\"I-1\"}", PAYD_EV_IGNORED},
        {"PAYMENT.CAPTURE.SOMETHING_NEW", CAPTURE_RESOURCE("COMPLETED"), PAYD_EV_IGNORED},
    };
    payd_error e2;
    size_t i;

    (void)state;
    assert_int_equal(restart_with(&e2, "webhook_verify", "api", NULL), PAYD_OK);
    default_answer = (answer){200, "{\"verification_status\":\"SUCCESS\"}", NULL};
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        delivery d;
        payd_event ev;
        payd_error e;

        delivery_init(&d, 0, "c2lnbmF0dXJl");
        assert_int_equal(deliver(&d, event_json(cases[i].type, cases[i].resource), &ev, &e),
                         PAYD_OK);
        if (ev.type != cases[i].want) {
            print_error("%s: type %d, want %d\n", cases[i].type, ev.type, cases[i].want);
            fail();
        }
        assert_string_equal(ev.provider_event_id, "WH-58D329510W468432D-8HN650336L201105X");
        assert_string_equal(ev.provider_type, cases[i].type);
        assert_int_equal(ev.occurred_at, 1795341600LL); /* 2026-11-22T10:00:00Z */
    }
    /* What each kind names. */
    {
        delivery d;
        payd_event ev;
        payd_error e;

        delivery_init(&d, 0, "c2lnbmF0dXJl");
        assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.COMPLETED",
                                                CAPTURE_RESOURCE("COMPLETED")),
                                 &ev, &e),
                         PAYD_OK);
        assert_string_equal(ev.payment_id, "pay_unit1");
        assert_string_equal(ev.provider_ref, "5O190127TN364715T");
        assert_int_equal(ev.amount, 1999);
        assert_string_equal(ev.currency, "USD");

        assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.DENIED",
                                                CAPTURE_RESOURCE("DECLINED")),
                                 &ev, &e),
                         PAYD_OK);
        assert_string_equal(ev.failure_code, "card_declined");

        assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.REFUNDED", cases[6].resource),
                                 &ev, &e),
                         PAYD_OK);
        assert_string_equal(ev.refund_ref, "1JU08902781691411");
        assert_string_equal(ev.refund_id, "re_unit1");
        assert_int_equal(ev.amount, 500);
        assert_null(ev.payment_id);

        assert_int_equal(deliver(&d, event_json("CHECKOUT.ORDER.APPROVED", cases[0].resource),
                                 &ev, &e),
                         PAYD_OK);
        assert_string_equal(ev.provider_ref, "5O190127TN364715T");
        assert_string_equal(ev.payment_id, "pay_unit1");

        assert_int_equal(deliver(&d, event_json("CUSTOMER.DISPUTE.CREATED", cases[7].resource),
                                 &ev, &e),
                         PAYD_OK);
        assert_string_equal(ev.payment_id, "pay_unit1");
        assert_int_equal(ev.amount, 1999);
    }
    /* The API was asked with every field, the event itself included. */
    {
        call c = call_at(0);

        assert_string_equal(c.url, API_BASE "/v1/notifications/verify-webhook-signature");
        assert_true(c.request_id[0] != '\0');
        expect_body_str(c.body, "webhook_id", WEBHOOK_ID);
        expect_body_str(c.body, "transmission_id", "b2384410-f8d2-11e7-8d9f-4b1d5e5ee01b");
        expect_body_str(c.body, "transmission_sig", "c2lnbmF0dXJl");
        expect_body_str(c.body, "cert_url", CERT_URL);
        expect_body_str(c.body, "auth_algo", "SHA256withRSA");
        expect_body_str(c.body, "webhook_event.event_type", "CHECKOUT.ORDER.APPROVED");
    }
}

static void test_api_verification_failure_and_non_events(void **state)
{
    delivery d;
    payd_event ev;
    payd_error e;

    (void)state;
    assert_int_equal(restart_with(&e, "webhook_verify", "api", NULL), PAYD_OK);
    delivery_init(&d, 0, "c2lnbmF0dXJl");
    script_push(200, "{\"verification_status\":\"FAILURE\"}", NULL);
    assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.COMPLETED",
                                            CAPTURE_RESOURCE("COMPLETED")),
                             &ev, &e),
                     PAYD_E_SIGNATURE);
    /* PayPal unreachable: PayPal should retry the delivery later. */
    script_push(503, "{}", NULL);
    assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.COMPLETED",
                                            CAPTURE_RESOURCE("COMPLETED")),
                             &ev, &e),
                     PAYD_E_TRANSIENT);
    /* Verified but not an event. */
    script_push(200, "{\"verification_status\":\"SUCCESS\"}", NULL);
    assert_int_equal(deliver(&d, "{\"id\":\"WH-1\",\"resource\":{}}", &ev, &e),
                     PAYD_E_INVALID);
}

static void test_api_verification_asks_under_a_fresh_request_id_each_time(void **state)
{
    delivery d;
    payd_event ev;
    payd_error e;
    call first, second;

    (void)state;
    assert_int_equal(restart_with(&e, "webhook_verify", "api", NULL), PAYD_OK);
    /* The same delivery twice (a replay, or a forged body under a copied
     * transmission id): PayPal must judge each anew, not answer from what
     * it stored under an id the sender chose. */
    default_answer = (answer){200, "{\"verification_status\":\"SUCCESS\"}", NULL};
    delivery_init(&d, 0, "c2lnbmF0dXJl");
    assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.COMPLETED",
                                            CAPTURE_RESOURCE("COMPLETED")),
                             &ev, &e),
                     PAYD_OK);
    assert_int_equal(deliver(&d, event_json("PAYMENT.CAPTURE.COMPLETED",
                                            CAPTURE_RESOURCE("COMPLETED")),
                             &ev, &e),
                     PAYD_OK);
    assert_int_equal(call_count(), 2);
    first = call_at(0);
    second = call_at(1);
    assert_true(first.request_id[0] != '\0');
    assert_true(strcmp(first.request_id, second.request_id) != 0);
    assert_null(strstr(first.request_id, d.id));
    assert_null(strstr(second.request_id, d.id));
}

/* ------------------------------------------------------------------------ */
/* Webhooks: offline verification with a CA made here                      */
/* ------------------------------------------------------------------------ */

static EVP_PKEY *ca_key, *leaf_key, *other_key;
static X509 *ca_cert;
static char ca_path[64];

/* A certificate for `key`, issued by `issuer` (NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *issuer_key, X509 *issuer,
                       const char *cn, int is_ca, long from_s, long until_s)
{
    static long serial = 1;
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_time_adj_ex(X509_getm_notBefore(x), 0, from_s, NULL);
    X509_time_adj_ex(X509_getm_notAfter(x), 0, until_s, NULL);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (is_ca) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
    return x;
}

static char *pem_of(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *data, *out;
    long n;

    PEM_write_bio_X509(b, x);
    n = BIO_get_mem_data(b, &data);
    out = strndup(data, (size_t)n);
    BIO_free(b);
    return out;
}

/* The key pair and CA once for the group: RSA generation is slow. */
static int pki_setup(void)
{
    FILE *f;
    int fd;

    ca_key = EVP_RSA_gen(2048);
    leaf_key = EVP_RSA_gen(2048);
    other_key = EVP_RSA_gen(2048);
    if (ca_key == NULL || leaf_key == NULL || other_key == NULL)
        return -1;
    ca_cert = make_cert(ca_key, ca_key, NULL, "payd unit test CA", 1, -86400, 86400 * 30);
    snprintf(ca_path, sizeof ca_path, "/tmp/payd-paypal-ca-XXXXXX");
    fd = mkstemp(ca_path);
    if (fd < 0)
        return -1;
    f = fdopen(fd, "w");
    PEM_write_X509(f, ca_cert);
    fclose(f);
    return 0;
}

static void pki_teardown(void)
{
    if (ca_path[0])
        unlink(ca_path);
    X509_free(ca_cert);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(leaf_key);
    EVP_PKEY_free(other_key);
}

/* An independent CRC-32 (the reflected 0xEDB88320 polynomial, as zlib's). */
static uint32_t crc32_reference(const char *s, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    size_t i;
    int k;

    for (i = 0; i < n; i++) {
        c ^= (unsigned char)s[i];
        for (k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

/* base64 of SHA256withRSA over id|time|webhook_id|crc32(body) with `key`. */
static char *sign_delivery(EVP_PKEY *key, const delivery *d, const char *webhook_id,
                           const char *body)
{
    char msg[512];
    unsigned char sig[512];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *out = malloc(1024);

    snprintf(msg, sizeof msg, "%s|%s|%s|%u", d->id, d->time, webhook_id,
             crc32_reference(body, strlen(body)));
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    EVP_EncodeBlock((unsigned char *)out, sig, (int)sig_len);
    return out;
}

static int offline_setup(void **state)
{
    payd_error e;

    if (setup(state) != 0)
        return -1;
    fake_config_set("cert_ca_file", ca_path);
    return restart_with(&e, NULL) == PAYD_OK ? 0 : -1;
}

static void test_crc32_reference_matches_the_standard_check_value(void **state)
{
    (void)state;
    /* The check value of CRC-32 for "123456789". */
    assert_int_equal(crc32_reference("123456789", 9), 3421780262u);
}

static void test_offline_signature_verifies_with_the_certificate_chain(void **state)
{
    const char *body = event_json("PAYMENT.CAPTURE.COMPLETED", CAPTURE_RESOURCE("COMPLETED"));
    X509 *leaf = make_cert(leaf_key, ca_key, ca_cert, "messageverificationcerts.paypal.com",
                           0, -3600, 86400 * 7);
    char *pem = pem_of(leaf);
    delivery d;
    payd_event ev;
    payd_error e;
    char *sig;

    (void)state;
    cert_route(CERT_URL, pem);
    delivery_init(&d, -5, NULL);
    sig = sign_delivery(leaf_key, &d, WEBHOOK_ID, body);
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_SUCCEEDED);
    assert_string_equal(ev.payment_id, "pay_unit1");
    assert_int_equal(cert_downloads, 1);
    /* The verified certificate is cached: no second download. */
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_OK);
    assert_int_equal(cert_downloads, 1);
    /* No API call was made to verify. */
    assert_int_equal(call_count(), 0);

    /* One byte changed in the body: the CRC-32 and so the message differ. */
    {
        char *tampered = strdup(body);

        *strstr(tampered, "19.99") = '9';
        assert_int_equal(deliver(&d, tampered, &ev, &e), PAYD_E_SIGNATURE);
        free(tampered);
    }
    free(sig);
    free(pem);
    X509_free(leaf);
}

static void test_offline_signature_failures_are_refused(void **state)
{
    const char *body = event_json("PAYMENT.CAPTURE.COMPLETED", CAPTURE_RESOURCE("COMPLETED"));
    X509 *leaf = make_cert(leaf_key, ca_key, ca_cert, "paypal leaf", 0, -3600, 86400 * 7);
    X509 *rogue_ca = make_cert(other_key, other_key, NULL, "rogue CA", 1, -3600, 86400 * 7);
    X509 *rogue = make_cert(leaf_key, other_key, rogue_ca, "rogue leaf", 0, -3600, 86400 * 7);
    char *pem = pem_of(leaf), *rogue_pem = pem_of(rogue);
    delivery d;
    payd_event ev;
    payd_error e;
    char *sig, *wrong_id_sig, *other_key_sig;
    payd_error e2;

    (void)state;
    cert_route(CERT_URL, pem);
    cert_route("https://certs.test:8443/certs/rogue", rogue_pem);
    cert_route("https://evil.test:8443/certs/CERT-1", pem);
    delivery_init(&d, 0, NULL);
    sig = sign_delivery(leaf_key, &d, WEBHOOK_ID, body);
    wrong_id_sig = sign_delivery(leaf_key, &d, "ANOTHER-WEBHOOK", body);
    other_key_sig = sign_delivery(other_key, &d, WEBHOOK_ID, body);

    /* Signed for another webhook id, or with another key. */
    d.sig = wrong_id_sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.sig = other_key_sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.sig = "not base64!";
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_OK);

    /* Other algorithms, missing or repeated headers. */
    d.algo = "SHA1withRSA";
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.algo = "SHA256withRSA";
    d.id = NULL;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.id = "b2384410-f8d2-11e7-8d9f-4b1d5e5ee01b";
    {
        payd_webhook_req req = {.struct_size = sizeof req};
        payd_header two[6];

        deliver(&d, body, &ev, &e);
        memcpy(two, d.headers, sizeof(payd_header) * d.count);
        two[d.count] = (payd_header){"PAYPAL-TRANSMISSION-SIG", sig};
        req.headers = two;
        req.header_count = d.count + 1;
        req.body = body;
        req.body_len = strlen(body);
        memset(&e, 0, sizeof e);
        assert_int_equal(gw->webhook(st, &req, &ev, arena, &e), PAYD_E_SIGNATURE);
    }

    /* Cert URLs: only https on an allowed host, nothing downloaded else. */
    cert_downloads = 0;
    d.cert_url = "https://evil.test:8443/certs/CERT-1";
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.cert_url = "http://certs.test:8443/certs/CERT-360caa42";
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.cert_url = "https://certs.test/certs/CERT-360caa42"; /* port 443: not listed */
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    d.cert_url = "https://user@certs.test:8443/certs/CERT-360caa42";
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    assert_int_equal(cert_downloads, 0);

    /* A certificate that does not chain to the configured CA. */
    d.cert_url = "https://certs.test:8443/certs/rogue";
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    assert_contains(e.message, "certificate");
    assert_int_equal(cert_downloads, 1);

    /* Transmission time outside the tolerance, either way: refused
     * before any certificate is fetched. */
    cert_downloads = 0;
    d.cert_url = "https://certs.test:8443/certs/other";
    delivery_init(&d, -301, NULL);
    d.cert_url = "https://certs.test:8443/certs/other";
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    assert_contains(e.message, "TRANSMISSION-TIME");
    delivery_init(&d, 301, NULL);
    d.cert_url = "https://certs.test:8443/certs/other";
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    strcpy(d.time, "yesterday");
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    assert_int_equal(cert_downloads, 0);

    /* No webhook_id configured: nothing verifies. */
    assert_int_equal(restart_with(&e2, "webhook_id", NULL, NULL), PAYD_OK);
    delivery_init(&d, 0, sig);
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);

    free(sig);
    free(wrong_id_sig);
    free(other_key_sig);
    free(pem);
    free(rogue_pem);
    X509_free(leaf);
    X509_free(rogue);
    X509_free(rogue_ca);
}

static void test_offline_signature_refuses_an_expired_certificate(void **state)
{
    const char *body = event_json("PAYMENT.CAPTURE.COMPLETED", CAPTURE_RESOURCE("COMPLETED"));
    /* Valid for one more day only. */
    X509 *leaf = make_cert(leaf_key, ca_key, ca_cert, "short-lived", 0, -3600, 86400);
    char *pem = pem_of(leaf), *sig;
    delivery d;
    payd_event ev;
    payd_error e;

    (void)state;
    cert_route(CERT_URL, pem);
    delivery_init(&d, 0, NULL);
    sig = sign_delivery(leaf_key, &d, WEBHOOK_ID, body);
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_OK);
    free(sig);
    /* Two days later the cached copy is past its notAfter, and the
     * download no longer verifies. */
    fake_clock_shift(2 * 86400);
    delivery_init(&d, 0, NULL);
    sig = sign_delivery(leaf_key, &d, WEBHOOK_ID, body);
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    assert_contains(e.message, "expired");
    assert_int_equal(cert_downloads, 2);
    free(sig);
    free(pem);
    X509_free(leaf);
}

static void test_offline_signature_refuses_a_certificate_not_for_signatures(void **state)
{
    const char *body = event_json("PAYMENT.CAPTURE.COMPLETED", CAPTURE_RESOURCE("COMPLETED"));
    /* Chains to the trust anchor, but its key usage is keyCertSign and
     * cRLSign only: an issuing certificate, not a signer of deliveries. */
    X509 *leaf = make_cert(leaf_key, ca_key, ca_cert, "issuing-only", 1, -3600, 86400);
    char *pem = pem_of(leaf), *sig;
    delivery d;
    payd_event ev;
    payd_error e;

    (void)state;
    cert_route(CERT_URL, pem);
    delivery_init(&d, 0, NULL);
    sig = sign_delivery(leaf_key, &d, WEBHOOK_ID, body);
    d.sig = sig;
    assert_int_equal(deliver(&d, body, &ev, &e), PAYD_E_SIGNATURE);
    assert_contains(e.message, "key usage");
    free(sig);
    free(pem);
    X509_free(leaf);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define O(f) cmocka_unit_test_setup_teardown(f, offline_setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_amount_minor_units_become_decimal_strings_by_exponent),
        T(test_amount_whole_unit_currencies_refuse_fractions),
        T(test_amount_decimal_strings_parse_into_minor_units),
        T(test_amount_bad_decimal_strings_are_rejected),
        T(test_init_requires_credentials_and_names_bad_keys),
        T(test_public_info_and_descriptor),
        T(test_create_builds_the_order_request_with_bearer_and_request_id),
        T(test_create_sends_each_currency_by_its_exponent),
        T(test_create_manual_capture_asks_for_intent_authorize_with_approve_link),
        T(test_create_refuses_bad_input_before_any_request),
        T(test_confirm_captures_the_approved_order),
        T(test_confirm_manual_authorizes_and_reports_capturable),
        T(test_confirm_before_approval_is_requires_action_again),
        T(test_confirm_instrument_declined_with_link_asks_for_another_source),
        T(test_capture_partial_sends_amount_and_final_capture),
        T(test_cancel_voids_the_authorization_or_needs_no_call),
        T(test_retrieve_maps_every_order_and_payment_status),
        T(test_completed_capture_with_an_unreadable_amount_is_an_unknown_outcome),
        T(test_capture_answered_completed_with_an_unreadable_amount_is_an_unknown_outcome),
        T(test_redirect_links_are_https_or_a_real_loopback_host),
        T(test_refund_posts_to_the_capture_with_the_request_id),
        T(test_errors_map_to_payd_codes),
        T(test_token_is_cached_and_reused_until_shortly_before_expiry),
        T(test_401_refreshes_the_token_once_and_retries_with_the_same_request_id),
        T(test_401_twice_is_an_auth_error),
        T(test_refused_client_credentials_are_an_auth_error),
        T(test_the_shared_cache_holds_the_token_sealed_not_in_clear),
        T(test_a_changed_cached_token_is_a_miss_and_a_new_token_is_fetched),
        T(test_the_cached_token_opens_only_under_the_same_credentials),
        T(test_32_threads_with_an_empty_cache_cause_one_token_request),
        T(test_every_listed_event_maps_and_others_are_ignored),
        T(test_api_verification_failure_and_non_events),
        T(test_api_verification_asks_under_a_fresh_request_id_each_time),
        T(test_crc32_reference_matches_the_standard_check_value),
        O(test_offline_signature_verifies_with_the_certificate_chain),
        O(test_offline_signature_failures_are_refused),
        O(test_offline_signature_refuses_an_expired_certificate),
        O(test_offline_signature_refuses_a_certificate_not_for_signatures),
    };
    int rc;
#undef T
#undef O

    if (pki_setup() != 0) {
        fprintf(stderr, "could not make the test PKI\n");
        return 1;
    }
    rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    pki_teardown();
    return rc;
}
