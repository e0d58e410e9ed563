/* webhooks.h - provider webhooks in: verify, dedup, apply. */
#ifndef PAYD_WEBHOOKS_H
#define PAYD_WEBHOOKS_H

#include <jansson.h>

#include "context.h"
#include "fault.h"
#include "payment_state.h"

/*
 * Handles POST /v1/webhooks/{gateway}: the module verifies the raw request
 * and normalizes it; then one transaction stores it (deduplicated on the
 * gateway and provider event id) and applies it through the state machine.
 * On 0, *out says what happened ({"received":true,"status":...}).
 */
int webhooks_receive(op_ctx *x, const char *gateway, const payd_header *headers, size_t header_count,
                     const char *body, size_t body_len, json_t **out, fault *f);

/* Applies events that arrived before their payment was known, once the
 * payment has its provider ref. Inside the caller's transaction. */
int webhooks_rematch(op_ctx *x, store_conn *c, payment_row *p);

/* Janitor: matches events left unmatched for a few seconds whose payment is
 * known by now (a webhook and the synchronous answer can pass each other
 * under READ COMMITTED). Returns how many payments it looked at. */
int webhooks_rematch_stale(op_ctx *x);

#endif
