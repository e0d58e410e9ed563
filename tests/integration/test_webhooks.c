/*
 * test_webhooks.c - incoming provider webhooks and the normalized event
 * stream, against a real payd, PostgreSQL and the mock gateway.
 *
 * Every webhook here is made and signed by the test (the mock's own
 * deliveries are off), in the mock's wire format:
 *
 *   Mock-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   {"id":"mevt_...","type":"payment.succeeded","created":...,"data":{...}}
 *
 * What is guarded: a verified event is applied once through the state
 * machine (payment, order, ledger, events) and redeliveries are answered
 * `duplicate`; news that would move a payment backwards is recorded as
 * `stale` and changes nothing; an event for an unknown payment is kept as
 * `unmatched`; a forged, tampered, unsigned or old request is 400 and
 * stores nothing; disputes write a chargeback; a refund webhook that wins
 * the race with the synchronous answer completes the refund exactly once;
 * a refund made at the provider is booked once, waits while one of payd's
 * is pending, and is flagged when it cannot be booked;
 * GET /v1/events paginates and filters and is for merchants only.
 *
 * Gateway instances:
 *   mock  webhooks off, settle_ms 1 h: pm_card_processing stays processing
 *         until the test's webhook settles it;
 *   slow  webhooks off, latency_ms 1500: every provider call sleeps first,
 *         so a refund stays pending long enough for a webhook to arrive.
 */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define POLL_MS 10000
#define SECRET "whsec_test"
#define SLOW_SECRET "whsec_slow"

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)
#define ledger(pay_id, type, count, sum) h_ledger(&srv, (pay_id), (type), (count), (sum))
#define events_of(object_id, type) h_events_of(&srv, (object_id), (type))

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

#define post(path, auth, body, r) h_post_ok(&srv, (path), (auth), (body), (r))
#define get(path, auth, r) h_get_ok(&srv, (path), (auth), (r))

/* The first value of a query into out ("" when NULL or no row). */
static void sql_str(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sql_str(char *out, size_t len, const char *fmt, ...)
{
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    char *v = h_sql_value(srv.db_url, q);
    snprintf(out, len, "%s", v ? v : "");
    free(v);
}

/* An order of one item of `total` USD by the merchant key; copies its id. */
static void new_order(long long total, char id[64])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"currency\":\"USD\",\"items\":[{\"name\":\"Kettle\",\"quantity\":1,\"unit_amount\":%lld}]}", total);
    h_create(&srv, "/v1/orders", srv.merchant_auth, body, 201, id);
}

/* Pays `order` with `method` on `gateway`; expects `status` (HTTP) and
 * `pstatus` (payment); copies the payment id and its provider ref. */
static void pay(const char *order, const char *method, const char *gateway, long status, const char *pstatus,
                char pay_id[64], char ref[64])
{
    char body[512];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true,\"gateway\":\"%s\"}",
             order, method, gateway);
    h_resp r;
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, status);
    EXPECT_STR(h_rstr(&r, "status"), pstatus);
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    assert_non_null(h_rstr(&r, "provider_ref"));
    snprintf(ref, 64, "%s", h_rstr(&r, "provider_ref"));
    h_resp_free(&r);
}

/* A processing payment on `mock` for a new order of `total`. */
static void processing_payment(long long total, char order[64], char pay_id[64], char ref[64])
{
    new_order(total, order);
    pay(order, "pm_card_processing", "mock", 201, "processing", pay_id, ref);
}

/* A succeeded payment on `mock` for a new order of `total`. */
static void paid_payment(long long total, char order[64], char pay_id[64], char ref[64])
{
    new_order(total, order);
    pay(order, "pm_card_visa", "mock", 201, "succeeded", pay_id, ref);
}

/* The status string of an order, payment or refund. */
#define obj_status(kind, id, out) h_status_of(&srv, (kind), (id), (out))
#define EXPECT_OBJ_STATUS(kind, id, want)     \
    do {                                      \
        char st_[40];                         \
        obj_status((kind), (id), st_);        \
        EXPECT_STR(st_, (want));              \
    } while (0)



/* A fresh provider event id. */
static void new_event_id(char out[64])
{
    static int seq;
    snprintf(out, 64, "mevt_t%d_%lld_%d", (int)getpid(), (long long)h_now_ms(), ++seq);
}

/* Optional members of a mock event's data; NULL / negative = JSON null. */
typedef struct ev_data {
    const char *provider_ref;
    const char *payment_id;
    long long amount;           /* < 0: null */
    const char *refund_id;
    const char *refund_ref;
    const char *failure_code;
    const char *failure_message;
} ev_data;

/* The mock's webhook body for (id, type, data), compact, into out. */
static void mock_event(char *out, size_t len, const char *id, const char *type, const ev_data *d)
{
    json_t *data = json_pack("{s:s?, s:s?, s:o, s:s, s:s?, s:s?, s:s?, s:s?}", "provider_ref", d->provider_ref,
                             "payment_id", d->payment_id, "amount",
                             d->amount >= 0 ? json_integer(d->amount) : json_null(), "currency", "USD",
                             "refund_ref", d->refund_ref, "refund_id", d->refund_id, "failure_code",
                             d->failure_code, "failure_message", d->failure_message);
    assert_non_null(data);
    json_t *ev = json_pack("{s:s, s:s, s:I, s:o}", "id", id, "type", type, "created", (json_int_t)time(NULL),
                           "data", data);
    assert_non_null(ev);
    char *text = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ev);
    assert_non_null(text);
    assert_true(strlen(text) < len);
    snprintf(out, len, "%s", text);
    free(text);
}

/* "Mock-Signature: t=<t>,v1=<hex>" for `body` with `secret`. */
#define mock_sign(secret, t, body, out, len) h_mock_signature((secret), (t), (body), (out), (len))

/* POSTs `body` to /v1/webhooks/<gateway> with the signature header line
 * `sig` (NULL: no signature at all). */
#define post_webhook(gateway, sig, body, r) h_post_webhook(&srv, (gateway), (sig), (body), (r))

/* Signs `body` for `gateway` now and POSTs it; expects 200 and `status`
 * in the answer, with the event id and type echoed. */
