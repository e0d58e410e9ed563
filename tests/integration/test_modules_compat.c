/*
 * test_modules_compat.c - module ABI compatibility against a real payd: a
 * module built against the frozen v1.0 header, a shorter ops table from an
 * older minor, extra exported symbols, and the refusals that must leave
 * payd exiting cleanly with a message that names the module: ABI major 2,
 * a descriptor smaller than v1.0, a crash in init, an init error, and a
 * module that ends the process in init.
 *
 * The test modules live in tests/modules/ (built to
 * $PAYD_BUILD/testmodules/NAME.so): v1_0_header.c (against
 * tests/modules/abi-v1.0/payd/module.h), old_minor_ops.c, good_minimal.c,
 * abi2.c, small_struct.c, init_crash.c, init_fails.c, init_exit.c, and
 * whole_capture_only.c (capture_later without partial_capture).
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#define OUT_LEN 16384

static h_payd srv;

static char *testmod(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8];
    return h_testmodule(p, PATH_MAX, name);
}

/* payd itself neither crashed nor reported a sanitizer finding. */
static void assert_clean(const char *out)
{
    static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer", "runtime error:",
                                      "Segmentation fault", NULL};
    for (int i = 0; bad[i]; i++)
        if (strstr(out, bad[i])) {
            print_error("unexpected \"%s\" in:\n%s\n", bad[i], out);
            fail();
        }
}

/*
 * Runs `payd check-config` and `payd serve` on a config whose only module
 * section is [gateway.NAME] with `module = PATH`, and expects both to exit
 * with status 1 (not a signal) and print `message`.
 */
static void expect_refused(const char *module, const char *message)
{
    char extra[PATH_MAX + 64];
    snprintf(extra, sizeof extra, "[gateway.broken]\nmodule = %s\n", testmod(module));
    h_payd p;
    h_payd_opts o = {.extra = extra, .no_redis = 1};
    assert_int_equal(h_payd_configure(&p, &o), 0);
    static char out[OUT_LEN];
    const char *check[] = {h_payd_bin(), "check-config", p.conf_path, NULL};
    int rc = h_run(check, out, sizeof out);
    if (rc != 1) print_error("check-config with %s exited %d:\n%s\n", module, rc, out);
    assert_int_equal(rc, 1);
    EXPECT_CONTAINS(out, message);
    EXPECT_CONTAINS(out, "[gateway.broken]");
    assert_clean(out);

    const char *serve[] = {"serve", NULL};
    rc = h_payd_cli(&p, serve, out, sizeof out);
    if (rc != 1) print_error("serve with %s exited %d:\n%s\n", module, rc, out);
    assert_int_equal(rc, 1);
    EXPECT_CONTAINS(out, message);
    assert_clean(out);
}

/* ------------------------------------------------------------------------ */
/* One payd with the modules that must load.                                */
/* ------------------------------------------------------------------------ */

static int setup(void **state)
{
    static char extra[4 * PATH_MAX];
    snprintf(extra, sizeof extra,
             "[gateway.v10]\nmodule = %s\n"
             "[gateway.old]\nmodule = %s\n"
             "[gateway.extra]\nmodule = %s\nlabel = exports more than it should\n"
             "[gateway.whole]\nmodule = %s\n",
             testmod("v1_0_header"), testmod("old_minor_ops"), testmod("good_minimal"), testmod("whole_capture_only"));
    h_payd_opts o = {.extra = extra};
    return h_group_start(state, &srv, &o);
}

/* An order for 1099 USD and a confirmed payment on `gateway`: the payment
 * id goes to pay_id; returns the HTTP status of the payment. */
static long checkout(const char *gateway, char pay_id[64], char *status, size_t status_len)
{
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/orders", srv.merchant_auth, NULL,
                                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Widget\",\"unit_amount\":1099}]}",
                                 &r),
                     0);
    assert_int_equal(r.status, 201);
    char order[64];
    snprintf(order, sizeof order, "%s", h_json_str(&r, "id"));
    h_resp_free(&r);
    char body[256];
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order,
             gateway);
    assert_int_equal(h_post_json(&srv, "/v1/payments", srv.merchant_auth, NULL, body, &r), 0);
    long code = r.status;
    snprintf(pay_id, 64, "%s", h_json_str(&r, "id") ? h_json_str(&r, "id") : "");
    snprintf(status, status_len, "%s", h_json_str(&r, "status") ? h_json_str(&r, "status") : "");
    if (code != 201) print_error("payment on %s: %ld %s\n", gateway, code, r.body);
    h_resp_free(&r);
    return code;
}

