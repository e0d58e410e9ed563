/*
 * fake_provider.h - "ExamplePay", the made-up provider the template
 * gateway talks to, as a fake you can run in-process (test_gateway.c) or
 * over HTTP (fake_provider.c, for payd and payd-modcheck). Header-only,
 * C11 + pthreads. Replace it with a fake of YOUR provider's real wire
 * format: tests are only as good as the fake is faithful.
 *
 * The API (JSON in and out, amounts in minor units):
 *
 *   Authorization: Bearer <api key>        every request; else 401
 *   Idempotency-Key: <key>                 POSTs; the same key with the same
 *                                          request replays the first answer,
 *                                          with another request is a 409
 *
 *   POST /v1/payments      {"amount":1099,"currency":"USD","reference":"pay_..",
 *                           "payment_method":"pm_card_visa","capture":"automatic"
 *                           |"manual","confirm":true}
 *   POST /v1/payments/ID/confirm   {"payment_method":"..."}
 *   POST /v1/payments/ID/capture   {"amount":500}  (optional: everything)
 *   POST /v1/payments/ID/cancel    {}
 *   GET  /v1/payments/ID
 *   POST /v1/refunds       {"payment":"exp_pay_1","amount":500,"reference":"re_.."}
 *   GET  /v1/refunds/ID
 *
 * A payment: {"id":"exp_pay_1","object":"payment","status":"succeeded",
 *   "amount":1099,"amount_capturable":0,"amount_captured":1099,
 *   "amount_refunded":0,"currency":"USD","reference":"pay_..",
 *   "failure_code":null,"failure_message":null}
 * with status requires_payment_method, requires_confirmation,
 * requires_capture, succeeded, failed or canceled.
 * A refund: {"id":"exp_re_1","object":"refund","status":"succeeded",
 *   "amount":500,"payment":"exp_pay_1","reference":"re_.."}
 * An error: HTTP 400/401/402/404/409/503 with
 *   {"error":{"code":"card_declined","message":"The card was declined."}}
 *   (402 also carries the failed "payment").
 *
 * Include it after defining _POSIX_C_SOURCE 200809L (strdup).
 *
 * Test payment methods: pm_card_visa succeeds; pm_card_chargeDeclined and
 * pm_card_insufficientFunds are declined (402); pm_card_unavailable makes
 * the provider answer 503 without doing anything.
 *
 * Webhooks ExamplePay would send (the fake does not send them; tests build
 * them with example_sign_webhook in test_gateway.c):
 *   Example-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *   {"id":"evt_..","type":"payment.succeeded","created":<unix>,
 *    "data":{"payment":"exp_pay_1","reference":"pay_..","refund":null,
 *            "refund_reference":null,"amount":1099,"currency":"USD",
 *            "failure_code":null,"failure_message":null}}
 */
#ifndef EXAMPLE_FAKE_PROVIDER_H
#define EXAMPLE_FAKE_PROVIDER_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fp_payment {
    char id[32];
    char reference[128];
    char currency[4];
    char status[32];
    char failure_code[40];
    char failure_message[80];
    int manual;
    int64_t amount, captured, refunded;
} fp_payment;

typedef struct fp_refund {
    char id[32];
    char payment[32];
    char reference[128];
    int64_t amount;
} fp_refund;

typedef struct fp_idem {
    char *key;
    char *request;                /* "METHOD PATH\nBODY": what "same" means */
    int status;
    char *response;
} fp_idem;

typedef struct fake_provider {
    pthread_mutex_t mu;
    char api_key[128];
    fp_payment *payments;
    size_t payment_count, payment_cap;
    fp_refund *refunds;
    size_t refund_count, refund_cap;
    fp_idem *idem;
    size_t idem_count, idem_cap;
    long requests;                /* every request seen, for tests */
} fake_provider;

/* ---- a tiny reader for the flat JSON bodies the module sends ---- */

