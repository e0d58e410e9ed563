/*
 * modules/mock/mock_ops.c - the gateway operations of the mock.
 *
 * Each operation does what a real provider's API front does:
 *   1. check its input (PAYD_E_INVALID, nothing happens);
 *   2. for mutating calls: injected latency, then an injected 503
 *      (transient_rate: PAYD_E_TRANSIENT before anything is applied);
 *   3. under mock_mu: replay the idempotency record for the key, refuse
 *      the key if it was used with other parameters (PAYD_E_PROVIDER), or
 *      run the call (mock_intents.c, mock_methods.c) and keep its result;
 *   4. an injected lost response (timeout_rate, and pm_card_timeout):
 *      the effect stays, the caller gets PAYD_E_TRANSIENT;
 *   5. copy the result into the call's arena (never pointers into the
 *      registry, which other threads change).
 * Reads (retrieve, refund_retrieve, list_methods) skip 2 to 4.
 *
 * Every function here may run on many threads at once with one state.
 */
#include "mock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Input checks                                                             */
/* ------------------------------------------------------------------------ */

/* NULL, or 1..max characters of printable ASCII; `space` allows ' '. */
static int mock_ok_text(const char *s, size_t max, int space)
{
    size_t n = 0;

    if (s == NULL)
        return 1;
    for (; *s != '\0'; s++, n++)
        if (n >= max || (unsigned char)*s > '~' || *s < ' ' ||
            (*s == ' ' && !space))
            return 0;
    return n > 0;
}

static int mock_ok_currency(const char *s)
{
    return s != NULL && strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' &&
           s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z';
}

static int mock_ok_url(const char *s)
{
    return s == NULL ||
           (mock_ok_text(s, MOCK_URL_MAX, 0) &&
            (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0));
}

/* The fields every payment op may carry. 0 or PAYD_E_INVALID (e set). */
static int mock_check_payment(const payd_payment_req *req, payd_error *e)
{
    if (!mock_ok_text(req->idempotency_key, MOCK_KEY_MAX, 1))
        return payd_fail(e, PAYD_E_INVALID, "invalid idempotency_key");
    if (!mock_ok_text(req->payment_id, MOCK_ID_MAX, 0))
        return payd_fail(e, PAYD_E_INVALID, "invalid payment_id");
    /* Saying which payment_method would echo what might be card digits. */
    if (!mock_ok_text(req->payment_method, 64, 1))
        return payd_fail(e, PAYD_E_INVALID, "unknown test payment method");
    if (!mock_ok_url(req->return_url))
        return payd_fail(e, PAYD_E_INVALID,
                         "return_url must be an http(s) URL without spaces");
    if (!mock_ok_text(req->cancel_reason, 64, 1))
        return payd_fail(e, PAYD_E_INVALID, "invalid cancel_reason");
    return PAYD_OK;
}

/* Payment ops other than create name an intent. */
static int mock_check_ref(const char *ref, payd_error *e)
{
    if (ref == NULL)
        return payd_fail(e, PAYD_E_INVALID, "provider_ref is required");
    if (!mock_ok_text(ref, MOCK_ID_MAX, 0))
        return payd_fail(e, PAYD_E_NOTFOUND, "no such object");
    return PAYD_OK;
}

/* ------------------------------------------------------------------------ */
/* Faults, idempotency and results                                          */
/* ------------------------------------------------------------------------ */

static void mock_sleep_ms(int64_t ms)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ms / 1000);
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* 1 with probability `rate`. */
static int mock_roll(const mock_instance *inst, double rate)
{
    uint32_t x;

    if (rate <= 0.0)
        return 0;
    if (rate >= 1.0)
        return 1;
    if (inst->h->random_bytes(&x, sizeof x) != 0)
        return 0;
    return (double)x < rate * 4294967296.0;
}

/* Append one field to an idempotency fingerprint (NUL-separated). */
static void mock_fp_str(mock_buf *fp, const char *s)
{
    if (s == NULL)
        mock_buf_put(fp, "\x01", 2);
    else
        mock_buf_put(fp, s, strlen(s) + 1);
}

static void mock_fp_int(mock_buf *fp, int64_t v)
{
    mock_buf_printf(fp, "%lld", (long long)v);
    mock_buf_put(fp, "", 1);
}

typedef int (*mock_apply_fn)(const mock_instance *inst, const void *req,
                             mock_result *r);

