/*
 * audit.c - the tamper-evident audit log.
 *
 * Rows are chained per entity (one chain per order, payment, refund, key),
 * not globally: a global chain's tail would be a lock every writer waits on
 * through its commit. The chaining itself happens in the database, in the
 * audit_log BEFORE INSERT trigger (db/migrations/0001_init.sql):
 *
 *     hash = sha256(prev_hash || canonical(row))
 *
 * and UPDATE, DELETE and TRUNCATE on audit_log are refused by triggers, for
 * payd's role and every other. audit_verify() recomputes every hash here in
 * C from the stored columns, so a row edited behind payd's back (with the
 * triggers disabled) breaks the chain at that row.
 */
#include "audit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "host.h"
#include "list_page.h"
#include "log.h"
#include "metrics.h"

STORE_STMT(stmt_audit_insert,
           "INSERT INTO audit_log (entity, actor, action, request_id, before, after, prev_hash, hash)"
           " VALUES ($1, $2, $3, $4, $5::json, $6::json, '\\x', '\\x')");

int audit_write(store_conn *c, const char *entity, const char *actor, const char *action,
                const char *request_id, json_t *before, json_t *after)
{
    char *b = before ? json_dumps(before, JSON_COMPACT) : NULL;
    char *a = after ? json_dumps(after, JSON_COMPACT) : NULL;
    const char *params[] = {entity, actor, action, request_id, b, a};
    int rc = store_defer(c, &stmt_audit_insert, 6, params);
    free(b);
    free(a);
    return rc;
}

/*
 * Rejected authentications are audited, but a flood of garbage credentials
 * must not turn into a flood of database writes: each remote address gets
 * at most AUTH_AUDIT_BURST rows per AUTH_AUDIT_WINDOW_MS; the rest are only
 * counted (payd_auth_rejected_total). A small fixed table of slots, keyed by
 * a hash of the address, under one mutex held for a few instructions.
 */
#define AUTH_AUDIT_SLOTS 1024
#define AUTH_AUDIT_BURST 10
#define AUTH_AUDIT_WINDOW_MS 60000

static struct {
    uint64_t key;
    int64_t window_start;
    int count;
} auth_audit_slots[AUTH_AUDIT_SLOTS];
static pthread_mutex_t auth_audit_lock = PTHREAD_MUTEX_INITIALIZER;

static int auth_audit_allowed(const char *remote_addr)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)(remote_addr ? remote_addr : ""); *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    int64_t now = host_now_ms();
    pthread_mutex_lock(&auth_audit_lock);
    __typeof__(auth_audit_slots[0]) *s = &auth_audit_slots[h % AUTH_AUDIT_SLOTS];
    if (s->key != h || now - s->window_start > AUTH_AUDIT_WINDOW_MS) {
        s->key = h;
        s->window_start = now;
        s->count = 0;
    }
    int allowed = s->count++ < AUTH_AUDIT_BURST;
    pthread_mutex_unlock(&auth_audit_lock);
    return allowed;
}

void audit_auth_rejected(app *a, const char *remote_addr, const char *request_id,
                         const char *path, const char *why)
{
    metrics_count(METRIC_AUTH_REJECTED);
    if (!auth_audit_allowed(remote_addr)) return;
    store_conn *c = store_acquire(a->db);
    if (!c) return;
    char entity[96];
    snprintf(entity, sizeof entity, "auth:%s", remote_addr ? remote_addr : "unknown");
    json_t *after = json_pack("{s:s, s:s}", "path", path, "reason", why ? why : "");
    int rc = audit_write(c, entity, "anonymous", "auth.rejected", request_id, NULL, after);
    json_decref(after);
    if (rc != STORE_OK) log_warn("audit", "could not record a rejected authentication");
    store_release(c);
}

STORE_STMT(stmt_audit_page,
           "SELECT entity, seq, actor, action, coalesce(request_id, '') AS request_id,"
           " coalesce(before::text, 'null') AS before, coalesce(after::text, 'null') AS after,"
           " ((extract(epoch FROM created_at) * 1000000)::bigint)::text AS ts,"
           " encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash"
           " FROM audit_log WHERE (entity, seq) > ($1, $2::bigint)"
           " ORDER BY entity, seq LIMIT 2000");
STORE_STMT(stmt_audit_heads,
           "SELECT count(*) AS n FROM audit_heads h WHERE NOT EXISTS ("
           " SELECT 1 FROM audit_log l WHERE l.entity = h.entity AND l.seq = h.seq AND l.hash = h.head)");

STORE_STMT(stmt_seal, "SELECT payd_audit_seal() AS n");

