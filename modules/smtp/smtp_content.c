/*
 * modules/smtp/smtp_content.c - what a mail says, read from the event.
 *
 * The notification's event_json is the event envelope:
 *   {"id":"evt_...","type":"order.paid","object_type":"order",...,
 *    "data":{"object":{...},"order":{...order snapshot, for non-orders...}}}
 * For order.paid the order is data.object; for refund.succeeded the refund
 * is data.object and the order (recipient, number, items, currency) is
 * data.order. This file turns them into the placeholder values the
 * templates use, with every amount formatted by its currency's exponent.
 *
 * Currency exponents: ISO 4217 minor units. Most currencies have 2; the
 * exceptions are listed below (the same table as the core's money.c, which
 * a module cannot include). An unknown code gets 2.
 */
#include "smtp.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ISO 4217 codes whose minor unit is not 2. */
static const char smtp_zero_decimal[] =
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
static const char smtp_three_decimal[] = "BHD IQD JOD KWD LYD OMR TND";
static const char smtp_four_decimal[] = "CLF UYW";

static int smtp_in_list(const char *list, const char *code)
{
    const char *p;

    for (p = list; *p != '\0'; p += 4) {
        if (strncmp(p, code, 3) == 0)
            return 1;
        if (p[3] == '\0')
            break;
    }
    return 0;
}

int smtp_currency_exponent(const char *code)
{
    if (code == NULL || strlen(code) != 3)
        return 2;
    if (smtp_in_list(smtp_zero_decimal, code))
        return 0;
    if (smtp_in_list(smtp_three_decimal, code))
        return 3;
    if (smtp_in_list(smtp_four_decimal, code))
        return 4;
    return 2;
}

void smtp_money_format(int64_t amount, const char *currency, char *out,
                       size_t outsz)
{
    int exp = smtp_currency_exponent(currency);
    int neg = amount < 0;
    uint64_t v = neg ? (uint64_t)0 - (uint64_t)amount : (uint64_t)amount;
    uint64_t scale = 1;
    char code[4] = "";
    int i;

    /* The code is printed, so only three upper-case letters pass. */
    if (currency != NULL && strlen(currency) == 3) {
        for (i = 0; i < 3 && currency[i] >= 'A' && currency[i] <= 'Z'; i++)
            code[i] = currency[i];
        code[i == 3 ? 3 : 0] = '\0';
    }
    for (i = 0; i < exp; i++)
        scale *= 10;
    if (exp == 0)
        snprintf(out, outsz, "%s%s%s%llu", code, code[0] ? " " : "",
                 neg ? "-" : "", (unsigned long long)v);
    else
        snprintf(out, outsz, "%s%s%s%llu.%0*llu", code, code[0] ? " " : "",
                 neg ? "-" : "", (unsigned long long)(v / scale), exp,
                 (unsigned long long)(v % scale));
}

int smtp_address_ok(const char *s)
{
    const char *at;
    size_t i, n;

    if (s == NULL)
        return 0;
    n = strlen(s);
    at = strrchr(s, '@');
    if (n < 3 || n > SMTP_ADDRESS_MAX || at == NULL || at == s || at[1] == '\0' ||
        strchr(s, '@') != at || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || strchr("<>()[]\\,;:\"", c) != NULL)
            return 0;
    }
    return 1;
}

/* Keep `s` (malloc'd, may be NULL on OOM) until smtp_content_free. */
static char *smtp_own(smtp_content *c, char *s)
{
    if (s == NULL || c->nowned >= sizeof c->owned / sizeof c->owned[0]) {
        free(s);
        c->oom = 1;
        return NULL;
    }
    c->owned[c->nowned++] = s;
    return s;
}

/* Add a placeholder; `text` NULL means the empty string. */
static void smtp_set(smtp_content *c, const char *name, const char *text,
                     const char *html)
{
    if (c->nvars >= SMTP_MAX_VARS)
        return;
    c->vars[c->nvars].name = name;
    c->vars[c->nvars].text = text != NULL ? text : "";
    c->vars[c->nvars].html = html;
    c->nvars++;
}

static const char *smtp_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t smtp_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* An amount field of `obj`, formatted, kept in c. */
static const char *smtp_amount(smtp_content *c, json_t *obj, const char *key,
                               const char *currency)
{
    char buf[64];

    smtp_money_format(smtp_int(obj, key), currency, buf, sizeof buf);
    return smtp_own(c, strdup(buf));
}

/*
 * The line items, once as plain text and once as HTML table rows (every
 * value escaped). Each item: name, quantity, unit_amount, amount, sku.
 */
