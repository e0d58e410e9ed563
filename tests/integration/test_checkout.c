/*
 * test_checkout.c - the checkout against a real payd, PostgreSQL, Redis and
 * the mock gateway: orders (validation, listing, cancel, fulfilment,
 * numbers, currencies), payments (success, declines, 3-D Secure, delayed
 * settlement, manual and partial capture, cancel), the ledger and event
 * rows each step writes, signed webhooks, and unknown outcomes that the
 * janitor resolves without a second charge.
 *
 * Gateway instances:
 *   mock   webhooks on, settle_ms 300: the ordinary asynchronous provider;
 *   quiet  webhooks off: only the janitor (or a test-signed webhook) can
 *          finish a payment, so the synchronous answers are deterministic;
 *   flaky  webhooks off, timeout_rate 1.0: every response is lost.
 */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <regex.h>
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

#define POLL_MS 10000

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)
#define ledger(pay_id, type, count, sum) h_ledger(&srv, (pay_id), (type), (count), (sum))
#define events_of(object_id, type) h_events_of(&srv, (object_id), (type))

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

#define post(path, auth, body, r) h_post_ok(&srv, (path), (auth), (body), (r))
#define get(path, auth, r) h_get_ok(&srv, (path), (auth), (r))

/* POST /v1/orders with `body`; expects 201 and copies the id. */
static void order_from(const char *auth, const char *body, char id[64])
{
    h_create(&srv, "/v1/orders", auth, body, 201, id);
}

/* An order of `qty` x `unit` in `currency`, by the merchant key. */
static void order_simple(const char *currency, long long unit, int qty, char id[64])
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"currency\":\"%s\",\"items\":[{\"name\":\"Widget\",\"quantity\":%d,\"unit_amount\":%lld}]}",
             currency, qty, unit);
    order_from(srv.merchant_auth, body, id);
}

/* POST /v1/payments for `order` with a confirmed payment method and
 * optional extra members (",\"capture_method\":\"manual\""). */
static void pay(const char *order, const char *method, const char *extra, h_resp *r)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true%s}", order,
             method, extra ? extra : "");
    post("/v1/payments", srv.merchant_auth, body, r);
}

/* pay() that expects `status` and copies the payment id. */
static void pay_ok(const char *order, const char *method, const char *extra, long status, char id[64])
{
    h_resp r;
    pay(order, method, extra, &r);
    EXPECT_STATUS(&r, status);
    assert_non_null(h_rstr(&r, "id"));
    snprintf(id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

static void get_obj(const char *kind, const char *id, h_resp *r)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/%s/%s", kind, id);
    get(path, srv.admin_auth, r);
    EXPECT_STATUS(r, 200);
}

/* The status string of an order or payment. */
#define obj_status(kind, id, out) h_status_of(&srv, (kind), (id), (out))

/* Polls GET /v1/payments/ID until its status is `want` (at most POLL_MS);
 * fails naming the last status. */
#define EXPECT_PAYMENT_REACHES(id, want) EXPECT_REACHES(&srv, "payments", (id), (want), POLL_MS)

#define EXPECT_ORDER_STATUS(id, want)         \
    do {                                      \
        char st_[40];                         \
        obj_status("orders", (id), st_);      \
        EXPECT_STR(st_, (want));              \
    } while (0)

/* The mock's counters for a payment. */
static void mock_stats(const char *pay_id, long long *intents, long long *create_calls)
{
    char path[160];
    snprintf(path, sizeof path, "/mock/stats?payment_id=%s", pay_id);
    h_resp r;
    get(path, NULL, &r);
    EXPECT_STATUS(&r, 200);
    *intents = h_rint(&r, "intents_created");
    *create_calls = h_rint(&r, "create_calls");
    h_resp_free(&r);
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
                 "janitor_max_attempts = 3\n"
                 "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_test\n"
                 "settle_ms = 300\n"
                 "[gateway.quiet]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_quiet\n"
                 "webhooks = off\n"
                 "settle_ms = 3600000\n"
                 "[gateway.lost]\n"
                 "module = mock\n"
                 "webhooks = off\n"
                 "settle_ms = 300\n"
                 "[gateway.flaky]\n"
                 "module = mock\n"
                 "webhooks = off\n"
                 "timeout_rate = 1.0\n"
                 "[routing]\n"
                 "default = mock\n",
    };
    return h_group_start(state, &srv, &o);
}

/* ------------------------------------------------------------------------ */
/* Payments.                                                                */
/* ------------------------------------------------------------------------ */

