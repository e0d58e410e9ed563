/*
 * test_paypal.c - the PayPal gateway against a real payd, PostgreSQL and
 * Redis, with tests/fakes/paypal_fake standing in for api-m.paypal.com.
 *
 * Setup makes a small PKI of the test's own with OpenSSL (nothing comes
 * from the network or the system store):
 *   ca.pem                    a root CA, the only trust anchor payd gets
 *                             ([server] http_ca_file and cert_ca_file);
 *   certs/paypal-sign.pem     a webhook signing certificate issued by an
 *                             intermediate CA, served with the intermediate
 *                             after it, as PayPal serves its chain;
 *   certs/expired.pem         the same, expired yesterday;
 *   certs/untrusted.pem       a self-signed signing certificate;
 *   tls.pem                   the fake's https certificate and key
 *                             (127.0.0.1 and localhost).
 * The fake serves certs/ over https; the tests sign webhook events as
 * PayPal does: RSA-SHA256 over transmission_id|transmission_time|
 * webhook_id|crc32(body).
 *
 * payd runs with
 *   [gateway.paypal]      the shop's instance (offline verification),
 *   [gateway.paypal_api]  webhook_verify = api,
 *   [gateway.paypal_badsecret]  a client secret the fake refuses,
 *   [gateway.mock]        the default; [routing] currency.JPY = paypal,
 * [server] http_timeout_ms = 1000 (the fake's hang is a timeout) and a
 * janitor that retries every second. A second payd, started fresh without
 * Redis for the token burst, shares the fake.
 *
 * The last tests check every request body payd sent against PayPal's
 * OpenAPI files (tests/openapi/validate_paypal.py) and grep payd's log
 * for the client secret.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "harness.h"

#define CLIENT_ID "payd-test-client-4c1f"
#define CLIENT_SECRET "pp_S3CR3T_client_secret_91f2e7"
#define BAD_SECRET "pp_wrong_B4DS3CR3T_0042"
#define WEBHOOK_ID "8PT597110X687430LKGECATA"
#define RETURN_URL "https://shop.example/paypal/return"
#define POLL_MS 20000
#define BURST 32

static h_payd srv;
static h_payd fake;            /* only base_url is used: h_request_ex's target */
static pid_t fake_pid;
static int https_port;
static char dir[PATH_MAX];     /* scratch: ca.pem, tls.pem, certs/ */
static EVP_PKEY *sign_key;     /* the key of paypal-sign.pem and expired.pem */
static EVP_PKEY *rogue_key;    /* the key of untrusted.pem */

/* ------------------------------------------------------------------------ */
/* A PKI of our own                                                         */
/* ------------------------------------------------------------------------ */

static void pki_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
}

/*
 * A certificate for `key` named `cn`, valid from now+from_s to now+to_s,
 * signed by issuer/issuer_key (NULL: self-signed). `san` (may be NULL) is
 * a subjectAltName value. Caller frees.
 */
