/*
 * refunds.c - refunds.
 *
 * The invariant: succeeded refunds plus refunds in flight never exceed the
 * captured amount, even when many refund requests for one payment race. A
 * refund therefore first RESERVES its amount (payments.amount_refund_pending)
 * in a transaction that holds the payment's row lock, and commits before the
 * provider is called; concurrent requests queue on that lock and each sees
 * the reservations before it. A CHECK constraint on payments enforces the
 * same sum again. When the provider answers, the reservation becomes
 * refunded money (a ledger row) or is released.
 *
 * Lock order, everywhere: payment row, then refund row, then order row.
 */
#include "refunds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "events.h"
#include "ids.h"
#include "janitor.h"
#include "ledger.h"
#include "list_page.h"
#include "log.h"
#include "manual_review.h"
#include "metrics.h"
#include "money.h"
#include "orders.h"
#include "params.h"

#define LEASE_S 120

#define REFUND_JSON                                                                               \
    "json_build_object('id', r.id, 'object', 'refund', 'payment_id', r.payment_id,"               \
    " 'order_id', r.order_id, 'gateway', r.gateway, 'amount', r.amount, 'currency', r.currency,"  \
    " 'status', r.status, 'reason', r.reason, 'provider_ref', r.provider_ref,"                    \
    " 'failure_code', r.failure_code, 'failure_message', r.failure_message,"                      \
    " 'outcome_unknown', r.outcome_unknown, 'created', extract(epoch FROM r.created_at)::bigint," \
    " 'updated', extract(epoch FROM r.updated_at)::bigint)::text"

STORE_STMT(stmt_insert,
           "INSERT INTO refunds AS r (id, payment_id, order_id, gateway, status, amount, currency, reason, janitor_next_at)"
           " VALUES ($1, $2, $3, $4, 'pending', $5::bigint, $6, $7, now() + make_interval(secs => $8::int))"
           " RETURNING " REFUND_JSON " AS j");
/* A refund made outside payd: pending only until refund_succeed, in the
 * same transaction. */
STORE_STMT(stmt_insert_external,
           "INSERT INTO refunds (id, payment_id, order_id, gateway, status, amount, currency, provider_ref)"
           " VALUES ($1, $2, $3, $4, 'pending', $5::bigint, $6, $7)");
STORE_STMT(stmt_lock,
           "SELECT r.id, r.payment_id, r.amount, r.status, r.provider_ref, r.reason, r.janitor_attempts,"
           " " REFUND_JSON " AS j FROM refunds r"
           " WHERE (r.id = $1 OR ($1 IS NULL AND r.provider_ref = $2 AND r.gateway = $3)) FOR UPDATE");
STORE_STMT(stmt_update,
           "UPDATE refunds r SET status = $2, provider_ref = coalesce($3, provider_ref), failure_code = $4,"
           " failure_message = $5, outcome_unknown = $6::boolean,"
           " janitor_next_at = CASE WHEN $7::int < 0 THEN NULL ELSE now() + make_interval(secs => $7::int) END,"
           " updated_at = now() WHERE id = $1 RETURNING " REFUND_JSON " AS j");
STORE_STMT(stmt_get,
           "SELECT p.user_id, " REFUND_JSON " AS j FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE r.id = $1");
STORE_STMT(stmt_list,
           "SELECT " REFUND_JSON " AS j FROM refunds r JOIN payments p ON p.id = r.payment_id"
           " WHERE ($1::text IS NULL OR r.payment_id = $1) AND ($2::text IS NULL OR r.order_id = $2)"
           " AND ($3::text IS NULL OR p.user_id = $3)"
           " AND ($5::text IS NULL OR (r.created_at, r.id) < (SELECT created_at, id FROM refunds WHERE id = $5))"
           " ORDER BY r.created_at DESC, r.id DESC LIMIT $4::int");
STORE_STMT(stmt_cursor,
           "SELECT 1 FROM refunds r JOIN payments p ON p.id = r.payment_id"
           " WHERE r.id = $1 AND ($2::text IS NULL OR p.user_id = $2)");

typedef struct refund_row {
    const char *id, *payment_id, *status, *provider_ref, *reason;
    int64_t amount;
    int janitor_attempts;
    json_t *before;
} refund_row;

