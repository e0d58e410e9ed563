/*
 * modules/paypal/paypal_signature.c - is this delivery really PayPal's?
 *
 * PayPal signs each webhook delivery and sends, as headers:
 *   PAYPAL-TRANSMISSION-ID    a unique id of the delivery
 *   PAYPAL-TRANSMISSION-TIME  RFC 3339, e.g. 2026-11-22T10:00:00Z
 *   PAYPAL-TRANSMISSION-SIG   base64 of an RSA PKCS#1 v1.5 signature
 *   PAYPAL-CERT-URL           where the signing certificate is
 *   PAYPAL-AUTH-ALGO          SHA256withRSA (nothing else is accepted)
 * The signed message is
 *   transmission_id|transmission_time|webhook_id|crc32
 * where webhook_id is this endpoint's id at PayPal (config) and crc32 the
 * unsigned decimal CRC-32 (zlib's) of the exact raw body.
 *
 * Offline verification (the default) checks, in order: every header is
 * there once, the algorithm, the transmission time within the tolerance
 * either way (on the host's clock; cheap, so a replayed old delivery
 * never causes a certificate download), then the signature with the
 * certificate from paypal_cert.c (allowed URL, verified chain).
 * With webhook_verify = api the last step is PayPal's own
 *   POST /v1/notifications/verify-webhook-signature
 * which answers {"verification_status":"SUCCESS"|"FAILURE"}, asked under
 * a random PayPal-Request-Id (never one derived from the delivery).
 *
 * Stateless apart from the certificate cache; thread-safe.
 */
#include "paypal.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define PAYPAL_SIG_B64_MAX 2048

void paypal_crc32_decimal(const char *body, size_t len, char out[11])
{
    unsigned long c = crc32_z(0L, Z_NULL, 0);

    if (len > 0)
        c = crc32_z(c, (const Bytef *)body, len);
    snprintf(out, 11, "%lu", c & 0xffffffffUL);
}

char *paypal_signed_message(const payd_host *h, payd_arena *a,
                            const paypal_sig_headers *s,
                            const char *webhook_id, const char *body,
                            size_t body_len)
{
    char crc[11];

    paypal_crc32_decimal(body, body_len, crc);
    return h->sprintf(a, "%s|%s|%s|%s", s->transmission_id,
                      s->transmission_time, webhook_id, crc);
}

/* `n` digits at `s` into *out. 0 or -1. */
static int paypal_digits(const char *s, int n, int *out)
{
    int i, v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int paypal_parse_time(const char *s, int64_t *out)
{
    int y, mo, d, hh, mi, ss, oh = 0, om = 0, sign = 0;
    const char *p;
    struct tm tm;

    *out = 0;
    if (s == NULL || strlen(s) < 20 || strlen(s) > 40 ||
        paypal_digits(s, 4, &y) || s[4] != '-' || paypal_digits(s + 5, 2, &mo) ||
        s[7] != '-' || paypal_digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't') || paypal_digits(s + 11, 2, &hh) ||
        s[13] != ':' || paypal_digits(s + 14, 2, &mi) || s[16] != ':' ||
        paypal_digits(s + 17, 2, &ss))
        return -1;
    p = s + 19;
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return -1;
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        sign = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' &&
               paypal_digits(p + 1, 2, &oh) == 0 &&
               paypal_digits(p + 4, 2, &om) == 0 && oh <= 23 && om <= 59) {
        sign = *p == '+' ? 1 : -1;
    } else {
        return -1;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 ||
        mi > 59 || ss > 60)
        return -1;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = hh;
    tm.tm_min = mi;
    tm.tm_sec = ss;
    *out = (int64_t)timegm(&tm) - sign * (int64_t)(oh * 3600 + om * 60);
    return 0;
}

int paypal_check_time(int64_t t, int64_t now, int64_t tolerance_s,
                      payd_error *e)
{
    int64_t skew = now > t ? now - t : t - now;

    if (skew > tolerance_s)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: PAYPAL-TRANSMISSION-TIME is %lld s %s now "
                         "(tolerance %lld s)",
                         (long long)skew, t < now ? "before" : "after",
                         (long long)tolerance_s);
    return PAYD_OK;
}

/* RSA PKCS#1 v1.5 with SHA-256 of `msg` under `pkey`. 1 when valid. */
static int paypal_rsa_sha256_ok(void *pkey, const char *msg,
                                const uint8_t *sig, size_t sig_len)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = 0;

    if (md != NULL && EVP_PKEY_base_id(pkey) == EVP_PKEY_RSA &&
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1)
        ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)msg,
                              strlen(msg)) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* The offline check of the signature itself. */
