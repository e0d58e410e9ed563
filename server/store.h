/* store.h - the PostgreSQL connection pool, prepared statements, transactions. */
#ifndef PAYD_STORE_H
#define PAYD_STORE_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

/* Return codes (negative, distinct from PAYD_E_*). */
enum {
    STORE_OK = 0,
    STORE_E_UNAVAILABLE = -20, /* database down, or no connection free in time */
    STORE_E_CONFLICT = -21,    /* unique violation */
    STORE_E_CHECK = -22,       /* check / foreign key / raise from a trigger */
    STORE_E_RETRY = -23,       /* serialization failure or deadlock: retry the tx */
    STORE_E_QUERY = -24        /* anything else: a bug */
};

typedef struct store store;
typedef struct store_conn store_conn;

/* A statement prepared lazily on each pooled connection. Declare these as
 * statics next to the code that owns the SQL, with STORE_STMT. */
typedef struct store_stmt {
    const char *sql;
    _Atomic int id;
} store_stmt;
#define STORE_STMT(var, text) static store_stmt var = {.sql = text, .id = 0}

typedef struct store_stats {
    int size, in_use;
    uint64_t acquired, waited, timeouts, reconnects;
} store_stats;

int store_open(store **out, const char *url, int size, int wait_ms, int statement_timeout_ms);
void store_close(store *s);
/* Opens every pooled connection now rather than on first use, so the first
 * burst of requests does not pay for (and time out on) a connection storm.
 * Returns how many are open; a database that is down is not an error. */
int store_warm(store *s);

/* Check a connection out of the pool (blocks up to the wait timeout) and
 * back in. NULL means STORE_E_UNAVAILABLE. */
store_conn *store_acquire(store *s);
void store_release(store_conn *c);

/* Run a prepared statement. On success *out holds the result (caller
 * PQclear()s it; out may be NULL to discard). Text-format parameters. */
int store_query(store_conn *c, store_stmt *st, int nparams, const char *const *params,
                PGresult **out);
/* Queue a write whose result is not needed (audit, ledger, events): it is
 * sent with the COMMIT, in the same round trip. Runs at once outside a
 * transaction. Parameters are copied. */
int store_defer(store_conn *c, store_stmt *st, int nparams, const char *const *params);
/* Run a parameterless, unprepared command (BEGIN, COMMIT...). */
int store_command(store_conn *c, const char *sql);

int store_begin(store_conn *c);
int store_commit(store_conn *c);
void store_rollback(store_conn *c);

/* The last error's SQLSTATE and message (for logs; never contains params). */
const char *store_last_error(const store_conn *c);
const char *store_last_sqlstate(const store_conn *c);
PGconn *store_pg(store_conn *c);

void store_get_stats(store *s, store_stats *out);

/* Small result helpers. */
static inline const char *store_val(const PGresult *r, int row, const char *col)
{
    int f = PQfnumber(r, col);
    if (f < 0 || row >= PQntuples(r) || PQgetisnull(r, row, f)) return NULL;
    return PQgetvalue(r, row, f);
}
int64_t store_i64(const PGresult *r, int row, const char *col);

#endif
