/*
 * payments.c - payment operations.
 *
 * Every operation that reaches a provider runs in three steps, so that no
 * database lock is held while the network is slow and a crash at any point
 * leaves a row the janitor can finish:
 *
 *   1. a short transaction that checks the state under the row lock and
 *      records the intent (pending_op, a janitor lease) and commits;
 *   2. the module call, with the derived idempotency key
 *      payd-<payment>-<op>-<attempt>, so any retry of this step is the
 *      same request to the provider and can never charge twice;
 *   3. a second short transaction that re-reads the row under lock and
 *      applies the answer through the state machine (payment_state.c).
 *
 * A PAYD_E_TRANSIENT answer is never treated as a failure: the payment
 * stays processing with outcome_unknown set, the client gets 202, and the
 * janitor re-issues the same operation with the same key on a backoff
 * schedule until the provider gives a definite answer.
 */
#include "payments.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cardguard.h"
#include "ids.h"
#include "janitor.h"
#include "list_page.h"
#include "log.h"
#include "metrics.h"
#include "methods.h"
#include "money.h"
#include "orders.h"
#include "params.h"
#include "payment_state.h"
#include "routing.h"
#include "webhooks.h"

#define LEASE_S 120 /* how long a step-1 intent waits before the janitor may take it */

STORE_STMT(stmt_insert,
           "INSERT INTO payments (id, order_id, user_id, gateway, status, currency, amount, capture_method,"
           " payment_method, return_url, pending_op, janitor_next_at, customer_id, customer_ref,"
           " pending_confirm, description, statement_descriptor_suffix, saved_method_id)"
           " VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, $8, $9, $10, 'create', now() + make_interval(secs => $11::int),"
           " $12, $13, $14::boolean, $15, $16, $17)");

static const char *const payment_keys[] = {"order", "gateway", "payment_method", "capture_method",
                                           "return_url", "confirm", "description",
                                           "statement_descriptor_suffix", NULL};