static void deliver_at(const char *gateway, const char *secret, const char *body, const char *event_id,
                       const char *type, const char *status, const char *file, int line)
{
    char sig[256];
    mock_sign(secret, (long long)time(NULL), body, sig, sizeof sig);
    h_resp r;
    post_webhook(gateway, sig, body, &r);
    h_expect_status_at(&r, 200, file, line);
    if (h_rbool(&r, "received") != 1) {
        print_error("no \"received\":true in %s\n", r.body);
        _fail(file, line);
    }
    h_expect_str_at(h_rstr(&r, "status"), status, "webhook status", file, line);
    h_expect_str_at(h_rstr(&r, "event_id"), event_id, "event_id", file, line);
    h_expect_str_at(h_rstr(&r, "type"), type, "type", file, line);
    h_resp_free(&r);
}
#define DELIVER(gw, secret, body, evt, type, status) \
    deliver_at((gw), (secret), (body), (evt), (type), (status), __FILE__, __LINE__)

/* A metric's value from GET /metrics (the first sample named `name`), or -1. */
static long long metric(const char *name)
{
    h_resp r;
    get("/metrics", NULL, &r);
    EXPECT_STATUS(&r, 200);
    long long v = -1;
    size_t n = strlen(name);
    for (const char *p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '{')) {
            const char *sp = strchr(p, ' ');
            if (sp) v = strtoll(sp + 1, NULL, 10);
            break;
        }
    }
    h_resp_free(&r);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Setup.                                                                   */
/* ------------------------------------------------------------------------ */


/* A declined payment on `mock` for `order`: 402 with the failed payment
 * beside the error, which keeps the provider's ref. */
static void pay_declined(const char *order, char pay_id[64], char ref[64])
{
    char body[512];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_chargeDeclined\",\"confirm\":true}",
             order);
    h_resp r;
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_ERROR(&r, 402, "card_error", "card_declined", NULL);
    EXPECT_STR(h_rstr(&r, "payment.status"), "failed");
    snprintf(pay_id, 64, "%s", h_rstr(&r, "payment.id"));
    assert_non_null(h_rstr(&r, "payment.provider_ref"));
    snprintf(ref, 64, "%s", h_rstr(&r, "payment.provider_ref"));
    h_resp_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Late news: the provider took money after payd had given up.              */
/* ------------------------------------------------------------------------ */

static void test_success_after_a_decline_is_applied_while_the_order_is_open(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64];
    new_order(1800, order);
    pay_declined(order, pay_id, ref);

    char evt[64], body[2048];
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 1800};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "applied");
    EXPECT_OBJ_STATUS("payments", pay_id, "succeeded");
    EXPECT_OBJ_STATUS("orders", order, "paid");
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 1800);
}

static void test_success_after_a_decline_on_an_order_paid_again_needs_review_and_moves_nothing(void **state)
{
    (void)state;
    char order[64], first[64], first_ref[64], second[64], second_ref[64];
    new_order(2100, order);
    pay_declined(order, first, first_ref);
    pay(order, "pm_card_visa", "mock", 201, "succeeded", second, second_ref);

    char evt[64], body[2048];
    new_event_id(evt);
    ev_data d = {.provider_ref = first_ref, .payment_id = first, .amount = 2100};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "stale");
    EXPECT_OBJ_STATUS("payments", first, "failed");
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND needs_review", first), 1);
    assert_int_equal(events_of(first, "payment.needs_review"), 1);
    EXPECT_OBJ_STATUS("orders", order, "paid");
    long long n, sum;
    ledger(first, "charge", &n, &sum);
    assert_int_equal(n, 0);
    ledger(second, "charge", &n, &sum);
    assert_int_equal(n, 1);
}

/* A flagged payment is listed in the review queue until an admin closes
 * the case with a note; closing it moves no money. */
static void test_review_queue_lists_a_flagged_payment_until_an_admin_resolves_it_with_a_note(void **state)
{
    (void)state;
    char order[64], first[64], first_ref[64], second[64], second_ref[64];
    new_order(2300, order);
    pay_declined(order, first, first_ref);
    pay(order, "pm_card_visa", "mock", 201, "succeeded", second, second_ref);
    char evt[64], body[2048];
    new_event_id(evt);
    ev_data d = {.provider_ref = first_ref, .payment_id = first, .amount = 2300};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "stale");

    h_resp r;
    get("/v1/payments?needs_review=true&limit=100", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_CONTAINS(r.body, first);
    EXPECT_NOT_CONTAINS(r.body, second);
    h_resp_free(&r);
    EXPECT_GET_ERROR(&srv, "/v1/payments?needs_review=maybe", srv.merchant_auth, 400, "invalid_request_error",
                     "parameter_invalid", "needs_review");

    char path[160];
    snprintf(path, sizeof path, "/v1/admin/payments/%s/resolve_review", first);
    EXPECT_POST_ERROR(&srv, path, srv.admin_auth, "{}", 400, "invalid_request_error", "parameter_missing", "note");
    EXPECT_POST_ERROR(&srv, path, srv.admin_auth, "{\"note\":null}", 400, "invalid_request_error", "parameter_invalid",
                      "note");
    EXPECT_POST_ERROR(&srv, path, srv.admin_auth, "{\"note\":\"x\",\"amount\":1}", 400, "invalid_request_error",
                      "parameter_unknown", "amount");
    post(path, srv.merchant_auth, "{\"note\":\"refunded at the provider\"}", &r);
    EXPECT_STATUS(&r, 403);
    h_resp_free(&r);

    post(path, srv.admin_auth, "{\"note\":\"double charge refunded at the provider\"}", &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rbool(&r, "needs_review"), 0);
    EXPECT_STR(h_rstr(&r, "status"), "failed");
    h_resp_free(&r);
    assert_int_equal(events_of(first, "payment.review_resolved"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'"
                             " AND action = 'payment.review_resolved' AND actor = 'key:%.12s'"
                             " AND after::text LIKE '%%double charge refunded%%'",
                             first, srv.admin_key + 5),
                     1);
    EXPECT_LEDGER(&srv, first, "charge", 0, 0);

    /* Closed: off the queue, and a second resolve is refused. */
    get("/v1/payments?needs_review=true&limit=100", srv.merchant_auth, &r);
    EXPECT_NOT_CONTAINS(r.body, first);
    h_resp_free(&r);
    EXPECT_POST_ERROR(&srv, path, srv.admin_auth, "{\"note\":\"again\"}", 409, "invalid_request_error",
                      "payment_not_flagged", NULL);
    EXPECT_POST_ERROR(&srv, "/v1/admin/payments/pay_doesnotexist/resolve_review", srv.admin_auth,
                      "{\"note\":\"x\"}", 404, "invalid_request_error", "resource_missing", NULL);
}

/* A webhook repeating a manual payment's status while its capture is on
 * the wire must not swallow the capture's own answer. */
