/*
 * ratelimit.c - a fixed one-minute window per caller.
 *
 * With Redis configured the counter is shared by every payd process
 * (INCR + EXPIRE NX on "payd:rl:<caller>:<minute>"), so the limit holds for
 * the whole deployment. Without Redis, or while Redis is unreachable, each
 * process counts for itself in a small hash table: a limit that degrades to
 * per-process is better than a payment API that fails because a cache is
 * down. Counting never blocks on anything slower than one Redis round trip.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "host.h"
#include "redis.h"

#define LOCAL_SLOTS 4096

static struct {
    uint64_t key;
    int64_t minute;
    long count;
} local_slots[LOCAL_SLOTS];
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;

static long local_count(const char *caller, int64_t minute)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)caller; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    pthread_mutex_lock(&local_lock);
    __typeof__(local_slots[0]) *s = &local_slots[h % LOCAL_SLOTS];
    if (s->key != h || s->minute != minute) {
        s->key = h;
        s->minute = minute;
        s->count = 0;
    }
    long n = ++s->count;
    pthread_mutex_unlock(&local_lock);
    return n;
}

int ratelimit_check(app *a, const char *caller)
{
    int limit = a->cfg->rate_limit_per_minute;
    if (limit <= 0 || !caller || !*caller) return 0;
    int64_t now_s = host_now_ms() / 1000;
    int64_t minute = now_s / 60;
    long long n = -1;
    if (a->redis) {
        char key[256];
        snprintf(key, sizeof key, "payd:rl:%s:%lld", caller, (long long)minute);
        n = redis_incr_window(a->redis, key, 120);
    }
    if (n < 0) n = local_count(caller, minute);
    if (n <= limit) return 0;
    int retry = (int)(60 - now_s % 60);
    return retry > 0 ? retry : 1;
}
