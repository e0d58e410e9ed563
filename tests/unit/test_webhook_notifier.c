/*
 * tests/unit/test_webhook_notifier.c - the webhook notifier, through its ABI.
 *
 * The module is dlopen'ed as payd loads it (PAYD_WEBHOOK_SO, else
 * $PAYD_BUILD/modules/webhook.so, else build/modules/webhook.so) and run
 * against the fake host (fake_host.c). The fake's http answers with
 * scripted statuses; this file wraps it to record every header of every
 * request, which the fake itself does not keep.
 *
 * The receiver-side verification snippets in modules/webhook/README.md are
 * run too (python3 and node, when installed), against signatures the module
 * made, so the README cannot drift from what payd sends.
 *
 * The last tests are end to end: the module posts through the real host
 * HTTP client (server/host.c, libcurl) to the real receiver fake
 * (BUILD/fakes/hook_receiver), started on a free port for each test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "arena.h"
#include "fake_host.h"
#include "fake_sink.h"
#include "host.h"

#define SECRET "whsec_unit_SECRET_d41d8cd98f00b204"
#define URL "https://hooks.example.test/payd/in?token=TOPSECRETTOKEN"
#define EVENT_ID "evt_01HX5M7Q2K8Z"
#define BODY                                                                        \
    "{\"id\":\"" EVENT_ID "\",\"object\":\"event\",\"type\":\"order.paid\","       \
    "\"object_type\":\"order\",\"object_id\":\"ord_1\",\"order_id\":\"ord_1\","    \
    "\"created\":1767225600,\"request_id\":\"req_1\",\"data\":{\"object\":"        \
    "{\"id\":\"ord_1\",\"number\":\"ORD-2026-000123\",\"currency\":\"EUR\","       \
    "\"total\":1999,\"items\":[{\"name\":\"Caf\xc3\xa9 cr\xc3\xa8me\",\"quantity\":1}]}}}"

static void *dl;
static const payd_module *mod;
static void *st;
static payd_arena *call_arena;

/* ------------------------------------------------------------------------ */
/* A host that records whole requests                                       */
/* ------------------------------------------------------------------------ */

#define MAX_HEADERS 32

typedef struct recorded {
    char method[16];
    char url[1024];
    long timeout_ms;
    size_t nheaders;
    char names[MAX_HEADERS][64];
    char values[MAX_HEADERS][512];
    char *body;
    size_t body_len;
} recorded;

static recorded last;
static size_t ncalls;
static payd_host rec_host;

static int rec_http(const payd_host *h, const payd_http_request *req,
                    payd_http_response *res, payd_arena *a, payd_error *e)
{
    size_t i;

    (void)h;
    free(last.body);
    memset(&last, 0, sizeof last);
    snprintf(last.method, sizeof last.method, "%s", req->method);
    snprintf(last.url, sizeof last.url, "%s", req->url);
    last.timeout_ms = req->timeout_ms;
    for (i = 0; i < req->header_count && i < MAX_HEADERS; i++) {
        snprintf(last.names[i], sizeof last.names[i], "%s", req->headers[i].name);
        snprintf(last.values[i], sizeof last.values[i], "%s", req->headers[i].value);
    }
    last.nheaders = i;
    last.body = malloc(req->body_len + 1);
    memcpy(last.body, req->body, req->body_len);
    last.body[req->body_len] = '\0';
    last.body_len = req->body_len;
    ncalls++;
    return fake_host()->http(fake_host(), req, res, a, e);
}

static const char *last_header(const char *name)
{
    size_t i;

    for (i = 0; i < last.nheaders; i++)
        if (strcasecmp(last.names[i], name) == 0)
            return last.values[i];
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    mod = fake_module_load("webhook", &dl);
    if (mod == NULL)
        return -1;
    rec_host = *fake_host();
    rec_host.http = rec_http;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(last.body);
    last.body = NULL;
    fake_module_unload(dl);
    return 0;
}

static int start(payd_error *e)
{
    return fake_module_start(mod, &rec_host, &st, e);
}

static void stop_instance(void)
{
    fake_module_stop(mod, &st);
}