/*
 * Run one mutating call (steps 2-4 above). `fp` holds the parameters that
 * identify the call; its SHA-256 is what "same parameters" means for a
 * reused key. It covers the operation, the object, the amount, currency
 * and payd ids, not the payment method, flags or capture amount: payd's
 * janitor re-issues a call with the original key from what it stored,
 * which never includes a card number and may not repeat every flag, and
 * must get the first call's answer, not a conflict. Results kept under a
 * key: successes and declines (what a provider stores once the call
 * executed); rejections are not kept, so a retry is judged again. Returns
 * r->rc; r->lost says the response must be lost.
 */
static int mock_mutate(const mock_instance *inst, const char *key,
                       const mock_buf *fp, mock_apply_fn fn, const void *req,
                       mock_result *r)
{
    uint8_t digest[32];
    int found = 0;

    if (inst->latency_ms > 0)
        mock_sleep_ms(inst->latency_ms);
    if (mock_roll(inst, inst->transient_rate)) {
        mock_result_fail(r, PAYD_E_TRANSIENT, NULL,
                         "service unavailable (injected)");
        return r->rc;
    }
    if (fp->oom || fp->data == NULL) {
        mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
        return r->rc;
    }
    inst->h->sha256(fp->data, fp->len, digest);

    pthread_mutex_lock(&mock_mu);
    if (key != NULL)
        found = mock_idem_lookup_locked(inst->account, key, digest, r);
    if (found < 0) {
        mock_result_fail(r, PAYD_E_PROVIDER, NULL,
                         "idempotency key reused with different parameters");
    } else if (found == 0) {
        fn(inst, req, r);
        if (key != NULL && (r->rc == PAYD_OK || r->rc == PAYD_E_DECLINED))
            mock_idem_store_locked(inst->account, key, digest, r);
    }
    pthread_mutex_unlock(&mock_mu);

    if ((r->rc == PAYD_OK || r->rc == PAYD_E_DECLINED) && found >= 0 &&
        mock_roll(inst, inst->timeout_rate))
        r->lost = 1;
    return r->rc;
}

/* A provider request id for the audit, as Stripe's Request-Id. */
static void mock_request_id(const mock_instance *inst, char out[32])
{
    char hex[17];

    if (mock_random_hex(inst->h, hex, 8) != PAYD_OK)
        snprintf(hex, sizeof hex, "0");
    snprintf(out, 32, "mreq_%s", hex);
}

/*
 * Turn an outcome into the op's return: a lost response or an error sets
 * e; OK and DECLINED also fill the result (copied into the arena).
 */
static int mock_finish_error(const mock_result *r, const char *reqid,
                             payd_error *e)
{
    if (e == NULL)
        return r->lost ? PAYD_E_TRANSIENT : r->rc;
    snprintf(e->provider_request_id, sizeof e->provider_request_id, "%s",
             reqid);
    if (r->lost)
        return payd_fail(e, PAYD_E_TRANSIENT, "timeout (injected)");
    if (r->rc == PAYD_OK)
        return PAYD_OK;
    snprintf(e->failure_code, sizeof e->failure_code, "%s",
             r->err_failure_code);
    return payd_fail(e, r->rc, "%s", r->err_message);
}

static int mock_finish_payment(const mock_instance *inst, const mock_result *r,
                               payd_payment_res *res, payd_arena *a,
                               payd_error *e)
{
    const payd_host *h = inst->h;
    char reqid[32];
    payd_payment_res out;
    int oom = 0, rc;

    mock_request_id(inst, reqid);
    rc = mock_finish_error(r, reqid, e);
    if (r->lost || (rc != PAYD_OK && rc != PAYD_E_DECLINED))
        return rc;
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.status = r->status;
    out.provider_ref = payd_adup(h, a, r->ref, &oom);
    out.next_action = r->next_action;
    out.next_action_url = payd_adup(h, a, r->url, &oom);
    out.failure_code = payd_adup(h, a, r->failure_code, &oom);
    out.failure_message = payd_adup(h, a, r->failure_message, &oom);
    out.amount = r->amount;
    out.amount_capturable = r->amount_capturable;
    out.amount_captured = r->amount_captured;
    out.raw = payd_adup(h, a, r->raw, &oom);
    out.provider_request_id = payd_adup(h, a, reqid, &oom);
    if (oom)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return rc;
}