static void test_happy_path_pays_order_writes_charge_row_and_events(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    h_resp r;
    post("/v1/orders", srv.merchant_auth,
         "{\"currency\":\"USD\",\"items\":[{\"name\":\"Mug\",\"quantity\":2,\"unit_amount\":1500}],"
         "\"tax\":200,\"shipping\":500,\"subtotal\":3000,\"total\":3700,\"customer_email\":\"a@example.com\"}",
         &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "pending");
    EXPECT_STR(h_rstr(&r, "currency"), "USD");
    assert_int_equal(h_rint(&r, "subtotal"), 3000);
    assert_int_equal(h_rint(&r, "total"), 3700);
    assert_int_equal(h_rint(&r, "items.0.amount"), 3000);
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    pay(order, "pm_card_visa", NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    EXPECT_STR(h_rstr(&r, "order_id"), order);
    EXPECT_STR(h_rstr(&r, "gateway"), "mock");
    assert_int_equal(h_rint(&r, "amount"), 3700);
    assert_int_equal(h_rint(&r, "amount_captured"), 3700);
    assert_int_equal(h_rint(&r, "amount_capturable"), 0);
    assert_int_equal(h_rbool(&r, "outcome_unknown"), 0);
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    get_obj("orders", order, &r);
    EXPECT_STR(h_rstr(&r, "status"), "paid");
    assert_int_equal(h_rint(&r, "amount_paid"), 3700);
    h_resp_free(&r);

    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 3700);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE order_id = '%s'", order), 1);

    assert_int_equal(events_of(order, "order.created"), 1);
    assert_int_equal(events_of(order, "order.paid"), 1);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);

    /* Charged at most once: a paid order takes no second payment. */
    pay(order, "pm_card_visa", NULL, &r);
    EXPECT_ERROR(&r, 409, "invalid_request_error", "order_not_payable", "order");
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE order_id = '%s'", order), 1);
}

static void test_declined_card_is_402_card_declined_and_order_can_be_paid_again(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    order_simple("USD", 2500, 1, order);
    h_resp r;
    pay(order, "pm_card_chargeDeclined", NULL, &r);
    EXPECT_ERROR(&r, 402, "card_error", "card_declined", "payment_method");
    EXPECT_STR(h_rstr(&r, "payment.status"), "failed");
    EXPECT_STR(h_rstr(&r, "payment.failure_code"), "card_declined");
    EXPECT_STR(h_rstr(&r, "payment.order_id"), order);
    assert_int_equal(h_rint(&r, "payment.amount_captured"), 0);
    char failed_id[64];
    snprintf(failed_id, sizeof failed_id, "%s", h_rstr(&r, "payment.id"));
    h_resp_free(&r);

    EXPECT_ORDER_STATUS(order, "pending");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE order_id = '%s'", order), 0);
    assert_int_equal(events_of(failed_id, "payment.failed"), 1);

    pay_ok(order, "pm_card_visa", NULL, 201, pay_id);
    assert_string_not_equal(pay_id, failed_id);
    EXPECT_ORDER_STATUS(order, "paid");
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 2500);
}

static void test_insufficient_funds_and_expired_card_decline_with_their_codes(void **state)
{
    (void)state;
    static const struct {
        const char *method, *code;
    } cases[] = {{"pm_card_insufficientFunds", "insufficient_funds"}, {"pm_card_expired", "expired_card"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char order[64];
        order_simple("EUR", 999, 1, order);
        h_resp r;
        pay(order, cases[i].method, NULL, &r);
        EXPECT_ERROR(&r, 402, "card_error", cases[i].code, "payment_method");
        EXPECT_STR(h_rstr(&r, "payment.status"), "failed");
        EXPECT_STR(h_rstr(&r, "payment.failure_code"), cases[i].code);
        h_resp_free(&r);
        EXPECT_ORDER_STATUS(order, "pending");
    }
}

/* Starts a 3-D Secure payment; copies its id and the challenge path. */
static void start_3ds(const char *order, char pay_id[64], char page[256])
{
    h_resp r;
    pay(order, "pm_card_threeDSecure2Required", ",\"return_url\":\"https://shop.example/return?cart=7\"", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "redirect_url");
    const char *url = h_rstr(&r, "next_action.url");
    assert_non_null(url);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s/mock/3ds/mock_pi_", srv.base_url);
    if (strncmp(url, prefix, strlen(prefix)) != 0) {
        print_error("next_action.url %s does not start with %s\n", url, prefix);
        fail();
    }
    snprintf(page, 256, "%s", url + strlen(srv.base_url));
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    EXPECT_ORDER_STATUS(order, "payment_pending");

    get(page, NULL, &r);
    EXPECT_STATUS(&r, 200);
    const char *ct = h_resp_header(&r, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "text/html"));
    assert_non_null(strstr(r.body, "value=\"approve\""));
    assert_non_null(strstr(r.body, "value=\"fail\""));
    h_resp_free(&r);
}