static const char *opt_string(json_t *in, const char *key, size_t max, fault *f, int *bad)
{
    json_t *v = json_object_get(in, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
        fault_invalid(f, "parameter_invalid", key, "%s must be a string of 1 to %zu characters", key, max);
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

/* Never store a card number, not even a mock test card: keep brand-free
 * last four digits only. */
static const char *method_for_storage(op_ctx *x, const char *method)
{
    if (!method || !cardguard_text_has_pan(method, strlen(method), 0)) return method;
    size_t n = strlen(method);
    char last4[5] = {0};
    int k = 4;
    for (size_t i = n; i > 0 && k > 0; i--)
        if (method[i - 1] >= '0' && method[i - 1] <= '9') last4[--k] = method[i - 1];
    return arena_sprintf(x->arena, "card_number_ending_%s", last4);
}

static int user_can_see(op_ctx *x, const char *owner)
{
    const char *scope = op_user_scope(x);
    return !scope || (owner && strcmp(owner, scope) == 0);
}

static void view_from_result(payment_view *v, const payd_payment_res *res)
{
    memset(v, 0, sizeof *v);
    v->status = res->status;
    v->provider_ref = res->provider_ref;
    v->client_secret = res->client_secret;
    v->next_action = res->next_action;
    v->next_action_url = res->next_action_url;
    v->next_action_text = res->next_action_text;
    v->failure_code = res->failure_code;
    v->failure_message = res->failure_message;
    v->amount_capturable = res->amount_capturable;
    v->amount_captured = res->amount_captured;
    v->has_amounts = 1;
    v->answers_op = 1;
}

/* Calls `op` on the module for payment `p` (step 2). */
static int payment_call(op_ctx *x, instance *gw, const char *op, const payment_row *p,
                        const char *raw_method, int confirm, int64_t amount_to_capture,
                        payd_payment_res *res, payd_error *e)
{
    char key[96];
    snprintf(key, sizeof key, "payd-%s-%s-%d", p->id, op, p->op_attempt);
    payd_payment_req req = {.struct_size = sizeof req};
    req.payment_id = p->id;
    req.order_id = p->order_id;
    req.idempotency_key = key;
    req.amount = p->amount;
    req.currency = p->currency;
    req.currency_exponent = money_exponent(p->currency);
    req.provider_ref = p->provider_ref;
    req.payment_method = raw_method ? raw_method : p->payment_method;
    req.customer_ref = p->customer_ref;
    req.order_number = p->order_number;
    req.customer_email = p->customer_email;
    req.description = p->description;
    req.statement_descriptor_suffix = p->statement_descriptor_suffix;
    req.capture_method = strcmp(p->capture_method, "manual") == 0 ? PAYD_CAPTURE_MANUAL : PAYD_CAPTURE_AUTOMATIC;
    req.confirm = confirm;
    req.return_url = p->return_url;
    req.amount_to_capture = amount_to_capture;
    memset(res, 0, sizeof *res);
    res->struct_size = sizeof *res;
    memset(e, 0, sizeof *e);
    int (*fn)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res)) = NULL;
    if (!strcmp(op, "create")) fn = gw->gw.create;
    else if (!strcmp(op, "confirm") && !p->provider_ref) {
        /* The provider never accepted the create (it was refused as
         * invalid): confirming means creating and confirming in one. */
        fn = gw->gw.create;
        req.confirm = 1;
    } else if (!strcmp(op, "confirm")) fn = gw->gw.confirm;
    else if (!strcmp(op, "capture")) fn = gw->gw.capture;
    else if (!strcmp(op, "cancel")) fn = gw->gw.cancel;
    else if (!strcmp(op, "retrieve")) fn = gw->gw.retrieve;
    if (!fn) {
        snprintf(e->message, sizeof e->message, "gateway %s does not support %s", gw->name, op);
        return PAYD_E_UNSUPPORTED;
    }
    int rc = fn(gw->state, &req, res, x->arena, e);
    if (rc > 0) rc = PAYD_E_INTERNAL; /* a module bug: positive codes mean nothing */
    e->message[sizeof e->message - 1] = '\0';
    e->failure_code[sizeof e->failure_code - 1] = '\0';
    e->provider_request_id[sizeof e->provider_request_id - 1] = '\0';
    if (rc == PAYD_E_TRANSIENT) metrics_count(METRIC_PROVIDER_TRANSIENT);
    log_msg(rc ? LOG_INFO : LOG_DEBUG, "payments", "%s %s on %s: %s", op, p->id, gw->name,
            rc == 0 ? payd_payment_status_name(res->status) : (e->message[0] ? e->message : "error"));
    return rc;
}

/* The fault for a module error that is not a decline or transient. */
static int gateway_fault(fault *f, int rc, const instance *gw, const payd_error *e)
{
    const char *msg = e->message[0] ? e->message : "the gateway refused the request";
    switch (rc) {
    case PAYD_E_INVALID:
        return fault_set(f, 400, "invalid_request_error", "gateway_rejected", NULL, "%s: %s", gw->name, msg);
    case PAYD_E_UNSUPPORTED:
        return fault_set(f, 400, "invalid_request_error", "not_supported", NULL, "%s: %s", gw->name, msg);
    case PAYD_E_AUTH:
        return fault_set(f, 502, "api_error", "gateway_auth_failed", NULL,
                         "gateway %s rejected payd's credentials", gw->name);
    default:
        return fault_set(f, 502, "api_error", "gateway_error", NULL, "%s: %s", gw->name, msg);
    }
}

/*
 * Step 3: applies a module answer to the payment under its row lock.
 * `expected_op` guards against an answer arriving after someone else (a
 * webhook, the janitor) already settled the operation.
 */