long audit_seal(app *a)
{
    store_conn *c = store_acquire(a->db);
    if (!c) return -1;
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_seal, 0, NULL, &r);
    store_release(c);
    long n = rc == STORE_OK ? (long)store_i64(r, 0, "n") : -1;
    PQclear(r);
    return n;
}

STORE_STMT(stmt_checkpoints,
           "SELECT id, horizon::text AS horizon, rows, encode(digest, 'hex') AS digest,"
           " encode(prev_hash, 'hex') AS prev_hash, encode(hash, 'hex') AS hash"
           " FROM audit_checkpoints ORDER BY id");
STORE_STMT(stmt_checkpoint_range,
           "SELECT count(*) AS n, encode(sha256(coalesce(string_agg(hash, ''::bytea ORDER BY id), ''::bytea)), 'hex') AS digest"
           " FROM audit_log WHERE txid >= $1::xid8 AND txid < $2::xid8");
STORE_STMT(stmt_unsealed,
           "SELECT count(*) AS n FROM audit_log WHERE txid >= coalesce((SELECT horizon FROM audit_checkpoints"
           " ORDER BY id DESC LIMIT 1), '0'::xid8)");

/*
 * Verifies the checkpoint chain: each checkpoint's rows still hash to its
 * digest, and its hash links to the previous one. Returns STORE_OK and
 * sets *broken on the first bad checkpoint.
 */
static int audit_verify_checkpoints(store_conn *c, long long *count, json_t **broken)
{
    PGresult *cps = NULL;
    int rc = store_query(c, &stmt_checkpoints, 0, NULL, &cps);
    if (rc != STORE_OK) return rc;
    char lo[32] = "0";
    char prev[65] = "0000000000000000000000000000000000000000000000000000000000000000";
    *count = PQntuples(cps);
    for (int i = 0; i < PQntuples(cps) && !*broken; i++) {
        const char *hi = store_val(cps, i, "horizon");
        const char *params[] = {lo, hi};
        PGresult *r = NULL;
        rc = store_query(c, &stmt_checkpoint_range, 2, params, &r);
        if (rc != STORE_OK) break;
        const char *reason = NULL;
        if (store_i64(r, 0, "n") != store_i64(cps, i, "rows") ||
            strcmp(store_val(r, 0, "digest"), store_val(cps, i, "digest")) != 0)
            reason = "the audit rows no longer match the checkpoint digest";
        else if (strcmp(store_val(cps, i, "prev_hash"), prev) != 0)
            reason = "the checkpoint does not link to the previous one";
        else {
            uint8_t buf[64 + 64];
            char tail[64];
            int tl = snprintf(tail, sizeof tail, "%s|%s", hi, store_val(cps, i, "rows"));
            uint8_t digest[32];
            char hex[65];
            if (host_unhex(prev, buf, 32) || host_unhex(store_val(cps, i, "digest"), buf + 32, 32)) {
                reason = "malformed checkpoint";
            } else {
                unsigned char msg[64 + 64];
                memcpy(msg, buf, 64);
                memcpy(msg + 64, tail, (size_t)tl);
                host_sha256(msg, 64 + (size_t)tl, digest);
                host_hex(digest, 32, hex);
                if (strcmp(hex, store_val(cps, i, "hash")) != 0) reason = "the checkpoint hash is wrong";
            }
        }
        PQclear(r);
        if (reason)
            *broken = json_pack("{s:s, s:I, s:s}", "entity", "checkpoint", "seq",
                                (json_int_t)store_i64(cps, i, "id"), "reason", reason);
        snprintf(lo, sizeof lo, "%s", hi);
        snprintf(prev, sizeof prev, "%s", store_val(cps, i, "hash"));
    }
    PQclear(cps);
    return rc;
}