/* POSTs the challenge form; expects 303 back to the return_url. */
static void answer_3ds(const char *page, const char *action, const char *redirect_status)
{
    char body[64];
    snprintf(body, sizeof body, "action=%s", action);
    h_resp r;
    assert_int_equal(h_request(&srv, "POST", page, NULL, NULL, "application/x-www-form-urlencoded", body, &r), 0);
    EXPECT_STATUS(&r, 303);
    const char *loc = h_resp_header(&r, "Location");
    assert_non_null(loc);
    const char *want = "https://shop.example/return?cart=7&payment_intent=mock_pi_";
    if (strncmp(loc, want, strlen(want)) != 0) {
        print_error("Location %s does not start with %s\n", loc, want);
        fail();
    }
    char rs[64];
    snprintf(rs, sizeof rs, "redirect_status=%s", redirect_status);
    assert_non_null(strstr(loc, rs));
    h_resp_free(&r);
}

static void test_3ds_approve_redirects_to_return_url_and_succeeds_via_webhook(void **state)
{
    (void)state;
    char order[64], pay_id[64], page[256];
    order_simple("USD", 4200, 1, order);
    start_3ds(order, pay_id, page);
    answer_3ds(page, "approve", "succeeded");
    EXPECT_PAYMENT_REACHES(pay_id, "succeeded");
    EXPECT_ORDER_STATUS(order, "paid");
    /* It was the mock's signed webhook that moved it. */
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE gateway = 'mock' AND payment_id = '%s'"
                             " AND event_type = 'payment.succeeded' AND status = 'applied'",
                             pay_id),
                     1);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 4200);

    /* The challenge is over. */
    h_resp r;
    get(page, NULL, &r);
    EXPECT_STATUS(&r, 409);
    h_resp_free(&r);
}

static void test_3ds_fail_ends_failed_with_authentication_required(void **state)
{
    (void)state;
    char order[64], pay_id[64], page[256];
    order_simple("USD", 4300, 1, order);
    start_3ds(order, pay_id, page);
    answer_3ds(page, "fail", "failed");
    EXPECT_PAYMENT_REACHES(pay_id, "failed");
    h_resp r;
    get_obj("payments", pay_id, &r);
    EXPECT_STR(h_rstr(&r, "failure_code"), "authentication_required");
    assert_int_equal(h_rint(&r, "amount_captured"), 0);
    h_resp_free(&r);
    EXPECT_ORDER_STATUS(order, "pending");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
}

static void test_processing_card_settles_to_succeeded_via_webhook(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    order_simple("USD", 1234, 1, order);
    h_resp r;
    pay(order, "pm_card_processing", NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_int_equal(h_rint(&r, "amount_captured"), 0);
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    EXPECT_PAYMENT_REACHES(pay_id, "succeeded");
    EXPECT_ORDER_STATUS(order, "paid");
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE gateway = 'mock' AND payment_id = '%s'"
                             " AND event_type = 'payment.succeeded' AND status = 'applied'",
                             pay_id),
                     1);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 1234);
}

/* A manual authorization of a 5000 USD order; copies order and payment. */
/* The provider settles but its webhook never comes: the janitor asks. */
static void test_processing_payment_whose_webhook_is_lost_is_settled_by_the_janitor(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    order_simple("USD", 1500, 1, order);
    pay_ok(order, "pm_card_processing", ",\"gateway\":\"lost\"", 201, pay_id);
    EXPECT_PAYMENT_REACHES(pay_id, "succeeded");
    EXPECT_ORDER_STATUS(order, "paid");
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 1500);
}

