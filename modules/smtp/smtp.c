/*
 * modules/smtp/smtp.c - the email notifier: descriptor, config, notify.
 *
 * Sends the buyer an order confirmation on order.paid and a refund notice
 * on refund.succeeded, through the host's libcurl SMTP client (smtp:// with
 * STARTTLS when offered, or smtps://). Any other event type is delivered by
 * doing nothing. The recipient is the order's customer_email; an order
 * without one has nothing to send, which is success, not a failure.
 *
 * Config keys of a [notifier.<name>] section with module = smtp (the host
 * itself reads `module` and `events`; any other key is refused):
 *
 *   url         required: smtp://host[:port] or smtps://host[:port]
 *   username    optional SMTP AUTH user
 *   password    optional (needs username); give it as env:NAME or file:PATH
 *   from        required: the envelope and header sender, a plain address
 *   from_name   optional display name of From (UTF-8)
 *   templates   directory of the template files; default: the "templates"
 *               directory installed beside this module, <dir of the .so>/
 *               <module file name without .so>/templates
 *   shop_name   {{shop_name}} in the templates, default "payd shop"
 *   bcc         optional comma-separated addresses that get a blind copy
 *               of every mail (an archive mailbox), at most 16
 *   timeout_ms  whole-transaction timeout, 1000..600000, default 30000
 *
 * SMTP replies map onto the notifier contract: 4xx is PAYD_E_TRANSIENT
 * (greylisting, a full mailbox: try later), 530/534/535 PAYD_E_AUTH, any
 * other 5xx PAYD_E_PROVIDER (permanent), and a timeout or connection
 * failure PAYD_E_TRANSIENT.
 *
 * Neither the password nor the recipient's address is ever logged; logs
 * name the event and the order number.
 */
#include "smtp.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SMTP_URL_MAX 2048
#define SMTP_NAME_MAX 200

typedef struct smtp_instance {
    const payd_host *h;
    char *url;
    char *target;          /* scheme://host[:port], safe to log */
    char *username;
    char *password;
    size_t password_len;
    char *from;
    char *from_name;
    char *shop_name;
    char *bcc[SMTP_MAX_BCC];
    size_t bcc_count;
    long timeout_ms;
    smtp_template tpl[SMTP_KIND_COUNT];
} smtp_instance;

/*
 * Check an smtp:// or smtps:// URL and derive scheme://host[:port] for
 * logs (no user:password@, no path). malloc'd, or NULL when unacceptable.
 */
static char *smtp_target(const char *url)
{
    size_t skip, end, at, i;
    char *t;

    if (!payd_text_ok(url, SMTP_URL_MAX) || strchr(url, ' ') != NULL)
        return NULL;
    if (strncasecmp(url, "smtp://", 7) == 0)
        skip = 7;
    else if (strncasecmp(url, "smtps://", 8) == 0)
        skip = 8;
    else
        return NULL;
    end = skip + strcspn(url + skip, "/?#");
    at = skip;
    for (i = skip; i < end; i++)
        if (url[i] == '@')
            at = i + 1;
    if (at >= end || url[at] == ':')
        return NULL;
    t = malloc(skip + (end - at) + 1);
    if (t == NULL)
        return NULL;
    memcpy(t, url, skip);
    memcpy(t + skip, url + at, end - at);
    t[skip + (end - at)] = '\0';
    return t;
}

/* The templates directory installed beside this shared object. */
static int smtp_default_templates(char *out, size_t outsz)
{
    Dl_info info;
    const char *file, *slash, *dot;
    size_t dirlen, baselen;

    if (dladdr((void *)(uintptr_t)&smtp_default_templates, &info) == 0 ||
        info.dli_fname == NULL)
        return -1;
    file = info.dli_fname;
    slash = strrchr(file, '/');
    dirlen = slash != NULL ? (size_t)(slash - file) : 1;
    if (slash == NULL)
        file = ".";
    const char *base = slash != NULL ? slash + 1 : info.dli_fname;
    dot = strstr(base, ".so");
    baselen = dot != NULL ? (size_t)(dot - base) : strlen(base);
    if (snprintf(out, outsz, "%.*s/%.*s/templates", (int)dirlen, file,
                 (int)baselen, base) >= (int)outsz)
        return -1;
    return 0;
}

static void smtp_instance_free(smtp_instance *s)
{
    size_t i;

    if (s == NULL)
        return;
    if (s->password != NULL) {
        s->h->cleanse(s->password, s->password_len);
        free(s->password);
    }
    free(s->url);
    free(s->target);
    free(s->username);
    free(s->from);
    free(s->from_name);
    free(s->shop_name);
    for (i = 0; i < s->bcc_count; i++)
        free(s->bcc[i]);
    smtp_templates_free(s->tpl);
    free(s);
}

