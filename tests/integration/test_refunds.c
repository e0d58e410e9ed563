/*
 * test_refunds.c - refunds against a real payd, PostgreSQL and the mock
 * gateway: full, partial and several partial refunds, the over-refund and
 * unpaid-payment refusals, listing page by page, and the invariant under
 * concurrency: 50 refunds of 10% each racing on one payment never refund
 * more than was captured, and the ledger reconciles with the payment row
 * afterwards.
 */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)
#define ledger(pay_id, type, count, sum) h_ledger(&srv, (pay_id), (type), (count), (sum))
#define events_of(object_id, type) h_events_of(&srv, (object_id), (type))

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

#define post(path, auth, body, r) h_post_ok(&srv, (path), (auth), (body), (r))
#define get(path, auth, r) h_get_ok(&srv, (path), (auth), (r))

/* A paid order of `total` USD: copies the order and payment ids. */
static void paid_order(long long total, char order[64], char pay_id[64])
{
    char body[256];
    snprintf(body, sizeof body, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Lamp\",\"unit_amount\":%lld}]}", total);
    h_resp r;
    h_create(&srv, "/v1/orders", srv.merchant_auth, body, 201, order);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order);
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), total);
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

/* POST /v1/refunds for `pay_id`: amount < 0 means "no amount" (all). */
static void refund(const char *pay_id, long long amount, const char *extra, h_resp *r)
{
    char body[256];
    if (amount >= 0)
        snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":%lld%s}", pay_id, amount, extra ? extra : "");
    else
        snprintf(body, sizeof body, "{\"payment\":\"%s\"%s}", pay_id, extra ? extra : "");
    post("/v1/refunds", srv.merchant_auth, body, r);
}

/* refund() that expects 201 succeeded with `amount` (or `want` when all). */
static void refund_ok(const char *pay_id, long long amount, long long want)
{
    h_resp r;
    refund(pay_id, amount, NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "object"), "refund");
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    EXPECT_STR(h_rstr(&r, "payment_id"), pay_id);
    assert_int_equal(h_rint(&r, "amount"), want);
    h_resp_free(&r);
}

/* "Bearer <jwt>" for end user `user`, valid for ten minutes. */
static void user_auth(const char *user, char auth[1024])
{
    char *jwt = h_jwt_hs256(h_jwt_secret(), user, (long long)time(NULL) + 600);
    assert_non_null(jwt);
    snprintf(auth, 1024, "Bearer %s", jwt);
    free(jwt);
}

/* The payment and order money state, read back through the API. */
static void expect_money(const char *pay_id, const char *order, const char *pay_status, long long refunded,
                         const char *order_status)
{
    h_resp r;
    char path[160];
    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), pay_status);
    assert_int_equal(h_rint(&r, "amount_refunded"), refunded);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), order_status);
    assert_int_equal(h_rint(&r, "amount_refunded"), refunded);
    h_resp_free(&r);
}

/* The ledger and payment row reconcile: sum(refund rows) = amount_refunded,
 * nothing is left reserved, and the row count is `rows`. */
static void expect_reconciled(const char *pay_id, long long refunded, long long rows)
{
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s' AND entry_type = 'refund'", pay_id),
                     rows);
    assert_int_equal(
        sql_int("SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s' AND entry_type = 'refund'", pay_id),
        refunded);
    assert_int_equal(sql_int("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), refunded);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE payment_id = '%s' AND status = 'pending'", pay_id), 0);
    /* Every refund row in the ledger names its refund. */
    assert_int_equal(sql_int("SELECT count(*) FROM ledger l JOIN refunds f ON f.id = l.refund_id"
                             " WHERE l.payment_id = '%s' AND l.entry_type = 'refund' AND f.status = 'succeeded'"
                             " AND f.amount = l.amount",
                             pay_id),
                     rows);
}

/* ------------------------------------------------------------------------ */
/* Setup.                                                                   */
/* ------------------------------------------------------------------------ */

static int setup(void **state)
{
    h_payd_opts o = {
        .threads = 16,
        .pool = 24,
        .extra = "[payments]\n"
                 "janitor_interval_ms = 100\n"
                 "janitor_schedule = 1,1,1\n"
                 "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_test\n"
                 "settle_ms = 300\n"
                 "[routing]\n"
                 "default = mock\n",
    };
    return h_group_start(state, &srv, &o);
}

/* ------------------------------------------------------------------------ */
/* Tests.                                                                   */
/* ------------------------------------------------------------------------ */

