/*
 * api_invoices.c - HTTP face of invoice.c: GET /v1/orders/{id}/invoice
 * answers the invoice as HTML (the default, or ?format=html) or as a PDF
 * (?format=pdf). The body is written like every other reply, in one
 * mg_write by http.c; the invoice number also travels in an Invoice-Number
 * header, and a PDF gets a Content-Disposition with a file name.
 * Per-request; thread-safe.
 */
#include "api_invoices.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "invoice.h"
#include "invoice_pdf.h"
#include "invoice_template.h"

void api_invoices_get(app *a, http_req *r)
{
    const char *format = http_query(r, "format");
    int pdf = format && strcmp(format, "pdf") == 0;
    if (format && !pdf && strcmp(format, "html") != 0) {
        http_reply_error(r, 400, "invalid_request_error", "parameter_invalid", "format",
                         "format must be html or pdf");
        return;
    }
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *data = NULL;
    fault f;
    if (invoice_get(&x, r->params[0], &data, &f) != 0) {
        http_reply_fault(r, &f, NULL, NULL);
        return;
    }
    char *body = NULL;
    size_t len = 0;
    int rc = pdf ? invoice_pdf_render(data, &body, &len)
                 : invoice_template_render(a->invoice_template, data, &body, &len);
    const char *number = json_string_value(json_object_get(json_object_get(data, "invoice"), "number"));
    if (!number) number = "";
    if (rc != 0) {
        http_reply_error(r, 500, "api_error", "internal_error", NULL, "the invoice could not be rendered");
    } else {
        http_reply_raw(r, 200, pdf ? "application/pdf" : "text/html; charset=utf-8", body, len);
        /* The number is INV-<digits>-<digits>: safe in a header as is. */
        r->extra_headers = pdf ? arena_sprintf(r->arena,
                                               "Invoice-Number: %s\r\n"
                                               "Content-Disposition: inline; filename=\"%s.pdf\"\r\n",
                                               number, number)
                               : arena_sprintf(r->arena, "Invoice-Number: %s\r\n", number);
    }
    free(body);
    json_decref(data);
}