static int smtp_items(smtp_content *c, json_t *order, const char *currency)
{
    json_t *items = json_object_get(order, "items"), *it;
    smtp_buf text = {0}, html = {0};
    char unit[64], amount[64];
    size_t i;

    json_array_foreach(items, i, it) {
        const char *name = smtp_str(it, "name");
        const char *sku = smtp_str(it, "sku");
        int64_t qty = smtp_int(it, "quantity");

        if (name == NULL)
            name = "(item)";
        smtp_money_format(smtp_int(it, "unit_amount"), currency, unit, sizeof unit);
        smtp_money_format(smtp_int(it, "amount"), currency, amount, sizeof amount);
        smtp_buf_printf(&text, "- %s", name);
        if (sku != NULL && sku[0] != '\0')
            smtp_buf_printf(&text, " [%s]", sku);
        smtp_buf_printf(&text, "\n  %lld x %s = %s\n", (long long)qty, unit, amount);

        smtp_buf_puts(&html, "<tr><td>");
        smtp_buf_html(&html, name);
        if (sku != NULL && sku[0] != '\0') {
            smtp_buf_puts(&html, "<br><small>");
            smtp_buf_html(&html, sku);
            smtp_buf_puts(&html, "</small>");
        }
        smtp_buf_printf(&html,
                        "</td><td class=\"num\">%lld</td><td class=\"num\">",
                        (long long)qty);
        smtp_buf_html(&html, unit);
        smtp_buf_puts(&html, "</td><td class=\"num\">");
        smtp_buf_html(&html, amount);
        smtp_buf_puts(&html, "</td></tr>\n");
    }
    /* Without a trailing newline the template decides the spacing. */
    if (text.len > 0 && text.data[text.len - 1] == '\n')
        text.data[--text.len] = '\0';
    if (html.len > 0 && html.data[html.len - 1] == '\n')
        html.data[--html.len] = '\0';
    const char *t = smtp_own(c, smtp_buf_take(&text));
    const char *h = smtp_own(c, smtp_buf_take(&html));
    if (t == NULL || h == NULL)
        return PAYD_E_NOMEM;
    smtp_set(c, "items", t, h);
    return PAYD_OK;
}

/* "requested_by_customer" -> "requested by customer". */
static const char *smtp_reason(smtp_content *c, const char *reason)
{
    char *r, *p;

    if (reason == NULL)
        return "";
    r = smtp_own(c, strdup(reason));
    if (r == NULL)
        return "";
    for (p = r; *p != '\0'; p++)
        if (*p == '_')
            *p = ' ';
    return r;
}

int smtp_content_build(smtp_content *c, int kind, const char *event_json,
                       const char *shop_name, payd_error *e)
{
    json_t *root, *data, *object, *order;
    const char *currency, *email;
    json_error_t jerr;

    memset(c, 0, sizeof *c);
    c->kind = kind;
    root = json_loads(event_json, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: the event envelope is not a JSON object");
    }
    c->json = root;
    data = json_object_get(root, "data");
    object = json_object_get(data, "object");
    order = json_object_get(data, "order");
    if (kind == SMTP_ORDER_PAID || !json_is_object(order)) {
        const char *ot = smtp_str(root, "object_type");

        order = kind == SMTP_ORDER_PAID || (ot != NULL && strcmp(ot, "order") == 0)
                    ? object
                    : NULL;
    }
    if (!json_is_object(order) || (kind == SMTP_REFUND_SUCCEEDED && !json_is_object(object)))
        return PAYD_OK; /* nothing to mail about: the caller logs it */

    c->order_number = smtp_str(order, "number");
    email = smtp_str(order, "customer_email");
    c->recipient = email != NULL && email[0] != '\0' ? email : NULL;
    currency = smtp_str(order, "currency");

    smtp_set(c, "shop_name", shop_name, NULL);
    smtp_set(c, "order_number", c->order_number, NULL);
    smtp_set(c, "order_id", smtp_str(order, "id"), NULL);
    smtp_set(c, "customer_email", email, NULL);
    smtp_set(c, "currency", currency, NULL);
    smtp_set(c, "event_id", smtp_str(root, "id"), NULL);
    smtp_set(c, "subtotal", smtp_amount(c, order, "subtotal", currency), NULL);
    smtp_set(c, "tax", smtp_amount(c, order, "tax", currency), NULL);
    smtp_set(c, "shipping", smtp_amount(c, order, "shipping", currency), NULL);
    smtp_set(c, "total", smtp_amount(c, order, "total", currency), NULL);
    smtp_set(c, "amount_paid", smtp_amount(c, order, "amount_paid", currency), NULL);
    smtp_set(c, "amount_refunded", smtp_amount(c, order, "amount_refunded", currency),
             NULL);
    if (kind == SMTP_REFUND_SUCCEEDED) {
        const char *rc = smtp_str(object, "currency");

        smtp_set(c, "refund_amount",
                 smtp_amount(c, object, "amount", rc != NULL ? rc : currency), NULL);
        smtp_set(c, "refund_id", smtp_str(object, "id"), NULL);
        smtp_set(c, "refund_reason", smtp_reason(c, smtp_str(object, "reason")), NULL);
    } else {
        smtp_set(c, "refund_amount", "", NULL);
        smtp_set(c, "refund_id", "", NULL);
        smtp_set(c, "refund_reason", "", NULL);
    }
    if (smtp_items(c, order, currency) != PAYD_OK || c->oom)
        return payd_fail(e, PAYD_E_NOMEM, "smtp: out of memory");
    return PAYD_OK;
}

void smtp_content_free(smtp_content *c)
{
    size_t i;

    for (i = 0; i < c->nowned; i++)
        free(c->owned[i]);
    json_decref(c->json);
    memset(c, 0, sizeof *c);
}