static void test_capturable_webhook_during_a_capture_leaves_the_capture_to_its_answer(void **state)
{
    (void)state;
    char order[64], body[2048];
    new_order(3000, order);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true,\"capture_method\":\"manual\"}",
             order);
    h_resp r;
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    char pay_id[64], ref[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    snprintf(ref, sizeof ref, "%s", h_rstr(&r, "provider_ref"));
    h_resp_free(&r);

    /* The capture is recorded as pending (as while it is on the wire)... */
    char sql[256];
    snprintf(sql, sizeof sql, "UPDATE payments SET pending_op = 'capture', pending_amount = 3000 WHERE id = '%s'", pay_id);
    assert_int_equal(h_sql_exec(srv.db_url, sql), 0);
    /* ...when a late capturable webhook repeats the status. */
    char evt[64];
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 3000};
    mock_event(body, sizeof body, evt, "payment.capturable", &d);
    DELIVER("mock", SECRET, body, evt, "payment.capturable", "ignored");
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND pending_op = 'capture'", pay_id), 1);
}

static int setup(void **state)
{
    h_payd_opts o = {
        .threads = 16,
        .pool = 16,
        .extra = "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = " SECRET "\n"
                 "webhooks = off\n"
                 "settle_ms = 3600000\n"
                 "[gateway.slow]\n"
                 "module = mock\n"
                 "webhook_secret = " SLOW_SECRET "\n"
                 "webhooks = off\n"
                 "latency_ms = 1500\n"
                 "[routing]\n"
                 "default = mock\n",
    };
    return h_group_start(state, &srv, &o);
}

/* ------------------------------------------------------------------------ */
/* Applying events.                                                         */
/* ------------------------------------------------------------------------ */

static void test_signed_payment_succeeded_settles_processing_payment_and_pays_order(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048];
    processing_payment(2599, order, pay_id, ref);
    EXPECT_OBJ_STATUS("orders", order, "payment_pending");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);

    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 2599};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "applied");

    h_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 2599);
    assert_int_equal(h_rbool(&r, "outcome_unknown"), 0);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "paid");
    assert_int_equal(h_rint(&r, "amount_paid"), 2599);
    h_resp_free(&r);

    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 2599);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);
    assert_int_equal(events_of(order, "order.paid"), 1);

    /* The raw event is kept with what it was about and how it ended. */
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE gateway = 'mock' AND provider_event_id = '%s'"
                             " AND event_type = 'payment.succeeded' AND provider_type = 'payment.succeeded'"
                             " AND status = 'applied' AND payment_id = '%s' AND provider_ref = '%s'"
                             " AND amount = 2599 AND currency = 'USD'",
                             evt, pay_id, ref),
                     1);
    char stored[2048];
    sql_str(stored, sizeof stored, "SELECT body FROM webhook_events WHERE provider_event_id = '%s'", evt);
    EXPECT_STR(stored, body);
}

static void test_same_webhook_three_times_is_applied_once_then_duplicate(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048];
    processing_payment(1800, order, pay_id, ref);

    /* Matched by the provider's ref alone, as a real provider would send. */
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .amount = 1800};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    long long dup_before = metric("payd_webhooks_duplicate_total");
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "applied");
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "duplicate");
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "duplicate");

    EXPECT_OBJ_STATUS("payments", pay_id, "succeeded");
    EXPECT_OBJ_STATUS("orders", order, "paid");
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 1800);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE order_id = '%s'", order), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", evt), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'applied'", evt), 1);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);
    assert_int_equal(events_of(order, "order.paid"), 1);
    if (dup_before >= 0) assert_int_equal(metric("payd_webhooks_duplicate_total"), dup_before + 2);
}

/* Redeliveries racing each other: one insert wins, the rest are duplicates. */
#define RACERS 8
typedef struct racer {
    const char *body;
    pthread_barrier_t *start;
    char sig[256];
    long status;
    char outcome[32];
} racer;

static void *race_post(void *arg)
{
    racer *rc = arg;
    const char *headers[] = {rc->sig, NULL};
    h_req req = {.method = "POST", .path = "/v1/webhooks/mock", .content_type = "application/json",
                 .body = rc->body, .headers = headers};
    h_resp r;
    pthread_barrier_wait(rc->start);
    if (h_request_ex(&srv, &req, &r) == 0) {
        rc->status = r.status;
        snprintf(rc->outcome, sizeof rc->outcome, "%s", h_json_str(&r, "status") ? h_json_str(&r, "status") : "");
    }
    h_resp_free(&r);
    return NULL;
}

static void test_concurrent_redeliveries_apply_exactly_once(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048];
    processing_payment(4200, order, pay_id, ref);
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 4200};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);

    racer rs[RACERS];
    pthread_t th[RACERS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].body = body;
        rs[i].start = &start;
        mock_sign(SECRET, (long long)time(NULL), body, rs[i].sig, sizeof rs[i].sig);
        assert_int_equal(pthread_create(&th[i], NULL, race_post, &rs[i]), 0);
    }
    int applied = 0, duplicate = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rs[i].status, 200);
        applied += strcmp(rs[i].outcome, "applied") == 0;
        duplicate += strcmp(rs[i].outcome, "duplicate") == 0;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(applied, 1);
    assert_int_equal(duplicate, RACERS - 1);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 4200);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", evt), 1);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);
    assert_int_equal(events_of(order, "order.paid"), 1);
}

static void test_failed_after_succeeded_is_stale_and_does_not_regress(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], ok_evt[64], fail_evt[64], cancel_evt[64], body[2048];
    processing_payment(3100, order, pay_id, ref);
    new_event_id(ok_evt);
    ev_data ok = {.provider_ref = ref, .payment_id = pay_id, .amount = 3100};
    mock_event(body, sizeof body, ok_evt, "payment.succeeded", &ok);
    DELIVER("mock", SECRET, body, ok_evt, "payment.succeeded", "applied");

    /* Late news of a failure, then of a cancellation: recorded, not applied. */
    new_event_id(fail_evt);
    ev_data bad = {.provider_ref = ref, .payment_id = pay_id, .amount = 3100, .failure_code = "card_declined",
                   .failure_message = "Your card was declined."};
    mock_event(body, sizeof body, fail_evt, "payment.failed", &bad);
    DELIVER("mock", SECRET, body, fail_evt, "payment.failed", "stale");
    new_event_id(cancel_evt);
    ev_data cancel = {.provider_ref = ref, .payment_id = pay_id, .amount = 3100};
    mock_event(body, sizeof body, cancel_evt, "payment.canceled", &cancel);
    DELIVER("mock", SECRET, body, cancel_evt, "payment.canceled", "stale");

    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'"
                             " AND status = 'stale' AND event_type = 'payment.failed' AND payment_id = '%s'"
                             " AND failure_code = 'card_declined' AND note IS NOT NULL",
                             fail_evt, pay_id),
                     1);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'stale'",
                             cancel_evt),
                     1);

    h_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 3100);
    assert_true(json_is_null(h_jpath(r.json, "failure_code")));
    h_resp_free(&r);
    EXPECT_OBJ_STATUS("orders", order, "paid");
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 3100);
    assert_int_equal(events_of(pay_id, "payment.failed"), 0);
    assert_int_equal(events_of(pay_id, "payment.canceled"), 0);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);
    assert_int_equal(events_of(order, "order.paid"), 1);

    /* The stale event redelivered is a duplicate, not a second verdict. */
    mock_event(body, sizeof body, fail_evt, "payment.failed", &bad);
    DELIVER("mock", SECRET, body, fail_evt, "payment.failed", "duplicate");
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", fail_evt), 1);
}

