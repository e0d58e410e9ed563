/* invoice_template.h - the invoice's HTML template language: parse, check, render. */
#ifndef PAYD_INVOICE_TEMPLATE_H
#define PAYD_INVOICE_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

/*
 * The language, a small subset of Mustache:
 *
 *   {{order.number}}          a value, looked up by dotted path; HTML-escaped
 *   {{#items}}...{{/items}}   a section: repeated for each element of an array,
 *                             rendered once for an object or any other truthy
 *                             value (a non-empty string, true, a number)
 *   {{^refunds}}...{{/refunds}} rendered only when the value is missing, null,
 *                             false, "" or []
 *   {{.}}                     the current element (an array of strings)
 *   {{! a comment }}
 *
 * Inside a section a name is looked up in the element first, then in the
 * enclosing scopes. Every substituted value is HTML-escaped; there is no
 * raw output. Values are strings, integers or booleans; anything else
 * renders as nothing.
 */

typedef struct invoice_template invoice_template;

/* Size limits: a template is a page, not a book. */
#define INVOICE_TEMPLATE_MAX_BYTES (1024 * 1024)
#define INVOICE_TEMPLATE_MAX_DEPTH 8

/*
 * Parses `len` bytes of `text`. `name` (usually the file path) prefixes
 * error messages, which read "NAME:LINE: what is wrong". Returns 0 with a
 * new template in *out (caller frees with invoice_template_free), or -1
 * with the message in err. The template keeps its own copy of the text.
 */
int invoice_template_parse(const char *text, size_t len, const char *name, invoice_template **out,
                           char *err, size_t errlen);

/* Reads `path` and parses it; errors name the path (and line). */
int invoice_template_load(const char *path, invoice_template **out, char *err, size_t errlen);

/*
 * Checks that every placeholder and section of `t` resolves in `shape`, a
 * sample of the data the template will be rendered with (borrowed; each
 * array in it holds one sample element). So a typo stops payd at startup
 * with "NAME:LINE: unknown placeholder {{x}}" instead of rendering an
 * empty field. 0, or -1 with the message in err.
 */
int invoice_template_check(const invoice_template *t, json_t *shape, char *err, size_t errlen);

/*
 * Renders `t` with `data` (borrowed) into a malloc'd, NUL-terminated
 * buffer (*out, length *len; the caller frees it). A name that does not
 * resolve renders as nothing. 0, or -1 when out of memory. The template is
 * read-only here, so any number of threads may render it at once.
 */
int invoice_template_render(const invoice_template *t, json_t *data, char **out, size_t *len);

void invoice_template_free(invoice_template *t);

#endif
