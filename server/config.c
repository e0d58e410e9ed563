/*
 * config.c - load payd.conf.
 *
 * inih parses the INI syntax; this file owns the meaning. A custom line
 * reader counts lines (Debian's inih is built without line numbers) and sees
 * every section header, so duplicate and empty sections are caught too.
 * Every error names the file and line, and all errors are collected, not
 * just the first, so `payd check-config` can show them together.
 *
 * Values of the form env:NAME and file:PATH are secrets: they are resolved
 * here, once, and never logged. A secret that cannot be resolved is an error.
 *
 * Gateway and notifier sections are kept as raw key/value lists; the module
 * loader checks them against what each module reads (modules.c).
 *
 * Runs once at startup on one thread; the result is read-only afterwards.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

typedef struct parse_ctx {
    config *cfg;
    config_errors *errs;
    FILE *fp;
    int line;
} parse_ctx;

void config_errors_add(config_errors *errs, const char *fmt, ...)
{
    if (errs->count == errs->cap) {
        size_t cap = errs->cap ? errs->cap * 2 : 8;
        char **items = realloc(errs->items, cap * sizeof *items);
        if (!items) return;
        errs->items = items;
        errs->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) >= 0) errs->items[errs->count++] = msg;
    va_end(ap);
}

void config_errors_free(config_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++) free(errs->items[i]);
    free(errs->items);
    memset(errs, 0, sizeof *errs);
}

const config_section *config_section_find(const config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->section_count; i++)
        if (strcmp(cfg->sections[i].name, name) == 0) return &cfg->sections[i];
    return NULL;
}

config_entry *config_entry_find(const config_section *s, const char *key)
{
    if (!s) return NULL;
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->entries[i].key, key) == 0) return &s->entries[i];
    return NULL;
}

static int section_name_valid(const char *name)
{
    static const char *const fixed[] = {"server", "database", "redis", "auth", "payments",
                                        "outbox", "routing", "invoice", "admin", NULL};
    for (int i = 0; fixed[i]; i++)
        if (strcmp(name, fixed[i]) == 0) return 1;
    const char *inst = NULL;
    if (strncmp(name, "gateway.", 8) == 0) inst = name + 8;
    else if (strncmp(name, "notifier.", 9) == 0) inst = name + 9;
    /* inih keeps 49 bytes of a section name: longer would lose keys. */
    if (!inst || !*inst || strlen(name) > 49) return 0;
    for (const char *p = inst; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_' && *p != '-')
            return 0;
    return 1;
}

static config_section *section_add(parse_ctx *ctx, const char *name, int line)
{
    config *cfg = ctx->cfg;
    if (cfg->section_count == cfg->section_cap) {
        size_t cap = cfg->section_cap ? cfg->section_cap * 2 : 16;
        config_section *s = realloc(cfg->sections, cap * sizeof *s);
        if (!s) return NULL;
        cfg->sections = s;
        cfg->section_cap = cap;
    }
    config_section *s = &cfg->sections[cfg->section_count++];
    memset(s, 0, sizeof *s);
    s->name = strdup(name);
    s->line = line;
    return s;
}

/* Reads one line and notes section headers with their line numbers. */
static char *config_read_line(char *str, int num, void *stream)
{
    parse_ctx *ctx = stream;
    if (!fgets(str, num, ctx->fp)) return NULL;
    ctx->line++;
    /* inih reads an indented line as the continuation of the previous
     * value; payd has no multi-line values, so indentation is just layout. */
    size_t lead = strspn(str, " \t");
    if (lead) memmove(str, str + lead, strlen(str + lead) + 1);
    const char *p = str;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        if (!end) return str; /* inih reports it */
        char name[128];
        size_t n = (size_t)(end - p - 1);
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, p + 1, n);
        name[n] = '\0';
        if (strlen(name) > 49) {
            config_errors_add(ctx->errs, "%s:%d: section name [%.60s...] is longer than 49 characters",
                              ctx->cfg->path, ctx->line, name);
        } else if (!section_name_valid(name)) {
            config_errors_add(ctx->errs, "%s:%d: unknown section [%s]", ctx->cfg->path,
                              ctx->line, name);
        } else {
            const config_section *prev = config_section_find(ctx->cfg, name);
            if (prev)
                config_errors_add(ctx->errs, "%s:%d: duplicate section [%s] (first at line %d)",
                                  ctx->cfg->path, ctx->line, name, prev->line);
            else
                section_add(ctx, name, ctx->line);
        }
    }
    return str;
}

