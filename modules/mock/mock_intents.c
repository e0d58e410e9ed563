/*
 * modules/mock/mock_intents.c - the fake provider's payment intents and
 * refunds: the state machine the test cards drive.
 *
 *   requires_payment_method -> requires_confirmation -> (confirm)
 *     -> succeeded | requires_capture      (visa, mastercard, timeout)
 *     -> failed                            (declines, failed 3-D Secure)
 *     -> requires_action -> succeeded | requires_capture | failed  (3DS)
 *     -> processing -> succeeded | requires_capture  (after settle_ms)
 *   requires_capture -> succeeded (capture, maybe partial) | canceled
 *
 * Each change queues the webhook a provider would send. A processing
 * intent settles on its timer or on the first read after its time, so its
 * state never depends on the timer alone. Refunds succeed synchronously.
 * Everything here runs with mock_mu held.
 */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct mock_intent {
    char ref[MOCK_REF_SIZE];
    char *account;               /* instance that created it */
    char *payment_id;
    char *return_url;
    char *next_action_url;
    char method[MOCK_REF_SIZE];  /* token name or saved ref; "" = none */
    int card;                    /* test card (mock_card_at), -1 = none */
    char currency[4];
    int currency_exponent;
    int status;
    int capture_method;
    int64_t amount;
    int64_t amount_capturable;
    int64_t amount_captured;
    int64_t amount_refunded;
    const char *failure_code;    /* static strings */
    const char *failure_message;
    int64_t created;
    int64_t settle_at_ms;        /* monotonic, for processing intents */
} mock_intent;

typedef struct mock_refund_record {
    char ref[MOCK_REF_SIZE];
    char intent_ref[MOCK_REF_SIZE];
    char *payment_id;
    char *refund_id;
    char *reason;
    char currency[4];
    int64_t amount;
    int status;
    int64_t created;
} mock_refund_record;

static void mock_intent_free(void *p)
{
    mock_intent *it = p;

    if (it == NULL)
        return;
    free(it->account);
    free(it->payment_id);
    free(it->return_url);
    free(it->next_action_url);
    free(it);
}

static void mock_refund_free(void *p)
{
    mock_refund_record *rf = p;

    if (rf == NULL)
        return;
    free(rf->payment_id);
    free(rf->refund_id);
    free(rf->reason);
    free(rf);
}

static int mock_intent_is_terminal(const void *p)
{
    const mock_intent *it = p;

    return it->status == PAYD_PS_SUCCEEDED || it->status == PAYD_PS_FAILED ||
           it->status == PAYD_PS_CANCELED;
}

/* ------------------------------------------------------------------------ */
/* Intents                                                                  */
/* ------------------------------------------------------------------------ */

/* The intent's JSON for `raw`: a Stripe-like object without secrets.
 * Returns a heap string or NULL on OOM. */
static char *mock_intent_raw(const mock_intent *it)
{
    mock_buf b = {0};

    mock_buf_printf(&b,
                    "{\"id\":\"%s\",\"object\":\"payment_intent\","
                    "\"livemode\":false,\"amount\":%lld,\"currency\":",
                    it->ref, (long long)it->amount);
    mock_buf_json_str(&b, it->currency);
    mock_buf_puts(&b, ",\"status\":");
    mock_buf_json_str(&b, payd_payment_status_name(it->status));
    mock_buf_printf(&b,
                    ",\"capture_method\":\"%s\",\"amount_capturable\":%lld,"
                    "\"amount_received\":%lld,\"amount_refunded\":%lld,"
                    "\"payment_method\":",
                    it->capture_method == PAYD_CAPTURE_MANUAL ? "manual"
                                                              : "automatic",
                    (long long)it->amount_capturable,
                    (long long)it->amount_captured,
                    (long long)it->amount_refunded);
    mock_buf_json_str(&b, it->method[0] != '\0' ? it->method : NULL);
    mock_buf_puts(&b, ",\"next_action\":");
    if (it->status == PAYD_PS_REQUIRES_ACTION && it->next_action_url != NULL) {
        mock_buf_puts(&b, "{\"type\":\"redirect_to_url\",\"url\":");
        mock_buf_json_str(&b, it->next_action_url);
        mock_buf_puts(&b, "}");
    } else {
        mock_buf_puts(&b, "null");
    }
    mock_buf_puts(&b, ",\"last_payment_error\":");
    if (it->status == PAYD_PS_FAILED && it->failure_code != NULL) {
        mock_buf_puts(&b, "{\"code\":");
        mock_buf_json_str(&b, it->failure_code);
        mock_buf_puts(&b, ",\"message\":");
        mock_buf_json_str(&b, it->failure_message);
        mock_buf_puts(&b, "}");
    } else {
        mock_buf_puts(&b, "null");
    }
    mock_buf_puts(&b, ",\"metadata\":{\"payment_id\":");
    mock_buf_json_str(&b, it->payment_id);
    mock_buf_printf(&b, "},\"created\":%lld}", (long long)it->created);
    return mock_buf_take(&b, NULL);
}

