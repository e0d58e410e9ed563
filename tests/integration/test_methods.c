/*
 * test_methods.c - customers' saved payment methods on the mock gateway,
 * against a real payd and PostgreSQL: save, list (display data only), the
 * one-default rule under concurrent switches, delete (detached at the
 * provider too), paying with a saved method by payd's id, and the 4xx for
 * other customers' methods and bad input.
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

static int setup(void **state)
{
    h_payd_opts o = {.threads = 16, .pool = 16, .extra = "[gateway.mock]\nmodule = mock\n"};
    return h_group_start(state, &srv, &o);
}

static void post(const char *path, const char *body, h_resp *r)
{
    assert_int_equal(h_post_json(&srv, path, srv.merchant_auth, NULL, body, r), 0);
}

/* A new customer; its id goes to `cus`. */
static void customer(const char *user_id, char cus[64])
{
    char body[160];

    snprintf(body, sizeof body, "{\"email\":\"%s@example.com\",\"user_id\":\"%s\"}", user_id, user_id);
    h_create(&srv, "/v1/customers", srv.merchant_auth, body, 201, cus);
}

/* Saves `token` for `cus` (extra JSON members may follow); 201 expected,
 * the saved method's payd id goes to `pm` (may be NULL). */
static void save(const char *cus, const char *token, const char *extra, char *pm, h_resp *out)
{
    char path[128], body[256];
    h_resp r;

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods", cus);
    snprintf(body, sizeof body, "{\"payment_method\":\"%s\",\"gateway\":\"mock\"%s}", token, extra ? extra : "");
    post(path, body, &r);
    EXPECT_STATUS(&r, 201);
    if (pm) snprintf(pm, 64, "%s", h_rstr(&r, "id"));
    if (out) *out = r;
    else h_resp_free(&r);
}

static long long defaults_of(const char *cus)
{
    return sql_int("SELECT count(*) FROM payment_methods WHERE customer_id = '%s' AND is_default", cus);
}

static void test_saved_method_lists_display_data_and_never_the_provider_token(void **state)
{
    char cus[64], pm[64], path[128];
    h_resp r;

    (void)state;
    customer("user_m1", cus);
    save(cus, "pm_card_visa", NULL, pm, &r);
    EXPECT_STR(h_rstr(&r, "object"), "payment_method");
    EXPECT_STR(h_rstr(&r, "brand"), "visa");
    EXPECT_STR(h_rstr(&r, "last4"), "4242");
    assert_int_equal(h_rint(&r, "exp_month"), 12);
    assert_int_equal(h_rint(&r, "exp_year"), 2034);
    EXPECT_STR(h_rstr(&r, "gateway"), "mock");
    assert_int_equal(h_rbool(&r, "is_default"), 1); /* the first one */
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods", cus);
    assert_int_equal(h_get(&srv, path, srv.merchant_auth, &r), 0);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 1);
    EXPECT_STR(h_rstr(&r, "data.0.id"), pm);
    EXPECT_STR(h_rstr(&r, "data.0.last4"), "4242");
    /* Neither the token given nor the provider's saved ref is shown. */
    assert_null(strstr(r.body, "pm_card_visa"));
    assert_null(strstr(r.body, "mock_pm_"));
    h_resp_free(&r);
}

