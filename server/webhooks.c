/*
 * webhooks.c - incoming provider webhooks.
 *
 * The module's webhook operation verifies the signature over the exact raw
 * bytes and returns one normalized payd_event. A forged or tampered request
 * is answered 400 and leaves nothing behind but a counter. A verified event
 * is stored and applied in ONE transaction:
 *   - the insert into webhook_events is the dedup: (gateway, provider event
 *     id) is unique, so a redelivered event inserts nothing and is answered
 *     200 without being applied again;
 *   - the payment is found by payd's id from provider metadata, or by the
 *     provider's payment ref, and locked;
 *   - the event goes through the same state machine as synchronous
 *     answers, so news that would move a payment backwards is recorded as
 *     `stale` and not applied;
 *   - an event for a payment payd does not know yet is kept as `unmatched`
 *     and applied when the payment learns its provider ref.
 * If applying fails on the database, the whole transaction rolls back and
 * the provider gets 500, so it retries; nothing is half written.
 */
#include "webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "ledger.h"
#include "log.h"
#include "metrics.h"
#include "refunds.h"

static const char *const event_names[] = {
    [PAYD_EV_IGNORED] = "ignored",
    [PAYD_EV_PAYMENT_SUCCEEDED] = "payment.succeeded",
    [PAYD_EV_PAYMENT_FAILED] = "payment.failed",
    [PAYD_EV_PAYMENT_REQUIRES_ACTION] = "payment.requires_action",
    [PAYD_EV_PAYMENT_CANCELED] = "payment.canceled",
    [PAYD_EV_REFUND_SUCCEEDED] = "refund.succeeded",
    [PAYD_EV_REFUND_FAILED] = "refund.failed",
    [PAYD_EV_DISPUTE_CREATED] = "dispute.created",
    [PAYD_EV_DISPUTE_CLOSED] = "dispute.closed",
    [PAYD_EV_METHOD_ATTACHED] = "method.attached",
    [PAYD_EV_PAYMENT_PROCESSING] = "payment.processing",
    [PAYD_EV_PAYMENT_CAPTURABLE] = "payment.capturable",
};
#define EVENT_TYPE_COUNT ((int)(sizeof event_names / sizeof event_names[0]))


STORE_STMT(stmt_insert,
           "INSERT INTO webhook_events (gateway, provider_event_id, event_type, provider_type, payment_id,"
           " provider_ref, refund_id, refund_ref, amount, currency, failure_code, failure_message,"
           " occurred_at, body, status)"
           " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::bigint, $10, $11, $12,"
           " CASE WHEN $13::bigint > 0 THEN to_timestamp($13::bigint) END, $14, CASE WHEN $3 IN ('ignored', 'method.attached') THEN 'ignored' ELSE 'applied' END)"
           " ON CONFLICT (gateway, provider_event_id) DO NOTHING RETURNING id");
STORE_STMT(stmt_mark, "UPDATE webhook_events SET status = $2, note = $3 WHERE id = $1::bigint");
/* By payd's payment id, else the provider ref, else (a refund event that
 * names only the refund, as PayPal's PAYMENT.CAPTURE.REFUNDED does) the
 * refund's payment. */
STORE_STMT(stmt_find_payment,
           "SELECT id FROM payments WHERE (id = $1 AND gateway = $3) OR ($1 IS NULL AND gateway = $3 AND provider_ref = $2)"
           " OR ($1 IS NULL AND $2 IS NULL AND gateway = $3 AND id = (SELECT payment_id FROM refunds"
           " WHERE gateway = $3 AND (id = $4 OR provider_ref = $5) LIMIT 1))");
STORE_STMT(stmt_unmatched,
           "SELECT id, event_type, payment_id, provider_ref, refund_id, refund_ref, amount, currency,"
           " failure_code, failure_message FROM webhook_events"
           " WHERE gateway = $1 AND status = 'unmatched' AND (provider_ref = $2 OR payment_id = $3)"
           " ORDER BY id FOR UPDATE");

static int event_type_of(const char *name)
{
    for (int i = 0; i < EVENT_TYPE_COUNT; i++)
        if (event_names[i] && strcmp(event_names[i], name) == 0) return i;
    return PAYD_EV_IGNORED;
}

/* Disputes: money is being clawed back by the card network. */
static int apply_dispute(op_ctx *x, store_conn *c, payment_row *p, const payd_event *ev)
{
    if (ev->type == PAYD_EV_DISPUTE_CLOSED) {
        const char *repr = NULL;
        int rc = payment_save(x, c, p, "payment.dispute_closed", &repr);
        if (rc == STORE_OK)
            rc = events_emit(c, x->a->mods, "dispute.closed", "payment", p->id, p->order_id, p->user_id,
                             repr, x->request_id);
        return rc < 0 ? rc : APPLY_APPLIED;
    }
    if (!strcmp(p->status, "disputed")) return APPLY_NOOP;
    if (!payment_transition_allowed(p->status, "disputed")) return APPLY_STALE;
    int64_t amount = ev->amount > 0 && ev->amount <= p->amount_captured ? ev->amount : p->amount_captured;
    p->status = "disputed";
    p->amount_disputed = amount;
    const char *repr = NULL;
    int rc = payment_save(x, c, p, "payment.disputed", &repr);
    if (rc == STORE_OK && amount > 0)
        rc = ledger_append(c, "chargeback", p->id, NULL, p->order_id, p->gateway, amount, p->currency,
                           x->request_id);
    if (rc == STORE_OK)
        rc = events_emit(c, x->a->mods, "dispute.created", "payment", p->id, p->order_id, p->user_id, repr,
                         x->request_id);
    return rc < 0 ? rc : APPLY_APPLIED;
}