static void authorize_5000(char order[64], char pay_id[64])
{
    order_simple("USD", 2500, 2, order);
    h_resp r;
    pay(order, "pm_card_visa", ",\"capture_method\":\"manual\"", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    EXPECT_STR(h_rstr(&r, "capture_method"), "manual");
    assert_int_equal(h_rint(&r, "amount_capturable"), 5000);
    assert_int_equal(h_rint(&r, "amount_captured"), 0);
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
}

static void test_manual_capture_then_partial_capture_releases_the_rest(void **state)
{
    (void)state;
    char order[64], pay_id[64], path[160];
    authorize_5000(order, pay_id);
    EXPECT_ORDER_STATUS(order, "payment_pending");

    snprintf(path, sizeof path, "/v1/payments/%s/capture", pay_id);
    h_resp r;
    post(path, srv.merchant_auth, "{\"amount\":3000}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 3000);
    assert_int_equal(h_rint(&r, "amount_capturable"), 0);
    assert_int_equal(h_rint(&r, "amount"), 5000);
    h_resp_free(&r);

    EXPECT_LEDGER(&srv, pay_id, "capture", 1, 3000);
    EXPECT_LEDGER(&srv, pay_id, "charge", 0, 0);

    get_obj("orders", order, &r);
    EXPECT_STR(h_rstr(&r, "status"), "paid");
    assert_int_equal(h_rint(&r, "amount_paid"), 3000);
    h_resp_free(&r);

    /* The mock's late payment.succeeded webhook changes nothing. */
    h_sleep_ms(500);
    get_obj("payments", pay_id, &r);
    assert_int_equal(h_rint(&r, "amount_captured"), 3000);
    h_resp_free(&r);
    EXPECT_LEDGER(&srv, pay_id, "capture", 1, 3000);

    /* Nothing left to capture. */
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, "{\"amount\":1000}",
                      409, "invalid_request_error", "payment_unexpected_state", NULL);
}

static void test_capture_above_capturable_is_400_amount_too_large(void **state)
{
    (void)state;
    char order[64], pay_id[64], path[160];
    authorize_5000(order, pay_id);
    snprintf(path, sizeof path, "/v1/payments/%s/capture", pay_id);
    h_resp r;
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, "{\"amount\":5001}",
                      400, "invalid_request_error", "amount_too_large", "amount");
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, "{\"amount\":0}",
                      400, "invalid_request_error", "amount_invalid", "amount");

    get_obj("payments", pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    assert_int_equal(h_rint(&r, "amount_capturable"), 5000);
    h_resp_free(&r);

    /* Capturing everything (no amount) still works afterwards. */
    post(path, srv.merchant_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 5000);
    h_resp_free(&r);
    EXPECT_LEDGER(&srv, pay_id, "capture", 1, 5000);
}

static void test_cancel_of_manual_authorization_cancels_and_reopens_order(void **state)
{
    (void)state;
    char order[64], pay_id[64], path[160];
    authorize_5000(order, pay_id);
    snprintf(path, sizeof path, "/v1/payments/%s/cancel", pay_id);
    h_resp r;
    post(path, srv.merchant_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "canceled");
    assert_int_equal(h_rint(&r, "amount_capturable"), 0);
    assert_int_equal(h_rint(&r, "amount_captured"), 0);
    h_resp_free(&r);
    EXPECT_ORDER_STATUS(order, "pending");
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
    assert_int_equal(events_of(pay_id, "payment.canceled"), 1);

    /* A canceled payment cannot be captured, and the order can be paid. */
    snprintf(path, sizeof path, "/v1/payments/%s/capture", pay_id);
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, NULL,
                      409, "invalid_request_error", "payment_unexpected_state", NULL);
    char again[64];
    pay_ok(order, "pm_card_visa", NULL, 201, again);
    EXPECT_ORDER_STATUS(order, "paid");
}

/* ------------------------------------------------------------------------ */
/* Orders.                                                                  */
/* ------------------------------------------------------------------------ */

static void test_order_total_mismatch_is_400_total_mismatch(void **state)
{
    (void)state;
    h_resp r;
    post("/v1/orders", srv.merchant_auth,
         "{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"quantity\":3,\"unit_amount\":100}],"
         "\"tax\":10,\"total\":309}",
         &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "total_mismatch", "total");
    h_resp_free(&r);
    post("/v1/orders", srv.merchant_auth,
         "{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"quantity\":3,\"unit_amount\":100}],"
         "\"tax\":10,\"total\":310}",
         &r);
    EXPECT_STATUS(&r, 201);
    assert_int_equal(h_rint(&r, "total"), 310);
    h_resp_free(&r);
}

static void test_order_unknown_currency_is_400_param_currency(void **state)
{
    (void)state;
    static const char *const bad[] = {"XXX", "US", "USDX", "12A", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"currency\":\"%s\",\"items\":[{\"name\":\"A\",\"unit_amount\":100}]}", bad[i]);
        EXPECT_POST_ERROR(&srv, "/v1/orders", srv.merchant_auth, body,
                          400, "invalid_request_error", "currency_invalid", "currency");
    }
    h_resp r;
    post("/v1/orders", srv.merchant_auth, "{\"items\":[{\"name\":\"A\",\"unit_amount\":100}]}", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_missing", "currency");
    h_resp_free(&r);
}

