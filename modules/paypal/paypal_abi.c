/*
 * modules/paypal/paypal_abi.c - ABI plumbing shared by the operations:
 * reading versioned requests, writing results, errors, arena copies and
 * the checks that keep host input out of URLs and request bodies.
 *
 * Everything here is stateless and thread-safe.
 */
#include "paypal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/*
 * Read a request across the ABI: copy what the host filled (its
 * struct_size) and read the rest as zero, as the versioning rules say.
 * Returns 0, or -1 when there is no request or its struct_size covers no
 * field.
 */
int paypal_copy_in(void *dst, size_t size, const void *src)
{
    uint32_t n = 0;

    memset(dst, 0, size);
    if (src == NULL)
        return -1;
    memcpy(&n, src, sizeof n);
    if (n <= sizeof n)
        return -1;
    if (n > size)
        n = (uint32_t)size;
    memcpy(dst, src, n);
    return 0;
}

/*
 * Write a result across the ABI. The host was built against ABI 1.x with
 * x >= this module's minor, so its struct holds every v1.0 field.
 */
void paypal_copy_out(void *dst, const void *src, size_t size)
{
    uint32_t n = (uint32_t)size;

    if (dst == NULL)
        return;
    memcpy(dst, src, size);
    memcpy(dst, &n, sizeof n);
}

int paypal_fail(payd_error *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

const char *paypal_adup(const payd_host *h, payd_arena *a, const char *s,
                        int *oom)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = h->strdup(a, s);
    if (d == NULL)
        *oom = 1;
    return d;
}

int paypal_ok_id(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++, n++)
        if (n >= PAYPAL_ID_MAX ||
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return n > 0;
}

int paypal_ok_text(const char *s, size_t max)
{
    size_t n = 0;

    if (s == NULL)
        return 1;
    for (; *s != '\0'; s++, n++)
        if (n >= max || (unsigned char)*s < ' ' || *s == 0x7f)
            return 0;
    return n > 0;
}

int paypal_ok_currency(const char *s)
{
    return s != NULL && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' &&
           s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

int paypal_ok_url(const char *s)
{
    return s != NULL && paypal_ok_text(s, PAYPAL_URL_MAX) &&
           strchr(s, ' ') == NULL &&
           (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0);
}