static void test_webhook_for_unknown_payment_is_200_unmatched_and_kept(void **state)
{
    (void)state;
    char evt[64], evt2[64], body[2048], body2[2048];
    long long events_before = sql_int("SELECT count(*) FROM events");
    long long ledger_before = sql_int("SELECT count(*) FROM ledger");

    /* Only a provider ref payd has never seen. */
    new_event_id(evt);
    ev_data d = {.provider_ref = "mock_pi_000000000000000000000abc", .amount = 999};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "unmatched");
    /* A payd id that does not exist. */
    new_event_id(evt2);
    ev_data d2 = {.provider_ref = "mock_pi_000000000000000000000abd", .payment_id = "pay_doesnotexist", .amount = 999};
    mock_event(body2, sizeof body2, evt2, "payment.failed", &d2);
    DELIVER("mock", SECRET, body2, evt2, "payment.failed", "unmatched");

    /* Kept, whole, for later matching. */
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'unmatched'"
                             " AND provider_ref = 'mock_pi_000000000000000000000abc' AND amount = 999 AND note IS NOT NULL",
                             evt),
                     1);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'unmatched'"
                             " AND payment_id = 'pay_doesnotexist'",
                             evt2),
                     1);
    char stored[2048];
    sql_str(stored, sizeof stored, "SELECT body FROM webhook_events WHERE provider_event_id = '%s'", evt);
    EXPECT_STR(stored, body);
    /* ... and nothing was applied anywhere. */
    assert_int_equal(sql_int("SELECT count(*) FROM events"), events_before);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger"), ledger_before);

    /* A redelivery is still a duplicate, and the row stays unmatched. */
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "duplicate");
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'unmatched'",
                             evt),
                     1);

    /* Another gateway's payment is not this gateway's: a mock event naming a
     * payment made on `slow` stays unmatched too. */
    char order[64], pay_id[64], ref[64], evt3[64], body3[2048];
    new_order(700, order);
    pay(order, "pm_card_processing", "slow", 201, "processing", pay_id, ref);
    new_event_id(evt3);
    ev_data d3 = {.provider_ref = ref, .payment_id = pay_id, .amount = 700};
    mock_event(body3, sizeof body3, evt3, "payment.succeeded", &d3);
    DELIVER("mock", SECRET, body3, evt3, "payment.succeeded", "unmatched");
    EXPECT_OBJ_STATUS("payments", pay_id, "processing");
    /* Signed with mock's secret, it is not even valid for slow. */
    char sig[256];
    mock_sign(SECRET, (long long)time(NULL), body3, sig, sizeof sig);
    h_resp r;
    post_webhook("slow", sig, body3, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);
}

static void test_tampered_old_unsigned_or_forged_webhook_is_400_and_stores_nothing(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048], sig[256];
    processing_payment(2700, order, pay_id, ref);
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 2700};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    long long bad_before = metric("payd_webhooks_bad_signature_total");
    long long now = (long long)time(NULL);
    h_resp r;

    /* Tampered: the signature is over the original body. */
    mock_sign(SECRET, now, body, sig, sizeof sig);
    char tampered[2048];
    snprintf(tampered, sizeof tampered, "%s", body);
    char *amount = strstr(tampered, "\"amount\":2700");
    assert_non_null(amount);
    memcpy(amount, "\"amount\":2701", 13);
    post_webhook("mock", sig, tampered, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);
    /* One byte more at the end. */
    char longer[2100];
    snprintf(longer, sizeof longer, "%s ", body);
    post_webhook("mock", sig, longer, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);

    /* Signed with the wrong secret. */
    char forged[256];
    mock_sign("whsec_wrong", now, body, forged, sizeof forged);
    post_webhook("mock", forged, body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);

    /* No signature; an empty one; a malformed one. */
    post_webhook("mock", NULL, body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);
    post_webhook("mock", "Mock-Signature: t=1", body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);

    /* An hour old (tolerance 300 s), correctly signed. */
    char old_sig[256];
    mock_sign(SECRET, now - 3600, body, old_sig, sizeof old_sig);
    post_webhook("mock", old_sig, body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);
    /* An hour in the future. */
    mock_sign(SECRET, now + 3600, body, old_sig, sizeof old_sig);
    post_webhook("mock", old_sig, body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);

    /* A fresh signature, but payd's clock is an hour ahead. */
    post("/v1/test/clock", srv.admin_auth, "{\"offset_ms\":3600000}", &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    mock_sign(SECRET, (long long)time(NULL), body, sig, sizeof sig);
    post_webhook("mock", sig, body, &r);
    long clock_status = r.status;
    const char *code = h_err_code(&r);
    int code_ok = code && strcmp(code, "signature_invalid") == 0;
    h_resp_free(&r);
    post("/v1/test/clock", srv.admin_auth, "{\"offset_ms\":0}", &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    assert_int_equal(clock_status, 400);
    assert_true(code_ok);

    /* Nothing was stored or changed by any of them. */
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", evt), 0);
    EXPECT_OBJ_STATUS("payments", pay_id, "processing");
    EXPECT_OBJ_STATUS("orders", order, "payment_pending");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 0);
    /* Only a counter remembers them. */
    if (bad_before >= 0) assert_int_equal(metric("payd_webhooks_bad_signature_total"), bad_before + 8);

    /* The genuine request, with the clock back, still applies. */
    DELIVER("mock", SECRET, body, evt, "payment.succeeded", "applied");
    EXPECT_OBJ_STATUS("payments", pay_id, "succeeded");
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 2700);
}

