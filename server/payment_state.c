/*
 * payment_state.c - the payment state machine.
 *
 *   requires_payment_method -> requires_confirmation -> requires_action ->
 *   processing -> requires_capture -> succeeded -> partially_refunded ->
 *   refunded, with failed and canceled as ends and disputed after success.
 *
 * Every change goes through payment_apply_view() or payment_save() while
 * the caller holds the payment's row lock inside a transaction; both write
 * the audit row, and apply_view also writes ledger rows, the order's new
 * state and the normalized events, so a state change is all-or-nothing.
 * Transitions only move forward: the same table is enforced again by a
 * trigger in the database. Late or duplicated provider news that would move
 * a payment backwards is reported as APPLY_STALE and changes nothing.
 */
#include "payment_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cardguard.h"
#include "events.h"
#include "janitor.h"
#include "ledger.h"
#include "log.h"
#include "manual_review.h"
#include "orders.h"


STORE_STMT(stmt_lock,
           "SELECT p.*, o.number AS order_number, o.customer_email, " PAYMENT_JSON " AS j"
           " FROM payments p JOIN orders o ON o.id = p.order_id WHERE p.id = $1 FOR UPDATE OF p");
STORE_STMT(stmt_save,
           "UPDATE payments p SET status = $2, provider_ref = $3, amount_capturable = $4::bigint,"
           " amount_captured = $5::bigint, amount_refunded = $6::bigint, amount_refund_pending = $7::bigint,"
           " amount_disputed = $8::bigint, payment_method = $9, return_url = $10, client_secret = $11,"
           " next_action = $12::jsonb, failure_code = $13, failure_message = $14, outcome_unknown = $15::boolean,"
           " pending_op = $16, op_attempt = $17::int, janitor_attempts = $18::int,"
           " janitor_next_at = CASE WHEN $19::int < 0 THEN NULL ELSE now() + make_interval(secs => $19::int) END,"
           " needs_review = $20::boolean, pending_amount = $21::bigint, pending_confirm = $22::boolean,"
           " saved_method_id = $23, customer_ref = $24, customer_id = $25,"
           " updated_at = now()"
           " WHERE id = $1 RETURNING " PAYMENT_JSON " AS j");

static const char *const allowed_moves[][2] = {
    {"requires_payment_method", "requires_confirmation"}, {"requires_payment_method", "requires_action"},
    {"requires_payment_method", "processing"},            {"requires_payment_method", "requires_capture"},
    {"requires_payment_method", "succeeded"},             {"requires_payment_method", "failed"},
    {"requires_payment_method", "canceled"},              {"requires_confirmation", "requires_action"},
    {"requires_confirmation", "processing"},              {"requires_confirmation", "requires_capture"},
    {"requires_confirmation", "succeeded"},               {"requires_confirmation", "failed"},
    {"requires_confirmation", "canceled"},                {"requires_action", "processing"},
    {"requires_action", "requires_capture"},              {"requires_action", "succeeded"},
    {"requires_action", "failed"},                        {"requires_action", "canceled"},
    {"processing", "requires_action"},                    {"processing", "requires_capture"},
    {"processing", "succeeded"},                          {"processing", "failed"},
    {"processing", "canceled"},                           {"requires_capture", "processing"},
    {"requires_capture", "succeeded"},                    {"requires_capture", "canceled"},
    {"requires_capture", "failed"},                       {"succeeded", "partially_refunded"},
    {"succeeded", "refunded"},                            {"succeeded", "disputed"},
    {"partially_refunded", "refunded"},                   {"partially_refunded", "disputed"},
    {"refunded", "disputed"},
    /* failed/canceled -> succeeded/requires_capture only via late_success() */
};

int payment_transition_allowed(const char *from, const char *to)
{
    for (size_t i = 0; i < sizeof allowed_moves / sizeof allowed_moves[0]; i++)
        if (strcmp(allowed_moves[i][0], from) == 0 && strcmp(allowed_moves[i][1], to) == 0) return 1;
    return 0;
}

int payment_status_is_settled(const char *s)
{
    return !strcmp(s, "succeeded") || !strcmp(s, "partially_refunded") || !strcmp(s, "refunded") ||
           !strcmp(s, "disputed");
}

static const char *col(op_ctx *x, const PGresult *r, const char *name)
{
    const char *v = store_val(r, 0, name);
    return v ? arena_strdup(x->arena, v) : NULL;
}