static int setup(void **state)
{
    payd_error e;

    (void)state;
    fake_host_reset();
    fake_config_set("payd.instance", "shop_hooks");
    fake_config_set("url", URL);
    fake_config_set("secret", SECRET);
    ncalls = 0;
    call_arena = fake_arena_new();
    return start(&e) == PAYD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    stop_instance();
    fake_arena_free(call_arena);
    call_arena = NULL;
    return 0;
}

static int notify_body(const char *body, int attempt, payd_error *e)
{
    payd_notification n;

    memset(&n, 0, sizeof n);
    n.struct_size = (uint32_t)sizeof n;
    n.event_id = EVENT_ID;
    n.event_type = "order.paid";
    n.created_at = 1767225600;
    n.object_json = "{}";
    n.event_json = body;
    n.attempt = attempt;
    memset(e, 0, sizeof *e);
    return mod->notifier->notify(st, &n, call_arena, e);
}

static int notify_attempt(int attempt, payd_error *e)
{
    return notify_body(BODY, attempt, e);
}

static int notify_status(long status, payd_error *e)
{
    fake_http_script(&status, 1);
    return notify_attempt(1, e);
}

/* Verify `header` over `body` with `secret` the way a receiver must. */
static int verify(const char *header, const char *body, size_t len, const char *secret,
                  long long *t_out)
{
    long long t;
    char hex[65], expected[65];
    int consumed = 0;
    unsigned char mac[32];
    unsigned int maclen = sizeof mac;
    char prefix[32];
    size_t plen, i;

    if (sscanf(header, "t=%lld,v1=%64[0-9a-f]%n", &t, hex, &consumed) != 2 ||
        header[consumed] != '\0' || strlen(hex) != 64)
        return 0;
    plen = (size_t)snprintf(prefix, sizeof prefix, "%lld.", t);
    char *payload = malloc(plen + len);
    memcpy(payload, prefix, plen);
    memcpy(payload + plen, body, len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)payload, plen + len, mac,
         &maclen);
    free(payload);
    for (i = 0; i < 32; i++)
        snprintf(expected + 2 * i, 3, "%02x", mac[i]);
    if (t_out != NULL)
        *t_out = t;
    return CRYPTO_memcmp(expected, hex, 64) == 0;
}

/* ------------------------------------------------------------------------ */
/* Config                                                                   */
/* ------------------------------------------------------------------------ */

static void test_init_requires_url_and_secret(void **state)
{
    payd_error e;

    (void)state;
    stop_instance();
    fake_config_set("url", NULL);
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "url is required"));

    fake_config_set("url", URL);
    fake_config_set("secret", NULL);
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "secret is required"));
}

static void test_init_rejects_bad_values_naming_the_key(void **state)
{
    static const struct {
        const char *key, *value, *named;
    } bad[] = {
        {"url", "ftp://hooks.example.test/", "url"},
        {"url", "https://", "url"},
        {"url", "https://hooks.example.test/a b", "url"},
        {"url", "hooks.example.test/in", "url"},
        {"timeout_ms", "50", "timeout_ms"},
        {"timeout_ms", "10s", "timeout_ms"},
        {"timeout_ms", "999999999", "timeout_ms"},
        {"user_agent", "evil\r\nX-Injected: 1", "user_agent"},
    };
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stop_instance();
        fake_config_set("url", URL);
        fake_config_set("timeout_ms", NULL);
        fake_config_set("user_agent", NULL);
        fake_config_set(bad[i].key, bad[i].value);
        assert_int_equal(start(&e), PAYD_E_INVALID);
        assert_non_null(strstr(e.message, bad[i].named));
    }
}

static void test_init_error_never_echoes_the_secret(void **state)
{
    char big[5000];
    payd_error e;

    (void)state;
    stop_instance();
    memset(big, 'S', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "whsec_MARK", 10);
    fake_config_set("secret", big);
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "secret"));
    assert_null(strstr(e.message, "whsec_MARK"));
    assert_false(fake_log_contains("whsec_MARK"));
}

/* ------------------------------------------------------------------------ */
/* The request                                                              */
/* ------------------------------------------------------------------------ */

