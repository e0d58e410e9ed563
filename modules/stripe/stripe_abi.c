/*
 * modules/stripe/stripe_abi.c - the checks that keep host input out of
 * URLs. (Reading requests, writing results, errors and arena copies are
 * payd/module_support.h's.)
 *
 * Everything here is stateless and thread-safe.
 */
#include "stripe.h"

#include <string.h>

int stripe_ok_id(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++, n++)
        if (n >= STRIPE_ID_MAX ||
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return n > 0;
}
