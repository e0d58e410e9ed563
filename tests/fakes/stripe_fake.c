/*
 * tests/fakes/stripe_fake.c - a local fake of the Stripe API, for tests.
 *
 *   stripe_fake PORT FIXTURES_JSON [SECRET_KEY]
 *
 * PORT 0 lets the system choose. Once listening it prints one line,
 * "stripe_fake listening on 127.0.0.1:PORT", and serves until SIGTERM or
 * SIGINT. SECRET_KEY (else $STRIPE_FAKE_SECRET_KEY, else "sk_test_fake") is
 * the only key it accepts.
 *
 * It speaks Stripe's wire format: form-encoded bodies in (nested keys such
 * as metadata[k] and list[]), Stripe JSON out, every object built from the
 * templates in stripe-mock's fixtures3.json (payment_intent, refund,
 * customer, payment_method, charge, event) with the fields the request
 * decides overridden, and errors in Stripe's {"error":{...}} shape.
 *
 * API (Authorization: Bearer <key> required, else 401):
 *   POST /v1/payment_intents              create (confirm=true confirms)
 *   GET  /v1/payment_intents/{id}
 *   POST /v1/payment_intents/{id}/confirm|capture|cancel
 *   POST /v1/refunds, GET /v1/refunds/{id}
 *   POST /v1/customers, GET|DELETE /v1/customers/{id}
 *   GET  /v1/payment_methods?customer=&type=, GET /v1/payment_methods/{id}
 *   POST /v1/payment_methods/{id}/attach|detach
 * Test payment methods behave as Stripe's: pm_card_visa (and _mastercard,
 * _amex) succeed; pm_card_chargeDeclined, pm_card_chargeDeclinedInsufficientFunds
 * (alias pm_card_insufficientFunds), pm_card_chargeDeclinedExpiredCard,
 * pm_card_chargeDeclinedIncorrectCvc and pm_card_chargeDeclinedProcessingError
 * decline with a 402 card_error; pm_card_threeDSecure2Required and
 * pm_card_authenticationRequired need action (redirect_to_url when a
 * return_url was given, else use_stripe_sdk).
 *
 * Idempotency, as Stripe: a POST's Idempotency-Key stores the answer of a
 * request that reached the endpoint (2xx and 402); the same key and body
 * replay it (Idempotent-Replayed: true); the same key with another body is
 * 400 idempotency_error; the same key while the first request still runs
 * is 409 idempotency_key_in_use. Rate limits and injected 500s happen
 * before the endpoint and store nothing.
 *
 * Control (no auth):
 *   GET  /_fake/requests[?method=M&path=P]  every API request: method,
 *        path, query, idempotency_key, stripe_version, authorization
 *        (present), auth_ok, params (decoded form), status, replayed, fault
 *   GET  /_fake/objects   {"payment_intents":[{"idempotency_key":K,
 *        "object":{...}}], "refunds":[...], "customers":[...],
 *        "payment_methods":[...]}
 *   POST /_fake/reset     forget everything
 *   POST /_fake/next      {"action":"decline"|"insufficient_funds"|
 *        "require_action"|"status_429"|"status_500"|"malformed"|"hang",
 *        "ms":N,"count":N}: applies to the next `count` (default 1) API
 *        calls; hang sleeps `ms` (default 3000) before processing; malformed
 *        applies the call and answers a truncated body
 *   POST /_fake/payment_intents/{id}/authenticate  {"result":"succeed"|"fail"}
 *        finishes a requires_action PaymentIntent as the buyer would
 *   GET  /_fake/event?type=T&id=ID  a Stripe event envelope around the
 *        current object (PaymentIntent, Refund, or for charge.* the
 *        PaymentIntent's charge with its refunds), for tests to sign
 *
 * CivetWeb serves each connection on its own thread; all state is behind
 * one mutex, never held while sleeping.
 */
#include <civetweb.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/evp.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "fake_http.h"

#define FK_MAX_FAULTS 32

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct fk_fault {
    char action[32];
    long ms;
    long count;
} fk_fault;

