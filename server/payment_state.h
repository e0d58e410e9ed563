/* payment_state.h - the payment row and its forward-only state machine. */
#ifndef PAYD_PAYMENT_STATE_H
#define PAYD_PAYMENT_STATE_H

#include <jansson.h>
#include <stdint.h>

#include "context.h"
#include "payd/module.h"
#include "store.h"

/* A payment as loaded under its row lock. Strings live in the op arena. */
typedef struct payment_row {
    const char *id, *order_id, *user_id, *gateway, *provider_ref, *status, *currency;
    const char *capture_method, *payment_method, *return_url, *client_secret, *customer_ref;
    const char *saved_method_id; /* payd's pm_ id when paid with a saved method; payment_method
                                    then holds its provider token, never shown */
    const char *customer_id;     /* payd's customer, when known */
    const char *next_action;  /* JSON text or NULL */
    const char *failure_code, *failure_message, *pending_op;
    int64_t amount, amount_capturable, amount_captured, amount_refunded;
    int64_t amount_refund_pending, amount_disputed;
    int64_t pending_amount;   /* the amount the pending operation asked for (capture) */
    int pending_confirm;      /* the pending create asked to confirm too */
    const char *description, *statement_descriptor_suffix;
    const char *order_number, *customer_email; /* from the order, for the provider */
    int op_attempt, janitor_attempts, outcome_unknown, needs_review;
    int janitor_delay_s;      /* -1 = none; set to schedule the janitor */
    const char *provider_request_id; /* the provider's request id, kept in the audit row */
    const char *provider_raw;        /* the provider's redacted answer (JSON), kept there too */
    json_t *before;           /* representation when loaded (owned) */
} payment_row;

/* What a provider (or a webhook) says about a payment. */
typedef struct payment_view {
    int status;                 /* PAYD_PS_* */
    const char *provider_ref;
    const char *client_secret;
    int next_action;
    const char *next_action_url, *next_action_text;
    const char *failure_code, *failure_message;
    int64_t amount_capturable, amount_captured;
    int has_amounts;
    int answers_op;           /* the answer to the payment's pending operation
                                 (not news from a webhook): it settles that op */
} payment_view;

/* SQL expression for a payment's JSON representation (alias p). */
#define PAYMENT_JSON                                                                                   \
    "json_build_object('id', p.id, 'object', 'payment', 'order_id', p.order_id, 'gateway', p.gateway,"  \
    " 'status', p.status, 'amount', p.amount, 'currency', p.currency,"                                  \
    " 'amount_capturable', p.amount_capturable, 'amount_captured', p.amount_captured,"                  \
    " 'amount_refunded', p.amount_refunded, 'capture_method', p.capture_method,"                        \
    " 'payment_method', coalesce(p.saved_method_id, p.payment_method), 'provider_ref', p.provider_ref,"  \
    " 'client_secret', p.client_secret, 'next_action', p.next_action, 'return_url', p.return_url,"      \
    " 'failure_code', p.failure_code, 'failure_message', p.failure_message,"                            \
    " 'outcome_unknown', p.outcome_unknown, 'needs_review', p.needs_review,"                            \
    " 'created', extract(epoch FROM p.created_at)::bigint,"                                             \
    " 'updated', extract(epoch FROM p.updated_at)::bigint)::text"


/* Loads and locks (FOR UPDATE) a payment. 0, 1 when not found, or STORE_E_*. */
int payment_lock(op_ctx *x, store_conn *c, const char *id, payment_row *p);
/* Writes every mutable field back, with an audit row. *json gets the new
 * representation text (arena), if json != NULL. */
int payment_save(op_ctx *x, store_conn *c, payment_row *p, const char *action, const char **json);

/* Money news payd cannot book: flags the payment needs_review (audited as
 * `action`) with a payment.needs_review event, in the caller's transaction
 * under the payment lock; a payment already flagged is left as it is.
 * Returns APPLY_STALE or a STORE_E_* code. */
int payment_flag_review(op_ctx *x, store_conn *c, payment_row *p, const char *action);
void payment_row_release(payment_row *p);

/* 1 when `from` may move to `to` (mirrors the database trigger). */
int payment_transition_allowed(const char *from, const char *to);
/* 1 for succeeded, partially_refunded, refunded, disputed. */
int payment_status_is_settled(const char *status);

/* Outcome of applying a view. */
enum { APPLY_APPLIED = 0, APPLY_STALE = 1, APPLY_NOOP = 2, APPLY_UNKNOWN = 3 /* no such object */ };

/*
 * Applies a provider's view to a locked payment: status, amounts, ledger
 * rows for newly captured money, the order's state, audit, events, and the
 * save. A view that would move the payment backwards is not applied
 * (APPLY_STALE). Returns APPLY_* >= 0, or a STORE_E_* code.
 */
int payment_apply_view(op_ctx *x, store_conn *c, payment_row *p, const payment_view *v,
                       const char *action, const char **json);

#endif
