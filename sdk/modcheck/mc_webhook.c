/*
 * mc_webhook.c - the webhook_tamper check of payd-modcheck.
 *
 * The author gives a valid provider webhook: the exact body
 * (--webhook-sample) and its headers (--webhook-header, repeatable). A
 * header may be a template, signed at run time so that a timestamp
 * tolerance never makes the sample stale:
 *
 *   {t}                 the host clock, unix seconds
 *   {hmac-t.body:KEY}   hex HMAC-SHA256 of "<t>.<body>", keyed with the
 *                       value of the section's KEY (Stripe, the mock, the
 *                       template sign this way)
 *   {hmac-body:KEY}     the same of the body alone
 *
 * The module must accept the sample as given (with a provider_event_id),
 * and refuse with PAYD_E_SIGNATURE: the body with one byte flipped, the
 * request without its headers, and the headers with their last character
 * changed. The body is passed NUL-terminated after body_len, as the core
 * passes it.
 */
#include "modcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

int mc_webhook_prepare(mc_ctx *c)
{
    if (!c->o->webhook_sample) return 0;
    FILE *f = fopen(c->o->webhook_sample, "rb");
    if (!f) {
        mc_check_set(MC_WEBHOOK_TAMPER, MC_FAIL, "cannot read --webhook-sample %s: %s", c->o->webhook_sample,
                     strerror(errno));
        return -1;
    }
    size_t cap = 4096;
    c->sample = malloc(cap);
    c->sample_len = 0;
    size_t n;
    while (c->sample && (n = fread(c->sample + c->sample_len, 1, cap - c->sample_len, f)) > 0) {
        c->sample_len += n;
        if (c->sample_len == cap) {
            char *grown = realloc(c->sample, cap * 2);
            if (!grown) {
                free(c->sample);
                c->sample = NULL;
                break;
            }
            c->sample = grown;
            cap *= 2;
        }
    }
    fclose(f);
    return c->sample ? 0 : -1;
}

void mc_webhook_free(mc_ctx *c)
{
    free(c->sample);
    c->sample = NULL;
}

/* The value of `key` in the section under test (secrets resolved). */
static const char *section_value(mc_ctx *c, const char *key)
{
    const config_section *s = config_section_find(&c->cfg, c->o->section);
    const config_entry *e = config_entry_find(s, key);
    return e ? e->value : NULL;
}

/*
 * Expands a --webhook-header template: {t} is the host clock in unix
 * seconds; {hmac-t.body:KEY} is hex HMAC-SHA256, keyed with the value of
 * the section's KEY, of "<t>.<body>" (how Stripe, the mock and the
 * template sign); {hmac-body:KEY} the same of the body alone.
 * Returns a malloc'd "Name: value" line, or NULL.
 */
static char *expand_header(mc_ctx *c, const char *tmpl, const char *t)
{
    size_t cap = strlen(tmpl) + 256, used = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        const char *piece = p;
        size_t n = 1;
        char hex[65];
        if (!strncmp(p, "{t}", 3)) {
            piece = t;
            n = strlen(t);
            p += 3;
        } else if ((!strncmp(p, "{hmac-t.body:", 13) || !strncmp(p, "{hmac-body:", 11)) && strchr(p, '}')) {
            const char *end = strchr(p, '}');
            int with_t = p[6] == 't';
            size_t skip = with_t ? 13 : 11;
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(end - p - (long)skip), p + skip);
            const char *secret = section_value(c, key);
            size_t tl = with_t ? strlen(t) + 1 : 0, msg_len = tl + c->sample_len;
            char *msg = malloc(msg_len + 1);
            if (!secret || !msg) {
                free(msg);
                free(out);
                return NULL;
            }
            if (with_t) {
                memcpy(msg, t, tl - 1);
                msg[tl - 1] = '.';
            }
            memcpy(msg + tl, c->sample, c->sample_len);
            uint8_t mac[32];
            host_hmac_sha256(secret, strlen(secret), msg, msg_len, mac);
            free(msg);
            host_hex(mac, 32, hex);
            piece = hex;
            n = 64;
            p = end + 1;
        } else {
            p++;
        }
        if (used + n + 1 > cap) {
            cap = (used + n + 1) * 2;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + used, piece, n);
        used += n;
    }
    out[used] = '\0';
    return out;
}

typedef struct mc_headers {
    char *lines[MC_MAX_HEADERS];
    payd_header h[MC_MAX_HEADERS];
    size_t n;
} mc_headers;

static void headers_free(mc_headers *hs)
{
    for (size_t i = 0; i < hs->n; i++) free(hs->lines[i]);
    memset(hs, 0, sizeof *hs);
}

static int headers_build(mc_ctx *c, mc_headers *hs)
{
    memset(hs, 0, sizeof *hs);
    char t[24];
    snprintf(t, sizeof t, "%lld", (long long)(host_now_ms() / 1000));
    for (int i = 0; i < c->o->webhook_header_count; i++) {
        char *line = expand_header(c, c->o->webhook_headers[i], t);
        char *colon = line ? strchr(line, ':') : NULL;
        if (!colon) {
            free(line);
            headers_free(hs);
            return -1;
        }
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t') v++;
        hs->lines[hs->n] = line;
        hs->h[hs->n].name = line;
        hs->h[hs->n].value = v;
        hs->n++;
    }
    return 0;
}

