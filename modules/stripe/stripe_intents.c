/*
 * modules/stripe/stripe_intents.c - payments as Stripe PaymentIntents.
 *
 *   create    POST /v1/payment_intents
 *   confirm   POST /v1/payment_intents/{id}/confirm
 *   capture   POST /v1/payment_intents/{id}/capture
 *   cancel    POST /v1/payment_intents/{id}/cancel
 *   retrieve  GET  /v1/payment_intents/{id}
 *
 * Statuses map one to one onto payd's, with one exception: Stripe puts a
 * PaymentIntent whose confirmation failed back into requires_payment_method
 * with a last_payment_error, which payd reads as FAILED with the decline
 * code (a new attempt in payd is a new payment).
 *
 * next_action: redirect_to_url becomes PAYD_NA_REDIRECT_URL with its url;
 * use_stripe_sdk, and any other action Stripe.js knows how to finish,
 * becomes PAYD_NA_USE_SDK with the client_secret. The client_secret is
 * also returned while the PaymentIntent waits for a payment method or a
 * confirmation, because that is when a Stripe.js frontend needs it; it is
 * never put in `raw`.
 *
 * Every function may run on many threads at once with one instance.
 */
#include "stripe.h"

#include <stdio.h>
#include <string.h>

int stripe_intent_status(json_t *pi)
{
    static const struct {
        const char *name;
        int status;
    } map[] = {
        {"requires_payment_method", PAYD_PS_REQUIRES_PAYMENT_METHOD},
        {"requires_confirmation", PAYD_PS_REQUIRES_CONFIRMATION},
        {"requires_action", PAYD_PS_REQUIRES_ACTION},
        {"processing", PAYD_PS_PROCESSING},
        {"requires_capture", PAYD_PS_REQUIRES_CAPTURE},
        {"succeeded", PAYD_PS_SUCCEEDED},
        {"canceled", PAYD_PS_CANCELED},
    };
    const char *s = stripe_jstr(pi, "status");
    size_t i;

    if (s == NULL)
        return 0;
    for (i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(s, map[i].name) != 0)
            continue;
        if (map[i].status == PAYD_PS_REQUIRES_PAYMENT_METHOD &&
            json_is_object(stripe_jget(pi, "last_payment_error")))
            return PAYD_PS_FAILED;
        return map[i].status;
    }
    return 0;
}

/* next_action of a requires_action PaymentIntent into `out`. */
static void stripe_intent_action(const payd_host *h, payd_arena *a,
                                 json_t *pi, payd_payment_res *out, int *oom)
{
    const char *type = stripe_jstr(pi, "next_action.type");
    const char *url = stripe_jstr(pi, "next_action.redirect_to_url.url");

    if (type != NULL && strcmp(type, "redirect_to_url") == 0 && url != NULL &&
        payd_text_ok(url, STRIPE_URL_MAX)) {
        out->next_action = PAYD_NA_REDIRECT_URL;
        out->next_action_url = payd_adup(h, a, url, oom);
        return;
    }
    out->next_action = PAYD_NA_USE_SDK;
    out->client_secret = stripe_jdup(h, a, pi, "client_secret", oom);
}

/*
 * Fill `out` from PaymentIntent `pi`; strings go into the arena. Returns
 * PAYD_OK, PAYD_E_TRANSIENT when `pi` is not a PaymentIntent payd can read
 * (no id or an unknown status: the call's outcome stays unknown), or
 * PAYD_E_NOMEM. Does not set provider_request_id.
 */