/*
 * Fill the payload of `r` from the intent's current state (r->rc is left
 * alone unless memory runs out). Returns r->rc.
 */
static int mock_intent_render(const mock_intent *it, mock_result *r)
{
    r->status = it->status;
    r->amount = it->amount;
    r->amount_capturable = it->amount_capturable;
    r->amount_captured = it->amount_captured;
    r->ref = strdup(it->ref);
    r->raw = mock_intent_raw(it);
    if (it->status == PAYD_PS_REQUIRES_ACTION && it->next_action_url != NULL) {
        r->next_action = PAYD_NA_REDIRECT_URL;
        r->url = strdup(it->next_action_url);
        if (r->url == NULL)
            goto oom;
    }
    if (it->status == PAYD_PS_FAILED && it->failure_code != NULL) {
        r->failure_code = strdup(it->failure_code);
        r->failure_message = mock_strdup_or_null(it->failure_message);
        if (r->failure_code == NULL ||
            (it->failure_message != NULL && r->failure_message == NULL))
            goto oom;
    }
    if (r->ref == NULL || r->raw == NULL)
        goto oom;
    return r->rc;
oom:
    mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return r->rc;
}

/* Queue the webhook that tells the intent's instance about its state. */
static void mock_intent_emit_locked(const mock_intent *it, const char *type)
{
    mock_event_data d = {0};

    d.type = type;
    d.provider_ref = it->ref;
    d.payment_id = it->payment_id;
    d.currency = it->currency;
    if (strcmp(type, "payment.succeeded") == 0)
        d.amount = it->amount_captured;
    else if (strcmp(type, "payment.capturable") == 0)
        d.amount = it->amount_capturable;
    else
        d.amount = it->amount;
    if (strcmp(type, "payment.failed") == 0) {
        d.failure_code = it->failure_code;
        d.failure_message = it->failure_message;
    }
    mock_webhooks_emit_locked(it->account, &d);
}

/* The card authorized the payment: capture now, or hold for capture. */
static void mock_intent_authorize_locked(mock_intent *it)
{
    if (it->capture_method == PAYD_CAPTURE_MANUAL) {
        it->status = PAYD_PS_REQUIRES_CAPTURE;
        it->amount_capturable = it->amount;
        mock_intent_emit_locked(it, "payment.capturable");
    } else {
        it->status = PAYD_PS_SUCCEEDED;
        it->amount_captured = it->amount;
        mock_intent_emit_locked(it, "payment.succeeded");
    }
}

static void mock_intent_fail_locked(mock_intent *it, const char *code,
                                    const char *message)
{
    it->status = PAYD_PS_FAILED;
    it->amount_capturable = 0;
    it->failure_code = code;
    it->failure_message = message;
    mock_intent_emit_locked(it, "payment.failed");
}

/* Settle a processing intent whose time has come. Called on every read
 * and by the settle timer, so state never depends on the timer alone. */
static void mock_intent_tick_locked(mock_intent *it)
{
    if (it->status == PAYD_PS_PROCESSING && mock_mono_ms() >= it->settle_at_ms)
        mock_intent_authorize_locked(it);
}

void mock_intents_settle_due_locked(const char *ref)
{
    mock_intent *it = mock_map_get(&mock_reg.intents, ref);

    if (it != NULL)
        mock_intent_tick_locked(it);
}

/*
 * Confirm the intent with test card `card`: the heart of the mock. Returns
 * PAYD_OK (succeeded, requires_capture, requires_action or processing),
 * PAYD_E_DECLINED (r carries the decline code) or PAYD_E_NOMEM.
 */
