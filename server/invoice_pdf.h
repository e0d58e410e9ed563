/* invoice_pdf.h - the invoice as a PDF, drawn with cairo. */
#ifndef PAYD_INVOICE_PDF_H
#define PAYD_INVOICE_PDF_H

#include <jansson.h>
#include <stddef.h>

/*
 * Renders the invoice data model (invoice_get; borrowed) as an A4 PDF into
 * a malloc'd buffer (*out, *len; the caller frees it). Text is real text
 * (searchable, and what pdftotext reads back). Items that do not fit on a
 * page continue on the next one, under the table header again. 0, or -1
 * when cairo failed or memory ran out. Thread-safe: every call has its own
 * surface and context.
 */
int invoice_pdf_render(json_t *data, char **out, size_t *len);

/*
 * Loads fontconfig's configuration and the faces the PDF uses, once, on
 * the calling thread: call it at startup from the main thread. The first
 * load parses fontconfig's XML recursively, deeper than a CivetWeb worker's
 * small stack allows under the sanitizers, and would slow the first
 * invoice. 0, or -1 with a message in err when no usable font is found
 * (the PDF would have no text).
 */
int invoice_pdf_setup(char *err, size_t errlen);

#endif
