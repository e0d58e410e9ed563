/*
 * test_config.c - config_load (server/config.c) on real files: defaults,
 * typed values, every error with its file and line, env: and file: secrets,
 * and routing that names a gateway with no section.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

/* A loaded config plus the errors, and the file it came from. */
typedef struct loaded {
    config cfg;
    config_errors errs;
    char path[512];
    int rc;
} loaded;

static void scratch_path(char *out, size_t len, const char *suffix)
{
    const char *dir = getenv("PAYD_TEST_TMP");
    if (!dir || !*dir) dir = getenv("TMPDIR");
    if (!dir || !*dir) dir = "/tmp";
    snprintf(out, len, "%s/payd-config-XXXXXX%s", dir, suffix);
}

/* Writes `text` to a fresh file and loads it. The file is removed again;
 * the messages keep naming it. */
static void load(loaded *l, const char *text)
{
    memset(l, 0, sizeof *l);
    scratch_path(l->path, sizeof l->path, ".conf");
    int fd = mkstemps(l->path, 5);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    l->rc = config_load(l->path, &l->cfg, &l->errs);
    unlink(l->path);
}

static void unload(loaded *l)
{
    config_free(&l->cfg);
    config_errors_free(&l->errs);
}

static void dump_errors(const loaded *l)
{
    for (size_t i = 0; i < l->errs.count; i++) print_error("  error: %s\n", l->errs.items[i]);
}

/* Asserts one of the errors is exactly "PATH:<rest>", rest printf-style. */
static void assert_error(const loaded *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void assert_error(const loaded *l, const char *fmt, ...)
{
    char rest[1024], want[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    snprintf(want, sizeof want, "%s:%s", l->path, rest);
    for (size_t i = 0; i < l->errs.count; i++)
        if (strcmp(l->errs.items[i], want) == 0) return;
    print_error("expected error \"%s\"; got %zu:\n", want, l->errs.count);
    dump_errors(l);
    fail();
}

static void assert_ok(const loaded *l)
{
    if (l->rc != 0 || l->errs.count != 0) {
        print_error("expected no errors, got %zu:\n", l->errs.count);
        dump_errors(l);
    }
    assert_int_equal(l->rc, 0);
    assert_int_equal(l->errs.count, 0);
}

#define DB "[database]\nurl = postgresql:///payd\n"

/* ------------------------------------------------------------------------ */

static void test_defaults_apply_when_only_database_url_is_set(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB);
    assert_ok(&l);
    config *c = &l.cfg;
    assert_string_equal(c->database_url, "postgresql:///payd");
    assert_string_equal(c->listen, "127.0.0.1:8080");
    assert_string_equal(c->public_url, "http://127.0.0.1:8080");
    assert_int_equal(c->threads, 16);
    assert_int_equal(c->max_body_bytes, 1024 * 1024);
    assert_int_equal(c->http_timeout_ms, 15000);
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->test_mode, 0);
    assert_null(c->module_dir);
    assert_int_equal(c->db_pool, 8);
    assert_int_equal(c->db_wait_ms, 2000);
    assert_int_equal(c->db_statement_timeout_ms, 10000);
    assert_null(c->redis_url);
    assert_int_equal(c->redis_pool, 4);
    assert_null(c->jwt_secret);
    assert_int_equal(c->jwt_leeway_s, 30);
    assert_int_equal(c->max_amount, 100000000);
    assert_int_equal(c->idempotency_ttl_s, 86400);
    assert_int_equal(c->janitor_interval_ms, 1000);
    assert_string_equal(c->janitor_schedule, "60,300,3600,86400");
    assert_int_equal(c->janitor_max_attempts, 8);
    assert_null(c->route_default);
    assert_int_equal(c->route_count, 0);
    assert_string_equal(c->path, l.path);
    unload(&l);
}