static struct {
    pthread_mutex_t mu;
    char key[512];
    int port;
    json_t *tpl;          /* fixtures3.json "resources" */
    json_t *intents;      /* id -> PaymentIntent */
    json_t *intent_keys;  /* id -> Idempotency-Key that created it */
    json_t *intent_order; /* [id] in creation order */
    json_t *refunds;      /* id -> Refund */
    json_t *refund_order;
    json_t *customers;    /* id -> Customer */
    json_t *methods;      /* id -> PaymentMethod */
    json_t *method_cards; /* id -> test card token it was made from */
    json_t *method_order;
    json_t *idem;         /* key -> {"fp","done","status","body"} */
    json_t *requests;     /* [record] */
    fk_fault faults[FK_MAX_FAULTS];
    int nfaults;
    long seq;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fk_state_reset_locked(void)
{
    json_decref(F.intents);
    json_decref(F.intent_keys);
    json_decref(F.intent_order);
    json_decref(F.refunds);
    json_decref(F.refund_order);
    json_decref(F.customers);
    json_decref(F.methods);
    json_decref(F.method_cards);
    json_decref(F.method_order);
    json_decref(F.idem);
    json_decref(F.requests);
    F.intents = json_object();
    F.intent_keys = json_object();
    F.intent_order = json_array();
    F.refunds = json_object();
    F.refund_order = json_array();
    F.customers = json_object();
    F.methods = json_object();
    F.method_cards = json_object();
    F.method_order = json_array();
    F.idem = json_object();
    F.requests = json_array();
    F.nfaults = 0;
}

/* A random [a-zA-Z0-9] string of n characters after `prefix`. */
static char *fk_id(const char *prefix, size_t n)
{
    static const char abc[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[64];
    size_t plen = strlen(prefix), i;
    char *s = malloc(plen + n + 1);

    if (n > sizeof rnd)
        n = sizeof rnd;
    if (RAND_bytes(rnd, (int)n) != 1)
        memset(rnd, 7, n);
    memcpy(s, prefix, plen);
    for (i = 0; i < n; i++)
        s[plen + i] = abc[rnd[i] % (sizeof abc - 1)];
    s[plen + n] = '\0';
    return s;
}

static void fk_set_new_id(json_t *o, const char *key, const char *prefix,
                          size_t n)
{
    char *id = fk_id(prefix, n);

    json_object_set_new(o, key, json_string(id));
    free(id);
}

/* ------------------------------------------------------------------------ */
/* Form bodies                                                              */
/* ------------------------------------------------------------------------ */

static int fk_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode [s, s+n) ('+' is a space). malloc'd. */
static char *fk_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (s[i] == '+') {
            out[o++] = ' ';
        } else if (s[i] == '%' && i + 2 < n && fk_hexval(s[i + 1]) >= 0 &&
                   fk_hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(fk_hexval(s[i + 1]) << 4 | fk_hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/*
 * A form body as a flat JSON object: key -> string, and key -> [strings]
 * for keys ending in "[]" or given more than once. Returns NULL when a
 * pair has no '=' (Stripe answers that with 400).
 */
static json_t *fk_form_parse(const char *body, size_t len)
{
    json_t *o = json_object();
    size_t i = 0;

    while (i < len) {
        size_t end = i, eq;
        char *k, *v;
        json_t *old;

        while (end < len && body[end] != '&')
            end++;
        if (end == i) {
            i++;
            continue;
        }
        eq = i;
        while (eq < end && body[eq] != '=')
            eq++;
        if (eq == end) {
            json_decref(o);
            return NULL;
        }
        k = fk_decode(body + i, eq - i);
        v = fk_decode(body + eq + 1, end - eq - 1);
        old = json_object_get(o, k);
        if (json_is_array(old)) {
            json_array_append_new(old, json_string(v));
        } else if (old != NULL) {
            json_t *arr = json_array();

            json_array_append(arr, old);
            json_array_append_new(arr, json_string(v));
            json_object_set_new(o, k, arr);
        } else if (strlen(k) > 2 && strcmp(k + strlen(k) - 2, "[]") == 0) {
            json_t *arr = json_array();

            json_array_append_new(arr, json_string(v));
            json_object_set_new(o, k, arr);
        } else {
            json_object_set_new(o, k, json_string(v));
        }
        free(k);
        free(v);
        i = end + 1;
    }
    return o;
}

/* The members "prefix[name]" of a flat form as {"name": value}. */
static json_t *fk_form_nested(json_t *params, const char *prefix)
{
    json_t *o = json_object(), *v;
    const char *k;
    size_t plen = strlen(prefix);

    json_object_foreach(params, k, v) {
        size_t klen = strlen(k);

        if (klen > plen + 2 && strncmp(k, prefix, plen) == 0 &&
            k[plen] == '[' && k[klen - 1] == ']') {
            char *name = strndup(k + plen + 1, klen - plen - 2);

            if (name[0] != '\0' && json_is_string(v))
                json_object_set(o, name, v);
            free(name);
        }
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fk_answer {
    int status;
    json_t *body;         /* owned */
} fk_answer;

static void fk_answer_set(fk_answer *a, int status, json_t *body)
{
    json_decref(a->body);
    a->status = status;
    a->body = body;
}

/* Stripe's error object. `extra` (owned, may be NULL) is merged in. */
static void fk_error(fk_answer *a, int status, const char *type,
                     const char *code, const char *param, json_t *extra,
                     const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void fk_error(fk_answer *a, int status, const char *type,
                     const char *code, const char *param, json_t *extra,
                     const char *fmt, ...)
{
    char msg[512];
    json_t *err;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err = json_pack("{s:s, s:s}", "type", type, "message", msg);
    if (code != NULL) {
        char doc[160];

        json_object_set_new(err, "code", json_string(code));
        snprintf(doc, sizeof doc, "https://stripe.com/docs/error-codes/%s",
                 code);
        json_object_set_new(err, "doc_url", json_string(doc));
    }
    if (param != NULL)
        json_object_set_new(err, "param", json_string(param));
    if (extra != NULL) {
        json_object_update(err, extra);
        json_decref(extra);
    }
    fk_answer_set(a, status, json_pack("{s:o}", "error", err));
}

static void fk_missing(fk_answer *a, const char *what, const char *id,
                       const char *param)
{
    fk_error(a, 404, "invalid_request_error", "resource_missing", param, NULL,
             "No such %s: '%s'", what, id);
}

/* ------------------------------------------------------------------------ */
/* Test cards                                                               */
/* ------------------------------------------------------------------------ */

enum { FK_OK, FK_DECLINE, FK_3DS };

typedef struct fk_card {
    const char *token;
    const char *brand;
    const char *last4;
    int behaviour;
    const char *code;
    const char *decline_code;
    const char *message;
} fk_card;

static const fk_card fk_cards[] = {
    {"pm_card_visa", "visa", "4242", FK_OK, NULL, NULL, NULL},
    {"pm_card_mastercard", "mastercard", "4444", FK_OK, NULL, NULL, NULL},
    {"pm_card_amex", "amex", "8431", FK_OK, NULL, NULL, NULL},
    {"pm_card_chargeDeclined", "visa", "0002", FK_DECLINE, "card_declined",
     "generic_decline", "Your card was declined."},
    {"pm_card_chargeDeclinedInsufficientFunds", "visa", "9995", FK_DECLINE,
     "card_declined", "insufficient_funds", "Your card has insufficient funds."},
    {"pm_card_insufficientFunds", "visa", "9995", FK_DECLINE, "card_declined",
     "insufficient_funds", "Your card has insufficient funds."},
    {"pm_card_chargeDeclinedExpiredCard", "visa", "0069", FK_DECLINE,
     "expired_card", "expired_card", "Your card has expired."},
    {"pm_card_chargeDeclinedIncorrectCvc", "visa", "0127", FK_DECLINE,
     "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."},
    {"pm_card_chargeDeclinedProcessingError", "visa", "0119", FK_DECLINE,
     "processing_error", "processing_error",
     "An error occurred while processing your card. Try again in a little bit."},
    {"pm_card_threeDSecure2Required", "visa", "3184", FK_3DS, NULL, NULL, NULL},
    {"pm_card_authenticationRequired", "visa", "3155", FK_3DS, NULL, NULL,
     NULL},
};

static const fk_card *fk_card_find(const char *token)
{
    size_t i;

    for (i = 0; token != NULL && i < sizeof fk_cards / sizeof fk_cards[0]; i++)
        if (strcmp(fk_cards[i].token, token) == 0)
            return &fk_cards[i];
    return NULL;
}

/* A new PaymentMethod object from a test card (stored, not attached). */
static json_t *fk_method_new_locked(const fk_card *c)
{
    json_t *pm = json_deep_copy(json_object_get(F.tpl, "payment_method"));
    json_t *card = json_object_get(pm, "card");
    const char *id;

    fk_set_new_id(pm, "id", "pm_1Qfk", 20);
    json_object_set_new(pm, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(pm, "customer", json_null());
    json_object_set_new(pm, "metadata", json_object());
    json_object_set_new(card, "brand", json_string(c->brand));
    json_object_set_new(card, "display_brand", json_string(c->brand));
    json_object_set_new(card, "last4", json_string(c->last4));
    json_object_set_new(card, "exp_month", json_integer(12));
    json_object_set_new(card, "exp_year", json_integer(2034));
    id = fk_str(pm, "id");
    json_object_set(F.methods, id, pm);
    json_object_set_new(F.method_cards, id, json_string(c->token));
    json_array_append_new(F.method_order, json_string(id));
    return pm; /* the reference the caller owns */
}

/*
 * Resolve a payment_method parameter: a test token makes a new
 * PaymentMethod (as Stripe does), a pm_ id must exist. Returns the method
 * (borrowed) and its card, or NULL with `a` set to Stripe's error.
 */
static json_t *fk_method_resolve_locked(const char *ref, const fk_card **card,
                                        fk_answer *a)
{
    const fk_card *c = fk_card_find(ref);
    json_t *pm;

    if (c != NULL) {
        pm = fk_method_new_locked(c);
        json_decref(pm); /* F.methods keeps it */
        *card = c;
        return pm;
    }
    pm = json_object_get(F.methods, ref);
    if (pm == NULL) {
        fk_missing(a, "PaymentMethod", ref, "payment_method");
        return NULL;
    }
    *card = fk_card_find(fk_str(F.method_cards, ref));
    if (*card == NULL)
        *card = &fk_cards[0];
    return pm;
}

/* ------------------------------------------------------------------------ */
/* PaymentIntents                                                           */
/* ------------------------------------------------------------------------ */

/* Parameters a create accepts; anything else is parameter_unknown. */
static int fk_known_create_param(const char *k)
{
    static const char *const known[] = {
        "amount", "currency", "capture_method", "confirm", "customer",
        "description", "payment_method", "payment_method_types[]",
        "return_url", "statement_descriptor_suffix", "receipt_email",
        "automatic_payment_methods[enabled]",
        "automatic_payment_methods[allow_redirects]", NULL};
    int i;

    if (strncmp(k, "metadata[", 9) == 0)
        return 1;
    for (i = 0; known[i] != NULL; i++)
        if (strcmp(k, known[i]) == 0)
            return 1;
    return 0;
}

static int fk_unknown_params(json_t *params, int (*known)(const char *),
                             fk_answer *a)
{
    const char *k;
    json_t *v;

    json_object_foreach(params, k, v) {
        (void)v;
        if (!known(k)) {
            fk_error(a, 400, "invalid_request_error", "parameter_unknown", k,
                     NULL, "Received unknown parameter: %s", k);
            return 1;
        }
    }
    return 0;
}

static long long fk_amount(const char *s)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || strspn(s, "0123456789") != strlen(s) ||
        strlen(s) > 12)
        return -1;
    v = strtoll(s, &end, 10);
    return v;
}

/* Confirm `pi` with its payment method. `force` is a fault action or "". */
static void fk_intent_confirm_locked(json_t *pi, const char *force,
                                     const char *return_url, fk_answer *a)
{
    const char *pmid = fk_str(pi, "payment_method");
    json_t *pm = pmid != NULL ? json_object_get(F.methods, pmid) : NULL;
    const fk_card *c = fk_card_find(fk_str(F.method_cards, pmid ? pmid : ""));
    fk_card forced;
    long long amount = json_integer_value(json_object_get(pi, "amount"));

    if (pm == NULL) {
        fk_error(a, 400, "invalid_request_error",
                 "payment_intent_unexpected_state", "payment_method", NULL,
                 "You cannot confirm this PaymentIntent because it's missing "
                 "a payment method. To confirm the PaymentIntent with %s, "
                 "specify a payment method attached to this customer.",
                 fk_str(pi, "customer") ? fk_str(pi, "customer") : "a customer");
        return;
    }
    if (c == NULL)
        c = &fk_cards[0];
    if (strcmp(force, "decline") == 0 || strcmp(force, "insufficient_funds") == 0) {
        forced = *c;
        forced.behaviour = FK_DECLINE;
        forced.code = "card_declined";
        forced.decline_code = strcmp(force, "decline") == 0 ? "generic_decline"
                                                            : "insufficient_funds";
        forced.message = strcmp(force, "decline") == 0
                             ? "Your card was declined."
                             : "Your card has insufficient funds.";
        c = &forced;
    } else if (strcmp(force, "require_action") == 0) {
        forced = *c;
        forced.behaviour = FK_3DS;
        c = &forced;
    }
    json_object_set_new(pi, "last_payment_error", json_null());
    json_object_set_new(pi, "next_action", json_null());
    if (c->behaviour == FK_DECLINE) {
        char *ch = fk_id("ch_3Qfk", 20);

        /* As Stripe: the PaymentIntent goes back to requires_payment_method
         * with last_payment_error, and the 402 carries a copy of it. */
        json_object_set_new(pi, "status", json_string("requires_payment_method"));
        json_object_set_new(pi, "latest_charge", json_string(ch));
        json_object_set_new(
            pi, "last_payment_error",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "type", "card_error",
                      "code", c->code, "decline_code", c->decline_code,
                      "message", c->message, "charge", ch, "payment_method",
                      json_deep_copy(pm)));
        fk_error(a, 402, "card_error", c->code, NULL,
                 json_pack("{s:s, s:s, s:o, s:o}", "decline_code",
                           c->decline_code, "charge", ch, "payment_method",
                           json_deep_copy(pm), "payment_intent",
                           json_deep_copy(pi)),
                 "%s", c->message);
        free(ch);
        return;
    }
    if (c->behaviour == FK_3DS) {
        json_t *na;

        if (return_url != NULL) {
            char url[256];

            snprintf(url, sizeof url, "http://127.0.0.1:%d/_fake/3ds/%s",
                     F.port, fk_str(pi, "id"));
            na = json_pack("{s:s, s:{s:s, s:s}}", "type", "redirect_to_url",
                           "redirect_to_url", "url", url, "return_url",
                           return_url);
        } else {
            na = json_pack("{s:s, s:{s:s, s:s}}", "type", "use_stripe_sdk",
                           "use_stripe_sdk", "type", "three_d_secure_redirect",
                           "stripe_js", "https://hooks.stripe.com/3d_secure_2/");
        }
        json_object_set_new(pi, "status", json_string("requires_action"));
        json_object_set_new(pi, "next_action", na);
        fk_answer_set(a, 200, json_incref(pi));
        return;
    }
    {
        char *ch = fk_id("ch_3Qfk", 20);
        int manual = strcmp(fk_str(pi, "capture_method"), "manual") == 0;

        json_object_set_new(pi, "latest_charge", json_string(ch));
        free(ch);
        json_object_set_new(pi, "status", json_string(manual ? "requires_capture"
                                                             : "succeeded"));
        json_object_set_new(pi, "amount_capturable",
                            json_integer(manual ? amount : 0));
        json_object_set_new(pi, "amount_received",
                            json_integer(manual ? 0 : amount));
        fk_answer_set(a, 200, json_incref(pi));
    }
}

static void fk_intent_create_locked(json_t *params, const char *key,
                                    const char *force, fk_answer *a)
{
    long long amount = fk_amount(fk_str(params, "amount"));
    const char *currency = fk_str(params, "currency");
    const char *capture = fk_str(params, "capture_method");
    const char *confirm = fk_str(params, "confirm");
    const char *customer = fk_str(params, "customer");
    const char *pmref = fk_str(params, "payment_method");
    const char *ret = fk_str(params, "return_url");
    json_t *pi, *pm = NULL, *types = json_object_get(params, "payment_method_types[]");
    const fk_card *card = NULL;
    int confirming = confirm != NULL && strcmp(confirm, "true") == 0;
    char *secret;

    if (fk_unknown_params(params, fk_known_create_param, a))
        return;
    if (fk_str(params, "amount") == NULL) {
        fk_error(a, 400, "invalid_request_error", "parameter_missing", "amount",
                 NULL, "Missing required param: amount.");
        return;
    }
    if (amount < 1 || amount > 99999999) {
        fk_error(a, 400, "invalid_request_error", "parameter_invalid_integer",
                 "amount", NULL, "Invalid integer: %s", fk_str(params, "amount"));
        return;
    }
    if (currency == NULL || strlen(currency) != 3 ||
        strspn(currency, "abcdefghijklmnopqrstuvwxyz") != 3) {
        fk_error(a, 400, "invalid_request_error", "parameter_invalid", "currency",
                 NULL, "Invalid currency: %s. Stripe currencies are three "
                       "lower-case letters.",
                 currency ? currency : "(none)");
        return;
    }
    if (capture != NULL && strcmp(capture, "automatic") &&
        strcmp(capture, "manual") && strcmp(capture, "automatic_async")) {
        fk_error(a, 400, "invalid_request_error", "parameter_invalid",
                 "capture_method", NULL, "Invalid capture_method: %s", capture);
        return;
    }
    if (confirm != NULL && strcmp(confirm, "true") && strcmp(confirm, "false")) {
        fk_error(a, 400, "invalid_request_error", "parameter_invalid", "confirm",
                 NULL, "Invalid boolean: %s", confirm);
        return;
    }
    if (ret != NULL && !confirming) {
        fk_error(a, 400, "invalid_request_error", "parameter_invalid",
                 "return_url", NULL,
                 "You can only specify return_url when confirm is true.");
        return;
    }
    if (customer != NULL && json_object_get(F.customers, customer) == NULL) {
        fk_missing(a, "customer", customer, "customer");
        return;
    }
    if (pmref != NULL) {
        pm = fk_method_resolve_locked(pmref, &card, a);
        if (pm == NULL)
            return;
        if (json_is_string(json_object_get(pm, "customer")) &&
            (customer == NULL ||
             strcmp(customer, fk_str(pm, "customer")) != 0)) {
            fk_error(a, 400, "invalid_request_error", "parameter_invalid",
                     "payment_method", NULL,
                     "The provided PaymentMethod belongs to a different "
                     "Customer; pass that Customer as customer.");
            return;
        }
    }
    if (confirming && pm == NULL) {
        fk_error(a, 400, "invalid_request_error",
                 "payment_intent_unexpected_state", "payment_method", NULL,
                 "You cannot confirm this PaymentIntent because it's missing "
                 "a payment method.");
        return;
    }

    pi = json_deep_copy(json_object_get(F.tpl, "payment_intent"));
    fk_set_new_id(pi, "id", "pi_3Qfk", 20);
    secret = fk_id("_secret_", 25);
    {
        char cs[128];

        snprintf(cs, sizeof cs, "%s%s", fk_str(pi, "id"), secret);
        json_object_set_new(pi, "client_secret", json_string(cs));
    }
    free(secret);
    json_object_set_new(pi, "amount", json_integer(amount));
    json_object_set_new(pi, "amount_capturable", json_integer(0));
    json_object_set_new(pi, "amount_received", json_integer(0));
    json_object_set_new(pi, "currency", json_string(currency));
    json_object_set_new(pi, "capture_method",
                        json_string(capture ? capture : "automatic"));
    json_object_set_new(pi, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(pi, "canceled_at", json_null());
    json_object_set_new(pi, "customer", customer ? json_string(customer) : json_null());
    json_object_set_new(pi, "description",
                        fk_str(params, "description")
                            ? json_string(fk_str(params, "description"))
                            : json_null());
    json_object_set_new(pi, "metadata", fk_form_nested(params, "metadata"));
    json_object_set_new(pi, "payment_method",
                        pm ? json_string(fk_str(pm, "id")) : json_null());
    json_object_set_new(pi, "payment_method_types",
                        json_is_array(types) ? json_deep_copy(types)
                                             : json_pack("[s]", "card"));
    json_object_set_new(
        pi, "automatic_payment_methods",
        fk_str(params, "automatic_payment_methods[enabled]") &&
                strcmp(fk_str(params, "automatic_payment_methods[enabled]"),
                       "true") == 0
            ? json_pack("{s:b}", "enabled", 1)
            : json_null());
    json_object_set_new(pi, "statement_descriptor_suffix",
                        fk_str(params, "statement_descriptor_suffix")
                            ? json_string(fk_str(params, "statement_descriptor_suffix"))
                            : json_null());
    json_object_set_new(pi, "receipt_email",
                        fk_str(params, "receipt_email")
                            ? json_string(fk_str(params, "receipt_email"))
                            : json_null());
    json_object_set_new(pi, "status", json_string(pm ? "requires_confirmation"
                                                     : "requires_payment_method"));
    json_object_set_new(pi, "last_payment_error", json_null());
    json_object_set_new(pi, "next_action", json_null());
    json_object_set_new(pi, "processing", json_null());
    json_object_set_new(pi, "transfer_data", json_null());
    json_object_set_new(pi, "shipping", json_null());
    json_object_set_new(pi, "payment_method_configuration_details", json_null());
    json_object_set_new(pi, "latest_charge", json_null());
    json_object_set_new(pi, "livemode", json_false());

    json_object_set(F.intents, fk_str(pi, "id"), pi);
    json_object_set_new(F.intent_keys, fk_str(pi, "id"),
                        key ? json_string(key) : json_null());
    json_array_append_new(F.intent_order, json_string(fk_str(pi, "id")));
    if (confirming)
        fk_intent_confirm_locked(pi, force, ret, a);
    else
        fk_answer_set(a, 200, json_incref(pi));
    json_decref(pi);
}

static void fk_intent_action_locked(json_t *pi, const char *action,
                                    json_t *params, const char *force,
                                    fk_answer *a)
{
    const char *status = fk_str(pi, "status");

    if (strcmp(action, "confirm") == 0) {
        const char *pmref = fk_str(params, "payment_method");
        const fk_card *card;

        if (strcmp(status, "requires_payment_method") &&
            strcmp(status, "requires_confirmation") &&
            strcmp(status, "requires_action")) {
            fk_error(a, 400, "invalid_request_error",
                     "payment_intent_unexpected_state", NULL, NULL,
                     "This PaymentIntent's status is %s, which does not allow "
                     "confirmation.",
                     status);
            return;
        }
        if (pmref != NULL) {
            json_t *pm = fk_method_resolve_locked(pmref, &card, a);

            if (pm == NULL)
                return;
            json_object_set_new(pi, "payment_method",
                                json_string(fk_str(pm, "id")));
        }
        fk_intent_confirm_locked(pi, force, fk_str(params, "return_url"), a);
        return;
    }
    if (strcmp(action, "capture") == 0) {
        long long capturable =
            json_integer_value(json_object_get(pi, "amount_capturable"));
        long long amt = fk_str(params, "amount_to_capture")
                            ? fk_amount(fk_str(params, "amount_to_capture"))
                            : capturable;

        if (strcmp(status, "requires_capture") != 0) {
            fk_error(a, 400, "invalid_request_error",
                     "payment_intent_unexpected_state", NULL, NULL,
                     "This PaymentIntent could not be captured because it has "
                     "a status of %s. Only a PaymentIntent with one of the "
                     "following statuses may be captured: requires_capture.",
                     status);
            return;
        }
        if (amt < 1 || amt > capturable) {
            fk_error(a, 400, "invalid_request_error", "amount_too_large",
                     "amount_to_capture", NULL,
                     "The amount to capture must be at most %lld.", capturable);
            return;
        }
        json_object_set_new(pi, "status", json_string("succeeded"));
        json_object_set_new(pi, "amount_capturable", json_integer(0));
        json_object_set_new(pi, "amount_received", json_integer(amt));
        fk_answer_set(a, 200, json_incref(pi));
        return;
    }
    /* cancel */
    if (strcmp(status, "succeeded") == 0 || strcmp(status, "canceled") == 0 ||
        strcmp(status, "processing") == 0) {
        fk_error(a, 400, "invalid_request_error",
                 "payment_intent_unexpected_state", NULL, NULL,
                 "You cannot cancel this PaymentIntent because it has a status "
                 "of %s.",
                 status);
        return;
    }
    json_object_set_new(pi, "status", json_string("canceled"));
    json_object_set_new(pi, "amount_capturable", json_integer(0));
    json_object_set_new(pi, "next_action", json_null());
    json_object_set_new(pi, "canceled_at", json_integer((json_int_t)time(NULL)));
    json_object_set_new(pi, "cancellation_reason",
                        fk_str(params, "cancellation_reason")
                            ? json_string(fk_str(params, "cancellation_reason"))
                            : json_null());
    fk_answer_set(a, 200, json_incref(pi));
}

/* ------------------------------------------------------------------------ */
/* Refunds, customers, payment methods                                      */
/* ------------------------------------------------------------------------ */

static long long fk_refunded_locked(const char *pi_id)
{
    const char *k;
    json_t *re;
    long long sum = 0;

    json_object_foreach(F.refunds, k, re) {
        const char *st = fk_str(re, "status");

        (void)k;
        if (fk_str(re, "payment_intent") != NULL &&
            strcmp(fk_str(re, "payment_intent"), pi_id) == 0 &&
            (strcmp(st, "succeeded") == 0 || strcmp(st, "pending") == 0))
            sum += json_integer_value(json_object_get(re, "amount"));
    }
    return sum;
}

static void fk_refund_create_locked(json_t *params, fk_answer *a)
{
    const char *pid = fk_str(params, "payment_intent");
    const char *reason = fk_str(params, "reason");
    json_t *pi = pid ? json_object_get(F.intents, pid) : NULL, *re;
    long long received, left, amt;

    if (pid == NULL) {
        fk_error(a, 400, "invalid_request_error", "parameter_missing",
                 "payment_intent", NULL,
                 "One of the following params should be provided for this "
                 "request: payment_intent or charge.");
        return;
    }
    if (pi == NULL) {
        fk_missing(a, "payment_intent", pid, "payment_intent");
        return;
    }
    if (strcmp(fk_str(pi, "status"), "succeeded") != 0) {
        fk_error(a, 400, "invalid_request_error", "charge_not_refundable",
                 "payment_intent", NULL,
                 "This PaymentIntent does not have a successful charge to "
                 "refund.");
        return;
    }
    if (reason != NULL && strcmp(reason, "duplicate") &&
        strcmp(reason, "fraudulent") && strcmp(reason, "requested_by_customer")) {
        fk_error(a, 400, "invalid_request_error", "parameter_invalid", "reason",
                 NULL, "Invalid reason: %s", reason);
        return;
    }
    received = json_integer_value(json_object_get(pi, "amount_received"));
    left = received - fk_refunded_locked(pid);
    amt = fk_str(params, "amount") ? fk_amount(fk_str(params, "amount")) : left;
    if (amt < 1 || amt > left) {
        fk_error(a, 400, "invalid_request_error", "amount_too_large", "amount",
                 NULL,
                 "Refund amount (%lld) is greater than unrefunded amount on "
                 "charge (%lld)",
                 amt, left);
        return;
    }
    re = json_deep_copy(json_object_get(F.tpl, "refund"));
    fk_set_new_id(re, "id", "re_3Qfk", 20);
    json_object_set_new(re, "amount", json_integer(amt));
    json_object_set(re, "charge", json_object_get(pi, "latest_charge"));
    json_object_set(re, "currency", json_object_get(pi, "currency"));
    json_object_set_new(re, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(re, "metadata", fk_form_nested(params, "metadata"));
    json_object_set_new(re, "payment_intent", json_string(pid));
    json_object_set_new(re, "reason", reason ? json_string(reason) : json_null());
    json_object_set_new(re, "status", json_string("succeeded"));
    json_object_set(F.refunds, fk_str(re, "id"), re);
    json_array_append_new(F.refund_order, json_string(fk_str(re, "id")));
    fk_answer_set(a, 200, re);
}

static void fk_customer_create_locked(json_t *params, fk_answer *a)
{
    json_t *c = json_deep_copy(json_object_get(F.tpl, "customer"));

    fk_set_new_id(c, "id", "cus_Qfk", 14);
    json_object_set_new(c, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(c, "discount", json_null());
    json_object_set_new(c, "email", fk_str(params, "email")
                                        ? json_string(fk_str(params, "email"))
                                        : json_null());
    json_object_set_new(c, "metadata", fk_form_nested(params, "metadata"));
    json_object_set(F.customers, fk_str(c, "id"), c);
    fk_answer_set(a, 200, c);
}

static void fk_method_attach_locked(json_t *pm_in, const char *id,
                                    json_t *params, fk_answer *a)
{
    const char *cus = fk_str(params, "customer");
    const fk_card *card = fk_card_find(id);
    json_t *pm = pm_in;

    if (cus == NULL) {
        fk_error(a, 400, "invalid_request_error", "parameter_missing",
                 "customer", NULL, "Missing required param: customer.");
        return;
    }
    if (json_object_get(F.customers, cus) == NULL) {
        fk_missing(a, "customer", cus, "customer");
        return;
    }
    if (card != NULL) {
        pm = fk_method_new_locked(card);
        json_decref(pm);
    } else if (pm == NULL) {
        fk_missing(a, "PaymentMethod", id, "payment_method");
        return;
    } else if (json_is_string(json_object_get(pm, "customer"))) {
        fk_error(a, 400, "invalid_request_error", "payment_method_unexpected_state",
                 NULL, NULL,
                 "The payment method you provided has already been attached "
                 "to a customer.");
        return;
    }
    json_object_set_new(pm, "customer", json_string(cus));
    fk_answer_set(a, 200, json_incref(pm));
}

static void fk_methods_list_locked(const char *query, fk_answer *a)
{
    char cus[128] = "";
    json_t *data = json_array();
    size_t i;

    if (query != NULL)
        mg_get_var(query, strlen(query), "customer", cus, sizeof cus);
    if (cus[0] == '\0') {
        json_decref(data);
        fk_error(a, 400, "invalid_request_error", "parameter_missing",
                 "customer", NULL, "Missing required param: customer.");
        return;
    }
    if (json_object_get(F.customers, cus) == NULL) {
        json_decref(data);
        fk_missing(a, "customer", cus, "customer");
        return;
    }
    for (i = json_array_size(F.method_order); i > 0; i--) {
        const char *id = json_string_value(json_array_get(F.method_order, i - 1));
        json_t *pm = json_object_get(F.methods, id);

        if (fk_str(pm, "customer") && strcmp(fk_str(pm, "customer"), cus) == 0)
            json_array_append(data, pm);
    }
    fk_answer_set(a, 200,
                  json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data",
                            data, "has_more", 0, "url", "/v1/payment_methods"));
}

/* ------------------------------------------------------------------------ */
/* Routing of API calls                                                     */
/* ------------------------------------------------------------------------ */

/* Split "/v1/<coll>/<id>/<action>" into parts (NUL-terminated copies). */
static int fk_split(const char *path, char coll[64], char id[128],
                    char action[64])
{
    const char *p = path + 4, *slash;
    size_t n;

    coll[0] = id[0] = action[0] = '\0';
    if (strncmp(path, "/v1/", 4) != 0)
        return -1;
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= 64)
        return -1;
    memcpy(coll, p, n);
    coll[n] = '\0';
    if (!slash)
        return 0;
    p = slash + 1;
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= 128)
        return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    if (!slash)
        return 0;
    p = slash + 1;
    n = strlen(p);
    if (n == 0 || n >= 64 || strchr(p, '/'))
        return -1;
    memcpy(action, p, n + 1);
    return 0;
}

/* /v1/payment_intents[/{id}[/{action}]]. 0 when the route is unknown. */
static int fk_route_intents(const char *method, const char *id,
                            const char *action, json_t *params,
                            const char *key, const char *force, fk_answer *a)
{
    json_t *pi = id[0] ? json_object_get(F.intents, id) : NULL;
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    int confirming = (post && !id[0] && fk_str(params, "confirm") &&
                      !strcmp(fk_str(params, "confirm"), "true")) ||
                     (post && !strcmp(action, "confirm"));

    if ((!strcmp(force, "decline") || !strcmp(force, "insufficient_funds")) &&
        !confirming)
        fk_error(a, 402, "card_error", "card_declined", NULL,
                 json_pack("{s:s}", "decline_code",
                           !strcmp(force, "decline") ? "generic_decline"
                                                     : "insufficient_funds"),
                 "Your card was declined.");
    else if (post && !id[0])
        fk_intent_create_locked(params, key, force, a);
    else if (pi == NULL)
        fk_missing(a, "payment_intent", id, "intent");
    else if (get && !action[0])
        fk_answer_set(a, 200, json_incref(pi));
    else if (post && (!strcmp(action, "confirm") || !strcmp(action, "capture") ||
                      !strcmp(action, "cancel")))
        fk_intent_action_locked(pi, action, params, force, a);
    else
        return 0;
    return 1;
}

static int fk_route_refunds(const char *method, const char *id,
                            const char *action, json_t *params, fk_answer *a)
{
    json_t *re = id[0] ? json_object_get(F.refunds, id) : NULL;

    if (action[0])
        return 0;
    if (!strcmp(method, "POST") && !id[0])
        fk_refund_create_locked(params, a);
    else if (!strcmp(method, "GET") && id[0] && re == NULL)
        fk_missing(a, "refund", id, "id");
    else if (!strcmp(method, "GET") && id[0])
        fk_answer_set(a, 200, json_incref(re));
    else
        return 0;
    return 1;
}

static int fk_route_customers(const char *method, const char *id,
                              const char *action, json_t *params, fk_answer *a)
{
    json_t *c = id[0] ? json_object_get(F.customers, id) : NULL;

    if (action[0])
        return 0;
    if (!strcmp(method, "POST") && !id[0])
        fk_customer_create_locked(params, a);
    else if (id[0] && c == NULL)
        fk_missing(a, "customer", id, "id");
    else if (!strcmp(method, "GET") && id[0])
        fk_answer_set(a, 200, json_incref(c));
    else if (!strcmp(method, "DELETE") && id[0]) {
        fk_answer_set(a, 200, json_pack("{s:s, s:s, s:b}", "id", id, "object",
                                        "customer", "deleted", 1));
        json_object_del(F.customers, id);
    } else
        return 0;
    return 1;
}

static int fk_route_methods(const char *method, const char *id,
                            const char *action, const char *query,
                            json_t *params, fk_answer *a)
{
    json_t *pm = id[0] ? json_object_get(F.methods, id) : NULL;
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");

    if (get && !id[0])
        fk_methods_list_locked(query, a);
    else if (post && !strcmp(action, "attach"))
        fk_method_attach_locked(pm, id, params, a);
    else if (id[0] && pm == NULL)
        fk_missing(a, "PaymentMethod", id, "payment_method");
    else if (get && id[0] && !action[0])
        fk_answer_set(a, 200, json_incref(pm));
    else if (post && !strcmp(action, "detach") &&
             !json_is_string(json_object_get(pm, "customer")))
        fk_error(a, 400, "invalid_request_error",
                 "payment_method_unexpected_state", NULL, NULL,
                 "The payment method you provided is not attached to a "
                 "customer so detachment is impossible.");
    else if (post && !strcmp(action, "detach")) {
        json_object_set_new(pm, "customer", json_null());
        fk_answer_set(a, 200, json_incref(pm));
    } else
        return 0;
    return 1;
}

/* Run one API call (mutex held). `force` is the fault action or "". */
static void fk_api_locked(const char *method, const char *path,
                          const char *query, json_t *params, const char *key,
                          const char *force, fk_answer *a)
{
    char coll[64], id[128], action[64];
    int done = 0;

    if (fk_split(path, coll, id, action) == 0) {
        if (!strcmp(coll, "payment_intents"))
            done = fk_route_intents(method, id, action, params, key, force, a);
        else if (!strcmp(coll, "refunds"))
            done = fk_route_refunds(method, id, action, params, a);
        else if (!strcmp(coll, "customers"))
            done = fk_route_customers(method, id, action, params, a);
        else if (!strcmp(coll, "payment_methods"))
            done = fk_route_methods(method, id, action, query, params, a);
    }
    if (done)
        return;
    fk_error(a, 404, "invalid_request_error", NULL, NULL, NULL,
             "Unrecognized request URL (%s: %s). Please see "
             "https://stripe.com/docs or we can help at "
             "https://support.stripe.com/.",
             method, path);
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */
/* ------------------------------------------------------------------------ */

/* Status line, headers and body in ONE mg_write (tcp_nodelay). */
static void fk_send(struct mg_connection *c, int status, const char *body,
                    const char *request_id, const char *version,
                    const char *idem, int replayed)
{
    size_t blen = strlen(body);
    size_t cap = blen + 1024;
    char *out = malloc(cap);
    int n;

    n = snprintf(out, cap,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n"
                 "Request-Id: %s\r\n"
                 "Stripe-Version: %s\r\n"
                 "%s%.255s%s"
                 "%s"
                 "Cache-Control: no-cache, no-store\r\n"
                 "\r\n",
                 status, fk_reason(status), blen, request_id ? request_id : "",
                 version ? version : "2024-06-20", idem ? "Idempotency-Key: " : "",
                 idem ? idem : "", idem ? "\r\n" : "",
                 replayed ? "Idempotent-Replayed: true\r\n" : "");
    if (n > 0 && (size_t)n + blen < cap) {
        memcpy(out + n, body, blen);
        mg_write(c, out, (size_t)n + blen);
    }
    free(out);
}

static void fk_send_json(struct mg_connection *c, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);

    fk_send(c, status, text ? text : "{}", NULL, NULL, NULL, 0);
    free(text);
    json_decref(body);
}

/* Pop the next fault, or return 0. */
static int fk_fault_next_locked(fk_fault *out)
{
    if (F.nfaults == 0)
        return 0;
    *out = F.faults[0];
    if (--F.faults[0].count <= 0) {
        memmove(F.faults, F.faults + 1, (size_t)(F.nfaults - 1) * sizeof F.faults[0]);
        F.nfaults--;
    }
    return 1;
}

/*
 * Idempotency before the endpoint (mutex held): 1 when the request is
 * answered already (a replay into *stored, or a 409/400 into a), else 0
 * with the key marked in flight (*store = 1) when there is one.
 */
static int fk_idem_check_locked(const char *key, const char *fp,
                                json_t **stored, int *store, fk_answer *a)
{
    json_t *entry = json_object_get(F.idem, key);

    if (entry != NULL && !json_is_true(json_object_get(entry, "done"))) {
        fk_error(a, 409, "idempotency_error", "idempotency_key_in_use", NULL,
                 NULL,
                 "There is currently another in-progress request using this "
                 "Idempotent Key (that probably means you submitted twice, "
                 "and the other request is still going through): %s. Please "
                 "try again later.",
                 key);
        return 1;
    }
    if (entry != NULL && strcmp(fk_str(entry, "fp"), fp) != 0) {
        fk_error(a, 400, "idempotency_error", NULL, NULL, NULL,
                 "Keys for idempotent requests can only be used with the same "
                 "parameters they were first used with. Try using a key other "
                 "than '%s' if you meant to execute a different request.",
                 key);
        return 1;
    }
    if (entry != NULL) {
        *stored = json_incref(entry);
        return 1;
    }
    json_object_set_new(F.idem, key, json_pack("{s:s, s:b}", "fp", fp, "done", 0));
    *store = 1;
    return 0;
}

/* Keep the answer under its key (2xx and 402: the endpoint ran), or
 * release the key (mutex held). */
static void fk_idem_finish_locked(const char *key, const char *fp,
                                  const fk_answer *a)
{
    char *t;

    if (!((a->status >= 200 && a->status < 300) || a->status == 402)) {
        json_object_del(F.idem, key);
        return;
    }
    t = json_dumps(a->body, JSON_COMPACT);
    json_object_set_new(F.idem, key,
                        json_pack("{s:s, s:b, s:i, s:s}", "fp", fp, "done", 1,
                                  "status", a->status, "body", t ? t : "{}"));
    free(t);
}

/* One Stripe API request, end to end (see the header comment). */
static void fk_handle_api(struct mg_connection *c, const struct mg_request_info *ri)
{
    const char *method = ri->request_method;
    const char *path = ri->local_uri;
    const char *auth = mg_get_header(c, "Authorization");
    const char *key = mg_get_header(c, "Idempotency-Key");
    const char *version = mg_get_header(c, "Stripe-Version");
    int post = strcmp(method, "POST") == 0;
    char expect[600], fp[65], *reqid = fk_id("req_", 14), *text = NULL;
    size_t blen = 0;
    char *body = fk_read_body(c, &blen);
    json_t *params = post ? fk_form_parse(body, blen) : json_object();
    json_t *rec, *stored = NULL;
    fk_answer a = {0};
    fk_fault fault = {.action = ""};
    int auth_ok, store = 0;

    if (!post)
        key = NULL; /* Stripe ignores keys on GET and DELETE */
    snprintf(expect, sizeof expect, "Bearer %s", F.key);
    auth_ok = auth != NULL && strcmp(auth, expect) == 0;
    fk_fingerprint(method, path, ri->query_string, body, blen, fp);

    pthread_mutex_lock(&F.mu);
    rec = json_pack("{s:I, s:s, s:s, s:s?, s:s?, s:s?, s:b, s:b, s:O?, s:n}",
                    "seq", (json_int_t)++F.seq, "method", method, "path", path,
                    "query", ri->query_string, "idempotency_key", key,
                    "stripe_version", version, "authorization", auth != NULL,
                    "auth_ok", auth_ok, "params", params, "fault");
    json_array_append(F.requests, rec); /* rec stays ours too: see below */
    if (!auth_ok) {
        if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0)
            fk_error(&a, 401, "invalid_request_error", NULL, NULL, NULL,
                     "You did not provide an API key. You need to provide "
                     "your API key in the Authorization header, using Bearer "
                     "auth.");
        else
            fk_error(&a, 401, "invalid_request_error", NULL, NULL, NULL,
                     "Invalid API Key provided: %.8s****", auth + 7);
    } else if (params == NULL) {
        fk_error(&a, 400, "invalid_request_error", NULL, NULL, NULL,
                 "Invalid request body: expected form encoding.");
    } else {
        fk_fault_next_locked(&fault);
        if (fault.action[0])
            json_object_set_new(rec, "fault", json_string(fault.action));
        if (!strcmp(fault.action, "status_429"))
            fk_error(&a, 429, "invalid_request_error", "rate_limit", NULL, NULL,
                     "Too many requests hit the API too quickly. We recommend "
                     "an exponential backoff of your requests.");
        else if (!strcmp(fault.action, "status_500"))
            fk_error(&a, 500, "api_error", NULL, NULL, NULL,
                     "An unknown error occurred");
        else if (key == NULL || !fk_idem_check_locked(key, fp, &stored, &store, &a)) {
            /* The endpoint runs: after the hang, if one was asked for. A
             * reset during the hang drops the key; the answer still goes
             * out. */
            if (!strcmp(fault.action, "hang")) {
                pthread_mutex_unlock(&F.mu);
                fk_sleep_ms(fault.ms > 0 ? fault.ms : 3000);
                pthread_mutex_lock(&F.mu);
            }
            fk_api_locked(method, path, ri->query_string, params, key,
                          fault.action, &a);
            if (store)
                fk_idem_finish_locked(key, fp, &a);
        }
    }
    if (stored != NULL)
        json_object_set(rec, "status", json_object_get(stored, "status"));
    else
        json_object_set_new(rec, "status", json_integer(a.status));
    json_object_set_new(rec, "replayed", json_boolean(stored != NULL));
    pthread_mutex_unlock(&F.mu);

    if (stored != NULL) {
        fk_send(c, (int)json_integer_value(json_object_get(stored, "status")),
                fk_str(stored, "body"), reqid, version, key, 1);
    } else if (!strcmp(fault.action, "malformed") && a.status == 200) {
        fk_send(c, 200, "{\"id\": \"pi_3Qfk\", \"object\": \"payment_inte", reqid,
                version, key, 0);
    } else {
        text = json_dumps(a.body, JSON_COMPACT);
        fk_send(c, a.status, text ? text : "{}", reqid, version, key, 0);
    }
    free(text);
    json_decref(rec);
    json_decref(stored);
    json_decref(a.body);
    json_decref(params);
    free(body);
    free(reqid);
}

/* ------------------------------------------------------------------------ */
/* Control endpoints                                                        */
/* ------------------------------------------------------------------------ */

static void fk_control_next(struct mg_connection *c, json_t *in)
{
    static const char *const actions[] = {"decline", "insufficient_funds",
                                          "require_action", "status_429",
                                          "status_500", "malformed", "hang",
                                          NULL};
    const char *action = fk_str(in, "action");
    json_t *ms = json_object_get(in, "ms"), *count = json_object_get(in, "count");
    int i, ok = 0;

    for (i = 0; action != NULL && actions[i] != NULL; i++)
        ok |= strcmp(action, actions[i]) == 0;
    if (!ok || (ms && !json_is_integer(ms)) || (count && !json_is_integer(count))) {
        fk_send_json(c, 400, json_pack("{s:s}", "error",
                                       "expected {\"action\":...,\"ms\":N,\"count\":N}"));
        return;
    }
    pthread_mutex_lock(&F.mu);
    if (F.nfaults < FK_MAX_FAULTS) {
        fk_fault *f = &F.faults[F.nfaults++];

        snprintf(f->action, sizeof f->action, "%s", action);
        f->ms = ms ? (long)json_integer_value(ms) : 3000;
        f->count = count ? (long)json_integer_value(count) : 1;
        if (f->count < 1)
            f->count = 1;
    }
    i = F.nfaults;
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, json_pack("{s:i}", "queued", i));
}

static void fk_control_authenticate(struct mg_connection *c, const char *id,
                                    json_t *in)
{
    const char *result = fk_str(in, "result");
    json_t *pi, *out;

    pthread_mutex_lock(&F.mu);
    pi = json_object_get(F.intents, id);
    if (pi == NULL || strcmp(fk_str(pi, "status"), "requires_action") != 0) {
        pthread_mutex_unlock(&F.mu);
        fk_send_json(c, 409, json_pack("{s:s}", "error",
                                       "no requires_action PaymentIntent with this id"));
        return;
    }
    json_object_set_new(pi, "next_action", json_null());
    if (result != NULL && strcmp(result, "fail") == 0) {
        json_object_set_new(pi, "status", json_string("requires_payment_method"));
        json_object_set_new(
            pi, "last_payment_error",
            json_pack("{s:s, s:s, s:s}", "type", "invalid_request_error", "code",
                      "payment_intent_authentication_failure", "message",
                      "The provided PaymentMethod has failed authentication. "
                      "You can provide payment_method_data or a new "
                      "PaymentMethod to attempt to fulfill this PaymentIntent "
                      "again."));
    } else {
        long long amount = json_integer_value(json_object_get(pi, "amount"));
        int manual = strcmp(fk_str(pi, "capture_method"), "manual") == 0;
        char *ch = fk_id("ch_3Qfk", 20);

        json_object_set_new(pi, "latest_charge", json_string(ch));
        free(ch);
        json_object_set_new(pi, "status",
                            json_string(manual ? "requires_capture" : "succeeded"));
        json_object_set_new(pi, "amount_capturable", json_integer(manual ? amount : 0));
        json_object_set_new(pi, "amount_received", json_integer(manual ? 0 : amount));
    }
    out = json_deep_copy(pi);
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, out);
}

/* The charge of PaymentIntent `pi` with its refunds, from the template. */
static json_t *fk_charge_locked(json_t *pi)
{
    json_t *ch = json_deep_copy(json_object_get(F.tpl, "charge"));
    json_t *list = json_array();
    long long refunded = fk_refunded_locked(fk_str(pi, "id"));
    size_t i;

    for (i = json_array_size(F.refund_order); i > 0; i--) {
        json_t *re = json_object_get(
            F.refunds, json_string_value(json_array_get(F.refund_order, i - 1)));

        if (fk_str(re, "payment_intent") &&
            strcmp(fk_str(re, "payment_intent"), fk_str(pi, "id")) == 0)
            json_array_append(list, re);
    }
    json_object_set(ch, "id", json_object_get(pi, "latest_charge"));
    json_object_set(ch, "amount", json_object_get(pi, "amount"));
    json_object_set(ch, "amount_captured", json_object_get(pi, "amount_received"));
    json_object_set_new(ch, "amount_refunded", json_integer(refunded));
    json_object_set(ch, "currency", json_object_get(pi, "currency"));
    json_object_set(ch, "metadata", json_object_get(pi, "metadata"));
    json_object_set(ch, "payment_intent", json_object_get(pi, "id"));
    json_object_set(ch, "payment_method", json_object_get(pi, "payment_method"));
    json_object_set_new(ch, "captured", json_true());
    json_object_set_new(ch, "refunded",
                        json_boolean(refunded >= json_integer_value(json_object_get(
                                                      pi, "amount_received"))));
    json_object_set_new(ch, "source", json_null());
    json_object_set_new(ch, "transfer_data", json_null());
    json_object_set_new(ch, "refunds",
                        json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data",
                                  list, "has_more", 0, "url", "/v1/refunds"));
    return ch;
}

static void fk_control_event(struct mg_connection *c, const char *query)
{
    char type[128] = "", id[128] = "";
    json_t *obj = NULL, *ev;

    if (query != NULL) {
        mg_get_var(query, strlen(query), "type", type, sizeof type);
        mg_get_var(query, strlen(query), "id", id, sizeof id);
    }
    pthread_mutex_lock(&F.mu);
    if (strncmp(id, "pi_", 3) == 0 && json_object_get(F.intents, id) != NULL)
        obj = strncmp(type, "charge.", 7) == 0
                  ? fk_charge_locked(json_object_get(F.intents, id))
                  : json_deep_copy(json_object_get(F.intents, id));
    else if (strncmp(id, "re_", 3) == 0 && json_object_get(F.refunds, id) != NULL)
        obj = json_deep_copy(json_object_get(F.refunds, id));
    else if (strncmp(id, "pm_", 3) == 0 && json_object_get(F.methods, id) != NULL)
        obj = json_deep_copy(json_object_get(F.methods, id));
    if (obj == NULL || type[0] == '\0') {
        pthread_mutex_unlock(&F.mu);
        json_decref(obj);
        fk_send_json(c, 404, json_pack("{s:s}", "error", "no such object or no type"));
        return;
    }
    ev = json_deep_copy(json_object_get(F.tpl, "event"));
    fk_set_new_id(ev, "id", "evt_1Qfk", 20);
    json_object_set_new(ev, "api_version", json_string("2024-06-20"));
    json_object_set_new(ev, "created", json_integer((json_int_t)time(NULL)));
    json_object_set_new(ev, "type", json_string(type));
    json_object_set_new(ev, "pending_webhooks", json_integer(1));
    json_object_set_new(ev, "data", json_pack("{s:o}", "object", obj));
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, ev);
}

