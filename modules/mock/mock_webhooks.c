/*
 * modules/mock/mock_webhooks.c - the mock provider's webhooks, both ways.
 *
 * Outbound: state changes queue a signed event for the instance that
 * created the intent. One delivery thread per loaded module (shared by all
 * instances, started by the first init, joined by the last fini) POSTs each
 * event with host->http to the instance's payd.webhook_url:
 *
 *   POST <payd.webhook_url>
 *   Content-Type: application/json
 *   Mock-Signature: t=<unix>,v1=<hex hmac_sha256(secret, "<t>.<body>")>
 *
 *   {"id":"mevt_<24 hex>","type":"payment.succeeded","created":<unix>,
 *    "data":{"provider_ref":"mock_pi_...","payment_id":"pay_...",
 *            "amount":1234,"currency":"USD","refund_ref":null,
 *            "refund_id":null,"failure_code":null,"failure_message":null}}
 *
 * A delivery that fails (transport error or non-2xx) is retried after
 * 0.2 s, 1 s and 5 s, then dropped with a warning. The same thread runs the
 * settle timers of pm_card_processing intents. The queue is one list sorted
 * by due time, under mock_mu; the thread drops the lock while it POSTs.
 *
 * Inbound: the `webhook` operation verifies Mock-Signature (constant-time,
 * any matching v1, timestamp tolerance) BEFORE it parses the body with the
 * strict parser in mock_json.c, then maps the event type.
 */
#include "mock.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum mock_job_kind { MOCK_JOB_DELIVER, MOCK_JOB_SETTLE };

typedef struct mock_job {
    int kind;
    int attempts;                /* deliveries tried so far */
    int64_t due_ms;              /* monotonic */
    char *account;               /* deliver: the instance to send through */
    char *body;
    size_t body_len;
    char event_id[40];
    char type[32];
    char ref[MOCK_REF_SIZE];     /* settle: the intent */
    struct mock_job *prev;
    struct mock_job *next;
} mock_job;

static struct {
    pthread_cond_t cv;           /* CLOCK_MONOTONIC; wakes the thread */
    pthread_t thread;
    int running;
    int stopping;
    mock_job *head;              /* sorted by due_ms */
    mock_job *tail;
    size_t nevents;
    size_t ntimers;
    const mock_instance *inflight; /* whose host the thread is using */
} mock_w;

/* Signalled when the thread stops using an instance. */
static pthread_cond_t mock_idle_cv = PTHREAD_COND_INITIALIZER;

static const int64_t mock_backoff_ms[] = {200, 1000, 5000};
#define MOCK_DELIVERY_ATTEMPTS 4
#define MOCK_DELIVERY_TIMEOUT_MS 5000

static void mock_job_free(mock_job *j)
{
    if (j == NULL)
        return;
    free(j->account);
    free(j->body);
    free(j);
}

/* Insert in due order. Jobs mostly arrive in order, so scan from the tail. */
static void mock_job_insert_locked(mock_job *j)
{
    mock_job *after = mock_w.tail;

    while (after != NULL && after->due_ms > j->due_ms)
        after = after->prev;
    j->prev = after;
    j->next = after != NULL ? after->next : mock_w.head;
    if (j->next != NULL)
        j->next->prev = j;
    else
        mock_w.tail = j;
    if (after != NULL)
        after->next = j;
    else
        mock_w.head = j;
    if (j->kind == MOCK_JOB_DELIVER)
        mock_w.nevents++;
    else
        mock_w.ntimers++;
    pthread_cond_signal(&mock_w.cv);
}

static void mock_job_unlink_locked(mock_job *j)
{
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        mock_w.head = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    else
        mock_w.tail = j->prev;
    j->prev = j->next = NULL;
    if (j->kind == MOCK_JOB_DELIVER)
        mock_w.nevents--;
    else
        mock_w.ntimers--;
}

/* ------------------------------------------------------------------------ */
/* Building and signing events                                              */
/* ------------------------------------------------------------------------ */

/*
 * Queue an event for the live instance named `account`. Nothing is queued
 * when that instance is gone, has webhooks off or no webhook URL, or the
 * queue is full (then with a warning). Called with mock_mu held, from ops
 * and from the settle timer.
 */
