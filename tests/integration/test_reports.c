/*
 * test_reports.c - admin reports, the admin order list and reconciliation,
 * against a real payd, PostgreSQL and two mock gateway instances.
 *
 * The group setup seeds, through the API, a mix no report may blur:
 *   USD on `mock`:    a full refund, a partial refund, a dispute (a signed
 *                     mock webhook), a decline, a partial manual capture and
 *                     a plain success (the one the reconcile test tampers
 *                     with at the mock);
 *   EUR on `mock_eu`: a partial refund and a decline;
 *   JPY on `mock`:    a success and a dispute over the whole charge.
 * Every report figure is then checked against sums computed straight from
 * the ledger and payments tables with SQL, and against hand-computed values.
 *
 * What is guarded: summary money equals the ledger per currency and group,
 * currencies are never added together, counts by status and success rate,
 * bad ranges and group_by answer 400 in the one error shape; `payd report`
 * prints the API's JSON and a CSV with integer and decimal amounts;
 * GET /v1/admin/orders lists every user's orders with filters and pages;
 * `payd reconcile` is clean (exit 0, no lines) until the test changes an
 * intent and a refund at the mock (test_controls = on), then names each
 * payment and kind of mismatch and exits 1; in-process mode loads the
 * modules itself (and, the mock's state being per process, finds none of
 * the server's payments: why --server exists).
 *
 * The range is yesterday .. the day after tomorrow (UTC), so a run across
 * midnight still covers every row; day rows are compared per day.
 */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
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

#define SECRET "whsec_reports"
#define SECRET_EU "whsec_reports_eu"

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)

/* The seeded range, as API parameters and as SQL timestamptz literals. */
static char from_day[16], to_day[16], from_sql[40], to_sql[40];

/* Seeded payments (ids and provider refs) the tests refer to. */
static char usd_plain_pay[64], usd_plain_ref[64];
static char usd_partial_pay[64], usd_partial_refund[64], usd_partial_refund_ref[64];
static int mock_payments_seeded;

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

#define post(path, auth, body, r) h_post_ok(&srv, (path), (auth), (body), (r))
#define get(path, auth, r) h_get_ok(&srv, (path), (auth), (r))

/* An order of one item; its id into id. */
static void new_order(const char *auth, const char *currency, long long total, char id[64])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"currency\":\"%s\",\"items\":[{\"name\":\"Ledger\",\"quantity\":1,\"unit_amount\":%lld}]}", currency,
             total);
    h_create(&srv, "/v1/orders", auth, body, 201, id);
}

/* A new order paid with `method` (`extra` JSON members appended); expects
 * the HTTP status and the payment status; copies the payment id and ref. */
static void pay(const char *currency, long long total, const char *method, const char *extra, long status,
                const char *pstatus, char pay_id[64], char ref[64])
{
    char order[64], body[512];
    new_order(srv.merchant_auth, currency, total, order);
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"%s\",\"confirm\":true%s}", order, method,
             extra);
    h_resp r;
    post("/v1/payments", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, status);
    json_t *p = status == 402 ? h_jpath(r.json, "payment") : r.json;
    EXPECT_STR(json_string_value(h_jpath(p, "status")), pstatus);
    snprintf(pay_id, 64, "%s", json_string_value(h_jpath(p, "id")));
    snprintf(ref, 64, "%s", json_string_value(h_jpath(p, "provider_ref")));
    h_resp_free(&r);
}

/* A refund of `amount`; copies its id and provider ref when asked. */
static void refund(const char *pay_id, long long amount, char *id, char *ref)
{
    char body[256];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":%lld}", pay_id, amount);
    h_resp r;
    post("/v1/refunds", srv.merchant_auth, body, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    if (id) snprintf(id, 64, "%s", h_rstr(&r, "id"));
    if (ref) snprintf(ref, 64, "%s", h_rstr(&r, "provider_ref"));
    h_resp_free(&r);
}

/* Delivers a dispute.created for a payment as the mock would sign it. */
static void dispute(const char *gateway, const char *secret, const char *pay_id, const char *ref,
                    const char *currency, long long amount)
{
    static int seq;
    char body[1024], sig[256];
    long long t = (long long)time(NULL);
    snprintf(body, sizeof body,
             "{\"id\":\"mevt_rep_%d_%d\",\"type\":\"dispute.created\",\"created\":%lld,\"data\":{\"provider_ref\":\"%s\","
             "\"payment_id\":\"%s\",\"amount\":%lld,\"currency\":\"%s\"}}",
             (int)getpid(), ++seq, t, ref, pay_id, amount, currency);
    h_mock_signature(secret, t, body, sig, sizeof sig);
    h_resp r;
    h_post_webhook(&srv, gateway, sig, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "applied");
    h_resp_free(&r);
}

/* GET the summary for the seeded range; expects 200. */
static void summary(const char *group_by, h_resp *r)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/admin/reports/summary?from=%s&to=%s&group_by=%s", from_day, to_day, group_by);
    get(path, srv.admin_auth, r);
    EXPECT_STATUS(r, 200);
}

/* A ledger sum over the range for one currency, entry types `types` (SQL
 * list), and an extra SQL condition. */
