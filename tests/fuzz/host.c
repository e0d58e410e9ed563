/*
 * tests/fuzz/host.c - the host that the module fuzz targets lend a module.
 *
 * It starts from tests/unit/fake_host.c's table (config comes from
 * fake_config_set, crypto from OpenSSL) and changes what matters when
 * fuzzing:
 *   - every arena allocation is its own malloc of exactly the size asked,
 *     so ASan sees a one-byte overrun (fake_host pads each block by one
 *     byte, which would hide a missing terminator);
 *   - the clock is fixed at FUZZ_HOST_NOW, the time the Stripe fixtures in
 *     /work/shared/fixtures/stripe-webhooks.json were signed at, so a
 *     signed seed stays valid and a crash reproduces on any day;
 *   - random bytes are a fixed sequence, for the same reason;
 *   - the v1.1 arena_new/arena_free are provided;
 *   - `http` answers from a function the target installs (by default an
 *     empty 200), so a target can feed response bytes to a module.
 *
 * It also holds what the module targets check alike (starting a gateway,
 * touching every returned string, invariants, the t=/v1= signature and
 * the raw-header input split), so a target keeps only what is its own.
 *
 * Not a fuzz target itself: the Makefile links it into the module targets
 * (tests/fuzz/fuzz_<module>_*.c), which include tests/fuzz/fuzz_host.h.
 */
#include <payd/module.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fake_host.h"
#include "fuzz_host.h"

#define FUZZ_HOST_NOW 1763700000LL

/* One allocation; the data is a separate exact-size malloc. */
typedef struct fuzz_block {
    struct fuzz_block *next;
    void *data;
} fuzz_block;

typedef struct fuzz_arena {
    pthread_mutex_t mu;
    fuzz_block *head;
} fuzz_arena;

payd_arena *fuzz_arena_new(void)
{
    fuzz_arena *a = calloc(1, sizeof *a);

    if (a != NULL)
        pthread_mutex_init(&a->mu, NULL);
    return (payd_arena *)(void *)a;
}

