/*
 * test_auth_audit.c - who may do what, what payd refuses to hold, and the
 * tamper-evident audit log, against a real payd and PostgreSQL:
 *   - API keys and end-user JWTs: missing, wrong, expired or badly signed
 *     credentials are 401 (and rejected keys are audited); a user sees only
 *     their own orders (404, not 403, for anyone else's); admin routes need
 *     the admin role;
 *   - the PAN guard: a card number in any field is refused, except the
 *     mock's test cards as a payment method, which are never stored or
 *     logged;
 *   - the audit log: append-only for everyone, and `payd audit-verify` and
 *     the API find a row altered behind payd's back.
 */
#include <limits.h>
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

/* "Bearer <jwt>" for `sub`, valid for ten minutes, signed with `secret`. */
static void user_auth(const char *secret, const char *sub, long long exp_offset_s, char out[1024])
{
    char *jwt = h_jwt_hs256(secret, sub, (long long)time(NULL) + exp_offset_s);
    assert_non_null(jwt);
    snprintf(out, 1024, "Bearer %s", jwt);
    free(jwt);
}

static const char order_body[] = "{\"currency\":\"USD\",\"items\":[{\"name\":\"Book\",\"unit_amount\":1200}]}";

/* Does GET /v1/orders (as `auth`) list order `id`? */
static int listed(const char *auth, const char *id)
{
    h_resp r;
    get("/v1/orders?limit=100", auth, &r);
    EXPECT_STATUS(&r, 200);
    json_t *data = h_jpath(r.json, "data");
    assert_true(json_is_array(data));
    int found = 0;
    for (size_t i = 0; i < json_array_size(data); i++) {
        const char *got = json_string_value(h_jpath(json_array_get(data, i), "id"));
        found |= got && !strcmp(got, id);
    }
    h_resp_free(&r);
    return found;
}

/* Runs `sql` and expects the database to refuse it as append-only. */
static void expect_append_only(const char *sql)
{
    /* libpq directly: h_sql would log the expected error as a failure. */
    PGconn *conn = PQconnectdb(srv.db_url);
    assert_int_equal(PQstatus(conn), CONNECTION_OK);
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    const char *msg = PQresultErrorMessage(res);
    int refused = st == PGRES_FATAL_ERROR && msg && strstr(msg, "append-only");
    if (!refused) print_error("expected an append-only refusal for [%s], got %s: %s\n", sql, PQresStatus(st), msg);
    PQclear(res);
    PQfinish(conn);
    assert_true(refused);
}

/* ------------------------------------------------------------------------ */
/* Setup.                                                                   */
/* ------------------------------------------------------------------------ */

static int setup(void **state)
{
    h_payd_opts o = {
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
/* Authentication.                                                          */
/* ------------------------------------------------------------------------ */

static void test_missing_authorization_is_401_missing_credentials(void **state)
{
    (void)state;
    EXPECT_GET_ERROR(&srv, "/v1/orders", NULL, 401, "authentication_error", "missing_credentials", NULL);
    EXPECT_POST_ERROR(&srv, "/v1/orders", NULL, order_body, 401, "authentication_error", "missing_credentials", NULL);
}

static void test_wrong_key_is_401_invalid_credentials_and_audited(void **state)
{
    (void)state;
    /* Well-formed, right id, wrong secret; and an unknown id. */
    char wrong[200];
    snprintf(wrong, sizeof wrong, "%s", srv.merchant_auth);
    size_t n = strlen(wrong);
    wrong[n - 1] = wrong[n - 1] == '0' ? '1' : '0';
    const char *const creds[] = {
        wrong,
        "Bearer payd_000000000000_0000000000000000000000000000000000000000000000000000000000000000",
        "Bearer not-a-key",
        "Basic dXNlcjpwYXNz",
    };
    for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
        h_resp r;
        get("/v1/orders", creds[i], &r);
        EXPECT_ERROR(&r, 401, "authentication_error", "invalid_credentials", NULL);
        assert_non_null(r.request_id);
        /* The rejection is in the audit log under this request's id. */
        assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action = 'auth.rejected'"
                                 " AND request_id = '%s' AND after->>'path' = '/v1/orders'",
                                 r.request_id),
                         1);
        h_resp_free(&r);
    }
    /* And the credential itself is never written there or to the log. */
    const char *secret = strrchr(srv.merchant_key, '_') + 1;
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE after::text LIKE '%%%s%%'", secret), 0);
    assert_int_equal(h_log_contains(&srv, secret), 0);
}

