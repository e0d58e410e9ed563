/*
 * modules/stripe/stripe_form.c - request bodies in Stripe's form encoding.
 *
 * Stripe takes application/x-www-form-urlencoded bodies whose keys carry
 * nesting in brackets:
 *
 *   amount=2599&currency=usd&metadata[payd_payment_id]=pay_1
 *   &payment_method_types[]=card&automatic_payment_methods[enabled]=true
 *
 * Values are percent-encoded as RFC 3986 says (everything but A-Z a-z 0-9
 * - _ . ~, space as %20); keys the same, except that '[' and ']' stay
 * literal, as Stripe's own libraries send them.
 *
 * The buffer is malloc'd (it grows while parameters are added) and freed
 * with stripe_form_free; it never holds a secret. Not shared between
 * threads.
 */
#include "stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stripe_form_put(stripe_form *f, const char *s, size_t n)
{
    size_t cap;
    char *d;

    if (f->oom)
        return;
    if (f->len + n + 1 > f->cap) {
        cap = f->cap ? f->cap : 256;
        while (cap < f->len + n + 1)
            cap *= 2;
        d = realloc(f->data, cap);
        if (d == NULL) {
            f->oom = 1;
            return;
        }
        f->data = d;
        f->cap = cap;
    }
    memcpy(f->data + f->len, s, n);
    f->len += n;
    f->data[f->len] = '\0';
}

static int stripe_form_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
           c == '~';
}

/* Percent-encode `s`: a key keeps its brackets literal, a value does not. */
void stripe_form_escape(stripe_form *f, const char *s, int is_key)
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[3];

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (stripe_form_unreserved(c) || (is_key && (c == '[' || c == ']'))) {
            stripe_form_put(f, s, 1);
            continue;
        }
        esc[0] = '%';
        esc[1] = hex[c >> 4];
        esc[2] = hex[c & 15];
        stripe_form_put(f, esc, 3);
    }
}

void stripe_form_add(stripe_form *f, const char *key, const char *value)
{
    if (value == NULL)
        return;
    if (f->len > 0)
        stripe_form_put(f, "&", 1);
    stripe_form_escape(f, key, 1);
    stripe_form_put(f, "=", 1);
    stripe_form_escape(f, value, 0);
}

void stripe_form_add_int(stripe_form *f, const char *key, int64_t value)
{
    char num[24];

    snprintf(num, sizeof num, "%lld", (long long)value);
    stripe_form_add(f, key, num);
}

void stripe_form_free(stripe_form *f)
{
    free(f->data);
    memset(f, 0, sizeof *f);
}