int stripe_intent_result(const stripe_instance *inst, json_t *pi,
                         payd_arena *a, payd_payment_res *out, payd_error *e)
{
    const payd_host *h = inst->h;
    const char *id = stripe_jstr(pi, "id");
    int status = stripe_intent_status(pi);
    int oom = 0;

    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    if (!stripe_ok_id(id) || status == 0)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: the answer is not a PaymentIntent payd "
                         "can read");
    out->status = status;
    out->provider_ref = payd_adup(h, a, id, &oom);
    out->amount = stripe_jint(pi, "amount", 0);
    out->amount_capturable = stripe_jint(pi, "amount_capturable", 0);
    out->amount_captured = stripe_jint(pi, "amount_received", 0);
    if (status == PAYD_PS_REQUIRES_ACTION)
        stripe_intent_action(h, a, pi, out, &oom);
    else if (status == PAYD_PS_REQUIRES_PAYMENT_METHOD ||
             status == PAYD_PS_REQUIRES_CONFIRMATION)
        out->client_secret = stripe_jdup(h, a, pi, "client_secret", &oom);
    if (status == PAYD_PS_FAILED) {
        char msg[200];

        out->failure_code = stripe_failure_code(
            stripe_jstr(pi, "last_payment_error.code"),
            stripe_jstr(pi, "last_payment_error.decline_code"));
        stripe_safe_message(stripe_jstr(pi, "last_payment_error.message"),
                            "The payment failed.", msg, sizeof msg);
        out->failure_message = payd_adup(h, a, msg, &oom);
    }
    out->raw = stripe_raw_redacted(h, a, pi);
    if (oom || out->raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    return PAYD_OK;
}

/*
 * Turn one call's answer into the op's result. `confirming` says the call
 * asked Stripe to confirm: a PaymentIntent that comes back FAILED is then a
 * decline (PAYD_E_DECLINED with res filled), as Stripe's own 402 is. On a
 * 402 that carried the PaymentIntent, res is filled too (status FAILED).
 * Releases ans->obj.
 */
static int stripe_intent_finish(const stripe_instance *inst, int rc,
                                stripe_answer *ans, int confirming,
                                payd_payment_res *res, payd_arena *a,
                                payd_error *e)
{
    payd_payment_res out;
    payd_error scratch;
    int orc, oom = 0;

    if ((rc != PAYD_OK && rc != PAYD_E_DECLINED) || ans->obj == NULL) {
        json_decref(ans->obj);
        return rc;
    }
    /* A decline's e already says why; an unreadable attached intent must
     * not overwrite that. */
    memset(&scratch, 0, sizeof scratch);
    orc = stripe_intent_result(inst, ans->obj, a, &out,
                               rc == PAYD_E_DECLINED ? &scratch : e);
    json_decref(ans->obj);
    ans->obj = NULL;
    if (orc != PAYD_OK)
        return rc == PAYD_E_DECLINED ? rc : orc;
    out.provider_request_id = ans->request_id;
    if (rc == PAYD_E_DECLINED) {
        out.status = PAYD_PS_FAILED;
        out.next_action = PAYD_NA_NONE;
        out.client_secret = NULL;
        out.failure_code = e->failure_code[0] ? e->failure_code : NULL;
        out.failure_message = e->message[0] ? e->message : NULL;
        out.failure_code = payd_adup(inst->h, a, out.failure_code, &oom);
        out.failure_message = payd_adup(inst->h, a, out.failure_message,
                                        &oom);
    } else if (confirming && out.status == PAYD_PS_FAILED) {
        snprintf(e->failure_code, sizeof e->failure_code, "%s",
                 out.failure_code);
        payd_fail(e, PAYD_E_DECLINED, "%s", out.failure_message);
        rc = PAYD_E_DECLINED;
    }
    payd_copy_out(res, &out, sizeof out);
    return rc;
}

/* Checks shared by every payment op; `sends_method`: the op forwards
 * req->payment_method (create, confirm). PAYD_OK, PAYD_E_INVALID or
 * PAYD_E_NOTFOUND (a ref that cannot be a Stripe id). */
static int stripe_intent_check(const payd_payment_req *req, int need_ref,
                               int sends_method, payd_error *e)
{
    if (need_ref && !stripe_ok_id(req->provider_ref))
        return payd_fail(e, req->provider_ref == NULL ? PAYD_E_INVALID
                                                      : PAYD_E_NOTFOUND,
                         "stripe: provider_ref must be a PaymentIntent id");
    if (!payd_text_ok(req->payment_id, STRIPE_ID_MAX) ||
        !payd_text_ok(req->order_id, STRIPE_ID_MAX) ||
        !payd_text_ok(req->order_number, STRIPE_ID_MAX))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid payment_id, order_id or "
                         "order_number");
    /* Never echo it: a mistyped value could be a card number. */
    if (sends_method && req->payment_method != NULL &&
        !stripe_ok_id(req->payment_method))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: payment_method must be a Stripe "
                         "PaymentMethod id (pm_...)");
    if (req->customer_ref != NULL && !stripe_ok_id(req->customer_ref))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: customer_ref must be a Stripe Customer id");
    if (req->return_url != NULL &&
        (!payd_text_ok(req->return_url, STRIPE_URL_MAX) ||
         strchr(req->return_url, ' ') != NULL ||
         (strncmp(req->return_url, "https://", 8) != 0 &&
          strncmp(req->return_url, "http://", 7) != 0)))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: return_url must be an http(s) URL");
    if (!payd_text_ok(req->description, STRIPE_TEXT_MAX) ||
        !payd_text_ok(req->statement_descriptor_suffix, 22) ||
        !payd_text_ok(req->cancel_reason, 64))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid description, "
                         "statement_descriptor_suffix or cancel_reason");
    return PAYD_OK;
}