static int mock_finish_refund(const mock_instance *inst, const mock_result *r,
                              payd_refund_res *res, payd_arena *a,
                              payd_error *e)
{
    const payd_host *h = inst->h;
    char reqid[32];
    payd_refund_res out;
    int oom = 0, rc;

    mock_request_id(inst, reqid);
    rc = mock_finish_error(r, reqid, e);
    if (r->lost || rc != PAYD_OK)
        return rc;
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.status = r->status;
    out.refund_ref = payd_adup(h, a, r->ref, &oom);
    out.failure_code = payd_adup(h, a, r->failure_code, &oom);
    out.failure_message = payd_adup(h, a, r->failure_message, &oom);
    out.raw = payd_adup(h, a, r->raw, &oom);
    out.provider_request_id = payd_adup(h, a, reqid, &oom);
    if (oom)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

static int mock_finish_method(const mock_instance *inst, const mock_result *r,
                              payd_method *res, payd_arena *a, payd_error *e)
{
    const payd_host *h = inst->h;
    char reqid[32];
    payd_method out;
    int oom = 0, rc;

    mock_request_id(inst, reqid);
    rc = mock_finish_error(r, reqid, e);
    if (r->lost || rc != PAYD_OK)
        return rc;
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.method_ref = payd_adup(h, a, r->ref, &oom);
    out.customer_ref = payd_adup(h, a, r->customer_ref, &oom);
    out.brand = payd_adup(h, a, r->brand, &oom);
    out.last4 = payd_adup(h, a, r->last4, &oom);
    out.exp_month = r->exp_month;
    out.exp_year = r->exp_year;
    if (oom)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/* ------------------------------------------------------------------------ */
/* Adapters from mock_apply_fn to the typed provider calls                  */
/* ------------------------------------------------------------------------ */

static int mock_apply_create(const mock_instance *i, const void *q,
                             mock_result *r)
{
    return mock_intents_create_locked(i, q, r);
}

static int mock_apply_confirm(const mock_instance *i, const void *q,
                              mock_result *r)
{
    return mock_intents_confirm_locked(i, q, r);
}

static int mock_apply_capture(const mock_instance *i, const void *q,
                              mock_result *r)
{
    return mock_intents_capture_locked(i, q, r);
}

static int mock_apply_cancel(const mock_instance *i, const void *q,
                             mock_result *r)
{
    return mock_intents_cancel_locked(i, q, r);
}

static int mock_apply_refund(const mock_instance *i, const void *q,
                             mock_result *r)
{
    return mock_intents_refund_locked(i, q, r);
}

static int mock_apply_save_method(const mock_instance *i, const void *q,
                                  mock_result *r)
{
    return mock_methods_save_locked(i, q, r);
}

static int mock_apply_delete_method(const mock_instance *i, const void *q,
                                    mock_result *r)
{
    return mock_methods_delete_locked(i, q, r);
}

/* ------------------------------------------------------------------------ */
/* Payment operations                                                       */
/* ------------------------------------------------------------------------ */

/*
 * create: a new intent for req->amount, confirmed at once when
 * req->confirm. Returns PAYD_OK, PAYD_E_DECLINED (res filled, status
 * failed, e->failure_code set), PAYD_E_INVALID, PAYD_E_PROVIDER (key
 * reused), PAYD_E_TRANSIENT (injected; or pm_card_timeout: charged, the
 * response lost), PAYD_E_NOMEM or PAYD_E_INTERNAL.
 */
int mock_create(void *state, const payd_payment_req *req_in,
                payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_payment_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_payment(&req, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.amount <= 0 || req.amount > MOCK_AMOUNT_MAX)
        return payd_fail(e, PAYD_E_INVALID, "amount must be 1 to %lld",
                         (long long)MOCK_AMOUNT_MAX);
    if (!mock_ok_currency(req.currency))
        return payd_fail(e, PAYD_E_INVALID,
                         "currency must be an upper-case ISO 4217 code");
    if (req.currency_exponent < 0 || req.currency_exponent > 4)
        return payd_fail(e, PAYD_E_INVALID, "invalid currency_exponent");
    if (req.capture_method != PAYD_CAPTURE_AUTOMATIC &&
        req.capture_method != PAYD_CAPTURE_MANUAL)
        return payd_fail(e, PAYD_E_INVALID, "invalid capture_method");
    mock_stats_count_create_call(req.payment_id);

    mock_fp_str(&fp, "create");
    mock_fp_int(&fp, req.amount);
    mock_fp_str(&fp, req.currency);
    mock_fp_str(&fp, req.payment_id);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_create, &req, &r);
    rc = mock_finish_payment(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* retrieve: the intent's current state; no faults. PAYD_OK,
 * PAYD_E_NOTFOUND, PAYD_E_INVALID or PAYD_E_NOMEM. */
int mock_retrieve(void *state, const payd_payment_req *req_in,
                  payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_payment_req req;
    mock_result r = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_ref(req.provider_ref, e);
    if (rc != PAYD_OK)
        return rc;
    pthread_mutex_lock(&mock_mu);
    mock_intents_retrieve_locked(&req, &r);
    pthread_mutex_unlock(&mock_mu);
    rc = mock_finish_payment(inst, &r, res, a, e);
    mock_result_free(&r);
    return rc;
}

/* confirm: as create's confirmation, on an existing intent. Same codes as
 * create, plus PAYD_E_NOTFOUND. */
int mock_confirm(void *state, const payd_payment_req *req_in,
                 payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_payment_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_payment(&req, e);
    if (rc == PAYD_OK)
        rc = mock_check_ref(req.provider_ref, e);
    if (rc != PAYD_OK)
        return rc;
    mock_fp_str(&fp, "confirm");
    mock_fp_str(&fp, req.provider_ref);
    mock_fp_int(&fp, req.amount);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_confirm, &req, &r);
    rc = mock_finish_payment(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* capture: req->amount_to_capture (0 = all capturable). PAYD_OK,
 * PAYD_E_INVALID, PAYD_E_NOTFOUND, PAYD_E_PROVIDER, PAYD_E_TRANSIENT. */
int mock_capture(void *state, const payd_payment_req *req_in,
                 payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_payment_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_payment(&req, e);
    if (rc == PAYD_OK)
        rc = mock_check_ref(req.provider_ref, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.amount_to_capture < 0 || req.amount_to_capture > MOCK_AMOUNT_MAX)
        return payd_fail(e, PAYD_E_INVALID, "invalid amount_to_capture");
    mock_fp_str(&fp, "capture");
    mock_fp_str(&fp, req.provider_ref);
    mock_fp_int(&fp, req.amount);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_capture, &req, &r);
    rc = mock_finish_payment(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* cancel: PAYD_OK, PAYD_E_INVALID (not cancelable now), PAYD_E_NOTFOUND,
 * PAYD_E_PROVIDER, PAYD_E_TRANSIENT. */
int mock_cancel(void *state, const payd_payment_req *req_in,
                payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_payment_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_payment(&req, e);
    if (rc == PAYD_OK)
        rc = mock_check_ref(req.provider_ref, e);
    if (rc != PAYD_OK)
        return rc;
    mock_fp_str(&fp, "cancel");
    mock_fp_str(&fp, req.provider_ref);
    mock_fp_int(&fp, req.amount);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_cancel, &req, &r);
    rc = mock_finish_payment(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Refunds                                                                  */
/* ------------------------------------------------------------------------ */

static int mock_check_refund(const payd_refund_req *req, payd_error *e)
{
    if (!mock_ok_text(req->idempotency_key, MOCK_KEY_MAX, 1))
        return payd_fail(e, PAYD_E_INVALID, "invalid idempotency_key");
    if (!mock_ok_text(req->refund_id, MOCK_ID_MAX, 0) ||
        !mock_ok_text(req->payment_id, MOCK_ID_MAX, 0))
        return payd_fail(e, PAYD_E_INVALID, "invalid refund_id or payment_id");
    if (!mock_ok_text(req->reason, 64, 1))
        return payd_fail(e, PAYD_E_INVALID, "invalid reason");
    if (req->currency != NULL && !mock_ok_currency(req->currency))
        return payd_fail(e, PAYD_E_INVALID,
                         "currency must be an upper-case ISO 4217 code");
    return PAYD_OK;
}

/* refund: succeeds at once (PAYD_RS_SUCCEEDED) and emits
 * refund.succeeded. PAYD_OK, PAYD_E_INVALID (e.g. more than captured),
 * PAYD_E_NOTFOUND, PAYD_E_PROVIDER, PAYD_E_TRANSIENT, PAYD_E_NOMEM. */
int mock_refund(void *state, const payd_refund_req *req_in,
                payd_refund_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_refund_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_refund(&req, e);
    if (rc == PAYD_OK)
        rc = mock_check_ref(req.provider_ref, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.amount <= 0 || req.amount > MOCK_AMOUNT_MAX)
        return payd_fail(e, PAYD_E_INVALID, "amount must be 1 to %lld",
                         (long long)MOCK_AMOUNT_MAX);
    mock_fp_str(&fp, "refund");
    mock_fp_str(&fp, req.provider_ref);
    mock_fp_int(&fp, req.amount);
    mock_fp_str(&fp, req.currency);
    mock_fp_str(&fp, req.refund_id);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_refund, &req, &r);
    rc = mock_finish_refund(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* refund_retrieve by req->refund_ref: PAYD_OK, PAYD_E_NOTFOUND,
 * PAYD_E_INVALID or PAYD_E_NOMEM. No faults. */
int mock_refund_retrieve(void *state, const payd_refund_req *req_in,
                         payd_refund_res *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_refund_req req;
    mock_result r = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_ref(req.refund_ref, e);
    if (rc != PAYD_OK)
        return rc;
    pthread_mutex_lock(&mock_mu);
    mock_intents_refund_retrieve_locked(&req, &r);
    pthread_mutex_unlock(&mock_mu);
    rc = mock_finish_refund(inst, &r, res, a, e);
    mock_result_free(&r);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Saved methods                                                            */
/* ------------------------------------------------------------------------ */

static int mock_check_method(const payd_method_req *req, int need_method,
                             payd_error *e)
{
    if (!mock_ok_text(req->idempotency_key, MOCK_KEY_MAX, 1))
        return payd_fail(e, PAYD_E_INVALID, "invalid idempotency_key");
    if (!mock_ok_text(req->customer_ref, MOCK_ID_MAX, 0))
        return payd_fail(e, PAYD_E_NOTFOUND, "no such customer");
    if (!mock_ok_text(req->customer_email, 254, 0))
        return payd_fail(e, PAYD_E_INVALID, "invalid customer_email");
    if (need_method &&
        (req->method_ref == NULL || !mock_ok_text(req->method_ref, 64, 1)))
        return payd_fail(e, PAYD_E_INVALID, "unknown test payment method");
    return PAYD_OK;
}

/* save_method: attach the test card req->method_ref (a token or test
 * number) to req->customer_ref, or to a new customer when NULL. PAYD_OK
 * (res: mock_pm_ ref, customer, display data), PAYD_E_INVALID,
 * PAYD_E_NOTFOUND, PAYD_E_PROVIDER, PAYD_E_TRANSIENT, PAYD_E_NOMEM. */
int mock_save_method(void *state, const payd_method_req *req_in,
                     payd_method *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_method_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_method(&req, 1, e);
    if (rc != PAYD_OK)
        return rc;
    mock_fp_str(&fp, "save_method");
    mock_fp_str(&fp, req.customer_ref);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_save_method, &req,
                &r);
    rc = mock_finish_method(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* delete_method: detach req->method_ref. PAYD_OK (res: what was deleted),
 * PAYD_E_NOTFOUND, PAYD_E_PROVIDER, PAYD_E_TRANSIENT, PAYD_E_NOMEM. */
int mock_delete_method(void *state, const payd_method_req *req_in,
                       payd_method *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_method_req req;
    mock_result r = {0};
    mock_buf fp = {0};
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = mock_check_method(&req, 0, e);
    if (rc != PAYD_OK)
        return rc;
    if (req.method_ref == NULL || !mock_ok_text(req.method_ref, MOCK_ID_MAX, 0))
        return payd_fail(e, PAYD_E_NOTFOUND, "no such payment method");
    mock_fp_str(&fp, "delete_method");
    mock_fp_str(&fp, req.customer_ref);
    mock_fp_str(&fp, req.method_ref);
    mock_mutate(inst, req.idempotency_key, &fp, mock_apply_delete_method, &req,
                &r);
    rc = mock_finish_method(inst, &r, res, a, e);
    mock_buf_free(&fp);
    mock_result_free(&r);
    return rc;
}

/* list_methods: req->customer_ref's methods, oldest first. PAYD_OK,
 * PAYD_E_INVALID, PAYD_E_NOTFOUND or PAYD_E_NOMEM. No faults. */
int mock_list_methods(void *state, const payd_method_req *req_in,
                      payd_method_list *res, payd_arena *a, payd_error *e)
{
    const mock_instance *inst = state;
    payd_method_req req;
    payd_method_list out;
    int rc;

    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (req.customer_ref == NULL)
        return payd_fail(e, PAYD_E_INVALID, "customer_ref is required");
    rc = mock_check_method(&req, 0, e);
    if (rc != PAYD_OK)
        return rc;
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    pthread_mutex_lock(&mock_mu);
    rc = mock_methods_list_locked(inst, req.customer_ref, &out, a, e);
    pthread_mutex_unlock(&mock_mu);
    if (rc != PAYD_OK)
        return rc;
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}
