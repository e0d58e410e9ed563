/* refunds.h - full, partial and repeated refunds, never more than captured. */
#ifndef PAYD_REFUNDS_H
#define PAYD_REFUNDS_H

#include <jansson.h>

#include "context.h"
#include "fault.h"
#include "payment_state.h"

int refunds_create(op_ctx *x, json_t *in, json_t **out, int *status, fault *f);
int refunds_get(op_ctx *x, const char *id, json_t **out, fault *f);
/* A page of refunds, newest first, filtered by payment and/or order, after
 * `starting_after` (a refund id the caller can see). */
int refunds_list(op_ctx *x, const char *payment_id, const char *order_id, const char *starting_after, int limit,
                 json_t **out, fault *f);
/* Janitor. */
int refunds_resolve(op_ctx *x, const char *id);

/*
 * Webhooks and admin decisions: a refund succeeded or failed. Locks the
 * payment (already locked by the caller: pass it) and the refund found by
 * payd id or provider ref. With `from_provider` (a webhook), a success
 * for a refund payd holds as failed flags the payment needs_review
 * (APPLY_STALE), and a success for a refund payd never made (no payd
 * refund id, an unknown provider ref: made in the provider's dashboard)
 * is booked for `amount` of `currency` (APPLY_APPLIED), or waits
 * (APPLY_UNKNOWN) while a refund of payd's is pending, or flags the
 * payment when it cannot be booked; an admin's decision passes 0 (and no
 * amount) and only ever settles a pending refund.
 * Returns APPLY_* (APPLY_UNKNOWN when payd does not know the refund) or a
 * STORE_E_* code.
 */
int refunds_apply_outcome(op_ctx *x, store_conn *c, payment_row *p, const char *refund_id,
                          const char *refund_ref, int succeeded, const char *failure_code,
                          const char *failure_message, int from_provider, int64_t amount, const char *currency);

#endif
