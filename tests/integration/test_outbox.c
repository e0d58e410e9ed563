/*
 * test_outbox.c - notifications out: the outbox dispatcher with the
 * `webhook` and `smtp` notifier modules, against a real payd, PostgreSQL
 * and local receivers the test starts (tests/fakes/hook_receiver and
 * tests/fakes/smtp_sink).
 *
 * What is guarded:
 *   - a receiver gets a correctly signed order.paid after a mock checkout
 *     (the test checks Payd-Signature = HMAC-SHA256(secret, "t.body")
 *     itself), whose id and type are those of GET /v1/events, and a
 *     notifier gets only the event types it subscribed to;
 *   - with the receiver down, a delivery is retried on the configured
 *     schedule, then dead-lettered with its last error; an admin replay
 *     delivers it exactly once when the receiver is back; 5xx is retried,
 *     4xx is final;
 *   - two payd processes on one database deliver each event exactly once;
 *   - the smtp notifier mails the order confirmation and the refund notice
 *     to the order's customer, with the order number and the amounts
 *     formatted by currency.
 *
 * Each test starts its own payd (and fakes), so their configs differ and a
 * failure in one cannot leak deliveries into another; the teardown stops
 * whatever a failed test left running.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define POLL_MS 15000
#define SHOP_SECRET "shop_hook_secret_7f3a"
#define REFUND_SECRET "refund_hook_secret_91bc"

/* ------------------------------------------------------------------------ */
/* Generic helpers.                                                         */
/* ------------------------------------------------------------------------ */

static const char *jstr(json_t *v, const char *path)
{
    return json_string_value(h_jpath(v, path));
}



