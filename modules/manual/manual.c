/*
 * modules/manual/manual.c - the manual gateway: descriptor, configuration,
 * init/fini and the gateway operations.
 *
 * Config keys of a [gateway.<name>] section with module = manual:
 *
 *   methods                   required: the enabled methods, comma
 *                             separated, of bank_transfer,
 *                             cash_on_delivery, cheque
 *   bank_account_name         required with bank_transfer: the payee
 *   bank_iban                 required with bank_transfer (checked: mod 97)
 *   bank_bic, bank_name       optional, shown with bank_transfer
 *   instructions.bank_transfer     optional extra text (up to 1000 bytes)
 *   instructions.cash_on_delivery  optional extra text
 *   instructions.cheque       required with cheque: the payee and where to
 *                             send it
 *   reference_prefix          1..8 of A-Z and 0-9 (default PAYD)
 *   auto_expire_days          0..365 (default 0 = never): payd's janitor
 *                             cancels a payment still awaiting funds after
 *                             this many days; create's instructions name
 *                             the date, confirm's and retrieve's the delay
 *
 * The operations, as payd drives them (docs/decisions.md, "Manual
 * payments"):
 *
 *   create    payment_method is the method name. Answers requires_action
 *             with next_action display_instructions and a fresh reference
 *             code as provider_ref (the buyer must now pay); with confirm
 *             set, processing with the same (create and confirm in one).
 *   confirm   the buyer says the money is on its way: processing, with the
 *             same instructions.
 *   retrieve  the module cannot know whether money arrived (only an admin
 *             can): it reports processing, awaiting funds.
 *   cancel    canceled; nothing to undo anywhere.
 *   refund    pending, with a reference for the outgoing transfer: an
 *             admin confirms the refund once the money went back.
 *
 * Nothing here touches the network or keeps state between calls, so every
 * operation is safe on many threads at once.
 */
#include "manual.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANUAL_TEXT_MAX 1000

/* An optional free-text key: 1..MANUAL_TEXT_MAX bytes, no control bytes
 * but newlines. */
static int manual_conf_text(const manual_instance *inst, const payd_config *cfg,
                            const char *key, const char **out, payd_error *e)
{
    const char *v = inst->h->config_get(cfg, key);
    size_t i, len;

    *out = NULL;
    if (v == NULL)
        return PAYD_OK;
    len = strlen(v);
    if (len == 0 || len > MANUAL_TEXT_MAX)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: %s must be 1 to %d bytes", key,
                         MANUAL_TEXT_MAX);
    for (i = 0; i < len; i++)
        if ((unsigned char)v[i] < 0x20 && v[i] != '\n')
            return payd_fail(e, PAYD_E_INVALID,
                             "manual: %s holds a control character", key);
    *out = v;
    return PAYD_OK;
}

