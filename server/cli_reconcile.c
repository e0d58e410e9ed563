/*
 * cli_reconcile.c - `payd reconcile`: compare payd's ledger with what a
 * gateway module's `retrieve` says, for every payment in a range.
 *
 *   payd reconcile -c FILE --gateway NAME --from D --to D
 *   PAYD_ADMIN_KEY=... payd reconcile --server URL --gateway NAME --from D --to D
 *
 * By default it runs here: it loads the configured modules and calls them
 * itself (reconcile.c). That is right for a real provider, whose state lives
 * at the provider. The mock gateway keeps its "provider" in the memory of
 * the payd process that serves it, so a second process would find nothing;
 * `--server` asks a running payd's GET /v1/admin/reconcile instead. The
 * admin key comes from the environment, never from argv, where any user
 * of the machine could read it in the process list.
 *
 * One line per mismatch on stdout: "<payment> <kind> [refund=<id>]
 * payd=<v> provider=<v> -- <message>"; a summary on stderr. Exit 0 when
 * clean, 1 with mismatches, 2 when it could not reconcile.
 *
 * Runs once on the main thread.
 */
#include "cli_reconcile.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile.h"
#include "reports.h"

#define REMOTE_TIMEOUT_S 600
#define REMOTE_MAX_BODY (64L * 1024 * 1024)

static void reconcile_usage(void)
{
    fprintf(stderr, "usage: payd reconcile [-c FILE] --gateway NAME --from DATE --to DATE\n"
                    "       payd reconcile --server URL --gateway NAME --from DATE --to DATE"
                    "   (admin key in $PAYD_ADMIN_KEY)\n"
                    "       DATE is YYYY-MM-DD (UTC midnight) or RFC 3339; --to is exclusive\n");
}

int cli_reconcile_parse(int argc, char **argv, cli_reconcile_opts *o)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"gateway", required_argument, NULL, 'g'},
        {"from", required_argument, NULL, 'f'},   {"to", required_argument, NULL, 't'},
        {"server", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    *o = (cli_reconcile_opts){.config = "conf/payd.conf"};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'g': o->gateway = optarg; break;
        case 'f': o->from = optarg; break;
        case 't': o->to = optarg; break;
        case 's': o->server = optarg; break;
        default: reconcile_usage(); return 2;
        }
    }
    if (optind != argc || !o->gateway || !o->from || !o->to) {
        reconcile_usage();
        return 2;
    }
    return 0;
}

/* A JSON scalar as text for a line: integers, strings, null. */
static void print_value(const char *name, json_t *v)
{
    if (json_is_integer(v)) printf(" %s=%lld", name, (long long)json_integer_value(v));
    else if (json_is_string(v)) printf(" %s=%s", name, json_string_value(v));
    else printf(" %s=-", name);
}

/* Prints the mismatches of a reconciliation; returns the exit code. */
static int print_result(json_t *res)
{
    json_t *list = json_object_get(res, "mismatches");
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        printf("%s %s", json_string_value(json_object_get(m, "payment_id")),
               json_string_value(json_object_get(m, "kind")));
        const char *refund = json_string_value(json_object_get(m, "refund_id"));
        if (refund) printf(" refund=%s", refund);
        print_value("payd", json_object_get(m, "payd"));
        print_value("provider", json_object_get(m, "provider"));
        printf(" -- %s\n", json_string_value(json_object_get(m, "message")));
    }
    fflush(stdout);
    fprintf(stderr, "payd: reconcile %s [%s, %s): %lld payments, %lld refunds checked, %zu mismatches\n",
            json_string_value(json_object_get(res, "gateway")), json_string_value(json_object_get(res, "from")),
            json_string_value(json_object_get(res, "to")),
            (long long)json_integer_value(json_object_get(res, "payments_checked")),
            (long long)json_integer_value(json_object_get(res, "refunds_checked")), json_array_size(list));
    return json_array_size(list) ? 1 : 0;
}

int cli_reconcile_run(app *a, const cli_reconcile_opts *o)
{
    report_range rg;
    fault f;
    json_t *out = NULL;
    if (reports_range(a->cfg, o->from, o->to, &rg, &f) != 0 || reconcile_run(a, o->gateway, &rg, &out, &f) != 0) {
        fprintf(stderr, "payd: reconcile: %s\n", f.message);
        return 2;
    }
    int rc = print_result(out);
    json_decref(out);
    return rc;
}

typedef struct body_buf {
    char *data;
    size_t len;
    int too_big;
} body_buf;

static size_t collect(char *p, size_t size, size_t n, void *user)
{
    body_buf *b = user;
    size_t len = size * n;
    if (b->len + len > (size_t)REMOTE_MAX_BODY) {
        b->too_big = 1;
        return 0;
    }
    char *d = realloc(b->data, b->len + len + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, len);
    b->data = d;
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

int cli_reconcile_remote(const cli_reconcile_opts *o)
{
    const char *key = getenv("PAYD_ADMIN_KEY");
    if (!key || !*key) {
        fprintf(stderr, "payd: reconcile --server needs an admin API key in $PAYD_ADMIN_KEY\n");
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 2;
    CURL *h = curl_easy_init();
    if (!h) {
        curl_global_cleanup();
        return 2;
    }
    char *gw = curl_easy_escape(h, o->gateway, 0), *from = curl_easy_escape(h, o->from, 0);
    char *to = curl_easy_escape(h, o->to, 0);
    size_t base = strlen(o->server);
    while (base > 0 && o->server[base - 1] == '/') base--;
    char *url = NULL, *auth = NULL;
    body_buf body = {0};
    int exit_code = 2;
    if (gw && from && to &&
        asprintf(&url, "%.*s/v1/admin/reconcile?gateway=%s&from=%s&to=%s", (int)base, o->server, gw, from, to) > 0 &&
        asprintf(&auth, "Authorization: Bearer %s", key) > 0) {
        struct curl_slist *headers = curl_slist_append(NULL, auth);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)REMOTE_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        CURLcode cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        json_t *res = cc == CURLE_OK && body.data ? json_loads(body.data, 0, NULL) : NULL;
        if (cc != CURLE_OK) {
            fprintf(stderr, "payd: reconcile: %s: %s\n", url, body.too_big ? "answer too large" : curl_easy_strerror(cc));
        } else if (status != 200 || !json_is_object(res)) {
            const char *msg = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
            fprintf(stderr, "payd: reconcile: the server answered %ld: %s\n", status, msg ? msg : "(no error message)");
        } else {
            exit_code = print_result(res);
        }
        json_decref(res);
        curl_slist_free_all(headers);
    }
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(url);
    free(body.data);
    curl_free(gw);
    curl_free(from);
    curl_free(to);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return exit_code;
}