int payment_lock(op_ctx *x, store_conn *c, const char *id, payment_row *p)
{
    memset(p, 0, sizeof *p);
    const char *params[] = {id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_lock, 1, params, &r);
    if (rc != STORE_OK) return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 1;
    }
    p->id = col(x, r, "id");
    p->order_id = col(x, r, "order_id");
    p->user_id = col(x, r, "user_id");
    p->gateway = col(x, r, "gateway");
    p->provider_ref = col(x, r, "provider_ref");
    p->status = col(x, r, "status");
    p->currency = col(x, r, "currency");
    p->capture_method = col(x, r, "capture_method");
    p->payment_method = col(x, r, "payment_method");
    p->saved_method_id = col(x, r, "saved_method_id");
    p->customer_id = col(x, r, "customer_id");
    p->return_url = col(x, r, "return_url");
    p->client_secret = col(x, r, "client_secret");
    p->customer_ref = col(x, r, "customer_ref");
    p->description = col(x, r, "description");
    p->statement_descriptor_suffix = col(x, r, "statement_descriptor_suffix");
    p->order_number = col(x, r, "order_number");
    p->customer_email = col(x, r, "customer_email");
    p->pending_confirm = strcmp(store_val(r, 0, "pending_confirm"), "t") == 0;
    p->next_action = col(x, r, "next_action");
    p->failure_code = col(x, r, "failure_code");
    p->failure_message = col(x, r, "failure_message");
    p->pending_op = col(x, r, "pending_op");
    p->amount = store_i64(r, 0, "amount");
    p->amount_capturable = store_i64(r, 0, "amount_capturable");
    p->amount_captured = store_i64(r, 0, "amount_captured");
    p->amount_refunded = store_i64(r, 0, "amount_refunded");
    p->amount_refund_pending = store_i64(r, 0, "amount_refund_pending");
    p->amount_disputed = store_i64(r, 0, "amount_disputed");
    p->pending_amount = store_i64(r, 0, "pending_amount");
    p->op_attempt = (int)store_i64(r, 0, "op_attempt");
    p->janitor_attempts = (int)store_i64(r, 0, "janitor_attempts");
    p->outcome_unknown = strcmp(store_val(r, 0, "outcome_unknown"), "t") == 0;
    p->needs_review = strcmp(store_val(r, 0, "needs_review"), "t") == 0;
    p->janitor_delay_s = -1;
    p->before = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return STORE_OK;
}

void payment_row_release(payment_row *p)
{
    json_decref(p->before);
    p->before = NULL;
}

int payment_save(op_ctx *x, store_conn *c, payment_row *p, const char *action, const char **json)
{
    char amounts[6][24], attempt[12], jattempts[12], delay[12];
    int64_t vals[6] = {p->amount_capturable, p->amount_captured, p->amount_refunded,
                       p->amount_refund_pending, p->amount_disputed, p->pending_amount};
    for (int i = 0; i < 6; i++) snprintf(amounts[i], sizeof amounts[i], "%lld", (long long)vals[i]);
    snprintf(attempt, sizeof attempt, "%d", p->op_attempt);
    snprintf(jattempts, sizeof jattempts, "%d", p->janitor_attempts);
    snprintf(delay, sizeof delay, "%d", p->janitor_delay_s);
    const char *params[] = {p->id, p->status, p->provider_ref, amounts[0], amounts[1], amounts[2],
                            amounts[3], amounts[4], p->payment_method, p->return_url,
                            p->client_secret, p->next_action, p->failure_code, p->failure_message,
                            p->outcome_unknown ? "true" : "false", p->pending_op, attempt, jattempts,
                            delay, p->needs_review ? "true" : "false",
                            p->pending_op ? amounts[5] : NULL,
                            p->pending_op && p->pending_confirm ? "true" : "false",
                            p->saved_method_id, p->customer_ref, p->customer_id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_save, 25, params, &r);
    if (rc != STORE_OK) return rc;
    const char *text = store_val(r, 0, "j");
    json_t *after = json_loads(text, 0, NULL);
    if (after && p->provider_request_id)
        json_object_set_new(after, "provider_request_id", json_string(p->provider_request_id));
    /* The module redacts its raw answer; payd still refuses to store one
     * that holds anything card-like. */
    if (after && p->provider_raw && !cardguard_text_has_pan(p->provider_raw, strlen(p->provider_raw), 0)) {
        json_t *raw = json_loads(p->provider_raw, JSON_REJECT_DUPLICATES, NULL);
        if (raw) json_object_set_new(after, "provider_raw", raw);
    }
    char entity[64];
    snprintf(entity, sizeof entity, "payment:%s", p->id);
    rc = audit_write(c, entity, op_actor(x), action, x->request_id, p->before, after);
    json_decref(after);
    if (json) *json = arena_strdup(x->arena, text);
    PQclear(r);
    return rc;
}