static void test_notify_posts_the_envelope_verbatim_with_event_headers(void **state)
{
    payd_error e;

    (void)state;
    assert_int_equal(notify_attempt(3, &e), PAYD_OK);
    assert_int_equal(ncalls, 1);
    assert_string_equal(last.method, "POST");
    assert_string_equal(last.url, URL);
    assert_int_equal(last.body_len, strlen(BODY));
    assert_memory_equal(last.body, BODY, strlen(BODY));
    assert_string_equal(last_header("Content-Type"), "application/json");
    assert_string_equal(last_header("Payd-Event-Id"), EVENT_ID);
    assert_string_equal(last_header("Payd-Event-Type"), "order.paid");
    assert_string_equal(last_header("Payd-Delivery-Attempt"), "3");
    assert_string_equal(last_header("User-Agent"), "payd-webhook/1.0.0");
    assert_int_equal(last.timeout_ms, 10000);
}

static void test_timeout_and_user_agent_come_from_config(void **state)
{
    payd_error e;

    (void)state;
    stop_instance();
    fake_config_set("timeout_ms", "2500");
    fake_config_set("user_agent", "acme-payd/2");
    assert_int_equal(start(&e), PAYD_OK);
    assert_int_equal(notify_attempt(1, &e), PAYD_OK);
    assert_int_equal(last.timeout_ms, 2500);
    assert_string_equal(last_header("User-Agent"), "acme-payd/2");
}

static void test_signature_header_is_t_and_v1_hmac_of_t_dot_body(void **state)
{
    payd_error e;
    const char *sig;
    long long t;
    char tampered[sizeof BODY];

    (void)state;
    assert_int_equal(notify_attempt(1, &e), PAYD_OK);
    sig = last_header("Payd-Signature");
    assert_non_null(sig);
    /* Exactly "t=<digits>,v1=<64 lower-case hex>", HMAC over "<t>.<body>". */
    assert_true(verify(sig, last.body, last.body_len, SECRET, &t));
    assert_true(t >= (long long)time(NULL) - 5 && t <= (long long)time(NULL) + 5);

    /* Round trip fails for a changed body or another secret. */
    memcpy(tampered, BODY, sizeof BODY);
    tampered[strlen(BODY) - 3] = 'X';
    assert_false(verify(sig, tampered, strlen(tampered), SECRET, NULL));
    assert_false(verify(sig, last.body, last.body_len, SECRET "x", NULL));
}

static void test_signature_time_is_the_host_clock_at_each_attempt(void **state)
{
    payd_error e;
    long long t1, t2;
    char first[512];

    (void)state;
    assert_int_equal(notify_attempt(1, &e), PAYD_OK);
    snprintf(first, sizeof first, "%s", last_header("Payd-Signature"));
    assert_true(verify(first, last.body, last.body_len, SECRET, &t1));
    fake_clock_shift(3600);
    assert_int_equal(notify_attempt(2, &e), PAYD_OK);
    assert_true(verify(last_header("Payd-Signature"), last.body, last.body_len, SECRET, &t2));
    assert_true(t2 - t1 >= 3599 && t2 - t1 <= 3601);
    assert_string_not_equal(first, last_header("Payd-Signature"));
}

/* ------------------------------------------------------------------------ */
/* What the receiver's answer means                                         */
/* ------------------------------------------------------------------------ */

static void test_2xx_is_delivered(void **state)
{
    static const long ok[] = {200, 201, 202, 204, 299};
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(notify_status(ok[i], &e), PAYD_OK);
}

static void test_4xx_is_a_permanent_failure(void **state)
{
    static const long refused[] = {400, 401, 403, 404, 410, 422};
    char want[64];
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_int_equal(notify_status(refused[i], &e), PAYD_E_PROVIDER);
        assert_int_equal(e.code, PAYD_E_PROVIDER);
        snprintf(want, sizeof want, "receiver answered %ld", refused[i]);
        assert_non_null(strstr(e.message, want));
    }
}

