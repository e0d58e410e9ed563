/*
 * test_foundation.c - the foundation against a real payd: config and module
 * refusals (payd check-config / serve), the HTTP pipeline (routing, error
 * shape, bodies, auth, metrics, gateway listing), concurrent migrations,
 * and the database going away and coming back.
 *
 * Broken modules live in tests/modules/ and are built to
 * $PAYD_BUILD/testmodules/NAME.so; configs name them by absolute path.
 */
#include <glob.h>
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

#define OUT_LEN 16384

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

/* The core sections every check-config case starts with: lines 1-4. */
#define BASE_CONF                                                                  \
    "[server]\n"                                         /* 1 */                   \
    "listen = 127.0.0.1:1\n"                             /* 2 */                   \
    "[database]\n"                                       /* 3 */                   \
    "url = postgresql://nobody@127.0.0.1:1/nothing\n"    /* 4 */

typedef struct checked {
    char path[PATH_MAX + 16];
    char out[OUT_LEN];
    int rc;
} checked;

/* No sanitizer report and no crash in a command's output. */
static void assert_clean_run(const char *out)
{
    EXPECT_NOT_CONTAINS(out, "AddressSanitizer");
    EXPECT_NOT_CONTAINS(out, "LeakSanitizer");
    EXPECT_NOT_CONTAINS(out, "runtime error:");
}

/*
 * Writes `fmt` (printf-style, so module paths can be filled in) as a config
 * file in a scratch dir and runs `payd check-config` on it.
 */
static void check_config(checked *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check_config(checked *c, const char *fmt, ...)
{
    char dir[PATH_MAX];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(c->path, sizeof c->path, "%s/payd.conf", dir);
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_int_equal(h_write_file(c->path, text), 0);
    const char *argv[] = {h_payd_bin(), "check-config", c->path, NULL};
    c->rc = h_run(argv, c->out, sizeof c->out);
    assert_clean_run(c->out);
}

/* "FILE:LINE" of the checked config, for asserting the error location. */
static const char *at_line(const checked *c, int line)
{
    static char buf[PATH_MAX + 32];
    snprintf(buf, sizeof buf, "%s:%d:", c->path, line);
    return buf;
}

static char *testmod(const char *name)
{
    static char paths[8][PATH_MAX];
    static int next;
    char *p = paths[next++ % 8];
    return h_testmodule(p, PATH_MAX, name);
}

/* ------------------------------------------------------------------------ */
/* check-config: refusals name the file, line and module.                   */
/* ------------------------------------------------------------------------ */

static void test_check_config_rejects_syntax_error_naming_line(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[auth]\n"                        /* 5 */
                 "this line has no equals sign\n"  /* 6 */
                 "jwt_leeway_s = 10\n");           /* 7 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 6));
    EXPECT_CONTAINS(c.out, "syntax error");
}

static void test_check_config_rejects_unknown_server_key_naming_line(void **state)
{
    (void)state;
    checked c;
    check_config(&c, "[server]\n"                        /* 1 */
                     "listen = 127.0.0.1:1\n"            /* 2 */
                     "lisen_backlog = 5\n"               /* 3 */
                     "[database]\n"                      /* 4 */
                     "url = postgresql:///x\n");         /* 5 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 3));
    EXPECT_CONTAINS(c.out, "unknown key 'lisen_backlog' in [server]");
}

static void test_check_config_rejects_missing_database_url(void **state)
{
    (void)state;
    checked c;
    check_config(&c, "[server]\n"               /* 1 */
                     "listen = 127.0.0.1:1\n"   /* 2 */
                     "[database]\n"             /* 3 */
                     "pool = 2\n");             /* 4 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 3));
    EXPECT_CONTAINS(c.out, "missing required key 'url' in [database]");
}

static void test_check_config_rejects_unknown_section_naming_line(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[servre]\n"       /* 5 */
                 "threads = 2\n");  /* 6 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 5));
    EXPECT_CONTAINS(c.out, "unknown section [servre]");
}

static void test_check_config_rejects_unset_env_secret_naming_variable(void **state)
{
    (void)state;
    unsetenv("PAYD_TEST_SURELY_UNSET_SECRET");
    checked c;
    check_config(&c, BASE_CONF
                 "[auth]\n"                                          /* 5 */
                 "jwt_secret = env:PAYD_TEST_SURELY_UNSET_SECRET\n"); /* 6 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 6));
    EXPECT_CONTAINS(c.out, "PAYD_TEST_SURELY_UNSET_SECRET");
    EXPECT_CONTAINS(c.out, "not set");
}

static void test_check_config_rejects_missing_module_file(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.main]\n"                         /* 5 */
                 "module = /nonexistent/payd/ghost.so\n");  /* 6 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 6));
    EXPECT_CONTAINS(c.out, "[gateway.main]");
    EXPECT_CONTAINS(c.out, "/nonexistent/payd/ghost.so");
    EXPECT_CONTAINS(c.out, "not found");
}

static void test_check_config_rejects_unknown_module_name_in_module_dir(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.main]\n"          /* 5 */
                 "module = no_such_gw\n");   /* 6 */
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 6));
    EXPECT_CONTAINS(c.out, "modules/no_such_gw.so");
    EXPECT_CONTAINS(c.out, "not found");
}

