/* audit.h - the append-only, hash-chained audit log. */
#ifndef PAYD_AUDIT_H
#define PAYD_AUDIT_H

#include <jansson.h>

#include "fault.h"
#include "store.h"

struct app;

/*
 * Appends one audit row inside the caller's transaction (sent with its
 * COMMIT; see store_defer). The database
 * trigger assigns the entity's next sequence number and chains the hash
 * under that entity's head row lock. before/after are borrowed (may be
 * NULL). Returns STORE_OK or a STORE_E_* code.
 */
int audit_write(store_conn *c, const char *entity, const char *actor, const char *action,
                const char *request_id, json_t *before, json_t *after);

/* Records a rejected authentication (own short transaction). */
void audit_auth_rejected(struct app *a, const char *remote_addr, const char *request_id,
                         const char *path, const char *why);

/* Seals finished transactions' audit rows into the checkpoint chain.
 * Returns rows sealed (0 when nothing new or another sealer is busy). */
long audit_seal(struct app *a);

/*
 * Walks every entity chain, recomputing each hash. Fills *report with
 * {"ok":bool,"rows":N,"entities":N,"checkpoints":N,"unsealed_rows":N,
 *  "first_broken":{entity,seq,reason}|null}; checkpoint breaks name entity
 * "checkpoint" and the checkpoint id as seq.
 * Returns STORE_OK (whatever the verdict) or a STORE_E_* code.
 */
int audit_verify(store *s, json_t **report);

/* A page of audit rows, newest first, optionally of one entity, below the
 * row number `starting_after` (digits; NULL: from the newest). */
int audit_list(store *s, const char *entity, const char *starting_after, int limit, json_t **out, fault *f);

#endif