/* Parse "a@x, b@y" into s->bcc. */
static int smtp_parse_bcc(smtp_instance *s, const char *list, payd_error *e)
{
    const char *p = list;

    while (*p != '\0') {
        size_t n;
        char *addr;

        while (*p == ' ' || *p == ',')
            p++;
        n = strcspn(p, ", ");
        if (n == 0)
            break;
        if (s->bcc_count >= SMTP_MAX_BCC)
            return payd_fail(e, PAYD_E_INVALID,
                             "smtp: invalid value for bcc: at most %d addresses",
                             SMTP_MAX_BCC);
        addr = strndup(p, n);
        if (addr == NULL)
            return payd_fail(e, PAYD_E_NOMEM, "smtp: out of memory");
        s->bcc[s->bcc_count++] = addr;
        if (!smtp_address_ok(addr))
            return payd_fail(e, PAYD_E_INVALID,
                             "smtp: invalid value for bcc: '%.60s' is not a "
                             "plain address",
                             addr);
        p += n;
    }
    return PAYD_OK;
}

/* Read and check every key into `s`, then load the templates. PAYD_OK,
 * PAYD_E_INVALID naming the key or file, or PAYD_E_NOMEM. */
static int smtp_configure(smtp_instance *s, const payd_config *cfg,
                          payd_error *e)
{
    const payd_host *h = s->h;
    const char *url = h->config_get(cfg, "url");
    const char *user = h->config_get(cfg, "username");
    const char *pass = h->config_get(cfg, "password");
    const char *from = h->config_get(cfg, "from");
    const char *from_name = h->config_get(cfg, "from_name");
    const char *templates = h->config_get(cfg, "templates");
    const char *shop = h->config_get(cfg, "shop_name");
    const char *bcc = h->config_get(cfg, "bcc");
    int64_t timeout_ms = 0;
    char dir[4096];
    int rc;

    /* Read now, so an earlier bad key does not also get it reported as
     * unknown; payd_conf_int checks it below. */
    (void)h->config_get(cfg, "timeout_ms");

    if (url == NULL || url[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID, "smtp: url is required");
    s->target = smtp_target(url);
    if (s->target == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: invalid value for url: expected "
                         "smtp://host[:port] or smtps://host[:port]");
    s->url = strdup(url);
    if (user != NULL && !payd_text_ok(user, 256))
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: invalid value for username: expected 1 to 256 "
                         "characters");
    if (pass != NULL && user == NULL)
        return payd_fail(e, PAYD_E_INVALID, "smtp: password needs a username");
    if (pass != NULL && (pass[0] == '\0' || strlen(pass) > 1024))
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: invalid value for password: expected 1 to 1024 "
                         "bytes");
    if (user != NULL)
        s->username = strdup(user);
    if (pass != NULL) {
        s->password_len = strlen(pass);
        s->password = malloc(s->password_len + 1);
        if (s->password != NULL)
            memcpy(s->password, pass, s->password_len + 1);
    }
    if (from == NULL || from[0] == '\0')
        return payd_fail(e, PAYD_E_INVALID, "smtp: from is required");
    if (!smtp_address_ok(from))
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: invalid value for from: expected a plain "
                         "address such as shop@example.com (put the name in "
                         "from_name)");
    s->from = strdup(from);
    if (from_name != NULL && !payd_text_ok(from_name, SMTP_NAME_MAX))
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: invalid value for from_name: expected 1 to %d "
                         "bytes without control characters",
                         SMTP_NAME_MAX);
    if (from_name != NULL)
        s->from_name = strdup(from_name);
    if (shop != NULL && !payd_text_ok(shop, SMTP_NAME_MAX))
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: invalid value for shop_name: expected 1 to %d "
                         "bytes without control characters",
                         SMTP_NAME_MAX);
    s->shop_name = strdup(shop != NULL ? shop : "payd shop");
    if (bcc != NULL && (rc = smtp_parse_bcc(s, bcc, e)) != PAYD_OK)
        return rc;
    if ((rc = payd_conf_int(h, cfg, "timeout_ms", 30000, 1000, 600000,
                            &timeout_ms, e, "smtp")) != PAYD_OK)
        return rc;
    s->timeout_ms = (long)timeout_ms;
    if ((s->url == NULL || s->from == NULL || s->shop_name == NULL) ||
        (user != NULL && s->username == NULL) ||
        (pass != NULL && s->password == NULL) ||
        (from_name != NULL && s->from_name == NULL))
        return payd_fail(e, PAYD_E_NOMEM, "smtp: out of memory");

    if (templates != NULL) {
        if (templates[0] == '\0' || strlen(templates) >= sizeof dir - 64)
            return payd_fail(e, PAYD_E_INVALID,
                             "smtp: invalid value for templates");
        snprintf(dir, sizeof dir, "%s", templates);
    } else if (smtp_default_templates(dir, sizeof dir - 64) != 0) {
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: cannot locate the module's templates "
                         "directory; set templates");
    }
    return smtp_templates_load(dir, s->tpl, e);
}

