/*
 * tests/fakes/paypal_fake.c - a local fake of PayPal's REST API, for tests.
 *
 *   paypal_fake PORT [HTTPS_PORT CERT_DIR TLS_PEM]
 *
 * PORT 0 lets the system choose (HTTPS_PORT too). Once listening it prints
 * one line, "paypal_fake listening on 127.0.0.1:PORT" followed by
 * " https 127.0.0.1:HTTPS_PORT" when the https listener was asked for, and
 * serves until SIGTERM or SIGINT. The only credentials it accepts are
 * $PAYPAL_FAKE_CLIENT_ID and $PAYPAL_FAKE_CLIENT_SECRET (defaults
 * "fake-client-id" and "fake-client-secret").
 *
 * It speaks PayPal's wire format (../shared/fixtures/paypal-openapi): JSON
 * in and out, HATEOAS links, amounts as decimal strings checked against
 * the currency's decimals, and errors as {"name","message","debug_id",
 * "details":[{"issue","description"}],"links"} with a Paypal-Debug-Id
 * header.
 *
 * API (plain http on PORT):
 *   POST /v1/oauth2/token        Basic client_id:client_secret and
 *        grant_type=client_credentials -> {"access_token","token_type":
 *        "Bearer","expires_in",...}; every call is counted
 *   POST /v2/checkout/orders, GET /v2/checkout/orders/{id}
 *   POST /v2/checkout/orders/{id}/capture|authorize   422 ORDER_NOT_APPROVED
 *        until the buyer approved
 *   POST /v2/payments/authorizations/{id}/capture|void,
 *   GET  /v2/payments/authorizations/{id}
 *   GET  /v2/payments/captures/{id}, POST /v2/payments/captures/{id}/refund
 *        (more than what is left: 422 REFUND_AMOUNT_EXCEEDED)
 *   GET  /v2/payments/refunds/{id}
 *   POST /v1/notifications/verify-webhook-signature   checks the signature
 *        over the webhook_event bytes exactly as sent, with the certificate
 *        its https listener serves, as PayPal does with its own
 *   GET  /checkoutnow?token=ORDER[&action=cancel]   the buyer's approval
 *        page that the approve/payer-action links point to: marks the order
 *        APPROVED and redirects to its return_url (cancel_url on cancel)
 * Every API call but the token needs "Authorization: Bearer <token>" with
 * a token this fake issued and that has not expired or been invalidated
 * (else 401 invalid_token). Prefer: return=minimal|representation is
 * honoured. PayPal-Request-Id, as PayPal: the same id with the same call
 * (method, path, body) replays the stored answer of a call that reached the
 * endpoint (2xx and 422); with another call it is 422
 * PAYPAL_REQUEST_ID_PREVIOUSLY_USED; while the first still runs, 409
 * PREVIOUS_REQUEST_IN_PROGRESS. Injected faults store nothing.
 *
 * HTTPS (HTTPS_PORT, TLS certificate and key from TLS_PEM): GET
 * /certs/NAME serves the file CERT_DIR/NAME (NAME is [A-Za-z0-9._-]), the
 * way PayPal serves webhook signing certificates. CivetWeb's own TLS is not
 * used: Debian's libcivetweb is built for the OpenSSL 1.1 API and crashes
 * on OpenSSL 3, so this listener is a small OpenSSL server of its own.
 *
 * Control (plain http, no auth):
 *   GET  /_fake/requests[?method=M&path=P]  every API and token request:
 *        seq, method, path, query, headers (Content-Type, PayPal-Request-Id,
 *        Prefer, ...), auth ("bearer"|"basic"|"none"|"other"), auth_ok,
 *        body (raw text), json (parsed, or null), status, replayed, fault,
 *        response (the answer's body text)
 *   GET  /_fake/counters   token_requests, tokens_issued, api_requests,
 *        unauthorized, cert_fetches, buyer_visits, verify_calls
 *   GET  /_fake/objects    {"orders":[...],"authorizations":[...],
 *        "captures":[...],"refunds":[...]} as GET would show them
 *   POST /_fake/reset      forget everything (objects, tokens, records,
 *        counters, faults, config)
 *   POST /_fake/config     {"token_delay_ms":N,"expires_in":N}: the token
 *        endpoint waits N ms (at most 5000) before answering; tokens last
 *        expires_in seconds (default 32400)
 *   POST /_fake/tokens/expire   every issued token stops working now
 *   POST /_fake/next       {"action":A,"path":P,"ms":N,"count":N} for the
 *        next `count` (default 1) calls whose path contains P (default:
 *        any API call but the token): A is
 *          decline          422 INSTRUMENT_DECLINED (capture/authorize)
 *          decline_retry    the same with a payer-action link; the order
 *                           needs the buyer again
 *          payer_action_required  422 PAYER_ACTION_REQUIRED with a
 *                           payer-action link; the order needs the buyer
 *          capture_declined a capture answered 201 with status DECLINED
 *          capture_pending  a capture answered 201 with status PENDING
 *          refund_pending   a refund answered 201 with status PENDING
 *          token_expired    every token is invalidated, so this call is 401
 *          status_429 | status_500 | status_503   PayPal's error, no effect
 *          hang             sleeps `ms` (default 3000, at most 30000), then
 *                           runs the call: the effect happens, the answer
 *                           is late
 *   POST /_fake/captures/{id}/complete|deny|reverse,
 *   POST /_fake/refunds/{id}/complete   what PayPal later does on its own: a
 *        PENDING capture completes or is declined, a completed one is
 *        reversed (chargeback), a PENDING refund completes
 *   GET  /_fake/event?type=T&id=ID   a webhook event envelope of type T
 *        around the current order, authorization, capture or refund ID
 *        (compact JSON, members in PayPal's order), for tests to sign
 *
 * CivetWeb serves each connection on its own thread; all state is behind
 * one mutex, never held while sleeping. The https listener is one thread.
 */
#include <civetweb.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <zlib.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fake_http.h"

#define FK_MAX_FAULTS 32
#define FK_TOKEN_TTL_S 32400

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct fk_fault {
    char action[32];
    char path[128];
    long ms;
    long count;
} fk_fault;

static struct {
    pthread_mutex_t mu;
    char client_id[256];
    char client_secret[256];
    int port, https_port;
    char cert_dir[1024];
    json_t *tokens;         /* access token -> expiry (unix seconds) */
    json_t *orders;         /* id -> order as stored (internal "_fk" member) */
    json_t *auths;          /* id -> authorization (+ "_fk") */
    json_t *captures;       /* id -> capture (+ "_fk") */
    json_t *refunds;        /* id -> refund (+ "_fk") */
    json_t *order_ids, *auth_ids, *capture_ids, *refund_ids; /* creation order */
    json_t *idem;           /* PayPal-Request-Id -> {"fp","done","status","body"} */
    json_t *requests;       /* [record] */
    fk_fault faults[FK_MAX_FAULTS];
    int nfaults;
    long seq;
    long token_delay_ms;
    long expires_in;
    long token_requests, tokens_issued, api_requests, unauthorized, cert_fetches,
        buyer_visits, verify_calls;
} F = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fk_state_free_locked(void)
{
    json_t **all[] = {&F.tokens, &F.orders, &F.auths, &F.captures, &F.refunds,
                      &F.order_ids, &F.auth_ids, &F.capture_ids, &F.refund_ids,
                      &F.idem, &F.requests};

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        json_decref(*all[i]);
        *all[i] = NULL;
    }
}

static void fk_state_reset_locked(void)
{
    fk_state_free_locked();
    F.tokens = json_object();
    F.orders = json_object();
    F.auths = json_object();
    F.captures = json_object();
    F.refunds = json_object();
    F.order_ids = json_array();
    F.auth_ids = json_array();
    F.capture_ids = json_array();
    F.refund_ids = json_array();
    F.idem = json_object();
    F.requests = json_array();
    F.nfaults = 0;
    F.token_delay_ms = 0;
    F.expires_in = FK_TOKEN_TTL_S;
    F.token_requests = F.tokens_issued = F.api_requests = F.unauthorized = 0;
    F.cert_fetches = F.buyer_visits = F.verify_calls = 0;
}

/* A random string of n characters of `abc` after `prefix`. malloc'd. */
static char *fk_rand(const char *prefix, const char *abc, size_t n)
{
    unsigned char rnd[96];
    size_t plen = strlen(prefix), alen = strlen(abc);
    char *s;

    if (n > sizeof rnd)
        n = sizeof rnd;
    s = malloc(plen + n + 1);
    if (RAND_bytes(rnd, (int)n) != 1)
        memset(rnd, 7, n);
    memcpy(s, prefix, plen);
    for (size_t i = 0; i < n; i++)
        s[plen + i] = abc[rnd[i] % alen];
    s[plen + n] = '\0';
    return s;
}

/* PayPal's resource ids: 17 upper-case letters and digits. */
static char *fk_id(void)
{
    return fk_rand("", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 17);
}

static char *fk_debug_id(void)
{
    return fk_rand("", "0123456789abcdef", 13);
}

