/* redis.h - optional Redis connections (hiredis), for caches and rate limits. */
#ifndef PAYD_REDIS_H
#define PAYD_REDIS_H

#include <stddef.h>

typedef struct redis redis;

/* NULL url means "no Redis": every call then returns -1 quickly. */
int redis_open(redis **out, const char *url, int pool);
void redis_close(redis *r);
/* GET: 0 and a malloc'd value, 1 when absent, -1 on error. */
int redis_get(redis *r, const char *key, char **value, size_t *len);
int redis_setex(redis *r, const char *key, const void *value, size_t len, int ttl_s);
/* INCR with an expiry set on first increment; -1 on error. */
long long redis_incr_window(redis *r, const char *key, int window_s);

#endif
