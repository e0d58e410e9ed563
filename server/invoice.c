/*
 * invoice.c - an order's invoice: its number, and the data the HTML
 * template (invoice_template.c) and the PDF (invoice_pdf.c) show.
 *
 * Numbering. Invoice numbers are INV-<year>-NNNNNN, sequential per calendar
 * year (UTC) with no gaps, as tax authorities expect. A PostgreSQL sequence
 * cannot promise that (a rolled-back nextval leaves a hole), so the number
 * comes from a counter row per year, bumped with INSERT ... ON CONFLICT DO
 * UPDATE in the transaction that records the invoice: a rollback gives the
 * number back. That row lock serialises issuing within a year, but it is
 * held for one short transaction that happens once per order, never on the
 * payment path. An order's invoice is issued on its first render, under the
 * order's row lock, so two first renders of one order agree on one number;
 * the number never changes afterwards (the table refuses updates).
 *
 * Data. One statement reads the order, its invoice, its captured payments
 * and its pending or succeeded refunds as a consistent snapshot;
 * invoice_data turns that into the template's data model, with every
 * amount formatted by its currency's exponent (money.c) and every optional
 * field present (empty when unset), so a template checked against
 * invoice_sample never meets a missing name.
 *
 * Thread-safety: each call uses its own pooled connection; the template and
 * config are read-only after startup.
 */
#include "invoice.h"

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "events.h"
#include "ids.h"
#include "invoice_pdf.h"
#include "invoice_template.h"
#include "money.h"
#include "orders.h"

#define INVOICE_DATE(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

STORE_STMT(stmt_snapshot,
           "SELECT json_build_object("
           " 'order', json_build_object('id', o.id, 'number', o.number, 'status', o.status,"
           "  'currency', o.currency, 'subtotal', o.subtotal, 'tax', o.tax, 'shipping', o.shipping,"
           "  'total', o.total, 'amount_paid', o.amount_paid, 'amount_refunded', o.amount_refunded,"
           "  'items', o.items, 'customer_email', o.customer_email, 'billing_address', o.billing_address,"
           "  'shipping_address', o.shipping_address, 'created', " INVOICE_DATE("o.created_at") "),"
           " 'invoice', (SELECT json_build_object('id', i.id, 'number', i.number,"
           "  'issued', " INVOICE_DATE("i.issued_at") ") FROM invoices i WHERE i.order_id = o.id),"
           " 'payments', coalesce((SELECT json_agg(json_build_object('id', p.id, 'status', p.status,"
           "  'amount', p.amount_captured, 'date', " INVOICE_DATE("p.created_at") ") ORDER BY p.created_at, p.id)"
           "  FROM payments p WHERE p.order_id = o.id AND p.amount_captured > 0), '[]'::json),"
           " 'refunds', coalesce((SELECT json_agg(json_build_object('id', f.id, 'status', f.status,"
           "  'amount', f.amount, 'reason', f.reason, 'date', " INVOICE_DATE("f.created_at") ")"
           "  ORDER BY f.created_at, f.id) FROM refunds f WHERE f.order_id = o.id"
           "  AND f.status IN ('pending', 'succeeded')), '[]'::json))::text AS j"
           " FROM orders o WHERE o.id = $1 AND ($2::text IS NULL OR o.user_id = $2)");
STORE_STMT(stmt_has_invoice, "SELECT 1 FROM invoices WHERE order_id = $1");
/* The counter bump and the invoice row in one statement: the number is
 * taken and used in the same round trip. lpad would cut a seventh digit,
 * hence the greatest(). */
STORE_STMT(stmt_issue,
           "WITH counter AS ("
           " INSERT INTO invoice_counters AS c (year, last_number)"
           " VALUES (extract(year FROM now() AT TIME ZONE 'UTC')::int, 1)"
           " ON CONFLICT (year) DO UPDATE SET last_number = c.last_number + 1"
           " RETURNING year, last_number)"
           " INSERT INTO invoices (id, order_id, number, year, seq, issued_by)"
           " SELECT $1, $2, 'INV-' || year || '-' || lpad(last_number::text, greatest(6, length(last_number::text)), '0'),"
           " year, last_number, $3 FROM counter"
           " RETURNING json_build_object('id', id, 'object', 'invoice', 'number', number, 'order_id', order_id,"
           " 'year', year, 'issued', extract(epoch FROM issued_at)::bigint)::text AS j");

/* Reads the snapshot of one order. STORE_OK with *doc (new reference) or
 * NULL when there is no such order for this caller. */
