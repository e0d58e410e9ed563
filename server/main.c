/*
 * main.c - the payd command line.
 *
 *   payd serve [-c FILE]             serve the HTTP API
 *   payd migrate [-c FILE]           apply database migrations
 *   payd check-config FILE           validate a config, loading its modules
 *   payd audit-verify [-c FILE]      walk the audit hash chains
 *   payd apikey create --role R [--description D] [-c FILE]
 *   payd report [-c FILE] --from D --to D [--group-by G] [--format csv|json]
 *   payd reconcile [-c FILE | --server URL] --gateway NAME --from D --to D
 *   payd version
 *
 * The default config is conf/payd.conf. Exit codes: 0 success, 1 a failure
 * the message explains, 2 bad usage.
 */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "auth.h"
#include "background.h"
#include "cli_reconcile.h"
#include "cli_report.h"
#include "host.h"
#include "http.h"
#include "invoice.h"
#include "log.h"
#include "migrate.h"

#define PAYD_VERSION "0.1.0"

static void usage(void)
{
    fprintf(stderr,
            "usage: payd serve [-c FILE]\n"
            "       payd migrate [-c FILE]\n"
            "       payd check-config FILE\n"
            "       payd audit-verify [-c FILE]\n"
            "       payd apikey create --role admin|merchant [--description TEXT] [-c FILE]\n"
            "       payd report [-c FILE] --from DATE --to DATE [--group-by day|gateway|currency] [--format csv|json]\n"
            "       payd reconcile [-c FILE | --server URL] --gateway NAME --from DATE --to DATE\n"
            "       payd version\n");
}

/* Modules sit next to the binary in a build tree (build/modules) and under
 * ../lib/payd/modules once installed (make install). */
static void module_dir_default(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, len, "modules");
        return;
    }
    exe[n] = '\0';
    const char *dir = dirname(exe);
    snprintf(out, len, "%s/modules", dir);
    if (access(out, R_OK) == 0) return;
    snprintf(out, len, "%s/../lib/payd/modules", dir);
}

static void print_errors(const config_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++) fprintf(stderr, "payd: %s\n", errs->items[i]);
}

/* What app_open loads besides the config: the modules, and the invoice
 * template with the PDF fonts (fontconfig), which only serve and
 * check-config need; `payd reconcile` loads modules but renders no invoice,
 * so a broken template or a missing font must not stop it. */
#define APP_MODULES 1
#define APP_INVOICE 2

/* Loads config (and the `parts` asked for). On failure prints every error. */
static int app_open(app *a, const char *path, int parts, int with_db)
{
    static config cfg;
    static registry mods;
    static config_errors errs;
    memset(a, 0, sizeof *a);
    a->cfg = &cfg;
    a->mods = &mods;
    if (config_load(path, &cfg, &errs) != 0) {
        print_errors(&errs);
        config_errors_free(&errs);
        return -1;
    }
    log_set_level(cfg.log_level);
    if (redis_open(&a->redis, cfg.redis_url, cfg.redis_pool) != 0) {
        fprintf(stderr, "payd: %s: [redis] url must look like redis://host:port/db\n", path);
        return -1;
    }
    host_global_init(a->redis, cfg.http_timeout_ms);
    if (host_set_http_ca_file(cfg.http_ca_file) != 0) {
        fprintf(stderr, "payd: out of memory\n");
        return -1;
    }
    if (parts & APP_MODULES) {
        char dir[PATH_MAX];
        if (cfg.module_dir) snprintf(dir, sizeof dir, "%s", cfg.module_dir);
        else module_dir_default(dir, sizeof dir);
        if (modules_load(&mods, &cfg, dir, &errs) != 0) {
            print_errors(&errs);
            config_errors_free(&errs);
            return -1;
        }
    }
    /* The invoice template is checked at startup: a broken one stops
     * serve and check-config, not a customer's invoice. */
    if (parts & APP_INVOICE) {
        if (invoice_setup(a, &errs) != 0) {
            print_errors(&errs);
            config_errors_free(&errs);
            return -1;
        }
    }
    if (with_db &&
        store_open(&a->db, cfg.database_url, cfg.db_pool, cfg.db_wait_ms,
                   cfg.db_statement_timeout_ms) != STORE_OK) {
        fprintf(stderr, "payd: cannot create the database pool\n");
        return -1;
    }
    return 0;
}

static void app_close(app *a)
{
    modules_unload(a->mods);
    invoice_teardown(a);
    store_close(a->db);
    redis_close(a->redis);
    host_global_fini();
    config_free(a->cfg);
}

