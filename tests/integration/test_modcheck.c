/*
 * test_modcheck.c - payd-modcheck and the SDK template, end to end.
 *
 *   - payd-modcheck (built with ASan, like everything here) passes the
 *     shipped mock gateway and writes a valid --json report;
 *   - it fails tests/modules/modcheck_bad.c once per broken rule, naming
 *     exactly the check that guards that rule, and reports the loader's
 *     refusals (ABI major, struct_size, capabilities, init crash) as the
 *     checks they concern;
 *   - sdk/template/gateway builds OUT OF TREE in a temp dir that holds only
 *     a copy of sdk/include and the template, with cc alone; its own tests
 *     pass; payd loads the result through `module = /abs/path.so` and runs
 *     a checkout through it against the template's fake provider (over
 *     HTTP); payd-modcheck passes it too. The notifier template builds and
 *     passes its tests the same way.
 *
 * The stripe module joins the modcheck runs with one more command line
 * (see sdk/README.md, "Checking a module with payd-modcheck"); the PayPal
 * module, a redirect gateway, with --approve-url '{next_action_url}' (the
 * buyer's step at tests/fakes/paypal_fake) and a webhook the test signs
 * as PayPal does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
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

#define OUT_LEN (256 * 1024)
#define MODCHECK_TIMEOUT_MS 240000

static const char *const all_checks[] = {
    "config", "load", "abi.major", "abi.struct_size", "abi.kind", "abi.caps", "symbols", "init_fini",
    "create_retrieve", "idempotency", "decline", "timeout", "refund_over_capture", "capture_later",
    "webhook_tamper", "arena", "no_secrets", "threads", NULL};

static void assert_no_sanitizer_report(const char *out)
{
    static const char *const bad[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", NULL};
    for (int i = 0; bad[i]; i++)
        if (strstr(out, bad[i])) {
            print_error("sanitizer report in:\n%s\n", out);
            fail();
        }
}

static const char *modcheck_bin(void)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/payd-modcheck", h_env("PAYD_BUILD"));
    return path;
}

typedef struct mc_run {
    int rc;
    char *out;                    /* stdout: the JSON report */
    char *err;                    /* stderr: the readable lines */
    json_t *report;
} mc_run;

static void mc_free(mc_run *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->report);
    memset(r, 0, sizeof *r);
}

/* Runs payd-modcheck --json --config CONF --section SECTION ARGS...;
 * `leaks_expected` lets a LeakSanitizer report through. */
static void modcheck_ex(mc_run *r, const char *conf, const char *section, const char *const *args,
                        int leaks_expected)
{
    const char *argv[64];
    int n = 0;
    /* The module's captured output stays with the test's scratch files. */
    static char log_dir[PATH_MAX], log_path[PATH_MAX + 32];
    assert_int_equal(h_tmpdir(log_dir, sizeof log_dir), 0);
    snprintf(log_path, sizeof log_path, "%s/modcheck.log", log_dir);
    argv[n++] = modcheck_bin();
    argv[n++] = "--json";
    argv[n++] = "--log";
    argv[n++] = log_path;
    argv[n++] = "--config";
    argv[n++] = conf;
    argv[n++] = "--section";
    argv[n++] = section;
    for (int i = 0; args && args[i] && n < 62; i++) argv[n++] = args[i];
    argv[n] = NULL;
    memset(r, 0, sizeof *r);
    r->out = calloc(1, OUT_LEN);
    r->err = calloc(1, OUT_LEN);
    assert_non_null(r->out);
    assert_non_null(r->err);
    r->rc = h_run_ex(argv, r->out, OUT_LEN, r->err, OUT_LEN, MODCHECK_TIMEOUT_MS);
    json_error_t jerr;
    r->report = json_loads(r->out, 0, &jerr);
    if (!r->report) print_error("modcheck stdout is not JSON (%s):\n%s\nstderr:\n%s\n", jerr.text, r->out, r->err);
    assert_non_null(r->report);
    if (!leaks_expected) assert_no_sanitizer_report(r->err);
}

static void modcheck(mc_run *r, const char *conf, const char *section, const char *const *args)
{
    modcheck_ex(r, conf, section, args, 0);
}

/* The status ("pass", "fail", ...) of check `name` in the report. */
static const char *check_status(const mc_run *r, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(r->report, "checks"), i, c)
        if (!strcmp(json_string_value(json_object_get(c, "name")), name))
            return json_string_value(json_object_get(c, "status"));
    return NULL;
}

static void expect_check_status(const mc_run *r, const char *name, const char *status)
{
    const char *got = check_status(r, name);
    if (!got || strcmp(got, status) != 0) {
        print_error("check %s: expected %s, got %s\nstderr:\n%s\n", name, status, got ? got : "(missing)", r->err);
        fail();
    }
}

