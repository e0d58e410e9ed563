/*
 * modules/paypal/paypal_webhook.c - the webhook operation: verify a raw
 * PayPal delivery, then translate its event into one payd_event.
 *
 * Events and what they become:
 *   CHECKOUT.ORDER.APPROVED        IGNORED, but with the payment named
 *                                  (purchase_units[0].custom_id, order id):
 *                                  the core records it; the shop confirms
 *   PAYMENT.CAPTURE.COMPLETED      PAYMENT_SUCCEEDED (capture amount)
 *   PAYMENT.CAPTURE.DENIED         PAYMENT_FAILED (card_declined)
 *   PAYMENT.CAPTURE.PENDING        PAYMENT_PROCESSING
 *   PAYMENT.CAPTURE.REFUNDED       REFUND_SUCCEEDED (resource: the refund;
 *                                  custom_id = payd refund id)
 *   PAYMENT.CAPTURE.REVERSED       DISPUTE_CREATED (money taken back)
 *   PAYMENT.AUTHORIZATION.VOIDED   PAYMENT_CANCELED
 *   CUSTOMER.DISPUTE.CREATED       DISPUTE_CREATED
 *   CUSTOMER.DISPUTE.RESOLVED      DISPUTE_CLOSED
 *   anything else                  IGNORED (still deduplicated)
 *
 * Captures and authorizations name the payd payment in custom_id (set at
 * create) and the order (provider_ref) in
 * supplementary_data.related_ids.order_id; disputes name it in
 * disputed_transactions[0].custom. Amounts are read with the currency's
 * ISO exponent (paypal_amount.c).
 *
 * The signature is verified over the raw bytes BEFORE the body is parsed
 * (offline mode); the API mode needs the parsed event to send it back.
 * Thread-safe.
 */
#include "paypal.h"

#include <string.h>
#include <strings.h>

/* What to read from the resource, by event family. */
enum paypal_event_kind {
    PAYPAL_EK_ORDER,
    PAYPAL_EK_PAYMENT,   /* a capture or an authorization */
    PAYPAL_EK_REFUND,
    PAYPAL_EK_DISPUTE
};

static const struct {
    const char *name;
    int kind;
    int type;
} paypal_events[] = {
    {"CHECKOUT.ORDER.APPROVED", PAYPAL_EK_ORDER, PAYD_EV_IGNORED},
    {"PAYMENT.CAPTURE.COMPLETED", PAYPAL_EK_PAYMENT, PAYD_EV_PAYMENT_SUCCEEDED},
    {"PAYMENT.CAPTURE.DENIED", PAYPAL_EK_PAYMENT, PAYD_EV_PAYMENT_FAILED},
    {"PAYMENT.CAPTURE.PENDING", PAYPAL_EK_PAYMENT, PAYD_EV_PAYMENT_PROCESSING},
    {"PAYMENT.CAPTURE.REFUNDED", PAYPAL_EK_REFUND, PAYD_EV_REFUND_SUCCEEDED},
    {"PAYMENT.CAPTURE.REVERSED", PAYPAL_EK_PAYMENT, PAYD_EV_DISPUTE_CREATED},
    {"PAYMENT.AUTHORIZATION.VOIDED", PAYPAL_EK_PAYMENT, PAYD_EV_PAYMENT_CANCELED},
    {"CUSTOMER.DISPUTE.CREATED", PAYPAL_EK_DISPUTE, PAYD_EV_DISPUTE_CREATED},
    {"CUSTOMER.DISPUTE.RESOLVED", PAYPAL_EK_DISPUTE, PAYD_EV_DISPUTE_CLOSED},
};

/* An arena copy of an id at `path` when it is a plain id. */
static const char *paypal_event_id(const payd_host *h, payd_arena *a,
                                   json_t *o, const char *path, int *oom)
{
    const char *s = paypal_jstr(o, path);

    return paypal_ok_id(s) ? payd_adup(h, a, s, oom) : NULL;
}

/* amount/currency of the Money object at `path` into out. */
static void paypal_event_amount(const payd_host *h, payd_arena *a, json_t *o,
                                const char *path, payd_event *out, int *oom)
{
    const char *currency = NULL;
    int64_t minor = 0;

    if (paypal_amount_read(paypal_jget(o, path), &minor, &currency) != PAYD_OK)
        return;
    out->amount = minor;
    out->currency = payd_adup(h, a, currency, oom);
}