static int refund_lock(op_ctx *x, store_conn *c, const char *id, const char *ref, const char *gateway,
                       refund_row *r)
{
    memset(r, 0, sizeof *r);
    const char *params[] = {id, ref, gateway};
    PGresult *res = NULL;
    int rc = store_query(c, &stmt_lock, 3, params, &res);
    if (rc != STORE_OK) return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return 1;
    }
    r->id = arena_strdup(x->arena, store_val(res, 0, "id"));
    r->payment_id = arena_strdup(x->arena, store_val(res, 0, "payment_id"));
    r->status = arena_strdup(x->arena, store_val(res, 0, "status"));
    const char *pr = store_val(res, 0, "provider_ref");
    r->provider_ref = pr ? arena_strdup(x->arena, pr) : NULL;
    const char *reason = store_val(res, 0, "reason");
    r->reason = reason ? arena_strdup(x->arena, reason) : NULL;
    r->amount = store_i64(res, 0, "amount");
    r->janitor_attempts = (int)store_i64(res, 0, "janitor_attempts");
    r->before = json_loads(store_val(res, 0, "j"), 0, NULL);
    PQclear(res);
    return STORE_OK;
}

/* Writes the refund's new state with its audit row; *json gets the text. */
static int refund_save(op_ctx *x, store_conn *c, refund_row *r, const char *status, const char *ref,
                       const char *fcode, const char *fmsg, int unknown, int delay_s,
                       const char *action, const char **json)
{
    char delay[12];
    snprintf(delay, sizeof delay, "%d", delay_s);
    const char *params[] = {r->id, status, ref, fcode, fmsg, unknown ? "true" : "false", delay};
    PGresult *res = NULL;
    int rc = store_query(c, &stmt_update, 7, params, &res);
    if (rc != STORE_OK) return rc;
    const char *text = store_val(res, 0, "j");
    json_t *after = json_loads(text, 0, NULL);
    char entity[64];
    snprintf(entity, sizeof entity, "refund:%s", r->id);
    rc = audit_write(c, entity, op_actor(x), action, x->request_id, r->before, after);
    json_decref(after);
    if (json) *json = arena_strdup(x->arena, text);
    PQclear(res);
    return rc;
}

/* The reservation becomes refunded money: refund, payment, ledger, order,
 * event, all in the caller's transaction. */
static int refund_succeed(op_ctx *x, store_conn *c, payment_row *p, refund_row *r, const char *ref,
                          const char **json)
{
    const char *repr = NULL;
    int rc = refund_save(x, c, r, "succeeded", ref, NULL, NULL, 0, -1, "refund.succeeded", &repr);
    if (rc != STORE_OK) return rc;
    p->amount_refund_pending -= r->amount;
    if (p->amount_refund_pending < 0) p->amount_refund_pending = 0;
    p->amount_refunded += r->amount;
    const char *target = p->amount_refunded >= p->amount_captured ? "refunded" : "partially_refunded";
    if (strcmp(p->status, target) != 0 && payment_transition_allowed(p->status, target)) p->status = target;
    rc = payment_save(x, c, p, "payment.refunded", NULL);
    if (rc == STORE_OK)
        rc = ledger_append(c, "refund", p->id, r->id, p->order_id, p->gateway, r->amount, p->currency,
                           x->request_id);
    if (rc == STORE_OK) rc = orders_refunded(x, c, p->order_id, r->amount);
    if (rc == STORE_OK)
        rc = events_emit(c, x->a->mods, "refund.succeeded", "refund", r->id, p->order_id, p->user_id, repr,
                         x->request_id);
    if (json) *json = repr;
    return rc;
}

/* The reservation is released. */
static int refund_fail(op_ctx *x, store_conn *c, payment_row *p, refund_row *r, const char *ref,
                       const char *code, const char *message, const char **json)
{
    const char *repr = NULL;
    int rc = refund_save(x, c, r, "failed", ref, code ? code : "refund_failed",
                         message ? message : "the refund failed", 0, -1, "refund.failed", &repr);
    if (rc != STORE_OK) return rc;
    p->amount_refund_pending -= r->amount;
    if (p->amount_refund_pending < 0) p->amount_refund_pending = 0;
    rc = payment_save(x, c, p, "payment.refund_released", NULL);
    if (rc == STORE_OK)
        rc = events_emit(c, x->a->mods, "refund.failed", "refund", r->id, p->order_id, p->user_id, repr,
                         x->request_id);
    if (json) *json = repr;
    return rc;
}

