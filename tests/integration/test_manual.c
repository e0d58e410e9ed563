/*
 * test_manual.c - manual payments against a real payd, PostgreSQL and the
 * manual gateway module: bank transfer instructions with a reference and
 * bank details, the buyer's confirmation, an admin's approval (in full or
 * partial) paying the order with ledger, events and an audit row naming
 * the admin's key, rejection, the refusals (not manual, not awaiting
 * funds, above the order's total, unknown or disabled method), approve
 * racing reject, expiry by the janitor under the test clock, and manual
 * refunds recorded pending until an admin confirms or rejects them.
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

#include <cmocka.h>

#include "harness.h"

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)
#define ledger(pay_id, type, count, sum) h_ledger(&srv, (pay_id), (type), (count), (sum))
#define events_of(object_id, type) h_events_of(&srv, (object_id), (type))

#define IBAN_SHOWN "DE89 3704 0044 0532 0130 00"

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

#define post(path, auth, body, r) h_post_ok(&srv, (path), (auth), (body), (r))
#define get(path, auth, r) h_get_ok(&srv, (path), (auth), (r))

/* A new USD order of `total`; its id into order. */
static void new_order(long long total, char order[64])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"currency\":\"USD\",\"items\":[{\"name\":\"Chair\",\"unit_amount\":%lld}],"
             "\"customer_email\":\"buyer@example.com\"}",
             total);
    h_create(&srv, "/v1/orders", srv.merchant_auth, body, 201, order);
}

/* POST /v1/payments on `gateway` with `method` for `order`. */
static void create_payment(const char *order, const char *gateway, const char *method, h_resp *r)
{
    char body[256];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"gateway\":\"%s\",\"payment_method\":\"%s\"}", order, gateway,
             method);
    post("/v1/payments", srv.merchant_auth, body, r);
}

/* A manual payment awaiting funds: a new order of `total`, a payment by
 * `method` on [gateway.manual]; ids into order and pay_id. */
static void manual_payment(long long total, const char *method, char order[64], char pay_id[64])
{
    new_order(total, order);
    h_resp r;
    create_payment(order, "manual", method, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

/* POST /v1/admin/payments/{id}/{verb} with `body` (may be NULL). */
static void review(const char *pay_id, const char *verb, const char *auth, const char *body, h_resp *r)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/admin/payments/%s/%s", pay_id, verb);
    post(path, auth, body, r);
}

/* The admin approves the payment with no amount: it succeeds. */
static void approve_in_full(const char *pay_id)
{
    h_resp r;
    review(pay_id, "approve", srv.admin_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
}

/* review() by the admin must be refused: an invalid_request_error with
 * `status`, `code` and (unless NULL) `param`. */
#define EXPECT_REVIEW_REFUSED(pay_id, verb, body, status, code, param)                 \
    do {                                                                               \
        h_resp r_;                                                                     \
        review((pay_id), (verb), srv.admin_auth, (body), &r_);                         \
        EXPECT_ERROR(&r_, (status), "invalid_request_error", (code), (param));         \
        h_resp_free(&r_);                                                              \
    } while (0)

static void expect_payment(const char *pay_id, const char *status, long long captured)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    h_resp r;
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), status);
    assert_int_equal(h_rint(&r, "amount_captured"), captured);
    h_resp_free(&r);
}

static void expect_order(const char *order, const char *status, long long paid)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    h_resp r;
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), status);
    assert_int_equal(h_rint(&r, "amount_paid"), paid);
    h_resp_free(&r);
}

/* "key:<id>" of the harness's admin key (payd_<12 hex id>_<secret>). */
static const char *admin_actor(void)
{
    static char actor[64];
    assert_int_equal(strncmp(srv.admin_key, "payd_", 5), 0);
    snprintf(actor, sizeof actor, "key:%.12s", srv.admin_key + 5);
    return actor;
}

