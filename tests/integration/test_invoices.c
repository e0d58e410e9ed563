/*
 * test_invoices.c - GET /v1/orders/{id}/invoice against a real payd,
 * PostgreSQL and the mock gateway: the HTML shows the order number, items,
 * totals formatted by currency exponent (USD, JPY, KWD), payments and
 * refunds, the PAID / UNPAID / PARTIALLY REFUNDED mark, and escapes hostile
 * item names; ?format=pdf is a real PDF that pdftotext reads the order
 * number and total back from, over several pages when the items need them;
 * invoice numbers are issued once per order and gapless per year, also
 * under concurrent first renders; bad formats, unknown and other users'
 * orders are refused in the one error shape; check-config reports a
 * missing or broken template with file and line, and the shipped template
 * is found where make install puts it.
 */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "harness.h"

static h_payd srv;
#define sql_int(...) h_sql_intf(&srv, __VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Helpers.                                                                 */
/* ------------------------------------------------------------------------ */

/* POST /v1/orders with `body` as `auth`; copies the id and number. */
static void create_order(const char *auth, const char *body, char id[64], char number[64])
{
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/orders", auth, NULL, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    snprintf(id, 64, "%s", h_rstr(&r, "id"));
    if (number) snprintf(number, 64, "%s", h_rstr(&r, "number"));
    h_resp_free(&r);
}

