/*
 * tests/unit/test_mock_module.c - the mock gateway, driven through its ABI.
 *
 * The module is dlopen'ed exactly as payd loads it (PAYD_MOCK_SO, else
 * $PAYD_BUILD/modules/mock.so, else build/modules/mock.so) and run against
 * the fake host in fake_host.c, whose http records the webhooks the module
 * posts. Each test starts a fresh instance; the last fini frees the
 * module-global provider, so tests do not see each other's intents. Run under ASan/UBSan: teardown
 * proves fini joins the webhook thread and frees everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fake_host.h"

#define SECRET "whsec_unit_test_secret"
#define WEBHOOK_URL "http://127.0.0.1:9/v1/webhooks/mock"
#define PUBLIC_URL "http://127.0.0.1:8080"

static void *dl;
static const payd_module *mod;
static const payd_gateway_ops *gw;
static void *st;
static payd_arena *arena;

/* ------------------------------------------------------------------------ */
/* Fixtures and helpers                                                     */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    mod = fake_module_load("mock", &dl);
    if (mod == NULL)
        return -1;
    gw = mod->gateway;
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
    fake_config_set("payd.instance", "mock");
    fake_config_set("payd.public_url", PUBLIC_URL "/");
    fake_config_set("payd.webhook_url", WEBHOOK_URL);
    fake_config_set("webhook_secret", SECRET);
    fake_config_set("settle_ms", "100");
}

static int start_instance(void)
{
    payd_error e;

    return fake_module_start(mod, fake_host(), &st, &e);
}

static int setup(void **state)
{
    (void)state;
    fake_host_reset();
    default_config();
    arena = fake_arena_new();
    return start_instance() == PAYD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    fake_module_stop(mod, &st);
    fake_arena_free(arena);
    arena = NULL;
    return 0;
}

/* Restart the instance with key, value, ..., NULL over the defaults; it
 * must start. */
#define restart_with(...) \
    assert_int_equal(fake_module_restart_with(mod, fake_host(), &st, &(payd_error){0}, \
                                              __VA_ARGS__), PAYD_OK)

static payd_payment_req pay_req(const char *method, const char *key)
{
    payd_payment_req r;

    memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    r.payment_id = "pay_test1";
    r.order_id = "ord_test1";
    r.idempotency_key = key;
    r.amount = 1234;
    r.currency = "USD";
    r.currency_exponent = 2;
    r.payment_method = method;
    r.confirm = method != NULL;
    return r;
}

static int create(payd_payment_req *rq, payd_payment_res *rs, payd_error *e)
{
    memset(rs, 0, sizeof *rs);
    memset(e, 0, sizeof *e);
    return gw->create(st, rq, rs, arena, e);
}

typedef int (*pay_op)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));

static int op_on(pay_op op, const char *ref, payd_payment_req *extra,
                 payd_payment_res *rs, payd_error *e)
{
    payd_payment_req rq;

    if (extra != NULL)
        rq = *extra;
    else
        memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.provider_ref = ref;
    memset(rs, 0, sizeof *rs);
    memset(e, 0, sizeof *e);
    return op(st, &rq, rs, arena, e);
}

static int retrieve(const char *ref, payd_payment_res *rs, payd_error *e)
{
    return op_on(gw->retrieve, ref, NULL, rs, e);
}

static int refund(const char *ref, int64_t amount, const char *key,
                  payd_refund_res *rs, payd_error *e)
{
    payd_refund_req rq;

    memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.refund_id = "re_test1";
    rq.payment_id = "pay_test1";
    rq.idempotency_key = key;
    rq.provider_ref = ref;
    rq.amount = amount;
    rq.currency = "USD";
    memset(rs, 0, sizeof *rs);
    memset(e, 0, sizeof *e);
    return gw->refund(st, &rq, rs, arena, e);
}

static int page(const char *method, const char *path, const char *query,
                const char *body, payd_page_res *rs)
{
    payd_page_req rq;
    payd_error e;

    memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.method = method;
    rq.path = path;
    rq.query = query;
    rq.body = body;
    rq.body_len = body != NULL ? strlen(body) : 0;
    memset(rs, 0, sizeof *rs);
    memset(&e, 0, sizeof e);
    return gw->page(st, &rq, rs, arena, &e);
}

/* The stats page's counter `name` for `payment_id`. */
static long stat_of(const char *payment_id, const char *name)
{
    payd_page_res rs;
    char query[256], needle[64];
    const char *p;

    snprintf(query, sizeof query, "payment_id=%s", payment_id);
    assert_int_equal(page("GET", "stats", query, NULL, &rs), PAYD_OK);
    assert_int_equal(rs.status, 200);
    snprintf(needle, sizeof needle, "\"%s\":", name);
    p = strstr(rs.body, needle);
    assert_non_null(p);
    return strtol(p + strlen(needle), NULL, 10);
}