/* Resolves env:NAME and file:PATH. Returns a malloc'd value or NULL. */
static char *resolve_value(parse_ctx *ctx, const char *value, int *secret)
{
    *secret = 0;
    if (strncmp(value, "env:", 4) == 0) {
        *secret = 1;
        const char *v = getenv(value + 4);
        if (!v || !*v) {
            config_errors_add(ctx->errs, "%s:%d: environment variable %s is not set",
                              ctx->cfg->path, ctx->line, value + 4);
            return NULL;
        }
        return strdup(v);
    }
    if (strncmp(value, "file:", 5) == 0) {
        *secret = 1;
        FILE *f = fopen(value + 5, "r");
        if (!f) {
            config_errors_add(ctx->errs, "%s:%d: cannot read secret file %s: %s",
                              ctx->cfg->path, ctx->line, value + 5, strerror(errno));
            return NULL;
        }
        char buf[8192];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = '\0';
        char *out = strdup(buf);
        explicit_bzero(buf, sizeof buf);
        return out;
    }
    return strdup(value);
}

static int config_on_value(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *ctx = user;
    config_section *s = (config_section *)config_section_find(ctx->cfg, section);
    if (!s) return 1; /* unknown or duplicate section, already reported */
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->entries[i].key, name) == 0) {
            config_errors_add(ctx->errs, "%s:%d: duplicate key '%s' in [%s] (first at line %d)",
                              ctx->cfg->path, ctx->line, name, section, s->entries[i].line);
            return 1;
        }
    }
    int secret = 0;
    char *resolved = resolve_value(ctx, value, &secret);
    if (!resolved) {
        /* Reported already; remembered so it is not also called missing. */
        if (strcmp(section, "database") == 0 && strcmp(name, "url") == 0) ctx->cfg->database_url_unresolved = 1;
        return 1;
    }
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        config_entry *e = realloc(s->entries, cap * sizeof *e);
        if (!e) {
            free(resolved);
            return 0;
        }
        s->entries = e;
        s->cap = cap;
    }
    config_entry *e = &s->entries[s->count++];
    e->key = strdup(name);
    e->value = resolved;
    e->line = ctx->line;
    e->used = 0;
    e->secret = secret;
    return 1;
}

/* --- typed extraction of the core sections --- */

typedef enum { K_STR, K_INT, K_BOOL, K_I64, K_LOGLEVEL } key_type;

typedef struct key_spec {
    const char *key;
    key_type type;
    size_t offset;
    long min, max;
} key_spec;

#define S(field) K_STR, offsetof(config, field), 0, 0
#define I(field, lo, hi) K_INT, offsetof(config, field), lo, hi
#define B(field) K_BOOL, offsetof(config, field), 0, 1

static const key_spec server_keys[] = {
    {"listen", S(listen)},
    {"threads", I(threads, 1, 1024)},
    {"public_url", S(public_url)},
    {"max_body_bytes", K_INT, offsetof(config, max_body_bytes), 1024, 64L * 1024 * 1024},
    {"http_timeout_ms", I(http_timeout_ms, 100, 600000)},
    {"http_ca_file", S(http_ca_file)},
    {"log_level", K_LOGLEVEL, offsetof(config, log_level), 0, 0},
    {"test_mode", B(test_mode)},
    {"module_dir", S(module_dir)},
    {NULL, 0, 0, 0, 0}};
static const key_spec database_keys[] = {
    {"url", S(database_url)},
    {"pool", I(db_pool, 1, 512)},
    {"wait_timeout_ms", I(db_wait_ms, 1, 600000)},
    {"statement_timeout_ms", I(db_statement_timeout_ms, 0, 3600000)},
    {NULL, 0, 0, 0, 0}};
static const key_spec redis_keys[] = {
    {"url", S(redis_url)}, {"pool", I(redis_pool, 1, 512)}, {NULL, 0, 0, 0, 0}};
static const key_spec auth_keys[] = {
    {"jwt_secret", S(jwt_secret)},
    {"jwt_leeway_s", I(jwt_leeway_s, 0, 3600)},
    {"jwt_issuer", S(jwt_issuer)},
    {"jwt_audience", S(jwt_audience)},
    {"rate_limit_per_minute", I(rate_limit_per_minute, 0, 100000000)},
    {NULL, 0, 0, 0, 0}};