static long long sql_int(const h_payd *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long sql_int(const h_payd *p, const char *fmt, ...)
{
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    return h_sql_int(p->db_url, q, LLONG_MIN);
}

static void sql_str(const h_payd *p, char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sql_str(const h_payd *p, char *out, size_t len, const char *fmt, ...)
{
    char q[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    char *v = h_sql_value(p->db_url, q);
    snprintf(out, len, "%s", v ? v : "");
    free(v);
}

/* ------------------------------------------------------------------------ */
/* Processes: payd and the fakes, stopped by the teardown if a test fails.  */
/* ------------------------------------------------------------------------ */

typedef struct fake {
    pid_t pid;
    int port;
    char dir[PATH_MAX];       /* what it writes: <n>.http or <n>.eml */
    char log[PATH_MAX + 16];  /* its stdout and stderr */
    h_payd http;              /* only base_url is used: to query it */
} fake;

#define MAX_PAYDS 4
#define MAX_FAKES 4
static h_payd payds[MAX_PAYDS];
static int payd_count;
static fake fakes[MAX_FAKES];
static int fake_count;

/* Starts payd with `o`; a slot that the teardown stops. */
static h_payd *payd_start(const h_payd_opts *o)
{
    assert_true(payd_count < MAX_PAYDS);
    h_payd *p = &payds[payd_count];
    assert_int_equal(h_payd_start(p, o), 0);
    payd_count++;
    return p;
}

/* Stops payd and asserts a clean exit without sanitizer reports. */
static void payd_stop_clean(h_payd *p)
{
    assert_int_equal(h_payd_stop(p), 0);
    assert_int_equal(h_log_contains(p, "AddressSanitizer"), 0);
    assert_int_equal(h_log_contains(p, "runtime error:"), 0);
}

/* Stops a fake: SIGTERM, then SIGKILL after 5 s. Returns its exit status
 * (or -1 when it had to be killed). */
static int fake_stop(fake *f)
{
    if (f->pid <= 0) return 0;
    kill(f->pid, SIGTERM);
    int64_t deadline = h_now_ms() + 5000;
    int status = 0;
    while (h_now_ms() < deadline) {
        pid_t w = waitpid(f->pid, &status, WNOHANG);
        if (w == f->pid) {
            f->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        h_sleep_ms(20);
    }
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    f->pid = 0;
    return -1;
}

/*
 * Starts $PAYD_BUILD/fakes/<name> PORT DIR [args...] with its output in a
 * log file, and waits (at most 10 s) until it says it is listening. The
 * fake dies with this process (PR_SET_PDEATHSIG) and on its own after
 * --max-seconds.
 */
static fake *fake_start(const char *name, int port, const char *const args[])
{
    assert_true(fake_count < MAX_FAKES);
    fake *f = &fakes[fake_count];
    memset(f, 0, sizeof *f);
    f->port = port;
    char dir[PATH_MAX];
    assert_int_equal(h_tmpdir(dir, sizeof dir), 0);
    snprintf(f->dir, sizeof f->dir, "%s", dir);
    snprintf(f->log, sizeof f->log, "%s.log", dir);
    snprintf(f->http.base_url, sizeof f->http.base_url, "http://127.0.0.1:%d", port);
    char bin[PATH_MAX], ports[16];
    snprintf(bin, sizeof bin, "%s/fakes/%s", h_env("PAYD_BUILD"), name);
    snprintf(ports, sizeof ports, "%d", port);
    const char *argv[16];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = ports;
    argv[n++] = f->dir;
    for (int i = 0; args && args[i] && n < 13; i++) argv[n++] = args[i];
    argv[n++] = "--max-seconds";
    argv[n++] = "240";
    argv[n] = NULL;

    int logfd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(logfd >= 0);
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    f->pid = pid;
    fake_count++;
    printf("# %s log: %s\n", name, f->log);
    fflush(stdout);

    int64_t deadline = h_now_ms() + 10000;
    while (h_now_ms() < deadline) {
        char *text = h_read_file(f->log, NULL);
        int up = text && strstr(text, "listening on") != NULL;
        free(text);
        if (up) return f;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            f->pid = 0;
            fail_msg("%s exited with status %d before listening (see %s)", name,
                     WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), f->log);
        }
        h_sleep_ms(20);
    }
    fail_msg("%s did not listen on port %d within 10 s (see %s)", name, port, f->log);
    return NULL;
}

static fake *receiver_start(int port, const char *const args[])
{
    return fake_start("hook_receiver", port, args);
}

static int setup_each(void **state)
{
    (void)state;
    payd_count = 0;
    fake_count = 0;
    return 0;
}

static int teardown_each(void **state)
{
    (void)state;
    for (int i = 0; i < payd_count; i++) h_payd_stop(&payds[i]);
    for (int i = 0; i < fake_count; i++) fake_stop(&fakes[i]);
    payd_count = fake_count = 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The receiver.                                                            */
/* ------------------------------------------------------------------------ */

/* GET /_count: POSTs received so far. */
static long receiver_count(const fake *f)
{
    h_resp r;
    long n = -1;
    if (h_get(&f->http, "/_count", NULL, &r) == 0 && r.status == 200) n = strtol(r.body, NULL, 10);
    h_resp_free(&r);
    return n;
}

/* Polls until the receiver has at least `want` POSTs (at most timeout_ms). */
static long receiver_wait(const fake *f, long want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    long n;
    while ((n = receiver_count(f)) < want && h_now_ms() < deadline) h_sleep_ms(50);
    return n;
}

/* GET /_events: every POST in arrival order (caller json_decref's). */
static json_t *receiver_events(const fake *f)
{
    h_resp r;
    assert_int_equal(h_get(&f->http, "/_events", NULL, &r), 0);
    EXPECT_STATUS(&r, 200);
    assert_true(json_is_array(r.json));
    json_t *a = json_incref(r.json);
    h_resp_free(&r);
    return a;
}

/*
 * 1 when `sig` ("t=<unix>,v1=<hex>[,v1=...]") holds an HMAC-SHA256 of
 * "<t>.<body>" under `secret`, compared in constant time, and t is within
 * 300 s of now. *t_out gets t.
 */
static int signature_valid(const char *sig, const char *body, size_t body_len, const char *secret,
                           long long *t_out)
{
    if (!sig) return 0;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", sig);
    const char *t = NULL;
    const char *v1[8];
    int nv1 = 0;
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ') item++;
        if (strncmp(item, "t=", 2) == 0) {
            if (t) return 0;
            t = item + 2;
        } else if (strncmp(item, "v1=", 3) == 0 && nv1 < 8) {
            v1[nv1++] = item + 3;
        }
    }
    if (!t || !*t || strspn(t, "0123456789") != strlen(t) || nv1 == 0) return 0;
    long long ts = strtoll(t, NULL, 10);
    if (t_out) *t_out = ts;
    long long skew = (long long)time(NULL) - ts;
    if (skew > 300 || skew < -300) return 0;

    size_t tl = strlen(t);
    unsigned char *msg = malloc(tl + 1 + body_len);
    assert_non_null(msg);
    memcpy(msg, t, tl);
    msg[tl] = '.';
    memcpy(msg + tl + 1, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, tl + 1 + body_len, mac, &mac_len);
    free(msg);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned int i = 0; i < mac_len; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    int ok = 0;
    for (int i = 0; i < nv1; i++)
        ok |= strlen(v1[i]) == 2 * mac_len && CRYPTO_memcmp(v1[i], hex, 2 * mac_len) == 0;
    return ok;
}

/* Asserts that receiver record `e` is a delivery of event `event_id` of
 * `type` to `path`, signed with `secret`; returns its parsed body. */
static json_t *expect_delivery_at(json_t *e, const char *path, const char *type, const char *secret,
                                  const char *file, int line)
{
    h_expect_str_at(jstr(e, "path"), path, "delivery path", file, line);
    h_expect_str_at(jstr(e, "content_type"), "application/json", "Content-Type", file, line);
    h_expect_str_at(jstr(e, "event_type"), type, "Payd-Event-Type", file, line);
    const char *body = jstr(e, "body");
    if (!body) {
        print_error("delivery without a body\n");
        _fail(file, line);
    }
    if (!signature_valid(jstr(e, "signature"), body, strlen(body), secret, NULL)) {
        print_error("Payd-Signature \"%s\" does not verify over the body with the notifier's secret:\n%s\n",
                    jstr(e, "signature") ? jstr(e, "signature") : "(none)", body);
        _fail(file, line);
    }
    json_t *doc = json_loads(body, 0, NULL);
    if (!doc) {
        print_error("delivery body is not JSON: %s\n", body);
        _fail(file, line);
    }
    h_expect_str_at(jstr(doc, "type"), type, "body.type", file, line);
    h_expect_str_at(jstr(doc, "object"), "event", "body.object", file, line);
    /* The header a receiver dedups on is the body's id. */
    h_expect_str_at(jstr(e, "event_id"), jstr(doc, "id"), "Payd-Event-Id", file, line);
    return doc;
}
#define EXPECT_DELIVERY(e, path, type, secret) expect_delivery_at((e), (path), (type), (secret), __FILE__, __LINE__)

/* ------------------------------------------------------------------------ */
/* Checkout.                                                                */
/* ------------------------------------------------------------------------ */

/* A paid order (pm_card_visa on the default gateway) from `body`; copies
 * the order and payment ids. Thread-safe; returns 0 or -1. */
static int checkout_body(const h_payd *p, const char *body, char order[64], char pay_id[64])
{
    h_resp r;
    int ok = h_post_json(p, "/v1/orders", p->merchant_auth, NULL, body, &r) == 0 && r.status == 201 &&
             h_json_str(&r, "id");
    if (ok) snprintf(order, 64, "%s", h_json_str(&r, "id"));
    else fprintf(stderr, "# order: %ld %s\n", r.status, r.body ? r.body : r.error);
    h_resp_free(&r);
    if (!ok) return -1;
    char pbody[256];
    snprintf(pbody, sizeof pbody, "{\"order\":\"%s\",\"payment_method\":\"pm_card_visa\",\"confirm\":true}", order);
    ok = h_post_json(p, "/v1/payments", p->merchant_auth, NULL, pbody, &r) == 0 && r.status == 201 &&
         h_json_str(&r, "status") && strcmp(h_json_str(&r, "status"), "succeeded") == 0;
    if (ok) snprintf(pay_id, 64, "%s", h_json_str(&r, "id"));
    else fprintf(stderr, "# payment: %ld %s\n", r.status, r.body ? r.body : r.error);
    h_resp_free(&r);
    return ok ? 0 : -1;
}

static void checkout(const h_payd *p, long long total, char order[64], char pay_id[64])
{
    char body[256];
    snprintf(body, sizeof body,
             "{\"currency\":\"USD\",\"customer_email\":\"buyer@example.com\","
             "\"items\":[{\"name\":\"Lamp\",\"quantity\":1,\"unit_amount\":%lld}]}",
             total);
    assert_int_equal(checkout_body(p, body, order, pay_id), 0);
}

/* The id of the one event of `type` about `object_id`, via GET /v1/events. */
static void event_id_of(const h_payd *p, const char *object_id, const char *type, char out[64], long long *created)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/events?object_id=%s&type=%s", object_id, type);
    h_resp r;
    assert_int_equal(h_get(p, path, p->merchant_auth, &r), 0);
    EXPECT_STATUS(&r, 200);
    assert_int_equal(json_array_size(h_jpath(r.json, "data")), 1);
    snprintf(out, 64, "%s", h_rstr(&r, "data.0.id"));
    if (created) *created = h_rint(&r, "data.0.created");
    h_resp_free(&r);
}

/* The outbox config every test uses, plus notifier sections. */
#define OUTBOX_FAST                                                                               \
    "[outbox]\n"                                                                                  \
    "threads = 2\n"                                                                               \
    "poll_ms = 50\n"                                                                              \
    "retry_schedule = 1,1,1\n"                                                                    \
    "max_attempts = 3\n"                                                                          \
    "[gateway.mock]\n"                                                                            \
    "module = mock\n"                                                                             \
    "webhook_secret = whsec_test\n"                                                               \
    "webhooks = off\n"                                                                            \
    "[routing]\n"                                                                                 \
    "default = mock\n"

/* Polls the outbox row `id` until its state is `want`; 1 when reached. */
static int outbox_wait_state(const h_payd *p, const char *id, const char *want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    char st[32];
    do {
        sql_str(p, st, sizeof st, "SELECT state FROM outbox WHERE id = %s", id);
        if (strcmp(st, want) == 0) return 1;
        h_sleep_ms(25);
    } while (h_now_ms() < deadline);
    return 0;
}

/* The admin list of deliveries in `state`: the entry for delivery `dlv`
 * (a new reference, or NULL when absent). */
static json_t *admin_delivery(const h_payd *p, const char *state, const char *dlv)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/admin/outbox?state=%s&limit=100", state);
    h_resp r;
    assert_int_equal(h_get(p, path, p->admin_auth, &r), 0);
    EXPECT_STATUS(&r, 200);
    json_t *found = NULL, *data = h_jpath(r.json, "data"), *it;
    size_t i;
    assert_true(json_is_array(data));
    json_array_foreach(data, i, it) {
        EXPECT_STR(jstr(it, "state"), state);
        if (jstr(it, "id") && strcmp(jstr(it, "id"), dlv) == 0) found = json_incref(it);
    }
    h_resp_free(&r);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Tests: signed delivery and subscriptions.                                */
/* ------------------------------------------------------------------------ */

static void test_receiver_gets_signed_order_paid_matching_the_event_stream(void **state)
{
    (void)state;
    int port = h_free_port();
    assert_true(port > 0);
    fake *rcv = receiver_start(port, NULL);
    char extra[2048];
    snprintf(extra, sizeof extra,
             OUTBOX_FAST "[notifier.shop]\n"
                         "module = webhook\n"
                         "url = http://127.0.0.1:%d/hooks/shop\n"
                         "secret = " SHOP_SECRET "\n"
                         "timeout_ms = 3000\n"
                         "events = order.paid\n"
                         "[notifier.refunds]\n"
                         "module = webhook\n"
                         "url = http://127.0.0.1:%d/hooks/refunds\n"
                         "secret = " REFUND_SECRET "\n"
                         "events = refund.succeeded\n",
             port, port);
    h_payd_opts o = {.extra = extra};
    h_payd *p = payd_start(&o);

    char order[64], pay_id[64], evt[64];
    long long created = 0;
    checkout(p, 2599, order, pay_id);
    event_id_of(p, order, "order.paid", evt, &created);

    assert_int_equal(receiver_wait(rcv, 1, POLL_MS), 1);
    /* order.created and payment.succeeded are nobody's subscription. */
    h_sleep_ms(500);
    assert_int_equal(receiver_count(rcv), 1);
    json_t *evs = receiver_events(rcv);
    json_t *e = json_array_get(evs, 0);
    json_t *doc = EXPECT_DELIVERY(e, "/hooks/shop", "order.paid", SHOP_SECRET);
    /* Not signed with the other notifier's secret. */
    const char *raw = jstr(e, "body");
    assert_false(signature_valid(jstr(e, "signature"), raw, strlen(raw), REFUND_SECRET, NULL));
    EXPECT_STR(jstr(e, "attempt"), "1");
    /* The body is the event GET /v1/events lists. */
    EXPECT_STR(jstr(doc, "id"), evt);
    EXPECT_STR(jstr(doc, "object_type"), "order");
    EXPECT_STR(jstr(doc, "object_id"), order);
    EXPECT_STR(jstr(doc, "order_id"), order);
    assert_int_equal(json_integer_value(h_jpath(doc, "created")), created);
    EXPECT_STR(jstr(doc, "data.object.id"), order);
    EXPECT_STR(jstr(doc, "data.object.status"), "paid");
    EXPECT_STR(jstr(doc, "data.object.customer_email"), "buyer@example.com");
    assert_int_equal(json_integer_value(h_jpath(doc, "data.object.total")), 2599);
    json_decref(doc);
    json_decref(evs);

    /* One delivery row for the subscriber, none for the other notifier. */
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE event_id = '%s'", evt), 1);
    char dlv_num[32], dlv[40];
    sql_str(p, dlv_num, sizeof dlv_num, "SELECT id FROM outbox WHERE event_id = '%s' AND notifier = 'shop'", evt);
    assert_true(dlv_num[0] != '\0');
    assert_true(outbox_wait_state(p, dlv_num, "delivered", 5000));
    assert_int_equal(sql_int(p, "SELECT attempts FROM outbox WHERE id = %s", dlv_num), 1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'refunds'"), 0);
    snprintf(dlv, sizeof dlv, "dlv_%s", dlv_num);
    json_t *listed = admin_delivery(p, "delivered", dlv);
    assert_non_null(listed);
    EXPECT_STR(jstr(listed, "event_id"), evt);
    EXPECT_STR(jstr(listed, "event_type"), "order.paid");
    EXPECT_STR(jstr(listed, "notifier"), "shop");
    assert_int_equal(json_integer_value(h_jpath(listed, "attempts")), 1);
    json_decref(listed);

    /* A refund goes to the refunds notifier only. */
    h_resp r;
    char body[256];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":599}", pay_id);
    assert_int_equal(h_post_json(p, "/v1/refunds", p->merchant_auth, NULL, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    char refund_id[64];
    snprintf(refund_id, sizeof refund_id, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
    char revt[64];
    event_id_of(p, refund_id, "refund.succeeded", revt, NULL);
    assert_int_equal(receiver_wait(rcv, 2, POLL_MS), 2);
    h_sleep_ms(500);
    assert_int_equal(receiver_count(rcv), 2);
    evs = receiver_events(rcv);
    doc = EXPECT_DELIVERY(json_array_get(evs, 1), "/hooks/refunds", "refund.succeeded", REFUND_SECRET);
    EXPECT_STR(jstr(doc, "id"), revt);
    EXPECT_STR(jstr(doc, "object_id"), refund_id);
    EXPECT_STR(jstr(doc, "data.object.id"), refund_id);
    /* Events about a refund carry the order too. */
    EXPECT_STR(jstr(doc, "data.order.id"), order);
    json_decref(doc);
    json_decref(evs);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE event_id = '%s'", revt), 1);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'shop'"), 1);

    payd_stop_clean(p);
    fake_stop(rcv);
}

/* ------------------------------------------------------------------------ */
/* Tests: retries, dead letters, replay.                                    */
/* ------------------------------------------------------------------------ */

static void test_down_receiver_is_retried_on_schedule_then_dead_lettered_and_replay_delivers_once(void **state)
{
    (void)state;
    int port = h_free_port(); /* nothing listens here yet */
    assert_true(port > 0);
    char extra[2048];
    snprintf(extra, sizeof extra,
             OUTBOX_FAST "[notifier.shop]\n"
                         "module = webhook\n"
                         "url = http://127.0.0.1:%d/hooks/shop\n"
                         "secret = " SHOP_SECRET "\n"
                         "timeout_ms = 2000\n"
                         "events = order.paid\n",
             port);
    h_payd_opts o = {.extra = extra};
    h_payd *p = payd_start(&o);

    char order[64], pay_id[64], evt[64], id[32];
    checkout(p, 1999, order, pay_id);
    event_id_of(p, order, "order.paid", evt, NULL);
    sql_str(p, id, sizeof id, "SELECT id FROM outbox WHERE event_id = '%s' AND notifier = 'shop'", evt);
    assert_true(id[0] != '\0');

    /* Watch the attempts: 1, then about 1 s later 2, then 3, then dead. */
    int64_t seen_at[4] = {0, 0, 0, 0}, dead_at = 0, deadline = h_now_ms() + POLL_MS;
    long long max_attempts_seen = 0;
    while (!dead_at && h_now_ms() < deadline) {
        PGresult *res;
        char q[256];
        snprintf(q, sizeof q, "SELECT attempts, state FROM outbox WHERE id = %s", id);
        res = h_sql(p->db_url, q);
        assert_non_null(res);
        assert_int_equal(PQntuples(res), 1);
        long long attempts = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        int dead = strcmp(PQgetvalue(res, 0, 1), "dead") == 0;
        assert_string_not_equal(PQgetvalue(res, 0, 1), "delivered");
        PQclear(res);
        int64_t now = h_now_ms();
        if (attempts > max_attempts_seen) max_attempts_seen = attempts;
        for (long long k = 1; k <= attempts && k <= 3; k++)
            if (!seen_at[k]) seen_at[k] = now;
        if (dead) dead_at = now;
        else h_sleep_ms(10);
    }
    assert_true(dead_at != 0);
    assert_int_equal(max_attempts_seen, 3);
    assert_int_equal(sql_int(p, "SELECT attempts FROM outbox WHERE id = %s", id), 3);
    /* retry_schedule = 1,1,1 with +-20% jitter: each wait 0.8..1.2 s. */
    int64_t gap1 = seen_at[2] - seen_at[1], gap2 = seen_at[3] - seen_at[2];
    print_message("# attempts at +0, +%lld, +%lld ms; dead at +%lld ms\n", (long long)gap1,
                  (long long)(gap1 + gap2), (long long)(dead_at - seen_at[1]));
    assert_true(gap1 >= 700 && gap1 <= 3000);
    assert_true(gap2 >= 700 && gap2 <= 3000);
    assert_true(dead_at - seen_at[3] <= 2000); /* the third failure is final */

    /* The admin sees it among the dead, with why. */
    char dlv[40];
    snprintf(dlv, sizeof dlv, "dlv_%s", id);
    json_t *d = admin_delivery(p, "dead", dlv);
    assert_non_null(d);
    EXPECT_STR(jstr(d, "event_id"), evt);
    EXPECT_STR(jstr(d, "event_type"), "order.paid");
    EXPECT_STR(jstr(d, "notifier"), "shop");
    assert_int_equal(json_integer_value(h_jpath(d, "attempts")), 3);
    const char *last_error = jstr(d, "last_error");
    assert_non_null(last_error);
    assert_true(strlen(last_error) > 0);
    assert_null(strstr(last_error, SHOP_SECRET));
    json_decref(d);
    d = admin_delivery(p, "pending", dlv);
    assert_null(d);

    /* The receiver comes back: a dead delivery stays dead by itself. */
    fake *rcv = receiver_start(port, NULL);
    h_sleep_ms(1500);
    assert_int_equal(receiver_count(rcv), 0);

    /* Only an admin can replay. */
    h_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/admin/outbox/%s/replay", dlv);
    assert_int_equal(h_post_json(p, path, p->merchant_auth, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 403);
    h_resp_free(&r);
    assert_int_equal(h_post_json(p, path, p->admin_auth, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "id"), dlv);
    EXPECT_STR(h_rstr(&r, "event_id"), evt);
    EXPECT_STR(h_rstr(&r, "state"), "pending");
    h_resp_free(&r);

    assert_int_equal(receiver_wait(rcv, 1, POLL_MS), 1);
    assert_true(outbox_wait_state(p, id, "delivered", 5000));
    h_sleep_ms(700);
    assert_int_equal(receiver_count(rcv), 1);
    json_t *evs = receiver_events(rcv);
    json_t *doc = EXPECT_DELIVERY(json_array_get(evs, 0), "/hooks/shop", "order.paid", SHOP_SECRET);
    EXPECT_STR(jstr(doc, "id"), evt);
    json_decref(doc);
    json_decref(evs);
    d = admin_delivery(p, "delivered", dlv);
    assert_non_null(d);
    json_decref(d);
    d = admin_delivery(p, "dead", dlv);
    assert_null(d);

    /* Delivered is final: replaying it again is refused; unknown ids are 404. */
    assert_int_equal(h_post_json(p, path, p->admin_auth, NULL, NULL, &r), 0);
    EXPECT_ERROR(&r, 409, "invalid_request_error", "delivery_already_delivered", NULL);
    h_resp_free(&r);
    assert_int_equal(h_post_json(p, "/v1/admin/outbox/dlv_987654321/replay", p->admin_auth, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 404);
    h_resp_free(&r);
    assert_int_equal(h_post_json(p, "/v1/admin/outbox/evt_nonsense/replay", p->admin_auth, NULL, NULL, &r), 0);
    EXPECT_STATUS(&r, 404);
    h_resp_free(&r);
    assert_int_equal(h_get(p, "/v1/admin/outbox?state=bogus", p->admin_auth, &r), 0);
    EXPECT_ERROR(&r, 400, "invalid_request_error", "parameter_invalid", NULL);
    h_resp_free(&r);
    assert_int_equal(receiver_count(rcv), 1);

    payd_stop_clean(p);
    fake_stop(rcv);
}

static void test_5xx_is_retried_until_accepted_and_4xx_is_dead_at_once(void **state)
{
    (void)state;
    int flaky_port = h_free_port(), strict_port = h_free_port();
    assert_true(flaky_port > 0 && strict_port > 0 && flaky_port != strict_port);
    const char *flaky_args[] = {"--fail-first", "2", "--status", "503", NULL};
    const char *strict_args[] = {"--status", "400", NULL};
    fake *flaky = receiver_start(flaky_port, flaky_args);
    fake *strict = receiver_start(strict_port, strict_args);
    char extra[2048];
    snprintf(extra, sizeof extra,
             OUTBOX_FAST "[notifier.flaky]\n"
                         "module = webhook\n"
                         "url = http://127.0.0.1:%d/hooks\n"
                         "secret = " SHOP_SECRET "\n"
                         "events = order.paid\n"
                         "[notifier.strict]\n"
                         "module = webhook\n"
                         "url = http://127.0.0.1:%d/hooks\n"
                         "secret = " SHOP_SECRET "\n"
                         "events = *\n",
             flaky_port, strict_port);
    h_payd_opts o = {.extra = extra};
    h_payd *p = payd_start(&o);

    char order[64], pay_id[64], evt[64], flaky_id[32], strict_id[32];
    checkout(p, 1234, order, pay_id);
    event_id_of(p, order, "order.paid", evt, NULL);
    sql_str(p, flaky_id, sizeof flaky_id, "SELECT id FROM outbox WHERE event_id = '%s' AND notifier = 'flaky'", evt);
    sql_str(p, strict_id, sizeof strict_id, "SELECT id FROM outbox WHERE event_id = '%s' AND notifier = 'strict'",
            evt);
    assert_true(flaky_id[0] && strict_id[0]);
    /* `events = *` subscribes to everything: order.created, payment.succeeded too. */
    assert_true(sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'strict'") >= 3);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'flaky'"), 1);

    /* 503, 503, then 200: delivered on the third attempt. */
    assert_true(outbox_wait_state(p, flaky_id, "delivered", POLL_MS));
    assert_int_equal(sql_int(p, "SELECT attempts FROM outbox WHERE id = %s", flaky_id), 3);
    assert_int_equal(receiver_count(flaky), 3);
    json_t *evs = receiver_events(flaky);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(evs, i);
        json_t *doc = EXPECT_DELIVERY(e, "/hooks", "order.paid", SHOP_SECRET);
        EXPECT_STR(jstr(doc, "id"), evt);
        json_decref(doc);
        char want[8];
        snprintf(want, sizeof want, "%zu", i + 1);
        EXPECT_STR(jstr(e, "attempt"), want);
        assert_int_equal(json_integer_value(h_jpath(e, "status")), i < 2 ? 503 : 200);
    }
    json_decref(evs);

    /* 400 is the receiver saying no: dead after one attempt. */
    assert_true(outbox_wait_state(p, strict_id, "dead", POLL_MS));
    assert_int_equal(sql_int(p, "SELECT attempts FROM outbox WHERE id = %s", strict_id), 1);
    char last_error[512];
    sql_str(p, last_error, sizeof last_error, "SELECT last_error FROM outbox WHERE id = %s", strict_id);
    EXPECT_CONTAINS(last_error, "400");
    int64_t deadline = h_now_ms() + POLL_MS;
    while (sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'strict' AND state = 'pending'") > 0 &&
           h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'strict' AND attempts <> 1"), 0);
    assert_int_equal(receiver_count(strict),
                     sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'strict'"));

    payd_stop_clean(p);
    fake_stop(flaky);
    fake_stop(strict);
}

/* ------------------------------------------------------------------------ */
/* Tests: two payd processes on one database.                               */
/* ------------------------------------------------------------------------ */

#define SHARED_ORDERS 40
#define CLIENTS 8

typedef struct client {
    const h_payd *p;
    int index;
    int failures;
    char orders[SHARED_ORDERS][64];
    int count;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    for (int i = c->index; i < SHARED_ORDERS; i += CLIENTS) {
        char body[256], order[64], pay_id[64];
        snprintf(body, sizeof body,
                 "{\"currency\":\"USD\",\"items\":[{\"name\":\"Cup %d\",\"quantity\":1,\"unit_amount\":%d}]}", i,
                 1000 + i);
        if (checkout_body(c->p, body, order, pay_id) == 0) snprintf(c->orders[c->count++], 64, "%s", order);
        else c->failures++;
    }
    return NULL;
}

static void test_two_payd_processes_on_one_database_deliver_each_event_exactly_once(void **state)
{
    (void)state;
    int port = h_free_port();
    assert_true(port > 0);
    /* A slow receiver keeps claims overlapping between the processes. */
    const char *args[] = {"--delay-ms", "30", NULL};
    fake *rcv = receiver_start(port, args);
    char extra_a[2048], extra_b[2048];
    const char *fmt = "[outbox]\n"
                      "threads = 4\n"
                      "poll_ms = 10\n"
                      "[gateway.mock]\n"
                      "module = mock\n"
                      "webhook_secret = whsec_shared\n"
                      "webhooks = off\n"
                      "[routing]\n"
                      "default = mock\n"
                      "[notifier.shop]\n"
                      "module = webhook\n"
                      "url = http://127.0.0.1:%d/hooks/%s\n"
                      "secret = " SHOP_SECRET "\n"
                      "events = order.paid\n";
    snprintf(extra_a, sizeof extra_a, fmt, port, "a");
    snprintf(extra_b, sizeof extra_b, fmt, port, "b");
    h_payd_opts oa = {.extra = extra_a, .threads = 8, .pool = 12};
    h_payd *a = payd_start(&oa);
    /* The same database, already migrated; its own port and its own path,
     * so the receiver can tell which process delivered. */
    h_payd_opts ob = {.extra = extra_b, .threads = 8, .pool = 12, .db_url = a->db_url, .no_migrate = 1};
    h_payd *b = payd_start(&ob);
    assert_string_equal(a->db_url, b->db_url);
    assert_int_not_equal(a->port, b->port);

    static client clients[CLIENTS];
    pthread_t th[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&clients[i], 0, sizeof clients[i]);
        clients[i].p = i % 2 ? b : a;
        clients[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, client_main, &clients[i]), 0);
    }
    int paid = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(clients[i].failures, 0);
        paid += clients[i].count;
    }
    assert_int_equal(paid, SHARED_ORDERS);
    assert_int_equal(sql_int(a, "SELECT count(*) FROM events WHERE type = 'order.paid'"), SHARED_ORDERS);
    assert_int_equal(sql_int(a, "SELECT count(*) FROM outbox"), SHARED_ORDERS);

    /* Wait until nothing is pending any more. */
    int64_t deadline = h_now_ms() + 60000;
    while (sql_int(a, "SELECT count(*) FROM outbox WHERE state = 'pending'") != 0 && h_now_ms() < deadline)
        h_sleep_ms(100);
    assert_int_equal(sql_int(a, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 0);
    assert_int_equal(sql_int(a, "SELECT count(*) FROM outbox WHERE state = 'delivered'"), SHARED_ORDERS);
    /* Each row was claimed exactly once (a claim counts an attempt). */
    assert_int_equal(sql_int(a, "SELECT count(*) FROM outbox WHERE attempts <> 1"), 0);

    /* The receiver got every event once: count distinct == count == N. */
    h_sleep_ms(300);
    assert_int_equal(receiver_count(rcv), SHARED_ORDERS);
    json_t *evs = receiver_events(rcv);
    assert_int_equal(json_array_size(evs), SHARED_ORDERS);
    char ids[SHARED_ORDERS][64];
    int by_a = 0, by_b = 0;
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *e = json_array_get(evs, i);
        const char *path = jstr(e, "path");
        assert_non_null(path);
        by_a += strcmp(path, "/hooks/a") == 0;
        by_b += strcmp(path, "/hooks/b") == 0;
        json_t *doc = EXPECT_DELIVERY(e, path, "order.paid", SHOP_SECRET);
        snprintf(ids[i], 64, "%s", jstr(doc, "id"));
        json_decref(doc);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ids[i], ids[j]) == 0) fail_msg("event %s was delivered twice", ids[i]);
        assert_int_equal(sql_int(a, "SELECT count(*) FROM events WHERE id = '%s' AND type = 'order.paid'", ids[i]), 1);
    }
    json_decref(evs);
    print_message("# deliveries: %d by the first payd, %d by the second\n", by_a, by_b);
    assert_int_equal(by_a + by_b, SHARED_ORDERS);
    /* Both processes did take part. */
    assert_true(by_a > 0);
    assert_true(by_b > 0);

    payd_stop_clean(b);
    payd_stop_clean(a);
    fake_stop(rcv);
}

