/*
 * modules/stripe/stripe_errors.c - what Stripe's errors mean to payd.
 *
 * Stripe answers an error with an HTTP status and
 *   {"error":{"type":"card_error","code":"card_declined",
 *             "decline_code":"insufficient_funds","message":"...",
 *             "param":"...","payment_intent":{...}}}
 *
 * The mapping (the core acts on the code, see module.h):
 *   402 or type card_error          PAYD_E_DECLINED, normalized failure code
 *   401, 403                        PAYD_E_AUTH (Stripe's message is dropped:
 *                                   it quotes part of the key)
 *   type idempotency_error          PAYD_E_PROVIDER with the message: the key
 *                                   was used with other parameters; but
 *   code idempotency_key_in_use     PAYD_E_TRANSIENT: the first request with
 *                                   this key is still running, its outcome
 *                                   is unknown and a later retry with the
 *                                   same key is exactly what is safe
 *   429, 5xx, type api_error        PAYD_E_TRANSIENT
 *   404 / code resource_missing     PAYD_E_NOTFOUND
 *   other 4xx, invalid_request_error PAYD_E_INVALID
 *   anything else                   PAYD_E_TRANSIENT (unknown outcome is the
 *                                   safe reading of a surprising answer)
 *
 * Stripe's messages are passed on only when they cannot carry a card
 * number or a credential (stripe_safe_message). Stateless, thread-safe.
 */
#include "stripe.h"

#include <stdio.h>
#include <string.h>

/* Stripe decline codes and error codes with a payd name of their own;
 * every other decline is card_declined (lost_card, stolen_card, fraudulent
 * and friends are deliberately not told apart to a buyer). */
static const struct {
    const char *stripe;
    const char *payd;
} stripe_failure_codes[] = {
    {"insufficient_funds", "insufficient_funds"},
    {"expired_card", "expired_card"},
    {"incorrect_cvc", "incorrect_cvc"},
    {"invalid_cvc", "incorrect_cvc"},
    {"incorrect_number", "incorrect_number"},
    {"invalid_number", "incorrect_number"},
    {"invalid_expiry_month", "invalid_expiry"},
    {"invalid_expiry_year", "invalid_expiry"},
    {"processing_error", "processing_error"},
    {"authentication_required", "authentication_required"},
    {"authentication_not_handled", "authentication_required"},
    {"payment_intent_authentication_failure", "authentication_required"},
    {"card_velocity_exceeded", "card_velocity_exceeded"},
    {"card_not_supported", "card_not_supported"},
    {"currency_not_supported", "currency_not_supported"},
    {"card_declined", "card_declined"},
};

static const char *stripe_failure_lookup(const char *s)
{
    size_t i;

    if (s == NULL)
        return NULL;
    for (i = 0; i < sizeof stripe_failure_codes / sizeof stripe_failure_codes[0];
         i++)
        if (strcmp(s, stripe_failure_codes[i].stripe) == 0)
            return stripe_failure_codes[i].payd;
    return NULL;
}

/*
 * The decline code is the more precise of the two (code is card_declined
 * for most declines), so it wins when payd knows it; then the code; then
 * the catch-all card_declined.
 */
const char *stripe_failure_code(const char *code, const char *decline_code)
{
    const char *c = stripe_failure_lookup(decline_code);

    if (c == NULL)
        c = stripe_failure_lookup(code);
    return c != NULL ? c : "card_declined";
}

void stripe_safe_message(const char *msg, const char *fallback, char *out,
                         size_t out_len)
{
    if (out_len == 0)
        return;
    if (msg == NULL || msg[0] == '\0' || payd_has_card_digits(msg) ||
        strstr(msg, "sk_") != NULL || strstr(msg, "rk_") != NULL ||
        strstr(msg, "whsec_") != NULL || strstr(msg, "_secret_") != NULL)
        msg = fallback;
    snprintf(out, out_len, "%s", msg);
}

/* "stripe: <type>: <message> (param <param>)" with a safe message. */
static int stripe_error_text(payd_error *e, int code, const char *prefix,
                             json_t *err, const char *fallback)
{
    char safe[200];
    const char *param = stripe_jstr(err, "param");

    stripe_safe_message(stripe_jstr(err, "message"), fallback, safe,
                        sizeof safe);
    if (param != NULL && payd_text_ok(param, 64) &&
        !payd_has_card_digits(param))
        return payd_fail(e, code, "stripe: %s%s (param %s)", prefix, safe,
                         param);
    return payd_fail(e, code, "stripe: %s%s", prefix, safe);
}

int stripe_error_map(long status, json_t *body, payd_error *e)
{
    json_t *err = stripe_jget(body, "error");
    const char *type = stripe_jstr(err, "type");
    const char *code = stripe_jstr(err, "code");

    if (!json_is_object(err))
        err = NULL;
    if (status == 401 || status == 403)
        return payd_fail(e, PAYD_E_AUTH,
                         "stripe: the API rejected the secret key (HTTP "
                         "%ld)",
                         status);
    if (status == 402 || (type != NULL && strcmp(type, "card_error") == 0)) {
        const char *fc = stripe_failure_code(code,
                                             stripe_jstr(err, "decline_code"));

        char safe[200];

        /* Shown to the buyer as the failure message: no prefix. */
        if (e != NULL)
            snprintf(e->failure_code, sizeof e->failure_code, "%s", fc);
        stripe_safe_message(stripe_jstr(err, "message"),
                            "Your card was declined.", safe, sizeof safe);
        return payd_fail(e, PAYD_E_DECLINED, "%s", safe);
    }
    if (type != NULL && strcmp(type, "idempotency_error") == 0) {
        if (code != NULL && strcmp(code, "idempotency_key_in_use") == 0)
            return stripe_error_text(e, PAYD_E_TRANSIENT,
                                     "request still in progress: ", err,
                                     "another request with this "
                                     "Idempotency-Key is in progress");
        return stripe_error_text(e, PAYD_E_PROVIDER, "idempotency error: ",
                                 err, "the Idempotency-Key was reused with "
                                      "different parameters");
    }
    if (status == 429)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: rate limited (HTTP 429)");
    if (status >= 500 || (type != NULL && strcmp(type, "api_error") == 0))
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: provider error (HTTP %ld)", status);
    if (status == 404 ||
        (code != NULL && strcmp(code, "resource_missing") == 0))
        return stripe_error_text(e, PAYD_E_NOTFOUND, "", err,
                                 "no such object");
    if (status == 409)
        return stripe_error_text(e, PAYD_E_PROVIDER, "conflict: ", err,
                                 "the request conflicts with another one");
    if (status >= 400)
        return stripe_error_text(e, PAYD_E_INVALID, "", err,
                                 "the request was rejected");
    return payd_fail(e, PAYD_E_TRANSIENT,
                     "stripe: unexpected HTTP status %ld", status);
}
