/*
 * mc_scenarios.c - the gateway scenarios of payd-modcheck.
 *
 * Each scenario calls the module's operations the way the core does (a
 * fresh arena per call, a zeroed payd_error, result struct_size set by the
 * caller, idempotency keys shaped "payd-<payment>-<op>-<attempt>") and
 * judges the answers against the contract in sdk/README.md:
 *
 *   create_retrieve      create+confirm with --ok-method, then retrieve:
 *                        same provider_ref, same status (or a later one),
 *                        the amount asked for
 *   idempotency          the same create twice with one key: one payment
 *   (redirect gateways)  with --approve-url, a create that answers
 *                        requires_action is finished as the buyer and the
 *                        core would: create_retrieve checks that retrieve
 *                        agrees it waits, that a confirm before the buyer's
 *                        step does not complete it, then does the buyer's
 *                        step (mc_approve.c) and confirms under a new
 *                        attempt key; idempotency also sends that confirm
 *                        twice with one key (one capture); the payments
 *                        refund_over_capture and capture_later use are
 *                        approved the same way
 *   decline              --decline-method: PAYD_E_DECLINED + failure_code
 *   timeout              --timeout-key (the key aimed at a server that
 *                        never answers) or --timeout-method: TRANSIENT
 *   refund_over_capture  refund captured+1: an error (not TRANSIENT);
 *                        then the full amount: accepted
 *   capture_later        (modules advertising capture_later) a manual-
 *                        capture payment reaches requires_capture (with
 *                        the buyer's step for a redirect gateway); a
 *                        capture of part of it (all of it without
 *                        partial_capture) answers succeeded with exactly
 *                        that captured, and retrieve agrees; a second one
 *                        is canceled, and retrieve agrees
 *   webhook_tamper       in mc_webhook.c
 *   (pan probe)          a card number as payment_method; whatever the
 *                        answer, it must not come back in any output
 *
 * Every output string goes through mc_guard_output (arena, card numbers,
 * secrets), every payd_error through mc_guard_text.
 *
 * Phases (mc_scenarios_run): every scenario alone, on a worker thread (as
 * a CivetWeb worker would call); then every scenario that passed alone
 * from o->threads threads released together by a barrier; then, with
 * --timeout-key, the timeout scenario alone and from all threads while the
 * host HTTP timeout is lowered to --timeout-ms (it is process-wide, so the
 * other scenarios do not run meanwhile).
 */
#include "modcheck.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "money.h"

#define MC_PAN_PROBE "4111111111111111"
#define MC_SETTLE_WAIT_MS 10000

const char *mc_code_name(int rc)
{
    switch (rc) {
    case PAYD_OK: return "PAYD_OK";
    case PAYD_E_INVALID: return "PAYD_E_INVALID";
    case PAYD_E_DECLINED: return "PAYD_E_DECLINED";
    case PAYD_E_AUTH: return "PAYD_E_AUTH";
    case PAYD_E_TRANSIENT: return "PAYD_E_TRANSIENT";
    case PAYD_E_PROVIDER: return "PAYD_E_PROVIDER";
    case PAYD_E_SIGNATURE: return "PAYD_E_SIGNATURE";
    case PAYD_E_UNSUPPORTED: return "PAYD_E_UNSUPPORTED";
    case PAYD_E_NOMEM: return "PAYD_E_NOMEM";
    case PAYD_E_INTERNAL: return "PAYD_E_INTERNAL";
    case PAYD_E_NOTFOUND: return "PAYD_E_NOTFOUND";
    default: return rc > 0 ? "a positive number (not a payd code)" : "an unknown code";
    }
}

/* What a payment call answered, copied out of its arena. */
typedef struct mc_pay {
    int rc;
    payd_error e;
    int status;
    char ref[256];
    char next_url[1024];          /* next_action_url, for the buyer's step */
    int64_t amount, capturable, captured;
} mc_pay;

/* ------------------------------------------------------------------------ */
/* Calls                                                                    */
/* ------------------------------------------------------------------------ */

void mc_guard_error(mc_ctx *c, const char *op, payd_error *e)
{
    char what[96];
    e->message[sizeof e->message - 1] = '\0';
    e->failure_code[sizeof e->failure_code - 1] = '\0';
    e->provider_request_id[sizeof e->provider_request_id - 1] = '\0';
    snprintf(what, sizeof what, "%s: payd_error.message", op);
    mc_guard_text(c, what, e->message, strlen(e->message));
    snprintf(what, sizeof what, "%s: payd_error.failure_code", op);
    mc_guard_text(c, what, e->failure_code, strlen(e->failure_code));
}

void mc_take(mc_ctx *c, payd_arena *a, const char *op, const char *field, const char *s, char *out,
             size_t out_len)
{
    char what[96];
    snprintf(what, sizeof what, "%s: %s", op, field);
    mc_guard_output(c, a, what, s, out, out_len);
}

typedef int (*pay_fn)(PAYD_OP_ARGS(payd_payment_req, payd_payment_res));

static pay_fn pay_op(const instance *in, const char *op)
{
    if (!strcmp(op, "create")) return in->gw.create;
    if (!strcmp(op, "retrieve")) return in->gw.retrieve;
    if (!strcmp(op, "confirm")) return in->gw.confirm;
    if (!strcmp(op, "capture")) return in->gw.capture;
    if (!strcmp(op, "cancel")) return in->gw.cancel;
    return NULL;
}