/*
 * init: check the host, read the config, load and check the templates.
 * Returns 0 with *state set, or PAYD_E_INVALID (the key or template file is
 * named), PAYD_E_NOMEM. Called alone.
 */
static int smtp_init(const payd_host *h, const payd_config *cfg, void **state,
                     payd_error *e)
{
    smtp_instance *s;
    int rc;

    if (h == NULL || h->abi_major != PAYD_ABI_MAJOR ||
        h->struct_size < sizeof(payd_host))
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: host does not provide the ABI 1.0 services");
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "smtp: out of memory");
    s->h = h;
    rc = smtp_configure(s, cfg, e);
    if (rc != PAYD_OK) {
        smtp_instance_free(s);
        return rc;
    }
    h->log(h, PAYD_LOG_INFO, "smtp notifier ready: sending through %s%s",
           s->target, s->username != NULL ? " with AUTH" : "");
    *state = s;
    return PAYD_OK;
}

/* fini: wipe the password, free the templates and the instance. Alone. */
static void smtp_fini(void *state)
{
    smtp_instance_free(state);
}

/* Event ids go into Message-ID and the MIME boundary: keep them tame. */
static int smtp_event_id_ok(const char *id)
{
    size_t i;

    if (id == NULL || id[0] == '\0')
        return 0;
    for (i = 0; id[i] != '\0'; i++) {
        char c = id[i];

        if (i >= 100 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/*
 * Hand the message to the SMTP server and map its answer. See the top of
 * this file for the mapping. A reply code is used whenever the host
 * reports one, whether or not it also reports the transfer as failed.
 */
static int smtp_send(const smtp_instance *s, const payd_notification *n,
                     const char *to, const char *msg, size_t len,
                     payd_arena *a, payd_error *e)
{
    const payd_host *h = s->h;
    const char *rcpt[2 + SMTP_MAX_BCC];
    payd_http_request req;
    payd_http_response res;
    size_t i, k = 0;
    int rc;

    rcpt[k++] = to;
    for (i = 0; i < s->bcc_count; i++)
        rcpt[k++] = s->bcc[i];
    rcpt[k] = NULL;

    memset(&req, 0, sizeof req);
    req.struct_size = (uint32_t)sizeof req;
    req.method = "MAIL";
    req.url = s->url;
    req.body = msg;
    req.body_len = len;
    req.timeout_ms = s->timeout_ms;
    req.username = s->username;
    req.password = s->password;
    req.mail_from = s->from;
    req.mail_rcpt = rcpt;
    memset(&res, 0, sizeof res);
    res.struct_size = (uint32_t)sizeof res;

    rc = h->http(h, &req, &res, a, e);
    if (rc == PAYD_E_INVALID)
        return payd_fail(e, PAYD_E_INVALID, "smtp: the host refused the request to %s",
                         s->target);
    if (res.status >= 400 && res.status <= 499) {
        h->log(h, PAYD_LOG_INFO, "%s: %s answered %ld, will retry", n->event_id,
               s->target, res.status);
        return payd_fail(e, PAYD_E_TRANSIENT, "SMTP server answered %ld", res.status);
    }
    if (res.status == 530 || res.status == 534 || res.status == 535) {
        h->log(h, PAYD_LOG_ERROR, "%s: %s refused the credentials (%ld)", n->event_id,
               s->target, res.status);
        return payd_fail(e, PAYD_E_AUTH,
                         "SMTP server answered %ld: authentication failed",
                         res.status);
    }
    if (res.status >= 500 && res.status <= 599) {
        h->log(h, PAYD_LOG_WARN, "%s: %s answered %ld, giving up", n->event_id,
               s->target, res.status);
        return payd_fail(e, PAYD_E_PROVIDER, "SMTP server answered %ld", res.status);
    }
    if (rc != PAYD_OK) {
        h->log(h, PAYD_LOG_INFO, "%s: %s did not answer, will retry", n->event_id,
               s->target);
        if (e != NULL && e->message[0] == '\0')
            payd_fail(e, PAYD_E_TRANSIENT, "MAIL %s: no answer", s->target);
        if (e != NULL)
            e->code = PAYD_E_TRANSIENT;
        return PAYD_E_TRANSIENT;
    }
    return PAYD_OK;
}

/*
 * notify: mail the buyer about order.paid or refund.succeeded. Returns 0
 * (sent, or nothing to send), PAYD_E_TRANSIENT (retry later),
 * PAYD_E_PROVIDER / PAYD_E_AUTH (the server refused: permanent) or
 * PAYD_E_INVALID (the event cannot make a mail: permanent). The message is
 * built in heap buffers freed before returning. Thread-safe.
 */
static int smtp_notify(void *state, const payd_notification *n,
                       payd_arena *a, payd_error *e)
{
    const smtp_instance *s = state;
    const payd_host *h = s->h;
    const smtp_template *t;
    smtp_content c;
    smtp_buf subject = {0}, text = {0}, html = {0}, msg = {0};
    smtp_envelope m;
    const char *number;
    int kind, rc;

    if (n == NULL || n->event_type == NULL)
        return payd_fail(e, PAYD_E_INVALID, "smtp: the notification has no type");
    if (strcmp(n->event_type, "order.paid") == 0)
        kind = SMTP_ORDER_PAID;
    else if (strcmp(n->event_type, "refund.succeeded") == 0)
        kind = SMTP_REFUND_SUCCEEDED;
    else
        return PAYD_OK; /* no mail for this event: delivered by design */
    if (!smtp_event_id_ok(n->event_id) || n->event_json == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "smtp: the notification lacks an event id or envelope");

    rc = smtp_content_build(&c, kind, n->event_json, s->shop_name, e);
    if (rc != PAYD_OK) {
        smtp_content_free(&c);
        return rc == PAYD_E_NOMEM ? payd_fail(e, PAYD_E_TRANSIENT, "smtp: out of memory")
                                  : rc;
    }
    number = c.order_number != NULL ? c.order_number : "(no number)";
    if (c.recipient == NULL) {
        h->log(h, PAYD_LOG_INFO, "%s: order %s has no customer_email, nothing to send",
               n->event_id, number);
        smtp_content_free(&c);
        return PAYD_OK;
    }
    if (!smtp_address_ok(c.recipient)) {
        h->log(h, PAYD_LOG_WARN, "%s: order %s: customer_email is not a usable address",
               n->event_id, number);
        rc = payd_fail(e, PAYD_E_INVALID,
                       "smtp: customer_email of order %.60s is not a usable address",
                       number);
        smtp_content_free(&c);
        return rc;
    }

    t = &s->tpl[kind];
    smtp_render(&subject, t->subject, c.vars, c.nvars, 0);
    smtp_render(&text, t->text, c.vars, c.nvars, 0);
    smtp_render(&html, t->html, c.vars, c.nvars, 1);
    memset(&m, 0, sizeof m);
    m.h = h;
    m.a = a;
    m.from = s->from;
    m.from_name = s->from_name;
    m.to = c.recipient;
    m.subject = subject.data != NULL ? subject.data : "";
    m.text = text.data != NULL ? text.data : "";
    m.html = html.data != NULL ? html.data : "";
    m.event_id = n->event_id;
    m.kind = kind;
    m.date = h->now(h);
    if (!subject.oom && !text.oom && !html.oom)
        smtp_mime_build(&msg, &m);
    if (subject.oom || text.oom || html.oom || msg.oom || msg.data == NULL)
        rc = payd_fail(e, PAYD_E_TRANSIENT, "smtp: out of memory");
    else
        rc = smtp_send(s, n, c.recipient, msg.data, msg.len, a, e);
    if (rc == PAYD_OK)
        h->log(h, PAYD_LOG_INFO, "%s: %s for order %s sent", n->event_id,
               kind == SMTP_ORDER_PAID ? "order confirmation" : "refund notice", number);
    smtp_buf_free(&subject);
    smtp_buf_free(&text);
    smtp_buf_free(&html);
    smtp_buf_free(&msg);
    smtp_content_free(&c);
    return rc;
}

static const payd_notifier_ops smtp_notifier_ops = {
    .struct_size = (uint32_t)sizeof(payd_notifier_ops),
    .notify = smtp_notify,
};

static const payd_module smtp_module = {
    PAYD_MODULE_V1,
    .name = "smtp",
    .version = SMTP_VERSION,
    .description = "Order confirmation and refund notice emails over SMTP, "
                   "from plain-text and HTML templates",
    .kind = PAYD_KIND_NOTIFIER,
    .caps = 0,
    .init = smtp_init,
    .fini = smtp_fini,
    .gateway = NULL,
    .notifier = &smtp_notifier_ops,
};

PAYD_DECLARE_MODULE(smtp_module)