/* Applies one normalized event to a locked payment. APPLY_* or STORE_E_*. */
static int apply_event(op_ctx *x, store_conn *c, payment_row *p, const payd_event *ev)
{
    payment_view v = {0};
    switch (ev->type) {
    case PAYD_EV_PAYMENT_SUCCEEDED:
        v.status = PAYD_PS_SUCCEEDED;
        v.amount_captured = ev->amount;
        v.has_amounts = ev->amount > 0;
        break;
    case PAYD_EV_PAYMENT_CAPTURABLE:
        v.status = PAYD_PS_REQUIRES_CAPTURE;
        v.amount_capturable = ev->amount;
        v.has_amounts = ev->amount > 0;
        break;
    case PAYD_EV_PAYMENT_FAILED:
        v.status = PAYD_PS_FAILED;
        v.failure_code = ev->failure_code;
        v.failure_message = ev->failure_message;
        break;
    case PAYD_EV_PAYMENT_CANCELED: v.status = PAYD_PS_CANCELED; break;
    case PAYD_EV_PAYMENT_PROCESSING: v.status = PAYD_PS_PROCESSING; break;
    case PAYD_EV_PAYMENT_REQUIRES_ACTION: v.status = PAYD_PS_REQUIRES_ACTION; break;
    case PAYD_EV_REFUND_SUCCEEDED:
    case PAYD_EV_REFUND_FAILED: {
        int rc = refunds_apply_outcome(x, c, p, ev->refund_id, ev->refund_ref,
                                       ev->type == PAYD_EV_REFUND_SUCCEEDED, ev->failure_code,
                                       ev->failure_message, 1, ev->amount, ev->currency);
        return rc;
    }
    case PAYD_EV_DISPUTE_CREATED:
    case PAYD_EV_DISPUTE_CLOSED: return apply_dispute(x, c, p, ev);
    default: return APPLY_NOOP;
    }
    v.provider_ref = ev->provider_ref;
    if (v.status == PAYD_PS_PROCESSING && !strcmp(p->status, "processing")) return APPLY_NOOP;
    return payment_apply_view(x, c, p, &v, "payment.webhook", NULL);
}

static const char *outcome_name(int applied)
{
    switch (applied) {
    case APPLY_APPLIED: return "applied";
    case APPLY_STALE: return "stale";
    case APPLY_UNKNOWN: return "unmatched"; /* e.g. a refund made in the provider's dashboard */
    default: return "ignored";
    }
}