static void test_order_negative_zero_and_too_large_amounts_name_the_field(void **state)
{
    (void)state;
    static const struct {
        const char *body, *code, *param;
    } cases[] = {
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":-1}]}", "amount_invalid",
         "items.0.unit_amount"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100},{\"name\":\"B\",\"unit_amount\":0}]}",
         "amount_invalid", "items.1.unit_amount"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100000001}]}", "amount_too_large",
         "items.0.unit_amount"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":\"100\"}]}",
         "parameter_invalid_integer", "items.0.unit_amount"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\"}]}", "parameter_missing", "items.0.unit_amount"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100}],\"tax\":-5}", "amount_invalid",
         "tax"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100}],\"shipping\":-1}",
         "amount_invalid", "shipping"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100}],\"shipping\":100000001}",
         "amount_too_large", "shipping"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"quantity\":1000,\"unit_amount\":1000000}]}",
         "amount_too_large", "items"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":99999999}],\"tax\":2}",
         "amount_too_large", "total"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"quantity\":0,\"unit_amount\":100}]}",
         "parameter_invalid", "items.0.quantity"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"\",\"unit_amount\":100}]}", "parameter_invalid",
         "items.0.name"},
        {"{\"currency\":\"USD\",\"items\":[]}", "parameter_invalid", "items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        post("/v1/orders", srv.merchant_auth, cases[i].body, &r);
        if (r.status != 400) print_error("case %zu: %s\n", i, cases[i].body);
        EXPECT_ERROR(&r, 400, "invalid_request_error", cases[i].code, cases[i].param);
        h_resp_free(&r);
    }
    /* The maximum itself is accepted. */
    h_resp r;
    post("/v1/orders", srv.merchant_auth,
         "{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100000000}]}", &r);
    EXPECT_STATUS(&r, 201);
    assert_int_equal(h_rint(&r, "total"), 100000000);
    h_resp_free(&r);
}

static void test_order_unknown_parameter_is_400_parameter_unknown(void **state)
{
    (void)state;
    h_resp r;
    post("/v1/orders", srv.merchant_auth,
         "{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":100}],\"discount\":50}", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_unknown", "discount");
    h_resp_free(&r);
    char order[64];
    order_simple("USD", 100, 1, order);
    char body[256];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"tip\":1}", order);
    EXPECT_POST_ERROR(&srv, "/v1/payments", srv.merchant_auth, body,
                      400, "invalid_request_error", "parameter_unknown", "tip");
    EXPECT_ORDER_STATUS(order, "pending");
}

/* Follows the cursor through /v1/orders?QUERY with limit 2; collects ids. */
static size_t list_all(const char *query, char ids[][64], size_t max, int *pages)
{
    char path[512];
    snprintf(path, sizeof path, "/v1/orders?%s", query);
    return h_list_walk(&srv, path, srv.merchant_auth, ids, max, pages);
}

static void test_order_list_paginates_with_cursor_and_filters_by_status(void **state)
{
    (void)state;
    char user[48], made[5][64];
    snprintf(user, sizeof user, "lister_%lld", (long long)h_now_ms());
    for (int i = 0; i < 5; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"currency\":\"USD\",\"user_id\":\"%s\",\"items\":[{\"name\":\"N%d\",\"unit_amount\":%d}]}",
                 user, i, 100 + i);
        order_from(srv.merchant_auth, body, made[i]);
    }
    char path[160];
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", made[1]);
    h_resp r;
    post(path, srv.merchant_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    char query[128], ids[10][64];
    int pages;
    snprintf(query, sizeof query, "user_id=%s", user);
    size_t n = list_all(query, ids, 10, &pages);
    assert_int_equal(n, 5);
    assert_int_equal(pages, 3);
    /* Newest first, each exactly once. */
    for (int i = 0; i < 5; i++) assert_string_equal(ids[i], made[4 - i]);

    snprintf(query, sizeof query, "user_id=%s&status=cancelled", user);
    n = list_all(query, ids, 10, &pages);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], made[1]);
    snprintf(query, sizeof query, "user_id=%s&status=pending", user);
    n = list_all(query, ids, 10, &pages);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) assert_string_not_equal(ids[i], made[1]);

    EXPECT_GET_ERROR(&srv, "/v1/orders?limit=0", srv.merchant_auth,
                     400, "invalid_request_error", "parameter_invalid", "limit");
    EXPECT_GET_ERROR(&srv, "/v1/orders?limit=101", srv.merchant_auth,
                     400, "invalid_request_error", "parameter_invalid", "limit");
}

static void test_order_cancel_only_while_pending(void **state)
{
    (void)state;
    char order[64], paid[64], pay_id[64], path[160];
    order_simple("USD", 700, 1, order);
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
    h_resp r;
    post(path, srv.merchant_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "cancelled");
    h_resp_free(&r);
    assert_int_equal(events_of(order, "order.cancelled"), 1);
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, NULL,
                      409, "invalid_request_error", "order_already_cancelled", NULL);
    /* A cancelled order takes no payment. */
    pay(order, "pm_card_visa", NULL, &r);
    EXPECT_ERROR(&r, 409, "invalid_request_error", "order_not_payable", "order");
    h_resp_free(&r);

    order_simple("USD", 800, 1, paid);
    pay_ok(paid, "pm_card_visa", NULL, 201, pay_id);
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", paid);
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, NULL, 409, "invalid_request_error", "order_not_cancellable", NULL);
    EXPECT_ORDER_STATUS(paid, "paid");

    /* Nor while a payment is in progress (an open authorization). */
    char held[64];
    authorize_5000(order, held);
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", order);
    EXPECT_POST_ERROR(&srv, path, srv.merchant_auth, NULL, 409, "invalid_request_error", "order_not_cancellable", NULL);

    EXPECT_POST_ERROR(&srv, "/v1/orders/ord_doesnotexist/cancel", srv.merchant_auth, NULL,
                      404, "invalid_request_error", "resource_missing", NULL);
}