/* Calls the webhook op with a NUL-terminated copy of `body` (the core
 * terminates its buffer too). Copies the event id out. */
static int call_webhook(mc_worker *w, const payd_header *h, size_t n, const char *body, size_t len,
                        char *event_id, size_t id_len, payd_error *e)
{
    instance *in = w->c->inst;
    memset(e, 0, sizeof *e);
    if (event_id) event_id[0] = '\0';
    char *copy = malloc(len + 1);
    arena *a = arena_new();
    if (!copy || !a) {
        free(copy);
        arena_free(a);
        return PAYD_E_NOMEM;
    }
    memcpy(copy, body, len);
    copy[len] = '\0';
    payd_webhook_req req = {.struct_size = sizeof req, .headers = h, .header_count = n, .body = copy,
                            .body_len = len};
    payd_event ev;
    memset(&ev, 0, sizeof ev);
    ev.struct_size = sizeof ev;
    int rc = in->gw.webhook(in->state, &req, &ev, a, e);
    mc_guard_error(w->c, "webhook", e);
    if (rc == PAYD_OK) {
        mc_take(w->c, a, "webhook", "payd_event.provider_event_id", ev.provider_event_id, event_id, id_len);
        mc_take(w->c, a, "webhook", "payd_event.provider_type", ev.provider_type, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.payment_id", ev.payment_id, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.provider_ref", ev.provider_ref, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.refund_ref", ev.refund_ref, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.refund_id", ev.refund_id, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.currency", ev.currency, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.failure_code", ev.failure_code, NULL, 0);
        mc_take(w->c, a, "webhook", "payd_event.failure_message", ev.failure_message, NULL, 0);
    }
    arena_free(a);
    free(copy);
    return rc;
}

int mc_sc_webhook(mc_worker *w, char *why, size_t len)
{
    mc_ctx *c = w->c;
    if (!c->inst->gw.webhook) return mc_verdict(why, len, MC_SKIP, "the module has no webhook operation");
    if (!c->sample)
        return mc_verdict(why, len, MC_SKIP, "no --webhook-sample given (the module verifies webhooks: give a "
                        "signed sample to check it)");
    mc_headers hs;
    if (headers_build(c, &hs) != 0)
        return mc_verdict(why, len, MC_FAIL, "a --webhook-header is not 'Name: value', or names a key the "
                        "section does not have");
    char id[128];
    payd_error e;
    int status = MC_PASS;
    int rc = call_webhook(w, hs.h, hs.n, c->sample, c->sample_len, id, sizeof id, &e);
    if (rc != PAYD_OK) {
        snprintf(why, len, "the untouched sample was refused with %s: %s (is it signed with the "
                 "section's secret, and recent enough?)", mc_code_name(rc), e.message);
        status = MC_FAIL;
    } else if (!id[0]) {
        snprintf(why, len, "the sample was accepted without a provider_event_id (the dedup key)");
        status = MC_FAIL;
    }
    if (status == MC_PASS && c->sample_len > 0) {
        char *body = malloc(c->sample_len);
        if (!body) {
            headers_free(&hs);
            return mc_verdict(why, len, MC_FAIL, "out of memory");
        }
        memcpy(body, c->sample, c->sample_len);
        body[c->sample_len / 2] ^= 0x01;
        rc = call_webhook(w, hs.h, hs.n, body, c->sample_len, NULL, 0, &e);
        free(body);
        if (rc != PAYD_E_SIGNATURE) {
            snprintf(why, len, "a body with one byte flipped (offset %zu) returned %s, expected "
                     "PAYD_E_SIGNATURE: verify the signature over the exact raw bytes",
                     c->sample_len / 2, mc_code_name(rc));
            status = MC_FAIL;
        }
    }
    if (status == MC_PASS) {
        rc = call_webhook(w, NULL, 0, c->sample, c->sample_len, NULL, 0, &e);
        if (rc != PAYD_E_SIGNATURE) {
            snprintf(why, len, "the sample without its signature headers returned %s, expected "
                     "PAYD_E_SIGNATURE", mc_code_name(rc));
            status = MC_FAIL;
        }
    }
    if (status == MC_PASS) {
        for (size_t i = 0; i < hs.n; i++) {
            char *v = (char *)hs.h[i].value;
            size_t vl = strlen(v);
            if (vl) v[vl - 1] = v[vl - 1] == '0' ? '1' : '0';
        }
        rc = call_webhook(w, hs.h, hs.n, c->sample, c->sample_len, NULL, 0, &e);
        if (rc != PAYD_E_SIGNATURE) {
            snprintf(why, len, "the sample with its signature header altered returned %s, expected "
                     "PAYD_E_SIGNATURE", mc_code_name(rc));
            status = MC_FAIL;
        }
    }
    if (status == MC_PASS)
        snprintf(why, len, "sample accepted (event %.60s); flipped byte, missing and altered "
                 "signatures refused", id);
    headers_free(&hs);
    return status;
}