/* ------------------------------------------------------------------------ */
/* Tests: SMTP.                                                             */
/* ------------------------------------------------------------------------ */

/* Quoted-printable decoding (soft breaks removed, =XX decoded), in place. */
static void qp_decode(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        if (r[0] == '=' && r[1] == '\r' && r[2] == '\n') {
            r += 3;
        } else if (r[0] == '=' && r[1] == '\n') {
            r += 2;
        } else if (r[0] == '=' && strchr("0123456789ABCDEFabcdef", r[1]) && r[1] &&
                   strchr("0123456789ABCDEFabcdef", r[2]) && r[2]) {
            char hex[3] = {r[1], r[2], 0};
            *w++ = (char)strtol(hex, NULL, 16);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* The value of header `name` in the header block of `msg` (up to the first
 * blank line), unfolded, into out; 0 when absent. */
static int mail_header(const char *msg, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    const char *end = strstr(msg, "\r\n\r\n");
    if (!end) end = msg + strlen(msg);
    for (const char *p = msg; p && p < end; p = strstr(p, "\n") ? strstr(p, "\n") + 1 : NULL) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ') v++;
            size_t o = 0;
            while (v < end && o + 1 < len) {
                if (v[0] == '\r' && v[1] == '\n' && (v[2] == ' ' || v[2] == '\t')) {
                    v += 2;
                    continue;
                }
                if (*v == '\r' || *v == '\n') break;
                out[o++] = *v++;
            }
            out[o] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Waits (at most POLL_MS) for <dir>/<n>.eml and returns its text (caller
 * frees). */
static char *wait_mail(const fake *sink, int n)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%d.eml", sink->dir, n);
    int64_t deadline = h_now_ms() + POLL_MS;
    char *text;
    while (!(text = h_read_file(path, NULL)) && h_now_ms() < deadline) h_sleep_ms(50);
    if (!text) fail_msg("no message %s within %d ms (see %s)", path, POLL_MS, sink->log);
    return text;
}

/* The envelope recipient from the sink's first line, without <>. */
static void envelope_to(const char *msg, char *out, size_t len)
{
    const char *prefix = "X-Envelope-To: ";
    assert_int_equal(strncmp(msg, prefix, strlen(prefix)), 0);
    const char *v = msg + strlen(prefix);
    if (*v == '<') v++;
    size_t n = strcspn(v, ">\r\n");
    snprintf(out, len, "%.*s", (int)n, v);
}

static void test_smtp_notifier_mails_order_confirmation_and_refund_notice_to_the_customer(void **state)
{
    (void)state;
    int port = h_free_port();
    assert_true(port > 0);
    fake *sink = fake_start("smtp_sink", port, NULL);
    char extra[2048];
    snprintf(extra, sizeof extra,
             OUTBOX_FAST "[notifier.mail]\n"
                         "module = smtp\n"
                         "url = smtp://127.0.0.1:%d\n"
                         "from = shop@example.com\n"
                         "events = order.paid, refund.succeeded\n",
             port);
    h_payd_opts o = {.extra = extra};
    h_payd *p = payd_start(&o);

    char order[64], pay_id[64], number[64], evt[64];
    assert_int_equal(checkout_body(p,
                                   "{\"currency\":\"USD\",\"customer_email\":\"buyer@example.com\",\"items\":["
                                   "{\"name\":\"Blue Mug\",\"quantity\":2,\"unit_amount\":1000},"
                                   "{\"name\":\"Tea Towel\",\"quantity\":1,\"unit_amount\":599}]}",
                                   order, pay_id),
                     0);
    h_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/orders/%s", order);
    assert_int_equal(h_get(p, path, p->admin_auth, &r), 0);
    EXPECT_STATUS(&r, 200);
    EXPECT_STR(h_rstr(&r, "status"), "paid");
    assert_int_equal(h_rint(&r, "total"), 2599);
    assert_non_null(h_rstr(&r, "number"));
    snprintf(number, sizeof number, "%s", h_rstr(&r, "number"));
    h_resp_free(&r);
    event_id_of(p, order, "order.paid", evt, NULL);

    /* The confirmation. */
    char *mail = wait_mail(sink, 1);
    char v[1024];
    envelope_to(mail, v, sizeof v);
    EXPECT_STR(v, "buyer@example.com");
    const char *msg = strstr(mail, "\r\n") + 2;
    assert_true(mail_header(msg, "X-Envelope-From", v, sizeof v));
    EXPECT_CONTAINS(v, "shop@example.com");
    assert_true(mail_header(msg, "To", v, sizeof v));
    EXPECT_CONTAINS(v, "buyer@example.com");
    assert_true(mail_header(msg, "From", v, sizeof v));
    EXPECT_CONTAINS(v, "shop@example.com");
    assert_true(mail_header(msg, "Subject", v, sizeof v));
    EXPECT_CONTAINS(v, number);
    assert_true(mail_header(msg, "X-Payd-Event-Id", v, sizeof v));
    EXPECT_STR(v, evt);
    qp_decode(mail);
    EXPECT_CONTAINS(mail, number);
    EXPECT_CONTAINS(mail, "Blue Mug");
    EXPECT_CONTAINS(mail, "Tea Towel");
    EXPECT_CONTAINS(mail, "25.99");       /* the total, 2599 minor units of USD */
    EXPECT_CONTAINS(mail, "USD 25.99");
    EXPECT_CONTAINS(mail, "20.00");       /* 2 x 10.00 */
    EXPECT_CONTAINS(mail, "5.99");
    free(mail);

    /* A partial refund: the notice. */
    char body[256];
    snprintf(body, sizeof body, "{\"payment\":\"%s\",\"amount\":1000}", pay_id);
    assert_int_equal(h_post_json(p, "/v1/refunds", p->merchant_auth, NULL, body, &r), 0);
    EXPECT_STATUS(&r, 201);
    EXPECT_STR(h_rstr(&r, "status"), "succeeded");
    h_resp_free(&r);
    mail = wait_mail(sink, 2);
    envelope_to(mail, v, sizeof v);
    EXPECT_STR(v, "buyer@example.com");
    msg = strstr(mail, "\r\n") + 2;
    assert_true(mail_header(msg, "To", v, sizeof v));
    EXPECT_CONTAINS(v, "buyer@example.com");
    assert_true(mail_header(msg, "Subject", v, sizeof v));
    EXPECT_CONTAINS(v, number);
    EXPECT_CONTAINS(v, "Refund");
    qp_decode(mail);
    EXPECT_CONTAINS(mail, "USD 10.00");   /* the refund amount */
    EXPECT_CONTAINS(mail, "USD 25.99");   /* the order total */
    free(mail);

    /* Two mails, no more: order.created and payment.succeeded are not mailed. */
    char dlv_state[32];
    int64_t deadline = h_now_ms() + POLL_MS;
    while (sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'mail' AND state <> 'delivered'") != 0 &&
           h_now_ms() < deadline)
        h_sleep_ms(50);
    assert_int_equal(sql_int(p, "SELECT count(*) FROM outbox WHERE notifier = 'mail' AND state = 'delivered'"), 2);
    sql_str(p, dlv_state, sizeof dlv_state, "SELECT state FROM outbox WHERE event_id = '%s'", evt);
    EXPECT_STR(dlv_state, "delivered");
    h_sleep_ms(300);
    char third[PATH_MAX + 32];
    snprintf(third, sizeof third, "%s/3.eml", sink->dir);
    assert_int_equal(access(third, F_OK), -1);

    payd_stop_clean(p);
    fake_stop(sink);
}

int main(void)
{
    if (h_init() != 0) return 1;
    if (!h_env("PAYD_BUILD")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_receiver_gets_signed_order_paid_matching_the_event_stream, setup_each,
                                        teardown_each),
        cmocka_unit_test_setup_teardown(
            test_down_receiver_is_retried_on_schedule_then_dead_lettered_and_replay_delivers_once, setup_each,
            teardown_each),
        cmocka_unit_test_setup_teardown(test_5xx_is_retried_until_accepted_and_4xx_is_dead_at_once, setup_each,
                                        teardown_each),
        cmocka_unit_test_setup_teardown(test_two_payd_processes_on_one_database_deliver_each_event_exactly_once,
                                        setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(
            test_smtp_notifier_mails_order_confirmation_and_refund_notice_to_the_customer, setup_each,
            teardown_each),
    };
    return cmocka_run_group_tests_name("outbox", tests, NULL, NULL);
}