/*
 * The provider says a refund payd holds as failed succeeded. Refund news
 * arrives out of order (Stripe's webhooks are unordered, and there a
 * failed refund is final), so this may be an old "succeeded" overtaken by
 * the failure, or money that really left: payd cannot tell without asking,
 * and asking is a provider call it must not make under these locks. It
 * books nothing and flags the payment needs_review, with a
 * payment.needs_review event and an audit row naming the refund, for a
 * person to check at the provider. Runs in the caller's transaction with
 * the payment and refund rows locked. Returns APPLY_STALE or a STORE_E_*
 * code.
 */
static int refund_contradicted(op_ctx *x, store_conn *c, payment_row *p, const refund_row *r)
{
    log_warn("refunds", "refund %s is failed in payd, but the provider reports it succeeded: payment %s needs review",
             r->id, p->id);
    return payment_flag_review(x, c, p, "refund.success_after_failure_needs_review");
}

static int refund_call(op_ctx *x, instance *gw, const payment_row *p, const refund_row *r,
                       payd_refund_res *res, payd_error *e)
{
    char key[96];
    snprintf(key, sizeof key, "payd-%s-refund-1", r->id);
    payd_refund_req req = {.struct_size = sizeof req, .refund_id = r->id, .payment_id = p->id,
                           .idempotency_key = key, .provider_ref = p->provider_ref,
                           .refund_ref = r->provider_ref, .amount = r->amount, .currency = p->currency,
                           .currency_exponent = money_exponent(p->currency), .reason = r->reason};
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    memset(e, 0, sizeof *e);
    int use_retrieve = r->provider_ref && gw->gw.refund_retrieve;
    int (*fn)(PAYD_OP_ARGS(payd_refund_req, payd_refund_res)) = use_retrieve ? gw->gw.refund_retrieve : gw->gw.refund;
    if (!fn) {
        snprintf(e->message, sizeof e->message, "gateway %s cannot refund", gw->name);
        return PAYD_E_UNSUPPORTED;
    }
    int rc = fn(gw->state, &req, res, x->arena, e);
    if (rc > 0) rc = PAYD_E_INTERNAL;
    e->message[sizeof e->message - 1] = '\0';
    e->failure_code[sizeof e->failure_code - 1] = '\0';
    if (rc == PAYD_E_TRANSIENT) metrics_count(METRIC_PROVIDER_TRANSIENT);
    return rc;
}

