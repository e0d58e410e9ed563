/*
 * mc_approve.c - the buyer's step of a redirect gateway, for payd-modcheck.
 *
 * A redirect gateway (PayPal, and any provider whose create answers
 * requires_action with a URL) cannot take a payment until the buyer has
 * been to the provider. With --approve-url, the scenarios stand in for the
 * buyer between create and confirm by one GET:
 *
 *   --approve-url '{next_action_url}'   the URL create answered, as the
 *                                       buyer's browser opens it (a fake,
 *                                       or a sandbox that approves on visit)
 *   --approve-url 'http://...{provider_ref}...'   a control endpoint of a
 *                                       fake (the ref is percent-encoded)
 *
 * The GET goes through the host's own HTTP client (the instance's payd_host,
 * [server] http_ca_file trusted), which does not follow redirects: a 3xx is
 * the provider sending the buyer back to the shop's return_url, the end of
 * the buyer's step, so 2xx and 3xx both count as done.
 */
#include "modcheck.h"

#include <stdio.h>
#include <string.h>

#define MC_APPROVE_NEXT "{next_action_url}"
#define MC_APPROVE_REF "{provider_ref}"
#define MC_APPROVE_URL_MAX 2048

int mc_approve_template_ok(const char *tmpl)
{
    if (!strcmp(tmpl, MC_APPROVE_NEXT)) return 1;
    return (!strncmp(tmpl, "http://", 7) || !strncmp(tmpl, "https://", 8)) && !strpbrk(tmpl, " \t\r\n");
}

/* `tmpl` with every {provider_ref} replaced by the percent-encoded `ref`.
 * 0, or -1 when it does not fit `out`. */
static int expand_ref(const char *tmpl, const char *ref, char *out, size_t out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t used = 0, rl = strlen(MC_APPROVE_REF);
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, MC_APPROVE_REF, rl)) {
            for (const unsigned char *r = (const unsigned char *)ref; *r; r++) {
                int plain = (*r >= 'A' && *r <= 'Z') || (*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') ||
                            strchr("-._~", *r);
                if (used + 4 > out_len) return -1;
                if (plain) {
                    out[used++] = (char)*r;
                } else {
                    out[used++] = '%';
                    out[used++] = hex[*r >> 4];
                    out[used++] = hex[*r & 15];
                }
            }
            p += rl;
        } else {
            if (used + 2 > out_len) return -1;
            out[used++] = *p++;
        }
    }
    out[used] = '\0';
    return 0;
}

/*
 * The buyer's step for the payment `provider_ref`, whose create (or
 * confirm) answered requires_action with `next_action_url` (may be NULL or
 * empty). MC_PASS, or MC_FAIL with `why`. Safe from many threads: the host
 * HTTP client keeps one handle per thread.
 */
int mc_approve(mc_ctx *c, const char *provider_ref, const char *next_action_url, char *why, size_t len)
{
    const char *tmpl = c->o->approve_url;
    char url[MC_APPROVE_URL_MAX];
    if (!strcmp(tmpl, MC_APPROVE_NEXT)) {
        if (!next_action_url || !next_action_url[0])
            return mc_verdict(why, len, MC_FAIL, "requires_action without a next_action_url for the buyer to "
                              "follow (--approve-url %s)", MC_APPROVE_NEXT);
        if (strncmp(next_action_url, "http://", 7) != 0 && strncmp(next_action_url, "https://", 8) != 0)
            return mc_verdict(why, len, MC_FAIL, "next_action_url is not an http(s) URL: %.120s", next_action_url);
        if (snprintf(url, sizeof url, "%s", next_action_url) >= (int)sizeof url)
            return mc_verdict(why, len, MC_FAIL, "next_action_url is longer than %d bytes", MC_APPROVE_URL_MAX);
    } else if (expand_ref(tmpl, provider_ref, url, sizeof url) != 0) {
        return mc_verdict(why, len, MC_FAIL, "--approve-url with the provider_ref is longer than %d bytes",
                          MC_APPROVE_URL_MAX);
    }

    const payd_host *h = &c->inst->host;
    payd_http_request req;
    payd_http_response res;
    payd_error e;
    memset(&req, 0, sizeof req);
    memset(&res, 0, sizeof res);
    memset(&e, 0, sizeof e);
    req.struct_size = sizeof req;
    req.method = "GET";
    req.url = url;
    res.struct_size = sizeof res;
    /* No arena: only the status matters, the page itself is discarded. */
    int rc = h->http(h, &req, &res, NULL, &e);
    int status = MC_PASS;
    e.message[sizeof e.message - 1] = '\0';
    if (rc != PAYD_OK)
        status = mc_verdict(why, len, MC_FAIL, "the buyer's step (GET %.160s) failed: %s: %s", url, mc_code_name(rc),
                            e.message);
    else if (res.status < 200 || res.status >= 400)
        status = mc_verdict(why, len, MC_FAIL, "the buyer's step (GET %.160s) answered HTTP %ld", url,
                            (long)res.status);
    return status;
}
