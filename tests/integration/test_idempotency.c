/*
 * test_idempotency.c - Idempotency-Key with Stripe's contract, against a
 * real payd: byte-identical replays, a reused key with other parameters,
 * 20 concurrent requests with one key (one payment, one charge at the
 * module, every answer identical or 409), validation failures that are not
 * stored, expiry and purging, and keys scoped per caller.
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

#define POLL_MS 10000

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)
#define ledger(pay_id, type, count, sum) h_ledger(&srv, (pay_id), (type), (count), (sum))
#define events_of(object_id, type) h_events_of(&srv, (object_id), (type))
static char run_tag[32]; /* makes keys unique per run */

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

#define post(path, auth, body, r) h_post_ok(&srv, (path), (auth), (body), (r))
#define get(path, auth, r) h_get_ok(&srv, (path), (auth), (r))

static void key_for(const char *name, char out[96])
{
    snprintf(out, 96, "%s-%s", name, run_tag);
}

static int post_key(const char *path, const char *auth, const char *key, const char *body, h_resp *r)
{
    return h_post_json(&srv, path, auth, key, body, r);
}

/* Two answers are the same bytes with the same status. */
static void expect_same_answer(const h_resp *a, const h_resp *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->body_len, b->body_len);
    if (memcmp(a->body, b->body, a->body_len) != 0) {
        print_error("bodies differ:\n%s\n%s\n", a->body, b->body);
        fail();
    }
}

static void expect_replayed(const h_resp *r, int replayed)
{
    const char *h = h_resp_header(r, "Idempotent-Replayed");
    if (replayed) {
        assert_non_null(h);
        assert_string_equal(h, "true");
    } else if (h) {
        print_error("unexpected Idempotent-Replayed: %s on %s\n", h, r->body);
        fail();
    }
}

static const char order_a[] = "{\"currency\":\"USD\",\"items\":[{\"name\":\"A\",\"unit_amount\":1000}]}";
static const char order_b[] = "{\"currency\":\"USD\",\"items\":[{\"name\":\"B\",\"unit_amount\":2000}]}";

static void new_order(char id[64])
{
    h_create(&srv, "/v1/orders", srv.merchant_auth, order_a, 201, id);
}

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
    snprintf(run_tag, sizeof run_tag, "%lld", (long long)h_now_ms());
    h_payd_opts o = {
        .threads = 24,
        .pool = 32,
        .extra = "[payments]\n"
                 "janitor_interval_ms = 100\n"
                 "janitor_schedule = 1,1,1\n"
                 "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_test\n"
                 "settle_ms = 300\n"
                 "[gateway.slow]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_slow\n"
                 "latency_ms = 400\n"
                 "[routing]\n"
                 "default = mock\n",
    };
    return h_group_start(state, &srv, &o);
}

/* ------------------------------------------------------------------------ */
/* Tests.                                                                   */
/* ------------------------------------------------------------------------ */

static void test_replay_returns_identical_status_and_body_with_replayed_header(void **state)
{
    (void)state;
    char key[96];
    key_for("replay-order", key);
    h_resp first, again;
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &first), 0);
    EXPECT_STATUS(&first, 201);
    expect_replayed(&first, 0);
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &again), 0);
    expect_same_answer(&first, &again);
    expect_replayed(&again, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE id = '%s'", h_rstr(&first, "id")), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'order:%s' AND action = 'order.created'",
                             h_rstr(&first, "id")),
                     1);
    h_resp_free(&again);

    /* A payment replayed does not reach the module again. */
    char body[256], pkey[96];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}",
             h_rstr(&first, "id"));
    h_resp_free(&first);
    key_for("replay-payment", pkey);
    assert_int_equal(post_key("/v1/payments", srv.merchant_auth, pkey, body, &first), 0);
    EXPECT_STATUS(&first, 201);
    EXPECT_STR(h_rstr(&first, "status"), "succeeded");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(post_key("/v1/payments", srv.merchant_auth, pkey, body, &again), 0);
        expect_same_answer(&first, &again);
        expect_replayed(&again, 1);
        h_resp_free(&again);
    }
    long long intents, calls;
    mock_stats(h_rstr(&first, "id"), &intents, &calls);
    assert_int_equal(intents, 1);
    assert_int_equal(calls, 1);
    h_resp_free(&first);
}