/* "/v1/payment_intents/<id><suffix>" in the arena. */
static const char *stripe_intent_path(const stripe_instance *inst,
                                      payd_arena *a, const char *id,
                                      const char *suffix)
{
    return inst->h->sprintf(a, "/v1/payment_intents/%s%s", id, suffix);
}

/*
 * The parameters of POST /v1/payment_intents, in the order Stripe's docs
 * list them. Card-only by default; automatic_payment_methods when
 * configured (and then, without a return_url, no redirect-based method).
 */
static void stripe_intent_create_form(const stripe_instance *inst,
                                      const payd_payment_req *req,
                                      stripe_form *f)
{
    char currency[4];
    size_t i;

    for (i = 0; i < 3; i++)
        currency[i] = (char)(req->currency[i] - 'A' + 'a');
    currency[3] = '\0';
    stripe_form_add_int(f, "amount", req->amount);
    stripe_form_add(f, "currency", currency);
    stripe_form_add(f, "capture_method",
                    req->capture_method == PAYD_CAPTURE_MANUAL ? "manual"
                                                               : "automatic");
    stripe_form_add(f, "customer", req->customer_ref);
    stripe_form_add(f, "payment_method", req->payment_method);
    if (req->confirm) {
        stripe_form_add(f, "confirm", "true");
        stripe_form_add(f, "return_url", req->return_url);
    }
    stripe_form_add(f, "description", req->description);
    stripe_form_add(f, "statement_descriptor_suffix",
                    req->statement_descriptor_suffix != NULL
                        ? req->statement_descriptor_suffix
                        : inst->statement_descriptor_suffix);
    stripe_form_add(f, "metadata[payd_payment_id]", req->payment_id);
    stripe_form_add(f, "metadata[payd_order_id]", req->order_id);
    stripe_form_add(f, "metadata[payd_order_number]", req->order_number);
    if (inst->automatic_payment_methods) {
        stripe_form_add(f, "automatic_payment_methods[enabled]", "true");
        if (req->confirm && req->return_url == NULL)
            stripe_form_add(f, "automatic_payment_methods[allow_redirects]",
                            "never");
    } else {
        stripe_form_add(f, "payment_method_types[]", "card");
    }
}

/*
 * create: a new PaymentIntent for req->amount, confirmed at once when
 * req->confirm. Returns PAYD_OK (res filled), PAYD_E_DECLINED (res filled
 * with status FAILED when Stripe sent the PaymentIntent, e->failure_code
 * set), PAYD_E_INVALID, PAYD_E_AUTH, PAYD_E_PROVIDER, PAYD_E_TRANSIENT
 * (outcome unknown: retry with the same key), PAYD_E_NOMEM.
 */
int stripe_create(void *state, const payd_payment_req *req_in,
                  payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_payment_req req;
    stripe_answer ans;
    stripe_form f = {0};
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_intent_check(&req, 0, 1, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.amount <= 0 || req.amount > STRIPE_AMOUNT_MAX)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: amount must be 1 to %lld",
                         (long long)STRIPE_AMOUNT_MAX);
    if (!payd_currency_ok(req.currency))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: currency must be an upper-case ISO 4217 "
                         "code");
    if (req.capture_method != PAYD_CAPTURE_AUTOMATIC &&
        req.capture_method != PAYD_CAPTURE_MANUAL)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid capture_method");
    stripe_intent_create_form(inst, &req, &f);
    rc = stripe_api(inst, "POST", "/v1/payment_intents", NULL, &f,
                    req.idempotency_key, "payment_intent", a, &ans, e);
    stripe_form_free(&f);
    return stripe_intent_finish(inst, rc, &ans, req.confirm, res, a, e);
}

