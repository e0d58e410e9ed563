/*
 * modcheck_bad.c - a gateway that passes payd-modcheck when its config says
 * `defect = none`, and breaks exactly one rule of the module contract for
 * each other value, so tests can prove that payd-modcheck catches that
 * rule and names the right check:
 *
 *   defect = decline      a decline comes back as PAYD_E_INVALID   (decline)
 *   defect = timeout      a timeout comes back as PAYD_E_DECLINED  (timeout)
 *   defect = refund       a refund above the capture is accepted   (refund_over_capture)
 *   defect = webhook      any webhook signature is accepted        (webhook_tamper)
 *   defect = idempotency  a retried create makes a second payment  (idempotency)
 *   defect = heap         provider_ref is malloc'd, not in the arena   (arena)
 *   defect = static       provider_ref is a shared writable buffer     (arena)
 *   defect = secret       init logs the api_key                    (no_secrets)
 *   defect = pan          an unknown payment method is echoed in
 *                         the error message (a card number, then)  (no_secrets)
 *   defect = leak         every init loses 64 bytes                (init_fini)
 *   defect = capture      a capture of part takes everything       (capture_later)
 *   defect = cancel       cancel answers canceled, but the
 *                         authorization stays                      (capture_later)
 *
 * Its "provider" lives in-process: a provider_ref is "bad_<hash of the
 * idempotency key>_<amount>", so a retry with the same key gets the same
 * ref and retrieve can read the amount back. Only manual-capture payments
 * keep state (an authorization goes on to be captured or canceled): a
 * list of them per instance, behind the instance's mutex.
 *
 * Test methods: pm_card_visa succeeds, pm_card_chargeDeclined is declined,
 * pm_card_timeout times out. Webhooks carry "Bad-Signature: <hex HMAC-SHA256
 * (webhook_secret, body)>" and a body whose "id" is the event id.
 */
#include <payd/module.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A manual-capture payment: its ref, status and amounts. */
typedef struct bad_auth {
    char ref[64];
    int status;
    int64_t amount, captured;
} bad_auth;

typedef struct bad {
    const payd_host *h;
    char defect[32];
    char secret[128];
    /* defect = heap: blocks handed out, freed at fini (no leak, just not
     * in the arena). */
    pthread_mutex_t mu;
    char **blocks;
    size_t count, cap;
    /* Manual-capture payments, under mu; freed at fini. */
    bad_auth *auths;
    size_t auth_count, auth_cap;
} bad;

static char bad_shared_ref[64]; /* defect = static */
static unsigned bad_counter;    /* defect = idempotency */