static void write_file_fmt(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_file_fmt(const char *path, const char *fmt, ...)
{
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_int_equal(h_write_file(path, text), 0);
}

/* ------------------------------------------------------------------------ */
/* The mock                                                                 */
/* ------------------------------------------------------------------------ */

#define MOCK_SECRET "whsec_modcheck_mock_0123456789"

static void test_modcheck_passes_the_mock_gateway_with_a_valid_json_report(void **state)
{
    (void)state;
    char dir[PATH_MAX], conf[PATH_MAX + 32], sample[PATH_MAX + 32];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(conf, sizeof conf, "%s/mock.conf", dir);
    snprintf(sample, sizeof sample, "%s/event.json", dir);
    /* No [database]: modcheck never uses it. Webhooks off: nothing to post
     * the mock's own events to. */
    write_file_fmt(conf, "[gateway.mock]\nmodule = %s/modules/mock.so\nwebhook_secret = env:MODCHECK_MOCK_SECRET\n"
                         "webhooks = off\n", h_env("PAYD_BUILD"));
    write_file_fmt(sample, "{\"id\":\"mevt_modcheck_1\",\"type\":\"payment.succeeded\",\"created\":1700000000,"
                           "\"data\":{\"provider_ref\":\"mock_pi_x\",\"payment_id\":\"pay_x\",\"amount\":1099,"
                           "\"currency\":\"USD\"}}");
    setenv("MODCHECK_MOCK_SECRET", MOCK_SECRET, 1);
    const char *args[] = {"--ok-method", "pm_card_visa", "--decline-method", "pm_card_chargeDeclined",
                          "--timeout-method", "pm_card_timeout", "--webhook-sample", sample, "--webhook-header",
                          "Mock-Signature: t={t},v1={hmac-t.body:webhook_secret}", NULL};
    mc_run r;
    modcheck(&r, conf, "gateway.mock", args);
    if (r.rc != 0) print_error("modcheck on the mock exited %d:\n%s\n", r.rc, r.err);
    assert_int_equal(r.rc, 0);
    assert_true(json_is_true(json_object_get(r.report, "ok")));
    assert_string_equal(json_string_value(json_object_get(r.report, "tool")), "payd-modcheck");
    json_t *mod = json_object_get(r.report, "module");
    assert_string_equal(json_string_value(json_object_get(mod, "name")), "mock");
    assert_string_equal(json_string_value(json_object_get(mod, "section")), "gateway.mock");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r.report, "summary"), "fail")), 0);
    /* Every check ran and passed: the mock exercises all of them. */
    for (int i = 0; all_checks[i]; i++) expect_check_status(&r, all_checks[i], "pass");
    assert_int_equal(json_array_size(json_object_get(r.report, "checks")), 18);
    /* The readable lines went to stderr, one per check. */
    EXPECT_CONTAINS(r.err, "PASS  threads");
    /* The mock captures exactly the part asked for (1099 - 1099/4). */
    EXPECT_CONTAINS(r.err, "a partial capture captured 825 of 1099; a cancel voided another authorization");
    EXPECT_CONTAINS(r.err, "the heap stayed within");
    mc_free(&r);
}

/* ------------------------------------------------------------------------ */
/* The other shipped modules                                                */
/* ------------------------------------------------------------------------ */

static pid_t spawn_fake(const char *const argv[], int *port);

static int built(const char *rel)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", h_env("PAYD_BUILD"), rel);
    if (access(path, R_OK) == 0) return 1;
    fprintf(stdout, "# %s is not built: its modcheck run is skipped\n", rel);
    return 0;
}

#define STRIPE_KEY "sk_test_modcheck_stripe_0123"
#define STRIPE_WHSEC "whsec_modcheck_stripe_0123456"

static void test_modcheck_passes_the_stripe_gateway_against_its_fake(void **state)
{
    (void)state;
    if (!built("modules/stripe.so") || !built("fakes/stripe_fake")) return;
    char bin[PATH_MAX], fixtures[PATH_MAX], dir[PATH_MAX], conf[PATH_MAX + 32], sample[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/fakes/stripe_fake", h_env("PAYD_BUILD"));
    snprintf(fixtures, sizeof fixtures, "%s/../shared/fixtures/stripe-openapi/fixtures3.json", h_root());
    const char *argv[] = {bin, "0", fixtures, STRIPE_KEY, NULL};
    int port = 0;
    pid_t pid = spawn_fake(argv, &port);
    assert_true(pid > 0);
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(conf, sizeof conf, "%s/stripe.conf", dir);
    snprintf(sample, sizeof sample, "%s/event.json", dir);
    write_file_fmt(conf, "[gateway.stripe]\nmodule = stripe\nsecret_key = env:MODCHECK_STRIPE_KEY\n"
                         "webhook_secret = env:MODCHECK_STRIPE_WHSEC\napi_base = http://127.0.0.1:%d\n", port);
    write_file_fmt(sample, "{\"id\":\"evt_modcheck_1\",\"object\":\"event\",\"type\":\"payment_intent.succeeded\","
                           "\"created\":1700000000,\"data\":{\"object\":{\"id\":\"pi_x\",\"object\":\"payment_intent\","
                           "\"amount\":1099,\"currency\":\"usd\",\"status\":\"succeeded\","
                           "\"metadata\":{\"payment_id\":\"pay_x\"}}}}");
    setenv("MODCHECK_STRIPE_KEY", STRIPE_KEY, 1);
    setenv("MODCHECK_STRIPE_WHSEC", STRIPE_WHSEC, 1);
    const char *args[] = {"--ok-method", "pm_card_visa", "--decline-method", "pm_card_chargeDeclined",
                          "--timeout-key", "api_base", "--timeout-ms", "500", "--webhook-sample", sample,
                          "--webhook-header", "Stripe-Signature: t={t},v1={hmac-t.body:webhook_secret}", NULL};
    mc_run r;
    modcheck(&r, conf, "gateway.stripe", args);
    h_fake_stop(&pid);
    if (r.rc != 0) print_error("modcheck on stripe exited %d:\n%s\n", r.rc, r.err);
    assert_int_equal(r.rc, 0);
    for (int i = 0; all_checks[i]; i++) expect_check_status(&r, all_checks[i], "pass");
    mc_free(&r);
}

#define PAYPAL_CLIENT_ID "modcheck-paypal-client"
#define PAYPAL_SECRET "pp_modcheck_client_S3CR3T_0123"
#define PAYPAL_WEBHOOK_ID "3MC597110X687430LKMODCHK"

/*
 * One self-signed key and certificate for 127.0.0.1, valid for a day: the
 * fake's https certificate, PayPal's webhook signing certificate, and the
 * only trust anchor for both ([server] http_ca_file, cert_ca_file). Writes
 * dir/ca.pem, dir/tls.pem (certificate and key) and
 * dir/certs/paypal-sign.pem. Returns the key; the caller frees it.
 */
static EVP_PKEY *paypal_pki(const char *dir)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *x = X509_new();
    X509V3_CTX ctx;
    assert_non_null(key);
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    assert_non_null(san);
    assert_int_equal(X509_add_ext(x, san, -1), 1);
    X509_EXTENSION_free(san);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);

    static const char *const files[] = {"ca.pem", "certs/paypal-sign.pem", "tls.pem"};
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/certs", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(PEM_write_X509(f, x), 1);
        if (i == 2) assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
        fclose(f);
    }
    X509_free(x);
    return key;
}

