/*
 * modules/stripe/stripe_webhook.c - the webhook operation: verify a raw
 * Stripe delivery, then translate its event into one payd_event.
 *
 * Events and what they become:
 *   payment_intent.succeeded                  PAYMENT_SUCCEEDED (amount_received)
 *   payment_intent.payment_failed             PAYMENT_FAILED (decline code)
 *   payment_intent.requires_action            PAYMENT_REQUIRES_ACTION
 *   payment_intent.canceled                   PAYMENT_CANCELED
 *   payment_intent.processing                 PAYMENT_PROCESSING
 *   payment_intent.amount_capturable_updated  PAYMENT_CAPTURABLE (amount_capturable)
 *   charge.refunded                           the charge's latest refund:
 *                                             REFUND_SUCCEEDED / _FAILED
 *   refund.created, refund.updated            by the refund's status:
 *                                             succeeded -> REFUND_SUCCEEDED,
 *                                             failed/canceled -> REFUND_FAILED,
 *                                             pending -> ignored
 *   refund.failed                             REFUND_FAILED
 *   charge.dispute.created / .closed          DISPUTE_CREATED / _CLOSED
 *   payment_method.attached                   METHOD_ATTACHED
 *   anything else                             IGNORED (still deduplicated)
 *
 * The payd payment is named by metadata.payd_payment_id (which Stripe
 * copies from the PaymentIntent to its charges, and which refunds carry
 * too), and in every case by provider_ref, the PaymentIntent id; a refund
 * by metadata.payd_refund_id and its re_ id. Which of them to trust is the
 * core's decision.
 *
 * The signature is verified over the raw bytes BEFORE the body is parsed.
 * Thread-safe: reads only the immutable instance.
 */
#include "stripe.h"

#include <string.h>
#include <strings.h>

/* What to read from data.object, by event family. */
enum stripe_event_kind {
    STRIPE_EK_INTENT,
    STRIPE_EK_CHARGE_REFUNDED,
    STRIPE_EK_REFUND,
    STRIPE_EK_DISPUTE,
    STRIPE_EK_METHOD
};

static const struct {
    const char *name;
    int kind;
    int type;               /* PAYD_EV_*, or -1: by the refund's status */
} stripe_events[] = {
    {"payment_intent.succeeded", STRIPE_EK_INTENT, PAYD_EV_PAYMENT_SUCCEEDED},
    {"payment_intent.payment_failed", STRIPE_EK_INTENT, PAYD_EV_PAYMENT_FAILED},
    {"payment_intent.requires_action", STRIPE_EK_INTENT,
     PAYD_EV_PAYMENT_REQUIRES_ACTION},
    {"payment_intent.canceled", STRIPE_EK_INTENT, PAYD_EV_PAYMENT_CANCELED},
    {"payment_intent.processing", STRIPE_EK_INTENT, PAYD_EV_PAYMENT_PROCESSING},
    {"payment_intent.amount_capturable_updated", STRIPE_EK_INTENT,
     PAYD_EV_PAYMENT_CAPTURABLE},
    {"charge.refunded", STRIPE_EK_CHARGE_REFUNDED, -1},
    {"refund.created", STRIPE_EK_REFUND, -1},
    {"refund.updated", STRIPE_EK_REFUND, -1},
    {"refund.failed", STRIPE_EK_REFUND, PAYD_EV_REFUND_FAILED},
    {"charge.dispute.created", STRIPE_EK_DISPUTE, PAYD_EV_DISPUTE_CREATED},
    {"charge.dispute.closed", STRIPE_EK_DISPUTE, PAYD_EV_DISPUTE_CLOSED},
    {"payment_method.attached", STRIPE_EK_METHOD, PAYD_EV_METHOD_ATTACHED},
};

/* An arena copy of an id at `path` when it is a plain Stripe/payd id. */
static const char *stripe_event_id(const payd_host *h, payd_arena *a,
                                   json_t *o, const char *path, int *oom)
{
    const char *s = stripe_jstr(o, path);

    return stripe_ok_id(s) ? payd_adup(h, a, s, oom) : NULL;
}

/* A refund's status as an event type; IGNORED while it is pending. */
static int stripe_event_refund_type(json_t *re)
{
    switch (stripe_refund_status(stripe_jstr(re, "status"))) {
    case PAYD_RS_SUCCEEDED:
        return PAYD_EV_REFUND_SUCCEEDED;
    case PAYD_RS_FAILED:
    case PAYD_RS_CANCELED:
        return PAYD_EV_REFUND_FAILED;
    default:
        return PAYD_EV_IGNORED;
    }
}

/* Refund fields of `re` into `out`. */
static void stripe_event_refund(const payd_host *h, payd_arena *a, json_t *re,
                                payd_event *out, int *oom)
{
    const char *reason = stripe_jstr(re, "failure_reason");

    out->refund_ref = stripe_event_id(h, a, re, "id", oom);
    out->refund_id = stripe_event_id(h, a, re, "metadata.payd_refund_id", oom);
    out->amount = stripe_jint(re, "amount", 0);
    out->currency = stripe_jcurrency(h, a, re, "currency", oom);
    if (out->payment_id == NULL)
        out->payment_id =
            stripe_event_id(h, a, re, "metadata.payd_payment_id", oom);
    if (out->provider_ref == NULL)
        out->provider_ref = stripe_event_id(h, a, re, "payment_intent", oom);
    if (out->type == PAYD_EV_REFUND_FAILED) {
        out->failure_code = stripe_ok_id(reason)
                                ? payd_adup(h, a, reason, oom)
                                : "refund_failed";
        out->failure_message = "Stripe could not refund the payment";
    }
}

