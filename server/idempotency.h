/* idempotency.h - Idempotency-Key handling with Stripe's contract. */
#ifndef PAYD_IDEMPOTENCY_H
#define PAYD_IDEMPOTENCY_H

#include <stdint.h>

struct app;
struct http_req;

typedef struct idempotency_slot {
    int active;
    const char *key;
    const char *scope;
} idempotency_slot;

enum { IDEMPOTENCY_PROCEED = 0, IDEMPOTENCY_ANSWERED = 1 };

/* Before the handler: claims the key, or sets the reply (replay, 400, 409)
 * and returns IDEMPOTENCY_ANSWERED. */
int idempotency_begin(struct app *a, struct http_req *r, idempotency_slot *slot);
/* After the handler: stores the response, or releases the key when the
 * request failed validation. */
void idempotency_finish(struct app *a, struct http_req *r, idempotency_slot *slot);
/* Deletes expired keys; returns how many (janitor). */
long idempotency_purge(struct app *a);

#endif