static const char zero_hash_hex[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Recomputes one row's hash from its columns; 1 when it matches. */
static int audit_row_valid(const PGresult *r, int i, const char *prev_hex)
{
    const char *cols[] = {"entity", "seq", "actor", "action", "request_id", "before", "after", "ts"};
    size_t total = 32;
    for (size_t k = 0; k < 8; k++) total += strlen(store_val(r, i, cols[k])) + 1;
    unsigned char *buf = malloc(total);
    if (!buf) return 0;
    if (host_unhex(prev_hex, buf, 32) != 0) {
        free(buf);
        return 0;
    }
    size_t off = 32;
    for (size_t k = 0; k < 8; k++) {
        const char *v = store_val(r, i, cols[k]);
        size_t n = strlen(v);
        memcpy(buf + off, v, n);
        off += n;
        if (k < 7) buf[off++] = '|';
    }
    uint8_t digest[32];
    char hex[65];
    host_sha256(buf, off, digest);
    free(buf);
    host_hex(digest, 32, hex);
    return strcmp(hex, store_val(r, i, "hash")) == 0;
}

int audit_verify(store *s, json_t **report)
{
    store_conn *c = store_acquire(s);
    if (!c) return STORE_E_UNAVAILABLE;
    char last_entity[256] = "";
    char last_seq[32] = "0";
    char prev_entity[256] = "";
    char prev_hash[65] = "";
    long long expect_seq = 0;
    long long rows = 0, entities = 0;
    json_t *broken = NULL;
    int rc = STORE_OK;
    while (!broken) {
        const char *params[] = {last_entity, last_seq};
        PGresult *r = NULL;
        rc = store_query(c, &stmt_audit_page, 2, params, &r);
        if (rc != STORE_OK) break;
        int n = PQntuples(r);
        for (int i = 0; i < n && !broken; i++) {
            const char *entity = store_val(r, i, "entity");
            long long seq = store_i64(r, i, "seq");
            if (strcmp(entity, prev_entity) != 0) {
                snprintf(prev_entity, sizeof prev_entity, "%s", entity);
                snprintf(prev_hash, sizeof prev_hash, "%s", zero_hash_hex);
                expect_seq = 1;
                entities++;
            }
            const char *reason = NULL;
            if (seq != expect_seq) reason = "sequence gap (a row is missing)";
            else if (strcmp(store_val(r, i, "prev_hash"), prev_hash) != 0)
                reason = "prev_hash does not match the previous row";
            else if (!audit_row_valid(r, i, prev_hash))
                reason = "hash does not match the row's contents";
            if (reason) {
                broken = json_pack("{s:s, s:I, s:s}", "entity", entity, "seq", (json_int_t)seq,
                                   "reason", reason);
                break;
            }
            snprintf(prev_hash, sizeof prev_hash, "%s", store_val(r, i, "hash"));
            expect_seq++;
            rows++;
        }
        if (n > 0) {
            snprintf(last_entity, sizeof last_entity, "%s", store_val(r, n - 1, "entity"));
            snprintf(last_seq, sizeof last_seq, "%s", store_val(r, n - 1, "seq"));
        }
        PQclear(r);
        if (n < 2000) break;
    }
    long long checkpoints = 0, unsealed = 0;
    if (rc == STORE_OK && !broken) rc = audit_verify_checkpoints(c, &checkpoints, &broken);
    if (rc == STORE_OK) {
        PGresult *r = NULL;
        rc = store_query(c, &stmt_unsealed, 0, NULL, &r);
        if (rc == STORE_OK) unsealed = store_i64(r, 0, "n");
        PQclear(r);
    }
    if (rc == STORE_OK && !broken) {
        PGresult *r = NULL;
        rc = store_query(c, &stmt_audit_heads, 0, NULL, &r);
        if (rc == STORE_OK && store_i64(r, 0, "n") > 0)
            broken = json_pack("{s:s, s:n, s:s}", "entity", "audit_heads", "seq", "reason",
                               "a chain head does not match its last row (rows were removed)");
        PQclear(r);
    }
    store_release(c);
    if (rc != STORE_OK) {
        json_decref(broken);
        return rc;
    }
    *report = json_pack("{s:b, s:I, s:I, s:I, s:I, s:o}", "ok", broken == NULL, "rows", (json_int_t)rows,
                        "entities", (json_int_t)entities, "checkpoints", (json_int_t)checkpoints,
                        "unsealed_rows", (json_int_t)unsealed, "first_broken",
                        broken ? broken : json_null());
    return STORE_OK;
}

STORE_STMT(stmt_list,
           "SELECT json_build_object('id', id, 'entity', entity, 'seq', seq, 'actor', actor, 'action', action,"
           " 'request_id', request_id, 'before', before, 'after', after,"
           " 'created', extract(epoch FROM created_at)::bigint, 'hash', encode(hash, 'hex'))::text AS j"
           " FROM audit_log WHERE ($1::text IS NULL OR entity = $1)"
           " AND ($2::bigint IS NULL OR id < $2::bigint) ORDER BY id DESC LIMIT $3::int");

int audit_list(store *s, const char *entity, const char *starting_after, int limit, json_t **out, fault *f)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {entity, starting_after, lim};
    store_conn *c = store_acquire(s);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = list_page_query(c, &stmt_list, 3, params, limit, out, f);
    store_release(c);
    return rc;
}
