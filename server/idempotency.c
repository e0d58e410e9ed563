/*
 * idempotency.c - Idempotency-Key, with Stripe's contract.
 *
 * A key is scoped to the caller (API key or end user) and bound to a
 * fingerprint: sha256 of method, path and body. The first request claims
 * the key (state in_flight) in a single autocommitted statement, so two
 * concurrent requests with one key are decided by PostgreSQL's unique index:
 * exactly one proceeds, the others see in_flight and get 409. When the
 * handler is done the status and body are stored, and replays within the
 * TTL get them back byte for byte. A request refused by validation (4xx
 * other than 402) releases its key instead, so the client can fix and retry.
 *
 * An in_flight claim older than IDEMPOTENCY_LEASE_S (payd died mid-request)
 * may be taken over by a request with the same fingerprint; the work below
 * is itself idempotent towards providers (derived keys), so this is safe.
 */
#include "idempotency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "cardguard.h"
#include "host.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

#define IDEMPOTENCY_LEASE_S 300

STORE_STMT(stmt_claim,
           "WITH ins AS ("
           " INSERT INTO idempotency_keys AS k (scope, key, fingerprint, state, expires_at)"
           " VALUES ($1, $2, decode($3, 'hex'), 'in_flight', now() + make_interval(secs => $4::int))"
           " ON CONFLICT (scope, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
           "  state = 'in_flight', status = NULL, response_body = NULL, created_at = now(),"
           "  expires_at = EXCLUDED.expires_at"
           " WHERE k.expires_at < now() OR (k.state = 'in_flight' AND k.fingerprint = EXCLUDED.fingerprint"
           "  AND k.created_at < now() - make_interval(secs => $5::int))"
           " RETURNING 1 AS claimed)"
           " SELECT (SELECT claimed FROM ins) AS claimed,"
           "  (SELECT encode(fingerprint, 'hex') FROM idempotency_keys WHERE scope = $1 AND key = $2) AS fingerprint,"
           "  (SELECT state FROM idempotency_keys WHERE scope = $1 AND key = $2) AS state,"
           "  (SELECT status FROM idempotency_keys WHERE scope = $1 AND key = $2) AS status,"
           "  (SELECT response_body FROM idempotency_keys WHERE scope = $1 AND key = $2) AS body");
STORE_STMT(stmt_store,
           "UPDATE idempotency_keys SET state = 'done', status = $3, response_body = $4"
           " WHERE scope = $1 AND key = $2");
STORE_STMT(stmt_release, "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2");
STORE_STMT(stmt_purge,
           "DELETE FROM idempotency_keys WHERE ctid IN ("
           " SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT 1000)");

