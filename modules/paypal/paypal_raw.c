/*
 * modules/paypal/paypal_raw.c - the provider object as kept in the audit.
 *
 * The core stores `raw` next to each state change. PayPal objects hold no
 * secrets (no client secret, no card number), but orders carry the
 * buyer's personal data, which the audit has no use for:
 *   payer            name, email, payer id, address, phone
 *   payment_source   the wallet's email, account id, name, address
 *   shipping         the delivery name and address
 * Those members are removed at any depth; ids, statuses, amounts and
 * links stay. Objects bigger than PAYPAL_RAW_MAX become a summary (id,
 * status) so one audit row stays small.
 *
 * Thread-safe: works on a copy of the caller's object.
 */
#include "paypal.h"

#include <stdlib.h>
#include <string.h>

#define PAYPAL_RAW_DEPTH 32

static int paypal_raw_private_key(const char *key)
{
    return strcmp(key, "payer") == 0 || strcmp(key, "payment_source") == 0 ||
           strcmp(key, "shipping") == 0 || strcmp(key, "access_token") == 0;
}

/* Remove private members from `v` in place, `depth` levels down at most
 * (deeper members are dropped whole). */
static void paypal_raw_strip(json_t *v, int depth)
{
    const char *key;
    json_t *member;
    void *tmp;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach_safe(v, tmp, key, member) {
            if (paypal_raw_private_key(key) || depth <= 0)
                json_object_del(v, key);
            else
                paypal_raw_strip(member, depth - 1);
        }
    } else if (json_is_array(v)) {
        if (depth <= 0) {
            json_array_clear(v);
            return;
        }
        json_array_foreach(v, i, member)
            paypal_raw_strip(member, depth - 1);
    }
}

const char *paypal_raw_redacted(const payd_host *h, payd_arena *a,
                                json_t *obj)
{
    json_t *copy = obj != NULL ? json_deep_copy(obj) : json_object();
    const char *out = NULL;
    char *text;

    if (copy == NULL)
        return NULL;
    paypal_raw_strip(copy, PAYPAL_RAW_DEPTH);
    text = json_dumps(copy, JSON_COMPACT);
    if (text != NULL && strlen(text) > PAYPAL_RAW_MAX) {
        json_t *sum = json_pack("{s:s?, s:s?, s:b}", "id",
                                paypal_jstr(copy, "id"), "status",
                                paypal_jstr(copy, "status"), "truncated", 1);

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
