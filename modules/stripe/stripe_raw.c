/*
 * modules/stripe/stripe_raw.c - the provider object as kept in the audit.
 *
 * The core stores `raw` next to each state change. A Stripe object is safe
 * to keep once these are gone:
 *   client_secret    lets whoever holds it confirm the PaymentIntent;
 *   use_stripe_sdk   3-D Secure SDK parameters (keys, server urls);
 *   secret           any member of that name, on principle.
 * Card data in Stripe objects is display data only (brand, last4, expiry,
 * fingerprint), never a number. Objects bigger than STRIPE_RAW_MAX are
 * replaced by a summary (id, object, status) so one audit row stays small.
 *
 * Thread-safe: works on a copy of the caller's object.
 */
#include "stripe.h"

#include <stdlib.h>
#include <string.h>

#define STRIPE_RAW_DEPTH 32

static int stripe_raw_secret_key(const char *key)
{
    return strcmp(key, "client_secret") == 0 ||
           strcmp(key, "use_stripe_sdk") == 0 || strcmp(key, "secret") == 0;
}

/* Remove secret members from `v` in place, `depth` levels down at most
 * (deeper members are dropped whole: Stripe objects are shallower). */
static void stripe_raw_strip(json_t *v, int depth)
{
    const char *key;
    json_t *member;
    void *tmp;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach_safe(v, tmp, key, member) {
            if (stripe_raw_secret_key(key) || depth <= 0)
                json_object_del(v, key);
            else
                stripe_raw_strip(member, depth - 1);
        }
    } else if (json_is_array(v)) {
        if (depth <= 0) {
            json_array_clear(v);
            return;
        }
        json_array_foreach(v, i, member)
            stripe_raw_strip(member, depth - 1);
    }
}

const char *stripe_raw_redacted(const payd_host *h, payd_arena *a,
                                json_t *obj)
{
    json_t *copy = json_deep_copy(obj);
    const char *out = NULL;
    char *text;

    if (copy == NULL)
        return NULL;
    stripe_raw_strip(copy, STRIPE_RAW_DEPTH);
    text = json_dumps(copy, JSON_COMPACT);
    if (text != NULL && strlen(text) > STRIPE_RAW_MAX) {
        json_t *sum = json_pack("{s:s?, s:s?, s:s?, s:b}", "id",
                                stripe_jstr(copy, "id"), "object",
                                stripe_jstr(copy, "object"), "status",
                                stripe_jstr(copy, "status"), "truncated", 1);

        free(text);
        text = sum != NULL ? json_dumps(sum, JSON_COMPACT) : NULL;
        json_decref(sum);
    }
    json_decref(copy);
    if (text != NULL) {
        out = h->strdup(a, text);
        free(text);
    }
    return out;
}