/* `methods`: a comma separated list of known names, at least one. */
static int manual_conf_methods(manual_instance *inst, const payd_config *cfg,
                               payd_error *e)
{
    const char *v = inst->h->config_get(cfg, "methods");
    char name[32];
    int any = 0, m;

    if (v == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: methods is required (any of "
                         "bank_transfer, cash_on_delivery, cheque)");
    while (*v) {
        size_t n;
        while (*v == ' ' || *v == ',')
            v++;
        n = strcspn(v, ", ");
        if (n == 0)
            break;
        if (n >= sizeof name)
            n = sizeof name - 1;
        memcpy(name, v, n);
        name[n] = '\0';
        v += strcspn(v, ", ");
        m = manual_method_parse(name);
        if (m < 0)
            return payd_fail(e, PAYD_E_INVALID,
                             "manual: unknown method '%s' in methods "
                             "(known: bank_transfer, cash_on_delivery, "
                             "cheque)",
                             name);
        inst->enabled[m] = 1;
        any = 1;
    }
    if (!any)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: methods names no method");
    return PAYD_OK;
}

/* Read and check every key into `inst` (keys not read would be reported
 * as unknown by the host). PAYD_OK or PAYD_E_INVALID naming the key. */
static int manual_configure(manual_instance *inst, const payd_config *cfg,
                            payd_error *e)
{
    static const char *const text_keys[MANUAL_METHOD_COUNT] = {
        "instructions.bank_transfer", "instructions.cash_on_delivery",
        "instructions.cheque"};
    const payd_host *h = inst->h;
    const char *prefix = h->config_get(cfg, "reference_prefix");
    const char *iban;
    size_t i, n, k;
    int rc, m;

    if ((rc = manual_conf_methods(inst, cfg, e)) != PAYD_OK ||
        (rc = payd_conf_int(inst->h, cfg, "auto_expire_days", 0, 0, 365,
                            &inst->auto_expire_days, e,
                            "manual")) != PAYD_OK ||
        (rc = manual_conf_text(inst, cfg, "bank_account_name",
                               &inst->bank_account_name, e)) != PAYD_OK ||
        (rc = manual_conf_text(inst, cfg, "bank_bic", &inst->bank_bic, e)) !=
            PAYD_OK ||
        (rc = manual_conf_text(inst, cfg, "bank_name", &inst->bank_name, e)) !=
            PAYD_OK ||
        (rc = manual_conf_text(inst, cfg, "bank_iban", &iban, e)) != PAYD_OK)
        return rc;
    for (m = 0; m < MANUAL_METHOD_COUNT; m++)
        if ((rc = manual_conf_text(inst, cfg, text_keys[m], &inst->text[m],
                                   e)) != PAYD_OK)
            return rc;

    if (prefix == NULL)
        prefix = "PAYD";
    n = strlen(prefix);
    if (n == 0 || n > MANUAL_PREFIX_MAX)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: reference_prefix must be 1 to %d of "
                         "A-Z and 0-9",
                         MANUAL_PREFIX_MAX);
    for (i = 0; i < n; i++)
        if (!((prefix[i] >= 'A' && prefix[i] <= 'Z') ||
              (prefix[i] >= '0' && prefix[i] <= '9')))
            return payd_fail(e, PAYD_E_INVALID,
                             "manual: reference_prefix must be 1 to %d of "
                             "A-Z and 0-9",
                             MANUAL_PREFIX_MAX);
    memcpy(inst->prefix, prefix, n + 1);

    if (iban != NULL) {
        if (!manual_iban_valid(iban))
            return payd_fail(e, PAYD_E_INVALID,
                             "manual: bank_iban is not a valid IBAN "
                             "(format or check digits)");
        /* Shown grouped by four, the way banks print it. */
        for (k = 0, n = 0; iban[k] != '\0'; k++) {
            if (iban[k] == ' ')
                continue;
            if (n > 0 && n % 5 == 4)
                inst->bank_iban[n++] = ' ';
            inst->bank_iban[n++] = (char)(iban[k] >= 'a' && iban[k] <= 'z'
                                              ? iban[k] - 'a' + 'A'
                                              : iban[k]);
        }
        inst->bank_iban[n] = '\0';
    }
    if (inst->enabled[MANUAL_BANK_TRANSFER] &&
        (inst->bank_account_name == NULL || iban == NULL))
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: bank_transfer needs bank_account_name "
                         "and bank_iban");
    if (inst->enabled[MANUAL_CHEQUE] && inst->text[MANUAL_CHEQUE] == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: cheque needs instructions.cheque (the "
                         "payee and where to send it)");
    return PAYD_OK;
}

/* "bank_transfer, cheque": the enabled methods, for messages. */
static void manual_enabled_list(const manual_instance *inst, char *out,
                                size_t len)
{
    size_t n = 0;
    int i;

    out[0] = '\0';
    for (i = 0; i < MANUAL_METHOD_COUNT; i++)
        if (inst->enabled[i] && n < len)
            n += (size_t)snprintf(out + n, len - n, "%s%s", n ? ", " : "",
                                  manual_method_name(i));
}

/* init: read the config into a new instance. PAYD_OK, PAYD_E_INVALID (the
 * key is named in e->message) or PAYD_E_NOMEM. Called alone. */