void mock_webhooks_emit_locked(const char *account, const mock_event_data *d)
{
    const mock_instance *inst = mock_instance_find_locked(account);
    char hex[MOCK_REF_HEX + 1];
    mock_buf b = {0};
    mock_job *j;

    if (inst == NULL || !inst->webhooks || inst->webhook_url == NULL ||
        !mock_w.running || mock_w.stopping)
        return;
    if (mock_w.nevents >= MOCK_MAX_QUEUED_EVENTS) {
        inst->h->log(inst->h, PAYD_LOG_WARN,
                     "mock: webhook queue full, dropping %s for %s", d->type,
                     d->provider_ref != NULL ? d->provider_ref : "-");
        return;
    }
    if (mock_random_hex(inst->h, hex, MOCK_REF_HEX / 2) != PAYD_OK)
        return;
    j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->kind = MOCK_JOB_DELIVER;
    j->due_ms = mock_mono_ms();
    snprintf(j->event_id, sizeof j->event_id, "mevt_%s", hex);
    snprintf(j->type, sizeof j->type, "%s", d->type);
    j->account = strdup(account);
    mock_buf_printf(&b, "{\"id\":\"%s\",\"type\":", j->event_id);
    mock_buf_json_str(&b, d->type);
    mock_buf_printf(&b, ",\"created\":%lld,\"data\":{\"provider_ref\":",
                    (long long)inst->h->now(inst->h));
    mock_buf_json_str(&b, d->provider_ref);
    mock_buf_puts(&b, ",\"payment_id\":");
    mock_buf_json_str(&b, d->payment_id);
    mock_buf_printf(&b, ",\"amount\":%lld,\"currency\":", (long long)d->amount);
    mock_buf_json_str(&b, d->currency);
    mock_buf_puts(&b, ",\"refund_ref\":");
    mock_buf_json_str(&b, d->refund_ref);
    mock_buf_puts(&b, ",\"refund_id\":");
    mock_buf_json_str(&b, d->refund_id);
    mock_buf_puts(&b, ",\"failure_code\":");
    mock_buf_json_str(&b, d->failure_code);
    mock_buf_puts(&b, ",\"failure_message\":");
    mock_buf_json_str(&b, d->failure_message);
    mock_buf_puts(&b, "}}");
    j->body = mock_buf_take(&b, &j->body_len);
    if (j->account == NULL || j->body == NULL) {
        mock_job_free(j);
        return;
    }
    mock_job_insert_locked(j);
}

/* Arm the settle timer of a processing intent. Past the timer bound the
 * intent still settles when next read, only without a webhook. */
void mock_webhooks_schedule_settle_locked(const char *ref, int64_t due_ms)
{
    mock_job *j;

    if (!mock_w.running || mock_w.stopping ||
        mock_w.ntimers >= MOCK_MAX_TIMERS)
        return;
    j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->kind = MOCK_JOB_SETTLE;
    j->due_ms = due_ms;
    snprintf(j->ref, sizeof j->ref, "%s", ref);
    mock_job_insert_locked(j);
}

/*
 * The Mock-Signature value for `body` at time `t` into `out`:
 * "t=<t>,v1=<hex hmac_sha256(secret, "<t>.<body>")>". Returns 0, or -1 on
 * OOM. Thread-safe; the secret stays in the instance.
 */
static int mock_sign(const mock_instance *inst, int64_t t, const char *body,
                     size_t len, char *out, size_t size)
{
    char ts[24], hex[65];
    uint8_t mac[32];
    int n = snprintf(ts, sizeof ts, "%lld", (long long)t);
    char *msg = malloc((size_t)n + 1 + len);

    if (msg == NULL)
        return -1;
    memcpy(msg, ts, (size_t)n);
    msg[n] = '.';
    if (len > 0)
        memcpy(msg + n + 1, body, len);
    inst->h->hmac_sha256(inst->secret, inst->secret_len, msg,
                         (size_t)n + 1 + len, mac);
    free(msg);
    mock_hex(hex, mac, sizeof mac);
    snprintf(out, size, "t=%s,v1=%s", ts, hex);
    return 0;
}

/*
 * POST one event through the instance's host. Returns 0 on a 2xx, else -1
 * with *status the HTTP status (0 for a transport error). Called by the
 * delivery thread WITHOUT mock_mu; the instance is pinned by
 * mock_w.inflight, so fini waits for this to return.
 *
 * host->http wants an arena for the response, and ABI 1.0 gives a module
 * no way to make one outside a call, so this passes NULL: the body is not
 * needed. A host that cannot copy the response without an arena returns
 * PAYD_E_NOMEM after filling res->status; the status still says whether
 * the event was delivered, so NOMEM with a 2xx counts as delivered.
 */
