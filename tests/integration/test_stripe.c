/*
 * test_stripe.c - the Stripe gateway against a real payd, PostgreSQL and
 * Redis, with tests/fakes/stripe_fake standing in for api.stripe.com.
 *
 * The fake is started once ($PAYD_BUILD/fakes/stripe_fake 0 FIXTURES, the
 * port it prints), payd once, with:
 *   [gateway.stripe]        the shop's instance: the secret key from
 *                           env:PAYD_TEST_STRIPE_KEY, a publishable key, a
 *                           webhook secret the tests sign with, and
 *                           api_base pointing at the fake;
 *   [gateway.stripe_whN]    one instance per distinct secret of
 *                           ../shared/fixtures/stripe-webhooks.json;
 *   [gateway.stripe_badkey] a key the fake refuses (401).
 * [server] http_timeout_ms = 1000 makes the fake's "hang" a timeout, and
 * the janitor runs every 100 ms with one second between tries.
 *
 * Every payd answer is checked for the secret keys, and the last test
 * greps payd's log for them.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define STRIPE_KEY "sk_test_payd_integration_S3CR3T_7f1c9a"
#define BAD_KEY "sk_test_payd_wrong_B4DK3Y_0042"
#define PUB_KEY "pk_test_payd_integration_pub"
#define HOOK_SECRET "whsec_payd_integration_hooks"
#define POLL_MS 20000

static h_payd srv;
static h_payd fake;          /* only base_url is used: h_request_ex's target */
static pid_t fake_pid;
static json_t *vectors;      /* stripe-webhooks.json */
static json_t *vector_instances; /* secret -> instance name */

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */


/* A payd request whose answer must never contain a secret key. */
static void payd_call(const char *method, const char *path, const char *auth,
                      const char *body, const char *const *headers, h_resp *r)
{
    h_req req = {.method = method, .path = path, .auth = auth, .body = body,
                 .content_type = body ? "application/json" : NULL, .headers = headers};

    assert_int_equal(h_request_ex(&srv, &req, r), 0);
    if (strstr(r->body, STRIPE_KEY) || strstr(r->body, BAD_KEY) ||
        strstr(r->body, HOOK_SECRET)) {
        print_error("a secret leaked into %s %s: %s\n", method, path, r->body);
        fail();
    }
}

/* A control or API request to the fake; its JSON answer in r. */
#define fake_call(method, path, body, r) h_fake_call(&fake, (method), (path), (body), NULL, (r))
/* The fake's recorded API requests for `method` `path`, as a new array. */
#define fake_requests(method, path) h_fake_requests(&fake, (method), (path))
#define fake_next(action_json) h_fake_next(&fake, (action_json))

