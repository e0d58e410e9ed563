/*
 * modules/mock/mock_buf.c - a growable string with JSON and HTML escaping.
 *
 * The mock writes every JSON document (raw provider objects, webhook bodies,
 * the stats page) and every HTML page through these functions, so escaping
 * lives in one place. A buffer belongs to one thread; it is never shared.
 */
#include "mock.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Make room for `need` more bytes plus the NUL. Returns 0, or -1 after
 * setting b->oom (the buffer then ignores every later write).
 */
static int mock_buf_reserve(mock_buf *b, size_t need)
{
    size_t want, cap;
    char *p;

    if (b->oom)
        return -1;
    if (need > SIZE_MAX / 2 - b->len) {
        b->oom = 1;
        return -1;
    }
    want = b->len + need + 1;
    if (want <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void mock_buf_put(mock_buf *b, const char *s, size_t n)
{
    if (mock_buf_reserve(b, n) != 0)
        return;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mock_buf_puts(mock_buf *b, const char *s)
{
    mock_buf_put(b, s, strlen(s));
}

void mock_buf_printf(mock_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if (mock_buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/*
 * Append `s` as a JSON string literal, or `null` when s is NULL. Quotes,
 * backslashes and every control character are escaped; other bytes pass
 * through, so callers only hand it UTF-8 (the mock validates its inputs).
 */
void mock_buf_json_str(mock_buf *b, const char *s)
{
    const char *run;

    if (s == NULL) {
        mock_buf_puts(b, "null");
        return;
    }
    mock_buf_put(b, "\"", 1);
    run = s;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        const char *esc = NULL;
        char u[8];

        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(u, sizeof u, "\\u%04x", c);
                esc = u;
            }
        }
        if (esc != NULL) {
            mock_buf_put(b, run, (size_t)(s - run));
            mock_buf_puts(b, esc);
            run = s + 1;
        }
    }
    mock_buf_put(b, run, (size_t)(s - run));
    mock_buf_put(b, "\"", 1);
}

/* Append `s` escaped for HTML text and double- or single-quoted attributes. */
void mock_buf_html(mock_buf *b, const char *s)
{
    const char *run = s;

    if (s == NULL)
        return;
    for (; *s != '\0'; s++) {
        const char *esc;

        switch (*s) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&quot;"; break;
        case '\'': esc = "&#39;"; break;
        default: continue;
        }
        mock_buf_put(b, run, (size_t)(s - run));
        mock_buf_puts(b, esc);
        run = s + 1;
    }
    mock_buf_put(b, run, (size_t)(s - run));
}

/*
 * Hand the string to the caller, who frees it with free(). Returns NULL if
 * any write failed (the buffer is released then). `len` may be NULL.
 */
char *mock_buf_take(mock_buf *b, size_t *len)
{
    char *s;

    if (b->oom) {
        mock_buf_free(b);
        return NULL;
    }
    if (b->data == NULL && mock_buf_reserve(b, 0) != 0)
        return NULL;
    if (b->len == 0)
        b->data[0] = '\0';
    s = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void mock_buf_free(mock_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