static int bad_fail(payd_error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad_fail(payd_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return code;
}

static int is(const bad *b, const char *defect)
{
    return strcmp(b->defect, defect) == 0;
}

static int bad_init(const payd_host *h, const payd_config *cfg, void **state, payd_error *e)
{
    const char *defect = h->config_get(cfg, "defect");
    const char *key = h->config_get(cfg, "api_key");
    const char *secret = h->config_get(cfg, "webhook_secret");
    bad *b = calloc(1, sizeof *b);
    if (!b) return bad_fail(e, PAYD_E_NOMEM, "out of memory");
    b->h = h;
    snprintf(b->defect, sizeof b->defect, "%s", defect ? defect : "none");
    snprintf(b->secret, sizeof b->secret, "%s", secret ? secret : "");
    pthread_mutex_init(&b->mu, NULL);
    if (is(b, "secret") && key) h->log(h, PAYD_LOG_INFO, "modcheck_bad: using api key %s", key);
    if (is(b, "leak")) {
        /* Lost on purpose: the pointer is dropped at once. */
        char *volatile lost = malloc(64);
        if (lost) lost[0] = 1;
    }
    *state = b;
    return PAYD_OK;
}

static void bad_fini(void *state)
{
    bad *b = state;
    for (size_t i = 0; i < b->count; i++) free(b->blocks[i]);
    free(b->blocks);
    free(b->auths);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* The ref for a create, placed where the defect says. */
static const char *bad_ref(bad *b, payd_arena *a, const char *key, int64_t amount)
{
    uint8_t d[32];
    b->h->sha256(key, strlen(key), d);
    char ref[64];
    unsigned n = is(b, "idempotency") ? __atomic_add_fetch(&bad_counter, 1, __ATOMIC_RELAXED) : 0;
    snprintf(ref, sizeof ref, "bad_%02x%02x%02x%02x%02x%02x%u_%lld", d[0], d[1], d[2], d[3], d[4], d[5], n,
             (long long)amount);
    if (is(b, "static")) {
        memcpy(bad_shared_ref, ref, sizeof ref);
        return bad_shared_ref;
    }
    if (is(b, "heap")) {
        char *p = strdup(ref);
        pthread_mutex_lock(&b->mu);
        if (p && b->count == b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 64;
            char **grown = realloc(b->blocks, cap * sizeof *grown);
            if (grown) b->blocks = grown, b->cap = cap;
        }
        if (p && b->count < b->cap) b->blocks[b->count++] = p;
        else free(p), p = NULL;
        pthread_mutex_unlock(&b->mu);
        return p;
    }
    return b->h->strdup(a, ref);
}

static int64_t bad_amount_of(const char *ref)
{
    const char *u = strrchr(ref, '_');
    return u ? strtoll(u + 1, NULL, 10) : 0;
}

/* The manual-capture payment `ref`, or NULL. Call with b->mu held. */
static bad_auth *bad_auth_find(bad *b, const char *ref)
{
    for (size_t i = 0; i < b->auth_count; i++)
        if (!strcmp(b->auths[i].ref, ref)) return &b->auths[i];
    return NULL;
}

/*
 * Records an authorization of `amount` under `ref` (a create repeated
 * with its key finds the one it made). PAYD_OK or PAYD_E_NOMEM.
 */
static int bad_auth_add(bad *b, const char *ref, int64_t amount)
{
    int rc = PAYD_OK;
    pthread_mutex_lock(&b->mu);
    if (!bad_auth_find(b, ref)) {
        if (b->auth_count == b->auth_cap) {
            size_t cap = b->auth_cap ? b->auth_cap * 2 : 32;
            bad_auth *grown = realloc(b->auths, cap * sizeof *grown);
            if (grown) b->auths = grown, b->auth_cap = cap;
        }
        if (b->auth_count < b->auth_cap) {
            bad_auth *au = &b->auths[b->auth_count++];
            snprintf(au->ref, sizeof au->ref, "%s", ref);
            au->status = PAYD_PS_REQUIRES_CAPTURE;
            au->amount = amount;
            au->captured = 0;
        } else {
            rc = PAYD_E_NOMEM;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* `res` from a manual-capture payment as it stands. */
static void bad_auth_answer(bad *b, payd_arena *a, const bad_auth *au, payd_payment_res *res)
{
    res->provider_ref = b->h->strdup(a, au->ref);
    res->status = au->status;
    res->amount = au->amount;
    res->amount_capturable = au->status == PAYD_PS_REQUIRES_CAPTURE ? au->amount : 0;
    res->amount_captured = au->captured;
}

static int bad_create(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    bad *b = state;
    const char *pm = req->payment_method ? req->payment_method : "";
    if (!strcmp(pm, "pm_card_chargeDeclined")) {
        if (is(b, "decline")) return bad_fail(e, PAYD_E_INVALID, "card refused");
        snprintf(e->failure_code, sizeof e->failure_code, "card_declined");
        res->status = PAYD_PS_FAILED;
        return bad_fail(e, PAYD_E_DECLINED, "The card was declined.");
    }
    if (!strcmp(pm, "pm_card_timeout")) {
        if (is(b, "timeout")) {
            snprintf(e->failure_code, sizeof e->failure_code, "processing_error");
            return bad_fail(e, PAYD_E_DECLINED, "took too long");
        }
        return bad_fail(e, PAYD_E_TRANSIENT, "timed out");
    }
    if (strcmp(pm, "pm_card_visa") != 0) {
        if (is(b, "pan")) return bad_fail(e, PAYD_E_INVALID, "unknown payment method %s", pm);
        return bad_fail(e, PAYD_E_INVALID, "unknown payment method");
    }
    res->provider_ref = bad_ref(b, a, req->idempotency_key ? req->idempotency_key : "none", req->amount);
    if (!res->provider_ref) return bad_fail(e, PAYD_E_NOMEM, "out of memory");
    res->amount = req->amount;
    if (req->capture_method == PAYD_CAPTURE_MANUAL) {
        if (bad_auth_add(b, res->provider_ref, req->amount) != PAYD_OK)
            return bad_fail(e, PAYD_E_NOMEM, "out of memory");
        res->status = PAYD_PS_REQUIRES_CAPTURE;
        res->amount_capturable = req->amount;
        return PAYD_OK;
    }
    res->status = PAYD_PS_SUCCEEDED;
    res->amount_captured = req->amount;
    return PAYD_OK;
}

static int bad_retrieve(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    bad *b = state;
    if (!req->provider_ref) return bad_fail(e, PAYD_E_INVALID, "provider_ref is required");
    pthread_mutex_lock(&b->mu);
    bad_auth *au = bad_auth_find(b, req->provider_ref);
    if (au) bad_auth_answer(b, a, au, res);
    pthread_mutex_unlock(&b->mu);
    if (au) return PAYD_OK;
    res->provider_ref = b->h->strdup(a, req->provider_ref);
    res->status = PAYD_PS_SUCCEEDED;
    res->amount = res->amount_captured = bad_amount_of(req->provider_ref);
    return PAYD_OK;
}

/*
 * capture: req->amount_to_capture (0: all) of an authorization. With
 * defect = capture, everything authorized, whatever was asked.
 */
static int bad_capture(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    bad *b = state;
    if (!req->provider_ref) return bad_fail(e, PAYD_E_INVALID, "provider_ref is required");
    int rc = PAYD_OK;
    pthread_mutex_lock(&b->mu);
    bad_auth *au = bad_auth_find(b, req->provider_ref);
    if (!au) rc = bad_fail(e, PAYD_E_NOTFOUND, "no such authorization");
    else if (au->status != PAYD_PS_REQUIRES_CAPTURE) rc = bad_fail(e, PAYD_E_INVALID, "nothing to capture");
    else if (req->amount_to_capture < 0 || req->amount_to_capture > au->amount)
        rc = bad_fail(e, PAYD_E_INVALID, "amount_to_capture exceeds the authorization");
    if (rc == PAYD_OK) {
        au->captured = req->amount_to_capture > 0 && !is(b, "capture") ? req->amount_to_capture : au->amount;
        au->status = PAYD_PS_SUCCEEDED;
        bad_auth_answer(b, a, au, res);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/*
 * cancel: voids an authorization. With defect = cancel, it answers
 * canceled and leaves the authorization as it was.
 */
static int bad_cancel(PAYD_OP_ARGS(payd_payment_req, payd_payment_res))
{
    bad *b = state;
    if (!req->provider_ref) return bad_fail(e, PAYD_E_INVALID, "provider_ref is required");
    int rc = PAYD_OK;
    pthread_mutex_lock(&b->mu);
    bad_auth *au = bad_auth_find(b, req->provider_ref);
    if (!au) rc = bad_fail(e, PAYD_E_NOTFOUND, "no such authorization");
    else if (au->status != PAYD_PS_REQUIRES_CAPTURE) rc = bad_fail(e, PAYD_E_INVALID, "nothing to cancel");
    if (rc == PAYD_OK) {
        if (!is(b, "cancel")) au->status = PAYD_PS_CANCELED;
        bad_auth_answer(b, a, au, res);
        res->status = PAYD_PS_CANCELED;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int bad_refund(PAYD_OP_ARGS(payd_refund_req, payd_refund_res))
{
    bad *b = state;
    if (!req->provider_ref) return bad_fail(e, PAYD_E_INVALID, "provider_ref is required");
    if (req->amount > bad_amount_of(req->provider_ref) && !is(b, "refund"))
        return bad_fail(e, PAYD_E_INVALID, "the refund exceeds the captured amount");
    res->status = PAYD_RS_SUCCEEDED;
    res->refund_ref = b->h->sprintf(a, "bad_re_%s", req->refund_id ? req->refund_id : "x");
    return PAYD_OK;
}

static int bad_webhook(PAYD_OP_ARGS(payd_webhook_req, payd_event))
{
    bad *b = state;
    const char *sig = NULL;
    for (size_t i = 0; req->headers && i < req->header_count; i++)
        if (!strcmp(req->headers[i].name, "Bad-Signature")) sig = req->headers[i].value;
    if (!is(b, "webhook")) {
        uint8_t mac[32];
        b->h->hmac_sha256(b->secret, strlen(b->secret), req->body, req->body_len, mac);
        const char *hex = b->h->hex_encode(a, mac, sizeof mac);
        if (!sig || !hex || strlen(sig) != 64 || !b->h->equal_ct(sig, hex, 64))
            return bad_fail(e, PAYD_E_SIGNATURE, "bad signature");
    }
    const char *id = strstr(req->body, "\"id\":\"");
    if (!id) return bad_fail(e, PAYD_E_INVALID, "no event id");
    id += 6;
    res->provider_event_id = b->h->strndup(a, id, strcspn(id, "\""));
    res->type = PAYD_EV_IGNORED;
    return PAYD_OK;
}

static const payd_gateway_ops bad_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = bad_create,
    .retrieve = bad_retrieve,
    .capture = bad_capture,
    .cancel = bad_cancel,
    .refund = bad_refund,
    .webhook = bad_webhook,
};

/* whole_capture_only.c reuses this module under another name and caps. */
#ifndef BAD_MODULE_NAME
#define BAD_MODULE_NAME "modcheck_bad"
#define BAD_MODULE_CAPS                                                                                    \
    (PAYD_CAP_CAPTURE_LATER | PAYD_CAP_PARTIAL_CAPTURE | PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND |      \
     PAYD_CAP_WEBHOOKS)
#endif

static const payd_module bad_module = {
    PAYD_MODULE_V1,
    .name = BAD_MODULE_NAME,
    .version = "0.0.1",
    .description = "breaks one module rule at a time, for payd-modcheck's tests",
    .kind = PAYD_KIND_GATEWAY,
    .caps = BAD_MODULE_CAPS,
    .init = bad_init,
    .fini = bad_fini,
    .gateway = &bad_ops,
};

PAYD_DECLARE_MODULE(bad_module)