static int payment_settle(op_ctx *x, instance *gw, const char *id, const char *op, int rc,
                          const payd_payment_res *res, const payd_error *e, json_t **out,
                          int *status, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    payment_row p;
    int src = store_begin(c);
    if (src == STORE_OK) src = payment_lock(x, c, id, &p);
    const char *repr = NULL;
    int result = 0;
    char action[64];
    snprintf(action, sizeof action, "payment.%s", op);
    if (src == STORE_OK && e->provider_request_id[0]) p.provider_request_id = e->provider_request_id;
    if (src == STORE_OK && (!p.pending_op || strcmp(p.pending_op, op) != 0)) {
        /* Settled meanwhile (the provider's webhook can beat its own
         * synchronous answer here): report the state as it is, with the
         * status code this answer deserves. */
        char *text = p.before ? json_dumps(p.before, JSON_COMPACT) : NULL;
        repr = text ? arena_strdup(x->arena, text) : NULL;
        free(text);
        *status = strcmp(op, "create") == 0 ? 201 : 200;
        if (rc == 0) {
            /* The answer may still carry news (more captured money): the
             * state machine only lets it move things forward. */
            payment_view v;
            view_from_result(&v, res);
            v.answers_op = 0;
            p.provider_raw = res->raw;
            const char *now = NULL;
            int applied = payment_apply_view(x, c, &p, &v, action, &now);
            if (applied < 0) src = applied;
            else if (now) repr = now;
        }
        if (rc == PAYD_E_DECLINED) {
            const char *code = e->failure_code[0] ? e->failure_code : "card_declined";
            result = fault_set(f, 402, "card_error", arena_strdup(x->arena, code), "payment_method", "%s",
                               e->message[0] ? e->message : "the card was declined");
        }
    } else if (src == STORE_OK && rc == 0) {
        p.provider_request_id = res->provider_request_id;
        p.provider_raw = res->raw;
        payment_view v;
        view_from_result(&v, res);
        int had_ref = p.provider_ref != NULL;
        int applied = payment_apply_view(x, c, &p, &v, action, &repr);
        if (applied >= 0 && p.provider_ref && !had_ref) {
            /* Events that beat this answer here wait as unmatched. */
            int m = webhooks_rematch(x, c, &p);
            if (m < 0) applied = m;
        }
        if (applied == APPLY_STALE) {
            p.pending_op = NULL;
            p.outcome_unknown = 0;
            p.janitor_delay_s = -1;
            applied = payment_save(x, c, &p, "payment.stale_answer", &repr);
        }
        src = applied < 0 ? applied : STORE_OK;
        *status = strcmp(op, "create") == 0 ? 201 : 200;
    } else if (src == STORE_OK && rc == PAYD_E_DECLINED) {
        payment_view v = {.status = PAYD_PS_FAILED, .answers_op = 1, .provider_ref = res->provider_ref};
        v.failure_code = e->failure_code[0] ? e->failure_code : "card_declined";
        v.failure_message = e->message[0] ? e->message : "the card was declined";
        int applied = payment_apply_view(x, c, &p, &v, action, &repr);
        src = applied < 0 ? applied : STORE_OK;
        result = fault_set(f, 402, "card_error", arena_strdup(x->arena, v.failure_code), "payment_method",
                           "%s", v.failure_message);
    } else if (src == STORE_OK && (rc == PAYD_E_TRANSIENT || rc == PAYD_E_INTERNAL || rc == PAYD_E_NOMEM)) {
        /* No definite answer (a timeout, or the module failed after it may
         * have sent the request): never a failure; the janitor finds out. */
        if (strcmp(p.status, "processing") != 0 && payment_transition_allowed(p.status, "processing"))
            p.status = "processing";
        p.outcome_unknown = 1;
        p.janitor_delay_s = janitor_backoff_s(x->a, p.janitor_attempts);
        src = payment_save(x, c, &p, "payment.outcome_unknown", &repr);
        *status = 202;
    } else if (src == STORE_OK) {
        p.pending_op = NULL;
        p.outcome_unknown = 0;
        p.janitor_delay_s = -1;
        src = payment_save(x, c, &p, "payment.gateway_rejected", &repr);
        result = gateway_fault(f, rc, gw, e);
    }
    if (src == STORE_OK) src = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (src == 1) return fault_not_found(f, "payment", id);
    payment_row_release(&p);
    if (src != STORE_OK) return fault_store(f, src);
    *out = repr ? json_loads(repr, 0, NULL) : NULL;
    return result;
}

