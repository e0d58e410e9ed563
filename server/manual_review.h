/* manual_review.h - manual payments: what an admin decides and the janitor expires. */
#ifndef PAYD_MANUAL_REVIEW_H
#define PAYD_MANUAL_REVIEW_H

#include <jansson.h>

#include "context.h"
#include "fault.h"

/* 1 when `gw` (may be NULL) advertises PAYD_CAP_ADMIN_SETTLES (the manual
 * module, or a third party's like it): its payments and refunds are settled
 * by people, never by polling a provider. */
int manual_review_gateway(const instance *gw);

/*
 * An admin received the money of a manual payment awaiting funds (in
 * requires_action or processing): `in` may hold amount (minor units, at most
 * the order's total; default the payment's amount) and note. The payment
 * succeeds with the received amount captured. 0 with the payment in *out,
 * or -1 with the fault: 404, 409 payment_not_manual /
 * payment_not_awaiting_funds / payment_operation_in_progress, 400 on a bad
 * amount or note.
 */
int manual_review_approve(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);
/* The money never came (or is refused): the payment fails with
 * failure_code payment_rejected. Same refusals as approve. */
int manual_review_reject(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);

/* An admin sent a pending manual refund's money back (confirm) or will not
 * (reject): the refund succeeds or fails. 0 with the refund in *out, or -1:
 * 404, 409 refund_not_manual / refund_not_pending, 400 on a bad note. */
int manual_review_refund_confirm(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);
int manual_review_refund_reject(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);

/* Janitor: cancels manual payments still awaiting funds auto_expire_days
 * (the instance's key) after they were created, by the host clock. */
void manual_review_expire(op_ctx *x);

#endif
