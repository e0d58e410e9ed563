/* payment_review.h - closing a payment flagged needs_review. */
#ifndef PAYD_PAYMENT_REVIEW_H
#define PAYD_PAYMENT_REVIEW_H

#include <jansson.h>

#include "context.h"
#include "fault.h"

/*
 * POST /v1/admin/payments/{id}/resolve_review {"note": "..."}: clears the
 * payment's needs_review flag, audited with the admin's key and the note,
 * and emits payment.review_resolved, in one transaction. 404 for an
 * unknown payment, 409 payment_not_flagged when it is not flagged, 400
 * without a note. *out is the payment (caller owns it).
 */
int payment_review_resolve(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);

#endif