static const char *status_name(int s)
{
    return payd_payment_status_name(s);
}

static char *next_action_json(op_ctx *x, const payment_view *v)
{
    json_t *na = NULL;
    switch (v->next_action) {
    case PAYD_NA_REDIRECT_URL:
        na = json_pack("{s:s, s:s?}", "type", "redirect_url", "url", v->next_action_url);
        break;
    case PAYD_NA_DISPLAY_INSTRUCTIONS:
        na = json_pack("{s:s, s:s?}", "type", "display_instructions", "text", v->next_action_text);
        break;
    case PAYD_NA_USE_SDK:
        na = json_pack("{s:s, s:s?}", "type", "use_sdk", "client_secret", v->client_secret);
        break;
    default:
        return NULL;
    }
    char *text = json_dumps(na, JSON_COMPACT);
    json_decref(na);
    char *out = arena_strdup(x->arena, text);
    free(text);
    return out;
}

STORE_STMT(stmt_order_taken,
           "SELECT coalesce(EXISTS (SELECT 1 FROM payments WHERE order_id = $1 AND id <> $2"
           "  AND status NOT IN ('failed', 'canceled'))"
           " OR (SELECT status FROM orders WHERE id = $1) NOT IN ('pending', 'payment_pending'), true) AS taken");

/*
 * The provider says a payment payd had given up on (failed, canceled) took
 * money after all: a buyer who finished 3-D Secure late, a retry in the
 * provider's own SDK. The money is real, so the news is applied when the
 * order is still open and has no other live payment (the database trigger
 * allows exactly these moves). Otherwise the buyer may have paid twice, or
 * for a cancelled order: the payment is
 * flagged needs_review with a payment.needs_review event for a human to
 * refund, and nothing else moves. Sets *moving; returns APPLY_APPLIED to go
 * on, APPLY_STALE when the news is not money, or a STORE_E_* code.
 */
static int late_success(op_ctx *x, store_conn *c, payment_row *p, const payment_view *v, int *moving)
{
    int money = v->status == PAYD_PS_SUCCEEDED || v->status == PAYD_PS_REQUIRES_CAPTURE;
    int given_up = !strcmp(p->status, "failed") || !strcmp(p->status, "canceled");
    if (!money || !given_up) return APPLY_STALE;
    const char *params[] = {p->order_id, p->id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_order_taken, 2, params, &r);
    if (rc != STORE_OK) return rc;
    int taken = strcmp(store_val(r, 0, "taken"), "t") == 0;
    PQclear(r);
    if (!taken) {
        *moving = 1;
        return APPLY_APPLIED;
    }
    log_warn("payments", "payment %s: the provider reports money after payd gave up, and order %s is paid or closed: needs review",
             p->id, p->order_id);
    return payment_flag_review(x, c, p, "payment.late_success_needs_review");
}

int payment_flag_review(op_ctx *x, store_conn *c, payment_row *p, const char *action)
{
    if (p->needs_review) return APPLY_STALE;
    p->needs_review = 1;
    const char *repr = NULL;
    int rc = payment_save(x, c, p, action, &repr);
    if (rc == STORE_OK)
        rc = events_emit(c, x->a->mods, "payment.needs_review", "payment", p->id, p->order_id, p->user_id, repr,
                         x->request_id);
    return rc < 0 ? rc : APPLY_STALE;
}

