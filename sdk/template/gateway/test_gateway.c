/*
 * test_gateway.c - tests for the template gateway, with no payd: the module
 * is loaded from its .so (dlopen, as payd does), given the test host of
 * ../testhost.h, and host->http is answered in-process by the fake
 * ExamplePay of fake_provider.h.
 *
 *     make test                       (or: ./test_gateway ./example.so)
 *
 * Extend it as the module grows: every error mapping, every status, every
 * webhook type deserves a line here, because this is the only place they
 * are cheap to test. Then run payd-modcheck against the fake over HTTP.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>

#include "fake_provider.h"
#include "testhost.h"

#define API_KEY "sk_test_example_0123456789"
#define WEBHOOK_SECRET "whsec_example_0123456789"
#define BASE "https://api.examplepay.test"

static int checks, failures;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* ---- the fake provider, reached through host->http ---- */

typedef struct fake_link {
    fake_provider fp;
    int down;                     /* 1: nothing answers (a timeout) */
} fake_link;

static const char *req_header(const payd_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->header_count; i++)
        if (!strcmp(req->headers[i].name, name)) return req->headers[i].value;
    return NULL;
}

static int fake_http(void *user, const payd_http_request *req, payd_http_response *res, payd_arena *a)
{
    fake_link *link = user;
    if (link->down) return PAYD_E_TRANSIENT;
    if (strncmp(req->url, BASE, strlen(BASE)) != 0) return PAYD_E_TRANSIENT; /* unknown host */
    char *out = NULL;
    int status = fake_provider_handle(&link->fp, req->method, req->url + strlen(BASE),
                                      req_header(req, "Authorization"), req_header(req, "Idempotency-Key"),
                                      req->body, req->body_len, &out);
    res->status = status;
    res->body = th_strdup(a, out ? out : "");
    res->body_len = out ? strlen(out) : 0;
    free(out);
    static payd_header rid = {"Request-Id", "req_test_1"};
    res->headers = &rid;
    res->header_count = 1;
    return 0;
}

/* ---- the module under test ---- */

typedef struct gw {
    th_host t;
    fake_link link;
    const payd_module *m;
    void *state;
    int rc;                       /* what init returned */
    payd_error e;
} gw;

static const payd_module *module;

static void gw_open(gw *g, const char *const *config)
{
    memset(g, 0, sizeof *g);
    th_init(&g->t, config);
    g->t.quiet = 1;
    fake_provider_init(&g->link.fp, API_KEY);
    g->t.http = fake_http;
    g->t.http_user = &g->link;
    g->m = module;
    g->rc = module->init(&g->t.host, th_config(&g->t), &g->state, &g->e);
}

static void gw_close(gw *g)
{
    if (g->rc == 0 && g->m->fini) g->m->fini(g->state);
    fake_provider_free(&g->link.fp);
    th_fini(&g->t);
}

static const char *const good_config[] = {"api_base", BASE, "api_key", API_KEY, "webhook_secret", WEBHOOK_SECRET, NULL};

/* A create request as payd builds one. */
static payd_payment_req pay_req(const char *pid, const char *key, const char *method)
{
    payd_payment_req r = {.struct_size = sizeof r, .payment_id = pid, .idempotency_key = key, .amount = 1099,
                          .currency = "USD", .currency_exponent = 2, .payment_method = method,
                          .capture_method = PAYD_CAPTURE_AUTOMATIC, .confirm = 1};
    return r;
}

static int pay(gw *g, int (*op)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res)), const payd_payment_req *r,
               payd_payment_res *res, payd_arena *a, payd_error *e)
{
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    memset(e, 0, sizeof *e);
    return op(g->state, r, res, a, e);
}

/* ---- tests ---- */

static void test_init_reads_and_checks_config(void)
{
    gw g;
    gw_open(&g, good_config);
    CHECK(g.rc == 0, "init: %s", g.e.message);
    CHECK(th_unread_key(&g.t) == NULL, "key %s was never read: payd would refuse it", th_unread_key(&g.t));
    CHECK(!th_log_contains(&g.t, API_KEY), "the API key was logged");
    gw_close(&g);

    static const char *const no_key[] = {"api_base", BASE, NULL};
    gw_open(&g, no_key);
    CHECK(g.rc == PAYD_E_INVALID && strstr(g.e.message, "api_key"), "init without api_key: %d %s", g.rc,
          g.e.message);
    gw_close(&g);

    static const char *const bad_int[] = {"api_base", BASE, "api_key", API_KEY, "timeout_ms", "soon", NULL};
    gw_open(&g, bad_int);
    CHECK(g.rc == PAYD_E_INVALID && strstr(g.e.message, "timeout_ms"), "bad timeout_ms: %s", g.e.message);
    gw_close(&g);
}

