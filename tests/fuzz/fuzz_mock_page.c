/*
 * tests/fuzz/fuzz_mock_page.c - the pages the mock gateway serves under the
 * public, unauthenticated /mock/ route (mock_pages.c): the path router,
 * the form and query parsers with their URL decoding, the 3-D Secure
 * challenge and its completion, and the redirect built from a return_url
 * the API client chose.
 *
 * The module's sources are linked into this binary and reached through its
 * descriptor (payd_module_v1()->gateway->page), with tests/fuzz/host.c as
 * the host.
 *
 * Input: one mode byte, then the rest ("0".."3" in the seeds):
 *   mode % 4 == 0  raw: "<method>\n<path>\n<query>\n<body>"
 *              1   "<return_url>\n<form body>": a fresh payment with the
 *                  3-D Secure test card is confirmed with that return_url
 *                  (when the module accepts it), its challenge page is
 *                  fetched, then the form body is POSTed to complete it
 *              2   the rest is the query of GET stats
 *              3   the rest is a form body POSTed to a challenge that was
 *                  completed long ago (409) or an unknown one
 * Besides crashes, it aborts when a response has no body or content type,
 * a 303 has no Location, or a Location could split a header (CR, LF).
 */
#include <payd/module.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "fuzz_host.h"

static const payd_module *mod;
static void *state;
static char old_ref[64];
static unsigned long counter;

/*
 * Payments waiting for confirmation, made POOL at a time. The mock keeps
 * every payment and its next-action URL, so an input of mode 1 ends with
 * more mallocs than frees, and libFuzzer then runs LeakSanitizer over the
 * whole heap after it: milliseconds per input once the mock holds
 * thousands of payments. So the payments are made in batches, and each
 * mode 1 input frees BALLAST blocks the harness allocated with the batch,
 * which keeps its malloc and free counts even. The other modes keep the
 * per-input leak check.
 */
#define POOL 512
#define BALLAST 16
static char pool[POOL][64];
static size_t pool_left;
static void *ballast[POOL * BALLAST];
static size_t ballast_left;

static void check(const payd_page_res *res, int rc)
{
    if (rc != PAYD_OK)
        return;
    if ((res->body == NULL && res->body_len != 0) || res->content_type == NULL ||
        (res->status == 303 && res->location == NULL) ||
        (res->location != NULL && strpbrk(res->location, "\r\n") != NULL) ||
        res->status < 100 || res->status > 599) {
        fprintf(stderr, "INVARIANT: malformed page response (status %d)\n",
                res->status);
        abort();
    }
    if (res->body != NULL && res->body_len > 0) {
        /* Read the last byte: ASan checks that body_len bytes exist. */
        volatile char last = res->body[res->body_len - 1];

        (void)last;
    }
}

