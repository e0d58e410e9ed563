/*
 * modules/webhook/webhook.c - the signed outbound webhook notifier.
 *
 * POSTs each event envelope (payd_notification.event_json, byte for byte)
 * to one merchant URL, signed the way Stripe signs its webhooks:
 *
 *   Payd-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *
 * plus Payd-Event-Id (receivers dedup on it: delivery is at least once),
 * Payd-Event-Type and Payd-Delivery-Attempt. The receiver's answer decides
 * what the dispatcher does next:
 *
 *   2xx                       delivered (0)
 *   408, 429, 5xx             PAYD_E_TRANSIENT: retry with backoff
 *   timeout, connection error PAYD_E_TRANSIENT
 *   other 4xx, 3xx, 1xx       PAYD_E_PROVIDER: permanent, dead-lettered
 *                             (redirects are not followed: configure the
 *                             final URL)
 *
 * Config keys of a [notifier.<name>] section with module = webhook (the
 * host itself reads `module` and `events`; any other key is refused):
 *
 *   url         required, http:// or https://, up to 2048 bytes
 *   secret      required, 1..4096 bytes, used as-is as the HMAC key; give
 *               it as env:NAME or file:PATH rather than inline
 *   timeout_ms  whole-request timeout, 100..300000, default 10000
 *   user_agent  default "payd-webhook/1.0"
 *
 * The secret never reaches a log line or an error message, and neither does
 * the URL beyond scheme://host[:port] (a path or query may hold a token).
 *
 * Threads: the instance is read-only after init, so notify runs on any
 * number of dispatcher threads at once.
 */
#include <payd/module.h>
#include <payd/module_support.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WEBHOOK_VERSION "1.0.0"
#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_SECRET_MAX 4096
#define WEBHOOK_UA_MAX 256
/* How much of a refusing receiver's body is quoted in the error. */
#define WEBHOOK_SNIPPET_MAX 96

typedef struct webhook_instance {
    const payd_host *h;
    char *url;
    char *target;       /* scheme://host[:port], safe to log */
    char *secret;
    size_t secret_len;
    long timeout_ms;
    char *user_agent;
} webhook_instance;

/* 1 when `s` is 1..max bytes of printable ASCII (no CR/LF, so it is safe
 * in a header line); spaces allowed only when `spaces`. */
static int webhook_printable(const char *s, size_t max, int spaces)
{
    size_t i;

    if (s == NULL || s[0] == '\0')
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= max || c < 0x20 || c > 0x7e || (c == ' ' && !spaces))
            return 0;
    }
    return 1;
}

/*
 * Check `url` (http or https, a non-empty host, no spaces or control
 * characters) and derive the loggable scheme://host[:port], dropping any
 * user:password@ and everything from the path on. Returns a malloc'd
 * string, or NULL when the URL is not acceptable.
 */
static char *webhook_target(const char *url)
{
    size_t skip, end, at, i;
    char *t;

    if (!webhook_printable(url, WEBHOOK_URL_MAX, 0))
        return NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else
        return NULL;
    end = skip + strcspn(url + skip, "/?#");
    at = skip;
    for (i = skip; i < end; i++)
        if (url[i] == '@')
            at = i + 1;
    if (at >= end || url[at] == ':')
        return NULL;
    t = malloc(skip + (end - at) + 1);
    if (t == NULL)
        return NULL;
    memcpy(t, url, skip);
    memcpy(t + skip, url + at, end - at);
    t[skip + (end - at)] = '\0';
    return t;
}

static void webhook_instance_free(webhook_instance *w)
{
    if (w == NULL)
        return;
    if (w->secret != NULL) {
        w->h->cleanse(w->secret, w->secret_len);
        free(w->secret);
    }
    free(w->url);
    free(w->target);
    free(w->user_agent);
    free(w);
}

/* Read and check every key into `w`. PAYD_OK, PAYD_E_INVALID naming the
 * key (never echoing the secret) or PAYD_E_NOMEM. */