/* Step 3 of a refund: apply the module's answer under the locks. */
static int refund_settle(op_ctx *x, instance *gw, const char *payment_id, const char *refund_id,
                         int mrc, const payd_refund_res *res, const payd_error *e, json_t **out,
                         int *status, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    payment_row p = {0};
    refund_row r = {0};
    const char *repr = NULL;
    int result = 0;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = payment_lock(x, c, payment_id, &p);
    if (rc == STORE_OK) rc = refund_lock(x, c, refund_id, NULL, NULL, &r);
    *status = 200;
    if (rc == STORE_OK && strcmp(r.status, "pending") != 0) {
        /* Settled meanwhile (a webhook was faster). An answer of success
         * for a refund payd holds as failed is flagged for review. */
        if (!strcmp(r.status, "failed") && mrc == 0 && res->status == PAYD_RS_SUCCEEDED) {
            int flagged = refund_contradicted(x, c, &p, &r);
            if (flagged < 0) rc = flagged;
        }
        char *text = json_dumps(r.before, JSON_COMPACT);
        repr = arena_strdup(x->arena, text);
        free(text);
    } else if (rc == STORE_OK && mrc == 0 && res->status == PAYD_RS_SUCCEEDED) {
        rc = refund_succeed(x, c, &p, &r, res->refund_ref, &repr);
    } else if (rc == STORE_OK && mrc == 0 && res->status == PAYD_RS_PENDING) {
        /* A manual refund waits for an admin to confirm it: nothing to poll. */
        rc = refund_save(x, c, &r, "pending", res->refund_ref, NULL, NULL, 0,
                         manual_review_gateway(gw) ? -1 : janitor_backoff_s(x->a, r.janitor_attempts),
                         "refund.pending", &repr);
        *status = 202;
    } else if (rc == STORE_OK && (mrc == 0 || mrc == PAYD_E_DECLINED)) {
        const char *code = mrc ? (e->failure_code[0] ? e->failure_code : "refund_declined") : res->failure_code;
        const char *msg = mrc ? e->message : res->failure_message;
        rc = refund_fail(x, c, &p, &r, mrc ? NULL : res->refund_ref, code, msg, &repr);
        if (mrc) result = fault_set(f, 402, "card_error", arena_strdup(x->arena, code ? code : "refund_declined"),
                                    NULL, "%s", msg && *msg ? msg : "the refund was declined");
    } else if (rc == STORE_OK && (mrc == PAYD_E_TRANSIENT || mrc == PAYD_E_INTERNAL || mrc == PAYD_E_NOMEM)) {
        /* The call may have reached the provider: the outcome is unknown,
         * and the reservation stays until the janitor learns it. */
        rc = refund_save(x, c, &r, "pending", NULL, NULL, NULL, 1, janitor_backoff_s(x->a, r.janitor_attempts),
                         "refund.outcome_unknown", &repr);
        *status = 202;
    } else if (rc == STORE_OK) {
        rc = refund_fail(x, c, &p, &r, NULL, "gateway_rejected", e->message, &repr);
        result = fault_set(f, mrc == PAYD_E_INVALID || mrc == PAYD_E_UNSUPPORTED ? 400 : 502,
                           mrc == PAYD_E_INVALID || mrc == PAYD_E_UNSUPPORTED ? "invalid_request_error" : "api_error",
                           mrc == PAYD_E_AUTH ? "gateway_auth_failed" : "gateway_rejected", NULL, "%s: %s",
                           gw->name, e->message[0] ? e->message : "the gateway refused the refund");
    }
    if (rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    payment_row_release(&p);
    json_decref(r.before);
    if (rc != STORE_OK) return fault_store(f, rc);
    *out = repr ? json_loads(repr, 0, NULL) : NULL;
    return result;
}

int refunds_create(op_ctx *x, json_t *in, json_t **out, int *status, fault *f)
{
    *out = NULL;
    if (!in) return fault_invalid(f, "parameter_missing", "payment", "a JSON body with a payment is required");
    static const char *const allowed[] = {"payment", "amount", "reason", NULL};
    if (params_only(in, allowed, f)) return -1;
    json_t *jp = json_object_get(in, "payment");
    json_t *ja = json_object_get(in, "amount");
    json_t *jr = json_object_get(in, "reason");
    if (!json_is_string(jp) || json_string_length(jp) == 0 || json_string_length(jp) > 64)
        return fault_invalid(f, "parameter_missing", "payment", "payment (a payment id) is required");
    if (ja && (!json_is_integer(ja) || json_integer_value(ja) <= 0))
        return fault_invalid(f, "amount_invalid", "amount", "amount must be a positive integer in minor units");
    const char *reason = NULL;
    if (jr && !json_is_null(jr)) {
        reason = json_string_value(jr);
        if (!reason || (strcmp(reason, "duplicate") && strcmp(reason, "fraudulent") &&
                        strcmp(reason, "requested_by_customer")))
            return fault_invalid(f, "parameter_invalid", "reason",
                                 "reason must be duplicate, fraudulent or requested_by_customer");
    }
    const char *payment_id = json_string_value(jp);

    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    payment_row p = {0};
    instance *gw = NULL;
    int refused = 0;
    char rid[IDS_MAX];
    ids_new("re", rid);
    int64_t amount = 0;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = payment_lock(x, c, payment_id, &p);
    const char *scope = op_user_scope(x);
    if (rc == 1 || (rc == STORE_OK && scope && (!p.user_id || strcmp(p.user_id, scope) != 0))) {
        refused = fault_not_found(f, "payment", payment_id);
    } else if (rc == STORE_OK) {
        gw = modules_gateway(x->a->mods, p.gateway);
        int64_t available = p.amount_captured - p.amount_refunded - p.amount_refund_pending;
        amount = ja ? json_integer_value(ja) : available;
        if (!strcmp(p.status, "refunded"))
            refused = fault_invalid(f, "amount_too_large", "amount", "the payment is already fully refunded");
        else if (strcmp(p.status, "succeeded") && strcmp(p.status, "partially_refunded"))
            refused = fault_set(f, 409, "invalid_request_error", "payment_not_refundable", "payment",
                                "a payment in status %s cannot be refunded", p.status);
        else if (!gw || !(gw->mod->caps & (PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND)))
            refused = fault_invalid(f, "not_supported", "payment", "gateway %s cannot refund", p.gateway);
        else if (available <= 0)
            refused = fault_invalid(f, "amount_too_large", "amount",
                                    "nothing left to refund: %lld captured, %lld refunded, %lld pending",
                                    (long long)p.amount_captured, (long long)p.amount_refunded,
                                    (long long)p.amount_refund_pending);
        else if (amount > available)
            refused = fault_invalid(f, "amount_too_large", "amount",
                                    "amount %lld exceeds the %lld still refundable", (long long)amount,
                                    (long long)available);
        else if (amount < available && !(gw->mod->caps & PAYD_CAP_PARTIAL_REFUND) && p.amount_refunded + amount != p.amount_captured)
            refused = fault_invalid(f, "not_supported", "amount", "gateway %s cannot refund partially", p.gateway);
    }
    PGresult *ins = NULL;
    if (!refused && rc == STORE_OK) {
        char amt[24], lease[12];
        snprintf(amt, sizeof amt, "%lld", (long long)amount);
        snprintf(lease, sizeof lease, "%d", LEASE_S);
        const char *params[] = {rid, p.id, p.order_id, p.gateway, amt, p.currency, reason, lease};
        rc = store_query(c, &stmt_insert, 8, params, &ins);
        if (rc == STORE_OK) {
            p.amount_refund_pending += amount;
            rc = payment_save(x, c, &p, "payment.refund_reserved", NULL);
        }
        if (rc == STORE_OK) {
            json_t *after = json_loads(store_val(ins, 0, "j"), 0, NULL);
            char entity[64];
            snprintf(entity, sizeof entity, "refund:%s", rid);
            rc = audit_write(c, entity, op_actor(x), "refund.created", x->request_id, NULL, after);
            json_decref(after);
        }
    }
    PQclear(ins);
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (refused || rc != STORE_OK) {
        payment_row_release(&p);
        if (rc == STORE_E_CHECK && !refused)
            return fault_invalid(f, "amount_too_large", "amount", "the refund exceeds the refundable amount");
        return refused ? -1 : fault_store(f, rc);
    }

    refund_row r = {.id = rid, .payment_id = p.id, .amount = amount, .reason = reason};
    payd_refund_res res;
    payd_error e;
    int mrc = refund_call(x, gw, &p, &r, &res, &e);
    payment_row_release(&p);
    int result = refund_settle(x, gw, payment_id, rid, mrc, &res, &e, out, status, f);
    if (result == 0 && *status == 200) *status = 201;
    return result;
}

int refunds_get(op_ctx *x, const char *id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    const char *params[] = {id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_get, 1, params, &r);
    store_release(c);
    if (rc != STORE_OK) return fault_store(f, rc);
    const char *scope = op_user_scope(x);
    const char *owner = PQntuples(r) == 1 ? store_val(r, 0, "user_id") : NULL;
    int found = PQntuples(r) == 1 && (!scope || (owner && strcmp(owner, scope) == 0));
    if (found) *out = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return found ? 0 : fault_not_found(f, "refund", id);
}

int refunds_list(op_ctx *x, const char *payment_id, const char *order_id, const char *starting_after, int limit,
                 json_t **out, fault *f)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {payment_id, order_id, op_user_scope(x), lim, starting_after};
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = starting_after ? list_page_cursor(c, &stmt_cursor, starting_after, op_user_scope(x), "refund", f) : 0;
    if (rc == 0) rc = list_page_query(c, &stmt_list, 5, params, limit, out, f);
    store_release(c);
    return rc;
}