int payments_create(op_ctx *x, json_t *in, const char *raw_method, json_t **out, int *status,
                    fault *f)
{
    *out = NULL;
    if (!in) return fault_invalid(f, "parameter_missing", "order", "a JSON body with an order is required");
    if (params_only(in, payment_keys, f)) return -1;
    int bad = 0;
    const char *order_id = opt_string(in, "order", 64, f, &bad);
    const char *gateway = opt_string(in, "gateway", 64, f, &bad);
    const char *method = opt_string(in, "payment_method", 200, f, &bad);
    const char *capture = opt_string(in, "capture_method", 16, f, &bad);
    const char *return_url = opt_string(in, "return_url", 2048, f, &bad);
    const char *description = opt_string(in, "description", 500, f, &bad);
    const char *descriptor = opt_string(in, "statement_descriptor_suffix", 22, f, &bad);
    if (bad) return -1;
    if (!order_id) return fault_invalid(f, "parameter_missing", "order", "order is required");
    if (capture && strcmp(capture, "automatic") && strcmp(capture, "manual"))
        return fault_invalid(f, "parameter_invalid", "capture_method", "capture_method must be automatic or manual");
    if (return_url && ((strncmp(return_url, "https://", 8) && strncmp(return_url, "http://", 7)) ||
                       strpbrk(return_url, "\r\n\t ")))
        return fault_invalid(f, "parameter_invalid", "return_url", "return_url must be an http(s) URL");
    json_t *jconfirm = json_object_get(in, "confirm");
    if (jconfirm && !json_is_boolean(jconfirm))
        return fault_invalid(f, "parameter_invalid", "confirm", "confirm must be true or false");
    int confirm = json_is_true(jconfirm);
    if (confirm && !method)
        return fault_invalid(f, "parameter_missing", "payment_method", "confirm needs a payment_method");
    int manual = capture && !strcmp(capture, "manual");

    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    char id[IDS_MAX];
    ids_new("pay", id);
    order_row o = {0};
    const char *customer_id = NULL, *customer_ref = NULL, *saved_method_id = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = orders_lock(c, order_id, &o);
    int refused = 0;
    instance *gw = NULL;
    if (rc == 1 || (rc == STORE_OK && !user_can_see(x, o.has_user ? o.user_id : NULL))) {
        refused = fault_not_found(f, "order", order_id);
    } else if (rc == STORE_OK && strcmp(o.status, "pending") != 0) {
        refused = fault_set(f, 409, "invalid_request_error",
                            !strcmp(o.status, "payment_pending") ? "order_payment_in_progress" : "order_not_payable",
                            "order", "the order cannot take a new payment (status is %s)", o.status);
    } else if (rc == STORE_OK) {
        /* A saved method (pm_ id of ours) fixes the gateway and customer. */
        const char *saved_gw = NULL, *asked = method;
        int sm = methods_resolve(x, c, method, &method, &customer_id, &customer_ref, &saved_gw, f);
        if (sm == 0) saved_method_id = asked;
        if (sm < 0) refused = -1;
        else if (sm == 0 && gateway && strcmp(gateway, saved_gw) != 0)
            refused = fault_invalid(f, "gateway_mismatch", "gateway",
                                    "the saved payment method belongs to gateway %s", saved_gw);
        else if (sm == 0) gateway = saved_gw;
    }
    if (!refused && rc == STORE_OK) {
        gw = routing_pick(x->a, gateway, o.currency, f);
        if (!gw) refused = -1;
        else if (raw_method && strcmp(gw->mod->name, "mock") != 0)
            refused = fault_invalid(f, "card_data_not_allowed", "payment_method",
                                    "card numbers are accepted only by the mock gateway's test cards");
        else if (manual && !(gw->mod->caps & PAYD_CAP_CAPTURE_LATER))
            refused = fault_invalid(f, "not_supported", "capture_method",
                                    "gateway %s cannot capture later", gw->name);
    }
    if (!refused && rc == STORE_OK) {
        char amount[24], lease[12];
        snprintf(amount, sizeof amount, "%lld", (long long)o.total);
        snprintf(lease, sizeof lease, "%d", LEASE_S);
        const char *params[] = {id, o.id, o.has_user ? o.user_id : NULL, gw->name,
                                method ? "requires_confirmation" : "requires_payment_method",
                                o.currency, amount, manual ? "manual" : "automatic",
                                method_for_storage(x, method), return_url, lease, customer_id,
                                customer_ref, confirm ? "true" : "false", description, descriptor,
                                saved_method_id};
        rc = store_query(c, &stmt_insert, 17, params, NULL);
        if (rc == STORE_E_CONFLICT)
            refused = fault_set(f, 409, "invalid_request_error", "order_payment_in_progress", "order",
                                "the order already has a payment in progress");
        if (rc == STORE_OK) rc = orders_payment_started(x, c, &o);
        if (rc == STORE_OK) {
            char entity[64];
            snprintf(entity, sizeof entity, "payment:%s", id);
            json_t *after = json_pack("{s:s, s:s, s:s, s:I, s:s}", "id", id, "order_id", o.id, "gateway",
                                      gw->name, "amount", (json_int_t)o.total, "currency", o.currency);
            rc = audit_write(c, entity, op_actor(x), "payment.created", x->request_id, NULL, after);
            json_decref(after);
        }
    }
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    orders_row_release(&o);
    if (refused) return -1;
    if (rc != STORE_OK) return fault_store(f, rc);

    /* Step 2: the provider. */
    payment_row p = {.id = id, .order_id = o.id, .gateway = gw->name, .currency = o.currency,
                     .amount = o.total, .capture_method = manual ? "manual" : "automatic",
                     .payment_method = method, .return_url = return_url, .op_attempt = 1,
                     .customer_ref = customer_ref, .saved_method_id = saved_method_id, .description = description,
                     .statement_descriptor_suffix = descriptor, .order_number = o.number,
                     .customer_email = o.customer_email[0] ? o.customer_email : NULL};
    payd_payment_res res;
    payd_error e;
    int mrc = payment_call(x, gw, "create", &p, raw_method ? raw_method : method, confirm, 0, &res, &e);
    return payment_settle(x, gw, id, "create", mrc, &res, &e, out, status, f);
}