static int cmd_serve(const char *path)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* every thread inherits this */
    signal(SIGPIPE, SIG_IGN);

    app a;
    if (app_open(&a, path, APP_MODULES | APP_INVOICE, 1) != 0) return 1;
    int warm = store_warm(a.db);
    if (warm < a.cfg->db_pool)
        log_warn("payd", "database: %d of %d pooled connections open; the rest retry on use", warm, a.cfg->db_pool);
    if (http_start(&a) != 0) {
        app_close(&a);
        return 1;
    }
    background_start(&a);
    log_info("payd", "payd %s serving %s on %s", PAYD_VERSION, path, a.cfg->public_url);
    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("payd", "received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    atomic_store(&a.stopping, 1);
    http_stop(&a);
    background_stop(&a);
    app_close(&a);
    log_info("payd", "stopped");
    return 0;
}

static int cmd_migrate(const char *path)
{
    app a;
    if (app_open(&a, path, 0, 1) != 0) return 1;
    int rc = migrate_apply(a.db);
    app_close(&a);
    return rc == STORE_OK ? 0 : 1;
}

static int cmd_check_config(const char *path)
{
    app a;
    if (app_open(&a, path, APP_MODULES | APP_INVOICE, 0) != 0) return 1;
    printf("%s: ok (%zu gateways, %zu notifiers)\n", path, a.mods->gateway_count,
           a.mods->notifier_count);
    app_close(&a);
    return 0;
}

static int cmd_audit_verify(const char *path)
{
    app a;
    if (app_open(&a, path, 0, 1) != 0) return 1;
    json_t *report = NULL;
    int rc = audit_verify(a.db, &report);
    int ok = 0;
    if (rc == STORE_OK) {
        char *text = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        ok = json_is_true(json_object_get(report, "ok"));
        json_decref(report);
    } else {
        fprintf(stderr, "payd: audit-verify: database unavailable\n");
    }
    app_close(&a);
    return ok ? 0 : 1;
}

static int cmd_apikey_create(const char *path, const char *role, const char *desc)
{
    if (!role || (strcmp(role, "admin") != 0 && strcmp(role, "merchant") != 0)) {
        fprintf(stderr, "payd: --role must be admin or merchant\n");
        return 2;
    }
    app a;
    if (app_open(&a, path, 0, 1) != 0) return 1;
    char key[128];
    int rc = auth_apikey_create(&a, role, desc, key, sizeof key);
    if (rc == STORE_OK) {
        printf("%s\n", key);
        fprintf(stderr, "payd: created a %s key; it is shown once, store it now\n", role);
        explicit_bzero(key, sizeof key);
    } else {
        fprintf(stderr, "payd: could not create the key (database unavailable or not migrated)\n");
    }
    app_close(&a);
    return rc == STORE_OK ? 0 : 1;
}

/* payd report (cli_report.c): database only. */
static int cmd_report(int argc, char **argv)
{
    cli_report_opts o;
    int rc = cli_report_parse(argc, argv, &o);
    if (rc != 0) return rc;
    app a;
    if (app_open(&a, o.config, 0, 1) != 0) return 2;
    rc = cli_report_run(&a, &o);
    app_close(&a);
    return rc;
}

/* payd reconcile (cli_reconcile.c): here, with the modules loaded, or by
 * asking a running payd (--server). */
static int cmd_reconcile(int argc, char **argv)
{
    cli_reconcile_opts o;
    int rc = cli_reconcile_parse(argc, argv, &o);
    if (rc != 0) return rc;
    if (o.server) return cli_reconcile_remote(&o);
    app a;
    if (app_open(&a, o.config, APP_MODULES, 1) != 0) return 2;
    rc = cli_reconcile_run(&a, &o);
    app_close(&a);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1];
    /* These two parse their own options. */
    if (!strcmp(cmd, "report")) return cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "reconcile")) return cmd_reconcile(argc - 1, argv + 1);
    const char *path = "conf/payd.conf";
    const char *role = NULL, *desc = NULL, *sub = NULL;
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--role") && i + 1 < argc) role = argv[++i];
        else if (!strcmp(argv[i], "--description") && i + 1 < argc) desc = argv[++i];
        else if (!sub && argv[i][0] != '-') sub = argv[i];
        else {
            usage();
            return 2;
        }
    }
    if (!strcmp(cmd, "version")) {
        printf("payd %s (module ABI %d.%d)\n", PAYD_VERSION, PAYD_ABI_MAJOR, PAYD_ABI_MINOR);
        return 0;
    }
    if (!strcmp(cmd, "serve")) return cmd_serve(path);
    if (!strcmp(cmd, "migrate")) return cmd_migrate(path);
    if (!strcmp(cmd, "check-config")) return cmd_check_config(sub ? sub : path);
    if (!strcmp(cmd, "audit-verify")) return cmd_audit_verify(path);
    if (!strcmp(cmd, "apikey") && sub && !strcmp(sub, "create")) return cmd_apikey_create(path, role, desc);
    usage();
    return 2;
}
