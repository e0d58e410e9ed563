/*
 * ledger.c - the money ledger.
 *
 * Each movement (charge, capture, refund, chargeback, fee) is one
 * append-only row written in the same transaction as the state change that
 * caused it; database triggers refuse UPDATE and DELETE. For every payment,
 * sum(charge + capture) equals amount_captured and sum(refund) equals
 * amount_refunded: tests reconcile the two after concurrent refunds.
 */
#include "ledger.h"

#include <stdio.h>
#include <string.h>

#include "list_page.h"

STORE_STMT(stmt_append,
           "INSERT INTO ledger (entry_type, payment_id, refund_id, order_id, gateway, amount, currency, request_id)"
           " VALUES ($1, $2, $3, $4, $5, $6::bigint, $7, $8)");

int ledger_append(store_conn *c, const char *entry_type, const char *payment_id,
                  const char *refund_id, const char *order_id, const char *gateway, int64_t amount,
                  const char *currency, const char *request_id)
{
    char amt[24];
    snprintf(amt, sizeof amt, "%lld", (long long)amount);
    const char *params[] = {entry_type, payment_id, refund_id, order_id, gateway, amt, currency,
                            request_id};
    return store_defer(c, &stmt_append, 8, params);
}

STORE_STMT(stmt_list,
           "SELECT json_build_object('id', 'txn_' || id, 'object', 'transaction', 'type', entry_type,"
           " 'payment_id', payment_id, 'refund_id', refund_id, 'order_id', order_id, 'gateway', gateway,"
           " 'amount', amount, 'currency', currency, 'request_id', request_id,"
           " 'created', extract(epoch FROM created_at)::bigint)::text AS j"
           " FROM ledger WHERE ($1::text IS NULL OR payment_id = $1) AND ($2::text IS NULL OR order_id = $2)"
           " AND ($3::text IS NULL OR entry_type = $3) AND ($4::text IS NULL OR currency = $4)"
           " AND ($5::text IS NULL OR gateway = $5)"
           " AND ($6::bigint IS NULL OR id < $6::bigint)"
           " ORDER BY id DESC LIMIT $7::int");

int ledger_list(store *db, const ledger_filter *flt, json_t **out, fault *f)
{
    const char *after = flt->starting_after;
    if (after && strncmp(after, "txn_", 4) == 0) after += 4;
    if (after) {
        for (const char *p = after; *p; p++)
            if (*p < '0' || *p > '9') return fault_invalid(f, "parameter_invalid", "starting_after", "starting_after must be a transaction id");
    }
    store_conn *c = store_acquire(db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", flt->limit + 1);
    const char *params[] = {flt->payment_id, flt->order_id, flt->entry_type, flt->currency,
                            flt->gateway, after, lim};
    int rc = list_page_query(c, &stmt_list, 7, params, flt->limit, out, f);
    store_release(c);
    return rc;
}
