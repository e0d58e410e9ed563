/*
 * tests/unit/fake_host.c - a minimal payd host for module unit tests.
 * See fake_host.h. Built with OpenSSL (-lcrypto) and pthreads.
 */
#include "fake_host.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <ctype.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define FAKE_MAX_CONFIG 32
#define FAKE_MAX_CALLS 4096
#define FAKE_MAX_SCRIPT 32
#define FAKE_LOG_MAX (256 * 1024)

/* ------------------------------------------------------------------------ */
/* Arena                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct fake_block {
    struct fake_block *next;
    _Alignas(16) unsigned char data[];
} fake_block;

struct payd_arena {
    pthread_mutex_t mu;
    fake_block *head;
};

payd_arena *fake_arena_new(void)
{
    payd_arena *a = calloc(1, sizeof *a);

    if (a != NULL)
        pthread_mutex_init(&a->mu, NULL);
    return a;
}

void fake_arena_free(payd_arena *a)
{
    fake_block *b;

    if (a == NULL)
        return;
    b = a->head;
    while (b != NULL) {
        fake_block *next = b->next;

        free(b);
        b = next;
    }
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static void *fake_alloc(payd_arena *a, size_t size)
{
    fake_block *b;

    if (a == NULL)
        return NULL;
    b = calloc(1, sizeof *b + size + 1);
    if (b == NULL)
        return NULL;
    pthread_mutex_lock(&a->mu);
    b->next = a->head;
    a->head = b;
    pthread_mutex_unlock(&a->mu);
    return b->data;
}

static char *fake_strndup(payd_arena *a, const char *s, size_t n)
{
    char *d = fake_alloc(a, n + 1);

    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static char *fake_strdup(payd_arena *a, const char *s)
{
    return s != NULL ? fake_strndup(a, s, strlen(s)) : NULL;
}

static char *fake_sprintf(payd_arena *a, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *d;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    d = fake_alloc(a, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_cv = PTHREAD_COND_INITIALIZER;

static struct {
    char *keys[FAKE_MAX_CONFIG];
    char *values[FAKE_MAX_CONFIG];
    int64_t shift;
    fake_http_call calls[FAKE_MAX_CALLS];
    size_t ncalls;
    long script[FAKE_MAX_SCRIPT];
    size_t nscript;
    char log[FAKE_LOG_MAX];
    size_t loglen;
} fake;

/* The config handle is opaque to the module; any non-NULL pointer does. */
static int fake_config_token;

void fake_host_reset(void)
{
    size_t i;

    pthread_mutex_lock(&fake_mu);
    for (i = 0; i < FAKE_MAX_CONFIG; i++) {
        free(fake.keys[i]);
        free(fake.values[i]);
        fake.keys[i] = fake.values[i] = NULL;
    }
    for (i = 0; i < fake.ncalls; i++)
        free(fake.calls[i].body);
    fake.ncalls = 0;
    fake.nscript = 0;
    fake.shift = 0;
    fake.loglen = 0;
    fake.log[0] = '\0';
    pthread_mutex_unlock(&fake_mu);
}

void fake_config_set(const char *key, const char *value)
{
    size_t i, slot = FAKE_MAX_CONFIG;

    pthread_mutex_lock(&fake_mu);
    for (i = 0; i < FAKE_MAX_CONFIG; i++) {
        if (fake.keys[i] != NULL && strcmp(fake.keys[i], key) == 0) {
            slot = i;
            break;
        }
        if (fake.keys[i] == NULL && slot == FAKE_MAX_CONFIG)
            slot = i;
    }
    if (slot < FAKE_MAX_CONFIG) {
        free(fake.keys[slot]);
        free(fake.values[slot]);
        fake.keys[slot] = value != NULL ? strdup(key) : NULL;
        fake.values[slot] = value != NULL ? strdup(value) : NULL;
    }
    pthread_mutex_unlock(&fake_mu);
}