/* "t=<t>,v1=<hex>" as the mock signs, computed independently. */
static void sign(const char *secret, long long t, const char *body, size_t len,
                 char *out, size_t size)
{
    char ts[32], hex[65];
    unsigned char mac[32];
    unsigned int n = 32, i;
    char *msg;
    int tn = snprintf(ts, sizeof ts, "%lld", t);

    msg = malloc((size_t)tn + 1 + len);
    assert_non_null(msg);
    memcpy(msg, ts, (size_t)tn);
    msg[tn] = '.';
    memcpy(msg + tn + 1, body, len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg,
         (size_t)tn + 1 + len, mac, &n);
    free(msg);
    for (i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(out, size, "t=%s,v1=%s", ts, hex);
}

static int webhook_raw(const char *header_name, const char *sig,
                       const char *body, size_t len, payd_event *ev,
                       payd_error *e)
{
    payd_header hd[2] = {{"Content-Type", "application/json"},
                         {header_name, sig}};
    payd_webhook_req rq;

    memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.headers = hd;
    rq.header_count = sig != NULL ? 2 : 1;
    rq.body = body;
    rq.body_len = len;
    memset(ev, 0, sizeof *ev);
    memset(e, 0, sizeof *e);
    return gw->webhook(st, &rq, ev, arena, e);
}

static int webhook_signed(const char *body, size_t len, payd_event *ev,
                          payd_error *e)
{
    char sig[160];

    sign(SECRET, (long long)time(NULL), body, len, sig, sizeof sig);
    return webhook_raw("Mock-Signature", sig, body, len, ev, e);
}

static const char dispute_body[] =
    "{\"id\":\"mevt_dispute1\",\"type\":\"dispute.created\",\"created\":"
    "1700000000,\"data\":{\"provider_ref\":\"mock_pi_0123456789abcdef01234567\","
    "\"payment_id\":\"pay_d1\",\"amount\":500,\"currency\":\"EUR\","
    "\"refund_ref\":null,\"refund_id\":null,\"failure_code\":null,"
    "\"failure_message\":null}}";

/* ------------------------------------------------------------------------ */
/* Descriptor                                                               */
/* ------------------------------------------------------------------------ */

static void test_descriptor_is_gateway_with_all_caps_and_ops(void **state)
{
    const uint64_t caps = PAYD_CAP_CAPTURE_LATER | PAYD_CAP_PARTIAL_CAPTURE |
                          PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND |
                          PAYD_CAP_WEBHOOKS | PAYD_CAP_SAVED_METHODS |
                          PAYD_CAP_3DS | PAYD_CAP_REDIRECT | PAYD_CAP_CANCEL |
                          PAYD_CAP_PAGES | PAYD_CAP_CONFIRM;

    (void)state;
    assert_int_equal(mod->abi_major, PAYD_ABI_MAJOR);
    assert_int_equal(mod->struct_size, sizeof(payd_module));
    assert_string_equal(mod->name, "mock");
    assert_string_equal(mod->version, "1.0.0");
    assert_int_equal(mod->kind, PAYD_KIND_GATEWAY);
    assert_int_equal(mod->caps, caps);
    assert_null(mod->notifier);
    assert_non_null(gw->create);
    assert_non_null(gw->retrieve);
    assert_non_null(gw->confirm);
    assert_non_null(gw->capture);
    assert_non_null(gw->cancel);
    assert_non_null(gw->refund);
    assert_non_null(gw->refund_retrieve);
    assert_non_null(gw->webhook);
    assert_non_null(gw->save_method);
    assert_non_null(gw->delete_method);
    assert_non_null(gw->list_methods);
    assert_non_null(gw->page);
    assert_non_null(strstr(gw->public_info(st), "\"test_mode\":true"));
}

/* ------------------------------------------------------------------------ */
/* Payments                                                                 */
/* ------------------------------------------------------------------------ */

static void test_visa_create_confirm_succeeds(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", "k-create");
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    rq.confirm = 0;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_CONFIRMATION);
    assert_int_equal(strlen(rs.provider_ref), strlen("mock_pi_") + 24);
    assert_memory_equal(rs.provider_ref, "mock_pi_", 8);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);

    assert_int_equal(op_on(gw->confirm, ref, NULL, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_string_equal(rs.provider_ref, ref);
    assert_int_equal(rs.amount, 1234);
    assert_int_equal(rs.amount_captured, 1234);
    assert_int_equal(rs.amount_capturable, 0);
    assert_int_equal(rs.next_action, PAYD_NA_NONE);
    assert_non_null(strstr(rs.raw, "\"status\":\"succeeded\""));
    assert_non_null(strstr(rs.raw, "\"payment_id\":\"pay_test1\""));
    assert_memory_equal(rs.provider_request_id, "mreq_", 5);

    /* A confirmed intent cannot be confirmed again. */
    assert_int_equal(op_on(gw->confirm, ref, NULL, &rs, &e), PAYD_E_INVALID);
}

static void test_create_without_method_then_confirm_with_mastercard(void **state)
{
    payd_payment_req rq = pay_req(NULL, NULL);
    payd_payment_req extra;
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_PAYMENT_METHOD);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(op_on(gw->confirm, ref, NULL, &rs, &e), PAYD_E_INVALID);
    memset(&extra, 0, sizeof extra);
    extra.payment_method = "5555 5555 5555 4444";
    assert_int_equal(op_on(gw->confirm, ref, &extra, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_null(strstr(rs.raw, "5555"));
    assert_non_null(strstr(rs.raw, "pm_card_mastercard"));
}

static void test_raw_test_card_number_with_spaces_succeeds(void **state)
{
    payd_payment_req rq = pay_req("4242 4242-4242 4242", NULL);
    payd_payment_res rs;
    payd_error e;

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_null(strstr(rs.raw, "4242424242424242"));
    assert_null(strstr(rs.raw, "4242 4242"));
}

static void test_declined_card_maps_to_declined_with_code(void **state)
{
    static const struct {
        const char *method;
        const char *code;
    } cases[] = {
        {"pm_card_chargeDeclined", "card_declined"},
        {"4000000000000002", "card_declined"},
        {"pm_card_insufficientFunds", "insufficient_funds"},
        {"4000 0000 0000 9995", "insufficient_funds"},
        {"pm_card_expired", "expired_card"},
        {"4000000000000069", "expired_card"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        payd_payment_req rq = pay_req(cases[i].method, NULL);
        payd_payment_res rs;
        payd_error e;

        assert_int_equal(create(&rq, &rs, &e), PAYD_E_DECLINED);
        assert_int_equal(e.code, PAYD_E_DECLINED);
        assert_string_equal(e.failure_code, cases[i].code);
        assert_int_equal(rs.status, PAYD_PS_FAILED);
        assert_string_equal(rs.failure_code, cases[i].code);
        assert_non_null(rs.provider_ref);
        assert_null(strstr(e.message, "0000"));
        assert_null(strstr(rs.raw, "0000"));
    }
}

static void test_unknown_method_is_invalid_and_never_echoed(void **state)
{
    const char *methods[] = {"4111 1111 1111 1111", "4111111111111111",
                             "pm_card_bogus", ""};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        payd_payment_req rq = pay_req(methods[i], "k-unknown");
        payd_payment_res rs;
        payd_error e;

        assert_int_equal(create(&rq, &rs, &e), PAYD_E_INVALID);
        assert_string_equal(e.message, "unknown test payment method");
        assert_null(rs.provider_ref);
    }
    assert_int_equal(stat_of("pay_test1", "intents_created"), 0);
    assert_false(fake_log_contains("4111"));
}

static void test_same_idempotency_key_creates_one_intent(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", "payd-pay_test1-create-1");
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_string_equal(rs.provider_ref, ref);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);
    assert_int_equal(stat_of("pay_test1", "create_calls"), 2);

    /* A new key is a new intent. */
    rq.idempotency_key = "payd-pay_test1-create-2";
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_string_not_equal(rs.provider_ref, ref);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 2);
}

static void test_idempotency_key_reused_with_other_amount_is_provider_error(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", "k-reuse");
    payd_payment_res rs;
    payd_error e;

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    rq.amount = 999;
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_PROVIDER);
    assert_string_equal(e.message,
                        "idempotency key reused with different parameters");
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);
}

static void test_janitor_retry_with_redacted_method_replays_first_result(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_timeout", "payd-pay_test1-create-1");
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_TRANSIENT);
    /* payd stores no card data, and its janitor re-issues from what it
     * stored, with confirm set: the first call's answer comes back. */
    rq.payment_method = "card_number_ending_4242";
    rq.confirm = 1;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);

    rq.capture_method = PAYD_CAPTURE_MANUAL;
    rq.payment_method = "pm_card_visa";
    rq.idempotency_key = "payd-pay_test1-create-2";
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    {
        payd_payment_req extra = rq;

        extra.idempotency_key = "payd-pay_test1-capture-1";
        extra.amount_to_capture = 600;
        assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_OK);
        extra.amount_to_capture = 0;
        assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_OK);
        assert_int_equal(rs.amount_captured, 600);
    }
}

static void test_declined_result_is_replayed_for_same_key(void **state)
{
    payd_payment_req rq = pay_req("pm_card_chargeDeclined", "k-decline");
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_DECLINED);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_DECLINED);
    assert_string_equal(rs.provider_ref, ref);
    assert_string_equal(e.failure_code, "card_declined");
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);
}

