/* ledger.h - append-only money movements. */
#ifndef PAYD_LEDGER_H
#define PAYD_LEDGER_H

#include <jansson.h>
#include <stdint.h>

#include "fault.h"
#include "store.h"

/* Appends one movement inside the caller's transaction (sent with its
 * COMMIT; see store_defer). */
int ledger_append(store_conn *c, const char *entry_type, const char *payment_id,
                  const char *refund_id, const char *order_id, const char *gateway, int64_t amount,
                  const char *currency, const char *request_id);

typedef struct ledger_filter {
    const char *payment_id, *order_id, *entry_type, *currency, *gateway;
    const char *starting_after; /* ledger id */
    int limit;
} ledger_filter;

/* GET /v1/admin/transactions. */
int ledger_list(store *db, const ledger_filter *flt, json_t **out, fault *f);

#endif