/* Values live until the next reset, like the host's until fini. */
static const char *fake_config_get(const payd_config *cfg, const char *key)
{
    const char *v = NULL;
    size_t i;

    (void)cfg;
    pthread_mutex_lock(&fake_mu);
    for (i = 0; i < FAKE_MAX_CONFIG; i++)
        if (fake.keys[i] != NULL && strcmp(fake.keys[i], key) == 0)
            v = fake.values[i];
    pthread_mutex_unlock(&fake_mu);
    return v;
}

void fake_clock_shift(int64_t seconds)
{
    pthread_mutex_lock(&fake_mu);
    fake.shift += seconds;
    pthread_mutex_unlock(&fake_mu);
}

static int64_t fake_now(const payd_host *h)
{
    int64_t s;

    (void)h;
    pthread_mutex_lock(&fake_mu);
    s = fake.shift;
    pthread_mutex_unlock(&fake_mu);
    return (int64_t)time(NULL) + s;
}

static int64_t fake_now_ms(const payd_host *h)
{
    struct timespec ts;
    int64_t s;

    (void)h;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&fake_mu);
    s = fake.shift;
    pthread_mutex_unlock(&fake_mu);
    return ((int64_t)ts.tv_sec + s) * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

static void fake_log(const payd_host *h, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    size_t n;

    (void)h;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (getenv("FAKE_HOST_VERBOSE") != NULL)
        fprintf(stderr, "[fake host %d] %s\n", level, line);
    n = strlen(line);
    pthread_mutex_lock(&fake_mu);
    if (fake.loglen + n + 2 < FAKE_LOG_MAX) {
        memcpy(fake.log + fake.loglen, line, n);
        fake.loglen += n;
        fake.log[fake.loglen++] = '\n';
        fake.log[fake.loglen] = '\0';
    }
    pthread_mutex_unlock(&fake_mu);
}