static int paypal_verify_offline(paypal_instance *inst, payd_arena *a,
                                 const paypal_sig_headers *s,
                                 const char *body, size_t body_len,
                                 payd_error *e)
{
    const payd_host *h = inst->h;
    uint8_t *sig = NULL;
    void *pkey = NULL;
    char *msg;
    long n;
    int rc, ok;

    n = strlen(s->transmission_sig) <= PAYPAL_SIG_B64_MAX
            ? h->base64_decode(a, s->transmission_sig, &sig)
            : -1;
    if (n <= 0 || n > 1024)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: PAYPAL-TRANSMISSION-SIG is not base64 of "
                         "a signature");
    msg = paypal_signed_message(h, a, s, inst->webhook_id, body, body_len);
    if (msg == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    rc = paypal_cert_key(inst, s->cert_url, a, &pkey, e);
    if (rc != PAYD_OK)
        return rc;
    ok = paypal_rsa_sha256_ok(pkey, msg, sig, (size_t)n);
    EVP_PKEY_free(pkey);
    if (!ok)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: PAYPAL-TRANSMISSION-SIG does not match "
                         "the delivery");
    return PAYD_OK;
}

/* The check through POST /v1/notifications/verify-webhook-signature. */
static int paypal_verify_api(paypal_instance *inst, payd_arena *a,
                             const paypal_sig_headers *s, json_t *event,
                             payd_error *e)
{
    paypal_answer ans;
    const char *key, *verdict;
    uint8_t nonce[16];
    char *hex;
    json_t *body;
    int rc;

    if (!json_is_object(event))
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: the body is not a JSON event");
    /* A fresh PayPal-Request-Id per check. An id derived from the
     * delivery (its transmission id, which anyone can copy) would let
     * PayPal answer a forged body with the verdict it stored for the
     * genuine one, or a genuine delivery with a forger's FAILURE. The
     * check changes nothing at PayPal, so nothing needs idempotency. */
    if (inst->h->random_bytes(nonce, sizeof nonce) != 0)
        return payd_fail(e, PAYD_E_TRANSIENT, "paypal: no random bytes");
    hex = inst->h->hex_encode(a, nonce, sizeof nonce);
    key = hex != NULL ? inst->h->sprintf(a, "payd-webhook-verify-%s", hex)
                      : NULL;
    body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O}", "auth_algo",
                     s->auth_algo, "cert_url", s->cert_url, "transmission_id",
                     s->transmission_id, "transmission_sig",
                     s->transmission_sig, "transmission_time",
                     s->transmission_time, "webhook_id", inst->webhook_id,
                     "webhook_event", event);
    if (key == NULL || body == NULL) {
        json_decref(body);
        return payd_fail(e, PAYD_E_NOMEM, "paypal: out of memory");
    }
    rc = paypal_api(inst, "POST", "/v1/notifications/verify-webhook-signature",
                    body, key, a, &ans, e);
    json_decref(body);
    verdict = paypal_jstr(ans.obj, "verification_status");
    if (rc == PAYD_OK && (verdict == NULL || strcmp(verdict, "SUCCESS") != 0))
        rc = payd_fail(e, PAYD_E_SIGNATURE,
                       "paypal: verify-webhook-signature answered %s",
                       verdict != NULL && paypal_ok_id(verdict) ? verdict
                                                                : "no verdict");
    else if (rc == PAYD_E_INVALID || rc == PAYD_E_NOTFOUND ||
             rc == PAYD_E_DECLINED || rc == PAYD_E_PROVIDER)
        /* PayPal refused to look at it: not a delivery payd can trust. */
        e->code = rc = PAYD_E_SIGNATURE;
    json_decref(ans.obj);
    return rc;
}

/* See paypal.h. */
int paypal_signature_verify(paypal_instance *inst, payd_arena *a,
                            const paypal_sig_headers *s, const char *body,
                            size_t body_len, json_t *event, payd_error *e)
{
    int64_t t = 0;
    int rc;

    if (inst->webhook_id == NULL)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: no webhook_id is configured for this "
                         "instance");
    if (s->transmission_id == NULL || s->transmission_time == NULL ||
        s->transmission_sig == NULL || s->cert_url == NULL ||
        s->auth_algo == NULL)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: a PAYPAL-TRANSMISSION-ID, -TIME, -SIG, "
                         "PAYPAL-CERT-URL or PAYPAL-AUTH-ALGO header is "
                         "missing");
    if (!payd_text_ok(s->transmission_id, 128) ||
        strchr(s->transmission_id, '|') != NULL)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: malformed PAYPAL-TRANSMISSION-ID");
    if (strcmp(s->auth_algo, "SHA256withRSA") != 0)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: PAYPAL-AUTH-ALGO must be SHA256withRSA");
    if (paypal_parse_time(s->transmission_time, &t) != 0)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: PAYPAL-TRANSMISSION-TIME is not an RFC "
                         "3339 time");
    rc = paypal_check_time(t, inst->h->now(inst->h), inst->tolerance_s, e);
    if (rc != PAYD_OK)
        return rc;
    if (inst->verify_mode == PAYPAL_VERIFY_API)
        return paypal_verify_api(inst, a, s, event, e);
    return paypal_verify_offline(inst, a, s, body, body_len, e);
}