int refunds_resolve(op_ctx *x, const char *id)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return STORE_E_UNAVAILABLE;
    refund_row r;
    payment_row p = {0};
    int rc = refund_lock(x, c, id, NULL, NULL, &r);
    if (rc == STORE_OK) rc = payment_lock(x, c, r.payment_id, &p);
    store_release(c);
    if (rc != STORE_OK) {
        json_decref(r.before);
        return rc;
    }
    instance *gw = modules_gateway(x->a->mods, p.gateway);
    int pending = strcmp(r.status, "pending") == 0;
    json_decref(r.before);
    if (!gw || !pending) {
        payment_row_release(&p);
        return STORE_OK;
    }
    payd_refund_res res;
    payd_error e;
    int mrc = refund_call(x, gw, &p, &r, &res, &e);
    payment_row_release(&p);
    json_t *out = NULL;
    int status = 0;
    fault f;
    refund_settle(x, gw, r.payment_id, id, mrc, &res, &e, &out, &status, &f);
    if (out && status != 202) metrics_count(METRIC_JANITOR_RESOLVED);
    json_decref(out);
    return STORE_OK;
}

/*
 * A refund made outside payd, in the provider's dashboard say: the provider
 * reports a refund payd never created and that carries no payd refund id.
 * The money has left, so payd books it as it books its own: a refund row
 * (provider_ref = the provider's id), the payment's refunded amount and
 * status, a ledger row, the order, audit and a refund.succeeded event, in
 * the caller's transaction under the payment lock.
 *
 * Not while one of payd's own refunds of the payment is pending: from a
 * module that does not hand back payd's refund id, that refund's news would
 * look external. Nor before the payment has captured money (its news may
 * still be on the way). Both answer APPLY_UNKNOWN: the event stays
 * unmatched and the janitor applies it again later. What payd cannot book
 * (no amount, another currency, more than is left, a payment failed,
 * refunded or disputed) flags the payment needs_review instead.
 */
