/*
 * tests/fakes/fake_http.h - the HTTP plumbing the provider fakes share
 * (stripe_fake.c, paypal_fake.c): reason phrases, reading a whole request
 * body, the fingerprint an idempotency key is bound to, reading a string
 * member, and sleeping through signals.
 *
 * Each fake is one program built from its one .c file with -Itests/fakes
 * (see the Makefile), so these are static inline functions: a fake that
 * does not call one pays nothing for it. None keeps state; all may be
 * called from any of civetweb's worker threads.
 */
#ifndef PAYD_TEST_FAKE_HTTP_H
#define PAYD_TEST_FAKE_HTTP_H

#include <civetweb.h>
#include <jansson.h>
#include <openssl/evp.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The most of a request body a fake reads. */
#define FK_BODY_MAX (1024 * 1024)

/* The reason phrase of every status a fake answers with. */
static inline const char *fk_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* The whole request body (up to FK_BODY_MAX), malloc'd and NUL-terminated
 * (caller frees); its length into *len. */
static inline char *fk_read_body(struct mg_connection *c, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    int r;

    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= FK_BODY_MAX)
                break;
            cap *= 2;
            buf = realloc(buf, cap);
        }
        r = mg_read(c, buf + n, cap - n - 1);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* What an idempotency key is bound to: SHA-256 of method, path, query
 * (NULL counts as "") and body, as lower-case hex into out. */
static inline void fk_fingerprint(const char *method, const char *path, const char *query,
                                  const char *body, size_t blen, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *h = EVP_MD_CTX_new();

    EVP_DigestInit_ex(h, EVP_sha256(), NULL);
    EVP_DigestUpdate(h, method, strlen(method) + 1);
    EVP_DigestUpdate(h, path, strlen(path) + 1);
    EVP_DigestUpdate(h, query ? query : "", query ? strlen(query) + 1 : 1);
    EVP_DigestUpdate(h, body, blen);
    EVP_DigestFinal_ex(h, md, &mdlen);
    EVP_MD_CTX_free(h);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* The string member `key` of object o (borrowed), or NULL. */
static inline const char *fk_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The records of `requests` (an array of objects with "method" and "path")
 * that pass the filter in `query` ("method=POST&path=/v1/refunds"; either,
 * or the query, may be absent), deep-copied into a new array. The caller
 * holds the lock that guards `requests`. */
static inline json_t *fk_requests_matching(json_t *requests, const char *query)
{
    char method[16] = "", path[256] = "";
    json_t *data = json_array(), *r;
    size_t i;

    if (query != NULL) {
        mg_get_var(query, strlen(query), "method", method, sizeof method);
        mg_get_var(query, strlen(query), "path", path, sizeof path);
    }
    json_array_foreach(requests, i, r) {
        if ((method[0] && strcmp(method, fk_str(r, "method")) != 0) ||
            (path[0] && strcmp(path, fk_str(r, "path")) != 0))
            continue;
        json_array_append_new(data, json_deep_copy(r));
    }
    return data;
}

/* Sleeps `ms` milliseconds, resuming after signals. */
static inline void fk_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#endif /* PAYD_TEST_FAKE_HTTP_H */
