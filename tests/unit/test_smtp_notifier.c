/*
 * tests/unit/test_smtp_notifier.c - the smtp notifier, through its ABI.
 *
 * The module is dlopen'ed as payd loads it (PAYD_SMTP_SO, else
 * $PAYD_BUILD/modules/smtp.so, else build/modules/smtp.so), so its default
 * templates are the ones the build installed beside it. Most tests run it
 * against the fake host (fake_host.c), wrapped here to record the SMTP
 * envelope (mail_from, mail_rcpt, credentials), which the fake does not
 * keep; the message itself is parsed as MIME and its parts decoded.
 *
 * The last tests are end to end: the module sends through the real host
 * HTTP client (server/host.c, libcurl) to the real SMTP sink fake
 * (BUILD/fakes/smtp_sink), started on a free port for each test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "arena.h"
#include "fake_host.h"
#include "fake_sink.h"
#include "host.h"

#define FROM "shop@example.com"
#define BUYER "buyer@example.net"
#define ORDER_NUMBER "ORD-2026-000123"
#define EVENT_ID "evt_01HX5M7Q2K8ZPAID"

static void *dl;
static const payd_module *mod;
static void *st;
static payd_arena *call_arena;

/* ------------------------------------------------------------------------ */
/* A host that records the SMTP envelope                                    */
/* ------------------------------------------------------------------------ */

typedef struct sent {
    char url[512];
    char method[16];
    char mail_from[256];
    char rcpt[8][256];
    size_t nrcpt;
    char username[128];
    int had_password;
    long timeout_ms;
    char *msg;
} sent;

static sent last;
static size_t ncalls;
static payd_host rec_host;

static int rec_http(const payd_host *h, const payd_http_request *req,
                    payd_http_response *res, payd_arena *a, payd_error *e)
{
    size_t i;

    (void)h;
    free(last.msg);
    memset(&last, 0, sizeof last);
    snprintf(last.url, sizeof last.url, "%s", req->url);
    snprintf(last.method, sizeof last.method, "%s", req->method);
    snprintf(last.mail_from, sizeof last.mail_from, "%s", req->mail_from ? req->mail_from : "");
    for (i = 0; req->mail_rcpt != NULL && req->mail_rcpt[i] != NULL && i < 8; i++)
        snprintf(last.rcpt[i], sizeof last.rcpt[i], "%s", req->mail_rcpt[i]);
    last.nrcpt = i;
    snprintf(last.username, sizeof last.username, "%s", req->username ? req->username : "");
    last.had_password = req->password != NULL;
    last.timeout_ms = req->timeout_ms;
    last.msg = strndup(req->body, req->body_len);
    ncalls++;
    return fake_host()->http(fake_host(), req, res, a, e);
}

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    mod = fake_module_load("smtp", &dl);
    if (mod == NULL)
        return -1;
    rec_host = *fake_host();
    rec_host.http = rec_http;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(last.msg);
    last.msg = NULL;
    fake_module_unload(dl);
    return 0;
}

static const payd_host *cur_host;

static int start(payd_error *e)
{
    return fake_module_start(mod, cur_host, &st, e);
}

static void stop_instance(void)
{
    fake_module_stop(mod, &st);
}

static int setup(void **state)
{
    payd_error e;

    (void)state;
    fake_host_reset();
    fake_config_set("payd.instance", "mail");
    fake_config_set("url", "smtp://mail.example.test:2525");
    fake_config_set("from", FROM);
    fake_config_set("from_name", "Example Shop");
    fake_config_set("shop_name", "Example Shop");
    ncalls = 0;
    cur_host = &rec_host;
    call_arena = fake_arena_new();
    return start(&e) == PAYD_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    stop_instance();
    fake_arena_free(call_arena);
    call_arena = NULL;
    return 0;
}

