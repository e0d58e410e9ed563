/*
 * metrics.c - counters and a latency histogram, rendered for Prometheus.
 *
 * Every cell is a relaxed atomic updated by the worker thread that served
 * the request, so observing costs a few uncontended atomic adds and takes no
 * lock. Rendering reads them without stopping writers; Prometheus tolerates
 * the resulting skew between series.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "http.h"

#define METRICS_MAX_ROUTES 128

static const int tracked_status[] = {200, 201, 202, 204, 302, 303, 400, 401, 402, 403, 404,
                                     405, 409, 413, 415, 422, 429, 500, 502, 503, 0};
#define STATUS_SLOTS ((int)(sizeof tracked_status / sizeof tracked_status[0]))
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define BUCKETS ((int)(sizeof bucket_le / sizeof bucket_le[0]))

static _Atomic uint64_t requests[METRICS_MAX_ROUTES + 1][STATUS_SLOTS];
static _Atomic uint64_t latency[BUCKETS + 1];
static _Atomic uint64_t latency_sum_us;
static _Atomic uint64_t latency_count;
static _Atomic uint64_t counters[METRIC_COUNTER_COUNT];

static const char *const counter_names[METRIC_COUNTER_COUNT] = {
    [METRIC_AUTH_REJECTED] = "payd_auth_rejected_total",
    [METRIC_WEBHOOK_RECEIVED] = "payd_webhooks_received_total",
    [METRIC_WEBHOOK_BAD_SIGNATURE] = "payd_webhooks_bad_signature_total",
    [METRIC_WEBHOOK_DUPLICATE] = "payd_webhooks_duplicate_total",
    [METRIC_WEBHOOK_STALE] = "payd_webhooks_stale_total",
    [METRIC_WEBHOOK_UNMATCHED] = "payd_webhooks_unmatched_total",
    [METRIC_PROVIDER_TRANSIENT] = "payd_provider_transient_errors_total",
    [METRIC_JANITOR_RESOLVED] = "payd_janitor_resolved_total",
    [METRIC_JANITOR_GAVE_UP] = "payd_janitor_gave_up_total",
    [METRIC_IDEMPOTENT_REPLAY] = "payd_idempotent_replays_total",
    [METRIC_OUTBOX_DELIVERED] = "payd_outbox_delivered_total",
    [METRIC_OUTBOX_RETRIED] = "payd_outbox_retried_total",
    [METRIC_OUTBOX_DEAD] = "payd_outbox_dead_total",
};

void metrics_observe_request(int route_index, int status, int64_t elapsed_ms)
{
    int route = route_index >= 0 && route_index < METRICS_MAX_ROUTES ? route_index : METRICS_MAX_ROUTES;
    int slot = STATUS_SLOTS - 1;
    for (int i = 0; i < STATUS_SLOTS - 1; i++)
        if (tracked_status[i] == status) {
            slot = i;
            break;
        }
    atomic_fetch_add_explicit(&requests[route][slot], 1, memory_order_relaxed);
    double s = (double)elapsed_ms / 1000.0;
    int b = 0;
    while (b < BUCKETS && s > bucket_le[b]) b++;
    atomic_fetch_add_explicit(&latency[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_sum_us, (uint64_t)(elapsed_ms > 0 ? elapsed_ms : 0) * 1000,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_count, 1, memory_order_relaxed);
}

void metrics_count(enum metric_counter c)
{
    atomic_fetch_add_explicit(&counters[c], 1, memory_order_relaxed);
}

typedef struct text_buf {
    char *data;
    size_t len, cap;
} text_buf;

static void emit(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(text_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap + (size_t)n) * 2;
        char *d = realloc(b->data, ncap);
        if (!d) return;
        b->data = d;
        b->cap = ncap;
    }
}

char *metrics_render(app *a, size_t *len)
{
    text_buf b = {malloc(16384), 0, 16384};
    if (!b.data) return NULL;
    b.data[0] = '\0';
    emit(&b, "# HELP payd_http_requests_total HTTP requests by route and status.\n"
             "# TYPE payd_http_requests_total counter\n");
    int routes = http_route_count < METRICS_MAX_ROUTES ? http_route_count : METRICS_MAX_ROUTES;
    for (int r = 0; r <= routes; r++) {
        int idx = r == routes ? METRICS_MAX_ROUTES : r;
        const char *name = r == routes ? "unmatched" : http_routes[r].name;
        for (int s = 0; s < STATUS_SLOTS; s++) {
            uint64_t v = atomic_load_explicit(&requests[idx][s], memory_order_relaxed);
            if (!v) continue;
            if (tracked_status[s])
                emit(&b, "payd_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", name,
                     tracked_status[s], (unsigned long long)v);
            else
                emit(&b, "payd_http_requests_total{route=\"%s\",status=\"other\"} %llu\n", name,
                     (unsigned long long)v);
        }
    }
    emit(&b, "# HELP payd_http_request_duration_seconds Request latency.\n"
             "# TYPE payd_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i < BUCKETS; i++) {
        cum += atomic_load_explicit(&latency[i], memory_order_relaxed);
        emit(&b, "payd_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[i],
             (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&latency[BUCKETS], memory_order_relaxed);
    emit(&b, "payd_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    emit(&b, "payd_http_request_duration_seconds_sum %.6f\n",
         (double)atomic_load(&latency_sum_us) / 1e6);
    emit(&b, "payd_http_request_duration_seconds_count %llu\n",
         (unsigned long long)atomic_load(&latency_count));

    store_stats st;
    store_get_stats(a->db, &st);
    emit(&b, "# HELP payd_db_pool_connections Database pool size and use.\n"
             "# TYPE payd_db_pool_connections gauge\n"
             "payd_db_pool_connections{state=\"size\"} %d\n"
             "payd_db_pool_connections{state=\"in_use\"} %d\n"
             "# TYPE payd_db_pool_waits_total counter\npayd_db_pool_waits_total %llu\n"
             "# TYPE payd_db_pool_timeouts_total counter\npayd_db_pool_timeouts_total %llu\n"
             "# TYPE payd_db_reconnects_total counter\npayd_db_reconnects_total %llu\n",
         st.size, st.in_use, (unsigned long long)st.waited, (unsigned long long)st.timeouts,
         (unsigned long long)st.reconnects);
    for (int i = 0; i < METRIC_COUNTER_COUNT; i++)
        emit(&b, "# TYPE %s counter\n%s %llu\n", counter_names[i], counter_names[i],
             (unsigned long long)atomic_load_explicit(&counters[i], memory_order_relaxed));
    *len = b.len;
    return b.data;
}
