/*
 * modules/stripe/stripe_refunds.c - refunds as Stripe Refunds.
 *
 *   refund           POST /v1/refunds  payment_intent, amount, reason,
 *                    metadata[payd_refund_id], metadata[payd_payment_id]
 *   refund_retrieve  GET  /v1/refunds/{id}
 *
 * Statuses: succeeded -> SUCCEEDED; pending and requires_action -> PENDING
 * (the core polls and waits for refund.updated); failed -> FAILED with
 * Stripe's failure_reason; canceled -> CANCELED. The payd ids in metadata
 * let webhooks about the refund find it.
 *
 * Every function may run on many threads at once with one instance.
 */
#include "stripe.h"

#include <string.h>

int stripe_refund_status(const char *status)
{
    if (status == NULL)
        return 0;
    if (strcmp(status, "succeeded") == 0)
        return PAYD_RS_SUCCEEDED;
    if (strcmp(status, "pending") == 0 || strcmp(status, "requires_action") == 0)
        return PAYD_RS_PENDING;
    if (strcmp(status, "failed") == 0)
        return PAYD_RS_FAILED;
    if (strcmp(status, "canceled") == 0)
        return PAYD_RS_CANCELED;
    return 0;
}

/* Fill res from a Refund object and release ans->obj. PAYD_OK,
 * PAYD_E_TRANSIENT (not a Refund payd can read) or PAYD_E_NOMEM. */
static int stripe_refund_finish(const stripe_instance *inst, int rc,
                                stripe_answer *ans, payd_refund_res *res,
                                payd_arena *a, payd_error *e)
{
    const payd_host *h = inst->h;
    payd_refund_res out;
    json_t *re = ans->obj;
    const char *id;
    int oom = 0;

    ans->obj = NULL;
    if (rc != PAYD_OK) {
        json_decref(re);
        return rc;
    }
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    id = stripe_jstr(re, "id");
    out.status = stripe_refund_status(stripe_jstr(re, "status"));
    if (!stripe_ok_id(id) || out.status == 0) {
        json_decref(re);
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: the answer is not a Refund payd can "
                         "read");
    }
    out.refund_ref = payd_adup(h, a, id, &oom);
    if (out.status == PAYD_RS_FAILED || out.status == PAYD_RS_CANCELED) {
        const char *reason = stripe_jstr(re, "failure_reason");

        out.failure_code = payd_adup(
            h, a,
            reason != NULL && stripe_ok_id(reason) ? reason : "refund_failed",
            &oom);
        out.failure_message =
            out.status == PAYD_RS_FAILED ? "Stripe could not refund the payment"
                                         : "The refund was canceled";
    }
    out.raw = stripe_raw_redacted(h, a, re);
    out.provider_request_id = ans->request_id;
    json_decref(re);
    if (oom || out.raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/*
 * refund: refund req->amount of PaymentIntent req->provider_ref. Returns
 * PAYD_OK (res: the Refund, often SUCCEEDED at once, else PENDING),
 * PAYD_E_DECLINED, PAYD_E_INVALID (e.g. more than is left to refund),
 * PAYD_E_NOTFOUND, PAYD_E_AUTH, PAYD_E_PROVIDER, PAYD_E_TRANSIENT (outcome
 * unknown: retry with the same key), PAYD_E_NOMEM.
 */
int stripe_refund(void *state, const payd_refund_req *req_in,
                  payd_refund_res *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_refund_req req;
    stripe_answer ans;
    stripe_form f = {0};
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (!stripe_ok_id(req.provider_ref))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: provider_ref must be a PaymentIntent id");
    if (req.amount <= 0 || req.amount > STRIPE_AMOUNT_MAX)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: amount must be 1 to %lld",
                         (long long)STRIPE_AMOUNT_MAX);
    if (!payd_text_ok(req.refund_id, STRIPE_ID_MAX) ||
        !payd_text_ok(req.payment_id, STRIPE_ID_MAX))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid refund_id or payment_id");
    if (req.reason != NULL && strcmp(req.reason, "duplicate") != 0 &&
        strcmp(req.reason, "fraudulent") != 0 &&
        strcmp(req.reason, "requested_by_customer") != 0)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: reason must be duplicate, fraudulent or "
                         "requested_by_customer");
    stripe_form_add(&f, "payment_intent", req.provider_ref);
    stripe_form_add_int(&f, "amount", req.amount);
    stripe_form_add(&f, "reason", req.reason);
    stripe_form_add(&f, "metadata[payd_refund_id]", req.refund_id);
    stripe_form_add(&f, "metadata[payd_payment_id]", req.payment_id);
    rc = stripe_api(inst, "POST", "/v1/refunds", NULL, &f, req.idempotency_key,
                    "refund", a, &ans, e);
    stripe_form_free(&f);
    return stripe_refund_finish(inst, rc, &ans, res, a, e);
}

/* refund_retrieve: the Refund req->refund_ref as Stripe sees it now.
 * PAYD_OK, PAYD_E_NOTFOUND, PAYD_E_INVALID, PAYD_E_TRANSIENT... */
int stripe_refund_retrieve(void *state, const payd_refund_req *req_in,
                           payd_refund_res *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_refund_req req;
    stripe_answer ans;
    const char *path;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (!stripe_ok_id(req.refund_ref))
        return payd_fail(e, req.refund_ref == NULL ? PAYD_E_INVALID
                                                   : PAYD_E_NOTFOUND,
                         "stripe: refund_ref must be a Refund id");
    path = inst->h->sprintf(a, "/v1/refunds/%s", req.refund_ref);
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    rc = stripe_api(inst, "GET", path, NULL, NULL, NULL, "refund", a, &ans, e);
    return stripe_refund_finish(inst, rc, &ans, res, a, e);
}
