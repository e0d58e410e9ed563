/*
 * modules/smtp/smtp.h - declarations shared by the files of the smtp
 * notifier.
 *
 * The smtp notifier mails the buyer an order confirmation on order.paid and
 * a refund notice on refund.succeeded, rendered from plain-text and HTML
 * template files and sent with the host's libcurl SMTP client. Its files:
 *   smtp.c           descriptor, config, init/fini, notify, reply mapping
 *   smtp_content.c   reads the event envelope (jansson) into placeholder
 *                    values: items, totals formatted by currency
 *   smtp_template.c  loads, checks and renders the {{placeholder}} files
 *   smtp_mime.c      the RFC 5322 / MIME message: headers, encoded words,
 *                    multipart/alternative, quoted-printable
 *   smtp_buf.c       a growable string with HTML escaping
 *
 * Nothing here is exported from the shared object: it is built with
 * -fvisibility=hidden and only payd_module_v1 is marked PAYD_EXPORT.
 * Everything an instance holds is read-only after init, so notify runs on
 * many threads at once without locks.
 */
#ifndef PAYD_SMTP_H
#define PAYD_SMTP_H

#include <payd/module.h>
#include <payd/module_support.h>

#include <stddef.h>
#include <stdint.h>

#define SMTP_VERSION "1.0.0"

#define SMTP_ADDRESS_MAX 254     /* RFC 5321 path limit, less the <> */
#define SMTP_TEMPLATE_MAX (256 * 1024)
#define SMTP_SUBJECT_MAX 250     /* bytes of UTF-8, after rendering */
#define SMTP_MAX_BCC 16

/* ------------------------------------------------------------------------ */
/* smtp_buf.c                                                               */
/* ------------------------------------------------------------------------ */

/* A growable NUL-terminated heap string. On allocation failure it sets
 * `oom` and ignores further writes; check it once at the end. */
typedef struct smtp_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} smtp_buf;

void smtp_buf_put(smtp_buf *b, const char *s, size_t n);
void smtp_buf_puts(smtp_buf *b, const char *s);
void smtp_buf_printf(smtp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Append `s` with & < > " ' escaped for HTML text and attribute values. */
void smtp_buf_html(smtp_buf *b, const char *s);
/* Hand the string over (never NULL unless oom); the buffer is reset. */
char *smtp_buf_take(smtp_buf *b);
void smtp_buf_free(smtp_buf *b);

/* ------------------------------------------------------------------------ */
/* smtp_template.c                                                          */
/* ------------------------------------------------------------------------ */

/* The two mails this module sends. */
enum smtp_kind {
    SMTP_ORDER_PAID = 0,
    SMTP_REFUND_SUCCEEDED = 1,
    SMTP_KIND_COUNT = 2
};

/* One loaded template pair; strings are malloc'd, LF line ends. */
typedef struct smtp_template {
    char *subject;   /* from a leading "Subject:" line of the .txt, else a default */
    char *text;
    char *html;
} smtp_template;

/* One placeholder value. `html` is already HTML; when NULL the renderer
 * escapes `text` in the HTML part. */
typedef struct smtp_var {
    const char *name;
    const char *text;
    const char *html;
} smtp_var;

/* Load `<dir>/<event>.txt` and `<dir>/<event>.html` for every kind and
 * check their placeholders. 0, or PAYD_E_INVALID / PAYD_E_NOMEM with the
 * file and the problem in e->message. */
int smtp_templates_load(const char *dir, smtp_template tpl[SMTP_KIND_COUNT],
                        payd_error *e);
void smtp_templates_free(smtp_template tpl[SMTP_KIND_COUNT]);

/* Render `src` with `vars` into `out` (appending). `html` picks the HTML
 * values (escaping plain ones). Placeholders were checked at load. */
void smtp_render(smtp_buf *out, const char *src, const smtp_var *vars,
                 size_t nvars, int html);

/* The file name stem of a kind: "order_paid", "refund_succeeded". */
const char *smtp_kind_stem(int kind);

/* ------------------------------------------------------------------------ */
/* smtp_content.c                                                           */
/* ------------------------------------------------------------------------ */

/* Placeholder values for one event; strings are owned here. */
#define SMTP_MAX_VARS 20
typedef struct smtp_content {
    int kind;
    const char *recipient;    /* the order's customer_email, or NULL */
    const char *order_number; /* for logs */
    smtp_var vars[SMTP_MAX_VARS];
    size_t nvars;
    char *owned[SMTP_MAX_VARS * 2];
    size_t nowned;
    int oom;
    void *json;               /* the parsed envelope (json_t *) */
} smtp_content;

/* Parse the envelope and fill `c` for `kind`. Returns 0 (check
 * c->recipient: NULL means nothing to send), PAYD_E_INVALID with
 * e->message when the envelope lacks what the mail needs, PAYD_E_NOMEM. */
int smtp_content_build(smtp_content *c, int kind, const char *event_json,
                       const char *shop_name, payd_error *e);
void smtp_content_free(smtp_content *c);

/* Minor units as "USD 12.34", "JPY 1500", "KWD 1.234" into out. */
void smtp_money_format(int64_t amount, const char *currency, char *out,
                       size_t outsz);
/* Digits after the decimal point of an ISO 4217 code (default 2). */
int smtp_currency_exponent(const char *code);

/* 1 when `s` is a plain addr-spec we can put in a header and an envelope:
 * local@domain, printable ASCII without spaces, quotes, <>, commas. */
int smtp_address_ok(const char *s);

/* ------------------------------------------------------------------------ */
/* smtp_mime.c                                                              */
/* ------------------------------------------------------------------------ */

typedef struct smtp_envelope {
    const payd_host *h;      /* base64 for encoded words */
    payd_arena *a;
    const char *from;        /* addr-spec */
    const char *from_name;   /* display name (UTF-8) or NULL */
    const char *to;          /* addr-spec */
    const char *subject;     /* UTF-8, rendered */
    const char *text;        /* UTF-8, LF line ends */
    const char *html;
    const char *event_id;    /* [A-Za-z0-9_-]: Message-ID and boundary */
    int kind;
    int64_t date;            /* unix seconds */
} smtp_envelope;

/* Write the whole message (CRLF line ends) into `out`. */
void smtp_mime_build(smtp_buf *out, const smtp_envelope *m);

/* Append `in` quoted-printable encoded (RFC 2045), CRLF line ends. */
void smtp_mime_qp(smtp_buf *out, const char *in);

#endif /* PAYD_SMTP_H */