static void test_manual_capture_holds_then_captures_all(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_CAPTURE);
    assert_int_equal(rs.amount_capturable, 1234);
    assert_int_equal(rs.amount_captured, 0);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(op_on(gw->capture, ref, NULL, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(rs.amount_captured, 1234);
    assert_int_equal(stat_of("pay_test1", "captures"), 1);
}

static void test_partial_capture_releases_remainder(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL), extra;
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    memset(&extra, 0, sizeof extra);
    extra.amount_to_capture = 1000;
    extra.idempotency_key = "k-capture";
    assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(rs.amount_captured, 1000);
    assert_int_equal(rs.amount_capturable, 0);
    /* The same key replays; a new capture finds nothing capturable. */
    assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_OK);
    assert_int_equal(rs.amount_captured, 1000);
    extra.idempotency_key = "k-capture-2";
    extra.amount_to_capture = 1;
    assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_E_INVALID);
    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.amount_captured, 1000);
    assert_int_equal(stat_of("pay_test1", "captures"), 1);
}

static void test_capture_above_capturable_is_refused_and_changes_nothing(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL), extra;
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    memset(&extra, 0, sizeof extra);
    extra.amount_to_capture = 1235;
    assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_E_INVALID);
    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_CAPTURE);
    assert_int_equal(rs.amount_capturable, 1234);
}

static void test_cancel_from_requires_capture_but_not_after_success(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(op_on(gw->cancel, ref, NULL, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_CANCELED);
    assert_int_equal(rs.amount_capturable, 0);
    assert_int_equal(op_on(gw->capture, ref, NULL, &rs, &e), PAYD_E_INVALID);

    rq.capture_method = PAYD_CAPTURE_AUTOMATIC;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(op_on(gw->cancel, ref, NULL, &rs, &e), PAYD_E_INVALID);
}

static void test_retrieve_unknown_ref_is_notfound(void **state)
{
    payd_payment_res rs;
    payd_refund_req rq;
    payd_refund_res rrs;
    payd_error e;

    (void)state;
    assert_int_equal(retrieve("mock_pi_000000000000000000000000", &rs, &e),
                     PAYD_E_NOTFOUND);
    memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.refund_ref = "mock_re_000000000000000000000000";
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->refund_retrieve(st, &rq, &rrs, arena, &e),
                     PAYD_E_NOTFOUND);
}

static void test_request_without_struct_size_is_invalid(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_error e;

    (void)state;
    rq.struct_size = 0;
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Refunds                                                                  */
/* ------------------------------------------------------------------------ */

static void test_partial_refunds_then_retrieve(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_refund_res rf;
    payd_refund_req rr;
    payd_error e;
    char ref[64], refund_ref[64];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(refund(ref, 1000, "k-rf-1", &rf, &e), PAYD_OK);
    assert_int_equal(rf.status, PAYD_RS_SUCCEEDED);
    assert_memory_equal(rf.refund_ref, "mock_re_", 8);
    snprintf(refund_ref, sizeof refund_ref, "%s", rf.refund_ref);
    /* Same key: the same refund, not a second one. */
    assert_int_equal(refund(ref, 1000, "k-rf-1", &rf, &e), PAYD_OK);
    assert_string_equal(rf.refund_ref, refund_ref);
    assert_int_equal(refund(ref, 234, "k-rf-2", &rf, &e), PAYD_OK);
    assert_int_equal(refund(ref, 1, "k-rf-3", &rf, &e), PAYD_E_INVALID);
    assert_int_equal(stat_of("pay_test1", "refunds"), 2);

    memset(&rr, 0, sizeof rr);
    rr.struct_size = sizeof rr;
    rr.refund_ref = refund_ref;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->refund_retrieve(st, &rr, &rf, arena, &e), PAYD_OK);
    assert_int_equal(rf.status, PAYD_RS_SUCCEEDED);
    assert_string_equal(rf.refund_ref, refund_ref);
    assert_non_null(strstr(rf.raw, "\"amount\":1000"));
    assert_non_null(strstr(rf.raw, "\"refund_id\":\"re_test1\""));
}

static void test_refund_above_captured_is_refused(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL), extra;
    payd_payment_res rs;
    payd_refund_res rf;
    payd_error e;
    char ref[64];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    /* Nothing captured yet. */
    assert_int_equal(refund(ref, 1, NULL, &rf, &e), PAYD_E_INVALID);
    memset(&extra, 0, sizeof extra);
    extra.amount_to_capture = 600;
    assert_int_equal(op_on(gw->capture, ref, &extra, &rs, &e), PAYD_OK);
    assert_int_equal(refund(ref, 601, NULL, &rf, &e), PAYD_E_INVALID);
    assert_string_equal(e.message, "refund exceeds captured amount");
    assert_int_equal(refund(ref, 600, NULL, &rf, &e), PAYD_OK);
}

/* ------------------------------------------------------------------------ */
/* 3-D Secure                                                               */
/* ------------------------------------------------------------------------ */

static void test_threeds_requires_action_with_redirect_url(void **state)
{
    payd_payment_req rq = pay_req("pm_card_threeDSecure2Required", NULL);
    payd_payment_res rs;
    payd_error e;
    char url[256];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_ACTION);
    assert_int_equal(rs.next_action, PAYD_NA_REDIRECT_URL);
    snprintf(url, sizeof url, PUBLIC_URL "/mock/3ds/%s", rs.provider_ref);
    assert_string_equal(rs.next_action_url, url);

    rq.payment_method = "4000 0027 6000 3184";
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_ACTION);
}

static void test_threeds_page_approve_redirects_and_succeeds(void **state)
{
    payd_payment_req rq = pay_req("pm_card_threeDSecure2Required", NULL);
    payd_payment_res rs;
    payd_page_res pg;
    payd_error e;
    char ref[64], path[96], want[512];
    const char *needles[2];

    (void)state;
    rq.return_url = "https://shop.example/return?x=1#top";
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    snprintf(path, sizeof path, "3ds/%s", ref);

    assert_int_equal(page("GET", path, NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 200);
    assert_string_equal(pg.content_type, "text/html; charset=utf-8");
    assert_int_equal(pg.body_len, strlen(pg.body));
    assert_non_null(strstr(pg.body, "<title>Mock 3-D Secure challenge</title>"));
    assert_non_null(strstr(pg.body, "12.34 USD"));
    assert_non_null(strstr(pg.body, "value=\"approve\""));
    assert_non_null(strstr(pg.body, "value=\"fail\""));
    assert_null(strstr(pg.body, "<script"));
    assert_null(strstr(pg.body, "http://"));

    assert_int_equal(page("POST", path, NULL, "action=approve", &pg), PAYD_OK);
    assert_int_equal(pg.status, 303);
    snprintf(want, sizeof want,
             "https://shop.example/return?x=1&payment_intent=%s"
             "&redirect_status=succeeded#top",
             ref);
    assert_string_equal(pg.location, want);
    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(rs.next_action, PAYD_NA_NONE);

    /* The challenge is over: both methods answer 409. */
    assert_int_equal(page("POST", path, NULL, "action=fail", &pg), PAYD_OK);
    assert_int_equal(pg.status, 409);
    assert_int_equal(page("GET", path, NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 409);

    needles[0] = "\"type\":\"payment.succeeded\"";
    needles[1] = ref;
    assert_true(fake_http_wait_for(needles, 2, 3000, NULL) >= 0);
}

static void test_threeds_page_fail_marks_failed_with_authentication_required(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_threeDSecure2Required", NULL);
    payd_payment_res rs;
    payd_page_res pg;
    payd_error e;
    fake_http_call call;
    char ref[64], path[96];
    const char *needles[2];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    snprintf(path, sizeof path, "/3ds/%s", ref);
    assert_int_equal(page("POST", path, NULL, "x=1&action=fail", &pg), PAYD_OK);
    assert_int_equal(pg.status, 200);
    assert_null(pg.location);
    assert_non_null(strstr(pg.body, "failed"));
    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_FAILED);
    assert_string_equal(rs.failure_code, "authentication_required");

    needles[0] = "\"type\":\"payment.failed\"";
    needles[1] = ref;
    assert_true(fake_http_wait_for(needles, 2, 3000, &call) >= 0);
    assert_non_null(strstr(call.body, "\"failure_code\":\"authentication_required\""));
    free(call.body);
}

static void test_threeds_manual_capture_approve_becomes_capturable(void **state)
{
    payd_payment_req rq = pay_req("pm_card_threeDSecure2Required", NULL);
    payd_payment_res rs;
    payd_page_res pg;
    payd_error e;
    char ref[64], path[96];
    const char *needles[2];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    snprintf(path, sizeof path, "3ds/%s", ref);
    assert_int_equal(page("POST", path, NULL, "action=approve", &pg), PAYD_OK);
    assert_int_equal(pg.status, 200);
    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_CAPTURE);
    needles[0] = "\"type\":\"payment.capturable\"";
    needles[1] = ref;
    assert_true(fake_http_wait_for(needles, 2, 3000, NULL) >= 0);
}