/* confirm: confirm req->provider_ref with req->payment_method (if any) and
 * req->return_url. Same codes as create, plus PAYD_E_NOTFOUND. */
int stripe_confirm(void *state, const payd_payment_req *req_in,
                   payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_payment_req req;
    stripe_answer ans;
    stripe_form f = {0};
    const char *path;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_intent_check(&req, 1, 1, e);
    if (rc != PAYD_OK)
        return rc;
    path = stripe_intent_path(inst, a, req.provider_ref, "/confirm");
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    stripe_form_add(&f, "payment_method", req.payment_method);
    stripe_form_add(&f, "return_url", req.return_url);
    rc = stripe_api(inst, "POST", path, NULL, &f, req.idempotency_key,
                    "payment_intent", a, &ans, e);
    stripe_form_free(&f);
    return stripe_intent_finish(inst, rc, &ans, 1, res, a, e);
}

/* capture: req->amount_to_capture (0 = all that is capturable). PAYD_OK,
 * PAYD_E_INVALID, PAYD_E_NOTFOUND, PAYD_E_PROVIDER, PAYD_E_TRANSIENT... */
int stripe_capture(void *state, const payd_payment_req *req_in,
                   payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_payment_req req;
    stripe_answer ans;
    stripe_form f = {0};
    const char *path;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_intent_check(&req, 1, 0, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.amount_to_capture < 0 || req.amount_to_capture > STRIPE_AMOUNT_MAX)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: invalid amount_to_capture");
    path = stripe_intent_path(inst, a, req.provider_ref, "/capture");
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    if (req.amount_to_capture > 0)
        stripe_form_add_int(&f, "amount_to_capture", req.amount_to_capture);
    rc = stripe_api(inst, "POST", path, NULL, &f, req.idempotency_key,
                    "payment_intent", a, &ans, e);
    stripe_form_free(&f);
    return stripe_intent_finish(inst, rc, &ans, 0, res, a, e);
}

/* cancel, with Stripe's cancellation_reason when req->cancel_reason is one
 * Stripe knows. PAYD_OK, PAYD_E_INVALID (not cancelable now),
 * PAYD_E_NOTFOUND, PAYD_E_TRANSIENT... */
int stripe_cancel(void *state, const payd_payment_req *req_in,
                  payd_payment_res *res, payd_arena *a, payd_error *e)
{
    static const char *const reasons[] = {"duplicate", "fraudulent",
                                          "requested_by_customer",
                                          "abandoned"};
    const stripe_instance *inst = state;
    payd_payment_req req;
    stripe_answer ans;
    stripe_form f = {0};
    const char *path;
    size_t i;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_intent_check(&req, 1, 0, e);
    if (rc != PAYD_OK)
        return rc;
    path = stripe_intent_path(inst, a, req.provider_ref, "/cancel");
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    for (i = 0; req.cancel_reason != NULL && i < sizeof reasons / sizeof *reasons;
         i++)
        if (strcmp(req.cancel_reason, reasons[i]) == 0)
            stripe_form_add(&f, "cancellation_reason", reasons[i]);
    rc = stripe_api(inst, "POST", path, NULL, &f, req.idempotency_key,
                    "payment_intent", a, &ans, e);
    stripe_form_free(&f);
    return stripe_intent_finish(inst, rc, &ans, 0, res, a, e);
}

/* retrieve: the PaymentIntent's current state (the janitor's question when
 * an outcome is unknown). PAYD_OK, PAYD_E_NOTFOUND, PAYD_E_INVALID,
 * PAYD_E_AUTH, PAYD_E_TRANSIENT, PAYD_E_NOMEM. */
int stripe_retrieve(void *state, const payd_payment_req *req_in,
                    payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_payment_req req;
    stripe_answer ans;
    const char *path;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_intent_check(&req, 1, 0, e);
    if (rc != PAYD_OK)
        return rc;
    path = stripe_intent_path(inst, a, req.provider_ref, "");
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    rc = stripe_api(inst, "GET", path, NULL, NULL, NULL, "payment_intent", a,
                    &ans, e);
    return stripe_intent_finish(inst, rc, &ans, 0, res, a, e);
}
