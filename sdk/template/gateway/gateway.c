/*
 * gateway.c - a complete payd gateway module for "ExamplePay", a made-up
 * JSON-over-HTTP provider (its API is described in fake_provider.h). Copy
 * this directory, rename `example`/`ex_` to your provider, and replace the
 * wire format; keep the shape. Read sdk/README.md alongside: every rule
 * this file follows is explained there.
 *
 * Build (only a C compiler and sdk/include are needed):
 *     cc -std=c11 -O2 -Wall -Wextra -shared -fPIC -fvisibility=hidden \
 *        -I path/to/sdk/include gateway.c -o example.so
 *
 * payd.conf:
 *     [gateway.example]
 *     module = /abs/path/example.so        ; or `example` inside module_dir
 *     api_base = https://api.examplepay.test
 *     api_key = env:EXAMPLEPAY_API_KEY      ; a secret: never inline it
 *     webhook_secret = env:EXAMPLEPAY_WEBHOOK_SECRET   ; optional
 *     webhook_tolerance_s = 300             ; optional
 *     timeout_ms = 0                        ; optional, 0 = [server] http_timeout_ms
 *
 * The whole contract in one place:
 *   - init reads EVERY key it accepts (payd refuses keys nobody read),
 *     checks them, builds an immutable state; fini wipes the secrets.
 *   - every operation may run on many threads at once with the same state:
 *     the state is never written after init, everything else is on the
 *     stack or in the call's arena.
 *   - inputs are read through payd_copy_in (fields beyond the struct_size
 *     the host filled read as zero); results are written through
 *     payd_copy_out (only what fits in the struct_size the host allocated).
 *     Both, and payd_fail and payd_conf_int, come from the optional
 *     header-only payd/module_support.h.
 *   - every string put in a result lives in the arena `a`.
 *   - req->idempotency_key goes to the provider as its Idempotency-Key, so
 *     the core's retry of an unknown outcome is the SAME request.
 *   - the answer's code tells the core what to do next (ex_map_status):
 *     DECLINED is final and fails the payment; TRANSIENT means "the outcome
 *     is unknown", the core retries with the same key later; when unsure
 *     whether something happened, say TRANSIENT, never DECLINED or INVALID.
 *   - webhooks are verified over the exact raw bytes, in constant time,
 *     with a timestamp tolerance, BEFORE the body is parsed.
 *   - nothing logged or returned contains a card number or the API key.
 *
 * A real module may link any library it likes (libcurl is not needed: use
 * host->http; jansson for JSON is a fine choice). This one has a small
 * JSON reader of its own only so that it builds with a bare compiler.
 */
#define _POSIX_C_SOURCE 200809L

#include <payd/module.h>
#include <payd/module_support.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_VERSION "0.1.0"
#define EX_SIGNATURE_HEADER "Example-Signature"

/* The instance: immutable after init, shared by every thread. */
typedef struct ex_gw {
    const payd_host *h;
    char *api_base;               /* no trailing '/' */
    char *auth;                   /* "Bearer <api key>": secret, wiped at fini */
    size_t auth_len;
    char *webhook_secret;         /* NULL: incoming webhooks are refused */
    size_t webhook_secret_len;
    int64_t tolerance_s;
    long timeout_ms;
} ex_gw;

/* ------------------------------------------------------------------------ */
/* ABI plumbing                                                             */
/* ------------------------------------------------------------------------ */

/* Provider ids go into URL paths: only [A-Za-z0-9_-], 1..100 chars. */
static int ex_id_ok(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
              s[n] == '_' || s[n] == '-') || n >= 100)
            return 0;
    return n > 0;
}

/* ------------------------------------------------------------------------ */
/* A small JSON reader: find a member, read a string or an integer          */
/* ------------------------------------------------------------------------ */

typedef struct ex_span {
    const char *p;                /* the value's first byte, or NULL */
    const char *end;              /* one past its last byte */
} ex_span;