/* Finds "key": at the top level of a flat object; returns a pointer to the
 * value, or NULL. Strings may hold escaped quotes. */
static inline const char *fp_json_find(const char *body, size_t len, const char *key)
{
    const char *p = body, *end = body + len;
    size_t klen = strlen(key);
    int depth = 0;
    while (p < end) {
        if (*p == '"') {
            const char *s = ++p;
            while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
            if (p >= end) return NULL;
            const char *e = p++;
            while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
            if (depth == 1 && p < end && *p == ':' && (size_t)(e - s) == klen && !memcmp(s, key, klen)) {
                p++;
                while (p < end && (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')) p++;
                return p < end ? p : NULL;
            }
            continue;
        }
        if (*p == '{' || *p == '[') depth++;
        if (*p == '}' || *p == ']') depth--;
        p++;
    }
    return NULL;
}

/* A string value into out (escapes other than \" and \\ are refused).
 * 1 found, 0 absent or null, -1 malformed or too long. */
static inline int fp_json_str(const char *body, size_t len, const char *key, char *out, size_t out_len)
{
    const char *v = fp_json_find(body, len, key), *end = body + len;
    if (!v || !strncmp(v, "null", 4)) return 0;
    if (*v != '"') return -1;
    size_t n = 0;
    for (v++; v < end && *v != '"'; v++) {
        if (*v == '\\') {
            if (++v >= end || (*v != '"' && *v != '\\')) return -1;
        }
        if (n + 1 >= out_len) return -1;
        out[n++] = *v;
    }
    out[n] = '\0';
    return v < end ? 1 : -1;
}

static inline int fp_json_int(const char *body, size_t len, const char *key, int64_t *out)
{
    const char *v = fp_json_find(body, len, key);
    if (!v) return 0;
    char *e = NULL;
    long long x = strtoll(v, &e, 10);
    if (e == v) return -1;
    *out = x;
    return 1;
}

static inline int fp_json_true(const char *body, size_t len, const char *key)
{
    const char *v = fp_json_find(body, len, key);
    return v && !strncmp(v, "true", 4);
}

/* ---- answers ---- */

static inline char *fp_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *fp_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static inline int fp_error(char **out, int status, const char *code, const char *message)
{
    *out = fp_printf("{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    return status;
}

static inline char *fp_payment_json(const fp_payment *p)
{
    char fc[64] = "null", fm[104] = "null";
    if (p->failure_code[0]) snprintf(fc, sizeof fc, "\"%s\"", p->failure_code);
    if (p->failure_message[0]) snprintf(fm, sizeof fm, "\"%s\"", p->failure_message);
    int64_t capturable = !strcmp(p->status, "requires_capture") ? p->amount : 0;
    return fp_printf("{\"id\":\"%s\",\"object\":\"payment\",\"status\":\"%s\",\"amount\":%lld,"
                     "\"amount_capturable\":%lld,\"amount_captured\":%lld,\"amount_refunded\":%lld,"
                     "\"currency\":\"%s\",\"reference\":\"%s\",\"failure_code\":%s,\"failure_message\":%s}",
                     p->id, p->status, (long long)p->amount, (long long)capturable, (long long)p->captured,
                     (long long)p->refunded, p->currency, p->reference, fc, fm);
}

static inline fp_payment *fp_find_payment(fake_provider *fp, const char *id, size_t id_len)
{
    for (size_t i = 0; i < fp->payment_count; i++)
        if (strlen(fp->payments[i].id) == id_len && !memcmp(fp->payments[i].id, id, id_len))
            return &fp->payments[i];
    return NULL;
}

/* Confirms `p` with `method`: the test cards. Returns the HTTP status. */
static inline int fp_confirm(fp_payment *p, const char *method, char **out)
{
    if (!strcmp(method, "pm_card_unavailable"))
        return fp_error(out, 503, "unavailable", "ExamplePay is briefly unavailable.");
    if (!strcmp(method, "pm_card_visa")) {
        snprintf(p->status, sizeof p->status, "%s", p->manual ? "requires_capture" : "succeeded");
        p->captured = p->manual ? 0 : p->amount;
        *out = fp_payment_json(p);
        return 200;
    }
    const char *code = !strcmp(method, "pm_card_chargeDeclined")      ? "card_declined"
                       : !strcmp(method, "pm_card_insufficientFunds") ? "insufficient_funds"
                                                                      : NULL;
    if (!code) return fp_error(out, 400, "invalid_payment_method", "No such payment method.");
    snprintf(p->status, sizeof p->status, "failed");
    snprintf(p->failure_code, sizeof p->failure_code, "%s", code);
    snprintf(p->failure_message, sizeof p->failure_message, "%s",
             !strcmp(code, "card_declined") ? "The card was declined." : "The card has insufficient funds.");
    char *pay = fp_payment_json(p);
    *out = fp_printf("{\"error\":{\"code\":\"%s\",\"message\":\"%s\"},\"payment\":%s}", code,
                     p->failure_message, pay ? pay : "null");
    free(pay);
    return 402;
}

static inline int fp_create(fake_provider *fp, const char *body, size_t len, char **out)
{
    fp_payment p = {0};
    char capture[16] = "automatic", method[64] = "";
    if (fp_json_int(body, len, "amount", &p.amount) != 1 || p.amount <= 0)
        return fp_error(out, 400, "amount_invalid", "amount must be a positive integer.");
    if (fp_json_str(body, len, "currency", p.currency, sizeof p.currency) != 1 || strlen(p.currency) != 3)
        return fp_error(out, 400, "currency_invalid", "currency must be an ISO 4217 code.");
    if (fp_json_str(body, len, "reference", p.reference, sizeof p.reference) < 0 ||
        fp_json_str(body, len, "capture", capture, sizeof capture) < 0 ||
        fp_json_str(body, len, "payment_method", method, sizeof method) < 0)
        return fp_error(out, 400, "parameter_invalid", "A parameter is malformed.");
    if (strcmp(capture, "automatic") && strcmp(capture, "manual"))
        return fp_error(out, 400, "parameter_invalid", "capture must be automatic or manual.");
    if (!strcmp(method, "pm_card_unavailable"))
        return fp_error(out, 503, "unavailable", "ExamplePay is briefly unavailable.");
    p.manual = !strcmp(capture, "manual");
    snprintf(p.status, sizeof p.status, "%s", method[0] ? "requires_confirmation" : "requires_payment_method");
    if (fp->payment_count == fp->payment_cap) {
        size_t cap = fp->payment_cap ? fp->payment_cap * 2 : 64;
        fp_payment *grown = realloc(fp->payments, cap * sizeof *grown);
        if (!grown) return fp_error(out, 500, "internal", "Out of memory.");
        fp->payments = grown;
        fp->payment_cap = cap;
    }
    snprintf(p.id, sizeof p.id, "exp_pay_%zu", fp->payment_count + 1);
    fp_payment *stored = &fp->payments[fp->payment_count++];
    *stored = p;
    if (method[0] && fp_json_true(body, len, "confirm")) return fp_confirm(stored, method, out);
    *out = fp_payment_json(stored);
    return 200;
}

static inline int fp_refund_create(fake_provider *fp, const char *body, size_t len, char **out)
{
    fp_refund r = {0};
    if (fp_json_str(body, len, "payment", r.payment, sizeof r.payment) != 1)
        return fp_error(out, 400, "parameter_missing", "payment is required.");
    if (fp_json_int(body, len, "amount", &r.amount) != 1 || r.amount <= 0)
        return fp_error(out, 400, "amount_invalid", "amount must be a positive integer.");
    if (fp_json_str(body, len, "reference", r.reference, sizeof r.reference) < 0)
        return fp_error(out, 400, "parameter_invalid", "reference is malformed.");
    fp_payment *p = fp_find_payment(fp, r.payment, strlen(r.payment));
    if (!p) return fp_error(out, 404, "not_found", "No such payment.");
    if (strcmp(p->status, "succeeded")) return fp_error(out, 400, "payment_not_captured", "Nothing to refund.");
    if (r.amount > p->captured - p->refunded)
        return fp_error(out, 400, "amount_too_large", "The refund exceeds what is left to refund.");
    if (fp->refund_count == fp->refund_cap) {
        size_t cap = fp->refund_cap ? fp->refund_cap * 2 : 64;
        fp_refund *grown = realloc(fp->refunds, cap * sizeof *grown);
        if (!grown) return fp_error(out, 500, "internal", "Out of memory.");
        fp->refunds = grown;
        fp->refund_cap = cap;
    }
    snprintf(r.id, sizeof r.id, "exp_re_%zu", fp->refund_count + 1);
    p->refunded += r.amount;
    fp->refunds[fp->refund_count++] = r;
    *out = fp_printf("{\"id\":\"%s\",\"object\":\"refund\",\"status\":\"succeeded\",\"amount\":%lld,"
                     "\"payment\":\"%s\",\"reference\":\"%s\"}",
                     r.id, (long long)r.amount, r.payment, r.reference);
    return 200;
}

/* Routes one request, under the lock. */
static inline int fp_route(fake_provider *fp, const char *method, const char *path, const char *body,
                           size_t len, char **out)
{
    const char *pay = "/v1/payments", *ref = "/v1/refunds/";
    if (!strcmp(method, "POST") && !strcmp(path, pay)) return fp_create(fp, body, len, out);
    if (!strcmp(method, "POST") && !strcmp(path, "/v1/refunds")) return fp_refund_create(fp, body, len, out);
    if (!strcmp(method, "GET") && !strncmp(path, ref, strlen(ref))) {
        for (size_t i = 0; i < fp->refund_count; i++)
            if (!strcmp(fp->refunds[i].id, path + strlen(ref))) {
                const fp_refund *r = &fp->refunds[i];
                *out = fp_printf("{\"id\":\"%s\",\"object\":\"refund\",\"status\":\"succeeded\",\"amount\":"
                                 "%lld,\"payment\":\"%s\",\"reference\":\"%s\"}",
                                 r->id, (long long)r->amount, r->payment, r->reference);
                return 200;
            }
        return fp_error(out, 404, "not_found", "No such refund.");
    }
    if (strncmp(path, "/v1/payments/", 13) != 0) return fp_error(out, 404, "not_found", "Unknown path.");
    const char *id = path + 13, *slash = strchr(id, '/');
    fp_payment *p = fp_find_payment(fp, id, slash ? (size_t)(slash - id) : strlen(id));
    if (!p) return fp_error(out, 404, "not_found", "No such payment.");
    const char *action = slash ? slash + 1 : "";
    if (!strcmp(method, "GET") && !slash) {
        *out = fp_payment_json(p);
        return 200;
    }
    if (strcmp(method, "POST") != 0) return fp_error(out, 405, "method_not_allowed", "Method not allowed.");
    if (!strcmp(action, "confirm")) {
        char m[64] = "";
        if (fp_json_str(body, len, "payment_method", m, sizeof m) < 0 || !m[0])
            return fp_error(out, 400, "parameter_missing", "payment_method is required.");
        if (strcmp(p->status, "requires_confirmation") && strcmp(p->status, "requires_payment_method"))
            return fp_error(out, 400, "payment_unexpected_state", "The payment cannot be confirmed now.");
        return fp_confirm(p, m, out);
    }
    if (!strcmp(action, "capture")) {
        int64_t amount = p->amount;
        if (fp_json_int(body, len, "amount", &amount) < 0) return fp_error(out, 400, "amount_invalid", "Bad amount.");
        if (strcmp(p->status, "requires_capture"))
            return fp_error(out, 400, "payment_unexpected_state", "The payment cannot be captured now.");
        if (amount <= 0 || amount > p->amount)
            return fp_error(out, 400, "amount_too_large", "The capture exceeds the authorized amount.");
        p->captured = amount;
        snprintf(p->status, sizeof p->status, "succeeded");
        *out = fp_payment_json(p);
        return 200;
    }
    if (!strcmp(action, "cancel")) {
        if (!strcmp(p->status, "succeeded") || !strcmp(p->status, "failed"))
            return fp_error(out, 400, "payment_unexpected_state", "The payment cannot be canceled now.");
        snprintf(p->status, sizeof p->status, "canceled");
        *out = fp_payment_json(p);
        return 200;
    }
    return fp_error(out, 404, "not_found", "Unknown path.");
}

static inline void fake_provider_init(fake_provider *fp, const char *api_key)
{
    memset(fp, 0, sizeof *fp);
    pthread_mutex_init(&fp->mu, NULL);
    snprintf(fp->api_key, sizeof fp->api_key, "%s", api_key);
}

static inline void fake_provider_free(fake_provider *fp)
{
    for (size_t i = 0; i < fp->idem_count; i++) {
        free(fp->idem[i].key);
        free(fp->idem[i].request);
        free(fp->idem[i].response);
    }
    free(fp->idem);
    free(fp->payments);
    free(fp->refunds);
    pthread_mutex_destroy(&fp->mu);
}

/*
 * Answers one request. `authorization` and `idempotency_key` are the
 * header values or NULL. Returns the HTTP status and a malloc'd JSON body
 * in *response (the caller frees it). Thread-safe.
 */
static inline int fake_provider_handle(fake_provider *fp, const char *method, const char *path,
                                       const char *authorization, const char *idempotency_key,
                                       const char *body, size_t body_len, char **response)
{
    *response = NULL;
    pthread_mutex_lock(&fp->mu);
    fp->requests++;
    int status;
    char expected[160];
    snprintf(expected, sizeof expected, "Bearer %s", fp->api_key);
    char *request = fp_printf("%s %s\n%.*s", method, path, (int)body_len, body ? body : "");
    if (!request) {
        status = fp_error(response, 500, "internal", "Out of memory.");
    } else if (!authorization || strcmp(authorization, expected) != 0) {
        status = fp_error(response, 401, "unauthorized", "Invalid API key provided.");
    } else {
        fp_idem *seen = NULL;
        for (size_t i = 0; idempotency_key && i < fp->idem_count; i++)
            if (!strcmp(fp->idem[i].key, idempotency_key)) seen = &fp->idem[i];
        if (seen && strcmp(seen->request, request) != 0) {
            status = fp_error(response, 409, "idempotency_conflict",
                              "This idempotency key was used with another request.");
        } else if (seen) {
            status = seen->status;
            *response = strdup(seen->response);
        } else {
            status = fp_route(fp, method, path, body ? body : "", body_len, response);
            /* Executed requests are remembered; a 503 executed nothing. */
            if (idempotency_key && !strcmp(method, "POST") && status != 503 && *response) {
                if (fp->idem_count == fp->idem_cap) {
                    size_t cap = fp->idem_cap ? fp->idem_cap * 2 : 64;
                    fp_idem *grown = realloc(fp->idem, cap * sizeof *grown);
                    if (grown) fp->idem = grown, fp->idem_cap = cap;
                }
                if (fp->idem_count < fp->idem_cap) {
                    fp_idem *r = &fp->idem[fp->idem_count++];
                    r->key = strdup(idempotency_key);
                    r->request = request;
                    r->status = status;
                    r->response = strdup(*response);
                    request = NULL;
                }
            }
        }
    }
    free(request);
    pthread_mutex_unlock(&fp->mu);
    return status;
}

#endif