/*
 * Step 1 for confirm, capture and cancel: lock, check the state allows
 * `op`, record the intent. Returns 0 with the row's gateway instance, or -1.
 */
static int payment_begin_op(op_ctx *x, const char *id, const char *op, const char *const *from,
                            json_t *in, const char *raw_method, payment_row *p, instance **gw,
                            int64_t *amount, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int refused = 0;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = payment_lock(x, c, id, p);
    if (rc == 1 || (rc == STORE_OK && !user_can_see(x, p->user_id))) {
        refused = fault_not_found(f, "payment", id);
    } else if (rc == STORE_OK && p->pending_op) {
        refused = fault_set(f, 409, "invalid_request_error", "payment_operation_in_progress", NULL,
                            "a %s of this payment is still in progress", p->pending_op);
    } else if (rc == STORE_OK) {
        int ok = 0;
        for (int i = 0; from[i]; i++) ok |= strcmp(from[i], p->status) == 0;
        if (!ok)
            refused = fault_set(f, 409, "invalid_request_error", "payment_unexpected_state", NULL,
                                "a payment in status %s cannot be %s", p->status,
                                !strcmp(op, "confirm") ? "confirmed" : !strcmp(op, "capture") ? "captured" : "canceled");
        *gw = modules_gateway(x->a->mods, p->gateway);
        if (!refused && !*gw)
            refused = fault_set(f, 409, "invalid_request_error", "gateway_unavailable", NULL,
                                "gateway %s is no longer configured", p->gateway);
        else if (!refused && raw_method && strcmp((*gw)->mod->name, "mock") != 0)
            refused = fault_invalid(f, "card_data_not_allowed", "payment_method",
                                    "card numbers are accepted only by the mock gateway's test cards");
    }
    if (!refused && rc == STORE_OK && !strcmp(op, "capture")) {
        json_t *amt = in ? json_object_get(in, "amount") : NULL;
        *amount = p->amount_capturable;
        if (amt && (!json_is_integer(amt) || json_integer_value(amt) <= 0))
            refused = fault_invalid(f, "amount_invalid", "amount", "amount must be a positive integer");
        else if (amt && json_integer_value(amt) > p->amount_capturable)
            refused = fault_invalid(f, "amount_too_large", "amount",
                                    "amount exceeds the capturable amount of %lld", (long long)p->amount_capturable);
        else if (amt && json_integer_value(amt) < p->amount_capturable && *gw &&
                 !((*gw)->mod->caps & PAYD_CAP_PARTIAL_CAPTURE))
            /* Such a module would capture everything, or fail: either way
             * not what the merchant asked for. */
            refused = fault_invalid(f, "not_supported", "amount",
                                    "gateway %s cannot capture part of an authorization; capture all %lld or cancel",
                                    p->gateway, (long long)p->amount_capturable);
        else if (amt) *amount = json_integer_value(amt);
    }
    if (!refused && rc == STORE_OK && !strcmp(op, "confirm") && in) {
        int bad = 0;
        const char *method = opt_string(in, "payment_method", 200, f, &bad);
        const char *ret = opt_string(in, "return_url", 2048, f, &bad);
        if (bad) refused = -1;
        if (method) {
            const char *token = NULL, *cus = NULL, *cus_ref = NULL, *saved_gw = NULL;
            int sm = methods_resolve(x, c, method, &token, &cus, &cus_ref, &saved_gw, f);
            if (sm < 0) refused = -1;
            else if (sm == 0 && strcmp(saved_gw, p->gateway) != 0)
                refused = fault_invalid(f, "gateway_mismatch", "payment_method",
                                        "the saved payment method belongs to gateway %s", saved_gw);
            else if (sm == 0) {
                p->saved_method_id = method;
                method = token;
                p->customer_ref = cus_ref;
                p->customer_id = cus;
            } else {
                p->saved_method_id = NULL; /* a provider token replaces a saved method */
            }
            if (!refused) p->payment_method = method_for_storage(x, method);
        }
        if (ret && (strncmp(ret, "https://", 8) && strncmp(ret, "http://", 7)))
            refused = fault_invalid(f, "parameter_invalid", "return_url", "return_url must be an http(s) URL");
        else if (ret && strpbrk(ret, "\r\n\t "))
            refused = fault_invalid(f, "parameter_invalid", "return_url", "return_url must be an http(s) URL");
        if (ret) p->return_url = arena_strdup(x->arena, ret);
        /* In requires_action the buyer has acted at the provider (approved
         * a PayPal order, finished a redirect): confirming asks the
         * provider to complete, and needs no method of payd's. */
        if (!refused && !p->payment_method && strcmp(p->status, "requires_action") != 0)
            refused = fault_invalid(f, "parameter_missing", "payment_method", "confirm needs a payment_method");
    }
    if (!refused && rc == STORE_OK && !strcmp(op, "cancel") && !p->provider_ref) {
        /* Nothing reached the provider: cancel locally. */
        payment_view v = {.status = PAYD_PS_CANCELED};
        int applied = payment_apply_view(x, c, p, &v, "payment.canceled", NULL);
        rc = applied < 0 ? applied : STORE_OK;
        *gw = NULL;
    } else if (!refused && rc == STORE_OK) {
        p->pending_op = op;
        p->pending_amount = *amount;
        p->op_attempt++;
        p->janitor_delay_s = LEASE_S;
        rc = payment_save(x, c, p, arena_sprintf(x->arena, "payment.%s_requested", op), NULL);
    }
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (refused) return -1;
    if (rc != STORE_OK) return fault_store(f, rc);
    return 0;
}

