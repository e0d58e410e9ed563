/* payments.h - payment operations: create, confirm, capture, cancel. */
#ifndef PAYD_PAYMENTS_H
#define PAYD_PAYMENTS_H

#include <jansson.h>

#include "context.h"
#include "fault.h"

/*
 * Each operation answers with the payment's representation in *out and the
 * HTTP status in *status (201 created, 200, or 202 when the provider's
 * answer was lost and the outcome is unknown). On -1 the fault says why; a
 * decline is a 402 fault and *out still holds the (failed) payment.
 */
int payments_create(op_ctx *x, json_t *in, const char *raw_method, json_t **out, int *status, fault *f);
int payments_confirm(op_ctx *x, const char *id, json_t *in, const char *raw_method, json_t **out,
                     int *status, fault *f);
int payments_capture(op_ctx *x, const char *id, json_t *in, json_t **out, int *status, fault *f);
int payments_cancel(op_ctx *x, const char *id, json_t *in, json_t **out, int *status, fault *f);
int payments_get(op_ctx *x, const char *id, json_t **out, fault *f);
/* needs_review: NULL, "true" (the review queue) or "false"; else 400. */
int payments_list(op_ctx *x, const char *order_id, const char *needs_review, const char *starting_after, int limit,
                  json_t **out, fault *f);

/* Janitor: re-issue a lost operation with its original key, or retrieve. */
int payments_resolve(op_ctx *x, const char *id);

#endif