static int webhook_configure(webhook_instance *w, const payd_config *cfg,
                             payd_error *e)
{
    const payd_host *h = w->h;
    const char *url = h->config_get(cfg, "url");
    const char *secret = h->config_get(cfg, "secret");
    const char *ua = h->config_get(cfg, "user_agent");
    int64_t timeout_ms = 0;
    size_t n;
    int rc;

    /* Read now, so a bad url does not also get it reported as unknown. */
    (void)h->config_get(cfg, "timeout_ms");

    if (url == NULL || url[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID, "webhook: url is required");
    w->target = webhook_target(url);
    if (w->target == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: invalid value for url: expected an "
                         "http:// or https:// URL with a host, without "
                         "spaces, up to %d bytes",
                         WEBHOOK_URL_MAX);
    w->url = strdup(url);

    if (secret == NULL || secret[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: secret is required (use env:NAME or "
                         "file:PATH)");
    n = strlen(secret);
    if (n > WEBHOOK_SECRET_MAX)
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: invalid value for secret: expected 1 "
                         "to %d bytes",
                         WEBHOOK_SECRET_MAX);
    w->secret = malloc(n + 1);
    if (w->secret != NULL) {
        memcpy(w->secret, secret, n + 1);
        w->secret_len = n;
    }

    if ((rc = payd_conf_int(h, cfg, "timeout_ms", 10000, 100, 300000,
                            &timeout_ms, e, "webhook")) != PAYD_OK)
        return rc;
    w->timeout_ms = (long)timeout_ms;

    if (ua != NULL && !webhook_printable(ua, WEBHOOK_UA_MAX, 1))
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: invalid value for user_agent: expected "
                         "1 to %d printable ASCII characters",
                         WEBHOOK_UA_MAX);
    w->user_agent = strdup(ua != NULL ? ua : "payd-webhook/" WEBHOOK_VERSION);

    if (w->url == NULL || w->secret == NULL || w->user_agent == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "webhook: out of memory");
    return PAYD_OK;
}

/*
 * init: check the host and read the config. Returns 0 with *state set, or
 * PAYD_E_INVALID (the bad key is named), PAYD_E_NOMEM. Called alone.
 */
static int webhook_init(const payd_host *h, const payd_config *cfg,
                        void **state, payd_error *e)
{
    webhook_instance *w;
    int rc;

    if (h == NULL || h->abi_major != PAYD_ABI_MAJOR ||
        h->struct_size < sizeof(payd_host))
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: host does not provide the ABI 1.0 "
                         "services");
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "webhook: out of memory");
    w->h = h;
    rc = webhook_configure(w, cfg, e);
    if (rc != PAYD_OK) {
        webhook_instance_free(w);
        return rc;
    }
    h->log(h, PAYD_LOG_INFO, "webhook notifier ready: posting to %s (timeout %ld ms)",
           w->target, w->timeout_ms);
    *state = w;
    return PAYD_OK;
}

/* fini: wipe the secret and free the instance. Called alone. */
static void webhook_fini(void *state)
{
    webhook_instance_free(state);
}

/*
 * The start of a refusing receiver's body, printable ASCII only, for the
 * dead-letter reason an admin reads. Empty when there is no body.
 */