static void test_values_are_parsed_into_typed_fields(void **state)
{
    (void)state;
    loaded l;
    load(&l, "; a comment\n"
             "[server]\n"
             "listen = 0.0.0.0:9999\n"
             "threads = 4\n"
             "public_url = https://pay.example.com///\n"
             "max_body_bytes = 4096\n"
             "http_timeout_ms = 2500\n"
             "log_level = debug\n"
             "test_mode = yes\n"
             "module_dir = /opt/payd/modules\n"
             "[database]\n"
             "url = postgresql://u@h:5/db\n"
             "pool = 32\n"
             "wait_timeout_ms = 150\n"
             "statement_timeout_ms = 0\n"
             "[redis]\n"
             "url = redis://127.0.0.1:6379/2\n"
             "pool = 2\n"
             "[auth]\n"
             "jwt_leeway_s = 0\n"
             "[payments]\n"
             "max_amount = 9000000000000\n"
             "idempotency_ttl_s = 3600\n"
             "janitor_interval_ms = 50\n"
             "janitor_schedule = 1,2,3\n"
             "janitor_max_attempts = 3\n");
    assert_ok(&l);
    config *c = &l.cfg;
    assert_string_equal(c->listen, "0.0.0.0:9999");
    assert_int_equal(c->threads, 4);
    assert_string_equal(c->public_url, "https://pay.example.com"); /* trailing '/' dropped */
    assert_int_equal(c->max_body_bytes, 4096);
    assert_int_equal(c->http_timeout_ms, 2500);
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_int_equal(c->test_mode, 1);
    assert_string_equal(c->module_dir, "/opt/payd/modules");
    assert_string_equal(c->database_url, "postgresql://u@h:5/db");
    assert_int_equal(c->db_pool, 32);
    assert_int_equal(c->db_wait_ms, 150);
    assert_int_equal(c->db_statement_timeout_ms, 0);
    assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/2");
    assert_int_equal(c->redis_pool, 2);
    assert_int_equal(c->jwt_leeway_s, 0);
    assert_true(c->max_amount == 9000000000000LL);
    assert_int_equal(c->idempotency_ttl_s, 3600);
    assert_int_equal(c->janitor_interval_ms, 50);
    assert_string_equal(c->janitor_schedule, "1,2,3");
    assert_int_equal(c->janitor_max_attempts, 3);
    unload(&l);
}

static void test_booleans_accept_the_usual_spellings(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int value;
    } cases[] = {{"true", 1}, {"yes", 1}, {"on", 1}, {"1", 1},
                 {"false", 0}, {"no", 0}, {"off", 0}, {"0", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[server]\ntest_mode = %s\n" DB, cases[i].text);
        loaded l;
        load(&l, text);
        assert_ok(&l);
        assert_int_equal(l.cfg.test_mode, cases[i].value);
        unload(&l);
    }
}

static void test_public_url_defaults_to_the_listen_address(void **state)
{
    (void)state;
    loaded l;
    load(&l, "[server]\nlisten = 127.0.0.1:7001\n" DB);
    assert_ok(&l);
    assert_string_equal(l.cfg.public_url, "http://127.0.0.1:7001");
    unload(&l);
}

/* ------------------------------------------------------------------------ */
/* Errors name the file and line.                                           */
/* ------------------------------------------------------------------------ */

static void test_missing_file_is_reported(void **state)
{
    (void)state;
    config cfg;
    config_errors errs = {0};
    assert_int_equal(config_load("/nonexistent/payd.conf", &cfg, &errs), -1);
    assert_int_equal(errs.count, 1);
    assert_string_equal(errs.items[0], "/nonexistent/payd.conf: cannot open: No such file or directory");
    config_free(&cfg);
    config_errors_free(&errs);
}