static int invoice_snapshot(op_ctx *x, store_conn *c, const char *order_id, json_t **doc)
{
    const char *params[] = {order_id, op_user_scope(x)};
    PGresult *r = NULL;
    *doc = NULL;
    int rc = store_query(c, &stmt_snapshot, 2, params, &r);
    if (rc == STORE_OK && PQntuples(r) == 1) {
        *doc = json_loads(store_val(r, 0, "j"), 0, NULL);
        if (!*doc) rc = STORE_E_QUERY;
    }
    PQclear(r);
    return rc;
}

/*
 * Issues the order's invoice unless another request did first: locks the
 * order row (so first renders of one order queue here), looks again, and
 * takes the next number with the audit row and the invoice.issued event,
 * all in one transaction. STORE_OK or a STORE_E_* code.
 */
static int invoice_issue(op_ctx *x, store_conn *c, const char *order_id)
{
    order_row o = {0};
    PGresult *r = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = orders_lock(c, order_id, &o);
    if (rc == 1) rc = STORE_E_QUERY; /* the snapshot saw it; orders are never deleted */
    if (rc == STORE_OK) {
        const char *p1[] = {order_id};
        rc = store_query(c, &stmt_has_invoice, 1, p1, &r);
        int exists = rc == STORE_OK && PQntuples(r) == 1;
        PQclear(r);
        r = NULL;
        if (rc == STORE_OK && !exists) {
            char id[IDS_MAX];
            ids_new("inv", id);
            const char *p2[] = {id, order_id, op_actor(x)};
            rc = store_query(c, &stmt_issue, 3, p2, &r);
            if (rc == STORE_OK) {
                const char *j = store_val(r, 0, "j");
                json_t *after = json_loads(j, 0, NULL);
                char entity[64];
                snprintf(entity, sizeof entity, "order:%s", order_id);
                rc = audit_write(c, entity, op_actor(x), "invoice.issued", x->request_id, NULL, after);
                json_decref(after);
                if (rc == STORE_OK)
                    rc = events_emit(c, x->a->mods, "invoice.issued", "invoice", id, order_id,
                                     o.has_user ? o.user_id : NULL, j, x->request_id);
            }
        }
    }
    if (rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    PQclear(r);
    orders_row_release(&o);
    return rc;
}

/* --- the data model ---------------------------------------------------- */

static const char *str_or_empty(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* "USD 19.99", "JPY 500", "KWD 1.234": the format the mails use too. */
static json_t *amount_text(json_int_t amount, const char *currency)
{
    char num[48], text[64];
    if (money_format((int64_t)amount, currency, num, sizeof num) != 0) snprintf(num, sizeof num, "%lld", (long long)amount);
    snprintf(text, sizeof text, "%s %s", currency, num);
    return json_string(text);
}

static json_int_t int_of(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

/* Splits a config text on its literal "\n" escapes into an array of
 * trimmed, non-empty lines. */
static json_t *lines_of(const char *text)
{
    json_t *out = json_array();
    const char *p = text ? text : "";
    while (*p) {
        const char *end = strstr(p, "\\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (n > 0 && (*s == ' ' || *s == '\t')) s++, n--;
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
        if (n > 0) json_array_append_new(out, json_stringn(s, n));
        p = end ? end + 2 : p + strlen(p);
    }
    return out;
}

/* The buyer's address lines: email, then the billing address (or the
 * shipping address) in the usual order of its well-known keys. */
static json_t *bill_to(json_t *order)
{
    static const char *const keys[] = {"name", "company", "line1", "line2", "postal_code", "city",
                                       "state", "country", NULL};
    json_t *out = json_array();
    json_t *addr = json_object_get(order, "billing_address");
    if (!json_is_object(addr)) addr = json_object_get(order, "shipping_address");
    for (int i = 0; keys[i] && json_is_object(addr); i++) {
        const char *v = str_or_empty(addr, keys[i]);
        if (*v) json_array_append_new(out, json_string(v));
    }
    const char *email = str_or_empty(order, "customer_email");
    if (*email) json_array_append_new(out, json_string(email));
    return out;
}

/* The mark on the invoice, from the order's money state. */
static const char *status_mark(const char *status)
{
    if (strcmp(status, "paid") == 0) return "PAID";
    if (strcmp(status, "partially_refunded") == 0) return "PARTIALLY REFUNDED";
    if (strcmp(status, "refunded") == 0) return "REFUNDED";
    if (strcmp(status, "cancelled") == 0) return "CANCELLED";
    return "UNPAID";
}

/*
 * Builds the template data model from a snapshot (borrowed) and the
 * [invoice] config. New reference. The layout is documented in README.md
 * (Invoices) for template authors.
 */
static json_t *invoice_data(const config *cfg, json_t *doc)
{
    json_t *o = json_object_get(doc, "order"), *inv = json_object_get(doc, "invoice");
    const char *cur = str_or_empty(o, "currency"), *status = str_or_empty(o, "status");
    const char *mark = status_mark(status);
    json_int_t total = int_of(o, "total"), paid = int_of(o, "amount_paid"), refunded = int_of(o, "amount_refunded");
    json_int_t due = strcmp(mark, "UNPAID") == 0 && total > paid ? total - paid : 0;

    json_t *items = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(o, "items"), i, v) {
        json_array_append_new(items, json_pack("{s:s, s:s, s:I, s:o, s:o}", "name", str_or_empty(v, "name"), "sku",
                                               str_or_empty(v, "sku"), "quantity", int_of(v, "quantity"),
                                               "unit_amount", amount_text(int_of(v, "unit_amount"), cur), "amount",
                                               amount_text(int_of(v, "amount"), cur)));
    }
    json_t *payments = json_array();
    json_array_foreach(json_object_get(doc, "payments"), i, v) {
        json_array_append_new(payments, json_pack("{s:s, s:s, s:s, s:o}", "id", str_or_empty(v, "id"), "date",
                                                  str_or_empty(v, "date"), "status", str_or_empty(v, "status"),
                                                  "amount", amount_text(int_of(v, "amount"), cur)));
    }
    json_t *refunds = json_array();
    json_array_foreach(json_object_get(doc, "refunds"), i, v) {
        json_array_append_new(refunds, json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", str_or_empty(v, "id"), "date",
                                                 str_or_empty(v, "date"), "status", str_or_empty(v, "status"),
                                                 "reason", str_or_empty(v, "reason"), "amount",
                                                 amount_text(int_of(v, "amount"), cur)));
    }
    json_t *invoice = json_pack("{s:s, s:s, s:s, s:b, s:b}", "number", str_or_empty(inv, "number"), "issued",
                                str_or_empty(inv, "issued"), "status", mark, "paid", paid > 0, "unpaid",
                                strcmp(mark, "UNPAID") == 0);
    json_t *seller = json_pack("{s:s, s:o, s:s, s:s}", "name", cfg->invoice_seller_name ? cfg->invoice_seller_name : "",
                               "address", lines_of(cfg->invoice_seller_address), "tax_id",
                               cfg->invoice_seller_tax_id ? cfg->invoice_seller_tax_id : "", "email",
                               cfg->invoice_seller_email ? cfg->invoice_seller_email : "");
    json_t *order = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                              str_or_empty(o, "id"), "number", str_or_empty(o, "number"), "status", status, "created",
                              str_or_empty(o, "created"), "currency", cur, "customer_email",
                              str_or_empty(o, "customer_email"), "subtotal", amount_text(int_of(o, "subtotal"), cur),
                              "tax", amount_text(int_of(o, "tax"), cur), "shipping",
                              amount_text(int_of(o, "shipping"), cur), "total", amount_text(total, cur),
                              "amount_paid", amount_text(paid, cur), "amount_refunded", amount_text(refunded, cur),
                              "net_paid", amount_text(paid - refunded, cur), "balance_due", amount_text(due, cur));
    return json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "invoice", invoice, "seller", seller, "footer",
                     cfg->invoice_footer ? cfg->invoice_footer : "", "order", order, "bill_to", bill_to(o), "items",
                     items, "payments", payments, "refunds", refunds);
}

