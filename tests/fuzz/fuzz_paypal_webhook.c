/*
 * tests/fuzz/fuzz_paypal_webhook.c - the PayPal gateway's `webhook`
 * operation: the PAYPAL-* headers, RFC 3339 transmission times, the cert
 * URL allow-list, the certificate download and chain check, SHA256withRSA
 * over id|time|webhook_id|crc32(body), then jansson and the event mapping
 * (paypal_webhook.c) behind it; plus the amount parser it reads events
 * with.
 *
 * The module's sources are linked into this binary and reached through its
 * descriptor, as payd calls it, with tests/fuzz/host.c as the host (fixed
 * clock FUZZ_NOW). LLVMFuzzerInitialize makes an RSA CA and a signing
 * certificate valid at that clock; the host's `http` serves the
 * certificate at CERT_URL, a token at /v1/oauth2/token and SUCCESS at
 * verify-webhook-signature. Two instances: one verifying offline (trusting
 * the CA through cert_ca_file), one through the API.
 *
 * Input: one mode byte, then the rest:
 *   mode % 5 == 0  raw: five header values separated by '\n' (id, time,
 *                  sig, cert url, algo), then '\n' and the body; offline
 *              1   signed offline: the rest is the body, signed correctly
 *              2   signed offline, but the body then has a byte flipped
 *              3   API-verified: the rest is the body (the API says SUCCESS)
 *              4   the rest is a time and an amount: paypal_parse_time and
 *                  paypal_amount_parse/format on it directly
 *
 * Besides crashes, the target aborts when a raw (unsigned) or tampered
 * delivery is accepted, when a correctly signed one is refused as badly
 * signed, or when an amount does not read back to the same minor units.
 */
#include <payd/module.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fake_host.h"
#include "fuzz_host.h"
#include "paypal.h"

#define WEBHOOK_ID "8PT597110X687430LKGECATA"
#define CERT_URL "https://certs.fuzz:8443/certs/CERT-1"
#define TRANSMISSION_ID "b2384410-f8d2-11e7-8d9f-4b1d5e5ee01b"

static const payd_module *mod;
static void *offline_state, *api_state;
static EVP_PKEY *leaf_key;
static char *cert_pem;

static int fuzz_paypal_http(const payd_host *h, const payd_http_request *req,
                            payd_http_response *res, payd_arena *a,
                            payd_error *e)
{
    const char *body = "{}";

    (void)h, (void)e;
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    if (strstr(req->url, "/v1/oauth2/token") != NULL)
        body = "{\"access_token\":\"tokfuzz\",\"token_type\":\"Bearer\","
               "\"expires_in\":32400}";
    else if (strcmp(req->url, CERT_URL) == 0)
        body = cert_pem;
    else if (strstr(req->url, "verify-webhook-signature") != NULL)
        body = "{\"verification_status\":\"SUCCESS\"}";
    res->status = 200;
    res->body = fuzz_host_strndup(a, body, strlen(body));
    res->body_len = strlen(body);
    return res->body != NULL ? PAYD_OK : PAYD_E_NOMEM;
}

/* A certificate for `key` issued by `issuer` (NULL: self-signed), valid
 * around the fuzz clock. */
static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *issuer_key, X509 *issuer,
                       const char *cn, int is_ca)
{
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), is_ca ? 1 : 2);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)(fuzz_host_now() - 86400));
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)(fuzz_host_now() + 86400));
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                              is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (X509_sign(x, issuer_key, EVP_sha256()) <= 0)
        abort();
    return x;
}

static void *start(const char *verify)
{
    payd_error e;
    void *st = NULL;

    fake_config_set("webhook_verify", verify);
    memset(&e, 0, sizeof e);
    if (mod->init(fuzz_host(), fake_config(), &st, &e) != PAYD_OK) {
        fprintf(stderr, "fuzz_paypal_webhook: init failed: %s\n", e.message);
        abort();
    }
    return st;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static char ca_path[] = "/tmp/payd-fuzz-paypal-ca-XXXXXX";
    EVP_PKEY *ca_key = EVP_RSA_gen(2048);
    X509 *ca, *leaf;
    BIO *b;
    char *data;
    long n;
    FILE *f;
    int fd;

    (void)argc, (void)argv;
    leaf_key = EVP_RSA_gen(2048);
    if (ca_key == NULL || leaf_key == NULL)
        abort();
    ca = make_cert(ca_key, ca_key, NULL, "payd fuzz CA", 1);
    leaf = make_cert(leaf_key, ca_key, ca, "payd fuzz signer", 0);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, leaf);
    n = BIO_get_mem_data(b, &data);
    cert_pem = strndup(data, (size_t)n);
    BIO_free(b);
    fd = mkstemp(ca_path);
    if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
        abort();
    PEM_write_X509(f, ca);
    fclose(f);
    X509_free(leaf);
    X509_free(ca);
    EVP_PKEY_free(ca_key);

    fuzz_host_set_http(fuzz_paypal_http);
    fake_host_reset();
    fake_config_set("payd.instance", "paypal_fuzz");
    fake_config_set("client_id", "AFuzzClientId");
    fake_config_set("client_secret", "EFuzzClientSecret");
    fake_config_set("webhook_id", WEBHOOK_ID);
    fake_config_set("api_base", "http://127.0.0.1:9");
    fake_config_set("cert_hosts", "certs.fuzz:8443, api.paypal.com");
    fake_config_set("cert_ca_file", ca_path);
    mod = payd_module_v1();
    offline_state = start("offline");
    api_state = start("api");
    /* The CA is loaded at each verification; keep the file for the run
     * (it is in /tmp and tiny). */
    return 0;
}