/* RFC 3339 UTC time `t` (0: now) as PayPal writes it. */
static json_t *fk_time(time_t t)
{
    char buf[32];
    struct tm tm;

    if (t == 0)
        t = time(NULL);
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

/* ------------------------------------------------------------------------ */
/* Money: decimal strings by the currency's decimals                        */
/* ------------------------------------------------------------------------ */

/* Decimals of the currencies PayPal (and this fake) treat specially; two
 * for every other well-formed code. KWD, BHD, JOD, OMR and TND have three:
 * PayPal's currency page does not offer them to every account, the fake
 * accepts them so that three-decimal formatting can be tested. */
static int fk_exponent(const char *cur)
{
    static const char *const zero[] = {"JPY", "HUF", "TWD", NULL};
    static const char *const three[] = {"KWD", "BHD", "JOD", "OMR", "TND", NULL};

    for (int i = 0; zero[i]; i++)
        if (!strcmp(cur, zero[i]))
            return 0;
    for (int i = 0; three[i]; i++)
        if (!strcmp(cur, three[i]))
            return 3;
    return 2;
}

static int fk_currency_ok(const char *cur)
{
    return cur != NULL && strlen(cur) == 3 && strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 3;
}

/*
 * "12.34" in a currency of `exp` decimals -> minor units. 0 on success, -1
 * when it is not a plain non-negative decimal, -2 when it has more
 * decimals than the currency (PayPal's DECIMAL_PRECISION).
 */
static int fk_parse_value(const char *s, int exp, long long *minor)
{
    const char *dot = s ? strchr(s, '.') : NULL;
    size_t ilen, flen;
    long long v = 0;

    if (s == NULL || *s == '\0' || strlen(s) > 18)
        return -1;
    ilen = dot ? (size_t)(dot - s) : strlen(s);
    flen = dot ? strlen(dot + 1) : 0;
    if (strspn(s, "0123456789") != ilen || (dot && strspn(dot + 1, "0123456789") != flen) ||
        (dot && flen == 0) || (ilen == 0 && !dot))
        return -1;
    if ((int)flen > exp)
        return -2;
    if (ilen > 12)
        return -1; /* beyond any amount PayPal takes; keeps the sum in range */
    for (size_t i = 0; i < ilen; i++)
        v = v * 10 + (s[i] - '0');
    for (int i = 0; i < exp; i++)
        v = v * 10 + (i < (int)flen ? dot[1 + i] - '0' : 0);
    *minor = v;
    return 0;
}

static json_t *fk_money(const char *cur, long long minor)
{
    int exp = fk_exponent(cur);
    long long scale = 1;
    char buf[40];

    for (int i = 0; i < exp; i++)
        scale *= 10;
    if (exp == 0)
        snprintf(buf, sizeof buf, "%lld", minor);
    else
        snprintf(buf, sizeof buf, "%lld.%0*lld", minor / scale, exp, minor % scale);
    return json_pack("{s:s, s:s}", "currency_code", cur, "value", buf);
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct fk_answer {
    int status;
    json_t *body;         /* owned; NULL: no body (204) */
    char location[512];   /* for 302 */
} fk_answer;

static void fk_answer_set(fk_answer *a, int status, json_t *body)
{
    json_decref(a->body);
    a->status = status;
    a->body = body;
}

/* PayPal's error body. `issue` NULL: no details (5xx, 401); `field` may
 * be NULL; `extra_links` (owned, may be NULL) are appended after the
 * information link. Names, messages and issue descriptions are the ones
 * PayPal's OpenAPI files document for the operation, word for word, so a
 * client can be tested against what PayPal really sends. */
static void fk_error(fk_answer *a, int status, const char *name, const char *issue,
                     const char *field, json_t *extra_links, const char *message,
                     const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static void fk_error(fk_answer *a, int status, const char *name, const char *issue,
                     const char *field, json_t *extra_links, const char *message,
                     const char *fmt, ...)
{
    char desc[512], href[256];
    char *dbg = fk_debug_id();
    json_t *detail, *links, *err;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    snprintf(href, sizeof href, "https://developer.paypal.com/docs/api/orders/v2/#error-%s",
             issue ? issue : name);
    links = json_pack("[{s:s, s:s, s:s}]", "href", href, "rel", "information_link", "method", "GET");
    if (extra_links != NULL) {
        json_array_extend(links, extra_links);
        json_decref(extra_links);
    }
    err = json_pack("{s:s, s:s, s:s}", "name", name, "message", message, "debug_id", dbg);
    if (issue != NULL) {
        detail = json_pack("{s:s, s:s}", "issue", issue, "description", desc);
        if (field != NULL) {
            json_object_set_new(detail, "field", json_string(field));
            json_object_set_new(detail, "location", json_string("body"));
        }
        json_object_set_new(err, "details", json_pack("[o]", detail));
    }
    json_object_set_new(err, "links", links);
    free(dbg);
    fk_answer_set(a, status, err);
}

#define FK_MSG_422 "The requested action could not be performed, semantically incorrect, or failed business validation."
#define FK_MSG_400 "Request is not well-formed, syntactically incorrect, or violates schema."

static void fk_unprocessable(fk_answer *a, const char *issue, const char *fmt, const char *arg)
{
    fk_error(a, 422, "UNPROCESSABLE_ENTITY", issue, NULL, NULL, FK_MSG_422, fmt, arg ? arg : "");
}

static void fk_invalid(fk_answer *a, const char *issue, const char *field, const char *desc)
{
    fk_error(a, 400, "INVALID_REQUEST", issue, field, NULL, FK_MSG_400, "%s", desc);
}

static void fk_not_found(fk_answer *a, const char *what)
{
    fk_error(a, 404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", NULL, NULL,
             "The specified resource does not exist.",
             "%s", "Specified resource ID does not exist. Please check the resource ID and try again.");
    (void)what;
}

/* ------------------------------------------------------------------------ */
/* Resources                                                                */
/* ------------------------------------------------------------------------ */

static json_t *fk_link(const char *href, const char *rel, const char *method)
{
    return json_pack("{s:s, s:s, s:s}", "href", href, "rel", rel, "method", method);
}

static json_t *fk_api_link(const char *path, const char *id, const char *suffix, const char *rel,
                           const char *method)
{
    char href[512];

    snprintf(href, sizeof href, "http://127.0.0.1:%d%s%s%s", F.port, path, id, suffix);
    return fk_link(href, rel, method);
}

/* The buyer's approval page for order `id`. */
static void fk_buyer_url(const char *id, char *out, size_t len)
{
    snprintf(out, len, "http://127.0.0.1:%d/checkoutnow?token=%s", F.port, id);
}

/* A copy of a stored resource without its internal "_fk" member. */
static json_t *fk_public(json_t *o)
{
    json_t *c = json_deep_copy(o);

    json_object_del(c, "_fk");
    return c;
}

static json_t *fk_fk(json_t *o)
{
    return json_object_get(o, "_fk");
}

static long long fk_fk_int(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(fk_fk(o), key));
}

/* The order as GET shows it: purchase_units[0].payments built from the
 * current authorizations, captures and refunds. */
static json_t *fk_order_view(json_t *order)
{
    /* experience_context is request-only: PayPal does not echo it. */
    json_t *view = fk_public(order), *pu = json_array_get(json_object_get(view, "purchase_units"), 0);
    json_t *fk = fk_fk(order), *payments = json_object(), *list, *v;

    json_object_del(json_object_get(json_object_get(view, "payment_source"), "paypal"),
                    "experience_context");
    size_t i;
    static const char *const kinds[] = {"authorizations", "captures", "refunds"};

    for (int k = 0; k < 3; k++) {
        json_t *store = k == 0 ? F.auths : k == 1 ? F.captures : F.refunds;

        list = json_array();
        json_array_foreach(json_object_get(fk, kinds[k]), i, v)
            json_array_append_new(list, fk_public(json_object_get(store, json_string_value(v))));
        if (json_array_size(list) > 0)
            json_object_set_new(payments, kinds[k], list);
        else
            json_decref(list);
    }
    if (pu != NULL && json_object_size(payments) > 0)
        json_object_set_new(pu, "payments", payments);
    else
        json_decref(payments);
    return view;
}

static json_t *fk_order_minimal(json_t *order)
{
    json_t *view = json_pack("{s:O, s:O, s:O}", "id", json_object_get(order, "id"), "status",
                             json_object_get(order, "status"), "links",
                             json_object_get(order, "links"));

    if (json_object_get(order, "payment_source")) {
        json_object_set_new(view, "payment_source", json_deep_copy(json_object_get(order, "payment_source")));
        json_object_del(json_object_get(json_object_get(view, "payment_source"), "paypal"),
                        "experience_context");
    }
    return view;
}

/* The order's links for its status. */
static void fk_order_links(json_t *order)
{
    const char *id = fk_str(order, "id"), *status = fk_str(order, "status");
    const char *intent = fk_str(order, "intent");
    json_t *links = json_array();
    char buyer[256];

    fk_buyer_url(id, buyer, sizeof buyer);
    json_array_append_new(links, fk_api_link("/v2/checkout/orders/", id, "", "self", "GET"));
    if (!strcmp(status, "PAYER_ACTION_REQUIRED")) {
        json_array_append_new(links, fk_link(buyer, "payer-action", "GET"));
    } else if (!strcmp(status, "CREATED")) {
        json_array_append_new(links, fk_link(buyer, "approve", "GET"));
        json_array_append_new(links, fk_api_link("/v2/checkout/orders/", id, "", "update", "PATCH"));
        json_array_append_new(links, fk_api_link("/v2/checkout/orders/", id,
                                                 !strcmp(intent, "CAPTURE") ? "/capture" : "/authorize",
                                                 !strcmp(intent, "CAPTURE") ? "capture" : "authorize",
                                                 "POST"));
    } else if (!strcmp(status, "APPROVED")) {
        json_array_append_new(links, fk_api_link("/v2/checkout/orders/", id, "", "update", "PATCH"));
        json_array_append_new(links, fk_api_link("/v2/checkout/orders/", id,
                                                 !strcmp(intent, "CAPTURE") ? "/capture" : "/authorize",
                                                 !strcmp(intent, "CAPTURE") ? "capture" : "authorize",
                                                 "POST"));
    }
    json_object_set_new(order, "links", links);
}

static void fk_touch(json_t *o)
{
    json_object_set_new(o, "update_time", fk_time(0));
}

/* The amount object member `key` of `in`, checked like PayPal: required
 * currency_code and value, a supported currency, the currency's decimals.
 * Returns 0 with *cur (borrowed) and *minor, or -1 with `a` set. */
static int fk_amount_in(json_t *amount, const char *field, const char **cur, long long *minor,
                        fk_answer *a)
{
    const char *c = fk_str(amount, "currency_code"), *v = fk_str(amount, "value");
    char f[128];
    int rc;

    if (!json_is_object(amount) || c == NULL || v == NULL) {
        snprintf(f, sizeof f, "%s/%s", field, c == NULL ? "currency_code" : "value");
        fk_invalid(a, "MISSING_REQUIRED_PARAMETER", f, "A required field / parameter is missing.");
        return -1;
    }
    if (!fk_currency_ok(c)) {
        snprintf(f, sizeof f, "%s/currency_code", field);
        fk_error(a, 422, "UNPROCESSABLE_ENTITY", "INVALID_CURRENCY_CODE", f, NULL, FK_MSG_422, "%s",
                 "Currency code is invalid or is not currently supported. Please refer "
                 "https://developer.paypal.com/api/rest/reference/currency-codes/ for list of "
                 "supported currency codes.");
        return -1;
    }
    rc = fk_parse_value(v, fk_exponent(c), minor);
    snprintf(f, sizeof f, "%s/value", field);
    if (rc == -2) {
        fk_error(a, 422, "UNPROCESSABLE_ENTITY", "DECIMAL_PRECISION", f, NULL, FK_MSG_422, "%s",
                 "If the currency supports decimals, only two decimal place precision is "
                 "supported.");
        return -1;
    }
    if (rc != 0) {
        fk_invalid(a, "INVALID_PARAMETER_SYNTAX", f,
                   "The value of a field does not conform to the expected format.");
        return -1;
    }
    if (*minor <= 0) {
        fk_error(a, 422, "UNPROCESSABLE_ENTITY", "CANNOT_BE_ZERO_OR_NEGATIVE", f, NULL,
                 FK_MSG_422, "%s", "Must be greater than zero. If the currency supports decimals, "
                                   "only two decimal place precision is supported.");
        return -1;
    }
    *cur = c;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Orders                                                                   */
/* ------------------------------------------------------------------------ */

static int fk_is_url(const char *s)
{
    return s && (!strncmp(s, "https://", 8) || !strncmp(s, "http://", 7)) && !strpbrk(s, " \r\n\t");
}

/* POST /v2/checkout/orders (mutex held). */
static void fk_order_create_locked(json_t *in, int minimal, fk_answer *a)
{
    const char *intent = fk_str(in, "intent"), *cur = NULL;
    json_t *units = json_object_get(in, "purchase_units"), *pu_in, *pu, *order, *fk, *src, *ctx;
    long long minor = 0;
    char *id, *mid;

    if (!json_is_object(in)) {
        fk_invalid(a, "MALFORMED_REQUEST_JSON", NULL, "The request JSON is not well formed.");
        return;
    }
    if (intent == NULL) {
        fk_invalid(a, "MISSING_REQUIRED_PARAMETER", "/intent", "A required field / parameter is missing.");
        return;
    }
    if (strcmp(intent, "CAPTURE") && strcmp(intent, "AUTHORIZE")) {
        fk_invalid(a, "INVALID_PARAMETER_VALUE", "/intent",
                   "The value of a field is invalid: intent must be CAPTURE or AUTHORIZE.");
        return;
    }
    if (!json_is_array(units) || json_array_size(units) == 0) {
        fk_invalid(a, "MISSING_REQUIRED_PARAMETER", "/purchase_units",
                   "A required field / parameter is missing.");
        return;
    }
    if (json_array_size(units) > 1) {
        /* Enough for payd, which sends one. */
        fk_invalid(a, "INVALID_ARRAY_MAX_ITEMS", "/purchase_units",
                   "The number of items in an array parameter is too large.");
        return;
    }
    pu_in = json_array_get(units, 0);
    if (fk_amount_in(json_object_get(pu_in, "amount"), "/purchase_units/@reference_id=='default'/amount",
                     &cur, &minor, a) != 0)
        return;
    src = json_object_get(in, "payment_source");
    if ((src && !json_is_object(src)) ||
        (json_object_get(src, "paypal") && !json_is_object(json_object_get(src, "paypal")))) {
        fk_invalid(a, "INVALID_PARAMETER_SYNTAX", "/payment_source",
                   "The value of a field does not conform to the expected format.");
        return;
    }
    ctx = json_object_get(json_object_get(src, "paypal"), "experience_context");
    if ((fk_str(ctx, "return_url") && !fk_is_url(fk_str(ctx, "return_url"))) ||
        (fk_str(ctx, "cancel_url") && !fk_is_url(fk_str(ctx, "cancel_url")))) {
        fk_invalid(a, "INVALID_PARAMETER_SYNTAX", "/payment_source/paypal/experience_context/return_url",
                   "The value of a field does not conform to the expected format.");
        return;
    }

    id = fk_id();
    mid = fk_rand("", "23456789ABCDEFGHJKLMNPQRSTUVWXYZ", 13); /* PayPal's payer ids */
    pu = json_pack("{s:s, s:o, s:{s:s, s:s}}", "reference_id",
                   fk_str(pu_in, "reference_id") ? fk_str(pu_in, "reference_id") : "default",
                   "amount", json_deep_copy(json_object_get(pu_in, "amount")), "payee",
                   "email_address", "merchant@example.com", "merchant_id", mid);
    free(mid);
    {
        static const char *const copy[] = {"description", "custom_id", "invoice_id",
                                           "soft_descriptor", "items", "shipping", NULL};

        for (int i = 0; copy[i]; i++)
            if (json_object_get(pu_in, copy[i]))
                json_object_set(pu, copy[i], json_object_get(pu_in, copy[i]));
    }
    order = json_pack("{s:s, s:s, s:s, s:[o], s:o}", "id", id, "intent", intent, "status",
                      json_is_object(json_object_get(src, "paypal")) ? "PAYER_ACTION_REQUIRED"
                                                                      : "CREATED",
                      "purchase_units", pu, "create_time", fk_time(0));
    if (json_is_object(src))
        json_object_set_new(order, "payment_source", json_deep_copy(src));
    fk = json_pack("{s:s, s:I, s:s?, s:s?, s:[], s:[], s:[]}", "currency", cur, "amount",
                   (json_int_t)minor, "return_url", fk_str(ctx, "return_url"), "cancel_url",
                   fk_str(ctx, "cancel_url"), "authorizations", "captures", "refunds");
    /* application_context.return_url (older integrations) works too. */
    if (!fk_str(ctx, "return_url") &&
        fk_str(json_object_get(in, "application_context"), "return_url"))
        json_object_set(fk, "return_url",
                        json_object_get(json_object_get(in, "application_context"), "return_url"));
    json_object_set_new(order, "_fk", fk);
    fk_order_links(order);
    json_object_set(F.orders, id, order);
    json_array_append_new(F.order_ids, json_string(id));
    fk_answer_set(a, 201, minimal ? fk_order_minimal(order) : fk_order_view(order));
    json_decref(order);
    free(id);
}

/* The buyer approved order `o` (mutex held). */
static void fk_order_approve_locked(json_t *o)
{
    json_t *payer = json_pack("{s:{s:s, s:s}, s:s, s:s, s:{s:s}}", "name", "given_name", "John",
                              "surname", "Doe", "email_address", "buyer@example.com", "payer_id",
                              "QYR5Z8XDVJNXQ", "address", "country_code", "US");
    json_t *src = json_object_get(o, "payment_source");
    json_t *pp = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "email_address",
                           "buyer@example.com", "account_id", "QYR5Z8XDVJNXQ", "account_status",
                           "VERIFIED", "name", "given_name", "John", "surname", "Doe", "address",
                           "country_code", "US");

    if (!json_is_object(src)) {
        src = json_object();
        json_object_set_new(o, "payment_source", src);
    }
    json_object_update_missing(pp, json_object_get(src, "paypal"));
    json_object_del(pp, "experience_context");
    json_object_set_new(src, "paypal", pp);
    json_object_set_new(o, "payer", payer);
    json_object_set_new(o, "status", json_string("APPROVED"));
    fk_touch(o);
    fk_order_links(o);
}

/* The seller's breakdown of a capture of `minor`: PayPal's fee 3.49% + 0.49. */
static json_t *fk_breakdown(const char *cur, long long minor)
{
    long long fixed = fk_exponent(cur) == 0 ? 49 : fk_exponent(cur) == 3 ? 490 : 49;
    long long fee = minor * 349 / 10000 + fixed;

    if (fee >= minor)
        fee = minor / 10;
    return json_pack("{s:o, s:o, s:o}", "gross_amount", fk_money(cur, minor), "paypal_fee",
                     fk_money(cur, fee), "net_amount", fk_money(cur, minor - fee));
}

/* A new capture of `minor` (mutex held); `up` is the order or the
 * authorization it came from. Returns the stored capture (borrowed). */
static json_t *fk_capture_new_locked(json_t *order, json_t *auth, const char *cur, long long minor,
                                     const char *status, int final_capture, const char *invoice_id)
{
    json_t *pu = json_array_get(json_object_get(order, "purchase_units"), 0);
    char *id = fk_id();
    json_t *c = json_pack("{s:s, s:s, s:o, s:b, s:{s:s, s:[s,s]}, s:o}", "id", id, "status",
                          status, "amount", fk_money(cur, minor), "final_capture", final_capture,
                          "seller_protection", "status", "ELIGIBLE", "dispute_categories",
                          "ITEM_NOT_RECEIVED", "UNAUTHORIZED_TRANSACTION",
                          "seller_receivable_breakdown", fk_breakdown(cur, minor));
    json_t *links = json_array();

    if (!strcmp(status, "PENDING"))
        json_object_set_new(c, "status_details", json_pack("{s:s}", "reason", "PENDING_REVIEW"));
    if (invoice_id || fk_str(pu, "invoice_id"))
        json_object_set_new(c, "invoice_id", json_string(invoice_id ? invoice_id : fk_str(pu, "invoice_id")));
    if (fk_str(pu, "custom_id"))
        json_object_set(c, "custom_id", json_object_get(pu, "custom_id"));
    json_array_append_new(links, fk_api_link("/v2/payments/captures/", id, "", "self", "GET"));
    json_array_append_new(links, fk_api_link("/v2/payments/captures/", id, "/refund", "refund", "POST"));
    if (auth)
        json_array_append_new(links, fk_api_link("/v2/payments/authorizations/", fk_str(auth, "id"),
                                                 "", "up", "GET"));
    else
        json_array_append_new(links, fk_api_link("/v2/checkout/orders/", fk_str(order, "id"), "",
                                                 "up", "GET"));
    json_object_set_new(c, "links", links);
    json_object_set_new(c, "create_time", fk_time(0));
    json_object_set_new(c, "update_time", fk_time(0));
    json_object_set_new(c, "_fk", json_pack("{s:s, s:s?, s:s, s:I, s:I}", "order_id",
                                            fk_str(order, "id"), "authorization_id",
                                            auth ? fk_str(auth, "id") : NULL, "currency", cur,
                                            "amount", (json_int_t)minor, "refunded",
                                            (json_int_t)0));
    json_object_set_new(F.captures, id, c);
    json_array_append_new(F.capture_ids, json_string(id));
    json_array_append_new(json_object_get(fk_fk(order), "captures"), json_string(id));
    free(id);
    return c;
}

static json_t *fk_authorization_new_locked(json_t *order)
{
    json_t *pu = json_array_get(json_object_get(order, "purchase_units"), 0);
    const char *cur = fk_str(fk_fk(order), "currency");
    long long minor = fk_fk_int(order, "amount");
    char *id = fk_id();
    json_t *links = json_array();
    json_t *au = json_pack("{s:s, s:s, s:o, s:o, s:{s:s, s:[s,s]}}", "id", id, "status", "CREATED",
                           "amount", fk_money(cur, minor), "expiration_time",
                           fk_time(time(NULL) + 29 * 86400), "seller_protection", "status",
                           "ELIGIBLE", "dispute_categories", "ITEM_NOT_RECEIVED",
                           "UNAUTHORIZED_TRANSACTION");

    if (fk_str(pu, "invoice_id"))
        json_object_set(au, "invoice_id", json_object_get(pu, "invoice_id"));
    if (fk_str(pu, "custom_id"))
        json_object_set(au, "custom_id", json_object_get(pu, "custom_id"));
    json_array_append_new(links, fk_api_link("/v2/payments/authorizations/", id, "", "self", "GET"));
    json_array_append_new(links, fk_api_link("/v2/payments/authorizations/", id, "/capture", "capture", "POST"));
    json_array_append_new(links, fk_api_link("/v2/payments/authorizations/", id, "/void", "void", "POST"));
    json_array_append_new(links, fk_api_link("/v2/payments/authorizations/", id, "/reauthorize", "reauthorize", "POST"));
    json_array_append_new(links, fk_api_link("/v2/checkout/orders/", fk_str(order, "id"), "", "up", "GET"));
    json_object_set_new(au, "links", links);
    json_object_set_new(au, "create_time", fk_time(0));
    json_object_set_new(au, "update_time", fk_time(0));
    json_object_set_new(au, "_fk", json_pack("{s:s, s:s, s:I, s:I}", "order_id", fk_str(order, "id"),
                                             "currency", cur, "amount", (json_int_t)minor,
                                             "captured", (json_int_t)0));
    json_object_set_new(F.auths, id, au);
    json_array_append_new(F.auth_ids, json_string(id));
    json_array_append_new(json_object_get(fk_fk(order), "authorizations"), json_string(id));
    free(id);
    return au;
}

/* POST /v2/checkout/orders/{id}/capture|authorize (mutex held). `force`
 * is the fault action or "". */
static void fk_order_settle_locked(json_t *o, const char *action, json_t *in, const char *force,
                                   fk_answer *a)
{
    const char *status = fk_str(o, "status"), *intent = fk_str(o, "intent");
    int capture = !strcmp(action, "capture");

    if (in != NULL && !json_is_object(in)) {
        fk_invalid(a, "MALFORMED_REQUEST_JSON", NULL, "The request JSON is not well formed.");
        return;
    }
    if (strcmp(intent, capture ? "CAPTURE" : "AUTHORIZE") != 0) {
        fk_unprocessable(a, "ACTION_DOES_NOT_MATCH_INTENT",
                         "Order was created with an intent to '%s'. Please use "
                         "v2/checkout/orders/order_id/capture to complete the transaction or "
                         "alternately Create an order with an intent of 'AUTHORIZE'.", intent);
        return;
    }
    if (!strcmp(status, "COMPLETED")) {
        fk_unprocessable(a, capture ? "ORDER_ALREADY_CAPTURED" : "ORDER_ALREADY_AUTHORIZED", "%s",
                         capture ? "Order already captured.If 'intent=CAPTURE' only one capture "
                                   "per order is allowed."
                                 : "Order already authorized.If 'intent=AUTHORIZE' only one "
                                   "authorization per order is allowed.");
        return;
    }
    if (strcmp(status, "APPROVED") != 0) {
        fk_unprocessable(a, "ORDER_NOT_APPROVED", "%s",
                         capture ? "Payer has not yet approved the Order for payment. Please "
                                   "redirect the payer to the 'rel':'approve' url returned as "
                                   "part of the HATEOAS links within the Create Order call or "
                                   "provide a valid `payment_source` in the request."
                                 : "Payer has not yet approved the Order for payment. Please "
                                   "redirect the payer to the 'rel':'approve' url returned as "
                                   "part of the HATEOAS links within the Create Order call.");
        return;
    }
    if (!strcmp(force, "decline") || !strcmp(force, "decline_retry") ||
        !strcmp(force, "payer_action_required")) {
        int payer_action = !strcmp(force, "payer_action_required");
        json_t *extra = NULL;

        if (strcmp(force, "decline") != 0) {
            char buyer[256];

            fk_buyer_url(fk_str(o, "id"), buyer, sizeof buyer);
            extra = json_pack("[o]", fk_link(buyer, "payer-action", "GET"));
            json_object_set_new(o, "status", json_string("PAYER_ACTION_REQUIRED"));
            fk_touch(o);
            fk_order_links(o);
        }
        fk_error(a, 422, "UNPROCESSABLE_ENTITY",
                 payer_action ? "PAYER_ACTION_REQUIRED" : "INSTRUMENT_DECLINED", NULL, extra,
                 FK_MSG_422, "%s",
                 payer_action ? "Transaction cannot complete successfully, instruct the buyer to "
                                "return to PayPal."
                              : "The instrument presented  was either declined by the processor "
                                "or bank, or it can't be used for this payment.");
        return;
    }
    if (capture)
        fk_capture_new_locked(o, NULL, fk_str(fk_fk(o), "currency"), fk_fk_int(o, "amount"),
                              !strcmp(force, "capture_declined")  ? "DECLINED"
                              : !strcmp(force, "capture_pending") ? "PENDING"
                                                                  : "COMPLETED",
                              1, NULL);
    else
        fk_authorization_new_locked(o);
    json_object_set_new(o, "status", json_string("COMPLETED"));
    fk_touch(o);
    fk_order_links(o);
    fk_answer_set(a, 201, fk_order_view(o));
}

/* ------------------------------------------------------------------------ */
/* Authorizations, captures, refunds                                        */
/* ------------------------------------------------------------------------ */

/* POST /v2/payments/authorizations/{id}/capture (mutex held). */
static void fk_auth_capture_locked(json_t *au, json_t *in, int minimal, const char *force,
                                   fk_answer *a)
{
    const char *status = fk_str(au, "status"), *cur = fk_str(fk_fk(au), "currency");
    long long left = fk_fk_int(au, "amount") - fk_fk_int(au, "captured"), minor = left;
    json_t *order = json_object_get(F.orders, fk_str(fk_fk(au), "order_id")), *c, *fc;
    int final_capture;

    if (in != NULL && !json_is_object(in)) {
        fk_invalid(a, "MALFORMED_REQUEST_JSON", NULL, "The request JSON is not well formed.");
        return;
    }
    if (!strcmp(status, "VOIDED")) {
        fk_unprocessable(a, "AUTHORIZATION_VOIDED", "A voided authorization cannot be captured or reauthorized. %s", NULL);
        return;
    }
    if (!strcmp(status, "CAPTURED")) {
        fk_unprocessable(a, "AUTHORIZATION_ALREADY_CAPTURED", "Authorization has previously been captured.%s", NULL);
        return;
    }
    if (json_object_get(in, "amount") != NULL) {
        const char *c_in = NULL;

        if (fk_amount_in(json_object_get(in, "amount"), "/amount", &c_in, &minor, a) != 0)
            return;
        if (strcmp(c_in, cur) != 0) {
            fk_unprocessable(a, "AUTH_CAPTURE_CURRENCY_MISMATCH", "Currency of capture must be the same as currency of authorization (%s).", cur);
            return;
        }
        if (minor > left) {
            fk_unprocessable(a, "MAX_CAPTURE_AMOUNT_EXCEEDED",
                             "Capture amount exceeds allowable limit. Please contact customer "
                             "service or your account manager to request the change to your "
                             "overage limit. The default overage limit is 115%%, which allows the "
                             "sum of all captures to be up to 115%% of the order amount. The "
                             "ability to over capture is subjected to regulatory approvals.%s",
                             NULL);
            return;
        }
    }
    fc = json_object_get(in, "final_capture");
    if (fc != NULL && !json_is_boolean(fc)) {
        fk_invalid(a, "INVALID_PARAMETER_SYNTAX", "/final_capture",
                   "The value of a field does not conform to the expected format.");
        return;
    }
    final_capture = json_is_true(fc) || minor == left;
    c = fk_capture_new_locked(order, au, cur, minor,
                              !strcmp(force, "capture_declined")  ? "DECLINED"
                              : !strcmp(force, "capture_pending") ? "PENDING"
                                                                  : "COMPLETED",
                              json_is_true(fc), fk_str(in, "invoice_id"));
    if (fk_str(in, "note_to_payer"))
        json_object_set(c, "note_to_payer", json_object_get(in, "note_to_payer"));
    if (strcmp(force, "capture_declined") != 0) {
        json_object_set_new(fk_fk(au), "captured",
                            json_integer(fk_fk_int(au, "captured") + minor));
        json_object_set_new(au, "status", json_string(final_capture ? "CAPTURED" : "PARTIALLY_CAPTURED"));
        fk_touch(au);
    }
    fk_answer_set(a, 201, minimal ? json_pack("{s:O, s:O, s:O}", "id", json_object_get(c, "id"),
                                              "status", json_object_get(c, "status"), "links",
                                              json_object_get(c, "links"))
                                  : fk_public(c));
}

static void fk_auth_void_locked(json_t *au, int minimal, fk_answer *a)
{
    const char *status = fk_str(au, "status");

    if (!strcmp(status, "VOIDED")) {
        fk_unprocessable(a, "PREVIOUSLY_VOIDED", "Authorization has been previously voided and hence cannot be voided again.%s", NULL);
        return;
    }
    if (!strcmp(status, "CAPTURED")) {
        fk_unprocessable(a, "PREVIOUSLY_CAPTURED", "Authorization has been previously captured and hence cannot be voided.%s", NULL);
        return;
    }
    json_object_set_new(au, "status", json_string("VOIDED"));
    fk_touch(au);
    if (minimal)
        fk_answer_set(a, 204, NULL);
    else
        fk_answer_set(a, 200, fk_public(au));
}

/* The status a capture has after `refunded` of its amount went back. */
static void fk_capture_refund_status(json_t *c)
{
    long long amount = fk_fk_int(c, "amount"), refunded = fk_fk_int(c, "refunded");

    json_object_set_new(c, "status", json_string(refunded >= amount ? "REFUNDED" : "PARTIALLY_REFUNDED"));
    fk_touch(c);
}

/* POST /v2/payments/captures/{id}/refund (mutex held). */
static void fk_refund_create_locked(json_t *c, json_t *in, int minimal, const char *force,
                                    fk_answer *a)
{
    const char *status = fk_str(c, "status"), *cur = fk_str(fk_fk(c), "currency");
    long long left = fk_fk_int(c, "amount") - fk_fk_int(c, "refunded"), minor = left;
    json_t *order = json_object_get(F.orders, fk_str(fk_fk(c), "order_id")), *re, *links;
    char *id;

    if (in != NULL && !json_is_object(in)) {
        fk_invalid(a, "MALFORMED_REQUEST_JSON", NULL, "The request JSON is not well formed.");
        return;
    }
    if (!strcmp(status, "REFUNDED")) {
        fk_unprocessable(a, "CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded%s", NULL);
        return;
    }
    if (strcmp(status, "COMPLETED") && strcmp(status, "PARTIALLY_REFUNDED")) {
        if (!strcmp(status, "PENDING"))
            fk_unprocessable(a, "PENDING_CAPTURE",
                             "Cannot initiate a refund as the capture is pending. Capture is "
                             "typically pending when the payer has funded the transaction using "
                             "e-check/bank funded.%s", NULL);
        else
            fk_unprocessable(a, "REFUND_NOT_ALLOWED", "Capture cannot be refunded.%s", NULL);
        return;
    }
    if (json_object_get(in, "amount") != NULL) {
        const char *c_in = NULL;

        if (fk_amount_in(json_object_get(in, "amount"), "/amount", &c_in, &minor, a) != 0)
            return;
        if (strcmp(c_in, cur) != 0) {
            fk_unprocessable(a, "REFUND_CAPTURE_CURRENCY_MISMATCH", "Refund must be in the same currency as the capture (%s).", cur);
            return;
        }
        if (minor > left) {
            fk_unprocessable(a, "REFUND_AMOUNT_EXCEEDED",
                             "The refund amount must be less than or equal to the capture "
                             "amount that has not yet been refunded.%s", NULL);
            return;
        }
    }
    id = fk_id();
    re = json_pack("{s:s, s:s, s:o}", "id", id, "status",
                   !strcmp(force, "refund_pending") ? "PENDING" : "COMPLETED", "amount",
                   fk_money(cur, minor));
    if (!strcmp(force, "refund_pending"))
        json_object_set_new(re, "status_details", json_pack("{s:s}", "reason", "ECHECK"));
    {
        static const char *const copy[] = {"invoice_id", "custom_id", "note_to_payer", NULL};

        for (int i = 0; copy[i]; i++)
            if (fk_str(in, copy[i]))
                json_object_set(re, copy[i], json_object_get(in, copy[i]));
    }
    json_object_set_new(fk_fk(c), "refunded", json_integer(fk_fk_int(c, "refunded") + minor));
    json_object_set_new(re, "seller_payable_breakdown",
                        json_pack("{s:o, s:o, s:o, s:o}", "gross_amount", fk_money(cur, minor),
                                  "paypal_fee", fk_money(cur, 0), "net_amount",
                                  fk_money(cur, minor), "total_refunded_amount",
                                  fk_money(cur, fk_fk_int(c, "refunded"))));
    links = json_array();
    json_array_append_new(links, fk_api_link("/v2/payments/refunds/", id, "", "self", "GET"));
    json_array_append_new(links, fk_api_link("/v2/payments/captures/", fk_str(c, "id"), "", "up", "GET"));
    json_object_set_new(re, "links", links);
    json_object_set_new(re, "create_time", fk_time(0));
    json_object_set_new(re, "update_time", fk_time(0));
    json_object_set_new(re, "_fk", json_pack("{s:s, s:s, s:I}", "capture_id", fk_str(c, "id"),
                                             "currency", cur, "amount", (json_int_t)minor));
    json_object_set_new(F.refunds, id, re);
    json_array_append_new(F.refund_ids, json_string(id));
    if (order)
        json_array_append_new(json_object_get(fk_fk(order), "refunds"), json_string(id));
    fk_capture_refund_status(c);
    fk_answer_set(a, 201, minimal ? json_pack("{s:s, s:O, s:O}", "id", id, "status",
                                              json_object_get(re, "status"), "links",
                                              json_object_get(re, "links"))
                                  : fk_public(re));
    free(id);
}

/* ------------------------------------------------------------------------ */
/* Webhook signatures (verify-webhook-signature)                            */
/* ------------------------------------------------------------------------ */

/* The exact bytes of the top-level "webhook_event" value in `body`, so the
 * signature is checked over what the caller sent, as PayPal does. 0 with
 * *start and *len, or -1. */
static int fk_event_slice(const char *body, size_t blen, const char **start, size_t *len)
{
    const char *p = body, *end = body + blen;
    json_error_t err;
    json_t *v;

    while ((p = memmem(p, (size_t)(end - p), "\"webhook_event\"", 15)) != NULL) {
        const char *q = p + 15;

        while (q < end && strchr(" \t\r\n", *q))
            q++;
        if (q < end && *q == ':') {
            q++;
            while (q < end && strchr(" \t\r\n", *q))
                q++;
            v = json_loadb(q, (size_t)(end - q), JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &err);
            if (v == NULL)
                return -1;
            json_decref(v);
            *start = q;
            *len = (size_t)err.position;
            return 0;
        }
        p += 15;
    }
    return -1;
}

/* The leaf certificate a cert_url names, when it is one this fake serves
 * (https://127.0.0.1:HTTPS_PORT/certs/NAME). NULL otherwise. */
static X509 *fk_cert_for_url(const char *url)
{
    char prefix[96], path[2048];
    const char *name;
    X509 *x = NULL;
    FILE *f;

    if (F.https_port <= 0 || url == NULL)
        return NULL;
    snprintf(prefix, sizeof prefix, "https://127.0.0.1:%d/certs/", F.https_port);
    if (strncmp(url, prefix, strlen(prefix)) != 0)
        return NULL;
    name = url + strlen(prefix);
    if (*name == '\0' || name[0] == '.' || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(name))
        return NULL;
    snprintf(path, sizeof path, "%s/%s", F.cert_dir, name);
    f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

/* SUCCESS or FAILURE for one verify-webhook-signature body, the way PayPal
 * decides: the algorithm, the certificate (its own, unexpired), and the
 * RSA-SHA256 signature over id|time|webhook_id|crc32(event bytes). */
static const char *fk_verify_verdict(json_t *in, const char *body, size_t blen)
{
    const char *algo = fk_str(in, "auth_algo"), *sig64 = fk_str(in, "transmission_sig");
    const char *ev;
    size_t evlen, siglen;
    unsigned char sig[1024];
    char msg[1024];
    X509 *x;
    EVP_PKEY *key;
    EVP_MD_CTX *md;
    int n, ok = 0;

    if (strcmp(algo, "SHA256withRSA") != 0 || fk_event_slice(body, blen, &ev, &evlen) != 0)
        return "FAILURE";
    siglen = strlen(sig64);
    if (siglen == 0 || siglen % 4 != 0 || siglen / 4 * 3 > sizeof sig)
        return "FAILURE";
    n = EVP_DecodeBlock(sig, (const unsigned char *)sig64, (int)siglen);
    if (n < 0)
        return "FAILURE";
    if (siglen >= 1 && sig64[siglen - 1] == '=')
        n--;
    if (siglen >= 2 && sig64[siglen - 2] == '=')
        n--;
    x = fk_cert_for_url(fk_str(in, "cert_url"));
    if (x == NULL)
        return "FAILURE";
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0 ||
        X509_cmp_current_time(X509_get0_notBefore(x)) >= 0) {
        X509_free(x);
        return "FAILURE";
    }
    snprintf(msg, sizeof msg, "%s|%s|%s|%lu", fk_str(in, "transmission_id"),
             fk_str(in, "transmission_time"), fk_str(in, "webhook_id"),
             crc32(0L, (const Bytef *)ev, (uInt)evlen));
    key = X509_get_pubkey(x);
    md = EVP_MD_CTX_new();
    if (key && md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(md, sig, (size_t)n, (const unsigned char *)msg, strlen(msg)) == 1)
        ok = 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    X509_free(x);
    return ok ? "SUCCESS" : "FAILURE";
}

/* POST /v1/notifications/verify-webhook-signature (mutex held). */
static void fk_verify_locked(json_t *in, const char *body, size_t blen, fk_answer *a)
{
    static const char *const required[] = {"auth_algo", "cert_url", "transmission_id",
                                           "transmission_sig", "transmission_time", "webhook_id",
                                           NULL};

    F.verify_calls++;
    if (!json_is_object(in)) {
        fk_invalid(a, "MALFORMED_REQUEST_JSON", NULL, "The request JSON is not well formed.");
        return;
    }
    for (int i = 0; required[i]; i++) {
        if (fk_str(in, required[i]) == NULL || fk_str(in, required[i])[0] == '\0') {
            fk_error(a, 400, "VALIDATION_ERROR", "Required field cannot be blank", required[i],
                     NULL, "Invalid request - see details", "%s is required", required[i]);
            return;
        }
    }
    if (!json_is_object(json_object_get(in, "webhook_event"))) {
        fk_error(a, 400, "VALIDATION_ERROR", "Required field cannot be blank", "webhook_event",
                 NULL, "Invalid request - see details", "%s", "webhook_event is required");
        return;
    }
    fk_answer_set(a, 200, json_pack("{s:s}", "verification_status", fk_verify_verdict(in, body, blen)));
}

/* ------------------------------------------------------------------------ */
/* Routing                                                                  */
/* ------------------------------------------------------------------------ */

/* Splits "/v2/checkout/orders/ID/capture" after `prefix` into the id and
 * the action ("" when absent). 0, or -1 when it does not fit. */
static int fk_split(const char *path, const char *prefix, char *id, size_t idlen, char *action,
                    size_t actlen)
{
    size_t plen = strlen(prefix), n;
    const char *p, *slash;

    if (strncmp(path, prefix, plen) != 0)
        return -1;
    p = path + plen;
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    if (n == 0 || n >= idlen)
        return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    action[0] = '\0';
    if (!slash)
        return 0;
    p = slash + 1;
    if (*p == '\0' || strchr(p, '/') || strlen(p) >= actlen)
        return -1;
    strcpy(action, p);
    return 0;
}

/* One API call (mutex held). Returns 0 when no route matched. */
static int fk_api_locked(const char *method, const char *path, json_t *in, const char *body,
                         size_t blen, int minimal, const char *force, fk_answer *a)
{
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    char id[128], action[64];
    json_t *o;

    if (post && !strcmp(path, "/v2/checkout/orders")) {
        fk_order_create_locked(in, minimal, a);
    } else if (fk_split(path, "/v2/checkout/orders/", id, sizeof id, action, sizeof action) == 0) {
        o = json_object_get(F.orders, id);
        if (o == NULL && (get || post))
            fk_not_found(a, "order");
        else if (get && !action[0])
            fk_answer_set(a, 200, fk_order_view(o));
        else if (post && (!strcmp(action, "capture") || !strcmp(action, "authorize")))
            fk_order_settle_locked(o, action, in, force, a);
        else
            return 0;
    } else if (fk_split(path, "/v2/payments/authorizations/", id, sizeof id, action, sizeof action) == 0) {
        o = json_object_get(F.auths, id);
        if (o == NULL && (get || post))
            fk_not_found(a, "authorization");
        else if (get && !action[0])
            fk_answer_set(a, 200, fk_public(o));
        else if (post && !strcmp(action, "capture"))
            fk_auth_capture_locked(o, in, minimal, force, a);
        else if (post && !strcmp(action, "void"))
            fk_auth_void_locked(o, minimal, a);
        else
            return 0;
    } else if (fk_split(path, "/v2/payments/captures/", id, sizeof id, action, sizeof action) == 0) {
        o = json_object_get(F.captures, id);
        if (o == NULL && (get || post))
            fk_not_found(a, "capture");
        else if (get && !action[0])
            fk_answer_set(a, 200, fk_public(o));
        else if (post && !strcmp(action, "refund"))
            fk_refund_create_locked(o, in, minimal, force, a);
        else
            return 0;
    } else if (fk_split(path, "/v2/payments/refunds/", id, sizeof id, action, sizeof action) == 0) {
        o = json_object_get(F.refunds, id);
        if (o == NULL && get)
            fk_not_found(a, "refund");
        else if (get && !action[0])
            fk_answer_set(a, 200, fk_public(o));
        else
            return 0;
    } else if (post && !strcmp(path, "/v1/notifications/verify-webhook-signature")) {
        fk_verify_locked(in, body, blen, a);
    } else {
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */
/* ------------------------------------------------------------------------ */

/* Status line, headers and body in ONE mg_write (tcp_nodelay). `ctype`
 * NULL: application/json. */
static void fk_send(struct mg_connection *c, int status, const char *body, const char *ctype,
                    const char *debug_id, const char *location)
{
    size_t blen = body ? strlen(body) : 0;
    size_t cap = blen + 2048;
    char *out = malloc(cap);
    int n;

    n = snprintf(out, cap,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: %s\r\n"
                 "Content-Length: %zu\r\n"
                 "%s%.64s%s"
                 "%s%.1024s%s"
                 "Cache-Control: max-age=0, no-cache, no-store, must-revalidate\r\n"
                 "\r\n",
                 status, fk_reason(status), ctype ? ctype : "application/json", blen,
                 debug_id ? "Paypal-Debug-Id: " : "", debug_id ? debug_id : "",
                 debug_id ? "\r\n" : "", location ? "Location: " : "", location ? location : "",
                 location ? "\r\n" : "");
    if (n > 0 && (size_t)n + blen < cap) {
        if (blen)
            memcpy(out + n, body, blen);
        mg_write(c, out, (size_t)n + blen);
    }
    free(out);
}

static void fk_send_json(struct mg_connection *c, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);

    fk_send(c, status, text ? text : "{}", NULL, NULL, NULL);
    free(text);
    json_decref(body);
}

/* Takes the next fault that applies to `path`, or returns 0. A fault
 * without a path applies to any API call but the token. */
static int fk_fault_next_locked(const char *path, fk_fault *out)
{
    int token = !strcmp(path, "/v1/oauth2/token");

    for (int i = 0; i < F.nfaults; i++) {
        fk_fault *f = &F.faults[i];

        if (f->path[0] ? strstr(path, f->path) == NULL : token)
            continue;
        *out = *f;
        if (--f->count <= 0) {
            memmove(f, f + 1, (size_t)(F.nfaults - i - 1) * sizeof *f);
            F.nfaults--;
        }
        return 1;
    }
    return 0;
}

/* Puts back a fault taken by a call that never reached the endpoint. */
static void fk_fault_unget_locked(const fk_fault *f)
{
    if (F.nfaults >= FK_MAX_FAULTS)
        return;
    memmove(F.faults + 1, F.faults, (size_t)F.nfaults * sizeof F.faults[0]);
    F.faults[0] = *f;
    F.faults[0].count = 1;
    F.nfaults++;
}

/* PayPal-Request-Id before the endpoint (mutex held): 1 when answered
 * already (a replay into *stored, or 409/422 into a), else 0 with the id
 * marked in flight. */
static int fk_idem_check_locked(const char *key, const char *fp, json_t **stored, fk_answer *a)
{
    json_t *entry = json_object_get(F.idem, key);

    if (entry != NULL && !json_is_true(json_object_get(entry, "done"))) {
        fk_error(a, 409, "RESOURCE_CONFLICT", "PREVIOUS_REQUEST_IN_PROGRESS", NULL, NULL,
                 "The server has detected a conflict while processing this request.", "%s",
                 "A previous request on this resource is currently in progress. Please wait for "
                 "sometime and try again. It is best to space out the initial and the subsequent "
                 "request(s) to avoid receiving this error.");
        return 1;
    }
    if (entry != NULL && strcmp(fk_str(entry, "fp"), fp) != 0) {
        fk_unprocessable(a, "PAYPAL_REQUEST_ID_PREVIOUSLY_USED",
                         "The PayPal-Request-Id %.108s has already been used for another "
                         "request.", key);
        return 1;
    }
    if (entry != NULL) {
        *stored = json_incref(entry);
        return 1;
    }
    json_object_set_new(F.idem, key, json_pack("{s:s, s:b}", "fp", fp, "done", 0));
    return 0;
}

/* Keeps the answer under its id (2xx and 422: the endpoint decided), or
 * releases the id (mutex held). */
static void fk_idem_finish_locked(const char *key, const char *fp, const fk_answer *a)
{
    char *t;

    if (!((a->status >= 200 && a->status < 300) || a->status == 422)) {
        json_object_del(F.idem, key);
        return;
    }
    t = a->body ? json_dumps(a->body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_object_set_new(F.idem, key, json_pack("{s:s, s:b, s:i, s:s}", "fp", fp, "done", 1,
                                               "status", a->status, "body", t ? t : ""));
    free(t);
}

/* "bearer", "basic", "none" or "other", and whether it is good. */
static const char *fk_auth_kind_locked(const char *auth, int token_call, int *ok)
{
    *ok = 0;
    if (auth == NULL)
        return "none";
    if (!strncmp(auth, "Bearer ", 7)) {
        json_t *exp = json_object_get(F.tokens, auth + 7);

        *ok = !token_call && exp != NULL && json_integer_value(exp) > (json_int_t)time(NULL);
        return "bearer";
    }
    if (!strncmp(auth, "Basic ", 6)) {
        char want[600];
        unsigned char enc[820];

        snprintf(want, sizeof want, "%s:%s", F.client_id, F.client_secret);
        EVP_EncodeBlock(enc, (const unsigned char *)want, (int)strlen(want));
        *ok = token_call && strcmp(auth + 6, (const char *)enc) == 0;
        return "basic";
    }
    return "other";
}

/* The headers worth recording, by their canonical name. */
static json_t *fk_headers(struct mg_connection *c)
{
    static const char *const names[] = {"Content-Type", "Accept", "PayPal-Request-Id", "Prefer",
                                        "PayPal-Partner-Attribution-Id",
                                        "PayPal-Client-Metadata-Id", "PayPal-Auth-Assertion",
                                        NULL};
    json_t *h = json_object();

    for (int i = 0; names[i]; i++) {
        const char *v = mg_get_header(c, names[i]);

        if (v != NULL)
            json_object_set_new(h, names[i], json_string(v));
    }
    return h;
}

/* POST /v1/oauth2/token (mutex held; the caller sleeps token_delay_ms
 * first). */
static void fk_token_locked(int auth_ok, const char *body, fk_answer *a)
{
    char *tok, *nonce;

    F.token_requests++;
    if (!auth_ok) {
        fk_answer_set(a, 401, json_pack("{s:s, s:s}", "error", "invalid_client",
                                        "error_description", "Client Authentication failed"));
        return;
    }
    if (body == NULL || strstr(body, "grant_type=client_credentials") == NULL) {
        fk_answer_set(a, 400, json_pack("{s:s, s:s}", "error", "unsupported_grant_type",
                                        "error_description", "Grant Type is NULL"));
        return;
    }
    tok = fk_rand("A21AA", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 92);
    nonce = fk_rand("", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 43);
    json_object_set_new(F.tokens, tok, json_integer((json_int_t)time(NULL) + F.expires_in));
    F.tokens_issued++;
    fk_answer_set(a, 200, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "scope",
                                    "https://uri.paypal.com/services/payments/payment/authcapture "
                                    "https://uri.paypal.com/services/payments/refund "
                                    "https://uri.paypal.com/services/applications/webhooks",
                                    "access_token", tok, "token_type", "Bearer", "app_id",
                                    "APP-80W284485P519543T", "expires_in",
                                    (json_int_t)F.expires_in, "nonce", nonce));
    free(tok);
    free(nonce);
}

/* The fault's error answer, when it is one that stops the call. */
static int fk_fault_error(const char *action, fk_answer *a)
{
    if (!strcmp(action, "status_429"))
        fk_error(a, 429, "RATE_LIMIT_REACHED", NULL, NULL, NULL,
                 "Too many requests. Blocked due to rate limiting.", "%s", "");
    else if (!strcmp(action, "status_500"))
        fk_error(a, 500, "INTERNAL_SERVER_ERROR", NULL, NULL, NULL,
                 "An internal server error occurred.", "%s", "");
    else if (!strcmp(action, "status_503"))
        fk_error(a, 503, "SERVICE_UNAVAILABLE", NULL, NULL, NULL, "Service Unavailable.", "%s", "");
    else
        return 0;
    return 1;
}

/* One API or token request, end to end (see the header comment). */
static void fk_handle_api(struct mg_connection *c, const struct mg_request_info *ri)
{
    const char *method = ri->request_method, *path = ri->local_uri;
    const char *auth = mg_get_header(c, "Authorization");
    const char *key = mg_get_header(c, "PayPal-Request-Id");
    const char *prefer = mg_get_header(c, "Prefer");
    int post = !strcmp(method, "POST"), token_call = !strcmp(path, "/v1/oauth2/token");
    int minimal = prefer != NULL && strstr(prefer, "return=minimal") != NULL;
    size_t blen = 0;
    char *body = fk_read_body(c, &blen), fp[65], *text = NULL;
    json_t *in = NULL, *rec, *stored = NULL;
    fk_answer a = {0};
    fk_fault fault = {.action = ""};
    const char *kind;
    int auth_ok, store = 0;
    long delay = 0;

    if (blen > 0 && !token_call)
        in = json_loadb(body, blen, 0, NULL);
    if (!post)
        key = NULL;
    fk_fingerprint(method, path, NULL, body, blen, fp);

    pthread_mutex_lock(&F.mu);
    if (fk_fault_next_locked(path, &fault) && !strcmp(fault.action, "token_expired"))
        json_object_clear(F.tokens);
    kind = fk_auth_kind_locked(auth, token_call, &auth_ok);
    rec = json_pack("{s:I, s:s, s:s, s:s?, s:o, s:s, s:b, s:s%, s:O?, s:s?}", "seq",
                    (json_int_t)++F.seq, "method", method, "path", path, "query",
                    ri->query_string, "headers", fk_headers(c), "auth", kind, "auth_ok", auth_ok,
                    "body", body, blen, "json", in, "fault",
                    fault.action[0] ? fault.action : NULL);
    if (!json_object_get(rec, "json"))
        json_object_set_new(rec, "json", json_null());
    json_array_append(F.requests, rec);
    if (token_call) {
        if (!fk_fault_error(fault.action, &a)) {
            delay = F.token_delay_ms;
            if (!strcmp(fault.action, "hang"))
                delay += fault.ms;
            if (delay > 0) {
                pthread_mutex_unlock(&F.mu);
                fk_sleep_ms(delay);
                pthread_mutex_lock(&F.mu);
            }
            fk_token_locked(auth_ok, body, &a);
        }
    } else if (!auth_ok) {
        F.unauthorized++;
        if (fault.action[0] && strcmp(fault.action, "token_expired") != 0) {
            fk_fault_unget_locked(&fault); /* for the call that gets through */
            json_object_del(rec, "fault");
        }
        fk_error(&a, 401, "AUTHENTICATION_FAILURE", NULL, NULL, NULL,
                 "Authentication failed due to missing authorization header, or invalid "
                 "authentication credentials.", "%s", "");
    } else if (blen > 0 && in == NULL) {
        F.api_requests++;
        fk_invalid(&a, "MALFORMED_REQUEST_JSON", NULL, "The request JSON is not well formed.");
    } else {
        F.api_requests++;
        if (fk_fault_error(fault.action, &a)) {
            /* answered: nothing happened */
        } else if (key == NULL || !fk_idem_check_locked(key, fp, &stored, &a)) {
            store = key != NULL;
            if (!strcmp(fault.action, "hang")) {
                pthread_mutex_unlock(&F.mu);
                fk_sleep_ms(fault.ms);
                pthread_mutex_lock(&F.mu);
            }
            if (!fk_api_locked(method, path, in, body, blen, minimal, fault.action, &a)) {
                fk_error(&a, 404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID", NULL, NULL,
                         "The specified resource does not exist.", "No route for %s %s.", method,
                         path);
            }
            if (store)
                fk_idem_finish_locked(key, fp, &a);
        }
    }
    if (stored != NULL)
        json_object_set(rec, "status", json_object_get(stored, "status"));
    else
        json_object_set_new(rec, "status", json_integer(a.status));
    json_object_set_new(rec, "replayed", json_boolean(stored != NULL));
    if (stored != NULL)
        text = strdup(fk_str(stored, "body"));
    else if (a.body != NULL)
        text = json_dumps(a.body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_object_set_new(rec, "response", json_string(text ? text : ""));
    pthread_mutex_unlock(&F.mu);

    fk_send(c, stored ? (int)json_integer_value(json_object_get(stored, "status")) : a.status,
            text ? text : "", NULL, stored ? NULL : fk_str(a.body, "debug_id"), NULL);
    free(text);
    json_decref(rec);
    json_decref(stored);
    json_decref(a.body);
    json_decref(in);
    free(body);
}

/* GET /checkoutnow?token=ID[&action=cancel]: the buyer at PayPal. */
static void fk_handle_buyer(struct mg_connection *c, const struct mg_request_info *ri)
{
    char token[128] = "", action[32] = "", loc[1024] = "";
    const char *q = ri->query_string, *url = NULL;
    json_t *o;
    int status = 200;

    if (q != NULL) {
        mg_get_var(q, strlen(q), "token", token, sizeof token);
        mg_get_var(q, strlen(q), "action", action, sizeof action);
    }
    pthread_mutex_lock(&F.mu);
    F.buyer_visits++;
    o = json_object_get(F.orders, token);
    if (o == NULL) {
        status = 404;
    } else if (!strcmp(action, "cancel")) {
        url = fk_str(fk_fk(o), "cancel_url");
    } else {
        const char *st = fk_str(o, "status");

        if (!strcmp(st, "CREATED") || !strcmp(st, "PAYER_ACTION_REQUIRED"))
            fk_order_approve_locked(o);
        url = fk_str(fk_fk(o), "return_url");
    }
    if (url != NULL) {
        snprintf(loc, sizeof loc, "%s%stoken=%s%s", url, strchr(url, '?') ? "&" : "?", token,
                 strcmp(action, "cancel") ? "&PayerID=QYR5Z8XDVJNXQ" : "");
        status = 302;
    }
    pthread_mutex_unlock(&F.mu);
    fk_send(c, status,
            status == 404 ? "<html><body>No such checkout.</body></html>"
                          : "<html><body>PayPal (fake): the buyer approved.</body></html>",
            "text/html; charset=utf-8", NULL, status == 302 ? loc : NULL);
}

/* ------------------------------------------------------------------------ */
/* Control endpoints                                                        */
/* ------------------------------------------------------------------------ */

static void fk_control_next(struct mg_connection *c, json_t *in)
{
    static const char *const actions[] = {"decline", "decline_retry", "payer_action_required", "capture_declined",
                                          "capture_pending", "refund_pending", "token_expired",
                                          "status_429", "status_500", "status_503", "hang",
                                          NULL};
    const char *action = fk_str(in, "action"), *path = fk_str(in, "path");
    json_t *ms = json_object_get(in, "ms"), *count = json_object_get(in, "count");
    int i, ok = 0;

    for (i = 0; action != NULL && actions[i] != NULL; i++)
        ok |= strcmp(action, actions[i]) == 0;
    if (!ok || (ms && !json_is_integer(ms)) || (count && !json_is_integer(count)) ||
        (path && strlen(path) >= sizeof F.faults[0].path)) {
        fk_send_json(c, 400, json_pack("{s:s}", "error",
                                       "expected {\"action\":...,\"path\":P,\"ms\":N,\"count\":N}"));
        return;
    }
    pthread_mutex_lock(&F.mu);
    if (F.nfaults < FK_MAX_FAULTS) {
        fk_fault *f = &F.faults[F.nfaults++];

        snprintf(f->action, sizeof f->action, "%s", action);
        snprintf(f->path, sizeof f->path, "%s", path ? path : "");
        f->ms = ms ? (long)json_integer_value(ms) : 3000;
        if (f->ms < 0)
            f->ms = 0;
        if (f->ms > 30000)
            f->ms = 30000; /* bounded: a test never waits longer */
        f->count = count ? (long)json_integer_value(count) : 1;
        if (f->count < 1)
            f->count = 1;
    }
    i = F.nfaults;
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, json_pack("{s:i}", "queued", i));
}

static void fk_control_config(struct mg_connection *c, json_t *in)
{
    json_t *d = json_object_get(in, "token_delay_ms"), *e = json_object_get(in, "expires_in");

    if ((d && (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > 5000)) ||
        (e && (!json_is_integer(e) || json_integer_value(e) < 1))) {
        fk_send_json(c, 400, json_pack("{s:s}", "error",
                                       "expected {\"token_delay_ms\":0..5000,\"expires_in\":N>0}"));
        return;
    }
    pthread_mutex_lock(&F.mu);
    if (d)
        F.token_delay_ms = (long)json_integer_value(d);
    if (e)
        F.expires_in = (long)json_integer_value(e);
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, json_pack("{s:b}", "ok", 1));
}

static void fk_control_requests(struct mg_connection *c, const char *query)
{
    json_t *data;

    pthread_mutex_lock(&F.mu);
    data = fk_requests_matching(F.requests, query);
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, json_pack("{s:o}", "data", data));
}

static void fk_control_counters(struct mg_connection *c)
{
    json_t *v;

    pthread_mutex_lock(&F.mu);
    v = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "token_requests",
                  (int)F.token_requests, "tokens_issued", (int)F.tokens_issued, "api_requests",
                  (int)F.api_requests, "unauthorized", (int)F.unauthorized, "cert_fetches",
                  (int)F.cert_fetches, "buyer_visits", (int)F.buyer_visits, "verify_calls",
                  (int)F.verify_calls, "requests", (int)json_array_size(F.requests));
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, v);
}