json_t *invoice_sample(const config *cfg)
{
    json_t *doc = json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:[{s:s, s:s, s:I, s:I, s:I}], s:s,"
        " s:{s:s, s:s, s:s}, s:n, s:s},"
        " s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:I, s:s}], s:[{s:s, s:s, s:I, s:s, s:s}]}",
        "order", "id", "ord_sample", "number", "ORD-2026-000001", "status", "partially_refunded", "currency", "USD",
        "subtotal", (json_int_t)1999, "tax", (json_int_t)160, "shipping", (json_int_t)500, "total",
        (json_int_t)2659, "amount_paid", (json_int_t)2659, "amount_refunded", (json_int_t)500, "items", "name",
        "Tea", "sku", "TEA-1", "quantity", (json_int_t)1, "unit_amount", (json_int_t)1999, "amount",
        (json_int_t)1999, "customer_email", "buyer@example.com", "billing_address", "name", "A Buyer", "line1",
        "1 Main Street", "country", "US", "shipping_address", "created", "2026-01-02", "invoice", "id", "inv_sample",
        "number", "INV-2026-000001", "issued", "2026-01-02", "payments", "id", "pay_sample", "status",
        "partially_refunded", "amount", (json_int_t)2659, "date", "2026-01-02", "refunds", "id", "re_sample",
        "status", "succeeded", "amount", (json_int_t)500, "reason", "requested_by_customer", "date", "2026-01-03");
    json_t *data = invoice_data(cfg, doc);
    json_decref(doc);
    return data;
}

