/*
 * modules/stripe/stripe_api.c - one call to the Stripe API.
 *
 * Every call goes through the host's HTTP client (timeouts, TLS checks,
 * connection reuse) with:
 *   Authorization: Bearer <secret_key>   built on the stack, wiped after
 *   Stripe-Version: <api_version>        pinned, so answers keep one shape
 *   Idempotency-Key: <key>               on every POST (the core's derived
 *                                        payd-<payment>-<op>-<attempt>)
 *   Content-Type: application/x-www-form-urlencoded
 * and reads back Stripe's Request-Id, kept in the audit.
 *
 * A 2xx answer must be the JSON object that was asked for; anything else
 * (a truncated body, an HTML error page from a proxy) is an unknown
 * outcome, PAYD_E_TRANSIENT, because the request may well have been
 * applied. Non-2xx answers are mapped by stripe_errors.c.
 *
 * Thread-safe: all state is on the stack or in the caller's arena.
 */
#include "stripe.h"

#include <stdio.h>
#include <string.h>

/* Stripe-Version, User-Agent, Accept, Authorization, Content-Type,
 * Idempotency-Key. */
#define STRIPE_MAX_HEADERS 6

/* Keep Stripe's Request-Id in the answer and in e. */
static void stripe_api_request_id(const stripe_instance *inst,
                                  const payd_http_response *res,
                                  payd_arena *a, stripe_answer *out,
                                  payd_error *e)
{
    const char *id = inst->h->http_header(res, "Request-Id");

    if (id == NULL || !payd_text_ok(id, 90))
        return;
    out->request_id = inst->h->strdup(a, id);
    if (e != NULL)
        snprintf(e->provider_request_id, sizeof e->provider_request_id, "%s",
                 id);
}

/* Parse a 2xx body: the object asked for, or PAYD_E_TRANSIENT. */
static int stripe_api_ok(json_t *body, long status, const char *expect,
                         stripe_answer *out, payd_error *e)
{
    const char *object = stripe_jstr(body, "object");

    if (!json_is_object(body) || object == NULL ||
        (expect != NULL && strcmp(object, expect) != 0)) {
        json_decref(body);
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: malformed response to a request that may "
                         "have been applied (HTTP %ld)",
                         status);
    }
    out->obj = body;
    return PAYD_OK;
}

/*
 * See stripe.h. The answer's `obj` is a new reference (or NULL) that the
 * caller releases with json_decref, whatever the return code.
 */
int stripe_api(const stripe_instance *inst, const char *method,
               const char *path, const char *query, const stripe_form *form,
               const char *idempotency_key, const char *expect, payd_arena *a,
               stripe_answer *out, payd_error *e)
{
    const payd_host *h = inst->h;
    payd_header hdr[STRIPE_MAX_HEADERS];
    payd_http_request req;
    payd_http_response res;
    char auth[600];
    const char *url;
    json_t *body;
    size_t n = 0;
    int post = strcmp(method, "POST") == 0;
    int rc;

    memset(out, 0, sizeof *out);
    if (form != NULL && form->oom)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    if (post && (idempotency_key == NULL ||
                 !payd_text_ok(idempotency_key, STRIPE_KEY_MAX)))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: a POST needs an Idempotency-Key of 1 to "
                         "%d characters",
                         STRIPE_KEY_MAX);
    url = h->sprintf(a, "%s%s%s%s", inst->api_base, path,
                     query != NULL ? "?" : "", query != NULL ? query : "");
    if (url == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");

    snprintf(auth, sizeof auth, "Bearer %s", inst->secret_key);
    hdr[n++] = (payd_header){"Authorization", auth};
    hdr[n++] = (payd_header){"Stripe-Version", inst->api_version};
    hdr[n++] = (payd_header){"User-Agent", "payd-stripe/" STRIPE_VERSION};
    hdr[n++] = (payd_header){"Accept", "application/json"};
    if (post) {
        hdr[n++] = (payd_header){"Content-Type",
                                 "application/x-www-form-urlencoded"};
        hdr[n++] = (payd_header){"Idempotency-Key", idempotency_key};
    }
    memset(&req, 0, sizeof req);
    req.struct_size = (uint32_t)sizeof req;
    req.method = method;
    req.url = url;
    req.headers = hdr;
    req.header_count = n;
    if (post) {
        req.body = form != NULL && form->data != NULL ? form->data : "";
        req.body_len = form != NULL ? form->len : 0;
    }
    req.timeout_ms = inst->timeout_ms;
    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;

    rc = h->http(h, &req, &res, a, e);
    h->cleanse(auth, sizeof auth);
    if (rc != PAYD_OK) {
        /* The host's message names the method, host and curl's reason. */
        if (e != NULL && e->message[0] == '\0')
            payd_fail(e, rc, "stripe: %s %s: no answer", method, path);
        if (e != NULL)
            e->code = rc;
        return rc;
    }
    stripe_api_request_id(inst, &res, a, out, e);
    body = res.body != NULL
               ? json_loadb(res.body, res.body_len, JSON_REJECT_DUPLICATES,
                            NULL)
               : NULL;
    h->log(h, PAYD_LOG_DEBUG, "stripe: %s %s -> %ld (%s)", method, path,
           res.status, out->request_id != NULL ? out->request_id : "no id");
    if (res.status >= 200 && res.status < 300)
        return stripe_api_ok(body, res.status, expect, out, e);

    rc = stripe_error_map(res.status, body, e);
    if (rc == PAYD_E_DECLINED) {
        json_t *pi = stripe_jget(body, "error.payment_intent");

        if (json_is_object(pi))
            out->obj = json_incref(pi);
    }
    json_decref(body);
    return rc;
}