static void test_create_confirms_and_retrieve_agrees(void)
{
    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    payd_payment_req r = pay_req("pay_1", "payd-pay_1-create-1", "pm_card_visa");
    payd_payment_res res;
    payd_error e;
    int rc = pay(&g, g.m->gateway->create, &r, &res, a, &e);
    CHECK(rc == PAYD_OK, "create: %d %s", rc, e.message);
    CHECK(res.status == PAYD_PS_SUCCEEDED, "status %d", res.status);
    CHECK(res.provider_ref && !strncmp(res.provider_ref, "exp_pay_", 8), "ref %s", res.provider_ref);
    CHECK(th_arena_owns(a, res.provider_ref) && th_arena_owns(a, res.raw), "outputs must live in the arena");
    CHECK(res.amount == 1099 && res.amount_captured == 1099, "amounts %lld %lld", (long long)res.amount,
          (long long)res.amount_captured);
    CHECK(res.provider_request_id && !strcmp(res.provider_request_id, "req_test_1"), "request id");

    payd_payment_req q = {.struct_size = sizeof q, .provider_ref = res.provider_ref};
    payd_payment_res got;
    rc = pay(&g, g.m->gateway->retrieve, &q, &got, a, &e);
    CHECK(rc == PAYD_OK && got.status == PAYD_PS_SUCCEEDED && !strcmp(got.provider_ref, res.provider_ref) &&
              got.amount == 1099,
          "retrieve: %d %s", rc, e.message);
    th_arena_free(a);
    gw_close(&g);
}

static void test_declines_are_final_with_a_failure_code(void)
{
    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    static const struct {
        const char *method, *code;
    } cases[] = {{"pm_card_chargeDeclined", "card_declined"}, {"pm_card_insufficientFunds", "insufficient_funds"}};
    for (size_t i = 0; i < 2; i++) {
        char key[64];
        snprintf(key, sizeof key, "payd-pay_d%zu-create-1", i);
        payd_payment_req r = pay_req("pay_d", key, cases[i].method);
        payd_payment_res res;
        payd_error e;
        int rc = pay(&g, g.m->gateway->create, &r, &res, a, &e);
        CHECK(rc == PAYD_E_DECLINED, "%s: rc %d", cases[i].method, rc);
        CHECK(!strcmp(e.failure_code, cases[i].code), "%s: failure_code '%s'", cases[i].method, e.failure_code);
        CHECK(res.status == PAYD_PS_FAILED, "the failed payment is returned too");
    }
    th_arena_free(a);
    gw_close(&g);
}

static void test_unknown_outcomes_are_transient(void)
{
    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    payd_payment_req r = pay_req("pay_t", "payd-pay_t-create-1", "pm_card_unavailable");
    payd_payment_res res;
    payd_error e;
    int rc = pay(&g, g.m->gateway->create, &r, &res, a, &e);
    CHECK(rc == PAYD_E_TRANSIENT, "HTTP 503: rc %d", rc);
    g.link.down = 1;
    r = pay_req("pay_t2", "payd-pay_t2-create-1", "pm_card_visa");
    rc = pay(&g, g.m->gateway->create, &r, &res, a, &e);
    CHECK(rc == PAYD_E_TRANSIENT, "no answer: rc %d", rc);
    th_arena_free(a);
    gw_close(&g);
}

static void test_wrong_key_is_auth_and_never_echoed(void)
{
    static const char *const wrong[] = {"api_base", BASE, "api_key", "sk_test_wrong_key_42", NULL};
    gw g;
    gw_open(&g, wrong);
    payd_arena *a = th_arena_new();
    payd_payment_req r = pay_req("pay_a", "payd-pay_a-create-1", "pm_card_visa");
    payd_payment_res res;
    payd_error e;
    int rc = pay(&g, g.m->gateway->create, &r, &res, a, &e);
    CHECK(rc == PAYD_E_AUTH, "rc %d", rc);
    CHECK(!strstr(e.message, "sk_test_wrong_key_42") && !th_log_contains(&g.t, "sk_test_wrong_key_42"),
          "the key leaked: %s", e.message);
    th_arena_free(a);
    gw_close(&g);
}