/* base64 SHA256withRSA over id|time|webhook_id|crc32(body). */
static void sign(const char *time_text, const char *body, size_t len,
                 char *out, size_t outsz)
{
    unsigned char sig[512];
    size_t sig_len = sizeof sig;
    char msg[256];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned long crc = crc32_z(0L, (const Bytef *)body, len);

    snprintf(msg, sizeof msg, "%s|%s|%s|%lu", TRANSMISSION_ID, time_text,
             WEBHOOK_ID, crc & 0xffffffffUL);
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, leaf_key) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, (unsigned char *)msg, strlen(msg)) != 1 ||
        outsz < 4 * ((sig_len + 2) / 3) + 1)
        abort();
    EVP_MD_CTX_free(md);
    EVP_EncodeBlock((unsigned char *)out, sig, (int)sig_len);
}

static int call(void *st, const char *const values[5], const char *body,
                size_t body_len, payd_event *ev, payd_error *e)
{
    static const char *const names[5] = {
        "PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME",
        "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"};
    payd_header hdrs[5];
    payd_webhook_req req;
    payd_arena *a = fuzz_arena_new();
    size_t i, n = 0;
    int rc;

    for (i = 0; i < 5; i++)
        if (values[i] != NULL)
            hdrs[n++] = (payd_header){names[i], values[i]};
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.headers = hdrs;
    req.header_count = n;
    req.body = body;
    req.body_len = body_len;
    memset(ev, 0, sizeof *ev);
    ev->struct_size = sizeof *ev;
    memset(e, 0, sizeof *e);
    rc = mod->gateway->webhook(st, &req, ev, a, e);
    if (rc == PAYD_OK) {
        fuzz_touch_event(ev);
        if (ev->provider_event_id == NULL || ev->amount < 0)
            abort();
    }
    if (memchr(e->message, '\0', sizeof e->message) == NULL)
        abort();
    fuzz_arena_free(a);
    return rc;
}

/* Mode 4: the time and amount readers directly. */
static void pure(const char *s)
{
    char out[PAYPAL_AMOUNT_TEXT_MAX];
    int64_t t = 0, minor = 0, back = 0;
    int exp;

    (void)paypal_parse_time(s, &t);
    for (exp = 0; exp <= 4; exp++) {
        if (paypal_amount_parse(s, exp, &minor) != PAYD_OK)
            continue;
        if (minor < 0 || paypal_amount_format(minor, NULL, exp, out) != PAYD_OK ||
            paypal_amount_parse(out, exp, &back) != PAYD_OK || back != minor) {
            fprintf(stderr, "INVARIANT: \"%s\" (exponent %d) does not read back\n", s, exp);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char time_text[40], sig[1024];
    const char *values[5];
    payd_event ev;
    payd_error e;
    char *buf, *body;
    size_t body_len;
    time_t now = (time_t)fuzz_host_now();
    struct tm tm;
    int mode, rc;

    if (size < 1)
        return 0;
    mode = data[0] % 5;
    /* A NUL-terminated copy; the host refuses bodies with NUL bytes. */
    buf = malloc(size);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    if (memchr(buf, '\0', size - 1) != NULL && mode != 4) {
        free(buf);
        return 0;
    }
    gmtime_r(&now, &tm);
    strftime(time_text, sizeof time_text, "%Y-%m-%dT%H:%M:%SZ", &tm);

    if (mode == 0) {
        char *p = buf;
        int i;

        for (i = 0; i < 5; i++) {
            char *nl = strchr(p, '\n');

            values[i] = p;
            if (nl == NULL) {
                p += strlen(p);
                continue;
            }
            *nl = '\0';
            p = nl + 1;
        }
        body = p;
        body_len = strlen(p);
        rc = call(offline_state, values, body, body_len, &ev, &e);
        fuzz_invariant(rc != PAYD_OK, "an unsigned delivery was accepted", mode, rc, &e);
    } else if (mode == 1 || mode == 2) {
        body = buf;
        body_len = size - 1;
        sign(time_text, body, body_len, sig, sizeof sig);
        values[0] = TRANSMISSION_ID;
        values[1] = time_text;
        values[2] = sig;
        values[3] = CERT_URL;
        values[4] = "SHA256withRSA";
        if (mode == 2) {
            if (body_len == 0) {
                free(buf);
                return 0;
            }
            body[body_len / 2] = (char)(body[body_len / 2] == 'x' ? 'y' : 'x');
        }
        rc = call(offline_state, values, body, body_len, &ev, &e);
        if (mode == 1)
            fuzz_invariant(rc != PAYD_E_SIGNATURE, "a signed delivery was refused", mode, rc, &e);
        else
            fuzz_invariant(rc == PAYD_E_SIGNATURE, "a tampered delivery was not refused", mode,
                      rc, &e);
    } else if (mode == 3) {
        values[0] = TRANSMISSION_ID;
        values[1] = time_text;
        values[2] = "c2lnbmF0dXJl";
        values[3] = CERT_URL;
        values[4] = "SHA256withRSA";
        rc = call(api_state, values, buf, size - 1, &ev, &e);
        (void)rc;
    } else {
        pure(buf);
    }
    free(buf);
    return 0;
}
