/*
 * notifier.c - a complete payd notifier module: it POSTs each event, as
 * JSON, to one URL and signs it. Copy this directory and replace the
 * delivery; keep the return codes. sdk/README.md ("Notifiers") explains
 * the contract.
 *
 * Build (only a C compiler and sdk/include are needed):
 *     cc -std=c11 -O2 -Wall -Wextra -shared -fPIC -fvisibility=hidden \
 *        -I path/to/sdk/include notifier.c -o example_notifier.so
 *
 * payd.conf:
 *     [notifier.shop]
 *     module = /abs/path/example_notifier.so
 *     url = https://shop.example/hooks/payd
 *     secret = env:SHOP_HOOK_SECRET          ; signs every delivery
 *     timeout_ms = 5000                      ; optional, 0 = the host default
 *     events = order.paid, refund.succeeded  ; read by payd, not the module
 *
 * Each delivery:
 *     POST <url>
 *     Content-Type: application/json
 *     Example-Event-Id: evt_...              ; receivers dedup on it
 *     Example-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *     <the event envelope, n->event_json>
 *
 * What notify returns decides what the core's outbox does:
 *     0                  delivered; the row is done
 *     PAYD_E_TRANSIENT   try again later, with backoff (no answer, 408,
 *                        425, 429, 5xx): delivery is AT LEAST ONCE, so a
 *                        receiver may see an event twice
 *     any other error    permanent: the delivery is dead-lettered for an
 *                        admin to look at and replay (4xx, redirects)
 */
#define _POSIX_C_SOURCE 200809L

#include <payd/module.h>
#include <payd/module_support.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXN_VERSION "0.1.0"

typedef struct exn {
    const payd_host *h;
    char *url;
    char *secret;                 /* wiped at fini */
    size_t secret_len;
    long timeout_ms;
} exn;

/*
 * notify: one delivery attempt of one event (n->attempt counts them).
 * Thread-safe: many outbox threads call it at once with the same state.
 */
static int exn_notify(void *state, const payd_notification *n_in, payd_arena *a, payd_error *e)
{
    const exn *x = state;
    const payd_host *h = x->h;
    payd_notification n;
    if (payd_copy_in(&n, sizeof n, n_in) != 0) return payd_fail(e, PAYD_E_INVALID, "the notification has no struct_size");
    if (!n.event_id || !n.event_type) return payd_fail(e, PAYD_E_INVALID, "the event has no id or type");

    const char *body = n.event_json
                           ? n.event_json
                           : h->sprintf(a, "{\"id\":\"%s\",\"type\":\"%s\",\"created\":%lld,\"data\":%s}",
                                        n.event_id, n.event_type, (long long)n.created_at,
                                        n.object_json ? n.object_json : "null");
    const char *t = h->sprintf(a, "%lld", (long long)h->now(h));
    const char *signed_payload = body && t ? h->sprintf(a, "%s.%s", t, body) : NULL;
    if (!signed_payload) return payd_fail(e, PAYD_E_NOMEM, "out of memory");
    uint8_t mac[32];
    h->hmac_sha256(x->secret, x->secret_len, signed_payload, strlen(signed_payload), mac);
    const char *hex = h->hex_encode(a, mac, sizeof mac);
    h->cleanse(mac, sizeof mac);
    const char *sig = hex ? h->sprintf(a, "t=%s,v1=%s", t, hex) : NULL;
    const char *attempt = h->sprintf(a, "%d", n.attempt);
    if (!sig || !attempt) return payd_fail(e, PAYD_E_NOMEM, "out of memory");

    payd_header hd[] = {{"Content-Type", "application/json"},
                        {"Example-Event-Id", n.event_id},
                        {"Example-Signature", sig},
                        {"Example-Attempt", attempt}};
    payd_http_request req = {.struct_size = sizeof req, .method = "POST", .url = x->url, .headers = hd,
                             .header_count = sizeof hd / sizeof hd[0], .body = body,
                             .body_len = strlen(body), .timeout_ms = x->timeout_ms};
    payd_http_response res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    int rc = h->http(h, &req, &res, a, e);
    if (rc != PAYD_OK) return rc; /* no answer: PAYD_E_TRANSIENT, retried later */
    long s = res.status;
    if (s >= 200 && s < 300) return PAYD_OK;
    if (s == 408 || s == 425 || s == 429 || s >= 500)
        return payd_fail(e, PAYD_E_TRANSIENT, "the receiver answered HTTP %ld; will retry", s);
    if (s >= 300 && s < 400)
        return payd_fail(e, PAYD_E_PROVIDER, "the receiver redirected (HTTP %ld); set url to the final address", s);
    return payd_fail(e, PAYD_E_PROVIDER, "the receiver refused the event with HTTP %ld", s);
}

static void exn_free(exn *x)
{
    if (!x) return;
    if (x->secret) x->h->cleanse(x->secret, x->secret_len);
    free(x->secret);
    free(x->url);
    free(x);
}

/* init: reads every key, checks them, keeps an immutable state. */
static int exn_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    const char *url = h->config_get(cfg, "url");
    const char *secret = h->config_get(cfg, "secret");
    int64_t timeout_ms = 0;
    if (!url || (strncmp(url, "https://", 8) && strncmp(url, "http://", 7)))
        return payd_fail(e, PAYD_E_INVALID, "example_notifier: url must be an http(s) URL");
    if (!secret || strlen(secret) < 16)
        return payd_fail(e, PAYD_E_INVALID, "example_notifier: secret must be at least 16 bytes (use env:NAME)");
    int rc = payd_conf_int(h, cfg, "timeout_ms", 0, 0, 120000, &timeout_ms, e, "example_notifier");
    if (rc != PAYD_OK) return rc;
    exn *x = calloc(1, sizeof *x);
    if (!x) return payd_fail(e, PAYD_E_NOMEM, "out of memory");
    x->h = h;
    x->url = strdup(url);
    x->secret = strdup(secret);
    x->secret_len = strlen(secret);
    x->timeout_ms = (long)timeout_ms;
    if (!x->url || !x->secret) {
        exn_free(x);
        return payd_fail(e, PAYD_E_NOMEM, "out of memory");
    }
    h->log(h, PAYD_LOG_INFO, "example_notifier %s ready: posting to %s", EXN_VERSION, x->url);
    *state = x;
    return PAYD_OK;
}

static void exn_fini(void *state)
{
    exn_free(state);
}

static const payd_notifier_ops exn_ops = {
    .struct_size = sizeof(payd_notifier_ops),
    .notify = exn_notify,
};

static const payd_module exn_module = {
    PAYD_MODULE_V1,
    .name = "example_notifier",
    .version = EXN_VERSION,
    .description = "Signed JSON webhooks to one URL (the payd SDK template)",
    .kind = PAYD_KIND_NOTIFIER,
    .init = exn_init,
    .fini = exn_fini,
    .notifier = &exn_ops,
};

PAYD_DECLARE_MODULE(exn_module)