static int manual_init(const payd_host *h, const payd_config *cfg,
                       void **state, payd_error *e)
{
    manual_instance *inst;
    char list[96];
    int rc;

    if (h == NULL || h->abi_major != PAYD_ABI_MAJOR ||
        h->struct_size < offsetof(payd_host, cleanse) + sizeof h->cleanse)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: host does not provide the ABI 1.0 "
                         "services");
    inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "manual: out of memory");
    inst->h = h;
    rc = manual_configure(inst, cfg, e);
    if (rc != PAYD_OK) {
        free(inst);
        return rc;
    }
    manual_enabled_list(inst, list, sizeof list);
    h->log(h, PAYD_LOG_INFO,
           "manual gateway ready (%s; references %s-...; expiry %lld days)",
           list, inst->prefix, (long long)inst->auto_expire_days);
    *state = inst;
    return PAYD_OK;
}

static void manual_fini(void *state)
{
    free(state);
}

/* 1 for 1..32 of a-z and '_': a name safe to repeat in an error. */
static int manual_name_like(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz_");

    return n > 0 && n <= 32 && s[n] == '\0';
}

/* The enabled method named by req->payment_method, or PAYD_E_INVALID
 * naming what was asked and what is enabled. */
static int manual_pick_method(const manual_instance *inst,
                              const payd_payment_req *req, int *method,
                              payd_error *e)
{
    char list[96];
    int m = manual_method_parse(req->payment_method);

    if (m >= 0 && inst->enabled[m]) {
        *method = m;
        return PAYD_OK;
    }
    manual_enabled_list(inst, list, sizeof list);
    if (req->payment_method == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: payment_method is required: one of %s",
                         list);
    /* Echo only what looks like a method name: never a card number or a
     * token someone pasted here by mistake. */
    if (!manual_name_like(req->payment_method))
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: unknown payment method (enabled: %s)",
                         list);
    return payd_fail(e, PAYD_E_INVALID,
                     "manual: payment method '%s' is %s here (enabled: %s)",
                     req->payment_method, m >= 0 ? "not enabled" : "unknown",
                     list);
}

/*
 * The start of every payment operation: reads the host's request into the
 * module's own copy `req` (payd_copy_in: fields beyond the host's
 * struct_size read as 0) and zeroes the result `out` the operation fills.
 * The operation hands `out` to manual_finish, which writes only what the
 * host's struct holds. PAYD_OK or PAYD_E_INVALID.
 */