static void test_syntax_error_names_its_line(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                      /* 1-2 */
             "[server]\n"            /* 3 */
             "threads = 2\n"         /* 4 */
             "no equals sign here\n" /* 5 */
             "test_mode = true\n");  /* 6 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "5: syntax error");
    unload(&l);
}

static void test_unclosed_section_header_is_a_syntax_error(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB "[server\nthreads = 2\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, "3: syntax error");
    unload(&l);
}

static void test_unknown_key_names_line_and_section(void **state)
{
    (void)state;
    loaded l;
    load(&l, "[server]\n"        /* 1 */
             "threads = 2\n"     /* 2 */
             "thread = 3\n"      /* 3 */
             DB                  /* 4-5 */
             "flavour = x\n");   /* 6 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "3: unknown key 'thread' in [server]");
    assert_error(&l, "6: unknown key 'flavour' in [database]");
    assert_int_equal(l.errs.count, 2);
    unload(&l);
}

static void test_unknown_or_malformed_section_names_its_line(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                   /* 1-2 */
             "[sever]\n"          /* 3 */
             "threads = 2\n"      /* 4: ignored, the section was reported */
             "[gateway.]\n"       /* 5 */
             "[gateway.Main]\n"   /* 6 */
             "[notifier.a b]\n"   /* 7 */
             "[webhooks.x]\n");   /* 8 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "3: unknown section [sever]");
    assert_error(&l, "5: unknown section [gateway.]");
    assert_error(&l, "6: unknown section [gateway.Main]");
    assert_error(&l, "7: unknown section [notifier.a b]");
    assert_error(&l, "8: unknown section [webhooks.x]");
    assert_int_equal(l.errs.count, 5);
    unload(&l);
}

static void test_duplicate_section_and_key_name_both_lines(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                      /* 1-2 */
             "[server]\n"            /* 3 */
             "threads = 2\n"         /* 4 */
             "threads = 3\n"         /* 5 */
             "[gateway.main]\n"      /* 6 */
             "module = mock\n"       /* 7 */
             "[server]\n");          /* 8 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "5: duplicate key 'threads' in [server] (first at line 4)");
    assert_error(&l, "8: duplicate section [server] (first at line 3)");
    assert_int_equal(l.cfg.threads, 2); /* the first value stands */
    unload(&l);
}

static void test_out_of_range_or_non_numeric_integers_name_key_and_range(void **state)
{
    (void)state;
    loaded l;
    load(&l, "[server]\n"                 /* 1 */
             "threads = 0\n"              /* 2 */
             "max_body_bytes = 10\n"      /* 3 */
             "http_timeout_ms = 8x\n"     /* 4 */
             "[database]\n"               /* 5 */
             "url = postgresql:///x\n"    /* 6 */
             "pool = many\n"              /* 7 */
             "[payments]\n"               /* 8 */
             "max_amount = -5\n");        /* 9 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "2: [server] threads must be an integer in 1..1024");
    assert_error(&l, "3: [server] max_body_bytes must be an integer in 1024..67108864");
    assert_error(&l, "4: [server] http_timeout_ms must be an integer in 100..600000");
    assert_error(&l, "7: [database] pool must be an integer in 1..512");
    assert_error(&l, "9: [payments] max_amount must be an integer >= 1");
    assert_int_equal(l.errs.count, 5);
    assert_int_equal(l.cfg.threads, 16); /* defaults kept */
    unload(&l);
}

static void test_bad_boolean_and_log_level_name_their_line(void **state)
{
    (void)state;
    loaded l;
    load(&l, "[server]\n"             /* 1 */
             "test_mode = maybe\n"    /* 2 */
             "log_level = loud\n"     /* 3 */
             DB);
    assert_int_equal(l.rc, -1);
    assert_error(&l, "2: [server] test_mode must be true or false");
    assert_error(&l, "3: [server] log_level must be debug, info, warn or error");
    unload(&l);
}