static const char *ex_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* End of the JSON value starting at p, or NULL when malformed. */
static const char *ex_value_end(const char *p, const char *end)
{
    if (p >= end) return NULL;
    if (*p == '"') {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\') p++;
        return p < end ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = ex_value_end(p, end);
                if (!p) return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if ((*p == '}' || *p == ']') && --depth == 0) {
                return p + 1;
            }
        }
        return NULL;
    }
    while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' &&
           *p != '\t')
        p++;
    return p;
}

/* The member `key` of the object `obj`; an empty span when absent. */
static ex_span ex_get(ex_span obj, const char *key)
{
    ex_span none = {NULL, NULL};
    const char *p = obj.p ? ex_ws(obj.p, obj.end) : NULL, *end = obj.end;
    if (!p || p >= end || *p != '{') return none;
    p = ex_ws(p + 1, end);
    size_t klen = strlen(key);
    while (p < end && *p == '"') {
        const char *kend = ex_value_end(p, end);
        if (!kend) return none;
        int match = (size_t)(kend - p - 2) == klen && !memcmp(p + 1, key, klen);
        p = ex_ws(kend, end);
        if (p >= end || *p != ':') return none;
        p = ex_ws(p + 1, end);
        const char *vend = ex_value_end(p, end);
        if (!vend) return none;
        if (match) return (ex_span){p, vend};
        p = ex_ws(vend, end);
        if (p < end && *p == ',') p = ex_ws(p + 1, end);
    }
    return none;
}