static void test_webhook_for_unknown_gateway_is_404(void **state)
{
    (void)state;
    char evt[64], body[2048], sig[256];
    new_event_id(evt);
    ev_data d = {.provider_ref = "mock_pi_x", .amount = 1};
    mock_event(body, sizeof body, evt, "payment.succeeded", &d);
    mock_sign(SECRET, (long long)time(NULL), body, sig, sizeof sig);
    h_resp r;
    post_webhook("nosuchgateway", sig, body, &r);
    EXPECT_STATUS(&r, 404);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", evt), 0);
}

static void test_signed_event_of_unknown_type_is_recorded_as_ignored(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048];
    processing_payment(1500, order, pay_id, ref);
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 1500};
    mock_event(body, sizeof body, evt, "payment.something_new", &d);
    DELIVER("mock", SECRET, body, evt, "ignored", "ignored");
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'ignored'"
                             " AND provider_type = 'payment.something_new'",
                             evt),
                     1);
    EXPECT_OBJ_STATUS("payments", pay_id, "processing");
}

/* ------------------------------------------------------------------------ */
/* Disputes.                                                                */
/* ------------------------------------------------------------------------ */

static void test_dispute_created_marks_payment_disputed_with_chargeback_and_closed_changes_no_status(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], evt2[64], closed[64], body[2048];
    paid_payment(5000, order, pay_id, ref);

    /* A dispute over part of the charge. */
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 1200};
    mock_event(body, sizeof body, evt, "dispute.created", &d);
    DELIVER("mock", SECRET, body, evt, "dispute.created", "applied");
    EXPECT_OBJ_STATUS("payments", pay_id, "disputed");
    EXPECT_LEDGER(&srv, pay_id, "chargeback", 1, 1200);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 5000);
    assert_int_equal(sql_int("SELECT amount_disputed FROM payments WHERE id = '%s'", pay_id), 1200);
    assert_int_equal(events_of(pay_id, "dispute.created"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'applied'", evt), 1);

    /* The redelivery and a second notice of the same dispute add nothing. */
    DELIVER("mock", SECRET, body, evt, "dispute.created", "duplicate");
    new_event_id(evt2);
    mock_event(body, sizeof body, evt2, "dispute.created", &d);
    DELIVER("mock", SECRET, body, evt2, "dispute.created", "ignored");
    EXPECT_LEDGER(&srv, pay_id, "chargeback", 1, 1200);
    assert_int_equal(events_of(pay_id, "dispute.created"), 1);

    /* Closed: recorded and announced; the payment stays disputed. */
    new_event_id(closed);
    mock_event(body, sizeof body, closed, "dispute.closed", &d);
    DELIVER("mock", SECRET, body, closed, "dispute.closed", "applied");
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'"
                             " AND event_type = 'dispute.closed' AND payment_id = '%s'",
                             closed, pay_id),
                     1);
    EXPECT_OBJ_STATUS("payments", pay_id, "disputed");
    EXPECT_LEDGER(&srv, pay_id, "chargeback", 1, 1200);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 2);
    assert_int_equal(events_of(pay_id, "dispute.closed"), 1);
}

static void test_dispute_without_amount_charges_back_everything_captured(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048];
    paid_payment(2300, order, pay_id, ref);
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .amount = -1};
    mock_event(body, sizeof body, evt, "dispute.created", &d);
    DELIVER("mock", SECRET, body, evt, "dispute.created", "applied");
    EXPECT_OBJ_STATUS("payments", pay_id, "disputed");
    EXPECT_LEDGER(&srv, pay_id, "chargeback", 1, 2300);
    /* A failure notice after the dispute does not move it back either. */
    char late[64];
    new_event_id(late);
    ev_data f = {.provider_ref = ref, .amount = 2300, .failure_code = "card_declined"};
    mock_event(body, sizeof body, late, "payment.failed", &f);
    DELIVER("mock", SECRET, body, late, "payment.failed", "stale");
    EXPECT_OBJ_STATUS("payments", pay_id, "disputed");
}

static void test_dispute_on_unpaid_payment_is_stale_and_writes_no_chargeback(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], evt[64], body[2048];
    processing_payment(900, order, pay_id, ref);
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 900};
    mock_event(body, sizeof body, evt, "dispute.created", &d);
    DELIVER("mock", SECRET, body, evt, "dispute.created", "stale");
    EXPECT_OBJ_STATUS("payments", pay_id, "processing");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
    assert_int_equal(events_of(pay_id, "dispute.created"), 0);
}

/* ------------------------------------------------------------------------ */
/* Refunds.                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct refund_call {
    char body[256];
    long status;
    char id[64];
    char refund_status[32];
} refund_call;

static void *refund_thread(void *arg)
{
    refund_call *c = arg;
    h_resp r;
    if (h_post_json(&srv, "/v1/refunds", srv.merchant_auth, NULL, c->body, &r) == 0) {
        c->status = r.status;
        snprintf(c->id, sizeof c->id, "%s", h_json_str(&r, "id") ? h_json_str(&r, "id") : "");
        snprintf(c->refund_status, sizeof c->refund_status, "%s",
                 h_json_str(&r, "status") ? h_json_str(&r, "status") : "");
    }
    h_resp_free(&r);
    return NULL;
}

/* Starts POST /v1/refunds of `amount` of `pay_id` (on `slow`) on thread
 * *th and waits until payd holds it pending; its id goes to refund_id. */
static void start_pending_refund(const char *pay_id, long long amount, refund_call *call, pthread_t *th,
                                 char refund_id[64])
{
    memset(call, 0, sizeof *call);
    snprintf(call->body, sizeof call->body, "{\"payment\":\"%s\",\"amount\":%lld}", pay_id, amount);
    assert_int_equal(pthread_create(th, NULL, refund_thread, call), 0);
    refund_id[0] = '\0';
    int64_t deadline = h_now_ms() + 5000;
    while (!refund_id[0] && h_now_ms() < deadline) {
        sql_str(refund_id, 64, "SELECT id FROM refunds WHERE payment_id = '%s' AND status = 'pending'", pay_id);
        if (!refund_id[0]) h_sleep_ms(20);
    }
    if (!refund_id[0]) {
        pthread_join(*th, NULL);
        fail_msg("no pending refund appeared (the refund answered %ld %s)", call->status, call->refund_status);
    }
}