static void fk_control_objects(struct mg_connection *c)
{
    json_t *out = json_object(), *v;
    size_t i;

    pthread_mutex_lock(&F.mu);
    {
        json_t *list = json_array();

        json_array_foreach(F.order_ids, i, v)
            json_array_append_new(list, fk_order_view(json_object_get(F.orders, json_string_value(v))));
        json_object_set_new(out, "orders", list);
    }
    {
        json_t *ids[] = {F.auth_ids, F.capture_ids, F.refund_ids};
        json_t *stores[] = {F.auths, F.captures, F.refunds};
        static const char *const names[] = {"authorizations", "captures", "refunds"};

        for (int k = 0; k < 3; k++) {
            json_t *list = json_array();

            json_array_foreach(ids[k], i, v)
                json_array_append_new(list, fk_public(json_object_get(stores[k], json_string_value(v))));
            json_object_set_new(out, names[k], list);
        }
    }
    pthread_mutex_unlock(&F.mu);
    fk_send_json(c, 200, out);
}

/*
 * What PayPal later does to a capture or refund on its own:
 *   POST /_fake/captures/{id}/complete   PENDING -> COMPLETED
 *   POST /_fake/captures/{id}/deny       PENDING -> DECLINED
 *   POST /_fake/captures/{id}/reverse    COMPLETED -> REVERSED (a chargeback)
 *   POST /_fake/refunds/{id}/complete    PENDING -> COMPLETED
 */
