/*
 * modules/paypal/paypal_api.c - one call to the PayPal REST API.
 *
 * Every call goes through the host's HTTP client (timeouts, TLS checks,
 * connection reuse) with:
 *   Authorization: Bearer <token>     from paypal_token.c, wiped after
 *   Content-Type: application/json
 *   Accept: application/json
 *   Prefer: return=representation     full objects, so one answer is enough
 *   PayPal-Request-Id: <key>          on every POST: the core's derived
 *                                     payd-<payment>-<op>-<attempt>, which
 *                                     makes a retry after a timeout safe
 *                                     (the webhook check sends a random
 *                                     one: paypal_signature.c)
 * and reads back Paypal-Debug-Id (or the error body's debug_id), kept in
 * the audit as the provider request id.
 *
 * A 401 means the token expired or was revoked: the token is refreshed
 * once and the call retried once, with the same PayPal-Request-Id; a
 * second 401 is PAYD_E_AUTH.
 *
 * A 2xx answer must be a JSON object (or empty, as a 204 is); anything
 * else is an unknown outcome, PAYD_E_TRANSIENT, because the request may
 * well have been applied. Non-2xx answers are mapped by paypal_errors.c.
 *
 * Thread-safe: all state is on the stack or in the caller's arena.
 */
#include "paypal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAYPAL_MAX_HEADERS 6

/* One HTTP exchange with `token`. PAYD_OK when an answer arrived. */
static int paypal_api_once(const paypal_instance *inst, const char *method,
                           const char *url, const char *body,
                           const char *request_id, const char *token,
                           payd_arena *a, payd_http_response *res,
                           payd_error *e)
{
    const payd_host *h = inst->h;
    payd_header hdr[PAYPAL_MAX_HEADERS];
    payd_http_request req;
    char auth[PAYPAL_TOKEN_MAX + 16];
    size_t n = 0;
    int rc;

    snprintf(auth, sizeof auth, "Bearer %s", token);
    hdr[n++] = (payd_header){"Authorization", auth};
    hdr[n++] = (payd_header){"Accept", "application/json"};
    hdr[n++] = (payd_header){"User-Agent", "payd-paypal/" PAYPAL_VERSION};
    if (body != NULL) {
        hdr[n++] = (payd_header){"Content-Type", "application/json"};
        hdr[n++] = (payd_header){"Prefer", "return=representation"};
    }
    if (request_id != NULL)
        hdr[n++] = (payd_header){"PayPal-Request-Id", request_id};
    memset(&req, 0, sizeof req);
    req.struct_size = (uint32_t)sizeof req;
    req.method = method;
    req.url = url;
    req.headers = hdr;
    req.header_count = n;
    req.body = body;
    req.body_len = body != NULL ? strlen(body) : 0;
    req.timeout_ms = inst->timeout_ms;
    memset(res, 0, sizeof *res);
    res->struct_size = (uint32_t)sizeof *res;
    rc = h->http(h, &req, res, a, e);
    h->cleanse(auth, sizeof auth);
    return rc;
}

/* Keep PayPal's debug id (header first, then the body's) in out and e. */
static void paypal_api_debug_id(const payd_host *h, payd_arena *a,
                                const payd_http_response *res, json_t *body,
                                paypal_answer *out, payd_error *e)
{
    const char *id = h->http_header(res, "Paypal-Debug-Id");

    if (id == NULL || !payd_text_ok(id, 90))
        id = paypal_jstr(body, "debug_id");
    if (id == NULL || !payd_text_ok(id, 90))
        return;
    out->debug_id = h->strdup(a, id);
    snprintf(e->provider_request_id, sizeof e->provider_request_id, "%s", id);
}

/* See paypal.h. out->obj is a new reference (or NULL) whatever the code. */
int paypal_api(paypal_instance *inst, const char *method, const char *path,
               json_t *body, const char *request_id, payd_arena *a,
               paypal_answer *out, payd_error *e)
{
    const payd_host *h = inst->h;
    payd_http_response res;
    const char *url, *token = NULL;
    char *text = NULL;
    json_t *parsed;
    int post = strcmp(method, "POST") == 0;
    int attempt, rc;

    memset(out, 0, sizeof *out);
    if (post && (request_id == NULL ||
                 !payd_text_ok(request_id, PAYPAL_REQUEST_ID_MAX)))
        return payd_fail(e, PAYD_E_INVALID,
                         "paypal: a POST needs a PayPal-Request-Id of 1 "
                         "to %d characters",
                         PAYPAL_REQUEST_ID_MAX);
    url = h->sprintf(a, "%s%s", inst->api_base, path);
    if (post)
        text = body != NULL ? json_dumps(body, JSON_COMPACT) : strdup("{}");
    if (url == NULL || (post && text == NULL)) {
        free(text);
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    }
    rc = paypal_token(inst, a, NULL, &token, e);
    for (attempt = 0; rc == PAYD_OK; attempt++) {
        rc = paypal_api_once(inst, method, url, text, post ? request_id : NULL,
                             token, a, &res, e);
        if (rc != PAYD_OK || res.status != 401 || attempt > 0)
            break;
        h->log(h, PAYD_LOG_INFO,
               "paypal: %s %s -> 401: refreshing the token and retrying once",
               method, path);
        rc = paypal_token(inst, a, token, &token, e);
    }
    free(text);
    if (rc != PAYD_OK) {
        /* The host's message names the method, host and curl's reason. */
        if (e->message[0] == '\0')
            payd_fail(e, rc, "paypal: %s %s: no answer", method, path);
        e->code = rc;
        return rc;
    }
    out->status = res.status;
    parsed = res.body != NULL && res.body_len > 0
                 ? json_loadb(res.body, res.body_len, JSON_REJECT_DUPLICATES,
                              NULL)
                 : NULL;
    paypal_api_debug_id(h, a, &res, parsed, out, e);
    h->log(h, PAYD_LOG_DEBUG, "paypal: %s %s -> %ld (%s)", method, path,
           res.status, out->debug_id != NULL ? out->debug_id : "no debug id");
    if (res.status >= 200 && res.status < 300) {
        if (res.body_len > 0 && !json_is_object(parsed)) {
            json_decref(parsed);
            return payd_fail(e, PAYD_E_TRANSIENT,
                             "paypal: malformed response to a request that "
                             "may have been applied (HTTP %ld)",
                             res.status);
        }
        out->obj = parsed;
        return PAYD_OK;
    }
    out->obj = json_is_object(parsed) ? parsed : NULL;
    if (out->obj == NULL)
        json_decref(parsed);
    return paypal_error_map(res.status, out->obj, e);
}
