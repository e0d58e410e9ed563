/*
 * invoice_pdf.c - the invoice as a PDF.
 *
 * cairo draws onto a PDF surface that writes into memory
 * (cairo_pdf_surface_create_for_stream), so nothing touches the disk. Text
 * is drawn with cairo's toy font API: fontconfig picks a sans-serif face
 * (DejaVu Sans on Debian), cairo embeds the subset it used with a ToUnicode
 * map, and the words stay searchable and readable by pdftotext.
 *
 * The page is A4 in points. Page one carries the seller, the invoice number
 * and dates, the PAID / UNPAID / ... mark and the buyer; then the item
 * table, the totals, the payments and the refunds flow down the page, and
 * a row that would run into the footer starts a new page (the item table's
 * header is repeated there). Every page has the footer text and its number.
 *
 * The data model is built by invoice.c from valid UTF-8 (jansson refuses
 * anything else), so cairo never sees an invalid string, which would put
 * the context into a sticky error state; control characters are drawn as
 * spaces, and text too wide for its column is cut at a character boundary
 * with an ellipsis.
 */
#include "invoice_pdf.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_W 595.28 /* A4 */
#define PAGE_H 841.89
#define MARGIN 50.0
#define RIGHT (PAGE_W - MARGIN)
#define BOTTOM (PAGE_H - MARGIN - 30.0) /* the footer lives below */
#define ROW 15.0
#define PDF_MAX_BYTES (32u * 1024 * 1024)

/* The item table's columns: the description's left edge and width, and
 * the right edges the numbers align to. */
#define COL_DESC_W 270.0
#define COL_QTY_R 370.0
#define COL_UNIT_R 460.0

typedef struct pdf_buf {
    char *data;
    size_t len, cap;
    int failed;
} pdf_buf;

typedef struct pdf_doc {
    cairo_t *cr;
    json_t *data;
    double y; /* baseline of the next line */
    int page;
} pdf_doc;

static cairo_status_t pdf_write(void *closure, const unsigned char *bytes, unsigned int n)
{
    pdf_buf *b = closure;
    if (b->failed || b->len + n > PDF_MAX_BYTES) {
        b->failed = 1;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return CAIRO_STATUS_NO_MEMORY;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    return CAIRO_STATUS_SUCCESS;
}

static const char *str_at(json_t *v, const char *path)
{
    char key[64];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key) return "";
        memcpy(key, path, n);
        key[n] = '\0';
        v = json_object_get(v, key);
        path += n + (path[n] == '.');
    }
    const char *s = json_string_value(v);
    return s ? s : "";
}

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t ext;
    cairo_text_extents(cr, s, &ext);
    return ext.x_advance;
}

/*
 * Draws `s` with its baseline at y: left-aligned at x, or right-aligned to
 * x when `right`. Control characters become spaces; text wider than
 * max_w (when > 0) is cut at a UTF-8 character boundary and ends in "…".
 */
static void text_at(cairo_t *cr, double x, double y, const char *s, double max_w, int right)
{
    size_t n = strlen(s);
    char *t = malloc(n + 4);
    if (!t) return;
    for (size_t i = 0; i <= n; i++) t[i] = (s[i] > 0 && s[i] < 0x20) || s[i] == 0x7f ? ' ' : s[i];
    if (max_w > 0 && text_width(cr, t) > max_w) {
        size_t cut = n;
        do {
            do cut--;
            while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80);
            memcpy(t + cut, "\xE2\x80\xA6", 4); /* U+2026 and the NUL */
        } while (cut > 0 && text_width(cr, t) > max_w);
    }
    cairo_move_to(cr, right ? x - text_width(cr, t) : x, y);
    cairo_show_text(cr, t);
    free(t);
}

static void rule(cairo_t *cr, double x0, double x1, double y, double width)
{
    cairo_set_line_width(cr, width);
    cairo_move_to(cr, x0, y);
    cairo_line_to(cr, x1, y);
    cairo_stroke(cr);
}

static void footer(pdf_doc *d)
{
    cairo_t *cr = d->cr;
    char page[32];
    snprintf(page, sizeof page, "Page %d", d->page);
    cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
    font(cr, 8, 0);
    rule(cr, MARGIN, RIGHT, PAGE_H - MARGIN - 14, 0.5);
    text_at(cr, MARGIN, PAGE_H - MARGIN, str_at(d->data, "footer"), RIGHT - MARGIN - 60, 0);
    text_at(cr, RIGHT, PAGE_H - MARGIN, page, 0, 1);
    cairo_set_source_rgb(cr, 0, 0, 0);
}

/* Ends the current page (with its footer) and starts the next one under a
 * short "continued" header. */
