/*
 * modules/paypal/paypal_errors.c - what PayPal's errors mean to payd.
 *
 * PayPal answers an error with an HTTP status and
 *   {"name":"UNPROCESSABLE_ENTITY","message":"...","debug_id":"...",
 *    "details":[{"issue":"INSTRUMENT_DECLINED","description":"..."}],
 *    "links":[...]}
 * (OAuth errors are {"error":"invalid_client","error_description":...}).
 *
 * The mapping (the core acts on the code, see module.h):
 *   401, 403                         PAYD_E_AUTH (paypal_api.c has already
 *                                    refreshed the token and retried once)
 *   429, 5xx                         PAYD_E_TRANSIENT
 *   issue INSTRUMENT_DECLINED and    PAYD_E_DECLINED, failure_code
 *   the other funding refusals       card_declined (expired_card,
 *                                    insufficient_funds where PayPal says
 *                                    so); the orders code turns it into
 *                                    requires_action when PayPal offers a
 *                                    link to choose another funding source
 *   issue PAYER_ACTION_REQUIRED      PAYD_E_DECLINED with
 *                                    authentication_required (likewise
 *                                    requires_action when there is a link)
 *   409 PREVIOUS_REQUEST_IN_PROGRESS PAYD_E_TRANSIENT: the first request
 *                                    with this PayPal-Request-Id still runs
 *   other 409, DUPLICATE_INVOICE_ID  PAYD_E_PROVIDER
 *   404, RESOURCE_NOT_FOUND,         PAYD_E_NOTFOUND
 *   INVALID_RESOURCE_ID
 *   other 400 / 422                  PAYD_E_INVALID (INVALID_REQUEST,
 *   (UNPROCESSABLE_ENTITY)           UNPROCESSABLE_ENTITY, ORDER_NOT_APPROVED
 *                                    ...: the orders code reads the issue)
 *   anything else                    PAYD_E_TRANSIENT (an unknown outcome
 *                                    is the safe reading of a surprise)
 *
 * PayPal's messages are passed on only when they cannot carry a card
 * number. Stateless, thread-safe.
 */
#include "paypal.h"

#include <stdio.h>
#include <string.h>

/* Issues that are a refusal of the buyer's funding, and payd's code. */
static const struct {
    const char *issue;
    const char *payd;
} paypal_declines[] = {
    {"INSTRUMENT_DECLINED", "card_declined"},
    {"TRANSACTION_REFUSED", "card_declined"},
    {"PAYER_CANNOT_PAY", "card_declined"},
    {"PAYER_ACCOUNT_RESTRICTED", "card_declined"},
    {"PAYER_ACCOUNT_LOCKED_OR_CLOSED", "card_declined"},
    {"PAYEE_BLOCKED_TRANSACTION", "card_declined"},
    {"REDIRECT_PAYER_FOR_ALTERNATE_FUNDING", "card_declined"},
    {"MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED", "card_velocity_exceeded"},
    {"CARD_EXPIRED", "expired_card"},
    {"INSUFFICIENT_FUNDS", "insufficient_funds"},
    {"PAYER_ACTION_REQUIRED", "authentication_required"},
};

const char *paypal_error_issue(json_t *body)
{
    const char *issue = paypal_jstr(body, "details.0.issue");

    return issue != NULL ? issue : paypal_jstr(body, "name");
}

void paypal_safe_message(const char *msg, const char *fallback, char *out,
                         size_t out_len)
{
    if (out_len == 0)
        return;
    if (msg == NULL || msg[0] == '\0' || !payd_text_ok(msg, 1000) ||
        payd_has_card_digits(msg))
        msg = fallback;
    snprintf(out, out_len, "%s", msg);
}

/* "paypal: <issue>: <description>" with a safe description. */
static int paypal_error_text(payd_error *e, int code, json_t *body,
                             const char *fallback)
{
    const char *issue = paypal_error_issue(body);
    const char *desc = paypal_jstr(body, "details.0.description");
    char safe[180];

    if (desc == NULL)
        desc = paypal_jstr(body, "message");
    paypal_safe_message(desc, fallback, safe, sizeof safe);
    if (issue != NULL && paypal_ok_id(issue))
        return payd_fail(e, code, "paypal: %s: %s", issue, safe);
    return payd_fail(e, code, "paypal: %s", safe);
}

int paypal_error_map(long status, json_t *body, payd_error *e)
{
    const char *issue = paypal_error_issue(body);
    size_t i;

    if (status == 401 || status == 403)
        return payd_fail(e, PAYD_E_AUTH,
                         "paypal: the API rejected the client credentials "
                         "(HTTP %ld)",
                         status);
    if (status == 429)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: rate limited (HTTP 429)");
    if (status >= 500)
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "paypal: provider error (HTTP %ld)", status);
    for (i = 0; issue != NULL &&
                i < sizeof paypal_declines / sizeof *paypal_declines;
         i++) {
        char safe[200];

        if (strcmp(issue, paypal_declines[i].issue) != 0)
            continue;
        /* Shown to the buyer as the failure message: no prefix. */
        snprintf(e->failure_code, sizeof e->failure_code, "%s",
                 paypal_declines[i].payd);
        paypal_safe_message(paypal_jstr(body, "details.0.description"),
                            "The payment was declined.", safe, sizeof safe);
        return payd_fail(e, PAYD_E_DECLINED, "%s", safe);
    }
    if (status == 409 && issue != NULL &&
        strcmp(issue, "PREVIOUS_REQUEST_IN_PROGRESS") == 0)
        return paypal_error_text(e, PAYD_E_TRANSIENT, body,
                                 "a request with this PayPal-Request-Id is "
                                 "still in progress");
    if (status == 409 ||
        (issue != NULL && strcmp(issue, "DUPLICATE_INVOICE_ID") == 0))
        return paypal_error_text(e, PAYD_E_PROVIDER, body,
                                 "the request conflicts with another one");
    if (status == 404 ||
        (issue != NULL && (strcmp(issue, "RESOURCE_NOT_FOUND") == 0 ||
                           strcmp(issue, "INVALID_RESOURCE_ID") == 0)))
        return paypal_error_text(e, PAYD_E_NOTFOUND, body, "no such object");
    if (status >= 400)
        return paypal_error_text(e, PAYD_E_INVALID, body,
                                 "the request was rejected");
    return payd_fail(e, PAYD_E_TRANSIENT,
                     "paypal: unexpected HTTP status %ld", status);
}