/* PayPal's five webhook headers ("Name: value") for `body`, transmitted
 * now and signed as PayPal signs: base64 RSA-SHA256 over
 * "id|time|webhook_id|crc32(body)". */
static void paypal_sign(EVP_PKEY *key, int https_port, const char *body, char out[5][800])
{
    char t[32], msg[512];
    unsigned char sig[512];
    size_t siglen = sizeof sig;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
    const char *id = "6c1b7a30-d67a-11e5-baa3-modcheck0001";
    snprintf(msg, sizeof msg, "%s|%s|%s|%lu", id, t, PAYPAL_WEBHOOK_ID,
             crc32(0L, (const Bytef *)body, (uInt)strlen(body)));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &siglen, (const unsigned char *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(md);
    char b64[700];
    assert_true(siglen * 4 / 3 + 4 < sizeof b64);
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
    snprintf(out[0], 800, "PAYPAL-TRANSMISSION-ID: %s", id);
    snprintf(out[1], 800, "PAYPAL-TRANSMISSION-TIME: %s", t);
    snprintf(out[2], 800, "PAYPAL-TRANSMISSION-SIG: %s", b64);
    snprintf(out[3], 800, "PAYPAL-CERT-URL: https://127.0.0.1:%d/certs/paypal-sign.pem", https_port);
    snprintf(out[4], 800, "PAYPAL-AUTH-ALGO: SHA256withRSA");
}

/*
 * PayPal is a redirect gateway: create answers requires_action and the
 * buyer approves at PayPal before confirm captures. --approve-url
 * '{next_action_url}' makes modcheck the buyer (the fake approves the
 * order when its approve link is opened); the sample webhook is signed
 * with the certificate the fake serves over https. PayPal has no card
 * number that declines: decline is the one check that does not apply.
 */
static void test_modcheck_passes_the_paypal_gateway_against_its_fake_as_the_buyer(void **state)
{
    (void)state;
    if (!built("modules/paypal.so") || !built("fakes/paypal_fake")) return;
    char dir[PATH_MAX], bin[PATH_MAX], certs[PATH_MAX + 8], tls[PATH_MAX + 8], line[256];
    char conf[PATH_MAX + 32], sample[PATH_MAX + 32];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    EVP_PKEY *key = paypal_pki(dir);
    snprintf(bin, sizeof bin, "%s/fakes/paypal_fake", h_env("PAYD_BUILD"));
    snprintf(certs, sizeof certs, "%s/certs", dir);
    snprintf(tls, sizeof tls, "%s/tls.pem", dir);
    const char *argv[] = {bin, "0", "0", certs, tls, NULL};
    const char *env[] = {"PAYPAL_FAKE_CLIENT_ID=" PAYPAL_CLIENT_ID, "PAYPAL_FAKE_CLIENT_SECRET=" PAYPAL_SECRET, NULL};
    pid_t pid = h_fake_spawn(argv, env, line, sizeof line);
    int port = 0, https_port = 0;
    if (pid < 0 || sscanf(line, "paypal_fake listening on 127.0.0.1:%d https 127.0.0.1:%d", &port, &https_port) != 2) {
        print_error("paypal_fake did not start: \"%s\"\n", line);
        h_fake_stop(&pid);
        fail();
    }

    snprintf(conf, sizeof conf, "%s/paypal.conf", dir);
    snprintf(sample, sizeof sample, "%s/event.json", dir);
    write_file_fmt(conf,
                   "[server]\nhttp_ca_file = %s/ca.pem\n"
                   "[gateway.paypal]\nmodule = paypal\napi_base = http://127.0.0.1:%d\n"
                   "client_id = " PAYPAL_CLIENT_ID "\nclient_secret = env:MODCHECK_PAYPAL_SECRET\n"
                   "webhook_id = " PAYPAL_WEBHOOK_ID "\ncert_hosts = 127.0.0.1:%d\ncert_ca_file = %s/ca.pem\n",
                   dir, port, https_port, dir);
    const char *event =
        "{\"id\":\"WH-MC-58D329510W468432D-8HN650336L201105X\",\"event_version\":\"1.0\","
        "\"create_time\":\"2026-01-01T00:00:00Z\",\"resource_type\":\"capture\","
        "\"event_type\":\"PAYMENT.CAPTURE.COMPLETED\",\"summary\":\"Payment completed for $ 10.99 USD\","
        "\"resource\":{\"id\":\"2GG279541U471931P\",\"status\":\"COMPLETED\",\"amount\":{\"currency_code\":"
        "\"USD\",\"value\":\"10.99\"},\"custom_id\":\"pay_x\",\"supplementary_data\":{\"related_ids\":"
        "{\"order_id\":\"5O190127TN364715T\"}}}}";
    write_file_fmt(sample, "%s", event);
    char headers[5][800];
    paypal_sign(key, https_port, event, headers);
    EVP_PKEY_free(key);
    setenv("MODCHECK_PAYPAL_SECRET", PAYPAL_SECRET, 1);
    const char *args[] = {"--ok-method", "paypal", "--approve-url", "{next_action_url}", "--timeout-key",
                          "api_base", "--timeout-ms", "500", "--webhook-sample", sample,
                          "--webhook-header", headers[0], "--webhook-header", headers[1],
                          "--webhook-header", headers[2], "--webhook-header", headers[3],
                          "--webhook-header", headers[4], NULL};
    mc_run r;
    modcheck(&r, conf, "gateway.paypal", args);
    /* The buyer's step happened at the fake: its approve page was visited. */
    h_payd fake = {0};
    snprintf(fake.base_url, sizeof fake.base_url, "http://127.0.0.1:%d", port);
    h_resp counters;
    h_fake_call(&fake, "GET", "/_fake/counters", NULL, NULL, &counters);
    long long visits = h_rint(&counters, "buyer_visits");
    h_resp_free(&counters);
    h_fake_stop(&pid);
    if (r.rc != 0) print_error("modcheck on paypal exited %d:\n%s\n", r.rc, r.err);
    assert_int_equal(r.rc, 0);
    for (int i = 0; all_checks[i]; i++)
        expect_check_status(&r, all_checks[i], strcmp(all_checks[i], "decline") ? "pass" : "skip");
    EXPECT_CONTAINS(r.err, "approved by the buyer's step and confirmed succeeded");
    EXPECT_CONTAINS(r.err, "a repeated confirm with one key");
    EXPECT_CONTAINS(r.err, "flipped byte, missing and altered signatures refused");
    /* Authorize (after the buyer's step), capture part, void another. */
    EXPECT_CONTAINS(r.err, "a partial capture captured 825 of 1099; a cancel voided another authorization");
    /* create_retrieve, idempotency, refund_over_capture, capture_later (two). */
    assert_true(visits >= 5);
    mc_free(&r);
}

static void test_modcheck_passes_the_shipped_notifiers(void **state)
{
    (void)state;
    static const struct {
        const char *so, *section;
    } cases[] = {
        {"modules/webhook.so", "[notifier.hooks]\nmodule = webhook\nurl = http://127.0.0.1:9/hooks\n"
                               "secret = env:MODCHECK_NOTIFIER_SECRET\nevents = order.paid\n"},
        {"modules/smtp.so", "[notifier.mail]\nmodule = smtp\nurl = smtp://127.0.0.1:9\nfrom = shop@example.com\n"
                            "username = shop\npassword = env:MODCHECK_NOTIFIER_SECRET\n"},
    };
    setenv("MODCHECK_NOTIFIER_SECRET", "notifier_secret_0123456789", 1);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (!built(cases[k].so)) continue;
        char dir[PATH_MAX], conf[PATH_MAX + 32], section[64];
        assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
        snprintf(conf, sizeof conf, "%s/n.conf", dir);
        write_file_fmt(conf, "%s", cases[k].section);
        snprintf(section, sizeof section, "%.*s", (int)strcspn(cases[k].section + 1, "]"), cases[k].section + 1);
        mc_run r;
        modcheck(&r, conf, section, NULL);
        if (r.rc != 0) print_error("modcheck on %s exited %d:\n%s\n", cases[k].so, r.rc, r.err);
        assert_int_equal(r.rc, 0);
        static const char *const apply[] = {"config", "load", "abi.major", "abi.struct_size", "abi.kind",
                                            "abi.caps", "symbols", "init_fini", "no_secrets", NULL};
        for (int i = 0; apply[i]; i++) expect_check_status(&r, apply[i], "pass");
        expect_check_status(&r, "create_retrieve", "skip");
        mc_free(&r);
    }
}

