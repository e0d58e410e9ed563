/*
 * tests/unit/test_stripe_module.c - the Stripe gateway, driven through its
 * ABI with no network.
 *
 * The module is dlopen'ed exactly as payd loads it (PAYD_STRIPE_SO, else
 * $PAYD_BUILD/modules/stripe.so, else build/modules/stripe.so) and given
 * the services of tests/unit/fake_host.c, except `http`: this file lends a
 * scripted HTTP client that records each request (method, url, headers,
 * form body) and answers with the next scripted status, body and
 * Request-Id. So the tests see exactly what would go over the wire and
 * decide exactly what Stripe answers.
 *
 * Covered: config checks, Stripe-Signature parsing and tolerance (with
 * Stripe's own vectors from ../shared/fixtures/stripe-webhooks.json), event
 * mapping, form encoding of nested params and escaping, PaymentIntent and
 * Refund status mapping, next_action, error mapping, and that the secret
 * key never shows in logs, errors or results.
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

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "assert_text.h"
#include "fake_host.h"

#define SECRET_KEY "sk_test_unit_5e3cr3t_K3y_do_not_leak"
#define PUB_KEY "pk_test_unit_publishable"
#define HOOK_SECRET "whsec_unit_secret_one"
#define API_BASE "http://127.0.0.1:9/stripe"

static void *dl;
static const payd_module *mod;
static const payd_gateway_ops *gw;
static void *st;
static payd_arena *arena;
static payd_host th; /* fake_host's services with our http */

/* ------------------------------------------------------------------------ */
/* The scripted HTTP client                                                 */
/* ------------------------------------------------------------------------ */

typedef struct answer {
    long status;       /* 0 = transport error */
    const char *body;
    const char *request_id;
} answer;

typedef struct call {
    char method[8];
    char url[512];
    char body[8192];
    char idem[300];
    char version[64];
    char auth[600];
    char ctype[128];
    long timeout_ms;
} call;

static pthread_mutex_t http_mu = PTHREAD_MUTEX_INITIALIZER;
static answer script[16];
static size_t nscript, script_pos;
static call calls[32];
static size_t ncalls;

static void script_reset(void)
{
    pthread_mutex_lock(&http_mu);
    nscript = script_pos = ncalls = 0;
    pthread_mutex_unlock(&http_mu);
}

static void script_push(long status, const char *body, const char *request_id)
{
    pthread_mutex_lock(&http_mu);
    if (nscript < 16)
        script[nscript++] = (answer){status, body, request_id};
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

static int th_http(const payd_host *h, const payd_http_request *req,
                   payd_http_response *res, payd_arena *a, payd_error *e)
{
    answer ans = {200, "{}", NULL};
    call *c;

    (void)h;
    pthread_mutex_lock(&http_mu);
    if (script_pos < nscript)
        ans = script[script_pos++];
    if (ncalls < 32) {
        c = &calls[ncalls++];
        memset(c, 0, sizeof *c);
        snprintf(c->method, sizeof c->method, "%s", req->method);
        snprintf(c->url, sizeof c->url, "%s", req->url);
        snprintf(c->body, sizeof c->body, "%.*s", (int)req->body_len,
                 req->body ? req->body : "");
        snprintf(c->idem, sizeof c->idem, "%s",
                 hdr(req, "Idempotency-Key") ? hdr(req, "Idempotency-Key") : "");
        snprintf(c->version, sizeof c->version, "%s",
                 hdr(req, "Stripe-Version") ? hdr(req, "Stripe-Version") : "");
        snprintf(c->auth, sizeof c->auth, "%s",
                 hdr(req, "Authorization") ? hdr(req, "Authorization") : "");
        snprintf(c->ctype, sizeof c->ctype, "%s",
                 hdr(req, "Content-Type") ? hdr(req, "Content-Type") : "");
        c->timeout_ms = req->timeout_ms;
    }
    pthread_mutex_unlock(&http_mu);
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    if (ans.status == 0) {
        e->code = PAYD_E_TRANSIENT;
        snprintf(e->message, sizeof e->message, "POST 127.0.0.1: Timeout was reached");
        return PAYD_E_TRANSIENT;
    }
    res->status = ans.status;
    res->body = th.strdup(a, ans.body);
    res->body_len = strlen(ans.body);
    if (ans.request_id != NULL) {
        res->headers = th.alloc(a, sizeof(payd_header));
        res->headers[0].name = "Request-Id";
        res->headers[0].value = ans.request_id;
        res->header_count = 1;
    }
    return PAYD_OK;
}

static call last_call(void)
{
    call c;

    pthread_mutex_lock(&http_mu);
    assert_true(ncalls > 0);
    c = calls[ncalls - 1];
    pthread_mutex_unlock(&http_mu);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    mod = fake_module_load("stripe", &dl);
    if (mod == NULL)
        return -1;
    gw = mod->gateway;
    th = *fake_host();
    th.http = th_http;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fake_module_unload(dl);
    return 0;
}

static void default_config(void)
{
    fake_config_set("payd.instance", "stripe");
    fake_config_set("secret_key", SECRET_KEY);
    fake_config_set("publishable_key", PUB_KEY);
    fake_config_set("webhook_secret", HOOK_SECRET);
    fake_config_set("api_base", API_BASE "/");
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
    /* Nothing the module logged may hold the secret key. */
    assert_false(fake_log_contains(SECRET_KEY));
    assert_false(fake_log_contains("5e3cr3t"));
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
    r.idempotency_key = "payd-pay_unit1-create-1";
    r.amount = 2599;
    r.currency = "USD";
    r.currency_exponent = 2;
    r.payment_method = "pm_card_visa";
    r.capture_method = PAYD_CAPTURE_AUTOMATIC;
    r.confirm = 1;
    return r;
}

/* A PaymentIntent JSON with `status`, amounts and extra members (a JSON
 * fragment starting with ',' or ""). */
static const char *intent_json_amounts(const char *status, long capturable,
                                       long received, const char *extra)
{
    static char buf[4096];

    snprintf(buf, sizeof buf,
             "{\"id\":\"pi_unit1\",\"object\":\"payment_intent\",\"amount\":2599,"
             "\"amount_capturable\":%ld,\"amount_received\":%ld,\"currency\":\"usd\","
             "\"status\":\"%s\",\"client_secret\":\"pi_unit1_secret_abc\","
             "\"metadata\":{\"payd_payment_id\":\"pay_unit1\"}%s}",
             capturable, received, status, extra);
    return buf;
}

static const char *intent_json(const char *status, const char *extra)
{
    return intent_json_amounts(status, 0, 0, extra);
}

/* ------------------------------------------------------------------------ */
/* Config                                                                   */
/* ------------------------------------------------------------------------ */

static void test_init_requires_secret_key_and_names_it(void **state)
{
    payd_error e;

    (void)state;
    assert_int_equal(restart_with(&e, "secret_key", NULL, NULL), PAYD_E_INVALID);
    assert_contains(e.message, "secret_key");
}

static void test_init_bad_values_name_the_key_without_echoing_secrets(void **state)
{
    static const char *const cases[][3] = {
        {"secret_key", "pk_test_oops_5e3cr3t", "secret_key"},
        {"secret_key", "not-a-key-5e3cr3t", "secret_key"},
        {"publishable_key", "sk_test_5e3cr3t", "publishable_key"},
        {"webhook_secret", "whsec_a,,whsec_5e3cr3t", "webhook_secret"},
        {"api_base", "ftp://example.com", "api_base"},
        {"api_version", "yesterday", "api_version"},
        {"webhook_tolerance_s", "0", "webhook_tolerance_s"},
        {"webhook_tolerance_s", "5m", "webhook_tolerance_s"},
        {"timeout_ms", "-1", "timeout_ms"},
        {"statement_descriptor_suffix", "12345", "statement_descriptor_suffix"},
        {"statement_descriptor_suffix", "a way too long descriptor", "statement_descriptor_suffix"},
        {"automatic_payment_methods", "maybe", "automatic_payment_methods"},
    };
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_host_reset();
        default_config();
        assert_int_equal(restart_with(&e, cases[i][0], cases[i][1], NULL),
                         PAYD_E_INVALID);
        assert_contains(e.message, cases[i][2]);
        assert_not_contains(e.message, "5e3cr3t");
    }
    fake_host_reset();
    default_config();
    assert_int_equal(restart_with(&e, NULL), PAYD_OK);
}