static void test_module_built_against_frozen_v1_0_header_serves_a_payment_and_refund(void **state)
{
    (void)state;
    assert_true(h_log_contains(&srv, "loaded [gateway.v10]: module v1_0_header 1.0.0 (ABI 1.0)"));
    char pay_id[64], status[32];
    assert_int_equal(checkout("v10", pay_id, status, sizeof status), 201);
    assert_string_equal(status, "succeeded");
    char body[128];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":500}", pay_id);
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/refunds", srv.merchant_auth, NULL, body, &r), 0);
    if (r.status != 201) print_error("refund: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 201);
    assert_string_equal(h_json_str(&r, "status"), "succeeded");
    h_resp_free(&r);
}

static void test_older_minor_ops_table_loads_with_missing_tail_absent(void **state)
{
    (void)state;
    char pay_id[64], status[32];
    assert_int_equal(checkout("old", pay_id, status, sizeof status), 201);
    assert_string_equal(status, "succeeded");
    /* refund lies beyond the table's struct_size (and traps if called):
     * the host must treat it as absent. */
    char body[128];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":500}", pay_id);
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/refunds", srv.merchant_auth, NULL, body, &r), 0);
    if (r.status != 400) print_error("refund on an ops table without refund: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);
    /* So is webhook: no endpoint for this gateway. */
    assert_int_equal(h_request(&srv, "POST", "/v1/webhooks/old", NULL, NULL, "application/json", "{}", &r), 0);
    assert_int_equal(r.status, 404);
    h_resp_free(&r);
    /* And public_info is not called by the gateway listing. */
    assert_int_equal(h_get(&srv, "/v1/gateways", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "old_minor_ops"));
    h_resp_free(&r);
    assert_int_equal(h_payd_alive(&srv), 1);
}

/* A module that advertises capture_later but not partial_capture gets no
 * partial amount: payd answers 400 and the authorization stays whole; a
 * capture of all of it goes through. */