static void next_page(pdf_doc *d)
{
    footer(d);
    cairo_show_page(d->cr);
    d->page++;
    char head[128];
    snprintf(head, sizeof head, "Invoice %s (continued)", str_at(d->data, "invoice.number"));
    font(d->cr, 9, 0);
    text_at(d->cr, MARGIN, MARGIN, head, 0, 0);
    d->y = MARGIN + 2 * ROW;
}

/* Makes room for `h` more points on this page; 1 when a page was started. */
static int need(pdf_doc *d, double h)
{
    if (d->y + h <= BOTTOM) return 0;
    next_page(d);
    return 1;
}

/* The PAID / UNPAID / ... mark: a coloured box with the word in it. */
static void status_mark(pdf_doc *d, double right, double top)
{
    cairo_t *cr = d->cr;
    const char *mark = str_at(d->data, "invoice.status");
    double r = 0.75, g = 0.1, b = 0.1; /* UNPAID */
    if (strcmp(mark, "PAID") == 0) r = 0.1, g = 0.55, b = 0.2;
    else if (strcmp(mark, "CANCELLED") == 0) r = g = b = 0.45;
    else if (strcmp(mark, "UNPAID") != 0) r = 0.85, g = 0.45, b = 0.0;
    font(cr, 14, 1);
    double w = text_width(cr, mark) + 16;
    cairo_set_source_rgb(cr, r, g, b);
    cairo_set_line_width(cr, 2);
    cairo_rectangle(cr, right - w, top, w, 24);
    cairo_stroke(cr);
    text_at(cr, right - 8, top + 17, mark, 0, 1);
    cairo_set_source_rgb(cr, 0, 0, 0);
}

/* Page one's header: seller left, invoice facts right, then the buyer. */
static void header(pdf_doc *d)
{
    cairo_t *cr = d->cr;
    json_t *data = d->data;
    double y = MARGIN + 12;
    font(cr, 16, 1);
    text_at(cr, MARGIN, y, str_at(data, "seller.name"), 280, 0);
    font(cr, 9, 0);
    size_t i;
    json_t *line;
    json_array_foreach(json_object_get(json_object_get(data, "seller"), "address"), i, line) {
        y += 12;
        text_at(cr, MARGIN, y, json_string_value(line), 280, 0);
    }
    char buf[256];
    if (*str_at(data, "seller.tax_id")) {
        snprintf(buf, sizeof buf, "Tax ID: %s", str_at(data, "seller.tax_id"));
        text_at(cr, MARGIN, y += 12, buf, 280, 0);
    }
    if (*str_at(data, "seller.email")) text_at(cr, MARGIN, y += 12, str_at(data, "seller.email"), 280, 0);

    double ry = MARGIN + 14;
    font(cr, 22, 1);
    text_at(cr, RIGHT, ry, "INVOICE", 0, 1);
    font(cr, 9, 0);
    static const struct {
        const char *label, *path;
    } facts[] = {{"Invoice number", "invoice.number"},
                 {"Issued", "invoice.issued"},
                 {"Order", "order.number"},
                 {"Order date", "order.created"}};
    ry += 6;
    for (size_t k = 0; k < sizeof facts / sizeof facts[0]; k++) {
        snprintf(buf, sizeof buf, "%s: %s", facts[k].label, str_at(data, facts[k].path));
        text_at(cr, RIGHT, ry += 12, buf, 220, 1);
    }
    status_mark(d, RIGHT, ry + 8);
    ry += 40;

    y = (y > ry ? y : ry) + ROW;
    if (json_array_size(json_object_get(data, "bill_to")) > 0) {
        y += ROW;
        font(cr, 9, 1);
        text_at(cr, MARGIN, y, "Bill to", 0, 0);
        font(cr, 9, 0);
        json_array_foreach(json_object_get(data, "bill_to"), i, line) {
            y += 12;
            text_at(cr, MARGIN, y, json_string_value(line), 280, 0);
        }
    }
    d->y = y + 2 * ROW;
}

static void table_header(pdf_doc *d)
{
    cairo_t *cr = d->cr;
    font(cr, 9, 1);
    text_at(cr, MARGIN, d->y, "Description", 0, 0);
    text_at(cr, COL_QTY_R, d->y, "Qty", 0, 1);
    text_at(cr, COL_UNIT_R, d->y, "Unit price", 0, 1);
    text_at(cr, RIGHT, d->y, "Amount", 0, 1);
    rule(cr, MARGIN, RIGHT, d->y + 5, 0.8);
    d->y += ROW + 2;
    font(cr, 9, 0);
}