static void test_same_idempotency_key_is_the_same_payment(void)
{
    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    payd_payment_req r = pay_req("pay_i", "payd-pay_i-create-1", "pm_card_visa");
    payd_payment_res first, again;
    payd_error e;
    pay(&g, g.m->gateway->create, &r, &first, a, &e);
    int rc = pay(&g, g.m->gateway->create, &r, &again, a, &e);
    CHECK(rc == PAYD_OK && !strcmp(first.provider_ref, again.provider_ref), "a retry made a second payment");
    CHECK(g.link.fp.payment_count == 1, "%zu payments at the provider", g.link.fp.payment_count);
    th_arena_free(a);
    gw_close(&g);
}

static void test_manual_capture_partial_and_cancel(void)
{
    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    payd_payment_req r = pay_req("pay_m", "payd-pay_m-create-1", "pm_card_visa");
    r.capture_method = PAYD_CAPTURE_MANUAL;
    payd_payment_res res;
    payd_error e;
    int rc = pay(&g, g.m->gateway->create, &r, &res, a, &e);
    CHECK(rc == PAYD_OK && res.status == PAYD_PS_REQUIRES_CAPTURE && res.amount_capturable == 1099,
          "authorize: %d %s", rc, e.message);
    payd_payment_req c = {.struct_size = sizeof c, .provider_ref = res.provider_ref,
                          .idempotency_key = "payd-pay_m-capture-1", .amount_to_capture = 500};
    payd_payment_res cap;
    rc = pay(&g, g.m->gateway->capture, &c, &cap, a, &e);
    CHECK(rc == PAYD_OK && cap.status == PAYD_PS_SUCCEEDED && cap.amount_captured == 500, "capture: %d %s", rc,
          e.message);

    r = pay_req("pay_c", "payd-pay_c-create-1", "pm_card_visa");
    r.capture_method = PAYD_CAPTURE_MANUAL;
    pay(&g, g.m->gateway->create, &r, &res, a, &e);
    payd_payment_req x = {.struct_size = sizeof x, .provider_ref = res.provider_ref,
                          .idempotency_key = "payd-pay_c-cancel-1"};
    rc = pay(&g, g.m->gateway->cancel, &x, &cap, a, &e);
    CHECK(rc == PAYD_OK && cap.status == PAYD_PS_CANCELED, "cancel: %d %s", rc, e.message);
    th_arena_free(a);
    gw_close(&g);
}

static void test_refunds_partial_and_over_capture(void)
{
    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    payd_payment_req r = pay_req("pay_r", "payd-pay_r-create-1", "pm_card_visa");
    payd_payment_res res;
    payd_error e;
    pay(&g, g.m->gateway->create, &r, &res, a, &e);
    payd_refund_req rr = {.struct_size = sizeof rr, .refund_id = "re_1", .payment_id = "pay_r",
                          .idempotency_key = "payd-re_1-refund-1", .provider_ref = res.provider_ref,
                          .amount = 500, .currency = "USD", .currency_exponent = 2};
    payd_refund_res out = {.struct_size = sizeof out};
    int rc = g.m->gateway->refund(g.state, &rr, &out, a, &e);
    CHECK(rc == PAYD_OK && out.status == PAYD_RS_SUCCEEDED && out.refund_ref, "refund: %d %s", rc, e.message);

    payd_refund_req q = {.struct_size = sizeof q, .refund_ref = out.refund_ref};
    payd_refund_res got = {.struct_size = sizeof got};
    rc = g.m->gateway->refund_retrieve(g.state, &q, &got, a, &e);
    CHECK(rc == PAYD_OK && !strcmp(got.refund_ref, out.refund_ref), "refund_retrieve: %d", rc);

    rr.refund_id = "re_2";
    rr.idempotency_key = "payd-re_2-refund-1";
    rr.amount = 600; /* 1099 - 500 = 599 left */
    memset(&e, 0, sizeof e);
    rc = g.m->gateway->refund(g.state, &rr, &out, a, &e);
    CHECK(rc == PAYD_E_INVALID, "over-refund must be refused for good: rc %d", rc);
    th_arena_free(a);
    gw_close(&g);
}

/* "t=<t>,v1=<hex hmac(secret, t.body)>" into out. */
static void sign(const char *secret, long long t, const char *body, char *out, size_t len)
{
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%lld.%s", t, body);
    uint8_t mac[32];
    th_hmac_sha256_svc(secret, strlen(secret), msg, (size_t)n, mac);
    int w = snprintf(out, len, "t=%lld,v1=", t);
    for (int i = 0; i < 32 && (size_t)w + 2 < len; i++) w += snprintf(out + w, len - (size_t)w, "%02x", mac[i]);
}