static long long ledger_sum(const char *currency, const char *types, const char *cond)
{
    return sql_int("SELECT coalesce(sum(amount), 0) FROM ledger WHERE currency = '%s' AND entry_type IN (%s)"
                   " AND created_at >= '%s' AND created_at < '%s' AND %s",
                   currency, types, from_sql, to_sql, cond);
}

/* Asserts one summary row's money and counts equal the tables, restricted
 * by `ledger_cond` / `pay_cond` (SQL on ledger / payments rows). */
static void expect_row_equals_tables(json_t *row, const char *ledger_cond, const char *pay_cond)
{
    const char *cur = json_string_value(json_object_get(row, "currency"));
    assert_non_null(cur);
    long long gross = ledger_sum(cur, "'charge', 'capture'", ledger_cond);
    long long refunded = ledger_sum(cur, "'refund'", ledger_cond);
    long long disputed = ledger_sum(cur, "'chargeback'", ledger_cond);
    long long fees = ledger_sum(cur, "'fee'", ledger_cond);
    assert_int_equal(json_integer_value(json_object_get(row, "gross_captured")), gross);
    assert_int_equal(json_integer_value(json_object_get(row, "refunded")), refunded);
    assert_int_equal(json_integer_value(json_object_get(row, "disputed")), disputed);
    assert_int_equal(json_integer_value(json_object_get(row, "fees")), fees);
    assert_int_equal(json_integer_value(json_object_get(row, "net")), gross - refunded - disputed - fees);
    assert_int_equal(json_integer_value(json_object_get(row, "dispute_count")),
                     sql_int("SELECT count(*) FROM ledger WHERE currency = '%s' AND entry_type = 'chargeback'"
                             " AND created_at >= '%s' AND created_at < '%s' AND %s",
                             cur, from_sql, to_sql, ledger_cond));
    assert_int_equal(json_integer_value(json_object_get(row, "payment_count")),
                     sql_int("SELECT count(*) FROM payments WHERE currency = '%s' AND created_at >= '%s'"
                             " AND created_at < '%s' AND %s",
                             cur, from_sql, to_sql, pay_cond));
    json_t *by = json_object_get(row, "payments_by_status");
    const char *key;
    json_t *v;
    json_object_foreach(by, key, v) {
        assert_int_equal(json_integer_value(v),
                         sql_int("SELECT count(*) FROM payments WHERE currency = '%s' AND status = '%s'"
                                 " AND created_at >= '%s' AND created_at < '%s' AND %s",
                                 cur, key, from_sql, to_sql, pay_cond));
    }
}

/* The row of `data` for `currency` (and, unless NULL, key=value). */
static json_t *row_of(json_t *data, const char *currency, const char *key, const char *value)
{
    size_t i;
    json_t *row;
    json_array_foreach(data, i, row) {
        if (strcmp(json_string_value(json_object_get(row, "currency")), currency) != 0) continue;
        if (key && strcmp(json_string_value(json_object_get(row, key)), value) != 0) continue;
        return row;
    }
    return NULL;
}

/* Runs payd with args (NULL-terminated; no -c added); stdout into out,
 * stderr into err. Returns the exit code. */
static int run_payd(const char *const args[], char *out, size_t out_len, char *err, size_t err_len)
{
    const char *argv[24];
    int n = 0;
    argv[n++] = h_payd_bin();
    for (int i = 0; args[i] && n < 23; i++) argv[n++] = args[i];
    argv[n] = NULL;
    return h_run_ex(argv, out, out_len, err, err_len, 120000);
}

/* Lines of `text` (non-empty ones). */
static int count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        if ((nl ? nl : p + strlen(p)) > p) n++;
        if (!nl) break;
        p = nl + 1;
    }
    return n;
}

/* 1 when some line of `text` starts with `prefix`. */
static int has_line_starting(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, prefix, n) == 0) return 1;
    return 0;
}

/* `payd reconcile --server` against srv for `gateway` over the range. */
static int reconcile_server(const char *gateway, char *out, size_t out_len, char *err, size_t err_len)
{
    setenv("PAYD_ADMIN_KEY", srv.admin_key, 1);
    const char *args[] = {"reconcile", "--server", srv.base_url, "--gateway", gateway,
                          "--from", from_day, "--to", to_day, NULL};
    int rc = run_payd(args, out, out_len, err, err_len);
    unsetenv("PAYD_ADMIN_KEY");
    return rc;
}

/* POSTs a form to the mock's test controls; expects `status`. */
static void mock_control(const char *path, const char *form, long status)
{
    h_resp r;
    assert_int_equal(h_request(&srv, "POST", path, NULL, NULL, "application/x-www-form-urlencoded", form, &r), 0);
    EXPECT_STATUS(&r, status);
    h_resp_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Setup: payd, then the seeded mix.                                        */
/* ------------------------------------------------------------------------ */

static void day_text(time_t t, char out[16])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y-%m-%d", &tm);
}