static void restart(void)
{
    payd_error e;

    stop_instance();
    assert_int_equal(start(&e), PAYD_OK);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

/* An order snapshot; `email` NULL leaves customer_email null. */
static json_t *order_json(const char *currency, json_int_t total, const char *email)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:i, s:I, s:I, s:s}, {s:s, s:i, s:I, s:I, s:n}],"
                     " s:I, s:I, s:I, s:I, s:I, s:I, s:s?}",
                     "id", "ord_1", "object", "order", "number", ORDER_NUMBER, "currency", currency,
                     "items", "name", "<b>Tea & Co</b>", "quantity", 2, "unit_amount",
                     (json_int_t)450, "amount", (json_int_t)900, "sku", "TEA-1", "name", "Mug",
                     "quantity", 1, "unit_amount", total - 1400, "amount", total - 1400, "sku",
                     "subtotal", total - 500, "tax", (json_int_t)0, "shipping", (json_int_t)500,
                     "total", total, "amount_paid", total, "amount_refunded", (json_int_t)0,
                     "customer_email", email);
}

static char *order_paid_event(json_t *order)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:{s:o}}", "id", EVENT_ID,
                           "object", "event", "type", "order.paid", "object_type", "order",
                           "object_id", "ord_1", "order_id", "ord_1", "created", 1767225600,
                           "request_id", "req_1", "data", "object", order);
    char *s = json_dumps(ev, JSON_COMPACT);

    json_decref(ev);
    return s;
}

static char *refund_event(json_int_t amount, json_t *order)
{
    json_t *ev = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:{s:{s:s, s:s, s:I, s:s, s:s, s:s, s:s}, s:o}}",
        "id", "evt_01HX5M7Q2K8ZREFUND", "object", "event", "type", "refund.succeeded",
        "object_type", "refund", "object_id", "re_1", "order_id", "ord_1", "created", 1767225600,
        "request_id", "req_2", "data", "object", "id", "re_1", "object", "refund", "amount",
        amount, "currency", "USD", "payment_id", "pay_1", "order_id", "ord_1", "reason",
        "requested_by_customer", "order", order);
    char *s = json_dumps(ev, JSON_COMPACT);

    json_decref(ev);
    return s;
}

static int notify_json(const char *type, const char *event_json, payd_error *e)
{
    payd_notification n;
    json_t *root = json_loads(event_json, 0, NULL);
    int rc;

    memset(&n, 0, sizeof n);
    n.struct_size = (uint32_t)sizeof n;
    n.event_id = json_string_value(json_object_get(root, "id"));
    n.event_type = type;
    n.created_at = 1767225600;
    n.object_json = "{}";
    n.event_json = event_json;
    n.attempt = 1;
    memset(e, 0, sizeof *e);
    rc = mod->notifier->notify(st, &n, call_arena, e);
    json_decref(root);
    return rc;
}

/* Send order.paid for `order` (consumed); returns notify's code. */
static int notify_order(json_t *order, payd_error *e)
{
    char *ev = order_paid_event(order);
    int rc = notify_json("order.paid", ev, e);

    free(ev);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Reading the message                                                      */
/* ------------------------------------------------------------------------ */

/* The value of header `name` in the header block of `msg` (unfolded),
 * malloc'd, or NULL. */
static char *msg_header(const char *msg, const char *name)
{
    const char *end = strstr(msg, "\r\n\r\n");
    const char *p = msg;
    size_t nl = strlen(name);

    while (p != NULL && p < end) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *q = v;
            char *out = calloc(1, (size_t)(end - v) + 1);
            size_t o = 0;

            while (*v == ' ')
                v++;
            for (q = v; q < end; q++) {
                if (q[0] == '\r' && q[1] == '\n' && (q[2] == ' ' || q[2] == '\t')) {
                    q += 2;
                    continue;
                }
                if (q[0] == '\r' && q[1] == '\n')
                    break;
                out[o++] = *q;
            }
            return out;
        }
        p = strstr(p, "\r\n");
        p = p ? p + 2 : NULL;
    }
    return NULL;
}