static void webhook_snippet(const payd_http_response *res, char *out,
                            size_t outsz)
{
    size_t i, o = 0;

    out[0] = '\0';
    if (res->body == NULL || res->body_len == 0 || outsz < 8)
        return;
    out[o++] = ':';
    out[o++] = ' ';
    for (i = 0; i < res->body_len && o + 4 < outsz &&
                i < WEBHOOK_SNIPPET_MAX; i++) {
        unsigned char c = (unsigned char)res->body[i];

        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
    }
    if (i < res->body_len && o + 4 <= outsz) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* Map the receiver's HTTP status to the notifier contract (see the top). */
static int webhook_status(const webhook_instance *w, const payd_notification *n,
                          const payd_http_response *res, payd_error *e)
{
    long s = res->status;
    char snippet[WEBHOOK_SNIPPET_MAX + 8];

    if (s >= 200 && s <= 299)
        return PAYD_OK;
    webhook_snippet(res, snippet, sizeof snippet);
    if (s == 408 || s == 429 || (s >= 500 && s <= 599)) {
        w->h->log(w->h, PAYD_LOG_INFO, "%s to %s: receiver answered %ld, will retry",
                  n->event_id, w->target, s);
        return payd_fail(e, PAYD_E_TRANSIENT, "receiver answered %ld%s", s,
                         snippet);
    }
    if (s >= 100 && s <= 499) {
        w->h->log(w->h, PAYD_LOG_WARN, "%s to %s: receiver answered %ld, giving up",
                  n->event_id, w->target, s);
        return payd_fail(e, PAYD_E_PROVIDER,
                         s >= 300 && s <= 399
                             ? "receiver answered %ld (redirects are not "
                               "followed; configure the final URL)%s"
                             : "receiver answered %ld%s",
                         s, snippet);
    }
    return payd_fail(e, PAYD_E_TRANSIENT,
                     "receiver answered an invalid status %ld", s);
}

/*
 * notify: sign and POST the event envelope. Returns 0 (2xx),
 * PAYD_E_TRANSIENT (retry later), PAYD_E_PROVIDER (the receiver refused:
 * permanent) or PAYD_E_INVALID (the notification lacks its envelope).
 * Everything it allocates lives in `a`. Thread-safe.
 */
static int webhook_notify(void *state, const payd_notification *n,
                          payd_arena *a, payd_error *e)
{
    const webhook_instance *w = state;
    const payd_host *h = w->h;
    payd_http_request req;
    payd_http_response res;
    char prefix[32];
    uint8_t mac[32];
    size_t body_len;
    int plen, attempt = 1, rc;
    int64_t t;
    char *signed_payload, *hex, *sig, *attempt_s;

    if (n == NULL || n->event_json == NULL ||
        !webhook_printable(n->event_id, 128, 0) ||
        !webhook_printable(n->event_type, 128, 0))
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: the notification lacks an event id, "
                         "type or envelope");
    if (n->struct_size >= offsetof(payd_notification, attempt) + sizeof(int) &&
        n->attempt > 0)
        attempt = n->attempt;

    /* The signed payload is "<t>.<body>", exactly the bytes posted. */
    body_len = strlen(n->event_json);
    t = h->now(h);
    plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)t);
    signed_payload = h->alloc(a, (size_t)plen + body_len + 1);
    if (signed_payload == NULL)
        return payd_fail(e, PAYD_E_TRANSIENT, "webhook: out of memory");
    memcpy(signed_payload, prefix, (size_t)plen);
    memcpy(signed_payload + plen, n->event_json, body_len);
    h->hmac_sha256(w->secret, w->secret_len, signed_payload,
                   (size_t)plen + body_len, mac);
    hex = h->hex_encode(a, mac, sizeof mac);
    sig = hex != NULL ? h->sprintf(a, "t=%lld,v1=%s", (long long)t, hex) : NULL;
    attempt_s = h->sprintf(a, "%d", attempt);
    if (sig == NULL || attempt_s == NULL)
        return payd_fail(e, PAYD_E_TRANSIENT, "webhook: out of memory");

    const payd_header headers[] = {
        {"Content-Type", "application/json"},
        {"User-Agent", w->user_agent},
        {"Payd-Signature", sig},
        {"Payd-Event-Id", n->event_id},
        {"Payd-Event-Type", n->event_type},
        {"Payd-Delivery-Attempt", attempt_s},
        /* No "100 Continue" round trip for bodies over 1 KiB. */
        {"Expect", ""},
    };
    memset(&req, 0, sizeof req);
    req.struct_size = (uint32_t)sizeof req;
    req.method = "POST";
    req.url = w->url;
    req.headers = headers;
    req.header_count = sizeof headers / sizeof headers[0];
    req.body = n->event_json;
    req.body_len = body_len;
    req.timeout_ms = w->timeout_ms;
    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;

    rc = h->http(h, &req, &res, a, e);
    if (rc == PAYD_OK)
        return webhook_status(w, n, &res, e);
    if (rc == PAYD_E_INVALID)
        return payd_fail(e, PAYD_E_INVALID,
                         "webhook: the host refused the request to %s",
                         w->target);
    /* Timeouts, refused connections, TLS failures and even our own OOM are
     * worth another try; the host's message names the host, not the URL. */
    h->log(h, PAYD_LOG_INFO, "%s to %s: no answer, will retry", n->event_id,
           w->target);
    if (e != NULL && e->message[0] == '\0')
        payd_fail(e, PAYD_E_TRANSIENT, "POST %s: no answer", w->target);
    if (e != NULL)
        e->code = PAYD_E_TRANSIENT;
    return PAYD_E_TRANSIENT;
}

static const payd_notifier_ops webhook_notifier_ops = {
    .struct_size = (uint32_t)sizeof(payd_notifier_ops),
    .notify = webhook_notify,
};

static const payd_module webhook_module = {
    PAYD_MODULE_V1,
    .name = "webhook",
    .version = WEBHOOK_VERSION,
    .description = "Signed outbound webhooks (Payd-Signature: t=...,v1=HMAC-"
                   "SHA256), Stripe's scheme",
    .kind = PAYD_KIND_NOTIFIER,
    .caps = 0,
    .init = webhook_init,
    .fini = webhook_fini,
    .gateway = NULL,
    .notifier = &webhook_notifier_ops,
};

PAYD_DECLARE_MODULE(webhook_module)