static int mock_deliver(const mock_instance *inst, const mock_job *j,
                        long *status)
{
    char sig[128];
    payd_header hdrs[3];
    payd_http_request rq;
    payd_http_response rs;
    payd_error err;
    int rc;

    *status = 0;
    if (mock_sign(inst, inst->h->now(inst->h), j->body, j->body_len, sig,
                  sizeof sig) != 0)
        return -1;
    hdrs[0].name = "Content-Type";
    hdrs[0].value = "application/json";
    hdrs[1].name = "Mock-Signature";
    hdrs[1].value = sig;
    hdrs[2].name = "User-Agent";
    hdrs[2].value = "payd-mock/" MOCK_VERSION;
    memset(&rq, 0, sizeof rq);
    memset(&rs, 0, sizeof rs);
    memset(&err, 0, sizeof err);
    rq.struct_size = (uint32_t)sizeof rq;
    rq.method = "POST";
    rq.url = inst->webhook_url;
    rq.headers = hdrs;
    rq.header_count = 3;
    rq.body = j->body;
    rq.body_len = j->body_len;
    rq.timeout_ms = MOCK_DELIVERY_TIMEOUT_MS;
    rs.struct_size = (uint32_t)sizeof rs;
    rc = inst->h->http(inst->h, &rq, &rs, NULL, &err);
    if (rc != PAYD_OK && rc != PAYD_E_NOMEM)
        return -1;
    *status = rs.status;
    return rs.status >= 200 && rs.status < 300 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The delivery thread                                                      */
/* ------------------------------------------------------------------------ */

static void mock_wait_until_locked(int64_t due_ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(due_ms / 1000);
    ts.tv_nsec = (long)(due_ms % 1000) * 1000000L;
    pthread_cond_timedwait(&mock_w.cv, &mock_mu, &ts);
}

/* Deliver one due event; returns with mock_mu held, the job requeued for a
 * retry or freed. */
static void mock_run_delivery_locked(mock_job *j)
{
    const mock_instance *inst = mock_instance_find_locked(j->account);
    long status = 0;
    int ok;

    if (inst == NULL || !inst->webhooks || inst->webhook_url == NULL) {
        mock_job_free(j);
        return;
    }
    mock_w.inflight = inst;
    pthread_mutex_unlock(&mock_mu);
    ok = mock_deliver(inst, j, &status) == 0;
    pthread_mutex_lock(&mock_mu);
    j->attempts++;
    if (!ok && j->attempts < MOCK_DELIVERY_ATTEMPTS && !mock_w.stopping) {
        inst->h->log(inst->h, PAYD_LOG_DEBUG,
                     "mock: webhook %s (%s) attempt %d failed (HTTP %ld), "
                     "retrying",
                     j->event_id, j->type, j->attempts, status);
        j->due_ms = mock_mono_ms() + mock_backoff_ms[j->attempts - 1];
        mock_job_insert_locked(j);
    } else {
        if (!ok)
            inst->h->log(inst->h, PAYD_LOG_WARN,
                         "mock: webhook %s (%s) dropped after %d attempts "
                         "(last HTTP %ld)",
                         j->event_id, j->type, j->attempts, status);
        mock_job_free(j);
    }
    mock_w.inflight = NULL;
    pthread_cond_broadcast(&mock_idle_cv);
}

/* The thread: run due jobs in order, sleep until the next one. */
static void *mock_webhooks_run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mock_mu);
    while (!mock_w.stopping) {
        mock_job *j = mock_w.head;

        if (j == NULL) {
            pthread_cond_wait(&mock_w.cv, &mock_mu);
            continue;
        }
        if (j->due_ms > mock_mono_ms()) {
            mock_wait_until_locked(j->due_ms);
            continue;
        }
        mock_job_unlink_locked(j);
        if (j->kind == MOCK_JOB_SETTLE) {
            mock_intents_settle_due_locked(j->ref);
            mock_job_free(j);
        } else {
            mock_run_delivery_locked(j);
        }
    }
    pthread_mutex_unlock(&mock_mu);
    return NULL;
}

/*
 * Start the delivery thread, with every signal blocked so the host's signal
 * handling is not disturbed. Called by the first init with mock_mu held.
 * Returns 0 or PAYD_E_INTERNAL.
 */
int mock_webhooks_start_locked(payd_error *e)
{
    pthread_condattr_t attr;
    sigset_t all, old;
    int rc;

    if (pthread_condattr_init(&attr) != 0)
        return payd_fail(e, PAYD_E_INTERNAL, "mock: pthread_condattr_init");
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&mock_w.cv, &attr);
    pthread_condattr_destroy(&attr);
    if (rc != 0)
        return payd_fail(e, PAYD_E_INTERNAL, "mock: pthread_cond_init");
    mock_w.stopping = 0;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&mock_w.thread, NULL, mock_webhooks_run, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&mock_w.cv);
        return payd_fail(e, PAYD_E_INTERNAL,
                         "mock: cannot start the webhook thread");
    }
    mock_w.running = 1;
    return PAYD_OK;
}

