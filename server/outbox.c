/*
 * outbox.c - the outbox dispatcher.
 *
 * Events and their outbox rows are written in the same transaction as the
 * state change that caused them (events.c), so a notification exists iff
 * the change committed. Delivery happens here, later, on background threads:
 *
 *   1. claim: one statement picks due pending rows with FOR UPDATE SKIP
 *      LOCKED, counts the attempt and pushes next_attempt_at forward by a
 *      lease, and commits. Any number of dispatcher threads and payd
 *      processes can run this; each row goes to exactly one of them, and no
 *      lock is held while the notifier works;
 *   2. deliver: the notifier module's notify() (outside any transaction);
 *   3. record: delivered, or rescheduled with exponential backoff and
 *      jitter ([outbox] retry_schedule), or dead-lettered after
 *      [outbox] max_attempts or on a permanent error.
 *
 * A process that dies between 1 and 3 leaves the row pending with its lease,
 * so it is retried when the lease runs out: delivery is at least once, and
 * every delivery carries the event id for receivers to dedup.
 */
#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "audit.h"
#include "host.h"
#include "list_page.h"
#include "log.h"
#include "metrics.h"

#define OUTBOX_BATCH "16"

STORE_STMT(stmt_claim,
           "UPDATE outbox o SET attempts = o.attempts + 1,"
           " next_attempt_at = now() + make_interval(secs => $1::int)"
           " FROM (SELECT id FROM outbox WHERE state = 'pending' AND next_attempt_at <= now()"
           "       ORDER BY next_attempt_at LIMIT " OUTBOX_BATCH " FOR UPDATE SKIP LOCKED) d, events e"
           " WHERE o.id = d.id AND e.id = o.event_id"
           " RETURNING o.id, o.notifier, o.attempts, e.id AS event_id, e.type,"
           " extract(epoch FROM e.created_at)::bigint AS created,"
           " (e.data -> 'object')::text AS object,"
           " json_build_object('id', e.id, 'object', 'event', 'type', e.type, 'object_type', e.object_type,"
           "  'object_id', e.object_id, 'order_id', e.order_id,"
           "  'created', extract(epoch FROM e.created_at)::bigint, 'request_id', e.request_id,"
           "  'data', e.data)::text AS envelope");
STORE_STMT(stmt_delivered,
           "UPDATE outbox SET state = 'delivered', delivered_at = now(), last_error = NULL WHERE id = $1::bigint");
STORE_STMT(stmt_retry,
           "UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $2::double precision),"
           " last_error = $3 WHERE id = $1::bigint AND state = 'pending'");
STORE_STMT(stmt_dead,
           "UPDATE outbox SET state = 'dead', last_error = $2 WHERE id = $1::bigint AND state = 'pending'");

static instance *notifier_named(app *a, const char *name)
{
    for (size_t i = 0; i < a->mods->notifier_count; i++)
        if (strcmp(a->mods->notifiers[i]->name, name) == 0) return a->mods->notifiers[i];
    return NULL;
}

/* Backoff for the attempt just made, with +-20% jitter so a receiver that
 * comes back is not hit by every delivery at once. */
static double retry_delay_s(app *a, int attempts)
{
    double base = config_schedule_step(a->cfg->outbox_schedule, attempts - 1);
    uint32_t r = 0;
    host_random_bytes(&r, sizeof r);
    double jitter = 0.8 + 0.4 * ((double)r / 4294967295.0);
    return base * jitter;
}

static void record(app *a, const char *id, int rc, int attempts, const char *error)
{
    store_conn *c = store_acquire(a->db);
    if (!c) return; /* the lease expires and the delivery is retried */
    if (rc == 0) {
        const char *p[] = {id};
        store_query(c, &stmt_delivered, 1, p, NULL);
        metrics_count(METRIC_OUTBOX_DELIVERED);
    } else if (rc == PAYD_E_TRANSIENT && attempts < a->cfg->outbox_max_attempts) {
        char delay[32];
        snprintf(delay, sizeof delay, "%.3f", retry_delay_s(a, attempts));
        const char *p[] = {id, delay, error};
        store_query(c, &stmt_retry, 3, p, NULL);
        metrics_count(METRIC_OUTBOX_RETRIED);
    } else {
        const char *p[] = {id, error};
        store_query(c, &stmt_dead, 2, p, NULL);
        metrics_count(METRIC_OUTBOX_DEAD);
        log_warn("outbox", "delivery %s dead-lettered after %d attempts: %s", id, attempts, error);
    }
    store_release(c);
}