static void test_check_config_refuses_module_built_for_abi_major_2(void **state)
{
    (void)state;
    checked c;
    const char *mod = testmod("abi2");
    check_config(&c, BASE_CONF
                 "[gateway.future]\n"  /* 5 */
                 "module = %s\n",      /* 6 */
                 mod);
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 6));
    EXPECT_CONTAINS(c.out, mod);
    EXPECT_CONTAINS(c.out, "ABI 2.0");
}

static void test_check_config_refuses_descriptor_smaller_than_v1_0(void **state)
{
    (void)state;
    checked c;
    const char *mod = testmod("small_struct");
    check_config(&c, BASE_CONF
                 "[gateway.small]\n"
                 "module = %s\n",
                 mod);
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, mod);
    EXPECT_CONTAINS(c.out, "struct_size 16");
}

static void test_check_config_refuses_object_without_entry_symbol(void **state)
{
    (void)state;
    checked c;
    const char *mod = testmod("no_symbol");
    check_config(&c, BASE_CONF
                 "[gateway.nosym]\n"
                 "module = %s\n",
                 mod);
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, mod);
    EXPECT_CONTAINS(c.out, "payd_module_v1");
}

static void test_check_config_reports_init_failure_with_message_and_section(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.pay]\n"  /* 5 */
                 "module = %s\n",   /* 6 */
                 testmod("init_fails"));
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 6));
    EXPECT_CONTAINS(c.out, "[gateway.pay]");
    EXPECT_CONTAINS(c.out, "init_fails");
    EXPECT_CONTAINS(c.out, "missing api key");
}

static void test_check_config_refuses_capability_without_function(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.hooks]\n"
                 "module = %s\n",
                 testmod("cap_without_fn"));
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, "[gateway.hooks]");
    EXPECT_CONTAINS(c.out, "cap_without_fn");
    EXPECT_CONTAINS(c.out, "webhooks needs webhook");
}

static void test_check_config_rejects_duplicate_section(void **state)
{
    (void)state;
    checked c;
    const char *good = testmod("good_minimal");
    check_config(&c, BASE_CONF
                 "[gateway.main]\n"  /* 5 */
                 "module = %s\n"     /* 6 */
                 "[gateway.main]\n"  /* 7 */
                 "module = %s\n",    /* 8 */
                 good, good);
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 7));
    EXPECT_CONTAINS(c.out, "duplicate section [gateway.main] (first at line 5)");
}

static void test_check_config_rejects_gateway_and_notifier_sharing_a_name(void **state)
{
    (void)state;
    checked c;
    const char *good = testmod("good_minimal");
    check_config(&c, BASE_CONF
                 "[gateway.x]\n"   /* 5 */
                 "module = %s\n"   /* 6 */
                 "[notifier.x]\n"  /* 7 */
                 "module = %s\n",  /* 8 */
                 good, good);
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 8));
    EXPECT_CONTAINS(c.out, "duplicate instance name 'x'");
    EXPECT_CONTAINS(c.out, "[gateway.x]");
}

static void test_check_config_rejects_key_the_module_does_not_read(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.main]\n"   /* 5 */
                 "module = %s\n"      /* 6 */
                 "label = fine\n"     /* 7: read by good_minimal */
                 "colour = blue\n",   /* 8 */
                 testmod("good_minimal"));
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 8));
    EXPECT_CONTAINS(c.out, "unknown key 'colour' in [gateway.main]");
    EXPECT_NOT_CONTAINS(c.out, "'label'");
}

static void test_check_config_rejects_routing_to_missing_gateway(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.main]\n"       /* 5 */
                 "module = %s\n"          /* 6 */
                 "[routing]\n"            /* 7 */
                 "default = main\n"       /* 8 */
                 "currency.JPY = japan\n", /* 9 */
                 testmod("good_minimal"));
    assert_int_not_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, at_line(&c, 9));
    EXPECT_CONTAINS(c.out, "'japan'");
}