static void patch_fulfilment(const char *order, const char *status, h_resp *r)
{
    char path[160], body[128];
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    snprintf(body, sizeof body, "{\"fulfilment_status\":\"%s\"}", status);
    assert_int_equal(h_request(&srv, "PATCH", path, srv.merchant_auth, NULL, "application/json", body, r), 0);
}

static void test_fulfilment_moves_forward_only_and_only_after_payment(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    order_simple("USD", 1500, 1, order);
    h_resp r;
    patch_fulfilment(order, "processing", &r);
    EXPECT_ERROR(&r, 409, "invalid_request_error", "order_not_paid", "fulfilment_status");
    h_resp_free(&r);
    /* Refused means unchanged. */
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE id = '%s' AND fulfilment_status = 'unfulfilled'", order), 1);

    pay_ok(order, "pm_card_visa", NULL, 201, pay_id);
    static const char *const forward[] = {"processing", "shipped", "delivered"};
    for (int i = 0; i < 3; i++) {
        patch_fulfilment(order, forward[i], &r);
        EXPECT_STATUS(&r, 200);
        EXPECT_STR(h_rstr(&r, "fulfilment_status"), forward[i]);
        EXPECT_STR(h_rstr(&r, "status"), "paid");
        h_resp_free(&r);
    }
    patch_fulfilment(order, "shipped", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "invalid_transition", "fulfilment_status");
    h_resp_free(&r);
    patch_fulfilment(order, "processing", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "invalid_transition", "fulfilment_status");
    h_resp_free(&r);
    patch_fulfilment(order, "unfulfilled", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_invalid", "fulfilment_status");
    h_resp_free(&r);
    get_obj("orders", order, &r);
    EXPECT_STR(h_rstr(&r, "fulfilment_status"), "delivered");
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE id = '%s' AND fulfilment_status = 'delivered'", order), 1);
    assert_int_equal(events_of(order, "order.fulfilment_updated"), 3);

    /* Skipping ahead is forward too. */
    char other[64], other_pay[64];
    order_simple("USD", 1600, 1, other);
    pay_ok(other, "pm_card_visa", NULL, 201, other_pay);
    patch_fulfilment(other, "shipped", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "fulfilment_status"), "shipped");
    h_resp_free(&r);
    patch_fulfilment(other, "processing", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "invalid_transition", "fulfilment_status");
    h_resp_free(&r);
}

static void test_order_numbers_look_like_ord_year_sequence_and_are_unique(void **state)
{
    (void)state;
    regex_t re;
    assert_int_equal(regcomp(&re, "^ORD-[0-9]{4}-[0-9]{6}$", REG_EXTENDED | REG_NOSUB), 0);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char year[16];
    snprintf(year, sizeof year, "ORD-%04d-", tm.tm_year + 1900);
    char numbers[8][32];
    for (int i = 0; i < 8; i++) {
        h_resp r;
        post("/v1/orders", srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"N\",\"unit_amount\":1}]}",
             &r);
        EXPECT_STATUS(&r, 201);
        const char *num = h_rstr(&r, "number");
        assert_non_null(num);
        if (regexec(&re, num, 0, NULL, 0) != 0) {
            print_error("order number %s does not look like ORD-YYYY-NNNNNN\n", num);
            regfree(&re);
            fail();
        }
        assert_int_equal(strncmp(num, year, strlen(year)), 0);
        snprintf(numbers[i], sizeof numbers[i], "%s", num);
        h_resp_free(&r);
        for (int j = 0; j < i; j++) assert_string_not_equal(numbers[i], numbers[j]);
    }
    regfree(&re);
    assert_int_equal(sql_int("SELECT count(*) - count(DISTINCT number) FROM orders"), 0);
}