int fake_log_contains(const char *needle)
{
    int found;

    pthread_mutex_lock(&fake_mu);
    found = strstr(fake.log, needle) != NULL;
    pthread_mutex_unlock(&fake_mu);
    return found;
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */
/* ------------------------------------------------------------------------ */

static int fake_http(const payd_host *h, const payd_http_request *req,
                     payd_http_response *res, payd_arena *a, payd_error *e)
{
    fake_http_call *c;
    long status = 200;
    size_t i;

    (void)h;
    if (req == NULL || req->url == NULL || req->method == NULL) {
        if (e != NULL)
            e->code = PAYD_E_INVALID;
        return PAYD_E_INVALID;
    }
    pthread_mutex_lock(&fake_mu);
    if (fake.nscript > 0) {
        status = fake.script[0];
        memmove(fake.script, fake.script + 1,
                (fake.nscript - 1) * sizeof fake.script[0]);
        fake.nscript--;
    }
    if (fake.ncalls < FAKE_MAX_CALLS) {
        c = &fake.calls[fake.ncalls++];
        memset(c, 0, sizeof *c);
        snprintf(c->method, sizeof c->method, "%s", req->method);
        snprintf(c->url, sizeof c->url, "%s", req->url);
        for (i = 0; req->headers != NULL && i < req->header_count; i++) {
            if (strcasecmp(req->headers[i].name, "Content-Type") == 0)
                snprintf(c->content_type, sizeof c->content_type, "%s",
                         req->headers[i].value);
            if (strcasecmp(req->headers[i].name, "Mock-Signature") == 0)
                snprintf(c->signature, sizeof c->signature, "%s",
                         req->headers[i].value);
        }
        c->body = malloc(req->body_len + 1);
        if (c->body != NULL) {
            if (req->body_len > 0)
                memcpy(c->body, req->body, req->body_len);
            c->body[req->body_len] = '\0';
            c->body_len = req->body_len;
        }
        c->had_arena = a != NULL;
    }
    pthread_cond_broadcast(&fake_cv);
    pthread_mutex_unlock(&fake_mu);
    if (status == 0) {
        if (e != NULL) {
            e->code = PAYD_E_TRANSIENT;
            snprintf(e->message, sizeof e->message, "connection refused (fake)");
        }
        return PAYD_E_TRANSIENT;
    }
    if (res != NULL) {
        memset(res, 0, sizeof *res);
        res->struct_size = sizeof *res;
        res->status = status;
        res->body = a != NULL ? fake_strdup(a, "") : NULL;
    }
    /* Like server/host.c: without an arena the response cannot be copied,
     * so the call reports PAYD_E_NOMEM after setting the status. */
    return a != NULL ? PAYD_OK : PAYD_E_NOMEM;
}

static const char *fake_http_header(const payd_http_response *res,
                                    const char *name)
{
    size_t i;

    for (i = 0; res != NULL && i < res->header_count; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

void fake_http_script(const long *statuses, size_t n)
{
    pthread_mutex_lock(&fake_mu);
    if (n > FAKE_MAX_SCRIPT)
        n = FAKE_MAX_SCRIPT;
    memcpy(fake.script, statuses, n * sizeof *statuses);
    fake.nscript = n;
    pthread_mutex_unlock(&fake_mu);
}

size_t fake_http_count(void)
{
    size_t n;

    pthread_mutex_lock(&fake_mu);
    n = fake.ncalls;
    pthread_mutex_unlock(&fake_mu);
    return n;
}

static int fake_copy_call(size_t i, fake_http_call *out)
{
    *out = fake.calls[i];
    out->body = malloc(fake.calls[i].body_len + 1);
    if (out->body == NULL)
        return -1;
    memcpy(out->body, fake.calls[i].body, fake.calls[i].body_len + 1);
    return 0;
}

int fake_http_get(size_t i, fake_http_call *out)
{
    int rc = -1;

    pthread_mutex_lock(&fake_mu);
    if (i < fake.ncalls)
        rc = fake_copy_call(i, out);
    pthread_mutex_unlock(&fake_mu);
    return rc;
}

static int fake_call_matches(const fake_http_call *c,
                             const char *const *needles, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (c->body == NULL || strstr(c->body, needles[i]) == NULL)
            return 0;
    return 1;
}

long fake_http_wait_for(const char *const *needles, size_t n, int timeout_ms,
                        fake_http_call *out)
{
    struct timespec deadline;
    long found = -1;
    size_t i;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fake_mu);
    for (;;) {
        for (i = 0; i < fake.ncalls; i++) {
            if (fake_call_matches(&fake.calls[i], needles, n)) {
                found = (long)i;
                break;
            }
        }
        if (found >= 0) {
            if (out != NULL && fake_copy_call((size_t)found, out) != 0)
                found = -1;
            break;
        }
        if (pthread_cond_timedwait(&fake_cv, &fake_mu, &deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&fake_mu);
    return found;
}

size_t fake_http_count_containing(const char *needle)
{
    size_t i, n = 0;

    pthread_mutex_lock(&fake_mu);
    for (i = 0; i < fake.ncalls; i++)
        if (fake.calls[i].body != NULL && strstr(fake.calls[i].body, needle))
            n++;
    pthread_mutex_unlock(&fake_mu);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Crypto and encodings                                                     */
/* ------------------------------------------------------------------------ */

static int fake_random_bytes(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? PAYD_OK : PAYD_E_INTERNAL;
}

static void fake_hmac_sha256(const void *key, size_t key_len, const void *data,
                             size_t data_len, uint8_t out[32])
{
    unsigned int n = 32;

    HMAC(EVP_sha256(), key, (int)key_len, data, data_len, out, &n);
}

static void fake_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;

    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

static int fake_equal_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

static char *fake_hex_encode(payd_arena *a, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = data;
    char *out = fake_alloc(a, 2 * len + 1);
    size_t i;

    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    return out;
}

static char *fake_base64_encode(payd_arena *a, const void *data, size_t len)
{
    char *out = fake_alloc(a, 4 * ((len + 2) / 3) + 1);

    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static long fake_base64_decode(payd_arena *a, const char *text, uint8_t **out)
{
    size_t len = strlen(text);
    uint8_t *buf = fake_alloc(a, len + 1);
    int n;

    if (buf == NULL || len % 4 != 0)
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

static int fake_cache_get(const payd_host *h, const char *key, payd_arena *a,
                          char **value, size_t *value_len)
{
    (void)h, (void)key, (void)a, (void)value, (void)value_len;
    return PAYD_E_NOTFOUND;
}

static int fake_cache_set(const payd_host *h, const char *key,
                          const void *value, size_t value_len, int ttl_s)
{
    (void)h, (void)key, (void)value, (void)value_len, (void)ttl_s;
    return PAYD_OK;
}

static void fake_cleanse(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}

static const payd_host fake_host_table = {
    .abi_major = PAYD_ABI_MAJOR,
    .abi_minor = PAYD_ABI_MINOR,
    .struct_size = (uint32_t)sizeof(payd_host),
    .host_private = NULL,
    .log = fake_log,
    .config_get = fake_config_get,
    .http = fake_http,
    .http_header = fake_http_header,
    .now = fake_now,
    .now_ms = fake_now_ms,
    .random_bytes = fake_random_bytes,
    .hmac_sha256 = fake_hmac_sha256,
    .sha256 = fake_sha256,
    .equal_ct = fake_equal_ct,
    .hex_encode = fake_hex_encode,
    .base64_encode = fake_base64_encode,
    .base64_decode = fake_base64_decode,
    .cache_get = fake_cache_get,
    .cache_set = fake_cache_set,
    .alloc = fake_alloc,
    .strdup = fake_strdup,
    .strndup = fake_strndup,
    .sprintf = fake_sprintf,
    .cleanse = fake_cleanse,
};

const payd_host *fake_host(void)
{
    return &fake_host_table;
}

const payd_config *fake_config(void)
{
    return (const payd_config *)(void *)&fake_config_token;
}

/* ------------------------------------------------------------------------ */
/* The module under test                                                    */
/* ------------------------------------------------------------------------ */

const payd_module *fake_module_load(const char *name, void **dl)
{
    static char built[4096];
    char var[64];
    const char *path, *build;
    payd_entry_fn entry;
    size_t i;

    snprintf(var, sizeof var, "PAYD_%s_SO", name);
    for (i = 0; var[i] != '\0'; i++)
        var[i] = (char)toupper((unsigned char)var[i]);
    path = getenv(var);
    build = getenv("PAYD_BUILD");
    if (path == NULL) {
        snprintf(built, sizeof built, "%s/modules/%s.so", build != NULL ? build : "build", name);
        path = built;
    }
    *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (*dl == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return NULL;
    }
    *(void **)(&entry) = dlsym(*dl, PAYD_ENTRY_SYMBOL);
    if (entry == NULL) {
        fprintf(stderr, "%s: no %s symbol\n", path, PAYD_ENTRY_SYMBOL);
        return NULL;
    }
    return entry();
}

void fake_module_unload(void *dl)
{
#ifndef PAYD_KEEP_MODULES_MAPPED
    if (dl != NULL)
        dlclose(dl);
#else
    (void)dl;
#endif
}

int fake_module_start(const payd_module *mod, const payd_host *host,
                      void **st, payd_error *e)
{
    memset(e, 0, sizeof *e);
    *st = NULL;
    return mod->init(host, fake_config(), st, e);
}

void fake_module_stop(const payd_module *mod, void **st)
{
    if (*st != NULL)
        mod->fini(*st);
    *st = NULL;
}

int fake_module_restart_with(const payd_module *mod, const payd_host *host,
                             void **st, payd_error *e, const char *key, ...)
{
    va_list ap;

    fake_module_stop(mod, st);
    va_start(ap, key);
    for (; key != NULL; key = va_arg(ap, const char *))
        fake_config_set(key, va_arg(ap, const char *));
    va_end(ap);
    return fake_module_start(mod, host, st, e);
}