static char *qp_decode(const char *in, size_t n)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        if (in[i] == '=' && i + 2 < n + 1 && in[i + 1] == '\r' && in[i + 2] == '\n') {
            i += 2;
        } else if (in[i] == '=' && i + 2 < n) {
            char hex[3] = {in[i + 1], in[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') {
            out[o++] = '\n';
            i++;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* The decoded body of the part with Content-Type `type`, malloc'd. */
static char *msg_part(const char *msg, const char *type)
{
    char *ct = msg_header(msg, "Content-Type");
    char delim[128];
    const char *b, *p;

    assert_non_null(ct);
    b = strstr(ct, "boundary=\"");
    assert_non_null(b);
    snprintf(delim, sizeof delim, "\r\n--%.*s", (int)strcspn(b + 10, "\""), b + 10);
    free(ct);
    for (p = strstr(msg, delim); p != NULL; p = strstr(p + 1, delim)) {
        const char *h = p + strlen(delim) + 2, *body = strstr(h, "\r\n\r\n"), *end;
        char want[128];

        if (body == NULL)
            break;
        snprintf(want, sizeof want, "Content-Type: %s;", type);
        if (strncmp(h, want, strlen(want)) != 0)
            continue;
        assert_non_null(strstr(h, "Content-Transfer-Encoding: quoted-printable\r\n"));
        body += 4;
        end = strstr(body, delim);
        assert_non_null(end);
        return qp_decode(body, (size_t)(end - body));
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Config                                                                   */
/* ------------------------------------------------------------------------ */

static void test_init_requires_url_and_from(void **state)
{
    payd_error e;

    (void)state;
    stop_instance();
    fake_config_set("url", NULL);
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "url is required"));
    fake_config_set("url", "smtp://mail.example.test");
    fake_config_set("from", NULL);
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "from is required"));
}

static void test_init_rejects_bad_values_naming_the_key(void **state)
{
    static const struct {
        const char *key, *value, *named;
    } bad[] = {
        {"url", "http://mail.example.test", "url"},
        {"url", "smtp://", "url"},
        {"from", "Shop <shop@example.com>", "from"},
        {"from", "shop", "from"},
        {"password", "pw", "password needs a username"},
        {"bcc", "archive@example.com, nope", "bcc"},
        {"timeout_ms", "10", "timeout_ms"},
        {"from_name", "Shop\r\nBcc: x@y.z", "from_name"},
    };
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        stop_instance();
        fake_config_set("url", "smtp://mail.example.test");
        fake_config_set("from", FROM);
        fake_config_set("from_name", NULL);
        fake_config_set(bad[i].key, bad[i].value);
        assert_int_equal(start(&e), PAYD_E_INVALID);
        assert_non_null(strstr(e.message, bad[i].named));
        fake_config_set(bad[i].key, NULL);
    }
}

/* A scratch directory with the four template files, `txt_extra` put into
 * order_paid.txt. Returns the path (static). */
static const char *template_dir(const char *order_txt)
{
    static char dir[256];
    static const char *const names[] = {"order_paid.txt", "order_paid.html",
                                        "refund_succeeded.txt", "refund_succeeded.html"};
    const char *contents[] = {order_txt, "<p>{{ items }}</p><p>{{total}}</p>",
                              "Refund {{refund_amount}}", "<p>{{refund_amount}}</p>"};
    char path[512];
    size_t i;

    snprintf(dir, sizeof dir, "/tmp/payd-smtp-tpl.XXXXXX");
    assert_non_null(mkdtemp(dir));
    for (i = 0; i < 4; i++) {
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(contents[i], f);
        fclose(f);
    }
    return dir;
}

static void remove_dir(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_init_reports_template_problems_by_file(void **state)
{
    payd_error e;
    const char *dir;

    (void)state;
    stop_instance();
    fake_config_set("templates", "/nonexistent/payd-templates");
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "/nonexistent/payd-templates/order_paid.txt"));

    dir = template_dir("Total {{totl}}\n");
    fake_config_set("templates", dir);
    assert_int_equal(start(&e), PAYD_E_INVALID);
    assert_non_null(strstr(e.message, "order_paid.txt"));
    assert_non_null(strstr(e.message, "{{totl}}"));
    remove_dir(dir);
}

/* ------------------------------------------------------------------------ */
/* The order confirmation                                                   */
/* ------------------------------------------------------------------------ */

