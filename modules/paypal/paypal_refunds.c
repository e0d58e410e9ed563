/*
 * modules/paypal/paypal_refunds.c - refunds of PayPal captures.
 *
 *   refund           GET /v2/checkout/orders/{order} for the capture id,
 *                    then POST /v2/payments/captures/{capture}/refund with
 *                    {amount{value,currency_code}, custom_id = payd refund
 *                    id, note_to_payer for the reasons a buyer may read}
 *                    and PayPal-Request-Id = the core's derived key
 *   refund_retrieve  GET /v2/payments/refunds/{id}
 *
 * The amount is always sent, so a full refund and a partial one are the
 * same request and a retry can never refund "whatever is left".
 *
 * Statuses: COMPLETED -> succeeded; PENDING -> pending (PayPal sends
 * PAYMENT.CAPTURE.REFUNDED when it completes); FAILED -> failed;
 * CANCELLED -> canceled.
 *
 * Every function may run on many threads at once with one instance.
 */
#include "paypal.h"

#include <string.h>

int paypal_refund_status(const char *status)
{
    if (status == NULL)
        return 0;
    if (strcmp(status, "COMPLETED") == 0)
        return PAYD_RS_SUCCEEDED;
    if (strcmp(status, "PENDING") == 0)
        return PAYD_RS_PENDING;
    if (strcmp(status, "FAILED") == 0)
        return PAYD_RS_FAILED;
    if (strcmp(status, "CANCELLED") == 0 || strcmp(status, "CANCELED") == 0)
        return PAYD_RS_CANCELED;
    return 0;
}

/* Fill res from a refund object and release ans->obj. PAYD_OK,
 * PAYD_E_TRANSIENT (not a refund payd can read) or PAYD_E_NOMEM. */
static int paypal_refund_finish(const paypal_instance *inst,
                                paypal_answer *ans, payd_refund_res *res,
                                payd_arena *a, payd_error *e)
{
    const payd_host *h = inst->h;
    payd_refund_res out;
    json_t *re = ans->obj;
    const char *id = paypal_jstr(re, "id");
    int oom = 0;

    ans->obj = NULL;
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.status = paypal_refund_status(paypal_jstr(re, "status"));
    if (!paypal_ok_id(id) || out.status == 0) {
        json_decref(re);
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: the answer is not a refund payd can read");
    }
    out.refund_ref = payd_adup(h, a, id, &oom);
    if (out.status == PAYD_RS_FAILED || out.status == PAYD_RS_CANCELED) {
        const char *reason = paypal_jstr(re, "status_details.reason");

        out.failure_code = "refund_failed";
        out.failure_message =
            out.status == PAYD_RS_FAILED ? "PayPal could not refund the payment"
                                         : "The refund was canceled";
        if (reason != NULL && paypal_ok_id(reason))
            out.failure_message = h->sprintf(a, "%s (%s)", out.failure_message,
                                             reason);
        if (out.failure_message == NULL)
            oom = 1;
    }
    out.raw = paypal_raw_redacted(h, a, re);
    out.provider_request_id = ans->debug_id;
    json_decref(re);
    if (oom || out.raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/* The id of the order's first capture that holds money, or NULL. */
static const char *paypal_refund_capture_id(json_t *order)
{
    json_t *captures = paypal_jget(order, "purchase_units.0.payments.captures");
    json_t *c;
    size_t i;

    json_array_foreach(captures, i, c) {
        const char *id = paypal_jstr(c, "id");

        if (paypal_ok_id(id) &&
            paypal_capture_status(paypal_jstr(c, "status")) == PAYD_PS_SUCCEEDED)
            return id;
    }
    return NULL;
}

/*
 * refund: refund req->amount of the order req->provider_ref. Returns
 * PAYD_OK (res: the refund, COMPLETED at once or PENDING), PAYD_E_INVALID
 * (nothing captured, more than is left...), PAYD_E_NOTFOUND, PAYD_E_AUTH,
 * PAYD_E_PROVIDER, PAYD_E_TRANSIENT (outcome unknown: retry with the same
 * key), PAYD_E_NOMEM.
 */
int paypal_refund(void *state, const payd_refund_req *req_in,
                  payd_refund_res *res, payd_arena *a, payd_error *e)
{
    paypal_instance *inst = state;
    payd_refund_req req;
    paypal_answer ans;
    char value[PAYPAL_AMOUNT_TEXT_MAX];
    const char *capture, *path;
    json_t *body;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (!paypal_ok_id(req.provider_ref))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: provider_ref must be a PayPal order id");
    if (req.refund_id == NULL || !payd_text_ok(req.refund_id, PAYPAL_ID_MAX) ||
        !payd_text_ok(req.payment_id, PAYPAL_ID_MAX))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid refund_id or payment_id");
    if (req.amount <= 0 || !payd_currency_ok(req.currency) ||
        paypal_amount_format(req.amount, req.currency, req.currency_exponent,
                             value) != PAYD_OK)
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: the refund amount cannot be sent to PayPal");
    path = inst->h->sprintf(a, "/v2/checkout/orders/%s", req.provider_ref);
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    rc = paypal_api(inst, "GET", path, NULL, NULL, a, &ans, e);
    if (rc != PAYD_OK) {
        json_decref(ans.obj);
        return rc;
    }
    capture = paypal_refund_capture_id(ans.obj);
    path = capture != NULL
               ? inst->h->sprintf(a, "/v2/payments/captures/%s/refund", capture)
               : NULL;
    json_decref(ans.obj);
    if (capture == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: the order has no completed capture to "
                         "refund");
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    body = json_pack("{s:{s:s, s:s}, s:s}", "amount", "value", value,
                     "currency_code", req.currency, "custom_id", req.refund_id);
    if (body == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    if (req.reason != NULL && strcmp(req.reason, "duplicate") == 0)
        json_object_set_new(body, "note_to_payer",
                            json_string("Refund of a duplicate payment"));
    else if (req.reason != NULL &&
             strcmp(req.reason, "requested_by_customer") == 0)
        json_object_set_new(body, "note_to_payer",
                            json_string("Refund at your request"));
    rc = paypal_api(inst, "POST", path, body, req.idempotency_key, a, &ans, e);
    json_decref(body);
    if (rc != PAYD_OK) {
        json_decref(ans.obj);
        return rc;
    }
    return paypal_refund_finish(inst, &ans, res, a, e);
}

/* refund_retrieve: the refund req->refund_ref as PayPal sees it now.
 * PAYD_OK, PAYD_E_NOTFOUND, PAYD_E_INVALID, PAYD_E_TRANSIENT... */
int paypal_refund_retrieve(void *state, const payd_refund_req *req_in,
                           payd_refund_res *res, payd_arena *a, payd_error *e)
{
    paypal_instance *inst = state;
    payd_refund_req req;
    paypal_answer ans;
    const char *path;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (!paypal_ok_id(req.refund_ref))
        return payd_fail(e, req.refund_ref == NULL ? PAYD_E_INVALID
                                                   : PAYD_E_NOTFOUND,
                         "paypal: refund_ref must be a PayPal refund id");
    path = inst->h->sprintf(a, "/v2/payments/refunds/%s", req.refund_ref);
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    rc = paypal_api(inst, "GET", path, NULL, NULL, a, &ans, e);
    if (rc != PAYD_OK) {
        json_decref(ans.obj);
        return rc;
    }
    return paypal_refund_finish(inst, &ans, res, a, e);
}