static void test_408_429_and_5xx_are_transient(void **state)
{
    static const long retry[] = {408, 429, 500, 502, 503, 504};
    char want[64];
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof retry / sizeof retry[0]; i++) {
        assert_int_equal(notify_status(retry[i], &e), PAYD_E_TRANSIENT);
        assert_int_equal(e.code, PAYD_E_TRANSIENT);
        snprintf(want, sizeof want, "receiver answered %ld", retry[i]);
        assert_non_null(strstr(e.message, want));
    }
}

static void test_transport_error_is_transient(void **state)
{
    payd_error e;

    (void)state;
    /* 0 = the fake host's "connection refused". */
    assert_int_equal(notify_status(0, &e), PAYD_E_TRANSIENT);
    assert_int_equal(e.code, PAYD_E_TRANSIENT);
    assert_true(e.message[0] != '\0');
}

static void test_redirect_is_permanent_and_says_why(void **state)
{
    payd_error e;

    (void)state;
    assert_int_equal(notify_status(301, &e), PAYD_E_PROVIDER);
    assert_non_null(strstr(e.message, "redirects are not followed"));
}

static void test_secret_and_url_token_never_reach_logs_or_errors(void **state)
{
    static const long statuses[] = {200, 404, 503, 0, 301};
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        notify_status(statuses[i], &e);
        assert_null(strstr(e.message, SECRET));
        assert_null(strstr(e.message, "TOPSECRETTOKEN"));
    }
    assert_false(fake_log_contains(SECRET));
    assert_false(fake_log_contains("TOPSECRETTOKEN"));
    /* The target is logged as scheme://host only. */
    assert_true(fake_log_contains("https://hooks.example.test"));
}

static void test_notification_without_envelope_is_invalid(void **state)
{
    payd_notification n;
    payd_error e;

    (void)state;
    memset(&n, 0, sizeof n);
    n.struct_size = (uint32_t)sizeof n;
    n.event_id = EVENT_ID;
    n.event_type = "order.paid";
    memset(&e, 0, sizeof e);
    assert_int_equal(mod->notifier->notify(st, &n, call_arena, &e), PAYD_E_INVALID);
    assert_int_equal(ncalls, 0);
}

/* ------------------------------------------------------------------------ */
/* The README's receiver snippets                                           */
/* ------------------------------------------------------------------------ */

/* The fenced block after "<!-- verify-snippet:<lang>" in the README, or
 * NULL. malloc'd. */