static void test_missing_database_url_names_the_section_or_line_1(void **state)
{
    (void)state;
    loaded l;
    load(&l, "[server]\n"      /* 1 */
             "threads = 2\n"   /* 2 */
             "[database]\n"    /* 3 */
             "pool = 2\n");    /* 4 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "3: missing required key 'url' in [database]");
    unload(&l);

    load(&l, "[server]\nthreads = 2\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, "1: missing required key 'url' in [database]");
    unload(&l);
}

static void test_instance_section_without_module_is_reported(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                      /* 1-2 */
             "[gateway.main]\n"      /* 3 */
             "secret_key = x\n"      /* 4 */
             "[notifier.shop]\n"     /* 5 */
             "url = http://x/\n");   /* 6 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "3: missing required key 'module' in [gateway.main]");
    assert_error(&l, "5: missing required key 'module' in [notifier.shop]");
    unload(&l);
}

static void test_every_error_is_collected_not_just_the_first(void **state)
{
    (void)state;
    loaded l;
    load(&l, "[server]\n"
             "bogus = 1\n"
             "threads = -1\n"
             "[nope]\n"
             "[routing]\n"
             "default = ghost\n");
    assert_int_equal(l.rc, -1);
    assert_error(&l, "2: unknown key 'bogus' in [server]");
    assert_error(&l, "3: [server] threads must be an integer in 1..1024");
    assert_error(&l, "4: unknown section [nope]");
    assert_error(&l, "1: missing required key 'url' in [database]");
    assert_error(&l, "6: [routing] default names gateway 'ghost', which has no [gateway.ghost] section");
    assert_int_equal(l.errs.count, 5);
    unload(&l);
}

/* ------------------------------------------------------------------------ */
/* Secrets.                                                                 */
/* ------------------------------------------------------------------------ */

static void test_env_secrets_are_resolved_and_marked_secret(void **state)
{
    (void)state;
    setenv("PAYD_UNIT_JWT", "jwt-secret-value", 1);
    setenv("PAYD_UNIT_API_KEY", "sk_test_123", 1);
    loaded l;
    load(&l, DB
             "[auth]\n"
             "jwt_secret = env:PAYD_UNIT_JWT\n"
             "[gateway.main]\n"
             "module = mock\n"
             "api_key = env:PAYD_UNIT_API_KEY\n");
    assert_ok(&l);
    assert_string_equal(l.cfg.jwt_secret, "jwt-secret-value");
    const config_section *s = config_section_find(&l.cfg, "gateway.main");
    assert_non_null(s);
    config_entry *e = config_entry_find(s, "api_key");
    assert_non_null(e);
    assert_string_equal(e->value, "sk_test_123");
    assert_int_equal(e->secret, 1);
    config_entry *m = config_entry_find(s, "module");
    assert_non_null(m);
    assert_int_equal(m->secret, 0);
    unload(&l);
    unsetenv("PAYD_UNIT_JWT");
    unsetenv("PAYD_UNIT_API_KEY");
}

