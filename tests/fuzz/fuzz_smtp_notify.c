/*
 * tests/fuzz/fuzz_smtp_notify.c - the email notifier's `notify` on an event
 * envelope: smtp_content.c reads the order (whose item names, email and
 * metadata came from API clients) with jansson, smtp_template.c renders
 * the shipped templates, smtp_mime.c writes the RFC 5322 message with
 * encoded words and quoted-printable.
 *
 * The module's sources are linked into this binary and reached through its
 * descriptor (payd_module_v1()->notifier->notify), with tests/fuzz/host.c
 * as the host; its `http` captures the message instead of sending it.
 *
 * Input: one mode byte, then the event envelope JSON (a C string: inputs
 * with a NUL are skipped). mode % 3: order.paid, refund.succeeded, or
 * order.cancelled (no mail).
 *
 * Besides crashes, it checks the message on the wire: 7-bit, CRLF line
 * ends only, lines of at most 998 bytes, no line that is a lone ".", and a
 * header block made only of the headers smtp_mime.c writes (so nothing
 * from an order can add a header).
 */
#include <payd/module.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "fuzz_host.h"

#ifndef PAYD_SRCDIR
#define PAYD_SRCDIR "."
#endif

static const payd_module *mod;
static void *state;

static void bad(const char *what, const char *msg, size_t len, size_t at)
{
    fprintf(stderr, "INVARIANT: %s at byte %zu of the message:\n%.*s\n", what,
            at, (int)len, msg);
    abort();
}

static void check_message(const char *msg, size_t len)
{
    static const char *const names[] = {
        "Date: ", "From: ", "To: ", "Subject: ", "Message-ID: ",
        "MIME-Version: ", "Content-Type: ", "Auto-Submitted: ",
        "X-Payd-Event-Id: ", " "};
    size_t i, line = 0;
    int in_header = 1;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];

        if (c == 0 || c >= 0x80)
            bad("a byte that is not 7-bit text", msg, len, i);
        if (c == '\r' && (i + 1 >= len || msg[i + 1] != '\n'))
            bad("a bare CR", msg, len, i);
        if (c == '\n' && (i == 0 || msg[i - 1] != '\r'))
            bad("a bare LF", msg, len, i);
        if (c != '\n')
            continue;
        /* The line is [line, i - 1). */
        size_t n = i - 1 - line;

        if (n > 998)
            bad("a line longer than 998 bytes", msg, len, line);
        if (n == 1 && msg[line] == '.')
            bad("a line that is a lone dot", msg, len, line);
        if (in_header && n == 0) {
            in_header = 0;
        } else if (in_header) {
            size_t k, ok = 0;

            for (k = 0; k < sizeof names / sizeof names[0]; k++)
                if (n >= strlen(names[k]) &&
                    memcmp(msg + line, names[k], strlen(names[k])) == 0)
                    ok = 1;
            if (!ok)
                bad("an unexpected header line", msg, len, line);
        }
        line = i + 1;
    }
    if (len > 0 && msg[len - 1] != '\n')
        bad("a message that does not end with CRLF", msg, len, len);
}

static int capture(const payd_host *h, const payd_http_request *req,
                   payd_http_response *res, payd_arena *a, payd_error *e)
{
    (void)h, (void)a, (void)e;
    if (req == NULL || req->url == NULL || req->method == NULL ||
        req->mail_rcpt == NULL || req->mail_rcpt[0] == NULL)
        return PAYD_E_INVALID;
    check_message(req->body, req->body_len);
    if (getenv("PAYD_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "%.*s\n", (int)req->body_len, req->body);
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    res->status = 250;
    return PAYD_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    payd_error e;

    (void)argc, (void)argv;
    fake_host_reset();
    fake_config_set("payd.instance", "mail_fuzz");
    fake_config_set("url", "smtp://127.0.0.1:2525");
    fake_config_set("from", "orders@shop.example");
    fake_config_set("from_name", "Bäckerei \"Zum Fuß\" =?x?=");
    fake_config_set("templates", PAYD_SRCDIR "/modules/smtp/templates");
    fake_config_set("shop_name", "Fuzz & <Shop> Ünïcode");
    fake_config_set("bcc", "archive@shop.example,audit@shop.example");
    memset(&e, 0, sizeof e);
    mod = payd_module_v1();
    if (mod == NULL || mod->notifier == NULL ||
        mod->init(fuzz_host(), fake_config(), &state, &e) != PAYD_OK) {
        fprintf(stderr, "fuzz_smtp_notify: init failed: %s\n", e.message);
        abort();
    }
    fuzz_host_set_http(capture);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"order.paid", "refund.succeeded",
                                        "order.cancelled"};
    payd_notification n;
    payd_error e;
    payd_arena *a;
    char *json;

    if (size < 1 || memchr(data, '\0', size) != NULL)
        return 0;
    json = malloc(size);
    if (json == NULL)
        return 0;
    memcpy(json, data + 1, size - 1);
    json[size - 1] = '\0';

    memset(&n, 0, sizeof n);
    n.struct_size = sizeof n;
    n.event_id = "evt_fuzz_0123456789";
    n.event_type = types[data[0] % 3];
    n.created_at = 1763700000;
    n.object_json = "{}";
    n.event_json = json;
    n.attempt = 1;
    memset(&e, 0, sizeof e);
    a = fuzz_arena_new();
    int rc = mod->notifier->notify(state, &n, a, &e);
    if (getenv("PAYD_FUZZ_VERBOSE") != NULL)
        fprintf(stderr, "%s: rc %d %s\n", n.event_type, rc, e.message);
    fuzz_arena_free(a);
    free(json);
    return 0;
}