/* The actor of the newest audit row with `action` on `entity`, or "". */
static char *audit_actor(const char *entity, const char *action)
{
    static char out[160];
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT actor FROM audit_log WHERE entity = '%s' AND action = '%s' ORDER BY id DESC LIMIT 1", entity,
             action);
    char *v = h_sql_value(srv.db_url, sql);
    snprintf(out, sizeof out, "%s", v ? v : "");
    free(v);
    return out;
}

/* A reference has the configured prefix and three groups of four symbols
 * from the unambiguous alphabet. */
static void expect_reference(const char *ref)
{
    assert_non_null(ref);
    assert_int_equal(strlen(ref), strlen("SHOP-XXXX-XXXX-XXXX"));
    assert_int_equal(strncmp(ref, "SHOP-", 5), 0);
    for (size_t i = 5; ref[i]; i++) {
        if (i == 9 || i == 14) assert_int_equal(ref[i], '-');
        else assert_non_null(strchr("23456789ABCDEFGHJKLMNPQRSTUVWXYZ", ref[i]));
    }
}

/* ------------------------------------------------------------------------ */
/* Setup.                                                                   */
/* ------------------------------------------------------------------------ */

static int setup(void **state)
{
    h_payd_opts o = {
        .threads = 16,
        .pool = 16,
        .extra = "[payments]\n"
                 "janitor_interval_ms = 100\n"
                 "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_test\n"
                 "settle_ms = 300\n"
                 "[gateway.manual]\n"
                 "module = manual\n"
                 "methods = bank_transfer, cash_on_delivery, cheque\n"
                 "bank_account_name = Example Shop Ltd\n"
                 "bank_iban = de89370400440532013000\n"
                 "bank_bic = COBADEFFXXX\n"
                 "bank_name = Example Bank\n"
                 "instructions.bank_transfer = Transfers take one to three working days.\n"
                 "instructions.cheque = Payable to Example Shop Ltd, 1 Main Street, Springfield\n"
                 "reference_prefix = SHOP\n"
                 "auto_expire_days = 3\n"
                 "[gateway.cod]\n"
                 "module = manual\n"
                 "methods = cash_on_delivery\n"
                 "[routing]\n"
                 "default = mock\n",
    };
    return h_group_start(state, &srv, &o);
}

/* ------------------------------------------------------------------------ */
/* The flow.                                                                */
/* ------------------------------------------------------------------------ */

static void test_bank_transfer_shows_instructions_and_admin_approval_pays_the_order(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    new_order(2500, order);
    h_resp r;
    create_payment(order, "manual", "bank_transfer", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "display_instructions");
    EXPECT_STR(h_rstr(&r, "payment_method"), "bank_transfer");
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    const char *ref = h_rstr(&r, "provider_ref");
    expect_reference(ref);
    const char *text = h_rstr(&r, "next_action.text");
    assert_non_null(text);
    assert_non_null(strstr(text, "Pay 25.00 USD by bank transfer."));
    assert_non_null(strstr(text, ref));
    assert_non_null(strstr(text, "Account name: Example Shop Ltd"));
    assert_non_null(strstr(text, "IBAN: " IBAN_SHOWN));
    assert_non_null(strstr(text, "BIC: COBADEFFXXX"));
    assert_non_null(strstr(text, "Bank: Example Bank"));
    assert_non_null(strstr(text, "Transfers take one to three working days."));
    assert_non_null(strstr(text, "Unpaid by "));
    h_resp_free(&r);
    expect_order(order, "payment_pending", 0);
    /* Nothing to poll: no provider will ever answer. */
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND janitor_next_at IS NULL", pay_id), 1);

    review(pay_id, "approve", srv.admin_auth, "{\"note\":\"seen on the bank statement of 3 May\"}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 2500);
    assert_null(h_jpath(r.json, "next_action.type"));
    h_resp_free(&r);

    expect_order(order, "paid", 2500);
    assert_int_equal(events_of(order, "order.paid"), 1);
    assert_int_equal(events_of(pay_id, "payment.succeeded"), 1);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 2500);
    char entity[96];
    snprintf(entity, sizeof entity, "payment:%s", pay_id);
    EXPECT_STR(audit_actor(entity, "payment.manual_approved"), admin_actor());
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'"
                             " AND action = 'payment.manual_approved'"
                             " AND after->'provider_raw'->>'note' = 'seen on the bank statement of 3 May'"
                             " AND after->'provider_raw'->>'decision' = 'approved'"
                             " AND (after->'provider_raw'->>'amount_received')::bigint = 2500",
                             pay_id),
                     1);
}