static void test_check_config_accepts_good_minimal_with_extra_exported_symbol(void **state)
{
    (void)state;
    checked c;
    check_config(&c, BASE_CONF
                 "[gateway.main]\n"
                 "module = %s\n"
                 "label = primary\n"
                 "[gateway.backup]\n"
                 "module = %s\n"
                 "[routing]\n"
                 "default = main\n"
                 "currency.EUR = backup\n",
                 testmod("good_minimal"), testmod("good_minimal"));
    if (c.rc != 0) print_error("%s\n", c.out);
    assert_int_equal(c.rc, 0);
    EXPECT_CONTAINS(c.out, "ok (2 gateways, 0 notifiers)");
}

/* serve refuses the same broken configs: exit 1, the message, no crash. */
static void test_serve_with_broken_module_exits_nonzero_without_crashing(void **state)
{
    (void)state;
    static const struct {
        const char *module, *expect;
    } cases[] = {
        {"abi2", "ABI 2.0"},
        {"small_struct", "struct_size"},
        {"init_fails", "missing api key"},
        {"cap_without_fn", "webhooks needs webhook"},
        {"no_symbol", "payd_module_v1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[PATH_MAX], conf[PATH_MAX + 16], text[4096], out[OUT_LEN];
        assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
        snprintf(conf, sizeof conf, "%s/payd.conf", dir);
        snprintf(text, sizeof text,
                 "[server]\nlisten = 127.0.0.1:%d\n[database]\nurl = %s\n"
                 "[gateway.broken]\nmodule = %s\n",
                 h_free_port(), h_env("PAYD_TEST_PG_URL"), testmod(cases[i].module));
        assert_int_equal(h_write_file(conf, text), 0);
        const char *argv[] = {h_payd_bin(), "serve", "-c", conf, NULL};
        int rc = h_run(argv, out, sizeof out);
        if (rc != 1) print_error("module %s: serve exited %d:\n%s\n", cases[i].module, rc, out);
        assert_int_equal(rc, 1);
        EXPECT_CONTAINS(out, cases[i].expect);
        EXPECT_CONTAINS(out, "[gateway.broken]");
        assert_clean_run(out);
    }
}

/* ------------------------------------------------------------------------ */
/* HTTP against a running payd.                                             */
/* ------------------------------------------------------------------------ */

static h_payd srv;

static int http_setup(void **state)
{
    (void)state;
    char extra[2 * PATH_MAX + 256];
    snprintf(extra, sizeof extra,
             "[gateway.main]\nmodule = %s\nlabel = primary\n"
             "[gateway.second]\nmodule = %s\n"
             "[routing]\ndefault = main\n",
             testmod("good_minimal"), testmod("good_minimal"));
    h_payd_opts o = {.max_body_bytes = 4096, .extra = extra};
    return h_payd_start(&srv, &o);
}

static int http_teardown(void **state)
{
    (void)state;
    int rc = h_payd_stop(&srv);
    if (rc != 0) fprintf(stderr, "# payd exited %d at the end of the HTTP group\n", rc);
    return rc == 0 ? 0 : -1;
}

/* Asserts the one error shape, with this status and code. */
static void assert_error(const h_resp *r, long status, const char *code)
{
    if (r->status != status || !h_err_code(r) || strcmp(h_err_code(r), code) != 0)
        print_error("expected %ld %s, got %ld: %s\n", status, code, r->status, r->body);
    assert_int_equal(r->status, status);
    assert_non_null(r->json);
    json_t *err = json_object_get(r->json, "error");
    assert_true(json_is_object(err));
    assert_int_equal(json_object_size(r->json), 1);
    assert_string_equal(json_string_value(json_object_get(err, "code")), code);
    assert_non_null(json_string_value(json_object_get(err, "type")));
    assert_non_null(json_string_value(json_object_get(err, "message")));
    assert_non_null(json_object_get(err, "param")); /* present, maybe null */
    assert_non_null(r->request_id);
    assert_string_equal(json_string_value(json_object_get(err, "request_id")), r->request_id);
    const char *ct = h_resp_header(r, "Content-Type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "application/json"));
}

static void test_healthz_answers_200_ok(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_get(&srv, "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_json_str(&r, "status"), "ok");
    assert_non_null(r.request_id);
    assert_int_equal(strncmp(r.request_id, "req_", 4), 0);
    h_resp_free(&r);
}

static void test_readyz_answers_200_when_database_and_modules_are_ready(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_get(&srv, "/readyz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(h_json_str(&r, "status"), "ready");
    assert_int_equal(json_integer_value(json_object_get(r.json, "gateways")), 2);
    h_resp_free(&r);
}

static void test_unknown_route_is_404_in_the_error_shape(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_get(&srv, "/v1/no/such/thing", NULL, &r), 0);
    assert_error(&r, 404, "route_not_found");
    assert_string_equal(h_err_type(&r), "invalid_request_error");
    assert_int_equal(strncmp(r.request_id, "req_", 4), 0);
    h_resp_free(&r);
}

static void test_each_request_gets_a_distinct_request_id(void **state)
{
    (void)state;
    h_resp a, b;
    assert_int_equal(h_get(&srv, "/healthz", NULL, &a), 0);
    assert_int_equal(h_get(&srv, "/healthz", NULL, &b), 0);
    assert_non_null(a.request_id);
    assert_non_null(b.request_id);
    assert_string_not_equal(a.request_id, b.request_id);
    h_resp_free(&a);
    h_resp_free(&b);
}

static void test_wrong_method_is_405_with_allow_header(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_request(&srv, "POST", "/healthz", NULL, NULL, NULL, NULL, &r), 0);
    assert_error(&r, 405, "method_not_allowed");
    assert_non_null(h_resp_header(&r, "Allow"));
    assert_string_equal(h_resp_header(&r, "Allow"), "GET");
    h_resp_free(&r);

    assert_int_equal(h_get(&srv, "/v1/test/clock", srv.admin_auth, &r), 0);
    assert_error(&r, 405, "method_not_allowed");
    assert_string_equal(h_resp_header(&r, "Allow"), "POST");
    h_resp_free(&r);
}

static void test_metrics_expose_requests_latency_and_pool(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_get(&srv, "/healthz", NULL, &r), 0);
    h_resp_free(&r);
    assert_int_equal(h_get(&srv, "/metrics", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(h_resp_header(&r, "Content-Type"), "text/plain"));
    EXPECT_CONTAINS(r.body, "# TYPE payd_http_requests_total counter");
    EXPECT_CONTAINS(r.body, "payd_http_requests_total{route=\"healthz\",status=\"200\"}");
    EXPECT_CONTAINS(r.body, "# TYPE payd_http_request_duration_seconds histogram");
    EXPECT_CONTAINS(r.body, "payd_http_request_duration_seconds_bucket{le=\"+Inf\"}");
    EXPECT_CONTAINS(r.body, "payd_http_request_duration_seconds_count");
    EXPECT_CONTAINS(r.body, "payd_db_pool_connections{state=\"size\"} 8");
    EXPECT_CONTAINS(r.body, "payd_db_pool_connections{state=\"in_use\"}");
    h_resp_free(&r);
}

static void test_gateways_lists_instances_with_module_version_and_capabilities(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_get(&srv, "/v1/gateways", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *data = json_object_get(r.json, "data");
    assert_true(json_is_array(data));
    assert_int_equal(json_array_size(data), 2);
    json_t *main_gw = json_array_get(data, 0), *second = json_array_get(data, 1);
    assert_string_equal(json_string_value(json_object_get(main_gw, "name")), "main");
    assert_string_equal(json_string_value(json_object_get(second, "name")), "second");
    for (size_t i = 0; i < 2; i++) {
        json_t *g = json_array_get(data, i);
        assert_string_equal(json_string_value(json_object_get(g, "module")), "good_minimal");
        assert_string_equal(json_string_value(json_object_get(g, "version")), "0.0.1");
        json_t *caps = json_object_get(g, "capabilities");
        assert_true(json_is_array(caps));
        assert_int_equal(json_array_size(caps), 0);
    }
    assert_true(json_is_true(json_object_get(main_gw, "default")));
    assert_true(json_is_false(json_object_get(second, "default")));
    h_resp_free(&r);
}

static void test_json_route_accepts_a_valid_object(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", srv.admin_auth, NULL,
                                 "{\"offset_ms\": 0}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_integer(json_object_get(r.json, "now_ms")));
    h_resp_free(&r);
}

static void test_invalid_json_is_400_invalid_json(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", srv.admin_auth, NULL,
                                 "{\"offset_ms\": 0,", &r), 0);
    assert_error(&r, 400, "invalid_json");
    h_resp_free(&r);
}

static void test_body_over_max_body_bytes_is_413(void **state)
{
    (void)state;
    size_t n = 8192;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "{\"offset_ms\": 0, \"pad\": \"", 25);
    memset(big + 25, 'x', n - 27);
    memcpy(big + n - 2, "\"}", 2);
    big[n] = '\0';
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", srv.admin_auth, NULL, big, &r), 0);
    assert_error(&r, 413, "body_too_large");
    h_resp_free(&r);
    free(big);
}

