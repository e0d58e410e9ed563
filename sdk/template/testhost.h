/*
 * testhost.h - a small stand-in for payd's host, for testing a module
 * without payd. Header-only, C11, libc only. FOR TESTS: its crypto is a
 * plain reference implementation, its arena is a malloc list, its cache is
 * a fixed table.
 *
 * What it gives a test:
 *   - a payd_host whose services behave like payd's (see module.h), with
 *     log lines printed to stderr AND kept, so a test can assert that no
 *     secret or card number was ever logged (th_log_contains);
 *   - a payd_config built from key/value pairs (th_init's `config`), that
 *     remembers which keys the module read (th_unread_key: payd refuses a
 *     key the module never reads during init);
 *   - arenas (th_arena_new / th_arena_free), owned by the test like the
 *     core owns them per call;
 *   - host->http answered by a function the test supplies (th_host.http),
 *     typically a fake provider run in-process; the default answers
 *     PAYD_E_TRANSIENT, as a host that cannot connect does;
 *   - a clock the test can move (th_host.clock_offset_s).
 *
 * Use:
 *     static const char *const cfg[] = {"api_base", "https://fake", "api_key", "k", NULL};
 *     th_host t;
 *     th_init(&t, cfg);
 *     t.http = my_fake;  t.http_user = &fake;
 *     void *state;  payd_error e = {0};
 *     module->init(&t.host, th_config(&t), &state, &e);
 *     payd_arena *a = th_arena_new();  ... call ops ...  th_arena_free(a);
 *     module->fini(state);
 *     th_fini(&t);
 *
 * One th_host per thread of test code unless the test serializes: the log
 * buffer and the read-key marks are not locked.
 */
#ifndef PAYD_TESTHOST_H
#define PAYD_TESTHOST_H

#include <payd/module.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TH_MAX_KEYS 64
#define TH_LOG_MAX (256 * 1024)
#define TH_CACHE_SLOTS 32

typedef struct th_host th_host;

/* A fake provider: answer `req` into `res` (use th_strndup for the body,
 * in the arena `a`). Return 0 when a response "arrived", or a PAYD_E_*
 * code as host->http would (PAYD_E_TRANSIENT for a timeout). */
typedef int (*th_http_fn)(void *user, const payd_http_request *req, payd_http_response *res,
                          payd_arena *a);

/* The module's view of its config section. payd's own is opaque; the test
 * host defines it because module.h leaves it incomplete. */
struct payd_config {
    th_host *t;
};

/* A per-call allocator: every block is remembered and freed together. */
struct payd_arena {
    void **blocks;
    size_t count, cap;
};

struct th_host {
    payd_host host;               /* hand &t.host to init */
    struct payd_config cfg;
    const char *keys[TH_MAX_KEYS];
    const char *values[TH_MAX_KEYS];
    int read[TH_MAX_KEYS];
    size_t key_count;
    th_http_fn http;
    void *http_user;
    int64_t clock_offset_s;
    char *log;                    /* everything logged, NUL-terminated */
    size_t log_len;
    int quiet;                    /* 1: keep log lines, do not print them */
    struct {
        char key[128];
        char *value;
        size_t len;
        int64_t expires;
    } cache[TH_CACHE_SLOTS];
};

/* ------------------------------------------------------------------------ */
/* Arena                                                                    */
/* ------------------------------------------------------------------------ */

static inline payd_arena *th_arena_new(void)
{
    return calloc(1, sizeof(payd_arena));
}

static inline void th_arena_free(payd_arena *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->count; i++) free(a->blocks[i]);
    free(a->blocks);
    free(a);
}

/* 1 when p points into a block of `a` (for "outputs live in the arena"). */
static inline int th_arena_owns(const payd_arena *a, const void *p)
{
    /* Blocks are allocated with their size in front. */
    for (size_t i = 0; a && i < a->count; i++) {
        const unsigned char *b = a->blocks[i];
        size_t n;
        memcpy(&n, b, sizeof n);
        if ((const unsigned char *)p >= b + 16 && (const unsigned char *)p < b + 16 + n) return 1;
    }
    return 0;
}