static void ex_put_utf8(char *out, size_t *n, unsigned cp)
{
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xc0 | cp >> 6);
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xe0 | cp >> 12);
        out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        out[(*n)++] = (char)(0xf0 | cp >> 18);
        out[(*n)++] = (char)(0x80 | (cp >> 12 & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

static int ex_hex4(const char *p, unsigned *out)
{
    *out = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *out = *out << 4 | (unsigned)d;
    }
    return 0;
}

/* A string member, unescaped into the arena; NULL when absent, null, not
 * a string, malformed, or when it holds a NUL. */
static char *ex_get_str(const ex_gw *g, payd_arena *a, ex_span obj, const char *key)
{
    ex_span v = ex_get(obj, key);
    if (!v.p || *v.p != '"') return NULL;
    char *out = g->h->alloc(a, (size_t)(v.end - v.p));
    if (!out) return NULL;
    size_t n = 0;
    for (const char *p = v.p + 1; p < v.end - 1; p++) {
        if (*p != '\\') {
            out[n++] = *p;
            continue;
        }
        if (++p >= v.end - 1) return NULL;
        unsigned cp, lo;
        switch (*p) {
        case '"': case '\\': case '/': out[n++] = *p; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u':
            if (v.end - 1 - p < 5 || ex_hex4(p + 1, &cp) != 0 || cp == 0) return NULL;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && v.end - 1 - p >= 7 && p[1] == '\\' && p[2] == 'u' &&
                ex_hex4(p + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            }
            ex_put_utf8(out, &n, cp);
            break;
        default: return NULL;
        }
    }
    out[n] = '\0';
    return out;
}

static int64_t ex_get_int(ex_span obj, const char *key)
{
    ex_span v = ex_get(obj, key);
    return v.p && ((*v.p >= '0' && *v.p <= '9') || *v.p == '-') ? strtoll(v.p, NULL, 10) : 0;
}

/* A JSON string literal (quoted, escaped) of s in the arena; "null" for
 * NULL. */
static const char *ex_json_str(const ex_gw *g, payd_arena *a, const char *s)
{
    if (!s) return "null";
    char *out = g->h->alloc(a, strlen(s) * 6 + 3), *o = out;
    if (!out) return NULL;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') *o++ = '\\', *o++ = (char)*p;
        else if (*p < 0x20) o += sprintf(o, "\\u%04x", *p);
        else *o++ = (char)*p;
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* ------------------------------------------------------------------------ */
/* Talking to ExamplePay                                                    */
/* ------------------------------------------------------------------------ */

typedef struct ex_reply {
    long status;
    ex_span body;
    const char *raw;              /* the body as a string, in the arena */
} ex_reply;

/* ExamplePay's decline codes in payd's normalized vocabulary. */
static const char *ex_failure_code(const char *code)
{
    static const char *const known[] = {"card_declined", "insufficient_funds", "expired_card",
                                        "incorrect_cvc", "processing_error", "authentication_required",
                                        NULL};
    for (int i = 0; code && known[i]; i++)
        if (!strcmp(code, known[i])) return known[i];
    return "card_declined";
}

/*
 * What an HTTP status means to payd. Sets e. The mapping is the heart of a
 * gateway module:
 *   2xx                   0
 *   402                   PAYD_E_DECLINED (final; e->failure_code set)
 *   401, 403              PAYD_E_AUTH (the key is wrong: never echo it)
 *   404                   PAYD_E_NOTFOUND
 *   409                   PAYD_E_PROVIDER (idempotency key reused)
 *   408, 425, 429, 5xx    PAYD_E_TRANSIENT (unknown outcome: retry same key)
 *   other 4xx             PAYD_E_INVALID (refused, nothing happened)
 *   anything else         PAYD_E_TRANSIENT (a surprising answer is an unknown
 *                         outcome, never a decline)
 */
static int ex_map_status(const ex_gw *g, payd_arena *a, const ex_reply *r, payd_error *e)
{
    long s = r->status;
    if (s >= 200 && s < 300) return PAYD_OK;
    ex_span err = ex_get(r->body, "error");
    const char *code = ex_get_str(g, a, err, "code");
    /* ExamplePay's messages are fixed texts; a real provider's may quote
     * the request. Pass a message on only when it cannot hold card data. */
    const char *msg = ex_get_str(g, a, err, "message");
    if (!msg || strlen(msg) > 200) msg = "no message";
    if (s == 402) {
        snprintf(e->failure_code, sizeof e->failure_code, "%s", ex_failure_code(code));
        return payd_fail(e, PAYD_E_DECLINED, "%s", msg);
    }
    if (s == 401 || s == 403) return payd_fail(e, PAYD_E_AUTH, "ExamplePay refused the API key (HTTP %ld)", s);
    if (s == 404) return payd_fail(e, PAYD_E_NOTFOUND, "ExamplePay: %s", msg);
    if (s == 409) return payd_fail(e, PAYD_E_PROVIDER, "ExamplePay: %s (%s)", msg, code ? code : "conflict");
    if (s == 408 || s == 425 || s == 429 || s >= 500)
        return payd_fail(e, PAYD_E_TRANSIENT, "ExamplePay answered HTTP %ld: the outcome is unknown", s);
    if (s >= 400) return payd_fail(e, PAYD_E_INVALID, "ExamplePay: %s (%s)", msg, code ? code : "invalid_request");
    return payd_fail(e, PAYD_E_TRANSIENT, "ExamplePay answered HTTP %ld", s);
}

/*
 * One call to ExamplePay. `json` is the body (NULL for GET), `idem` the
 * idempotency key (POSTs). Returns 0 for a 2xx with the reply in *r,
 * PAYD_E_TRANSIENT when no answer came (the host sets e), or the mapped
 * error of a non-2xx answer (r filled too: a 402 carries the payment).
 */
static int ex_call(const ex_gw *g, const char *method, const char *path, const char *json, const char *idem,
                   payd_arena *a, payd_error *e, ex_reply *r)
{
    const payd_host *h = g->h;
    memset(r, 0, sizeof *r);
    /* A NULL path or POST body here means an allocation failed upstream. */
    const char *url = path ? h->sprintf(a, "%s%s", g->api_base, path) : NULL;
    if (!url || (json == NULL && !strcmp(method, "POST"))) return payd_fail(e, PAYD_E_NOMEM, "out of memory");
    payd_header hd[5];
    size_t n = 0;
    hd[n++] = (payd_header){"Authorization", g->auth};
    hd[n++] = (payd_header){"Accept", "application/json"};
    hd[n++] = (payd_header){"User-Agent", "payd-example/" EX_VERSION};
    if (json) hd[n++] = (payd_header){"Content-Type", "application/json"};
    if (idem) hd[n++] = (payd_header){"Idempotency-Key", idem};
    payd_http_request req = {.struct_size = sizeof req, .method = method, .url = url, .headers = hd,
                             .header_count = n, .body = json, .body_len = json ? strlen(json) : 0,
                             .timeout_ms = g->timeout_ms};
    payd_http_response res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    int rc = h->http(h, &req, &res, a, e);
    if (rc != PAYD_OK) return rc; /* no answer: TRANSIENT, the host said why */
    const char *rid = h->http_header(&res, "Request-Id");
    if (rid) snprintf(e->provider_request_id, sizeof e->provider_request_id, "%s", rid);
    r->status = res.status;
    r->raw = res.body;
    r->body = (ex_span){res.body, res.body ? res.body + res.body_len : NULL};
    return ex_map_status(g, a, r, e);
}

static int ex_payment_status(const char *s)
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
        {"failed", PAYD_PS_FAILED},
        {"canceled", PAYD_PS_CANCELED},
    };
    for (size_t i = 0; s && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) return map[i].status;
    return 0;
}