static int mock_intent_run_card_locked(const mock_instance *inst,
                                       mock_intent *it, int card,
                                       mock_result *r)
{
    const mock_card *c = mock_card_at(card);

    it->card = card;
    switch (c->behaviour) {
    case MOCK_B_TIMEOUT:
        /* Charged for real; only the response to this call is lost. */
        r->lost = 1;
        mock_intent_authorize_locked(it);
        return PAYD_OK;
    case MOCK_B_DECLINE:
        mock_intent_fail_locked(it, c->failure_code, c->failure_message);
        mock_result_fail(r, PAYD_E_DECLINED, c->failure_code, "%s",
                         c->failure_message);
        return r->rc;
    case MOCK_B_3DS: {
        mock_buf b = {0};
        char *url;

        mock_buf_printf(&b, "%s/mock/3ds/%s", inst->public_url, it->ref);
        url = mock_buf_take(&b, NULL);
        if (url == NULL) {
            mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
            return r->rc;
        }
        free(it->next_action_url);
        it->next_action_url = url;
        it->status = PAYD_PS_REQUIRES_ACTION;
        return PAYD_OK;
    }
    case MOCK_B_PROCESSING:
        it->status = PAYD_PS_PROCESSING;
        it->settle_at_ms = mock_mono_ms() + inst->settle_ms;
        mock_webhooks_schedule_settle_locked(it->ref, it->settle_at_ms);
        return PAYD_OK;
    default:
        mock_intent_authorize_locked(it);
        return PAYD_OK;
    }
}

/* Look up the intent an op names, settling it first if due. */
static mock_intent *mock_intent_find_locked(const char *ref, mock_result *r)
{
    mock_intent *it = ref != NULL ? mock_map_get(&mock_reg.intents, ref) : NULL;

    if (it == NULL) {
        mock_result_fail(r, PAYD_E_NOTFOUND, NULL, "no such payment intent");
        return NULL;
    }
    mock_intent_tick_locked(it);
    return it;
}

/*
 * create: a new intent, confirmed at once when req->confirm. The caller
 * checked the scalar inputs. Returns r->rc: PAYD_OK, PAYD_E_DECLINED (the
 * intent exists and failed), PAYD_E_INVALID (nothing created),
 * PAYD_E_NOMEM or PAYD_E_INTERNAL.
 */
int mock_intents_create_locked(const mock_instance *inst,
                               const payd_payment_req *req, mock_result *r)
{
    char name[MOCK_REF_SIZE] = "";
    int card = -1;
    mock_intent *it;
    mock_stats *st;

    if (req->payment_method != NULL) {
        card = mock_method_resolve_locked(req->payment_method, 1, name);
        if (card < 0) {
            mock_result_fail(r, PAYD_E_INVALID, NULL,
                             "unknown test payment method");
            return r->rc;
        }
    }
    if (req->confirm && card < 0) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "cannot confirm without a payment method");
        return r->rc;
    }
    it = calloc(1, sizeof *it);
    if (it == NULL)
        goto oom;
    it->card = card;
    snprintf(it->method, sizeof it->method, "%s", name);
    snprintf(it->currency, sizeof it->currency, "%s", req->currency);
    it->currency_exponent = req->currency_exponent;
    it->amount = req->amount;
    it->capture_method = req->capture_method;
    it->created = inst->h->now(inst->h);
    it->account = strdup(inst->account);
    it->payment_id = mock_strdup_or_null(req->payment_id);
    it->return_url = mock_strdup_or_null(req->return_url);
    if (it->account == NULL || (req->payment_id && !it->payment_id) ||
        (req->return_url && !it->return_url))
        goto oom;
    if (mock_new_ref(inst->h, "mock_pi_", it->ref) != PAYD_OK) {
        mock_intent_free(it);
        mock_result_fail(r, PAYD_E_INTERNAL, NULL, "mock: no random bytes");
        return r->rc;
    }
    while (mock_reg.intents.count >= MOCK_MAX_INTENTS)
        mock_intent_free(
            mock_map_evict(&mock_reg.intents, mock_intent_is_terminal, 256));
    if (mock_map_put(&mock_reg.intents, it->ref, it) != 0)
        goto oom;
    st = mock_stats_get_locked(it->payment_id, 1);
    if (st != NULL)
        st->intents_created++;
    if (req->confirm)
        mock_intent_run_card_locked(inst, it, card, r);
    else
        it->status = card >= 0 ? PAYD_PS_REQUIRES_CONFIRMATION
                               : PAYD_PS_REQUIRES_PAYMENT_METHOD;
    if (r->rc == PAYD_E_NOMEM)
        return r->rc;
    return mock_intent_render(it, r);
oom:
    mock_intent_free(it);
    mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return r->rc;
}