static int manual_begin(const payd_payment_req *req_in, payd_payment_req *req,
                        payd_payment_res *out, payd_error *e)
{
    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    if (payd_copy_in(req, sizeof *req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: request has no struct_size");
    return PAYD_OK;
}

/* Writes `out` into the host's `res` when the operation succeeded; returns
 * `rc` either way. */
static int manual_finish(int rc, payd_payment_res *res,
                         const payd_payment_res *out)
{
    if (rc == PAYD_OK)
        payd_copy_out(res, out, sizeof *out);
    return rc;
}

/* Fills `out` for `ref`: status plus the instructions. `created_at` is the
 * payment's creation time when the caller knows it (create), else -1:
 * the expiry line then names the delay, not a date, since a date counted
 * from a later call would promise the buyer more time than the janitor
 * gives (it counts from payments.created_at). */
static int manual_answer(const manual_instance *inst,
                         const payd_payment_req *req, int method,
                         const char *ref, int status, int64_t created_at,
                         payd_payment_res *out, payd_arena *a, payd_error *e)
{
    const payd_host *h = inst->h;
    char *text;

    text = manual_instructions(inst, method, ref, req->amount, req->currency,
                               req->currency_exponent, created_at, a);
    if (text == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: cannot state %lld in %.3s (exponent %d)",
                         (long long)req->amount,
                         req->currency ? req->currency : "?",
                         req->currency_exponent);
    out->status = status;
    out->provider_ref = h->strdup(a, ref);
    out->next_action = PAYD_NA_DISPLAY_INSTRUCTIONS;
    out->next_action_text = text;
    out->amount = req->amount;
    out->raw = h->sprintf(a, "{\"method\":\"%s\",\"reference\":\"%s\"}",
                          manual_method_name(method), ref);
    if (out->provider_ref == NULL || out->raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "manual: out of memory");
    return PAYD_OK;
}

static int manual_check_amount(const payd_payment_req *req, payd_error *e)
{
    if (req->amount <= 0 || req->currency == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: a positive amount and a currency are "
                         "required");
    return PAYD_OK;
}

/* create: PAYD_OK (requires_action with instructions; processing when
 * req->confirm asks to confirm at once), PAYD_E_INVALID (method unknown or
 * disabled, bad amount) or PAYD_E_INTERNAL (no randomness). */
static int manual_create(void *state, const payd_payment_req *req_in,
                         payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const manual_instance *inst = state;
    payd_payment_req req;
    payd_payment_res out;
    char ref[MANUAL_REF_MAX];
    int method, rc;

    PAYD_ERROR_GUARD(e);
    if ((rc = manual_begin(req_in, &req, &out, e)) != PAYD_OK ||
        (rc = manual_check_amount(&req, e)) != PAYD_OK ||
        (rc = manual_pick_method(inst, &req, &method, e)) != PAYD_OK)
        return rc;
    if (manual_reference_new(inst, ref) != PAYD_OK)
        return payd_fail(e, PAYD_E_INTERNAL, "manual: no random bytes");
    rc = manual_answer(inst, &req, method, ref,
                       req.confirm ? PAYD_PS_PROCESSING
                                   : PAYD_PS_REQUIRES_ACTION,
                       inst->h->now(inst->h), &out, a, e);
    return manual_finish(rc, res, &out);
}

/* The reference of an existing payment, checked; PAYD_E_NOTFOUND when it
 * is not one of ours. */
static int manual_known_ref(const manual_instance *inst,
                            const payd_payment_req *req, payd_error *e)
{
    if (!manual_reference_valid(inst, req->provider_ref))
        return payd_fail(e, PAYD_E_NOTFOUND,
                         "manual: '%.40s' is not a reference of this "
                         "gateway",
                         req->provider_ref ? req->provider_ref : "");
    return PAYD_OK;
}

/* confirm: the buyer has the instructions and says the money is on its
 * way (or, for cash on delivery, the order is placed): processing. */
static int manual_confirm(void *state, const payd_payment_req *req_in,
                          payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const manual_instance *inst = state;
    payd_payment_req req;
    payd_payment_res out;
    int method, rc;

    PAYD_ERROR_GUARD(e);
    if ((rc = manual_begin(req_in, &req, &out, e)) != PAYD_OK ||
        (rc = manual_check_amount(&req, e)) != PAYD_OK ||
        (rc = manual_known_ref(inst, &req, e)) != PAYD_OK ||
        (rc = manual_pick_method(inst, &req, &method, e)) != PAYD_OK)
        return rc;
    rc = manual_answer(inst, &req, method, req.provider_ref,
                       PAYD_PS_PROCESSING, -1, &out, a, e);
    return manual_finish(rc, res, &out);
}

/* retrieve: there is no provider to ask; as far as the module can tell,
 * the funds are awaited. Only an admin's approval settles a payment. */
static int manual_retrieve(void *state, const payd_payment_req *req_in,
                           payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const manual_instance *inst = state;
    payd_payment_req req;
    payd_payment_res out;
    int method, rc;

    PAYD_ERROR_GUARD(e);
    if ((rc = manual_begin(req_in, &req, &out, e)) != PAYD_OK ||
        (rc = manual_known_ref(inst, &req, e)) != PAYD_OK)
        return rc;
    if (manual_pick_method(inst, &req, &method, e) != PAYD_OK) {
        /* The method was disabled since: still report, without text. */
        memset(e, 0, sizeof *e);
        out.status = PAYD_PS_PROCESSING;
        out.provider_ref = inst->h->strdup(a, req.provider_ref);
        out.amount = req.amount;
        if (out.provider_ref == NULL)
            return payd_fail(e, PAYD_E_NOMEM, "manual: out of memory");
        return manual_finish(PAYD_OK, res, &out);
    }
    rc = manual_answer(inst, &req, method, req.provider_ref,
                       PAYD_PS_PROCESSING, -1, &out, a, e);
    return manual_finish(rc, res, &out);
}

/* cancel: canceled; nothing to undo anywhere. */
static int manual_cancel(void *state, const payd_payment_req *req_in,
                         payd_payment_res *res, payd_arena *a, payd_error *e)
{
    const manual_instance *inst = state;
    payd_payment_req req;
    payd_payment_res out;
    int rc;

    PAYD_ERROR_GUARD(e);
    if ((rc = manual_begin(req_in, &req, &out, e)) != PAYD_OK ||
        (rc = manual_known_ref(inst, &req, e)) != PAYD_OK)
        return rc;
    out.status = PAYD_PS_CANCELED;
    out.provider_ref = inst->h->strdup(a, req.provider_ref);
    out.amount = req.amount;
    if (out.provider_ref == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "manual: out of memory");
    return manual_finish(PAYD_OK, res, &out);
}

/* refund: recorded as pending with a reference for the transfer back;
 * an admin confirms it (POST /v1/admin/refunds/{id}/confirm). */
static int manual_refund(void *state, const payd_refund_req *req_in,
                         payd_refund_res *res, payd_arena *a, payd_error *e)
{
    const manual_instance *inst = state;
    payd_refund_req req;
    payd_refund_res out;
    char ref[MANUAL_REF_MAX];

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: request has no struct_size");
    if (req.amount <= 0)
        return payd_fail(e, PAYD_E_INVALID,
                         "manual: a refund needs a positive amount");
    if (manual_reference_new(inst, ref) != PAYD_OK)
        return payd_fail(e, PAYD_E_INTERNAL, "manual: no random bytes");
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    out.status = PAYD_RS_PENDING;
    out.refund_ref = inst->h->strdup(a, ref);
    out.raw = inst->h->sprintf(a, "{\"reference\":\"%s\"}", ref);
    if (out.refund_ref == NULL || out.raw == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "manual: out of memory");
    payd_copy_out(res, &out, sizeof out);
    return PAYD_OK;
}

/* The enabled methods, so a checkout page can offer them. */
static const char *manual_public_info(void *state)
{
    static const char *const json[8] = {
        "{\"methods\":[]}",
        "{\"methods\":[\"bank_transfer\"]}",
        "{\"methods\":[\"cash_on_delivery\"]}",
        "{\"methods\":[\"bank_transfer\",\"cash_on_delivery\"]}",
        "{\"methods\":[\"cheque\"]}",
        "{\"methods\":[\"bank_transfer\",\"cheque\"]}",
        "{\"methods\":[\"cash_on_delivery\",\"cheque\"]}",
        "{\"methods\":[\"bank_transfer\",\"cash_on_delivery\",\"cheque\"]}"};
    const manual_instance *inst = state;

    return json[inst->enabled[0] | inst->enabled[1] << 1 |
                inst->enabled[2] << 2];
}

static const payd_gateway_ops manual_gateway_ops = {
    .struct_size = sizeof(payd_gateway_ops),
    .create = manual_create,
    .retrieve = manual_retrieve,
    .confirm = manual_confirm,
    .cancel = manual_cancel,
    .refund = manual_refund,
    .public_info = manual_public_info,
};

static const payd_module manual_module = {
    PAYD_MODULE_V1,
    .name = "manual",
    .version = "1.0.0",
    .description = "Bank transfer, cash on delivery and cheque, approved by "
                   "an admin",
    .kind = PAYD_KIND_GATEWAY,
    .caps = PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND | PAYD_CAP_CANCEL |
            PAYD_CAP_CONFIRM | PAYD_CAP_ADMIN_SETTLES,
    .init = manual_init,
    .fini = manual_fini,
    .gateway = &manual_gateway_ops,
};

PAYD_DECLARE_MODULE(manual_module)
