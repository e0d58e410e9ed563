/*
 * redis.c - a small pool of hiredis connections.
 *
 * Redis is optional in payd: it backs the module cache and the rate limiter
 * when [redis] url is set. PostgreSQL stays the source of truth for
 * everything that matters, so a Redis failure degrades (cache miss, rate
 * limit skipped) and never fails a payment. Connections are checked out
 * under a mutex and used by one thread at a time; a broken one is dropped
 * and reopened on next use.
 */
#include "redis.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct redis {
    char host[256];
    int port;
    int db;
    int size;
    redisContext **idle;
    int idle_count;
    pthread_mutex_t lock;
};

/* Parses redis://host:port/db. */
static int redis_parse_url(redis *r, const char *url)
{
    if (strncmp(url, "redis://", 8) != 0) return -1;
    const char *p = url + 8;
    const char *at = strchr(p, '@');
    if (at) p = at + 1; /* passwords are not supported in v1; documented */
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof r->host) return -1;
    memcpy(r->host, p, hl);
    r->host[hl] = '\0';
    p += hl;
    r->port = 6379;
    r->db = 0;
    if (*p == ':') r->port = atoi(p + 1), p += strcspn(p, "/");
    if (*p == '/' && p[1]) r->db = atoi(p + 1);
    return r->port > 0 ? 0 : -1;
}

int redis_open(redis **out, const char *url, int pool)
{
    *out = NULL;
    if (!url) return 0;
    redis *r = calloc(1, sizeof *r);
    if (!r) return -1;
    if (redis_parse_url(r, url) != 0) {
        free(r);
        return -1;
    }
    r->size = pool;
    r->idle = calloc((size_t)pool, sizeof *r->idle);
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void redis_close(redis *r)
{
    if (!r) return;
    for (int i = 0; i < r->idle_count; i++) redisFree(r->idle[i]);
    free(r->idle);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static redisContext *redis_checkout(redis *r)
{
    pthread_mutex_lock(&r->lock);
    redisContext *c = r->idle_count ? r->idle[--r->idle_count] : NULL;
    pthread_mutex_unlock(&r->lock);
    if (c) return c;
    struct timeval tv = {0, 500000};
    c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!c || c->err) {
        log_warn("redis", "connect %s:%d failed: %s", r->host, r->port,
                 c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (r->db) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->db);
        if (rep) freeReplyObject(rep);
    }
    return c;
}

static void redis_checkin(redis *r, redisContext *c)
{
    if (c->err) {
        redisFree(c);
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (r->idle_count < r->size) {
        r->idle[r->idle_count++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    if (c) redisFree(c);
}

int redis_get(redis *r, const char *key, char **value, size_t *len)
{
    if (!r) return -1;
    redisContext *c = redis_checkout(r);
    if (!c) return -1;
    redisReply *rep = redisCommand(c, "GET %s", key);
    int rc = -1;
    if (rep && rep->type == REDIS_REPLY_STRING) {
        *value = malloc(rep->len + 1);
        if (*value) {
            memcpy(*value, rep->str, rep->len);
            (*value)[rep->len] = '\0';
            *len = rep->len;
            rc = 0;
        }
    } else if (rep && rep->type == REDIS_REPLY_NIL) {
        rc = 1;
    }
    if (rep) freeReplyObject(rep);
    redis_checkin(r, c);
    return rc;
}

int redis_setex(redis *r, const char *key, const void *value, size_t len, int ttl_s)
{
    if (!r) return -1;
    redisContext *c = redis_checkout(r);
    if (!c) return -1;
    redisReply *rep = redisCommand(c, "SET %s %b EX %d", key, value, len, ttl_s);
    int rc = rep && rep->type == REDIS_REPLY_STATUS ? 0 : -1;
    if (rep) freeReplyObject(rep);
    redis_checkin(r, c);
    return rc;
}

long long redis_incr_window(redis *r, const char *key, int window_s)
{
    if (!r) return -1;
    redisContext *c = redis_checkout(r);
    if (!c) return -1;
    long long n = -1;
    redisAppendCommand(c, "INCR %s", key);
    redisAppendCommand(c, "EXPIRE %s %d NX", key, window_s);
    redisReply *rep = NULL;
    if (redisGetReply(c, (void **)&rep) == REDIS_OK && rep) {
        if (rep->type == REDIS_REPLY_INTEGER) n = rep->integer;
        freeReplyObject(rep);
        rep = NULL;
    }
    if (redisGetReply(c, (void **)&rep) == REDIS_OK && rep) freeReplyObject(rep);
    redis_checkin(r, c);
    return n;
}
