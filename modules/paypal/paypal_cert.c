/*
 * modules/paypal/paypal_cert.c - the certificate PayPal signs webhooks
 * with.
 *
 * Each delivery names its certificate in PAYPAL-CERT-URL. Anyone can put
 * any URL there, so before anything is fetched the URL must be https on
 * one of the configured cert_hosts (PayPal's API hosts by default; tests
 * add their fake's "127.0.0.1:port"), with no user info. The download goes
 * through the host's HTTP client, whose TLS verification (and [server]
 * http_ca_file) applies.
 *
 * The PEM answer is the signing certificate first, then any
 * intermediates. The chain is verified with OpenSSL's X509_verify_cert
 * against cert_ca_file (or OpenSSL's default trust store), at the host's
 * clock (which tests can shift), so validity dates are checked along the
 * chain. A verified certificate's public key is cached per URL in module
 * memory until the earliest notAfter of its chain; the cache holds
 * PAYPAL_CERT_CACHE_SLOTS entries and evicts the least recently used.
 * A leaf whose keyUsage leaves out digitalSignature is refused.
 *
 * Threads: the cache is guarded by inst->cert_mu, held only for lookups
 * and inserts, never during a download or a verification. Two threads
 * that miss together both download; the second insert replaces the first.
 */
#include "paypal.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Host name characters payd accepts in cert_hosts and cert URLs. */
static int paypal_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Parse "host[:port]" of length n into `out`. 0 or -1. */
static int paypal_host_port(const char *s, size_t n, paypal_cert_host *out)
{
    const char *colon = memchr(s, ':', n);
    size_t hn = colon != NULL ? (size_t)(colon - s) : n, i;
    long port = 443;

    if (hn == 0 || hn >= sizeof out->name)
        return -1;
    for (i = 0; i < hn; i++) {
        if (!paypal_host_char(s[i]))
            return -1;
        out->name[i] = (char)tolower((unsigned char)s[i]);
    }
    out->name[hn] = '\0';
    if (colon != NULL) {
        size_t pn = n - hn - 1;

        if (pn == 0 || pn > 5)
            return -1;
        port = 0;
        for (i = 0; i < pn; i++) {
            if (colon[1 + i] < '0' || colon[1 + i] > '9')
                return -1;
            port = port * 10 + (colon[1 + i] - '0');
        }
        if (port < 1 || port > 65535)
            return -1;
    }
    out->port = (int)port;
    return 0;
}

int paypal_cert_hosts_parse(paypal_instance *inst, const char *list,
                            payd_error *e)
{
    const char *p = list != NULL ? list : PAYPAL_DEFAULT_CERT_HOSTS, *end;
    size_t n;

    inst->cert_host_count = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strcspn(p, ",");
        n = (size_t)(end - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (inst->cert_host_count == PAYPAL_MAX_CERT_HOSTS ||
            paypal_host_port(p, n, &inst->cert_hosts[inst->cert_host_count]) != 0)
            return payd_fail(e, PAYD_E_INVALID,
                             "paypal: invalid value for cert_hosts: expected "
                             "up to %d comma-separated host or host:port "
                             "entries",
                             PAYPAL_MAX_CERT_HOSTS);
        inst->cert_host_count++;
        if (*end == '\0')
            return PAYD_OK;
        p = end + 1;
    }
}

int paypal_cert_url_allowed(const paypal_instance *inst, const char *url)
{
    paypal_cert_host want;
    const char *auth;
    size_t n, i;

    if (url == NULL || !payd_text_ok(url, PAYPAL_URL_MAX) ||
        strncasecmp(url, "https://", 8) != 0 || strchr(url, ' ') != NULL)
        return 0;
    auth = url + 8;
    n = strcspn(auth, "/?#");
    if (memchr(auth, '@', n) != NULL || paypal_host_port(auth, n, &want) != 0)
        return 0;
    for (i = 0; i < inst->cert_host_count; i++)
        if (strcmp(inst->cert_hosts[i].name, want.name) == 0 &&
            inst->cert_hosts[i].port == want.port)
            return 1;
    return 0;
}

/* ---- the cache ---- */

