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

/* A write whose result nobody reads, sent with the COMMIT (store_defer). */
typedef struct deferred_write {
    store_stmt *st;
    int nparams;
    char **params;
} deferred_write;

struct store_conn {
    store *pool;
    PGconn *pg;
    int broken;
    int in_tx;
    int begin_pending;        /* BEGIN goes out with the next statement */
    deferred_write *deferred;
    size_t deferred_count, deferred_cap;
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

static void deferred_clear(store_conn *c)
{
    for (size_t i = 0; i < c->deferred_count; i++) {
        for (int k = 0; k < c->deferred[i].nparams; k++) free(c->deferred[i].params[k]);
        free(c->deferred[i].params);
    }
    c->deferred_count = 0;
}


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
    for (int i = 0; i < s->size; i++) {
        if (s->conns[i].pg) PQfinish(s->conns[i].pg);
        deferred_clear(&s->conns[i]);
        free(s->conns[i].deferred);
    }
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
    deferred_clear(c);
    c->begin_pending = 0;
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

static int stmt_prepared(const store_conn *c, int id)
{
    return (c->prepared[id / 8] >> (id % 8)) & 1;
}

/* One command of a pipeline: a prepared statement, or a parameterless SQL
 * text (BEGIN, COMMIT). */
typedef struct pipe_cmd {
    store_stmt *st;
    const char *sql;
    int nparams;
    const char *const *params;
} pipe_cmd;

/*
 * Sends `cmds` in one libpq pipeline (one round trip), preparing any
 * statement this connection has not prepared yet in the same pipeline, and
 * reads every result. The result of cmds[keep] goes to *out (if out). The
 * first error decides the return code; the commands after it are aborted by
 * the server, which is what a transaction wants. Never leaves the connection
 * in pipeline mode; a connection that broke mid-way is marked broken.
 */
static int pipe_run(store_conn *c, const pipe_cmd *cmds, int n, int keep, PGresult **out)
{
    int stack_slots[64];
    /* Each command takes a slot, plus one for a prepare it needs: >0 in a
     * slot names the statement id that slot prepares. */
    int *slot_prepare_id = 2 * n <= 64 ? stack_slots : malloc(2 * (size_t)n * sizeof(int));
    int slot_keep = -1, slots = 0;
    if (out) *out = NULL;
    if (!slot_prepare_id) return STORE_E_QUERY;
    if (!PQenterPipelineMode(c->pg)) {
        c->broken = 1;
        if (slot_prepare_id != stack_slots) free(slot_prepare_id);
        return STORE_E_UNAVAILABLE;
    }
    int sent = 1;
    for (int i = 0; i < n && sent; i++) {
        if (cmds[i].st) {
            int id = stmt_id(cmds[i].st);
            char name[16];
            snprintf(name, sizeof name, "s%d", id);
            int prepare = !stmt_prepared(c, id);
            for (int k = 0; k < slots && prepare; k++)
                if (slot_prepare_id[k] == id) prepare = 0; /* already queued here */
            if (prepare) {
                sent = PQsendPrepare(c->pg, name, cmds[i].st->sql, 0, NULL);
                slot_prepare_id[slots++] = id;
            }
            sent = sent && PQsendQueryPrepared(c->pg, name, cmds[i].nparams, cmds[i].params, NULL, NULL, 0);
        } else {
            sent = PQsendQueryParams(c->pg, cmds[i].sql, 0, NULL, NULL, NULL, NULL, 0);
        }
        if (i == keep) slot_keep = slots;
        slot_prepare_id[slots++] = 0;
    }
    if (!sent || !PQpipelineSync(c->pg)) {
        c->broken = 1;
        snprintf(c->error, sizeof c->error, "%s", PQerrorMessage(c->pg));
        if (slot_prepare_id != stack_slots) free(slot_prepare_id);
        return STORE_E_UNAVAILABLE;
    }
    int rc = STORE_OK;
    for (int k = 0; k < slots; k++) {
        PGresult *r;
        int results = 0;
        while ((r = PQgetResult(c->pg)) != NULL) {
            results++;
            ExecStatusType st = PQresultStatus(r);
            int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
            if (!ok && st != PGRES_PIPELINE_ABORTED && rc == STORE_OK) {
                rc = classify(c, r);
                if (rc == STORE_E_QUERY) log_error("store", "pipelined query failed: %s (%s)", c->error, c->sqlstate);
            }
            if (ok && slot_prepare_id[k] > 0)
                c->prepared[slot_prepare_id[k] / 8] |= (uint8_t)(1u << (slot_prepare_id[k] % 8));
            if (ok && k == slot_keep && out && !*out) *out = r;
            else PQclear(r);
        }
        if (results == 0 && PQstatus(c->pg) != CONNECTION_OK) {
            c->broken = 1;
            rc = STORE_E_UNAVAILABLE;
            break;
        }
    }
    /* The sync point. */
    for (int tries = 0; !c->broken && tries < 4; tries++) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (PQstatus(c->pg) != CONNECTION_OK) c->broken = 1;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_PIPELINE_SYNC) break;
    }
    if (slot_prepare_id != stack_slots) free(slot_prepare_id);
    if (!c->broken && !PQexitPipelineMode(c->pg)) c->broken = 1;
    if (c->broken && rc == STORE_OK) rc = STORE_E_UNAVAILABLE;
    if (rc != STORE_OK && out && *out) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

