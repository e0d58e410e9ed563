/* payment_review.h - closing a payment flagged needs_review. */
#ifndef PAYD_PAYMENT_REVIEW_H
#define PAYD_PAYMENT_REVIEW_H

#include <jansson.h>

#include "context.h"
#include "fault.h"

#include <stdint.h>

/* The longest note an admin may attach to a decision. */
#define PAYMENT_REVIEW_NOTE_MAX 500

/*
 * Checks the body of an admin decision on a payment or refund (`in` may be
 * NULL): only "note" (and "amount" when `with_amount`) are allowed; amount
 * is a positive integer in minor units (*amount 0 when absent); note is a
 * string of 1..PAYMENT_REVIEW_NOTE_MAX (borrowed from `in` into *note,
 * NULL when absent or null unless `note_required`, which makes it a 400).
 * 0, or -1 with a 400 fault naming the parameter.
 */
int payment_review_body(json_t *in, int with_amount, int note_required, int64_t *amount, const char **note,
                        fault *f);

/*
 * The decision as compact JSON text for the payment's audit row, where a
 * provider's raw answer would ride: {"decision", "by" (the admin's key),
 * "amount_received" when amount > 0, "note" when set}. Allocated in
 * x->arena; NULL when out of memory.
 */
const char *payment_review_decision(op_ctx *x, const char *decision, int64_t amount, const char *note);

/*
 * POST /v1/admin/payments/{id}/resolve_review {"note": "..."}: clears the
 * payment's needs_review flag, audited with the admin's key and the note,
 * and emits payment.review_resolved, in one transaction. 404 for an
 * unknown payment, 409 payment_not_flagged when it is not flagged, 400
 * without a note. *out is the payment (caller owns it).
 */
int payment_review_resolve(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);

#endif
