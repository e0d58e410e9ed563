/* config.h - payd.conf, parsed with inih and checked strictly. */
#ifndef PAYD_CONFIG_H
#define PAYD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct config_entry {
    char *key;
    char *value;   /* env:/file: already resolved */
    int line;
    int used;      /* set when a module read it (unknown-key check) */
    int secret;    /* came from env: or file: */
} config_entry;

typedef struct config_section {
    char *name;    /* "server", "gateway.main", ... */
    int line;
    config_entry *entries;
    size_t count, cap;
} config_section;

typedef struct config_route {
    char currency[4];
    char *gateway;
    int line;
} config_route;

typedef struct config {
    char *path;
    config_section *sections;
    size_t section_count, section_cap;

    /* [server] */
    char *listen;
    int threads;
    char *public_url;
    long max_body_bytes;
    int http_timeout_ms;
    char *http_ca_file;       /* extra CA bundle for outbound https, or NULL */
    int log_level;
    int test_mode;
    char *module_dir;
    /* [database] */
    char *database_url;
    int database_url_unresolved; /* given as env:/file: that could not be read */
    int db_pool;
    int db_wait_ms;
    int db_statement_timeout_ms;
    /* [redis] */
    char *redis_url;
    int redis_pool;
    /* [auth] */
    char *jwt_secret;
    int jwt_leeway_s;
    char *jwt_issuer;
    char *jwt_audience;
    int rate_limit_per_minute;
    /* [payments] */
    int64_t max_amount;
    int idempotency_ttl_s;
    int janitor_interval_ms;
    char *janitor_schedule;   /* "60,300,3600,86400" seconds */
    int janitor_max_attempts;
    /* [outbox] */
    int outbox_threads;
    int outbox_poll_ms;
    char *outbox_schedule;    /* "1,5,30,120,600,1800,3600" seconds */
    int outbox_max_attempts;
    int outbox_lease_s;
    /* [admin] */
    int report_max_days;      /* longest report or reconcile range */
    /* [routing] */
    char *route_default;
    config_route *routes;
    size_t route_count;
    /* [invoice] (seller_address keeps its literal \n escapes; invoice.c splits it) */
    char *invoice_template;
    char *invoice_seller_name;
    char *invoice_seller_address;
    char *invoice_seller_tax_id;
    char *invoice_seller_email;
    char *invoice_footer;
} config;

/* Collected error messages ("file:line: message"). */
typedef struct config_errors {
    char **items;
    size_t count, cap;
} config_errors;

int config_load(const char *path, config *cfg, config_errors *errs);
void config_free(config *cfg);
void config_errors_add(config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void config_errors_free(config_errors *errs);

/* Step `attempts` (0-based) of a "1,5,30" schedule in seconds; the last
 * step repeats. */
int config_schedule_step(const char *schedule, int attempts);

const config_section *config_section_find(const config *cfg, const char *name);
config_entry *config_entry_find(const config_section *s, const char *key);

#endif