static void fk_control_requests(struct mg_connection *c, const char *query)
{
    json_t *data;

    pthread_mutex_lock(&F.mu);
    data = fk_requests_matching(F.requests, query);
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void fk_control_objects(struct mg_connection *c)
{
    json_t *pis = json_array(), *res = json_array(), *cus = json_array(),
           *pms = json_array(), *v;
    const char *k;
    size_t i;

    pthread_mutex_lock(&F.mu);
    json_array_foreach(F.intent_order, i, v) {
        const char *id = json_string_value(v);

        json_array_append_new(
            pis, json_pack("{s:O, s:O}", "idempotency_key",
                           json_object_get(F.intent_keys, id), "object",
                           json_object_get(F.intents, id)));
    }
    json_array_foreach(F.refund_order, i, v)
        json_array_append(res, json_object_get(F.refunds, json_string_value(v)));
    json_object_foreach(F.customers, k, v)
        json_array_append(cus, v);
    json_array_foreach(F.method_order, i, v)
        json_array_append(pms, json_object_get(F.methods, json_string_value(v)));
    v = json_pack("{s:o, s:o, s:o, s:o}", "payment_intents", pis, "refunds", res,
                  "customers", cus, "payment_methods", pms);
    /* Deep copy inside the lock: the members are live state. */
    {
        json_t *copy = json_deep_copy(v);

        json_decref(v);
        v = copy;
    }
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, v);
}

