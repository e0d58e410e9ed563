/*
 * payment_review.c - the needs_review queue's way out.
 *
 * payd flags a payment needs_review when it cannot decide alone: the
 * provider took money after payd gave the payment up and the order was
 * settled meanwhile (payment_state.c), the janitor ran out of attempts on an
 * unknown outcome (payments.c), or the provider called a refund succeeded
 * that payd holds as failed (refunds.c). A person then checks at the
 * provider and acts there (refunds the double charge, ...). This file lets
 * them record that the case is closed: the flag is cleared in one
 * transaction under the payment's row lock, with the admin's key and note in
 * the payment's audit chain and a payment.review_resolved event. Nothing
 * about money changes here; money moves only through the provider paths.
 *
 * It also owns what every admin decision on a payment shares (here and in
 * manual_review.c): the checked request body and the record of the decision
 * that rides in the payment's audit row.
 *
 * Called on CivetWeb worker threads and the background scheduler thread;
 * all state is per call.
 */
#include "payment_review.h"

#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "events.h"
#include "log.h"
#include "params.h"
#include "payment_state.h"

int payment_review_body(json_t *in, int with_amount, int note_required, int64_t *amount, const char **note,
                        fault *f)
{
    *amount = 0;
    *note = NULL;
    static const char *const with[] = {"note", "amount", NULL};
    static const char *const without[] = {"note", NULL};
    if (params_only(in, with_amount ? with : without, f)) return -1;
    json_t *ja = in ? json_object_get(in, "amount") : NULL;
    json_t *jn = in ? json_object_get(in, "note") : NULL;
    if (ja && (!json_is_integer(ja) || json_integer_value(ja) <= 0))
        return fault_invalid(f, "amount_invalid", "amount", "amount must be a positive integer in minor units");
    if (note_required && !jn)
        return fault_invalid(f, "parameter_missing", "note", "note (how the case was resolved) is required");
    if (jn && (note_required || !json_is_null(jn)) &&
        (!json_is_string(jn) || json_string_length(jn) == 0 || json_string_length(jn) > PAYMENT_REVIEW_NOTE_MAX))
        return fault_invalid(f, "parameter_invalid", "note", "note must be a string of 1 to %d characters",
                             PAYMENT_REVIEW_NOTE_MAX);
    if (ja) *amount = json_integer_value(ja);
    if (jn && json_is_string(jn)) *note = json_string_value(jn);
    return 0;
}

const char *payment_review_decision(op_ctx *x, const char *decision, int64_t amount, const char *note)
{
    json_t *d = json_pack("{s:s, s:s}", "decision", decision, "by", op_actor(x));
    if (!d) return NULL;
    if (amount > 0) json_object_set_new(d, "amount_received", json_integer(amount));
    if (note) json_object_set_new(d, "note", json_string(note));
    char *text = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    const char *out = text ? arena_strdup(x->arena, text) : NULL;
    free(text);
    return out;
}

int payment_review_resolve(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f)
{
    *out = NULL;
    int64_t unused;
    const char *note = NULL;
    /* The note is required: a closed case says how it was closed. */
    if (payment_review_body(in, 0, 1, &unused, &note, f)) return -1;

    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    payment_row p = {0};
    int refused = 0;
    const char *repr = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = payment_lock(x, c, id, &p);
    if (rc == 1) refused = fault_not_found(f, "payment", id);
    else if (rc == STORE_OK && !p.needs_review)
        refused = fault_set(f, 409, "invalid_request_error", "payment_not_flagged", NULL,
                            "payment %s is not flagged needs_review", id);
    if (!refused && rc == STORE_OK) {
        p.needs_review = 0;
        p.provider_raw = payment_review_decision(x, "review_resolved", 0, note);
        rc = payment_save(x, c, &p, "payment.review_resolved", &repr);
    }
    if (!refused && rc == STORE_OK)
        rc = events_emit(c, x->a->mods, "payment.review_resolved", "payment", p.id, p.order_id, p.user_id, repr,
                         x->request_id);
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    payment_row_release(&p);
    if (refused) return -1;
    if (rc != STORE_OK) return fault_store(f, rc);
    log_info("payments", "payment %s: review resolved by %s", id, op_actor(x));
    *out = repr ? json_loads(repr, 0, NULL) : NULL;
    return 0;
}