static void test_jpy_and_kwd_keep_exact_integer_minor_units(void **state)
{
    (void)state;
    static const struct {
        const char *currency_in, *currency;
        long long unit;
        int qty;
        long long tax, total;
    } cases[] = {
        {"JPY", "JPY", 1999, 3, 0, 5997},
        {"jpy", "JPY", 1, 1, 0, 1},
        {"KWD", "KWD", 12345, 1, 7, 12352},
        {"KRW", "KRW", 50000, 2, 0, 100000},
        {"BHD", "BHD", 1001, 1, 1, 1002},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[512], order[64], pay_id[64];
        snprintf(body, sizeof body,
                 "{\"currency\":\"%s\",\"items\":[{\"name\":\"Tea\",\"quantity\":%d,\"unit_amount\":%lld}],"
                 "\"tax\":%lld}",
                 cases[i].currency_in, cases[i].qty, cases[i].unit, cases[i].tax);
        h_resp r;
        post("/v1/orders", srv.merchant_auth, body, &r);
        EXPECT_STATUS(&r, 201);
        EXPECT_STR(h_rstr(&r, "currency"), cases[i].currency);
        assert_int_equal(h_rint(&r, "total"), cases[i].total);
        snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
        h_resp_free(&r);

        pay(order, "pm_card_visa", NULL, &r);
        EXPECT_STATUS(&r, 201);
        EXPECT_STR(h_rstr(&r, "status"), "succeeded");
        EXPECT_STR(h_rstr(&r, "currency"), cases[i].currency);
        assert_int_equal(h_rint(&r, "amount"), cases[i].total);
        assert_int_equal(h_rint(&r, "amount_captured"), cases[i].total);
        snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
        h_resp_free(&r);

        EXPECT_LEDGER(&srv, pay_id, "charge", 1, cases[i].total);
        assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s' AND currency = '%s'", pay_id,
                                 cases[i].currency),
                         1);
        get_obj("orders", order, &r);
        assert_int_equal(h_rint(&r, "amount_paid"), cases[i].total);
        h_resp_free(&r);
    }
}

/* ------------------------------------------------------------------------ */
/* Unknown outcomes and webhooks.                                           */
/* ------------------------------------------------------------------------ */

static void test_lost_response_is_202_outcome_unknown_then_janitor_resolves_without_second_charge(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    order_simple("USD", 3100, 1, order);
    h_resp r;
    pay(order, "pm_card_timeout", ",\"gateway\":\"quiet\"", &r);
    EXPECT_STATUS(&r, 202);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    EXPECT_STR(h_rstr(&r, "gateway"), "quiet");
    assert_int_equal(h_rbool(&r, "outcome_unknown"), 1);
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    EXPECT_ORDER_STATUS(order, "payment_pending");

    EXPECT_PAYMENT_REACHES(pay_id, "succeeded");
    get_obj("payments", pay_id, &r);
    assert_int_equal(h_rbool(&r, "outcome_unknown"), 0);
    assert_int_equal(h_rint(&r, "amount_captured"), 3100);
    h_resp_free(&r);
    EXPECT_ORDER_STATUS(order, "paid");

    long long intents, calls;
    mock_stats(pay_id, &intents, &calls);
    assert_int_equal(intents, 1);   /* one charge at the provider */
    assert_true(calls >= 2);        /* the janitor asked again, same key */
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 3100);
}