/*
 * Runs `st` with text parameters, preparing it on this connection first if
 * needed (once per connection). Inside a transaction whose BEGIN has not
 * gone out yet, BEGIN travels with this statement. Returns STORE_OK and the
 * result in *out (caller clears; out may be NULL), or a STORE_E_* code.
 */
int store_query(store_conn *c, store_stmt *st, int nparams, const char *const *params,
                PGresult **out)
{
    if (out) *out = NULL;
    if (c->broken) return STORE_E_UNAVAILABLE;
    if (c->begin_pending) {
        c->begin_pending = 0;
        pipe_cmd cmds[2] = {{.sql = "BEGIN"}, {.st = st, .nparams = nparams, .params = params}};
        PGresult *r = NULL;
        int rc = pipe_run(c, cmds, 2, 1, &r);
        if (out) *out = r;
        else PQclear(r);
        return rc;
    }
    int id = stmt_id(st);
    char name[16];
    snprintf(name, sizeof name, "s%d", id);
    if (!stmt_prepared(c, id)) {
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

/*
 * Queues a write whose result nobody reads (audit rows, ledger rows,
 * events) to go out with the COMMIT, in one round trip with the other
 * queued writes. Outside a transaction it runs at once. Parameters are
 * copied. An error surfaces from store_commit, which then rolls back.
 */
int store_defer(store_conn *c, store_stmt *st, int nparams, const char *const *params)
{
    if (!c->in_tx) return store_query(c, st, nparams, params, NULL);
    if (c->broken) return STORE_E_UNAVAILABLE;
    if (c->deferred_count == c->deferred_cap) {
        size_t cap = c->deferred_cap ? c->deferred_cap * 2 : 8;
        deferred_write *d = realloc(c->deferred, cap * sizeof *d);
        if (!d) return STORE_E_QUERY;
        c->deferred = d;
        c->deferred_cap = cap;
    }
    deferred_write *w = &c->deferred[c->deferred_count];
    w->st = st;
    w->nparams = nparams;
    w->params = calloc((size_t)(nparams ? nparams : 1), sizeof *w->params);
    if (!w->params) return STORE_E_QUERY;
    for (int i = 0; i < nparams; i++) {
        if (!params[i]) continue;
        w->params[i] = strdup(params[i]);
        if (!w->params[i]) {
            for (int k = 0; k < i; k++) free(w->params[k]);
            free(w->params);
            return STORE_E_QUERY;
        }
    }
    c->deferred_count++;
    return STORE_OK;
}

int store_command(store_conn *c, const char *sql)
{
    if (c->broken) return STORE_E_UNAVAILABLE;
    if (c->begin_pending) {
        c->begin_pending = 0;
        int rc = store_command(c, "BEGIN");
        if (rc != STORE_OK) return rc;
    }
    PGresult *r = PQexec(c->pg, sql);
    ExecStatusType status = PQresultStatus(r);
    int rc = STORE_OK;
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) rc = classify(c, r);
    PQclear(r);
    return rc;
}

/* Starts a transaction. BEGIN is not sent yet: it travels with the first
 * statement, saving a round trip. */
int store_begin(store_conn *c)
{
    if (c->broken) return STORE_E_UNAVAILABLE;
    c->in_tx = 1;
    c->begin_pending = 1;
    return STORE_OK;
}

/* Sends the queued writes and COMMIT together. On any error the
 * transaction is rolled back and nothing of it remains. */
int store_commit(store_conn *c)
{
    if (c->broken) {
        deferred_clear(c);
        c->in_tx = c->begin_pending = 0;
        return STORE_E_UNAVAILABLE;
    }
    if (c->begin_pending && c->deferred_count == 0) { /* nothing was done */
        c->in_tx = c->begin_pending = 0;
        return STORE_OK;
    }
    size_t n = c->deferred_count + 2;
    pipe_cmd *cmds = calloc(n, sizeof *cmds);
    if (!cmds) {
        store_rollback(c);
        return STORE_E_QUERY;
    }
    int k = 0;
    if (c->begin_pending) cmds[k++].sql = "BEGIN";
    for (size_t i = 0; i < c->deferred_count; i++) {
        cmds[k].st = c->deferred[i].st;
        cmds[k].nparams = c->deferred[i].nparams;
        cmds[k].params = (const char *const *)c->deferred[i].params;
        k++;
    }
    cmds[k++].sql = "COMMIT";
    int rc = pipe_run(c, cmds, k, -1, NULL);
    free(cmds);
    deferred_clear(c);
    c->begin_pending = 0;
    if (rc != STORE_OK && !c->broken) {
        /* An aborted pipeline never reached COMMIT: end the transaction. */
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        PQclear(r);
    }
    c->in_tx = 0;
    return rc;
}

void store_rollback(store_conn *c)
{
    deferred_clear(c);
    if (c->begin_pending) {
        c->begin_pending = 0; /* nothing was sent */
    } else if (!c->broken) {
        PGresult *r = PQexec(c->pg, "ROLLBACK");
        PQclear(r);
    }
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