static int call_pay(mc_worker *w, instance *in, const char *op, const payd_payment_req *req,
                    mc_pay *out)
{
    memset(out, 0, sizeof *out);
    pay_fn fn = pay_op(in, op);
    if (!fn) return out->rc = PAYD_E_UNSUPPORTED;
    arena *a = arena_new();
    if (!a) return out->rc = PAYD_E_NOMEM;
    payd_payment_res res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    out->rc = fn(in->state, req, &res, a, &out->e);
    mc_guard_error(w->c, op, &out->e);
    if (out->rc == PAYD_OK || out->rc == PAYD_E_DECLINED) {
        mc_take(w->c, a, op, "payd_payment_res.provider_ref", res.provider_ref, out->ref, sizeof out->ref);
        mc_take(w->c, a, op, "payd_payment_res.client_secret", res.client_secret, NULL, 0);
        mc_take(w->c, a, op, "payd_payment_res.next_action_url", res.next_action_url, out->next_url,
                sizeof out->next_url);
        mc_take(w->c, a, op, "payd_payment_res.next_action_text", res.next_action_text, NULL, 0);
        mc_take(w->c, a, op, "payd_payment_res.failure_code", res.failure_code, NULL, 0);
        mc_take(w->c, a, op, "payd_payment_res.failure_message", res.failure_message, NULL, 0);
        mc_take(w->c, a, op, "payd_payment_res.raw", res.raw, NULL, 0);
        mc_take(w->c, a, op, "payd_payment_res.provider_request_id", res.provider_request_id, NULL, 0);
        out->status = res.status;
        out->amount = res.amount;
        out->capturable = res.amount_capturable;
        out->captured = res.amount_captured;
    }
    arena_free(a);
    return out->rc;
}

static int call_refund(mc_worker *w, const payd_refund_req *req, int *status, char *ref,
                       size_t ref_len, payd_error *e)
{
    instance *in = w->c->inst;
    memset(e, 0, sizeof *e);
    *status = 0;
    ref[0] = '\0';
    if (!in->gw.refund) return PAYD_E_UNSUPPORTED;
    arena *a = arena_new();
    if (!a) return PAYD_E_NOMEM;
    payd_refund_res res;
    memset(&res, 0, sizeof res);
    res.struct_size = sizeof res;
    int rc = in->gw.refund(in->state, req, &res, a, e);
    mc_guard_error(w->c, "refund", e);
    if (rc == PAYD_OK || rc == PAYD_E_DECLINED) {
        mc_take(w->c, a, "refund", "payd_refund_res.refund_ref", res.refund_ref, ref, ref_len);
        mc_take(w->c, a, "refund", "payd_refund_res.failure_code", res.failure_code, NULL, 0);
        mc_take(w->c, a, "refund", "payd_refund_res.failure_message", res.failure_message, NULL, 0);
        mc_take(w->c, a, "refund", "payd_refund_res.raw", res.raw, NULL, 0);
        mc_take(w->c, a, "refund", "payd_refund_res.provider_request_id", res.provider_request_id, NULL, 0);
        *status = res.status;
    }
    arena_free(a);
    return rc;
}

/* A create request as the core builds one; ids are unique per run,
 * thread and call, so a persistent sandbox never sees a key twice. */
static void pay_req(mc_worker *w, const char *tag, payd_payment_req *req, char *pid, size_t pid_len,
                    char *key, size_t key_len)
{
    const mc_opts *o = w->c->o;
    snprintf(pid, pid_len, "pay_mc%s%s%dn%u", w->c->run_id, tag, w->tid, ++w->seq);
    snprintf(key, key_len, "payd-%s-create-1", pid);
    memset(req, 0, sizeof *req);
    req->struct_size = sizeof *req;
    req->payment_id = pid;
    req->order_id = "ord_modcheck";
    req->order_number = "MC-1";
    req->idempotency_key = key;
    req->amount = o->amount;
    req->currency = o->currency;
    int exp = money_exponent(o->currency);
    req->currency_exponent = exp >= 0 ? exp : 2;
    req->payment_method = o->ok_method;
    req->capture_method = PAYD_CAPTURE_AUTOMATIC;
    req->confirm = 1;
    req->return_url = "https://payd-modcheck.invalid/return";
    req->description = "payd-modcheck";
    req->customer_email = "modcheck@example.com";
}

int mc_verdict(char *why, size_t len, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return status;
}

/* MC_FAIL with "<what> returned <code> (<n>): <message><expect>". */
static int failed_call(char *why, size_t len, const char *what, const mc_pay *p, const char *expect)
{
    return mc_verdict(why, len, MC_FAIL, "%s returned %s (%d)%s%s%s", what, mc_code_name(p->rc), p->rc,
                   p->e.message[0] ? ": " : "", p->e.message, expect);
}

/* Where a confirmed payment goes (processing: the provider settles later). */
static int paid_status(int status)
{
    return status == PAYD_PS_SUCCEEDED || status == PAYD_PS_PROCESSING || status == PAYD_PS_REQUIRES_CAPTURE;
}

/* A request for a later op on the payment `created` made, as the core
 * builds one: provider_ref `ref`, and for a mutating op (`op` not NULL)
 * the key "payd-<payment>-<op>-<attempt>" written to `key`. */
