/*
 * modules/stripe/stripe_signature.c - the Stripe-Signature header.
 *
 * Stripe signs each webhook delivery with every active endpoint secret:
 *
 *   Stripe-Signature: t=1763699995,v1=<hex hmac>,v1=<hex hmac>,v0=<...>
 *
 * where each v1 is lower-case hex of HMAC-SHA256(secret, t + "." + body)
 * over the exact raw body bytes. The header is parsed strictly: items
 * "key=value" separated by single commas, no spaces; exactly one t (1 to
 * 12 digits); one or more v1, each exactly 64 lower-case hex digits; other
 * schemes (v0, and any Stripe adds later) are ignored but must still be
 * well-formed. Anything else rejects the whole header.
 *
 * Verification passes when any v1 equals the HMAC under any configured
 * secret (both sides rotate: Stripe sends two v1 during a rotation, payd
 * accepts a list of secrets), compared in constant time with the host's
 * equal_ct, and |now - t| is within the tolerance on the host's clock,
 * which tests can shift. The signature is checked before the timestamp, so
 * an unsigned request learns nothing about the clock.
 *
 * Stateless and thread-safe.
 */
#include "stripe.h"

#include <string.h>

#define STRIPE_SIG_HEADER_MAX 4096

static int stripe_sig_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* One "key=value" item, [p, end). PAYD_OK or PAYD_E_SIGNATURE. */
static int stripe_sig_item(const char *p, const char *end, stripe_sig *out,
                           int *have_t, payd_error *e)
{
    const char *eq = memchr(p, '=', (size_t)(end - p));
    const char *v;
    size_t klen, vlen, i;

    if (eq == NULL || eq == p || eq + 1 == end)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "malformed Stripe-Signature: expected key=value "
                         "items separated by commas");
    klen = (size_t)(eq - p);
    v = eq + 1;
    vlen = (size_t)(end - v);
    for (i = 0; i < klen; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9')))
            return payd_fail(e, PAYD_E_SIGNATURE,
                             "malformed Stripe-Signature: bad item name");
    if (klen == 1 && p[0] == 't') {
        if (*have_t || vlen > 12)
            return payd_fail(e, PAYD_E_SIGNATURE,
                             "malformed Stripe-Signature: t must appear "
                             "once, with at most 12 digits");
        out->t = 0;
        for (i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return payd_fail(e, PAYD_E_SIGNATURE,
                                 "malformed Stripe-Signature: t is not a "
                                 "unix time");
            out->t = out->t * 10 + (v[i] - '0');
        }
        out->ts = v;
        out->ts_len = vlen;
        *have_t = 1;
        return PAYD_OK;
    }
    if (klen == 2 && p[0] == 'v' && p[1] == '1') {
        uint8_t *sig;

        if (out->v1_count == STRIPE_SIG_MAX_V1)
            return payd_fail(e, PAYD_E_SIGNATURE,
                             "malformed Stripe-Signature: more than %d v1 "
                             "signatures",
                             STRIPE_SIG_MAX_V1);
        if (vlen != 64)
            return payd_fail(e, PAYD_E_SIGNATURE,
                             "malformed Stripe-Signature: v1 must be 64 "
                             "lower-case hex digits");
        sig = out->v1[out->v1_count];
        for (i = 0; i < 32; i++) {
            int hi = stripe_sig_hex(v[2 * i]), lo = stripe_sig_hex(v[2 * i + 1]);

            if (hi < 0 || lo < 0)
                return payd_fail(e, PAYD_E_SIGNATURE,
                                 "malformed Stripe-Signature: v1 must be "
                                 "64 lower-case hex digits");
            sig[i] = (uint8_t)(hi << 4 | lo);
        }
        out->v1_count++;
        return PAYD_OK;
    }
    /* Another scheme: ignored, but it must still be a plain token. */
    for (i = 0; i < vlen; i++)
        if (v[i] <= ' ' || v[i] > '~')
            return payd_fail(e, PAYD_E_SIGNATURE,
                             "malformed Stripe-Signature: bad value");
    return PAYD_OK;
}

/*
 * Parse `header` into `out` (ts points into header). Returns PAYD_OK, or
 * PAYD_E_SIGNATURE with a message saying what is wrong (the header is not
 * secret, but no part of it is echoed).
 */
int stripe_signature_parse(const char *header, stripe_sig *out, payd_error *e)
{
    const char *p, *end, *comma;
    int have_t = 0, rc;
    size_t len;

    memset(out, 0, sizeof *out);
    if (header == NULL || header[0] == '\0')
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "missing or empty Stripe-Signature header");
    len = strlen(header);
    if (len > STRIPE_SIG_HEADER_MAX)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Stripe-Signature header too long");
    p = header;
    end = header + len;
    for (;;) {
        comma = memchr(p, ',', (size_t)(end - p));
        rc = stripe_sig_item(p, comma != NULL ? comma : end, out, &have_t, e);
        if (rc != PAYD_OK)
            return rc;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (!have_t)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Stripe-Signature has no timestamp (t=)");
    if (out->v1_count == 0)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Stripe-Signature has no v1 signature");
    return PAYD_OK;
}

/*
 * See stripe.h. The message signed is t + "." + body, built in the arena;
 * the computed MACs are wiped after use. Returns PAYD_OK with *t_out,
 * PAYD_E_SIGNATURE (no secret configured, malformed header, no matching
 * signature, or outside the tolerance) or PAYD_E_NOMEM.
 */
int stripe_signature_verify(const stripe_instance *inst, payd_arena *a,
                            const char *header, const char *body,
                            size_t body_len, int64_t *t_out, payd_error *e)
{
    const payd_host *h = inst->h;
    stripe_sig sig;
    uint8_t mac[32];
    char *msg;
    int64_t now, skew;
    size_t s, i;
    int match = 0, rc;

    if (inst->webhook_secret_count == 0)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "no webhook_secret is configured for this "
                         "instance");
    rc = stripe_signature_parse(header, &sig, e);
    if (rc != PAYD_OK)
        return rc;
    msg = h->alloc(a, sig.ts_len + 1 + body_len + 1);
    if (msg == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    memcpy(msg, sig.ts, sig.ts_len);
    msg[sig.ts_len] = '.';
    if (body_len > 0)
        memcpy(msg + sig.ts_len + 1, body, body_len);
    for (s = 0; s < inst->webhook_secret_count; s++) {
        h->hmac_sha256(inst->webhook_secrets[s], inst->webhook_secret_lens[s],
                       msg, sig.ts_len + 1 + body_len, mac);
        for (i = 0; i < sig.v1_count; i++)
            match |= h->equal_ct(sig.v1[i], mac, sizeof mac);
    }
    h->cleanse(mac, sizeof mac);
    if (!match)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "no v1 signature in Stripe-Signature matches the "
                         "body");
    now = h->now(h);
    skew = now > sig.t ? now - sig.t : sig.t - now;
    if (skew > inst->tolerance_s)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Stripe-Signature timestamp is %lld s away from "
                         "now (tolerance %lld s)",
                         (long long)skew, (long long)inst->tolerance_s);
    *t_out = sig.t;
    return PAYD_OK;
}