static void test_expired_jwt_is_401(void **state)
{
    (void)state;
    char auth[1024];
    user_auth(h_jwt_secret(), "late_user", -3600, auth);
    EXPECT_GET_ERROR(&srv, "/v1/orders", auth, 401, "authentication_error", "invalid_credentials", NULL);
    /* Without exp at all, too. */
    char *jwt = h_jwt_hs256_claims(h_jwt_secret(), "{\"sub\":\"forever_user\"}");
    assert_non_null(jwt);
    snprintf(auth, sizeof auth, "Bearer %s", jwt);
    free(jwt);
    EXPECT_GET_ERROR(&srv, "/v1/orders", auth, 401, "authentication_error", "invalid_credentials", NULL);
}

static void test_jwt_signed_with_another_secret_is_401(void **state)
{
    (void)state;
    char auth[1024];
    user_auth("not-the-configured-secret-0123456789", "mallory", 600, auth);
    EXPECT_GET_ERROR(&srv, "/v1/orders", auth, 401, "authentication_error", "invalid_credentials", NULL);
    EXPECT_POST_ERROR(&srv, "/v1/orders", auth, order_body, 401, "authentication_error", "invalid_credentials", NULL);
    /* alg none is not HS256. */
    snprintf(auth, sizeof auth, "Bearer %s",
             "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5IiwiZXhwIjo0MTAyNDQ0ODAwfQ.");
    EXPECT_GET_ERROR(&srv, "/v1/orders", auth, 401, "authentication_error", "invalid_credentials", NULL);
}