static EVP_PKEY *paypal_cert_cached(paypal_instance *inst, const char *url,
                                    int64_t now)
{
    EVP_PKEY *k = NULL;
    size_t i;

    pthread_mutex_lock(&inst->cert_mu);
    for (i = 0; i < PAYPAL_CERT_CACHE_SLOTS; i++) {
        paypal_cert_entry *c = &inst->certs[i];

        if (c->url == NULL || strcmp(c->url, url) != 0)
            continue;
        if (c->not_after > now && EVP_PKEY_up_ref(c->pkey) == 1) {
            k = c->pkey;
            c->used = ++inst->cert_clock;
        }
        break;
    }
    pthread_mutex_unlock(&inst->cert_mu);
    return k;
}

static void paypal_cert_entry_free(paypal_cert_entry *c)
{
    free(c->url);
    EVP_PKEY_free(c->pkey);
    memset(c, 0, sizeof *c);
}

static void paypal_cert_store(paypal_instance *inst, const char *url,
                              EVP_PKEY *k, int64_t not_after)
{
    paypal_cert_entry *slot = NULL;
    char *copy = strdup(url);
    size_t i;

    if (copy == NULL || EVP_PKEY_up_ref(k) != 1) {
        free(copy);
        return;
    }
    pthread_mutex_lock(&inst->cert_mu);
    for (i = 0; i < PAYPAL_CERT_CACHE_SLOTS; i++) {
        paypal_cert_entry *c = &inst->certs[i];

        if (c->url != NULL && strcmp(c->url, url) == 0) {
            slot = c;
            break;
        }
        if (slot == NULL || (slot->url != NULL &&
                             (c->url == NULL || c->used < slot->used)))
            slot = c;
    }
    paypal_cert_entry_free(slot);
    slot->url = copy;
    slot->pkey = k;
    slot->not_after = not_after;
    slot->used = ++inst->cert_clock;
    pthread_mutex_unlock(&inst->cert_mu);
}

void paypal_cert_cache_clear(paypal_instance *inst)
{
    size_t i;

    for (i = 0; i < PAYPAL_CERT_CACHE_SLOTS; i++)
        paypal_cert_entry_free(&inst->certs[i]);
}

/* ---- download and verification ---- */

/* notAfter of `x` in unix seconds, or 0 when unreadable. */
static int64_t paypal_cert_not_after(const X509 *x)
{
    struct tm tm;

    memset(&tm, 0, sizeof tm);
    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* The PEM body: leaf into *leaf, the rest into *chain. 0 or -1. */
static int paypal_cert_parse(const char *pem, size_t len, X509 **leaf,
                             STACK_OF(X509) **chain)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x;

    *leaf = NULL;
    *chain = sk_X509_new_null();
    if (bio == NULL || *chain == NULL) {
        BIO_free(bio);
        return -1;
    }
    *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    while (*leaf != NULL && sk_X509_num(*chain) < 8 &&
           (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (sk_X509_push(*chain, x) <= 0) {
            X509_free(x);
            break;
        }
    }
    ERR_clear_error(); /* the loop ends on "no start line" */
    BIO_free(bio);
    return *leaf != NULL ? 0 : -1;
}

/*
 * Verify `leaf` with `chain` against the configured trust at `now`. On
 * success *not_after is the earliest notAfter of the verified chain.
 * PAYD_OK or PAYD_E_SIGNATURE.
 */
static int paypal_cert_verify(const paypal_instance *inst, X509 *leaf,
                              STACK_OF(X509) *chain, int64_t now,
                              int64_t *not_after, payd_error *e)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int ok = 0, err = X509_V_ERR_UNSPECIFIED, i;

    *not_after = 0;
    if (store != NULL && ctx != NULL &&
        (inst->cert_ca_file != NULL
             ? X509_STORE_load_file(store, inst->cert_ca_file) == 1
             : X509_STORE_set_default_paths(store) == 1) &&
        X509_STORE_CTX_init(ctx, store, leaf, chain) == 1) {
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now);
        ok = X509_verify_cert(ctx) == 1;
        err = X509_STORE_CTX_get_error(ctx);
    }
    if (ok) {
        STACK_OF(X509) *verified = X509_STORE_CTX_get0_chain(ctx);

        *not_after = paypal_cert_not_after(leaf);
        for (i = 0; verified != NULL && i < sk_X509_num(verified); i++) {
            int64_t t = paypal_cert_not_after(sk_X509_value(verified, i));

            if (t > 0 && t < *not_after)
                *not_after = t;
        }
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    if (!ok)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: the webhook certificate does not verify: "
                         "%s",
                         X509_verify_cert_error_string(err));
    return PAYD_OK;
}