static void test_replay_of_a_decline_returns_the_same_402(void **state)
{
    (void)state;
    char order[64], body[256], key[96];
    new_order(order);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_chargeDeclined\",\"confirm\":true}",
             order);
    key_for("replay-decline", key);
    h_resp first, again;
    assert_int_equal(post_key("/v1/payments", srv.merchant_auth, key, body, &first), 0);
    EXPECT_ERROR(&first, 402, "card_error", "card_declined", NULL);
    assert_int_equal(post_key("/v1/payments", srv.merchant_auth, key, body, &again), 0);
    expect_same_answer(&first, &again);
    expect_replayed(&again, 1);
    long long intents, calls;
    mock_stats(h_rstr(&first, "payment.id"), &intents, &calls);
    assert_int_equal(intents, 1);
    assert_int_equal(calls, 1);
    h_resp_free(&first);
    h_resp_free(&again);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE order_id = '%s'", order), 1);
}

static void test_same_key_with_different_body_or_path_is_400_idempotency_key_reused(void **state)
{
    (void)state;
    char key[96];
    key_for("mismatch", key);
    h_resp r;
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    char first_id[64];
    snprintf(first_id, sizeof first_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    long long before = sql_int("SELECT count(*) FROM orders");

    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_b, &r), 0);
    EXPECT_ERROR(&r, 400, "idempotency_error", "idempotency_key_reused", NULL);
    expect_replayed(&r, 0);
    h_resp_free(&r);
    char path[160];
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", first_id);
    assert_int_equal(post_key(path, srv.merchant_auth, key, NULL, &r), 0);
    EXPECT_ERROR(&r, 400, "idempotency_error", "idempotency_key_reused", NULL);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM orders"), before);
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE id = '%s' AND status = 'pending'", first_id), 1);

    /* The original still replays. */
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "id"), first_id);
    expect_replayed(&r, 1);
    h_resp_free(&r);
}

static void test_key_longer_than_255_characters_is_400(void **state)
{
    (void)state;
    char key[300];
    memset(key, 'k', 256);
    key[256] = '\0';
    h_resp r;
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_ERROR(&r, 400, "idempotency_error", "idempotency_key_invalid", NULL);
    h_resp_free(&r);
    key[255] = '\0';
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
}

/* One of the clients racing with one key. */
typedef struct racer {
    pthread_barrier_t *start;
    const char *key, *body;
    h_resp r;
    int rc;
} racer;

static void *racer_main(void *arg)
{
    racer *x = arg;
    pthread_barrier_wait(x->start);
    x->rc = post_key("/v1/payments", srv.merchant_auth, x->key, x->body, &x->r);
    return NULL;
}

#define RACERS 20

