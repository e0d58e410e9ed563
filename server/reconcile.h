/* reconcile.h - payd's ledger against what a provider says. */
#ifndef PAYD_RECONCILE_H
#define PAYD_RECONCILE_H

#include <jansson.h>

#include "app.h"
#include "fault.h"
#include "reports.h"

/* Payments per page: the default, and the most one run may check. */
#define RECONCILE_PAGE_DEFAULT 200
#define RECONCILE_PAGE_MAX 1000

/* Which page of the range to check: the payments after `starting_after`
 * (a payment id; NULL from the start), at most `limit` (0: the default). */
typedef struct reconcile_page {
    const char *starting_after;
    int limit;
} reconcile_page;

/*
 * Compares one page (see reconcile_page) of the payments of gateway
 * instance `gateway` created in `rg`, in (created_at, id) order,
 * with the module's `retrieve` (and `refund_retrieve` for its refunds),
 * and each payment row with its own ledger rows. Builds
 * {"object":"reconciliation", ..., "mismatches":[{payment_id, refund_id?,
 * kind, payd, provider, message}]}. Mismatch kinds:
 *   status               the provider's status is not payd's (payd's
 *                        partially_refunded, refunded and disputed read as
 *                        succeeded: a provider keeps the payment succeeded)
 *   amount_captured      the provider captured another amount than payd's
 *                        ledger (charge + capture rows) says
 *   refund_status        a refund's status differs
 *   refunded_amount      the refunds the provider says succeeded do not add
 *                        up to payd's ledger refund rows
 *   missing_at_provider  the provider does not know the payment (or
 *   refund_missing_at_provider  the refund)
 *   retrieve_failed      the provider could not be asked (the message says
 *                        why); nothing else is compared for that object
 *   ledger_captured      payments.amount_captured differs from the ledger
 *   ledger_refunded      payments.amount_refunded differs from the ledger
 * Provider calls happen with no transaction open and no connection held.
 * 0 with *out (caller owns), or -1 with a fault (400 for an unknown gateway,
 * a bad limit or a cursor that is not one of the gateway's payments, 503
 * without a database). Thread-safe.
 */
int reconcile_run(app *a, const char *gateway, const report_range *rg, const reconcile_page *page, json_t **out,
                  fault *f);

#endif