static void fk_handle_control(struct mg_connection *c,
                              const struct mg_request_info *ri)
{
    const char *m = ri->request_method, *p = ri->local_uri + 7; /* "/_fake/" */
    size_t blen = 0;
    char *body = fk_read_body(c, &blen);
    json_t *in = blen ? json_loadb(body, blen, 0, NULL) : NULL;

    if (!strcmp(m, "GET") && !strcmp(p, "requests"))
        fk_control_requests(c, ri->query_string);
    else if (!strcmp(m, "GET") && !strcmp(p, "objects"))
        fk_control_objects(c);
    else if (!strcmp(m, "GET") && !strcmp(p, "event"))
        fk_control_event(c, ri->query_string);
    else if (!strcmp(m, "POST") && !strcmp(p, "reset")) {
        pthread_mutex_lock(&F.mu);
        fk_state_reset_locked();
        pthread_mutex_unlock(&F.mu);
        fk_send_json(c, 200, json_pack("{s:b}", "reset", 1));
    } else if (!strcmp(m, "POST") && !strcmp(p, "next"))
        fk_control_next(c, in);
    else if (!strcmp(m, "POST") && !strncmp(p, "payment_intents/", 16) &&
             strstr(p + 16, "/authenticate") != NULL) {
        char id[128];
        size_t n = (size_t)(strstr(p + 16, "/authenticate") - (p + 16));

        snprintf(id, sizeof id, "%.*s", (int)(n < sizeof id ? n : sizeof id - 1),
                 p + 16);
        fk_control_authenticate(c, id, in);
    } else if (!strcmp(m, "GET") && !strncmp(p, "3ds/", 4)) {
        fk_send(c, 200, "{\"page\":\"3-D Secure challenge (fake)\"}", NULL, NULL,
                NULL, 0);
    } else
        fk_send_json(c, 404, json_pack("{s:s}", "error", "no such control endpoint"));
    json_decref(in);
    free(body);
}