static void test_twenty_concurrent_requests_with_one_key_make_one_payment_and_one_charge(void **state)
{
    (void)state;
    char order[64], body[256], key[96];
    new_order(order);
    /* The slow instance holds the first request in flight for 400 ms. */
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"slow\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order);
    key_for("race", key);

    static racer racers[RACERS];
    pthread_t threads[RACERS];
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, RACERS), 0);
    for (int i = 0; i < RACERS; i++) {
        memset(&racers[i], 0, sizeof racers[i]);
        racers[i].start = &start;
        racers[i].key = key;
        racers[i].body = body;
        assert_int_equal(pthread_create(&threads[i], NULL, racer_main, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);

    /* The payd answer proper (not a replay) is the reference. */
    const h_resp *ref = NULL;
    for (int i = 0; i < RACERS; i++)
        if (racers[i].rc == 0 && racers[i].r.status == 201 && !h_resp_header(&racers[i].r, "Idempotent-Replayed"))
            ref = ref ? ref : &racers[i].r;
    int originals = 0, replays = 0, in_use = 0, other = 0;
    for (int i = 0; i < RACERS; i++) {
        const h_resp *x = &racers[i].r;
        const char *code = h_err_code(x);
        if (racers[i].rc == 0 && x->status == 409 && code && !strcmp(code, "idempotency_key_in_use") &&
            h_err_type(x) && !strcmp(h_err_type(x), "idempotency_error")) {
            in_use++;
        } else if (ref && racers[i].rc == 0 && x->status == ref->status && x->body_len == ref->body_len &&
                   !memcmp(x->body, ref->body, ref->body_len)) {
            if (h_resp_header(x, "Idempotent-Replayed")) replays++;
            else originals++;
        } else {
            other++;
            print_error("unexpected answer %ld: %s\n", x->status, x->body ? x->body : x->error);
        }
    }
    print_message("# %d original, %d replayed, %d in use\n", originals, replays, in_use);
    char pay_id[64] = "";
    if (ref && h_rstr(ref, "id")) snprintf(pay_id, sizeof pay_id, "%s", h_rstr(ref, "id"));
    int ref_succeeded = ref && h_rstr(ref, "status") && !strcmp(h_rstr(ref, "status"), "succeeded");
    for (int i = 0; i < RACERS; i++) h_resp_free(&racers[i].r);
    assert_int_equal(other, 0);
    assert_int_equal(originals, 1);
    assert_int_equal(originals + replays + in_use, RACERS);
    assert_true(ref_succeeded);

    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE order_id = '%s'", order), 1);
    long long intents, calls;
    mock_stats(pay_id, &intents, &calls);
    assert_int_equal(intents, 1);
    assert_int_equal(calls, 1);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE order_id = '%s'", order), 1);

    /* Afterwards every retry is a replay of that one answer. */
    h_resp r;
    assert_int_equal(post_key("/v1/payments", srv.merchant_auth, key, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "id"), pay_id);
    expect_replayed(&r, 1);
    h_resp_free(&r);
}

static void test_validation_failure_is_not_stored_so_the_fixed_body_succeeds(void **state)
{
    (void)state;
    char key[96];
    key_for("fixme", key);
    h_resp r;
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key,
                              "{\"currency\":\"ZZZ\",\"items\":[{\"name\":\"A\",\"unit_amount\":1000}]}", &r),
                     0);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "currency_invalid", "currency");
    h_resp_free(&r);
    char sel[256];
    snprintf(sel, sizeof sel, "SELECT count(*) FROM idempotency_keys WHERE key = '%s'", key);
    assert_int_equal(h_sql_int(srv.db_url, sel, -1), 0);

    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    expect_replayed(&r, 0);
    char id[64];
    snprintf(id, sizeof id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    assert_int_equal(h_sql_int(srv.db_url, sel, -1), 1);
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "id"), id);
    expect_replayed(&r, 1);
    h_resp_free(&r);
}

