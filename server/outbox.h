/* outbox.h - delivering events to notifier modules, at least once. */
#ifndef PAYD_OUTBOX_H
#define PAYD_OUTBOX_H

#include <jansson.h>

#include "app.h"
#include "context.h"
#include "fault.h"

/*
 * Claims up to a batch of due deliveries (FOR UPDATE SKIP LOCKED, with a
 * lease) and hands each to its notifier. Returns how many were attempted,
 * or -1 when the database is unavailable. Safe to run from several threads
 * and several processes at once: a delivery is claimed by one of them.
 */
int outbox_dispatch(app *a);

/* GET /v1/admin/outbox?state=pending|dead|delivered. */
int outbox_list(op_ctx *x, const char *state, const char *starting_after, int limit, json_t **out,
                fault *f);
/* POST /v1/admin/outbox/{id}/replay: requeue one delivery now. */
int outbox_replay(op_ctx *x, const char *id, json_t **out, fault *f);

#endif