static int payment_op(op_ctx *x, const char *id, const char *op, const char *const *from,
                      json_t *in, const char *raw_method, json_t **out, int *status, fault *f)
{
    *out = NULL;
    payment_row p;
    instance *gw = NULL;
    int64_t amount = 0;
    if (payment_begin_op(x, id, op, from, in, raw_method, &p, &gw, &amount, f) != 0) {
        payment_row_release(&p);
        return -1;
    }
    payment_row_release(&p);
    if (!gw) { /* settled locally */
        *status = 200;
        return payments_get(x, id, out, f);
    }
    payd_payment_res res;
    payd_error e;
    int mrc = payment_call(x, gw, op, &p, raw_method, 1, amount, &res, &e);
    return payment_settle(x, gw, id, op, mrc, &res, &e, out, status, f);
}

int payments_confirm(op_ctx *x, const char *id, json_t *in, const char *raw_method, json_t **out,
                     int *status, fault *f)
{
    static const char *const keys[] = {"payment_method", "return_url", NULL};
    static const char *const from[] = {"requires_payment_method", "requires_confirmation",
                                       "requires_action", NULL};
    if (in && params_only(in, keys, f)) return -1;
    return payment_op(x, id, "confirm", from, in, raw_method, out, status, f);
}

int payments_capture(op_ctx *x, const char *id, json_t *in, json_t **out, int *status, fault *f)
{
    static const char *const keys[] = {"amount", NULL};
    static const char *const from[] = {"requires_capture", NULL};
    if (in && params_only(in, keys, f)) return -1;
    return payment_op(x, id, "capture", from, in, NULL, out, status, f);
}