static void test_refund_webhook_completes_pending_refund_once_before_the_provider_answers(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64];
    new_order(6000, order);
    pay(order, "pm_card_visa", "slow", 201, "succeeded", pay_id, ref);

    /* The provider takes 1.5 s to answer the refund; meanwhile it is pending. */
    refund_call call;
    pthread_t th;
    char refund_id[64];
    start_pending_refund(pay_id, 2000, &call, &th, refund_id);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 2000);

    char evt[64], body[2048];
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 2000, .refund_id = refund_id,
                 .refund_ref = "mock_re_webhook_first"};
    mock_event(body, sizeof body, evt, "refund.succeeded", &d);
    DELIVER("slow", SLOW_SECRET, body, evt, "refund.succeeded", "applied");
    EXPECT_OBJ_STATUS("refunds", refund_id, "succeeded");
    EXPECT_OBJ_STATUS("payments", pay_id, "partially_refunded");
    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 2000);

    /* Then the provider's own answer arrives: the same refund, not a second. */
    pthread_join(th, NULL);
    assert_true(call.status == 200 || call.status == 201);
    EXPECT_STR(call.id, refund_id);
    EXPECT_STR(call.refund_status, "succeeded");
    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 2000);
    h_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rint(&r, "amount_refunded"), 2000);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 0);
    assert_int_equal(events_of(refund_id, "refund.succeeded"), 1);

    /* A late second notice of the same refund is ignored. */
    char evt2[64];
    new_event_id(evt2);
    mock_event(body, sizeof body, evt2, "refund.succeeded", &d);
    DELIVER("slow", SLOW_SECRET, body, evt2, "refund.succeeded", "ignored");
    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 2000);
    assert_int_equal(events_of(refund_id, "refund.succeeded"), 1);
}

/* The refund fails by webhook while the provider's call is in flight, then
 * the call answers success: contradicting news. payd books nothing (refund
 * news arrives out of order) and flags the payment for a person. */
static void test_refund_success_after_its_failure_flags_the_payment_for_review_and_books_nothing(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64];
    new_order(5000, order);
    pay(order, "pm_card_visa", "slow", 201, "succeeded", pay_id, ref);

    refund_call call;
    pthread_t th;
    char refund_id[64];
    start_pending_refund(pay_id, 1800, &call, &th, refund_id);

    char evt[64], body[2048];
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 1800, .refund_id = refund_id};
    mock_event(body, sizeof body, evt, "refund.failed", &d);
    DELIVER("slow", SLOW_SECRET, body, evt, "refund.failed", "applied");
    EXPECT_OBJ_STATUS("refunds", refund_id, "failed");
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 0);

    /* The provider's answer: succeeded. */
    pthread_join(th, NULL);
    EXPECT_STR(call.refund_status, "failed");
    EXPECT_OBJ_STATUS("refunds", refund_id, "failed");
    EXPECT_OBJ_STATUS("payments", pay_id, "succeeded");
    EXPECT_LEDGER(&srv, pay_id, "refund", 0, 0);
    assert_int_equal(sql_int("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND needs_review", pay_id), 1);
    assert_int_equal(events_of(pay_id, "payment.needs_review"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'"
                             " AND action = 'refund.success_after_failure_needs_review'", pay_id),
                     1);

    /* A refund.succeeded webhook says the same again: stale, flagged once. */
    char evt2[64];
    new_event_id(evt2);
    mock_event(body, sizeof body, evt2, "refund.succeeded", &d);
    DELIVER("slow", SLOW_SECRET, body, evt2, "refund.succeeded", "stale");
    EXPECT_LEDGER(&srv, pay_id, "refund", 0, 0);
    assert_int_equal(events_of(pay_id, "payment.needs_review"), 1);
}

/* A refund made in the provider's dashboard, as the mock reports it: the
 * payment's ref and the refund's, no payd refund id. */
static void outside_refund(const char *gateway, const char *secret, const char *ref, const char *re_ref,
                           long long amount, const char *outcome)
{
    char evt[64], body[2048];
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .amount = amount, .refund_ref = re_ref};
    mock_event(body, sizeof body, evt, "refund.succeeded", &d);
    DELIVER(gateway, secret, body, evt, "refund.succeeded", outcome);
}

static void test_refund_made_at_the_provider_is_booked_once_with_ledger_order_and_event(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], re_ref[64], refund_id[64];
    paid_payment(5000, order, pay_id, ref);
    snprintf(re_ref, sizeof re_ref, "mock_re_dash_%lld", (long long)h_now_ms());

    outside_refund("mock", SECRET, ref, re_ref, 1500, "applied");
    sql_str(refund_id, sizeof refund_id,
            "SELECT id FROM refunds WHERE provider_ref = '%s' AND payment_id = '%s' AND status = 'succeeded'"
            " AND amount = 1500 AND currency = 'USD'", re_ref, pay_id);
    assert_true(refund_id[0] != '\0');
    EXPECT_OBJ_STATUS("payments", pay_id, "partially_refunded");
    EXPECT_OBJ_STATUS("orders", order, "partially_refunded");
    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 1500);
    assert_int_equal(sql_int("SELECT amount_refunded FROM orders WHERE id = '%s'", order), 1500);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 0);
    assert_int_equal(events_of(refund_id, "refund.succeeded"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'refund:%s' AND action = 'refund.succeeded'",
                             refund_id), 1);

    /* The same refund told again (Stripe sends charge.refunded and
     * refund.updated) is not a second one. */
    outside_refund("mock", SECRET, ref, re_ref, 1500, "ignored");
    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 1500);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE payment_id = '%s'", pay_id), 1);

    /* What is left is still payd's to refund, and no more. */
    h_resp r;
    char body[128];
    snprintf(body, sizeof body, "{\"payment\":\"%s\"}", pay_id);
    post("/v1/refunds", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    assert_int_equal(h_rint(&r, "amount"), 3500);
    h_resp_free(&r);
    EXPECT_OBJ_STATUS("payments", pay_id, "refunded");
    EXPECT_LEDGER(&srv, pay_id, "refund", 2, 5000);

    /* A refund beyond what was captured cannot be booked: flagged. */
    snprintf(re_ref, sizeof re_ref, "mock_re_dash2_%lld", (long long)h_now_ms());
    outside_refund("mock", SECRET, ref, re_ref, 100, "stale");
    EXPECT_LEDGER(&srv, pay_id, "refund", 2, 5000);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND needs_review", pay_id), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE provider_ref = '%s'", re_ref), 0);
    assert_int_equal(events_of(pay_id, "payment.needs_review"), 1);
}