static void later_req(const payd_payment_req *created, const char *op, int attempt, const char *ref,
                      payd_payment_req *req, char *key, size_t key_len)
{
    *req = *created;
    req->confirm = 0;
    req->provider_ref = ref;
    req->idempotency_key = NULL;
    if (op) {
        snprintf(key, key_len, "payd-%s-%s-%d", created->payment_id, op, attempt);
        req->idempotency_key = key;
    }
}

/*
 * The buyer's step (--approve-url) for the payment in `p`, whose create
 * answered requires_action, then a confirm under the key of `attempt` (a
 * retrieve when the module has no confirm: the provider finishes on its
 * own). `p` holds the create's answer on entry and the last answer on
 * return. MC_PASS, or MC_FAIL with `why`.
 */
static int approve_then_confirm(mc_worker *w, const payd_payment_req *created, mc_pay *p, int attempt,
                                char *why, size_t len)
{
    char ref[sizeof p->ref], key[200];
    snprintf(ref, sizeof ref, "%s", p->ref);
    if (mc_approve(w->c, ref, p->next_url, why, len) != MC_PASS) return MC_FAIL;
    const char *op = w->c->inst->gw.confirm ? "confirm" : "retrieve";
    payd_payment_req cf;
    later_req(created, w->c->inst->gw.confirm ? op : NULL, attempt, ref, &cf, key, sizeof key);
    char what[64];
    snprintf(what, sizeof what, "%s after the buyer's step", op);
    if (call_pay(w, w->c->inst, op, &cf, p) != PAYD_OK) return failed_call(why, len, what, p, "");
    if (strcmp(p->ref, ref) != 0)
        return mc_verdict(why, len, MC_FAIL, "%s answered provider_ref %.80s for %.80s", what, p->ref, ref);
    if (!paid_status(p->status))
        return mc_verdict(why, len, MC_FAIL, "%s left status %s (expected succeeded, processing or "
                          "requires_capture)", what, payd_payment_status_name(p->status));
    return MC_PASS;
}

/* Create with --ok-method and, for a redirect gateway, the buyer's step
 * and confirm: a payment taken as far as the core takes it. `p` holds the
 * last answer. MC_PASS, or MC_FAIL with `why`. */
static int create_paid(mc_worker *w, const payd_payment_req *req, mc_pay *p, char *why, size_t len)
{
    if (call_pay(w, w->c->inst, "create", req, p) != PAYD_OK)
        return failed_call(why, len, "create with --ok-method", p, "");
    if (p->status == PAYD_PS_REQUIRES_ACTION && w->c->o->approve_url)
        return approve_then_confirm(w, req, p, 1, why, len);
    return MC_PASS;
}

/*
 * create_retrieve for a redirect gateway: the payment waits for the buyer
 * and retrieve says so too; a confirm before the buyer's step must not
 * complete it (the provider would be taking money nobody approved); after
 * the buyer's step a confirm under the next attempt key does. `p` holds
 * the create's answer on entry, the confirm's on return.
 */
static int redirect_flow(mc_worker *w, const payd_payment_req *created, mc_pay *p, char *why, size_t len)
{
    char ref[sizeof p->ref], key[200];
    snprintf(ref, sizeof ref, "%s", p->ref);
    payd_payment_req rq;
    mc_pay early;
    later_req(created, NULL, 0, ref, &rq, key, sizeof key);
    if (call_pay(w, w->c->inst, "retrieve", &rq, &early) != PAYD_OK)
        return failed_call(why, len, "retrieve of a payment waiting for the buyer", &early, "");
    if (early.status != PAYD_PS_REQUIRES_ACTION)
        return mc_verdict(why, len, MC_FAIL, "create said requires_action, retrieve before the buyer's step says %s",
                          payd_payment_status_name(early.status));
    if (w->c->inst->gw.confirm) {
        later_req(created, "confirm", 1, ref, &rq, key, sizeof key);
        call_pay(w, w->c->inst, "confirm", &rq, &early);
        if (early.rc == PAYD_OK && paid_status(early.status))
            return mc_verdict(why, len, MC_FAIL, "a confirm before the buyer's step answered %s: the payment must "
                              "wait for the buyer", payd_payment_status_name(early.status));
    }
    return approve_then_confirm(w, created, p, 2, why, len);
}

/* ------------------------------------------------------------------------ */
/* Scenarios: each returns MC_PASS, MC_FAIL or MC_SKIP with `why`.          */
/* ------------------------------------------------------------------------ */