int payments_cancel(op_ctx *x, const char *id, json_t *in, json_t **out, int *status, fault *f)
{
    static const char *const keys[] = {"cancellation_reason", NULL};
    static const char *const from[] = {"requires_payment_method", "requires_confirmation",
                                       "requires_action", "requires_capture", NULL};
    if (in && params_only(in, keys, f)) return -1;
    return payment_op(x, id, "cancel", from, in, NULL, out, status, f);
}

STORE_STMT(stmt_get_repr,
           "SELECT p.user_id, " PAYMENT_JSON " AS j FROM payments p WHERE p.id = $1");
STORE_STMT(stmt_list_repr,
           "SELECT " PAYMENT_JSON " AS j FROM payments p"
           " WHERE ($1::text IS NULL OR p.order_id = $1) AND ($2::text IS NULL OR p.user_id = $2)"
           " AND ($3::text IS NULL OR (p.created_at, p.id) < (SELECT created_at, id FROM payments WHERE id = $3))"
           " AND ($5::boolean IS NULL OR p.needs_review = $5::boolean)"
           " ORDER BY p.created_at DESC, p.id DESC LIMIT $4::int");

int payments_get(op_ctx *x, const char *id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    const char *params[] = {id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_get_repr, 1, params, &r);
    store_release(c);
    if (rc != STORE_OK) return fault_store(f, rc);
    int found = PQntuples(r) == 1 && user_can_see(x, store_val(r, 0, "user_id"));
    if (found) *out = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return found ? 0 : fault_not_found(f, "payment", id);
}

STORE_STMT(stmt_cursor, "SELECT 1 FROM payments WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)");