static void items(pdf_doc *d)
{
    cairo_t *cr = d->cr;
    table_header(d);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(d->data, "items"), i, it) {
        if (need(d, ROW)) table_header(d);
        char qty[32];
        snprintf(qty, sizeof qty, "%lld", (long long)json_integer_value(json_object_get(it, "quantity")));
        text_at(cr, MARGIN, d->y, str_at(it, "name"), COL_DESC_W, 0);
        text_at(cr, COL_QTY_R, d->y, qty, 0, 1);
        text_at(cr, COL_UNIT_R, d->y, str_at(it, "unit_amount"), 0, 1);
        text_at(cr, RIGHT, d->y, str_at(it, "amount"), 0, 1);
        d->y += ROW;
    }
    rule(cr, MARGIN, RIGHT, d->y - ROW + 5, 0.5);
    d->y += 6;
}

static void totals(pdf_doc *d)
{
    cairo_t *cr = d->cr;
    static const struct {
        const char *label, *path;
        int bold;
    } rows[] = {{"Subtotal", "order.subtotal", 0},     {"Tax", "order.tax", 0},
                {"Shipping", "order.shipping", 0},     {"Total", "order.total", 1},
                {"Paid", "order.amount_paid", 0},      {"Refunded", "order.amount_refunded", 0},
                {"Balance due", "order.balance_due", 1}};
    int unpaid = json_is_true(json_object_get(json_object_get(d->data, "invoice"), "unpaid"));
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
        if (strcmp(rows[k].label, "Balance due") == 0 && !unpaid) continue;
        need(d, ROW);
        if (strcmp(rows[k].label, "Total") == 0) rule(cr, COL_UNIT_R - 90, RIGHT, d->y - 11, 0.8);
        font(cr, 9, rows[k].bold);
        text_at(cr, COL_UNIT_R, d->y, rows[k].label, 0, 1);
        text_at(cr, RIGHT, d->y, str_at(d->data, rows[k].path), 0, 1);
        d->y += ROW;
    }
    font(cr, 9, 0);
}

/* The payments or refunds list under a heading; "None." when empty. */
static void money_list(pdf_doc *d, const char *title, const char *key)
{
    cairo_t *cr = d->cr;
    json_t *list = json_object_get(d->data, key);
    need(d, 3 * ROW);
    d->y += ROW;
    font(cr, 11, 1);
    text_at(cr, MARGIN, d->y, title, 0, 0);
    d->y += ROW;
    font(cr, 9, 0);
    if (json_array_size(list) == 0) {
        text_at(cr, MARGIN, d->y, "None.", 0, 0);
        d->y += ROW;
        return;
    }
    size_t i;
    json_t *row;
    json_array_foreach(list, i, row) {
        need(d, ROW);
        const char *reason = str_at(row, "reason");
        char what[160];
        snprintf(what, sizeof what, "%s%s%s", str_at(row, "status"), *reason ? ", " : "", reason);
        text_at(cr, MARGIN, d->y, str_at(row, "date"), 0, 0);
        text_at(cr, MARGIN + 70, d->y, str_at(row, "id"), 150, 0);
        text_at(cr, MARGIN + 230, d->y, what, 170, 0);
        text_at(cr, RIGHT, d->y, str_at(row, "amount"), 0, 1);
        d->y += ROW;
    }
}

int invoice_pdf_setup(char *err, size_t errlen)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_A8, 8, 8);
    cairo_t *cr = cairo_create(s);
    double width = 0;
    for (int bold = 0; bold <= 1; bold++) {
        font(cr, 9, bold);
        width += text_width(cr, "INVOICE 0123456789");
    }
    int ok = cairo_status(cr) == CAIRO_STATUS_SUCCESS && width > 0;
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    if (!ok) snprintf(err, errlen, "cairo found no sans-serif font for invoice PDFs (install fonts-dejavu-core)");
    return ok ? 0 : -1;
}

int invoice_pdf_render(json_t *data, char **out, size_t *len)
{
    pdf_buf b = {0};
    *out = NULL;
    *len = 0;
    cairo_surface_t *s = cairo_pdf_surface_create_for_stream(pdf_write, &b, PAGE_W, PAGE_H);
    char title[128];
    snprintf(title, sizeof title, "Invoice %s", str_at(data, "invoice.number"));
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "payd");
    cairo_t *cr = cairo_create(s);
    pdf_doc d = {.cr = cr, .data = data, .y = MARGIN, .page = 1};
    cairo_set_source_rgb(cr, 0, 0, 0);
    header(&d);
    items(&d);
    totals(&d);
    money_list(&d, "Payments", "payments");
    money_list(&d, "Refunds", "refunds");
    footer(&d);
    cairo_show_page(cr);
    int failed = cairo_status(cr) != CAIRO_STATUS_SUCCESS;
    cairo_destroy(cr);
    cairo_surface_finish(s);
    failed |= cairo_surface_status(s) != CAIRO_STATUS_SUCCESS || b.failed;
    cairo_surface_destroy(s);
    if (failed) {
        free(b.data);
        return -1;
    }
    *out = b.data;
    *len = b.len;
    return 0;
}