static int sc_create_retrieve(mc_worker *w, char *why, size_t len)
{
    const mc_opts *o = w->c->o;
    if (!o->ok_method) return mc_verdict(why, len, MC_SKIP, "no --ok-method given");
    payd_payment_req req;
    char pid[96], key[160];
    pay_req(w, "cr", &req, pid, sizeof pid, key, sizeof key);
    mc_pay cr, rt;
    if (call_pay(w, w->c->inst, "create", &req, &cr) != PAYD_OK)
        return failed_call(why, len, "create with --ok-method", &cr, "");
    if (!cr.ref[0]) return mc_verdict(why, len, MC_FAIL, "create succeeded without a provider_ref");
    const char *how = "created";
    if (cr.status == PAYD_PS_REQUIRES_ACTION && o->approve_url) {
        int st = redirect_flow(w, &req, &cr, why, len);
        if (st != MC_PASS) return st;
        how = "approved by the buyer's step and confirmed";
    }
    if (!paid_status(cr.status))
        return mc_verdict(why, len, MC_FAIL, "create+confirm with --ok-method left status %s (expected succeeded, "
                        "processing or requires_capture)%s", payd_payment_status_name(cr.status),
                        cr.status == PAYD_PS_REQUIRES_ACTION ? "; a redirect gateway: give --approve-url" : "");
    payd_payment_req rq;
    memset(&rq, 0, sizeof rq);
    rq.struct_size = sizeof rq;
    rq.payment_id = pid;
    rq.provider_ref = cr.ref;
    rq.amount = req.amount;
    rq.currency = req.currency;
    rq.currency_exponent = req.currency_exponent;
    if (call_pay(w, w->c->inst, "retrieve", &rq, &rt) != PAYD_OK)
        return failed_call(why, len, "retrieve of the payment just created", &rt, "");
    if (strcmp(rt.ref, cr.ref) != 0)
        return mc_verdict(why, len, MC_FAIL, "retrieve answered provider_ref %.80s for %.80s", rt.ref, cr.ref);
    int later = cr.status == PAYD_PS_PROCESSING &&
                (rt.status == PAYD_PS_SUCCEEDED || rt.status == PAYD_PS_FAILED ||
                 rt.status == PAYD_PS_REQUIRES_CAPTURE);
    if (rt.status != cr.status && !later)
        return mc_verdict(why, len, MC_FAIL, "create said %s, retrieve says %s", payd_payment_status_name(cr.status),
                        payd_payment_status_name(rt.status));
    if (rt.amount != req.amount)
        return mc_verdict(why, len, MC_FAIL, "retrieve reports amount %lld, the payment is for %lld",
                        (long long)rt.amount, (long long)req.amount);
    if (cr.amount && cr.amount != req.amount)
        return mc_verdict(why, len, MC_FAIL, "create reports amount %lld, the payment is for %lld",
                        (long long)cr.amount, (long long)req.amount);
    snprintf(why, len, "%s %s (%s), retrieve agrees", how, payd_payment_status_name(cr.status), o->ok_method);
    return MC_PASS;
}

/*
 * idempotency for a redirect gateway: after the buyer's step, the same
 * confirm twice with one key (a retry after a lost answer) must answer the
 * same and capture once, which retrieve confirms.
 */
static int confirm_twice(mc_worker *w, const payd_payment_req *created, const mc_pay *p, char *why, size_t len)
{
    char ref[sizeof p->ref], key[200];
    snprintf(ref, sizeof ref, "%s", p->ref);
    if (mc_approve(w->c, ref, p->next_url, why, len) != MC_PASS) return MC_FAIL;
    payd_payment_req cf;
    mc_pay once, twice, rt;
    later_req(created, "confirm", 1, ref, &cf, key, sizeof key);
    if (call_pay(w, w->c->inst, "confirm", &cf, &once) != PAYD_OK)
        return failed_call(why, len, "confirm after the buyer's step", &once, "");
    if (call_pay(w, w->c->inst, "confirm", &cf, &twice) != PAYD_OK)
        return failed_call(why, len, "the same confirm again, with the same idempotency key,", &twice, "");
    if (twice.status != once.status || twice.captured != once.captured || strcmp(twice.ref, once.ref) != 0)
        return mc_verdict(why, len, MC_FAIL, "the same confirm twice with one key answered %s (captured %lld), then "
                          "%s (captured %lld): forward req->idempotency_key to the provider",
                          payd_payment_status_name(once.status), (long long)once.captured,
                          payd_payment_status_name(twice.status), (long long)twice.captured);
    later_req(created, NULL, 0, ref, &cf, key, sizeof key);
    if (call_pay(w, w->c->inst, "retrieve", &cf, &rt) != PAYD_OK)
        return failed_call(why, len, "retrieve after the repeated confirm", &rt, "");
    if (rt.captured > created->amount)
        return mc_verdict(why, len, MC_FAIL, "after the same confirm twice with one key, retrieve reports %lld "
                          "captured of %lld: the payment was taken twice", (long long)rt.captured,
                          (long long)created->amount);
    snprintf(why, len, "a repeated create and, after the buyer's step, a repeated confirm with one key each "
             "answered the same payment (%s)", payd_payment_status_name(once.status));
    return MC_PASS;
}

static int sc_idempotency(mc_worker *w, char *why, size_t len)
{
    if (!w->c->o->ok_method) return mc_verdict(why, len, MC_SKIP, "no --ok-method given");
    payd_payment_req req;
    char pid[96], key[160];
    pay_req(w, "id", &req, pid, sizeof pid, key, sizeof key);
    mc_pay first, again;
    if (call_pay(w, w->c->inst, "create", &req, &first) != PAYD_OK)
        return failed_call(why, len, "create", &first, "");
    if (call_pay(w, w->c->inst, "create", &req, &again) != PAYD_OK)
        return failed_call(why, len, "the same create again, with the same idempotency key,", &again, "");
    if (strcmp(first.ref, again.ref) != 0)
        return mc_verdict(why, len, MC_FAIL, "the same create with the same idempotency key made a second payment "
                        "(%.60s, then %.60s): forward req->idempotency_key to the provider",
                        first.ref, again.ref);
    if (first.status == PAYD_PS_REQUIRES_ACTION && w->c->o->approve_url && w->c->inst->gw.confirm)
        return confirm_twice(w, &req, &first, why, len);
    snprintf(why, len, "a repeated create with one key answered the same payment");
    return MC_PASS;
}

