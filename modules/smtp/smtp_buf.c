/*
 * modules/smtp/smtp_buf.c - a growable string for building mails.
 *
 * Mails are built in heap buffers that notify frees before returning (the
 * call's arena cannot grow a block in place). A failed allocation sets
 * `oom` once and turns later writes into no-ops, so builders check once at
 * the end instead of after every append.
 */
#include "smtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Make room for `n` more bytes plus the NUL. 0, or -1 with oom set. */
static int smtp_buf_reserve(smtp_buf *b, size_t n)
{
    size_t cap;
    char *d;

    if (b->oom)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

void smtp_buf_put(smtp_buf *b, const char *s, size_t n)
{
    if (smtp_buf_reserve(b, n) != 0)
        return;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void smtp_buf_puts(smtp_buf *b, const char *s)
{
    if (s != NULL)
        smtp_buf_put(b, s, strlen(s));
}

void smtp_buf_printf(smtp_buf *b, const char *fmt, ...)
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
    if (smtp_buf_reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void smtp_buf_html(smtp_buf *b, const char *s)
{
    const char *run = s;

    if (s == NULL)
        return;
    for (; *s != '\0'; s++) {
        const char *rep;

        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        smtp_buf_put(b, run, (size_t)(s - run));
        smtp_buf_puts(b, rep);
        run = s + 1;
    }
    smtp_buf_put(b, run, (size_t)(s - run));
}

char *smtp_buf_take(smtp_buf *b)
{
    char *d;

    if (b->oom) {
        smtp_buf_free(b);
        return NULL;
    }
    if (b->data == NULL) {
        if (smtp_buf_reserve(b, 0) != 0)
            return NULL;
        b->data[0] = '\0'; /* an empty buffer is still a string */
    }
    d = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void smtp_buf_free(smtp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