static int setup(void **state)
{
    h_payd_opts o = {
        .extra = "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = " SECRET "\n"
                 "webhooks = off\n"
                 "test_controls = on\n"
                 "[gateway.mock_eu]\n"
                 "module = mock\n"
                 "webhook_secret = " SECRET_EU "\n"
                 "webhooks = off\n"
                 "[routing]\n"
                 "default = mock\n"
                 "currency.EUR = mock_eu\n"
                 "[admin]\n"
                 "report_max_days = 31\n",
    };
    if (h_group_start(state, &srv, &o) != 0) return -1;
    time_t now = time(NULL);
    day_text(now - 86400, from_day);
    day_text(now + 2 * 86400, to_day);
    snprintf(from_sql, sizeof from_sql, "%s 00:00:00+00", from_day);
    snprintf(to_sql, sizeof to_sql, "%s 00:00:00+00", to_day);
    return 0;
}

/* The seeded mix (see the file comment); run as the first test so a
 * failure shows where. */
static void test_seed_a_mix_of_currencies_refunds_and_disputes(void **state)
{
    (void)state;
    char pay_id[64], ref[64];
    /* USD on mock. */
    pay("USD", 5000, "pm_card_visa", "", 201, "succeeded", pay_id, ref);
    refund(pay_id, 5000, NULL, NULL);
    pay("USD", 3000, "pm_card_visa", "", 201, "succeeded", usd_partial_pay, ref);
    refund(usd_partial_pay, 1000, usd_partial_refund, usd_partial_refund_ref);
    pay("USD", 2000, "pm_card_visa", "", 201, "succeeded", pay_id, ref);
    dispute("mock", SECRET, pay_id, ref, "USD", 1200);
    pay("USD", 1500, "pm_card_chargeDeclined", "", 402, "failed", pay_id, ref);
    pay("USD", 2500, "pm_card_visa", ",\"capture_method\":\"manual\"", 201, "requires_capture", pay_id, ref);
    char path[128];
    snprintf(path, sizeof path, "/v1/payments/%s/capture", pay_id);
    h_resp r;
    post(path, srv.merchant_auth, "{\"amount\":2000}", &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    pay("USD", 4000, "pm_card_visa", "", 201, "succeeded", usd_plain_pay, usd_plain_ref);
    /* EUR on mock_eu (routing by currency). */
    pay("EUR", 7000, "pm_card_visa", "", 201, "succeeded", pay_id, ref);
    refund(pay_id, 2500, NULL, NULL);
    pay("EUR", 1000, "pm_card_insufficientFunds", "", 402, "failed", pay_id, ref);
    /* JPY on mock: a dispute with no amount takes the whole charge. */
    pay("JPY", 12000, "pm_card_visa", "", 201, "succeeded", pay_id, ref);
    pay("JPY", 500, "pm_card_visa", "", 201, "succeeded", pay_id, ref);
    dispute("mock", SECRET, pay_id, ref, "JPY", 500);
    mock_payments_seeded = 8;

    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE gateway = 'mock_eu'"), 2);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE entry_type = 'capture'"), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM ledger WHERE entry_type = 'chargeback'"), 2);
}

/* ------------------------------------------------------------------------ */
/* The summary.                                                             */
/* ------------------------------------------------------------------------ */

static void test_summary_by_currency_equals_the_ledger_and_never_mixes_currencies(void **state)
{
    (void)state;
    h_resp r;
    summary("currency", &r);
    EXPECT_STR(h_rstr(&r, "object"), "report.summary");
    EXPECT_STR(h_rstr(&r, "group_by"), "currency");
    char want_from[40];
    snprintf(want_from, sizeof want_from, "%sT00:00:00Z", from_day);
    EXPECT_STR(h_rstr(&r, "from"), want_from);
    json_t *data = h_jpath(r.json, "data");
    /* One row per currency, sorted, none merged. */
    assert_int_equal(json_array_size(data), 3);
    EXPECT_STR(json_string_value(h_jpath(data, "0.currency")), "EUR");
    EXPECT_STR(json_string_value(h_jpath(data, "1.currency")), "JPY");
    EXPECT_STR(json_string_value(h_jpath(data, "2.currency")), "USD");
    size_t i;
    json_t *row;
    json_array_foreach(data, i, row) {
        assert_null(json_object_get(row, "gateway"));
        assert_null(json_object_get(row, "day"));
        expect_row_equals_tables(row, "true", "true");
    }
    /* By hand: USD 5000 + 3000 + 2000 + 2000 (partial capture) + 4000. */
    json_t *usd = row_of(data, "USD", NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(usd, "gross_captured")), 16000);
    assert_int_equal(json_integer_value(json_object_get(usd, "refunded")), 6000);
    assert_int_equal(json_integer_value(json_object_get(usd, "disputed")), 1200);
    assert_int_equal(json_integer_value(json_object_get(usd, "net")), 8800);
    assert_int_equal(json_integer_value(json_object_get(usd, "dispute_count")), 1);
    assert_int_equal(json_integer_value(json_object_get(usd, "payment_count")), 6);
    assert_int_equal(json_integer_value(h_jpath(usd, "payments_by_status.succeeded")), 2);
    assert_int_equal(json_integer_value(h_jpath(usd, "payments_by_status.refunded")), 1);
    assert_int_equal(json_integer_value(h_jpath(usd, "payments_by_status.partially_refunded")), 1);
    assert_int_equal(json_integer_value(h_jpath(usd, "payments_by_status.disputed")), 1);
    assert_int_equal(json_integer_value(h_jpath(usd, "payments_by_status.failed")), 1);
    assert_int_equal(json_integer_value(h_jpath(usd, "payments_by_status.canceled")), 0);
    EXPECT_STR(json_string_value(json_object_get(usd, "success_rate")), "0.8333");
    json_t *eur = row_of(data, "EUR", NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(eur, "gross_captured")), 7000);
    assert_int_equal(json_integer_value(json_object_get(eur, "net")), 4500);
    assert_int_equal(json_integer_value(json_object_get(eur, "dispute_count")), 0);
    EXPECT_STR(json_string_value(json_object_get(eur, "success_rate")), "0.5000");
    json_t *jpy = row_of(data, "JPY", NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(jpy, "gross_captured")), 12500);
    assert_int_equal(json_integer_value(json_object_get(jpy, "disputed")), 500);
    assert_int_equal(json_integer_value(json_object_get(jpy, "net")), 12000);
    assert_int_equal(json_integer_value(json_object_get(jpy, "dispute_count")), 1);
    EXPECT_STR(json_string_value(json_object_get(jpy, "success_rate")), "1.0000");
    h_resp_free(&r);
}

