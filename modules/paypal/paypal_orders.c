/*
 * modules/paypal/paypal_orders.c - payments as PayPal Orders v2.
 *
 *   create    POST /v2/checkout/orders               intent CAPTURE
 *                                                    (automatic) or
 *                                                    AUTHORIZE (manual)
 *   confirm   POST /v2/checkout/orders/{id}/capture  or .../authorize,
 *                                                    once the buyer approved
 *   capture   GET the order for its authorization, then
 *             POST /v2/payments/authorizations/{auth}/capture, in full or
 *             in part (final_capture: the rest is released)
 *   cancel    GET the order; an authorization is voided with
 *             POST /v2/payments/authorizations/{auth}/void; an order that
 *             was never approved needs no call (PayPal lets it expire)
 *   retrieve  GET /v2/checkout/orders/{id}
 *
 * provider_ref is always the PayPal order id.
 *
 * Status mapping (order status, then its payments):
 *   CREATED, PAYER_ACTION_REQUIRED   requires_action, next_action redirect
 *                                    to the payer-action (or approve) link
 *   APPROVED, SAVED                  requires_confirmation (approved, not
 *                                    yet captured or authorized)
 *   VOIDED                           canceled
 *   COMPLETED with captures          by the capture: COMPLETED, REFUNDED,
 *                                    PARTIALLY_REFUNDED -> succeeded;
 *                                    PENDING -> processing; DECLINED,
 *                                    FAILED -> failed
 *   COMPLETED with an authorization  CREATED, PARTIALLY_CAPTURED ->
 *                                    requires_capture; PENDING ->
 *                                    processing; CAPTURED -> succeeded;
 *                                    VOIDED, EXPIRED -> canceled;
 *                                    DENIED -> failed
 *
 * confirm before the buyer approved (ORDER_NOT_APPROVED), or when PayPal
 * wants the buyer back (PAYER_ACTION_REQUIRED), answers requires_action
 * with the order's link again; INSTRUMENT_DECLINED with a link to choose
 * another funding source does too, and without one it is a decline. An
 * order that was already captured or authorized by an earlier attempt is
 * read back rather than reported as an error.
 *
 * Every function may run on many threads at once with one instance.
 */
#include "paypal.h"

#include <stdio.h>
#include <string.h>

static const char *const paypal_action_rels[] = {"payer-action", "approve",
                                                 NULL};
static const char *const paypal_retry_rels[] = {"payer-action", "approve",
                                                "redirect", NULL};

int paypal_capture_status(const char *s)
{
    if (s == NULL)
        return 0;
    if (!strcmp(s, "COMPLETED") || !strcmp(s, "REFUNDED") ||
        !strcmp(s, "PARTIALLY_REFUNDED"))
        return PAYD_PS_SUCCEEDED;
    if (!strcmp(s, "PENDING"))
        return PAYD_PS_PROCESSING;
    if (!strcmp(s, "DECLINED") || !strcmp(s, "FAILED"))
        return PAYD_PS_FAILED;
    return 0;
}

int paypal_authorization_status(const char *s)
{
    if (s == NULL)
        return 0;
    if (!strcmp(s, "CREATED") || !strcmp(s, "PARTIALLY_CAPTURED"))
        return PAYD_PS_REQUIRES_CAPTURE;
    if (!strcmp(s, "PENDING"))
        return PAYD_PS_PROCESSING;
    if (!strcmp(s, "CAPTURED"))
        return PAYD_PS_SUCCEEDED;
    if (!strcmp(s, "VOIDED") || !strcmp(s, "EXPIRED"))
        return PAYD_PS_CANCELED;
    if (!strcmp(s, "DENIED"))
        return PAYD_PS_FAILED;
    return 0;
}

/* The order-level status, 0 for COMPLETED (decided by its payments) and
 * -1 when unknown. */
