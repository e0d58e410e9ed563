/* metrics.h - process counters in Prometheus text format. */
#ifndef PAYD_METRICS_H
#define PAYD_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct app;

enum metric_counter {
    METRIC_AUTH_REJECTED,
    METRIC_WEBHOOK_RECEIVED,
    METRIC_WEBHOOK_BAD_SIGNATURE,
    METRIC_WEBHOOK_DUPLICATE,
    METRIC_WEBHOOK_STALE,
    METRIC_WEBHOOK_UNMATCHED,
    METRIC_PROVIDER_TRANSIENT,
    METRIC_JANITOR_RESOLVED,
    METRIC_JANITOR_GAVE_UP,
    METRIC_IDEMPOTENT_REPLAY,
    METRIC_OUTBOX_DELIVERED,
    METRIC_OUTBOX_RETRIED,
    METRIC_OUTBOX_DEAD,
    METRIC_COUNTER_COUNT
};

void metrics_observe_request(int route_index, int status, int64_t elapsed_ms);
void metrics_count(enum metric_counter c);
/* Renders the exposition text; caller frees. */
char *metrics_render(struct app *a, size_t *len);

#endif