static const key_spec payments_keys[] = {
    {"max_amount", K_I64, offsetof(config, max_amount), 1, 0},
    {"idempotency_ttl_s", I(idempotency_ttl_s, 60, 30 * 86400)},
    {"janitor_interval_ms", I(janitor_interval_ms, 50, 3600000)},
    {"janitor_schedule", S(janitor_schedule)},
    {"janitor_max_attempts", I(janitor_max_attempts, 1, 1000)},
    {NULL, 0, 0, 0, 0}};
static const key_spec outbox_keys[] = {
    {"threads", I(outbox_threads, 1, 64)},
    {"poll_ms", I(outbox_poll_ms, 10, 60000)},
    {"retry_schedule", S(outbox_schedule)},
    {"max_attempts", I(outbox_max_attempts, 1, 1000)},
    {"lease_s", I(outbox_lease_s, 5, 3600)},
    {NULL, 0, 0, 0, 0}};
static const key_spec admin_keys[] = {
    {"report_max_days", I(report_max_days, 1, 36600)}, {NULL, 0, 0, 0, 0}};
static const key_spec routing_keys[] = {
    {"default", S(route_default)}, {NULL, 0, 0, 0, 0}};
static const key_spec invoice_keys[] = {
    {"template", S(invoice_template)},
    {"seller_name", S(invoice_seller_name)},
    {"seller_address", S(invoice_seller_address)},
    {"seller_tax_id", S(invoice_seller_tax_id)},
    {"seller_email", S(invoice_seller_email)},
    {"footer", S(invoice_footer)},
    {NULL, 0, 0, 0, 0}};

static void apply_value(config *cfg, config_errors *errs, const char *section,
                        const key_spec *k, const config_entry *e)
{
    void *field = (char *)cfg + k->offset;
    char *end = NULL;
    switch (k->type) {
    case K_STR:
        free(*(char **)field);
        *(char **)field = strdup(e->value);
        return;
    case K_BOOL:
        if (!strcmp(e->value, "true") || !strcmp(e->value, "yes") || !strcmp(e->value, "on") ||
            !strcmp(e->value, "1"))
            *(int *)field = 1;
        else if (!strcmp(e->value, "false") || !strcmp(e->value, "no") ||
                 !strcmp(e->value, "off") || !strcmp(e->value, "0"))
            *(int *)field = 0;
        else
            config_errors_add(errs, "%s:%d: [%s] %s must be true or false", cfg->path, e->line,
                              section, k->key);
        return;
    case K_LOGLEVEL: {
        int lvl = log_level_parse(e->value);
        if (lvl < 0)
            config_errors_add(errs, "%s:%d: [%s] %s must be debug, info, warn or error",
                              cfg->path, e->line, section, k->key);
        else
            *(int *)field = lvl;
        return;
    }
    case K_INT:
    case K_I64: {
        errno = 0;
        long long v = strtoll(e->value, &end, 10);
        long long hi = k->type == K_I64 ? LLONG_MAX : k->max;
        if (errno || end == e->value || *end || v < k->min || v > hi) {
            if (k->type == K_I64)
                config_errors_add(errs, "%s:%d: [%s] %s must be an integer >= %ld", cfg->path,
                                  e->line, section, k->key, k->min);
            else
                config_errors_add(errs, "%s:%d: [%s] %s must be an integer in %ld..%ld",
                                  cfg->path, e->line, section, k->key, k->min, k->max);
            return;
        }
        if (k->type == K_I64) *(int64_t *)field = v;
        else if (k->offset == offsetof(config, max_body_bytes)) *(long *)field = (long)v;
        else *(int *)field = (int)v;
        return;
    }
    }
}