static void test_unset_or_empty_env_secret_names_file_line_and_variable(void **state)
{
    (void)state;
    unsetenv("PAYD_UNIT_UNSET");
    setenv("PAYD_UNIT_EMPTY", "", 1);
    loaded l;
    load(&l, DB                                  /* 1-2 */
             "[auth]\n"                          /* 3 */
             "jwt_secret = env:PAYD_UNIT_UNSET\n" /* 4 */
             "[gateway.main]\n"                  /* 5 */
             "module = mock\n"                   /* 6 */
             "api_key = env:PAYD_UNIT_EMPTY\n"); /* 7 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "4: environment variable PAYD_UNIT_UNSET is not set");
    assert_error(&l, "7: environment variable PAYD_UNIT_EMPTY is not set");
    assert_null(l.cfg.jwt_secret);
    assert_null(config_entry_find(config_section_find(&l.cfg, "gateway.main"), "api_key"));
    unload(&l);
    unsetenv("PAYD_UNIT_EMPTY");
}

static void test_file_secrets_are_resolved_without_trailing_newlines(void **state)
{
    (void)state;
    char secret_path[512];
    scratch_path(secret_path, sizeof secret_path, "");
    int fd = mkstemp(secret_path);
    assert_true(fd >= 0);
    const char *content = "whsec_abc123\r\n\n";
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);

    char text[2048];
    snprintf(text, sizeof text,
             DB "[gateway.main]\nmodule = mock\nwebhook_secret = file:%s\n"
                "[auth]\njwt_secret = file:%s\n",
             secret_path, secret_path);
    loaded l;
    load(&l, text);
    unlink(secret_path);
    assert_ok(&l);
    config_entry *e = config_entry_find(config_section_find(&l.cfg, "gateway.main"), "webhook_secret");
    assert_non_null(e);
    assert_string_equal(e->value, "whsec_abc123");
    assert_int_equal(e->secret, 1);
    assert_string_equal(l.cfg.jwt_secret, "whsec_abc123");
    unload(&l);
}

static void test_unreadable_file_secret_names_line_and_path(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                                                 /* 1-2 */
             "[auth]\n"                                         /* 3 */
             "jwt_secret = file:/nonexistent/payd/secret\n");   /* 4 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "4: cannot read secret file /nonexistent/payd/secret: No such file or directory");
    unload(&l);
}

static void test_http_ca_file_is_kept_when_readable_and_refused_otherwise(void **state)
{
    (void)state;
    loaded l;
    char ca[512], text[700];
    scratch_path(ca, sizeof ca, ".pem");
    int fd = mkstemps(ca, 4);
    assert_true(fd >= 0);
    close(fd);
    snprintf(text, sizeof text, DB "[server]\nhttp_ca_file = %s\n", ca);
    load(&l, text);
    unlink(ca);
    assert_ok(&l);
    assert_string_equal(l.cfg.http_ca_file, ca);
    unload(&l);
    load(&l, DB                                                 /* 1-2 */
             "[server]\n"                                       /* 3 */
             "http_ca_file = /nonexistent/payd/ca.pem\n");      /* 4 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "4: [server] http_ca_file is not a readable file");
    unload(&l);
    load(&l, DB);
    assert_null(l.cfg.http_ca_file);
    unload(&l);
}

/* ------------------------------------------------------------------------ */
/* Instances and routing.                                                   */
/* ------------------------------------------------------------------------ */

static void test_instance_sections_keep_raw_entries_with_lines(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                            /* 1-2 */
             "[gateway.stripe_us]\n"       /* 3 */
             "module = stripe\n"           /* 4 */
             "region = us\n"               /* 5 */
             "[notifier.shop-1]\n"         /* 6 */
             "module = webhook\n"          /* 7 */
             "events = order.paid, refund.succeeded\n"); /* 8 */
    assert_ok(&l);
    const config_section *s = config_section_find(&l.cfg, "gateway.stripe_us");
    assert_non_null(s);
    assert_int_equal(s->line, 3);
    assert_int_equal(s->count, 2);
    config_entry *e = config_entry_find(s, "region");
    assert_non_null(e);
    assert_string_equal(e->value, "us");
    assert_int_equal(e->line, 5);
    assert_int_equal(e->used, 0);
    assert_null(config_entry_find(s, "nothing"));
    const config_section *n = config_section_find(&l.cfg, "notifier.shop-1");
    assert_non_null(n);
    assert_string_equal(config_entry_find(n, "events")->value, "order.paid, refund.succeeded");
    assert_null(config_section_find(&l.cfg, "gateway.nothing"));
    assert_null(config_entry_find(NULL, "module"));
    unload(&l);
}

