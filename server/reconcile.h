/* reconcile.h - payd's ledger against what a provider says. */
#ifndef PAYD_RECONCILE_H
#define PAYD_RECONCILE_H

#include <jansson.h>

#include "app.h"
#include "fault.h"
#include "reports.h"

/* At most this many payments per run; a wider range is refused. */
#define RECONCILE_MAX_PAYMENTS 10000

/*
 * Compares every payment of gateway instance `gateway` created in `rg`
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
 * 0 with *out (caller owns), or -1 with a fault (400 for an unknown gateway
 * or too many payments, 503 without a database). Thread-safe.
 */
int reconcile_run(app *a, const char *gateway, const report_range *rg, json_t **out, fault *f);

#endif