static void apply_section(config *cfg, config_errors *errs, const config_section *s,
                          const key_spec *keys)
{
    for (size_t i = 0; i < s->count; i++) {
        const key_spec *k = keys;
        while (k->key && strcmp(k->key, s->entries[i].key) != 0) k++;
        if (k->key) {
            apply_value(cfg, errs, s->name, k, &s->entries[i]);
            continue;
        }
        if (strcmp(s->name, "routing") == 0 && strncmp(s->entries[i].key, "currency.", 9) == 0) {
            const char *cur = s->entries[i].key + 9;
            if (strlen(cur) != 3) {
                config_errors_add(errs, "%s:%d: [routing] %s: expected currency.XXX",
                                  cfg->path, s->entries[i].line, s->entries[i].key);
                continue;
            }
            config_route *r = realloc(cfg->routes, (cfg->route_count + 1) * sizeof *r);
            if (!r) continue;
            cfg->routes = r;
            r = &cfg->routes[cfg->route_count++];
            for (int j = 0; j < 3; j++) r->currency[j] = (char)toupper((unsigned char)cur[j]);
            r->currency[3] = '\0';
            r->gateway = strdup(s->entries[i].value);
            r->line = s->entries[i].line;
            continue;
        }
        config_errors_add(errs, "%s:%d: unknown key '%s' in [%s]", cfg->path, s->entries[i].line,
                          s->entries[i].key, s->name);
    }
}

static void set_defaults(config *cfg)
{
    cfg->listen = strdup("127.0.0.1:8080");
    cfg->threads = 16;
    cfg->max_body_bytes = 1024 * 1024;
    cfg->http_timeout_ms = 15000;
    cfg->log_level = LOG_INFO;
    cfg->db_pool = 8;
    cfg->db_wait_ms = 2000;
    cfg->db_statement_timeout_ms = 10000;
    cfg->redis_pool = 4;
    cfg->jwt_leeway_s = 30;
    cfg->max_amount = 100000000; /* one million units of a two-decimal currency */
    cfg->idempotency_ttl_s = 24 * 3600;
    cfg->janitor_interval_ms = 1000;
    cfg->janitor_schedule = strdup("60,300,3600,86400");
    cfg->janitor_max_attempts = 8;
    cfg->outbox_threads = 2;
    cfg->outbox_poll_ms = 200;
    cfg->outbox_schedule = strdup("1,5,30,120,600,1800,3600");
    cfg->outbox_max_attempts = 10;
    cfg->outbox_lease_s = 60;
    cfg->report_max_days = 366;
}

int config_schedule_step(const char *schedule, int attempts)
{
    const char *s = schedule;
    int last = 60;
    for (int i = 0; s && *s; i++) {
        last = atoi(s);
        if (i >= attempts) break;
        s = strchr(s, ',');
        if (!s) break;
        s++;
    }
    return last > 0 ? last : 1;
}

/* A schedule is a comma-separated list of positive seconds. */
static void check_schedule(config *cfg, config_errors *errs, const char *section, const char *key,
                           const char *value)
{
    const char *p = value;
    int ok = p && *p;
    while (ok && *p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 30L * 86400) ok = 0;
        p = end;
        while (ok && (*p == ',' || *p == ' ')) p++;
    }
    if (!ok) {
        const config_entry *e = config_entry_find(config_section_find(cfg, section), key);
        config_errors_add(errs, "%s:%d: [%s] %s must be a list of seconds like 1,5,30", cfg->path,
                          e ? e->line : 0, section, key);
    }
}

static void check_routing(config *cfg, config_errors *errs)
{
    const config_section *rs = config_section_find(cfg, "routing");
    struct {
        const char *key, *name;
    } named[] = {{"default", cfg->route_default}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        if (!named[i].name) continue;
        char sec[80];
        snprintf(sec, sizeof sec, "gateway.%s", named[i].name);
        if (!config_section_find(cfg, sec)) {
            const config_entry *e = config_entry_find(rs, named[i].key);
            config_errors_add(errs, "%s:%d: [routing] %s names gateway '%s', which has no [%s] section",
                              cfg->path, e ? e->line : 0, named[i].key, named[i].name, sec);
        }
    }
    for (size_t i = 0; i < cfg->route_count; i++) {
        char sec[80];
        snprintf(sec, sizeof sec, "gateway.%s", cfg->routes[i].gateway);
        if (!config_section_find(cfg, sec))
            config_errors_add(errs, "%s:%d: [routing] currency.%s names gateway '%s', which has no [%s] section",
                              cfg->path, cfg->routes[i].line, cfg->routes[i].currency,
                              cfg->routes[i].gateway, sec);
    }
}

/*
 * Loads and checks `path` into `cfg`. Returns 0 when there were no errors;
 * otherwise -1 with every problem in `errs` (the caller frees both).
 */