static void paypal_event_fill(const payd_host *h, payd_arena *a, int kind,
                              json_t *r, payd_event *out, int *oom)
{
    switch (kind) {
    case PAYPAL_EK_ORDER:
        out->provider_ref = paypal_event_id(h, a, r, "id", oom);
        out->payment_id =
            paypal_event_id(h, a, r, "purchase_units.0.custom_id", oom);
        paypal_event_amount(h, a, r, "purchase_units.0.amount", out, oom);
        return;
    case PAYPAL_EK_PAYMENT:
        out->payment_id = paypal_event_id(h, a, r, "custom_id", oom);
        out->provider_ref = paypal_event_id(
            h, a, r, "supplementary_data.related_ids.order_id", oom);
        paypal_event_amount(h, a, r, "amount", out, oom);
        if (out->type == PAYD_EV_PAYMENT_FAILED) {
            out->failure_code = "card_declined";
            out->failure_message = "PayPal denied the payment.";
        }
        return;
    case PAYPAL_EK_REFUND:
        out->refund_ref = paypal_event_id(h, a, r, "id", oom);
        out->refund_id = paypal_event_id(h, a, r, "custom_id", oom);
        out->provider_ref = paypal_event_id(
            h, a, r, "supplementary_data.related_ids.order_id", oom);
        paypal_event_amount(h, a, r, "amount", out, oom);
        return;
    case PAYPAL_EK_DISPUTE:
        out->payment_id =
            paypal_event_id(h, a, r, "disputed_transactions.0.custom", oom);
        paypal_event_amount(h, a, r, "dispute_amount", out, oom);
        return;
    default:
        return;
    }
}

/* See paypal.h. */
int paypal_event_map(const payd_host *h, payd_arena *a, json_t *ev,
                     payd_event *out, payd_error *e)
{
    const char *type = paypal_jstr(ev, "event_type");
    json_t *resource = paypal_jget(ev, "resource");
    int64_t t = 0;
    size_t i;
    int oom = 0;

    if (!json_is_object(ev) || !paypal_ok_id(paypal_jstr(ev, "id")) ||
        type == NULL || !payd_text_ok(type, 128) || !json_is_object(resource))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: not a PayPal event (id, event_type and "
                         "resource are required)");
    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    out->type = PAYD_EV_IGNORED;
    out->provider_event_id = paypal_jdup(h, a, ev, "id", &oom);
    out->provider_type = payd_adup(h, a, type, &oom);
    if (paypal_parse_time(paypal_jstr(ev, "create_time"), &t) == 0)
        out->occurred_at = t;
    for (i = 0; i < sizeof paypal_events / sizeof paypal_events[0]; i++) {
        if (strcmp(type, paypal_events[i].name) != 0)
            continue;
        out->type = paypal_events[i].type;
        paypal_event_fill(h, a, paypal_events[i].kind, resource, out, &oom);
        break;
    }
    if (oom)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    return PAYD_OK;
}

/* The PAYPAL-* headers; *dup set when one of them came twice. */
static void paypal_webhook_headers(const payd_webhook_req *req,
                                   paypal_sig_headers *s, int *dup)
{
    static const char *const names[] = {
        "PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"};
    const char **slots[] = {&s->transmission_id, &s->transmission_time,
                            &s->transmission_sig, &s->cert_url, &s->auth_algo};
    size_t i, k;

    memset(s, 0, sizeof *s);
    *dup = 0;
    for (i = 0; req->headers != NULL && i < req->header_count; i++) {
        const payd_header *hd = &req->headers[i];

        if (hd->name == NULL || hd->value == NULL)
            continue;
        for (k = 0; k < sizeof names / sizeof names[0]; k++) {
            if (strcasecmp(hd->name, names[k]) != 0)
                continue;
            if (*slots[k] != NULL)
                *dup = 1;
            *slots[k] = hd->value;
        }
    }
}

/*
 * webhook op: verify, parse, normalize. Returns PAYD_OK (res filled,
 * strings in the arena), PAYD_E_SIGNATURE (missing, duplicated, stale or
 * wrong signature: nothing parsed in offline mode), PAYD_E_INVALID (signed
 * but not a PayPal event), PAYD_E_TRANSIENT (the certificate or the
 * verification API could not be reached: PayPal should retry) or
 * PAYD_E_NOMEM.
 */
int paypal_webhook(void *state, const payd_webhook_req *req_in,
                   payd_event *res, payd_arena *a, payd_error *e)
{
    paypal_instance *inst = state;
    payd_webhook_req req;
    paypal_sig_headers sig;
    payd_event out;
    const char *body;
    json_t *ev = NULL;
    int dup, rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (req.body == NULL && req.body_len != 0)
        return payd_fail(e, PAYD_E_INVALID, "webhook body missing");
    if (req.body_len > PAYPAL_WEBHOOK_BODY_MAX)
        return payd_fail(e, PAYD_E_INVALID, "webhook body too large");
    body = req.body != NULL ? req.body : "";
    paypal_webhook_headers(&req, &sig, &dup);
    if (dup)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: a PAYPAL-* signature header came twice");
    if (inst->verify_mode == PAYPAL_VERIFY_API)
        ev = json_loadb(body, req.body_len, JSON_REJECT_DUPLICATES, NULL);
    rc = paypal_signature_verify(inst, a, &sig, body, req.body_len, ev, e);
    if (rc != PAYD_OK) {
        json_decref(ev);
        return rc;
    }
    if (ev == NULL)
        ev = json_loadb(body, req.body_len, JSON_REJECT_DUPLICATES, NULL);
    rc = paypal_event_map(inst->h, a, ev, &out, e);
    json_decref(ev);
    if (rc != PAYD_OK)
        return rc;
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}