static void test_buyer_confirmation_moves_it_to_processing_with_the_instructions_kept(void **state)
{
    (void)state;
    char order[64], pay_id[64], path[160];
    manual_payment(4200, "cash_on_delivery", order, pay_id);
    snprintf(path, sizeof path, "/v1/payments/%s/confirm", pay_id);
    h_resp r;
    post(path, srv.merchant_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "display_instructions");
    assert_non_null(strstr(h_rstr(&r, "next_action.text"), "Pay 42.00 USD in cash on delivery."));
    assert_non_null(strstr(h_rstr(&r, "next_action.text"), h_rstr(&r, "provider_ref")));
    h_resp_free(&r);
    /* Processing here waits for a person, not a provider: no polling. */
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND janitor_next_at IS NULL", pay_id), 1);

    approve_in_full(pay_id);
    expect_order(order, "paid", 4200);
}

static void test_create_with_confirm_is_processing_at_once_and_approvable(void **state)
{
    (void)state;
    char order[64], body[256];
    new_order(3100, order);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"manual\",\"payment_method\":\"bank_transfer\",\"confirm\":true}", order);
    h_resp r;
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "display_instructions");
    assert_non_null(strstr(h_rstr(&r, "next_action.text"), "Pay 31.00 USD by bank transfer."));
    char pay_id[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND janitor_next_at IS NULL", pay_id), 1);
    approve_in_full(pay_id);
    expect_order(order, "paid", 3100);
}

static void test_cheque_instructions_carry_the_payee_and_the_reference(void **state)
{
    (void)state;
    char order[64];
    new_order(100000, order);
    h_resp r;
    create_payment(order, "manual", "cheque", &r);
    EXPECT_STATUS(&r, 201);
    const char *text = h_rstr(&r, "next_action.text");
    assert_non_null(strstr(text, "Pay 1000.00 USD by cheque."));
    assert_non_null(strstr(text, "Payable to Example Shop Ltd, 1 Main Street, Springfield"));
    assert_non_null(strstr(text, "write it on the back of the cheque"));
    assert_null(strstr(text, "IBAN"));
    expect_reference(h_rstr(&r, "provider_ref"));
    h_resp_free(&r);
}

static void test_smaller_amount_received_is_a_partial_receipt(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    manual_payment(2500, "bank_transfer", order, pay_id);
    h_resp r;
    review(pay_id, "approve", srv.admin_auth, "{\"amount\":1500,\"note\":\"short by 10.00\"}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 1500);
    h_resp_free(&r);
    expect_order(order, "paid", 1500);
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 1500);
}

/* ------------------------------------------------------------------------ */
/* Refusals.                                                                */
/* ------------------------------------------------------------------------ */

static void test_approving_more_than_the_order_total_is_400(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    manual_payment(2500, "bank_transfer", order, pay_id);
    EXPECT_REVIEW_REFUSED(pay_id, "approve", "{\"amount\":2501}", 400, "amount_too_large", "amount");
    EXPECT_REVIEW_REFUSED(pay_id, "approve", "{\"amount\":0}", 400, "amount_invalid", "amount");
    EXPECT_REVIEW_REFUSED(pay_id, "approve", "{\"amount\":\"25.00\"}", 400, "amount_invalid", "amount");
    EXPECT_REVIEW_REFUSED(pay_id, "approve", "{\"received\":true}", 400, "parameter_unknown", "received");
    EXPECT_REVIEW_REFUSED(pay_id, "reject", "{\"amount\":100}", 400, "parameter_unknown", "amount");
    EXPECT_REVIEW_REFUSED(pay_id, "reject", "{\"note\":\"\"}", 400, "parameter_invalid", "note");
    /* Nothing moved. */
    expect_payment(pay_id, "requires_action", 0);
    expect_order(order, "payment_pending", 0);
    long long n, sum;
    ledger(pay_id, "charge", &n, &sum);
    assert_int_equal(n, 0);
}

