/*
 * manual_review.c - manual payments (bank transfer, cash on delivery,
 * cheque): the decisions only a person can make.
 *
 * The manual module gives the buyer instructions and a reference; no
 * provider will ever say the money arrived. An admin does, here: approve
 * (the money came, perhaps less than asked), reject (it did not), and
 * confirm or reject a manual refund once the money went back or will not.
 * The janitor cancels payments still awaiting funds after the instance's
 * auto_expire_days.
 *
 * Each decision is one transaction under the payment's row lock, through
 * the same state machine every provider answer goes through
 * (payment_apply_view, refunds_apply_outcome): state, ledger, order, audit
 * (actor: the admin's key), events and outbox commit together or not at
 * all. The lock makes concurrent decisions on one payment queue: the first
 * wins, the next finds the payment no longer awaiting funds (409).
 *
 * Called on CivetWeb worker threads (the admin API) and on the background
 * scheduler thread (expiry); all state is per call.
 */
#include "manual_review.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "host.h"
#include "log.h"
#include "orders.h"
#include "payment_review.h"
#include "payment_state.h"
#include "refunds.h"

#define EXPIRE_BATCH "16"

int manual_review_gateway(const instance *gw)
{
    return gw && gw->mod && (gw->mod->caps & PAYD_CAP_ADMIN_SETTLES);
}

static int awaiting_funds(const char *status)
{
    return !strcmp(status, "requires_action") || !strcmp(status, "processing");
}

/* Refusals common to approve and reject, on the locked payment. */
static int payment_reviewable(op_ctx *x, const payment_row *p, fault *f)
{
    if (!manual_review_gateway(modules_gateway(x->a->mods, p->gateway)))
        return fault_set(f, 409, "invalid_request_error", "payment_not_manual", NULL,
                         "payment %s is on gateway %s, which is not a manual gateway: its provider settles it",
                         p->id, p->gateway);
    if (p->pending_op)
        return fault_set(f, 409, "invalid_request_error", "payment_operation_in_progress", NULL,
                         "a %s of this payment is still in progress", p->pending_op);
    if (!awaiting_funds(p->status))
        return fault_set(f, 409, "invalid_request_error", "payment_not_awaiting_funds", NULL,
                         "a payment in status %s is not awaiting funds", p->status);
    return 0;
}

/* The received amount: at most the order's total and the payment's
 * amount (they agree unless the order changed); 0 means all of it. */
static int approve_amount(store_conn *c, const payment_row *p, int64_t *amount, int *refused, fault *f)
{
    order_row o;
    int rc = orders_lock(c, p->order_id, &o);
    if (rc == 1) rc = STORE_E_QUERY; /* a payment's order always exists */
    if (rc != STORE_OK) return rc;
    if (*amount > o.total)
        *refused = fault_invalid(f, "amount_too_large", "amount", "amount %lld exceeds the order's total of %lld",
                                 (long long)*amount, (long long)o.total);
    else if (*amount > p->amount)
        *refused = fault_invalid(f, "amount_too_large", "amount", "amount %lld exceeds the payment's amount of %lld",
                                 (long long)*amount, (long long)p->amount);
    else if (*amount == 0)
        *amount = p->amount;
    orders_row_release(&o);
    return STORE_OK;
}

/*
 * Approve or reject under the payment's row lock (lock order: payment,
 * then order, as everywhere). A received amount below the payment's is a
 * partial receipt: it is captured like a partial capture, the order is
 * paid with amount_paid = what came, and the shortfall shows as total -
 * amount_paid for the merchant to chase or accept.
 */
static int review_payment(op_ctx *x, const char *id, int approve, json_t *in, json_t **out, fault *f)
{
    *out = NULL;
    int64_t amount;
    const char *note;
    if (payment_review_body(in, approve, 0, &amount, &note, f)) return -1;

    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    payment_row p = {0};
    int refused = 0;
    const char *repr = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = payment_lock(x, c, id, &p);
    if (rc == 1) refused = fault_not_found(f, "payment", id);
    else if (rc == STORE_OK) refused = payment_reviewable(x, &p, f);
    if (!refused && rc == STORE_OK && approve) rc = approve_amount(c, &p, &amount, &refused, f);
    if (!refused && rc == STORE_OK) {
        payment_view v = {.answers_op = 1};
        if (approve) {
            v.status = PAYD_PS_SUCCEEDED;
            v.has_amounts = 1;
            v.amount_captured = amount;
        } else {
            v.status = PAYD_PS_FAILED;
            v.failure_code = "payment_rejected";
            v.failure_message = "the payment was rejected: the funds were not received";
        }
        p.provider_raw = payment_review_decision(x, approve ? "approved" : "rejected", approve ? amount : 0, note);
        int applied = payment_apply_view(x, c, &p, &v, approve ? "payment.manual_approved" : "payment.manual_rejected",
                                         &repr);
        rc = applied < 0 ? applied : STORE_OK;
    }
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    payment_row_release(&p);
    if (refused) return -1;
    if (rc != STORE_OK) return fault_store(f, rc);
    if (approve)
        log_info("manual", "payment %s approved by %s: %lld received", id, op_actor(x), (long long)amount);
    else
        log_info("manual", "payment %s rejected by %s", id, op_actor(x));
    *out = repr ? json_loads(repr, 0, NULL) : NULL;
    return 0;
}

int manual_review_approve(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f)
{
    return review_payment(x, id, 1, in, out, f);
}

int manual_review_reject(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f)
{
    return review_payment(x, id, 0, in, out, f);
}

STORE_STMT(stmt_refund_of, "SELECT payment_id, status FROM refunds WHERE id = $1");