static void test_summary_by_gateway_and_by_day_keys_rows_by_currency_and_that_dimension(void **state)
{
    (void)state;
    h_resp r;
    summary("gateway", &r);
    json_t *data = h_jpath(r.json, "data");
    assert_int_equal(json_array_size(data), 3);
    assert_non_null(row_of(data, "EUR", "gateway", "mock_eu"));
    assert_non_null(row_of(data, "JPY", "gateway", "mock"));
    assert_non_null(row_of(data, "USD", "gateway", "mock"));
    size_t i;
    json_t *row;
    json_array_foreach(data, i, row) {
        char lc[128], pc[128];
        const char *gw = json_string_value(json_object_get(row, "gateway"));
        snprintf(lc, sizeof lc, "gateway = '%s'", gw);
        snprintf(pc, sizeof pc, "gateway = '%s'", gw);
        expect_row_equals_tables(row, lc, pc);
    }
    h_resp_free(&r);

    summary("day", &r);
    data = h_jpath(r.json, "data");
    assert_true(json_array_size(data) >= 3);
    long long usd_gross = 0;
    json_array_foreach(data, i, row) {
        const char *day = json_string_value(json_object_get(row, "day"));
        assert_non_null(day);
        assert_int_equal(strlen(day), 10);
        assert_null(json_object_get(row, "gateway"));
        char cond[160];
        snprintf(cond, sizeof cond, "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') = '%s'", day);
        expect_row_equals_tables(row, cond, cond);
        if (!strcmp(json_string_value(json_object_get(row, "currency")), "USD"))
            usd_gross += json_integer_value(json_object_get(row, "gross_captured"));
    }
    assert_int_equal(usd_gross, 16000);
    h_resp_free(&r);
}

static void test_bad_ranges_and_group_by_answer_400_in_the_error_shape(void **state)
{
    (void)state;
    h_resp r;
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?from=2026-03-02&to=2026-03-01", srv.admin_auth,
                     400, "invalid_request_error", "range_invalid", "from");
    /* report_max_days = 31 in this config. */
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?from=2026-01-01&to=2026-02-02", srv.admin_auth,
                     400, "invalid_request_error", "range_too_large", "to");
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?from=2026-02-30&to=2026-03-01", srv.admin_auth,
                     400, "invalid_request_error", "parameter_invalid", "from");
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?from=2026-01-01&to=tomorrow", srv.admin_auth,
                     400, "invalid_request_error", "parameter_invalid", "to");
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?to=2026-01-02", srv.admin_auth,
                     400, "invalid_request_error", "parameter_missing", "from");
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?from=2026-01-01&to=2026-01-02&group_by=week", srv.admin_auth,
                     400, "invalid_request_error", "parameter_invalid", "group_by");
    EXPECT_GET_ERROR(&srv, "/v1/admin/reconcile?gateway=mock&from=2026-01-02&to=2026-01-01", srv.admin_auth,
                     400, "invalid_request_error", "range_invalid", "from");
    EXPECT_GET_ERROR(&srv, "/v1/admin/reconcile?gateway=nope&from=2026-01-01&to=2026-01-02", srv.admin_auth,
                     400, "invalid_request_error", "parameter_invalid", "gateway");

    /* RFC 3339 with an offset is accepted: this empty range has no rows. */
    get("/v1/admin/reports/summary?from=2020-01-01T02:00:00%2B02:00&to=2020-01-01T00:00:00Z", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "from"), "2020-01-01T00:00:00Z");
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 0);
    h_resp_free(&r);
    /* Admins only. */
    EXPECT_GET_ERROR(&srv, "/v1/admin/reports/summary?from=2026-01-01&to=2026-01-02", srv.merchant_auth,
                     403, "permission_error", "insufficient_role", NULL);
}