/*
 * Stop and join the thread and drop whatever is still queued. Called by the
 * last fini with mock_mu held; it releases mock_mu while joining (init and
 * fini are serialized by the caller, so nothing else starts meanwhile).
 */
void mock_webhooks_stop_locked(void)
{
    if (!mock_w.running)
        return;
    mock_w.stopping = 1;
    pthread_cond_broadcast(&mock_w.cv);
    pthread_mutex_unlock(&mock_mu);
    pthread_join(mock_w.thread, NULL);
    pthread_mutex_lock(&mock_mu);
    while (mock_w.head != NULL) {
        mock_job *j = mock_w.head;

        mock_job_unlink_locked(j);
        mock_job_free(j);
    }
    pthread_cond_destroy(&mock_w.cv);
    mock_w.running = 0;
    mock_w.stopping = 0;
}

/* Wait until the delivery thread no longer uses `inst` (it was already
 * unlinked, so it will not be picked again). Called with mock_mu held. */
void mock_webhooks_wait_idle_locked(const mock_instance *inst)
{
    while (mock_w.inflight == inst)
        pthread_cond_wait(&mock_idle_cv, &mock_mu);
}

/* ------------------------------------------------------------------------ */
/* Incoming webhooks                                                        */
/* ------------------------------------------------------------------------ */

#define MOCK_SIG_HEADER_MAX 1024
#define MOCK_SIG_MAX_V1 8

static int mock_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Verify a Mock-Signature header value against the raw body: strictly
 * "t=<1-12 digits>" once and one to eight "v1=<64 hex>", comma-separated,
 * no spaces inside; other lower-case schemes (v0=...) are ignored, as
 * Stripe does. Any v1 equal (constant-time) to HMAC(secret, "<t>.<body>")
 * passes, then |now - t| must be within the tolerance. Returns PAYD_OK,
 * PAYD_E_SIGNATURE (e says why) or PAYD_E_NOMEM. *t_out gets t.
 */