static int paypal_order_status(const char *s)
{
    if (s == NULL)
        return -1;
    if (!strcmp(s, "CREATED") || !strcmp(s, "PAYER_ACTION_REQUIRED"))
        return PAYD_PS_REQUIRES_ACTION;
    if (!strcmp(s, "APPROVED") || !strcmp(s, "SAVED"))
        return PAYD_PS_REQUIRES_CONFIRMATION;
    if (!strcmp(s, "VOIDED"))
        return PAYD_PS_CANCELED;
    if (!strcmp(s, "COMPLETED"))
        return 0;
    return -1;
}

/* Status and amounts of a COMPLETED order from its first purchase unit's
 * captures, else its authorization: a PAYD_PS_* status, 0 for a status
 * payd does not know, or -1 when a completed capture's amount cannot be
 * read (payd would otherwise book less money than PayPal took). */
static int paypal_order_payments(json_t *pu, payd_payment_res *out)
{
    json_t *captures = paypal_jget(pu, "payments.captures");
    json_t *auth = paypal_jget(pu, "payments.authorizations.0");
    int status = 0, s;
    size_t i;
    json_t *c;
    int64_t v;

    json_array_foreach(captures, i, c) {
        s = paypal_capture_status(paypal_jstr(c, "status"));
        if (s == PAYD_PS_SUCCEEDED) {
            if (paypal_amount_read(paypal_jget(c, "amount"), &v, NULL) !=
                PAYD_OK)
                return -1;
            out->amount_captured += v;
        }
        /* One good capture makes the payment succeeded. */
        if (status == 0 || s == PAYD_PS_SUCCEEDED)
            status = s;
    }
    if (status != 0)
        return status;
    if (!json_is_object(auth))
        return PAYD_PS_PROCESSING;
    status = paypal_authorization_status(paypal_jstr(auth, "status"));
    if (status == PAYD_PS_REQUIRES_CAPTURE &&
        paypal_amount_read(paypal_jget(auth, "amount"), &v, NULL) == PAYD_OK)
        out->amount_capturable = v;
    return status;
}

/*
 * See paypal.h. Fills `out` from order `order`; strings in the arena.
 * Does not set provider_request_id.
 */
int paypal_order_result(const paypal_instance *inst, json_t *order,
                        payd_arena *a, payd_payment_res *out, payd_error *e)
{
    const payd_host *h = inst->h;
    const char *id = paypal_jstr(order, "id");
    json_t *pu = paypal_jget(order, "purchase_units.0");
    int status = paypal_order_status(paypal_jstr(order, "status"));
    int oom = 0;

    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    if (!paypal_ok_id(id) || status < 0)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: the answer is not an order payd can read");
    paypal_amount_read(paypal_jget(pu, "amount"), &out->amount, NULL);
    if (status == 0)
        status = paypal_order_payments(pu, out);
    if (status < 0)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: a completed capture has no amount payd "
                         "can read");
    if (status == 0)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: the order's payment has a status payd "
                         "does not know");
    out->status = status;
    out->provider_ref = payd_adup(h, a, id, &oom);
    if (status == PAYD_PS_REQUIRES_ACTION) {
        const char *url = paypal_link(paypal_jget(order, "links"),
                                      paypal_action_rels);

        if (url != NULL) {
            out->next_action = PAYD_NA_REDIRECT_URL;
            out->next_action_url = payd_adup(h, a, url, &oom);
        }
    }
    if (status == PAYD_PS_FAILED) {
        out->failure_code = "card_declined";
        out->failure_message = "PayPal declined the payment.";
    }
    out->raw = paypal_raw_redacted(h, a, order);
    if (oom || out->raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    return PAYD_OK;
}

/* At most `max` bytes of `s`, cut on a UTF-8 character boundary; a new
 * json string, or NULL for NULL. */
static json_t *paypal_json_text(const char *s, size_t max)
{
    size_t n;

    if (s == NULL)
        return NULL;
    n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return json_stringn(s, n);
}

/* Set `key` of `o` to `v` (stolen) when v is not NULL. */
static void paypal_json_put(json_t *o, const char *key, json_t *v)
{
    if (v != NULL)
        json_object_set_new(o, key, v);
}