int payment_apply_view(op_ctx *x, store_conn *c, payment_row *p, const payment_view *v,
                       const char *action, const char **json)
{
    const char *target = status_name(v->status);
    const char *from = p->status;
    int moving = strcmp(from, target) != 0;
    if (moving && !payment_transition_allowed(from, target)) {
        int rc = late_success(x, c, p, v, &moving);
        if (rc != APPLY_APPLIED) return rc;
    }
    int settles = v->answers_op && (p->pending_op || p->outcome_unknown);
    if (!moving && !(v->provider_ref && !p->provider_ref) && !settles) {
        /* Same status again: only news about more captured money counts. */
        int more_captured = v->status == PAYD_PS_SUCCEEDED && v->has_amounts &&
                            v->amount_captured > p->amount_captured && v->amount_captured <= p->amount;
        if (!more_captured) return APPLY_NOOP;
    }

    if (v->provider_ref && !p->provider_ref) p->provider_ref = arena_strdup(x->arena, v->provider_ref);
    if (v->client_secret) p->client_secret = arena_strdup(x->arena, v->client_secret);
    p->status = target;
    /* A pending operation ends with its own answer, or when the payment
     * moves on; news that repeats the status (a late capturable webhook
     * during a capture) leaves the operation waiting for its answer. */
    if (settles || moving) {
        p->pending_op = NULL;
        p->outcome_unknown = 0;
    }
    /* A provider still processing is polled as a safety net for a lost
     * webhook; an operation still waiting keeps its janitor lease. A
     * gateway settled by admins (PAYD_CAP_ADMIN_SETTLES, as for refunds in
     * refunds.c) has no provider to poll: its payment waits for money and
     * a person. Instructions for the buyer (a bank transfer on its way)
     * stay on show while processing. */
    int admin_settles = manual_review_gateway(modules_gateway(x->a->mods, p->gateway));
    int awaits_buyer = v->status == PAYD_PS_PROCESSING && v->next_action == PAYD_NA_DISPLAY_INSTRUCTIONS;
    if (v->status == PAYD_PS_PROCESSING && !admin_settles)
        p->janitor_delay_s = janitor_backoff_s(x->a, p->janitor_attempts);
    else if (!p->pending_op && !p->outcome_unknown) p->janitor_delay_s = -1;
    p->next_action = v->status == PAYD_PS_REQUIRES_ACTION || awaits_buyer ? next_action_json(x, v) : NULL;
    if (v->status == PAYD_PS_FAILED) {
        p->failure_code = arena_strdup(x->arena, v->failure_code ? v->failure_code : "processing_error");
        p->failure_message = arena_strdup(x->arena, v->failure_message ? v->failure_message : "the payment failed");
    }

    /* Money actually moved: the provider's captured amount, capped at what
     * was authorized. Only the increase is new money. */
    int64_t captured = p->amount_captured;
    if (v->status == PAYD_PS_SUCCEEDED) {
        captured = v->has_amounts && v->amount_captured > 0 ? v->amount_captured : p->amount;
        if (captured > p->amount) captured = p->amount;
        if (captured < p->amount_captured) captured = p->amount_captured;
        p->amount_capturable = 0; /* a partial capture releases the rest */
    } else if (v->status == PAYD_PS_REQUIRES_CAPTURE) {
        p->amount_capturable = v->has_amounts && v->amount_capturable > 0 ? v->amount_capturable : p->amount;
    } else if (v->status == PAYD_PS_CANCELED || v->status == PAYD_PS_FAILED) {
        p->amount_capturable = 0;
    }
    int64_t delta = captured - p->amount_captured;
    p->amount_captured = captured;

    const char *repr = NULL;
    int rc = payment_save(x, c, p, action, &repr);
    if (json) *json = repr;
    if (rc == STORE_OK && delta > 0)
        rc = ledger_append(c, strcmp(p->capture_method, "manual") == 0 ? "capture" : "charge", p->id,
                           NULL, p->order_id, p->gateway, delta, p->currency, x->request_id);
    if (rc == STORE_OK && !moving && delta > 0 && payment_status_is_settled(from))
        rc = orders_payment_more_captured(x, c, p->order_id, delta); /* ledger and order agree */
    if (rc != STORE_OK || !moving) return rc < 0 ? rc : APPLY_APPLIED;

    const char *event = NULL;
    switch (v->status) {
    case PAYD_PS_SUCCEEDED:
        rc = orders_payment_succeeded(x, c, p->order_id, captured);
        event = "payment.succeeded";
        break;
    case PAYD_PS_FAILED:
        rc = orders_payment_released(x, c, p->order_id);
        event = "payment.failed";
        break;
    case PAYD_PS_CANCELED:
        rc = orders_payment_released(x, c, p->order_id);
        event = "payment.canceled";
        break;
    case PAYD_PS_REQUIRES_ACTION: event = "payment.requires_action"; break;
    case PAYD_PS_REQUIRES_CAPTURE: event = "payment.requires_capture"; break;
    default: break;
    }
    if (rc == STORE_OK && event)
        rc = events_emit(c, x->a->mods, event, "payment", p->id, p->order_id, p->user_id, repr,
                         x->request_id);
    return rc < 0 ? rc : APPLY_APPLIED;
}