/* ------------------------------------------------------------------------ */
/* payd report.                                                             */
/* ------------------------------------------------------------------------ */

static void test_report_command_prints_the_apis_json_and_a_csv_with_decimal_columns(void **state)
{
    (void)state;
    static char out[65536], err[16384];
    const char *json_args[] = {"report", "-c", srv.conf_path, "--from", from_day, "--to", to_day,
                               "--group-by", "gateway", "--format", "json", NULL};
    assert_int_equal(run_payd(json_args, out, sizeof out, err, sizeof err), 0);
    json_t *cli = json_loads(out, 0, NULL);
    assert_non_null(cli);
    h_resp r;
    summary("gateway", &r);
    assert_true(json_equal(cli, r.json));
    json_decref(cli);
    h_resp_free(&r);

    const char *csv_args[] = {"report", "-c", srv.conf_path, "--from", from_day, "--to", to_day, NULL};
    assert_int_equal(run_payd(csv_args, out, sizeof out, err, sizeof err), 0);
    assert_int_equal(count_lines(out), 4);
    assert_true(has_line_starting(out, "currency,gross_captured,gross_captured_decimal,refunded,refunded_decimal,"
                                       "disputed,disputed_decimal,fees,fees_decimal,net,net_decimal,dispute_count,"
                                       "payment_count,payments_requires_payment_method,"));
    /* Amounts twice: minor units, then placed by the exponent (JPY 0). */
    assert_true(has_line_starting(out, "EUR,7000,70.00,2500,25.00,0,0.00,0,0.00,4500,45.00,0,2,0,0,0,0,0,0,1,0,0,1,0,0.5000\n"));
    assert_true(has_line_starting(out, "JPY,12500,12500,0,0,500,500,0,0,12000,12000,1,2,0,0,0,0,0,1,0,0,1,0,0,1.0000\n"));
    assert_true(has_line_starting(out, "USD,16000,160.00,6000,60.00,1200,12.00,0,0.00,8800,88.00,1,6,0,0,0,0,0,2,1,1,1,1,0,0.8333\n"));

    /* A bad range is a usage error, explained. */
    const char *bad[] = {"report", "-c", srv.conf_path, "--from", to_day, "--to", from_day, NULL};
    assert_int_equal(run_payd(bad, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "from must not be after to"));
    const char *no_to[] = {"report", "-c", srv.conf_path, "--from", from_day, NULL};
    assert_int_equal(run_payd(no_to, out, sizeof out, err, sizeof err), 2);
}

/* ------------------------------------------------------------------------ */
/* GET /v1/admin/orders.                                                    */
/* ------------------------------------------------------------------------ */