int webhooks_receive(op_ctx *x, const char *gateway, const payd_header *headers, size_t header_count,
                     const char *body, size_t body_len, json_t **out, fault *f)
{
    instance *gw = modules_gateway(x->a->mods, gateway);
    if (!gw || !gw->gw.webhook) return fault_not_found(f, "webhook endpoint for gateway", gateway);
    metrics_count(METRIC_WEBHOOK_RECEIVED);
    if (memchr(body, '\0', body_len))
        return fault_invalid(f, "webhook_invalid", NULL, "the body contains a NUL byte");
    payd_webhook_req req = {.struct_size = sizeof req, .headers = headers, .header_count = header_count,
                            .body = body, .body_len = body_len};
    payd_event ev = {.struct_size = sizeof ev};
    payd_error e = {0};
    int rc = gw->gw.webhook(gw->state, &req, &ev, x->arena, &e);
    e.message[sizeof e.message - 1] = '\0';
    if (rc == PAYD_E_SIGNATURE) {
        metrics_count(METRIC_WEBHOOK_BAD_SIGNATURE);
        log_warn("webhooks", "[%s] rejected a webhook: %s", gateway, e.message[0] ? e.message : "bad signature");
        return fault_set(f, 400, "invalid_request_error", "signature_invalid", NULL,
                         "the webhook signature could not be verified");
    }
    if (rc == PAYD_E_INVALID || (rc == 0 && (!ev.provider_event_id || !*ev.provider_event_id)))
        return fault_invalid(f, "webhook_invalid", NULL, "%s", e.message[0] ? e.message : "the webhook has no event id");
    if (rc != 0)
        return fault_set(f, 500, "api_error", "webhook_failed", NULL, "the gateway could not process the webhook");
    int type = ev.type >= 0 && ev.type < EVENT_TYPE_COUNT && event_names[ev.type] ? ev.type : PAYD_EV_IGNORED;
    ev.type = type;

    char amount[24], occurred[24];
    snprintf(amount, sizeof amount, "%lld", (long long)ev.amount);
    snprintf(occurred, sizeof occurred, "%lld", (long long)ev.occurred_at);
    const char *params[] = {gateway, ev.provider_event_id, event_names[type], ev.provider_type,
                            ev.payment_id, ev.provider_ref, ev.refund_id, ev.refund_ref, amount,
                            ev.currency && strlen(ev.currency) == 3 ? ev.currency : NULL,
                            ev.failure_code, ev.failure_message, occurred, body};
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    PGresult *ins = NULL, *found = NULL;
    const char *status = "applied", *note = NULL;
    int src = store_begin(c);
    if (src == STORE_OK) src = store_query(c, &stmt_insert, 14, params, &ins);
    if (src == STORE_OK && PQntuples(ins) == 0) {
        status = "duplicate";
        metrics_count(METRIC_WEBHOOK_DUPLICATE);
    } else if (src == STORE_OK && (type == PAYD_EV_IGNORED || type == PAYD_EV_METHOD_ATTACHED)) {
        /* Nothing in payd follows from it: recorded, not applied. */
        status = "ignored";
    } else if (src == STORE_OK) {
        const char *fp[] = {ev.payment_id, ev.provider_ref, gateway, ev.refund_id, ev.refund_ref};
        src = store_query(c, &stmt_find_payment, 5, fp, &found);
        payment_row p;
        if (src == STORE_OK && PQntuples(found) == 1) src = payment_lock(x, c, PQgetvalue(found, 0, 0), &p);
        else if (src == STORE_OK) src = 1;
        if (src == 1) {
            status = "unmatched";
            note = "no payment with this id or provider ref yet";
            metrics_count(METRIC_WEBHOOK_UNMATCHED);
            src = STORE_OK;
        } else if (src == STORE_OK) {
            int applied = apply_event(x, c, &p, &ev);
            if (applied < 0) src = applied;
            else status = outcome_name(applied);
            if (applied == APPLY_STALE) {
                note = arena_sprintf(x->arena, "not applied: payment is %s", p.status);
                metrics_count(METRIC_WEBHOOK_STALE);
            }
            payment_row_release(&p);
        }
        if (src == STORE_OK) {
            const char *mp[] = {PQgetvalue(ins, 0, 0), status, note};
            src = store_query(c, &stmt_mark, 3, mp, NULL);
        }
    }
    PQclear(ins);
    PQclear(found);
    if (src == STORE_OK) src = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (src != STORE_OK) return fault_store(f, src);
    *out = json_pack("{s:b, s:s, s:s, s:s}", "received", 1, "status", status, "event_id",
                     ev.provider_event_id, "type", event_names[type]);
    return 0;
}

int webhooks_rematch(op_ctx *x, store_conn *c, payment_row *p)
{
    if (!p->provider_ref) return STORE_OK;
    const char *params[] = {p->gateway, p->provider_ref, p->id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_unmatched, 3, params, &r);
    for (int i = 0; rc == STORE_OK && i < PQntuples(r); i++) {
        payd_event ev = {.struct_size = sizeof ev};
        ev.type = event_type_of(store_val(r, i, "event_type"));
        ev.payment_id = store_val(r, i, "payment_id");
        ev.provider_ref = store_val(r, i, "provider_ref");
        ev.refund_id = store_val(r, i, "refund_id");
        ev.refund_ref = store_val(r, i, "refund_ref");
        ev.amount = store_i64(r, i, "amount");
        ev.currency = store_val(r, i, "currency");
        ev.failure_code = store_val(r, i, "failure_code");
        ev.failure_message = store_val(r, i, "failure_message");
        int applied = apply_event(x, c, p, &ev);
        if (applied < 0) {
            rc = applied;
            break;
        }
        const char *mp[] = {store_val(r, i, "id"), outcome_name(applied), "matched later"};
        rc = store_query(c, &stmt_mark, 3, mp, NULL);
    }
    PQclear(r);
    return rc;
}

STORE_STMT(stmt_stale_unmatched,
           "SELECT DISTINCT p.id FROM webhook_events w JOIN payments p ON p.gateway = w.gateway"
           " AND (p.provider_ref = w.provider_ref OR p.id = w.payment_id)"
           " WHERE w.status = 'unmatched' AND w.received_at < now() - interval '5 seconds'"
           " AND w.received_at > now() - interval '1 day' LIMIT 16");

int webhooks_rematch_stale(op_ctx *x)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return -1;
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_stale_unmatched, 0, NULL, &r);
    int n = rc == STORE_OK ? PQntuples(r) : 0;
    for (int i = 0; i < n; i++) {
        payment_row p;
        rc = store_begin(c);
        if (rc == STORE_OK) rc = payment_lock(x, c, PQgetvalue(r, i, 0), &p);
        if (rc == STORE_OK) {
            rc = webhooks_rematch(x, c, &p);
            payment_row_release(&p);
        }
        if (rc == STORE_OK) rc = store_commit(c);
        else store_rollback(c);
    }
    PQclear(r);
    store_release(c);
    return n;
}