/*
 * Fill the event-specific fields of `out` from data.object `obj`; out->type
 * holds the table's type on entry (-1: decided here).
 */
static void stripe_event_map(const payd_host *h, payd_arena *a, int kind,
                             json_t *obj, payd_event *out, int *oom)
{
    char msg[200];
    json_t *re;

    switch (kind) {
    case STRIPE_EK_INTENT:
        out->provider_ref = stripe_event_id(h, a, obj, "id", oom);
        out->payment_id =
            stripe_event_id(h, a, obj, "metadata.payd_payment_id", oom);
        out->currency = stripe_jcurrency(h, a, obj, "currency", oom);
        out->amount =
            stripe_jint(obj,
                        out->type == PAYD_EV_PAYMENT_SUCCEEDED ? "amount_received"
                        : out->type == PAYD_EV_PAYMENT_CAPTURABLE
                            ? "amount_capturable"
                            : "amount",
                        0);
        if (out->type == PAYD_EV_PAYMENT_FAILED) {
            out->failure_code = stripe_failure_code(
                stripe_jstr(obj, "last_payment_error.code"),
                stripe_jstr(obj, "last_payment_error.decline_code"));
            stripe_safe_message(stripe_jstr(obj, "last_payment_error.message"),
                                "The payment failed.", msg, sizeof msg);
            out->failure_message = payd_adup(h, a, msg, oom);
        }
        return;
    case STRIPE_EK_CHARGE_REFUNDED:
        /* The charge lists its refunds newest first (when Stripe includes
         * them); without one payd cannot tell which refund this is. */
        out->provider_ref = stripe_event_id(h, a, obj, "payment_intent", oom);
        out->payment_id =
            stripe_event_id(h, a, obj, "metadata.payd_payment_id", oom);
        re = json_array_get(stripe_jget(obj, "refunds.data"), 0);
        out->type = json_is_object(re) ? stripe_event_refund_type(re)
                                       : PAYD_EV_IGNORED;
        if (json_is_object(re))
            stripe_event_refund(h, a, re, out, oom);
        return;
    case STRIPE_EK_REFUND:
        if (out->type < 0)
            out->type = stripe_event_refund_type(obj);
        stripe_event_refund(h, a, obj, out, oom);
        return;
    case STRIPE_EK_DISPUTE:
        out->provider_ref = stripe_event_id(h, a, obj, "payment_intent", oom);
        out->payment_id =
            stripe_event_id(h, a, obj, "metadata.payd_payment_id", oom);
        out->amount = stripe_jint(obj, "amount", 0);
        out->currency = stripe_jcurrency(h, a, obj, "currency", oom);
        return;
    default:
        return;
    }
}

/* The one Stripe-Signature header; NULL when absent, and `dup` set when
 * there is more than one. */
static const char *stripe_webhook_header(const payd_webhook_req *req, int *dup)
{
    const char *sig = NULL;
    size_t i;

    *dup = 0;
    for (i = 0; req->headers != NULL && i < req->header_count; i++) {
        const payd_header *hd = &req->headers[i];

        if (hd->name == NULL || hd->value == NULL ||
            strcasecmp(hd->name, "Stripe-Signature") != 0)
            continue;
        if (sig != NULL)
            *dup = 1;
        sig = hd->value;
    }
    return sig;
}

/*
 * webhook op: verify, parse, normalize. Returns PAYD_OK (res filled,
 * strings in the arena), PAYD_E_SIGNATURE (missing, duplicated, malformed,
 * wrong or stale signature: nothing parsed), PAYD_E_INVALID (signed but not
 * a Stripe event) or PAYD_E_NOMEM.
 */
int stripe_webhook(void *state, const payd_webhook_req *req_in,
                   payd_event *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    const payd_host *h = inst->h;
    payd_webhook_req req;
    payd_event out;
    const char *sig, *type;
    json_t *ev, *obj;
    int64_t t = 0;
    size_t i;
    int dup, oom = 0, rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (req.body == NULL && req.body_len != 0)
        return payd_fail(e, PAYD_E_INVALID, "webhook body missing");
    if (req.body_len > STRIPE_WEBHOOK_BODY_MAX)
        return payd_fail(e, PAYD_E_INVALID, "webhook body too large");
    sig = stripe_webhook_header(&req, &dup);
    if (dup)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "more than one Stripe-Signature header");
    rc = stripe_signature_verify(inst, a, sig, req.body != NULL ? req.body : "",
                                 req.body_len, &t, e);
    if (rc != PAYD_OK)
        return rc;

    ev = json_loadb(req.body != NULL ? req.body : "", req.body_len,
                    JSON_REJECT_DUPLICATES, NULL);
    type = stripe_jstr(ev, "type");
    obj = stripe_jget(ev, "data.object");
    if (!json_is_object(ev) || !stripe_ok_id(stripe_jstr(ev, "id")) ||
        type == NULL || !payd_text_ok(type, 128) || !json_is_object(obj)) {
        json_decref(ev);
        return payd_fail(e, PAYD_E_INVALID,
                         "signed, but not a Stripe event (id, type and "
                         "data.object are required)");
    }
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.type = PAYD_EV_IGNORED;
    out.provider_event_id = stripe_jdup(h, a, ev, "id", &oom);
    out.provider_type = payd_adup(h, a, type, &oom);
    out.occurred_at = stripe_jint(ev, "created", t);
    for (i = 0; i < sizeof stripe_events / sizeof stripe_events[0]; i++) {
        if (strcmp(type, stripe_events[i].name) != 0)
            continue;
        out.type = stripe_events[i].type;
        stripe_event_map(h, a, stripe_events[i].kind, obj, &out, &oom);
        break;
    }
    json_decref(ev);
    if (oom)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}