static void test_admin_orders_lists_every_users_orders_with_filters_and_pages(void **state)
{
    (void)state;
    char *alice_jwt = h_jwt_hs256(h_jwt_secret(), "user_alice", (long long)time(NULL) + 600);
    char *bob_jwt = h_jwt_hs256(h_jwt_secret(), "user_bob", (long long)time(NULL) + 600);
    char alice[200], bob[200], id[64];
    snprintf(alice, sizeof alice, "Bearer %s", alice_jwt);
    snprintf(bob, sizeof bob, "Bearer %s", bob_jwt);
    new_order(alice, "USD", 1000, id);
    new_order(alice, "EUR", 2000, id);
    new_order(bob, "USD", 3000, id);

    h_resp r;
    get("/v1/admin/orders?user_id=user_alice", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 2);
    EXPECT_STR(json_string_value(h_jpath(r.json, "data.0.user_id")), "user_alice");
    EXPECT_STR(json_string_value(h_jpath(r.json, "data.1.user_id")), "user_alice");
    h_resp_free(&r);

    get("/v1/admin/orders?currency=eur&limit=100", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    json_t *data = h_jpath(r.json, "data");
    assert_int_equal(json_array_size(data), sql_int("SELECT count(*) FROM orders WHERE currency = 'EUR'"));
    assert_int_equal(json_array_size(data), 3);
    size_t i;
    json_t *o;
    json_array_foreach(data, i, o) EXPECT_STR(json_string_value(json_object_get(o, "currency")), "EUR");
    h_resp_free(&r);

    get("/v1/admin/orders?status=refunded", srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 1);
    h_resp_free(&r);

    EXPECT_GET_ERROR(&srv, "/v1/admin/orders?currency=XYZ", srv.admin_auth,
                     400, "invalid_request_error", "parameter_invalid", "currency");

    /* Every order, both users' and the merchant's, in pages of 5. */
    long long total = sql_int("SELECT count(*) FROM orders");
    assert_true(total >= 13);
    long long seen = 0;
    char after[64] = "";
    int more = 1;
    for (int page = 0; more && page < 20; page++) {
        char path[160];
        snprintf(path, sizeof path, "/v1/admin/orders?limit=5%s%s", after[0] ? "&starting_after=" : "", after);
        get(path, srv.admin_auth, &r);
        EXPECT_STATUS(&r, 200);
        data = h_jpath(r.json, "data");
        assert_true(json_array_size(data) <= 5);
        seen += (long long)json_array_size(data);
        more = h_rbool(&r, "has_more") == 1;
        if (json_array_size(data))
            snprintf(after, sizeof after, "%s", json_string_value(h_jpath(json_array_get(data, json_array_size(data) - 1), "id")));
        h_resp_free(&r);
    }
    assert_false(more);
    assert_int_equal(seen, total);

    /* Admins only: a merchant key and an end user are refused. */
    EXPECT_GET_ERROR(&srv, "/v1/admin/orders", srv.merchant_auth, 403, "permission_error", "insufficient_role", NULL);
    EXPECT_GET_ERROR(&srv, "/v1/admin/orders", alice, 403, "permission_error", "insufficient_role", NULL);
    free(alice_jwt);
    free(bob_jwt);
}

/* ------------------------------------------------------------------------ */
/* Reconciliation.                                                          */
/* ------------------------------------------------------------------------ */

static void test_reconcile_is_clean_until_the_mock_is_changed_then_names_each_mismatch(void **state)
{
    (void)state;
    static char out[65536], err[16384];
    assert_int_equal(reconcile_server("mock", out, sizeof out, err, sizeof err), 0);
    assert_int_equal(count_lines(out), 0);
    assert_non_null(strstr(err, "0 mismatches"));
    assert_int_equal(reconcile_server("mock_eu", out, sizeof out, err, sizeof err), 0);
    assert_int_equal(count_lines(out), 0);

    /* The provider now says the plain USD payment failed. */
    char path[160], line[256];
    snprintf(path, sizeof path, "/mock/test/intents/%s", usd_plain_ref);
    mock_control(path, "status=failed", 200);
    assert_int_equal(reconcile_server("mock", out, sizeof out, err, sizeof err), 1);
    assert_int_equal(count_lines(out), 1);
    snprintf(line, sizeof line, "%s status payd=succeeded provider=failed", usd_plain_pay);
    assert_true(has_line_starting(out, line));

    /* ... and that it captured less. */
    mock_control(path, "amount_captured=3500", 200);
    assert_int_equal(reconcile_server("mock", out, sizeof out, err, sizeof err), 1);
    assert_int_equal(count_lines(out), 2);
    snprintf(line, sizeof line, "%s amount_captured payd=4000 provider=3500", usd_plain_pay);
    assert_true(has_line_starting(out, line));

    /* A refund payd saw succeed failed at the provider. */
    snprintf(path, sizeof path, "/mock/test/refunds/%s", usd_partial_refund_ref);
    mock_control(path, "status=failed", 200);
    assert_int_equal(reconcile_server("mock", out, sizeof out, err, sizeof err), 1);
    assert_int_equal(count_lines(out), 4);
    snprintf(line, sizeof line, "%s refund_status refund=%s payd=succeeded provider=failed", usd_partial_pay,
             usd_partial_refund);
    assert_true(has_line_starting(out, line));
    snprintf(line, sizeof line, "%s refunded_amount payd=1000 provider=0", usd_partial_pay);
    assert_true(has_line_starting(out, line));
    /* The other gateway is untouched. */
    assert_int_equal(reconcile_server("mock_eu", out, sizeof out, err, sizeof err), 0);

    /* The API says the same, with the kinds named. */
    h_resp r;
    char q[200];
    snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s", from_day, to_day);
    get(q, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "object"), "reconciliation");
    assert_int_equal(h_rint(&r, "payments_checked"), mock_payments_seeded);
    assert_int_equal(h_rint(&r, "mismatch_count"), 4);
    EXPECT_STR(json_string_value(h_jpath(r.json, "mismatches.0.payment_id")), usd_partial_pay);
    h_resp_free(&r);

    /* Test controls answer only POST, and only known refs. */
    mock_control("/mock/test/intents/mock_pi_000000000000000000000000", "status=failed", 404);
    snprintf(path, sizeof path, "/mock/test/intents/%s", usd_plain_ref);
    mock_control(path, "status=exploded", 400);
    get(path, NULL, &r);
    EXPECT_STATUS(&r, 405);
    h_resp_free(&r);
}