/*
 * A payment object into res. An answer we cannot read is an unknown
 * outcome (TRANSIENT): the provider may well have charged.
 */
static int ex_fill_payment(const ex_gw *g, payd_arena *a, ex_span pay, const ex_reply *r,
                           payd_payment_res *res, payd_error *e)
{
    payd_payment_res out;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    out.provider_ref = ex_get_str(g, a, pay, "id");
    out.status = ex_payment_status(ex_get_str(g, a, pay, "status"));
    if (!out.provider_ref || !out.status)
        return payd_fail(e, PAYD_E_TRANSIENT, "ExamplePay's answer has no readable payment");
    out.amount = ex_get_int(pay, "amount");
    out.amount_capturable = ex_get_int(pay, "amount_capturable");
    out.amount_captured = ex_get_int(pay, "amount_captured");
    const char *fc = ex_get_str(g, a, pay, "failure_code");
    out.failure_code = fc ? ex_failure_code(fc) : NULL;
    out.failure_message = ex_get_str(g, a, pay, "failure_message");
    out.raw = r->raw;             /* ExamplePay's answers hold no secrets */
    out.provider_request_id = e->provider_request_id[0] ? g->h->strdup(a, e->provider_request_id) : NULL;
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/* A payment call: POST/GET, then the payment (also from a 402's body). */
static int ex_payment_call(const ex_gw *g, const char *method, const char *path, const char *json,
                           const char *idem, payd_payment_res *res, payd_arena *a, payd_error *e)
{
    ex_reply r;
    int rc = ex_call(g, method, path, json, idem, a, e, &r);
    if (rc == PAYD_OK) return ex_fill_payment(g, a, r.body, &r, res, e);
    if (rc == PAYD_E_DECLINED) {
        payd_error ignored = *e;
        ex_span pay = ex_get(r.body, "payment");
        if (pay.p) ex_fill_payment(g, a, pay, &r, res, &ignored);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Gateway operations                                                       */
/* ------------------------------------------------------------------------ */

/*
 * create: a payment for req->amount; with req->confirm, charged (or
 * authorized, for manual capture) at once with req->payment_method.
 * PAYD_OK (res filled), PAYD_E_DECLINED (e->failure_code set; res holds the
 * failed payment when the provider returned one), PAYD_E_INVALID,
 * PAYD_E_AUTH, PAYD_E_TRANSIENT (outcome unknown), PAYD_E_PROVIDER,
 * PAYD_E_NOMEM.
 */
static int ex_create(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const ex_gw *g = state;
    payd_payment_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    if (q.amount <= 0) return payd_fail(e, PAYD_E_INVALID, "amount must be positive");
    if (!q.currency || strlen(q.currency) != 3) return payd_fail(e, PAYD_E_INVALID, "currency must be ISO 4217");
    if (!q.idempotency_key) return payd_fail(e, PAYD_E_INVALID, "an idempotency key is required");
    const char *cur = ex_json_str(g, a, q.currency), *ref = ex_json_str(g, a, q.payment_id),
               *method = ex_json_str(g, a, q.payment_method);
    if (!cur || !ref || !method) return payd_fail(e, PAYD_E_NOMEM, "out of memory");
    const char *json = g->h->sprintf(
        a, "{\"amount\":%lld,\"currency\":%s,\"reference\":%s,\"capture\":\"%s\",\"payment_method\":%s,"
           "\"confirm\":%s}",
        (long long)q.amount, cur, ref, q.capture_method == PAYD_CAPTURE_MANUAL ? "manual" : "automatic", method,
        q.confirm && q.payment_method ? "true" : "false");
    return ex_payment_call(g, "POST", "/v1/payments", json, q.idempotency_key, res, a, e);
}

/* retrieve: the provider's current view; reads never need a key. */
static int ex_retrieve(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const ex_gw *g = state;
    payd_payment_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    if (!ex_id_ok(q.provider_ref)) return payd_fail(e, PAYD_E_INVALID, "a valid provider_ref is required");
    const char *path = g->h->sprintf(a, "/v1/payments/%s", q.provider_ref);
    return ex_payment_call(g, "GET", path, NULL, NULL, res, a, e);
}

/* confirm, capture, cancel: POST /v1/payments/REF/<op> with `json`. */
static int ex_payment_action(const ex_gw *g, const payd_payment_req *q, const char *op, const char *json,
                             payd_payment_res *res, payd_arena *a, payd_error *e)
{
    if (!ex_id_ok(q->provider_ref)) return payd_fail(e, PAYD_E_INVALID, "a valid provider_ref is required");
    if (!q->idempotency_key) return payd_fail(e, PAYD_E_INVALID, "an idempotency key is required");
    const char *path = g->h->sprintf(a, "/v1/payments/%s/%s", q->provider_ref, op);
    return ex_payment_call(g, "POST", path, json, q->idempotency_key, res, a, e);
}

static int ex_confirm(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const ex_gw *g = state;
    payd_payment_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    if (!q.payment_method) return payd_fail(e, PAYD_E_INVALID, "confirm needs a payment method");
    const char *method = ex_json_str(g, a, q.payment_method);
    const char *json = method ? g->h->sprintf(a, "{\"payment_method\":%s}", method) : NULL;
    return ex_payment_action(g, &q, "confirm", json, res, a, e);
}

static int ex_capture(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const ex_gw *g = state;
    payd_payment_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    const char *json = q.amount_to_capture > 0
                           ? g->h->sprintf(a, "{\"amount\":%lld}", (long long)q.amount_to_capture)
                           : "{}";
    return ex_payment_action(g, &q, "capture", json, res, a, e);
}

static int ex_cancel(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    const ex_gw *g = state;
    payd_payment_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    return ex_payment_action(g, &q, "cancel", "{}", res, a, e);
}

static int ex_fill_refund(const ex_gw *g, payd_arena *a, const ex_reply *r, payd_refund_res *res,
                          payd_error *e)
{
    static const struct {
        const char *name;
        int status;
    } map[] = {{"pending", PAYD_RS_PENDING},
               {"succeeded", PAYD_RS_SUCCEEDED},
               {"failed", PAYD_RS_FAILED},
               {"canceled", PAYD_RS_CANCELED}};
    payd_refund_res out;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    out.refund_ref = ex_get_str(g, a, r->body, "id");
    const char *status = ex_get_str(g, a, r->body, "status");
    for (size_t i = 0; status && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(status, map[i].name)) out.status = map[i].status;
    if (!out.refund_ref || !out.status)
        return payd_fail(e, PAYD_E_TRANSIENT, "ExamplePay's answer has no readable refund");
    out.failure_code = ex_get_str(g, a, r->body, "failure_code");
    out.failure_message = ex_get_str(g, a, r->body, "failure_message");
    out.raw = r->raw;
    out.provider_request_id = e->provider_request_id[0] ? g->h->strdup(a, e->provider_request_id) : NULL;
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/*
 * refund: req->amount of the payment req->provider_ref. ExamplePay refuses
 * more than what is left with a 400: PAYD_E_INVALID, final. The core has
 * already reserved the amount; on any error but TRANSIENT it releases it.
 */
static int ex_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res))
{
    const ex_gw *g = state;
    payd_refund_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    if (!ex_id_ok(q.provider_ref)) return payd_fail(e, PAYD_E_INVALID, "a valid provider_ref is required");
    if (q.amount <= 0) return payd_fail(e, PAYD_E_INVALID, "amount must be positive");
    if (!q.idempotency_key) return payd_fail(e, PAYD_E_INVALID, "an idempotency key is required");
    const char *pay = ex_json_str(g, a, q.provider_ref), *ref = ex_json_str(g, a, q.refund_id);
    const char *json = pay && ref ? g->h->sprintf(a, "{\"payment\":%s,\"amount\":%lld,\"reference\":%s}", pay,
                                                  (long long)q.amount, ref)
                                  : NULL;
    ex_reply r;
    int rc = ex_call(g, "POST", "/v1/refunds", json, q.idempotency_key, a, e, &r);
    return rc == PAYD_OK ? ex_fill_refund(g, a, &r, res, e) : rc;
}

static int ex_refund_retrieve(PAYD_OP_ARGS(payd_refund_req, payd_refund_res))
{
    const ex_gw *g = state;
    payd_refund_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    if (!ex_id_ok(q.refund_ref)) return payd_fail(e, PAYD_E_INVALID, "a valid refund_ref is required");
    ex_reply r;
    int rc = ex_call(g, "GET", g->h->sprintf(a, "/v1/refunds/%s", q.refund_ref), NULL, NULL, a, e, &r);
    return rc == PAYD_OK ? ex_fill_refund(g, a, &r, res, e) : rc;
}

/* ------------------------------------------------------------------------ */
/* Webhooks                                                                 */
/* ------------------------------------------------------------------------ */

static int ex_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Verifies "t=<unix>,v1=<64 hex>[,v1=...]" against the raw body: any v1
 * equal, in constant time, to HMAC-SHA256(secret, "<t>.<body>"), and t
 * within the tolerance of the host clock. PAYD_OK or PAYD_E_SIGNATURE.
 */
static int ex_verify(const ex_gw *g, payd_arena *a, const char *header, const char *body, size_t len,
                     payd_error *e)
{
    const payd_host *h = g->h;
    const char *t = NULL;
    size_t t_len = 0;
    uint8_t sigs[8][32];
    int nsig = 0;
    for (const char *p = header; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 2 && !strncmp(p, "t=", 2) && !t) {
            t = p + 2;
            t_len = n - 2;
        } else if (n == 67 && !strncmp(p, "v1=", 3) && nsig < 8) {
            int ok = 1;
            for (int i = 0; i < 32 && ok; i++) {
                int hi = ex_hexval(p[3 + 2 * i]), lo = ex_hexval(p[4 + 2 * i]);
                ok = hi >= 0 && lo >= 0;
                if (ok) sigs[nsig][i] = (uint8_t)(hi << 4 | lo);
            }
            nsig += ok;
        }
        p += n + (end ? 1 : 0);
    }
    if (!t || t_len > 12 || !nsig)
        return payd_fail(e, PAYD_E_SIGNATURE, "malformed %s header", EX_SIGNATURE_HEADER);
    int64_t ts = 0;
    for (size_t i = 0; i < t_len; i++) {
        if (t[i] < '0' || t[i] > '9') return payd_fail(e, PAYD_E_SIGNATURE, "malformed timestamp");
        ts = ts * 10 + (t[i] - '0');
    }
    /* The signed payload: "<t>.<body>", over the exact bytes received. */
    char *signed_payload = h->alloc(a, t_len + 1 + len + 1);
    if (!signed_payload) return payd_fail(e, PAYD_E_NOMEM, "out of memory");
    memcpy(signed_payload, t, t_len);
    signed_payload[t_len] = '.';
    memcpy(signed_payload + t_len + 1, body, len);
    uint8_t mac[32];
    h->hmac_sha256(g->webhook_secret, g->webhook_secret_len, signed_payload, t_len + 1 + len, mac);
    int match = 0;
    for (int i = 0; i < nsig; i++) match |= h->equal_ct(mac, sigs[i], sizeof mac);
    h->cleanse(mac, sizeof mac);
    if (!match) return payd_fail(e, PAYD_E_SIGNATURE, "no v1 signature matches the body");
    int64_t skew = h->now(h) - ts;
    if (skew < 0) skew = -skew;
    if (skew > g->tolerance_s)
        return payd_fail(e, PAYD_E_SIGNATURE, "signature timestamp is %lld s from now (tolerance %lld s)",
                       (long long)skew, (long long)g->tolerance_s);
    return PAYD_OK;
}

static int ex_event_type(const char *type)
{
    static const struct {
        const char *name;
        int type;
    } map[] = {
        {"payment.succeeded", PAYD_EV_PAYMENT_SUCCEEDED}, {"payment.failed", PAYD_EV_PAYMENT_FAILED},
        {"payment.canceled", PAYD_EV_PAYMENT_CANCELED},   {"payment.capturable", PAYD_EV_PAYMENT_CAPTURABLE},
        {"payment.processing", PAYD_EV_PAYMENT_PROCESSING}, {"refund.succeeded", PAYD_EV_REFUND_SUCCEEDED},
        {"refund.failed", PAYD_EV_REFUND_FAILED},
    };
    for (size_t i = 0; type && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(type, map[i].name)) return map[i].type;
    return PAYD_EV_IGNORED; /* still acknowledged and deduplicated by the core */
}

/*
 * webhook: verify, then normalize one event. PAYD_OK (res: one event with
 * provider_event_id, the core's dedup key), PAYD_E_SIGNATURE (the core
 * answers 400 and stores nothing), PAYD_E_INVALID (signed but unusable).
 */
static int ex_webhook(PAYD_OP_ARGS(payd_webhook_req, payd_event))
{
    const ex_gw *g = state;
    payd_webhook_req q;
    if (payd_copy_in(&q, sizeof q, req) != 0) return payd_fail(e, PAYD_E_INVALID, "the request has no struct_size");
    if (!g->webhook_secret) return payd_fail(e, PAYD_E_SIGNATURE, "webhook_secret is not configured");
    const char *sig = NULL;
    for (size_t i = 0; q.headers && i < q.header_count; i++) {
        const char *x = q.headers[i].name, *y = EX_SIGNATURE_HEADER;
        while (*x && *y && (*x | 32) == (*y | 32)) x++, y++;
        if (*x || *y) continue;
        if (sig) return payd_fail(e, PAYD_E_SIGNATURE, "more than one %s header", EX_SIGNATURE_HEADER);
        sig = q.headers[i].value;
    }
    if (!sig) return payd_fail(e, PAYD_E_SIGNATURE, "missing %s header", EX_SIGNATURE_HEADER);
    int rc = ex_verify(g, a, sig, q.body ? q.body : "", q.body ? q.body_len : 0, e);
    if (rc != PAYD_OK) return rc;

    /* Verified: only now is the body worth parsing. */
    ex_span body = {q.body, q.body + q.body_len};
    ex_span data = ex_get(body, "data");
    payd_event out;
    memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    out.provider_event_id = ex_get_str(g, a, body, "id");
    if (!out.provider_event_id || !*out.provider_event_id)
        return payd_fail(e, PAYD_E_INVALID, "the event has no id");
    out.provider_type = ex_get_str(g, a, body, "type");
    out.type = ex_event_type(out.provider_type);
    out.occurred_at = ex_get_int(body, "created");
    out.provider_ref = ex_get_str(g, a, data, "payment");
    out.payment_id = ex_get_str(g, a, data, "reference");
    out.refund_ref = ex_get_str(g, a, data, "refund");
    out.refund_id = ex_get_str(g, a, data, "refund_reference");
    out.amount = ex_get_int(data, "amount");
    out.currency = ex_get_str(g, a, data, "currency");
    const char *fc = ex_get_str(g, a, data, "failure_code");
    out.failure_code = fc ? ex_failure_code(fc) : NULL;
    out.failure_message = ex_get_str(g, a, data, "failure_message");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */
/* ------------------------------------------------------------------------ */

static void ex_free(ex_gw *g)
{
    if (!g) return;
    if (g->auth) g->h->cleanse(g->auth, g->auth_len);
    if (g->webhook_secret) g->h->cleanse(g->webhook_secret, g->webhook_secret_len);
    free(g->auth);
    free(g->webhook_secret);
    free(g->api_base);
    free(g);
}

/*
 * init: reads and checks every key (payd refuses a key nobody read), then
 * builds the immutable state. Runs alone, maybe twice (payd first tries it
 * in a throwaway child process): no side effects outside the state.
 */
static int ex_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    if (h->abi_major != PAYD_ABI_MAJOR || h->struct_size < sizeof(payd_host))
        return payd_fail(e, PAYD_E_INVALID, "example: this host lacks ABI %d.%d services", PAYD_ABI_MAJOR,
                       PAYD_ABI_MINOR);
    const char *base = h->config_get(cfg, "api_base");
    const char *key = h->config_get(cfg, "api_key");
    const char *whsec = h->config_get(cfg, "webhook_secret");
    int64_t tolerance, timeout;
    int rc = payd_conf_int(h, cfg, "webhook_tolerance_s", 300, 1, 86400, &tolerance, e, "example");
    if (rc == PAYD_OK) rc = payd_conf_int(h, cfg, "timeout_ms", 0, 0, 120000, &timeout, e, "example");
    if (rc != PAYD_OK) return rc;
    if (!base || (strncmp(base, "https://", 8) && strncmp(base, "http://", 7)))
        return payd_fail(e, PAYD_E_INVALID, "example: api_base must be an http(s) URL");
    if (!key || !*key) return payd_fail(e, PAYD_E_INVALID, "example: api_key is required (use env:NAME)");

    ex_gw *g = calloc(1, sizeof *g);
    if (!g) return payd_fail(e, PAYD_E_NOMEM, "example: out of memory");
    g->h = h;
    g->tolerance_s = tolerance;
    g->timeout_ms = (long)timeout;
    g->api_base = strdup(base);
    g->auth_len = strlen("Bearer ") + strlen(key) + 1;
    g->auth = malloc(g->auth_len);
    if (whsec && *whsec) {
        g->webhook_secret = strdup(whsec);
        g->webhook_secret_len = strlen(whsec);
    }
    if (!g->api_base || !g->auth || (whsec && *whsec && !g->webhook_secret)) {
        ex_free(g);
        return payd_fail(e, PAYD_E_NOMEM, "example: out of memory");
    }
    snprintf(g->auth, g->auth_len, "Bearer %s", key);
    size_t n = strlen(g->api_base);
    while (n > 0 && g->api_base[n - 1] == '/') g->api_base[--n] = '\0';
    /* The base URL is not a secret; the key is never logged. */
    h->log(h, PAYD_LOG_INFO, "example gateway %s ready: %s, webhooks %s", EX_VERSION, g->api_base,
           g->webhook_secret ? "verified" : "refused (no webhook_secret)");
    *state = g;
    return PAYD_OK;
}

static void ex_fini(void *state)
{
    ex_free(state);
}

static const payd_gateway_ops ex_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = ex_create,
    .retrieve = ex_retrieve,
    .confirm = ex_confirm,
    .capture = ex_capture,
    .cancel = ex_cancel,
    .refund = ex_refund,
    .refund_retrieve = ex_refund_retrieve,
    .webhook = ex_webhook,
};

static const payd_module ex_module = {
    PAYD_MODULE_V1,
    .name = "example",
    .version = EX_VERSION,
    .description = "ExamplePay (the payd SDK template)",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_CAPTURE_LATER | PAYD_CAP_PARTIAL_CAPTURE | PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND |
            PAYD_CAP_WEBHOOKS | PAYD_CAP_CANCEL | PAYD_CAP_CONFIRM,
    .init = ex_init,
    .fini = ex_fini,
    .gateway = &ex_ops,
};

/* The one exported symbol. */
PAYD_DECLARE_MODULE(ex_module)
