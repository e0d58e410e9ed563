/* api.c - shared handler plumbing (see api.h). Per-request; thread-safe. */
#include "api.h"

#include <stdlib.h>
#include <string.h>

void api_ctx(app *a, http_req *r, op_ctx *x)
{
    x->a = a;
    x->who = &r->auth;
    x->request_id = r->request_id;
    x->arena = r->arena;
}

void api_reply(http_req *r, int rc, int status, json_t *out, const fault *f, const char *extra_key)
{
    if (rc == 0) http_reply_json(r, status, out ? out : json_object());
    else http_reply_fault(r, f, extra_key, out);
}

int api_limit_upto(http_req *r, int *limit, int dflt, int max)
{
    const char *v = http_query(r, "limit");
    *limit = dflt;
    if (!v) return 0;
    char *end = NULL;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 1 || n > max) {
        http_reply_error(r, 400, "invalid_request_error", "parameter_invalid", "limit",
                         "limit must be an integer from 1 to %d", max);
        return -1;
    }
    *limit = (int)n;
    return 0;
}

int api_limit(http_req *r, int *limit)
{
    return api_limit_upto(r, limit, 10, 100);
}

const char *api_query_digits(http_req *r, const char *name, int *bad)
{
    const char *v = http_query(r, name);
    if (!v) return NULL;
    size_t n = strlen(v);
    if (n == 0 || n > 12 || strspn(v, "0123456789") != n) {
        http_reply_error(r, 400, "invalid_request_error", "parameter_invalid", name,
                         "%s must be a unix timestamp in seconds", name);
        *bad = 1;
    }
    return v;
}