int config_load(const char *path, config *cfg, config_errors *errs)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->path = strdup(path);
    set_defaults(cfg);

    FILE *fp = fopen(path, "r");
    if (!fp) {
        config_errors_add(errs, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    parse_ctx ctx = {.cfg = cfg, .errs = errs, .fp = fp, .line = 0};
    int rc = ini_parse_stream(config_read_line, &ctx, config_on_value, &ctx);
    fclose(fp);
    if (rc > 0) config_errors_add(errs, "%s:%d: syntax error", path, rc);
    else if (rc < 0) config_errors_add(errs, "%s: cannot parse (out of memory)", path);

    static const struct {
        const char *name;
        const key_spec *keys;
    } core[] = {{"server", server_keys},     {"database", database_keys}, {"redis", redis_keys},
                {"auth", auth_keys},         {"payments", payments_keys}, {"outbox", outbox_keys},
                {"routing", routing_keys},   {"invoice", invoice_keys},   {"admin", admin_keys}};
    for (size_t i = 0; i < sizeof core / sizeof core[0]; i++) {
        const config_section *s = config_section_find(cfg, core[i].name);
        if (s) apply_section(cfg, errs, s, core[i].keys);
    }
    if (!cfg->database_url && !cfg->database_url_unresolved) {
        const config_section *db = config_section_find(cfg, "database");
        config_errors_add(errs, "%s:%d: missing required key 'url' in [database]", path,
                          db ? db->line : 1);
    }
    for (size_t i = 0; i < cfg->section_count; i++) {
        const config_section *s = &cfg->sections[i];
        if ((strncmp(s->name, "gateway.", 8) == 0 || strncmp(s->name, "notifier.", 9) == 0) &&
            !config_entry_find(s, "module"))
            config_errors_add(errs, "%s:%d: missing required key 'module' in [%s]", path, s->line,
                              s->name);
    }
    check_routing(cfg, errs);
    check_schedule(cfg, errs, "payments", "janitor_schedule", cfg->janitor_schedule);
    check_schedule(cfg, errs, "outbox", "retry_schedule", cfg->outbox_schedule);
    if (cfg->http_ca_file && access(cfg->http_ca_file, R_OK) != 0) {
        const config_entry *e = config_entry_find(config_section_find(cfg, "server"), "http_ca_file");
        config_errors_add(errs, "%s:%d: [server] http_ca_file is not a readable file", path,
                          e ? e->line : 0);
    }
    if (!cfg->public_url) {
        char buf[300];
        snprintf(buf, sizeof buf, "http://%s", cfg->listen);
        cfg->public_url = strdup(buf);
    }
    size_t n = strlen(cfg->public_url);
    while (n > 0 && cfg->public_url[n - 1] == '/') cfg->public_url[--n] = '\0';
    return errs->count ? -1 : 0;
}

void config_free(config *cfg)
{
    for (size_t i = 0; i < cfg->section_count; i++) {
        config_section *s = &cfg->sections[i];
        for (size_t j = 0; j < s->count; j++) {
            if (s->entries[j].secret && s->entries[j].value)
                explicit_bzero(s->entries[j].value, strlen(s->entries[j].value));
            free(s->entries[j].key);
            free(s->entries[j].value);
        }
        free(s->entries);
        free(s->name);
    }
    free(cfg->sections);
    for (size_t i = 0; i < cfg->route_count; i++) free(cfg->routes[i].gateway);
    free(cfg->routes);
    if (cfg->jwt_secret) explicit_bzero(cfg->jwt_secret, strlen(cfg->jwt_secret));
    if (cfg->database_url) explicit_bzero(cfg->database_url, strlen(cfg->database_url));
    char **strs[] = {&cfg->path,         &cfg->listen,      &cfg->public_url,
                     &cfg->module_dir,   &cfg->database_url, &cfg->redis_url, &cfg->http_ca_file,
                     &cfg->jwt_secret,   &cfg->jwt_issuer, &cfg->jwt_audience, &cfg->janitor_schedule, &cfg->outbox_schedule, &cfg->route_default,
                     &cfg->invoice_template, &cfg->invoice_seller_name, &cfg->invoice_seller_address,
                     &cfg->invoice_seller_tax_id, &cfg->invoice_seller_email, &cfg->invoice_footer};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) free(*strs[i]);
    memset(cfg, 0, sizeof *cfg);
}
