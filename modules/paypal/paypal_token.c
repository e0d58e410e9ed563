/*
 * modules/paypal/paypal_token.c - OAuth2 client credentials.
 *
 * Every API call carries "Authorization: Bearer <access token>". The token
 * comes from
 *   POST /v1/oauth2/token   Basic client_id:client_secret,
 *                           grant_type=client_credentials
 *   -> {"access_token":"...","token_type":"Bearer","expires_in":32400}
 * and is kept in the host cache (Redis when configured, so every payd
 * process shares one token; process memory otherwise) until 60 s before
 * it expires, sealed under a key derived from the client secret
 * (paypal_token_seal.c): the cache never holds a usable token.
 *
 * Threads: the fast path is a lock-free cache read. On a miss the thread
 * takes the instance's token_mu, reads the cache again (another thread
 * may have just refreshed it) and only then asks PayPal, so 32 threads
 * that find the cache empty together cause one token request, not 32.
 * After a 401 the caller passes the token PayPal refused as `stale`: a
 * cached token equal to it is not reused, a different one (refreshed
 * meanwhile by another thread) is.
 *
 * The client secret goes to the host only as the Basic auth password,
 * which the host never logs; the token is never logged either.
 */
#include "paypal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A token is refreshed this long before PayPal says it expires. */
#define PAYPAL_TOKEN_MARGIN_S 60

/* The cache lifetime of a token that PayPal says lives `expires_in`. */
static int paypal_token_ttl(int64_t expires_in)
{
    if (expires_in > PAYPAL_TOKEN_MARGIN_S * 2)
        return (int)(expires_in > 86400 ? 86400 - PAYPAL_TOKEN_MARGIN_S
                                        : expires_in - PAYPAL_TOKEN_MARGIN_S);
    return expires_in > 1 ? (int)(expires_in / 2) : 1;
}

/* 1 for a token payd can put in a header: printable, no spaces. */
static int paypal_token_ok(const char *t)
{
    size_t n = 0;

    if (t == NULL)
        return 0;
    for (; *t != '\0'; t++, n++)
        if (n >= PAYPAL_TOKEN_MAX || *t <= ' ' || *t > '~')
            return 0;
    return n > 0;
}

/* Read the 2xx answer of the token endpoint. */
static int paypal_token_parse(const payd_host *h, payd_arena *a,
                              const payd_http_response *res,
                              const char **token, int *ttl, payd_error *e)
{
    json_t *o = json_loadb(res->body != NULL ? res->body : "", res->body_len,
                           0, NULL);
    const char *t = paypal_jstr(o, "access_token");
    const char *type = paypal_jstr(o, "token_type");
    int64_t expires = paypal_jint(o, "expires_in", 0);
    int rc = PAYD_OK;

    if (!paypal_token_ok(t) || expires <= 0 ||
        (type != NULL && strcasecmp(type, "Bearer") != 0)) {
        rc = payd_fail(e, PAYD_E_TRANSIENT,
                       "paypal: the token endpoint answered without a "
                       "usable bearer token");
    } else {
        *token = h->strdup(a, t);
        *ttl = paypal_token_ttl(expires);
        if (*token == NULL)
            rc = payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    }
    json_decref(o);
    return rc;
}

/* Ask PayPal for a new token. PAYD_OK with *token (arena) and *ttl. */
static int paypal_token_fetch(paypal_instance *inst, payd_arena *a,
                              const char **token, int *ttl, payd_error *e)
{
    static const char body[] = "grant_type=client_credentials";
    const payd_host *h = inst->h;
    payd_header hdr[3];
    payd_http_request req;
    payd_http_response res;
    const char *debug_id;
    int rc;

    hdr[0] = (payd_header){"Accept", "application/json"};
    hdr[1] = (payd_header){"Content-Type", "application/x-www-form-urlencoded"};
    hdr[2] = (payd_header){"User-Agent", "payd-paypal/" PAYPAL_VERSION};
    memset(&req, 0, sizeof req);
    req.struct_size = (uint32_t)sizeof req;
    req.method = "POST";
    req.url = h->sprintf(a, "%s/v1/oauth2/token", inst->api_base);
    req.headers = hdr;
    req.header_count = 3;
    req.body = body;
    req.body_len = sizeof body - 1;
    req.timeout_ms = inst->timeout_ms;
    req.username = inst->client_id;
    req.password = inst->client_secret;
    if (req.url == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;
    rc = h->http(h, &req, &res, a, e);
    if (rc != PAYD_OK) {
        if (e->message[0] == '\0')
            payd_fail(e, rc, "paypal: POST /v1/oauth2/token: no answer");
        e->code = rc;
        return rc;
    }
    debug_id = h->http_header(&res, "Paypal-Debug-Id");
    if (debug_id != NULL && payd_text_ok(debug_id, 90))
        snprintf(e->provider_request_id, sizeof e->provider_request_id, "%s",
                 debug_id);
    h->log(h, PAYD_LOG_DEBUG, "paypal: POST /v1/oauth2/token -> %ld",
           res.status);
    if (res.status >= 200 && res.status < 300)
        return paypal_token_parse(h, a, &res, token, ttl, e);
    if (res.status == 400 || res.status == 401 || res.status == 403)
        return payd_fail(e, PAYD_E_AUTH,
                         "paypal: the token endpoint rejected the client "
                         "credentials (HTTP %ld)",
                         res.status);
    return payd_fail(e, PAYD_E_TRANSIENT,
                     "paypal: the token endpoint answered HTTP %ld",
                     res.status);
}

/* A cached token, unless it is `stale`. A value that does not open is a
 * miss: the next fetch replaces it. */
static const char *paypal_token_cached(const paypal_instance *inst,
                                       payd_arena *a, const char *stale)
{
    const payd_host *h = inst->h;
    char *sealed = NULL, *v;
    size_t n = 0;

    if (h->cache_get(h, inst->token_cache_key, a, &sealed, &n) != PAYD_OK ||
        sealed == NULL || n == 0 || strlen(sealed) != n)
        return NULL;
    v = paypal_token_open(h, a, inst->seal_key, sealed);
    if (v == NULL || !paypal_token_ok(v))
        return NULL;
    if (stale != NULL && strcmp(v, stale) == 0)
        return NULL;
    return v;
}

/* See paypal.h. */
int paypal_token(paypal_instance *inst, payd_arena *a, const char *stale,
                 const char **token, payd_error *e)
{
    const payd_host *h = inst->h;
    const char *t;
    char *sealed;
    int ttl = 0, rc;

    t = paypal_token_cached(inst, a, stale);
    if (t != NULL) {
        *token = t;
        return PAYD_OK;
    }
    pthread_mutex_lock(&inst->token_mu);
    t = paypal_token_cached(inst, a, stale);
    if (t != NULL) {
        pthread_mutex_unlock(&inst->token_mu);
        *token = t;
        return PAYD_OK;
    }
    rc = paypal_token_fetch(inst, a, &t, &ttl, e);
    sealed = rc == PAYD_OK ? paypal_token_seal(h, a, inst->seal_key, t) : NULL;
    if (rc == PAYD_OK &&
        (sealed == NULL || h->cache_set(h, inst->token_cache_key, sealed,
                                        strlen(sealed), ttl) != PAYD_OK))
        h->log(h, PAYD_LOG_WARN,
               "paypal: could not cache the access token: every call will "
               "ask for a new one");
    pthread_mutex_unlock(&inst->token_mu);
    if (rc == PAYD_OK) {
        h->log(h, PAYD_LOG_INFO, "paypal: new access token (valid %d s)",
               ttl);
        *token = t;
    }
    return rc;
}