static int webhook(gw *g, const char *sig, const char *body, payd_event *ev, payd_arena *a, payd_error *e)
{
    payd_header h = {"Example-Signature", sig};
    payd_webhook_req req = {.struct_size = sizeof req, .headers = &h, .header_count = sig ? 1 : 0,
                            .body = body, .body_len = strlen(body)};
    memset(ev, 0, sizeof *ev);
    ev->struct_size = sizeof *ev;
    memset(e, 0, sizeof *e);
    return g->m->gateway->webhook(g->state, &req, ev, a, e);
}

static void test_webhooks_verified_before_parsing(void)
{
    /* Sign and verify share the test host's HMAC: prove it against a
     * known vector first, or a broken one would pass both ways. */
    uint8_t mac[32];
    char hex[65];
    th_hmac_sha256_svc("key", 3, "The quick brown fox jumps over the lazy dog", 43, mac);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    CHECK(!strcmp(hex, "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"), "HMAC %s", hex);

    gw g;
    gw_open(&g, good_config);
    payd_arena *a = th_arena_new();
    const char *body = "{\"id\":\"evt_1\",\"type\":\"payment.succeeded\",\"created\":1700000000,\"data\":{"
                       "\"payment\":\"exp_pay_1\",\"reference\":\"pay_1\",\"amount\":1099,\"currency\":\"USD\"}}";
    char sig[256];
    long long now = (long long)g.t.host.now(&g.t.host);
    sign(WEBHOOK_SECRET, now, body, sig, sizeof sig);
    payd_event ev;
    payd_error e;
    int rc = webhook(&g, sig, body, &ev, a, &e);
    CHECK(rc == PAYD_OK, "valid webhook: %d %s", rc, e.message);
    CHECK(ev.type == PAYD_EV_PAYMENT_SUCCEEDED && !strcmp(ev.provider_event_id, "evt_1") &&
              !strcmp(ev.provider_ref, "exp_pay_1") && !strcmp(ev.payment_id, "pay_1") && ev.amount == 1099,
          "event fields");

    char tampered[1024];
    snprintf(tampered, sizeof tampered, "%s", body);
    tampered[strlen(tampered) / 2] ^= 1;
    CHECK(webhook(&g, sig, tampered, &ev, a, &e) == PAYD_E_SIGNATURE, "a tampered body must be refused");
    CHECK(webhook(&g, NULL, body, &ev, a, &e) == PAYD_E_SIGNATURE, "no signature must be refused");
    sign("whsec_someone_else", now, body, sig, sizeof sig);
    CHECK(webhook(&g, sig, body, &ev, a, &e) == PAYD_E_SIGNATURE, "another secret must be refused");
    sign(WEBHOOK_SECRET, now - 3600, body, sig, sizeof sig);
    CHECK(webhook(&g, sig, body, &ev, a, &e) == PAYD_E_SIGNATURE, "an old signature must be refused");
    th_arena_free(a);
    gw_close(&g);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "./example.so";
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
        return 1;
    }
    payd_entry_fn entry = (payd_entry_fn)(uintptr_t)dlsym(so, PAYD_ENTRY_SYMBOL);
    module = entry ? entry() : NULL;
    if (!module || module->abi_major != PAYD_ABI_MAJOR || !module->gateway) {
        fprintf(stderr, "%s is not a payd ABI %d gateway\n", path, PAYD_ABI_MAJOR);
        return 1;
    }
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"init reads and checks its config", test_init_reads_and_checks_config},
        {"create confirms and retrieve agrees", test_create_confirms_and_retrieve_agrees},
        {"declines are final with a failure code", test_declines_are_final_with_a_failure_code},
        {"unknown outcomes are transient", test_unknown_outcomes_are_transient},
        {"a wrong key is PAYD_E_AUTH and never echoed", test_wrong_key_is_auth_and_never_echoed},
        {"the same idempotency key is the same payment", test_same_idempotency_key_is_the_same_payment},
        {"manual capture, partial capture and cancel", test_manual_capture_partial_and_cancel},
        {"refunds: partial, and over the capture refused", test_refunds_partial_and_over_capture},
        {"webhooks are verified before parsing", test_webhooks_verified_before_parsing},
    };
    size_t n = sizeof tests / sizeof tests[0];
    printf("1..%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        int before = failures;
        tests[i].fn();
        printf("%s %zu - %s\n", failures == before ? "ok" : "not ok", i + 1, tests[i].name);
    }
    printf("# %d checks, %d failed\n", checks, failures);
    dlclose(so);
    return failures ? 1 : 0;
}