/* The manual gateway has no provider to settle a payment, so the payment
 * scenarios (which wait for one) do not apply; the ABI rules and the card
 * number probe do. */
static void test_modcheck_passes_the_manual_gateway(void **state)
{
    (void)state;
    if (!built("modules/manual.so")) skip();
    char dir[PATH_MAX], conf[PATH_MAX + 32];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(conf, sizeof conf, "%s/manual.conf", dir);
    write_file_fmt(conf, "[gateway.manual]\nmodule = %s/modules/manual.so\nmethods = bank_transfer, cheque\n"
                         "bank_account_name = Example Shop Ltd\nbank_iban = DE89 3704 0044 0532 0130 00\n"
                         "instructions.cheque = Payable to Example Shop Ltd\n",
                   h_env("PAYD_BUILD"));
    mc_run r;
    modcheck(&r, conf, "gateway.manual", NULL);
    if (r.rc != 0) print_error("modcheck on the manual gateway exited %d:\n%s\n", r.rc, r.err);
    assert_int_equal(r.rc, 0);
    assert_true(json_is_true(json_object_get(r.report, "ok")));
    static const char *const apply[] = {"config", "load", "abi.major", "abi.struct_size", "abi.kind",
                                        "abi.caps", "symbols", "init_fini", "no_secrets", "arena", NULL};
    for (int i = 0; apply[i]; i++) expect_check_status(&r, apply[i], "pass");
    mc_free(&r);
}