static void test_users_see_only_their_own_orders_and_others_get_404(void **state)
{
    (void)state;
    char alice[1024], bob[1024];
    user_auth(h_jwt_secret(), "alice", 600, alice);
    user_auth(h_jwt_secret(), "bob", 600, bob);
    h_resp r;
    post("/v1/orders", alice, order_body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "user_id"), "alice");
    char id[64];
    snprintf(id, sizeof id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE id = '%s' AND user_id = 'alice'", id), 1);

    /* A user cannot create an order in someone else's name. */
    post("/v1/orders", alice,
         "{\"currency\":\"USD\",\"user_id\":\"bob\",\"items\":[{\"name\":\"Gift\",\"unit_amount\":100}]}", &r);
    assert_true(r.status == 201 || r.status == 400);
    if (r.status == 201) EXPECT_STR(h_rstr(&r, "user_id"), "alice");
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE user_id = 'bob'"), 0);

    char path[160];
    snprintf(path, sizeof path, "/v1/orders/%s", id);
    get(path, alice, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "id"), id);
    h_resp_free(&r);
    EXPECT_GET_ERROR(&srv, path, bob, 404, "invalid_request_error", "resource_missing", NULL);
    assert_true(listed(alice, id));
    assert_false(listed(bob, id));
    /* Even asking for alice's orders by filter shows bob nothing. */
    get("/v1/orders?user_id=alice", bob, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 0);
    h_resp_free(&r);

    /* Bob can neither cancel nor pay alice's order. */
    snprintf(path, sizeof path, "/v1/orders/%s/cancel", id);
    EXPECT_POST_ERROR(&srv, path, bob, NULL, 404, "invalid_request_error", "resource_missing", NULL);
    char body[256];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", id);
    EXPECT_POST_ERROR(&srv, "/v1/payments", bob, body, 404, "invalid_request_error", "resource_missing", NULL);

    /* Alice pays; her payment is hers alone. */
    post("/v1/payments", alice, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    char pay_id[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    get(path, alice, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    EXPECT_GET_ERROR(&srv, path, bob, 404, "invalid_request_error", "resource_missing", NULL);
    snprintf(path, sizeof path, "/v1/payments?order_id=%s", id);
    get(path, bob, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 0);
    h_resp_free(&r);
    /* Keys see everything. */
    get(path, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 1);
    h_resp_free(&r);
}

static void test_admin_routes_need_the_admin_role(void **state)
{
    (void)state;
    char user[1024];
    user_auth(h_jwt_secret(), "carol", 600, user);
    static const char *const paths[] = {"/v1/admin/transactions", "/v1/admin/audit", "/v1/admin/audit/verify"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        h_resp r;
        EXPECT_GET_ERROR(&srv, paths[i], srv.merchant_auth, 403, "permission_error", "insufficient_role", NULL);
        EXPECT_GET_ERROR(&srv, paths[i], user, 403, "permission_error", "insufficient_role", NULL);
        get(paths[i], srv.admin_auth, &r);
        EXPECT_STATUS(&r, 200);
        h_resp_free(&r);
    }
    EXPECT_GET_ERROR(&srv, "/v1/events", user, 403, "permission_error", "insufficient_role", NULL);
}

/* ------------------------------------------------------------------------ */
/* PAN guard.                                                               */
/* ------------------------------------------------------------------------ */

static void test_card_number_in_any_field_is_400_card_data_not_allowed_naming_it(void **state)
{
    (void)state;
    static const struct {
        const char *body, *param;
    } cases[] = {
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"4111111111111111\",\"unit_amount\":100}]}", "items.0.name"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"ok\",\"unit_amount\":100},"
         "{\"name\":\"card 4111 1111 1111 1111 thanks\",\"unit_amount\":100}]}",
         "items.1.name"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"ok\",\"unit_amount\":100}],"
         "\"metadata\":{\"note\":\"5500-0000-0000-0004\"}}",
         "metadata.note"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"ok\",\"unit_amount\":100}],"
         "\"shipping_address\":{\"line1\":\"378282246310005\"}}",
         "shipping_address.line1"},
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"ok\",\"unit_amount\":100}],"
         "\"metadata\":{\"n\":4111111111111111}}",
         "metadata.n"},
        /* The mock's test cards are card numbers outside payment_method. */
        {"{\"currency\":\"USD\",\"items\":[{\"name\":\"4242424242424242\",\"unit_amount\":100}]}", "items.0.name"},
    };
    long long before = sql_int("SELECT count(*) FROM orders");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_resp r;
        post("/v1/orders", srv.merchant_auth, cases[i].body, &r);
        if (r.status != 400) print_error("case %zu: %s\n", i, cases[i].body);
        EXPECT_ERROR(&r, 400, "invalid_request_error", "card_data_not_allowed", cases[i].param);
        /* The number is not echoed back. */
        assert_null(strstr(r.body, "4111"));
        h_resp_free(&r);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM orders"), before);
    assert_int_equal(h_log_contains(&srv, "4111111111111111"), 0);
    assert_int_equal(h_log_contains(&srv, "4111 1111 1111 1111"), 0);
    assert_int_equal(h_log_contains(&srv, "5500-0000-0000-0004"), 0);
}

static void test_card_number_followed_by_expiry_and_cvc_is_refused(void **state)
{
    (void)state;
    /* How people paste card data into a free-text field. */
    static const char *const notes[] = {"4111 1111 1111 1111 12/25", "4111111111111111 123"};
    for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"ok\",\"unit_amount\":100}],"
                 "\"metadata\":{\"note\":\"%s\"}}",
                 notes[i]);
        h_resp r;
        post("/v1/orders", srv.merchant_auth, body, &r);
        if (r.status != 400) print_error("accepted a card number in \"%s\"\n", notes[i]);
        EXPECT_ERROR(&r, 400, "invalid_request_error", "card_data_not_allowed", "metadata.note");
        h_resp_free(&r);
    }
    assert_int_equal(sql_int("SELECT count(*) FROM orders WHERE metadata::text LIKE '%%4111%%'"), 0);
}

static void test_card_number_as_a_json_key_is_refused_too(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/orders", srv.merchant_auth, NULL,
                                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Book\",\"unit_amount\":1200}],"
                                 "\"metadata\":{\"4111111111111111\":\"exp 12/30\"}}",
                                 &r), 0);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "card_data_not_allowed", NULL);
    h_resp_free(&r);
    assert_int_equal(h_sql_int(srv.db_url, "SELECT count(*) FROM orders WHERE metadata::text LIKE '%4111111111111111%'", -1), 0);
}

