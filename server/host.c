/*
 * host.c - the services table lent to modules (payd_host, ABI v1).
 *
 * Each module instance gets its own copy of the table, whose host_private
 * names the instance, so logs and cache keys are attributed without the
 * module passing its name around. Every service here is thread-safe: modules
 * call them from many worker threads at once.
 *
 * The HTTP client is libcurl with one easy handle per thread (kept in
 * thread-local storage), so connections and TLS sessions are reused across
 * calls on that thread without any lock. TLS peer verification is always on.
 * Request logs carry method, host, status and timing, never headers or
 * bodies, so credentials cannot leak through them.
 */
#include "host.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "arena.h"
#include "log.h"

static redis *host_redis;
static int host_http_timeout_ms = 15000;
static char *host_http_ca_file; /* set once before any module loads */
static _Atomic int64_t clock_offset_ms;
static pthread_key_t curl_key;
static pthread_once_t curl_key_once = PTHREAD_ONCE_INIT;

/* ---- process-local cache, used when Redis is not configured ---- */

#define MEMCACHE_SLOTS 1024

typedef struct memcache_entry {
    char *key;
    char *value;
    size_t len;
    int64_t expires_ms;
} memcache_entry;

static memcache_entry memcache[MEMCACHE_SLOTS];
static pthread_mutex_t memcache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t memcache_slot(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % MEMCACHE_SLOTS);
}

static void curl_handle_free(void *p)
{
    curl_easy_cleanup(p);
}

static void curl_key_create(void)
{
    pthread_key_create(&curl_key, curl_handle_free);
}

void host_global_init(redis *r, int http_timeout_ms)
{
    host_redis = r;
    host_http_timeout_ms = http_timeout_ms;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_once(&curl_key_once, curl_key_create);
}

/*
 * The extra CA bundle for outbound https ([server] http_ca_file), e.g. a
 * test CA for a local provider fake. It is libcurl's CAINFO; the system
 * directory (libcurl's CAPATH) stays trusted. Called once at startup,
 * before any worker or module thread runs, so no lock. 0 or -1 (OOM).
 */
int host_set_http_ca_file(const char *path)
{
    free(host_http_ca_file);
    host_http_ca_file = path ? strdup(path) : NULL;
    return path && !host_http_ca_file ? -1 : 0;
}

void host_global_fini(void)
{
    CURL *c = pthread_getspecific(curl_key);
    if (c) {
        curl_easy_cleanup(c);
        pthread_setspecific(curl_key, NULL);
    }
    pthread_mutex_lock(&memcache_lock);
    for (size_t i = 0; i < MEMCACHE_SLOTS; i++) {
        free(memcache[i].key);
        free(memcache[i].value);
        memset(&memcache[i], 0, sizeof memcache[i]);
    }
    pthread_mutex_unlock(&memcache_lock);
    free(host_http_ca_file);
    host_http_ca_file = NULL;
    curl_global_cleanup();
}

/* ---- clock, randomness, crypto ---- */

int64_t host_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000 + atomic_load(&clock_offset_ms);
}

void host_clock_set_offset_ms(int64_t offset_ms)
{
    atomic_store(&clock_offset_ms, offset_ms);
}

static int64_t svc_now(const payd_host *h)
{
    (void)h;
    return host_now_ms() / 1000;
}

static int64_t svc_now_ms(const payd_host *h)
{
    (void)h;
    return host_now_ms();
}

int host_random_bytes(void *buf, size_t len)
{
    return RAND_bytes(buf, (int)len) == 1 ? 0 : PAYD_E_INTERNAL;
}

void host_sha256(const void *data, size_t len, uint8_t out[32])
{
    SHA256(data, len, out);
}

void host_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                      uint8_t out[32])
{
    unsigned int out_len = 32;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len);
}