/* ------------------------------------------------------------------------ */
/* A module that breaks one rule at a time                                  */
/* ------------------------------------------------------------------------ */

/* Runs payd-modcheck on test module `module` (modcheck_bad, or a module
 * built from it) with `defect`. */
static void bad_module_run_as(mc_run *r, const char *module, const char *defect)
{
    int leaks = strcmp(defect, "leak") == 0;
    char dir[PATH_MAX], conf[PATH_MAX + 32], sample[PATH_MAX + 32], mod[PATH_MAX];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(conf, sizeof conf, "%s/bad.conf", dir);
    snprintf(sample, sizeof sample, "%s/event.json", dir);
    write_file_fmt(conf,
                   "[database]\nurl = postgresql:///unused\n"
                   "[gateway.bad]\nmodule = %s\ndefect = %s\napi_key = env:MODCHECK_BAD_KEY\n"
                   "webhook_secret = env:MODCHECK_BAD_WHSEC\n",
                   h_testmodule(mod, sizeof mod, module), defect);
    write_file_fmt(sample, "{\"id\":\"evt_bad_1\",\"type\":\"payment.succeeded\"}");
    setenv("MODCHECK_BAD_KEY", "sk_test_modcheck_bad_0123456789", 1);
    setenv("MODCHECK_BAD_WHSEC", "whsec_modcheck_bad_0123456789", 1);
    const char *args[] = {"--ok-method", "pm_card_visa", "--decline-method", "pm_card_chargeDeclined",
                          "--timeout-method", "pm_card_timeout", "--webhook-sample", sample, "--webhook-header",
                          "Bad-Signature: {hmac-body:webhook_secret}", "--threads", "8", NULL};
    modcheck_ex(r, conf, "gateway.bad", args, leaks);
}

static void bad_module_run(mc_run *r, const char *defect)
{
    bad_module_run_as(r, "modcheck_bad", defect);
}

static void test_modcheck_passes_the_bad_module_when_it_breaks_nothing(void **state)
{
    (void)state;
    mc_run r;
    bad_module_run(&r, "none");
    if (r.rc != 0) print_error("%s\n", r.err);
    assert_int_equal(r.rc, 0);
    for (int i = 0; all_checks[i]; i++) expect_check_status(&r, all_checks[i], "pass");
    mc_free(&r);
}

/* A module with capture_later but not partial_capture is asked to capture
 * the whole authorization, which is all the core will ask of it. */
static void test_modcheck_captures_all_on_a_module_without_partial_capture(void **state)
{
    (void)state;
    mc_run r;
    bad_module_run_as(&r, "whole_capture_only", "none");
    if (r.rc != 0) print_error("%s\n", r.err);
    assert_int_equal(r.rc, 0);
    expect_check_status(&r, "capture_later", "pass");
    EXPECT_CONTAINS(r.err, "a full capture (no partial_capture) captured 1099 of 1099");
    mc_free(&r);
}

static void test_modcheck_fails_each_broken_rule_naming_its_check(void **state)
{
    (void)state;
    /* `racy`: a check the defect may also break, depending on how the
     * threads interleave (a shared static buffer is overwritten by another
     * thread's call: exactly why it is a defect). */
    static const struct {
        const char *defect, *check, *detail, *racy;
    } cases[] = {
        {"decline", "decline", "expected PAYD_E_DECLINED", NULL},
        {"timeout", "timeout", "expected PAYD_E_TRANSIENT", NULL},
        {"refund", "refund_over_capture", "was accepted", NULL},
        {"capture", "capture_later", "capture of 825 of 1099 authorized answered amount_captured 1099", NULL},
        {"cancel", "capture_later", "retrieve after it says requires_capture: the authorization was not voided",
         NULL},
        {"webhook", "webhook_tamper", "one byte flipped", NULL},
        {"idempotency", "idempotency", "made a second payment", NULL},
        {"heap", "arena", "outside the call's arena", NULL},
        {"static", "arena", "writable static data", "threads"},
        {"secret", "no_secrets", "secret config key", NULL},
        {"pan", "no_secrets", "card number", NULL},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        mc_run r;
        bad_module_run(&r, cases[k].defect);
        if (r.rc != 1) print_error("defect %s: modcheck exited %d\n%s\n", cases[k].defect, r.rc, r.err);
        assert_int_equal(r.rc, 1);
        assert_false(json_is_true(json_object_get(r.report, "ok")));
        /* Exactly the check that guards the rule fails, nothing else. */
        for (int i = 0; all_checks[i]; i++)
            if (!cases[k].racy || strcmp(all_checks[i], cases[k].racy) != 0)
                expect_check_status(&r, all_checks[i], strcmp(all_checks[i], cases[k].check) ? "pass" : "fail");
        EXPECT_CONTAINS(r.err, cases[k].detail);
        mc_free(&r);
    }
}

