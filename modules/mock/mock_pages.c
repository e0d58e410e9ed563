/*
 * modules/mock/mock_pages.c - pages payd serves for the mock under /mock/.
 *
 *   GET  3ds/<ref>               the 3-D Secure challenge: amount and two
 *                                buttons (forms POSTing action=approve|fail)
 *   POST 3ds/<ref>               complete it: 303 to the intent's return_url
 *                                (plus payment_intent and redirect_status),
 *                                or 200 with a "done" page; 409 unless the
 *                                intent is requires_action; 404 if unknown
 *   GET  stats?payment_id=pay_x  JSON counters proving "one charge at the
 *                                module": intents_created, captures,
 *                                refunds, create_calls
 *   POST test/intents/<ref>      only with test_controls = on: set the
 *                                intent's status and/or amount_captured
 *                                (form fields) behind payd's back; answers
 *                                the intent as JSON
 *   POST test/refunds/<ref>      the same for a refund's status
 *
 * Pages are self-contained (inline CSS, no scripts, no external assets) and
 * every echoed value is HTML- or JSON-escaped.
 */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOCK_HTML "text/html; charset=utf-8"
#define MOCK_FORM_VALUE_MAX 256

static const char mock_page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<meta name=\"robots\" content=\"noindex\"><title>";

static const char mock_page_style[] =
    "</title><style>"
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;"
    "background:#f6f7fb;color:#1a1f36;margin:0;min-height:100vh;"
    "display:flex;align-items:center;justify-content:center}"
    "main{background:#fff;border-radius:12px;padding:32px;max-width:420px;"
    "width:100%;box-shadow:0 4px 24px rgba(0,0,0,.08)}"
    "h1{font-size:20px;margin:0 0 8px}"
    ".badge{display:inline-block;background:#ffe7c2;color:#8a4b00;"
    "border-radius:4px;padding:2px 8px;font-size:12px;font-weight:600}"
    ".amount{font-size:28px;font-weight:600;margin:20px 0 4px}"
    ".note{color:#697386;font-size:14px;line-height:1.5}"
    ".actions{display:flex;gap:12px;margin-top:24px}form{flex:1;margin:0}"
    "button{width:100%;padding:12px;border:0;border-radius:8px;"
    "font-size:16px;font-weight:600;cursor:pointer}"
    ".approve{background:#635bff;color:#fff}"
    ".fail{background:#e3e8ee;color:#1a1f36}"
    "</style></head><body><main>";

static const char mock_page_tail[] = "</main></body></html>\n";