static void test_expired_key_executes_fresh_and_purge_removes_expired_rows(void **state)
{
    (void)state;
    char key[96], sql[512];
    key_for("expiry", key);
    h_resp r;
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    char first[64];
    snprintf(first, sizeof first, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    /* Stored for 24 hours by default. */
    assert_int_equal(sql_int("SELECT count(*) FROM idempotency_keys WHERE key = '%s'"
                             " AND expires_at > now() + interval '23 hours'",
                             key),
                     1);

    snprintf(sql, sizeof sql, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = '%s'",
             key);
    assert_int_equal(h_sql_exec(srv.db_url, sql), 0);
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_b, &r), 0);
    EXPECT_STATUS(&r, 201);
    expect_replayed(&r, 0);
    assert_string_not_equal(h_rstr(&r, "id"), first);
    assert_int_equal(h_rint(&r, "total"), 2000);
    char second[64];
    snprintf(second, sizeof second, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    /* The key now belongs to the new request. */
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_b, &r), 0);
    EXPECT_STR(h_rstr(&r, "id"), second);
    expect_replayed(&r, 1);
    h_resp_free(&r);

    /* The janitor's purge deletes expired keys and only those. */
    char gone[96];
    key_for("purged", gone);
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, gone, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    snprintf(sql, sizeof sql, "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = '%s'",
             gone);
    assert_int_equal(h_sql_exec(srv.db_url, sql), 0);
    int64_t deadline = h_now_ms() + POLL_MS;
    long long left = -1;
    do {
        left = sql_int("SELECT count(*) FROM idempotency_keys WHERE key = '%s'", gone);
        if (left == 0) break;
        h_sleep_ms(100);
    } while (h_now_ms() < deadline);
    assert_int_equal(left, 0);
    assert_int_equal(sql_int("SELECT count(*) FROM idempotency_keys WHERE expires_at < now()"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM idempotency_keys WHERE key = '%s'", key), 1);
}

static void test_keys_are_scoped_per_caller(void **state)
{
    (void)state;
    char key[96];
    key_for("scoped", key);
    h_resp admin, merchant, r;
    assert_int_equal(post_key("/v1/orders", srv.admin_auth, key, order_a, &admin), 0);
    EXPECT_STATUS(&admin, 201);
    /* Another caller, same key, other body: its own fresh request. */
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_b, &merchant), 0);
    EXPECT_STATUS(&merchant, 201);
    expect_replayed(&merchant, 0);
    assert_int_equal(h_rint(&merchant, "total"), 2000);
    /* Same key, same body as the admin's: still not the admin's answer. */
    char *jwt = h_jwt_hs256(h_jwt_secret(), "idem_user", (long long)time(NULL) + 600);
    assert_non_null(jwt);
    char user_auth[1024];
    snprintf(user_auth, sizeof user_auth, "Bearer %s", jwt);
    free(jwt);
    assert_int_equal(post_key("/v1/orders", user_auth, key, order_a, &r), 0);
    EXPECT_STATUS(&r, 201);
    expect_replayed(&r, 0);
    assert_string_not_equal(h_rstr(&r, "id"), h_rstr(&admin, "id"));
    EXPECT_STR(h_rstr(&r, "user_id"), "idem_user");
    h_resp_free(&r);

    /* Each caller replays its own. */
    assert_int_equal(post_key("/v1/orders", srv.admin_auth, key, order_a, &r), 0);
    expect_same_answer(&admin, &r);
    expect_replayed(&r, 1);
    h_resp_free(&r);
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_b, &r), 0);
    expect_same_answer(&merchant, &r);
    expect_replayed(&r, 1);
    h_resp_free(&r);
    assert_int_equal(post_key("/v1/orders", srv.merchant_auth, key, order_a, &r), 0);
    EXPECT_ERROR(&r, 400, "idempotency_error", "idempotency_key_reused", NULL);
    h_resp_free(&r);
    h_resp_free(&admin);
    h_resp_free(&merchant);
    assert_int_equal(sql_int("SELECT count(DISTINCT scope) FROM idempotency_keys WHERE key = '%s'", key), 3);
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
        cmocka_unit_test(test_replay_returns_identical_status_and_body_with_replayed_header),
        cmocka_unit_test(test_replay_of_a_decline_returns_the_same_402),
        cmocka_unit_test(test_same_key_with_different_body_or_path_is_400_idempotency_key_reused),
        cmocka_unit_test(test_key_longer_than_255_characters_is_400),
        cmocka_unit_test(test_twenty_concurrent_requests_with_one_key_make_one_payment_and_one_charge),
        cmocka_unit_test(test_validation_failure_is_not_stored_so_the_fixed_body_succeeds),
        cmocka_unit_test(test_expired_key_executes_fresh_and_purge_removes_expired_rows),
        cmocka_unit_test(test_keys_are_scoped_per_caller),
        cmocka_unit_test(test_payd_stops_cleanly_without_sanitizer_reports),
    };
    return cmocka_run_group_tests_name("idempotency", tests, setup, h_group_stop);
}
