/*
 * store.c - the PostgreSQL connection pool.
 *
 * A fixed number of libpq connections is shared by all worker threads. A
 * thread checks one out for one request or job (store_acquire), uses it
 * alone, and checks it back in (store_release); a connection is never used
 * by two threads at once. Waiting for a free connection is bounded by
 * [database] wait_timeout_ms, after which the caller answers 503.
 *
 * Statements are prepared lazily, once per connection, the first time a
 * thread runs them there: each store_stmt gets a small process-wide id, and
 * each connection keeps a bitmap of the ids it has prepared. A broken
 * connection (the server restarted) is reconnected on its next checkout, and
 * its bitmap is cleared, so payd recovers by itself when the database comes
 * back.
 *
 * The pool lock guards only the free list; no query runs under it.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define STORE_MAX_STMTS 512

struct store_conn {
    store *pool;
    PGconn *pg;
    int broken;
    int in_tx;
    uint8_t prepared[STORE_MAX_STMTS / 8];
    char sqlstate[6];
    char error[256];
};

struct store {
    char *url;
    int size, wait_ms, statement_timeout_ms;
    store_conn *conns;
    store_conn **free_list;
    int free_count;
    pthread_mutex_t lock;
    pthread_cond_t available;
    _Atomic uint64_t acquired, waited, timeouts, reconnects;
};

static _Atomic int next_stmt_id = 0;

static int stmt_id(store_stmt *st)
{
    int id = atomic_load(&st->id);
    if (id) return id;
    int fresh = atomic_fetch_add(&next_stmt_id, 1) + 1;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&st->id, &expected, fresh)) return expected;
    if (fresh >= STORE_MAX_STMTS) {
        log_error("store", "too many prepared statements (raise STORE_MAX_STMTS)");
        abort();
    }
    return fresh;
}

static PGconn *store_connect(store *s)
{
    char options[64];
    snprintf(options, sizeof options, "-c statement_timeout=%d", s->statement_timeout_ms);
    const char *keys[] = {"dbname", "application_name", "options", "connect_timeout", NULL};
    const char *vals[] = {s->url, "payd", options, "3", NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(pg) != CONNECTION_OK) {
        /* PQerrorMessage holds host and reason, never the password. */
        log_warn("store", "connect failed: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

int store_open(store **out, const char *url, int size, int wait_ms, int statement_timeout_ms)
{
    store *s = calloc(1, sizeof *s);
    if (!s) return STORE_E_QUERY;
    s->url = strdup(url);
    s->size = size;
    s->wait_ms = wait_ms;
    s->statement_timeout_ms = statement_timeout_ms;
    s->conns = calloc((size_t)size, sizeof *s->conns);
    s->free_list = calloc((size_t)size, sizeof *s->free_list);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->available, &attr);
    pthread_condattr_destroy(&attr);
    /* Connections open lazily, so payd starts even while the database is
     * down and /readyz can say so. */
    for (int i = 0; i < size; i++) {
        s->conns[i].pool = s;
        s->conns[i].broken = 1;
        s->free_list[s->free_count++] = &s->conns[i];
    }
    *out = s;
    return STORE_OK;
}

int store_warm(store *s)
{
    int open = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->size; i++) {
        store_conn *c = &s->conns[i];
        if (!c->broken) {
            open++;
            continue;
        }
        c->pg = store_connect(s);
        if (!c->pg) break; /* down: the rest reconnect lazily */
        c->broken = 0;
        memset(c->prepared, 0, sizeof c->prepared);
        open++;
    }
    pthread_mutex_unlock(&s->lock);
    return open;
}

void store_close(store *s)
{
    if (!s) return;
    for (int i = 0; i < s->size; i++)
        if (s->conns[i].pg) PQfinish(s->conns[i].pg);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->available);
    explicit_bzero(s->url, strlen(s->url));
    free(s->url);
    free(s->conns);
    free(s->free_list);
    free(s);
}

/*
 * Checks a connection out. Waits up to wait_ms for one to be free, then
 * (re)connects it if it is broken. Returns NULL when none is free in time or
 * the database cannot be reached. Thread-safe.
 */
store_conn *store_acquire(store *s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += s->wait_ms / 1000;
    deadline.tv_nsec += (long)(s->wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    if (s->free_count == 0) atomic_fetch_add(&s->waited, 1);
    while (s->free_count == 0) {
        if (pthread_cond_timedwait(&s->available, &s->lock, &deadline) == ETIMEDOUT &&
            s->free_count == 0) {
            pthread_mutex_unlock(&s->lock);
            atomic_fetch_add(&s->timeouts, 1);
            return NULL;
        }
    }
    store_conn *c = s->free_list[--s->free_count];
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&s->acquired, 1);

    if (!c->broken && c->pg && PQstatus(c->pg) != CONNECTION_OK) c->broken = 1;
    if (c->broken) {
        if (c->pg) PQfinish(c->pg);
        c->pg = store_connect(s);
        memset(c->prepared, 0, sizeof c->prepared);
        if (!c->pg) {
            store_release(c);
            return NULL;
        }
        c->broken = 0;
        atomic_fetch_add(&s->reconnects, 1);
    }
    c->in_tx = 0;
    c->sqlstate[0] = '\0';
    c->error[0] = '\0';
    return c;
}