int payments_list(op_ctx *x, const char *order_id, const char *needs_review, const char *starting_after, int limit,
                  json_t **out, fault *f)
{
    if (needs_review && strcmp(needs_review, "true") != 0 && strcmp(needs_review, "false") != 0)
        return fault_invalid(f, "parameter_invalid", "needs_review", "needs_review must be true or false");
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {order_id, op_user_scope(x), starting_after, lim, needs_review};
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = starting_after ? list_page_cursor(c, &stmt_cursor, starting_after, op_user_scope(x), "payment", f) : 0;
    if (rc == 0) rc = list_page_query(c, &stmt_list_repr, 5, params, limit, out, f);
    store_release(c);
    return rc;
}

/*
 * Janitor: finishes a payment whose last operation has no definite answer.
 * A recorded pending operation is re-issued with its ORIGINAL idempotency
 * key (same attempt number), so the provider answers the first call rather
 * than performing a second one; with no pending operation (an asynchronous
 * provider left it processing) the status is retrieved. Each try that
 * stays unknown backs off; after [payments] janitor_max_attempts the payment
 * is flagged needs_review for a human.
 */
int payments_resolve(op_ctx *x, const char *id)
{
    payment_row p;
    store_conn *c = store_acquire(x->a->db);
    if (!c) return STORE_E_UNAVAILABLE;
    int rc = payment_lock(x, c, id, &p); /* snapshot; the claim already leased it */
    store_release(c);
    if (rc != STORE_OK) return rc;
    instance *gw = modules_gateway(x->a->mods, p.gateway);
    if (!gw || (!p.pending_op && !p.outcome_unknown && strcmp(p.status, "processing") != 0)) {
        payment_row_release(&p);
        return STORE_OK;
    }
    const char *op = p.pending_op ? p.pending_op : "retrieve";
    payd_payment_res res;
    payd_error e;
    /* Re-issue with the original parameters: same key, same confirm flag,
     * same amount, or the provider rightly refuses the key's reuse. */
    int confirm = strcmp(op, "create") == 0 ? p.pending_confirm : 1;
    int mrc = payment_call(x, gw, op, &p, NULL, confirm, p.pending_amount, &res, &e);
    payment_row_release(&p);

    if (!strcmp(op, "retrieve") || mrc == PAYD_E_TRANSIENT) {
        /* Apply directly: a retrieve has no pending op to match. */
        c = store_acquire(x->a->db);
        if (!c) return STORE_E_UNAVAILABLE;
        rc = store_begin(c);
        if (rc == STORE_OK) rc = payment_lock(x, c, id, &p);
        if (rc == STORE_OK) {
            if (mrc == 0) {
                payment_view v;
                view_from_result(&v, &res);
                int applied = payment_apply_view(x, c, &p, &v, "payment.resolved", NULL);
                rc = applied < 0 ? applied : STORE_OK;
                if (applied == APPLY_APPLIED) metrics_count(METRIC_JANITOR_RESOLVED);
            }
            if (rc == STORE_OK && (mrc != 0 || res.status == PAYD_PS_PROCESSING)) {
                if (p.janitor_attempts >= x->a->cfg->janitor_max_attempts) {
                    p.needs_review = 1;
                    p.janitor_delay_s = -1;
                    metrics_count(METRIC_JANITOR_GAVE_UP);
                    log_warn("janitor", "payment %s still unknown after %d tries: needs review", id, p.janitor_attempts);
                } else {
                    p.janitor_delay_s = janitor_backoff_s(x->a, p.janitor_attempts);
                }
                rc = payment_save(x, c, &p, "payment.still_unknown", NULL);
            }
            payment_row_release(&p);
        }
        if (rc == STORE_OK) rc = store_commit(c);
        else store_rollback(c);
        store_release(c);
        return rc;
    }
    json_t *out = NULL;
    int status = 0;
    fault f;
    payment_settle(x, gw, id, op, mrc, &res, &e, &out, &status, &f);
    if (out) metrics_count(METRIC_JANITOR_RESOLVED);
    json_decref(out);
    return STORE_OK;
}