json_t *paypal_order_create_body(const paypal_instance *inst,
                                 const payd_payment_req *req, payd_error *e)
{
    char value[PAYPAL_AMOUNT_TEXT_MAX];
    json_t *body, *pu, *ctx;

    if (paypal_amount_format(req->amount, req->currency,
                             req->currency_exponent, value) != PAYD_OK) {
        payd_fail(e, PAYD_E_INVALID,
                  "paypal: %s amounts must be whole units at PayPal",
                  req->currency);
        return NULL;
    }
    pu = json_pack("{s:s?, s:s, s:s?, s:{s:s, s:s}}", "reference_id",
                   req->order_id, "custom_id", req->payment_id, "invoice_id",
                   req->order_number, "amount", "currency_code",
                   req->currency, "value", value);
    ctx = json_pack("{s:s}", "user_action", "PAY_NOW");
    body = json_pack("{s:s, s:[o], s:{s:{s:o}}}", "intent",
                     req->capture_method == PAYD_CAPTURE_MANUAL ? "AUTHORIZE"
                                                                : "CAPTURE",
                     "purchase_units", pu, "payment_source", "paypal",
                     "experience_context", ctx);
    if (body == NULL || pu == NULL || ctx == NULL) {
        json_decref(body);
        payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
        return NULL;
    }
    paypal_json_put(pu, "description", paypal_json_text(req->description, 127));
    paypal_json_put(pu, "soft_descriptor",
                    paypal_json_text(req->statement_descriptor_suffix, 22));
    if (req->return_url != NULL) {
        json_object_set_new(ctx, "return_url", json_string(req->return_url));
        /* A buyer who cancels comes back to the same page; the shop asks
         * payd, which still says requires_action. */
        json_object_set_new(ctx, "cancel_url", json_string(req->return_url));
    }
    paypal_json_put(ctx, "brand_name", paypal_json_text(inst->brand_name, 127));
    if (inst->shipping_preference != NULL)
        json_object_set_new(ctx, "shipping_preference",
                            json_string(inst->shipping_preference));
    return body;
}

/* Checks shared by every payment op. PAYD_OK, PAYD_E_INVALID or
 * PAYD_E_NOTFOUND (a ref that cannot be a PayPal order id). */
static int paypal_order_check(const payd_payment_req *req, int need_ref,
                              payd_error *e)
{
    if (need_ref && !paypal_ok_id(req->provider_ref))
        return payd_fail(e, req->provider_ref == NULL ? PAYD_E_INVALID
                                                      : PAYD_E_NOTFOUND,
                         "paypal: provider_ref must be a PayPal order id");
    if (!payd_text_ok(req->payment_id, PAYPAL_ID_MAX) ||
        !payd_text_ok(req->order_id, PAYPAL_ID_MAX) ||
        !payd_text_ok(req->order_number, PAYPAL_ID_MAX))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid payment_id, order_id or "
                         "order_number");
    if (req->return_url != NULL && !paypal_ok_url(req->return_url))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: return_url must be an http(s) URL");
    if (!payd_text_ok(req->description, 2000) ||
        !payd_text_ok(req->statement_descriptor_suffix, 22))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid description or "
                         "statement_descriptor_suffix");
    return PAYD_OK;
}

/* Fill res from the order in ans (released), with the debug id. A FAILED
 * order after a confirm is a decline. */
static int paypal_order_finish(const paypal_instance *inst, paypal_answer *ans,
                               int confirming, payd_payment_res *res,
                               payd_arena *a, payd_error *e)
{
    payd_payment_res out;
    int rc = paypal_order_result(inst, ans->obj, a, &out, e);

    json_decref(ans->obj);
    ans->obj = NULL;
    if (rc != PAYD_OK)
        return rc;
    out.provider_request_id = ans->debug_id;
    if (confirming && out.status == PAYD_PS_FAILED) {
        snprintf(e->failure_code, sizeof e->failure_code, "%s",
                 out.failure_code);
        payd_fail(e, PAYD_E_DECLINED, "%s", out.failure_message);
        rc = PAYD_E_DECLINED;
    }
    payd_copy_out(res, &out, sizeof out);
    return rc;
}