void fuzz_arena_free(payd_arena *pa)
{
    fuzz_arena *a = (fuzz_arena *)(void *)pa;

    if (a == NULL)
        return;
    while (a->head != NULL) {
        fuzz_block *b = a->head;

        a->head = b->next;
        free(b->data);
        free(b);
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static void *fuzz_alloc(payd_arena *pa, size_t size)
{
    fuzz_arena *a = (fuzz_arena *)(void *)pa;
    fuzz_block *b;

    if (a == NULL)
        return NULL;
    b = malloc(sizeof *b);
    if (b == NULL)
        return NULL;
    /* calloc(1, 0) still returns a unique pointer ASan tracks. */
    b->data = calloc(1, size);
    if (b->data == NULL) {
        free(b);
        return NULL;
    }
    pthread_mutex_lock(&a->mu);
    b->next = a->head;
    a->head = b;
    pthread_mutex_unlock(&a->mu);
    return b->data;
}

static char *fuzz_strndup(payd_arena *a, const char *s, size_t n)
{
    char *d;

    /* Like server/arena.c: exactly n bytes, NULs and all. */
    if (s == NULL)
        return NULL;
    d = fuzz_alloc(a, n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *fuzz_strdup(payd_arena *a, const char *s)
{
    return s != NULL ? fuzz_strndup(a, s, strlen(s)) : NULL;
}

static char *fuzz_sprintf(payd_arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = fuzz_alloc(a, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

static char *fuzz_hex_encode(payd_arena *a, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    char *out = fuzz_alloc(a, 2 * len + 1);
    size_t i;

    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
    return out;
}

static char *fuzz_base64_encode(payd_arena *a, const void *data, size_t len)
{
    char *out = fuzz_alloc(a, 4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static long fuzz_base64_decode(payd_arena *a, const char *text, uint8_t **out)
{
    size_t len = strlen(text);
    uint8_t *buf;
    int n;

    if (len % 4 != 0)
        return -1;
    buf = fuzz_alloc(a, len / 4 * 3 + 1);
    if (buf == NULL)
        return -1;
    n = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len);
    if (n < 0)
        return -1;
    if (len > 0 && text[len - 1] == '=')
        n--;
    if (len > 1 && text[len - 2] == '=')
        n--;
    *out = buf;
    return n;
}

static int64_t fuzz_now(const payd_host *h)
{
    (void)h;
    return FUZZ_HOST_NOW;
}

static int64_t fuzz_now_ms(const payd_host *h)
{
    (void)h;
    return FUZZ_HOST_NOW * 1000;
}

/* A fixed stream (splitmix64): reproducible refs and ids. */
static int fuzz_random_bytes(void *buf, size_t len)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t state = 0x9e3779b97f4a7c15ull;
    uint8_t *p = buf;

    pthread_mutex_lock(&mu);
    while (len > 0) {
        uint64_t z = (state += 0x9e3779b97f4a7c15ull);
        size_t k;

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        for (k = 0; k < 8 && len > 0; k++, len--)
            *p++ = (uint8_t)(z >> (8 * k));
    }
    pthread_mutex_unlock(&mu);
    return PAYD_OK;
}

static void fuzz_log(const payd_host *h, int level, const char *fmt, ...)
{
    va_list ap;

    (void)h;
    if (getenv("PAYD_FUZZ_VERBOSE") == NULL)
        return;
    va_start(ap, fmt);
    fprintf(stderr, "[fuzz host %d] ", level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static const char *fuzz_http_header(const payd_http_response *res,
                                    const char *name)
{
    size_t i;

    for (i = 0; res != NULL && i < res->header_count; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

static int fuzz_http_default(const payd_host *h, const payd_http_request *req,
                             payd_http_response *res, payd_arena *a,
                             payd_error *e)
{
    (void)h;
    if (req == NULL || req->url == NULL || req->method == NULL) {
        if (e != NULL)
            e->code = PAYD_E_INVALID;
        return PAYD_E_INVALID;
    }
    if (res != NULL) {
        memset(res, 0, sizeof *res);
        res->struct_size = sizeof *res;
        res->status = 200;
        res->body = a != NULL ? fuzz_strdup(a, "") : NULL;
    }
    return a != NULL ? PAYD_OK : PAYD_E_NOMEM;
}

static fuzz_http_fn fuzz_http_current = fuzz_http_default;

static int fuzz_http(const payd_host *h, const payd_http_request *req,
                     payd_http_response *res, payd_arena *a, payd_error *e)
{
    return fuzz_http_current(h, req, res, a, e);
}

/* Install the function that answers host->http (NULL: an empty 200). */
void fuzz_host_set_http(fuzz_http_fn fn)
{
    fuzz_http_current = fn != NULL ? fn : fuzz_http_default;
}

/* Arena helpers for a module (and the v1.1 table entries). */
void *fuzz_host_alloc(payd_arena *a, size_t size)
{
    return fuzz_alloc(a, size);
}

char *fuzz_host_strndup(payd_arena *a, const char *s, size_t n)
{
    return fuzz_strndup(a, s, n);
}

static payd_arena *fuzz_arena_new_v11(const payd_host *h)
{
    (void)h;
    return fuzz_arena_new();
}

static payd_host fuzz_host_table;
static pthread_once_t fuzz_host_once = PTHREAD_ONCE_INIT;

static void fuzz_host_build(void)
{
    fuzz_host_table = *fake_host();
    fuzz_host_table.log = fuzz_log;
    fuzz_host_table.http = fuzz_http;
    fuzz_host_table.http_header = fuzz_http_header;
    fuzz_host_table.now = fuzz_now;
    fuzz_host_table.now_ms = fuzz_now_ms;
    fuzz_host_table.random_bytes = fuzz_random_bytes;
    fuzz_host_table.hex_encode = fuzz_hex_encode;
    fuzz_host_table.base64_encode = fuzz_base64_encode;
    fuzz_host_table.base64_decode = fuzz_base64_decode;
    fuzz_host_table.alloc = fuzz_alloc;
    fuzz_host_table.strdup = fuzz_strdup;
    fuzz_host_table.strndup = fuzz_strndup;
    fuzz_host_table.sprintf = fuzz_sprintf;
    fuzz_host_table.arena_new = fuzz_arena_new_v11;
    fuzz_host_table.arena_free = fuzz_arena_free;
    fuzz_host_table.struct_size = (uint32_t)sizeof fuzz_host_table;
}

const payd_host *fuzz_host(void)
{
    pthread_once(&fuzz_host_once, fuzz_host_build);
    return &fuzz_host_table;
}

int64_t fuzz_host_now(void)
{
    return FUZZ_HOST_NOW;
}

/* ------------------------------------------------------------------------ */
/* What every module target checks                                          */
/* ------------------------------------------------------------------------ */

void *fuzz_gateway_start(const payd_module *mod, const char *target)
{
    payd_error e;
    void *state = NULL;

    memset(&e, 0, sizeof e);
    if (mod == NULL || mod->gateway == NULL ||
        mod->init(fuzz_host(), fake_config(), &state, &e) != PAYD_OK) {
        fprintf(stderr, "%s: init failed: %s\n", target, e.message);
        abort();
    }
    return state;
}

void fuzz_touch(const char *s)
{
    if (s != NULL && strlen(s) == (size_t)-1)
        abort();
}

void fuzz_touch_event(const payd_event *ev)
{
    fuzz_touch(ev->provider_event_id);
    fuzz_touch(ev->provider_type);
    fuzz_touch(ev->payment_id);
    fuzz_touch(ev->provider_ref);
    fuzz_touch(ev->refund_ref);
    fuzz_touch(ev->refund_id);
    fuzz_touch(ev->currency);
    fuzz_touch(ev->failure_code);
    fuzz_touch(ev->failure_message);
}

void fuzz_invariant(int ok, const char *what, int mode, int rc,
                    const payd_error *e)
{
    if (ok)
        return;
    fprintf(stderr, "INVARIANT: %s (mode %d, rc %d: %.256s)\n", what, mode, rc,
            e->message);
    abort();
}

void fuzz_sign_t_v1(const char *secret, const char *body, size_t len,
                    long long t, char *out, size_t outsz)
{
    unsigned char mac[32];
    unsigned int maclen = sizeof mac;
    char ts[24], hex[65];
    int n = snprintf(ts, sizeof ts, "%lld", t);
    char *msg = malloc((size_t)n + 1 + len);

    if (msg == NULL)
        abort();
    memcpy(msg, ts, (size_t)n);
    msg[n] = '.';
    memcpy(msg + n + 1, body, len);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)msg,
         (size_t)n + 1 + len, mac, &maclen);
    free(msg);
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(out, outsz, "t=%s,v1=%s", ts, hex);
}

void fuzz_take_line(const char **rest, size_t *rest_len, char *line,
                    size_t linesz)
{
    const char *nl = memchr(*rest, '\n', *rest_len);
    size_t n = nl != NULL ? (size_t)(nl - *rest) : *rest_len;

    if (n >= linesz)
        n = linesz - 1;
    memcpy(line, *rest, n);
    line[n] = '\0';
    if (nl != NULL) {
        *rest_len -= (size_t)(nl + 1 - *rest);
        *rest = nl + 1;
    } else {
        *rest_len = 0;
    }
}

char *fuzz_body_copy(const char *rest, size_t len)
{
    char *body;

    if (memchr(rest, '\0', len) != NULL)
        return NULL;
    body = malloc(len + 1);
    if (body == NULL)
        return NULL;
    memcpy(body, rest, len);
    body[len] = '\0';
    return body;
}
