/*
 * test_notifier.c - tests for the template notifier, with no payd: the
 * module is loaded from its .so, given the test host of ../testhost.h, and
 * host->http lands in a fake receiver that records the request and answers
 * with the status the test chose.
 *
 *     make test                       (or: ./test_notifier ./example_notifier.so)
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>

#include "testhost.h"

#define SECRET "whsec_notifier_0123456789abcdef"
#define URL "https://shop.example/hooks/payd"

static int checks, failures;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* The fake receiver: what it got, and what it answers. */
typedef struct receiver {
    long answer;                  /* HTTP status; 0 = no answer at all */
    int calls;
    char method[8];
    char url[256];
    char body[4096];
    char event_id[64];
    char signature[160];
} receiver;

static int receive(void *user, const payd_http_request *req, payd_http_response *res, payd_arena *a)
{
    receiver *r = user;
    r->calls++;
    snprintf(r->method, sizeof r->method, "%s", req->method);
    snprintf(r->url, sizeof r->url, "%s", req->url);
    snprintf(r->body, sizeof r->body, "%.*s", (int)req->body_len, req->body);
    for (size_t i = 0; i < req->header_count; i++) {
        if (!strcmp(req->headers[i].name, "Example-Event-Id"))
            snprintf(r->event_id, sizeof r->event_id, "%s", req->headers[i].value);
        if (!strcmp(req->headers[i].name, "Example-Signature"))
            snprintf(r->signature, sizeof r->signature, "%s", req->headers[i].value);
    }
    if (!r->answer) return PAYD_E_TRANSIENT;
    res->status = r->answer;
    res->body = th_strdup(a, "");
    return 0;
}

static const payd_module *module;

typedef struct nt {
    th_host t;
    receiver rcv;
    void *state;
    int rc;
    payd_error e;
} nt;

static void nt_open(nt *n, const char *const *config)
{
    memset(n, 0, sizeof *n);
    th_init(&n->t, config);
    n->t.quiet = 1;
    n->t.http = receive;
    n->t.http_user = &n->rcv;
    n->rc = module->init(&n->t.host, th_config(&n->t), &n->state, &n->e);
}

static void nt_close(nt *n)
{
    if (n->rc == 0 && module->fini) module->fini(n->state);
    th_fini(&n->t);
}

static const char *const good_config[] = {"url", URL, "secret", SECRET, NULL};

static int deliver(nt *n, long answer, payd_error *e)
{
    n->rcv.answer = answer;
    payd_notification ev = {.struct_size = sizeof ev, .event_id = "evt_123", .event_type = "order.paid",
                            .created_at = 1700000000, .object_json = "{\"id\":\"ord_1\"}",
                            .event_json = "{\"id\":\"evt_123\",\"type\":\"order.paid\",\"data\":{\"id\":\"ord_1\"}}",
                            .attempt = 1};
    payd_arena *a = th_arena_new();
    memset(e, 0, sizeof *e);
    int rc = module->notifier->notify(n->state, &ev, a, e);
    th_arena_free(a);
    return rc;
}

static void test_init_checks_config(void)
{
    nt n;
    nt_open(&n, good_config);
    CHECK(n.rc == 0, "init: %s", n.e.message);
    CHECK(!th_unread_key(&n.t), "key %s never read", th_unread_key(&n.t));
    nt_close(&n);
    static const char *const short_secret[] = {"url", URL, "secret", "short", NULL};
    nt_open(&n, short_secret);
    CHECK(n.rc == PAYD_E_INVALID && strstr(n.e.message, "secret"), "short secret: %s", n.e.message);
    nt_close(&n);
}

static void test_delivery_is_signed_and_identified(void)
{
    nt n;
    nt_open(&n, good_config);
    payd_error e;
    int rc = deliver(&n, 200, &e);
    CHECK(rc == 0, "200: rc %d %s", rc, e.message);
    CHECK(!strcmp(n.rcv.method, "POST") && !strcmp(n.rcv.url, URL), "%s %s", n.rcv.method, n.rcv.url);
    CHECK(!strcmp(n.rcv.event_id, "evt_123"), "event id header '%s'", n.rcv.event_id);
    CHECK(strstr(n.rcv.body, "\"order.paid\"") != NULL, "body %s", n.rcv.body);
    /* What a receiver does: recompute HMAC(secret, "<t>.<body>"). */
    long long t = 0;
    char v1[65] = "";
    CHECK(sscanf(n.rcv.signature, "t=%lld,v1=%64s", &t, v1) == 2, "signature '%s'", n.rcv.signature);
    char msg[8192], hex[65];
    int len = snprintf(msg, sizeof msg, "%lld.%s", t, n.rcv.body);
    uint8_t mac[32];
    th_hmac_sha256_svc(SECRET, strlen(SECRET), msg, (size_t)len, mac);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    CHECK(!strcmp(hex, v1), "the signature does not verify");
    CHECK(!th_log_contains(&n.t, SECRET), "the secret was logged");
    nt_close(&n);
}

static void test_retryable_answers_are_transient(void)
{
    nt n;
    nt_open(&n, good_config);
    payd_error e;
    static const long retry[] = {0, 408, 429, 500, 503};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        CHECK(deliver(&n, retry[i], &e) == PAYD_E_TRANSIENT, "answer %ld must be retried", retry[i]);
    nt_close(&n);
}

static void test_refusals_are_dead_lettered(void)
{
    nt n;
    nt_open(&n, good_config);
    payd_error e;
    static const long refuse[] = {301, 400, 404, 410};
    for (size_t i = 0; i < sizeof refuse / sizeof refuse[0]; i++) {
        int rc = deliver(&n, refuse[i], &e);
        CHECK(rc != 0 && rc != PAYD_E_TRANSIENT, "answer %ld must be permanent: rc %d", refuse[i], rc);
        CHECK(!strstr(e.message, SECRET), "the secret leaked into an error");
    }
    nt_close(&n);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "./example_notifier.so";
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        fprintf(stderr, "cannot load %s: %s\n", path, dlerror());
        return 1;
    }
    payd_entry_fn entry = (payd_entry_fn)(uintptr_t)dlsym(so, PAYD_ENTRY_SYMBOL);
    module = entry ? entry() : NULL;
    if (!module || module->abi_major != PAYD_ABI_MAJOR || module->kind != PAYD_KIND_NOTIFIER) {
        fprintf(stderr, "%s is not a payd ABI %d notifier\n", path, PAYD_ABI_MAJOR);
        return 1;
    }
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"init checks its config", test_init_checks_config},
        {"a delivery is signed and carries the event id", test_delivery_is_signed_and_identified},
        {"no answer, 408, 429 and 5xx are retried", test_retryable_answers_are_transient},
        {"redirects and 4xx are dead-lettered", test_refusals_are_dead_lettered},
    };
    size_t count = sizeof tests / sizeof tests[0];
    printf("1..%zu\n", count);
    for (size_t i = 0; i < count; i++) {
        int before = failures;
        tests[i].fn();
        printf("%s %zu - %s\n", failures == before ? "ok" : "not ok", i + 1, tests[i].name);
    }
    printf("# %d checks, %d failed\n", checks, failures);
    dlclose(so);
    return failures ? 1 : 0;
}