static char *readme_snippet(const char *lang)
{
    char path[4096], marker[64];
    const char *root = getenv("PAYD_ROOT");
    FILE *f;
    char *text, *m, *start, *end;
    long n;

    snprintf(path, sizeof path, "%s/modules/webhook/README.md", root ? root : ".");
    f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    text = calloc(1, (size_t)n + 1);
    if (fread(text, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    fclose(f);
    snprintf(marker, sizeof marker, "<!-- verify-snippet:%s", lang);
    m = strstr(text, marker);
    start = m ? strstr(m, "```") : NULL;
    start = start ? strchr(start, '\n') : NULL;
    end = start ? strstr(start, "\n```") : NULL;
    if (end == NULL) {
        free(text);
        return NULL;
    }
    memmove(text, start + 1, (size_t)(end - start));
    text[end - start] = '\0';
    return text;
}

static int have(const char *prog)
{
    char cmd[256];

    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Run the README snippet for `lang` with `harness` appended, against a
 * fresh and a stale signature the module made. Asserts it prints "ok". */
static void run_snippet(const char *lang, const char *interp, const char *ext,
                        const char *harness)
{
    char dir[] = "/tmp/payd-webhook-snippet.XXXXXX";
    char script[4096], bodyf[4096], cmd[16384], out[256] = "";
    char fresh[512], stale[512];
    payd_error e;
    char *snippet;
    FILE *f, *p;

    if (!have(interp)) {
        fprintf(stderr, "# %s not installed: README %s snippet not run\n", interp, lang);
        skip();
    }
    snippet = readme_snippet(lang);
    assert_non_null(snippet);

    assert_int_equal(notify_attempt(1, &e), PAYD_OK);
    snprintf(fresh, sizeof fresh, "%s", last_header("Payd-Signature"));
    fake_clock_shift(-3600);
    assert_int_equal(notify_attempt(1, &e), PAYD_OK);
    snprintf(stale, sizeof stale, "%s", last_header("Payd-Signature"));

    assert_non_null(mkdtemp(dir));
    snprintf(script, sizeof script, "%s/verify.%s", dir, ext);
    snprintf(bodyf, sizeof bodyf, "%s/body.json", dir);
    f = fopen(script, "w");
    fputs(snippet, f);
    fputs(harness, f);
    fclose(f);
    f = fopen(bodyf, "wb");
    fwrite(BODY, 1, strlen(BODY), f);
    fclose(f);
    free(snippet);

    snprintf(cmd, sizeof cmd, "%s '%s' '%s' '%s' '%s' '%s' 2>&1", interp, script, bodyf, fresh,
             stale, SECRET);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (fgets(out, sizeof out, p) == NULL)
        out[0] = '\0';
    pclose(p);
    unlink(script);
    unlink(bodyf);
    rmdir(dir);
    if (strncmp(out, "ok", 2) != 0)
        fprintf(stderr, "# %s snippet said: %s\n", lang, out);
    assert_true(strncmp(out, "ok", 2) == 0);
}

static void test_readme_python_snippet_verifies_real_signatures(void **state)
{
    (void)state;
    run_snippet("python", "python3", "py",
                "\nimport sys\n"
                "body = open(sys.argv[1], 'rb').read()\n"
                "fresh, stale, secret = sys.argv[2], sys.argv[3], sys.argv[4]\n"
                "good = payd_verify(body, fresh, secret)\n"
                "bad = (payd_verify(body + b' ', fresh, secret) or\n"
                "       payd_verify(body, fresh, secret + 'x') or\n"
                "       payd_verify(body, stale, secret))\n"
                "print('ok' if good and not bad else 'FAIL')\n");
}

static void test_readme_node_snippet_verifies_real_signatures(void **state)
{
    (void)state;
    run_snippet("node", "node", "js",
                "\nconst fs = require('fs');\n"
                "const body = fs.readFileSync(process.argv[2]);\n"
                "const [fresh, stale, secret] = process.argv.slice(3);\n"
                "const good = paydVerify(body, fresh, secret);\n"
                "const bad = paydVerify(Buffer.concat([body, Buffer.from(' ')]), fresh, secret) ||\n"
                "  paydVerify(body, fresh, secret + 'x') || paydVerify(body, stale, secret);\n"
                "console.log(good && !bad ? 'ok' : 'FAIL');\n");
}

/* ------------------------------------------------------------------------ */
/* End to end: real host HTTP client, real hook receiver                    */
/* ------------------------------------------------------------------------ */

static payd_host e2e_host;
static host_instance e2e_instance = {"notifier.hooks", "payd:notifier.hooks:"};

/* The value of `name` in a stored request's header block, or NULL. */
static char *request_header(char *req, const char *name, char *out, size_t outsz)
{
    char *end = strstr(req, "\r\n\r\n"), *p = req;
    size_t nl = strlen(name);

    while (p != NULL && p < end) {
        p = strstr(p, "\r\n");
        if (p == NULL || p >= end)
            break;
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            snprintf(out, outsz, "%.*s", (int)strcspn(p + nl + 2, "\r"), p + nl + 2);
            return out;
        }
    }
    return NULL;
}

static int e2e_setup(void **state)
{
    (void)state;
    fake_host_reset();
    host_global_init(NULL, 10000);
    fake_real_http_bind(&e2e_instance);
    e2e_host = *fake_host();
    e2e_host.http = fake_real_http;
    fake_config_set("secret", SECRET);
    ncalls = 0;
    call_arena = fake_arena_new();
    st = NULL;
    return 0;
}

static int e2e_teardown(void **state)
{
    teardown(state);
    host_global_fini();
    return 0;
}

static void e2e_start(const fake_sink *r)
{
    char url[128];
    payd_error e;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/hooks/payd", r->port);
    fake_config_set("url", url);
    fake_config_set("timeout_ms", "5000");
    memset(&e, 0, sizeof e);
    assert_int_equal(mod->init(&e2e_host, fake_config(), &st, &e), PAYD_OK);
}

static void test_e2e_receiver_gets_a_verifiable_signed_post(void **state)
{
    fake_sink r = {0};
    payd_error e;
    char big[8192], *req, *body, hdr[512];
    size_t len;

    (void)state;
    /* Over 1 KiB, where libcurl would otherwise wait for "100 Continue". */
    snprintf(big, sizeof big, "{\"id\":\"%s\",\"type\":\"order.paid\",\"pad\":\"%04000d\"}",
             EVENT_ID, 7);
    fake_sink_start(&r, "hook_receiver", NULL);
    e2e_start(&r);
    assert_int_equal(notify_body(big, 2, &e), PAYD_OK);
    req = fake_sink_file(&r, 1, "http", &len);
    assert_non_null(req);
    assert_true(strncmp(req, "POST /hooks/payd HTTP/1.1\r\n", 27) == 0);
    body = strstr(req, "\r\n\r\n") + 4;
    assert_string_equal(body, big);
    assert_non_null(request_header(req, "Payd-Signature", hdr, sizeof hdr));
    assert_true(verify(hdr, body, strlen(body), SECRET, NULL));
    assert_non_null(request_header(req, "Payd-Event-Id", hdr, sizeof hdr));
    assert_string_equal(hdr, EVENT_ID);
    assert_non_null(request_header(req, "Payd-Delivery-Attempt", hdr, sizeof hdr));
    assert_string_equal(hdr, "2");
    assert_null(request_header(req, "Expect", hdr, sizeof hdr));
    free(req);
    fake_sink_stop(&r);
}

static void test_e2e_receiver_statuses_map_to_retry_or_give_up(void **state)
{
    static const char *const fail_503[] = {"--fail-first", "1", "--status", "503", NULL};
    static const char *const always_404[] = {"--status", "404", NULL};
    fake_sink r = {0};
    payd_error e;

    (void)state;
    fake_sink_start(&r, "hook_receiver", fail_503);
    e2e_start(&r);
    assert_int_equal(notify_attempt(1, &e), PAYD_E_TRANSIENT);
    assert_non_null(strstr(e.message, "receiver answered 503"));
    assert_int_equal(notify_attempt(2, &e), PAYD_OK);
    stop_instance();
    fake_sink_stop(&r);

    fake_sink_start(&r, "hook_receiver", always_404);
    e2e_start(&r);
    assert_int_equal(notify_attempt(1, &e), PAYD_E_PROVIDER);
    assert_non_null(strstr(e.message, "receiver answered 404"));
    stop_instance();
    fake_sink_stop(&r);

    /* Nobody listening any more: a connection error, retried later. */
    e2e_start(&r);
    assert_int_equal(notify_attempt(1, &e), PAYD_E_TRANSIENT);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define E2E(f) cmocka_unit_test_setup_teardown(f, e2e_setup, e2e_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_requires_url_and_secret),
        T(test_init_rejects_bad_values_naming_the_key),
        T(test_init_error_never_echoes_the_secret),
        T(test_notify_posts_the_envelope_verbatim_with_event_headers),
        T(test_timeout_and_user_agent_come_from_config),
        T(test_signature_header_is_t_and_v1_hmac_of_t_dot_body),
        T(test_signature_time_is_the_host_clock_at_each_attempt),
        T(test_2xx_is_delivered),
        T(test_4xx_is_a_permanent_failure),
        T(test_408_429_and_5xx_are_transient),
        T(test_transport_error_is_transient),
        T(test_redirect_is_permanent_and_says_why),
        T(test_secret_and_url_token_never_reach_logs_or_errors),
        T(test_notification_without_envelope_is_invalid),
        T(test_readme_python_snippet_verifies_real_signatures),
        T(test_readme_node_snippet_verifies_real_signatures),
        E2E(test_e2e_receiver_gets_a_verifiable_signed_post),
        E2E(test_e2e_receiver_statuses_map_to_retry_or_give_up),
    };

    return cmocka_run_group_tests_name("webhook_notifier", tests, group_setup, group_teardown);
}