static void test_refund_made_at_the_provider_in_another_currency_is_flagged_not_booked(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], re_ref[64], evt[64], body[2048];
    paid_payment(3000, order, pay_id, ref);
    snprintf(re_ref, sizeof re_ref, "mock_re_eur_%lld", (long long)h_now_ms());
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .amount = 1000, .refund_ref = re_ref};
    mock_event(body, sizeof body, evt, "refund.succeeded", &d);
    /* The mock's events are USD; make this one EUR. */
    char *usd = strstr(body, "\"USD\"");
    assert_non_null(usd);
    memcpy(usd + 1, "EUR", 3);
    DELIVER("mock", SECRET, body, evt, "refund.succeeded", "stale");
    EXPECT_LEDGER(&srv, pay_id, "refund", 0, 0);
    EXPECT_OBJ_STATUS("payments", pay_id, "succeeded");
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND needs_review", pay_id), 1);
}

static void test_refund_made_at_the_provider_waits_while_a_payd_refund_is_pending_then_is_booked(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64], re_ref[64], refund_id[64];
    new_order(6000, order);
    pay(order, "pm_card_visa", "slow", 201, "succeeded", pay_id, ref);
    refund_call call;
    pthread_t th;
    start_pending_refund(pay_id, 1000, &call, &th, refund_id);

    /* While payd's refund is pending, news of an unknown refund could be
     * that refund's: it is kept, not booked. */
    snprintf(re_ref, sizeof re_ref, "mock_re_wait_%lld", (long long)h_now_ms());
    outside_refund("slow", SLOW_SECRET, ref, re_ref, 700, "unmatched");
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE provider_ref = '%s'", re_ref), 0);

    pthread_join(th, NULL);
    EXPECT_STR(call.refund_status, "succeeded");
    /* Once nothing is pending, the janitor books it. */
    int64_t deadline = h_now_ms() + POLL_MS + 10000;
    while (sql_int("SELECT count(*) FROM refunds WHERE provider_ref = '%s' AND status = 'succeeded'", re_ref) != 1 &&
           h_now_ms() < deadline)
        h_sleep_ms(100);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE provider_ref = '%s' AND status = 'succeeded'", re_ref),
                     1);
    EXPECT_LEDGER(&srv, pay_id, "refund", 2, 1700);
    assert_int_equal(sql_int("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 1700);
    EXPECT_OBJ_STATUS("payments", pay_id, "partially_refunded");
}

static void test_refund_webhook_after_synchronous_refund_is_ignored_without_second_ledger_row(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64];
    paid_payment(4000, order, pay_id, ref);
    h_resp r;
    char body[2048];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1500}", pay_id);
    post("/v1/refunds", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    char refund_id[64];
    snprintf(refund_id, sizeof refund_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    char evt[64];
    new_event_id(evt);
    ev_data d = {.provider_ref = ref, .payment_id = pay_id, .amount = 1500, .refund_id = refund_id};
    mock_event(body, sizeof body, evt, "refund.succeeded", &d);
    DELIVER("mock", SECRET, body, evt, "refund.succeeded", "ignored");
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s' AND status = 'ignored'", evt), 1);

    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 1500);
    EXPECT_OBJ_STATUS("payments", pay_id, "partially_refunded");
    assert_int_equal(sql_int("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 1500);
    assert_int_equal(events_of(refund_id, "refund.succeeded"), 1);

    /* A refund.failed for the finished refund cannot undo it. */
    char evt2[64];
    new_event_id(evt2);
    mock_event(body, sizeof body, evt2, "refund.failed", &d);
    DELIVER("mock", SECRET, body, evt2, "refund.failed", "stale");
    EXPECT_OBJ_STATUS("refunds", refund_id, "succeeded");
    assert_int_equal(sql_int("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 1500);
}

/* ------------------------------------------------------------------------ */
/* The event stream.                                                        */
/* ------------------------------------------------------------------------ */

static void test_events_paginate_with_cursor_and_filter_by_type_and_object(void **state)
{
    (void)state;
    char orders[5][64];
    for (int i = 0; i < 5; i++) new_order(100 + i, orders[i]);
    char pay_id[64], ref[64];
    pay(orders[4], "pm_card_visa", "mock", 201, "succeeded", pay_id, ref);

    /* Walk every event two at a time: in order, no gaps, no repeats. */
    long long total = sql_int("SELECT count(*) FROM events");
    assert_true(total >= 8);
    char after[64] = "";
    long long seen = 0, pages = 0;
    char first_page_ids[2][64] = {"", ""};
    for (;;) {
        char path[256];
        if (after[0]) snprintf(path, sizeof path, "/v1/events?limit=2&starting_after=%s", after);
        else snprintf(path, sizeof path, "/v1/events?limit=2");
        h_resp r;
        get(path, srv.merchant_auth, &r);
        EXPECT_STATUS(&r, 200);
        EXPECT_STR(h_rstr(&r, "object"), "list");
        json_t *data = h_jpath(r.json, "data");
        assert_true(json_is_array(data));
        size_t n = json_array_size(data);
        assert_true(n <= 2);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(data, i);
            const char *id = json_string_value(json_object_get(e, "id"));
            assert_non_null(id);
            assert_int_equal(strncmp(id, "evt_", 4), 0);
            EXPECT_STR(json_string_value(json_object_get(e, "object")), "event");
            assert_non_null(json_string_value(json_object_get(e, "type")));
            assert_true(json_is_integer(json_object_get(e, "created")));
            assert_true(json_is_object(json_object_get(e, "data")));
            /* Cursor order is insertion order (seq). */
            long long pos = sql_int("SELECT count(*) FROM events WHERE seq <= (SELECT seq FROM events WHERE id = '%s')", id);
            assert_int_equal(pos, seen + 1);
            if (pages == 0) snprintf(first_page_ids[i], 64, "%s", id);
            snprintf(after, sizeof after, "%s", id);
            seen++;
        }
        int more = h_rbool(&r, "has_more");
        assert_true(more == 0 || more == 1);
        h_resp_free(&r);
        pages++;
        assert_true(pages <= total);
        if (!more) break;
        assert_int_equal(n, 2);
    }
    assert_int_equal(seen, total);

    /* One page of everything has no more after it, and starts where the walk did. */
    h_resp r;
    char path[256];
    snprintf(path, sizeof path, "/v1/events?limit=%lld", total < 100 ? total : 100);
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    if (total <= 100) assert_int_equal(h_rbool(&r, "has_more"), 0);
    EXPECT_STR(h_rstr(&r, "data.0.id"), first_page_ids[0]);
    EXPECT_STR(h_rstr(&r, "data.1.id"), first_page_ids[1]);
    h_resp_free(&r);

    /* Filters: by type, by object, and both. */
    get("/v1/events?type=order.created&limit=100", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    json_t *data = h_jpath(r.json, "data");
    assert_int_equal((long long)json_array_size(data), sql_int("SELECT count(*) FROM events WHERE type = 'order.created'"));
    for (size_t i = 0; i < json_array_size(data); i++)
        EXPECT_STR(json_string_value(h_jpath(json_array_get(data, i), "type")), "order.created");
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/events?object_id=%s", orders[4]);
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    data = h_jpath(r.json, "data");
    assert_int_equal(json_array_size(data), 2); /* order.created, order.paid */
    EXPECT_STR(json_string_value(h_jpath(json_array_get(data, 0), "type")), "order.created");
    EXPECT_STR(json_string_value(h_jpath(json_array_get(data, 1), "type")), "order.paid");
    for (size_t i = 0; i < 2; i++) {
        EXPECT_STR(json_string_value(h_jpath(json_array_get(data, i), "object_id")), orders[4]);
        EXPECT_STR(json_string_value(h_jpath(json_array_get(data, i), "object_type")), "order");
        EXPECT_STR(json_string_value(h_jpath(json_array_get(data, i), "data.object.id")), orders[4]);
    }
    h_resp_free(&r);
    assert_int_equal(events_of(orders[0], "order.created"), 1);
    assert_int_equal(events_of(orders[0], "order.paid"), 0);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);

    /* Paging inside a filter. */
    snprintf(path, sizeof path, "/v1/events?type=order.created&limit=1&starting_after=%s", first_page_ids[0]);
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 1);
    EXPECT_STR(h_rstr(&r, "data.0.type"), "order.created");
    h_resp_free(&r);

    /* A bad limit is refused. */
    EXPECT_GET_ERROR(&srv, "/v1/events?limit=0", srv.merchant_auth,
                     400, "invalid_request_error", "parameter_invalid", NULL);
    EXPECT_GET_ERROR(&srv, "/v1/events?limit=101", srv.merchant_auth,
                     400, "invalid_request_error", "parameter_invalid", NULL);
}

static void test_an_unknown_cursor_is_400_not_an_empty_page(void **state)
{
    (void)state;
    const char *paths[] = {"/v1/events?starting_after=evt_nosuchevent", "/v1/orders?starting_after=ord_nosuchorder",
                           "/v1/payments?starting_after=pay_nosuchpayment"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        EXPECT_GET_ERROR(&srv, paths[i], srv.merchant_auth,
                         400, "invalid_request_error", "resource_missing", "starting_after");
    }
}

static void test_events_are_for_merchant_and_admin_keys_not_end_users(void **state)
{
    (void)state;
    h_resp r;
    get("/v1/events?limit=1", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    get("/v1/events?limit=1", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    char *jwt = h_jwt_hs256(h_jwt_secret(), "user_events_1", (long long)time(NULL) + 600);
    assert_non_null(jwt);
    char auth[1024];
    snprintf(auth, sizeof auth, "Bearer %s", jwt);
    free(jwt);
    EXPECT_GET_ERROR(&srv, "/v1/events", auth, 403, "permission_error", "insufficient_role", NULL);

    EXPECT_GET_ERROR(&srv, "/v1/events", NULL, 401, "authentication_error", "missing_credentials", NULL);
}

static void test_payd_stops_cleanly_without_sanitizer_reports(void **state)
{
    (void)state;
    assert_int_equal(h_payd_stop(&srv), 0);
    assert_int_equal(h_log_contains(&srv, "AddressSanitizer"), 0);
    assert_int_equal(h_log_contains(&srv, "runtime error:"), 0);
}

int main(void)
{
    if (h_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed_payment_succeeded_settles_processing_payment_and_pays_order),
        cmocka_unit_test(test_same_webhook_three_times_is_applied_once_then_duplicate),
        cmocka_unit_test(test_concurrent_redeliveries_apply_exactly_once),
        cmocka_unit_test(test_failed_after_succeeded_is_stale_and_does_not_regress),
        cmocka_unit_test(test_webhook_for_unknown_payment_is_200_unmatched_and_kept),
        cmocka_unit_test(test_tampered_old_unsigned_or_forged_webhook_is_400_and_stores_nothing),
        cmocka_unit_test(test_webhook_for_unknown_gateway_is_404),
        cmocka_unit_test(test_signed_event_of_unknown_type_is_recorded_as_ignored),
        cmocka_unit_test(test_dispute_created_marks_payment_disputed_with_chargeback_and_closed_changes_no_status),
        cmocka_unit_test(test_dispute_without_amount_charges_back_everything_captured),
        cmocka_unit_test(test_dispute_on_unpaid_payment_is_stale_and_writes_no_chargeback),
        cmocka_unit_test(test_refund_webhook_completes_pending_refund_once_before_the_provider_answers),
        cmocka_unit_test(test_refund_webhook_after_synchronous_refund_is_ignored_without_second_ledger_row),
        cmocka_unit_test(test_refund_success_after_its_failure_flags_the_payment_for_review_and_books_nothing),
        cmocka_unit_test(test_refund_made_at_the_provider_is_booked_once_with_ledger_order_and_event),
        cmocka_unit_test(test_refund_made_at_the_provider_in_another_currency_is_flagged_not_booked),
        cmocka_unit_test(test_refund_made_at_the_provider_waits_while_a_payd_refund_is_pending_then_is_booked),
        cmocka_unit_test(test_success_after_a_decline_is_applied_while_the_order_is_open),
        cmocka_unit_test(test_success_after_a_decline_on_an_order_paid_again_needs_review_and_moves_nothing),
        cmocka_unit_test(test_review_queue_lists_a_flagged_payment_until_an_admin_resolves_it_with_a_note),
        cmocka_unit_test(test_capturable_webhook_during_a_capture_leaves_the_capture_to_its_answer),
        cmocka_unit_test(test_events_paginate_with_cursor_and_filter_by_type_and_object),
        cmocka_unit_test(test_events_are_for_merchant_and_admin_keys_not_end_users),
        cmocka_unit_test(test_an_unknown_cursor_is_400_not_an_empty_page),
        cmocka_unit_test(test_payd_stops_cleanly_without_sanitizer_reports),
    };
    return cmocka_run_group_tests_name("webhooks", tests, setup, h_group_stop);
}
