/*
 * modcheck.c - payd-modcheck: load a module exactly as payd does and run
 * the conformance checks on it.
 *
 *   payd-modcheck --config FILE --section gateway.NAME [options]
 *
 *   --json                 print a JSON report on stdout (lines go to stderr)
 *   --threads N            concurrent scenario runners (default 16)
 *   --init-cycles N        init/fini repetitions (default 100)
 *   --module-dir DIR       where `module = NAME` is looked up (default as
 *                          payd: [server] module_dir, else BINDIR/modules)
 *   --ok-method TOKEN      a payment method that succeeds (pm_card_visa)
 *   --decline-method TOKEN a payment method the provider declines
 *   --timeout-key KEY      the section's base-URL key; modcheck points it at
 *                          a server that accepts and never answers
 *   --timeout-method TOKEN or: a payment method whose call times out
 *   --timeout-ms N         host HTTP timeout while --timeout-key runs (1000)
 *   --approve-url URL      a redirect gateway: the buyer's step between
 *                          create (requires_action) and confirm, one GET of
 *                          '{next_action_url}' or a URL with {provider_ref}
 *   --webhook-sample FILE  the exact body of a valid provider webhook
 *   --webhook-header 'Name: value'   its headers (repeat); {t} and
 *                          {hmac-t.body:KEY}, {hmac-body:KEY} sign it at run time
 *   --amount N --currency C          the test payment (1099 USD)
 *   --log FILE             where module output goes (default: a temp file,
 *                          kept when something fails)
 *   --keep-log             keep the log file even when everything passed
 *
 * Exit status: 0 when no check failed (warnings and skips allowed), 1 when
 * one did, 2 for bad usage.
 *
 * The phases, in order: read the config (config_load, as payd); judge the
 * descriptor and the exported symbols (mc_abi.c); load with modules_load
 * (the loader probes init in a child, initializes, rejects unknown keys);
 * init/fini N more times looking for errors and leaks; the gateway
 * scenarios alone and from many threads (mc_scenarios.c); unload; scan the
 * captured log. Output strings and error messages are checked on every
 * call (mc_guard.c).
 */
#include "modcheck.h"

#include <errno.h>
#include <libgen.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "log.h"

/* Present when built with AddressSanitizer: an on-demand leak check and
 * the allocator's count of bytes in use. */
extern int __lsan_do_recoverable_leak_check(void) __attribute__((weak));
extern size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