/* Returns a connection to the pool. A connection left inside a transaction
 * is rolled back first, so the next user starts clean. */
void store_release(store_conn *c)
{
    if (!c) return;
    store *s = c->pool;
    if (c->in_tx && !c->broken) store_rollback(c);
    if (c->pg && PQtransactionStatus(c->pg) != PQTRANS_IDLE) c->broken = 1;
    pthread_mutex_lock(&s->lock);
    s->free_list[s->free_count++] = c;
    pthread_cond_signal(&s->available);
    pthread_mutex_unlock(&s->lock);
}

static int classify(store_conn *c, PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(c->error, sizeof c->error, "%s", msg ? msg : PQerrorMessage(c->pg));
    if (PQstatus(c->pg) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0) {
        c->broken = 1;
        return STORE_E_UNAVAILABLE;
    }
    if (strcmp(state, "23505") == 0) return STORE_E_CONFLICT;
    if (strncmp(state, "23", 2) == 0 || strcmp(state, "P0001") == 0) return STORE_E_CHECK;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) return STORE_E_RETRY;
    if (strcmp(state, "57014") == 0) return STORE_E_UNAVAILABLE; /* statement timeout */
    return STORE_E_QUERY;
}

/*
 * Runs `st` with text parameters, preparing it on this connection first if
 * needed (one extra round trip, once per connection). Returns STORE_OK and
 * the result in *out (caller clears), or a STORE_E_* code.
 */
int store_query(store_conn *c, store_stmt *st, int nparams, const char *const *params,
                PGresult **out)
{
    if (out) *out = NULL;
    if (c->broken) return STORE_E_UNAVAILABLE;
    int id = stmt_id(st);
    char name[16];
    snprintf(name, sizeof name, "s%d", id);
    if (!(c->prepared[id / 8] & (1u << (id % 8)))) {
        PGresult *p = PQprepare(c->pg, name, st->sql, 0, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) {
            int rc = classify(c, p);
            if (rc == STORE_E_QUERY)
                log_error("store", "prepare failed: %s [%s]", c->error, st->sql);
            PQclear(p);
            return rc;
        }
        PQclear(p);
        c->prepared[id / 8] |= (uint8_t)(1u << (id % 8));
    }
    PGresult *r = PQexecPrepared(c->pg, name, nparams, params, NULL, NULL, 0);
    ExecStatusType status = PQresultStatus(r);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        int rc = classify(c, r);
        if (rc == STORE_E_QUERY)
            log_error("store", "query failed: %s (%s)", c->error, c->sqlstate);
        PQclear(r);
        return rc;
    }
    if (out) *out = r;
    else PQclear(r);
    return STORE_OK;
}

int store_command(store_conn *c, const char *sql)
{
    if (c->broken) return STORE_E_UNAVAILABLE;
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType status = PQresultStatus(r);
    int rc = STORE_OK;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) rc = classify(c, r);
    PQclear(r);
    return rc;
}

int store_begin(store_conn *c)
{
    int rc = store_command(c, "BEGIN");
    if (rc == STORE_OK) c->in_tx = 1;
    return rc;
}

int store_commit(store_conn *c)
{
    int rc = store_command(c, "COMMIT");
    c->in_tx = 0;
    return rc;
}

void store_rollback(store_conn *c)
{
    if (!c->broken) store_command(c, "ROLLBACK");
    c->in_tx = 0;
}

const char *store_last_error(const store_conn *c)
{
    return c->error;
}

const char *store_last_sqlstate(const store_conn *c)
{
    return c->sqlstate;
}

PGconn *store_pg(store_conn *c)
{
    return c->pg;
}

int store_ping(store *s)
{
    store_conn *c = store_acquire(s);
    if (!c) return STORE_E_UNAVAILABLE;
    int rc = store_command(c, "SELECT 1");
    store_release(c);
    return rc;
}

void store_get_stats(store *s, store_stats *out)
{
    pthread_mutex_lock(&s->lock);
    out->size = s->size;
    out->in_use = s->size - s->free_count;
    pthread_mutex_unlock(&s->lock);
    out->acquired = atomic_load(&s->acquired);
    out->waited = atomic_load(&s->waited);
    out->timeouts = atomic_load(&s->timeouts);
    out->reconnects = atomic_load(&s->reconnects);
}

int64_t store_i64(const PGresult *r, int row, const char *col)
{
    const char *v = store_val(r, row, col);
    return v ? strtoll(v, NULL, 10) : 0;
}