/*
 * confirm: run the card logic on an intent waiting for a method or for
 * confirmation; req->payment_method replaces the stored one, and
 * req->return_url the stored return URL. Returns like create, plus
 * PAYD_E_NOTFOUND.
 */
int mock_intents_confirm_locked(const mock_instance *inst,
                                const payd_payment_req *req, mock_result *r)
{
    char name[MOCK_REF_SIZE] = "";
    mock_intent *it = mock_intent_find_locked(req->provider_ref, r);
    int card;

    if (it == NULL)
        return r->rc;
    if (it->status != PAYD_PS_REQUIRES_PAYMENT_METHOD &&
        it->status != PAYD_PS_REQUIRES_CONFIRMATION) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "payment intent cannot be confirmed in status %s",
                         payd_payment_status_name(it->status));
        return r->rc;
    }
    card = it->card;
    if (req->payment_method != NULL) {
        card = mock_method_resolve_locked(req->payment_method, 1, name);
        if (card < 0) {
            mock_result_fail(r, PAYD_E_INVALID, NULL,
                             "unknown test payment method");
            return r->rc;
        }
    }
    if (card < 0) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "cannot confirm without a payment method");
        return r->rc;
    }
    if (req->return_url != NULL) {
        char *url = strdup(req->return_url);

        if (url == NULL) {
            mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
            return r->rc;
        }
        free(it->return_url);
        it->return_url = url;
    }
    if (name[0] != '\0')
        snprintf(it->method, sizeof it->method, "%s", name);
    mock_intent_run_card_locked(inst, it, card, r);
    if (r->rc == PAYD_E_NOMEM)
        return r->rc;
    return mock_intent_render(it, r);
}

/*
 * capture: all (amount_to_capture 0) or part of an authorized intent; the
 * rest is released. Returns PAYD_OK, PAYD_E_INVALID (wrong status, too
 * much), PAYD_E_NOTFOUND or PAYD_E_NOMEM.
 */
int mock_intents_capture_locked(const mock_instance *inst,
                                const payd_payment_req *req, mock_result *r)
{
    mock_intent *it = mock_intent_find_locked(req->provider_ref, r);
    int64_t amount;
    mock_stats *st;

    (void)inst;
    if (it == NULL)
        return r->rc;
    if (it->status != PAYD_PS_REQUIRES_CAPTURE) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "payment intent cannot be captured in status %s",
                         payd_payment_status_name(it->status));
        return r->rc;
    }
    amount = req->amount_to_capture > 0 ? req->amount_to_capture
                                        : it->amount_capturable;
    if (amount > it->amount_capturable) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "amount_to_capture exceeds the capturable amount");
        return r->rc;
    }
    it->amount_captured = amount;
    it->amount_capturable = 0;
    it->status = PAYD_PS_SUCCEEDED;
    st = mock_stats_get_locked(it->payment_id, 1);
    if (st != NULL)
        st->captures++;
    mock_intent_emit_locked(it, "payment.succeeded");
    return mock_intent_render(it, r);
}

/*
 * cancel: from requires_payment_method, requires_confirmation,
 * requires_action or requires_capture. Returns PAYD_OK, PAYD_E_INVALID,
 * PAYD_E_NOTFOUND or PAYD_E_NOMEM.
 */
int mock_intents_cancel_locked(const mock_instance *inst,
                               const payd_payment_req *req, mock_result *r)
{
    mock_intent *it = mock_intent_find_locked(req->provider_ref, r);

    (void)inst;
    if (it == NULL)
        return r->rc;
    switch (it->status) {
    case PAYD_PS_REQUIRES_PAYMENT_METHOD:
    case PAYD_PS_REQUIRES_CONFIRMATION:
    case PAYD_PS_REQUIRES_ACTION:
    case PAYD_PS_REQUIRES_CAPTURE:
        break;
    default:
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "payment intent cannot be canceled in status %s",
                         payd_payment_status_name(it->status));
        return r->rc;
    }
    it->status = PAYD_PS_CANCELED;
    it->amount_capturable = 0;
    mock_intent_emit_locked(it, "payment.canceled");
    return mock_intent_render(it, r);
}

/* retrieve: the intent as it is now. PAYD_OK, PAYD_E_NOTFOUND or NOMEM. */
int mock_intents_retrieve_locked(const payd_payment_req *req, mock_result *r)
{
    mock_intent *it = mock_intent_find_locked(req->provider_ref, r);

    if (it == NULL)
        return r->rc;
    return mock_intent_render(it, r);
}