static inline void *th_alloc(payd_arena *a, size_t size)
{
    if (!a || size > ((size_t)1 << 30)) return NULL;
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void **grown = realloc(a->blocks, cap * sizeof *grown);
        if (!grown) return NULL;
        a->blocks = grown;
        a->cap = cap;
    }
    unsigned char *b = calloc(1, 16 + size + 1);
    if (!b) return NULL;
    memcpy(b, &size, sizeof size);
    a->blocks[a->count++] = b;
    return b + 16;
}

static inline char *th_strndup(payd_arena *a, const char *s, size_t n)
{
    if (!s) return NULL;
    char *p = th_alloc(a, n + 1);
    if (p) memcpy(p, s, n);
    return p;
}

static inline char *th_strdup(payd_arena *a, const char *s)
{
    return s ? th_strndup(a, s, strlen(s)) : NULL;
}

static inline char *th_vsprintf(payd_arena *a, const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0) return NULL;
    char *p = th_alloc(a, (size_t)n + 1);
    if (p) vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

static inline char *th_sprintf(payd_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline char *th_sprintf(payd_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = th_vsprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

/* ------------------------------------------------------------------------ */
/* SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104), for tests only          */
/* ------------------------------------------------------------------------ */

typedef struct th_sha256 {
    uint32_t h[8];
    uint64_t bits;
    unsigned char buf[64];
    size_t used;
} th_sha256;

static inline uint32_t th_ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static inline void th_sha256_block(th_sha256 *s, const unsigned char *p)
{
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = th_ror(w[i - 15], 7) ^ th_ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = th_ror(w[i - 2], 17) ^ th_ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5], g = s->h[6],
             h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (th_ror(e, 6) ^ th_ror(e, 11) ^ th_ror(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
        uint32_t t2 = (th_ror(a, 2) ^ th_ror(a, 13) ^ th_ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d;
    s->h[4] += e, s->h[5] += f, s->h[6] += g, s->h[7] += h;
}

static inline void th_sha256_init(th_sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->bits = 0;
    s->used = 0;
}

static inline void th_sha256_update(th_sha256 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->bits += (uint64_t)len * 8;
    while (len > 0) {
        size_t n = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->buf + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;
        if (s->used == 64) {
            th_sha256_block(s, s->buf);
            s->used = 0;
        }
    }
}

static inline void th_sha256_final(th_sha256 *s, uint8_t out[32])
{
    uint64_t bits = s->bits;
    unsigned char pad = 0x80;
    th_sha256_update(s, &pad, 1);
    pad = 0;
    while (s->used != 56) th_sha256_update(s, &pad, 1);
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
    th_sha256_update(s, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

static inline void th_sha256_svc(const void *data, size_t len, uint8_t out[32])
{
    th_sha256 s;
    th_sha256_init(&s);
    th_sha256_update(&s, data, len);
    th_sha256_final(&s, out);
}

static inline void th_hmac_sha256_svc(const void *key, size_t key_len, const void *data, size_t len,
                                      uint8_t out[32])
{
    unsigned char k[64] = {0}, pad[64];
    uint8_t inner[32];
    if (key_len > 64) th_sha256_svc(key, key_len, k);
    else memcpy(k, key, key_len);
    th_sha256 s;
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    th_sha256_init(&s);
    th_sha256_update(&s, pad, 64);
    th_sha256_update(&s, data, len);
    th_sha256_final(&s, inner);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    th_sha256_init(&s);
    th_sha256_update(&s, pad, 64);
    th_sha256_update(&s, inner, 32);
    th_sha256_final(&s, out);
}

/* ------------------------------------------------------------------------ */
/* The services                                                             */
/* ------------------------------------------------------------------------ */

static inline th_host *th_of(const payd_host *h)
{
    return h->host_private;
}

static inline void th_log_svc(const payd_host *h, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void th_log_svc(const payd_host *h, int level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    th_host *t = th_of(h);
    char line[2048];
    int n = snprintf(line, sizeof line, "%-5s [module] ", names[level >= 0 && level <= 3 ? level : 3]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (!t->quiet) fprintf(stderr, "%s\n", line);
    if (t->log && t->log_len + len + 2 < TH_LOG_MAX) {
        memcpy(t->log + t->log_len, line, len);
        t->log_len += len;
        t->log[t->log_len++] = '\n';
        t->log[t->log_len] = '\0';
    }
}

static inline const char *th_config_get_svc(const payd_config *cfg, const char *key)
{
    th_host *t = cfg->t;
    for (size_t i = 0; i < t->key_count; i++)
        if (strcmp(t->keys[i], key) == 0) {
            t->read[i] = 1;
            return t->values[i];
        }
    if (strcmp(key, "payd.instance") == 0) return "test";
    if (strcmp(key, "payd.public_url") == 0) return "http://127.0.0.1:8080";
    if (strcmp(key, "payd.webhook_url") == 0) return "http://127.0.0.1:8080/v1/webhooks/test";
    return NULL;
}

static inline int th_http_svc(const payd_host *h, const payd_http_request *req, payd_http_response *res,
                              payd_arena *a, payd_error *e)
{
    th_host *t = th_of(h);
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    if (!req || !req->url || !req->method) return PAYD_E_INVALID;
    if (!t->http) {
        if (e) snprintf(e->message, sizeof e->message, "%s: connection refused (no fake provider)", req->method);
        return PAYD_E_TRANSIENT;
    }
    int rc = t->http(t->http_user, req, res, a);
    if (rc != 0 && e && !e->message[0]) snprintf(e->message, sizeof e->message, "%s: no response", req->method);
    if (rc == 0 && !res->body) {
        res->body = th_strdup(a, "");
        res->body_len = 0;
    }
    return rc;
}

static inline const char *th_http_header_svc(const payd_http_response *res, const char *name)
{
    for (size_t i = 0; i < res->header_count; i++) {
        const char *x = res->headers[i].name, *y = name;
        while (*x && *y && (*x | 32) == (*y | 32)) x++, y++;
        if (!*x && !*y) return res->headers[i].value;
    }
    return NULL;
}

static inline int64_t th_now_svc(const payd_host *h)
{
    return (int64_t)time(NULL) + th_of(h)->clock_offset_s;
}

static inline int64_t th_now_ms_svc(const payd_host *h)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((int64_t)ts.tv_sec + th_of(h)->clock_offset_s) * 1000 + ts.tv_nsec / 1000000;
}

static inline int th_random_svc(void *buf, size_t len)
{
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f) return PAYD_E_INTERNAL;
    size_t n = fread(buf, 1, len, f);
    fclose(f);
    return n == len ? 0 : PAYD_E_INTERNAL;
}

static inline int th_equal_ct_svc(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < len; i++) d |= x[i] ^ y[i];
    return d == 0;
}

static inline char *th_hex_svc(payd_arena *a, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *out = th_alloc(a, 2 * len + 1);
    const unsigned char *p = data;
    for (size_t i = 0; out && i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    return out;
}

static inline char *th_b64enc_svc(payd_arena *a, const void *data, size_t len)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    char *out = th_alloc(a, 4 * ((len + 2) / 3) + 1);
    size_t o = 0;
    for (size_t i = 0; out && i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < len ? p[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < len ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    return out;
}

static inline long th_b64dec_svc(payd_arena *a, const char *text, uint8_t **out)
{
    size_t n = strlen(text);
    if (n % 4) return -1;
    uint8_t *buf = th_alloc(a, n / 4 * 3 + 1);
    if (!buf) return -1;
    long len = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char ch = text[i + k];
            int d = ch >= 'A' && ch <= 'Z' ? ch - 'A' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
                  : ch >= '0' && ch <= '9' ? ch - '0' + 52 : ch == '+' ? 62 : ch == '/' ? 63 : -1;
            if (ch == '=' && i + 4 == n && k >= 2) d = 0, pad++;
            else if (d < 0 || pad) return -1;
            v = v << 6 | (uint32_t)d;
        }
        buf[len++] = (uint8_t)(v >> 16);
        if (pad < 2) buf[len++] = (uint8_t)(v >> 8);
        if (pad < 1) buf[len++] = (uint8_t)v;
    }
    *out = buf;
    return len;
}

static inline int th_cache_get_svc(const payd_host *h, const char *key, payd_arena *a, char **value,
                                   size_t *value_len)
{
    th_host *t = th_of(h);
    for (int i = 0; i < TH_CACHE_SLOTS; i++)
        if (t->cache[i].value && strcmp(t->cache[i].key, key) == 0 &&
            t->cache[i].expires > th_now_svc(h)) {
            *value = th_strndup(a, t->cache[i].value, t->cache[i].len);
            *value_len = t->cache[i].len;
            return *value ? 0 : PAYD_E_NOMEM;
        }
    return PAYD_E_NOTFOUND;
}

static inline int th_cache_set_svc(const payd_host *h, const char *key, const void *value,
                                   size_t value_len, int ttl_s)
{
    th_host *t = th_of(h);
    if (ttl_s <= 0 || strlen(key) >= sizeof t->cache[0].key) return PAYD_E_INVALID;
    int slot = 0;
    for (int i = 0; i < TH_CACHE_SLOTS; i++)
        if (!t->cache[i].value || strcmp(t->cache[i].key, key) == 0) {
            slot = i;
            break;
        }
    free(t->cache[slot].value);
    t->cache[slot].value = malloc(value_len + 1);
    if (!t->cache[slot].value) return PAYD_E_NOMEM;
    memcpy(t->cache[slot].value, value, value_len);
    t->cache[slot].value[value_len] = '\0';
    t->cache[slot].len = value_len;
    snprintf(t->cache[slot].key, sizeof t->cache[slot].key, "%s", key);
    t->cache[slot].expires = th_now_svc(h) + ttl_s;
    return 0;
}

static inline void th_cleanse_svc(void *p, size_t len)
{
    volatile unsigned char *q = p;
    while (len--) *q++ = 0;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                   */
/* ------------------------------------------------------------------------ */

/* Fills `t`. `config` is key, value, key, value, ..., NULL (borrowed: it
 * must outlive t). */
static inline void th_init(th_host *t, const char *const *config)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; config && config[i] && config[i + 1] && t->key_count < TH_MAX_KEYS; i += 2) {
        t->keys[t->key_count] = config[i];
        t->values[t->key_count] = config[i + 1];
        t->key_count++;
    }
    t->cfg.t = t;
    t->log = calloc(1, TH_LOG_MAX);
    payd_host *h = &t->host;
    h->abi_major = PAYD_ABI_MAJOR;
    h->abi_minor = PAYD_ABI_MINOR;
    h->struct_size = sizeof *h;
    h->host_private = t;
    h->log = th_log_svc;
    h->config_get = th_config_get_svc;
    h->http = th_http_svc;
    h->http_header = th_http_header_svc;
    h->now = th_now_svc;
    h->now_ms = th_now_ms_svc;
    h->random_bytes = th_random_svc;
    h->hmac_sha256 = th_hmac_sha256_svc;
    h->sha256 = th_sha256_svc;
    h->equal_ct = th_equal_ct_svc;
    h->hex_encode = th_hex_svc;
    h->base64_encode = th_b64enc_svc;
    h->base64_decode = th_b64dec_svc;
    h->cache_get = th_cache_get_svc;
    h->cache_set = th_cache_set_svc;
    h->alloc = th_alloc;
    h->strdup = th_strdup;
    h->strndup = th_strndup;
    h->sprintf = th_sprintf;
    h->cleanse = th_cleanse_svc;
}

static inline const payd_config *th_config(th_host *t)
{
    return &t->cfg;
}

/* The first configured key the module never read, or NULL (payd would
 * refuse the config: "unknown key"). */
static inline const char *th_unread_key(const th_host *t)
{
    for (size_t i = 0; i < t->key_count; i++)
        if (!t->read[i]) return t->keys[i];
    return NULL;
}

static inline int th_log_contains(const th_host *t, const char *needle)
{
    return t->log && strstr(t->log, needle) != NULL;
}

static inline void th_fini(th_host *t)
{
    for (int i = 0; i < TH_CACHE_SLOTS; i++) free(t->cache[i].value);
    free(t->log);
    memset(t, 0, sizeof *t);
}

#endif /* PAYD_TESTHOST_H */