static int mock_verify(const mock_instance *inst, payd_arena *a,
                       const char *header, const char *body, size_t len,
                       int64_t *t_out, payd_error *e)
{
    const payd_host *h = inst->h;
    uint8_t sigs[MOCK_SIG_MAX_V1][32], mac[32];
    size_t hlen = strnlen(header, MOCK_SIG_HEADER_MAX + 1), nsig = 0, i;
    const char *p = header, *end, *ts = NULL;
    size_t tslen = 0;
    int64_t t = 0, now, skew;
    int match = 0;
    char *msg;

    if (hlen > MOCK_SIG_HEADER_MAX)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Mock-Signature header too long");
    end = header + hlen;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (p == end)
        goto malformed;
    for (;;) {
        const char *item_end = memchr(p, ',', (size_t)(end - p));
        const char *eq, *k, *v;
        size_t klen, vlen;

        if (item_end == NULL)
            item_end = end;
        eq = memchr(p, '=', (size_t)(item_end - p));
        if (eq == NULL || eq == p || eq + 1 == item_end)
            goto malformed;
        k = p;
        klen = (size_t)(eq - p);
        v = eq + 1;
        vlen = (size_t)(item_end - v);
        for (i = 0; i < klen; i++)
            if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9')))
                goto malformed;
        if (klen == 1 && k[0] == 't') {
            if (ts != NULL || vlen > 12)
                goto malformed;
            for (i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9')
                    goto malformed;
                t = t * 10 + (v[i] - '0');
            }
            ts = v;
            tslen = vlen;
        } else if (klen == 2 && k[0] == 'v' && k[1] == '1') {
            if (vlen != 64 || nsig == MOCK_SIG_MAX_V1)
                goto malformed;
            for (i = 0; i < 32; i++) {
                int hi = mock_hexval(v[2 * i]), lo = mock_hexval(v[2 * i + 1]);

                if (hi < 0 || lo < 0)
                    goto malformed;
                sigs[nsig][i] = (uint8_t)(hi << 4 | lo);
            }
            nsig++;
        } else {
            for (i = 0; i < vlen; i++)
                if (v[i] <= ' ' || v[i] > '~')
                    goto malformed;
        }
        if (item_end == end)
            break;
        p = item_end + 1;
    }
    if (ts == NULL || nsig == 0)
        goto malformed;

    msg = h->alloc(a, tslen + 1 + len + 1);
    if (msg == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    memcpy(msg, ts, tslen);
    msg[tslen] = '.';
    if (len > 0)
        memcpy(msg + tslen + 1, body, len);
    h->hmac_sha256(inst->secret, inst->secret_len, msg, tslen + 1 + len, mac);
    for (i = 0; i < nsig; i++)
        match |= h->equal_ct(sigs[i], mac, sizeof mac);
    h->cleanse(mac, sizeof mac);
    if (!match)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Mock-Signature: no v1 signature matches the body");
    now = h->now(h);
    skew = now > t ? now - t : t - now;
    if (skew > inst->tolerance_s)
        return payd_fail(e, PAYD_E_SIGNATURE,
                         "Mock-Signature timestamp is %lld s away from now "
                         "(tolerance %lld s)",
                         (long long)skew, (long long)inst->tolerance_s);
    *t_out = t;
    return PAYD_OK;
malformed:
    return payd_fail(e, PAYD_E_SIGNATURE,
                     "malformed Mock-Signature header (expected "
                     "t=<unix>,v1=<64 hex>)");
}

static const struct {
    const char *name;
    int type;
} mock_event_types[] = {
    {"payment.succeeded", PAYD_EV_PAYMENT_SUCCEEDED},
    {"payment.failed", PAYD_EV_PAYMENT_FAILED},
    {"payment.capturable", PAYD_EV_PAYMENT_CAPTURABLE},
    {"payment.canceled", PAYD_EV_PAYMENT_CANCELED},
    {"payment.requires_action", PAYD_EV_PAYMENT_REQUIRES_ACTION},
    {"payment.processing", PAYD_EV_PAYMENT_PROCESSING},
    {"refund.succeeded", PAYD_EV_REFUND_SUCCEEDED},
    {"refund.failed", PAYD_EV_REFUND_FAILED},
    {"dispute.created", PAYD_EV_DISPUTE_CREATED},
    {"dispute.closed", PAYD_EV_DISPUTE_CLOSED},
    {"payment_method.attached", PAYD_EV_METHOD_ATTACHED},
};

static int mock_event_type(const char *name)
{
    size_t i;

    for (i = 0; i < sizeof mock_event_types / sizeof mock_event_types[0]; i++)
        if (strcmp(name, mock_event_types[i].name) == 0)
            return mock_event_types[i].type;
    return PAYD_EV_IGNORED;
}

/*
 * webhook op: verify the signature of a raw incoming request, then parse
 * and normalize the event. Returns PAYD_OK (res filled, strings in the
 * arena), PAYD_E_SIGNATURE (missing, malformed, wrong or stale signature;
 * nothing parsed), PAYD_E_INVALID (signed but not a usable event) or
 * PAYD_E_NOMEM. Thread-safe: reads only the immutable instance.
 */
int mock_webhook(void *state, const payd_webhook_req *req_in, payd_event *res,
                 payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_webhook_req req;
    payd_event out;
    mock_json_event ev;
    const char *sig = NULL;
    const char *body;
    int64_t t = 0;
    size_t i;
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    body = req.body != NULL ? req.body : "";
    if (req.body == NULL && req.body_len != 0)
        return payd_fail(e, PAYD_E_INVALID, "webhook body missing");
    if (req.body_len > MOCK_WEBHOOK_BODY_MAX)
        return payd_fail(e, PAYD_E_INVALID, "webhook body too large");
    for (i = 0; req.headers != NULL && i < req.header_count; i++) {
        const payd_header *hd = &req.headers[i];

        if (hd->name == NULL || hd->value == NULL ||
            strcasecmp(hd->name, "Mock-Signature") != 0)
            continue;
        if (sig != NULL)
            return payd_fail(e, PAYD_E_SIGNATURE,
                             "more than one Mock-Signature header");
        sig = hd->value;
    }
    if (sig == NULL)
        return payd_fail(e, PAYD_E_SIGNATURE, "missing Mock-Signature header");
    rc = mock_verify(inst, a, sig, body, req.body_len, &t, e);
    if (rc != PAYD_OK)
        return rc;
    rc = mock_json_parse_event(inst->h, a, body, req.body_len, &ev, e);
    if (rc != PAYD_OK)
        return rc;

    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.type = mock_event_type(ev.type);
    out.provider_event_id = ev.id;
    out.provider_type = ev.type;
    out.payment_id = ev.payment_id;
    out.provider_ref = ev.provider_ref;
    out.refund_ref = ev.refund_ref;
    out.refund_id = ev.refund_id;
    out.amount = ev.amount;
    out.currency = ev.currency;
    out.occurred_at = ev.created >= 0 ? ev.created : t;
    out.failure_code = ev.failure_code;
    out.failure_message = ev.failure_message;
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}
