/*
 * modules/smtp/smtp_template.c - the mail templates: load, check, render.
 *
 * Each mail is a pair of files in the templates directory, named after the
 * event: order_paid.txt + order_paid.html, refund_succeeded.txt +
 * refund_succeeded.html. The .txt may start with a "Subject: ..." line (and
 * one blank line after it), which becomes the mail's subject; without one a
 * built-in subject is used.
 *
 * Placeholders are {{name}} (spaces inside the braces are allowed). Every
 * placeholder is checked when the instance starts, so a typo in a template
 * stops payd at boot with the file name, never at 3 a.m. in the outbox.
 * In the HTML part values are HTML-escaped, except {{items}}, which is
 * already table rows built from escaped values.
 *
 * Templates are read once at init and never change afterwards, so
 * rendering is safe from any thread.
 */
#include "smtp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const smtp_placeholders[] = {
    "shop_name",     "order_number", "order_id",        "customer_email",
    "currency",      "items",        "subtotal",        "tax",
    "shipping",      "total",        "amount_paid",     "amount_refunded",
    "refund_amount", "refund_id",    "refund_reason",   "event_id",
};

static const char *const smtp_default_subject[SMTP_KIND_COUNT] = {
    "Order {{order_number}} confirmed",
    "Refund for order {{order_number}}",
};

const char *smtp_kind_stem(int kind)
{
    return kind == SMTP_REFUND_SUCCEEDED ? "refund_succeeded" : "order_paid";
}

/*
 * Read `path` whole, with CRLF folded to LF. Returns a malloc'd string in
 * *out, or an error naming the file (missing, too big, binary).
 */
static int smtp_read_file(const char *path, char **out, payd_error *e)
{
    FILE *f = fopen(path, "rb");
    char *data;
    size_t n, i, o;

    *out = NULL;
    if (f == NULL)
        return payd_fail(e, PAYD_E_INVALID, "smtp: cannot read template %s: %s",
                         path, strerror(errno));
    data = malloc(SMTP_TEMPLATE_MAX + 2);
    if (data == NULL) {
        fclose(f);
        return payd_fail(e, PAYD_E_NOMEM, "smtp: out of memory");
    }
    n = fread(data, 1, SMTP_TEMPLATE_MAX + 1, f);
    fclose(f);
    if (n > SMTP_TEMPLATE_MAX || memchr(data, '\0', n) != NULL) {
        free(data);
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: template %s is larger than %d bytes or "
                         "not text",
                         path, SMTP_TEMPLATE_MAX);
    }
    for (i = 0, o = 0; i < n; i++)
        if (!(data[i] == '\r' && i + 1 < n && data[i + 1] == '\n'))
            data[o++] = data[i];
    data[o] = '\0';
    *out = data;
    return PAYD_OK;
}

/* Where the placeholder starting at `p` ("{{") ends, with its name in
 * [*name, *name + *len). NULL when there is no closing "}}" on the way. */
static const char *smtp_placeholder(const char *p, const char **name,
                                    size_t *len)
{
    const char *close = strstr(p + 2, "}}");
    const char *s = p + 2, *t;

    if (close == NULL)
        return NULL;
    t = close;
    while (s < t && (*s == ' ' || *s == '\t'))
        s++;
    while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
        t--;
    *name = s;
    *len = (size_t)(t - s);
    return close + 2;
}

static int smtp_known(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof smtp_placeholders / sizeof smtp_placeholders[0]; i++)
        if (strlen(smtp_placeholders[i]) == len &&
            memcmp(smtp_placeholders[i], name, len) == 0)
            return 1;
    return 0;
}