static void test_routing_naming_a_missing_gateway_names_the_line(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB                        /* 1-2 */
             "[gateway.main]\n"        /* 3 */
             "module = mock\n"         /* 4 */
             "[routing]\n"             /* 5 */
             "default = primary\n"     /* 6 */
             "fallback = backup\n"     /* 7: not a payd key (docs/decisions.md) */
             "currency.JPY = japan\n"  /* 8 */
             "currency.USD = main\n"); /* 9 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "6: [routing] default names gateway 'primary', which has no [gateway.primary] section");
    assert_error(&l, "7: unknown key 'fallback' in [routing]");
    assert_error(&l, "8: [routing] currency.JPY names gateway 'japan', which has no [gateway.japan] section");
    assert_int_equal(l.errs.count, 3);
    unload(&l);
}

static void test_routing_to_a_notifier_is_not_a_gateway(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB
             "[notifier.shop]\n"
             "module = webhook\n"
             "[routing]\n"
             "default = shop\n"); /* 6 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "6: [routing] default names gateway 'shop', which has no [gateway.shop] section");
    unload(&l);
}

static void test_routing_currencies_are_upper_cased_and_validated(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB
             "[gateway.main]\nmodule = mock\n"
             "[gateway.jp]\nmodule = mock\n"
             "[routing]\n"
             "default = main\n"
             "currency.jpy = jp\n"
             "currency.EUR = main\n");
    assert_ok(&l);
    assert_string_equal(l.cfg.route_default, "main");
    assert_int_equal(l.cfg.route_count, 2);
    assert_string_equal(l.cfg.routes[0].currency, "JPY");
    assert_string_equal(l.cfg.routes[0].gateway, "jp");
    assert_int_equal(l.cfg.routes[0].line, 9);
    assert_string_equal(l.cfg.routes[1].currency, "EUR");
    unload(&l);

    load(&l, DB
             "[gateway.main]\nmodule = mock\n"
             "[routing]\n"          /* 5 */
             "currency.EURO = main\n" /* 6 */
             "currency. = main\n");  /* 7 */
    assert_int_equal(l.rc, -1);
    assert_error(&l, "6: [routing] currency.EURO: expected currency.XXX");
    assert_error(&l, "7: [routing] currency.: expected currency.XXX");
    unload(&l);
}

static void test_config_free_releases_and_clears(void **state)
{
    (void)state;
    loaded l;
    load(&l, DB "[gateway.main]\nmodule = mock\n[routing]\ndefault = main\ncurrency.usd = main\n");
    assert_ok(&l);
    config_free(&l.cfg);
    assert_null(l.cfg.sections);
    assert_null(l.cfg.database_url);
    assert_int_equal(l.cfg.route_count, 0);
    config_free(&l.cfg); /* twice is harmless */
    config_errors_free(&l.errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_apply_when_only_database_url_is_set),
        cmocka_unit_test(test_values_are_parsed_into_typed_fields),
        cmocka_unit_test(test_booleans_accept_the_usual_spellings),
        cmocka_unit_test(test_public_url_defaults_to_the_listen_address),
        cmocka_unit_test(test_missing_file_is_reported),
        cmocka_unit_test(test_syntax_error_names_its_line),
        cmocka_unit_test(test_unclosed_section_header_is_a_syntax_error),
        cmocka_unit_test(test_unknown_key_names_line_and_section),
        cmocka_unit_test(test_unknown_or_malformed_section_names_its_line),
        cmocka_unit_test(test_duplicate_section_and_key_name_both_lines),
        cmocka_unit_test(test_out_of_range_or_non_numeric_integers_name_key_and_range),
        cmocka_unit_test(test_bad_boolean_and_log_level_name_their_line),
        cmocka_unit_test(test_missing_database_url_names_the_section_or_line_1),
        cmocka_unit_test(test_instance_section_without_module_is_reported),
        cmocka_unit_test(test_every_error_is_collected_not_just_the_first),
        cmocka_unit_test(test_env_secrets_are_resolved_and_marked_secret),
        cmocka_unit_test(test_unset_or_empty_env_secret_names_file_line_and_variable),
        cmocka_unit_test(test_file_secrets_are_resolved_without_trailing_newlines),
        cmocka_unit_test(test_unreadable_file_secret_names_line_and_path),
        cmocka_unit_test(test_http_ca_file_is_kept_when_readable_and_refused_otherwise),
        cmocka_unit_test(test_instance_sections_keep_raw_entries_with_lines),
        cmocka_unit_test(test_routing_naming_a_missing_gateway_names_the_line),
        cmocka_unit_test(test_routing_to_a_notifier_is_not_a_gateway),
        cmocka_unit_test(test_routing_currencies_are_upper_cased_and_validated),
        cmocka_unit_test(test_config_free_releases_and_clears),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
