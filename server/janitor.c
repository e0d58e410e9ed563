/*
 * janitor.c - finishing what a lost answer left open.
 *
 * A payment or refund whose provider call ended without a definite answer
 * (PAYD_E_TRANSIENT, or payd stopped between recording the intent and
 * applying the answer) carries janitor_next_at. Each pass claims due rows
 * with FOR UPDATE SKIP LOCKED and, in the same statement, pushes their
 * next_at forward as a lease and counts the attempt, then commits; so
 * several payd processes on one database never work the same row at once
 * and no lock is held during the provider call. Resolution itself is the
 * domain's (payments_resolve, refunds_resolve). Webhook events left
 * unmatched are retried here too (webhooks_rematch_stale), and manual
 * payments unpaid past their instance's auto_expire_days are cancelled
 * (manual_review_expire).
 *
 * Runs on the background scheduler thread only.
 */
#include "janitor.h"

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "context.h"
#include "log.h"
#include "manual_review.h"
#include "payments.h"
#include "refunds.h"
#include "webhooks.h"

#define JANITOR_BATCH "16"
#define JANITOR_LEASE "300"

STORE_STMT(stmt_claim_payments,
           "UPDATE payments SET janitor_next_at = now() + make_interval(secs => $1::int),"
           " janitor_attempts = janitor_attempts + 1"
           " WHERE id IN (SELECT id FROM payments WHERE janitor_next_at <= now()"
           "  ORDER BY janitor_next_at LIMIT " JANITOR_BATCH " FOR UPDATE SKIP LOCKED)"
           " RETURNING id");
STORE_STMT(stmt_claim_refunds,
           "UPDATE refunds SET janitor_next_at = now() + make_interval(secs => $1::int),"
           " janitor_attempts = janitor_attempts + 1"
           " WHERE id IN (SELECT id FROM refunds WHERE janitor_next_at <= now()"
           "  ORDER BY janitor_next_at LIMIT " JANITOR_BATCH " FOR UPDATE SKIP LOCKED)"
           " RETURNING id");

int janitor_backoff_s(app *a, int attempts)
{
    return config_schedule_step(a->cfg->janitor_schedule, attempts);
}

static PGresult *janitor_claim(app *a, store_stmt *st)
{
    store_conn *c = store_acquire(a->db);
    if (!c) return NULL;
    const char *params[] = {JANITOR_LEASE};
    PGresult *r = NULL;
    if (store_query(c, st, 1, params, &r) != STORE_OK) r = NULL;
    store_release(c);
    return r;
}

void janitor_run(app *a)
{
    principal system = {.kind = PRINCIPAL_NONE, .role = ROLE_ADMIN};
    strcpy(system.actor, "system:janitor");
    PGresult *pays = janitor_claim(a, &stmt_claim_payments);
    for (int i = 0; pays && i < PQntuples(pays) && !atomic_load(&a->stopping); i++) {
        op_ctx x = {.a = a, .who = &system, .request_id = NULL, .arena = arena_new()};
        if (!x.arena) break;
        payments_resolve(&x, PQgetvalue(pays, i, 0));
        arena_free(x.arena);
    }
    PQclear(pays);
    PGresult *refs = janitor_claim(a, &stmt_claim_refunds);
    for (int i = 0; refs && i < PQntuples(refs) && !atomic_load(&a->stopping); i++) {
        op_ctx x = {.a = a, .who = &system, .request_id = NULL, .arena = arena_new()};
        if (!x.arena) break;
        refunds_resolve(&x, PQgetvalue(refs, i, 0));
        arena_free(x.arena);
    }
    PQclear(refs);
    op_ctx x = {.a = a, .who = &system, .request_id = NULL, .arena = arena_new()};
    if (x.arena) {
        webhooks_rematch_stale(&x);
        manual_review_expire(&x);
        arena_free(x.arena);
    }
}