static void test_public_info_shows_publishable_key_never_secret(void **state)
{
    const char *info;

    (void)state;
    info = gw->public_info(st);
    assert_contains(info, "\"publishable_key\":\"" PUB_KEY "\"");
    assert_not_contains(info, SECRET_KEY);
    assert_not_contains(info, HOOK_SECRET);
}

static void test_descriptor_advertises_what_it_implements(void **state)
{
    (void)state;
    assert_string_equal(mod->name, "stripe");
    assert_int_equal(mod->kind, PAYD_KIND_GATEWAY);
    assert_true(mod->caps & PAYD_CAP_WEBHOOKS);
    assert_true(mod->caps & PAYD_CAP_SAVED_METHODS);
    assert_non_null(gw->save_method);
    assert_non_null(gw->refund_retrieve);
    assert_null(gw->page);
}

/* ------------------------------------------------------------------------ */
/* Webhook signatures                                                       */
/* ------------------------------------------------------------------------ */

static void sign_hex(const char *secret, long long t, const char *body, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[32];
    unsigned int n = 32;
    char *msg;
    int i;

    if (asprintf(&msg, "%lld.%s", t, body) < 0)
        fail();
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg,
         strlen(msg), mac, &n);
    free(msg);
    for (i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

static const char *EVENT_BODY =
    "{\"id\":\"evt_unit1\",\"object\":\"event\",\"created\":1763699995,"
    "\"type\":\"payment_intent.succeeded\",\"data\":{\"object\":{\"id\":\"pi_unit1\","
    "\"object\":\"payment_intent\",\"amount\":2599,\"amount_received\":2599,"
    "\"currency\":\"usd\",\"status\":\"succeeded\","
    "\"metadata\":{\"payd_payment_id\":\"pay_unit1\"}}}}";

/* Run the webhook op with one Stripe-Signature header (NULL: none). */
static int webhook(const char *sig, const char *body, payd_event *ev, payd_error *e)
{
    payd_header h[2] = {{"Content-Type", "application/json"},
                        {"Stripe-Signature", sig}};
    payd_webhook_req req = {.struct_size = sizeof req, .headers = h,
                            .header_count = sig ? 2 : 1, .body = body,
                            .body_len = strlen(body)};

    memset(ev, 0, sizeof *ev);
    ev->struct_size = sizeof *ev;
    memset(e, 0, sizeof *e);
    return gw->webhook(st, &req, ev, arena, e);
}

static int webhook_signed_at(long long t, const char *header_fmt, payd_event *ev,
                             payd_error *e)
{
    char sig[65], header[512];

    sign_hex(HOOK_SECRET, t, EVENT_BODY, sig);
    snprintf(header, sizeof header, header_fmt, t, sig);
    return webhook(header, EVENT_BODY, ev, e);
}

static void test_signature_valid_single_v1(void **state)
{
    payd_event ev;
    payd_error e;

    (void)state;
    assert_int_equal(webhook_signed_at((long long)time(NULL), "t=%lld,v1=%s", &ev, &e),
                     PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_SUCCEEDED);
}

static void test_signature_any_of_several_v1_passes(void **state)
{
    payd_event ev;
    payd_error e;
    char fmt[256];

    (void)state;
    snprintf(fmt, sizeof fmt, "t=%%lld,v1=%064d,v1=%%s,v1=%s", 0,
             "1111111111111111111111111111111111111111111111111111111111111111");
    assert_int_equal(webhook_signed_at((long long)time(NULL), fmt, &ev, &e), PAYD_OK);
}

static void test_signature_unknown_schemes_are_ignored(void **state)
{
    payd_event ev;
    payd_error e;
    long long now = (long long)time(NULL);

    (void)state;
    assert_int_equal(webhook_signed_at(now, "t=%lld,v0=deadbeef,v1=%s,v9=x", &ev, &e),
                     PAYD_OK);
    /* v0 alone carries no v1: refused. */
    assert_int_equal(webhook_signed_at(now, "t=%lld,v0=%s", &ev, &e), PAYD_E_SIGNATURE);
}

static void test_signature_malformed_headers_are_refused(void **state)
{
    static const char *const fmts[] = {
        "v1=%2$s",                 /* missing t */
        "t=%1$lld",                /* no v1 */
        "t=%1$lld,t=%1$lld,v1=%2$s", /* t twice */
        "t=%1$lld, v1=%2$s",       /* space */
        "t=%1$lld,v1=%2$s,",       /* trailing comma */
        "t=%1$lldx,v1=%2$s",       /* t not digits */
        "t=,v1=%2$s",              /* empty t */
        "T=%1$lld,v1=%2$s",        /* upper-case name */
        "t=%1$lld,v1=%2$.63s",     /* 63 hex digits */
        "t=%1$lld,v1=%2$sa",       /* 65 hex digits */
        "t=%1$lld,v1=zz",          /* not hex */
        "",                        /* empty */
    };
    payd_event ev;
    payd_error e;
    char sig[65], header[512];
    long long now = (long long)time(NULL);
    size_t i;

    (void)state;
    sign_hex(HOOK_SECRET, now, EVENT_BODY, sig);
    for (i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        snprintf(header, sizeof header, fmts[i], now, sig);
        assert_int_equal(webhook(header, EVENT_BODY, &ev, &e), PAYD_E_SIGNATURE);
        assert_true(e.message[0] != '\0');
    }
    /* Upper-case hex is not Stripe's encoding. */
    for (i = 0; sig[i]; i++)
        if (sig[i] >= 'a' && sig[i] <= 'f')
            sig[i] = (char)(sig[i] - 'a' + 'A');
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    assert_int_equal(webhook(header, EVENT_BODY, &ev, &e), PAYD_E_SIGNATURE);
    /* No header at all. */
    assert_int_equal(webhook(NULL, EVENT_BODY, &ev, &e), PAYD_E_SIGNATURE);
}

static void test_signature_two_headers_are_refused(void **state)
{
    char sig[65], header[256];
    long long now = (long long)time(NULL);
    payd_header h[2];
    payd_webhook_req req = {.struct_size = sizeof req, .headers = h, .header_count = 2,
                            .body = EVENT_BODY, .body_len = strlen(EVENT_BODY)};
    payd_event ev = {.struct_size = sizeof ev};
    payd_error e = {0};

    (void)state;
    sign_hex(HOOK_SECRET, now, EVENT_BODY, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    h[0] = (payd_header){"Stripe-Signature", header};
    h[1] = (payd_header){"stripe-signature", header};
    assert_int_equal(gw->webhook(st, &req, &ev, arena, &e), PAYD_E_SIGNATURE);
}

static void test_signature_tolerance_on_the_host_clock(void **state)
{
    payd_event ev;
    payd_error e;
    long long now = (long long)time(NULL);

    (void)state;
    assert_int_equal(webhook_signed_at(now - 290, "t=%lld,v1=%s", &ev, &e), PAYD_OK);
    assert_int_equal(webhook_signed_at(now - 330, "t=%lld,v1=%s", &ev, &e),
                     PAYD_E_SIGNATURE);
    assert_contains(e.message, "tolerance");
    assert_int_equal(webhook_signed_at(now + 330, "t=%lld,v1=%s", &ev, &e),
                     PAYD_E_SIGNATURE);
    /* The clock is the host's: shifted forward, a fresh signature is old. */
    fake_clock_shift(400);
    assert_int_equal(webhook_signed_at(now, "t=%lld,v1=%s", &ev, &e), PAYD_E_SIGNATURE);
    assert_int_equal(webhook_signed_at(now + 400, "t=%lld,v1=%s", &ev, &e), PAYD_OK);
    fake_clock_shift(-400);
    /* A configured tolerance. */
    assert_int_equal(restart_with(&e, "webhook_tolerance_s", "10", NULL), PAYD_OK);
    assert_int_equal(webhook_signed_at(now - 30, "t=%lld,v1=%s", &ev, &e),
                     PAYD_E_SIGNATURE);
}

static void test_signature_secret_rotation_accepts_each_configured_secret(void **state)
{
    payd_event ev;
    payd_error e;
    char sig[65], header[256];
    long long now = (long long)time(NULL);

    (void)state;
    assert_int_equal(restart_with(&e, "webhook_secret", "whsec_old , whsec_new", NULL),
                     PAYD_OK);
    sign_hex("whsec_new", now, EVENT_BODY, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    assert_int_equal(webhook(header, EVENT_BODY, &ev, &e), PAYD_OK);
    sign_hex("whsec_old", now, EVENT_BODY, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    assert_int_equal(webhook(header, EVENT_BODY, &ev, &e), PAYD_OK);
    sign_hex(HOOK_SECRET, now, EVENT_BODY, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    assert_int_equal(webhook(header, EVENT_BODY, &ev, &e), PAYD_E_SIGNATURE);
}

static void test_signature_without_configured_secret_refuses(void **state)
{
    payd_event ev;
    payd_error e;

    (void)state;
    assert_int_equal(restart_with(&e, "webhook_secret", NULL, NULL), PAYD_OK);
    assert_int_equal(webhook_signed_at((long long)time(NULL), "t=%lld,v1=%s", &ev, &e),
                     PAYD_E_SIGNATURE);
}

/* A fresh instance with webhook_secret = `secret` and the host clock at
 * unix time `now`. */
static void restart_at(const char *secret, long long now)
{
    payd_error e;

    fake_host_reset();
    default_config();
    fake_config_set("webhook_secret", secret);
    assert_int_equal(restart_with(&e, NULL), PAYD_OK);
    fake_clock_shift(now - (long long)time(NULL));
}

/* Stripe's own vectors (stripe-node): every case gives its verdict. */
static json_t *load_vectors(void)
{
    char path[4096];
    const char *root = getenv("PAYD_ROOT");
    json_t *doc;

    snprintf(path, sizeof path, "%s/../shared/fixtures/stripe-webhooks.json",
             root ? root : ".");
    doc = json_load_file(path, 0, NULL);
    if (doc == NULL)
        print_error("cannot read %s\n", path);
    return doc;
}

static void test_signature_stripe_node_vectors_give_their_verdict(void **state)
{
    json_t *doc = load_vectors(), *c;
    size_t i;

    (void)state;
    assert_non_null(doc);
    json_array_foreach(json_object_get(doc, "cases"), i, c) {
        const char *secret = json_string_value(json_object_get(c, "secret"));
        const char *header = json_string_value(json_object_get(c, "header"));
        const char *body = json_string_value(json_object_get(c, "body"));
        const char *expect = json_string_value(json_object_get(c, "expect"));
        long long now = json_integer_value(json_object_get(c, "now"));
        payd_event ev;
        payd_error e;
        int rc;

        restart_at(secret, now);
        rc = webhook(header, body, &ev, &e);
        if (strcmp(expect, "valid") == 0 ? rc != PAYD_OK : rc != PAYD_E_SIGNATURE) {
            print_error("case \"%s\": rc %d (%s)\n",
                        json_string_value(json_object_get(c, "name")), rc, e.message);
            fail();
        }
    }
    json_decref(doc);
}

/* ------------------------------------------------------------------------ */
/* Event mapping                                                            */
/* ------------------------------------------------------------------------ */

/* The body of the first fixture case named `name`, verified and mapped. */
static int vector_event(const char *name, payd_event *ev)
{
    json_t *doc = load_vectors(), *c;
    payd_error e;
    size_t i;
    int rc = -100;

    assert_non_null(doc);
    json_array_foreach(json_object_get(doc, "cases"), i, c) {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) != 0)
            continue;
        restart_at(json_string_value(json_object_get(c, "secret")),
                   json_integer_value(json_object_get(c, "now")));
        /* The body is copied into the arena: it must outlive doc. */
        rc = webhook(json_string_value(json_object_get(c, "header")),
                     th.strdup(arena, json_string_value(json_object_get(c, "body"))),
                     ev, &e);
        break;
    }
    json_decref(doc);
    return rc;
}

static void test_event_payment_intent_succeeded(void **state)
{
    payd_event ev;

    (void)state;
    assert_int_equal(vector_event("payment_intent.succeeded ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_SUCCEEDED);
    assert_string_equal(ev.provider_event_id, "evt_1QpayD01");
    assert_string_equal(ev.provider_type, "payment_intent.succeeded");
    assert_string_equal(ev.payment_id, "pay_01JD3M9Q8C2W");
    assert_string_equal(ev.provider_ref, "pi_3QpayD1");
    assert_int_equal(ev.amount, 2599);
    assert_string_equal(ev.currency, "USD");
    assert_int_equal(ev.occurred_at, 1763699995);
}

static void test_event_payment_failed_carries_normalized_decline(void **state)
{
    payd_event ev;

    (void)state;
    assert_int_equal(vector_event("payment_intent.payment_failed ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_FAILED);
    assert_string_equal(ev.failure_code, "card_declined");
    assert_string_equal(ev.failure_message, "Your card was declined.");
    assert_string_equal(ev.provider_ref, "pi_3QpayD2");
}

static void test_event_requires_action_canceled_dispute_method(void **state)
{
    payd_event ev;

    (void)state;
    assert_int_equal(vector_event("payment_intent.requires_action ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_REQUIRES_ACTION);
    assert_int_equal(vector_event("payment_intent.canceled ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_CANCELED);
    assert_int_equal(vector_event("charge.dispute.created ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_DISPUTE_CREATED);
    assert_string_equal(ev.provider_ref, "pi_3QpayD1");
    assert_int_equal(ev.amount, 2599);
    assert_int_equal(vector_event("payment_method.attached ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_METHOD_ATTACHED);
    assert_null(ev.payment_id);
}

static void test_event_charge_refunded_names_the_latest_refund(void **state)
{
    payd_event ev;

    (void)state;
    assert_int_equal(vector_event("charge.refunded ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_REFUND_SUCCEEDED);
    assert_string_equal(ev.refund_ref, "re_3QpayD1");
    assert_string_equal(ev.provider_ref, "pi_3QpayD1");
    assert_int_equal(ev.amount, 1000);
}

static void test_event_refund_updated_failed(void **state)
{
    payd_event ev;

    (void)state;
    assert_int_equal(vector_event("refund.updated ok", &ev), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_REFUND_FAILED);
    assert_string_equal(ev.refund_ref, "re_3QpayD2");
    assert_string_equal(ev.failure_code, "expired_or_canceled_card");
    assert_string_equal(ev.currency, "JPY");
}

static void test_event_unknown_types_are_ignored_and_non_events_invalid(void **state)
{
    payd_event ev;
    payd_error e;
    char sig[65], header[256];
    long long now = (long long)time(NULL);
    const char *other = "{\"id\":\"evt_x\",\"type\":\"customer.created\","
                        "\"created\":1,\"data\":{\"object\":{\"id\":\"cus_1\"}}}";
    const char *junk = "{\"hello\":\"world\"}";

    (void)state;
    sign_hex(HOOK_SECRET, now, other, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    assert_int_equal(webhook(header, other, &ev, &e), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_IGNORED);
    assert_string_equal(ev.provider_event_id, "evt_x");
    sign_hex(HOOK_SECRET, now, junk, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    assert_int_equal(webhook(header, junk, &ev, &e), PAYD_E_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Requests on the wire                                                     */
/* ------------------------------------------------------------------------ */

static int create(payd_payment_req *r, payd_payment_res *res, payd_error *e)
{
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    memset(e, 0, sizeof *e);
    return gw->create(st, r, res, arena, e);
}

static void test_create_form_encodes_nested_params_and_escapes(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;
    call c;

    (void)state;
    r.capture_method = PAYD_CAPTURE_MANUAL;
    r.return_url = "https://shop.example/return?a=1&b=2";
    r.description = "Caf\xc3\xa9 & co=+";
    r.statement_descriptor_suffix = "ORDER 42";
    r.order_number = "1001";
    script_push(200, intent_json("requires_capture", ""), "req_unit_1");
    assert_int_equal(create(&r, &res, &e), PAYD_OK);
    c = last_call();
    assert_string_equal(c.method, "POST");
    assert_string_equal(c.url, API_BASE "/v1/payment_intents");
    assert_string_equal(c.body,
                        "amount=2599&currency=usd&capture_method=manual"
                        "&payment_method=pm_card_visa&confirm=true"
                        "&return_url=https%3A%2F%2Fshop.example%2Freturn%3Fa%3D1%26b%3D2"
                        "&description=Caf%C3%A9%20%26%20co%3D%2B"
                        "&statement_descriptor_suffix=ORDER%2042"
                        "&metadata[payd_payment_id]=pay_unit1"
                        "&metadata[payd_order_id]=ord_unit1"
                        "&metadata[payd_order_number]=1001"
                        "&payment_method_types[]=card");
    assert_string_equal(c.idem, "payd-pay_unit1-create-1");
    assert_string_equal(c.version, "2024-06-20");
    assert_string_equal(c.auth, "Bearer " SECRET_KEY);
    assert_string_equal(c.ctype, "application/x-www-form-urlencoded");
    assert_string_equal(res.provider_request_id, "req_unit_1");
}

static void test_create_with_config_defaults_and_automatic_methods(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;
    call c;

    (void)state;
    assert_int_equal(restart_with(&e, "automatic_payment_methods", "true",
                                  "statement_descriptor_suffix", "SHOP",
                                  "api_version", "2024-09-30.acacia", "timeout_ms",
                                  "2500", NULL),
                     PAYD_OK);
    r.confirm = 0;
    r.payment_method = NULL;
    script_push(200, intent_json("requires_payment_method", ""), NULL);
    assert_int_equal(create(&r, &res, &e), PAYD_OK);
    c = last_call();
    assert_string_equal(c.body,
                        "amount=2599&currency=usd&capture_method=automatic"
                        "&statement_descriptor_suffix=SHOP"
                        "&metadata[payd_payment_id]=pay_unit1"
                        "&metadata[payd_order_id]=ord_unit1"
                        "&automatic_payment_methods[enabled]=true");
    assert_string_equal(c.version, "2024-09-30.acacia");
    assert_int_equal(c.timeout_ms, 2500);
    /* A frontend finishes this one with Stripe.js: it gets the secret. */
    assert_int_equal(res.status, PAYD_PS_REQUIRES_PAYMENT_METHOD);
    assert_string_equal(res.client_secret, "pi_unit1_secret_abc");

    /* Confirming without a return_url: no redirect-based methods. */
    r.confirm = 1;
    r.payment_method = "pm_card_visa";
    script_push(200, intent_json("succeeded", ""), NULL);
    assert_int_equal(create(&r, &res, &e), PAYD_OK);
    assert_contains(last_call().body, "automatic_payment_methods[allow_redirects]=never");
}

static void test_create_refuses_bad_input_before_any_request(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;

    (void)state;
    r.payment_method = "4242 4242 4242 4242";
    assert_int_equal(create(&r, &res, &e), PAYD_E_INVALID);
    assert_not_contains(e.message, "4242");
    r = pay_req();
    r.currency = "usd";
    assert_int_equal(create(&r, &res, &e), PAYD_E_INVALID);
    r = pay_req();
    r.amount = 0;
    assert_int_equal(create(&r, &res, &e), PAYD_E_INVALID);
    r = pay_req();
    r.idempotency_key = NULL;
    assert_int_equal(create(&r, &res, &e), PAYD_E_INVALID);
    r = pay_req();
    r.return_url = "javascript:alert(1)";
    assert_int_equal(create(&r, &res, &e), PAYD_E_INVALID);
    assert_int_equal(ncalls, 0);
}

static void test_capture_cancel_confirm_retrieve_paths_and_params(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    call c;

    (void)state;
    r.provider_ref = "pi_unit1";
    r.idempotency_key = "payd-pay_unit1-capture-2";
    r.amount_to_capture = 1500;
    script_push(200, intent_json_amounts("succeeded", 0, 1500, ""), NULL);
    assert_int_equal(gw->capture(st, &r, &res, arena, &e), PAYD_OK);
    c = last_call();
    assert_string_equal(c.url, API_BASE "/v1/payment_intents/pi_unit1/capture");
    assert_string_equal(c.body, "amount_to_capture=1500");
    assert_string_equal(c.idem, "payd-pay_unit1-capture-2");
    assert_int_equal(res.status, PAYD_PS_SUCCEEDED);

    r.cancel_reason = "requested_by_customer";
    script_push(200, intent_json("canceled", ""), NULL);
    assert_int_equal(gw->cancel(st, &r, &res, arena, &e), PAYD_OK);
    c = last_call();
    assert_string_equal(c.url, API_BASE "/v1/payment_intents/pi_unit1/cancel");
    assert_string_equal(c.body, "cancellation_reason=requested_by_customer");
    assert_int_equal(res.status, PAYD_PS_CANCELED);

    r.return_url = "https://shop.example/back";
    script_push(200, intent_json("processing", ""), NULL);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_OK);
    c = last_call();
    assert_string_equal(c.url, API_BASE "/v1/payment_intents/pi_unit1/confirm");
    assert_string_equal(c.body, "payment_method=pm_card_visa"
                                "&return_url=https%3A%2F%2Fshop.example%2Fback");
    assert_int_equal(res.status, PAYD_PS_PROCESSING);

    script_push(200, intent_json_amounts("requires_capture", 2599, 0, ""), NULL);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    c = last_call();
    assert_string_equal(c.method, "GET");
    assert_string_equal(c.url, API_BASE "/v1/payment_intents/pi_unit1");
    assert_string_equal(c.idem, "");
    assert_int_equal(res.status, PAYD_PS_REQUIRES_CAPTURE);
    assert_int_equal(res.amount_capturable, 2599);

    /* A ref that is not an id never reaches a URL. */
    r.provider_ref = "../v1/charges";
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_E_NOTFOUND);
}

/* ------------------------------------------------------------------------ */
/* Status mapping                                                           */
/* ------------------------------------------------------------------------ */

static void test_every_stripe_status_maps_exactly(void **state)
{
    static const struct {
        const char *stripe;
        int payd;
    } map[] = {
        {"requires_payment_method", PAYD_PS_REQUIRES_PAYMENT_METHOD},
        {"requires_confirmation", PAYD_PS_REQUIRES_CONFIRMATION},
        {"requires_action", PAYD_PS_REQUIRES_ACTION},
        {"processing", PAYD_PS_PROCESSING},
        {"requires_capture", PAYD_PS_REQUIRES_CAPTURE},
        {"succeeded", PAYD_PS_SUCCEEDED},
        {"canceled", PAYD_PS_CANCELED},
    };
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    size_t i;

    (void)state;
    r.provider_ref = "pi_unit1";
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        script_push(200, intent_json(map[i].stripe, ""), "req_s");
        assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
        assert_int_equal(res.status, map[i].payd);
        assert_string_equal(res.provider_ref, "pi_unit1");
        assert_non_null(res.raw);
        assert_not_contains(res.raw, "secret");
    }
    /* An unknown status is not something payd can act on. */
    script_push(200, intent_json("exploded", ""), NULL);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_E_TRANSIENT);
}

static void test_last_payment_error_after_confirm_is_failed_with_decline_code(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    const char *lpe =
        ",\"last_payment_error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
        "\"decline_code\":\"insufficient_funds\",\"message\":\"Your card has "
        "insufficient funds.\"}";

    (void)state;
    r.provider_ref = "pi_unit1";
    script_push(200, intent_json("requires_payment_method", lpe), NULL);
    assert_int_equal(gw->confirm(st, &r, &res, arena, &e), PAYD_E_DECLINED);
    assert_int_equal(res.status, PAYD_PS_FAILED);
    assert_string_equal(res.failure_code, "insufficient_funds");
    assert_string_equal(e.failure_code, "insufficient_funds");
    /* The janitor's retrieve reads the same intent as failed, not an error. */
    script_push(200, intent_json("requires_payment_method", lpe), NULL);
    assert_int_equal(gw->retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_FAILED);
    assert_string_equal(res.failure_code, "insufficient_funds");
}

static void test_next_action_redirect_and_sdk(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;

    (void)state;
    script_push(200,
                intent_json("requires_action",
                            ",\"next_action\":{\"type\":\"redirect_to_url\","
                            "\"redirect_to_url\":{\"url\":\"https://hooks.stripe.com/3ds/x\","
                            "\"return_url\":\"https://shop.example/r\"}}"),
                NULL);
    assert_int_equal(create(&r, &res, &e), PAYD_OK);
    assert_int_equal(res.status, PAYD_PS_REQUIRES_ACTION);
    assert_int_equal(res.next_action, PAYD_NA_REDIRECT_URL);
    assert_string_equal(res.next_action_url, "https://hooks.stripe.com/3ds/x");
    assert_null(res.client_secret);

    script_push(200,
                intent_json("requires_action",
                            ",\"next_action\":{\"type\":\"use_stripe_sdk\","
                            "\"use_stripe_sdk\":{\"type\":\"three_d_secure_redirect\"}}"),
                NULL);
    assert_int_equal(create(&r, &res, &e), PAYD_OK);
    assert_int_equal(res.next_action, PAYD_NA_USE_SDK);
    assert_string_equal(res.client_secret, "pi_unit1_secret_abc");
    assert_not_contains(res.raw, "pi_unit1_secret_abc");
    assert_not_contains(res.raw, "use_stripe_sdk\":{");
}

/* ------------------------------------------------------------------------ */
/* Error mapping                                                            */
/* ------------------------------------------------------------------------ */

static void test_card_errors_are_declines_with_normalized_codes(void **state)
{
    static const char *const cases[][3] = {
        {"card_declined", "generic_decline", "card_declined"},
        {"card_declined", "insufficient_funds", "insufficient_funds"},
        {"expired_card", "expired_card", "expired_card"},
        {"incorrect_cvc", NULL, "incorrect_cvc"},
        {"processing_error", NULL, "processing_error"},
        {"card_declined", "lost_card", "card_declined"},
        {"card_declined", "authentication_required", "authentication_required"},
        {"authentication_required", NULL, "authentication_required"},
    };
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;
    char body[8192];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"error\":{\"type\":\"card_error\",\"code\":\"%s\"%s%s%s,"
                 "\"message\":\"Your card was declined.\","
                 "\"payment_intent\":%s}}",
                 cases[i][0], cases[i][1] ? ",\"decline_code\":\"" : "",
                 cases[i][1] ? cases[i][1] : "", cases[i][1] ? "\"" : "",
                 intent_json("requires_payment_method",
                             ",\"last_payment_error\":{\"code\":\"card_declined\"}"));
        script_push(402, body, "req_decl");
        assert_int_equal(create(&r, &res, &e), PAYD_E_DECLINED);
        assert_string_equal(e.failure_code, cases[i][2]);
        assert_string_equal(e.message, "Your card was declined.");
        assert_string_equal(e.provider_request_id, "req_decl");
        assert_int_equal(res.status, PAYD_PS_FAILED);
        assert_string_equal(res.provider_ref, "pi_unit1");
        assert_string_equal(res.failure_code, cases[i][2]);
    }
}

static void test_http_errors_map_to_payd_codes(void **state)
{
    static const struct {
        long status;
        const char *body;
        int rc;
        const char *in_message;
    } cases[] = {
        {400, "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Invalid currency: xyz\",\"param\":\"currency\"}}",
         PAYD_E_INVALID, "Invalid currency: xyz (param currency)"},
        {401, "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"Invalid API Key provided: sk_test_****leak\"}}",
         PAYD_E_AUTH, "secret key"},
        {403, "{\"error\":{\"type\":\"invalid_request_error\",\"message\":\"restricted\"}}",
         PAYD_E_AUTH, "HTTP 403"},
        {404, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"resource_missing\",\"message\":\"No such payment_intent: 'pi_x'\"}}",
         PAYD_E_NOTFOUND, "No such payment_intent"},
        {409, "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"Keys for idempotent requests can only be used with the same parameters\"}}",
         PAYD_E_PROVIDER, "Keys for idempotent requests"},
        {400, "{\"error\":{\"type\":\"idempotency_error\",\"message\":\"Keys for idempotent requests can only be used with the same parameters\"}}",
         PAYD_E_PROVIDER, "idempotency"},
        {409, "{\"error\":{\"type\":\"idempotency_error\",\"code\":\"idempotency_key_in_use\",\"message\":\"There is currently another in-progress request\"}}",
         PAYD_E_TRANSIENT, "in progress"},
        {429, "{\"error\":{\"type\":\"invalid_request_error\",\"code\":\"rate_limit\",\"message\":\"Too many requests\"}}",
         PAYD_E_TRANSIENT, "429"},
        {500, "{\"error\":{\"type\":\"api_error\",\"message\":\"An unknown error occurred\"}}",
         PAYD_E_TRANSIENT, "500"},
        {503, "<html>Service Unavailable</html>", PAYD_E_TRANSIENT, "503"},
        {200, "{\"id\":\"pi_unit1\",\"object\":\"payment_inte", PAYD_E_TRANSIENT, "malformed"},
        {200, "{\"id\":\"re_1\",\"object\":\"refund\",\"status\":\"succeeded\"}", PAYD_E_TRANSIENT, "malformed"},
        {200, "", PAYD_E_TRANSIENT, "malformed"},
        {0, "", PAYD_E_TRANSIENT, "Timeout"},
    };
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        script_push(cases[i].status, cases[i].body, "req_err");
        if (create(&r, &res, &e) != cases[i].rc) {
            print_error("case %zu (HTTP %ld): got %d (%s)\n", i, cases[i].status,
                        e.code, e.message);
            fail();
        }
        assert_int_equal(e.code, cases[i].rc);
        assert_contains(e.message, cases[i].in_message);
        assert_not_contains(e.message, "sk_test");
        if (cases[i].status != 0)
            assert_string_equal(e.provider_request_id, "req_err");
    }
}

static void test_provider_messages_that_could_leak_are_replaced(void **state)
{
    payd_payment_req r = pay_req();
    payd_payment_res res;
    payd_error e;

    (void)state;
    script_push(402,
                "{\"error\":{\"type\":\"card_error\",\"code\":\"card_declined\","
                "\"message\":\"Card 4242 4242 4242 4242 was declined\"}}",
                NULL);
    assert_int_equal(create(&r, &res, &e), PAYD_E_DECLINED);
    assert_not_contains(e.message, "4242 4242");
    assert_string_equal(e.message, "Your card was declined.");
    script_push(400,
                "{\"error\":{\"type\":\"invalid_request_error\","
                "\"message\":\"Key sk_live_abcdef is not valid here\"}}",
                NULL);
    assert_int_equal(create(&r, &res, &e), PAYD_E_INVALID);
    assert_not_contains(e.message, "sk_live");
}

/* ------------------------------------------------------------------------ */
/* Refunds and saved methods                                                */
/* ------------------------------------------------------------------------ */

static void test_refund_request_and_status_mapping(void **state)
{
    static const struct {
        const char *stripe;
        int payd;
    } map[] = {{"succeeded", PAYD_RS_SUCCEEDED}, {"pending", PAYD_RS_PENDING},
               {"requires_action", PAYD_RS_PENDING}, {"failed", PAYD_RS_FAILED},
               {"canceled", PAYD_RS_CANCELED}};
    payd_refund_req r = {.struct_size = sizeof r, .refund_id = "re_payd1",
                         .payment_id = "pay_unit1",
                         .idempotency_key = "payd-re_payd1-refund-1",
                         .provider_ref = "pi_unit1", .amount = 500,
                         .currency = "USD", .currency_exponent = 2,
                         .reason = "requested_by_customer"};
    payd_refund_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    char body[512];
    call c;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        snprintf(body, sizeof body,
                 "{\"id\":\"re_s1\",\"object\":\"refund\",\"amount\":500,"
                 "\"status\":\"%s\",\"failure_reason\":\"lost_or_stolen_card\"}",
                 map[i].stripe);
        script_push(200, body, "req_re");
        assert_int_equal(gw->refund(st, &r, &res, arena, &e), PAYD_OK);
        assert_int_equal(res.status, map[i].payd);
        assert_string_equal(res.refund_ref, "re_s1");
        assert_string_equal(res.provider_request_id, "req_re");
    }
    assert_string_equal(res.failure_code, "lost_or_stolen_card");
    c = last_call();
    assert_string_equal(c.url, API_BASE "/v1/refunds");
    assert_string_equal(c.body, "payment_intent=pi_unit1&amount=500"
                                "&reason=requested_by_customer"
                                "&metadata[payd_refund_id]=re_payd1"
                                "&metadata[payd_payment_id]=pay_unit1");
    assert_string_equal(c.idem, "payd-re_payd1-refund-1");

    r.refund_ref = "re_s1";
    script_push(200, "{\"id\":\"re_s1\",\"object\":\"refund\",\"status\":\"succeeded\"}", NULL);
    assert_int_equal(gw->refund_retrieve(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(last_call().url, API_BASE "/v1/refunds/re_s1");
    assert_string_equal(last_call().method, "GET");
}

static void test_save_method_creates_customer_then_attaches_with_derived_keys(void **state)
{
    payd_method_req r = {.struct_size = sizeof r, .customer_email = "a@example.com",
                         .method_ref = "pm_1Abc", .idempotency_key = "payd-m-1"};
    payd_method res = {.struct_size = sizeof res};
    payd_error e = {0};
    call first, second;

    (void)state;
    script_push(200, "{\"id\":\"cus_u1\",\"object\":\"customer\"}", NULL);
    script_push(200,
                "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":\"cus_u1\","
                "\"billing_details\":{\"name\":\"Jenny Rosen\"},"
                "\"card\":{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":8,"
                "\"exp_year\":2030,\"fingerprint\":\"AOB934\"}}",
                NULL);
    assert_int_equal(gw->save_method(st, &r, &res, arena, &e), PAYD_OK);
    assert_int_equal(ncalls, 2);
    first = calls[0];
    second = calls[1];
    assert_string_equal(first.url, API_BASE "/v1/customers");
    assert_string_equal(first.idem, "payd-m-1-customer");
    assert_contains(first.body, "email=a%40example.com");
    assert_string_equal(second.url, API_BASE "/v1/payment_methods/pm_1Abc/attach");
    assert_string_equal(second.body, "customer=cus_u1");
    assert_string_equal(second.idem, "payd-m-1-attach");
    assert_string_equal(res.method_ref, "pm_1Abc");
    assert_string_equal(res.customer_ref, "cus_u1");
    assert_string_equal(res.brand, "visa");
    assert_string_equal(res.last4, "4242");
    assert_int_equal(res.exp_month, 8);
    assert_int_equal(res.exp_year, 2030);
}

static void test_list_and_delete_methods_keep_display_data_only(void **state)
{
    payd_method_req r = {.struct_size = sizeof r, .customer_ref = "cus_u1",
                         .method_ref = "pm_1Abc", .idempotency_key = "payd-m-2"};
    payd_method_list list = {.struct_size = sizeof list};
    payd_method res = {.struct_size = sizeof res};
    payd_error e = {0};

    (void)state;
    script_push(200,
                "{\"object\":\"list\",\"has_more\":false,\"data\":["
                "{\"id\":\"pm_2\",\"object\":\"payment_method\",\"customer\":\"cus_u1\","
                "\"card\":{\"brand\":\"mastercard\",\"last4\":\"4444\",\"exp_month\":1,\"exp_year\":2031}},"
                "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":\"cus_u1\","
                "\"card\":{\"brand\":\"visa\",\"last4\":\"4242\",\"exp_month\":8,\"exp_year\":2030}}]}",
                NULL);
    assert_int_equal(gw->list_methods(st, &r, &list, arena, &e), PAYD_OK);
    assert_string_equal(last_call().url,
                        API_BASE "/v1/payment_methods?customer=cus_u1&type=card&limit=100");
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[0].method_ref, "pm_2");
    assert_string_equal(list.items[0].last4, "4444");
    assert_string_equal(list.items[1].brand, "visa");

    script_push(200, "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":\"cus_other\"}",
                NULL);
    assert_int_equal(gw->delete_method(st, &r, &res, arena, &e), PAYD_E_NOTFOUND);
    script_push(200, "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":\"cus_u1\"}",
                NULL);
    script_push(200, "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":null,"
                     "\"card\":{\"brand\":\"visa\",\"last4\":\"4242\"}}",
                NULL);
    assert_int_equal(gw->delete_method(st, &r, &res, arena, &e), PAYD_OK);
    assert_string_equal(last_call().url, API_BASE "/v1/payment_methods/pm_1Abc/detach");
    assert_string_equal(last_call().idem, "payd-m-2");
    assert_string_equal(res.method_ref, "pm_1Abc");
    assert_string_equal(res.customer_ref, "cus_u1");

    /* The core deletes without a key: the module makes a fresh one. */
    r.idempotency_key = NULL;
    script_push(200, "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":\"cus_u1\"}",
                NULL);
    script_push(200, "{\"id\":\"pm_1Abc\",\"object\":\"payment_method\",\"customer\":null}",
                NULL);
    assert_int_equal(gw->delete_method(st, &r, &res, arena, &e), PAYD_OK);
    assert_true(strncmp(last_call().idem, "payd-detach-pm_1Abc-", 20) == 0);
    assert_int_equal(strlen(last_call().idem), 20 + 16);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_init_requires_secret_key_and_names_it),
        T(test_init_bad_values_name_the_key_without_echoing_secrets),
        T(test_public_info_shows_publishable_key_never_secret),
        T(test_descriptor_advertises_what_it_implements),
        T(test_signature_valid_single_v1),
        T(test_signature_any_of_several_v1_passes),
        T(test_signature_unknown_schemes_are_ignored),
        T(test_signature_malformed_headers_are_refused),
        T(test_signature_two_headers_are_refused),
        T(test_signature_tolerance_on_the_host_clock),
        T(test_signature_secret_rotation_accepts_each_configured_secret),
        T(test_signature_without_configured_secret_refuses),
        T(test_signature_stripe_node_vectors_give_their_verdict),
        T(test_event_payment_intent_succeeded),
        T(test_event_payment_failed_carries_normalized_decline),
        T(test_event_requires_action_canceled_dispute_method),
        T(test_event_charge_refunded_names_the_latest_refund),
        T(test_event_refund_updated_failed),
        T(test_event_unknown_types_are_ignored_and_non_events_invalid),
        T(test_create_form_encodes_nested_params_and_escapes),
        T(test_create_with_config_defaults_and_automatic_methods),
        T(test_create_refuses_bad_input_before_any_request),
        T(test_capture_cancel_confirm_retrieve_paths_and_params),
        T(test_every_stripe_status_maps_exactly),
        T(test_last_payment_error_after_confirm_is_failed_with_decline_code),
        T(test_next_action_redirect_and_sdk),
        T(test_card_errors_are_declines_with_normalized_codes),
        T(test_http_errors_map_to_payd_codes),
        T(test_provider_messages_that_could_leak_are_replaced),
        T(test_refund_request_and_status_mapping),
        T(test_save_method_creates_customer_then_attaches_with_derived_keys),
        T(test_list_and_delete_methods_keep_display_data_only),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