/* Pays an order in full with the mock's pm_card_visa; copies the payment id. */
static void pay(const char *order, char pay_id[64])
{
    char body[256];
    snprintf(body, sizeof body, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order);
    h_resp r;
    assert_int_equal(h_post_json(&srv, "/v1/payments", srv.merchant_auth, NULL, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    snprintf(pay_id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

/* GET the invoice of `order`; `format` may be NULL. */
static void get_invoice(const char *order, const char *format, const char *auth, h_resp *r)
{
    char path[200];
    snprintf(path, sizeof path, "/v1/orders/%s/invoice%s%s", order, format ? "?format=" : "", format ? format : "");
    assert_int_equal(h_get(&srv, path, auth, r), 0);
}

/* The HTML invoice of `order` as the merchant: 200, text/html, and its
 * number copied from the Invoice-Number header. Returns the body
 * (malloc'd). */
static char *invoice_html(const char *order, char number[64])
{
    h_resp r;
    get_invoice(order, NULL, srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_resp_header(&r, "Content-Type"), "text/html; charset=utf-8");
    const char *n = h_resp_header(&r, "Invoice-Number");
    assert_non_null(n);
    EXPECT_CONTAINS(r.body, n);
    if (number) snprintf(number, 64, "%s", n);
    char *body = strdup(r.body);
    h_resp_free(&r);
    return body;
}

/* The year of an issued invoice, as payd stored it when it issued it (the
 * database's UTC year then; the test's own clock could already be in the
 * next year). */
static long long invoice_year(const char *number)
{
    return sql_int("SELECT year FROM invoices WHERE number = '%s'", number);
}

/* The sequence part of an invoice number, checking its shape
 * INV-YYYY-NNNNNN with YYYY the year it was issued in. */
static long long invoice_seq(const char *number)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "INV-%04lld-", invoice_year(number));
    if (strncmp(number, prefix, strlen(prefix)) != 0 || strlen(number) != strlen(prefix) + 6 ||
        strspn(number + strlen(prefix), "0123456789") != 6) {
        print_error("invoice number '%s' is not %sNNNNNN\n", number, prefix);
        fail();
    }
    return atoll(number + strlen(prefix));
}

/* Writes a PDF body to a file and returns pdftotext's output (malloc'd). */
static char *pdf_text(const h_resp *r)
{
    char dir[PATH_MAX], pdf[PATH_MAX + 16];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(pdf, sizeof pdf, "%s/inv.pdf", dir);
    FILE *f = fopen(pdf, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(r->body, 1, r->body_len, f), r->body_len);
    fclose(f);
    char *out = malloc(1 << 20);
    assert_non_null(out);
    const char *argv[] = {"/usr/bin/pdftotext", "-layout", pdf, "-", NULL};
    int rc = h_run(argv, out, 1 << 20);
    if (rc != 0) print_error("pdftotext exited %d: %s\n", rc, out);
    assert_int_equal(rc, 0);
    return out;
}

/* "Bearer <jwt>" for end user `sub`, valid ten minutes. */
static void user_auth(const char *sub, char out[1024])
{
    char *jwt = h_jwt_hs256(h_jwt_secret(), sub, (long long)time(NULL) + 600);
    assert_non_null(jwt);
    snprintf(out, 1024, "Bearer %s", jwt);
    free(jwt);
}

/* ------------------------------------------------------------------------ */
/* Setup.                                                                   */
/* ------------------------------------------------------------------------ */

static int setup(void **state)
{
    /* No [invoice] template: payd uses the shipped templates/invoice.html. */
    h_payd_opts o = {
        .threads = 16,
        .pool = 16,
        .extra = "[gateway.mock]\n"
                 "module = mock\n"
                 "webhook_secret = whsec_test\n"
                 "[routing]\n"
                 "default = mock\n"
                 "[invoice]\n"
                 "seller_name = Leaf & Cup Ltd\n"
                 "seller_address = 1 Tea Street\\n Springfield 12345\n"
                 "seller_tax_id = GB123456789\n"
                 "seller_email = billing@leafcup.example\n"
                 "footer = Thank you for your business.\n",
    };
    return h_group_start(state, &srv, &o);
}

/* ------------------------------------------------------------------------ */
/* HTML.                                                                    */
/* ------------------------------------------------------------------------ */

static void test_paid_usd_invoice_shows_seller_order_items_totals_and_payment(void **state)
{
    (void)state;
    char order[64], number[64], pay_id[64], inv[64];
    create_order(srv.merchant_auth,
                 "{\"currency\":\"USD\",\"tax\":280,\"shipping\":500,\"customer_email\":\"ann@example.com\","
                 "\"billing_address\":{\"name\":\"Ann Buyer\",\"line1\":\"2 Cup Road\",\"country\":\"GB\"},"
                 "\"items\":[{\"name\":\"Green tea\",\"quantity\":2,\"unit_amount\":1250,\"sku\":\"GT-1\"},"
                 "{\"name\":\"Cup\",\"unit_amount\":999}]}",
                 order, number);
    pay(order, pay_id);
    char *html = invoice_html(order, inv);
    invoice_seq(inv);
    EXPECT_CONTAINS(html, number);
    EXPECT_CONTAINS(html, "Leaf &amp; Cup Ltd");
    EXPECT_CONTAINS(html, "1 Tea Street<br>");
    EXPECT_CONTAINS(html, "Springfield 12345<br>");
    EXPECT_CONTAINS(html, "GB123456789");
    EXPECT_CONTAINS(html, "Ann Buyer<br>");
    EXPECT_CONTAINS(html, "ann@example.com");
    EXPECT_CONTAINS(html, "Green tea <small>(GT-1)</small>");
    EXPECT_CONTAINS(html, "USD 12.50");  /* unit price */
    EXPECT_CONTAINS(html, "USD 25.00");  /* line */
    EXPECT_CONTAINS(html, "USD 9.99");
    EXPECT_CONTAINS(html, "<td class=\"num\">USD 34.99</td>"); /* subtotal */
    EXPECT_CONTAINS(html, "<td class=\"num\">USD 2.80</td>");  /* tax */
    EXPECT_CONTAINS(html, "<td class=\"num\">USD 5.00</td>");  /* shipping */
    EXPECT_CONTAINS(html, "<tr class=\"grand\"><td>Total</td><td class=\"num\">USD 42.79</td>");
    EXPECT_CONTAINS(html, pay_id);
    EXPECT_CONTAINS(html, "class=\"mark paid\">PAID</span>");
    EXPECT_CONTAINS(html, "No refunds.");
    EXPECT_CONTAINS(html, "Thank you for your business.");
    EXPECT_NOT_CONTAINS(html, "Balance due");
    EXPECT_NOT_CONTAINS(html, "{{");
    free(html);
}

static void test_refund_is_listed_and_marks_invoice_partially_refunded(void **state)
{
    (void)state;
    char order[64], number[64], pay_id[64];
    create_order(srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Kettle\",\"unit_amount\":4000}]}",
                 order, number);
    pay(order, pay_id);
    h_resp r;
    char body[160];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1500,\"reason\":\"requested_by_customer\"}", pay_id);
    assert_int_equal(h_post_json(&srv, "/v1/refunds", srv.merchant_auth, NULL, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    char refund_id[64];
    snprintf(refund_id, sizeof refund_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);

    char *html = invoice_html(order, NULL);
    EXPECT_CONTAINS(html, number);
    EXPECT_CONTAINS(html, refund_id);
    EXPECT_CONTAINS(html, "succeeded (requested_by_customer)");
    EXPECT_CONTAINS(html, "USD 15.00");
    EXPECT_CONTAINS(html, "USD 40.00");
    EXPECT_CONTAINS(html, pay_id);
    EXPECT_CONTAINS(html, "PARTIALLY REFUNDED</span>");
    EXPECT_NOT_CONTAINS(html, "No refunds.");
    free(html);
}

static void test_jpy_and_kwd_amounts_follow_the_currency_exponent(void **state)
{
    (void)state;
    char order[64], number[64], pay_id[64];
    create_order(srv.merchant_auth,
                 "{\"currency\":\"JPY\",\"tax\":50,\"items\":[{\"name\":\"Matcha\",\"quantity\":3,\"unit_amount\":500}]}",
                 order, number);
    pay(order, pay_id);
    char *html = invoice_html(order, NULL);
    EXPECT_CONTAINS(html, number);
    EXPECT_CONTAINS(html, "JPY 500<");
    EXPECT_CONTAINS(html, "JPY 1500<");
    EXPECT_CONTAINS(html, "JPY 50<");
    EXPECT_CONTAINS(html, "<tr class=\"grand\"><td>Total</td><td class=\"num\">JPY 1550</td>");
    EXPECT_NOT_CONTAINS(html, "JPY 5.00");
    free(html);

    create_order(srv.merchant_auth,
                 "{\"currency\":\"KWD\",\"tax\":5,\"items\":[{\"name\":\"Dates\",\"quantity\":2,\"unit_amount\":1234}]}",
                 order, number);
    pay(order, pay_id);
    html = invoice_html(order, NULL);
    EXPECT_CONTAINS(html, number);
    EXPECT_CONTAINS(html, "KWD 1.234<");
    EXPECT_CONTAINS(html, "KWD 2.468<");
    EXPECT_CONTAINS(html, "KWD 0.005<");
    EXPECT_CONTAINS(html, "<tr class=\"grand\"><td>Total</td><td class=\"num\">KWD 2.473</td>");
    EXPECT_CONTAINS(html, pay_id);
    free(html);
}

static void test_unpaid_order_invoice_is_rendered_marked_unpaid_with_balance_due(void **state)
{
    (void)state;
    char order[64], number[64];
    create_order(srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Teapot\",\"unit_amount\":2999}]}",
                 order, number);
    char *html = invoice_html(order, NULL);
    EXPECT_CONTAINS(html, number);
    EXPECT_CONTAINS(html, "class=\"mark unpaid\">UNPAID</span>");
    EXPECT_CONTAINS(html, "<tr class=\"grand\"><td>Balance due</td><td class=\"num\">USD 29.99</td>");
    EXPECT_CONTAINS(html, "No payment received.");
    EXPECT_NOT_CONTAINS(html, ">PAID<");
    free(html);
}

static void test_hostile_item_name_is_html_escaped(void **state)
{
    (void)state;
    char order[64], number[64];
    create_order(srv.merchant_auth,
                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"<script>alert('x')</script> & <b>\",\"unit_amount\":100}],"
                 "\"customer_email\":\"\\\"><img src=x>@example.com\"}",
                 order, number);
    char *html = invoice_html(order, NULL);
    EXPECT_CONTAINS(html, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;");
    EXPECT_CONTAINS(html, "&quot;&gt;&lt;img src=x&gt;@example.com");
    EXPECT_NOT_CONTAINS(html, "<script>");
    EXPECT_NOT_CONTAINS(html, "<img");
    EXPECT_NOT_CONTAINS(html, "<b>");
    free(html);
}

/* ------------------------------------------------------------------------ */
/* PDF.                                                                     */
/* ------------------------------------------------------------------------ */

static void test_pdf_is_a_real_pdf_that_pdftotext_reads_back(void **state)
{
    (void)state;
    char order[64], number[64], pay_id[64];
    create_order(srv.merchant_auth,
                 "{\"currency\":\"USD\",\"tax\":280,\"shipping\":500,"
                 "\"items\":[{\"name\":\"Gr\\u00fcner Tee \\u2013 \\u7dd1\\u8336\",\"quantity\":2,\"unit_amount\":1250},"
                 "{\"name\":\"Cup\",\"unit_amount\":999}]}",
                 order, number);
    pay(order, pay_id);
    h_resp r;
    get_invoice(order, "pdf", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_resp_header(&r, "Content-Type"), "application/pdf");
    assert_true(r.body_len > 1000);
    assert_memory_equal(r.body, "%PDF", 4);
    char inv[64];
    snprintf(inv, sizeof inv, "%s", h_resp_header(&r, "Invoice-Number"));
    invoice_seq(inv);
    char disposition[128];
    snprintf(disposition, sizeof disposition, "inline; filename=\"%s.pdf\"", inv);
    EXPECT_STR(h_resp_header(&r, "Content-Disposition"), disposition);
    char *text = pdf_text(&r);
    h_resp_free(&r);
    EXPECT_CONTAINS(text, number);
    EXPECT_CONTAINS(text, inv);
    EXPECT_CONTAINS(text, "USD 42.79");
    EXPECT_CONTAINS(text, "USD 34.99");
    EXPECT_CONTAINS(text, "Grüner Tee");
    EXPECT_CONTAINS(text, "Leaf & Cup Ltd");
    EXPECT_CONTAINS(text, "PAID");
    EXPECT_NOT_CONTAINS(text, "UNPAID");
    EXPECT_NOT_CONTAINS(text, "Balance due");
    EXPECT_CONTAINS(text, pay_id);
    EXPECT_CONTAINS(text, "Page 1");
    free(text);
}

static void test_pdf_of_unpaid_order_with_many_items_runs_over_pages(void **state)
{
    (void)state;
    /* 100 items (the most an order takes) do not fit on one A4 page. */
    size_t cap = 16384, used = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    used += (size_t)snprintf(body + used, cap - used, "{\"currency\":\"USD\",\"items\":[");
    for (int i = 1; i <= 100; i++)
        used += (size_t)snprintf(body + used, cap - used, "%s{\"name\":\"Item number %03d with a rather long name "
                                 "that will not fit in its column at all\",\"unit_amount\":%d}",
                                 i > 1 ? "," : "", i, 100 + i);
    snprintf(body + used, cap - used, "]}");
    char order[64], number[64];
    create_order(srv.merchant_auth, body, order, number);
    free(body);

    h_resp r;
    get_invoice(order, "pdf", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    assert_memory_equal(r.body, "%PDF", 4);
    char *text = pdf_text(&r);
    h_resp_free(&r);
    EXPECT_CONTAINS(text, number);
    EXPECT_CONTAINS(text, "UNPAID");
    EXPECT_CONTAINS(text, "Balance due");
    EXPECT_CONTAINS(text, "Item number 001");
    EXPECT_CONTAINS(text, "Item number 100");
    EXPECT_CONTAINS(text, "Page 2");
    EXPECT_CONTAINS(text, "(continued)");
    EXPECT_CONTAINS(text, "USD 150.50"); /* 101 + 102 + ... + 200 cents */
    free(text);
}

/* ------------------------------------------------------------------------ */
/* Numbering.                                                               */
/* ------------------------------------------------------------------------ */

static void test_same_order_keeps_one_invoice_number_issued_once(void **state)
{
    (void)state;
    char order[64], first[64], again[64];
    create_order(srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Tray\",\"unit_amount\":700}]}",
                 order, NULL);
    free(invoice_html(order, first));
    free(invoice_html(order, again));
    EXPECT_STR(again, first);
    h_resp r;
    get_invoice(order, "pdf", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_resp_header(&r, "Invoice-Number"), first);
    h_resp_free(&r);
    /* Paying later does not renumber it. */
    char pay_id[64];
    pay(order, pay_id);
    char *html = invoice_html(order, again);
    EXPECT_STR(again, first);
    EXPECT_CONTAINS(html, ">PAID<");
    free(html);

    assert_int_equal(sql_int("SELECT count(*) FROM invoices WHERE order_id = '%s'", order), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM invoices WHERE order_id = '%s' AND number = '%s'"
                             " AND issued_by = 'key:' || (SELECT id FROM api_keys WHERE role = 'merchant' LIMIT 1)",
                             order, first),
                     1);
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'order:%s' AND action = 'invoice.issued'"
                             " AND after->>'number' = '%s'",
                             order, first),
                     1);
    char inv_id[64];
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT id FROM invoices WHERE order_id = '%s'", order);
    char *v = h_sql_value(srv.db_url, sql);
    assert_non_null(v);
    snprintf(inv_id, sizeof inv_id, "%s", v);
    free(v);
    assert_int_equal(h_events_of(&srv, inv_id, "invoice.issued"), 1);
    /* An issued invoice cannot be changed or removed. */
    snprintf(sql, sizeof sql, "UPDATE invoices SET number = 'INV-X' WHERE order_id = '%s'", order);
    assert_int_not_equal(h_sql_exec(srv.db_url, sql), 0);
    snprintf(sql, sizeof sql, "DELETE FROM invoices WHERE order_id = '%s'", order);
    assert_int_not_equal(h_sql_exec(srv.db_url, sql), 0);
}

#define RACERS 12

typedef struct racer {
    const char *order;
    int pdf; /* half the racers draw the PDF: cairo runs on many threads at once */
    pthread_barrier_t *go;
    long status;
    char number[64];
} racer;

static void *racer_main(void *arg)
{
    racer *rc = arg;
    char path[200];
    snprintf(path, sizeof path, "/v1/orders/%s/invoice%s", rc->order, rc->pdf ? "?format=pdf" : "");
    pthread_barrier_wait(rc->go);
    h_resp r;
    if (h_get(&srv, path, srv.merchant_auth, &r) == 0) {
        rc->status = r.status;
        if (rc->pdf && (r.body_len < 4 || memcmp(r.body, "%PDF", 4) != 0)) rc->status = -1;
        const char *n = h_resp_header(&r, "Invoice-Number");
        snprintf(rc->number, sizeof rc->number, "%s", n ? n : "");
    }
    h_resp_free(&r);
    return NULL;
}

/* Runs RACERS concurrent first renders, of `orders[i]` each. */
static void race(const char *const orders[RACERS], racer racers[RACERS])
{
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, RACERS);
    pthread_t threads[RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers[i] = (racer){.order = orders[i], .pdf = i % 2, .go = &go};
        assert_int_equal(pthread_create(&threads[i], NULL, racer_main, &racers[i]), 0);
    }
    for (int i = 0; i < RACERS; i++) pthread_join(threads[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < RACERS; i++) assert_int_equal(racers[i].status, 200);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static void test_concurrent_first_renders_get_distinct_consecutive_numbers(void **state)
{
    (void)state;
    char ids[RACERS][64];
    const char *orders[RACERS];
    for (int i = 0; i < RACERS; i++) {
        create_order(srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Spoon\",\"unit_amount\":300}]}",
                     ids[i], NULL);
        orders[i] = ids[i];
    }
    racer racers[RACERS];
    race(orders, racers);
    long long seqs[RACERS], year = invoice_year(racers[0].number);
    for (int i = 0; i < RACERS; i++) {
        seqs[i] = invoice_seq(racers[i].number);
        /* A run across New Year's midnight (UTC) restarts the count. */
        if (invoice_year(racers[i].number) != year) skip();
    }
    qsort(seqs, RACERS, sizeof seqs[0], cmp_ll);
    for (int i = 1; i < RACERS; i++) {
        if (seqs[i] != seqs[i - 1] + 1) {
            print_error("invoice numbers are not consecutive: %lld then %lld\n", seqs[i - 1], seqs[i]);
            fail();
        }
    }
    /* Every invoice of that year so far, in this fresh database: 1..N with
     * no gap and no duplicate, and the counter agrees. */
    long long n = sql_int("SELECT count(*) FROM invoices WHERE year = %lld", year);
    assert_true(n >= RACERS);
    assert_int_equal(sql_int("SELECT count(DISTINCT seq) FROM invoices WHERE year = %lld", year), n);
    assert_int_equal(sql_int("SELECT min(seq) FROM invoices WHERE year = %lld", year), 1);
    assert_int_equal(sql_int("SELECT max(seq) FROM invoices WHERE year = %lld", year), n);
    assert_int_equal(sql_int("SELECT last_number FROM invoice_counters WHERE year = %lld", year), n);
}

static void test_concurrent_renders_of_one_order_share_one_number(void **state)
{
    (void)state;
    char order[64];
    create_order(srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Fork\",\"unit_amount\":300}]}",
                 order, NULL);
    long long before = sql_int("SELECT count(*) FROM invoices");
    const char *orders[RACERS];
    for (int i = 0; i < RACERS; i++) orders[i] = order;
    racer racers[RACERS];
    race(orders, racers);
    invoice_seq(racers[0].number);
    for (int i = 1; i < RACERS; i++) EXPECT_STR(racers[i].number, racers[0].number);
    assert_int_equal(sql_int("SELECT count(*) FROM invoices WHERE order_id = '%s'", order), 1);
    assert_int_equal(sql_int("SELECT count(*) FROM invoices"), before + 1);
    /* The newest number of its year. */
    assert_int_equal(invoice_seq(racers[0].number),
                     sql_int("SELECT max(seq) FROM invoices WHERE year = %lld", invoice_year(racers[0].number)));
    assert_int_equal(sql_int("SELECT count(*) FROM audit_log WHERE entity = 'order:%s' AND action = 'invoice.issued'",
                             order),
                     1);
}

/* ------------------------------------------------------------------------ */
/* Refusals.                                                                */
/* ------------------------------------------------------------------------ */

static void test_unknown_format_is_400_in_the_error_shape(void **state)
{
    (void)state;
    char order[64];
    create_order(srv.merchant_auth, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Bowl\",\"unit_amount\":300}]}",
                 order, NULL);
    h_resp r;
    get_invoice(order, "docx", srv.merchant_auth, &r);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_invalid", "format");
    h_resp_free(&r);
    /* Refused before anything was issued. */
    assert_int_equal(sql_int("SELECT count(*) FROM invoices WHERE order_id = '%s'", order), 0);
    get_invoice(order, "html", srv.merchant_auth, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

static void test_unknown_order_is_404(void **state)
{
    (void)state;
    h_resp r;
    get_invoice("ord_doesnotexist", NULL, srv.merchant_auth, &r);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
    get_invoice("ord_doesnotexist", "pdf", srv.admin_auth, &r);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
}

static void test_end_user_sees_only_their_own_invoice(void **state)
{
    (void)state;
    char alice[1024], bob[1024], order[64], number[64];
    user_auth("alice", alice);
    user_auth("bob", bob);
    create_order(alice, "{\"currency\":\"USD\",\"items\":[{\"name\":\"Mug\",\"unit_amount\":1500}]}", order, number);
    h_resp r;
    get_invoice(order, NULL, bob, &r);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
    get_invoice(order, "pdf", bob, &r);
    EXPECT_ERROR(&r, 404, "invalid_request_error", "resource_missing", NULL);
    h_resp_free(&r);
    /* Bob's attempts issued nothing. */
    assert_int_equal(sql_int("SELECT count(*) FROM invoices WHERE order_id = '%s'", order), 0);
    get_invoice(order, NULL, NULL, &r);
    EXPECT_ERROR(&r, 401, "authentication_error", "missing_credentials", NULL);
    h_resp_free(&r);

    get_invoice(order, NULL, alice, &r);
    EXPECT_STATUS(&r, 200);
    EXPECT_CONTAINS(r.body, number);
    h_resp_free(&r);
    assert_int_equal(sql_int("SELECT count(*) FROM invoices WHERE order_id = '%s' AND issued_by = 'user:alice'", order),
                     1);
    get_invoice(order, NULL, srv.admin_auth, &r);
    EXPECT_STATUS(&r, 200);
    h_resp_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Configuration.                                                           */
/* ------------------------------------------------------------------------ */

/* The 1-based line of `conf` that starts with `prefix`, or 0. */
static int line_of(const char *conf, const char *prefix)
{
    char *text = h_read_file(conf, NULL);
    assert_non_null(text);
    int line = 1, found = 0;
    for (char *p = text; *p && !found; line++) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) found = line;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        p = nl + 1;
    }
    free(text);
    return found;
}

/* `payd check-config` on a config whose [invoice] section is `invoice`;
 * returns its exit code with its output in out. */
static int check_config(const char *invoice, h_payd *p, char *out, size_t len)
{
    char extra[1024];
    snprintf(extra, sizeof extra, "[invoice]\n%s", invoice);
    h_payd_opts o = {.extra = extra};
    assert_int_equal(h_payd_configure(p, &o), 0);
    const char *args[] = {"check-config", NULL};
    return h_payd_cli(p, args, out, len);
}

static void test_check_config_reports_missing_and_broken_templates_with_file_and_line(void **state)
{
    (void)state;
    h_payd p;
    char out[4096], want[PATH_MAX + 128], dir[PATH_MAX], tpl[PATH_MAX + 32];

    assert_int_equal(check_config("seller_name = Shop\ntemplate = /nonexistent/invoice.html\n", &p, out, sizeof out), 1);
    snprintf(want, sizeof want, "%s:%d: [invoice] template: /nonexistent/invoice.html: cannot read the template",
             p.conf_path, line_of(p.conf_path, "template ="));
    EXPECT_CONTAINS(out, want);

    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(tpl, sizeof tpl, "%s/bad.html", dir);
    assert_int_equal(h_write_file(tpl, "<html>\n<table>\n{{#items}}<tr><td>{{name}}</td></tr>\n</table>\n"), 0);
    char section[PATH_MAX + 64];
    snprintf(section, sizeof section, "template = %s\n", tpl);
    assert_int_equal(check_config(section, &p, out, sizeof out), 1);
    snprintf(want, sizeof want, "%s:3: {{#items}} is never closed with {{/items}}", tpl);
    EXPECT_CONTAINS(out, want);

    assert_int_equal(h_write_file(tpl, "<p>{{order.number}}</p>\n<p>{{order.colour}}</p>\n"), 0);
    assert_int_equal(check_config(section, &p, out, sizeof out), 1);
    snprintf(want, sizeof want, "%s:2: unknown placeholder {{order.colour}}", tpl);
    EXPECT_CONTAINS(out, want);

    assert_int_equal(check_config("seller_fax = 123\n", &p, out, sizeof out), 1);
    snprintf(want, sizeof want, "%s:%d: unknown key 'seller_fax' in [invoice]", p.conf_path,
             line_of(p.conf_path, "seller_fax"));
    EXPECT_CONTAINS(out, want);

    /* A good template and the shipped default both pass. */
    assert_int_equal(h_write_file(tpl, "<p>{{order.number}} {{#items}}{{name}}{{/items}}</p>\n"), 0);
    int rc = check_config(section, &p, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(rc, 0);
    rc = check_config("seller_name = Shop\n", &p, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(rc, 0);
}

/* Installed as make install lays it out (PREFIX/bin/payd beside
 * PREFIX/share/payd/templates/invoice.html), payd finds the shipped
 * template from any working directory; without it, the error says where it
 * looked. */
static void test_default_template_is_found_in_the_installed_layout(void **state)
{
    (void)state;
    h_payd p;
    char out[4096], prefix[PATH_MAX], cmd[6 * PATH_MAX];
    assert_int_equal(check_config("seller_name = Shop\n", &p, out, sizeof out), 0);
    assert_int_equal(h_tmpdir(prefix, sizeof prefix), 0);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/bin' && cp '%s' '%s/bin/payd' && cd / && '%s/bin/payd' check-config '%s'",
             prefix, h_payd_bin(), prefix, prefix, p.conf_path);
    assert_int_equal(h_sh(cmd, out, sizeof out), 1);
    EXPECT_CONTAINS(out, "[invoice] template is not set and the shipped template is in neither");
    EXPECT_CONTAINS(out, "/bin/../share/payd/templates/invoice.html");

    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/share/payd/templates' && cp '%s/templates/invoice.html' '%s/share/payd/templates/' &&"
             " cd / && '%s/bin/payd' check-config '%s'",
             prefix, h_root(), prefix, prefix, p.conf_path);
    int rc = h_sh(cmd, out, sizeof out);
    if (rc != 0) print_error("%s\n", out);
    assert_int_equal(rc, 0);
    EXPECT_CONTAINS(out, ": ok");
}

int main(void)
{
    if (h_init() != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paid_usd_invoice_shows_seller_order_items_totals_and_payment),
        cmocka_unit_test(test_refund_is_listed_and_marks_invoice_partially_refunded),
        cmocka_unit_test(test_jpy_and_kwd_amounts_follow_the_currency_exponent),
        cmocka_unit_test(test_unpaid_order_invoice_is_rendered_marked_unpaid_with_balance_due),
        cmocka_unit_test(test_hostile_item_name_is_html_escaped),
        cmocka_unit_test(test_pdf_is_a_real_pdf_that_pdftotext_reads_back),
        cmocka_unit_test(test_pdf_of_unpaid_order_with_many_items_runs_over_pages),
        cmocka_unit_test(test_same_order_keeps_one_invoice_number_issued_once),
        cmocka_unit_test(test_concurrent_first_renders_get_distinct_consecutive_numbers),
        cmocka_unit_test(test_concurrent_renders_of_one_order_share_one_number),
        cmocka_unit_test(test_unknown_format_is_400_in_the_error_shape),
        cmocka_unit_test(test_unknown_order_is_404),
        cmocka_unit_test(test_end_user_sees_only_their_own_invoice),
        cmocka_unit_test(test_check_config_reports_missing_and_broken_templates_with_file_and_line),
        cmocka_unit_test(test_default_template_is_found_in_the_installed_layout),
    };
    return cmocka_run_group_tests(tests, setup, h_group_stop);
}