static void test_always_lost_responses_keep_one_intent_and_end_in_needs_review(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    order_simple("USD", 3200, 1, order);
    h_resp r;
    pay(order, "pm_card_visa", ",\"gateway\":\"flaky\"", &r);
    EXPECT_STATUS(&r, 202);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_int_equal(h_rbool(&r, "outcome_unknown"), 1);
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    /* janitor_max_attempts = 3 tries, one second apart, then a human. */
    int64_t deadline = h_now_ms() + POLL_MS;
    int review = 0;
    while (!review && h_now_ms() < deadline) {
        get_obj("payments", pay_id, &r);
        review = h_rbool(&r, "needs_review") == 1;
        h_resp_free(&r);
        if (!review) h_sleep_ms(100);
    }
    assert_true(review);
    get_obj("payments", pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_int_equal(h_rbool(&r, "outcome_unknown"), 1);
    h_resp_free(&r);
    EXPECT_ORDER_STATUS(order, "payment_pending");

    long long intents, calls;
    mock_stats(pay_id, &intents, &calls);
    assert_int_equal(intents, 1);
    assert_true(calls >= 3);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
    /* Given up: no longer scheduled. */
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND janitor_next_at IS NULL", pay_id), 1);
}

/* Mock-Signature for `body` at time t with `secret`. */
#define mock_sign(secret, t, body, out, len) h_mock_signature((secret), (t), (body), (out), (len))
#define post_webhook(gateway, sig_header, body, r) h_post_webhook(&srv, (gateway), (sig_header), (body), (r))

static void test_forged_webhook_is_400_and_signed_one_applies_exactly_once(void **state)
{
    (void)state;
    char order[64], pay_id[64], ref[64];
    order_simple("USD", 2700, 1, order);
    h_resp r;
    pay(order, "pm_card_processing", ",\"gateway\":\"quiet\"", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    assert_non_null(h_rstr(&r, "provider_ref"));
    snprintf(ref, sizeof ref, "%s", h_rstr(&r, "provider_ref"));
    h_resp_free(&r);

    char evt[64], body[1024], sig[256];
    snprintf(evt, sizeof evt, "mevt_test%015lld", (long long)h_now_ms());
    snprintf(body, sizeof body,
             "{\"id\":\"%s\",\"type\":\"payment.succeeded\",\"created\":%lld,\"data\":{\"provider_ref\":\"%s\","
             "\"payment_id\":\"%s\",\"amount\":2700,\"currency\":\"USD\",\"refund_ref\":null,\"refund_id\":null,"
             "\"failure_code\":null,\"failure_message\":null}}",
             evt, (long long)time(NULL), ref, pay_id);

    /* Signed with the wrong secret, without a signature, or tampered. */
    mock_sign("whsec_wrong", (long long)time(NULL), body, sig, sizeof sig);
    post_webhook("quiet", sig, body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);
    post_webhook("quiet", NULL, body, &r);
    EXPECT_STATUS(&r, 400);
    h_resp_free(&r);
    mock_sign("whsec_quiet", (long long)time(NULL), body, sig, sizeof sig);
    char tampered[1024];
    snprintf(tampered, sizeof tampered, "%s", body);
    char *amount = strstr(tampered, "\"amount\":2700");
    assert_non_null(amount);
    memcpy(amount, "\"amount\":2701", 13);
    post_webhook("quiet", sig, tampered, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "signature_invalid", NULL);
    h_resp_free(&r);
    /* An old timestamp is refused too (tolerance 300 s). */
    char old_sig[256];
    mock_sign("whsec_quiet", (long long)time(NULL) - 3600, body, old_sig, sizeof old_sig);
    post_webhook("quiet", old_sig, body, &r);
    EXPECT_STATUS(&r, 400);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", evt), 0);
    char st[40];
    obj_status("payments", pay_id, st);
    EXPECT_STR(st, "processing");

    /* Correctly signed: applied once; the redelivery is a duplicate. */
    post_webhook("quiet", sig, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "applied");
    EXPECT_STR(h_rstr(&r, "event_id"), evt);
    h_resp_free(&r);
    obj_status("payments", pay_id, st);
    EXPECT_STR(st, "succeeded");
    EXPECT_ORDER_STATUS(order, "paid");
    post_webhook("quiet", sig, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "duplicate");
    h_resp_free(&r);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 2700);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE provider_event_id = '%s'", evt), 1);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);
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
        cmocka_unit_test(test_happy_path_pays_order_writes_charge_row_and_events),
        cmocka_unit_test(test_declined_card_is_402_card_declined_and_order_can_be_paid_again),
        cmocka_unit_test(test_insufficient_funds_and_expired_card_decline_with_their_codes),
        cmocka_unit_test(test_3ds_approve_redirects_to_return_url_and_succeeds_via_webhook),
        cmocka_unit_test(test_3ds_fail_ends_failed_with_authentication_required),
        cmocka_unit_test(test_processing_card_settles_to_succeeded_via_webhook),
        cmocka_unit_test(test_processing_payment_whose_webhook_is_lost_is_settled_by_the_janitor),
        cmocka_unit_test(test_manual_capture_then_partial_capture_releases_the_rest),
        cmocka_unit_test(test_capture_above_capturable_is_400_amount_too_large),
        cmocka_unit_test(test_cancel_of_manual_authorization_cancels_and_reopens_order),
        cmocka_unit_test(test_order_total_mismatch_is_400_total_mismatch),
        cmocka_unit_test(test_order_unknown_currency_is_400_param_currency),
        cmocka_unit_test(test_order_negative_zero_and_too_large_amounts_name_the_field),
        cmocka_unit_test(test_order_unknown_parameter_is_400_parameter_unknown),
        cmocka_unit_test(test_order_list_paginates_with_cursor_and_filters_by_status),
        cmocka_unit_test(test_order_cancel_only_while_pending),
        cmocka_unit_test(test_order_numbers_look_like_ord_year_sequence_and_are_unique),
        cmocka_unit_test(test_jpy_and_kwd_keep_exact_integer_minor_units),
        cmocka_unit_test(test_lost_response_is_202_outcome_unknown_then_janitor_resolves_without_second_charge),
        cmocka_unit_test(test_always_lost_responses_keep_one_intent_and_end_in_needs_review),
        cmocka_unit_test(test_forged_webhook_is_400_and_signed_one_applies_exactly_once),
        /* Last but one: PATCH has crashed payd before; keep the damage contained. */
        cmocka_unit_test(test_fulfilment_moves_forward_only_and_only_after_payment),
        cmocka_unit_test(test_payd_stops_cleanly_without_sanitizer_reports),
    };
    return cmocka_run_group_tests_name("checkout", tests, setup, h_group_stop);
}