int outbox_dispatch(app *a)
{
    if (a->mods->notifier_count == 0) return 0;
    store_conn *c = store_acquire(a->db);
    if (!c) return -1;
    char lease[16];
    snprintf(lease, sizeof lease, "%d", a->cfg->outbox_lease_s);
    const char *params[] = {lease};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_claim, 1, params, &r);
    store_release(c);
    if (rc != STORE_OK) return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n && !atomic_load(&a->stopping); i++) {
        const char *id = store_val(r, i, "id");
        int attempts = (int)store_i64(r, i, "attempts");
        instance *nt = notifier_named(a, store_val(r, i, "notifier"));
        if (!nt) {
            record(a, id, PAYD_E_INVALID, attempts, "notifier is no longer configured");
            continue;
        }
        payd_notification note = {.struct_size = sizeof note,
                                  .event_id = store_val(r, i, "event_id"),
                                  .event_type = store_val(r, i, "type"),
                                  .created_at = store_i64(r, i, "created"),
                                  .object_json = store_val(r, i, "object"),
                                  .event_json = store_val(r, i, "envelope"),
                                  .attempt = attempts};
        payd_error e = {0};
        arena *ar = arena_new();
        int nrc = ar ? nt->nt.notify(nt->state, &note, ar, &e) : PAYD_E_NOMEM;
        if (nrc > 0) nrc = PAYD_E_INTERNAL;
        e.message[sizeof e.message - 1] = '\0';
        arena_free(ar);
        log_msg(nrc ? LOG_INFO : LOG_DEBUG, "outbox", "%s %s to [notifier.%s] attempt %d: %s",
                note.event_type, note.event_id, nt->name, attempts,
                nrc == 0 ? "delivered" : e.message[0] ? e.message : "failed");
        record(a, id, nrc, attempts,
               nrc == 0 ? NULL : e.message[0] ? e.message : nrc == PAYD_E_TRANSIENT ? "transient failure" : "failed");
    }
    PQclear(r);
    return n;
}

STORE_STMT(stmt_list,
           "SELECT json_build_object('id', 'dlv_' || o.id, 'object', 'delivery', 'event_id', o.event_id,"
           " 'event_type', e.type, 'notifier', o.notifier, 'state', o.state, 'attempts', o.attempts,"
           " 'next_attempt_at', extract(epoch FROM o.next_attempt_at)::bigint, 'last_error', o.last_error,"
           " 'created', extract(epoch FROM o.created_at)::bigint,"
           " 'delivered', extract(epoch FROM o.delivered_at)::bigint)::text AS j"
           " FROM outbox o JOIN events e ON e.id = o.event_id"
           " WHERE ($1::text IS NULL OR o.state = $1) AND ($2::bigint IS NULL OR o.id < $2::bigint)"
           " ORDER BY o.id DESC LIMIT $3::int");
STORE_STMT(stmt_replay,
           "UPDATE outbox o SET state = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL"
           " WHERE id = $1::bigint AND state IN ('dead', 'pending')"
           " RETURNING json_build_object('id', 'dlv_' || o.id, 'object', 'delivery', 'event_id', o.event_id,"
           " 'notifier', o.notifier, 'state', o.state, 'attempts', o.attempts)::text AS j");
STORE_STMT(stmt_exists, "SELECT state FROM outbox WHERE id = $1::bigint");

static const char *delivery_number(const char *id)
{
    if (!id) return NULL;
    if (strncmp(id, "dlv_", 4) == 0) id += 4;
    size_t n = strlen(id);
    return n > 0 && n < 19 && strspn(id, "0123456789") == n ? id : NULL;
}

int outbox_list(op_ctx *x, const char *state, const char *starting_after, int limit, json_t **out,
                fault *f)
{
    if (state && strcmp(state, "pending") && strcmp(state, "dead") && strcmp(state, "delivered"))
        return fault_invalid(f, "parameter_invalid", "state", "state must be pending, dead or delivered");
    const char *after = starting_after ? delivery_number(starting_after) : NULL;
    if (starting_after && !after)
        return fault_invalid(f, "parameter_invalid", "starting_after", "starting_after must be a delivery id");
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {state, after, lim};
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = list_page_query(c, &stmt_list, 3, params, limit, out, f);
    store_release(c);
    return rc;
}

int outbox_replay(op_ctx *x, const char *id, json_t **out, fault *f)
{
    const char *num = delivery_number(id);
    if (!num) return fault_not_found(f, "delivery", id);
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    const char *params[] = {num};
    PGresult *r = NULL;
    int refused = 0;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = store_query(c, &stmt_replay, 1, params, &r);
    if (rc == STORE_OK && PQntuples(r) == 0) {
        PGresult *e = NULL;
        rc = store_query(c, &stmt_exists, 1, params, &e);
        if (rc == STORE_OK && PQntuples(e) == 0) refused = fault_not_found(f, "delivery", id);
        else if (rc == STORE_OK)
            refused = fault_set(f, 409, "invalid_request_error", "delivery_already_delivered", NULL,
                                "delivery %s was already delivered", id);
        PQclear(e);
    } else if (rc == STORE_OK) {
        char entity[48];
        snprintf(entity, sizeof entity, "outbox:%s", num);
        json_t *after = json_loads(store_val(r, 0, "j"), 0, NULL);
        rc = audit_write(c, entity, op_actor(x), "outbox.replayed", x->request_id, NULL, after);
        json_decref(after);
    }
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (refused || rc != STORE_OK) {
        PQclear(r);
        return refused ? -1 : fault_store(f, rc);
    }
    *out = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return 0;
}
