/* audit.h - the append-only, hash-chained audit log. */
#ifndef PAYD_AUDIT_H
#define PAYD_AUDIT_H

#include <jansson.h>

#include "store.h"

struct app;

/*
 * Appends one audit row inside the caller's transaction. The database
 * trigger assigns the entity's next sequence number and chains the hash
 * under that entity's head row lock. before/after are borrowed (may be
 * NULL). Returns STORE_OK or a STORE_E_* code.
 */
int audit_write(store_conn *c, const char *entity, const char *actor, const char *action,
                const char *request_id, json_t *before, json_t *after);

/* Records a rejected authentication (own short transaction). */
void audit_auth_rejected(struct app *a, const char *remote_addr, const char *request_id,
                         const char *path, const char *why);

/*
 * Walks every entity chain, recomputing each hash. Fills *report with
 * {"ok":bool,"rows":N,"entities":N,"first_broken":{entity,seq,reason}|null}.
 * Returns STORE_OK (whatever the verdict) or a STORE_E_* code.
 */
int audit_verify(store *s, json_t **report);

#endif