static void test_luhn_invalid_and_short_or_long_digit_runs_pass_the_guard(void **state)
{
    (void)state;
    h_resp r;
    post("/v1/orders", srv.merchant_auth,
         "{\"currency\":\"USD\",\"items\":[{\"name\":\"SKU 4111111111111112\",\"unit_amount\":100}],"
         "\"metadata\":{\"tracking\":\"123456789012\",\"ref\":\"41111111111111111111\"}}",
         &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "items.0.name"), "SKU 4111111111111112");
    EXPECT_STR(h_rstr(&r, "metadata.tracking"), "123456789012");
    h_resp_free(&r);
}

static void test_mock_test_card_as_payment_method_succeeds_but_is_never_stored_or_logged(void **state)
{
    (void)state;
    h_resp r;
    post("/v1/orders", srv.merchant_auth, order_body, &r);
    EXPECT_STATUS(&r, 201);
    char order[64], body[256];
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"4242424242424242\",\"confirm\":true}", order);
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_null(strstr(r.body, "4242424242424242"));
    char pay_id[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    /* With separators too, on another order. */
    h_create(&srv, "/v1/orders", srv.merchant_auth, order_body, 201, order);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"4242 4242 4242 4242\",\"confirm\":true}",
             order);
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);

    /* A test card elsewhere in a payment body is still refused. */
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"description\":\"4242424242424242\"}", order);
    EXPECT_POST_ERROR(&srv, "/v1/payments", srv.merchant_auth, body,
                      400, "invalid_request_error", "card_data_not_allowed", "description");

    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE payment_method LIKE '%%4242424242424242%%'"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE payment_method LIKE '%%4242 4242%%'"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE before::text LIKE '%%4242424242424242%%'"
                             " OR after::text LIKE '%%4242424242424242%%'"),
                     0);
    assert_int_equal(sql_int("SELECT count(*) FROM events WHERE data::text LIKE '%%4242424242424242%%'"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM idempotency_keys WHERE response_body LIKE '%%4242424242424242%%'"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM webhook_events WHERE body LIKE '%%4242424242424242%%'"), 0);
    assert_int_equal(h_log_contains(&srv, "4242424242424242"), 0);
    assert_int_equal(h_log_contains(&srv, "4242 4242 4242 4242"), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE id = '%s' AND status = 'succeeded'", pay_id), 1);
}

/* ------------------------------------------------------------------------ */
/* Audit log.                                                               */
/* ------------------------------------------------------------------------ */

static int audit_verify_cli(char *out, size_t len)
{
    const char *args[] = {"audit-verify", NULL};
    return h_payd_cli(&srv, args, out, len);
}