static void test_full_refund_refunds_payment_and_order_with_one_ledger_row(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(5000, order, pay_id);
    h_resp r;
    refund(pay_id, -1, ",\"reason\":\"requested_by_customer\"", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    EXPECT_STR(h_rstr(&r, "reason"), "requested_by_customer");
    EXPECT_STR(h_rstr(&r, "order_id"), order);
    EXPECT_STR(h_rstr(&r, "currency"), "USD");
    assert_int_equal(h_rint(&r, "amount"), 5000);
    char refund_id[64];
    snprintf(refund_id, sizeof refund_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    expect_money(pay_id, order, "refunded", 5000, "refunded");
    expect_reconciled(pay_id, 5000, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE refund_id = '%s' AND amount = 5000", refund_id), 1);

    char path[160];
    snprintf(path, sizeof path, "/v1/refunds/%s", refund_id);
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/events?object_id=%s&type=refund.succeeded", refund_id);
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 1);
    h_resp_free(&r);

    /* Nothing is left to refund: an over-refund, not an unpaid payment. */
    refund(pay_id, 1, NULL, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "amount_too_large", "amount");
    h_resp_free(&r);
    refund(pay_id, -1, NULL, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "amount_too_large", "amount");
    h_resp_free(&r);
}

static void test_partial_refund_leaves_payment_and_order_partially_refunded(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(5000, order, pay_id);
    refund_ok(pay_id, 1500, 1500);
    expect_money(pay_id, order, "partially_refunded", 1500, "partially_refunded");
    expect_reconciled(pay_id, 1500, 1);

    /* A refund without an amount takes what is left. */
    refund_ok(pay_id, -1, 3500);
    expect_money(pay_id, order, "refunded", 5000, "refunded");
    expect_reconciled(pay_id, 5000, 2);
}

static void test_several_partial_refunds_summing_to_the_total_refund_it(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(5000, order, pay_id);
    refund_ok(pay_id, 2000, 2000);
    refund_ok(pay_id, 2000, 2000);
    expect_money(pay_id, order, "partially_refunded", 4000, "partially_refunded");
    refund_ok(pay_id, 1000, 1000);
    expect_money(pay_id, order, "refunded", 5000, "refunded");
    expect_reconciled(pay_id, 5000, 3);

    char path[160];
    snprintf(path, sizeof path, "/v1/refunds?payment_id=%s", pay_id);
    h_resp r;
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 3);
    h_resp_free(&r);
}

static void test_over_refund_is_400_amount_too_large_and_changes_nothing(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(5000, order, pay_id);
    h_resp r;
    refund(pay_id, 5001, NULL, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "amount_too_large", "amount");
    h_resp_free(&r);
    expect_money(pay_id, order, "succeeded", 0, "paid");
    expect_reconciled(pay_id, 0, 0);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE payment_id = '%s'", pay_id), 0);

    refund_ok(pay_id, 4000, 4000);
    refund(pay_id, 1001, NULL, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "amount_too_large", "amount");
    h_resp_free(&r);
    expect_money(pay_id, order, "partially_refunded", 4000, "partially_refunded");
    expect_reconciled(pay_id, 4000, 1);

    refund(pay_id, 0, NULL, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "amount_invalid", "amount");
    h_resp_free(&r);
    refund(pay_id, 10, ",\"reason\":\"because\"", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_invalid", "reason");
    h_resp_free(&r);
    post("/v1/refunds", srv.merchant_auth, "{\"payment\":\"pay_doesnotexist\",\"amount\":10}", &r);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
}

static void test_refund_of_unpaid_payment_is_409(void **state)
{
    (void)state;
    h_resp r;
    /* An authorization not yet captured. */
    post("/v1/orders", srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Held\",\"unit_amount\":900}]}",
         &r);
    EXPECT_STATUS(&r, 201);
    char order[64], body[256], pay_id[64];
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true,\"capture_method\":\"manual\"}",
             order);
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    refund(pay_id, 100, NULL, &r);
    EXPECT_ERROR(&r, 409, "invalid_request_error", "payment_not_refundable", "payment");
    h_resp_free(&r);

    /* A declined payment. */
    post("/v1/orders", srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"No\",\"unit_amount\":900}]}", &r);
    EXPECT_STATUS(&r, 201);
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_chargeDeclined\",\"confirm\":true}",
             order);
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 402);
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "payment.id"));
    h_resp_free(&r);
    refund(pay_id, -1, NULL, &r);
    EXPECT_ERROR(&r, 409, "invalid_request_error", "payment_not_refundable", "payment");
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE order_id = '%s'", order), 0);
}

static void test_end_user_cannot_create_refunds(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(700, order, pay_id);
    char auth[1024], body[128];
    user_auth("refund_user", auth);
    snprintf(body, sizeof body, "{\"payment\":\"%s\"}", pay_id);
    EXPECT_POST_ERROR(&srv, "/v1/refunds", auth, body, 403, "permission_error", "insufficient_role", NULL);
    expect_reconciled(pay_id, 0, 0);
}