/* A USD order of `amount`, by the merchant; its id into `id`. */
static void order(long long amount, char id[64])
{
    char body[256];
    h_resp r;

    snprintf(body, sizeof body,
             "{\"currency\":\"USD\",\"items\":[{\"name\":\"Tea\",\"quantity\":1,"
             "\"unit_amount\":%lld}]}",
             amount);
    payd_call("POST", "/v1/orders", srv.merchant_auth, body, NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

/* POST /v1/payments on `gateway` with payment method `pm`, confirmed, and
 * extra members (",\"capture_method\":\"manual\"" or ""). */
static void pay(const char *gateway, const char *ord, const char *pm,
                const char *extra, h_resp *r)
{
    char body[1024];

    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"%s\",\"payment_method\":\"%s\","
             "\"confirm\":true%s}",
             ord, gateway, pm, extra);
    payd_call("POST", "/v1/payments", srv.merchant_auth, body, NULL, r);
}

#define payment_status(id, out) h_status_of(&srv, "payments", (id), (out))
/* Poll until payment `id` is `want`; fail naming the last status. */
#define wait_payment(id, want) EXPECT_REACHES(&srv, "payments", (id), (want), POLL_MS)

static long long sql_ll(const char *fmt, const char *arg)
{
    char sql[512];

    snprintf(sql, sizeof sql, fmt, arg);
    return h_sql_int(srv.db_url, sql, LLONG_MIN);
}

/* The recorded POST /v1/payment_intents requests made with `key`. */
static json_t *creates_with_key(const char *key)
{
    json_t *all = fake_requests("POST", "/v1/payment_intents"), *out = json_array(), *r;
    size_t i;

    json_array_foreach(all, i, r) {
        const char *k = json_string_value(json_object_get(r, "idempotency_key"));

        if (k && strcmp(k, key) == 0)
            json_array_append(out, r);
    }
    json_decref(all);
    return out;
}

/* How many PaymentIntents the fake created under Idempotency-Key `key`. */
static size_t fake_intents_for_key(const char *key)
{
    h_resp r;
    json_t *pi;
    size_t i, n = 0;

    fake_call("GET", "/_fake/objects", NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_array_foreach(h_jpath(r.json, "payment_intents"), i, pi) {
        const char *k = json_string_value(json_object_get(pi, "idempotency_key"));

        if (k && strcmp(k, key) == 0)
            n++;
    }
    h_resp_free(&r);
    return n;
}

/* Lower-case hex HMAC-SHA256(secret, "<t>.<body>"). */
static void sign(const char *secret, long long t, const char *body, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[32];
    unsigned int n = 32;
    char *msg = NULL;

    assert_true(asprintf(&msg, "%lld.%s", t, body) > 0);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg, strlen(msg), mac, &n);
    free(msg);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[64] = '\0';
}

/* POST `body` to /v1/webhooks/<instance> with Stripe-Signature `sig_header`
 * (NULL: an empty header). */
static void post_webhook(const char *instance, const char *sig_header, const char *body,
                         h_resp *r)
{
    char path[128], line[1024];
    const char *headers[] = {line, NULL};

    snprintf(path, sizeof path, "/v1/webhooks/%s", instance);
    if (sig_header && *sig_header)
        snprintf(line, sizeof line, "Stripe-Signature: %s", sig_header);
    else
        snprintf(line, sizeof line, "Stripe-Signature;");
    payd_call("POST", path, NULL, body, headers, r);
}

/* A fake-made event of `type` about object `id`, signed now with the
 * [gateway.stripe] secret, POSTed to payd. */
static void send_event(const char *type, const char *id, h_resp *r)
{
    char q[256], sig[65], header[128];
    char *body;
    long long now = (long long)time(NULL);
    h_resp ev;

    snprintf(q, sizeof q, "/_fake/event?type=%s&id=%s", type, id);
    fake_call("GET", q, NULL, &ev);
    EXPECT_STATUS(&ev, 200);
    body = strdup(ev.body);
    h_resp_free(&ev);
    sign(HOOK_SECRET, now, body, sig);
    snprintf(header, sizeof header, "t=%lld,v1=%s", now, sig);
    post_webhook("stripe", header, body, r);
    free(body);
}

static void set_clock_offset(long long offset_ms)
{
    char body[64];
    h_resp r;

    snprintf(body, sizeof body, "{\"offset_ms\":%lld}", offset_ms);
    payd_call("POST", "/v1/test/clock", srv.admin_auth, body, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

static long long real_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Setup: the fake, then payd                                               */
/* ------------------------------------------------------------------------ */

static int fake_start(void)
{
    char bin[PATH_MAX], fixtures[PATH_MAX], line[256];
    const char *build = h_env("PAYD_BUILD"), *root = h_root();
    const char *argv[] = {bin, "0", fixtures, NULL};
    const char *env[] = {"STRIPE_FAKE_SECRET_KEY=" STRIPE_KEY, NULL};
    int port = 0;

    if (build == NULL || root == NULL)
        return -1;
    snprintf(bin, sizeof bin, "%s/fakes/stripe_fake", build);
    snprintf(fixtures, sizeof fixtures, "%s/../shared/fixtures/stripe-openapi/fixtures3.json",
             root);
    /* "stripe_fake listening on 127.0.0.1:PORT" */
    fake_pid = h_fake_spawn(argv, env, line, sizeof line);
    if (fake_pid < 0)
        return -1;
    if (sscanf(line, "stripe_fake listening on 127.0.0.1:%d", &port) != 1 || port <= 0) {
        fprintf(stderr, "# stripe_fake did not start: \"%s\"\n", line);
        h_fake_stop(&fake_pid);
        return -1;
    }
    snprintf(fake.base_url, sizeof fake.base_url, "http://127.0.0.1:%d", port);
    return 0;
}

static int setup(void **state)
{
    char path[PATH_MAX], *extra = NULL;
    size_t extra_len = 0, i;
    FILE *f;
    json_t *c;
    int k = 0, rc;

    (void)state;
    if (h_init() != 0 || fake_start() != 0)
        return -1;
    snprintf(path, sizeof path, "%s/../shared/fixtures/stripe-webhooks.json", h_root());
    vectors = json_load_file(path, 0, NULL);
    if (vectors == NULL) {
        fprintf(stderr, "# cannot read %s\n", path);
        return -1;
    }
    setenv("PAYD_TEST_STRIPE_KEY", STRIPE_KEY, 1);
    setenv("PAYD_TEST_STRIPE_BADKEY", BAD_KEY, 1);

    f = open_memstream(&extra, &extra_len);
    fprintf(f,
            "[payments]\n"
            "janitor_interval_ms = 100\n"
            "janitor_schedule = 1,1,1\n"
            "janitor_max_attempts = 20\n"
            "[gateway.stripe]\n"
            "module = stripe\n"
            "secret_key = env:PAYD_TEST_STRIPE_KEY\n"
            "publishable_key = " PUB_KEY "\n"
            "webhook_secret = " HOOK_SECRET "\n"
            "api_base = %s\n"
            "[gateway.stripe_badkey]\n"
            "module = stripe\n"
            "secret_key = env:PAYD_TEST_STRIPE_BADKEY\n"
            "api_base = %s\n",
            fake.base_url, fake.base_url);
    vector_instances = json_object();
    json_array_foreach(json_object_get(vectors, "cases"), i, c) {
        const char *secret = json_string_value(json_object_get(c, "secret"));
        char name[32];

        if (json_object_get(vector_instances, secret))
            continue;
        snprintf(name, sizeof name, "stripe_wh%d", ++k);
        json_object_set_new(vector_instances, secret, json_string(name));
        fprintf(f,
                "[gateway.%s]\n"
                "module = stripe\n"
                "secret_key = env:PAYD_TEST_STRIPE_KEY\n"
                "webhook_secret = %s\n"
                "api_base = %s\n",
                name, secret, fake.base_url);
    }
    fclose(f);
    {
        h_payd_opts o = {.threads = 16, .pool = 16, .server_extra = "http_timeout_ms = 1000\n",
                         .extra = extra};

        rc = h_payd_start(&srv, &o);
    }
    free(extra);
    return rc;
}

static int teardown(void **state)
{
    int rc;

    (void)state;
    rc = h_payd_stop(&srv);
    h_fake_stop(&fake_pid);
    json_decref(vectors);
    json_decref(vector_instances);
    return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Webhook signatures: Stripe's own vectors                                 */
/* ------------------------------------------------------------------------ */

static void test_every_stripe_webhook_vector_gives_its_verdict(void **state)
{
    json_t *c;
    size_t i;

    (void)state;
    json_array_foreach(json_object_get(vectors, "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *secret = json_string_value(json_object_get(c, "secret"));
        const char *expect = json_string_value(json_object_get(c, "expect"));
        long long now = json_integer_value(json_object_get(c, "now"));
        h_resp r;

        /* payd's clock at the case's now (set right before each post). */
        set_clock_offset(now * 1000 - real_now_ms());
        post_webhook(json_string_value(json_object_get(vector_instances, secret)),
                     json_string_value(json_object_get(c, "header")),
                     json_string_value(json_object_get(c, "body")), &r);
        if (strcmp(expect, "valid") == 0) {
            if (r.status != 200 || !json_is_true(h_jpath(r.json, "received"))) {
                print_error("case \"%s\": expected 200, got %ld %s\n", name, r.status, r.body);
                fail();
            }
        } else if (r.status != 400 || !h_rstr(&r, "error.code") ||
                   strcmp(h_rstr(&r, "error.code"), "signature_invalid") != 0) {
            print_error("case \"%s\": expected 400 signature_invalid, got %ld %s\n", name,
                        r.status, r.body);
            fail();
        }
        h_resp_free(&r);
    }
    set_clock_offset(0);
}

/* ------------------------------------------------------------------------ */
/* Requests on the wire                                                     */
/* ------------------------------------------------------------------------ */

static void test_create_sends_exact_parameters_key_and_version(void **state)
{
    char ord[64], pay_id[64], key[128];
    json_t *reqs, *rec, *params;
    h_resp r;

    (void)state;
    order(2599, ord);
    pay("stripe", ord, "pm_card_visa", ",\"capture_method\":\"manual\"", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    EXPECT_STR(h_rstr(&r, "gateway"), "stripe");
    assert_int_equal(h_rint(&r, "amount_capturable"), 2599);
    assert_true(strncmp(h_rstr(&r, "provider_ref"), "pi_", 3) == 0);
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    snprintf(key, sizeof key, "payd-%s-create-1", pay_id);
    reqs = creates_with_key(key);
    assert_int_equal(json_array_size(reqs), 1);
    rec = json_array_get(reqs, 0);
    params = json_object_get(rec, "params");
    EXPECT_STR(json_string_value(json_object_get(params, "amount")), "2599");
    EXPECT_STR(json_string_value(json_object_get(params, "currency")), "usd");
    EXPECT_STR(json_string_value(json_object_get(params, "capture_method")), "manual");
    EXPECT_STR(json_string_value(json_object_get(params, "confirm")), "true");
    EXPECT_STR(json_string_value(json_object_get(params, "payment_method")), "pm_card_visa");
    EXPECT_STR(json_string_value(json_object_get(params, "metadata[payd_payment_id]")), pay_id);
    EXPECT_STR(json_string_value(json_object_get(params, "metadata[payd_order_id]")), ord);
    EXPECT_STR(json_string_value(h_jpath(params, "payment_method_types[].0")), "card");
    EXPECT_STR(json_string_value(json_object_get(rec, "stripe_version")), "2024-06-20");
    assert_true(json_is_true(json_object_get(rec, "auth_ok")));
    json_decref(reqs);

    /* Capture: its own derived key, and amount_to_capture. */
    {
        char path[128];
        json_t *caps;
        const char *k;

        snprintf(path, sizeof path, "/v1/payments/%s/capture", pay_id);
        payd_call("POST", path, srv.merchant_auth, "{\"amount\":2000}", NULL, &r);
        EXPECT_STATUS(&r, 200);
        EXPECT_STR(h_rstr(&r, "status"), "succeeded");
        assert_int_equal(h_rint(&r, "amount_captured"), 2000);
        snprintf(path, sizeof path, "/v1/payment_intents/%s/capture", h_rstr(&r, "provider_ref"));
        h_resp_free(&r);
        caps = fake_requests("POST", path);
        assert_int_equal(json_array_size(caps), 1);
        k = json_string_value(h_jpath(caps, "0.idempotency_key"));
        snprintf(key, sizeof key, "payd-%s-capture-", pay_id);
        assert_true(k && strncmp(k, key, strlen(key)) == 0);
        EXPECT_STR(json_string_value(h_jpath(caps, "0.params.amount_to_capture")), "2000");
        json_decref(caps);
    }
}

/* ------------------------------------------------------------------------ */
/* A full checkout                                                          */
/* ------------------------------------------------------------------------ */

static void test_checkout_3ds_webhook_partial_refund_and_refund_webhooks(void **state)
{
    char ord[64], pay_id[64], pi[64], re_id[64], re_ref[64], path[256];
    h_resp r;

    (void)state;
    order(5000, ord);
    pay("stripe", ord, "pm_card_threeDSecure2Required",
        ",\"return_url\":\"https://shop.example/return\"", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "redirect_url");
    assert_non_null(strstr(h_rstr(&r, "next_action.url"), "/_fake/3ds/pi_"));
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    snprintf(pi, sizeof pi, "%s", h_rstr(&r, "provider_ref"));
    h_resp_free(&r);
    /* The return_url went to Stripe with the confirmation. */
    {
        char key[128];
        json_t *reqs;

        snprintf(key, sizeof key, "payd-%s-create-1", pay_id);
        reqs = creates_with_key(key);
        EXPECT_STR(json_string_value(h_jpath(reqs, "0.params.return_url")),
                   "https://shop.example/return");
        json_decref(reqs);
    }

    /* The buyer passes the challenge; Stripe tells payd by webhook. */
    snprintf(path, sizeof path, "/_fake/payment_intents/%s/authenticate", pi);
    fake_call("POST", path, "{\"result\":\"succeed\"}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    send_event("payment_intent.succeeded", pi, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "applied");
    EXPECT_STR(h_rstr(&r, "type"), "payment.succeeded");
    h_resp_free(&r);
    payment_status(pay_id, path);
    EXPECT_STR(path, "succeeded");
    assert_int_equal(sql_ll("SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s'"
                            " AND entry_type = 'charge'", pay_id),
                     5000);

    /* A partial refund. */
    snprintf(path, sizeof path, "{\"payment\":\"%s\",\"amount\":1500,"
                                "\"reason\":\"requested_by_customer\"}", pay_id);
    payd_call("POST", "/v1/refunds", srv.merchant_auth, path, NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    snprintf(re_id, sizeof re_id, "%s", h_rstr(&r, "id"));
    snprintf(re_ref, sizeof re_ref, "%s", h_rstr(&r, "provider_ref"));
    assert_true(strncmp(re_ref, "re_", 3) == 0);
    h_resp_free(&r);
    {
        json_t *reqs = fake_requests("POST", "/v1/refunds");
        json_t *last = json_array_get(reqs, json_array_size(reqs) - 1);
        char key[128];

        snprintf(key, sizeof key, "payd-%s-refund-1", re_id);
        EXPECT_STR(json_string_value(json_object_get(last, "idempotency_key")), key);
        EXPECT_STR(json_string_value(h_jpath(last, "params.payment_intent")), pi);
        EXPECT_STR(json_string_value(h_jpath(last, "params.amount")), "1500");
        EXPECT_STR(json_string_value(h_jpath(last, "params.metadata[payd_refund_id]")), re_id);
        json_decref(reqs);
    }
    assert_int_equal(sql_ll("SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s'"
                            " AND entry_type = 'refund'", pay_id),
                     1500);

    /* Stripe's own news about that refund changes nothing: no double refund. */
    send_event("charge.refunded", pi, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "type"), "refund.succeeded");
    h_resp_free(&r);
    send_event("refund.updated", re_ref, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    send_event("refund.created", re_ref, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    assert_int_equal(sql_ll("SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s'"
                            " AND entry_type = 'refund'", pay_id),
                     1500);
    assert_int_equal(sql_ll("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 1500);
    payment_status(pay_id, path);
    EXPECT_STR(path, "partially_refunded");
}

/* ------------------------------------------------------------------------ */
/* Declines and unknown outcomes                                            */
/* ------------------------------------------------------------------------ */

static void test_decline_is_402_card_declined(void **state)
{
    char ord[64];
    h_resp r;

    (void)state;
    order(1200, ord);
    pay("stripe", ord, "pm_card_chargeDeclined", "", &r);
    EXPECT_STATUS(&r, 402);
    EXPECT_STR(h_rstr(&r, "error.type"), "card_error");
    EXPECT_STR(h_rstr(&r, "error.code"), "card_declined");
    h_resp_free(&r);

    /* The fake told to decline for insufficient funds: a normalized code. */
    order(1300, ord);
    fake_next("{\"action\":\"insufficient_funds\"}");
    pay("stripe", ord, "pm_card_visa", "", &r);
    EXPECT_STATUS(&r, 402);
    EXPECT_STR(h_rstr(&r, "error.code"), "insufficient_funds");
    h_resp_free(&r);
}

/* A fault on the create call: 202 outcome_unknown, then the janitor
 * resolves the payment with the same Idempotency-Key, one PaymentIntent. */
static void unknown_outcome_resolves(const char *fault_json)
{
    char ord[64], pay_id[64], key[128];
    json_t *reqs, *rec;
    size_t i;
    h_resp r;

    order(4200, ord);
    fake_next(fault_json);
    pay("stripe", ord, "pm_card_visa", "", &r);
    EXPECT_STATUS(&r, 202);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_true(json_is_true(h_jpath(r.json, "outcome_unknown")));
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    wait_payment(pay_id, "succeeded");
    snprintf(key, sizeof key, "payd-%s-create-1", pay_id);
    reqs = creates_with_key(key);
    assert_true(json_array_size(reqs) >= 2); /* the first call and the janitor's */
    json_array_foreach(reqs, i, rec)
        EXPECT_STR(json_string_value(json_object_get(rec, "idempotency_key")), key);
    json_decref(reqs);
    assert_int_equal(fake_intents_for_key(key), 1);
    assert_int_equal(sql_ll("SELECT count(*) FROM ledger WHERE payment_id = '%s'"
                            " AND entry_type = 'charge'", pay_id),
                     1);
}

static void test_429_is_202_outcome_unknown_then_janitor_resolves(void **state)
{
    (void)state;
    unknown_outcome_resolves("{\"action\":\"status_429\"}");
}

static void test_500_is_202_outcome_unknown_then_janitor_resolves(void **state)
{
    (void)state;
    unknown_outcome_resolves("{\"action\":\"status_500\"}");
}

static void test_malformed_2xx_is_202_then_janitor_replays_the_answer(void **state)
{
    (void)state;
    unknown_outcome_resolves("{\"action\":\"malformed\"}");
}

static void test_timeout_retry_reuses_the_key_and_stripe_sees_one_intent(void **state)
{
    int64_t started = h_now_ms();

    (void)state;
    /* payd gives up after 1 s; the fake answers after 3 s. */
    unknown_outcome_resolves("{\"action\":\"hang\",\"ms\":3000,\"count\":1}");
    assert_true(h_now_ms() - started >= 3000);
}

/* ------------------------------------------------------------------------ */
/* Saved cards                                                              */
/* ------------------------------------------------------------------------ */

static void test_saved_cards_go_through_stripe_customers_and_payment_methods(void **state)
{
    char cus[64], pm1[64], path[256], stripe_cus[64];
    json_t *reqs;
    h_resp r;

    (void)state;
    payd_call("POST", "/v1/customers", srv.merchant_auth,
              "{\"email\":\"buyer@example.com\",\"user_id\":\"user_stripe_1\"}", NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(cus, sizeof cus, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods", cus);
    payd_call("POST", path, srv.merchant_auth,
              "{\"payment_method\":\"pm_card_visa\",\"gateway\":\"stripe\"}", NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "brand"), "visa");
    EXPECT_STR(h_rstr(&r, "last4"), "4242");
    assert_int_equal(h_rint(&r, "exp_year"), 2034);
    snprintf(pm1, sizeof pm1, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    /* A Stripe Customer was made with the email, then the card attached. */
    reqs = fake_requests("POST", "/v1/customers");
    assert_true(json_array_size(reqs) >= 1);
    EXPECT_STR(json_string_value(h_jpath(json_array_get(reqs, json_array_size(reqs) - 1),
                                       "params.email")),
               "buyer@example.com");
    json_decref(reqs);
    {
        h_resp o;
        json_t *pm;
        size_t i;

        fake_call("GET", "/_fake/objects", NULL, &o);
        stripe_cus[0] = '\0';
        json_array_foreach(h_jpath(o.json, "payment_methods"), i, pm)
            if (json_is_string(json_object_get(pm, "customer")))
                snprintf(stripe_cus, sizeof stripe_cus, "%s",
                         json_string_value(json_object_get(pm, "customer")));
        h_resp_free(&o);
        assert_true(strncmp(stripe_cus, "cus_", 4) == 0);
    }

    /* A second card reuses the Stripe Customer. */
    payd_call("POST", path, srv.merchant_auth,
              "{\"payment_method\":\"pm_card_mastercard\",\"gateway\":\"stripe\"}", NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "brand"), "mastercard");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/customers/%s", stripe_cus);
    reqs = fake_requests("GET", path);
    assert_int_equal(json_array_size(reqs), 1);
    json_decref(reqs);

    /* Deleting detaches it at Stripe. */
    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s", cus, pm1);
    payd_call("DELETE", path, srv.merchant_auth, NULL, NULL, &r);
    assert_true(r.status == 200 || r.status == 204);
    h_resp_free(&r);
    {
        json_t *all = fake_requests("POST", ""), *rec;
        size_t i;
        int detached = 0;

        json_array_foreach(all, i, rec) {
            const char *p = json_string_value(json_object_get(rec, "path"));

            if (strstr(p, "/detach") && json_integer_value(json_object_get(rec, "status")) == 200)
                detached++;
        }
        json_decref(all);
        assert_int_equal(detached, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                  */
/* ------------------------------------------------------------------------ */

static void test_wrong_key_is_502_auth_failed_without_the_key(void **state)
{
    char ord[64];
    h_resp r;

    (void)state;
    order(900, ord);
    pay("stripe_badkey", ord, "pm_card_visa", "", &r);
    EXPECT_STATUS(&r, 502);
    EXPECT_STR(h_rstr(&r, "error.code"), "gateway_auth_failed");
    assert_null(strstr(r.body, "sk_test"));
    h_resp_free(&r);
}

static void test_gateways_show_publishable_key_never_secret(void **state)
{
    h_resp r;
    json_t *gw;
    size_t i;
    int seen = 0;

    (void)state;
    payd_call("GET", "/v1/gateways", NULL, NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_array_foreach(h_jpath(r.json, "data"), i, gw) {
        if (strcmp(json_string_value(json_object_get(gw, "name")), "stripe") != 0)
            continue;
        seen = 1;
        EXPECT_STR(json_string_value(json_object_get(gw, "module")), "stripe");
        EXPECT_STR(json_string_value(h_jpath(gw, "public.publishable_key")), PUB_KEY);
    }
    assert_true(seen);
    assert_null(strstr(r.body, "sk_"));
    assert_null(strstr(r.body, "whsec_"));
    h_resp_free(&r);
}

/* Last: everything above ran; payd's log must not hold a secret. */
static void test_secret_keys_never_appear_in_the_log(void **state)
{
    (void)state;
    assert_true(h_log_contains(&srv, "loaded [gateway.stripe]"));
    assert_false(h_log_contains(&srv, STRIPE_KEY));
    assert_false(h_log_contains(&srv, BAD_KEY));
    assert_false(h_log_contains(&srv, HOOK_SECRET));
    assert_false(h_log_contains(&srv, "S3CR3T"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_stripe_webhook_vector_gives_its_verdict),
        cmocka_unit_test(test_create_sends_exact_parameters_key_and_version),
        cmocka_unit_test(test_checkout_3ds_webhook_partial_refund_and_refund_webhooks),
        cmocka_unit_test(test_decline_is_402_card_declined),
        cmocka_unit_test(test_429_is_202_outcome_unknown_then_janitor_resolves),
        cmocka_unit_test(test_500_is_202_outcome_unknown_then_janitor_resolves),
        cmocka_unit_test(test_malformed_2xx_is_202_then_janitor_replays_the_answer),
        cmocka_unit_test(test_timeout_retry_reuses_the_key_and_stripe_sees_one_intent),
        cmocka_unit_test(test_saved_cards_go_through_stripe_customers_and_payment_methods),
        cmocka_unit_test(test_wrong_key_is_502_auth_failed_without_the_key),
        cmocka_unit_test(test_gateways_show_publishable_key_never_secret),
        cmocka_unit_test(test_secret_keys_never_appear_in_the_log),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