static int page(const char *method, const char *path, const char *query,
                const char *body, size_t body_len, payd_page_res *res,
                payd_arena *a)
{
    payd_page_req req = {.struct_size = sizeof req,
                         .method = method,
                         .path = path,
                         .query = query,
                         .body = body,
                         .body_len = body_len};
    payd_error e;
    int rc;

    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    memset(&e, 0, sizeof e);
    rc = mod->gateway->page(state, &req, res, a, &e);
    check(res, rc);
    if (getenv("PAYD_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "%s %s -> rc %d status %d location %s\n", method, path,
                rc, res->status, res->location ? res->location : "-");
    return rc;
}

/* Create a 3-D Secure payment (confirmed at once when `confirm`); its
 * ref into `ref`. */
static int new_payment(const char *return_url, int confirm, char *ref,
                       size_t refsz)
{
    char key[64], pay[64];
    payd_payment_req req;
    payd_payment_res res;
    payd_error e;
    payd_arena *a = fuzz_arena_new();
    int rc;

    counter++;
    snprintf(key, sizeof key, "payd-fuzz-%lu-create-1", counter);
    snprintf(pay, sizeof pay, "pay_fuzz%lu", counter);
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.payment_id = pay;
    req.order_id = "ord_fuzz";
    req.idempotency_key = key;
    req.amount = 1234;
    req.currency = "EUR";
    req.currency_exponent = 2;
    req.payment_method = "pm_card_threeDSecure2Required";
    req.confirm = confirm;
    req.return_url = return_url;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    memset(&e, 0, sizeof e);
    rc = mod->gateway->create(state, &req, &res, a, &e);
    if (rc == PAYD_OK && res.provider_ref != NULL)
        snprintf(ref, refsz, "%s", res.provider_ref);
    else
        rc = -1;
    fuzz_arena_free(a);
    return rc;
}

/* Confirm a pooled payment with `return_url`: it then waits for the
 * challenge. 0 with its ref, or -1 (the module refused the URL). */
static int new_challenge(const char *return_url, char *ref, size_t refsz)
{
    payd_payment_req req;
    payd_payment_res res;
    payd_error e;
    payd_arena *a;
    int rc;

    if (pool_left == 0) {
        while (pool_left < POOL &&
               new_payment("https://placeholder.example/", 0, pool[pool_left],
                           sizeof pool[0]) == 0)
            pool_left++;
        if (pool_left == 0)
            return -1;
        while (ballast_left < POOL * BALLAST)
            ballast[ballast_left++] = malloc(1);
    }
    for (int i = 0; i < BALLAST && ballast_left > 0; i++)
        free(ballast[--ballast_left]);
    snprintf(ref, refsz, "%s", pool[--pool_left]);
    a = fuzz_arena_new();
    memset(&req, 0, sizeof req);
    req.struct_size = sizeof req;
    req.provider_ref = ref;
    req.payment_id = "pay_fuzz";
    req.amount = 1234;
    req.currency = "EUR";
    req.currency_exponent = 2;
    req.return_url = return_url;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    memset(&e, 0, sizeof e);
    rc = mod->gateway->confirm(state, &req, &res, a, &e);
    fuzz_arena_free(a);
    return rc == PAYD_OK ? 0 : -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fake_host_reset();
    fake_config_set("payd.instance", "mock_fuzz");
    fake_config_set("payd.public_url", "http://127.0.0.1:8080/");
    fake_config_set("webhook_secret", "whsec_fuzz");
    fake_config_set("webhooks", "off");
    fake_config_set("settle_ms", "3600000");
    mod = payd_module_v1();
    state = fuzz_gateway_start(mod, "fuzz_mock_page");
    /* One challenge, completed at once: mode 3 posts to it. */
    if (new_payment("https://shop.example/done", 1, old_ref, sizeof old_ref) == 0) {
        char path[96];
        payd_page_res res;
        payd_arena *a = fuzz_arena_new();

        snprintf(path, sizeof path, "3ds/%s", old_ref);
        page("POST", path, NULL, "action=approve", 14, &res, a);
        fuzz_arena_free(a);
    }
    return 0;
}

/* The next line of [*p, end) as a NUL-terminated malloc'd string. */
static char *next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);

    if (s == NULL)
        abort();
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl != NULL ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p, *end;
    payd_page_res res;
    payd_arena *a;
    char *body;
    size_t body_len;
    int mode;

    if (size < 1)
        return 0;
    mode = data[0] % 4;
    p = (const char *)data + 1;
    end = (const char *)data + size;
    a = fuzz_arena_new();

    if (mode == 0) {
        char *method = next_line(&p, end);
        char *path = next_line(&p, end);
        char *query = next_line(&p, end);

        body_len = (size_t)(end - p);
        body = malloc(body_len ? body_len : 1);
        if (body == NULL)
            abort();
        memcpy(body, p, body_len);
        page(method, path, query[0] != '\0' ? query : NULL,
             body_len > 0 ? body : NULL, body_len, &res, a);
        free(method);
        free(path);
        free(query);
        free(body);
    } else if (mode == 1) {
        char *url = next_line(&p, end);
        char ref[64], path[96];

        body_len = (size_t)(end - p);
        body = malloc(body_len ? body_len : 1);
        if (body == NULL)
            abort();
        memcpy(body, p, body_len);
        if (new_challenge(url[0] != '\0' ? url : NULL, ref, sizeof ref) == 0) {
            snprintf(path, sizeof path, "3ds/%s", ref);
            page("GET", path, NULL, NULL, 0, &res, a);
            page("POST", path, NULL, body, body_len, &res, a);
        }
        free(url);
        free(body);
    } else if (mode == 2) {
        char *query = malloc((size_t)(end - p) + 1);

        if (query == NULL)
            abort();
        memcpy(query, p, (size_t)(end - p));
        query[end - p] = '\0';
        page("GET", "stats", query, NULL, 0, &res, a);
        free(query);
    } else {
        char path[96];

        body_len = (size_t)(end - p);
        body = malloc(body_len ? body_len : 1);
        if (body == NULL)
            abort();
        memcpy(body, p, body_len);
        snprintf(path, sizeof path, "3ds/%s", old_ref);
        page("POST", path, NULL, body, body_len, &res, a);
        free(body);
    }
    fuzz_arena_free(a);
    return 0;
}