static void test_order_paid_mails_the_customer_a_confirmation(void **state)
{
    payd_error e;
    char *h;

    (void)state;
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    assert_int_equal(ncalls, 1);
    assert_string_equal(last.url, "smtp://mail.example.test:2525");
    assert_string_equal(last.mail_from, FROM);
    assert_int_equal(last.nrcpt, 1);
    assert_string_equal(last.rcpt[0], BUYER);

    h = msg_header(last.msg, "To");
    assert_string_equal(h, "<" BUYER ">");
    free(h);
    h = msg_header(last.msg, "Subject");
    assert_string_equal(h, "Order " ORDER_NUMBER " confirmed");
    free(h);
    h = msg_header(last.msg, "From");
    assert_string_equal(h, "\"Example Shop\" <" FROM ">");
    free(h);
    h = msg_header(last.msg, "MIME-Version");
    assert_string_equal(h, "1.0");
    free(h);
    h = msg_header(last.msg, "Message-ID");
    assert_non_null(strstr(h, EVENT_ID));
    assert_non_null(strstr(h, "@example.com>"));
    free(h);
    h = msg_header(last.msg, "Date");
    assert_non_null(h);
    assert_non_null(strstr(h, " +0000"));
    free(h);
    h = msg_header(last.msg, "Content-Type");
    assert_non_null(strstr(h, "multipart/alternative"));
    free(h);
    assert_null(msg_header(last.msg, "Bcc"));
}

static void test_totals_and_items_are_formatted_in_both_parts(void **state)
{
    payd_error e;
    char *text, *html;

    (void)state;
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    text = msg_part(last.msg, "text/plain");
    html = msg_part(last.msg, "text/html");
    assert_non_null(text);
    assert_non_null(html);
    assert_non_null(strstr(text, ORDER_NUMBER));
    assert_non_null(strstr(text, "Total:     USD 26.34"));
    assert_non_null(strstr(text, "Subtotal:  USD 21.34"));
    assert_non_null(strstr(text, "Shipping:  USD 5.00"));
    assert_non_null(strstr(text, "2 x USD 4.50 = USD 9.00"));
    assert_non_null(strstr(text, "[TEA-1]"));
    assert_non_null(strstr(html, "USD 26.34"));
    assert_non_null(strstr(html, ORDER_NUMBER));
    free(text);
    free(html);
}

static void test_item_names_are_html_escaped_only_in_the_html_part(void **state)
{
    payd_error e;
    char *text, *html;

    (void)state;
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    text = msg_part(last.msg, "text/plain");
    html = msg_part(last.msg, "text/html");
    assert_non_null(strstr(html, "&lt;b&gt;Tea &amp; Co&lt;/b&gt;"));
    assert_null(strstr(html, "<b>Tea"));
    assert_non_null(strstr(text, "<b>Tea & Co</b>"));
    free(text);
    free(html);
}

static void test_amounts_follow_the_currency_exponent(void **state)
{
    static const struct {
        const char *currency;
        json_int_t total;
        const char *want;
    } cases[] = {
        {"JPY", 15000, "Total:     JPY 15000"},
        {"KWD", 12345, "Total:     KWD 12.345"},
        {"USD", 12345, "Total:     USD 123.45"},
        {"EUR", 1905, "Total:     EUR 19.05"},
        {"CLF", 123456, "Total:     CLF 12.3456"},
    };
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text;

        assert_int_equal(notify_order(order_json(cases[i].currency, cases[i].total, BUYER), &e),
                         PAYD_OK);
        text = msg_part(last.msg, "text/plain");
        if (strstr(text, cases[i].want) == NULL)
            fprintf(stderr, "# want '%s' in:\n%s\n", cases[i].want, text);
        assert_non_null(strstr(text, cases[i].want));
        free(text);
    }
}

static void test_refund_notice_goes_to_the_orders_customer(void **state)
{
    payd_error e;
    char *ev = refund_event(500, order_json("USD", 2634, BUYER));
    char *h, *text;

    (void)state;
    assert_int_equal(notify_json("refund.succeeded", ev, &e), PAYD_OK);
    free(ev);
    assert_int_equal(ncalls, 1);
    assert_string_equal(last.rcpt[0], BUYER);
    h = msg_header(last.msg, "Subject");
    assert_string_equal(h, "Refund for order " ORDER_NUMBER);
    free(h);
    text = msg_part(last.msg, "text/plain");
    assert_non_null(strstr(text, "refunded USD 5.00 for your order " ORDER_NUMBER));
    free(text);
}