static void test_reconcile_in_process_asks_its_own_modules_and_usage_errors_exit_2(void **state)
{
    (void)state;
    static char out[65536], err[16384];
    /* A range with no payments: clean. */
    const char *empty[] = {"reconcile", "-c", srv.conf_path, "--gateway", "mock",
                           "--from", "2020-01-01", "--to", "2020-01-02", NULL};
    assert_int_equal(run_payd(empty, out, sizeof out, err, sizeof err), 0);
    assert_int_equal(count_lines(out), 0);
    assert_non_null(strstr(err, "0 payments"));

    /* The seeded range: this process's mock never saw the server's intents,
     * so every one is missing (the reason for --server with the mock). */
    const char *seeded[] = {"reconcile", "-c", srv.conf_path, "--gateway", "mock",
                            "--from", from_day, "--to", to_day, NULL};
    assert_int_equal(run_payd(seeded, out, sizeof out, err, sizeof err), 1);
    assert_int_equal(count_lines(out), mock_payments_seeded);
    char line[160];
    snprintf(line, sizeof line, "%s missing_at_provider", usd_plain_pay);
    assert_true(has_line_starting(out, line));

    /* Usage, config and server errors exit 2. */
    const char *unknown_gw[] = {"reconcile", "-c", srv.conf_path, "--gateway", "nope",
                                "--from", from_day, "--to", to_day, NULL};
    assert_int_equal(run_payd(unknown_gw, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "no gateway instance named 'nope'"));
    const char *no_gw[] = {"reconcile", "-c", srv.conf_path, "--from", from_day, "--to", to_day, NULL};
    assert_int_equal(run_payd(no_gw, out, sizeof out, err, sizeof err), 2);
    unsetenv("PAYD_ADMIN_KEY");
    const char *no_key[] = {"reconcile", "--server", srv.base_url, "--gateway", "mock",
                            "--from", from_day, "--to", to_day, NULL};
    assert_int_equal(run_payd(no_key, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "PAYD_ADMIN_KEY"));
    setenv("PAYD_ADMIN_KEY", srv.merchant_key, 1);
    assert_int_equal(run_payd(no_key, out, sizeof out, err, sizeof err), 2);
    assert_non_null(strstr(err, "answered 403"));
    unsetenv("PAYD_ADMIN_KEY");
}

/* The API walks the range in pages: every payment is checked exactly
 * once whatever the page size, the mismatches of the pages add up to one
 * whole run's, and bad page parameters are 400. The CLI pages the same way
 * (--page-size) and prints the same lines. Every mock payment is first
 * given the same created_at, so the cursor's tie-break on id carries the
 * walk. */
static void test_reconcile_pages_check_each_payment_once_and_bad_page_parameters_are_400(void **state)
{
    (void)state;
    h_resp r;
    char q[400], cursor[64] = "";
    long long whole_mismatches;

    assert_int_equal(sql_int("WITH u AS (UPDATE payments SET created_at = '%s 12:00:00+00' WHERE gateway = 'mock'"
                             " RETURNING 1) SELECT count(*) FROM u", from_day),
                     mock_payments_seeded);
    snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&limit=1000", from_day, to_day);
    get(q, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(h_rint(&r, "payments_checked"), mock_payments_seeded);
    assert_int_equal(h_rbool(&r, "has_more"), 0);
    assert_true(json_is_null(h_jpath(r.json, "next_starting_after")));
    whole_mismatches = h_rint(&r, "mismatch_count");
    h_resp_free(&r);

    for (int size = 1; size <= 3; size++) {
        long long checked = 0, mismatches = 0;
        int pages = 0, more = 1;
        cursor[0] = '\0';
        while (more && pages < 20) {
            snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&limit=%d%s%s", from_day, to_day,
                     size, cursor[0] ? "&starting_after=" : "", cursor);
            get(q, srv.admin_auth, &r);
            EXPECT_STATUS(&r, 200);
            assert_true(h_rint(&r, "payments_checked") <= size);
            checked += h_rint(&r, "payments_checked");
            mismatches += h_rint(&r, "mismatch_count");
            more = h_rbool(&r, "has_more");
            if (more) snprintf(cursor, sizeof cursor, "%s", h_rstr(&r, "next_starting_after"));
            pages++;
            h_resp_free(&r);
        }
        assert_int_equal(checked, mock_payments_seeded);
        assert_int_equal(mismatches, whole_mismatches);
        assert_int_equal(pages, (mock_payments_seeded + size - 1) / size);
        /* Every page but the last is full, and the pages add up to the
         * whole range: none was skipped or checked twice. */
    }

    snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&limit=0", from_day, to_day);
    EXPECT_GET_ERROR(&srv, q, srv.admin_auth, 400, "invalid_request_error", "parameter_invalid", "limit");
    snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&limit=1001", from_day, to_day);
    EXPECT_GET_ERROR(&srv, q, srv.admin_auth, 400, "invalid_request_error", "parameter_invalid", "limit");
    snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&limit=ten", from_day, to_day);
    EXPECT_GET_ERROR(&srv, q, srv.admin_auth, 400, "invalid_request_error", "parameter_invalid", "limit");
    snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&starting_after=pay_nope", from_day,
             to_day);
    EXPECT_GET_ERROR(&srv, q, srv.admin_auth, 400, "invalid_request_error", "resource_missing", "starting_after");
    /* A cursor of another gateway's payment is refused too. */
    {
        char sql[160];
        char *eu;

        snprintf(sql, sizeof sql, "SELECT id FROM payments WHERE gateway = 'mock_eu' ORDER BY id LIMIT 1");
        eu = h_sql_value(srv.db_url, sql);
        assert_non_null(eu);
        snprintf(q, sizeof q, "/v1/admin/reconcile?gateway=mock&from=%s&to=%s&starting_after=%s", from_day, to_day,
                 eu);
        EXPECT_GET_ERROR(&srv, q, srv.admin_auth, 400, "invalid_request_error", "resource_missing",
                         "starting_after");
        free(eu);
    }

    /* The CLI, one payment per page, prints what one page prints. */
    static char out[65536], err[16384], out1[65536];
    assert_int_equal(reconcile_server("mock", out, sizeof out, err, sizeof err), whole_mismatches ? 1 : 0);
    setenv("PAYD_ADMIN_KEY", srv.admin_key, 1);
    const char *paged[] = {"reconcile", "--server", srv.base_url, "--gateway", "mock", "--from", from_day,
                           "--to", to_day, "--page-size", "1", NULL};
    assert_int_equal(run_payd(paged, out1, sizeof out1, err, sizeof err), whole_mismatches ? 1 : 0);
    unsetenv("PAYD_ADMIN_KEY");
    EXPECT_STR(out1, out);
    char summary[64];
    snprintf(summary, sizeof summary, "%d payments", mock_payments_seeded);
    EXPECT_CONTAINS(err, summary);
    const char *in_process[] = {"reconcile", "-c", srv.conf_path, "--gateway", "mock", "--from", from_day,
                                "--to", to_day, "--page-size", "3", NULL};
    assert_int_equal(run_payd(in_process, out1, sizeof out1, err, sizeof err), 1);
    assert_int_equal(count_lines(out1), mock_payments_seeded);
    EXPECT_CONTAINS(err, summary);
    /* ... one line per payment, each payment once. */
    assert_int_equal(sql_int("SELECT count(*) FROM payments WHERE gateway = 'mock'"), mock_payments_seeded);
    {
        char sql[160];
        char *id;
        for (int i = 0; i < mock_payments_seeded; i++) {
            char line[96];
            snprintf(sql, sizeof sql, "SELECT id FROM payments WHERE gateway = 'mock' ORDER BY id OFFSET %d LIMIT 1", i);
            id = h_sql_value(srv.db_url, sql);
            assert_non_null(id);
            snprintf(line, sizeof line, "%s missing_at_provider", id);
            assert_true(has_line_starting(out1, line));
            free(id);
        }
    }
    /* --starting-after resumes after a payment: the rest of the range. */
    {
        char sql[200];
        char *third;
        snprintf(sql, sizeof sql, "SELECT id FROM payments WHERE gateway = 'mock' ORDER BY created_at, id"
                                  " OFFSET 2 LIMIT 1");
        third = h_sql_value(srv.db_url, sql);
        assert_non_null(third);
        const char *resumed[] = {"reconcile", "-c", srv.conf_path, "--gateway", "mock", "--from", from_day,
                                 "--to", to_day, "--page-size", "2", "--starting-after", third, NULL};
        assert_int_equal(run_payd(resumed, out1, sizeof out1, err, sizeof err), 1);
        assert_int_equal(count_lines(out1), mock_payments_seeded - 3);
        free(third);
    }
    const char *bad_size[] = {"reconcile", "-c", srv.conf_path, "--gateway", "mock", "--from", from_day,
                              "--to", to_day, "--page-size", "0", NULL};
    assert_int_equal(run_payd(bad_size, out1, sizeof out1, err, sizeof err), 2);
    EXPECT_CONTAINS(err, "--page-size");
}