static void test_audit_log_verifies_after_checkout_and_is_append_only(void **state)
{
    (void)state;
    h_resp r;
    post("/v1/orders", srv.merchant_auth, order_body, &r);
    EXPECT_STATUS(&r, 201);
    char order[64], body[256], path[160];
    snprintf(order, sizeof order, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order);
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    char pay_id[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    /* Every state change left a row, with actor and request id. */
    assert_true(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'order:%s'", order) >= 2);
    assert_true(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'", pay_id) >= 2);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'"
                             " AND (actor NOT LIKE 'key:%%' AND actor NOT LIKE 'webhook:%%' AND actor NOT LIKE 'system%%')",
                             pay_id),
                     0);
    snprintf(path, sizeof path, "/v1/admin/audit?entity=payment:%s&limit=100", pay_id);
    get(path, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_true(json_array_size(h_jpath(r.json, "data")) >= 2);
    h_resp_free(&r);

    char out[8192];
    int rc = audit_verify_cli(out, sizeof out);
    if (rc != 0) print_error("payd audit-verify exited %d:\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, "AddressSanitizer"));
    get("/v1/admin/audit/verify", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rbool(&r, "ok"), 1);
    assert_true(json_is_null(h_jpath(r.json, "first_broken")));
    assert_true(h_rint(&r, "rows") > 0);
    h_resp_free(&r);

    /* Append-only, even for the superuser payd's tests connect as. */
    char sql[512];
    snprintf(sql, sizeof sql, "UPDATE audit_log SET action = 'tampered' WHERE entity = 'payment:%s'", pay_id);
    expect_append_only(sql);
    snprintf(sql, sizeof sql, "DELETE FROM audit_log WHERE entity = 'payment:%s'", pay_id);
    expect_append_only(sql);
    expect_append_only("TRUNCATE audit_log");
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action = 'tampered'"), 0);
    assert_true(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'payment:%s'", pay_id) >= 2);
    /* The ledger too. */
    snprintf(sql, sizeof sql, "UPDATE ledger SET amount = 1 WHERE payment_id = '%s'", pay_id);
    expect_append_only(sql);
    snprintf(sql, sizeof sql, "DELETE FROM ledger WHERE payment_id = '%s'", pay_id);
    expect_append_only(sql);
    assert_int_equal(sql_int("SELECT amount FROM ledger WHERE payment_id = '%s'", pay_id), 1200);
}

/* Runs last: it breaks the chain on purpose. */
static void test_audit_verify_detects_a_row_altered_directly_in_sql(void **state)
{
    (void)state;
    char *entity = h_sql_value(srv.db_url, "SELECT entity FROM audit_log WHERE id ="
                                           " (SELECT min(id) FROM audit_log WHERE entity LIKE 'payment:%')");
    assert_non_null(entity);
    long long seq = h_sql_int(srv.db_url, "SELECT seq FROM audit_log WHERE id ="
                                          " (SELECT min(id) FROM audit_log WHERE entity LIKE 'payment:%')", -1);
    assert_true(seq >= 1);
    /* Whatever sorts before it verifies, so this row is the first break. */
    assert_int_equal(h_sql_exec(srv.db_url,
                                "SET session_replication_role = replica;"
                                " UPDATE audit_log SET action = 'tampered' WHERE id ="
                                " (SELECT min(id) FROM audit_log WHERE entity LIKE 'payment:%');"),
                     0);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE action = 'tampered'"), 1);

    char out[8192];
    int rc = audit_verify_cli(out, sizeof out);
    assert_int_not_equal(rc, 0);
    assert_true(rc < 128); /* a verdict, not a crash */
    assert_null(strstr(out, "AddressSanitizer"));
    if (!strstr(out, entity)) {
        print_error("audit-verify output does not name %s:\n%s\n", entity, out);
        free(entity);
        fail();
    }

    h_resp r;
    get("/v1/admin/audit/verify", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rbool(&r, "ok"), 0);
    const char *broken = h_rstr(&r, "first_broken.entity");
    int same = broken && !strcmp(broken, entity);
    if (!same) print_error("first_broken %s, expected entity %s seq %lld\n", r.body, entity, seq);
    free(entity);
    assert_true(same);
    assert_int_equal(h_rint(&r, "first_broken.seq"), seq);
    assert_non_null(h_rstr(&r, "first_broken.reason"));
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
        cmocka_unit_test(test_missing_authorization_is_401_missing_credentials),
        cmocka_unit_test(test_wrong_key_is_401_invalid_credentials_and_audited),
        cmocka_unit_test(test_expired_jwt_is_401),
        cmocka_unit_test(test_jwt_signed_with_another_secret_is_401),
        cmocka_unit_test(test_users_see_only_their_own_orders_and_others_get_404),
        cmocka_unit_test(test_admin_routes_need_the_admin_role),
        cmocka_unit_test(test_card_number_in_any_field_is_400_card_data_not_allowed_naming_it),
        cmocka_unit_test(test_card_number_followed_by_expiry_and_cvc_is_refused),
        cmocka_unit_test(test_card_number_as_a_json_key_is_refused_too),
        cmocka_unit_test(test_luhn_invalid_and_short_or_long_digit_runs_pass_the_guard),
        cmocka_unit_test(test_mock_test_card_as_payment_method_succeeds_but_is_never_stored_or_logged),
        cmocka_unit_test(test_audit_log_verifies_after_checkout_and_is_append_only),
        cmocka_unit_test(test_audit_verify_detects_a_row_altered_directly_in_sql),
        cmocka_unit_test(test_payd_stops_cleanly_without_sanitizer_reports),
    };
    return cmocka_run_group_tests_name("auth_audit", tests, setup, h_group_stop);
}