static int sc_decline(mc_worker *w, char *why, size_t len)
{
    const mc_opts *o = w->c->o;
    if (!o->decline_method) return mc_verdict(why, len, MC_SKIP, "no --decline-method given");
    payd_payment_req req;
    char pid[96], key[160];
    pay_req(w, "dc", &req, pid, sizeof pid, key, sizeof key);
    req.payment_method = o->decline_method;
    mc_pay p;
    call_pay(w, w->c->inst, "create", &req, &p);
    if (p.rc != PAYD_E_DECLINED)
        return failed_call(why, len, "create+confirm with --decline-method", &p, ", expected PAYD_E_DECLINED");
    if (!p.e.failure_code[0])
        return mc_verdict(why, len, MC_FAIL, "PAYD_E_DECLINED without payd_error.failure_code (e.g. card_declined)");
    snprintf(why, len, "PAYD_E_DECLINED, failure_code %s", p.e.failure_code);
    return MC_PASS;
}

static int sc_timeout(mc_worker *w, char *why, size_t len)
{
    const mc_opts *o = w->c->o;
    instance *in = o->timeout_key ? w->c->timeout_inst : w->c->inst;
    if (!o->timeout_key && !o->timeout_method)
        return mc_verdict(why, len, MC_SKIP, "no --timeout-key or --timeout-method given");
    if (!in) return mc_verdict(why, len, MC_FAIL, "the instance aimed at the black hole did not load");
    payd_payment_req req;
    char pid[96], key[160];
    pay_req(w, "to", &req, pid, sizeof pid, key, sizeof key);
    if (o->timeout_method) req.payment_method = o->timeout_method;
    else if (!req.payment_method) req.payment_method = "pm_card_visa";
    int64_t t0 = host_now_ms();
    mc_pay p;
    call_pay(w, in, "create", &req, &p);
    long ms = (long)(host_now_ms() - t0);
    if (p.rc != PAYD_E_TRANSIENT)
        return failed_call(why, len,
                           o->timeout_key ? "create against a provider that never answers"
                                          : "create with --timeout-method",
                           &p, ", expected PAYD_E_TRANSIENT (the outcome is unknown)");
    snprintf(why, len, "PAYD_E_TRANSIENT after %ld ms", ms);
    return MC_PASS;
}

/* Retrieves until the payment is no longer processing (async providers). */
static int wait_settled(mc_worker *w, const payd_payment_req *created, mc_pay *p)
{
    payd_payment_req rq = *created;
    rq.confirm = 0;
    char ref[sizeof p->ref];
    snprintf(ref, sizeof ref, "%s", p->ref);
    rq.provider_ref = ref;
    int64_t deadline = host_now_ms() + MC_SETTLE_WAIT_MS;
    while (p->status == PAYD_PS_PROCESSING && host_now_ms() < deadline) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        if (call_pay(w, w->c->inst, "retrieve", &rq, p) != PAYD_OK) return p->rc;
    }
    return PAYD_OK;
}

static int sc_refund_over(mc_worker *w, char *why, size_t len)
{
    mc_ctx *c = w->c;
    if (!c->inst->gw.refund) return mc_verdict(why, len, MC_SKIP, "the module has no refund operation");
    if (!c->o->ok_method) return mc_verdict(why, len, MC_SKIP, "no --ok-method given");
    payd_payment_req req;
    char pid[96], key[160];
    pay_req(w, "rf", &req, pid, sizeof pid, key, sizeof key);
    mc_pay p;
    if (create_paid(w, &req, &p, why, len) != MC_PASS) return MC_FAIL;
    if (wait_settled(w, &req, &p) != PAYD_OK)
        return failed_call(why, len, "retrieve while waiting for the payment to settle", &p, "");
    if (p.status != PAYD_PS_SUCCEEDED)
        return mc_verdict(why, len, MC_FAIL, "the payment to refund is %s, not succeeded",
                        payd_payment_status_name(p.status));
    int64_t captured = p.captured > 0 ? p.captured : req.amount;

    char rid[96], rkey[160], ref[256];
    payd_refund_req rr;
    memset(&rr, 0, sizeof rr);
    rr.struct_size = sizeof rr;
    snprintf(rid, sizeof rid, "re_mc%s%dn%u", c->run_id, w->tid, ++w->seq);
    snprintf(rkey, sizeof rkey, "payd-%s-refund-1", rid);
    rr.refund_id = rid;
    rr.payment_id = pid;
    rr.idempotency_key = rkey;
    rr.provider_ref = p.ref;
    rr.amount = captured + 1;
    rr.currency = req.currency;
    rr.currency_exponent = req.currency_exponent;
    rr.reason = "requested_by_customer";
    payd_error e;
    int status = 0;
    int rc = call_refund(w, &rr, &status, ref, sizeof ref, &e);
    if (rc == PAYD_OK)
        return mc_verdict(why, len, MC_FAIL, "a refund of %lld on a payment that captured %lld was accepted (refund %s)",
                        (long long)rr.amount, (long long)captured, status == PAYD_RS_FAILED ? "failed" : "succeeded or pending");
    if (rc == PAYD_E_TRANSIENT)
        return mc_verdict(why, len, MC_FAIL, "a refund above the captured amount returned PAYD_E_TRANSIENT: the core "
                        "would retry it forever; the provider's refusal is final");
    int over_rc = rc;

    /* The full amount, under a new refund id, must go through. */
    snprintf(rid, sizeof rid, "re_mc%s%dn%u", c->run_id, w->tid, ++w->seq);
    snprintf(rkey, sizeof rkey, "payd-%s-refund-1", rid);
    rr.amount = captured;
    rc = call_refund(w, &rr, &status, ref, sizeof ref, &e);
    if (rc != PAYD_OK)
        return mc_verdict(why, len, MC_FAIL, "the over-refund was refused, but then a refund of the full %lld returned %s: %s",
                        (long long)captured, mc_code_name(rc), e.message);
    if (status != PAYD_RS_SUCCEEDED && status != PAYD_RS_PENDING)
        return mc_verdict(why, len, MC_FAIL, "a refund of the full amount came back with status %d", status);
    if (!ref[0]) return mc_verdict(why, len, MC_FAIL, "a refund of the full amount has no refund_ref");
    snprintf(why, len, "refund of captured+1 refused with %s; the full amount was accepted", mc_code_name(over_rc));
    return MC_PASS;
}