int host_equal_ct(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

void host_hex(const uint8_t *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int host_unhex(const char *hex, uint8_t *out, size_t n)
{
    if (!hex || strlen(hex) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static char *svc_hex_encode(payd_arena *a, const void *data, size_t len)
{
    char *out = arena_alloc(a, 2 * len + 1);
    if (out) host_hex(data, len, out);
    return out;
}

static char *svc_base64_encode(payd_arena *a, const void *data, size_t len)
{
    char *out = arena_alloc(a, 4 * ((len + 2) / 3) + 1);
    if (out) EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

static long svc_base64_decode(payd_arena *a, const char *text, uint8_t **out)
{
    size_t n = strlen(text);
    if (n % 4) return -1;
    uint8_t *buf = arena_alloc(a, n / 4 * 3 + 1);
    if (!buf) return -1;
    int len = EVP_DecodeBlock(buf, (const unsigned char *)text, (int)n);
    if (len < 0) return -1;
    if (n >= 1 && text[n - 1] == '=') len--;
    if (n >= 2 && text[n - 2] == '=') len--;
    *out = buf;
    return len;
}

static payd_arena *svc_arena_new(const payd_host *h)
{
    (void)h;
    return arena_new();
}

static void svc_cleanse(void *p, size_t len)
{
    OPENSSL_cleanse(p, len);
}

/* ---- log and config ---- */

static void svc_log(const payd_host *h, int level, const char *fmt, ...)
{
    const host_instance *hi = h->host_private;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, hi->log_name, fmt, ap);
    va_end(ap);
}

/*
 * Looks a key up in the instance's section and marks it used, so the loader
 * can report keys no module read as unknown. Safe after init from any
 * thread: entries are never added or removed after load, and `used` is only
 * ever set to 1.
 */
static const char *svc_config_get(const payd_config *cfg, const char *key)
{
    if (!cfg || !key) return NULL;
    if (strcmp(key, "payd.instance") == 0) return cfg->instance;
    if (strcmp(key, "payd.public_url") == 0) return cfg->public_url;
    if (strcmp(key, "payd.webhook_url") == 0) return cfg->webhook_url;
    config_entry *e = config_entry_find(cfg->section, key);
    if (!e) return NULL;
    e->used = 1;
    return e->value;
}

/* ---- arena ---- */

static void *svc_alloc(payd_arena *a, size_t size)
{
    return arena_alloc(a, size);
}

static char *svc_strdup(payd_arena *a, const char *s)
{
    return arena_strdup(a, s);
}

static char *svc_strndup(payd_arena *a, const char *s, size_t n)
{
    return arena_strndup(a, s, n);
}

static char *svc_sprintf(payd_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *p = arena_vsprintf(a, fmt, ap);
    va_end(ap);
    return p;
}

/* ---- cache ---- */

static int svc_cache_get(const payd_host *h, const char *key, payd_arena *a, char **value,
                         size_t *value_len)
{
    const host_instance *hi = h->host_private;
    char full[512];
    snprintf(full, sizeof full, "%s%s", hi->cache_prefix, key);
    if (host_redis) {
        char *v = NULL;
        size_t n = 0;
        int rc = redis_get(host_redis, full, &v, &n);
        if (rc == 0) {
            *value = arena_strndup(a, v, n);
            *value_len = n;
            OPENSSL_cleanse(v, n);
            free(v);
            return *value ? 0 : PAYD_E_NOMEM;
        }
        if (rc == 1) return PAYD_E_NOTFOUND;
        /* Redis down: fall through to the local cache. */
    }
    int rc = PAYD_E_NOTFOUND;
    size_t slot = memcache_slot(full);
    pthread_mutex_lock(&memcache_lock);
    memcache_entry *e = &memcache[slot];
    if (e->key && strcmp(e->key, full) == 0 && e->expires_ms > host_now_ms()) {
        *value = arena_strndup(a, e->value, e->len);
        *value_len = e->len;
        rc = *value ? 0 : PAYD_E_NOMEM;
    }
    pthread_mutex_unlock(&memcache_lock);
    return rc;
}

static int svc_cache_set(const payd_host *h, const char *key, const void *value,
                         size_t value_len, int ttl_s)
{
    const host_instance *hi = h->host_private;
    if (ttl_s <= 0) return PAYD_E_INVALID;
    char full[512];
    snprintf(full, sizeof full, "%s%s", hi->cache_prefix, key);
    if (host_redis && redis_setex(host_redis, full, value, value_len, ttl_s) == 0) return 0;
    char *k = strdup(full);
    char *v = malloc(value_len + 1);
    if (!k || !v) {
        free(k);
        free(v);
        return PAYD_E_NOMEM;
    }
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    size_t slot = memcache_slot(full);
    pthread_mutex_lock(&memcache_lock);
    memcache_entry *e = &memcache[slot];
    if (e->value) OPENSSL_cleanse(e->value, e->len);
    free(e->key);
    free(e->value);
    e->key = k;
    e->value = v;
    e->len = value_len;
    e->expires_ms = host_now_ms() + (int64_t)ttl_s * 1000;
    pthread_mutex_unlock(&memcache_lock);
    return 0;
}

/* ---- HTTP client ---- */

typedef struct http_buffer {
    char *data;
    size_t len, cap;
    size_t limit;
} http_buffer;

typedef struct http_capture {
    http_buffer body;
    payd_arena *arena;
    payd_header headers[64];
    size_t header_count;
    const char *upload;
    size_t upload_len, upload_pos;
} http_capture;

#define HTTP_RESPONSE_LIMIT (8 * 1024 * 1024)

static size_t http_on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    http_capture *cap = userdata;
    http_buffer *b = &cap->body;
    size_t n = size * nmemb;
    if (b->len + n > b->limit) return 0; /* abort: response too large */
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 4096;
        while (ncap < b->len + n + 1) ncap *= 2;
        char *d = realloc(b->data, ncap);
        if (!d) return 0;
        b->data = d;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t http_on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    http_capture *cap = userdata;
    size_t n = size * nitems;
    if (n >= 7 && strncmp(buffer, "HTTP/", 5) == 0) cap->header_count = 0; /* new response */
    char *colon = memchr(buffer, ':', n);
    if (!colon || cap->header_count >= sizeof cap->headers / sizeof cap->headers[0]) return n;
    const char *v = colon + 1;
    const char *end = buffer + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    payd_header *h = &cap->headers[cap->header_count];
    h->name = arena_strndup(cap->arena, buffer, (size_t)(colon - buffer));
    h->value = arena_strndup(cap->arena, v, (size_t)(end - v));
    if (h->name && h->value) cap->header_count++;
    return n;
}

static size_t http_on_upload(char *buffer, size_t size, size_t nitems, void *userdata)
{
    http_capture *cap = userdata;
    size_t room = size * nitems;
    size_t left = cap->upload_len - cap->upload_pos;
    size_t n = left < room ? left : room;
    memcpy(buffer, cap->upload + cap->upload_pos, n);
    cap->upload_pos += n;
    return n;
}

static CURL *http_thread_handle(void)
{
    pthread_once(&curl_key_once, curl_key_create);
    CURL *c = pthread_getspecific(curl_key);
    if (!c) {
        c = curl_easy_init();
        if (c) pthread_setspecific(curl_key, c);
    } else {
        curl_easy_reset(c); /* keeps live connections and the TLS session cache */
    }
    return c;
}

/*
 * Performs one request. See the contract in module.h. The easy handle is
 * this thread's own; request state lives on the stack and the response in
 * the caller's arena.
 */
static int svc_http(const payd_host *h, const payd_http_request *req, payd_http_response *res,
                    payd_arena *a, payd_error *e)
{
    const host_instance *hi = h->host_private;
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    if (!req || !req->url || !req->method) {
        if (e) snprintf(e->message, sizeof e->message, "http: url and method are required");
        return PAYD_E_INVALID;
    }
    CURL *c = http_thread_handle();
    if (!c) return PAYD_E_NOMEM;
    /* A caller without an arena (a module's own thread) gets the status
     * and headers are dropped with the body: see module.h. */
    arena *scratch = NULL;
    if (!a) {
        scratch = arena_new();
        if (!scratch) return PAYD_E_NOMEM;
        a = scratch;
    }

    http_capture cap = {.arena = a};
    cap.body.limit = HTTP_RESPONSE_LIMIT;
    struct curl_slist *headers = NULL, *rcpt = NULL;
    for (size_t i = 0; i < req->header_count; i++) {
        char line[4096];
        snprintf(line, sizeof line, "%s: %s", req->headers[i].name, req->headers[i].value);
        headers = curl_slist_append(headers, line);
        OPENSSL_cleanse(line, sizeof line);
    }
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : host_http_timeout_ms;
    int smtp = strncmp(req->url, "smtp", 4) == 0;
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout < 5000 ? timeout : 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (host_http_ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, host_http_ca_file);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &cap);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &cap);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (req->username) curl_easy_setopt(c, CURLOPT_USERNAME, req->username);
    if (req->password) curl_easy_setopt(c, CURLOPT_PASSWORD, req->password);
    if (smtp) {
        if (req->mail_from) curl_easy_setopt(c, CURLOPT_MAIL_FROM, req->mail_from);
        for (const char *const *r = req->mail_rcpt; r && *r; r++) rcpt = curl_slist_append(rcpt, *r);
        if (rcpt) curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
        cap.upload = req->body ? req->body : "";
        cap.upload_len = req->body ? req->body_len : 0;
        curl_easy_setopt(c, CURLOPT_READFUNCTION, http_on_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, &cap);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        if (strncmp(req->url, "smtps", 5) != 0) {
            /* STARTTLS is required, except towards a relay on this machine. */
            int loopback = strncmp(req->url, "smtp://127.", 11) == 0 ||
                           strncmp(req->url, "smtp://localhost", 16) == 0 ||
                           strncmp(req->url, "smtp://[::1]", 12) == 0;
            curl_easy_setopt(c, CURLOPT_USE_SSL, (long)(loopback ? CURLUSESSL_TRY : CURLUSESSL_ALL));
        }
    } else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body) {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        } else if (strcmp(req->method, "GET") == 0) {
            curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        }
    }

    int64_t started = host_now_ms();
    CURLcode cc = curl_easy_perform(c);
    int64_t elapsed = host_now_ms() - started;
    curl_slist_free_all(headers);
    curl_slist_free_all(rcpt);
    /* The password and headers were copied by libcurl; reset drops them. */
    curl_easy_setopt(c, CURLOPT_PASSWORD, "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);

    char *host = NULL;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, req->url, 0) == CURLUE_OK)
        curl_url_get(u, CURLUPART_HOST, &host, 0);
    int rc = 0;
    if (cc != CURLE_OK) {
        log_msg(LOG_INFO, hi->log_name, "%s %s failed after %lld ms: %s", req->method,
                host ? host : "?", (long long)elapsed, curl_easy_strerror(cc));
        if (e) {
            e->code = PAYD_E_TRANSIENT;
            snprintf(e->message, sizeof e->message, "%s %s: %s", req->method, host ? host : "?",
                     curl_easy_strerror(cc));
        }
        rc = cc == CURLE_OUT_OF_MEMORY ? PAYD_E_NOMEM : PAYD_E_TRANSIENT;
        /* An SMTP server's rejection fails the transfer but keeps its reply
         * code, which tells permanent (5xx) from temporary (4xx). */
        if (smtp) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
        res->body = arena_strndup(a, cap.body.data ? cap.body.data : "", cap.body.len);
        res->body_len = cap.body.len;
        res->headers = arena_alloc(a, (cap.header_count + 1) * sizeof(payd_header));
        if (!res->body || !res->headers) rc = PAYD_E_NOMEM;
        else {
            memcpy(res->headers, cap.headers, cap.header_count * sizeof(payd_header));
            res->header_count = cap.header_count;
        }
        log_msg(LOG_DEBUG, hi->log_name, "%s %s -> %ld in %lld ms", req->method,
                host ? host : "?", res->status, (long long)elapsed);
    }
    curl_free(host);
    curl_url_cleanup(u);
    free(cap.body.data);
    if (scratch) {
        arena_free(scratch);
        res->body = NULL;
        res->body_len = 0;
        res->headers = NULL;
        res->header_count = 0;
    }
    return rc;
}