int invoice_get(op_ctx *x, const char *order_id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    json_t *doc = NULL;
    int rc = invoice_snapshot(x, c, order_id, &doc);
    if (rc == STORE_OK && doc && json_is_null(json_object_get(doc, "invoice"))) {
        json_decref(doc);
        doc = NULL;
        rc = invoice_issue(x, c, order_id);
        if (rc == STORE_OK) rc = invoice_snapshot(x, c, order_id, &doc);
    }
    store_release(c);
    if (rc != STORE_OK) {
        json_decref(doc);
        return fault_store(f, rc);
    }
    if (!doc) return fault_not_found(f, "order", order_id);
    *out = invoice_data(x->a->cfg, doc);
    json_decref(doc);
    return *out ? 0 : fault_store(f, STORE_E_QUERY);
}

/* --- startup ----------------------------------------------------------- */

/* Where the shipped template is when [invoice] template is not set: under
 * ../share/payd/templates beside the binary once installed (make
 * install), else templates/ in the working directory (a source checkout:
 * make run, make test). `tried` names the installed place for the error
 * message when neither exists. */
static void invoice_default_template(char *out, size_t len, char *tried, size_t tried_len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(tried, tried_len, "../share/payd/templates beside the binary");
    if (n > 0) {
        exe[n] = '\0';
        snprintf(out, len, "%s/../share/payd/templates/invoice.html", dirname(exe));
        snprintf(tried, tried_len, "%s", out);
        if (access(out, R_OK) == 0) return;
    }
    snprintf(out, len, "templates/invoice.html");
}

int invoice_setup(app *a, config_errors *errs)
{
    const config *cfg = a->cfg;
    const config_section *sec = config_section_find(cfg, "invoice");
    size_t before = errs->count;
    static const struct {
        const char *key;
        size_t offset;
    } texts[] = {{"seller_name", offsetof(config, invoice_seller_name)},
                 {"seller_address", offsetof(config, invoice_seller_address)},
                 {"seller_tax_id", offsetof(config, invoice_seller_tax_id)},
                 {"seller_email", offsetof(config, invoice_seller_email)},
                 {"footer", offsetof(config, invoice_footer)}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *v = *(char *const *)((const char *)cfg + texts[i].offset);
        json_t *probe = v ? json_string(v) : NULL; /* jansson refuses invalid UTF-8 */
        if (v && !probe) {
            const config_entry *e = config_entry_find(sec, texts[i].key);
            config_errors_add(errs, "%s:%d: [invoice] %s is not valid UTF-8", cfg->path, e ? e->line : 0,
                              texts[i].key);
        }
        json_decref(probe);
    }

    char path[PATH_MAX + 64], tried[PATH_MAX + 64], err[PATH_MAX + 256];
    const config_entry *te = config_entry_find(sec, "template");
    if (cfg->invoice_template) snprintf(path, sizeof path, "%s", cfg->invoice_template);
    else invoice_default_template(path, sizeof path, tried, sizeof tried);
    invoice_template *t = NULL;
    if (invoice_template_load(path, &t, err, sizeof err) != 0) {
        if (te) config_errors_add(errs, "%s:%d: [invoice] template: %s", cfg->path, te->line, err);
        else config_errors_add(errs, "%s: [invoice] template is not set and the shipped template is in neither %s"
                               " nor the working directory (%s); set [invoice] template = PATH",
                               cfg->path, tried, err);
        return -1;
    }
    json_t *shape = invoice_sample(cfg);
    int bad = invoice_template_check(t, shape, err, sizeof err);
    json_decref(shape);
    if (bad) {
        config_errors_add(errs, "%s", err);
        invoice_template_free(t);
        return -1;
    }
    if (invoice_pdf_setup(err, sizeof err) != 0) config_errors_add(errs, "%s: [invoice] %s", cfg->path, err);
    if (errs->count > before) {
        invoice_template_free(t);
        return -1;
    }
    a->invoice_template = t;
    return 0;
}

void invoice_teardown(app *a)
{
    invoice_template_free(a->invoice_template);
    a->invoice_template = NULL;
}
