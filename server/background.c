/*
 * background.c - payd's background threads.
 *
 * [outbox] threads workers (at least one) share one loop: deliver due
 * outbox rows, and, on worker 0 once per [payments] janitor_interval_ms,
 * run the janitor (unknown outcomes) and purge expired idempotency keys,
 * and every AUDIT_SEAL_INTERVAL_MS seal the audit log into its checkpoint
 * chain.
 * All shared work is claimed in the database with FOR UPDATE SKIP LOCKED,
 * so workers, and other payd processes on the same database, never take
 * the same row and need no coordination here. A worker that found work
 * loops again at once; an idle one sleeps [outbox] poll_ms. Stopping
 * wakes every worker and joins them.
 */
#include "background.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "audit.h"
#include "idempotency.h"
#include "janitor.h"
#include "log.h"
#include "outbox.h"

#define MAX_WORKERS 64
#define AUDIT_SEAL_INTERVAL_MS 5000

typedef struct worker {
    app *a;
    int index;
    pthread_t thread;
} worker;

static worker workers[MAX_WORKERS];
static int worker_count;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;

static void sleep_ms(app *a, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&wake_lock);
    while (!atomic_load(&a->stopping) && pthread_cond_timedwait(&wake, &wake_lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&wake_lock);
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *background_main(void *arg)
{
    worker *w = arg;
    app *a = w->a;
    int64_t next_janitor = 0, next_seal = 0;
    while (!atomic_load(&a->stopping)) {
        int busy = outbox_dispatch(a) > 0;
        if (w->index == 0 && monotonic_ms() >= next_janitor) {
            janitor_run(a);
            idempotency_purge(a); /* indexed, bounded batch: cheap when idle */
            next_janitor = monotonic_ms() + a->cfg->janitor_interval_ms;
        }
        if (w->index == 0 && monotonic_ms() >= next_seal) {
            audit_seal(a);
            next_seal = monotonic_ms() + AUDIT_SEAL_INTERVAL_MS;
        }
        if (!busy) {
            int wait = a->cfg->outbox_poll_ms;
            if (w->index == 0) {
                int64_t until_janitor = next_janitor - monotonic_ms();
                if (until_janitor < wait) wait = until_janitor > 0 ? (int)until_janitor : 0;
            }
            if (wait > 0) sleep_ms(a, wait);
        }
    }
    return NULL;
}

void background_start(app *a)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake, &attr);
    pthread_condattr_destroy(&attr);
    int n = a->cfg->outbox_threads > 0 ? a->cfg->outbox_threads : 1;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    for (int i = 0; i < n; i++) {
        workers[i].a = a;
        workers[i].index = i;
        if (pthread_create(&workers[i].thread, NULL, background_main, &workers[i]) != 0) {
            log_error("background", "cannot start background worker %d", i);
            break;
        }
        worker_count++;
    }
}

void background_stop(app *a)
{
    (void)a;
    pthread_mutex_lock(&wake_lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&wake_lock);
    for (int i = 0; i < worker_count; i++) pthread_join(workers[i].thread, NULL);
    worker_count = 0;
}
