/*
 * modules/stripe/stripe_json.c - typed reads of Stripe's JSON objects.
 *
 * Stripe objects are deep and most members are optional or null; these
 * accessors take a dotted path and answer NULL or a default for anything
 * missing or of the wrong type, so callers never dereference a member they
 * have not checked. Reads only: safe on many threads as long as each
 * thread reads its own json_t tree (every call parses its own answer).
 */
#include "stripe.h"

#include <string.h>

json_t *stripe_jget(json_t *o, const char *path)
{
    char key[64];
    const char *dot;
    size_t n;

    while (o != NULL && path != NULL) {
        if (!json_is_object(o))
            return NULL;
        dot = strchr(path, '.');
        n = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (n == 0 || n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        o = json_object_get(o, key);
        path = dot != NULL ? dot + 1 : NULL;
    }
    return o;
}

const char *stripe_jstr(json_t *o, const char *path)
{
    json_t *v = stripe_jget(o, path);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t stripe_jint(json_t *o, const char *path, int64_t def)
{
    json_t *v = stripe_jget(o, path);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

int stripe_jtrue(json_t *o, const char *path)
{
    return json_is_true(stripe_jget(o, path));
}

const char *stripe_jdup(const payd_host *h, payd_arena *a, json_t *o,
                        const char *path, int *oom)
{
    return payd_adup(h, a, stripe_jstr(o, path), oom);
}

const char *stripe_jcurrency(const payd_host *h, payd_arena *a, json_t *o,
                             const char *path, int *oom)
{
    const char *s = stripe_jstr(o, path);
    char up[4];
    size_t i;

    if (s == NULL || strlen(s) != 3)
        return NULL;
    for (i = 0; i < 3; i++) {
        char c = s[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return NULL;
        up[i] = c;
    }
    up[3] = '\0';
    return payd_adup(h, a, up, oom);
}