/*
 * A manual-capture payment taken to requires_capture, for capture_later:
 * create with capture_method manual and --ok-method (for a redirect
 * gateway, the buyer's step and confirm of create_paid), then retrieves
 * while it is processing. The authorization must hold the money, not take
 * it, and say how much can be captured (the core captures at most
 * amount_capturable). `p` holds the last answer. MC_PASS, or MC_FAIL with
 * `why`. Stack only: safe from many threads.
 */
static int authorize_manual(mc_worker *w, const payd_payment_req *req, mc_pay *p, char *why, size_t len)
{
    if (create_paid(w, req, p, why, len) != MC_PASS) return MC_FAIL;
    if (!p->ref[0]) return mc_verdict(why, len, MC_FAIL, "a manual-capture create succeeded without a provider_ref");
    if (wait_settled(w, req, p) != PAYD_OK)
        return failed_call(why, len, "retrieve while waiting for the manual-capture payment to be authorized", p, "");
    if (p->status == PAYD_PS_SUCCEEDED)
        return mc_verdict(why, len, MC_FAIL, "create+confirm with capture_method manual charged the payment at once "
                          "(succeeded, captured %lld): it must only authorize (requires_capture) and wait for capture",
                          (long long)p->captured);
    if (p->status != PAYD_PS_REQUIRES_CAPTURE)
        return mc_verdict(why, len, MC_FAIL, "create+confirm with capture_method manual left status %s (expected "
                          "requires_capture)%s", payd_payment_status_name(p->status),
                          p->status == PAYD_PS_REQUIRES_ACTION && !w->c->o->approve_url
                              ? "; a redirect gateway: give --approve-url" : "");
    if (p->capturable <= 0 || p->capturable > req->amount)
        return mc_verdict(why, len, MC_FAIL, "requires_capture with amount_capturable %lld for a payment of %lld: "
                          "set it to what was authorized (the core captures at most that)",
                          (long long)p->capturable, (long long)req->amount);
    return MC_PASS;
}

/*
 * The capture or cancel of an authorized payment, as the core sends it
 * (server/payments.c, payment_call): the payment's full amount in
 * req->amount, what to capture in req->amount_to_capture, confirm set,
 * the key "payd-<payment>-<op>-1". An answer still processing is
 * retrieved until it settles. `p` holds the last answer. PAYD_OK or the
 * code of the call that failed.
 */
static int settle_authorized(mc_worker *w, const payd_payment_req *created, const char *op, const char *ref,
                             int64_t amount_to_capture, mc_pay *p)
{
    payd_payment_req rq;
    char key[200];
    later_req(created, op, 1, ref, &rq, key, sizeof key);
    rq.confirm = 1;
    rq.amount_to_capture = amount_to_capture;
    if (call_pay(w, w->c->inst, op, &rq, p) != PAYD_OK) return p->rc;
    return wait_settled(w, created, p);
}

/*
 * capture_later, first half: capture part of an authorized payment (all
 * of it when the module does not advertise partial_capture). The answer
 * and a retrieve after it must both say succeeded with exactly that much
 * captured: a module that captures everything takes money the shop never
 * asked for.
 */