/* GET the order `id` into ans. */
static int paypal_order_get(paypal_instance *inst, const char *id,
                            payd_arena *a, paypal_answer *ans, payd_error *e)
{
    const char *path = inst->h->sprintf(a, "/v2/checkout/orders/%s", id);

    if (path == NULL) {
        memset(ans, 0, sizeof *ans);
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    }
    return paypal_api(inst, "GET", path, NULL, NULL, a, ans, e);
}

/*
 * The start of every operation on an existing order: read the request
 * across the ABI into *req, check it names an order, and GET that order
 * into *ans. PAYD_OK with ans->obj owned by the caller; otherwise the
 * error of the step that failed, with ans->obj NULL (nothing to free).
 */
static int paypal_order_fetch(paypal_instance *inst,
                              const payd_payment_req *req_in,
                              payd_payment_req *req, payd_arena *a,
                              paypal_answer *ans, payd_error *e)
{
    int rc;

    memset(ans, 0, sizeof *ans);
    if (payd_copy_in(req, sizeof *req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = paypal_order_check(req, 1, e);
    if (rc != PAYD_OK)
        return rc;
    rc = paypal_order_get(inst, req->provider_ref, a, ans, e);
    if (rc != PAYD_OK) {
        json_decref(ans->obj);
        ans->obj = NULL;
    }
    return rc;
}

/* Forget an error that turned out to be an answer; keep the debug id. */
static void paypal_error_clear(payd_error *e)
{
    e->code = 0;
    e->message[0] = '\0';
    e->failure_code[0] = '\0';
}

/* The order as it is now, as the op's result (after an error that means
 * "look at the order"). */
static int paypal_order_reread(paypal_instance *inst, const char *id,
                               int confirming, payd_payment_res *res,
                               payd_arena *a, payd_error *e)
{
    paypal_answer ans;
    int rc;

    paypal_error_clear(e);
    rc = paypal_order_get(inst, id, a, &ans, e);
    if (rc != PAYD_OK) {
        json_decref(ans.obj);
        return rc;
    }
    return paypal_order_finish(inst, &ans, confirming, res, a, e);
}

/*
 * create: a new order for req->amount, waiting for the buyer's approval.
 * Returns PAYD_OK (res: requires_action with the redirect), PAYD_E_INVALID,
 * PAYD_E_DECLINED, PAYD_E_AUTH, PAYD_E_PROVIDER, PAYD_E_TRANSIENT (outcome
 * unknown: retry with the same key), PAYD_E_NOMEM.
 */
int paypal_create(void *state, const payd_payment_req *req_in,
                  payd_payment_res *res, payd_arena *a, payd_error *e)
{
    paypal_instance *inst = state;
    payd_payment_req req;
    paypal_answer ans;
    json_t *body;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = paypal_order_check(&req, 0, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.payment_id == NULL) /* paypal_order_check read its text */
        return payd_fail(e, PAYD_E_INVALID, "paypal: payment_id is required");
    if (req.amount <= 0 || !payd_currency_ok(req.currency) ||
        req.currency_exponent < 0 || req.currency_exponent > 4)
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: a positive amount and an upper-case ISO "
                         "4217 currency are required");
    if (req.capture_method != PAYD_CAPTURE_AUTOMATIC &&
        req.capture_method != PAYD_CAPTURE_MANUAL)
        return payd_fail(e, PAYD_E_INVALID, "paypal: invalid capture_method");
    body = paypal_order_create_body(inst, &req, e);
    if (body == NULL)
        return e->code;
    rc = paypal_api(inst, "POST", "/v2/checkout/orders", body,
                    req.idempotency_key, a, &ans, e);
    json_decref(body);
    if (rc != PAYD_OK) {
        json_decref(ans.obj);
        return rc;
    }
    return paypal_order_finish(inst, &ans, 0, res, a, e);
}

/* 1 when `issue` is one of the NULL-terminated `list`. */
static int paypal_issue_in(const char *issue, const char *const *list)
{
    for (; issue != NULL && *list != NULL; list++)
        if (strcmp(issue, *list) == 0)
            return 1;
    return 0;
}

/*
 * confirm: capture (automatic) or authorize (manual) the order the buyer
 * approved. PAYD_OK (res: succeeded, processing, requires_capture, or
 * requires_action when the buyer has not approved yet), PAYD_E_DECLINED
 * (res filled when PayPal sent the order), PAYD_E_NOTFOUND,
 * PAYD_E_INVALID, PAYD_E_AUTH, PAYD_E_TRANSIENT, PAYD_E_NOMEM.
 */
int paypal_confirm(void *state, const payd_payment_req *req_in,
                   payd_payment_res *res, payd_arena *a, payd_error *e)
{
    static const char *const not_approved[] = {"ORDER_NOT_APPROVED",
                                               "PAYER_ACTION_REQUIRED", NULL};
    static const char *const already[] = {"ORDER_ALREADY_CAPTURED",
                                          "ORDER_ALREADY_AUTHORIZED",
                                          "ORDER_COMPLETED_OR_VOIDED", NULL};
    paypal_instance *inst = state;
    payd_payment_req req;
    paypal_answer ans;
    const char *path, *issue, *link;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = paypal_order_check(&req, 1, e);
    if (rc != PAYD_OK)
        return rc;
    path = inst->h->sprintf(a, "/v2/checkout/orders/%s/%s", req.provider_ref,
                            req.capture_method == PAYD_CAPTURE_MANUAL
                                ? "authorize"
                                : "capture");
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    rc = paypal_api(inst, "POST", path, NULL, req.idempotency_key, a, &ans, e);
    if (rc == PAYD_OK)
        return paypal_order_finish(inst, &ans, 1, res, a, e);
    issue = paypal_error_issue(ans.obj);
    link = paypal_link(paypal_jget(ans.obj, "links"), paypal_retry_rels);
    if ((rc == PAYD_E_INVALID || rc == PAYD_E_DECLINED) &&
        (paypal_issue_in(issue, not_approved) ||
         paypal_issue_in(issue, already))) {
        json_decref(ans.obj);
        return paypal_order_reread(inst, req.provider_ref, 1, res, a, e);
    }
    if (rc == PAYD_E_DECLINED && link != NULL) {
        /* PayPal offers the buyer another funding source. */
        payd_payment_res out;
        int oom = 0;

        memset(&out, 0, sizeof out);
        out.struct_size = (uint32_t)sizeof out;
        out.status = PAYD_PS_REQUIRES_ACTION;
        out.provider_ref = payd_adup(inst->h, a, req.provider_ref, &oom);
        out.next_action = PAYD_NA_REDIRECT_URL;
        out.next_action_url = payd_adup(inst->h, a, link, &oom);
        out.amount = req.amount;
        out.raw = paypal_raw_redacted(inst->h, a, ans.obj);
        out.provider_request_id = ans.debug_id;
        json_decref(ans.obj);
        if (oom || out.raw == NULL)
            return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
        paypal_error_clear(e);
        payd_copy_out(res, &out, sizeof out);
        return PAYD_OK;
    }
    json_decref(ans.obj);
    return rc;
}

/* The first authorization of an order: its id and amount. */
static json_t *paypal_order_authorization(json_t *order)
{
    json_t *auth =
        paypal_jget(order, "purchase_units.0.payments.authorizations.0");

    return json_is_object(auth) && paypal_ok_id(paypal_jstr(auth, "id"))
               ? auth
               : NULL;
}

/* The result of capturing an authorization, from the capture object. */
static int paypal_capture_finish(const paypal_instance *inst,
                                 const payd_payment_req *req,
                                 paypal_answer *ans, int64_t authorized,
                                 payd_payment_res *res, payd_arena *a,
                                 payd_error *e)
{
    payd_payment_res out;
    int64_t captured = 0;
    int oom = 0;

    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.status = paypal_capture_status(paypal_jstr(ans->obj, "status"));
    if (out.status == 0 || !paypal_ok_id(paypal_jstr(ans->obj, "id"))) {
        json_decref(ans->obj);
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: the answer is not a capture payd can read");
    }
    if (out.status == PAYD_PS_SUCCEEDED &&
        paypal_amount_read(paypal_jget(ans->obj, "amount"), &captured, NULL) !=
            PAYD_OK) {
        json_decref(ans->obj);
        ans->obj = NULL;
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: a completed capture has no amount payd "
                         "can read");
    }
    out.provider_ref = payd_adup(inst->h, a, req->provider_ref, &oom);
    out.amount = authorized;
    if (out.status == PAYD_PS_SUCCEEDED)
        out.amount_captured = captured;
    if (out.status == PAYD_PS_FAILED) {
        out.failure_code = "card_declined";
        out.failure_message = "PayPal declined the capture.";
    }
    out.raw = paypal_raw_redacted(inst->h, a, ans->obj);
    out.provider_request_id = ans->debug_id;
    json_decref(ans->obj);
    ans->obj = NULL;
    if (oom || out.raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/*
 * capture: req->amount_to_capture of the order's authorization (0 = all
 * of it; less is a final partial capture that releases the rest).
 * PAYD_OK, PAYD_E_INVALID (nothing to capture, or more than authorized),
 * PAYD_E_NOTFOUND, PAYD_E_AUTH, PAYD_E_TRANSIENT, PAYD_E_NOMEM.
 */
int paypal_capture(void *state, const payd_payment_req *req_in,
                   payd_payment_res *res, payd_arena *a, payd_error *e)
{
    static const char *const already[] = {"AUTHORIZATION_ALREADY_CAPTURED",
                                          NULL};
    paypal_instance *inst = state;
    payd_payment_req req;
    paypal_answer ans;
    json_t *auth, *body = NULL;
    const char *currency, *path;
    char value[PAYPAL_AMOUNT_TEXT_MAX];
    int64_t authorized = 0;
    int rc;

    PAYD_ERROR_GUARD(e);
    rc = paypal_order_fetch(inst, req_in, &req, a, &ans, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.amount_to_capture < 0) {
        json_decref(ans.obj);
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: invalid amount_to_capture");
    }
    auth = paypal_order_authorization(ans.obj);
    if (auth == NULL ||
        paypal_authorization_status(paypal_jstr(auth, "status")) !=
            PAYD_PS_REQUIRES_CAPTURE ||
        paypal_amount_read(paypal_jget(auth, "amount"), &authorized,
                           &currency) != PAYD_OK) {
        /* Nothing capturable: the order says what happened instead. */
        if (paypal_order_status(paypal_jstr(ans.obj, "status")) == 0 &&
            auth != NULL)
            return paypal_order_finish(inst, &ans, 0, res, a, e);
        json_decref(ans.obj);
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: the order has no authorization to capture");
    }
    if (req.amount_to_capture > authorized) {
        json_decref(ans.obj);
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: amount_to_capture exceeds the authorized "
                         "amount");
    }
    if (req.amount_to_capture > 0 && req.amount_to_capture < authorized) {
        if (paypal_amount_format(req.amount_to_capture, currency,
                                 paypal_currency_exponent(currency),
                                 value) != PAYD_OK) {
            json_decref(ans.obj);
            return payd_fail(e, PAYD_E_INVALID,
                             "paypal: the amount cannot be sent to PayPal");
        }
        body = json_pack("{s:{s:s, s:s}, s:b}", "amount", "currency_code",
                         currency, "value", value, "final_capture", 1);
    }
    path = inst->h->sprintf(a, "/v2/payments/authorizations/%s/capture",
                            paypal_jstr(auth, "id"));
    json_decref(ans.obj);
    if (path == NULL) {
        json_decref(body);
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    }
    rc = paypal_api(inst, "POST", path, body, req.idempotency_key, a, &ans, e);
    json_decref(body);
    if (rc == PAYD_OK)
        return paypal_capture_finish(inst, &req, &ans, authorized, res, a, e);
    if (rc == PAYD_E_INVALID &&
        paypal_issue_in(paypal_error_issue(ans.obj), already)) {
        json_decref(ans.obj);
        return paypal_order_reread(inst, req.provider_ref, 0, res, a, e);
    }
    json_decref(ans.obj);
    return rc;
}

/* The result of a cancel that needed (or made) no call: status canceled. */
static int paypal_cancel_result(const paypal_instance *inst,
                                const payd_payment_req *req, json_t *raw,
                                const char *debug_id, payd_payment_res *res,
                                payd_arena *a, payd_error *e)
{
    payd_payment_res out;
    int oom = 0;

    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.status = PAYD_PS_CANCELED;
    out.provider_ref = payd_adup(inst->h, a, req->provider_ref, &oom);
    out.amount = req->amount;
    out.raw = paypal_raw_redacted(inst->h, a, raw);
    out.provider_request_id = debug_id;
    if (oom || out.raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/*
 * cancel: void the order's authorization, or, for an order the buyer never
 * paid, nothing at PayPal (unapproved orders expire there). PAYD_OK (res:
 * canceled), PAYD_E_INVALID (money was captured: refund it instead),
 * PAYD_E_NOTFOUND, PAYD_E_AUTH, PAYD_E_TRANSIENT, PAYD_E_NOMEM.
 */
int paypal_cancel(void *state, const payd_payment_req *req_in,
                  payd_payment_res *res, payd_arena *a, payd_error *e)
{
    paypal_instance *inst = state;
    payd_payment_req req;
    paypal_answer ans, vans;
    json_t *auth;
    const char *path;
    int rc, order_status, auth_status = 0;

    PAYD_ERROR_GUARD(e);
    rc = paypal_order_fetch(inst, req_in, &req, a, &ans, e);
    if (rc != PAYD_OK)
        return rc;
    order_status = paypal_order_status(paypal_jstr(ans.obj, "status"));
    auth = paypal_order_authorization(ans.obj);
    if (auth != NULL)
        auth_status = paypal_authorization_status(paypal_jstr(auth, "status"));
    if (order_status == PAYD_PS_REQUIRES_ACTION ||
        order_status == PAYD_PS_REQUIRES_CONFIRMATION ||
        order_status == PAYD_PS_CANCELED || auth_status == PAYD_PS_CANCELED) {
        rc = paypal_cancel_result(inst, &req, ans.obj, ans.debug_id, res, a, e);
        json_decref(ans.obj);
        return rc;
    }
    if (auth_status != PAYD_PS_REQUIRES_CAPTURE) {
        json_decref(ans.obj);
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: the payment cannot be canceled in its "
                         "state at PayPal (refund a captured payment)");
    }
    path = inst->h->sprintf(a, "/v2/payments/authorizations/%s/void",
                            paypal_jstr(auth, "id"));
    json_decref(ans.obj);
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    rc = paypal_api(inst, "POST", path, NULL, req.idempotency_key, a, &vans, e);
    if (rc == PAYD_OK)
        rc = paypal_cancel_result(inst, &req, vans.obj, vans.debug_id, res, a, e);
    else if (rc == PAYD_E_INVALID &&
             paypal_issue_in(paypal_error_issue(vans.obj),
                             (const char *const[]){"AUTHORIZATION_VOIDED",
                                                   "AUTHORIZATION_ALREADY_VOIDED",
                                                   NULL})) {
        paypal_error_clear(e);
        rc = paypal_cancel_result(inst, &req, vans.obj, vans.debug_id, res, a, e);
    }
    json_decref(vans.obj);
    return rc;
}

/* retrieve: the order as PayPal sees it now (the janitor's question when
 * an outcome is unknown). PAYD_OK, PAYD_E_NOTFOUND, PAYD_E_INVALID,
 * PAYD_E_AUTH, PAYD_E_TRANSIENT, PAYD_E_NOMEM. */
int paypal_retrieve(void *state, const payd_payment_req *req_in,
                    payd_payment_res *res, payd_arena *a, payd_error *e)
{
    paypal_instance *inst = state;
    payd_payment_req req;
    paypal_answer ans;
    int rc;

    PAYD_ERROR_GUARD(e);
    rc = paypal_order_fetch(inst, req_in, &req, a, &ans, e);
    if (rc != PAYD_OK)
        return rc;
    return paypal_order_finish(inst, &ans, 0, res, a, e);
}