static void fk_control_later(struct mg_connection *c, const char *kind, const char *id,
                             const char *action)
{
    static const char *const moves[][4] = {
        {"captures", "complete", "PENDING", "COMPLETED"},
        {"captures", "deny", "PENDING", "DECLINED"},
        {"captures", "reverse", "COMPLETED", "REVERSED"},
        {"refunds", "complete", "PENDING", "COMPLETED"},
    };
    json_t *o, *out = NULL;

    pthread_mutex_lock(&F.mu);
    o = json_object_get(!strcmp(kind, "captures") ? F.captures : F.refunds, id);
    for (size_t i = 0; o != NULL && i < sizeof moves / sizeof moves[0]; i++) {
        if (strcmp(moves[i][0], kind) || strcmp(moves[i][1], action) ||
            strcmp(fk_str(o, "status"), moves[i][2]))
            continue;
        json_object_set_new(o, "status", json_string(moves[i][3]));
        json_object_del(o, "status_details");
        fk_touch(o);
        out = fk_public(o);
        break;
    }
    pthread_mutex_unlock(&F.mu);
    if (out == NULL)
        fk_send_json(c, 409, json_pack("{s:s}", "error", "no such resource in a status that allows this"));
    else
        fk_send_json(c, 200, out);
}

/* Summary line of a webhook event, as PayPal writes them. */
static const char *fk_event_summary(const char *type)
{
    if (!strcmp(type, "PAYMENT.CAPTURE.COMPLETED")) return "Payment completed for $ 0.48 USD";
    if (!strcmp(type, "PAYMENT.CAPTURE.REFUNDED")) return "A $ 0.48 USD capture payment was refunded";
    if (!strcmp(type, "PAYMENT.CAPTURE.DENIED")) return "A $ 0.48 USD capture payment was denied";
    if (!strcmp(type, "PAYMENT.CAPTURE.PENDING")) return "Payment pending for $ 0.48 USD";
    if (!strcmp(type, "PAYMENT.CAPTURE.REVERSED")) return "A $ 0.48 USD capture payment was reversed";
    if (!strcmp(type, "PAYMENT.AUTHORIZATION.VOIDED")) return "A payment authorization was voided";
    if (!strcmp(type, "PAYMENT.AUTHORIZATION.CREATED")) return "A payment authorization was created";
    if (!strcmp(type, "CHECKOUT.ORDER.APPROVED")) return "An order has been approved by buyer";
    return "An event occurred";
}