static void test_wrong_content_type_is_415(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_request(&srv, "POST", "/v1/test/clock", srv.admin_auth, NULL, "text/plain",
                               "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 415, "unsupported_media_type");
    h_resp_free(&r);
}

static void test_json_array_body_is_400(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", srv.admin_auth, NULL, "[1, 2]", &r), 0);
    assert_error(&r, 400, "invalid_json");
    EXPECT_CONTAINS(h_err_message(&r), "object");
    h_resp_free(&r);
}

static void test_empty_body_is_400_parameter_missing(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", srv.admin_auth, NULL, "", &r), 0);
    assert_error(&r, 400, "parameter_missing");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "error"), "param")),
                        "offset_ms");
    h_resp_free(&r);
}

static void test_query_parameter_the_route_does_not_read_is_400_parameter_unknown(void **state)
{
    (void)state;
    h_resp r;
    /* A typo must not silently list every order. */
    assert_int_equal(h_get(&srv, "/v1/orders?stauts=paid", srv.admin_auth, &r), 0);
    assert_error(&r, 400, "parameter_unknown");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "error"), "param")), "stauts");
    EXPECT_CONTAINS(h_err_message(&r), "status");
    h_resp_free(&r);
    /* A route that reads no query refuses any. */
    assert_int_equal(h_get(&srv, "/healthz?verbose=1", NULL, &r), 0);
    assert_error(&r, 400, "parameter_unknown");
    h_resp_free(&r);
    /* On a write, the refusal comes before anything happens. */
    assert_int_equal(h_post_json(&srv, "/v1/test/clock?offset_ms=5000", srv.admin_auth, NULL, "{\"offset_ms\": 0}", &r),
                     0);
    assert_error(&r, 400, "parameter_unknown");
    h_resp_free(&r);
    /* Names are compared URL-decoded. */
    assert_int_equal(h_get(&srv, "/v1/orders?st%61tus=paid&limit=1", srv.admin_auth, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
}

static void test_query_parameter_given_twice_is_400_parameter_invalid(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_get(&srv, "/v1/orders?limit=1&status=paid&limit=100", srv.admin_auth, &r), 0);
    assert_error(&r, 400, "parameter_invalid");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.json, "error"), "param")), "limit");
    h_resp_free(&r);
}

