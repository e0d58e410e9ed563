/* invoice.h - an order's invoice: numbering and the data it shows. */
#ifndef PAYD_INVOICE_H
#define PAYD_INVOICE_H

#include <jansson.h>

#include "config.h"
#include "context.h"
#include "fault.h"

/*
 * Loads the invoice template ([invoice] template, or the shipped
 * templates/invoice.html), checks it against the invoice data model and
 * checks the [invoice] seller texts, into a->invoice_template, and loads
 * the PDF's fonts (invoice_pdf_setup) while on the main thread. Every
 * problem is added to errs as "FILE:LINE: message". 0 or -1. Called once at
 * startup (serve, check-config), on one thread.
 */
int invoice_setup(app *a, config_errors *errs);
void invoice_teardown(app *a);

/*
 * The invoice of order `order_id` as the data model the HTML template and
 * the PDF renderer read (a new reference in *out, caller decrefs). The
 * first call for an order issues its number (INV-<year>-NNNNNN, gapless
 * per calendar year) in one transaction with its audit row and the
 * invoice.issued event; later calls show the same number. End users only
 * reach their own orders (others are 404, as for GET /v1/orders/{id}).
 * 0, or -1 with f filled (404, 503, 500). Thread-safe.
 */
int invoice_get(op_ctx *x, const char *order_id, json_t **out, fault *f);

/*
 * The data model of a sample invoice (one item, payment and refund, every
 * field set): what the template is checked against. New reference.
 */
json_t *invoice_sample(const config *cfg);

#endif