static void test_modcheck_finds_memory_lost_over_init_fini_cycles(void **state)
{
    (void)state;
    mc_run r;
    bad_module_run(&r, "leak");
    /* 1 from modcheck, or LeakSanitizer's own exit status at the end. */
    assert_int_not_equal(r.rc, 0);
    expect_check_status(&r, "init_fini", "fail");
    EXPECT_CONTAINS(r.err, "the heap grew by");
    EXPECT_CONTAINS(r.err, "LeakSanitizer found memory lost");
    mc_free(&r);
}

static void test_modcheck_reports_loader_refusals_as_failed_checks(void **state)
{
    (void)state;
    static const struct {
        const char *module, *check, *status, *detail;
    } cases[] = {
        {"abi2", "abi.major", "fail", "built for ABI 2.0"},
        {"small_struct", "abi.struct_size", "fail", "smaller than the v1.0 size"},
        {"cap_without_fn", "abi.caps", "fail", "capability webhooks needs webhook"},
        {"init_crash", "init_fini", "fail", "crashed in init (signal 11)"},
        {"init_fails", "init_fini", "fail", "missing api key"},
        {"no_symbol", "symbols", "fail", "payd_module_v1 is not exported"},
        {"good_minimal", "symbols", "warn", "good_minimal_extra_symbol"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char dir[PATH_MAX], conf[PATH_MAX + 32], mod[PATH_MAX];
        assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
        snprintf(conf, sizeof conf, "%s/t.conf", dir);
        write_file_fmt(conf, "[gateway.t]\nmodule = %s\n", h_testmodule(mod, sizeof mod, cases[k].module));
        const char *args[] = {"--ok-method", "pm_card_visa", "--threads", "2", NULL};
        mc_run r;
        modcheck(&r, conf, "gateway.t", args);
        int want_rc = strcmp(cases[k].status, "fail") == 0;
        if (r.rc != want_rc) print_error("%s: modcheck exited %d\n%s\n", cases[k].module, r.rc, r.err);
        assert_int_equal(r.rc, want_rc);
        expect_check_status(&r, cases[k].check, cases[k].status);
        if (want_rc) expect_check_status(&r, "load", "fail");
        EXPECT_CONTAINS(r.err, cases[k].detail);
        mc_free(&r);
    }
}

/* ------------------------------------------------------------------------ */
/* The template, out of tree                                                */
/* ------------------------------------------------------------------------ */

#define EXAMPLE_KEY "sk_test_example_modcheck_0123"
#define EXAMPLE_WHSEC "whsec_example_modcheck_0123456"

static char tree[PATH_MAX];       /* the temp dir with include/ and template/ */
static char example_so[PATH_MAX + 32];
static pid_t fake_pid;
static int fake_port;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    static char out[OUT_LEN];
    int rc = h_sh(cmd, out, sizeof out);
    if (rc != 0) print_error("$ %s\nexited %d:\n%s\n", cmd, rc, out);
    assert_int_equal(rc, 0);
}

/*
 * Starts a fake provider (argv[0] is its path) that prints one line
 * "... listening on 127.0.0.1:PORT" once it accepts; returns its pid and
 * the port, or -1. It dies with the test (PR_SET_PDEATHSIG).
 */
static pid_t spawn_fake(const char *const argv[], int *port)
{
    char line[256];
    pid_t pid = h_fake_spawn(argv, NULL, line, sizeof line);
    const char *at = pid > 0 ? strstr(line, "listening on 127.0.0.1:") : NULL;

    *port = at ? atoi(at + strlen("listening on 127.0.0.1:")) : 0;
    if (pid > 0 && *port <= 0) {
        print_error("%s did not start: \"%s\"\n", argv[0], line);
        h_fake_stop(&pid);
        return -1;
    }
    return pid;
}

/* The template's fake ExamplePay, over HTTP. */
static void fake_start(void)
{
    char bin[PATH_MAX + 64];
    snprintf(bin, sizeof bin, "%s/template/gateway/fake-provider", tree);
    const char *argv[] = {bin, "0", EXAMPLE_KEY, NULL};
    fake_pid = spawn_fake(argv, &fake_port);
    assert_true(fake_pid > 0);
}

static void fake_stop(void)
{
    h_fake_stop(&fake_pid);
}

static int template_setup(void **state)
{
    (void)state;
    if (h_tmpdir(tree, sizeof tree) != 0) return -1;
    snprintf(example_so, sizeof example_so, "%s/example.so", tree);
    return 0;
}

static int template_teardown(void **state)
{
    (void)state;
    fake_stop();
    return 0;
}