static void test_missing_authorization_is_401_missing_credentials(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", NULL, NULL, "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 401, "missing_credentials");
    assert_string_equal(h_err_type(&r), "authentication_error");
    h_resp_free(&r);
}

static void test_garbage_or_unknown_key_is_401(void **state)
{
    (void)state;
    static const char *const creds[] = {
        "Bearer garbage",
        "Bearer payd_nothex",
        "Bearer payd_0123456789ab_0000000000000000000000000000000000000000000000000000000000000000",
        "Basic dXNlcjpwYXNz",
    };
    for (size_t i = 0; i < sizeof creds / sizeof creds[0]; i++) {
        h_resp r;
        assert_int_equal(h_post_json(&srv, "/v1/test/clock", creds[i], NULL, "{\"offset_ms\": 0}", &r), 0);
        assert_error(&r, 401, "invalid_credentials");
        EXPECT_NOT_CONTAINS(r.body, creds[i] + 7); /* never echo the credential */
        h_resp_free(&r);
    }
}

static void test_key_with_wrong_secret_is_401(void **state)
{
    (void)state;
    /* The real key id with a different secret. */
    char forged[200];
    snprintf(forged, sizeof forged, "%s", srv.admin_auth);
    size_t n = strlen(forged);
    forged[n - 1] = forged[n - 1] == '0' ? '1' : '0';
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", forged, NULL, "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 401, "invalid_credentials");
    h_resp_free(&r);
}

static void test_merchant_key_on_admin_route_is_403(void **state)
{
    (void)state;
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", srv.merchant_auth, NULL,
                                 "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 403, "insufficient_role");
    assert_string_equal(h_err_type(&r), "permission_error");
    h_resp_free(&r);
}

