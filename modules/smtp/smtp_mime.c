/*
 * modules/smtp/smtp_mime.c - the message on the wire (RFC 5322, MIME).
 *
 * One multipart/alternative message: a text/plain part and a text/html
 * part, both UTF-8 and quoted-printable, so every line stays short and
 * 7-bit whatever the template or the item names contain. Header text that
 * is not plain ASCII (a shop name with accents, an item in the subject) is
 * sent as RFC 2047 encoded words, and control characters are removed first,
 * so nothing from an order can add a header line.
 *
 * The boundary starts with "=_": quoted-printable writes every "=" as "=3D",
 * so the boundary can never occur inside a part, and it is derived from
 * the event id, like the Message-ID. A retried delivery is therefore the
 * same message, which lets a mailbox that has it already drop the copy.
 *
 * Pure functions of their input; safe from any thread.
 */
#include "smtp.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Bytes of UTF-8 per encoded word: 45 -> 60 base64 chars, 72 in all. */
#define SMTP_WORD_BYTES 45
/* Header text longer than this is folded as encoded words. */
#define SMTP_PLAIN_HEADER_MAX 200

/* Replace CR, LF and other control characters by spaces (in place). */
static void smtp_header_clean(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

/* 1 when `s` can go into a header as it is. */
static int smtp_header_plain(const char *s)
{
    const char *p;

    if (strlen(s) > SMTP_PLAIN_HEADER_MAX || strstr(s, "=?") != NULL)
        return 0;
    for (p = s; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

/*
 * Append `s` (UTF-8) as encoded words "=?UTF-8?B?...?=", folded onto
 * continuation lines, each word holding whole characters only.
 */
static void smtp_header_words(smtp_buf *out, const smtp_envelope *m,
                              const char *s)
{
    size_t n = strlen(s), pos = 0;

    while (pos < n) {
        size_t len = n - pos < SMTP_WORD_BYTES ? n - pos : SMTP_WORD_BYTES;
        char *b64;

        /* Do not cut a multi-byte character: back up to its lead byte. */
        if (pos + len < n)
            while (len > 1 && ((unsigned char)s[pos + len] & 0xc0) == 0x80)
                len--;
        b64 = m->h->base64_encode(m->a, s + pos, len);
        if (b64 == NULL) {
            out->oom = 1;
            return;
        }
        smtp_buf_printf(out, "%s=?UTF-8?B?%s?=", pos > 0 ? "\r\n " : "", b64);
        pos += len;
    }
}

/* "Name: value\r\n", encoding the value when it needs it. */
static void smtp_header_text(smtp_buf *out, const smtp_envelope *m,
                             const char *name, const char *value)
{
    char clean[SMTP_SUBJECT_MAX + 1];
    size_t n = strlen(value);

    /* Cap the length on a character boundary. */
    if (n > SMTP_SUBJECT_MAX) {
        n = SMTP_SUBJECT_MAX;
        while (n > 0 && ((unsigned char)value[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(clean, value, n);
    clean[n] = '\0';
    smtp_header_clean(clean);
    smtp_buf_printf(out, "%s: ", name);
    if (smtp_header_plain(clean))
        smtp_buf_puts(out, clean);
    else
        smtp_header_words(out, m, clean);
    smtp_buf_puts(out, "\r\n");
}

/* From: "Name" <addr>, or the name as encoded words. */
static void smtp_header_from(smtp_buf *out, const smtp_envelope *m)
{
    char name[SMTP_SUBJECT_MAX + 1];
    const char *p;

    smtp_buf_puts(out, "From: ");
    if (m->from_name != NULL && m->from_name[0] != '\0') {
        snprintf(name, sizeof name, "%s", m->from_name);
        smtp_header_clean(name);
        if (smtp_header_plain(name)) {
            smtp_buf_puts(out, "\"");
            for (p = name; *p != '\0'; p++) {
                if (*p == '"' || *p == '\\')
                    smtp_buf_puts(out, "\\");
                smtp_buf_put(out, p, 1);
            }
            smtp_buf_puts(out, "\"");
        } else {
            smtp_header_words(out, m, name);
        }
        smtp_buf_puts(out, " ");
    }
    smtp_buf_printf(out, "<%s>\r\n", m->from);
}

/* RFC 5322 date in UTC, with C-locale names whatever the process locale. */
static void smtp_header_date(smtp_buf *out, int64_t unix_s)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)unix_s;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    smtp_buf_printf(out, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
                    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
                    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void smtp_mime_qp(smtp_buf *out, const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)in;
    size_t col = 0;

    while (*p != '\0') {
        unsigned char c = *p;
        char tok[4];
        size_t tlen;
        int last = p[1] == '\0' || p[1] == '\n';

        if (c == '\n') {
            smtp_buf_puts(out, "\r\n");
            col = 0;
            p++;
            continue;
        }
        if (((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) &&
            !(c == '.' && col == 0)) {
            tok[0] = (char)c;
            tlen = 1;
        } else {
            tok[0] = '=';
            tok[1] = hex[c >> 4];
            tok[2] = hex[c & 15];
            tlen = 3;
        }
        /* 76 characters per line at most, the soft break's "=" included. */
        if (col + tlen > 75) {
            smtp_buf_puts(out, "=\r\n");
            col = 0;
            if (tlen == 1 && c == '.') {
                tok[0] = '=';
                tok[1] = '2';
                tok[2] = 'E';
                tlen = 3;
            }
        }
        smtp_buf_put(out, tok, tlen);
        col += tlen;
        p++;
    }
    if (col > 0)
        smtp_buf_puts(out, "\r\n");
}

void smtp_mime_build(smtp_buf *out, const smtp_envelope *m)
{
    const char *domain = strrchr(m->from, '@') + 1;
    char boundary[80];

    snprintf(boundary, sizeof boundary, "=_payd_%.50s", m->event_id);
    smtp_header_date(out, m->date);
    smtp_header_from(out, m);
    smtp_buf_printf(out, "To: <%s>\r\n", m->to);
    smtp_header_text(out, m, "Subject", m->subject);
    smtp_buf_printf(out, "Message-ID: <%s.%s@%s>\r\n", m->event_id,
                    smtp_kind_stem(m->kind), domain);
    smtp_buf_puts(out, "MIME-Version: 1.0\r\n");
    smtp_buf_printf(out,
                    "Content-Type: multipart/alternative;\r\n"
                    " boundary=\"%s\"\r\n",
                    boundary);
    /* RFC 3834: an automatic mail; stops auto-replies and vacation loops. */
    smtp_buf_puts(out, "Auto-Submitted: auto-generated\r\n");
    smtp_buf_printf(out, "X-Payd-Event-Id: %s\r\n", m->event_id);
    smtp_buf_puts(out, "\r\nThis is a multi-part message in MIME format.\r\n");

    smtp_buf_printf(out,
                    "\r\n--%s\r\n"
                    "Content-Type: text/plain; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                    boundary);
    smtp_mime_qp(out, m->text);
    smtp_buf_printf(out,
                    "\r\n--%s\r\n"
                    "Content-Type: text/html; charset=UTF-8\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                    boundary);
    smtp_mime_qp(out, m->html);
    smtp_buf_printf(out, "\r\n--%s--\r\n", boundary);
}