static void test_saving_with_set_default_moves_the_default(void **state)
{
    char cus[64], visa[64], master[64], path[128];
    h_resp r;

    (void)state;
    customer("user_m2", cus);
    save(cus, "pm_card_visa", NULL, visa, NULL);
    save(cus, "pm_card_mastercard", NULL, master, &r);
    assert_int_equal(h_rbool(&r, "is_default"), 0); /* not asked for */
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE id = '%s' AND is_default", visa), 1);

    /* Saving the same card again with set_default updates the one row. */
    save(cus, "pm_card_mastercard", ",\"set_default\":true", NULL, &r);
    EXPECT_STR(h_rstr(&r, "id"), master);
    assert_int_equal(h_rbool(&r, "is_default"), 1);
    h_resp_free(&r);
    assert_int_equal(defaults_of(cus), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE customer_id = '%s'", cus), 2);

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods", cus);
    post(path, "{\"payment_method\":\"pm_card_visa\",\"gateway\":\"mock\",\"set_default\":\"yes\"}", &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_invalid", "set_default");
    h_resp_free(&r);
}

#define SWITCHERS 24

typedef struct switcher {
    pthread_barrier_t *start;
    const char *method; /* POST (make default) unless DELETE */
    char path[192];
    long status;
    char id[64]; /* the answered method's id, "" when none */
} switcher;

static void *switcher_main(void *arg)
{
    switcher *s = arg;
    h_resp r;

    pthread_barrier_wait(s->start);
    if (h_request(&srv, s->method ? s->method : "POST", s->path, srv.merchant_auth, NULL, NULL, NULL, &r) == 0) {
        const char *id = r.status == 200 ? h_rstr(&r, "id") : NULL;
        s->status = r.status;
        snprintf(s->id, sizeof s->id, "%s", id ? id : "");
    }
    h_resp_free(&r);
    return NULL;
}

static void test_concurrent_default_switches_leave_exactly_one_default(void **state)
{
    char cus[64], pms[2][64];
    switcher sw[SWITCHERS];
    pthread_t threads[SWITCHERS];
    pthread_barrier_t start;

    (void)state;
    customer("user_m3", cus);
    save(cus, "pm_card_visa", NULL, pms[0], NULL);
    save(cus, "pm_card_mastercard", NULL, pms[1], NULL);

    for (int round = 0; round < 3; round++) {
        assert_int_equal(pthread_barrier_init(&start, NULL, SWITCHERS), 0);
        for (int i = 0; i < SWITCHERS; i++) {
            sw[i] = (switcher){.start = &start};
            snprintf(sw[i].path, sizeof sw[i].path, "/v1/customers/%s/payment_methods/%s/default", cus, pms[i % 2]);
            assert_int_equal(pthread_create(&threads[i], NULL, switcher_main, &sw[i]), 0);
        }
        for (int i = 0; i < SWITCHERS; i++) pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&start);
        /* Every switch succeeded (none lost a race to the unique index),
         * and exactly one method is the default afterwards. */
        for (int i = 0; i < SWITCHERS; i++) assert_int_equal(sw[i].status, 200);
        assert_int_equal(defaults_of(cus), 1);
    }
    /* Each switch was audited. */
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'customer:%s'"
                             " AND action = 'payment_method.default'", cus),
                     3 * SWITCHERS);
}

