/* events.h - the normalized event stream and its outbox rows. */
#ifndef PAYD_EVENTS_H
#define PAYD_EVENTS_H

#include <jansson.h>

#include "fault.h"
#include "modules.h"
#include "store.h"

/*
 * Records event `type` about an object, inside the caller's transaction,
 * with one outbox row per notifier subscribed to the type. `object_json` is
 * the object's JSON representation as text (borrowed). The write is sent
 * with the transaction's COMMIT (store_defer). STORE_OK or error.
 */
int events_emit(store_conn *c, const registry *mods, const char *type, const char *object_type,
                const char *object_id, const char *order_id, const char *user_id,
                const char *object_json, const char *request_id);

/* GET /v1/events: filters type, object_id; cursor starting_after (evt id). */
int events_list(store *db, const char *type, const char *object_id, const char *starting_after,
                int limit, json_t **out, fault *f);

#endif