static X509 *pki_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, int ca,
                      long from_s, long to_s, const char *san)
{
    static long serial = 4096;
    X509 *x = X509_new();
    X509_NAME *name;
    X509V3_CTX ctx;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    X509_set_pubkey(x, key);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"payd tests", -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    pki_ext(x, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    pki_ext(x, &ctx, NID_key_usage,
            ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
    pki_ext(x, &ctx, NID_subject_key_identifier, "hash");
    if (issuer)
        pki_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
    if (san)
        pki_ext(x, &ctx, NID_subject_alt_name, san);
    assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

/* Writes the certificates (and the key, when not NULL) as PEM to path. */
static void pki_write(const char *path, X509 *const *certs, size_t n, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(PEM_write_X509(f, certs[i]), 1);
    if (key)
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static int pki_make(void)
{
    EVP_PKEY *root_key = EVP_RSA_gen(2048), *mid_key = EVP_RSA_gen(2048);
    EVP_PKEY *tls_key = EVP_RSA_gen(2048);
    X509 *root, *mid, *leaf, *expired, *rogue, *tls;
    char path[PATH_MAX + 32];

    sign_key = EVP_RSA_gen(2048);
    rogue_key = EVP_RSA_gen(2048);
    if (!root_key || !mid_key || !tls_key || !sign_key || !rogue_key)
        return -1;
    root = pki_cert("payd test root CA", root_key, NULL, NULL, 1, -86400, 10 * 86400, NULL);
    mid = pki_cert("payd test intermediate CA", mid_key, root, root_key, 1, -86400, 10 * 86400, NULL);
    leaf = pki_cert("messageverificationcerts.paypal.test", sign_key, mid, mid_key, 0, -3600, 5 * 86400, NULL);
    expired = pki_cert("messageverificationcerts.paypal.test", sign_key, mid, mid_key, 0, -10 * 86400,
                       -86400, NULL);
    rogue = pki_cert("messageverificationcerts.paypal.test", rogue_key, NULL, NULL, 0, -3600, 5 * 86400, NULL);
    tls = pki_cert("127.0.0.1", tls_key, root, root_key, 0, -3600, 5 * 86400,
                   "IP:127.0.0.1,DNS:localhost");

    snprintf(path, sizeof path, "%s/certs", dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    pki_write(path, &root, 1, NULL);
    snprintf(path, sizeof path, "%s/certs/paypal-sign.pem", dir);
    pki_write(path, (X509 *[]){leaf, mid}, 2, NULL);
    snprintf(path, sizeof path, "%s/certs/expired.pem", dir);
    pki_write(path, (X509 *[]){expired, mid}, 2, NULL);
    snprintf(path, sizeof path, "%s/certs/untrusted.pem", dir);
    pki_write(path, &rogue, 1, NULL);
    snprintf(path, sizeof path, "%s/tls.pem", dir);
    pki_write(path, &tls, 1, tls_key);

    X509_free(root);
    X509_free(mid);
    X509_free(leaf);
    X509_free(expired);
    X509_free(rogue);
    X509_free(tls);
    EVP_PKEY_free(root_key);
    EVP_PKEY_free(mid_key);
    EVP_PKEY_free(tls_key);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Webhooks, signed as PayPal signs them                                    */
/* ------------------------------------------------------------------------ */

typedef struct hook {
    char id[64];          /* PAYPAL-TRANSMISSION-ID */
    char time[32];        /* PAYPAL-TRANSMISSION-TIME */
    char cert_url[256];   /* PAYPAL-CERT-URL */
    char algo[32];        /* PAYPAL-AUTH-ALGO */
    char sig[700];        /* PAYPAL-TRANSMISSION-SIG */
} hook;

static void rfc3339(time_t t, char out[32])
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* base64(RSA-SHA256(key, "id|time|webhook_id|crc32(body)")) into h->sig. */
static void hook_sign(hook *h, EVP_PKEY *key, const char *webhook_id, const char *body)
{
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    char msg[512];
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    snprintf(msg, sizeof msg, "%s|%s|%s|%lu", h->id, h->time, webhook_id,
             crc32(0L, (const Bytef *)body, (uInt)strlen(body)));
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    assert_true(siglen * 4 / 3 + 4 < sizeof h->sig);
    EVP_EncodeBlock((unsigned char *)h->sig, sig, (int)siglen);
}

/* A valid hook for `body`, transmitted now, signed by paypal-sign.pem. */
static void hook_valid(hook *h, const char *body)
{
    static unsigned counter;

    snprintf(h->id, sizeof h->id, "%08x-d67a-11e5-baa3-%012lx", ++counter, (unsigned long)getpid());
    rfc3339(time(NULL), h->time);
    snprintf(h->cert_url, sizeof h->cert_url, "https://127.0.0.1:%d/certs/paypal-sign.pem", https_port);
    snprintf(h->algo, sizeof h->algo, "SHA256withRSA");
    hook_sign(h, sign_key, WEBHOOK_ID, body);
}

static void payd_call(const char *method, const char *path, const char *auth, const char *body,
                      const char *const *headers, h_resp *r);

/* POSTs `body` to /v1/webhooks/<instance> with h's headers. */
static void hook_post(const char *instance, const hook *h, const char *body, h_resp *r)
{
    char path[128], l1[128], l2[64], l3[800], l4[320], l5[64];
    const char *headers[] = {l1, l2, l3, l4, l5, NULL};

    snprintf(path, sizeof path, "/v1/webhooks/%s", instance);
    snprintf(l1, sizeof l1, "PAYPAL-TRANSMISSION-ID: %s", h->id);
    snprintf(l2, sizeof l2, "PAYPAL-TRANSMISSION-TIME: %s", h->time);
    snprintf(l3, sizeof l3, "PAYPAL-TRANSMISSION-SIG: %s", h->sig);
    snprintf(l4, sizeof l4, "PAYPAL-CERT-URL: %s", h->cert_url);
    snprintf(l5, sizeof l5, "PAYPAL-AUTH-ALGO: %s", h->algo);
    payd_call("POST", path, NULL, body, headers, r);
}

/* ------------------------------------------------------------------------ */
/* payd and the fake                                                        */
/* ------------------------------------------------------------------------ */

/* A payd request whose answer must never contain the client secret. */
static void payd_call_on(h_payd *p, const char *method, const char *path, const char *auth,
                         const char *body, const char *const *headers, h_resp *r)
{
    h_req req = {.method = method, .path = path, .auth = auth, .body = body,
                 .content_type = body ? "application/json" : NULL, .headers = headers};

    assert_int_equal(h_request_ex(p, &req, r), 0);
    if (strstr(r->body, CLIENT_SECRET) || strstr(r->body, BAD_SECRET)) {
        print_error("the client secret leaked into %s %s: %s\n", method, path, r->body);
        fail();
    }
}

static void payd_call(const char *method, const char *path, const char *auth, const char *body,
                      const char *const *headers, h_resp *r)
{
    payd_call_on(&srv, method, path, auth, body, headers, r);
}

/* A control or API request to the fake. */
#define fake_call(method, path, body, headers, r) \
    h_fake_call(&fake, (method), (path), (body), (headers), (r))
#define fake_next(fault_json) h_fake_next(&fake, (fault_json))
/* The fake's records of `method` `path` ("" for all), as a new array. */
#define fake_requests(method, path) h_fake_requests(&fake, (method), (path))

static long long fake_counter(const char *name)
{
    h_resp r;
    long long v;

    fake_call("GET", "/_fake/counters", NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    v = h_rint(&r, name);
    h_resp_free(&r);
    assert_true(v != LLONG_MIN);
    return v;
}

/* The last record of `method` `path`, parsed body in *json (borrowed from
 * the returned array, which the caller frees). */
static json_t *fake_last(const char *method, const char *path, json_t **rec)
{
    json_t *all = fake_requests(method, path);

    assert_true(json_array_size(all) > 0);
    *rec = json_array_get(all, json_array_size(all) - 1);
    return all;
}

/* A token of our own from the fake, for acting as PayPal's other side. */
static void fake_token(char out[256])
{
    unsigned char basic[128];
    char line[200];
    const char *headers[] = {line, NULL};
    h_req req = {.method = "POST", .path = "/v1/oauth2/token",
                 .content_type = "application/x-www-form-urlencoded",
                 .body = "grant_type=client_credentials", .headers = headers};
    h_resp r;

    EVP_EncodeBlock(basic, (const unsigned char *)CLIENT_ID ":" CLIENT_SECRET,
                    (int)strlen(CLIENT_ID ":" CLIENT_SECRET));
    snprintf(line, sizeof line, "Authorization: Basic %s", basic);
    assert_int_equal(h_request_ex(&fake, &req, &r), 0);
    EXPECT_STATUS(&r, 200);
    snprintf(out, 256, "%s", h_rstr(&r, "access_token"));
    h_resp_free(&r);
}

/* Captures an approved order at the fake directly, as if the buyer's
 * browser (PayPal's JS SDK) had; the capture id into cap. */
static void fake_capture_order(const char *order_id, char cap[64])
{
    char tok[256], auth[300], path[128], key[128];
    const char *headers[] = {auth, key, "Prefer: return=representation", NULL};
    h_resp r;

    fake_token(tok);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    snprintf(key, sizeof key, "PayPal-Request-Id: test-buyer-capture-%s", order_id);
    snprintf(path, sizeof path, "/v2/checkout/orders/%s/capture", order_id);
    fake_call("POST", path, "{}", headers, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "COMPLETED");
    snprintf(cap, 64, "%s", h_rstr(&r, "purchase_units.0.payments.captures.0.id"));
    h_resp_free(&r);
}

/* A webhook body of `type` about fake resource `id`. malloc'd. */
static char *fake_event(const char *type, const char *id)
{
    char q[256];
    char *body;
    h_resp r;

    snprintf(q, sizeof q, "/_fake/event?type=%s&id=%s", type, id);
    fake_call("GET", q, NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    body = strdup(r.body);
    h_resp_free(&r);
    return body;
}

/* A fake-made event of `type` about `id`, validly signed, POSTed to
 * [gateway.paypal]: payd answers 200, reading it as a `want_type` event;
 * its verdict ("applied", "ignored") into `verdict`. */
static void event_post(const char *type, const char *id, const char *want_type, char verdict[32])
{
    char *ev = fake_event(type, id);
    hook h;
    h_resp r;

    hook_valid(&h, ev);
    hook_post("paypal", &h, ev, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "type"), want_type);
    snprintf(verdict, 32, "%s", h_rstr(&r, "status") ? h_rstr(&r, "status") : "(none)");
    h_resp_free(&r);
    free(ev);
}

/* event_post that payd must apply. */
static void event_applied(const char *type, const char *id, const char *want_type)
{
    char verdict[32];

    event_post(type, id, want_type, verdict);
    EXPECT_STR(verdict, "applied");
}

/* An order of `amount` minor units of `currency` by the merchant. */
static void order(const char *currency, long long amount, char id[64], char number[64])
{
    char body[256];
    h_resp r;

    snprintf(body, sizeof body,
             "{\"currency\":\"%s\",\"items\":[{\"name\":\"Tea\",\"quantity\":1,\"unit_amount\":%lld}]}",
             currency, amount);
    payd_call("POST", "/v1/orders", srv.merchant_auth, body, NULL, &r);
    EXPECT_STATUS(&r, 201);
    snprintf(id, 64, "%s", h_rstr(&r, "id"));
    if (number)
        snprintf(number, 64, "%s", h_rstr(&r, "number") ? h_rstr(&r, "number") : "");
    h_resp_free(&r);
}

/* POST /v1/payments for order `ord` on `gateway` (NULL: routed), with more
 * members in `extra` (",\"capture_method\":\"manual\"" or ""). */
static void pay_on(h_payd *p, const char *gateway, const char *ord, const char *extra, h_resp *r)
{
    char body[1024], gw[96] = "";

    if (gateway)
        snprintf(gw, sizeof gw, ",\"gateway\":\"%s\"", gateway);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\"%s,\"payment_method\":\"paypal\",\"return_url\":\"" RETURN_URL "\"%s}",
             ord, gw, extra);
    payd_call_on(p, "POST", "/v1/payments", p->merchant_auth, body, NULL, r);
}

static void pay(const char *gateway, const char *ord, const char *extra, h_resp *r)
{
    pay_on(&srv, gateway, ord, extra, r);
}

/* A payment on `gateway` in requires_action; its id and PayPal order id. */
static void pay_pending(const char *gateway, const char *ord, const char *extra, char pay_id[64],
                        char pp_order[64])
{
    h_resp r;

    pay(gateway, ord, extra, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "redirect_url");
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    snprintf(pp_order, 64, "%s", h_rstr(&r, "provider_ref") ? h_rstr(&r, "provider_ref") : "");
    h_resp_free(&r);
}

/* The buyer follows the payment's approve link at the fake: 302 back to
 * the shop's return_url. */
static void buyer_approves(const char *pay_id)
{
    char path[128];
    const char *url;
    h_resp r, b;

    snprintf(path, sizeof path, "/v1/payments/%s", pay_id);
    payd_call("GET", path, srv.admin_auth, NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    url = h_rstr(&r, "next_action.url");
    assert_non_null(url);
    if (strncmp(url, fake.base_url, strlen(fake.base_url)) != 0) {
        print_error("the approve link %s does not point at the fake %s\n", url, fake.base_url);
        fail();
    }
    fake_call("GET", url + strlen(fake.base_url), NULL, NULL, &b);
    EXPECT_STATUS(&b, 302);
    assert_non_null(h_resp_header(&b, "Location"));
    assert_true(strncmp(h_resp_header(&b, "Location"), RETURN_URL, strlen(RETURN_URL)) == 0);
    h_resp_free(&b);
    h_resp_free(&r);
}

/* A new USD order of `amount` and a payment on [gateway.paypal] (more
 * members in `extra`) that the buyer approved at the fake: the ids into
 * ord, pay_id and pp_order. */
static void approved_payment(long long amount, const char *extra, char ord[64], char pay_id[64],
                             char pp_order[64])
{
    order("USD", amount, ord, NULL);
    pay_pending("paypal", ord, extra, pay_id, pp_order);
    buyer_approves(pay_id);
}

static void confirm(const char *pay_id, h_resp *r)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/payments/%s/confirm", pay_id);
    payd_call("POST", path, srv.merchant_auth, "{}", NULL, r);
}

/* confirm() answers 200 with the payment `want`. */
static void confirm_to(const char *pay_id, const char *want)
{
    h_resp r;

    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), want);
    h_resp_free(&r);
}

/* confirm() answers 200 sending the buyer back to PayPal to approve
 * `pp_order` again. */
static void confirm_sends_buyer_back(const char *pay_id, const char *pp_order)
{
    h_resp r;

    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    EXPECT_STR(h_rstr(&r, "next_action.type"), "redirect_url");
    assert_non_null(strstr(h_rstr(&r, "next_action.url"), pp_order));
    h_resp_free(&r);
}

static void payment_get(const char *id, h_resp *r)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/payments/%s", id);
    payd_call("GET", path, srv.admin_auth, NULL, NULL, r);
    EXPECT_STATUS(r, 200);
}

#define payment_status(id, out) h_status_of(&srv, "payments", (id), (out))
/* Polls until payment `id` is `want`; fails naming the last status. */
#define wait_payment(id, want) EXPECT_REACHES(&srv, "payments", (id), (want), POLL_MS)

static long long ledger_sum(const char *pay_id, const char *type)
{
    long long count = 0, sum = 0;

    h_ledger(&srv, pay_id, type, &count, &sum);
    return sum;
}

static long long webhook_rows(void)
{
    return h_sql_intf(&srv, "SELECT count(*) FROM webhook_events");
}

/* How many captures the fake holds for PayPal order `pp_order`. */
static size_t fake_captures_of(const char *pp_order)
{
    char path[128];
    h_resp r;
    size_t n;

    snprintf(path, sizeof path, "/_fake/objects");
    fake_call("GET", path, NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    {
        json_t *o;
        size_t i;

        n = 0;
        json_array_foreach(h_jpath(r.json, "orders"), i, o) {
            if (strcmp(json_string_value(json_object_get(o, "id")), pp_order) == 0)
                n = json_array_size(h_jpath(o, "purchase_units.0.payments.captures"));
        }
    }
    h_resp_free(&r);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                    */
/* ------------------------------------------------------------------------ */

static int fake_start(void)
{
    char bin[PATH_MAX], certs[PATH_MAX + 8], tls[PATH_MAX + 8], line[256];
    const char *build = h_env("PAYD_BUILD");
    const char *argv[] = {bin, "0", "0", certs, tls, NULL};
    const char *env[] = {"PAYPAL_FAKE_CLIENT_ID=" CLIENT_ID,
                         "PAYPAL_FAKE_CLIENT_SECRET=" CLIENT_SECRET, NULL};
    int port = 0;

    if (build == NULL)
        return -1;
    snprintf(bin, sizeof bin, "%s/fakes/paypal_fake", build);
    snprintf(certs, sizeof certs, "%s/certs", dir);
    snprintf(tls, sizeof tls, "%s/tls.pem", dir);
    /* "paypal_fake listening on 127.0.0.1:PORT https 127.0.0.1:PORT" */
    fake_pid = h_fake_spawn(argv, env, line, sizeof line);
    if (fake_pid < 0)
        return -1;
    if (sscanf(line, "paypal_fake listening on 127.0.0.1:%d https 127.0.0.1:%d", &port,
               &https_port) != 2 || port <= 0 || https_port <= 0) {
        fprintf(stderr, "# paypal_fake did not start: \"%s\"\n", line);
        h_fake_stop(&fake_pid);
        return -1;
    }
    snprintf(fake.base_url, sizeof fake.base_url, "http://127.0.0.1:%d", port);
    return 0;
}

/* The [gateway.NAME] section of a PayPal instance on the fake. */
static void paypal_section(FILE *f, const char *name, const char *extra)
{
    fprintf(f,
            "[gateway.%s]\n"
            "module = paypal\n"
            "api_base = %s\n"
            "client_id = " CLIENT_ID "\n"
            "client_secret = env:PAYD_TEST_PAYPAL_SECRET\n"
            "webhook_id = " WEBHOOK_ID "\n"
            "cert_hosts = 127.0.0.1:%d\n"
            "cert_ca_file = %s/ca.pem\n"
            "brand_name = payd test shop\n"
            "%s",
            name, fake.base_url, https_port, dir, extra);
}

/* payd's config: [server] extras and the gateway sections. malloc'd. */
static void payd_config(char **server_extra, char **extra)
{
    size_t len = 0;
    FILE *f;

    assert_true(asprintf(server_extra, "http_timeout_ms = 1000\nhttp_ca_file = %s/ca.pem\n", dir) > 0);
    f = open_memstream(extra, &len);
    fprintf(f,
            "[payments]\n"
            "janitor_interval_ms = 100\n"
            "janitor_schedule = 1,1,1\n"
            "janitor_max_attempts = 20\n"
            "[gateway.mock]\n"
            "module = mock\n");
    paypal_section(f, "paypal", "");
    paypal_section(f, "paypal_api", "webhook_verify = api\n");
    fprintf(f,
            "[gateway.paypal_badsecret]\n"
            "module = paypal\n"
            "api_base = %s\n"
            "client_id = " CLIENT_ID "\n"
            "client_secret = env:PAYD_TEST_PAYPAL_BADSECRET\n"
            "webhook_id = " WEBHOOK_ID "\n",
            fake.base_url);
    fprintf(f,
            "[routing]\n"
            "default = mock\n"
            "currency.JPY = paypal\n");
    fclose(f);
}

static int setup(void **state)
{
    char *server_extra = NULL, *extra = NULL;
    int rc;

    (void)state;
    if (h_init() != 0 || h_tmpdir(dir, sizeof dir) != 0 || pki_make() != 0 || fake_start() != 0)
        return -1;
    setenv("PAYD_TEST_PAYPAL_SECRET", CLIENT_SECRET, 1);
    setenv("PAYD_TEST_PAYPAL_BADSECRET", BAD_SECRET, 1);
    payd_config(&server_extra, &extra);
    {
        h_payd_opts o = {.threads = 16, .pool = 16, .server_extra = server_extra, .extra = extra};

        rc = h_payd_start(&srv, &o);
    }
    free(server_extra);
    free(extra);
    return rc;
}

static int teardown(void **state)
{
    int rc;

    (void)state;
    rc = h_payd_stop(&srv);
    h_fake_stop(&fake_pid);
    EVP_PKEY_free(sign_key);
    EVP_PKEY_free(rogue_key);
    return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Checkout                                                                 */
/* ------------------------------------------------------------------------ */

/* The request record's string at `path` ("json.intent", "headers.Prefer"). */
static const char *rec_str(json_t *rec, const char *path)
{
    return json_string_value(h_jpath(rec, path));
}

/* The last recorded POST whose path contains `part`, from all records
 * (array owned by the caller via *all). */
static json_t *last_post_containing(const char *part, json_t **all)
{
    json_t *found = NULL, *rec;
    size_t i;

    *all = fake_requests("POST", "");
    json_array_foreach(*all, i, rec)
        if (strstr(rec_str(rec, "path"), part))
            found = rec;
    if (found == NULL) {
        print_error("the fake saw no POST to ...%s\n", part);
        fail();
    }
    return found;
}

static void test_checkout_approve_confirm_partial_refund_and_refunded_webhook(void **state)
{
    char ord[64], number[64], pay_id[64], pp_order[64], re_id[64], re_ref[64], key[128], body[256];
    char status[40], verdict[32];
    json_t *all, *rec;
    h_resp r;

    (void)state;
    order("USD", 5000, ord, number);
    pay_pending("paypal", ord, "", pay_id, pp_order);
    assert_true(strlen(pp_order) > 0);

    /* The order PayPal was asked for. */
    all = fake_last("POST", "/v2/checkout/orders", &rec);
    snprintf(key, sizeof key, "payd-%s-create-1", pay_id);
    EXPECT_STR(rec_str(rec, "headers.PayPal-Request-Id"), key);
    EXPECT_STR(rec_str(rec, "headers.Prefer"), "return=representation");
    EXPECT_STR(rec_str(rec, "auth"), "bearer");
    assert_true(json_is_true(h_jpath(rec, "auth_ok")));
    EXPECT_STR(rec_str(rec, "json.intent"), "CAPTURE");
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.amount.currency_code"), "USD");
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.amount.value"), "50.00");
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.custom_id"), pay_id);
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.invoice_id"), number);
    EXPECT_STR(rec_str(rec, "json.payment_source.paypal.experience_context.return_url"), RETURN_URL);
    EXPECT_STR(rec_str(rec, "json.payment_source.paypal.experience_context.user_action"), "PAY_NOW");
    EXPECT_STR(rec_str(rec, "json.payment_source.paypal.experience_context.brand_name"), "payd test shop");
    json_decref(all);

    /* The buyer has not approved yet: confirming leaves it requires_action. */
    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    assert_non_null(strstr(h_rstr(&r, "next_action.url"), pp_order));
    h_resp_free(&r);

    buyer_approves(pay_id);
    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 5000);
    h_resp_free(&r);
    assert_int_equal(ledger_sum(pay_id, "charge"), 5000);
    snprintf(body, sizeof body, "/v2/checkout/orders/%s/capture", pp_order);
    rec = last_post_containing(body, &all);
    snprintf(key, sizeof key, "payd-%s-confirm-", pay_id);
    assert_true(strncmp(rec_str(rec, "headers.PayPal-Request-Id"), key, strlen(key)) == 0);
    assert_int_equal(json_integer_value(json_object_get(rec, "status")), 201);
    json_decref(all);
    snprintf(body, sizeof body, "/v1/orders/%s", ord);
    payd_call("GET", body, srv.admin_auth, NULL, NULL, &r);
    EXPECT_STR(h_rstr(&r, "status"), "paid");
    h_resp_free(&r);

    /* A partial refund of the capture. */
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1500,\"reason\":\"requested_by_customer\"}",
             pay_id);
    payd_call("POST", "/v1/refunds", srv.merchant_auth, body, NULL, &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    snprintf(re_id, sizeof re_id, "%s", h_rstr(&r, "id"));
    snprintf(re_ref, sizeof re_ref, "%s", h_rstr(&r, "provider_ref") ? h_rstr(&r, "provider_ref") : "");
    h_resp_free(&r);
    rec = last_post_containing("/refund", &all);
    EXPECT_STR(rec_str(rec, "json.amount.value"), "15.00");
    EXPECT_STR(rec_str(rec, "json.amount.currency_code"), "USD");
    EXPECT_STR(rec_str(rec, "json.custom_id"), re_id);
    assert_non_null(strstr(rec_str(rec, "headers.PayPal-Request-Id"), re_id));
    assert_int_equal(json_integer_value(json_object_get(rec, "status")), 201);
    json_decref(all);
    assert_int_equal(ledger_sum(pay_id, "refund"), 1500);
    payment_status(pay_id, status);
    EXPECT_STR(status, "partially_refunded");

    /* PayPal's PAYMENT.CAPTURE.REFUNDED about it: recorded, nothing left to
     * apply (the refund already succeeded), no second refund. */
    event_post("PAYMENT.CAPTURE.REFUNDED", re_ref, "refund.succeeded", verdict);
    EXPECT_STR(verdict, "ignored");
    assert_int_equal(ledger_sum(pay_id, "refund"), 1500);
    assert_int_equal(h_sql_intf(&srv, "SELECT amount_refunded FROM payments WHERE id = '%s'", pay_id), 1500);
    assert_int_equal(h_events_of(&srv, re_id, "refund.succeeded"), 1);
    snprintf(body, sizeof body, "/v1/refunds/%s", re_id);
    payd_call("GET", body, srv.admin_auth, NULL, NULL, &r);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
}

static void test_pending_refund_is_completed_by_the_signed_refunded_webhook(void **state)
{
    char ord[64], pay_id[64], pp_order[64], re_id[64], re_ref[64], body[256], status[40];
    h_resp r;

    (void)state;
    approved_payment(3000, "", ord, pay_id, pp_order);
    confirm(pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);

    fake_next("{\"action\":\"refund_pending\",\"path\":\"/refund\"}");
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1000}", pay_id);
    payd_call("POST", "/v1/refunds", srv.merchant_auth, body, NULL, &r);
    EXPECT_STATUS(&r, 202); /* accepted, not finished */
    EXPECT_STR(h_rstr(&r, "status"), "pending");
    snprintf(re_id, sizeof re_id, "%s", h_rstr(&r, "id"));
    snprintf(re_ref, sizeof re_ref, "%s", h_rstr(&r, "provider_ref") ? h_rstr(&r, "provider_ref") : "");
    h_resp_free(&r);
    assert_int_equal(ledger_sum(pay_id, "refund"), 0);

    /* PayPal finishes the refund and says so. */
    snprintf(body, sizeof body, "/_fake/refunds/%s/complete", re_ref);
    fake_call("POST", body, NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    event_applied("PAYMENT.CAPTURE.REFUNDED", re_ref, "refund.succeeded");
    snprintf(body, sizeof body, "/v1/refunds/%s", re_id);
    payd_call("GET", body, srv.admin_auth, NULL, NULL, &r);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    assert_int_equal(ledger_sum(pay_id, "refund"), 1000);
    assert_int_equal(h_events_of(&srv, re_id, "refund.succeeded"), 1);
    payment_status(pay_id, status);
    EXPECT_STR(status, "partially_refunded");
}

static void test_manual_capture_authorizes_then_captures_part(void **state)
{
    char ord[64], pay_id[64], pp_order[64], path[160];
    json_t *all, *rec;
    h_resp r;

    (void)state;
    order("USD", 4000, ord, NULL);
    pay_pending("paypal", ord, ",\"capture_method\":\"manual\"", pay_id, pp_order);
    all = fake_last("POST", "/v2/checkout/orders", &rec);
    EXPECT_STR(rec_str(rec, "json.intent"), "AUTHORIZE");
    json_decref(all);
    buyer_approves(pay_id);

    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    assert_int_equal(h_rint(&r, "amount_capturable"), 4000);
    h_resp_free(&r);
    snprintf(path, sizeof path, "/v2/checkout/orders/%s/authorize", pp_order);
    all = fake_requests("POST", path);
    assert_int_equal(json_array_size(all), 1);
    json_decref(all);

    snprintf(path, sizeof path, "/v1/payments/%s/capture", pay_id);
    payd_call("POST", path, srv.merchant_auth, "{\"amount\":2500}", NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    assert_int_equal(h_rint(&r, "amount_captured"), 2500);
    h_resp_free(&r);
    rec = last_post_containing("/v2/payments/authorizations/", &all);
    assert_non_null(strstr(rec_str(rec, "path"), "/capture"));
    EXPECT_STR(rec_str(rec, "json.amount.value"), "25.00");
    EXPECT_STR(rec_str(rec, "json.amount.currency_code"), "USD");
    assert_true(json_is_true(h_jpath(rec, "json.final_capture")));
    assert_int_equal(json_integer_value(json_object_get(rec, "status")), 201);
    json_decref(all);
    assert_int_equal(h_sql_intf(&srv, "SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s'"
                                      " AND entry_type IN ('charge', 'capture')", pay_id),
                     2500);
}

static void test_cancel_of_an_authorized_payment_voids_the_authorization(void **state)
{
    char ord[64], pay_id[64], pp_order[64], path[160];
    json_t *all, *rec;
    h_resp r;

    (void)state;
    approved_payment(2200, ",\"capture_method\":\"manual\"", ord, pay_id, pp_order);
    confirm(pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    h_resp_free(&r);

    snprintf(path, sizeof path, "/v1/payments/%s/cancel", pay_id);
    payd_call("POST", path, srv.merchant_auth, "{}", NULL, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "canceled");
    h_resp_free(&r);
    rec = last_post_containing("/void", &all);
    /* Prefer: return=representation: PayPal answers 200 with the voided
     * authorization (204 only for return=minimal). */
    assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
    json_decref(all);
    fake_call("GET", "/_fake/objects", NULL, NULL, &r);
    {
        json_t *au;
        size_t i;
        int voided = 0;

        json_array_foreach(h_jpath(r.json, "authorizations"), i, au)
            if (json_string_value(json_object_get(au, "custom_id")) &&
                !strcmp(json_string_value(json_object_get(au, "custom_id")), pay_id))
                voided = !strcmp(json_string_value(json_object_get(au, "status")), "VOIDED");
        assert_true(voided);
    }
    h_resp_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Currencies and routing                                                   */
/* ------------------------------------------------------------------------ */

static void test_jpy_order_without_gateway_routes_to_paypal_with_an_integer_value(void **state)
{
    char ord[64];
    json_t *all, *rec;
    h_resp r;

    (void)state;
    order("JPY", 500, ord, NULL);
    pay(NULL, ord, "", &r);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "gateway"), "paypal");
    EXPECT_STR(h_rstr(&r, "status"), "requires_action");
    h_resp_free(&r);
    all = fake_last("POST", "/v2/checkout/orders", &rec);
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.amount.currency_code"), "JPY");
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.amount.value"), "500");
    json_decref(all);

    /* Other currencies still go to the default. */
    order("EUR", 500, ord, NULL);
    {
        char body[160];

        snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\"}", ord);
        payd_call("POST", "/v1/payments", srv.merchant_auth, body, NULL, &r);
    }
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "gateway"), "mock");
    h_resp_free(&r);
}

static void test_kwd_amount_is_sent_with_three_decimals(void **state)
{
    char ord[64];
    json_t *all, *rec;
    h_resp r;

    (void)state;
    order("KWD", 1234, ord, NULL);
    pay("paypal", ord, "", &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);
    all = fake_last("POST", "/v2/checkout/orders", &rec);
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.amount.currency_code"), "KWD");
    EXPECT_STR(rec_str(rec, "json.purchase_units.0.amount.value"), "1.234");
    json_decref(all);
}

/* ------------------------------------------------------------------------ */
/* Webhook verification                                                     */
/* ------------------------------------------------------------------------ */

/* A payment on `gateway` that PayPal captured behind payd's back (the
 * buyer's browser did); payd still says requires_action. The body of
 * PayPal's PAYMENT.CAPTURE.COMPLETED about it (malloc'd). */
static char *captured_elsewhere(const char *gateway, long long amount, char pay_id[64])
{
    char ord[64], pp_order[64], cap[64];

    order("USD", amount, ord, NULL);
    pay_pending(gateway, ord, "", pay_id, pp_order);
    buyer_approves(pay_id);
    fake_capture_order(pp_order, cap);
    return fake_event("PAYMENT.CAPTURE.COMPLETED", cap);
}

/* A forged or broken hook must be 400 signature_invalid and leave the
 * payment and the stored webhooks as they were. */
static void expect_rejected(const char *instance, const char *what, const hook *h, const char *body,
                            const char *pay_id)
{
    long long rows = webhook_rows();
    char status[40];
    h_resp r;

    hook_post(instance, h, body, &r);
    if (r.status != 400 || !h_err_code(&r) || strcmp(h_err_code(&r), "signature_invalid") != 0) {
        print_error("%s: expected 400 signature_invalid, got %ld %s\n", what, r.status, r.body);
        h_resp_free(&r);
        fail();
    }
    h_resp_free(&r);
    assert_int_equal(webhook_rows(), rows);
    payment_status(pay_id, status);
    if (strcmp(status, "requires_action") != 0) {
        print_error("%s: the payment moved to %s\n", what, status);
        fail();
    }
}

static void test_signed_webhook_is_accepted_and_each_forgery_is_rejected_without_effect(void **state)
{
    char pay_id[64], status[40], *body = captured_elsewhere("paypal", 1800, pay_id), *tampered, *p;
    long long fetches;
    hook h;
    h_resp r;

    (void)state;
    /* A changed body (the amount), signature of the original. */
    tampered = strdup(body);
    p = strstr(tampered, "\"18.00\"");
    assert_non_null(p);
    p[1] = '9';
    hook_valid(&h, body);
    expect_rejected("paypal", "changed body", &h, tampered, pay_id);
    free(tampered);

    /* Signed for another webhook. */
    hook_valid(&h, body);
    hook_sign(&h, sign_key, "3X908176VB1234567WEBHOOKX", body);
    expect_rejected("paypal", "wrong webhook_id", &h, body, pay_id);

    /* The certificate from a host that is not allowed: localhost serves
     * the very same valid chain, so only the allowlist can refuse it, and
     * nothing is fetched. Plain http is refused too. */
    fetches = fake_counter("cert_fetches");
    hook_valid(&h, body);
    snprintf(h.cert_url, sizeof h.cert_url, "https://localhost:%d/certs/paypal-sign.pem", https_port);
    expect_rejected("paypal", "cert URL on a foreign host", &h, body, pay_id);
    hook_valid(&h, body);
    snprintf(h.cert_url, sizeof h.cert_url, "http://127.0.0.1:%d/certs/paypal-sign.pem", https_port);
    expect_rejected("paypal", "cert URL over http", &h, body, pay_id);
    assert_int_equal(fake_counter("cert_fetches"), fetches);

    /* An expired certificate (same key, same issuer). */
    hook_valid(&h, body);
    snprintf(h.cert_url, sizeof h.cert_url, "https://127.0.0.1:%d/certs/expired.pem", https_port);
    expect_rejected("paypal", "expired certificate", &h, body, pay_id);

    /* A certificate that does not chain to the trusted CA. */
    hook_valid(&h, body);
    snprintf(h.cert_url, sizeof h.cert_url, "https://127.0.0.1:%d/certs/untrusted.pem", https_port);
    hook_sign(&h, rogue_key, WEBHOOK_ID, body);
    expect_rejected("paypal", "untrusted certificate", &h, body, pay_id);

    /* A stale transmission time, and one from the future, validly signed. */
    hook_valid(&h, body);
    rfc3339(time(NULL) - 3600, h.time);
    hook_sign(&h, sign_key, WEBHOOK_ID, body);
    expect_rejected("paypal", "stale transmission time", &h, body, pay_id);
    hook_valid(&h, body);
    rfc3339(time(NULL) + 3600, h.time);
    hook_sign(&h, sign_key, WEBHOOK_ID, body);
    expect_rejected("paypal", "future transmission time", &h, body, pay_id);

    /* Another algorithm named (the signature itself is SHA-256). */
    hook_valid(&h, body);
    snprintf(h.algo, sizeof h.algo, "SHA1withRSA");
    expect_rejected("paypal", "wrong algorithm", &h, body, pay_id);

    /* The genuine event. */
    hook_valid(&h, body);
    hook_post("paypal", &h, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "applied");
    EXPECT_STR(h_rstr(&r, "type"), "payment.succeeded");
    h_resp_free(&r);
    payment_status(pay_id, status);
    EXPECT_STR(status, "succeeded");
    assert_int_equal(ledger_sum(pay_id, "charge"), 1800);

    /* PayPal delivers it again (a new transmission): a duplicate, and the
     * certificate comes from the cache. */
    fetches = fake_counter("cert_fetches");
    assert_true(fetches >= 1);
    hook_valid(&h, body);
    hook_post("paypal", &h, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "duplicate");
    h_resp_free(&r);
    assert_int_equal(fake_counter("cert_fetches"), fetches);
    assert_int_equal(ledger_sum(pay_id, "charge"), 1800);
    free(body);
}

static void test_api_verification_asks_paypal_and_obeys_its_verdict(void **state)
{
    char pay_id[64], status[40], *body = captured_elsewhere("paypal_api", 2700, pay_id), *tampered, *p;
    long long calls = fake_counter("verify_calls");
    json_t *all, *rec, *ev = json_loads(body, 0, NULL);
    hook h;
    h_resp r;

    (void)state;
    assert_non_null(ev);
    /* PayPal says FAILURE for a changed body and for another webhook id. */
    tampered = strdup(body);
    p = strstr(tampered, "\"27.00\"");
    assert_non_null(p);
    p[1] = '9';
    hook_valid(&h, body);
    expect_rejected("paypal_api", "changed body (api)", &h, tampered, pay_id);
    free(tampered);
    hook_valid(&h, body);
    hook_sign(&h, sign_key, "3X908176VB1234567WEBHOOKX", body);
    expect_rejected("paypal_api", "wrong webhook_id (api)", &h, body, pay_id);

    hook_valid(&h, body);
    hook_post("paypal_api", &h, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "applied");
    h_resp_free(&r);
    payment_status(pay_id, status);
    EXPECT_STR(status, "succeeded");
    assert_true(fake_counter("verify_calls") >= calls + 2);

    /* What payd asked PayPal: the headers and the event, for our webhook. */
    all = fake_last("POST", "/v1/notifications/verify-webhook-signature", &rec);
    EXPECT_STR(rec_str(rec, "auth"), "bearer");
    EXPECT_STR(rec_str(rec, "json.webhook_id"), WEBHOOK_ID);
    EXPECT_STR(rec_str(rec, "json.transmission_id"), h.id);
    EXPECT_STR(rec_str(rec, "json.transmission_sig"), h.sig);
    EXPECT_STR(rec_str(rec, "json.cert_url"), h.cert_url);
    EXPECT_STR(rec_str(rec, "json.auth_algo"), "SHA256withRSA");
    EXPECT_STR(rec_str(rec, "json.webhook_event.id"), json_string_value(json_object_get(ev, "id")));
    assert_int_equal(json_integer_value(json_object_get(rec, "status")), 200);
    json_decref(all);
    json_decref(ev);
    free(body);
}

/* ------------------------------------------------------------------------ */
/* Declines, tokens, transient failures                                     */
/* ------------------------------------------------------------------------ */

static void test_instrument_declined_is_402_card_declined(void **state)
{
    char ord[64], pay_id[64], pp_order[64], status[40];
    h_resp r;

    (void)state;
    approved_payment(1200, "", ord, pay_id, pp_order);
    fake_next("{\"action\":\"decline\",\"path\":\"/capture\"}");
    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 402);
    EXPECT_STR(h_rstr(&r, "error.type"), "card_error");
    EXPECT_STR(h_rstr(&r, "error.code"), "card_declined");
    h_resp_free(&r);
    payment_status(pay_id, status);
    EXPECT_STR(status, "failed");
    assert_int_equal(ledger_sum(pay_id, "charge"), 0);
}

static void test_decline_with_payer_action_sends_the_buyer_back_then_succeeds(void **state)
{
    char ord[64], pay_id[64], pp_order[64];

    (void)state;
    approved_payment(1300, "", ord, pay_id, pp_order);
    fake_next("{\"action\":\"decline_retry\",\"path\":\"/capture\"}");
    confirm_sends_buyer_back(pay_id, pp_order);

    /* The buyer picks another funding source at PayPal. */
    buyer_approves(pay_id);
    confirm_to(pay_id, "succeeded");
    assert_int_equal(fake_captures_of(pp_order), 1);
}

static void test_payer_action_required_on_capture_sends_the_buyer_back(void **state)
{
    char ord[64], pay_id[64], pp_order[64];

    (void)state;
    approved_payment(1350, "", ord, pay_id, pp_order);
    fake_next("{\"action\":\"payer_action_required\",\"path\":\"/capture\"}");
    confirm_sends_buyer_back(pay_id, pp_order);
    assert_int_equal(fake_captures_of(pp_order), 0);
}

static void test_expired_token_is_refreshed_once_and_the_call_retried(void **state)
{
    char ord[64], pay_id[64], pp_order[64], key[128];
    long long tokens;
    json_t *all, *rec;
    size_t i, n401 = 0, n201 = 0;

    (void)state;
    order("USD", 1400, ord, NULL);
    pay_pending("paypal", ord, "", pay_id, pp_order); /* a token is cached now */
    tokens = fake_counter("token_requests");

    order("USD", 1500, ord, NULL);
    fake_next("{\"action\":\"token_expired\",\"path\":\"/v2/checkout/orders\"}");
    pay_pending("paypal", ord, "", pay_id, pp_order);
    assert_int_equal(fake_counter("token_requests"), tokens + 1);
    snprintf(key, sizeof key, "payd-%s-create-1", pay_id);
    all = fake_requests("POST", "/v2/checkout/orders");
    json_array_foreach(all, i, rec) {
        if (!rec_str(rec, "headers.PayPal-Request-Id") || strcmp(rec_str(rec, "headers.PayPal-Request-Id"), key))
            continue;
        n401 += json_integer_value(json_object_get(rec, "status")) == 401;
        n201 += json_integer_value(json_object_get(rec, "status")) == 201;
    }
    json_decref(all);
    assert_int_equal(n401, 1);
    assert_int_equal(n201, 1);
}

static void test_token_is_renewed_before_paypal_expires_it(void **state)
{
    char ord[64], pay_id[64], pp_order[64];
    long long tokens, unauthorized;
    h_resp r;

    (void)state;
    /* From now on PayPal issues tokens that live 6 s (payd keeps a token
     * until 60 s before its end, or for half its life when it is that
     * short). A 401 makes payd take such a token now. */
    fake_call("POST", "/_fake/config", "{\"expires_in\":6}", NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    order("USD", 1410, ord, NULL);
    fake_next("{\"action\":\"token_expired\",\"path\":\"/v2/checkout/orders\"}");
    pay_pending("paypal", ord, "", pay_id, pp_order);
    tokens = fake_counter("token_requests");
    unauthorized = fake_counter("unauthorized");

    /* 4 s later the token is still good at PayPal but past payd's margin:
     * a new one is fetched first, and no call is refused. */
    h_sleep_ms(4000);
    order("USD", 1420, ord, NULL);
    pay_pending("paypal", ord, "", pay_id, pp_order);
    fake_call("POST", "/_fake/config", "{\"expires_in\":32400}", NULL, &r);
    h_resp_free(&r);
    assert_int_equal(fake_counter("token_requests"), tokens + 1);
    assert_int_equal(fake_counter("unauthorized"), unauthorized);
}

/* The records of `method` `path` made with PayPal-Request-Id `key`. */
static json_t *records_with_key(const char *method, const char *path, const char *key_prefix)
{
    json_t *all = fake_requests(method, path), *out = json_array(), *rec;
    size_t i;

    json_array_foreach(all, i, rec) {
        const char *k = rec_str(rec, "headers.PayPal-Request-Id");

        if (k && strncmp(k, key_prefix, strlen(key_prefix)) == 0)
            json_array_append(out, rec);
    }
    json_decref(all);
    return out;
}

static void test_429_on_create_is_202_outcome_unknown_then_janitor_reaches_requires_action(void **state)
{
    char ord[64], pay_id[64], key[128];
    json_t *recs, *rec;
    size_t i;
    h_resp r;

    (void)state;
    order("USD", 1600, ord, NULL);
    fake_next("{\"action\":\"status_429\",\"path\":\"/v2/checkout/orders\"}");
    pay("paypal", ord, "", &r);
    EXPECT_STATUS(&r, 202);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_true(json_is_true(h_jpath(r.json, "outcome_unknown")));
    snprintf(pay_id, sizeof pay_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    wait_payment(pay_id, "requires_action");

    snprintf(key, sizeof key, "payd-%s-create-1", pay_id);
    recs = records_with_key("POST", "/v2/checkout/orders", key);
    assert_true(json_array_size(recs) >= 2);
    assert_int_equal(json_integer_value(h_jpath(recs, "0.status")), 429);
    json_array_foreach(recs, i, rec)
        EXPECT_STR(rec_str(rec, "headers.PayPal-Request-Id"), key);
    json_decref(recs);
    payment_get(pay_id, &r);
    assert_false(json_is_true(h_jpath(r.json, "outcome_unknown")));
    assert_non_null(h_rstr(&r, "provider_ref"));
    h_resp_free(&r);
}

/* A fault on the capture: 202 outcome unknown, then the janitor finishes
 * the confirm with the same PayPal-Request-Id and PayPal holds exactly one
 * capture. */
static void capture_fault_resolves(const char *fault_json, long long amount)
{
    char ord[64], pay_id[64], pp_order[64], path[160], key[128];
    json_t *recs, *rec;
    size_t i;
    h_resp r;

    order("USD", amount, ord, NULL);
    pay_pending("paypal", ord, "", pay_id, pp_order);
    buyer_approves(pay_id);
    fake_next(fault_json);
    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 202);
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_true(json_is_true(h_jpath(r.json, "outcome_unknown")));
    h_resp_free(&r);
    wait_payment(pay_id, "succeeded");

    assert_int_equal(fake_captures_of(pp_order), 1);
    assert_int_equal(ledger_sum(pay_id, "charge"), amount);
    snprintf(path, sizeof path, "/v2/checkout/orders/%s/capture", pp_order);
    snprintf(key, sizeof key, "payd-%s-confirm-", pay_id);
    recs = records_with_key("POST", path, key);
    assert_true(json_array_size(recs) >= 2);
    json_array_foreach(recs, i, rec)
        EXPECT_STR(rec_str(rec, "headers.PayPal-Request-Id"), rec_str(json_array_get(recs, 0), "headers.PayPal-Request-Id"));
    json_decref(recs);
}

static void test_503_on_capture_is_202_then_janitor_captures_once(void **state)
{
    (void)state;
    capture_fault_resolves("{\"action\":\"status_503\",\"path\":\"/capture\"}", 1700);
}

static void test_500_on_capture_is_202_then_janitor_captures_once(void **state)
{
    (void)state;
    capture_fault_resolves("{\"action\":\"status_500\",\"path\":\"/capture\"}", 1750);
}

static void test_timeout_on_capture_retries_with_the_same_request_id_and_captures_once(void **state)
{
    int64_t started = h_now_ms();

    (void)state;
    /* payd gives up after 1 s; PayPal captures after 3 s anyway. */
    capture_fault_resolves("{\"action\":\"hang\",\"ms\":3000,\"path\":\"/capture\"}", 1900);
    assert_true(h_now_ms() - started >= 3000);
}

/* ------------------------------------------------------------------------ */
/* What PayPal does later on its own                                        */
/* ------------------------------------------------------------------------ */

/* The first capture of PayPal order `pp_order` at the fake, into cap. */
static void fake_capture_id(const char *pp_order, char cap[64])
{
    json_t *o;
    size_t i;
    h_resp r;

    cap[0] = '\0';
    fake_call("GET", "/_fake/objects", NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    json_array_foreach(h_jpath(r.json, "orders"), i, o)
        if (!strcmp(json_string_value(json_object_get(o, "id")), pp_order) &&
            h_jpath(o, "purchase_units.0.payments.captures.0.id"))
            snprintf(cap, 64, "%s", json_string_value(h_jpath(o, "purchase_units.0.payments.captures.0.id")));
    h_resp_free(&r);
    assert_true(cap[0] != '\0');
}

/* POST /_fake/captures|refunds/{id}/{action}. */
static void fake_later(const char *kind, const char *id, const char *action)
{
    char path[160];
    h_resp r;

    snprintf(path, sizeof path, "/_fake/%s/%s/%s", kind, id, action);
    fake_call("POST", path, NULL, NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* How many GET requests the fake saw about PayPal order `pp_order` or
 * capture `cap` (payd's janitor retrieving them). */
static size_t fake_gets_about(const char *pp_order, const char *cap)
{
    json_t *all = fake_requests("GET", ""), *rec;
    size_t i, n = 0;

    json_array_foreach(all, i, rec) {
        const char *p = rec_str(rec, "path");

        n += p && (strstr(p, pp_order) || strstr(p, cap));
    }
    json_decref(all);
    return n;
}

/* An approved payment whose capture PayPal answers PENDING: processing. */
static void pending_capture(long long amount, char pay_id[64], char pp_order[64], char cap[64])
{
    char ord[64], status[40];
    h_resp r;

    order("USD", amount, ord, NULL);
    pay_pending("paypal", ord, "", pay_id, pp_order);
    buyer_approves(pay_id);
    fake_next("{\"action\":\"capture_pending\",\"path\":\"/capture\"}");
    confirm(pay_id, &r);
    EXPECT_STATUS(&r, 200); /* a known outcome, pending at PayPal: not 202 */
    EXPECT_STR(h_rstr(&r, "status"), "processing");
    assert_false(json_is_true(h_jpath(r.json, "outcome_unknown")));
    h_resp_free(&r);
    fake_capture_id(pp_order, cap);
    /* The janitor asks PayPal again meanwhile (waited for, not slept on):
     * still pending, still processing. */
    {
        size_t asked = fake_gets_about(pp_order, cap);
        int64_t deadline = h_now_ms() + POLL_MS;

        while (fake_gets_about(pp_order, cap) == asked && h_now_ms() < deadline)
            h_sleep_ms(100);
        if (fake_gets_about(pp_order, cap) == asked) {
            print_error("the janitor never asked PayPal about %s in %d ms\n", pp_order, POLL_MS);
            fail();
        }
    }
    payment_status(pay_id, status);
    EXPECT_STR(status, "processing");
    assert_int_equal(ledger_sum(pay_id, "charge"), 0);
}

static void test_pending_capture_is_processing_until_paypal_completes_it(void **state)
{
    char pay_id[64], pp_order[64], cap[64], verdict[32];

    (void)state;
    pending_capture(2100, pay_id, pp_order, cap);
    fake_later("captures", cap, "complete");
    /* PayPal's webhook, or the janitor's retrieve, whichever comes first;
     * money is counted once. */
    event_post("PAYMENT.CAPTURE.COMPLETED", cap, "payment.succeeded", verdict);
    wait_payment(pay_id, "succeeded");
    assert_int_equal(ledger_sum(pay_id, "charge"), 2100);
    assert_int_equal(h_events_of(&srv, pay_id, "payment.succeeded"), 1);
}

static void test_pending_capture_denied_later_fails_the_payment(void **state)
{
    char pay_id[64], pp_order[64], cap[64], verdict[32];

    (void)state;
    pending_capture(2200, pay_id, pp_order, cap);
    fake_later("captures", cap, "deny");
    event_post("PAYMENT.CAPTURE.DENIED", cap, "payment.failed", verdict);
    wait_payment(pay_id, "failed");
    assert_int_equal(ledger_sum(pay_id, "charge"), 0);
}

static void test_capture_answered_declined_fails_the_payment(void **state)
{
    char ord[64], pay_id[64], pp_order[64], status[40];
    h_resp r;

    (void)state;
    approved_payment(2300, "", ord, pay_id, pp_order);
    fake_next("{\"action\":\"capture_declined\",\"path\":\"/capture\"}");
    confirm(pay_id, &r);
    EXPECT_ERROR(&r, 402, "card_error", "card_declined", NULL);
    h_resp_free(&r);
    payment_status(pay_id, status);
    EXPECT_STR(status, "failed");
    assert_int_equal(ledger_sum(pay_id, "charge"), 0);
}

static void test_authorization_voided_at_paypal_cancels_the_payment(void **state)
{
    char ord[64], pay_id[64], pp_order[64], tok[256], auth[300], path[160], au[64], status[40];
    const char *headers[] = {auth, "PayPal-Request-Id: test-dashboard-void", "Prefer: return=representation", NULL};
    h_resp r;

    (void)state;
    approved_payment(2400, ",\"capture_method\":\"manual\"", ord, pay_id, pp_order);
    confirm(pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "requires_capture");
    h_resp_free(&r);
    /* The merchant voids it in PayPal's dashboard. */
    fake_call("GET", "/_fake/objects", NULL, NULL, &r);
    au[0] = '\0';
    {
        json_t *o;
        size_t i;

        json_array_foreach(h_jpath(r.json, "authorizations"), i, o)
            if (json_string_value(json_object_get(o, "custom_id")) &&
                !strcmp(json_string_value(json_object_get(o, "custom_id")), pay_id))
                snprintf(au, sizeof au, "%s", json_string_value(json_object_get(o, "id")));
    }
    h_resp_free(&r);
    assert_true(au[0] != '\0');
    fake_token(tok);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    snprintf(path, sizeof path, "/v2/payments/authorizations/%s/void", au);
    fake_call("POST", path, "{}", headers, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);

    event_applied("PAYMENT.AUTHORIZATION.VOIDED", au, "payment.canceled");
    payment_status(pay_id, status);
    EXPECT_STR(status, "canceled");
}

static void test_reversed_capture_opens_a_dispute(void **state)
{
    char ord[64], pay_id[64], pp_order[64], cap[64], status[40];
    h_resp r;

    (void)state;
    approved_payment(2500, "", ord, pay_id, pp_order);
    confirm(pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    fake_capture_id(pp_order, cap);
    fake_later("captures", cap, "reverse");
    event_applied("PAYMENT.CAPTURE.REVERSED", cap, "dispute.created");
    payment_status(pay_id, status);
    EXPECT_STR(status, "disputed");
    assert_int_equal(ledger_sum(pay_id, "chargeback"), 2500);
    assert_int_equal(h_events_of(&srv, pay_id, "dispute.created"), 1);
}

static void test_refund_paypal_refuses_as_over_refund_fails_and_releases_the_amount(void **state)
{
    char ord[64], pay_id[64], pp_order[64], cap[64], tok[256], auth[300], path[160], body[160];
    const char *headers[] = {auth, "PayPal-Request-Id: test-dashboard-refund", "Prefer: return=representation", NULL};
    h_resp r;

    (void)state;
    approved_payment(2000, "", ord, pay_id, pp_order);
    confirm(pay_id, &r);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    /* The merchant refunds 15.00 in PayPal's dashboard; payd does not know. */
    fake_capture_id(pp_order, cap);
    fake_token(tok);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    snprintf(path, sizeof path, "/v2/payments/captures/%s/refund", cap);
    fake_call("POST", path, "{\"amount\":{\"value\":\"15.00\",\"currency_code\":\"USD\"}}", headers, &r);
    EXPECT_STATUS(&r, 201);
    h_resp_free(&r);

    /* payd's refund of 10.00 is more than PayPal has left: refused, and
     * nothing stays reserved or counted. */
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1000}", pay_id);
    payd_call("POST", "/v1/refunds", srv.merchant_auth, body, NULL, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "gateway_rejected", NULL);
    h_resp_free(&r);
    {
        json_t *all, *rec = last_post_containing("/refund", &all);

        assert_int_equal(json_integer_value(json_object_get(rec, "status")), 422);
        json_decref(all);
    }
    assert_int_equal(ledger_sum(pay_id, "refund"), 0);
    assert_int_equal(h_sql_intf(&srv, "SELECT amount_refunded + amount_refund_pending FROM payments WHERE id = '%s'",
                                pay_id),
                     0);
    assert_int_equal(h_sql_intf(&srv, "SELECT count(*) FROM refunds WHERE payment_id = '%s' AND status <> 'failed'",
                                pay_id),
                     0);
}

static void test_refused_client_credentials_are_502_gateway_auth_failed(void **state)
{
    char ord[64];
    h_resp r;

    (void)state;
    order("USD", 900, ord, NULL);
    pay("paypal_badsecret", ord, "", &r);
    EXPECT_STATUS(&r, 502);
    EXPECT_STR(h_rstr(&r, "error.code"), "gateway_auth_failed");
    h_resp_free(&r);
}

static void test_api_verification_unavailable_is_5xx_so_paypal_retries(void **state)
{
    char pay_id[64], status[40], *body = captured_elsewhere("paypal_api", 2600, pay_id);
    long long rows = webhook_rows();
    hook h;
    h_resp r;

    (void)state;
    fake_next("{\"action\":\"status_503\",\"path\":\"verify-webhook-signature\"}");
    hook_valid(&h, body);
    hook_post("paypal_api", &h, body, &r);
    EXPECT_ERROR(&r, 500, "api_error", "webhook_failed", NULL);
    h_resp_free(&r);
    assert_int_equal(webhook_rows(), rows);
    payment_status(pay_id, status);
    EXPECT_STR(status, "requires_action");

    /* PayPal's retry, once its API is back. */
    hook_valid(&h, body);
    hook_post("paypal_api", &h, body, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "applied");
    h_resp_free(&r);
    payment_status(pay_id, status);
    EXPECT_STR(status, "succeeded");
    free(body);
}

/* ------------------------------------------------------------------------ */
/* One token for many threads                                               */
/* ------------------------------------------------------------------------ */

typedef struct burst_call {
    h_payd *p;
    char ord[64];
    long status;            /* HTTP status, 0 when no answer */
    char pay_status[40];
    pthread_barrier_t *start;
} burst_call;

/* One POST /v1/payments; no cmocka asserts off the main thread. */
static void *burst_one(void *arg)
{
    burst_call *b = arg;
    char body[512];
    h_req req = {.method = "POST", .path = "/v1/payments", .auth = b->p->merchant_auth,
                 .content_type = "application/json", .body = body, .timeout_ms = 30000};
    h_resp r;

    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"paypal\",\"payment_method\":\"paypal\","
             "\"return_url\":\"" RETURN_URL "\"}", b->ord);
    pthread_barrier_wait(b->start);
    if (h_request_ex(b->p, &req, &r) == 0) {
        b->status = r.status;
        snprintf(b->pay_status, sizeof b->pay_status, "%s", h_rstr(&r, "status") ? h_rstr(&r, "status") : "");
    }
    h_resp_free(&r);
    return NULL;
}

static void test_32_concurrent_creations_on_a_fresh_payd_make_one_token_request(void **state)
{
    static h_payd fresh;
    burst_call calls[BURST];
    pthread_t threads[BURST];
    pthread_barrier_t start;
    char *server_extra = NULL, *extra = NULL;
    size_t len = 0;
    long long tokens;
    FILE *f;
    h_resp r;

    (void)state;
    /* A payd of its own without Redis: nothing cached anywhere. */
    assert_true(asprintf(&server_extra, "http_timeout_ms = 15000\nhttp_ca_file = %s/ca.pem\n", dir) > 0);
    f = open_memstream(&extra, &len);
    paypal_section(f, "paypal", "");
    fprintf(f, "[routing]\ndefault = paypal\n");
    fclose(f);
    /* The token endpoint answers slowly, so every thread finds no token. */
    fake_call("POST", "/_fake/config", "{\"token_delay_ms\":400}", NULL, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
    tokens = fake_counter("token_requests");
    {
        h_payd_opts o = {.threads = BURST + 8, .pool = 24, .no_redis = 1,
                         .server_extra = server_extra, .extra = extra};

        assert_int_equal(h_payd_start(&fresh, &o), 0);
    }
    free(server_extra);
    free(extra);

    for (int i = 0; i < BURST; i++) {
        char body[256];

        snprintf(body, sizeof body,
                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Tea\",\"quantity\":1,\"unit_amount\":%d}]}",
                 100 + i);
        payd_call_on(&fresh, "POST", "/v1/orders", fresh.merchant_auth, body, NULL, &r);
        EXPECT_STATUS(&r, 201);
        memset(&calls[i], 0, sizeof calls[i]);
        calls[i].p = &fresh;
        calls[i].start = &start;
        snprintf(calls[i].ord, sizeof calls[i].ord, "%s", h_rstr(&r, "id"));
        h_resp_free(&r);
    }
    pthread_barrier_init(&start, NULL, BURST);
    for (int i = 0; i < BURST; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, burst_one, &calls[i]), 0);
    for (int i = 0; i < BURST; i++)
        pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&start);

    fake_call("POST", "/_fake/config", "{\"token_delay_ms\":0}", NULL, &r);
    h_resp_free(&r);
    for (int i = 0; i < BURST; i++) {
        if (calls[i].status != 201 || strcmp(calls[i].pay_status, "requires_action") != 0) {
            print_error("payment %d: %ld %s\n", i, calls[i].status, calls[i].pay_status);
            fail();
        }
    }
    assert_int_equal(fake_counter("token_requests"), tokens + 1);
    assert_int_equal(h_payd_stop(&fresh), 0);
}

/* ------------------------------------------------------------------------ */
/* PayPal's OpenAPI files, and secrets                                      */
/* ------------------------------------------------------------------------ */

/* Runs the validator on `records_path` (NULL: --self-test), with `flag`
 * (NULL or e.g. "--responses") first; its output into out. */
static int run_validator(const char *flag, const char *records_path, char *out, size_t len)
{
    char script[PATH_MAX], specs[PATH_MAX];
    const char *argv[6] = {"/usr/bin/python3", script};
    int n = 2;

    snprintf(script, sizeof script, "%s/tests/openapi/validate_paypal.py", h_root());
    snprintf(specs, sizeof specs, "%s/../shared/fixtures/paypal-openapi", h_root());
    if (flag)
        argv[n++] = flag;
    if (records_path == NULL)
        argv[n++] = "--self-test";
    argv[n++] = specs;
    if (records_path)
        argv[n++] = records_path;
    argv[n] = NULL;
    return h_run(argv, out, len);
}

/* Writes `records_json` to a scratch file and runs the validator on it:
 * its exit code, its output into out. */
static int validate_records(const char *records_json, char *out, size_t len)
{
    char path[PATH_MAX + 32];

    snprintf(path, sizeof path, "%s/probe-records.json", dir);
    assert_int_equal(h_write_file(path, records_json), 0);
    return run_validator(NULL, path, out, len);
}

static void test_validator_rejects_a_body_that_breaks_the_schema(void **state)
{
    static char out[16384];
    char path[PATH_MAX + 32];

    (void)state;
    /* PayPal's own examples pass: the checks agree with the files. */
    assert_int_equal(run_validator(NULL, NULL, out, sizeof out), 0);
    /* A value as a JSON number, a four-letter currency, an unknown intent. */
    snprintf(path, sizeof path, "%s/bad-records.json", dir);
    assert_int_equal(h_write_file(path,
                                  "{\"data\":[{\"seq\":1,\"method\":\"POST\",\"path\":\"/v2/checkout/orders\","
                                  "\"headers\":{\"Content-Type\":\"application/json\"},"
                                  "\"body\":\"{\\\"intent\\\":\\\"SALE\\\",\\\"purchase_units\\\":[{\\\"amount\\\":"
                                  "{\\\"currency_code\\\":\\\"USDX\\\",\\\"value\\\":5.0}}]}\"}]}"),
                     0);
    assert_int_equal(run_validator(NULL, path, out, sizeof out), 1);
    assert_non_null(strstr(out, "/purchase_units/0/amount/value"));
    assert_non_null(strstr(out, "/purchase_units/0/amount/currency_code"));
    assert_non_null(strstr(out, "/intent"));

    /* Deep inside $refs (refund_request -> money): a bad value there fails,
     * and so does a member no schema declares. */
    assert_int_equal(validate_records("[{\"method\":\"POST\",\"path\":\"/v2/payments/captures/X1/refund\","
                                      "\"body\":\"{\\\"amount\\\":{\\\"value\\\":\\\"1.00\\\","
                                      "\\\"currency_code\\\":7},\\\"colour\\\":1}\"}]",
                                      out, sizeof out),
                     1);
    assert_non_null(strstr(out, "/amount/currency_code: 7 is not of type 'string'"));
    assert_non_null(strstr(out, "/colour: property 'colour' is not defined by the schema"));
    /* A request to an operation PayPal does not have fails. */
    assert_int_equal(validate_records("[{\"method\":\"POST\",\"path\":\"/v2/checkout/orders/X1/explode\","
                                      "\"body\":\"{}\"}]",
                                      out, sizeof out),
                     1);
    assert_non_null(strstr(out, "no operation POST /v2/checkout/orders/X1/explode"));
    /* Nothing to check proves nothing: an empty record set fails too. */
    assert_int_equal(validate_records("{\"data\":[]}", out, sizeof out), 1);
    assert_non_null(strstr(out, "no request was checked"));
}

static void test_every_request_payd_sent_matches_paypal_openapi_and_headers(void **state)
{
    static char out[65536];
    char path[PATH_MAX + 32];
    json_t *all = fake_requests("", ""), *rec, *wrap;
    size_t i, posts = 0, api_calls = 0;
    char want[96];
    int rc;

    (void)state;
    assert_true(json_array_size(all) > 20);
    json_array_foreach(all, i, rec) {
        const char *p = rec_str(rec, "path"), *m = rec_str(rec, "method");

        if (!strcmp(p, "/v1/oauth2/token")) {
            EXPECT_STR(rec_str(rec, "auth"), "basic");
            EXPECT_STR(rec_str(rec, "body"), "grant_type=client_credentials");
            continue;
        }
        EXPECT_STR(rec_str(rec, "auth"), "bearer");
        api_calls++;
        if (strcmp(m, "POST") != 0)
            continue;
        posts++;
        assert_non_null(rec_str(rec, "headers.PayPal-Request-Id"));
        EXPECT_STR(rec_str(rec, "headers.Prefer"), "return=representation");
        EXPECT_STR(rec_str(rec, "headers.Content-Type"), "application/json");
    }
    assert_true(posts > 10);
    snprintf(path, sizeof path, "%s/records.json", dir);
    wrap = json_pack("{s:O}", "data", all);
    assert_int_equal(json_dump_file(wrap, path, JSON_COMPACT), 0);
    json_decref(wrap);
    json_decref(all);
    rc = run_validator(NULL, path, out, sizeof out);
    /* Every API request the fake saw was checked (only token requests are
     * skipped): not a subset. */
    snprintf(want, sizeof want, ": %zu request(s) checked against the OpenAPI files, 0 violation(s)", api_calls);
    if (rc != 0 || !strstr(out, want)) {
        print_error("validate_paypal exited %d, expected \"%s\":\n%s\n", rc, want, out);
        fail();
    }
}

/* The fake's side of the same traffic: every answer it gave (orders,
 * captures, refunds, errors) has the status and shape PayPal's files
 * document, so what payd was tested against is what PayPal sends. */
static void test_every_answer_of_the_fake_matches_paypal_openapi(void **state)
{
    static char out[65536];
    char path[PATH_MAX + 32];
    int rc;

    (void)state;
    snprintf(path, sizeof path, "%s/records.json", dir);
    rc = run_validator("--responses", path, out, sizeof out);
    if (rc != 0 || !strstr(out, " 0 violation(s)")) {
        print_error("validate_paypal --responses exited %d:\n%s\n", rc, out);
        fail();
    }
}

/* Last: everything above ran; payd's log must not hold a secret. */
static void test_client_secret_never_appears_in_the_log(void **state)
{
    (void)state;
    assert_true(h_log_contains(&srv, "[gateway.paypal]"));
    assert_false(h_log_contains(&srv, CLIENT_SECRET));
    assert_false(h_log_contains(&srv, BAD_SECRET));
    assert_false(h_log_contains(&srv, "S3CR3T"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkout_approve_confirm_partial_refund_and_refunded_webhook),
        cmocka_unit_test(test_pending_refund_is_completed_by_the_signed_refunded_webhook),
        cmocka_unit_test(test_manual_capture_authorizes_then_captures_part),
        cmocka_unit_test(test_cancel_of_an_authorized_payment_voids_the_authorization),
        cmocka_unit_test(test_jpy_order_without_gateway_routes_to_paypal_with_an_integer_value),
        cmocka_unit_test(test_kwd_amount_is_sent_with_three_decimals),
        cmocka_unit_test(test_signed_webhook_is_accepted_and_each_forgery_is_rejected_without_effect),
        cmocka_unit_test(test_api_verification_asks_paypal_and_obeys_its_verdict),
        cmocka_unit_test(test_instrument_declined_is_402_card_declined),
        cmocka_unit_test(test_decline_with_payer_action_sends_the_buyer_back_then_succeeds),
        cmocka_unit_test(test_payer_action_required_on_capture_sends_the_buyer_back),
        cmocka_unit_test(test_expired_token_is_refreshed_once_and_the_call_retried),
        cmocka_unit_test(test_token_is_renewed_before_paypal_expires_it),
        cmocka_unit_test(test_429_on_create_is_202_outcome_unknown_then_janitor_reaches_requires_action),
        cmocka_unit_test(test_503_on_capture_is_202_then_janitor_captures_once),
        cmocka_unit_test(test_500_on_capture_is_202_then_janitor_captures_once),
        cmocka_unit_test(test_timeout_on_capture_retries_with_the_same_request_id_and_captures_once),
        cmocka_unit_test(test_pending_capture_is_processing_until_paypal_completes_it),
        cmocka_unit_test(test_pending_capture_denied_later_fails_the_payment),
        cmocka_unit_test(test_capture_answered_declined_fails_the_payment),
        cmocka_unit_test(test_authorization_voided_at_paypal_cancels_the_payment),
        cmocka_unit_test(test_reversed_capture_opens_a_dispute),
        cmocka_unit_test(test_refund_paypal_refuses_as_over_refund_fails_and_releases_the_amount),
        cmocka_unit_test(test_refused_client_credentials_are_502_gateway_auth_failed),
        cmocka_unit_test(test_api_verification_unavailable_is_5xx_so_paypal_retries),
        cmocka_unit_test(test_32_concurrent_creations_on_a_fresh_payd_make_one_token_request),
        cmocka_unit_test(test_validator_rejects_a_body_that_breaks_the_schema),
        cmocka_unit_test(test_every_request_payd_sent_matches_paypal_openapi_and_headers),
        cmocka_unit_test(test_every_answer_of_the_fake_matches_paypal_openapi),
        cmocka_unit_test(test_client_secret_never_appears_in_the_log),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