int idempotency_begin(app *a, http_req *r, idempotency_slot *slot)
{
    memset(slot, 0, sizeof *slot);
    const char *key = http_header(r, "Idempotency-Key");
    if (!key) return IDEMPOTENCY_PROCEED;
    size_t klen = strlen(key);
    if (klen == 0 || klen > 255) {
        http_reply_error(r, 400, "idempotency_error", "idempotency_key_invalid", NULL,
                         "Idempotency-Key must be 1 to 255 characters");
        return IDEMPOTENCY_ANSWERED;
    }
    if (cardguard_text_has_pan(key, klen, 0)) { /* keys are stored */
        http_reply_error(r, 400, "invalid_request_error", "card_data_not_allowed", NULL,
                         "card numbers are not accepted by payd, not even in an Idempotency-Key");
        return IDEMPOTENCY_ANSWERED;
    }
    /* fingerprint = sha256(method NUL path NUL body) */
    size_t ml = strlen(r->method), pl = strlen(r->path);
    char *buf = arena_alloc(r->arena, ml + pl + 2 + r->body_len);
    if (!buf) {
        http_reply_error(r, 500, "api_error", "internal_error", NULL, "out of memory");
        return IDEMPOTENCY_ANSWERED;
    }
    memcpy(buf, r->method, ml + 1);
    memcpy(buf + ml + 1, r->path, pl + 1);
    if (r->body_len) memcpy(buf + ml + pl + 2, r->body, r->body_len);
    uint8_t fp[32];
    char fp_hex[65], ttl[16], lease[16];
    host_sha256(buf, ml + pl + 2 + r->body_len, fp);
    host_hex(fp, 32, fp_hex);
    snprintf(ttl, sizeof ttl, "%d", a->cfg->idempotency_ttl_s);
    snprintf(lease, sizeof lease, "%d", IDEMPOTENCY_LEASE_S);

    store_conn *c = store_acquire(a->db);
    if (!c) {
        http_reply_store_error(r, STORE_E_UNAVAILABLE);
        return IDEMPOTENCY_ANSWERED;
    }
    const char *params[] = {r->auth.actor, key, fp_hex, ttl, lease};
    PGresult *res = NULL;
    int rc = store_query(c, &stmt_claim, 5, params, &res);
    store_release(c);
    if (rc != STORE_OK) {
        http_reply_store_error(r, rc);
        return IDEMPOTENCY_ANSWERED;
    }
    int answered = IDEMPOTENCY_ANSWERED;
    const char *state = store_val(res, 0, "state");
    const char *stored_fp = store_val(res, 0, "fingerprint");
    if (store_val(res, 0, "claimed")) {
        slot->active = 1;
        slot->key = arena_strdup(r->arena, key);
        slot->scope = r->auth.actor;
        answered = IDEMPOTENCY_PROCEED;
    } else if (!state || !stored_fp) {
        /* Claimed by a request that committed after our snapshot began. */
        http_reply_error(r, 409, "idempotency_error", "idempotency_key_in_use", NULL,
                         "a request with this Idempotency-Key is still being processed");
    } else if (!host_equal_ct(stored_fp, fp_hex, 64)) {
        http_reply_error(r, 400, "idempotency_error", "idempotency_key_reused", NULL,
                         "this Idempotency-Key was used with different parameters");
    } else if (strcmp(state, "in_flight") == 0) {
        http_reply_error(r, 409, "idempotency_error", "idempotency_key_in_use", NULL,
                         "a request with this Idempotency-Key is still being processed");
    } else {
        const char *body = store_val(res, 0, "body");
        http_reply_raw(r, (int)store_i64(res, 0, "status"), "application/json", body ? body : "",
                       body ? strlen(body) : 0);
        r->extra_headers = "Idempotent-Replayed: true\r\n";
        metrics_count(METRIC_IDEMPOTENT_REPLAY);
    }
    PQclear(res);
    return answered;
}

void idempotency_finish(app *a, http_req *r, idempotency_slot *slot)
{
    int release = r->status >= 400 && r->status < 500 && r->status != 402;
    store_conn *c = store_acquire(a->db);
    if (!c) {
        log_warn("idempotency", "could not record the outcome of key in scope %s", slot->scope);
        return;
    }
    int rc;
    if (release) {
        const char *params[] = {slot->scope, slot->key};
        rc = store_query(c, &stmt_release, 2, params, NULL);
    } else {
        char status[8];
        snprintf(status, sizeof status, "%d", r->status);
        const char *params[] = {slot->scope, slot->key, status, r->res_body ? r->res_body : ""};
        rc = store_query(c, &stmt_store, 4, params, NULL);
    }
    store_release(c);
    if (rc != STORE_OK) log_warn("idempotency", "could not record a key outcome (%d)", rc);
}

long idempotency_purge(app *a)
{
    store_conn *c = store_acquire(a->db);
    if (!c) return -1;
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_purge, 0, NULL, &r);
    long n = rc == STORE_OK ? strtol(PQcmdTuples(r), NULL, 10) : -1;
    PQclear(r);
    store_release(c);
    return n;
}
