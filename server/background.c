/*
 * background.c - the scheduler thread for periodic work.
 *
 * One thread ticks every [payments] janitor_interval_ms and runs each due
 * job: the janitor (unknown outcomes), idempotency key purging, and (later)
 * the outbox. Work that several payd processes share is claimed in the
 * database with FOR UPDATE SKIP LOCKED by the job itself, so this scheduler
 * needs no coordination with other processes. Stopping wakes the thread and
 * joins it.
 */
#include "background.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "idempotency.h"
#include "janitor.h"
#include "log.h"

static pthread_t scheduler;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake;
static int started;

static void *background_main(void *arg)
{
    app *a = arg;
    while (!atomic_load(&a->stopping)) {
        janitor_run(a);
        idempotency_purge(a); /* indexed, bounded batch: cheap when idle */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += a->cfg->janitor_interval_ms / 1000;
        until.tv_nsec += (long)(a->cfg->janitor_interval_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&wake_lock);
        while (!atomic_load(&a->stopping) &&
               pthread_cond_timedwait(&wake, &wake_lock, &until) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&wake_lock);
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
    if (pthread_create(&scheduler, NULL, background_main, a) == 0) started = 1;
    else log_error("background", "cannot start the scheduler thread");
}

void background_stop(app *a)
{
    (void)a;
    if (!started) return;
    pthread_mutex_lock(&wake_lock);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&wake_lock);
    pthread_join(scheduler, NULL);
    started = 0;
}