static void test_refund_list_pages_with_starting_after_serving_each_refund_once_newest_first(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(1000, order, pay_id);
    for (int i = 0; i < 5; i++) refund_ok(pay_id, 100, 100);

    char ids[8][64], path[128];
    int pages = 0;
    snprintf(path, sizeof path, "/v1/refunds?payment_id=%s", pay_id);
    size_t n = h_list_walk(&srv, path, srv.merchant_auth, ids, 8, &pages);
    assert_int_equal(n, 5);
    assert_int_equal(pages, 3);
    /* Served in the database's newest-first order, each exactly once. */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sql_int("SELECT count(*) FROM refunds r, refunds s WHERE s.id = '%s' AND r.payment_id = '%s'"
                                 " AND (r.created_at, r.id) > (s.created_at, s.id)",
                                 ids[i], pay_id),
                         (long long)i);
    }
}

static void test_refund_list_cursor_that_names_no_visible_refund_is_400_resource_missing(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    paid_order(600, order, pay_id);
    char body[128], refund_id[64];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":200}", pay_id);
    h_create(&srv, "/v1/refunds", srv.merchant_auth, body, 201, refund_id);

    EXPECT_GET_ERROR(&srv, "/v1/refunds?starting_after=re_doesnotexist", srv.merchant_auth, 400, "invalid_request_error",
                     "resource_missing", "starting_after");
    /* An end user cannot page from a refund of someone else's payment. */
    char auth[1024], path[160];
    user_auth("refund_lister", auth);
    snprintf(path, sizeof path, "/v1/refunds?starting_after=%s", refund_id);
    EXPECT_GET_ERROR(&srv, path, auth, 400, "invalid_request_error", "resource_missing", "starting_after");
    /* The merchant can. */
    h_resp r;
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* One racing refund request. */
typedef struct racer {
    pthread_barrier_t *start;
    const char *body;
    h_resp r;
    int rc;
} racer;

static void *racer_main(void *arg)
{
    racer *x = arg;
    pthread_barrier_wait(x->start);
    x->rc = h_post_json(&srv, "/v1/refunds", srv.merchant_auth, NULL, x->body, &x->r);
    return NULL;
}

#define RACERS 50

static void test_fifty_concurrent_ten_percent_refunds_exactly_ten_succeed_and_ledger_reconciles(void **state)
{
    (void)state;
    char order[64], pay_id[64], body[128];
    paid_order(5000, order, pay_id);
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":500}", pay_id);

    static racer racers[RACERS];
    pthread_t threads[RACERS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        memset(&racers[i], 0, sizeof racers[i]);
        racers[i].start = &start;
        racers[i].body = body;
        assert_int_equal(pthread_create(&threads[i], NULL, racer_main, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);

    int created = 0, too_large = 0, other = 0;
    for (int i = 0; i < RACERS; i++) {
        racer *x = &racers[i];
        const char *code = h_err_code(&x->r);
        if (x->rc == 0 && x->r.status == 201 && h_rstr(&x->r, "status") && !strcmp(h_rstr(&x->r, "status"), "succeeded") &&
            h_rint(&x->r, "amount") == 500)
            created++;
        else if (x->rc == 0 && x->r.status == 400 && code && !strcmp(code, "amount_too_large"))
            too_large++;
        else {
            other++;
            print_error("unexpected answer %ld: %s\n", x->r.status, x->r.body ? x->r.body : x->r.error);
        }
    }
    for (int i = 0; i < RACERS; i++) h_resp_free(&racers[i].r);
    assert_int_equal(other, 0);
    assert_int_equal(created, 10);
    assert_int_equal(too_large, 40);

    expect_reconciled(pay_id, 5000, 10);
    assert_int_equal(sql_int("SELECT amount_captured FROM payments WHERE id = '%s'", pay_id), 5000);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE payment_id = '%s'", pay_id), 10);
    expect_money(pay_id, order, "refunded", 5000, "refunded");
    /* The mock refunded exactly what payd recorded. */
    char path[160];
    snprintf(path, sizeof path, "/mock/stats?payment_id=%s", pay_id);
    h_resp r;
    get(path, NULL, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rint(&r, "refunds"), 10);
    h_resp_free(&r);
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
        cmocka_unit_test(test_full_refund_refunds_payment_and_order_with_one_ledger_row),
        cmocka_unit_test(test_partial_refund_leaves_payment_and_order_partially_refunded),
        cmocka_unit_test(test_several_partial_refunds_summing_to_the_total_refund_it),
        cmocka_unit_test(test_over_refund_is_400_amount_too_large_and_changes_nothing),
        cmocka_unit_test(test_refund_of_unpaid_payment_is_409),
        cmocka_unit_test(test_end_user_cannot_create_refunds),
        cmocka_unit_test(test_refund_list_pages_with_starting_after_serving_each_refund_once_newest_first),
        cmocka_unit_test(test_refund_list_cursor_that_names_no_visible_refund_is_400_resource_missing),
        cmocka_unit_test(test_fifty_concurrent_ten_percent_refunds_exactly_ten_succeed_and_ledger_reconciles),
        cmocka_unit_test(test_payd_stops_cleanly_without_sanitizer_reports),
    };
    return cmocka_run_group_tests_name("refunds", tests, setup, h_group_stop);
}