static int refund_external(op_ctx *x, store_conn *c, payment_row *p, const char *ref, int64_t amount,
                           const char *currency)
{
    int refundable = !strcmp(p->status, "succeeded") || !strcmp(p->status, "partially_refunded");
    int closed = !strcmp(p->status, "refunded") || !strcmp(p->status, "disputed") || !strcmp(p->status, "failed") ||
                 !strcmp(p->status, "canceled");
    if (p->amount_refund_pending > 0 || (!refundable && !closed)) return APPLY_UNKNOWN;
    if (!refundable || amount <= 0 || !currency || strcasecmp(currency, p->currency) != 0 ||
        amount > p->amount_captured - p->amount_refunded) {
        log_warn("refunds", "payment %s: the provider reports a refund %s made outside payd that payd cannot book"
                 " (%lld %s; payment %s, %lld captured, %lld refunded): needs review",
                 p->id, ref, (long long)amount, currency ? currency : "?", p->status, (long long)p->amount_captured,
                 (long long)p->amount_refunded);
        return payment_flag_review(x, c, p, "refund.external_unbookable_needs_review");
    }
    char rid[IDS_MAX], amt[24];
    ids_new("re", rid);
    snprintf(amt, sizeof amt, "%lld", (long long)amount);
    const char *params[] = {rid, p->id, p->order_id, p->gateway, amt, p->currency, ref};
    int rc = store_query(c, &stmt_insert_external, 7, params, NULL);
    if (rc != STORE_OK) return rc;
    refund_row r = {.id = rid, .payment_id = p->id, .status = "pending", .amount = amount};
    p->amount_refund_pending += amount; /* refund_succeed moves it to refunded */
    rc = refund_succeed(x, c, p, &r, ref, NULL);
    if (rc == STORE_OK)
        log_info("refunds", "payment %s: refund %s (%lld %s) was made at the provider as %s; booked", p->id, rid,
                 (long long)amount, p->currency, ref);
    return rc < 0 ? rc : APPLY_APPLIED;
}

int refunds_apply_outcome(op_ctx *x, store_conn *c, payment_row *p, const char *refund_id,
                          const char *refund_ref, int succeeded, const char *failure_code,
                          const char *failure_message, int from_provider, int64_t amount, const char *currency)
{
    refund_row r;
    int rc = refund_lock(x, c, refund_id, refund_id ? NULL : refund_ref, p->gateway, &r);
    if (rc == 1 && succeeded && from_provider && !refund_id && refund_ref)
        return refund_external(x, c, p, refund_ref, amount, currency);
    if (rc == 1) return APPLY_UNKNOWN;
    if (rc != STORE_OK) return rc;
    if (succeeded && from_provider && strcmp(r.payment_id, p->id) == 0 && strcmp(r.status, "failed") == 0) {
        rc = refund_contradicted(x, c, p, &r);
        json_decref(r.before);
        return rc;
    }
    if (strcmp(r.payment_id, p->id) != 0 || strcmp(r.status, "pending") != 0) {
        json_decref(r.before);
        return strcmp(r.status, succeeded ? "succeeded" : "failed") == 0 ? APPLY_NOOP : APPLY_STALE;
    }
    rc = succeeded ? refund_succeed(x, c, p, &r, refund_ref, NULL)
                   : refund_fail(x, c, p, &r, refund_ref, failure_code, failure_message, NULL);
    json_decref(r.before);
    return rc < 0 ? rc : APPLY_APPLIED;
}