/* `payd reconcile` renders no invoice: a template that does not load (which
 * stops serve and check-config) must not stop it. */
static void test_reconcile_in_process_runs_without_a_loadable_invoice_template(void **state)
{
    (void)state;
    static char out[65536], err[16384];
    char conf[PATH_MAX + 64], text[65536];
    snprintf(conf, sizeof conf, "%s.no-invoice", srv.conf_path);
    FILE *in = fopen(srv.conf_path, "r");
    assert_non_null(in);
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    FILE *o = fopen(conf, "w");
    assert_non_null(o);
    fprintf(o, "%s\n[invoice]\ntemplate = /nonexistent/invoice.html\n", text);
    fclose(o);

    const char *check[] = {"check-config", conf, NULL};
    assert_int_not_equal(run_payd(check, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(err, "/nonexistent/invoice.html"));
    const char *empty[] = {"reconcile", "-c", conf, "--gateway", "mock",
                           "--from", "2020-01-01", "--to", "2020-01-02", NULL};
    assert_int_equal(run_payd(empty, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(err, "0 payments"));
    unlink(conf);
}

int main(void)
{
    if (h_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_a_mix_of_currencies_refunds_and_disputes),
        cmocka_unit_test(test_summary_by_currency_equals_the_ledger_and_never_mixes_currencies),
        cmocka_unit_test(test_summary_by_gateway_and_by_day_keys_rows_by_currency_and_that_dimension),
        cmocka_unit_test(test_bad_ranges_and_group_by_answer_400_in_the_error_shape),
        cmocka_unit_test(test_report_command_prints_the_apis_json_and_a_csv_with_decimal_columns),
        cmocka_unit_test(test_admin_orders_lists_every_users_orders_with_filters_and_pages),
        cmocka_unit_test(test_reconcile_is_clean_until_the_mock_is_changed_then_names_each_mismatch),
        cmocka_unit_test(test_reconcile_in_process_asks_its_own_modules_and_usage_errors_exit_2),
        cmocka_unit_test(test_reconcile_pages_check_each_payment_once_and_bad_page_parameters_are_400),
        cmocka_unit_test(test_reconcile_in_process_runs_without_a_loadable_invoice_template),
    };
    return cmocka_run_group_tests(tests, setup, h_group_stop);
}