/* ------------------------------------------------------------------------ */
/* Nothing to send                                                          */
/* ------------------------------------------------------------------------ */

static void test_missing_customer_email_is_nothing_to_send(void **state)
{
    payd_error e;
    json_t *o;

    (void)state;
    assert_int_equal(notify_order(order_json("USD", 2634, NULL), &e), PAYD_OK);
    assert_int_equal(notify_order(order_json("USD", 2634, ""), &e), PAYD_OK);
    o = order_json("USD", 2634, NULL);
    json_object_del(o, "customer_email");
    assert_int_equal(notify_order(o, &e), PAYD_OK);
    assert_int_equal(ncalls, 0);
    assert_true(fake_log_contains("has no customer_email"));
}

static void test_other_event_types_send_nothing(void **state)
{
    payd_error e;
    char *ev = order_paid_event(order_json("USD", 2634, BUYER));

    (void)state;
    assert_int_equal(notify_json("payment.succeeded", ev, &e), PAYD_OK);
    assert_int_equal(notify_json("order.created", ev, &e), PAYD_OK);
    assert_int_equal(notify_json("refund.failed", ev, &e), PAYD_OK);
    free(ev);
    assert_int_equal(ncalls, 0);
}

static void test_unusable_customer_email_is_a_permanent_failure(void **state)
{
    payd_error e;

    (void)state;
    assert_int_equal(notify_order(order_json("USD", 2634, "not-an-address"), &e), PAYD_E_INVALID);
    assert_int_equal(notify_order(order_json("USD", 2634, "a@b.c\r\nRCPT TO:<x@y.z>"), &e),
                     PAYD_E_INVALID);
    assert_int_equal(ncalls, 0);
}

/* ------------------------------------------------------------------------ */
/* SMTP replies                                                             */
/* ------------------------------------------------------------------------ */

static void test_smtp_reply_codes_map_to_retry_or_permanent(void **state)
{
    static const struct {
        long status;
        int want;
    } cases[] = {
        {250, PAYD_OK},          {221, PAYD_OK},
        {421, PAYD_E_TRANSIENT}, {451, PAYD_E_TRANSIENT}, {452, PAYD_E_TRANSIENT},
        {550, PAYD_E_PROVIDER},  {552, PAYD_E_PROVIDER},  {554, PAYD_E_PROVIDER},
        {535, PAYD_E_AUTH},      {0, PAYD_E_TRANSIENT},
    };
    payd_error e;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_http_script(&cases[i].status, 1);
        assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), cases[i].want);
        if (cases[i].want != PAYD_OK)
            assert_int_equal(e.code, cases[i].want);
    }
}

static void test_bcc_and_credentials_reach_the_envelope_only(void **state)
{
    payd_error e;

    (void)state;
    fake_config_set("bcc", "archive@example.com, audit@example.com");
    fake_config_set("username", "mailer");
    fake_config_set("password", "s3cret-SMTP-pw");
    restart();
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    assert_int_equal(last.nrcpt, 3);
    assert_string_equal(last.rcpt[0], BUYER);
    assert_string_equal(last.rcpt[1], "archive@example.com");
    assert_string_equal(last.rcpt[2], "audit@example.com");
    assert_string_equal(last.username, "mailer");
    assert_true(last.had_password);
    assert_null(strstr(last.msg, "archive@example.com"));
    assert_null(msg_header(last.msg, "Bcc"));
    assert_false(fake_log_contains("s3cret-SMTP-pw"));
}

/* ------------------------------------------------------------------------ */
/* The message on the wire                                                  */
/* ------------------------------------------------------------------------ */

static void test_order_data_cannot_inject_header_lines(void **state)
{
    payd_error e;
    json_t *o = order_json("USD", 2634, BUYER);
    const char *p;

    (void)state;
    json_object_set_new(o, "number", json_string("ORD-1\r\nBcc: evil@example.org"));
    assert_int_equal(notify_order(o, &e), PAYD_OK);
    for (p = last.msg; p != NULL && p < strstr(last.msg, "\r\n\r\n"); p = strstr(p, "\r\n")) {
        if (p != last.msg)
            p += 2;
        assert_true(strncasecmp(p, "Bcc:", 4) != 0);
    }
    assert_int_equal(last.nrcpt, 1);
}

