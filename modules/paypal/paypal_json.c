/*
 * modules/paypal/paypal_json.c - typed reads of PayPal's JSON objects.
 *
 * PayPal objects nest arrays (purchase_units[0].payments.captures[0]), so
 * paths take numeric steps for array indexes. Every accessor answers NULL
 * or a default for anything missing or of the wrong type, so callers
 * never dereference a member they have not checked. Reads only: safe on
 * many threads as long as each thread reads its own json_t tree.
 */
#include "paypal.h"

#include <string.h>

json_t *paypal_jget(json_t *o, const char *path)
{
    char key[64];
    const char *dot;
    size_t n, i;

    while (o != NULL && path != NULL) {
        dot = strchr(path, '.');
        n = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (n == 0 || n >= sizeof key)
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        if (json_is_array(o)) {
            size_t idx = 0;

            for (i = 0; i < n; i++) {
                if (key[i] < '0' || key[i] > '9' || i >= 6)
                    return NULL;
                idx = idx * 10 + (size_t)(key[i] - '0');
            }
            o = json_array_get(o, idx);
        } else if (json_is_object(o)) {
            o = json_object_get(o, key);
        } else {
            return NULL;
        }
        path = dot != NULL ? dot + 1 : NULL;
    }
    return o;
}

const char *paypal_jstr(json_t *o, const char *path)
{
    json_t *v = paypal_jget(o, path);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

int64_t paypal_jint(json_t *o, const char *path, int64_t def)
{
    json_t *v = paypal_jget(o, path);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

const char *paypal_jdup(const payd_host *h, payd_arena *a, json_t *o,
                        const char *path, int *oom)
{
    return payd_adup(h, a, paypal_jstr(o, path), oom);
}

/*
 * 1 for https, or http towards a loopback fake. The buyer is sent to this
 * link, so for http the whole host is checked, not a prefix of the URL:
 * "http://127.0.0.1@shop.evil/" and "http://localhost.evil/" are not
 * loopback. The host is 127.<digits and dots>, localhost or [::1], with an
 * optional :port, and no user info.
 */
static int paypal_link_ok(const char *href)
{
    const char *host;
    size_t n;

    if (!paypal_ok_url(href))
        return 0;
    if (strncmp(href, "https://", 8) == 0)
        return 1;
    host = href + 7;
    n = strcspn(host, "/?#");
    if (memchr(host, '@', n) != NULL)
        return 0;
    if (strncmp(host, "[::1]", 5) == 0)
        return n == 5 || host[5] == ':';
    if (strncmp(host, "localhost", 9) == 0)
        return n == 9 || host[9] == ':';
    if (strncmp(host, "127.", 4) != 0)
        return 0;
    n = 4 + strspn(host + 4, "0123456789.");
    return host[n] == '\0' || strchr(":/?#", host[n]) != NULL;
}

const char *paypal_link(json_t *links, const char *const *rels)
{
    size_t i, r;
    json_t *l;

    if (!json_is_array(links))
        return NULL;
    for (r = 0; rels[r] != NULL; r++) {
        json_array_foreach(links, i, l) {
            const char *rel = paypal_jstr(l, "rel");
            const char *href = paypal_jstr(l, "href");

            if (rel != NULL && strcmp(rel, rels[r]) == 0 && paypal_link_ok(href))
                return href;
        }
    }
    return NULL;
}