/*
 * Confirm or reject a pending manual refund. The payment is locked first
 * (the lock order refunds.c keeps), then refunds_apply_outcome moves the
 * reservation into refunded money with its ledger row, or releases it.
 */
static int review_refund(op_ctx *x, const char *id, int confirm, json_t *in, json_t **out, fault *f)
{
    *out = NULL;
    int64_t unused;
    const char *note;
    if (payment_review_body(in, 0, 0, &unused, &note, f)) return -1;

    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    payment_row p = {0};
    int refused = 0;
    const char *params[] = {id};
    PGresult *r = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = store_query(c, &stmt_refund_of, 1, params, &r);
    if (rc == STORE_OK && PQntuples(r) != 1) refused = fault_not_found(f, "refund", id);
    if (!refused && rc == STORE_OK) rc = payment_lock(x, c, store_val(r, 0, "payment_id"), &p);
    if (rc == 1) rc = STORE_E_QUERY; /* a refund's payment always exists */
    if (!refused && rc == STORE_OK && !manual_review_gateway(modules_gateway(x->a->mods, p.gateway)))
        refused = fault_set(f, 409, "invalid_request_error", "refund_not_manual", NULL,
                            "refund %s is on gateway %s, which is not a manual gateway: its provider settles it", id,
                            p.gateway);
    if (!refused && rc == STORE_OK) {
        int applied = refunds_apply_outcome(x, c, &p, id, NULL, confirm, confirm ? NULL : "refund_rejected",
                                            confirm ? NULL : "the refund was rejected by an admin", 0, 0, NULL);
        if (applied == APPLY_UNKNOWN) refused = fault_not_found(f, "refund", id);
        else if (applied == APPLY_NOOP || applied == APPLY_STALE)
            refused = fault_set(f, 409, "invalid_request_error", "refund_not_pending", NULL,
                                "refund %s is not pending (it was settled before)", id);
        else if (applied < 0) rc = applied;
    }
    if (!refused && rc == STORE_OK && note) {
        /* The note beside the decision, on the refund's own chain. */
        char entity[64];
        snprintf(entity, sizeof entity, "refund:%s", id);
        json_t *after = json_pack("{s:s, s:s}", "decision", confirm ? "confirmed" : "rejected", "note", note);
        rc = audit_write(c, entity, op_actor(x), confirm ? "refund.manual_confirmed" : "refund.manual_rejected",
                         x->request_id, NULL, after);
        json_decref(after);
    }
    PQclear(r);
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    payment_row_release(&p);
    if (refused) return -1;
    if (rc != STORE_OK) return fault_store(f, rc);
    log_info("manual", "refund %s %s by %s", id, confirm ? "confirmed" : "rejected", op_actor(x));
    return refunds_get(x, id, out, f);
}

int manual_review_refund_confirm(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f)
{
    return review_refund(x, id, 1, in, out, f);
}

int manual_review_refund_reject(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f)
{
    return review_refund(x, id, 0, in, out, f);
}

STORE_STMT(stmt_expire_due,
           "SELECT id FROM payments WHERE gateway = $1 AND status IN ('requires_action', 'processing')"
           " AND pending_op IS NULL AND created_at <= to_timestamp($2::bigint) - make_interval(days => $3::int)"
           " ORDER BY created_at LIMIT " EXPIRE_BATCH);

/* Cancels one payment if it is still awaiting funds under its lock. */
static int expire_one(op_ctx *x, const char *id)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return STORE_E_UNAVAILABLE;
    payment_row p = {0};
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = payment_lock(x, c, id, &p);
    int expired = 0;
    if (rc == STORE_OK && awaiting_funds(p.status) && !p.pending_op) {
        payment_view v = {.status = PAYD_PS_CANCELED, .answers_op = 1};
        p.provider_raw = payment_review_decision(x, "expired", 0, NULL);
        int applied = payment_apply_view(x, c, &p, &v, "payment.expired", NULL);
        rc = applied < 0 ? applied : STORE_OK;
        expired = applied == APPLY_APPLIED;
    }
    if (rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    payment_row_release(&p);
    if (expired) log_info("manual", "payment %s expired unpaid", id);
    return rc == 1 ? STORE_OK : rc;
}

/*
 * The clock is the host's (tests shift it with POST /v1/test/clock); the
 * age is measured from payments.created_at. Bounded: at most EXPIRE_BATCH
 * payments per instance per pass; the next pass takes the rest.
 */
void manual_review_expire(op_ctx *x)
{
    registry *mods = x->a->mods;
    for (size_t i = 0; i < mods->gateway_count && !atomic_load(&x->a->stopping); i++) {
        instance *gw = mods->gateways[i];
        if (!manual_review_gateway(gw)) continue;
        /* The module checked the key at init (0..365). */
        const char *days = gw->host.config_get(&gw->cfg, "auto_expire_days");
        if (!days || atoi(days) <= 0) continue;
        char now[24];
        snprintf(now, sizeof now, "%lld", (long long)(host_now_ms() / 1000));
        const char *params[] = {gw->name, now, days};
        store_conn *c = store_acquire(x->a->db);
        if (!c) return;
        PGresult *r = NULL;
        int rc = store_query(c, &stmt_expire_due, 3, params, &r);
        store_release(c);
        if (rc != STORE_OK) return;
        for (int k = 0; k < PQntuples(r); k++) {
            rc = expire_one(x, PQgetvalue(r, k, 0));
            if (rc != STORE_OK) log_warn("manual", "expiring payment %s failed (%d)", PQgetvalue(r, k, 0), rc);
        }
        PQclear(r);
    }
}