static void test_non_ascii_subject_and_name_are_encoded_words(void **state)
{
    payd_error e;
    const char *dir = template_dir("Subject: Bestellung {{order_number}} bei {{shop_name}}\n\n"
                                   "Danke! {{ total }}\n");
    char *subj, *from, *text;
    unsigned char decoded[256];
    const char *w;
    int n;

    (void)state;
    fake_config_set("templates", dir);
    fake_config_set("shop_name", "Caf\xc3\xa9 M\xc3\xbcller");
    fake_config_set("from_name", "Caf\xc3\xa9 M\xc3\xbcller");
    restart();
    assert_int_equal(notify_order(order_json("EUR", 2634, BUYER), &e), PAYD_OK);
    subj = msg_header(last.msg, "Subject");
    assert_non_null(strstr(subj, "=?UTF-8?B?"));
    w = strstr(subj, "=?UTF-8?B?") + 10;
    n = EVP_DecodeBlock(decoded, (const unsigned char *)w, (int)strcspn(w, "?"));
    assert_true(n > 0);
    decoded[n] = '\0';
    assert_non_null(strstr((char *)decoded, "Bestellung " ORDER_NUMBER));
    from = msg_header(last.msg, "From");
    assert_non_null(strstr(from, "=?UTF-8?B?"));
    assert_non_null(strstr(from, "<" FROM ">"));
    text = msg_part(last.msg, "text/plain");
    assert_string_equal(text, "Danke! EUR 26.34\n");
    free(subj);
    free(from);
    free(text);
    remove_dir(dir);
}

static void test_message_is_7bit_with_short_crlf_lines(void **state)
{
    payd_error e;
    json_t *o = order_json("USD", 2634, BUYER);
    char longname[700];
    const char *p, *line;
    size_t i;

    (void)state;
    for (i = 0; i + 2 < sizeof longname; i += 2) {
        longname[i] = (char)0xc3; /* "é" repeated: multi-byte everywhere */
        longname[i + 1] = (char)0xa9;
    }
    longname[i] = '\0';
    json_object_set_new(json_array_get(json_object_get(o, "items"), 1), "name",
                        json_string(longname));
    assert_int_equal(notify_order(o, &e), PAYD_OK);
    for (p = last.msg, line = p; *p != '\0'; p++) {
        assert_true((unsigned char)*p < 0x80);
        if (*p == '\n') {
            assert_true(p > last.msg && p[-1] == '\r');
            assert_true(p - line <= 78);
            line = p + 1;
        }
    }
    /* And the long name survives the soft line breaks. */
    char *text = msg_part(last.msg, "text/plain");
    assert_non_null(strstr(text, longname));
    free(text);
}

static void test_a_retry_is_the_same_message(void **state)
{
    payd_error e;
    char *id1, *id2;

    (void)state;
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    id1 = msg_header(last.msg, "Message-ID");
    fake_clock_shift(600);
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    id2 = msg_header(last.msg, "Message-ID");
    assert_string_equal(id1, id2);
    free(id1);
    free(id2);
}

/* ------------------------------------------------------------------------ */
/* End to end: real host HTTP client, real SMTP sink                        */
/* ------------------------------------------------------------------------ */

static payd_host e2e_host;
static host_instance e2e_instance = {"notifier.mail", "payd:notifier.mail:"};

static int e2e_setup(void **state)
{
    (void)state;
    fake_host_reset();
    host_global_init(NULL, 10000);
    fake_real_http_bind(&e2e_instance);
    e2e_host = *fake_host();
    e2e_host.http = fake_real_http;
    cur_host = &e2e_host;
    call_arena = fake_arena_new();
    st = NULL;
    return 0;
}

static int e2e_teardown(void **state)
{
    (void)state;
    stop_instance();
    fake_arena_free(call_arena);
    call_arena = NULL;
    host_global_fini();
    return 0;
}

static void e2e_configure(const fake_sink *s)
{
    char url[128];
    payd_error e;

    snprintf(url, sizeof url, "smtp://127.0.0.1:%d", s->port);
    fake_config_set("url", url);
    fake_config_set("from", FROM);
    fake_config_set("from_name", "Example Shop");
    fake_config_set("shop_name", "Example Shop");
    fake_config_set("username", "mailer");
    fake_config_set("password", "pw");
    fake_config_set("timeout_ms", "5000");
    assert_int_equal(start(&e), PAYD_OK);
}