static int capture_part(mc_worker *w, char *why, size_t len)
{
    payd_payment_req req;
    mc_pay p, rt;
    char pid[96], key[160], ref[sizeof p.ref], what[128];
    pay_req(w, "cl", &req, pid, sizeof pid, key, sizeof key);
    req.capture_method = PAYD_CAPTURE_MANUAL;
    if (authorize_manual(w, &req, &p, why, len) != MC_PASS) return MC_FAIL;
    snprintf(ref, sizeof ref, "%s", p.ref);
    int64_t capturable = p.capturable;
    int partial = (w->c->inst->mod->caps & PAYD_CAP_PARTIAL_CAPTURE) != 0;
    int64_t want = partial ? capturable - capturable / 4 : capturable;
    if (want < 1) want = 1;
    snprintf(what, sizeof what, "capture of %lld of %lld authorized", (long long)want, (long long)capturable);
    if (settle_authorized(w, &req, "capture", ref, want, &p) != PAYD_OK) return failed_call(why, len, what, &p, "");
    if (p.status != PAYD_PS_SUCCEEDED)
        return mc_verdict(why, len, MC_FAIL, "%s answered status %s (expected succeeded)", what,
                          payd_payment_status_name(p.status));
    if (p.captured != want)
        return mc_verdict(why, len, MC_FAIL, "%s answered amount_captured %lld: capture exactly "
                          "req->amount_to_capture and release the rest", what, (long long)p.captured);
    payd_payment_req rq;
    later_req(&req, NULL, 0, ref, &rq, key, sizeof key);
    if (call_pay(w, w->c->inst, "retrieve", &rq, &rt) != PAYD_OK)
        return failed_call(why, len, "retrieve after the capture", &rt, "");
    if (rt.status != PAYD_PS_SUCCEEDED || rt.captured != want)
        return mc_verdict(why, len, MC_FAIL, "after a %s, retrieve says %s with amount_captured %lld (expected "
                          "succeeded with %lld)", what, payd_payment_status_name(rt.status),
                          (long long)rt.captured, (long long)want);
    snprintf(why, len, "%s captured %lld of %lld",
             want < capturable ? "a partial capture"
             : partial         ? "a full capture (too little authorized to capture part)"
                               : "a full capture (no partial_capture)",
             (long long)want, (long long)capturable);
    return MC_PASS;
}

/*
 * capture_later, second half: cancel an authorized payment. The answer
 * and a retrieve after it must both say canceled: an authorization left
 * standing keeps the buyer's money on hold.
 */
static int cancel_authorized(mc_worker *w, char *why, size_t len)
{
    payd_payment_req req;
    mc_pay p, rt;
    char pid[96], key[160], ref[sizeof p.ref];
    pay_req(w, "cc", &req, pid, sizeof pid, key, sizeof key);
    req.capture_method = PAYD_CAPTURE_MANUAL;
    if (authorize_manual(w, &req, &p, why, len) != MC_PASS) return MC_FAIL;
    snprintf(ref, sizeof ref, "%s", p.ref);
    if (settle_authorized(w, &req, "cancel", ref, 0, &p) != PAYD_OK)
        return failed_call(why, len, "cancel of an authorized payment", &p, "");
    if (p.status != PAYD_PS_CANCELED)
        return mc_verdict(why, len, MC_FAIL, "cancel of an authorized payment answered status %s (expected canceled)",
                          payd_payment_status_name(p.status));
    payd_payment_req rq;
    later_req(&req, NULL, 0, ref, &rq, key, sizeof key);
    if (call_pay(w, w->c->inst, "retrieve", &rq, &rt) != PAYD_OK)
        return failed_call(why, len, "retrieve after the cancel", &rt, "");
    if (rt.status != PAYD_PS_CANCELED)
        return mc_verdict(why, len, MC_FAIL, "cancel answered canceled, but retrieve after it says %s: the "
                          "authorization was not voided", payd_payment_status_name(rt.status));
    return MC_PASS;
}

/*
 * capture_later: a module that advertises it is given manual-capture
 * payments by the core (capture_method manual), so both ways out of
 * requires_capture are tried on fresh payments: a partial capture, then a
 * cancel. SKIP when the module does not advertise it or cannot be driven
 * (no --ok-method). Each run makes its own payments (pay_req ids), so
 * the threads phase may run it many times at once.
 */
static int sc_capture_later(mc_worker *w, char *why, size_t len)
{
    const instance *in = w->c->inst;
    if (!(in->mod->caps & PAYD_CAP_CAPTURE_LATER))
        return mc_verdict(why, len, MC_SKIP, "the module does not advertise capture_later");
    if (!in->gw.capture || !in->gw.cancel)
        return mc_verdict(why, len, MC_SKIP, "the module has no capture or no cancel operation");
    if (!w->c->o->ok_method) return mc_verdict(why, len, MC_SKIP, "no --ok-method given");
    if (capture_part(w, why, len) != MC_PASS) return MC_FAIL;
    char captured[512];
    snprintf(captured, sizeof captured, "%s", why);
    if (cancel_authorized(w, why, len) != MC_PASS) return MC_FAIL;
    snprintf(why, len, "%s; a cancel voided another authorization", captured);
    return MC_PASS;
}

/* A card number where a token belongs: whatever the module answers, the
 * number must not come back (checked by the guards, reported under
 * no_secrets). */
static int sc_pan_probe(mc_worker *w, char *why, size_t len)
{
    payd_payment_req req;
    char pid[96], key[160];
    pay_req(w, "pp", &req, pid, sizeof pid, key, sizeof key);
    req.payment_method = MC_PAN_PROBE;
    mc_pay p;
    call_pay(w, w->c->inst, "create", &req, &p);
    snprintf(why, len, "answered %s", mc_code_name(p.rc));
    return MC_PASS;
}