static int fk_handler(struct mg_connection *c, void *data)
{
    const struct mg_request_info *ri = mg_get_request_info(c);

    (void)data;
    if (strncmp(ri->local_uri, "/_fake/", 7) == 0)
        fk_handle_control(c, ri);
    else
        fk_handle_api(c, ri);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    struct mg_callbacks cb;
    struct mg_context *ctx;
    struct mg_server_port ports[4];
    char listen[64];
    const char *key = argc > 3 ? argv[3] : getenv("STRIPE_FAKE_SECRET_KEY");
    json_t *fixtures;
    json_error_t jerr;
    sigset_t set;
    int sig, n;

    if (argc < 3) {
        fprintf(stderr, "usage: %s PORT FIXTURES_JSON [SECRET_KEY]\n", argv[0]);
        return 2;
    }
    fixtures = json_load_file(argv[2], 0, &jerr);
    F.tpl = json_incref(json_object_get(fixtures, "resources"));
    json_decref(fixtures);
    if (!json_is_object(F.tpl) || !json_object_get(F.tpl, "payment_intent") ||
        !json_object_get(F.tpl, "refund") || !json_object_get(F.tpl, "customer") ||
        !json_object_get(F.tpl, "payment_method") || !json_object_get(F.tpl, "charge") ||
        !json_object_get(F.tpl, "event")) {
        fprintf(stderr, "stripe_fake: %s: not a stripe-mock fixtures3.json (%s)\n",
                argv[2], jerr.text);
        return 2;
    }
    snprintf(F.key, sizeof F.key, "%s", key ? key : "sk_test_fake");
    fk_state_reset_locked();

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* CivetWeb threads inherit it */

    snprintf(listen, sizeof listen, "127.0.0.1:%s", argv[1]);
    {
        const char *opts[] = {"listening_ports", listen, "num_threads", "32",
                              "tcp_nodelay", "1", "enable_keep_alive", "yes",
                              "request_timeout_ms", "60000", NULL};

        memset(&cb, 0, sizeof cb);
        ctx = mg_start(&cb, NULL, opts);
    }
    if (ctx == NULL) {
        fprintf(stderr, "stripe_fake: cannot listen on %s\n", listen);
        return 1;
    }
    mg_set_request_handler(ctx, "/", fk_handler, NULL);
    n = mg_get_server_ports(ctx, 4, ports);
    F.port = n > 0 ? ports[0].port : atoi(argv[1]);
    printf("stripe_fake listening on 127.0.0.1:%d\n", F.port);
    fflush(stdout);

    sigwait(&set, &sig);
    mg_stop(ctx);
    pthread_mutex_lock(&F.mu);
    fk_state_reset_locked();
    json_decref(F.intents);
    json_decref(F.intent_keys);
    json_decref(F.intent_order);
    json_decref(F.refunds);
    json_decref(F.refund_order);
    json_decref(F.customers);
    json_decref(F.methods);
    json_decref(F.method_cards);
    json_decref(F.method_order);
    json_decref(F.idem);
    json_decref(F.requests);
    json_decref(F.tpl);
    pthread_mutex_unlock(&F.mu);
    return 0;
}