static const char *svc_http_header(const payd_http_response *res, const char *name)
{
    for (size_t i = 0; i < res->header_count; i++)
        if (strcasecmp(res->headers[i].name, name) == 0) return res->headers[i].value;
    return NULL;
}

void host_fill(payd_host *h, host_instance *hi)
{
    memset(h, 0, sizeof *h);
    h->abi_major = PAYD_ABI_MAJOR;
    h->abi_minor = PAYD_ABI_MINOR;
    h->struct_size = sizeof *h;
    h->host_private = hi;
    h->log = svc_log;
    h->config_get = svc_config_get;
    h->http = svc_http;
    h->http_header = svc_http_header;
    h->now = svc_now;
    h->now_ms = svc_now_ms;
    h->random_bytes = host_random_bytes;
    h->hmac_sha256 = host_hmac_sha256;
    h->sha256 = host_sha256;
    h->equal_ct = host_equal_ct;
    h->hex_encode = svc_hex_encode;
    h->base64_encode = svc_base64_encode;
    h->base64_decode = svc_base64_decode;
    h->cache_get = svc_cache_get;
    h->cache_set = svc_cache_set;
    h->alloc = svc_alloc;
    h->strdup = svc_strdup;
    h->strndup = svc_strndup;
    h->sprintf = svc_sprintf;
    h->cleanse = svc_cleanse;
    h->arena_new = svc_arena_new;
    h->arena_free = arena_free;
}