/*
 * GET /_fake/event?type=T&id=ID: PayPal's webhook envelope around the
 * resource ID as it is now. Captures carry supplementary_data.related_ids
 * (order_id, and authorization_id for a capture of an authorization), as
 * PayPal's capture events do.
 */
static void fk_control_event(struct mg_connection *c, const char *query)
{
    char type[128] = "", id[128] = "", href[256];
    const char *rtype = NULL;
    json_t *res = NULL, *ev;
    char *eid, *a, *b;

    if (query != NULL) {
        mg_get_var(query, strlen(query), "type", type, sizeof type);
        mg_get_var(query, strlen(query), "id", id, sizeof id);
    }
    pthread_mutex_lock(&F.mu);
    if (json_object_get(F.orders, id)) {
        res = fk_order_view(json_object_get(F.orders, id));
        rtype = "checkout-order";
    } else if (json_object_get(F.captures, id)) {
        json_t *cap = json_object_get(F.captures, id);
        json_t *rel = json_pack("{s:s}", "order_id", fk_str(fk_fk(cap), "order_id"));

        if (fk_str(fk_fk(cap), "authorization_id"))
            json_object_set_new(rel, "authorization_id",
                                json_string(fk_str(fk_fk(cap), "authorization_id")));
        res = fk_public(cap);
        json_object_set_new(res, "supplementary_data", json_pack("{s:o}", "related_ids", rel));
        rtype = "capture";
    } else if (json_object_get(F.auths, id)) {
        json_t *au = json_object_get(F.auths, id);

        res = fk_public(au);
        json_object_set_new(res, "supplementary_data",
                            json_pack("{s:{s:s}}", "related_ids", "order_id",
                                      fk_str(fk_fk(au), "order_id")));
        rtype = "authorization";
    } else if (json_object_get(F.refunds, id)) {
        res = fk_public(json_object_get(F.refunds, id));
        rtype = "refund";
    }
    pthread_mutex_unlock(&F.mu);
    if (res == NULL || type[0] == '\0') {
        json_decref(res);
        fk_send_json(c, 404, json_pack("{s:s}", "error", "no such resource or no type"));
        return;
    }
    a = fk_rand("", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 17);
    b = fk_rand("", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", 17);
    eid = malloc(64);
    snprintf(eid, 64, "WH-%s-%s", a, b);
    snprintf(href, sizeof href, "https://api.paypal.com/v1/notifications/webhooks-events/%s", eid);
    ev = json_pack("{s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:o, s:[{s:s, s:s, s:s}, {s:s, s:s, s:s}]}",
                   "id", eid, "event_version", "1.0", "create_time", fk_time(0), "resource_type",
                   rtype, "resource_version", "2.0", "event_type", type, "summary",
                   fk_event_summary(type), "resource", res, "links", "href", href, "rel", "self",
                   "method", "GET", "href", href, "rel", "resend", "method", "POST");
    {
        char resend[300];

        snprintf(resend, sizeof resend, "%s/resend", href);
        json_object_set_new(json_array_get(json_object_get(ev, "links"), 1), "href", json_string(resend));
    }
    free(a);
    free(b);
    free(eid);
    fk_send_json(c, 200, ev);
}

static void fk_handle_control(struct mg_connection *c, const struct mg_request_info *ri)
{
    const char *m = ri->request_method, *p = ri->local_uri + 7; /* "/_fake/" */
    size_t blen = 0;
    char *body = fk_read_body(c, &blen);
    json_t *in = blen ? json_loadb(body, blen, 0, NULL) : NULL;
    char id[128], action[64];

    if (!strcmp(m, "GET") && !strcmp(p, "requests"))
        fk_control_requests(c, ri->query_string);
    else if (!strcmp(m, "GET") && !strcmp(p, "counters"))
        fk_control_counters(c);
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
    else if (!strcmp(m, "POST") && !strcmp(p, "config"))
        fk_control_config(c, in);
    else if (!strcmp(m, "POST") && !strcmp(p, "tokens/expire")) {
        pthread_mutex_lock(&F.mu);
        json_object_clear(F.tokens);
        pthread_mutex_unlock(&F.mu);
        fk_send_json(c, 200, json_pack("{s:b}", "expired", 1));
    } else if (!strcmp(m, "POST") &&
               (fk_split(ri->local_uri, "/_fake/captures/", id, sizeof id, action, sizeof action) == 0 ||
                fk_split(ri->local_uri, "/_fake/refunds/", id, sizeof id, action, sizeof action) == 0))
        fk_control_later(c, !strncmp(p, "captures/", 9) ? "captures" : "refunds", id, action);
    else
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
    else if (strcmp(ri->local_uri, "/checkoutnow") == 0)
        fk_handle_buyer(c, ri);
    else
        fk_handle_api(c, ri);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* HTTPS: the certificate files                                             */
/* ------------------------------------------------------------------------ */

static struct {
    SSL_CTX *ctx;
    int fd;
    volatile sig_atomic_t stop;
    pthread_t thread;
} T = {.fd = -1};

/* Writes all of buf over TLS. */
static void fk_tls_write(SSL *ssl, const char *buf, size_t len)
{
    while (len > 0) {
        int n = SSL_write(ssl, buf, (int)len);

        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* The file CERT_DIR/NAME for "GET /certs/NAME", malloc'd, or NULL. */
static char *fk_cert_file(const char *name, size_t *len)
{
    char path[2048];
    FILE *f;
    char *buf;
    long n;

    if (*name == '\0' || name[0] == '.' ||
        strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(name))
        return NULL;
    snprintf(path, sizeof path, "%s/%s", F.cert_dir, name);
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > FK_BODY_MAX || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* One TLS connection: one request, one answer, close. */
static void fk_tls_serve(int fd)
{
    SSL *ssl = SSL_new(T.ctx);
    char req[8192], head[512], name[256] = "";
    size_t n = 0, flen = 0;
    char *file = NULL;
    int status = 404;

    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1)
        goto out;
    while (n < sizeof req - 1) {
        int r = SSL_read(ssl, req + n, (int)(sizeof req - 1 - n));

        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[n] = '\0';
    if (sscanf(req, "GET /certs/%255[^ ?] HTTP/1.", name) == 1)
        file = fk_cert_file(name, &flen);
    if (file != NULL) {
        status = 200;
        pthread_mutex_lock(&F.mu);
        F.cert_fetches++;
        pthread_mutex_unlock(&F.mu);
    }
    snprintf(head, sizeof head,
             "HTTP/1.1 %d %s\r\nContent-Type: application/x-pem-file\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             status, status == 200 ? "OK" : "Not Found", file ? flen : 0);
    fk_tls_write(ssl, head, strlen(head));
    if (file)
        fk_tls_write(ssl, file, flen);
    SSL_shutdown(ssl);
out:
    free(file);
    SSL_free(ssl);
    close(fd);
}

static void *fk_tls_loop(void *arg)
{
    (void)arg;
    while (!T.stop) {
        struct pollfd p = {.fd = T.fd, .events = POLLIN};
        struct timeval tv = {.tv_sec = 5};
        int fd;

        if (poll(&p, 1, 200) <= 0)
            continue;
        fd = accept(T.fd, NULL, NULL);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        fk_tls_serve(fd);
    }
    return NULL;
}

/* Listens on 127.0.0.1:port (0: any) with the certificate and key in
 * `pem`. Returns the port, or -1 with a message. */
static int fk_tls_start(const char *port, const char *pem)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t slen = sizeof sa;
    int one = 1;

    T.ctx = SSL_CTX_new(TLS_server_method());
    if (T.ctx == NULL || SSL_CTX_use_certificate_chain_file(T.ctx, pem) != 1 ||
        SSL_CTX_use_PrivateKey_file(T.ctx, pem, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(T.ctx) != 1) {
        fprintf(stderr, "paypal_fake: %s: no usable certificate and key\n", pem);
        return -1;
    }
    T.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sa.sin_port = htons((unsigned short)atoi(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(T.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (T.fd < 0 || bind(T.fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(T.fd, 64) != 0 ||
        getsockname(T.fd, (struct sockaddr *)&sa, &slen) != 0) {
        fprintf(stderr, "paypal_fake: cannot listen on 127.0.0.1:%s: %s\n", port, strerror(errno));
        return -1;
    }
    if (pthread_create(&T.thread, NULL, fk_tls_loop, NULL) != 0)
        return -1;
    return ntohs(sa.sin_port);
}

static void fk_tls_stop(void)
{
    if (T.fd < 0)
        return;
    T.stop = 1;
    pthread_join(T.thread, NULL);
    close(T.fd);
    SSL_CTX_free(T.ctx);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    struct mg_callbacks cb;
    struct mg_context *ctx;
    struct mg_server_port ports[4];
    char listen_on[64];
    const char *id = getenv("PAYPAL_FAKE_CLIENT_ID"), *secret = getenv("PAYPAL_FAKE_CLIENT_SECRET");
    sigset_t set;
    int sig, n;

    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: %s PORT [HTTPS_PORT CERT_DIR TLS_PEM]\n", argv[0]);
        return 2;
    }
    snprintf(F.client_id, sizeof F.client_id, "%s", id ? id : "fake-client-id");
    snprintf(F.client_secret, sizeof F.client_secret, "%s", secret ? secret : "fake-client-secret");
    fk_state_reset_locked();

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits it */
    sigdelset(&set, SIGPIPE);

    if (argc == 5) {
        snprintf(F.cert_dir, sizeof F.cert_dir, "%s", argv[3]);
        F.https_port = fk_tls_start(argv[2], argv[4]);
        if (F.https_port < 0)
            return 1;
    }
    snprintf(listen_on, sizeof listen_on, "127.0.0.1:%s", argv[1]);
    {
        const char *opts[] = {"listening_ports", listen_on, "num_threads", "48",
                              "tcp_nodelay", "1", "enable_keep_alive", "yes",
                              "request_timeout_ms", "60000", NULL};

        memset(&cb, 0, sizeof cb);
        ctx = mg_start(&cb, NULL, opts);
    }
    if (ctx == NULL) {
        fprintf(stderr, "paypal_fake: cannot listen on %s\n", listen_on);
        fk_tls_stop();
        return 1;
    }
    mg_set_request_handler(ctx, "/", fk_handler, NULL);
    n = mg_get_server_ports(ctx, 4, ports);
    F.port = n > 0 ? ports[0].port : atoi(argv[1]);
    if (F.https_port > 0)
        printf("paypal_fake listening on 127.0.0.1:%d https 127.0.0.1:%d\n", F.port, F.https_port);
    else
        printf("paypal_fake listening on 127.0.0.1:%d\n", F.port);
    fflush(stdout);

    sigwait(&set, &sig);
    mg_stop(ctx);
    fk_tls_stop();
    pthread_mutex_lock(&F.mu);
    fk_state_free_locked();
    pthread_mutex_unlock(&F.mu);
    return 0;
}