static void test_deleting_the_default_hands_it_to_the_newest_remaining_method(void **state)
{
    char cus[64], first[64], second[64], third[64], path[192];
    h_resp r;

    (void)state;
    customer("user_m8", cus);
    save(cus, "pm_card_visa", NULL, first, NULL);
    save(cus, "pm_card_mastercard", NULL, second, NULL);
    save(cus, "pm_card_visa", NULL, third, NULL);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE id = '%s' AND is_default", first), 1);

    /* Deleting the default: the newest remaining method takes over, and
     * the switch is audited. */
    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s", cus, first);
    assert_int_equal(h_request(&srv, "DELETE", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    assert_int_equal(defaults_of(cus), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE id = '%s' AND is_default", third), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'customer:%s'"
                             " AND action = 'payment_method.default' AND after->>'id' = '%s'", cus, third),
                     1);

    /* Deleting a method that is not the default moves nothing. */
    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s", cus, second);
    assert_int_equal(h_request(&srv, "DELETE", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE id = '%s' AND is_default", third), 1);

    /* Deleting the last one leaves no method and no default. */
    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s", cus, third);
    assert_int_equal(h_request(&srv, "DELETE", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE customer_id = '%s'", cus), 0);
}

/* Deletes of one method race switches of the default to it and to another
 * method. One delete wins (200) and the others are 404; a switch to the
 * deleted method either ran first (200, answering the method) or finds it
 * gone (404), never a 200 without a body; the customer keeps exactly one
 * default and one audit row for the delete. */
static void test_racing_deletes_and_default_switches_answer_200_or_404_and_keep_one_default(void **state)
{
    switcher sw[SWITCHERS];
    pthread_t threads[SWITCHERS];
    pthread_barrier_t start;

    (void)state;
    for (int round = 0; round < 3; round++) {
        char cus[64], user[32], pms[3][64];
        int deleted = 0;

        snprintf(user, sizeof user, "user_m9_%d", round);
        customer(user, cus);
        save(cus, "pm_card_visa", NULL, pms[0], NULL);
        save(cus, "pm_card_mastercard", NULL, pms[1], NULL);
        save(cus, "pm_card_visa", NULL, pms[2], NULL);
        assert_int_equal(pthread_barrier_init(&start, NULL, SWITCHERS), 0);
        for (int i = 0; i < SWITCHERS; i++) {
            int kind = i % 3; /* 0: delete pms[1], 1: default pms[1], 2: default pms[2] */
            sw[i] = (switcher){.start = &start, .method = kind == 0 ? "DELETE" : "POST"};
            if (kind == 0)
                snprintf(sw[i].path, sizeof sw[i].path, "/v1/customers/%s/payment_methods/%s", cus, pms[1]);
            else
                snprintf(sw[i].path, sizeof sw[i].path, "/v1/customers/%s/payment_methods/%s/default", cus,
                         pms[kind]);
            assert_int_equal(pthread_create(&threads[i], NULL, switcher_main, &sw[i]), 0);
        }
        for (int i = 0; i < SWITCHERS; i++) pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 0; i < SWITCHERS; i++) {
            int kind = i % 3;
            if (kind == 0) {
                assert_true(sw[i].status == 200 || sw[i].status == 404);
                deleted += sw[i].status == 200;
            } else if (kind == 1) {
                assert_true(sw[i].status == 200 || sw[i].status == 404);
                if (sw[i].status == 200) EXPECT_STR(sw[i].id, pms[1]);
            } else {
                assert_int_equal(sw[i].status, 200);
                EXPECT_STR(sw[i].id, pms[2]);
            }
        }
        assert_int_equal(deleted, 1);
        assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE customer_id = '%s'", cus), 2);
        assert_int_equal(defaults_of(cus), 1);
        assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'customer:%s'"
                                 " AND action = 'payment_method.deleted'", cus),
                         1);
    }
}

#define SAVERS 12

typedef struct saver {
    pthread_barrier_t *start;
    const char *cus;
    const char *token;
    long status;
    int is_default;
    char body[256]; /* the answer, for the failure message */
} saver;

static void *saver_main(void *arg)
{
    saver *s = arg;
    char path[128], body[160];
    h_resp r;

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods", s->cus);
    snprintf(body, sizeof body, "{\"payment_method\":\"%s\",\"gateway\":\"mock\",\"set_default\":true}", s->token);
    pthread_barrier_wait(s->start);
    if (h_post_json(&srv, path, srv.merchant_auth, NULL, body, &r) == 0) {
        s->status = r.status;
        s->is_default = h_rbool(&r, "is_default");
        snprintf(s->body, sizeof s->body, "%s", r.body ? r.body : "");
    }
    h_resp_free(&r);
    return NULL;
}

/* Pays a fresh order with saved method `pm` (payd id); the payment must
 * succeed, which proves the provider knows the method under the customer
 * reference payd recorded. */
static void pay_with(const char *pm)
{
    char order[64], body[256];
    h_resp r;

    post("/v1/orders", "{\"currency\":\"USD\",\"items\":[{\"name\":\"Pen\",\"unit_amount\":300}]}", &r);
    EXPECT_STATUS(&r, 201);
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true}", order, pm);
    post("/v1/payments", body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
}

/* A customer's first save on a gateway creates its customer at the
 * provider. Concurrent first saves must create exactly one: the first
 * holds the customer lock across that call and the others, waiting, find
 * the reference it recorded. Four fresh customers, twelve saves each.
 *
 * The derived idempotency key names the provider customer, so the first
 * save ("new") and the later saves of a token (under the customer's
 * reference) are different provider calls, while the later saves of one
 * token replay each other: two cards give three rows. Each row must be
 * payable, i.e. attached to the provider customer payd recorded. */
static void test_concurrent_first_saves_create_one_provider_customer_and_keep_one_default(void **state)
{
    saver sv[SAVERS];
    pthread_t threads[SAVERS];
    pthread_barrier_t start;

    (void)state;
    for (int round = 0; round < 4; round++) {
        char cus[64], user[32];
        snprintf(user, sizeof user, "user_m7_%d", round);
        customer(user, cus);
        assert_int_equal(pthread_barrier_init(&start, NULL, SAVERS), 0);
        for (int i = 0; i < SAVERS; i++) {
            sv[i] = (saver){.start = &start, .cus = cus, .token = i % 2 ? "pm_card_mastercard" : "pm_card_visa"};
            assert_int_equal(pthread_create(&threads[i], NULL, saver_main, &sv[i]), 0);
        }
        for (int i = 0; i < SAVERS; i++) pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&start);
        /* Every save succeeded and each was the default when it answered. */
        for (int i = 0; i < SAVERS; i++) {
            if (sv[i].status != 201 || sv[i].is_default != 1) {
                print_error("round %d, save %d of %s: status %ld, is_default %d: %s\n", round, i, sv[i].token,
                            sv[i].status, sv[i].is_default, sv[i].body);
                fail();
            }
        }
        assert_int_equal(sql_int("SELECT count(*) FROM customer_gateways WHERE customer_id = '%s'", cus), 1);
        assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE customer_id = '%s'", cus), 3);
        assert_int_equal(defaults_of(cus), 1);
        for (int i = 0; i < 3; i++) {
            char sql[192];
            char *pm;

            snprintf(sql, sizeof sql,
                     "SELECT id FROM payment_methods WHERE customer_id = '%s' ORDER BY id OFFSET %d LIMIT 1", cus, i);
            pm = h_sql_value(srv.db_url, sql);
            assert_non_null(pm);
            pay_with(pm);
            free(pm);
        }
    }
}

static void test_deleting_a_method_detaches_it_at_the_provider(void **state)
{
    char cus[64], pm[64], path[192], body[256], order[64];
    char *provider_ref;
    h_resp r;

    (void)state;
    customer("user_m4", cus);
    save(cus, "pm_card_visa", NULL, pm, NULL);
    {
        char sql[160];

        snprintf(sql, sizeof sql, "SELECT provider_ref FROM payment_methods WHERE id = '%s'", pm);
        provider_ref = h_sql_value(srv.db_url, sql);
    }
    assert_non_null(provider_ref);
    assert_true(strncmp(provider_ref, "mock_pm_", 8) == 0);

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s", cus, pm);
    assert_int_equal(h_request(&srv, "DELETE", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rbool(&r, "deleted"), 1);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE id = '%s'", pm), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'customer:%s'"
                             " AND action = 'payment_method.deleted'", cus),
                     1);

    /* The provider no longer knows the method: paying with its raw ref
     * is refused by the gateway. */
    post("/v1/orders", "{\"currency\":\"USD\",\"items\":[{\"name\":\"Mug\",\"unit_amount\":900}]}", &r);
    EXPECT_STATUS(&r, 201);
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true}", order, provider_ref);
    post("/v1/payments", body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "gateway_rejected", NULL);
    EXPECT_CONTAINS(h_err_message(&r), "unknown test payment method");
    h_resp_free(&r);
    free(provider_ref);

    /* Deleting it again: it is gone. */
    assert_int_equal(h_request(&srv, "DELETE", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
}

static void test_another_customers_method_is_404_and_stays(void **state)
{
    char alice[64], bob[64], pm[64], path[192];
    h_resp r;

    (void)state;
    customer("user_m5a", alice);
    customer("user_m5b", bob);
    save(alice, "pm_card_visa", NULL, pm, NULL);

    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s", bob, pm);
    assert_int_equal(h_request(&srv, "DELETE", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/customers/%s/payment_methods/%s/default", bob, pm);
    assert_int_equal(h_request(&srv, "POST", path, srv.merchant_auth, NULL, NULL, NULL, &r), 0);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payment_methods WHERE id = '%s' AND customer_id = '%s'", pm, alice),
                     1);

    /* An end user (JWT) sees only their own customer's methods. */
    {
        char *jwt = h_jwt_hs256(h_jwt_secret(), "user_m5b", 4102444800LL);
        char auth[1024];

        snprintf(auth, sizeof auth, "Bearer %s", jwt);
        free(jwt);
        snprintf(path, sizeof path, "/v1/customers/%s/payment_methods", alice);
        assert_int_equal(h_get(&srv, path, auth, &r), 0);
        EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
        h_resp_free(&r);
    }
}

static void test_paying_with_a_saved_method_by_payd_id_charges_it(void **state)
{
    char cus[64], pm[64], order[64], body[256], pay[64];
    h_resp r;

    (void)state;
    customer("user_m6", cus);
    save(cus, "pm_card_mastercard", NULL, pm, NULL);
    post("/v1/orders", "{\"currency\":\"EUR\",\"items\":[{\"name\":\"Chair\",\"unit_amount\":4500}]}", &r);
    EXPECT_STATUS(&r, 201);
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true}", order, pm);
    post("/v1/payments", body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    EXPECT_STR(h_rstr(&r, "gateway"), "mock");
    assert_int_equal(h_rint(&r, "amount_captured"), 4500);
    snprintf(pay, sizeof pay, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND customer_id = '%s'", pay, cus), 1);

    /* A saved method of one gateway cannot be sent to another. */
    post("/v1/orders", "{\"currency\":\"EUR\",\"items\":[{\"name\":\"Chair\",\"unit_amount\":4500}]}", &r);
    EXPECT_STATUS(&r, 201);
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"gateway\":\"nope\",\"payment_method\":\"%s\"}", order, pm);
    post("/v1/payments", body, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "gateway_mismatch", "gateway");
    h_resp_free(&r);
}

/* A new EUR order of 45.00; its id goes to `order`. */
static void chair_order(char order[64])
{
    h_create(&srv, "/v1/orders", srv.merchant_auth, "{\"currency\":\"EUR\",\"items\":[{\"name\":\"Chair\",\"unit_amount\":4500}]}",
             201, order);
}

static void test_a_payment_with_a_saved_method_shows_its_payd_id_and_never_the_provider_token(void **state)
{
    char cus[64], pm[64], order[64], body[256], pay[64], path[160];
    h_resp r;

    (void)state;
    customer("user_m7", cus);
    save(cus, "pm_card_visa", NULL, pm, NULL);

    /* Paid at creation. */
    chair_order(order);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true}", order, pm);
    post("/v1/payments", body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    EXPECT_STR(h_rstr(&r, "payment_method"), pm);
    assert_null(strstr(r.body, "mock_pm_"));
    snprintf(pay, sizeof pay, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/payments/%s", pay);
    h_get_ok(&srv, path, srv.merchant_auth, &r);
    EXPECT_STR(h_rstr(&r, "payment_method"), pm);
    assert_null(strstr(r.body, "mock_pm_"));
    h_resp_free(&r);
    /* The events carry the same representation. */
    snprintf(path, sizeof path, "/v1/events?object_id=%s", pay);
    h_get_ok(&srv, path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_true(json_array_size(h_jpath(r.json, "data")) >= 1);
    assert_null(strstr(r.body, "mock_pm_"));
    h_resp_free(&r);
    /* payd still holds the token, to re-issue an unanswered call. */
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND saved_method_id = '%s'"
                             " AND payment_method LIKE 'mock_pm_%%'", pay, pm), 1);

    /* Paid at confirmation: the saved method, its customer and the
     * customer's provider reference are kept on the row. */
    chair_order(order);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"gateway\":\"mock\"}", order);
    post("/v1/payments", body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_payment_method");
    snprintf(pay, sizeof pay, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/payments/%s/confirm", pay);
    snprintf(body, sizeof body, "{\"payment_method\":\"%s\"}", pm);
    post(path, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    EXPECT_STR(h_rstr(&r, "payment_method"), pm);
    assert_null(strstr(r.body, "mock_pm_"));
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM payments p JOIN customer_gateways g ON g.provider_ref = p.customer_ref"
                             " AND g.customer_id = p.customer_id WHERE p.id = '%s' AND p.saved_method_id = '%s'"
                             " AND p.customer_id = '%s'", pay, pm, cus), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_saved_method_lists_display_data_and_never_the_provider_token),
        cmocka_unit_test(test_saving_with_set_default_moves_the_default),
        cmocka_unit_test(test_concurrent_default_switches_leave_exactly_one_default),
        cmocka_unit_test(test_concurrent_first_saves_create_one_provider_customer_and_keep_one_default),
        cmocka_unit_test(test_deleting_a_method_detaches_it_at_the_provider),
        cmocka_unit_test(test_deleting_the_default_hands_it_to_the_newest_remaining_method),
        cmocka_unit_test(test_racing_deletes_and_default_switches_answer_200_or_404_and_keep_one_default),
        cmocka_unit_test(test_another_customers_method_is_404_and_stays),
        cmocka_unit_test(test_paying_with_a_saved_method_by_payd_id_charges_it),
        cmocka_unit_test(test_a_payment_with_a_saved_method_shows_its_payd_id_and_never_the_provider_token),
    };

    return cmocka_run_group_tests(tests, setup, h_group_stop);
}