static void test_e2e_confirmation_reaches_the_smtp_sink(void **state)
{
    fake_sink s = {0};
    payd_error e;
    char *eml, *text;

    (void)state;
    fake_sink_start(&s, "smtp_sink", NULL);
    e2e_configure(&s);
    assert_int_equal(notify_order(order_json("KWD", 12345, BUYER), &e), PAYD_OK);
    eml = fake_sink_file(&s, 1, "eml", NULL);
    assert_non_null(eml);
    assert_true(strncmp(eml, "X-Envelope-To: " BUYER "\r\n", strlen("X-Envelope-To: " BUYER "\r\n")) == 0);
    assert_non_null(strstr(eml, "X-Envelope-From: " FROM "\r\n"));
    assert_non_null(strstr(eml, "X-Sink-Auth-User: mailer\r\n"));
    assert_non_null(strstr(eml, "\r\nSubject: Order " ORDER_NUMBER " confirmed\r\n"));
    assert_non_null(strstr(eml, "\r\nTo: <" BUYER ">\r\n"));
    text = msg_part(eml, "text/plain");
    assert_non_null(text);
    assert_non_null(strstr(text, "Total:     KWD 12.345"));
    free(text);
    free(eml);
    fake_sink_stop(&s);
}

static void test_e2e_451_is_retried_then_delivered_once(void **state)
{
    static const char *const fail_once[] = {"--fail-first", "1", NULL};
    fake_sink s = {0};
    payd_error e;
    char *eml;

    (void)state;
    fake_sink_start(&s, "smtp_sink", fail_once);
    e2e_configure(&s);
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_E_TRANSIENT);
    assert_null(fake_sink_file(&s, 1, "eml", NULL));
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_OK);
    eml = fake_sink_file(&s, 1, "eml", NULL);
    assert_non_null(eml);
    assert_non_null(strstr(eml, "Order " ORDER_NUMBER " confirmed"));
    free(eml);
    assert_null(fake_sink_file(&s, 2, "eml", NULL));
    fake_sink_stop(&s);
}

static void test_e2e_no_server_is_transient(void **state)
{
    fake_sink s = {0};
    payd_error e;

    (void)state;
    /* Start and stop a sink to get a port nobody listens on. */
    fake_sink_start(&s, "smtp_sink", NULL);
    fake_sink_stop(&s);
    e2e_configure(&s);
    assert_int_equal(notify_order(order_json("USD", 2634, BUYER), &e), PAYD_E_TRANSIENT);
    assert_int_equal(e.code, PAYD_E_TRANSIENT);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define E2E(f) cmocka_unit_test_setup_teardown(f, e2e_setup, e2e_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_requires_url_and_from),
        T(test_init_rejects_bad_values_naming_the_key),
        T(test_init_reports_template_problems_by_file),
        T(test_order_paid_mails_the_customer_a_confirmation),
        T(test_totals_and_items_are_formatted_in_both_parts),
        T(test_item_names_are_html_escaped_only_in_the_html_part),
        T(test_amounts_follow_the_currency_exponent),
        T(test_refund_notice_goes_to_the_orders_customer),
        T(test_missing_customer_email_is_nothing_to_send),
        T(test_other_event_types_send_nothing),
        T(test_unusable_customer_email_is_a_permanent_failure),
        T(test_smtp_reply_codes_map_to_retry_or_permanent),
        T(test_bcc_and_credentials_reach_the_envelope_only),
        T(test_order_data_cannot_inject_header_lines),
        T(test_non_ascii_subject_and_name_are_encoded_words),
        T(test_message_is_7bit_with_short_crlf_lines),
        T(test_a_retry_is_the_same_message),
        E2E(test_e2e_confirmation_reaches_the_smtp_sink),
        E2E(test_e2e_451_is_retried_then_delivered_once),
        E2E(test_e2e_no_server_is_transient),
    };

    return cmocka_run_group_tests_name("smtp_notifier", tests, group_setup, group_teardown);
}