static void test_template_builds_out_of_tree_with_only_sdk_include_and_passes_its_tests(void **state)
{
    (void)state;
    const char *root = h_root();
    /* Only the SDK's public header and the template itself: no payd
     * sources, no payd libraries. Leftovers of an in-tree build go. */
    sh("mkdir -p '%s/include' && cp -R '%s/sdk/include/payd' '%s/include/' && cp -R '%s/sdk/template' '%s/' && "
       "rm -f '%s'/template/gateway/*.so '%s'/template/gateway/fake-provider '%s'/template/gateway/test_gateway "
       "'%s'/template/notifier/*.so '%s'/template/notifier/test_notifier",
       tree, root, tree, root, tree, tree, tree, tree, tree, tree);
    /* With cc directly, as sdk/README.md says. */
    const char *flags = "-std=c11 -O2 -g -Wall -Wextra -Werror -Wshadow";
    sh("cd '%s' && cc %s -shared -fPIC -fvisibility=hidden -I include template/gateway/gateway.c -o example.so",
       tree, flags);
    sh("cd '%s' && cc %s -I include -I template template/gateway/test_gateway.c -o test_gateway -ldl -lpthread && "
       "./test_gateway ./example.so",
       tree, flags);
    sh("cd '%s' && cc %s template/gateway/fake_provider.c -o template/gateway/fake-provider -lpthread", tree,
       flags);
    /* And with the template's own Makefiles (gateway and notifier). */
    sh("make -s -C '%s/template/gateway' PAYD_SDK='%s/include' test", tree, tree);
    sh("make -s -C '%s/template/notifier' PAYD_SDK='%s/include' test", tree, tree);
    sh("nm -D --defined-only '%s' | grep -c ' T ' | grep -qx 1", example_so);
}

/* "t=<t>,v1=<hex>" for body, signed with the example's webhook secret. */
static void example_sign(const char *body, char *out, size_t len)
{
    long long t = (long long)time(NULL);
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%lld.%s", t, body);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), EXAMPLE_WHSEC, (int)strlen(EXAMPLE_WHSEC), (const unsigned char *)msg, (size_t)n, mac,
         &mac_len);
    int w = snprintf(out, len, "Example-Signature: t=%lld,v1=", t);
    for (unsigned i = 0; i < mac_len; i++) w += snprintf(out + w, len - (size_t)w, "%02x", mac[i]);
}