/* ------------------------------------------------------------------------ */
/* 3-D Secure challenge                                                     */
/* ------------------------------------------------------------------------ */

/* What the challenge page shows. PAYD_OK or PAYD_E_NOTFOUND. */
int mock_intents_challenge_locked(const char *ref, mock_challenge *out)
{
    mock_intent *it = mock_map_get(&mock_reg.intents, ref);

    if (it == NULL)
        return PAYD_E_NOTFOUND;
    mock_intent_tick_locked(it);
    out->status = it->status;
    out->amount = it->amount;
    memcpy(out->currency, it->currency, sizeof out->currency);
    out->currency_exponent = it->currency_exponent;
    return PAYD_OK;
}

/*
 * The buyer approved or failed the challenge. Returns PAYD_OK,
 * PAYD_E_NOTFOUND, or PAYD_E_INVALID when the intent no longer waits for
 * it. `*return_url` gets a heap copy of the intent's return URL or NULL.
 */
int mock_intents_challenge_complete_locked(const char *ref, int approve,
                                           char **return_url)
{
    mock_intent *it = mock_map_get(&mock_reg.intents, ref);

    *return_url = NULL;
    if (it == NULL)
        return PAYD_E_NOTFOUND;
    if (it->status != PAYD_PS_REQUIRES_ACTION)
        return PAYD_E_INVALID;
    if (approve)
        mock_intent_authorize_locked(it);
    else
        mock_intent_fail_locked(it, "authentication_required",
                                "The cardholder failed 3-D Secure "
                                "authentication.");
    *return_url = mock_strdup_or_null(it->return_url);
    return PAYD_OK;
}

/* ------------------------------------------------------------------------ */
/* Refunds                                                                  */
/* ------------------------------------------------------------------------ */

static const char *mock_refund_status_name(int status)
{
    switch (status) {
    case PAYD_RS_SUCCEEDED: return "succeeded";
    case PAYD_RS_FAILED: return "failed";
    case PAYD_RS_CANCELED: return "canceled";
    default: return "pending";
    }
}

static char *mock_refund_raw(const mock_refund_record *rf)
{
    mock_buf b = {0};

    mock_buf_printf(&b,
                    "{\"id\":\"%s\",\"object\":\"refund\",\"amount\":%lld,"
                    "\"currency\":",
                    rf->ref, (long long)rf->amount);
    mock_buf_json_str(&b, rf->currency);
    mock_buf_printf(&b, ",\"payment_intent\":\"%s\",\"status\":\"%s\","
                        "\"reason\":",
                    rf->intent_ref, mock_refund_status_name(rf->status));
    mock_buf_json_str(&b, rf->reason);
    mock_buf_puts(&b, ",\"metadata\":{\"refund_id\":");
    mock_buf_json_str(&b, rf->refund_id);
    mock_buf_puts(&b, ",\"payment_id\":");
    mock_buf_json_str(&b, rf->payment_id);
    mock_buf_printf(&b, "},\"created\":%lld}", (long long)rf->created);
    return mock_buf_take(&b, NULL);
}

static int mock_refund_render(const mock_refund_record *rf, mock_result *r)
{
    r->status = rf->status;
    r->amount = rf->amount;
    r->ref = strdup(rf->ref);
    r->raw = mock_refund_raw(rf);
    if (r->ref == NULL || r->raw == NULL)
        mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return r->rc;
}

/*
 * refund: part or all of what is captured and not yet refunded; succeeds at
 * once and also emits refund.succeeded. Returns PAYD_OK, PAYD_E_INVALID,
 * PAYD_E_NOTFOUND, PAYD_E_NOMEM or PAYD_E_INTERNAL.
 */
