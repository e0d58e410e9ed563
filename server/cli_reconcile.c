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
 * Either way the range is walked page by page (--page-size payments, at
 * most RECONCILE_PAGE_MAX), each page printed as it comes, so a long range
 * holds neither a server thread nor this process's memory.
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
#define CURSOR_MAX 128

static void reconcile_usage(void)
{
    fprintf(stderr, "usage: payd reconcile [-c FILE] --gateway NAME --from DATE --to DATE [--page-size N]"
                    " [--starting-after PAYMENT]\n"
                    "       payd reconcile --server URL ...same...   (admin key in $PAYD_ADMIN_KEY)\n"
                    "       DATE is YYYY-MM-DD (UTC midnight) or RFC 3339; --to is exclusive;\n"
                    "       N payments per page, 1 to %d (default %d); --starting-after resumes a run\n",
            RECONCILE_PAGE_MAX, RECONCILE_PAGE_DEFAULT);
}

int cli_reconcile_parse(int argc, char **argv, cli_reconcile_opts *o)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'}, {"gateway", required_argument, NULL, 'g'},
        {"from", required_argument, NULL, 'f'},   {"to", required_argument, NULL, 't'},
        {"server", required_argument, NULL, 's'}, {"page-size", required_argument, NULL, 'p'},
        {"starting-after", required_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
    *o = (cli_reconcile_opts){.config = "conf/payd.conf", .page_size = RECONCILE_PAGE_DEFAULT};
    char *end;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "c:", longs, NULL)) != -1) {
        switch (ch) {
        case 'c': o->config = optarg; break;
        case 'g': o->gateway = optarg; break;
        case 'f': o->from = optarg; break;
        case 't': o->to = optarg; break;
        case 's': o->server = optarg; break;
        case 'a':
            if (strlen(optarg) >= CURSOR_MAX) {
                reconcile_usage();
                return 2;
            }
            o->starting_after = optarg;
            break;
        case 'p':
            o->page_size = (int)strtol(optarg, &end, 10);
            if (!*optarg || *end || o->page_size < 1 || o->page_size > RECONCILE_PAGE_MAX) {
                reconcile_usage();
                return 2;
            }
            break;
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

/* Totals over the pages of one run. */
typedef struct recon_totals {
    long long pages, payments, refunds, mismatches;
} recon_totals;

/* Prints one page's mismatches and adds its counts to *t. Copies the
 * page's cursor to `cursor` and returns 1 when another page follows, 0 at
 * the end, -1 for an answer that says more follows but not from where. */
static int print_page(json_t *res, recon_totals *t, char cursor[CURSOR_MAX])
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
    t->pages++;
    t->payments += json_integer_value(json_object_get(res, "payments_checked"));
    t->refunds += json_integer_value(json_object_get(res, "refunds_checked"));
    t->mismatches += (long long)json_array_size(list);
    if (!json_is_true(json_object_get(res, "has_more"))) return 0;
    const char *next = json_string_value(json_object_get(res, "next_starting_after"));
    if (!next || strlen(next) >= CURSOR_MAX) {
        fprintf(stderr, "payd: reconcile: the answer says more payments follow but not after which\n");
        return -1;
    }
    snprintf(cursor, CURSOR_MAX, "%s", next);
    return 1;
}

/* After a failed page: where to resume, when some pages were done. */
static void print_resume(const recon_totals *t, const char *cursor)
{
    if (t->pages > 0 && cursor[0])
        fprintf(stderr, "payd: reconcile: stopped; the pages before were checked: resume with --starting-after %s\n",
                cursor);
}

/* The summary on stderr; returns the exit code. */
static int print_summary(const cli_reconcile_opts *o, const recon_totals *t)
{
    fprintf(stderr, "payd: reconcile %s [%s, %s): %lld payments, %lld refunds checked, %lld mismatches\n",
            o->gateway, o->from, o->to, t->payments, t->refunds, t->mismatches);
    return t->mismatches ? 1 : 0;
}

int cli_reconcile_run(app *a, const cli_reconcile_opts *o)
{
    report_range rg;
    fault f;
    recon_totals t = {0};
    char cursor[CURSOR_MAX];
    snprintf(cursor, sizeof cursor, "%s", o->starting_after ? o->starting_after : "");
    if (reports_range(a->cfg, o->from, o->to, &rg, &f) != 0) {
        fprintf(stderr, "payd: reconcile: %s\n", f.message);
        return 2;
    }
    for (int more = 1; more == 1;) {
        reconcile_page page = {.starting_after = cursor[0] ? cursor : NULL, .limit = o->page_size};
        json_t *out = NULL;
        if (reconcile_run(a, o->gateway, &rg, &page, &out, &f) != 0) {
            fprintf(stderr, "payd: reconcile: %s\n", f.message);
            print_resume(&t, cursor);
            return 2;
        }
        more = print_page(out, &t, cursor);
        json_decref(out);
        if (more < 0) return 2;
    }
    return print_summary(o, &t);
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

/* GETs one page from the server: the answer (caller owns), or NULL after
 * printing why. */
static json_t *remote_page(CURL *h, const char *url, struct curl_slist *headers)
{
    body_buf body = {0};
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
    free(body.data);
    if (cc != CURLE_OK) {
        fprintf(stderr, "payd: reconcile: %s: %s\n", url, body.too_big ? "answer too large" : curl_easy_strerror(cc));
    } else if (status != 200 || !json_is_object(res)) {
        const char *msg = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
        fprintf(stderr, "payd: reconcile: the server answered %ld: %s\n", status, msg ? msg : "(no error message)");
    } else {
        return res;
    }
    json_decref(res);
    return NULL;
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
    char *auth = NULL;
    struct curl_slist *headers = NULL;
    recon_totals t = {0};
    char cursor[CURSOR_MAX];
    snprintf(cursor, sizeof cursor, "%s", o->starting_after ? o->starting_after : "");
    int more = -1;
    if (gw && from && to && asprintf(&auth, "Authorization: Bearer %s", key) > 0 &&
        (headers = curl_slist_append(NULL, auth)) != NULL) {
        more = 1;
        while (more == 1) {
            char *after = cursor[0] ? curl_easy_escape(h, cursor, 0) : NULL;
            char *url = NULL;
            json_t *res = NULL;
            if (asprintf(&url, "%.*s/v1/admin/reconcile?gateway=%s&from=%s&to=%s&limit=%d%s%s", (int)base,
                         o->server, gw, from, to, o->page_size, after ? "&starting_after=" : "",
                         after ? after : "") > 0)
                res = remote_page(h, url, headers);
            else url = NULL;
            more = res ? print_page(res, &t, cursor) : -1;
            json_decref(res);
            free(url);
            curl_free(after);
        }
    }
    if (auth) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    curl_slist_free_all(headers);
    curl_free(gw);
    curl_free(from);
    curl_free(to);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    if (more < 0) print_resume(&t, cursor);
    return more < 0 ? 2 : print_summary(o, &t);
}