/* Copy `b` into the arena as the response body. PAYD_OK or PAYD_E_NOMEM. */
static int mock_page_set(const mock_instance *inst, payd_arena *a,
                         payd_page_res *out, int status,
                         const char *content_type, mock_buf *b, payd_error *e)
{
    if (b->oom || b->data == NULL) {
        mock_buf_free(b);
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    }
    out->body = inst->h->strndup(a, b->data, b->len);
    out->body_len = b->len;
    mock_buf_free(b);
    if (out->body == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    out->status = status;
    out->content_type = content_type;
    return PAYD_OK;
}

/* A whole HTML page around `inner` (already escaped HTML). */
static int mock_page_html(const mock_instance *inst, payd_arena *a,
                          payd_page_res *out, int status, const char *title,
                          const char *inner, payd_error *e)
{
    mock_buf b = {0};

    mock_buf_puts(&b, mock_page_head);
    mock_buf_html(&b, title);
    mock_buf_puts(&b, mock_page_style);
    mock_buf_puts(&b, "<span class=\"badge\">TEST MODE</span><h1>");
    mock_buf_html(&b, title);
    mock_buf_puts(&b, "</h1>");
    mock_buf_puts(&b, inner);
    mock_buf_puts(&b, mock_page_tail);
    return mock_page_set(inst, a, out, status, MOCK_HTML, &b, e);
}

/* A page whose whole body is one escaped sentence. */
static int mock_page_message(const mock_instance *inst, payd_arena *a,
                             payd_page_res *out, int status, const char *title,
                             const char *text, payd_error *e)
{
    mock_buf inner = {0};
    int rc;

    mock_buf_puts(&inner, "<p class=\"note\">");
    mock_buf_html(&inner, text);
    mock_buf_puts(&inner, "</p>");
    if (inner.oom) {
        mock_buf_free(&inner);
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    }
    rc = mock_page_html(inst, a, out, status, title, inner.data, e);
    mock_buf_free(&inner);
    return rc;
}

/* URL-decode [s, end) into out (cap bytes). 1, or -1 when malformed, too
 * long, or decoding to a control character. */
static int mock_url_decode(const char *s, const char *end, char *out,
                           size_t cap)
{
    size_t n = 0;

    while (s < end) {
        unsigned c = (unsigned char)*s++;

        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            unsigned v = 0;
            int i;

            if (end - s < 2)
                return -1;
            for (i = 0; i < 2; i++) {
                char x = *s++;

                v <<= 4;
                if (x >= '0' && x <= '9')
                    v |= (unsigned)(x - '0');
                else if (x >= 'a' && x <= 'f')
                    v |= (unsigned)(x - 'a' + 10);
                else if (x >= 'A' && x <= 'F')
                    v |= (unsigned)(x - 'A' + 10);
                else
                    return -1;
            }
            c = v;
        }
        if (c < 0x20 || c == 0x7f || n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return 1;
}

/*
 * Find `name` in an application/x-www-form-urlencoded string of `len`
 * bytes (not necessarily NUL-terminated) and decode its first value into
 * `out`. Returns 1, 0 when absent, -1 when the value is malformed.
 */
static int mock_form_value(const char *s, size_t len, const char *name,
                           char *out, size_t cap)
{
    const char *p = s, *end = s + len;
    size_t nlen = strlen(name);

    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp != NULL ? amp : end;

        if ((size_t)(pe - p) > nlen && memcmp(p, name, nlen) == 0 &&
            p[nlen] == '=')
            return mock_url_decode(p + nlen + 1, pe, out, cap);
        p = amp != NULL ? amp + 1 : NULL;
    }
    return 0;
}

/* `prefix` ("mock_pi_", "mock_re_") and exactly 24 lower-case hex digits. */
static int mock_valid_ref(const char *s, const char *prefix)
{
    size_t i, n = strlen(prefix);

    if (strncmp(s, prefix, n) != 0 || strlen(s) != n + MOCK_REF_HEX)
        return 0;
    for (i = n; i < n + MOCK_REF_HEX; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int mock_valid_intent_ref(const char *s)
{
    return mock_valid_ref(s, "mock_pi_");
}

/* "12.34" for 1234 at exponent 2, "0.05" for 5 (exponents 0..4). */
static void mock_format_amount(char *out, size_t size, int64_t amount, int exp)
{
    char digits[24], padded[32];
    int n, pad;

    n = snprintf(digits, sizeof digits, "%lld", (long long)amount);
    if (n <= 0 || amount < 0 || exp <= 0 || exp > 4) {
        snprintf(out, size, "%s", n > 0 ? digits : "0");
        return;
    }
    pad = exp + 1 - n > 0 ? exp + 1 - n : 0;
    memset(padded, '0', (size_t)pad);
    memcpy(padded + pad, digits, (size_t)n + 1);
    n += pad;
    snprintf(out, size, "%.*s.%s", n - exp, padded, padded + n - exp);
}

/* GET 3ds/<ref>: the challenge page. */
static int mock_page_challenge(const mock_instance *inst, const char *ref,
                               payd_page_res *out, payd_arena *a, payd_error *e)
{
    mock_challenge ch;
    mock_buf inner = {0};
    char amount[48];
    int rc;

    pthread_mutex_lock(&mock_mu);
    rc = mock_intents_challenge_locked(ref, &ch);
    pthread_mutex_unlock(&mock_mu);
    if (rc != PAYD_OK)
        return mock_page_message(inst, a, out, 404, "Unknown payment",
                                 "No payment waits for authentication here.",
                                 e);
    if (ch.status != PAYD_PS_REQUIRES_ACTION) {
        char text[128];

        snprintf(text, sizeof text,
                 "This challenge is no longer pending: the payment is %s.",
                 payd_payment_status_name(ch.status));
        return mock_page_message(inst, a, out, 409, "Challenge not pending",
                                 text, e);
    }
    mock_format_amount(amount, sizeof amount, ch.amount, ch.currency_exponent);
    mock_buf_puts(&inner, "<p class=\"note\">Your bank asks you to confirm "
                          "this payment. This is the mock gateway: no real "
                          "card is charged.</p><p class=\"amount\">");
    mock_buf_html(&inner, amount);
    mock_buf_puts(&inner, " ");
    mock_buf_html(&inner, ch.currency);
    mock_buf_puts(&inner, "</p><p class=\"note\">Payment ");
    mock_buf_html(&inner, ref);
    mock_buf_puts(&inner, "</p><div class=\"actions\">");
    /* A relative action posts back to /mock/3ds/<ref>. */
    mock_buf_puts(&inner, "<form method=\"post\" action=\"");
    mock_buf_html(&inner, ref);
    mock_buf_puts(&inner, "\"><input type=\"hidden\" name=\"action\" "
                          "value=\"approve\"><button class=\"approve\" "
                          "type=\"submit\">Complete authentication</button>"
                          "</form><form method=\"post\" action=\"");
    mock_buf_html(&inner, ref);
    mock_buf_puts(&inner, "\"><input type=\"hidden\" name=\"action\" "
                          "value=\"fail\"><button class=\"fail\" "
                          "type=\"submit\">Fail authentication</button>"
                          "</form></div>");
    if (inner.oom) {
        mock_buf_free(&inner);
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    }
    rc = mock_page_html(inst, a, out, 200, "Mock 3-D Secure challenge",
                        inner.data, e);
    mock_buf_free(&inner);
    return rc;
}

/*
 * The redirect back to the shop, Stripe style: return_url plus
 * payment_intent=<ref>&redirect_status=succeeded|failed, placed before any
 * fragment. The return_url was checked at create (http(s), no spaces or
 * control characters), so the Location header cannot be split.
 */
static char *mock_return_location(const mock_instance *inst, payd_arena *a,
                                  const char *url, const char *ref,
                                  int approved)
{
    const char *hash = strchr(url, '#');
    size_t base = hash != NULL ? (size_t)(hash - url) : strlen(url);
    const char *q = memchr(url, '?', base);
    const char *sep;

    if (q == NULL)
        sep = "?";
    else if (url[base - 1] == '?' || url[base - 1] == '&')
        sep = "";
    else
        sep = "&";
    return inst->h->sprintf(a, "%.*s%spayment_intent=%s&redirect_status=%s%s",
                            (int)base, url, sep, ref,
                            approved ? "succeeded" : "failed",
                            hash != NULL ? hash : "");
}

/* POST 3ds/<ref>: approve or fail the challenge. */
static int mock_page_challenge_post(const mock_instance *inst, const char *ref,
                                    const payd_page_req *req,
                                    payd_page_res *out, payd_arena *a,
                                    payd_error *e)
{
    char action[MOCK_FORM_VALUE_MAX];
    char *return_url = NULL;
    int approve, rc, found = 0;

    if (req->body != NULL)
        found = mock_form_value(req->body, req->body_len, "action", action,
                                sizeof action);
    if (found != 1 ||
        (strcmp(action, "approve") != 0 && strcmp(action, "fail") != 0))
        return mock_page_message(inst, a, out, 400, "Bad request",
                                 "Expected action=approve or action=fail.", e);
    approve = strcmp(action, "approve") == 0;
    pthread_mutex_lock(&mock_mu);
    rc = mock_intents_challenge_complete_locked(ref, approve, &return_url);
    pthread_mutex_unlock(&mock_mu);
    if (rc == PAYD_E_NOTFOUND)
        return mock_page_message(inst, a, out, 404, "Unknown payment",
                                 "No payment waits for authentication here.",
                                 e);
    if (rc != PAYD_OK)
        return mock_page_message(inst, a, out, 409, "Challenge not pending",
                                 "This challenge was already completed.", e);
    if (return_url != NULL) {
        out->location = mock_return_location(inst, a, return_url, ref, approve);
        free(return_url);
        if (out->location == NULL)
            return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
        out->status = 303;
        out->content_type = MOCK_HTML;
        out->body = "";
        out->body_len = 0;
        return PAYD_OK;
    }
    return mock_page_message(
        inst, a, out, 200,
        approve ? "Authentication complete" : "Authentication failed",
        approve ? "The payment was authenticated. You can close this window."
                : "The payment failed authentication. You can close this "
                  "window.",
        e);
}

/* GET stats?payment_id=...: the module-side counters as JSON. */
static int mock_page_stats(const mock_instance *inst, const payd_page_req *req,
                           payd_page_res *out, payd_arena *a, payd_error *e)
{
    char id[MOCK_ID_MAX + 1];
    mock_stats st;
    mock_buf b = {0};
    int found = 0;

    if (req->query != NULL)
        found = mock_form_value(req->query, strlen(req->query), "payment_id",
                                id, sizeof id);
    if (found != 1 || id[0] == '\0') {
        mock_buf_puts(&b, "{\"error\":\"payment_id is required\"}");
        return mock_page_set(inst, a, out, 400, "application/json", &b, e);
    }
    mock_stats_read(id, &st);
    mock_buf_puts(&b, "{\"payment_id\":");
    mock_buf_json_str(&b, id);
    mock_buf_printf(&b,
                    ",\"intents_created\":%lld,\"captures\":%lld,"
                    "\"refunds\":%lld,\"create_calls\":%lld}",
                    (long long)st.intents_created, (long long)st.captures,
                    (long long)st.refunds, (long long)st.create_calls);
    return mock_page_set(inst, a, out, 200, "application/json", &b, e);
}

/* A JSON page {"error": message} with `status`. */
static int mock_page_json_error(const mock_instance *inst, payd_arena *a,
                                payd_page_res *out, int status,
                                const char *message, payd_error *e)
{
    mock_buf b = {0};

    mock_buf_puts(&b, "{\"error\":");
    mock_buf_json_str(&b, message);
    mock_buf_puts(&b, "}");
    return mock_page_set(inst, a, out, status, "application/json", &b, e);
}

/* A payment status by name (requires_payment_method ... canceled), or 0. */
static int mock_payment_status_by_name(const char *name)
{
    int s;

    for (s = PAYD_PS_REQUIRES_PAYMENT_METHOD; s <= PAYD_PS_CANCELED; s++)
        if (strcmp(payd_payment_status_name(s), name) == 0)
            return s;
    return 0;
}

static int mock_refund_status_by_name(const char *name)
{
    if (strcmp(name, "pending") == 0)
        return PAYD_RS_PENDING;
    if (strcmp(name, "succeeded") == 0)
        return PAYD_RS_SUCCEEDED;
    if (strcmp(name, "failed") == 0)
        return PAYD_RS_FAILED;
    if (strcmp(name, "canceled") == 0)
        return PAYD_RS_CANCELED;
    return 0;
}

/*
 * POST test/intents/<ref> (status=..., amount_captured=...) and POST
 * test/refunds/<ref> (status=...): the test controls. The caller checked
 * test_controls and the ref's shape.
 */
static int mock_page_test_control(const mock_instance *inst, const char *ref,
                                  int is_refund, const payd_page_req *req,
                                  payd_page_res *out, payd_arena *a,
                                  payd_error *e)
{
    char status_text[MOCK_FORM_VALUE_MAX], amount_text[MOCK_FORM_VALUE_MAX];
    const char *body = req->body != NULL ? req->body : "";
    size_t len = req->body != NULL ? req->body_len : 0;
    int has_status, has_amount, status = 0, rc;
    int64_t amount = -1;
    mock_result r = {0};
    mock_buf b = {0};

    has_status = mock_form_value(body, len, "status", status_text,
                                 sizeof status_text);
    has_amount = is_refund ? 0
                           : mock_form_value(body, len, "amount_captured",
                                             amount_text, sizeof amount_text);
    if (has_status < 0 || has_amount < 0 || (has_status == 0 && has_amount == 0))
        return mock_page_json_error(inst, a, out, 400,
                                    is_refund ? "expected status"
                                              : "expected status and/or "
                                                "amount_captured", e);
    if (has_status == 1) {
        status = is_refund ? mock_refund_status_by_name(status_text)
                           : mock_payment_status_by_name(status_text);
        if (status == 0)
            return mock_page_json_error(inst, a, out, 400, "unknown status",
                                        e);
    }
    if (has_amount == 1) {
        size_t i, n = strlen(amount_text);

        if (n == 0 || n > 12)
            return mock_page_json_error(inst, a, out, 400,
                                        "amount_captured must be digits", e);
        amount = 0;
        for (i = 0; i < n; i++) {
            if (amount_text[i] < '0' || amount_text[i] > '9')
                return mock_page_json_error(inst, a, out, 400,
                                            "amount_captured must be digits",
                                            e);
            amount = amount * 10 + (amount_text[i] - '0');
        }
    }
    pthread_mutex_lock(&mock_mu);
    if (is_refund)
        rc = mock_intents_test_refund_set_locked(ref, status, &r);
    else
        rc = mock_intents_test_set_locked(ref, status, amount, &r);
    pthread_mutex_unlock(&mock_mu);
    if (rc == PAYD_OK) {
        inst->h->log(inst->h, PAYD_LOG_WARN,
                     "mock: test control changed %s behind payd's back", ref);
        mock_buf_puts(&b, r.raw);
        rc = mock_page_set(inst, a, out, 200, "application/json", &b, e);
    } else if (rc == PAYD_E_NOTFOUND) {
        rc = mock_page_json_error(inst, a, out, 404, "unknown ref", e);
    } else if (rc == PAYD_E_INVALID) {
        rc = mock_page_json_error(inst, a, out, 400, r.err_message, e);
    } else {
        rc = payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    }
    mock_result_free(&r);
    return rc;
}

/*
 * page op: route a request below /mock/. Returns PAYD_OK with a response
 * (404/405/409 are responses, not errors) or PAYD_E_NOMEM. Thread-safe.
 */
int mock_page(void *state, const payd_page_req *req_in, payd_page_res *res,
              payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_page_req req;
    payd_page_res out;
    const char *path, *method;
    int get, post, rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    path = req.path != NULL ? req.path : "";
    while (*path == '/')
        path++;
    method = req.method != NULL ? req.method : "GET";
    get = strcmp(method, "GET") == 0;
    post = strcmp(method, "POST") == 0;

    if (strncmp(path, "3ds/", 4) == 0) {
        const char *ref = path + 4;

        if (!get && !post)
            rc = mock_page_message(inst, a, &out, 405, "Method not allowed",
                                   "Use GET or POST.", e);
        else if (!mock_valid_intent_ref(ref))
            rc = mock_page_message(inst, a, &out, 404, "Unknown payment",
                                   "No payment waits for authentication here.",
                                   e);
        else if (get)
            rc = mock_page_challenge(inst, ref, &out, a, e);
        else
            rc = mock_page_challenge_post(inst, ref, &req, &out, a, e);
    } else if (inst->test_controls &&
               (strncmp(path, "test/intents/", 13) == 0 ||
                strncmp(path, "test/refunds/", 13) == 0)) {
        const char *ref = path + 13;
        int is_refund = path[5] == 'r';

        if (!post)
            rc = mock_page_json_error(inst, a, &out, 405, "use POST", e);
        else if (!mock_valid_ref(ref, is_refund ? "mock_re_" : "mock_pi_"))
            rc = mock_page_json_error(inst, a, &out, 404, "unknown ref", e);
        else
            rc = mock_page_test_control(inst, ref, is_refund, &req, &out, a,
                                        e);
    } else if (strcmp(path, "stats") == 0) {
        if (!get)
            rc = mock_page_message(inst, a, &out, 405, "Method not allowed",
                                   "Use GET.", e);
        else
            rc = mock_page_stats(inst, &req, &out, a, e);
    } else {
        rc = mock_page_message(inst, a, &out, 404, "Not found",
                               "The mock gateway has no such page.", e);
    }
    if (rc != PAYD_OK)
        return rc;
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}