static void test_pages_unknown_or_malformed_answer_404_400_405(void **state)
{
    payd_payment_req rq = pay_req("pm_card_threeDSecure2Required", NULL);
    payd_payment_res rs;
    payd_page_res pg;
    payd_error e;
    char path[96];

    (void)state;
    assert_int_equal(page("GET", "3ds/mock_pi_000000000000000000000000", NULL,
                          NULL, &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 404);
    assert_int_equal(page("GET", "3ds/<script>alert(1)</script>", NULL, NULL,
                          &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 404);
    assert_null(strstr(pg.body, "<script>"));
    assert_int_equal(page("GET", "nope", NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 404);

    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(path, sizeof path, "3ds/%s", rs.provider_ref);
    assert_int_equal(page("POST", path, NULL, "action=maybe", &pg), PAYD_OK);
    assert_int_equal(pg.status, 400);
    assert_int_equal(page("POST", path, NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 400);
    assert_int_equal(page("DELETE", path, NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 405);
    assert_int_equal(retrieve(rs.provider_ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_ACTION);
}

static void test_test_controls_are_404_unless_on_then_change_what_retrieve_says(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_refund_res rf;
    payd_refund_req rr;
    payd_page_res pg;
    payd_error e;
    char path[96], refund_path[96];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(path, sizeof path, "test/intents/%s", rs.provider_ref);
    /* Off (the default): no such page (the HTML "not found" of unknown
     * paths), and nothing changes. */
    assert_int_equal(page("POST", path, NULL, "status=failed", &pg), PAYD_OK);
    assert_int_equal(pg.status, 404);
    assert_non_null(strstr(pg.body, "no such page"));
    assert_int_equal(retrieve(rs.provider_ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);

    /* On: the provider state changes behind payd's back. (A restart of
     * the only instance empties the provider: pay again.) */
    restart_with("test_controls", "on", NULL);
    rq = pay_req("pm_card_visa", NULL);
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(path, sizeof path, "test/intents/%s", rs.provider_ref);
    assert_int_equal(page("POST", path, NULL, "status=failed&amount_captured=1000",
                          &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 200);
    assert_non_null(strstr(pg.body, "\"status\":\"failed\""));
    assert_int_equal(retrieve(rs.provider_ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_FAILED);
    assert_int_equal(rs.amount_captured, 1000);

    /* A refund's status, for refund_retrieve. */
    assert_int_equal(page("POST", path, NULL, "status=succeeded", &pg), PAYD_OK);
    assert_int_equal(refund(rs.provider_ref, 400, NULL, &rf, &e), PAYD_OK);
    snprintf(refund_path, sizeof refund_path, "test/refunds/%s", rf.refund_ref);
    assert_int_equal(page("POST", refund_path, NULL, "status=failed", &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 200);
    memset(&rr, 0, sizeof rr);
    rr.struct_size = sizeof rr;
    rr.refund_ref = rf.refund_ref;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->refund_retrieve(st, &rr, &rf, arena, &e), PAYD_OK);
    assert_int_equal(rf.status, PAYD_RS_FAILED);

    /* Bad input is refused and changes nothing. */
    assert_int_equal(page("POST", path, NULL, "amount_captured=99999", &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 400);
    assert_int_equal(page("POST", path, NULL, "status=exploded", &pg), PAYD_OK);
    assert_int_equal(pg.status, 400);
    assert_int_equal(page("POST", path, NULL, "amount_captured=-1", &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 400);
    assert_int_equal(page("POST", path, NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 400);
    assert_int_equal(page("GET", path, NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 405);
    assert_int_equal(page("POST", "test/intents/mock_pi_000000000000000000000000",
                          NULL, "status=failed", &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 404);
    assert_int_equal(retrieve(rs.provider_ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(rs.amount_captured, 1000);
}

static void test_stats_page_escapes_payment_id_and_requires_it(void **state)
{
    payd_page_res pg;

    (void)state;
    assert_int_equal(page("GET", "stats", "payment_id=pay_%22x%5C", NULL, &pg),
                     PAYD_OK);
    assert_int_equal(pg.status, 200);
    assert_string_equal(pg.content_type, "application/json");
    assert_string_equal(pg.body,
                        "{\"payment_id\":\"pay_\\\"x\\\\\",\"intents_created\":0,"
                        "\"captures\":0,\"refunds\":0,\"create_calls\":0}");
    assert_int_equal(page("GET", "stats", NULL, NULL, &pg), PAYD_OK);
    assert_int_equal(pg.status, 400);
}

/* ------------------------------------------------------------------------ */
/* Settlement and outbound webhooks                                         */
/* ------------------------------------------------------------------------ */

static void test_processing_settles_and_posts_signed_webhook(void **state)
{
    payd_payment_req rq = pay_req("pm_card_processing", NULL);
    payd_payment_res rs;
    payd_error e;
    payd_event ev;
    fake_http_call call;
    char ref[64], want[160];
    const char *needles[2];
    long long t;

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_PROCESSING);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);

    needles[0] = "\"type\":\"payment.succeeded\"";
    needles[1] = ref;
    assert_true(fake_http_wait_for(needles, 2, 5000, &call) >= 0);
    assert_string_equal(call.method, "POST");
    assert_string_equal(call.url, WEBHOOK_URL);
    assert_string_equal(call.content_type, "application/json");
    assert_int_equal(call.had_arena, 0);
    assert_memory_equal(call.body, "{\"id\":\"mevt_", 12);
    assert_non_null(strstr(call.body, "\"payment_id\":\"pay_test1\""));
    assert_non_null(strstr(call.body, "\"amount\":1234,\"currency\":\"USD\""));
    assert_non_null(strstr(call.body, "\"refund_ref\":null"));

    /* The signature is HMAC-SHA256(secret, "<t>.<body>"). */
    assert_int_equal(sscanf(call.signature, "t=%lld,", &t), 1);
    sign(SECRET, t, call.body, call.body_len, want, sizeof want);
    assert_string_equal(call.signature, want);

    /* And the module's own webhook op accepts what it sent. */
    assert_int_equal(webhook_raw("mock-signature", call.signature, call.body,
                                 call.body_len, &ev, &e),
                     PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_PAYMENT_SUCCEEDED);
    assert_string_equal(ev.provider_ref, ref);
    assert_string_equal(ev.payment_id, "pay_test1");
    assert_int_equal(ev.amount, 1234);
    free(call.body);

    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
}

static void test_processing_manual_settles_to_capturable(void **state)
{
    payd_payment_req rq = pay_req("pm_card_processing", NULL);
    payd_payment_res rs;
    payd_error e;
    char ref[64];
    const char *needles[2];

    (void)state;
    rq.capture_method = PAYD_CAPTURE_MANUAL;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    needles[0] = "\"type\":\"payment.capturable\"";
    needles[1] = ref;
    assert_true(fake_http_wait_for(needles, 2, 5000, NULL) >= 0);
    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_REQUIRES_CAPTURE);
    assert_int_equal(rs.amount_capturable, 1234);
}

static void test_refund_emits_refund_succeeded_webhook(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_refund_res rf;
    payd_error e;
    payd_event ev;
    fake_http_call call;
    char ref[64];
    const char *needles[2];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(refund(ref, 400, NULL, &rf, &e), PAYD_OK);
    needles[0] = "\"type\":\"refund.succeeded\"";
    needles[1] = rf.refund_ref;
    assert_true(fake_http_wait_for(needles, 2, 3000, &call) >= 0);
    assert_int_equal(webhook_raw("Mock-Signature", call.signature, call.body,
                                 call.body_len, &ev, &e),
                     PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_REFUND_SUCCEEDED);
    assert_string_equal(ev.refund_ref, rf.refund_ref);
    assert_string_equal(ev.refund_id, "re_test1");
    assert_int_equal(ev.amount, 400);
    free(call.body);
}

static void test_failed_delivery_is_retried_with_backoff(void **state)
{
    static const long statuses[] = {500, 0};
    payd_payment_req rq = pay_req("pm_card_visa", NULL);
    payd_payment_res rs;
    payd_error e;
    char ref[64];
    const char *needles[1];
    int i;

    (void)state;
    fake_http_script(statuses, 2);
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    needles[0] = ref;
    /* 500, transport error, then 200 after 0.2 s + 1 s of backoff. */
    for (i = 0; i < 50 && fake_http_count_containing(ref) < 3; i++) {
        struct timespec ts = {0, 100000000L};

        nanosleep(&ts, NULL);
    }
    assert_int_equal(fake_http_count_containing(ref), 3);
    assert_true(fake_http_wait_for(needles, 1, 10, NULL) >= 0);
}

static void test_webhooks_off_posts_nothing(void **state)
{
    payd_payment_req rq = pay_req("pm_card_processing", NULL);
    payd_payment_res rs;
    payd_error e;
    struct timespec ts = {0, 300000000L};

    (void)state;
    restart_with("webhooks", "off", NULL);
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    nanosleep(&ts, NULL);
    assert_int_equal(fake_http_count(), 0);
    /* It still settles, visible on read. */
    assert_int_equal(retrieve(rs.provider_ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
}

/* ------------------------------------------------------------------------ */
/* Incoming webhooks                                                        */
/* ------------------------------------------------------------------------ */

static void test_webhook_valid_signature_parses_event(void **state)
{
    payd_event ev;
    payd_error e;

    (void)state;
    assert_int_equal(webhook_signed(dispute_body, strlen(dispute_body), &ev, &e),
                     PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_DISPUTE_CREATED);
    assert_string_equal(ev.provider_event_id, "mevt_dispute1");
    assert_string_equal(ev.provider_type, "dispute.created");
    assert_string_equal(ev.provider_ref, "mock_pi_0123456789abcdef01234567");
    assert_string_equal(ev.payment_id, "pay_d1");
    assert_int_equal(ev.amount, 500);
    assert_string_equal(ev.currency, "EUR");
    assert_null(ev.refund_ref);
    assert_null(ev.failure_code);
    assert_int_equal(ev.occurred_at, 1700000000);
}

static void test_webhook_tampered_body_rejected(void **state)
{
    char body[sizeof dispute_body], sig[160];
    payd_event ev;
    payd_error e;

    (void)state;
    memcpy(body, dispute_body, sizeof body);
    sign(SECRET, (long long)time(NULL), body, strlen(body), sig, sizeof sig);
    body[strlen(body) - 20] ^= 1;
    assert_int_equal(webhook_raw("Mock-Signature", sig, body, strlen(body), &ev,
                                 &e),
                     PAYD_E_SIGNATURE);
    assert_int_equal(e.code, PAYD_E_SIGNATURE);
    assert_non_null(strstr(e.message, "no v1 signature matches"));
    /* Signed with another secret. */
    sign("whsec_other", (long long)time(NULL), dispute_body,
         strlen(dispute_body), sig, sizeof sig);
    assert_int_equal(webhook_raw("Mock-Signature", sig, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_E_SIGNATURE);
}

static void test_webhook_stale_timestamp_rejected(void **state)
{
    char sig[160];
    payd_event ev;
    payd_error e;
    long long now = (long long)time(NULL);

    (void)state;
    sign(SECRET, now - 301, dispute_body, strlen(dispute_body), sig, sizeof sig);
    assert_int_equal(webhook_raw("Mock-Signature", sig, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_E_SIGNATURE);
    assert_non_null(strstr(e.message, "tolerance"));
    sign(SECRET, now + 400, dispute_body, strlen(dispute_body), sig, sizeof sig);
    assert_int_equal(webhook_raw("Mock-Signature", sig, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_E_SIGNATURE);
    /* Fresh when signed, stale once the host clock moves on. */
    sign(SECRET, now, dispute_body, strlen(dispute_body), sig, sizeof sig);
    assert_int_equal(webhook_raw("Mock-Signature", sig, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_OK);
    fake_clock_shift(600);
    assert_int_equal(webhook_raw("Mock-Signature", sig, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_E_SIGNATURE);
}

static void test_webhook_any_matching_v1_passes(void **state)
{
    char good[160], header[400];
    payd_event ev;
    payd_error e;
    long long now = (long long)time(NULL);

    (void)state;
    sign(SECRET, now, dispute_body, strlen(dispute_body), good, sizeof good);
    snprintf(header, sizeof header,
             "t=%lld,v1=%064d,v0=legacy,%s", now, 0,
             strchr(good, ',') + 1);
    assert_int_equal(webhook_raw("MOCK-SIGNATURE", header, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_OK);
}

static void test_webhook_malformed_signature_headers_rejected(void **state)
{
    char good[160], bad[400];
    const char *v1;
    long long now = (long long)time(NULL);
    payd_event ev;
    payd_error e;
    size_t i;
    const char *fmts[] = {
        "",                       /* empty */
        "t=%lld",                 /* no v1 */
        "v1=%s",                  /* no t */
        "t=%lld,v1=%.63s",        /* short hex */
        "t=%lld,,v1=%s",          /* empty item */
        "t=%lld, v1=%s",          /* space inside */
        "t=%lld,t=%lld,v1=%s",    /* t twice */
        "t=-%lld,v1=%s",          /* not digits */
        "t=%lld,v1=%sff",         /* long hex */
        "t=%lld,v1=%s,",          /* trailing comma */
        "t=%lld;v1=%s",           /* wrong separator */
        "T=%lld,v1=%s",           /* upper-case key */
        "t=1234567890123,v1=%s",  /* 13-digit t */
    };

    (void)state;
    sign(SECRET, now, dispute_body, strlen(dispute_body), good, sizeof good);
    v1 = strstr(good, "v1=") + 3;
    for (i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        const char *f = fmts[i];

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-extra-args"
        if (strstr(f, "t=%lld,t=%lld") != NULL)
            snprintf(bad, sizeof bad, f, now, now, v1);
        else if (strncmp(f, "v1=", 3) == 0 || strstr(f, "t=1234567890123"))
            snprintf(bad, sizeof bad, f, v1);
        else
            snprintf(bad, sizeof bad, f, now, v1);
#pragma GCC diagnostic pop
        assert_int_equal(webhook_raw("Mock-Signature", bad, dispute_body,
                                     strlen(dispute_body), &ev, &e),
                         PAYD_E_SIGNATURE);
    }
    /* No header at all, or a header twice. */
    assert_int_equal(webhook_raw("X-Other", good, dispute_body,
                                 strlen(dispute_body), &ev, &e),
                     PAYD_E_SIGNATURE);
    {
        payd_header hd[2] = {{"Mock-Signature", good}, {"mock-signature", good}};
        payd_webhook_req rq;

        memset(&rq, 0, sizeof rq);
        rq.struct_size = sizeof rq;
        rq.headers = hd;
        rq.header_count = 2;
        rq.body = dispute_body;
        rq.body_len = strlen(dispute_body);
        memset(&e, 0, sizeof e);
        assert_int_equal(gw->webhook(st, &rq, &ev, arena, &e), PAYD_E_SIGNATURE);
    }
}

static void test_webhook_missing_or_bad_id_is_invalid(void **state)
{
    const char *bodies[] = {
        "{\"type\":\"payment.succeeded\",\"data\":{}}",
        "{\"id\":\"\",\"type\":\"payment.succeeded\"}",
        "{\"id\":null,\"type\":\"payment.succeeded\"}",
        "{\"id\":\"has space\",\"type\":\"payment.succeeded\"}",
        "{\"id\":42,\"type\":\"payment.succeeded\"}",
        "{\"id\":\"mevt_1\"}",
    };
    payd_event ev;
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_int_equal(webhook_signed(bodies[i], strlen(bodies[i]), &ev, &e),
                         PAYD_E_INVALID);
}

static void test_webhook_unknown_type_is_ignored_and_extra_fields_skipped(
    void **state)
{
    const char body[] =
        "{\"livemode\":false,\"id\":\"evt_x\",\"type\":\"charge.updated\","
        "\"extra\":[1,-2.5e3,true,false,null,{\"a\":[\"\\u00e9\\ud83d\\ude00\"]}],"
        "\"data\":{\"object\":{\"nested\":{}},\"amount\":null,"
        "\"failure_message\":\"caf\\u00e9 \\\"ok\\\"\"}}";
    payd_event ev;
    payd_error e;

    (void)state;
    assert_int_equal(webhook_signed(body, strlen(body), &ev, &e), PAYD_OK);
    assert_int_equal(ev.type, PAYD_EV_IGNORED);
    assert_string_equal(ev.provider_event_id, "evt_x");
    assert_string_equal(ev.failure_message, "caf\xc3\xa9 \"ok\"");
    assert_int_equal(ev.amount, 0);
    assert_true(ev.occurred_at > 0);
}

static void test_webhook_hostile_bodies_are_invalid_not_fatal(void **state)
{
    static const char *bodies[] = {
        "", "{", "}", "[]", "\"str\"", "null", "{\"id\":\"e\"",
        "{\"id\":\"e\",\"type\":\"x\"}garbage", "{\"id\":\"e\",\"type\":\"x\"",
        "{\"id\":\"a\\u0000b\",\"type\":\"x\"}",
        "{\"id\":\"a\\ud800\",\"type\":\"x\"}",
        "{\"id\":\"a\\udc00x\",\"type\":\"x\"}", "{\"id\":\"a\\u12\"}",
        "{\"id\":\"a\\q\",\"type\":\"x\"}", "{\"id\":\"\xc3\x28\",\"type\":\"x\"}",
        "{\"id\":\"\xed\xa0\x80\",\"type\":\"x\"}",
        "{\"id\":\"\xf4\x90\x80\x80\",\"type\":\"x\"}",
        "{\"id\":\"e\",\"id\":\"f\",\"type\":\"x\"}",
        "{\"id\":\"e\",\"type\":\"x\",\"created\":99999999999999999999}",
        "{\"id\":\"e\",\"type\":\"x\",\"created\":1.5}",
        "{\"id\":\"e\",\"type\":\"x\",\"created\":-1}",
        "{\"id\":\"e\",\"type\":\"x\",\"created\":01}",
        "{\"id\":\"e\",\"type\":\"x\",\"data\":{\"amount\":\"5\"}}",
        "{\"id\":\"e\",\"type\":\"x\",\"data\":{\"amount\":1,\"amount\":2}}",
        "{\"id\":\"e\",\"type\":\"x\",\"data\":[]}",
        "{\"id\":\"e\",\"type\":\"x\",\"z\":01}",
        "{\"id\":\"e\",\"type\":\"x\",\"z\":1.}",
        "{\"id\":\"e\",\"type\":\"x\",\"z\":tru}",
        "{\"id\":\"e\",\"type\":\"x\",\"z\":[1,]}",
        "{\"id\":\"e\",\"type\":\"x\",}",
        "{\"id\":\"e\"\"type\":\"x\"}",
        "{\"id\":\"e\",\"type\":\"x\",\"z\":\"\n\"}",
    };
    char deep[400];
    payd_event ev;
    payd_error e;
    size_t i, n;
    unsigned seed = 12345;

    (void)state;
    for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        int rc = webhook_signed(bodies[i], strlen(bodies[i]), &ev, &e);

        if (rc != PAYD_E_INVALID)
            fail_msg("body %zu accepted: %s", i, bodies[i]);
    }
    /* Nesting past the limit. */
    n = (size_t)snprintf(deep, sizeof deep, "{\"id\":\"e\",\"type\":\"x\",\"z\":");
    for (i = 0; i < 40; i++)
        deep[n++] = '[';
    for (i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    assert_int_equal(webhook_signed(deep, n, &ev, &e), PAYD_E_INVALID);

    /* Every strict prefix of a valid body is refused, and is read only up
     * to its length (the copy is exactly that long, for ASan). */
    for (n = 0; n < strlen(dispute_body); n++) {
        char *copy = malloc(n + 1);

        assert_non_null(copy);
        memcpy(copy, dispute_body, n);
        assert_int_equal(webhook_signed(copy, n, &ev, &e), PAYD_E_INVALID);
        free(copy);
    }
    /* Random byte flips never crash; the result is OK or INVALID. */
    for (i = 0; i < 3000; i++) {
        size_t len = strlen(dispute_body), k;
        char *copy = malloc(len);
        int rc;

        assert_non_null(copy);
        memcpy(copy, dispute_body, len);
        for (k = 0; k < 1 + i % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % len] = (char)(seed >> 16);
        }
        rc = webhook_signed(copy, len, &ev, &e);
        assert_true(rc == PAYD_OK || rc == PAYD_E_INVALID);
        free(copy);
        if (i % 500 == 0) {
            fake_arena_free(arena);
            arena = fake_arena_new();
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Fault injection                                                          */
/* ------------------------------------------------------------------------ */

static void test_timeout_card_charges_once_and_retrieve_shows_success(
    void **state)
{
    payd_payment_req rq = pay_req("pm_card_timeout", "payd-pay_test1-create-1");
    payd_payment_res rs;
    payd_error e;
    char ref[64];

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_TRANSIENT);
    assert_string_equal(e.message, "timeout (injected)");
    assert_null(rs.provider_ref);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);

    /* The retry with the same key gets the stored success. */
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    snprintf(ref, sizeof ref, "%s", rs.provider_ref);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);
    assert_int_equal(stat_of("pay_test1", "create_calls"), 2);

    assert_int_equal(retrieve(ref, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    assert_int_equal(rs.amount_captured, 1234);
}

static void test_transient_rate_fails_before_applying(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", "k-503");
    payd_payment_res rs;
    payd_error e;

    (void)state;
    restart_with("transient_rate", "1", NULL);
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_TRANSIENT);
    assert_string_equal(e.message, "service unavailable (injected)");
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_TRANSIENT);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 0);
    assert_int_equal(stat_of("pay_test1", "create_calls"), 2);
    /* Reads are never faulted. */
    assert_int_equal(retrieve("mock_pi_000000000000000000000000", &rs, &e),
                     PAYD_E_NOTFOUND);
}

static void test_timeout_rate_applies_then_reports_transient(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", "k-lost");
    payd_payment_res rs;
    payd_error e;

    (void)state;
    restart_with("timeout_rate", "1.0", "latency_ms", "5", NULL);
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_TRANSIENT);
    assert_string_equal(e.message, "timeout (injected)");
    assert_int_equal(create(&rq, &rs, &e), PAYD_E_TRANSIENT);
    assert_int_equal(stat_of("pay_test1", "intents_created"), 1);
}

static void test_bad_config_value_names_key(void **state)
{
    static const struct {
        const char *key;
        const char *value;
    } cases[] = {
        {"settle_ms", "abc"},          {"settle_ms", "-1"},
        {"settle_ms", "3600001"},      {"latency_ms", "1e3"},
        {"latency_ms", ""},            {"transient_rate", "1.5"},
        {"transient_rate", "nan"},     {"timeout_rate", "0.5.1"},
        {"timeout_rate", "-0.1"},      {"webhooks", "maybe"},
        {"webhook_tolerance_s", "0"},  {"webhook_tolerance_s", "5m"},
        {"webhook_secret", ""},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        payd_error e;
        void *other = NULL;
        int rc;

        fake_config_set(cases[i].key, cases[i].value);
        memset(&e, 0, sizeof e);
        rc = mod->init(fake_host(), fake_config(), &other, &e);
        if (rc != PAYD_E_INVALID || strstr(e.message, cases[i].key) == NULL)
            fail_msg("%s=%s: rc %d, message '%s'", cases[i].key,
                     cases[i].value, rc, e.message);
        assert_null(other);
        fake_config_set(cases[i].key, NULL);
    }
    /* Good values still load. */
    restart_with("settle_ms", "0", "transient_rate", ".25", "timeout_rate",
                 "0", "webhooks", "OFF", "webhook_tolerance_s", "60", NULL);
}

/* ------------------------------------------------------------------------ */
/* Saved methods                                                            */
/* ------------------------------------------------------------------------ */

static int method_op(int (*op)(PAYD_OP_ARGS(payd_method_req, payd_method)),
                     const char *customer, const char *method, const char *key,
                     payd_method *out, payd_error *e)
{
    payd_method_req rq;

    memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.customer_ref = customer;
    rq.customer_email = "buyer@example.com";
    rq.method_ref = method;
    rq.idempotency_key = key;
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    return op(st, &rq, out, arena, e);
}

static void test_saved_methods_save_list_charge_delete(void **state)
{
    payd_method m;
    payd_method_req lq;
    payd_method_list list;
    payd_payment_req rq;
    payd_payment_res rs;
    payd_error e;
    char cus[64], pm1[64];

    (void)state;
    assert_int_equal(method_op(gw->save_method, NULL, "pm_card_visa", "k-save",
                               &m, &e),
                     PAYD_OK);
    assert_memory_equal(m.method_ref, "mock_pm_", 8);
    assert_memory_equal(m.customer_ref, "mock_cus_", 9);
    assert_string_equal(m.brand, "visa");
    assert_string_equal(m.last4, "4242");
    assert_int_equal(m.exp_month, 12);
    assert_int_equal(m.exp_year, 2034);
    snprintf(cus, sizeof cus, "%s", m.customer_ref);
    snprintf(pm1, sizeof pm1, "%s", m.method_ref);
    /* Replay of the same key: same method, no new customer. */
    assert_int_equal(method_op(gw->save_method, NULL, "pm_card_visa", "k-save",
                               &m, &e),
                     PAYD_OK);
    assert_string_equal(m.method_ref, pm1);

    assert_int_equal(method_op(gw->save_method, cus, "5555555555554444", NULL,
                               &m, &e),
                     PAYD_OK);
    assert_string_equal(m.brand, "mastercard");
    assert_string_equal(m.last4, "4444");

    memset(&lq, 0, sizeof lq);
    lq.struct_size = sizeof lq;
    lq.customer_ref = cus;
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->list_methods(st, &lq, &list, arena, &e), PAYD_OK);
    assert_int_equal(list.count, 2);
    assert_string_equal(list.items[0].method_ref, pm1);
    assert_string_equal(list.items[1].brand, "mastercard");

    rq = pay_req(pm1, NULL);
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);

    assert_int_equal(method_op(gw->delete_method, cus, pm1, NULL, &m, &e),
                     PAYD_OK);
    assert_string_equal(m.method_ref, pm1);
    assert_int_equal(method_op(gw->delete_method, cus, pm1, NULL, &m, &e),
                     PAYD_E_NOTFOUND);
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->list_methods(st, &lq, &list, arena, &e), PAYD_OK);
    assert_int_equal(list.count, 1);

    assert_int_equal(method_op(gw->save_method, "mock_cus_nope", "pm_card_visa",
                               NULL, &m, &e),
                     PAYD_E_NOTFOUND);
    assert_int_equal(method_op(gw->save_method, NULL, "pm_card_nope", NULL, &m,
                               &e),
                     PAYD_E_INVALID);
    lq.customer_ref = "mock_cus_nope";
    assert_int_equal(gw->list_methods(st, &lq, &list, arena, &e),
                     PAYD_E_NOTFOUND);
}

/* ------------------------------------------------------------------------ */
/* Instances and threads                                                    */
/* ------------------------------------------------------------------------ */

static void test_two_instances_share_provider_and_scope_keys(void **state)
{
    payd_payment_req rq = pay_req("pm_card_visa", "k-shared");
    payd_payment_res rs;
    payd_error e;
    void *b = NULL;
    char ref_a[64];
    const char *needles[2];
    fake_http_call call;

    (void)state;
    assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    snprintf(ref_a, sizeof ref_a, "%s", rs.provider_ref);

    fake_config_set("payd.instance", "mock_eu");
    fake_config_set("payd.webhook_url", "http://127.0.0.1:9/v1/webhooks/mock_eu");
    memset(&e, 0, sizeof e);
    assert_int_equal(mod->init(fake_host(), fake_config(), &b, &e), PAYD_OK);

    /* B sees A's intent (one provider) but its key space is its own. */
    memset(&e, 0, sizeof e);
    {
        payd_payment_req r2;

        memset(&r2, 0, sizeof r2);
        r2.struct_size = sizeof r2;
        r2.provider_ref = ref_a;
        assert_int_equal(gw->retrieve(b, &r2, &rs, arena, &e), PAYD_OK);
        assert_int_equal(rs.status, PAYD_PS_SUCCEEDED);
    }
    memset(&e, 0, sizeof e);
    assert_int_equal(gw->create(b, &rq, &rs, arena, &e), PAYD_OK);
    assert_string_not_equal(rs.provider_ref, ref_a);
    needles[0] = "\"type\":\"payment.succeeded\"";
    needles[1] = rs.provider_ref;
    assert_true(fake_http_wait_for(needles, 2, 3000, &call) >= 0);
    assert_string_equal(call.url, "http://127.0.0.1:9/v1/webhooks/mock_eu");
    free(call.body);

    /* Stopping B leaves A working. */
    mod->fini(b);
    assert_int_equal(retrieve(ref_a, &rs, &e), PAYD_OK);
}

typedef struct racer {
    pthread_barrier_t *start;
    int rc;
    char ref[64];
} racer;

static void *race_create(void *arg)
{
    racer *r = arg;
    payd_payment_req rq = pay_req("pm_card_visa", "k-race");
    payd_payment_res rs;
    payd_error e;
    payd_arena *a = fake_arena_new();

    rq.payment_id = "pay_race";
    memset(&rs, 0, sizeof rs);
    memset(&e, 0, sizeof e);
    pthread_barrier_wait(r->start);
    r->rc = gw->create(st, &rq, &rs, a, &e);
    if (rs.provider_ref != NULL)
        snprintf(r->ref, sizeof r->ref, "%s", rs.provider_ref);
    fake_arena_free(a);
    return NULL;
}

static void test_concurrent_creates_with_one_key_charge_once(void **state)
{
    pthread_t th[8];
    pthread_barrier_t start;
    racer rc[8];
    int i;

    (void)state;
    memset(rc, 0, sizeof rc);
    assert_int_equal(pthread_barrier_init(&start, NULL, 8), 0);
    for (i = 0; i < 8; i++) {
        rc[i].start = &start;
        assert_int_equal(pthread_create(&th[i], NULL, race_create, &rc[i]), 0);
    }
    for (i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (i = 0; i < 8; i++) {
        assert_int_equal(rc[i].rc, PAYD_OK);
        assert_string_equal(rc[i].ref, rc[0].ref);
    }
    assert_int_equal(stat_of("pay_race", "intents_created"), 1);
    assert_int_equal(stat_of("pay_race", "create_calls"), 8);
}

static void test_fini_with_queued_webhooks_joins_cleanly(void **state)
{
    static const long statuses[] = {500, 500, 500};
    payd_payment_req rq = pay_req("pm_card_processing", NULL);
    payd_payment_res rs;
    payd_error e;
    int i;

    (void)state;
    fake_http_script(statuses, 3);
    for (i = 0; i < 20; i++) {
        rq.payment_method = i % 2 ? "pm_card_processing" : "pm_card_visa";
        assert_int_equal(create(&rq, &rs, &e), PAYD_OK);
    }
    /* Teardown's fini must stop the thread with timers and retries queued;
     * ASan's leak check at exit proves the queue is freed. */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_descriptor_is_gateway_with_all_caps_and_ops),
        T(test_visa_create_confirm_succeeds),
        T(test_create_without_method_then_confirm_with_mastercard),
        T(test_raw_test_card_number_with_spaces_succeeds),
        T(test_declined_card_maps_to_declined_with_code),
        T(test_unknown_method_is_invalid_and_never_echoed),
        T(test_same_idempotency_key_creates_one_intent),
        T(test_idempotency_key_reused_with_other_amount_is_provider_error),
        T(test_janitor_retry_with_redacted_method_replays_first_result),
        T(test_declined_result_is_replayed_for_same_key),
        T(test_manual_capture_holds_then_captures_all),
        T(test_partial_capture_releases_remainder),
        T(test_capture_above_capturable_is_refused_and_changes_nothing),
        T(test_cancel_from_requires_capture_but_not_after_success),
        T(test_retrieve_unknown_ref_is_notfound),
        T(test_request_without_struct_size_is_invalid),
        T(test_partial_refunds_then_retrieve),
        T(test_refund_above_captured_is_refused),
        T(test_threeds_requires_action_with_redirect_url),
        T(test_threeds_page_approve_redirects_and_succeeds),
        T(test_threeds_page_fail_marks_failed_with_authentication_required),
        T(test_threeds_manual_capture_approve_becomes_capturable),
        T(test_pages_unknown_or_malformed_answer_404_400_405),
        T(test_test_controls_are_404_unless_on_then_change_what_retrieve_says),
        T(test_stats_page_escapes_payment_id_and_requires_it),
        T(test_processing_settles_and_posts_signed_webhook),
        T(test_processing_manual_settles_to_capturable),
        T(test_refund_emits_refund_succeeded_webhook),
        T(test_failed_delivery_is_retried_with_backoff),
        T(test_webhooks_off_posts_nothing),
        T(test_webhook_valid_signature_parses_event),
        T(test_webhook_tampered_body_rejected),
        T(test_webhook_stale_timestamp_rejected),
        T(test_webhook_any_matching_v1_passes),
        T(test_webhook_malformed_signature_headers_rejected),
        T(test_webhook_missing_or_bad_id_is_invalid),
        T(test_webhook_unknown_type_is_ignored_and_extra_fields_skipped),
        T(test_webhook_hostile_bodies_are_invalid_not_fatal),
        T(test_timeout_card_charges_once_and_retrieve_shows_success),
        T(test_transient_rate_fails_before_applying),
        T(test_timeout_rate_applies_then_reports_transient),
        T(test_bad_config_value_names_key),
        T(test_saved_methods_save_list_charge_delete),
        T(test_two_instances_share_provider_and_scope_keys),
        T(test_concurrent_creates_with_one_key_charge_once),
        T(test_fini_with_queued_webhooks_joins_cleanly),
#undef T
    };

    return cmocka_run_group_tests_name("mock_module", tests, group_setup,
                                       group_teardown);
}