static void test_template_module_runs_a_checkout_in_payd(void **state)
{
    (void)state;
    fake_start();
    setenv("EXAMPLE_API_KEY", EXAMPLE_KEY, 1);
    setenv("EXAMPLE_WEBHOOK_SECRET", EXAMPLE_WHSEC, 1);
    char extra[PATH_MAX + 512];
    snprintf(extra, sizeof extra,
             "[gateway.example]\nmodule = %s\napi_base = http://127.0.0.1:%d\napi_key = env:EXAMPLE_API_KEY\n"
             "webhook_secret = env:EXAMPLE_WEBHOOK_SECRET\n",
             example_so, fake_port);
    h_payd srv;
    h_payd_opts o = {.extra = extra};
    assert_int_equal(h_payd_start(&srv, &o), 0);
    assert_true(h_log_contains(&srv, "loaded [gateway.example]: module example 0.1.0 (ABI 1."));

    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/orders", srv.merchant_auth, NULL,
                                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Widget\",\"quantity\":2,"
                                 "\"unit_amount\":1000}]}",
                                 &r),
                     0);
    assert_int_equal(r.status, 201);
    char order[64], body[512];
    snprintf(order, sizeof order, "%s", h_json_str(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"example\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order);
    assert_int_equal(h_post_json(&srv, "/v1/payments", srv.merchant_auth, NULL, body, &r), 0);
    if (r.status != 201) print_error("payment: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 201);
    assert_string_equal(h_json_str(&r, "status"), "succeeded");
    char pay_id[64], ref[64];
    snprintf(pay_id, sizeof pay_id, "%s", h_json_str(&r, "id"));
    snprintf(ref, sizeof ref, "%s", h_json_str(&r, "provider_ref") ? h_json_str(&r, "provider_ref") : "");
    assert_int_equal(strncmp(ref, "exp_pay_", 8), 0);
    h_resp_free(&r);

    char path[128];
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    assert_int_equal(h_get(&srv, path, srv.merchant_auth, &r), 0);
    assert_string_equal(h_json_str(&r, "status"), "paid");
    h_resp_free(&r);

    /* A partial refund goes through the module to the fake. */
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":500}", pay_id);
    assert_int_equal(h_post_json(&srv, "/v1/refunds", srv.merchant_auth, NULL, body, &r), 0);
    if (r.status != 201) print_error("refund: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 201);
    assert_string_equal(h_json_str(&r, "status"), "succeeded");
    h_resp_free(&r);

    /* A decline is a 402 card_error with the module's failure code. */
    assert_int_equal(h_post_json(&srv, "/v1/orders", srv.merchant_auth, NULL,
                                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Gadget\",\"unit_amount\":700}]}", &r),
                     0);
    snprintf(order, sizeof order, "%s", h_json_str(&r, "id"));
    h_resp_free(&r);
    snprintf(body, sizeof body,
             "{\"order\":\"%s\",\"gateway\":\"example\",\"payment_method\":\"pm_card_chargeDeclined\",\"confirm\":true}",
             order);
    assert_int_equal(h_post_json(&srv, "/v1/payments", srv.merchant_auth, NULL, body, &r), 0);
    assert_int_equal(r.status, 402);
    assert_string_equal(h_err_code(&r), "card_declined");
    h_resp_free(&r);

    /* A signed webhook is accepted; the same with one byte changed is not. */
    char event[512], sig[256];
    snprintf(event, sizeof event,
             "{\"id\":\"evt_example_1\",\"type\":\"payment.succeeded\",\"created\":%lld,\"data\":{\"payment\":\"%s\","
             "\"reference\":\"%s\",\"amount\":2000,\"currency\":\"USD\"}}",
             (long long)time(NULL), ref, pay_id);
    example_sign(event, sig, sizeof sig);
    const char *headers[] = {sig, NULL};
    h_req wr = {.method = "POST", .path = "/v1/webhooks/example", .content_type = "application/json",
                .body = event, .headers = headers};
    assert_int_equal(h_request_ex(&srv, &wr, &r), 0);
    if (r.status != 200) print_error("webhook: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    h_resp_free(&r);
    event[strlen(event) / 2] ^= 1;
    assert_int_equal(h_request_ex(&srv, &wr, &r), 0);
    assert_int_equal(r.status, 400);
    h_resp_free(&r);

    assert_false(h_log_contains(&srv, EXAMPLE_KEY));
    assert_false(h_log_contains(&srv, EXAMPLE_WHSEC));
    assert_int_equal(h_payd_stop(&srv), 0);
}

static void test_modcheck_passes_the_template_module_against_its_fake(void **state)
{
    (void)state;
    if (!fake_pid) fake_start();
    char conf[PATH_MAX + 32], sample[PATH_MAX + 32];
    snprintf(conf, sizeof conf, "%s/example.conf", tree);
    snprintf(sample, sizeof sample, "%s/example_event.json", tree);
    write_file_fmt(conf,
                   "[server]\nhttp_timeout_ms = 10000\n"
                   "[gateway.example]\nmodule = %s\napi_base = http://127.0.0.1:%d\napi_key = env:EXAMPLE_API_KEY\n"
                   "webhook_secret = env:EXAMPLE_WEBHOOK_SECRET\n",
                   example_so, fake_port);
    write_file_fmt(sample, "{\"id\":\"evt_example_mc\",\"type\":\"payment.succeeded\",\"created\":1700000000,"
                           "\"data\":{\"payment\":\"exp_pay_1\",\"reference\":\"pay_1\",\"amount\":1099,"
                           "\"currency\":\"USD\"}}");
    setenv("EXAMPLE_API_KEY", EXAMPLE_KEY, 1);
    setenv("EXAMPLE_WEBHOOK_SECRET", EXAMPLE_WHSEC, 1);
    const char *args[] = {"--ok-method", "pm_card_visa", "--decline-method", "pm_card_chargeDeclined",
                          "--timeout-key", "api_base", "--timeout-ms", "500", "--webhook-sample", sample,
                          "--webhook-header", "Example-Signature: t={t},v1={hmac-t.body:webhook_secret}", NULL};
    mc_run r;
    modcheck(&r, conf, "gateway.example", args);
    if (r.rc != 0) print_error("modcheck on the template exited %d:\n%s\n", r.rc, r.err);
    assert_int_equal(r.rc, 0);
    for (int i = 0; all_checks[i]; i++) expect_check_status(&r, all_checks[i], "pass");
    EXPECT_CONTAINS(r.err, "PASS  timeout");
    mc_free(&r);
}

int main(void)
{
    if (h_init() != 0) return 1;
    const struct CMUnitTest modcheck_tests[] = {
        cmocka_unit_test(test_modcheck_passes_the_mock_gateway_with_a_valid_json_report),
        cmocka_unit_test(test_modcheck_passes_the_stripe_gateway_against_its_fake),
        cmocka_unit_test(test_modcheck_passes_the_paypal_gateway_against_its_fake_as_the_buyer),
        cmocka_unit_test(test_modcheck_passes_the_shipped_notifiers),
        cmocka_unit_test(test_modcheck_passes_the_manual_gateway),
        cmocka_unit_test(test_modcheck_passes_the_bad_module_when_it_breaks_nothing),
        cmocka_unit_test(test_modcheck_captures_all_on_a_module_without_partial_capture),
        cmocka_unit_test(test_modcheck_fails_each_broken_rule_naming_its_check),
        cmocka_unit_test(test_modcheck_finds_memory_lost_over_init_fini_cycles),
        cmocka_unit_test(test_modcheck_reports_loader_refusals_as_failed_checks),
    };
    const struct CMUnitTest template_tests[] = {
        cmocka_unit_test(test_template_builds_out_of_tree_with_only_sdk_include_and_passes_its_tests),
        cmocka_unit_test(test_template_module_runs_a_checkout_in_payd),
        cmocka_unit_test(test_modcheck_passes_the_template_module_against_its_fake),
    };
    int failed = cmocka_run_group_tests_name("modcheck", modcheck_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("sdk_template", template_tests, template_setup, template_teardown);
    return failed ? 1 : 0;
}