static void usage(FILE *f)
{
    fprintf(f,
            "usage: payd-modcheck --config FILE --section gateway.NAME|notifier.NAME [options]\n"
            "  --json  --threads N  --init-cycles N  --module-dir DIR\n"
            "  --ok-method TOKEN  --decline-method TOKEN\n"
            "  --timeout-key KEY | --timeout-method TOKEN  [--timeout-ms N]\n"
            "  --approve-url '{next_action_url}'|URL-with-{provider_ref}   (redirect gateways)\n"
            "  --webhook-sample FILE  --webhook-header 'Name: value' (repeatable; {t},\n"
            "                         {hmac-t.body:KEY}, {hmac-body:KEY} are filled in at run time)\n"
            "  --amount N  --currency CODE  --log FILE  --keep-log\n"
            "See sdk/README.md, \"Checking a module with payd-modcheck\".\n");
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* 0, or 2 (usage) after printing why. */
static int parse_args(int argc, char **argv, mc_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        int takes = 1;
        if (!strcmp(a, "--json")) o->json = 1, takes = 0;
        else if (!strcmp(a, "--keep-log")) o->keep_log = 1, takes = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else if (!v) {
            fprintf(stderr, "payd-modcheck: %s needs a value (or is unknown)\n", a);
            return 2;
        } else if (!strcmp(a, "--config") || !strcmp(a, "-c")) o->config_path = v;
        else if (!strcmp(a, "--section")) o->section = v;
        else if (!strcmp(a, "--module-dir")) o->module_dir = v;
        else if (!strcmp(a, "--ok-method")) o->ok_method = v;
        else if (!strcmp(a, "--decline-method")) o->decline_method = v;
        else if (!strcmp(a, "--timeout-key")) o->timeout_key = v;
        else if (!strcmp(a, "--timeout-method")) o->timeout_method = v;
        else if (!strcmp(a, "--webhook-sample")) o->webhook_sample = v;
        else if (!strcmp(a, "--approve-url")) {
            if (!mc_approve_template_ok(v)) {
                fprintf(stderr, "payd-modcheck: --approve-url wants '{next_action_url}' or an http(s) URL\n");
                return 2;
            }
            o->approve_url = v;
        } else if (!strcmp(a, "--currency")) o->currency = v;
        else if (!strcmp(a, "--log")) o->log_path = v;
        else if (!strcmp(a, "--webhook-header")) {
            if (o->webhook_header_count == MC_MAX_HEADERS || !strchr(v, ':')) {
                fprintf(stderr, "payd-modcheck: --webhook-header wants 'Name: value' (at most %d)\n",
                        MC_MAX_HEADERS);
                return 2;
            }
            o->webhook_headers[o->webhook_header_count++] = v;
        } else if (!strcmp(a, "--threads")) {
            if (parse_long(v, 0, MC_MAX_THREADS, &n)) goto bad_number;
            o->threads = (int)n;
        } else if (!strcmp(a, "--init-cycles")) {
            if (parse_long(v, 0, 100000, &n)) goto bad_number;
            o->init_cycles = (int)n;
        } else if (!strcmp(a, "--timeout-ms")) {
            if (parse_long(v, 100, 600000, &n)) goto bad_number;
            o->timeout_ms = n;
        } else if (!strcmp(a, "--amount")) {
            if (parse_long(v, 1, 999999999, &n)) goto bad_number;
            o->amount = n;
        } else {
            fprintf(stderr, "payd-modcheck: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i += takes;
        continue;
    bad_number:
        fprintf(stderr, "payd-modcheck: %s: '%s' is not a number in range\n", a, v);
        return 2;
    }
    if (!o->config_path || !o->section) {
        usage(stderr);
        return 2;
    }
    if (o->timeout_key && o->timeout_method) {
        fprintf(stderr, "payd-modcheck: give --timeout-key or --timeout-method, not both\n");
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Config                                                                   */
/* ------------------------------------------------------------------------ */

static void section_free(config_section *s)
{
    for (size_t j = 0; j < s->count; j++) {
        if (s->entries[j].secret && s->entries[j].value)
            explicit_bzero(s->entries[j].value, strlen(s->entries[j].value));
        free(s->entries[j].key);
        free(s->entries[j].value);
    }
    free(s->entries);
    free(s->name);
}

static int is_module_section(const char *name)
{
    return !strncmp(name, "gateway.", 8) || !strncmp(name, "notifier.", 9);
}

/* The section that holds line `line` of the file (the last one starting at
 * or before it), or NULL. */
static const config_section *section_of_line(const config *cfg, int line)
{
    const config_section *best = NULL;
    for (size_t i = 0; i < cfg->section_count; i++)
        if (cfg->sections[i].line <= line && (!best || cfg->sections[i].line > best->line))
            best = &cfg->sections[i];
    return best;
}

/*
 * Drops config errors modcheck does not care about: the [database] url it
 * never uses, and anything inside another module's section (that section
 * is not loaded). What stays fails the config check.
 */
static void filter_config_errors(const mc_ctx *c, config_errors *errs)
{
    size_t keep = 0;
    size_t plen = strlen(c->cfg.path ? c->cfg.path : "");
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->items[i];
        int drop = strstr(m, "missing required key 'url' in [database]") != NULL;
        if (!drop && c->cfg.path && !strncmp(m, c->cfg.path, plen) && m[plen] == ':') {
            const config_section *s = section_of_line(&c->cfg, atoi(m + plen + 1));
            drop = s && is_module_section(s->name) && strcmp(s->name, c->o->section) != 0;
        }
        if (drop) free(errs->items[i]);
        else errs->items[keep++] = errs->items[i];
    }
    errs->count = keep;
}

/* A key whose value must never leak: env:/file: secrets, and keys named
 * like one. Short values would match by accident and are not searched. */
static int is_secret_entry(const config_entry *e)
{
    static const char *const words[] = {"secret", "password", "passwd", "token", "private", NULL};
    if (strlen(e->value) < 6) return 0;
    if (e->secret) return 1;
    for (int i = 0; words[i]; i++)
        if (strstr(e->key, words[i])) return 1;
    size_t n = strlen(e->key);
    return n >= 3 && !strcmp(e->key + n - 3, "key");
}

static void collect_secrets(mc_ctx *c, const config_section *s)
{
    c->secrets = calloc(s->count + 1, sizeof *c->secrets);
    for (size_t i = 0; c->secrets && i < s->count; i++)
        if (is_secret_entry(&s->entries[i]) && strcmp(s->entries[i].key, "module") != 0)
            c->secrets[c->secret_count++] = strdup(s->entries[i].value);
}

/* Copies the section under test as [gateway.NAME_mctimeout] with `key`
 * pointed at the black hole. 0 or -1 (reported). */
static int add_timeout_twin(mc_ctx *c, int port)
{
    config *cfg = &c->cfg;
    const config_section *s = config_section_find(cfg, c->o->section);
    if (!config_entry_find(s, c->o->timeout_key)) {
        mc_check_set(MC_TIMEOUT, MC_FAIL, "[%s] has no key '%s' to aim at a server that never answers",
                     c->o->section, c->o->timeout_key);
        return -1;
    }
    if (cfg->section_count == cfg->section_cap) {
        size_t cap = cfg->section_cap ? cfg->section_cap * 2 : 8;
        config_section *grown = realloc(cfg->sections, cap * sizeof *grown);
        if (!grown) return -1;
        cfg->sections = grown;
        cfg->section_cap = cap;
        s = config_section_find(cfg, c->o->section);
    }
    config_section twin = {.line = s->line};
    snprintf(c->timeout_section, sizeof c->timeout_section, "%s_mctimeout", c->o->section);
    twin.name = strdup(c->timeout_section);
    twin.entries = calloc(s->count, sizeof *twin.entries);
    if (!twin.name || !twin.entries) {
        free(twin.name);
        free(twin.entries);
        return -1;
    }
    twin.count = twin.cap = s->count;
    for (size_t i = 0; i < s->count; i++) {
        config_entry *e = &twin.entries[i];
        *e = s->entries[i];
        e->key = strdup(s->entries[i].key);
        if (!strcmp(e->key, c->o->timeout_key)) {
            char url[64];
            snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
            e->value = strdup(url);
            e->secret = 0;
        } else {
            e->value = strdup(s->entries[i].value);
        }
        e->used = 0;
    }
    cfg->sections[cfg->section_count++] = twin;
    return 0;
}

static void module_dir_of(const mc_ctx *c, char *out, size_t len)
{
    if (c->o->module_dir) {
        snprintf(out, len, "%s", c->o->module_dir);
        return;
    }
    if (c->cfg.module_dir) {
        snprintf(out, len, "%s", c->cfg.module_dir);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, len, "modules");
        return;
    }
    exe[n] = '\0';
    snprintf(out, len, "%s/modules", dirname(exe));
}

/* Reads the config as payd does and narrows it to the section under test.
 * 0, or -1 with the config check failed. */
static int load_config(mc_ctx *c, char *module_dir, size_t dir_len)
{
    const mc_opts *o = c->o;
    config_errors errs = {0};
    config_load(o->config_path, &c->cfg, &errs);
    c->cfg_loaded = 1;
    filter_config_errors(c, &errs);
    int rc = 0;
    if (errs.count) {
        mc_check_set(MC_CONFIG, MC_FAIL, "%s%s", errs.items[0],
                     errs.count > 1 ? " (and more: run payd check-config)" : "");
        rc = -1;
    }
    const config_section *s = config_section_find(&c->cfg, o->section);
    if (!rc && !s) {
        mc_check_set(MC_CONFIG, MC_FAIL, "%s has no section [%s]", o->config_path, o->section);
        rc = -1;
    }
    if (!rc && !is_module_section(o->section)) {
        mc_check_set(MC_CONFIG, MC_FAIL, "--section must name a [gateway.NAME] or [notifier.NAME] section");
        rc = -1;
    }
    config_errors_free(&errs);
    if (rc) return rc;
    c->kind = !strncmp(o->section, "gateway.", 8) ? PAYD_KIND_GATEWAY : PAYD_KIND_NOTIFIER;
    c->instance_name = strchr(o->section, '.') + 1;

    /* Only the section under test is loaded. */
    size_t keep = 0;
    for (size_t i = 0; i < c->cfg.section_count; i++) {
        config_section *sec = &c->cfg.sections[i];
        if (is_module_section(sec->name) && strcmp(sec->name, o->section) != 0) section_free(sec);
        else c->cfg.sections[keep++] = *sec;
    }
    c->cfg.section_count = keep;
    s = config_section_find(&c->cfg, o->section);
    collect_secrets(c, s);

    module_dir_of(c, module_dir, dir_len);
    const config_entry *me = config_entry_find(s, "module");
    if (strchr(me->value, '/')) snprintf(c->module_path, sizeof c->module_path, "%s", me->value);
    else if (snprintf(c->module_path, sizeof c->module_path, "%s/%s.so", module_dir, me->value) >=
             (int)sizeof c->module_path) {
        mc_check_set(MC_CONFIG, MC_FAIL, "the module path is too long");
        return -1;
    }
    mc_check_set(MC_CONFIG, MC_PASS, "[%s] module = %s (%zu secret value%s watched)", o->section, me->value,
                 c->secret_count, c->secret_count == 1 ? "" : "s");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* init/fini                                                                */
/* ------------------------------------------------------------------------ */

/* Heap bytes in use: the sanitizer allocator's count under ASan, glibc's
 * otherwise; 0 when neither can tell. */
static size_t heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes) return __sanitizer_get_current_allocated_bytes();
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks;
#else
    return 0;
#endif
}

/* Growth over the cycles that counts as a leak: a few bytes of allocator
 * noise are tolerated, a lost string per init is not. glibc's count also
 * holds freed chunks parked in its per-thread caches, a bounded noise that
 * settles early: there, only growth in the second half of the cycles
 * counts. */
#define MC_LEAK_BYTES 256

/*
 * init and fini, o->init_cycles times, on the loaded instance's own host
 * table and config view (a module must allow several live instances).
 * Leaks: the heap in use before and after (after one warm-up cycle, for
 * first-use caches); when it grew and LeakSanitizer is there, its
 * on-demand report (on the real stderr) says where from.
 */
static void run_init_fini(mc_ctx *c)
{
    instance *in = c->inst;
    int n = c->o->init_cycles;
    if (n <= 0) {
        mc_check_set(MC_INIT_FINI, MC_SKIP, "--init-cycles 0");
        return;
    }
    void *st = NULL;
    payd_error e = {0};
    if (in->mod->init(&in->host, &in->cfg, &st, &e) == 0 && in->mod->fini) in->mod->fini(st);
    size_t heap0 = heap_in_use(), heap_mid = heap0;
    int64_t t0 = host_now_ms();
    for (int i = 1; i <= n; i++) {
        if (i == n / 2 + 1) heap_mid = heap_in_use();
        st = NULL;
        memset(&e, 0, sizeof e);
        int rc = in->mod->init(&in->host, &in->cfg, &st, &e);
        e.message[sizeof e.message - 1] = '\0';
        mc_guard_text(c, "init: payd_error.message", e.message, strlen(e.message));
        if (rc != 0) {
            mc_check_set(MC_INIT_FINI, MC_FAIL, "init #%d returned %s: %s (it succeeded at load)", i,
                         mc_code_name(rc), e.message);
            return;
        }
        if (in->mod->fini) in->mod->fini(st);
    }
    long ms = (long)(host_now_ms() - t0);
    size_t heap1 = heap_in_use();
    if (!heap0) {
        mc_check_set(MC_INIT_FINI, MC_PASS, "%d cycles in %ld ms; heap not measured here", n, ms);
        return;
    }
    int exact = __sanitizer_get_current_allocated_bytes != NULL;
    if (exact ? heap1 >= heap0 + MC_LEAK_BYTES : heap1 >= heap_mid + MC_LEAK_BYTES / 2) {
        int reported = 0;
        if (__lsan_do_recoverable_leak_check) {
            mc_log_pause();
            reported = __lsan_do_recoverable_leak_check();
            mc_log_resume();
        }
        mc_check_set(MC_INIT_FINI, MC_FAIL, "the heap grew by %zu bytes over %d init/fini cycles (%zu per cycle)%s",
                     heap1 - heap0, n, (heap1 - heap0) / (size_t)n,
                     reported ? ": LeakSanitizer found memory lost over them (report on stderr)" : "");
        return;
    }
    mc_check_set(MC_INIT_FINI, MC_PASS, "%d cycles in %ld ms; the heap stayed within %d bytes", n, ms,
                 MC_LEAK_BYTES);
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/* The loader's messages: those about the section under test go to the
 * checks they concern; those about its timeout twin, to `timeout`. All
 * are scanned for leaks. */
static void report_loader_errors(mc_ctx *c, config_errors *errs)
{
    config_errors mine = {0};
    char twin[160] = "";
    if (c->timeout_section[0]) snprintf(twin, sizeof twin, "[%s]", c->timeout_section);
    for (size_t i = 0; i < errs->count; i++) {
        const char *m = errs->items[i];
        mc_guard_text(c, "a loader message", m, strlen(m));
        if (twin[0] && strstr(m, twin))
            mc_check_fail(MC_TIMEOUT, "with %s aimed at a server that never answers, the module did not load: %s",
                          c->o->timeout_key, m);
        else
            config_errors_add(&mine, "%s", m);
    }
    mc_abi_loader_errors(&mine, 0);
    config_errors_free(&mine);
}

static instance *find_instance(registry *r, int kind, const char *name)
{
    if (kind == PAYD_KIND_GATEWAY) return modules_gateway(r, name);
    for (size_t i = 0; i < r->notifier_count; i++)
        if (!strcmp(r->notifiers[i]->name, name)) return r->notifiers[i];
    return NULL;
}

int main(int argc, char **argv)
{
    mc_opts o = {.threads = 16, .init_cycles = 100, .timeout_ms = 1000, .amount = 1099, .currency = "USD"};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc;
    mc_ctx c = {.o = &o};
    uint8_t rnd[4];
    host_random_bytes(rnd, sizeof rnd);
    host_hex(rnd, sizeof rnd, c.run_id);

    mc_report_open(o.json);
    char log_path[PATH_MAX];
    if (o.log_path) {
        snprintf(log_path, sizeof log_path, "%s", o.log_path);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(log_path, sizeof log_path, "%s/payd-modcheck-%d-%s.log", tmp && *tmp ? tmp : "/tmp",
                 (int)getpid(), c.run_id);
    }
    if (mc_guard_arena_selftest() != 0)
        mc_check_set(MC_ARENA, MC_SKIP, "cannot see inside server/arena.c's arena (its layout changed): "
                     "ownership not checked");

    mc_report_note("payd-modcheck %s: [%s] of %s", MC_VERSION, o.section, o.config_path);
    char module_dir[PATH_MAX];
    long log_bytes = -1;
    const char *facts[16] = {"section", o.section, "config", o.config_path};
    int nf = 4;
    if (load_config(&c, module_dir, sizeof module_dir) != 0) goto finish;
    facts[nf++] = "path";
    facts[nf++] = c.module_path;
    mc_webhook_prepare(&c);
    if (o.timeout_key && c.kind == PAYD_KIND_GATEWAY) {
        int port = mc_blackhole_start();
        if (port < 0) mc_check_set(MC_TIMEOUT, MC_FAIL, "cannot open a local listener: %s", strerror(errno));
        else add_timeout_twin(&c, port);
    }

    int captured = mc_log_begin(log_path) == 0;
    if (!captured) mc_report_note("cannot write %s: module output is not captured, so not scanned", log_path);
    log_set_level(LOG_DEBUG); /* a card number in a debug line is still a leak */
    if (redis_open(&c.redis, c.cfg.redis_url, c.cfg.redis_pool) != 0) c.redis = NULL;
    host_global_init(c.redis, c.cfg.http_timeout_ms);
    c.host_inits = 1;
    /* As payd: [server] http_ca_file is trusted for outbound https. */
    if (host_set_http_ca_file(c.cfg.http_ca_file) != 0) mc_report_note("out of memory for [server] http_ca_file");

    mc_abi_inspect(&c);
    config_errors errs = {0};
    modules_load(&c.reg, &c.cfg, module_dir, &errs);
    c.reg_loaded = 1;
    report_loader_errors(&c, &errs);
    config_errors_free(&errs);
    c.inst = find_instance(&c.reg, c.kind, c.instance_name);
    if (c.inst && !c.inst->initialized) c.inst = NULL;
    if (o.timeout_key && c.timeout_section[0]) {
        c.timeout_inst = modules_gateway(&c.reg, strchr(c.timeout_section, '.') + 1);
        if (c.timeout_inst && !c.timeout_inst->initialized) c.timeout_inst = NULL;
    }
    char headline[600];
    if (c.inst) {
        const payd_module *d = c.inst->mod;
        mc_check_pass(MC_LOAD, "loaded %s %s, init succeeded, every key was read", d->name, d->version);
        mc_check_pass(MC_ABI_KIND, "as the section says");
        snprintf(headline, sizeof headline, "module %.60s %.40s (ABI %u.%u) from %.300s", d->name, d->version,
                 d->abi_major, d->abi_minor, c.module_path);
        facts[nf++] = "name";
        facts[nf++] = d->name;
        facts[nf++] = "version";
        facts[nf++] = d->version;
    } else {
        snprintf(headline, sizeof headline, "module %.300s did not load", c.module_path);
    }
    mc_report_note("%s", headline);
    mc_report_flush();

    if (c.inst) {
        run_init_fini(&c);
        mc_report_flush();
        mc_scenarios_run(&c);
    }

    modules_unload(&c.reg);
    mc_abi_close();
    while (c.host_inits-- > 0) host_global_fini();
    redis_close(c.redis);
    mc_blackhole_stop();
    if (captured) log_bytes = mc_log_end(&c, log_path);

    long outputs = 0, texts = 0;
    mc_guard_counts(&outputs, &texts);
    if (c.inst && c.kind == PAYD_KIND_GATEWAY)
        mc_check_pass(MC_ARENA, "%ld output strings, each inside its call's arena or static", outputs);
    if (c.inst)
        mc_check_pass(MC_NO_SECRETS, "%ld texts scanned (outputs, errors, log lines): no card number, "
                      "no secret value (%zu watched)", texts, c.secret_count);

finish:
    mc_check_skip_pending(c.inst ? "not applicable" : "not run: the module did not load");
    mc_report_flush();
    int failed = 0;
    for (int i = 0; i < MC_CHECK_COUNT; i++) failed |= mc_check_status(i) == MC_FAIL;
    if (log_bytes >= 0 && !o.log_path && !failed && !o.keep_log) {
        unlink(log_path);
        mc_report_note("module output: %ld bytes, scanned and removed", log_bytes);
    } else if (log_bytes >= 0) {
        mc_report_note("module output: %ld bytes, kept in %s", log_bytes, log_path);
    }
    rc = mc_report_finish(o.json, facts);
    mc_webhook_free(&c);
    for (size_t i = 0; i < c.secret_count; i++) {
        explicit_bzero(c.secrets[i], strlen(c.secrets[i]));
        free(c.secrets[i]);
    }
    free(c.secrets);
    if (c.cfg_loaded) config_free(&c.cfg);
    return rc;
}