static void test_end_user_jwt_on_admin_route_is_403(void **state)
{
    (void)state;
    char *jwt = h_jwt_hs256(h_jwt_secret(), "user_1", (long long)time(NULL) + 600);
    assert_non_null(jwt);
    char auth[1024];
    snprintf(auth, sizeof auth, "Bearer %s", jwt);
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", auth, NULL, "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 403, "insufficient_role");
    h_resp_free(&r);
    free(jwt);

    jwt = h_jwt_hs256("not-the-secret", "user_1", (long long)time(NULL) + 600);
    snprintf(auth, sizeof auth, "Bearer %s", jwt);
    assert_int_equal(h_post_json(&srv, "/v1/test/clock", auth, NULL, "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 401, "invalid_credentials");
    h_resp_free(&r);
    free(jwt);
}

static void test_forged_or_incomplete_jwts_are_401(void **state)
{
    (void)state;
    long long now = (long long)time(NULL);
    char *tokens[5];
    /* alg "none" with no signature: must not pass as HS256. */
    tokens[0] = strdup("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
                       "eyJzdWIiOiJ1c2VyXzEiLCJleHAiOjQxMDI0NDQ4MDB9.");
    tokens[1] = h_jwt_hs256(h_jwt_secret(), "user_1", now - 3600);       /* expired */
    tokens[2] = h_jwt_hs256_claims(h_jwt_secret(), "{\"sub\":\"user_1\"}"); /* no exp */
    tokens[3] = h_jwt_hs256(h_jwt_secret(), NULL, now + 600);            /* no sub */
    tokens[4] = h_jwt_hs256(h_jwt_secret(), "user_1", now + 600);
    assert_non_null(tokens[4]);
    tokens[4][strlen(tokens[4]) - 2] ^= 1; /* flip a bit of the signature */
    for (size_t i = 0; i < 5; i++) {
        assert_non_null(tokens[i]);
        char auth[1024];
        snprintf(auth, sizeof auth, "Bearer %s", tokens[i]);
        h_resp r;
        assert_int_equal(h_post_json(&srv, "/v1/test/clock", auth, NULL, "{\"offset_ms\": 0}", &r), 0);
        if (r.status != 401) print_error("token %zu: %s\n", i, r.body);
        assert_error(&r, 401, "invalid_credentials");
        h_resp_free(&r);
        free(tokens[i]);
    }
}

static void test_log_names_modules_and_never_contains_secrets(void **state)
{
    (void)state;
    assert_true(h_log_contains(&srv, "loaded [gateway.main]: module good_minimal 0.0.1 (ABI 1."));
    assert_true(h_log_contains(&srv, "loaded [gateway.second]: module good_minimal 0.0.1"));
    assert_false(h_log_contains(&srv, h_jwt_secret()));
    assert_false(h_log_contains(&srv, srv.admin_key));
    assert_false(h_log_contains(&srv, srv.merchant_key));
    /* Nor the secret half of a key someone tried. */
    assert_false(h_log_contains(&srv, "0000000000000000000000000000000000000000000000000000000000000000"));
}

typedef struct hammer_arg {
    pthread_barrier_t *start;
    int ok;
} hammer_arg;

static void *hammer(void *arg)
{
    hammer_arg *h = arg;
    pthread_barrier_wait(h->start);
    for (int i = 0; i < 25; i++) {
        h_resp r;
        if (h_get(&srv, i % 2 ? "/healthz" : "/v1/gateways", NULL, &r) == 0 && r.status == 200)
            h->ok++;
        h_resp_free(&r);
    }
    return NULL;
}

static void test_concurrent_requests_are_all_answered(void **state)
{
    (void)state;
    enum { THREADS = 8 };
    pthread_t t[THREADS];
    pthread_barrier_t start;
    hammer_arg args[THREADS];
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (hammer_arg){.start = &start};
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &args[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += args[i].ok;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(total, THREADS * 25);
    assert_int_equal(h_payd_alive(&srv), 1);
}

/* ------------------------------------------------------------------------ */
/* Migrations.                                                              */
/* ------------------------------------------------------------------------ */

typedef struct migrate_run {
    h_payd *p;
    pthread_barrier_t *start; /* NULL: run at once */
    int rc;
    char out[OUT_LEN];
} migrate_run;

static void *migrate_thread(void *arg)
{
    migrate_run *m = arg;
    const char *args[] = {"migrate", NULL};
    if (m->start) pthread_barrier_wait(m->start);
    m->rc = h_payd_cli(m->p, args, m->out, sizeof m->out);
    return NULL;
}

static void test_concurrent_migrate_on_fresh_database_both_succeed_once(void **state)
{
    (void)state;
    h_payd p;
    h_payd_opts o = {.no_redis = 1};
    assert_int_equal(h_payd_configure(&p, &o), 0);

    char pattern[PATH_MAX];
    snprintf(pattern, sizeof pattern, "%s/db/migrations/*.sql", h_root());
    glob_t g;
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    long long files = (long long)g.gl_pathc;
    globfree(&g);
    assert_true(files >= 1);

    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    migrate_run runs[2] = {{.p = &p, .start = &start}, {.p = &p, .start = &start}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, migrate_thread, &runs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    runs[0].start = NULL;
    for (int i = 0; i < 2; i++) {
        if (runs[i].rc != 0) print_error("migrate %d exited %d:\n%s\n", i, runs[i].rc, runs[i].out);
        assert_int_equal(runs[i].rc, 0);
        assert_clean_run(runs[i].out);
    }
    assert_int_equal(h_sql_int(p.db_url, "SELECT count(*) FROM schema_migrations", -1), files);
    assert_int_equal(h_sql_int(p.db_url, "SELECT count(DISTINCT version) FROM schema_migrations", -1),
                     files);
    /* And a third run is a no-op. */
    migrate_thread(&runs[0]);
    assert_int_equal(runs[0].rc, 0);
    assert_int_equal(h_sql_int(p.db_url, "SELECT count(*) FROM schema_migrations", -1), files);
}

/* ------------------------------------------------------------------------ */
/* The database goes away and comes back. Runs last: it stops the shared    */
/* PostgreSQL cluster.                                                      */
/* ------------------------------------------------------------------------ */

static h_payd dbsrv;
static int pg_down;

static int pg_ctl(const char *action)
{
    char script[PATH_MAX + 32], out[4096];
    snprintf(script, sizeof script, "%s/scripts/pg.sh", h_root());
    const char *dir = h_env("PAYD_TEST_PG_DIR"), *port = h_env("PAYD_TEST_PG_PORT");
    if (!dir || !port) return -1;
    const char *argv[] = {script, action, dir, port, NULL};
    if (strcmp(action, "stop") == 0) argv[3] = NULL;
    int rc = h_run(argv, out, sizeof out);
    if (rc != 0) fprintf(stderr, "# pg.sh %s exited %d: %s\n", action, rc, out);
    return rc;
}

static int dbdown_setup(void **state)
{
    (void)state;
    char extra[PATH_MAX + 64];
    snprintf(extra, sizeof extra, "[gateway.main]\nmodule = %s\n", testmod("good_minimal"));
    h_payd_opts o = {.extra = extra, .pool = 4};
    return h_payd_start(&dbsrv, &o);
}

static int dbdown_teardown(void **state)
{
    (void)state;
    if (pg_down && pg_ctl("start") == 0) pg_down = 0;
    int rc = h_payd_stop(&dbsrv);
    return rc == 0 && !pg_down ? 0 : -1;
}

static void test_database_outage_gives_503_and_recovers_when_it_returns(void **state)
{
    (void)state;
    /* A key payd has not cached yet, so using it needs the database. */
    char key[160], auth[176];
    assert_int_equal(h_payd_apikey(&dbsrv, "admin", key, sizeof key), 0);
    snprintf(auth, sizeof auth, "Bearer %s", key);

    assert_int_equal(pg_ctl("stop"), 0);
    pg_down = 1;

    h_resp r;
    assert_int_equal(h_get(&dbsrv, "/readyz", NULL, &r), 0);
    assert_error(&r, 503, "not_ready");
    EXPECT_CONTAINS(h_err_message(&r), "database");
    h_resp_free(&r);

    assert_int_equal(h_post_json(&dbsrv, "/v1/test/clock", auth, NULL, "{\"offset_ms\": 0}", &r), 0);
    assert_error(&r, 503, "service_unavailable");
    h_resp_free(&r);

    /* Liveness is not readiness: payd keeps serving what needs no database. */
    assert_int_equal(h_get(&dbsrv, "/healthz", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    assert_int_equal(h_payd_alive(&dbsrv), 1);

    assert_int_equal(pg_ctl("start"), 0);
    pg_down = 0;

    int64_t deadline = h_now_ms() + 20000;
    long status = 0;
    while (h_now_ms() < deadline) {
        assert_int_equal(h_get(&dbsrv, "/readyz", NULL, &r), 0);
        status = r.status;
        h_resp_free(&r);
        if (status == 200) break;
        h_sleep_ms(200);
    }
    assert_int_equal(status, 200);

    assert_int_equal(h_post_json(&dbsrv, "/v1/test/clock", auth, NULL, "{\"offset_ms\": 0}", &r), 0);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);

    assert_int_equal(h_payd_stop(&dbsrv), 0);
}

int main(void)
{
    if (h_init() != 0) return 1;
    const struct CMUnitTest check_config_tests[] = {
        cmocka_unit_test(test_check_config_rejects_syntax_error_naming_line),
        cmocka_unit_test(test_check_config_rejects_unknown_server_key_naming_line),
        cmocka_unit_test(test_check_config_rejects_missing_database_url),
        cmocka_unit_test(test_check_config_rejects_unknown_section_naming_line),
        cmocka_unit_test(test_check_config_rejects_unset_env_secret_naming_variable),
        cmocka_unit_test(test_check_config_rejects_missing_module_file),
        cmocka_unit_test(test_check_config_rejects_unknown_module_name_in_module_dir),
        cmocka_unit_test(test_check_config_refuses_module_built_for_abi_major_2),
        cmocka_unit_test(test_check_config_refuses_descriptor_smaller_than_v1_0),
        cmocka_unit_test(test_check_config_refuses_object_without_entry_symbol),
        cmocka_unit_test(test_check_config_reports_init_failure_with_message_and_section),
        cmocka_unit_test(test_check_config_refuses_capability_without_function),
        cmocka_unit_test(test_check_config_rejects_duplicate_section),
        cmocka_unit_test(test_check_config_rejects_gateway_and_notifier_sharing_a_name),
        cmocka_unit_test(test_check_config_rejects_key_the_module_does_not_read),
        cmocka_unit_test(test_check_config_rejects_routing_to_missing_gateway),
        cmocka_unit_test(test_check_config_accepts_good_minimal_with_extra_exported_symbol),
        cmocka_unit_test(test_serve_with_broken_module_exits_nonzero_without_crashing),
    };
    const struct CMUnitTest http_tests[] = {
        cmocka_unit_test(test_healthz_answers_200_ok),
        cmocka_unit_test(test_readyz_answers_200_when_database_and_modules_are_ready),
        cmocka_unit_test(test_unknown_route_is_404_in_the_error_shape),
        cmocka_unit_test(test_each_request_gets_a_distinct_request_id),
        cmocka_unit_test(test_wrong_method_is_405_with_allow_header),
        cmocka_unit_test(test_metrics_expose_requests_latency_and_pool),
        cmocka_unit_test(test_gateways_lists_instances_with_module_version_and_capabilities),
        cmocka_unit_test(test_json_route_accepts_a_valid_object),
        cmocka_unit_test(test_invalid_json_is_400_invalid_json),
        cmocka_unit_test(test_body_over_max_body_bytes_is_413),
        cmocka_unit_test(test_wrong_content_type_is_415),
        cmocka_unit_test(test_json_array_body_is_400),
        cmocka_unit_test(test_empty_body_is_400_parameter_missing),
        cmocka_unit_test(test_query_parameter_the_route_does_not_read_is_400_parameter_unknown),
        cmocka_unit_test(test_query_parameter_given_twice_is_400_parameter_invalid),
        cmocka_unit_test(test_missing_authorization_is_401_missing_credentials),
        cmocka_unit_test(test_garbage_or_unknown_key_is_401),
        cmocka_unit_test(test_key_with_wrong_secret_is_401),
        cmocka_unit_test(test_merchant_key_on_admin_route_is_403),
        cmocka_unit_test(test_end_user_jwt_on_admin_route_is_403),
        cmocka_unit_test(test_forged_or_incomplete_jwts_are_401),
        cmocka_unit_test(test_concurrent_requests_are_all_answered),
        cmocka_unit_test(test_log_names_modules_and_never_contains_secrets),
    };
    const struct CMUnitTest migrate_tests[] = {
        cmocka_unit_test(test_concurrent_migrate_on_fresh_database_both_succeed_once),
    };
    const struct CMUnitTest outage_tests[] = {
        cmocka_unit_test(test_database_outage_gives_503_and_recovers_when_it_returns),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("check_config", check_config_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("http", http_tests, http_setup, http_teardown);
    failed += cmocka_run_group_tests_name("migrate", migrate_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("database_outage", outage_tests, dbdown_setup,
                                          dbdown_teardown);
    return failed ? 1 : 0;
}