static const struct {
    int check;                    /* -1: feeds other checks only */
    const char *name;
    int (*fn)(mc_worker *w, char *why, size_t len);
} scenarios[] = {
    {MC_CREATE_RETRIEVE, "create_retrieve", sc_create_retrieve},
    {MC_IDEMPOTENCY, "idempotency", sc_idempotency},
    {MC_DECLINE, "decline", sc_decline},
    {MC_TIMEOUT, "timeout", sc_timeout},
    {MC_REFUND_OVER, "refund_over_capture", sc_refund_over},
    {MC_CAPTURE_LATER, "capture_later", sc_capture_later},
    {MC_WEBHOOK_TAMPER, "webhook_tamper", mc_sc_webhook},
    {-1, "pan_probe", sc_pan_probe},
};

#define SCENARIO_COUNT (sizeof scenarios / sizeof scenarios[0])

/* Whether scenario i belongs to the phase this worker runs. */
static int in_phase(const mc_worker *w, size_t i)
{
    int timeout_apart = w->c->o->timeout_key != NULL;
    int is_timeout = scenarios[i].check == MC_TIMEOUT;
    return w->timeout_phase ? is_timeout : !(is_timeout && timeout_apart);
}

static void *worker_main(void *arg)
{
    mc_worker *w = arg;
    if (w->start) pthread_barrier_wait(w->start);
    for (size_t i = 0; i < SCENARIO_COUNT; i++) {
        if (!in_phase(w, i)) continue;
        int check = scenarios[i].check;
        /* Concurrently, only what passed alone: the question is "does it
         * survive company", not the same failure sixteen times. */
        if (!w->serial && check >= 0 && mc_check_status(check) != MC_PASS) continue;
        char why[512] = "";
        int st = scenarios[i].fn(w, why, sizeof why);
        if (w->serial && check >= 0) mc_check_set(check, st, "%s", why);
        else if (!w->serial && st == MC_FAIL)
            mc_check_fail(MC_THREADS, "%s failed on thread %d of %d running at once: %s",
                          scenarios[i].name, w->tid, w->c->o->threads, why);
    }
    return NULL;
}

/* Runs one phase alone (on its own thread), then from every thread. */
static void run_phase(mc_ctx *c, int timeout_phase, int *ran_threads)
{
    mc_worker alone = {.c = c, .tid = 0, .serial = 1, .timeout_phase = timeout_phase};
    pthread_t th;
    if (pthread_create(&th, NULL, worker_main, &alone) == 0) pthread_join(th, NULL);
    mc_report_flush();

    int n = c->o->threads;
    if (n <= 0) return;
    mc_worker *ws = calloc((size_t)n, sizeof *ws);
    pthread_t *ths = calloc((size_t)n, sizeof *ths);
    pthread_barrier_t start;
    if (!ws || !ths || pthread_barrier_init(&start, NULL, (unsigned)n) != 0) {
        free(ws);
        free(ths);
        mc_check_fail(MC_THREADS, "cannot start %d threads", n);
        return;
    }
    int started = 0;
    for (int i = 0; i < n; i++) {
        ws[i] = (mc_worker){.c = c, .tid = i + 1, .timeout_phase = timeout_phase, .start = &start};
        if (pthread_create(&ths[i], NULL, worker_main, &ws[i]) != 0) break;
        started++;
    }
    if (started < n) {
        /* The barrier waits for n: fill it so the started ones go on. */
        mc_check_fail(MC_THREADS, "only %d of %d threads could start", started, n);
        for (int i = started; i < n; i++) pthread_barrier_wait(&start);
    }
    for (int i = 0; i < started; i++) pthread_join(ths[i], NULL);
    pthread_barrier_destroy(&start);
    *ran_threads = 1;
    free(ws);
    free(ths);
}

void mc_scenarios_run(mc_ctx *c)
{
    if (c->kind != PAYD_KIND_GATEWAY) {
        for (size_t i = 0; i < SCENARIO_COUNT; i++)
            if (scenarios[i].check >= 0)
                mc_check_set(scenarios[i].check, MC_SKIP, "a notifier: gateway scenarios do not apply");
        mc_check_set(MC_THREADS, MC_SKIP, "a notifier: gateway scenarios do not apply");
        return;
    }
    int ran = 0;
    run_phase(c, 0, &ran);
    if (c->o->timeout_key && c->timeout_inst) {
        /* The host timeout is process-wide: lower it for this phase only. */
        mc_blackhole_accept();
        host_global_init(c->redis, (int)c->o->timeout_ms);
        c->host_inits++;
        run_phase(c, 1, &ran);
        host_global_init(c->redis, c->cfg.http_timeout_ms);
        c->host_inits++;
    } else if (c->o->timeout_key) {
        mc_check_fail(MC_TIMEOUT, "the instance aimed at the black hole did not load");
    }
    int passed = 0;
    for (size_t i = 0; i < SCENARIO_COUNT; i++)
        if (scenarios[i].check >= 0 && mc_check_status(scenarios[i].check) == MC_PASS) passed++;
    if (!passed)
        mc_check_set(MC_THREADS, MC_SKIP, "no scenario passed alone, so none ran concurrently");
    else if (ran)
        mc_check_pass(MC_THREADS, "%d threads ran the %d scenarios that pass alone, at once", c->o->threads,
                      passed);
}
