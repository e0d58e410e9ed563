/*
 * modules/paypal/paypal_abi.c - the checks that keep host input out of
 * URLs and request bodies. (Reading requests, writing results, errors and
 * arena copies are payd/module_support.h's.)
 *
 * Everything here is stateless and thread-safe.
 */
#include "paypal.h"

#include <string.h>

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

int paypal_ok_url(const char *s)
{
    return s != NULL && payd_text_ok(s, PAYPAL_URL_MAX) &&
           strchr(s, ' ') == NULL &&
           (strncmp(s, "https://", 8) == 0 || strncmp(s, "http://", 7) == 0);
}