/*
 * 1 when the verified leaf may sign: a keyUsage extension, when present,
 * must include digitalSignature. The chain check alone would accept any
 * certificate under the trust anchors, an issuing CA's own included, as
 * the signer of a webhook; a certificate whose issuer limited it to other
 * uses must not speak for PayPal. (No extended key usage is required:
 * PayPal does not document one for its signing certificate.)
 */
static int paypal_cert_may_sign(X509 *leaf)
{
    uint32_t flags = X509_get_extension_flags(leaf);

    return (flags & EXFLAG_INVALID) == 0 &&
           ((flags & EXFLAG_KUSAGE) == 0 ||
            (X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE) != 0);
}

/* Download `url`. PAYD_OK with the PEM text in the arena. */
static int paypal_cert_download(const paypal_instance *inst, const char *url,
                                payd_arena *a, payd_http_response *res,
                                payd_error *e)
{
    const payd_host *h = inst->h;
    payd_header hdr = {"Accept", "application/x-pem-file, */*"};
    payd_http_request req;
    int rc;

    memset(&req, 0, sizeof req);
    req.struct_size = (uint32_t)sizeof req;
    req.method = "GET";
    req.url = url;
    req.headers = &hdr;
    req.header_count = 1;
    req.timeout_ms = inst->timeout_ms;
    memset(res, 0, sizeof *res);
    res->struct_size = (uint32_t)sizeof *res;
    rc = h->http(h, &req, res, a, e);
    if (rc != PAYD_OK) {
        if (e->message[0] == '\0')
            payd_fail(e, rc, "paypal: could not download the webhook "
                             "certificate");
        e->code = rc;
        return rc;
    }
    if (res->status != 200 || res->body == NULL || res->body_len == 0 ||
        res->body_len > PAYPAL_CERT_MAX)
        return payd_fail(e, res->status >= 500 || res->status == 429
                                ? PAYD_E_TRANSIENT
                                : PAYD_E_SIGNATURE,
                         "paypal: the webhook certificate URL answered HTTP "
                         "%ld",
                         res->status);
    return PAYD_OK;
}

/* See paypal.h. */
int paypal_cert_key(paypal_instance *inst, const char *url, payd_arena *a,
                    void **pkey, payd_error *e)
{
    const payd_host *h = inst->h;
    int64_t now = h->now(h), not_after = 0;
    payd_http_response res;
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = NULL;
    EVP_PKEY *k;
    int rc;

    *pkey = NULL;
    if (!paypal_cert_url_allowed(inst, url))
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: PAYPAL-CERT-URL is not https on an "
                         "allowed PayPal host (cert_hosts)");
    k = paypal_cert_cached(inst, url, now);
    if (k != NULL) {
        *pkey = k;
        return PAYD_OK;
    }
    rc = paypal_cert_download(inst, url, a, &res, e);
    if (rc != PAYD_OK)
        return rc;
    if (paypal_cert_parse(res.body, res.body_len, &leaf, &chain) != 0) {
        sk_X509_pop_free(chain, X509_free);
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "paypal: the webhook certificate URL did not "
                         "answer a PEM certificate");
    }
    rc = paypal_cert_verify(inst, leaf, chain, now, &not_after, e);
    if (rc == PAYD_OK && !paypal_cert_may_sign(leaf))
        rc = payd_fail(e, PAYD_E_SIGNATURE,
                       "paypal: the webhook certificate's key usage does "
                       "not allow signatures");
    k = rc == PAYD_OK ? X509_get_pubkey(leaf) : NULL;
    if (rc == PAYD_OK && k == NULL)
        rc = payd_fail(e, PAYD_E_SIGNATURE,
                       "paypal: the webhook certificate has no usable "
                       "public key");
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    if (rc != PAYD_OK)
        return rc;
    paypal_cert_store(inst, url, k, not_after);
    h->log(h, PAYD_LOG_INFO,
           "paypal: webhook certificate verified and cached (valid until "
           "%lld)",
           (long long)not_after);
    *pkey = k;
    return PAYD_OK;
}