int mock_intents_refund_locked(const mock_instance *inst,
                               const payd_refund_req *req, mock_result *r)
{
    mock_intent *it = mock_intent_find_locked(req->provider_ref, r);
    mock_refund_record *rf;
    mock_stats *st;
    mock_event_data d = {0};

    if (it == NULL)
        return r->rc;
    if (it->status != PAYD_PS_SUCCEEDED) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "payment intent has nothing captured to refund "
                         "(status %s)",
                         payd_payment_status_name(it->status));
        return r->rc;
    }
    if (req->currency != NULL && strcasecmp(req->currency, it->currency) != 0) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "refund currency does not match the payment");
        return r->rc;
    }
    if (req->amount > it->amount_captured - it->amount_refunded) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "refund exceeds captured amount");
        return r->rc;
    }
    rf = calloc(1, sizeof *rf);
    if (rf == NULL)
        goto oom;
    snprintf(rf->intent_ref, sizeof rf->intent_ref, "%s", it->ref);
    memcpy(rf->currency, it->currency, sizeof rf->currency);
    rf->amount = req->amount;
    rf->status = PAYD_RS_SUCCEEDED;
    rf->created = inst->h->now(inst->h);
    rf->payment_id = mock_strdup_or_null(it->payment_id != NULL
                                             ? it->payment_id
                                             : req->payment_id);
    rf->refund_id = mock_strdup_or_null(req->refund_id);
    rf->reason = mock_strdup_or_null(req->reason);
    if ((rf->payment_id == NULL && (it->payment_id || req->payment_id)) ||
        (req->refund_id && !rf->refund_id) || (req->reason && !rf->reason))
        goto oom;
    if (mock_new_ref(inst->h, "mock_re_", rf->ref) != PAYD_OK) {
        mock_refund_free(rf);
        mock_result_fail(r, PAYD_E_INTERNAL, NULL, "mock: no random bytes");
        return r->rc;
    }
    while (mock_reg.refunds.count >= MOCK_MAX_REFUNDS)
        mock_refund_free(mock_map_evict(&mock_reg.refunds, NULL, 0));
    if (mock_map_put(&mock_reg.refunds, rf->ref, rf) != 0)
        goto oom;
    it->amount_refunded += rf->amount;
    st = mock_stats_get_locked(rf->payment_id, 1);
    if (st != NULL)
        st->refunds++;
    d.type = "refund.succeeded";
    d.provider_ref = it->ref;
    d.payment_id = rf->payment_id;
    d.amount = rf->amount;
    d.currency = rf->currency;
    d.refund_ref = rf->ref;
    d.refund_id = rf->refund_id;
    mock_webhooks_emit_locked(it->account, &d);
    return mock_refund_render(rf, r);
oom:
    mock_refund_free(rf);
    mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return r->rc;
}

/* refund_retrieve: PAYD_OK, PAYD_E_NOTFOUND or PAYD_E_NOMEM. */
int mock_intents_refund_retrieve_locked(const payd_refund_req *req,
                                        mock_result *r)
{
    const mock_refund_record *rf = NULL;

    if (req->refund_ref != NULL)
        rf = mock_map_get(&mock_reg.refunds, req->refund_ref);

    if (rf == NULL) {
        mock_result_fail(r, PAYD_E_NOTFOUND, NULL, "no such refund");
        return r->rc;
    }
    return mock_refund_render(rf, r);
}

/* ------------------------------------------------------------------------ */
/* Test controls                                                            */
/* ------------------------------------------------------------------------ */

int mock_intents_test_set_locked(const char *ref, int status,
                                 int64_t amount_captured, mock_result *r)
{
    mock_intent *it = mock_intent_find_locked(ref, r);

    if (it == NULL)
        return r->rc;
    if (amount_captured > it->amount) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "amount_captured exceeds the intent's amount");
        return r->rc;
    }
    if (status != 0)
        it->status = status;
    if (amount_captured >= 0)
        it->amount_captured = amount_captured;
    if (it->amount_refunded > it->amount_captured)
        it->amount_refunded = it->amount_captured;
    return mock_intent_render(it, r);
}

int mock_intents_test_refund_set_locked(const char *ref, int status,
                                        mock_result *r)
{
    mock_refund_record *rf = mock_map_get(&mock_reg.refunds, ref);
    mock_intent *it;
    int was = 0, now = status == PAYD_RS_SUCCEEDED;

    if (rf == NULL) {
        mock_result_fail(r, PAYD_E_NOTFOUND, NULL, "no such refund");
        return r->rc;
    }
    was = rf->status == PAYD_RS_SUCCEEDED;
    rf->status = status;
    /* The intent's refunded total follows its succeeded refunds. */
    it = mock_map_get(&mock_reg.intents, rf->intent_ref);
    if (it != NULL && was != now) {
        it->amount_refunded += now ? rf->amount : -rf->amount;
        if (it->amount_refunded < 0)
            it->amount_refunded = 0;
    }
    return mock_refund_render(rf, r);
}

/* Free every intent and refund (last fini). */
void mock_intents_destroy_locked(void)
{
    mock_map_destroy(&mock_reg.intents, mock_intent_free);
    mock_map_destroy(&mock_reg.refunds, mock_refund_free);
}