static void test_partial_capture_on_a_gateway_without_partial_capture_is_400_and_the_whole_capture_works(
    void **state)
{
    (void)state;
    h_resp r;
    char order[64], pay[64], body[256], path[128];

    assert_int_equal(h_post_json(&srv, "/v1/orders", srv.merchant_auth, NULL,
                                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Widget\",\"unit_amount\":1099}]}",
                                 &r),
                     0);
    assert_int_equal(r.status, 201);
    snprintf(order, sizeof order, "%s", h_json_str(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"whole\",\"payment_method\":\"pm_card_visa\","
             "\"capture_method\":\"manual\",\"confirm\":true}",
             order);
    assert_int_equal(h_post_json(&srv, "/v1/payments", srv.merchant_auth, NULL, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_json_str(&r, "status"), "requires_capture");
    snprintf(pay, sizeof pay, "%s", h_json_str(&r, "id"));
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/payments/%s/capture", pay);
    assert_int_equal(h_post_json(&srv, path, srv.merchant_auth, NULL, "{\"amount\":500}", &r), 0);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "not_supported", "amount");
    EXPECT_CONTAINS(h_err_message(&r), "cannot capture part");
    h_resp_free(&r);
    assert_int_equal(h_sql_intf(&srv, "SELECT count(*) FROM payments WHERE id = '%s' AND status = 'requires_capture'"
                                      " AND amount_capturable = 1099 AND pending_op IS NULL", pay),
                     1);

    assert_int_equal(h_post_json(&srv, path, srv.merchant_auth, NULL, "{\"amount\":1099}", &r), 0);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_json_str(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 1099);
    h_resp_free(&r);
}

static void test_module_exporting_extra_symbols_still_loads(void **state)
{
    (void)state;
    assert_true(h_log_contains(&srv, "loaded [gateway.extra]: module good_minimal"));
    char pay_id[64], status[32];
    assert_int_equal(checkout("extra", pay_id, status, sizeof status), 201);
    assert_string_equal(status, "succeeded");
}

static void test_loader_probe_logs_each_module_once(void **state)
{
    (void)state;
    /* init ran twice (probe child, then for real), but the child's log
     * lines are swallowed: the module's own line appears once. */
    size_t len = 0;
    char *log = h_read_file(srv.log_path, &len);
    assert_non_null(log);
    int n = 0;
    for (const char *p = log; (p = strstr(p, "good_minimal ready: exports more than it should")); p++) n++;
    free(log);
    assert_int_equal(n, 1);
}

/* ------------------------------------------------------------------------ */
/* Refusals: payd exits 1 with a message naming the module, never crashes.  */
/* ------------------------------------------------------------------------ */

static void test_module_claiming_abi_major_2_is_refused_naming_it(void **state)
{
    (void)state;
    expect_refused("abi2", "abi2.so: it was built for ABI 2.0, this payd speaks ABI 1.x");
}

static void test_descriptor_smaller_than_v1_0_is_refused(void **state)
{
    (void)state;
    expect_refused("small_struct", "small_struct.so: its descriptor struct_size 16 is smaller than the v1.0 size");
}

static void test_module_crashing_in_init_is_refused_and_payd_exits_cleanly(void **state)
{
    (void)state;
    expect_refused("init_crash", "[gateway.broken]: module init_crash crashed in init (signal 11)");
}

static void test_module_failing_init_is_reported_and_payd_exits_cleanly(void **state)
{
    (void)state;
    expect_refused("init_fails", "module init_fails failed to initialize: missing api key");
}

static void test_module_ending_the_process_in_init_is_refused(void **state)
{
    (void)state;
    expect_refused("init_exit", "module init_exit ended the process in init (exit status 3)");
}

static void test_crash_report_names_module_and_keeps_its_last_output(void **state)
{
    (void)state;
    char extra[PATH_MAX + 64];
    snprintf(extra, sizeof extra, "[gateway.crashy]\nmodule = %s\n", testmod("init_crash"));
    h_payd p;
    h_payd_opts o = {.extra = extra, .no_redis = 1};
    assert_int_equal(h_payd_configure(&p, &o), 0);
    static char out[OUT_LEN];
    const char *check[] = {h_payd_bin(), "check-config", p.conf_path, NULL};
    assert_int_equal(h_run(check, out, sizeof out), 1);
    /* What the module logged before it died, for the operator. */
    EXPECT_CONTAINS(out, "output of module init_crash before it stopped");
    EXPECT_CONTAINS(out, "init_crash: about to crash");
}

int main(void)
{
    if (h_init() != 0) return 1;
    const struct CMUnitTest served[] = {
        cmocka_unit_test(test_module_built_against_frozen_v1_0_header_serves_a_payment_and_refund),
        cmocka_unit_test(test_older_minor_ops_table_loads_with_missing_tail_absent),
        cmocka_unit_test(test_module_exporting_extra_symbols_still_loads),
        cmocka_unit_test(test_partial_capture_on_a_gateway_without_partial_capture_is_400_and_the_whole_capture_works),
        cmocka_unit_test(test_loader_probe_logs_each_module_once),
    };
    const struct CMUnitTest refused[] = {
        cmocka_unit_test(test_module_claiming_abi_major_2_is_refused_naming_it),
        cmocka_unit_test(test_descriptor_smaller_than_v1_0_is_refused),
        cmocka_unit_test(test_module_crashing_in_init_is_refused_and_payd_exits_cleanly),
        cmocka_unit_test(test_module_failing_init_is_reported_and_payd_exits_cleanly),
        cmocka_unit_test(test_module_ending_the_process_in_init_is_refused),
        cmocka_unit_test(test_crash_report_names_module_and_keeps_its_last_output),
    };
    int failed = cmocka_run_group_tests_name("modules_compat_served", served, setup, h_group_stop);
    failed += cmocka_run_group_tests_name("modules_compat_refused", refused, NULL, NULL);
    return failed ? 1 : 0;
}