static void test_approving_a_mock_payment_is_409_not_manual(void **state)
{
    (void)state;
    char order[64];
    new_order(900, order);
    h_resp r;
    /* Processing like an awaiting manual payment, but the mock settles it. */
    create_payment(order, "mock", "pm_card_processing", &r);
    EXPECT_STATUS(&r, 201);
    char pay_id[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    EXPECT_REVIEW_REFUSED(pay_id, "approve", NULL, 409, "payment_not_manual", NULL);
    EXPECT_REVIEW_REFUSED(pay_id, "reject", NULL, 409, "payment_not_manual", NULL);
}

static void test_approving_a_settled_payment_is_409_not_awaiting_funds(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    manual_payment(700, "bank_transfer", order, pay_id);
    h_resp r;
    review(pay_id, "approve", srv.admin_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    EXPECT_REVIEW_REFUSED(pay_id, "approve", NULL, 409, "payment_not_awaiting_funds", NULL);
    EXPECT_REVIEW_REFUSED(pay_id, "reject", NULL, 409, "payment_not_awaiting_funds", NULL);
    /* Still one charge. */
    EXPECT_LEDGER(&srv, pay_id, "charge", 1, 700);
}

static void test_only_admins_decide_and_unknown_payments_are_404(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    manual_payment(300, "bank_transfer", order, pay_id);
    h_resp r;
    review(pay_id, "approve", srv.merchant_auth, NULL, &r);
    EXPECT_ERROR(&r, 403, "permission_error", "insufficient_role", NULL);
    h_resp_free(&r);
    review(pay_id, "approve", NULL, NULL, &r);
    EXPECT_ERROR(&r, 401, "authentication_error", "missing_credentials", NULL);
    h_resp_free(&r);
    EXPECT_REVIEW_REFUSED("pay_doesnotexist", "approve", NULL, 404, "resource_missing", NULL);
    expect_payment(pay_id, "requires_action", 0);
}

static void test_unknown_or_disabled_method_is_400_naming_it(void **state)
{
    (void)state;
    char order[64];
    new_order(500, order);
    h_resp r;
    create_payment(order, "manual", "bitcoin", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "gateway_rejected", NULL);
    assert_non_null(strstr(h_err_message(&r), "'bitcoin' is unknown"));
    h_resp_free(&r);

    new_order(500, order);
    create_payment(order, "cod", "cheque", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "gateway_rejected", NULL);
    assert_non_null(strstr(h_err_message(&r), "'cheque' is not enabled"));
    assert_non_null(strstr(h_err_message(&r), "cash_on_delivery"));
    h_resp_free(&r);
    /* The same order can still be paid with an enabled method. */
    char path[160];
    snprintf(path, sizeof path, "/v1/payments?order_id=%s", order);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    char pay_id[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "data.0.id"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/payments/%s/confirm", pay_id);
    post(path, srv.merchant_auth, "{\"payment_method\":\"cash_on_delivery\"}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "display_instructions");
    assert_non_null(strstr(h_rstr(&r, "next_action.text"), "PAYD-"));
    h_resp_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Reject, race, expiry.                                                    */
/* ------------------------------------------------------------------------ */

static void test_reject_fails_the_payment_and_reopens_the_order_without_money(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    manual_payment(1800, "bank_transfer", order, pay_id);
    h_resp r;
    review(pay_id, "reject", srv.admin_auth, "{\"note\":\"nothing arrived in 30 days\"}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "failed");
    EXPECT_STR(h_rstr(&r, "failure_code"), "payment_rejected");
    assert_int_equal(h_rint(&r, "amount_captured"), 0);
    h_resp_free(&r);
    expect_order(order, "pending", 0);
    assert_int_equal(events_of(pay_id, "payment.failed"), 1);
    assert_int_equal(events_of(order, "order.paid"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s'", pay_id), 0);
    char entity[96];
    snprintf(entity, sizeof entity, "payment:%s", pay_id);
    EXPECT_STR(audit_actor(entity, "payment.manual_rejected"), admin_actor());
}

#define RACERS 8

typedef struct racer {
    const char *pay_id;
    const char *verb;
    pthread_barrier_t *start;
    long status;
} racer;

static void *racer_main(void *arg)
{
    racer *k = arg;
    char path[160];
    snprintf(path, sizeof path, "/v1/admin/payments/%s/%s", k->pay_id, k->verb);
    pthread_barrier_wait(k->start);
    h_resp r;
    if (h_post_json(&srv, path, srv.admin_auth, NULL, NULL, &r) == 0) k->status = r.status;
    h_resp_free(&r);
    return NULL;
}

static void test_concurrent_approve_and_reject_exactly_one_wins(void **state)
{
    (void)state;
    for (int round = 0; round < 4; round++) {
        char order[64], pay_id[64];
        manual_payment(1000, "bank_transfer", order, pay_id);
        pthread_t threads[RACERS];
        racer racers[RACERS];
        pthread_barrier_t start;
        assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
        for (int i = 0; i < RACERS; i++) {
            racers[i] = (racer){.pay_id = pay_id, .verb = i % 2 ? "reject" : "approve", .start = &start};
            assert_int_equal(pthread_create(&threads[i], NULL, racer_main, &racers[i]), 0);
        }
        for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&start);

        int ok = 0, conflict = 0, approved = 0;
        for (int i = 0; i < RACERS; i++) {
            if (racers[i].status == 200) {
                ok++;
                approved = strcmp(racers[i].verb, "approve") == 0;
            } else if (racers[i].status == 409) {
                conflict++;
            }
        }
        assert_int_equal(ok, 1);
        assert_int_equal(conflict, RACERS - 1);
        /* The winner's outcome, and only it, is in the books. */
        expect_payment(pay_id, approved ? "succeeded" : "failed", approved ? 1000 : 0);
        expect_order(order, approved ? "paid" : "pending", approved ? 1000 : 0);
        assert_int_equal(sql_int("SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s'", pay_id),
                         approved ? 1000 : 0);
        assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'"
                                 " AND action IN ('payment.manual_approved', 'payment.manual_rejected')",
                                 pay_id),
                         1);
    }
}

static void set_clock_days(long long days)
{
    char body[64];
    snprintf(body, sizeof body, "{\"offset_ms\":%lld}", days * 86400LL * 1000LL);
    h_resp r;
    post("/v1/test/clock", srv.admin_auth, body, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

static void test_janitor_cancels_a_manual_payment_unpaid_after_auto_expire_days(void **state)
{
    (void)state;
    char order[64], pay_id[64], cod_order[64], cod_pay[64];
    manual_payment(2200, "bank_transfer", order, pay_id);
    /* [gateway.cod] has no auto_expire_days: it waits forever. */
    new_order(2200, cod_order);
    h_resp r;
    create_payment(cod_order, "cod", "cash_on_delivery", &r);
    EXPECT_STATUS(&r, 201);
    snprintf(cod_pay, sizeof cod_pay, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    /* Two days on: not yet (the janitor runs every 100 ms). */
    set_clock_days(2);
    h_sleep_ms(600);
    expect_payment(pay_id, "requires_action", 0);

    set_clock_days(3);
    int64_t deadline = h_now_ms() + 10000;
    while (h_now_ms() < deadline &&
           sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND status = 'canceled'", pay_id) != 1)
        h_sleep_ms(100);
    set_clock_days(0);
    expect_payment(pay_id, "canceled", 0);
    expect_order(order, "pending", 0);
    assert_int_equal(events_of(pay_id, "payment.canceled"), 1);
    char entity[96];
    snprintf(entity, sizeof entity, "payment:%s", pay_id);
    EXPECT_STR(audit_actor(entity, "payment.expired"), "system:janitor");
    expect_payment(cod_pay, "requires_action", 0);

    /* Expired means no longer awaiting funds. */
    EXPECT_REVIEW_REFUSED(pay_id, "approve", NULL, 409, "payment_not_awaiting_funds", NULL);
}

/* ------------------------------------------------------------------------ */
/* Refunds.                                                                 */
/* ------------------------------------------------------------------------ */

/* A manual payment of `total`, approved in full. */
static void approved_payment(long long total, char order[64], char pay_id[64])
{
    manual_payment(total, "bank_transfer", order, pay_id);
    h_resp r;
    review(pay_id, "approve", srv.admin_auth, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* POST /v1/refunds of `amount`; expects it recorded pending; id into rid. */
static void pending_refund(const char *pay_id, long long amount, char rid[64])
{
    char body[160];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":%lld}", pay_id, amount);
    h_resp r;
    post("/v1/refunds", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 202);
    EXPECT_STR(h_rstr(&r, "status"), "pending");
    assert_int_equal(h_rint(&r, "amount"), amount);
    expect_reference(h_rstr(&r, "provider_ref"));
    snprintf(rid, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

static void refund_review(const char *rid, const char *verb, const char *body, h_resp *r)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/admin/refunds/%s/%s", rid, verb);
    post(path, srv.admin_auth, body, r);
}

/* refund_review() must be refused: an invalid_request_error with `status`
 * and `code`. */
#define EXPECT_REFUND_REVIEW_REFUSED(rid, verb, body, status, code)                    \
    do {                                                                               \
        h_resp r_;                                                                     \
        refund_review((rid), (verb), (body), &r_);                                     \
        EXPECT_ERROR(&r_, (status), "invalid_request_error", (code), NULL);            \
        h_resp_free(&r_);                                                              \
    } while (0)

static void test_manual_refund_is_pending_until_an_admin_confirms_it(void **state)
{
    (void)state;
    char order[64], pay_id[64], rid[64];
    approved_payment(2500, order, pay_id);
    pending_refund(pay_id, 1000, rid);
    /* Reserved, not moved, and not polled. */
    long long n, sum;
    ledger(pay_id, "refund", &n, &sum);
    assert_int_equal(n, 0);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 1000);
    assert_int_equal(sql_int("SELECT count(*) FROM refunds WHERE id = '%s' AND janitor_next_at IS NULL", rid), 1);
    /* The pending refund counts against what is left. */
    char body[160];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1501}", pay_id);
    h_resp r;
    EXPECT_POST_ERROR(&srv, "/v1/refunds", srv.merchant_auth, body,
                      400, "invalid_request_error", "amount_too_large", "amount");

    refund_review(rid, "confirm", "{\"note\":\"sent back by transfer\"}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    EXPECT_LEDGER(&srv, pay_id, "refund", 1, 1000);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 0);
    assert_int_equal(sql_int("SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 1000);
    expect_payment(pay_id, "partially_refunded", 2500);
    assert_int_equal(events_of(rid, "refund.succeeded"), 1);
    char entity[96];
    snprintf(entity, sizeof entity, "refund:%s", rid);
    EXPECT_STR(audit_actor(entity, "refund.succeeded"), admin_actor());
    EXPECT_STR(audit_actor(entity, "refund.manual_confirmed"), admin_actor());

    EXPECT_REFUND_REVIEW_REFUSED(rid, "confirm", NULL, 409, "refund_not_pending");
    EXPECT_REFUND_REVIEW_REFUSED(rid, "reject", NULL, 409, "refund_not_pending");
}

static void test_rejected_manual_refund_fails_and_releases_its_reservation(void **state)
{
    (void)state;
    char order[64], pay_id[64], rid[64];
    approved_payment(1200, order, pay_id);
    pending_refund(pay_id, 1200, rid);
    h_resp r;
    refund_review(rid, "reject", NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "failed");
    EXPECT_STR(h_rstr(&r, "failure_code"), "refund_rejected");
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT amount_refund_pending FROM payments WHERE id = '%s'", pay_id), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE payment_id = '%s' AND entry_type = 'refund'", pay_id),
                     0);
    expect_payment(pay_id, "succeeded", 1200);
    assert_int_equal(events_of(rid, "refund.failed"), 1);
    /* The money is refundable again. */
    pending_refund(pay_id, 1200, rid);
}

static void test_confirming_a_provider_refund_is_409_and_unknown_refunds_404(void **state)
{
    (void)state;
    char order[64];
    new_order(800, order);
    char body[192], pay_id[64];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"gateway\":\"mock\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}",
             order);
    h_resp r;
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":300}", pay_id);
    post("/v1/refunds", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    char rid[64];
    snprintf(rid, sizeof rid, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    EXPECT_REFUND_REVIEW_REFUSED(rid, "confirm", NULL, 409, "refund_not_manual");
    EXPECT_REFUND_REVIEW_REFUSED("re_doesnotexist", "confirm", NULL, 404, "resource_missing");
}

/* No provider holds a manual gateway's money, so there is nothing to
 * reconcile it against: refused, where comparing would flag every approval. */
static void test_reconciling_a_manual_gateway_is_400_not_reconcilable(void **state)
{
    (void)state;
    char order[64], pay_id[64];
    manual_payment(2500, "bank_transfer", order, pay_id);
    approve_in_full(pay_id);
    EXPECT_GET_ERROR(&srv, "/v1/admin/reconcile?gateway=manual&from=2020-01-01&to=2020-12-31", srv.admin_auth, 400,
                     "invalid_request_error", "not_reconcilable", "gateway");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bank_transfer_shows_instructions_and_admin_approval_pays_the_order),
        cmocka_unit_test(test_buyer_confirmation_moves_it_to_processing_with_the_instructions_kept),
        cmocka_unit_test(test_create_with_confirm_is_processing_at_once_and_approvable),
        cmocka_unit_test(test_cheque_instructions_carry_the_payee_and_the_reference),
        cmocka_unit_test(test_smaller_amount_received_is_a_partial_receipt),
        cmocka_unit_test(test_approving_more_than_the_order_total_is_400),
        cmocka_unit_test(test_approving_a_mock_payment_is_409_not_manual),
        cmocka_unit_test(test_approving_a_settled_payment_is_409_not_awaiting_funds),
        cmocka_unit_test(test_only_admins_decide_and_unknown_payments_are_404),
        cmocka_unit_test(test_unknown_or_disabled_method_is_400_naming_it),
        cmocka_unit_test(test_reject_fails_the_payment_and_reopens_the_order_without_money),
        cmocka_unit_test(test_concurrent_approve_and_reject_exactly_one_wins),
        cmocka_unit_test(test_manual_refund_is_pending_until_an_admin_confirms_it),
        cmocka_unit_test(test_rejected_manual_refund_fails_and_releases_its_reservation),
        cmocka_unit_test(test_confirming_a_provider_refund_is_409_and_unknown_refunds_404),
        cmocka_unit_test(test_reconciling_a_manual_gateway_is_400_not_reconcilable),
        /* Last: it moves the clock days ahead, which expires what still waits. */
        cmocka_unit_test(test_janitor_cancels_a_manual_payment_unpaid_after_auto_expire_days),
    };
    return cmocka_run_group_tests(tests, setup, h_group_stop);
}
