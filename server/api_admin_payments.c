/*
 * api_admin_payments.c - an admin's decisions on payments: approve or
 * reject a manual payment awaiting funds and confirm or reject a pending
 * manual refund (manual_review.c), and close a payment flagged
 * needs_review (payment_review.c). Every route here needs the admin role and honours
 * Idempotency-Key (routes.c); the audit names the admin's key.
 */
#include "api_admin_payments.h"

#include "api.h"
#include "manual_review.h"
#include "payment_review.h"

typedef int (*review_fn)(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f);

static void review(app *a, http_req *r, review_fn fn)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = fn(&x, r->params[0], r->json, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_admin_payments_approve(app *a, http_req *r)
{
    review(a, r, manual_review_approve);
}

void api_admin_payments_reject(app *a, http_req *r)
{
    review(a, r, manual_review_reject);
}

void api_admin_refunds_confirm(app *a, http_req *r)
{
    review(a, r, manual_review_refund_confirm);
}

void api_admin_refunds_reject(app *a, http_req *r)
{
    review(a, r, manual_review_refund_reject);
}

void api_admin_payments_resolve_review(app *a, http_req *r)
{
    review(a, r, payment_review_resolve);
}