/* Every {{...}} in `src` must be closed and known. */
static int smtp_check(const char *src, const char *what, payd_error *e)
{
    const char *p = src, *name, *next;
    size_t len;

    while ((p = strstr(p, "{{")) != NULL) {
        next = smtp_placeholder(p, &name, &len);
        if (next == NULL)
            return payd_fail(e, PAYD_E_INVALID,
                             "smtp: template %s: '{{' without '}}'", what);
        if (!smtp_known(name, len))
            return payd_fail(e, PAYD_E_INVALID,
                             "smtp: template %s: unknown placeholder "
                             "{{%.*s}} (known: shop_name, order_number, "
                             "items, total, refund_amount, ...: see "
                             "modules/smtp/README.md)",
                             what, (int)(len > 40 ? 40 : len), name);
        p = next;
    }
    return PAYD_OK;
}

/* Split a leading "Subject: ..." line off `text` (in place). */
static char *smtp_take_subject(char *text)
{
    char *eol, *s, *rest;
    size_t n;

    if (strncasecmp(text, "Subject:", 8) != 0)
        return NULL;
    eol = strchr(text, '\n');
    n = eol != NULL ? (size_t)(eol - text) : strlen(text);
    s = text + 8;
    while (*s == ' ' || *s == '\t')
        s++;
    if ((size_t)(s - text) > n)
        s = text + n;
    char *subject = strndup(s, n - (size_t)(s - text));
    if (subject == NULL)
        return NULL;
    rest = eol != NULL ? eol + 1 : text + n;
    if (*rest == '\n')
        rest++;
    memmove(text, rest, strlen(rest) + 1);
    return subject;
}

int smtp_templates_load(const char *dir, smtp_template tpl[SMTP_KIND_COUNT],
                        payd_error *e)
{
    char path[4096];
    int kind, rc;

    memset(tpl, 0, sizeof *tpl * SMTP_KIND_COUNT);
    for (kind = 0; kind < SMTP_KIND_COUNT; kind++) {
        smtp_template *t = &tpl[kind];
        const char *stem = smtp_kind_stem(kind);

        snprintf(path, sizeof path, "%s/%s.txt", dir, stem);
        if ((rc = smtp_read_file(path, &t->text, e)) != PAYD_OK)
            goto fail;
        t->subject = smtp_take_subject(t->text);
        if (t->subject == NULL || t->subject[0] == '\0') {
            free(t->subject);
            t->subject = strdup(smtp_default_subject[kind]);
        }
        if (t->subject == NULL) {
            rc = payd_fail(e, PAYD_E_NOMEM, "smtp: out of memory");
            goto fail;
        }
        if ((rc = smtp_check(t->subject, path, e)) != PAYD_OK ||
            (rc = smtp_check(t->text, path, e)) != PAYD_OK)
            goto fail;
        snprintf(path, sizeof path, "%s/%s.html", dir, stem);
        if ((rc = smtp_read_file(path, &t->html, e)) != PAYD_OK ||
            (rc = smtp_check(t->html, path, e)) != PAYD_OK)
            goto fail;
    }
    return PAYD_OK;
fail:
    smtp_templates_free(tpl);
    return rc;
}

void smtp_templates_free(smtp_template tpl[SMTP_KIND_COUNT])
{
    int kind;

    for (kind = 0; kind < SMTP_KIND_COUNT; kind++) {
        free(tpl[kind].subject);
        free(tpl[kind].text);
        free(tpl[kind].html);
        memset(&tpl[kind], 0, sizeof tpl[kind]);
    }
}

void smtp_render(smtp_buf *out, const char *src, const smtp_var *vars,
                 size_t nvars, int html)
{
    const char *p = src, *name, *next;
    size_t len, i;

    while ((next = strstr(p, "{{")) != NULL) {
        smtp_buf_put(out, p, (size_t)(next - p));
        p = smtp_placeholder(next, &name, &len);
        if (p == NULL) { /* checked at load; keep the rest as text */
            p = next;
            break;
        }
        for (i = 0; i < nvars; i++) {
            if (strlen(vars[i].name) != len || memcmp(vars[i].name, name, len) != 0)
                continue;
            if (!html)
                smtp_buf_puts(out, vars[i].text);
            else if (vars[i].html != NULL)
                smtp_buf_puts(out, vars[i].html);
            else
                smtp_buf_html(out, vars[i].text);
            break;
        }
    }
    smtp_buf_puts(out, p);
}
