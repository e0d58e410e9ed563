/*
 * reconcile.c - does the provider agree with payd's books?
 *
 * For each payment of one gateway instance created in a range, payd asks
 * the module's `retrieve` what the provider holds and compares it with its
 * own state: the status, the captured amount against the ledger's charge
 * and capture rows, and (through `refund_retrieve`, when the module has it)
 * each refund's status and the refunded total against the ledger's refund
 * rows. It also checks that each payment row agrees with its own ledger
 * rows. Nothing is changed: differences are reported for a human (or the
 * janitor, for an outcome payd is still waiting on) to act on.
 *
 * A run covers one page of the range, in (created_at, id) order, so one
 * request never holds a worker thread for thousands of provider calls;
 * the answer says where the next page starts. The payments of a page and
 * their ledger sums are read in one query and the connection is released
 * before the first provider call, so no transaction or row lock is held
 * while the provider answers. Each provider call gets
 * its own arena. The ABI's retrieve reports no refunded total, so a refund
 * made at the provider that payd never heard of is not visible here (see
 * docs/decisions.md).
 *
 * Thread-safe: runs on a request thread (GET /v1/admin/reconcile) or in
 * `payd reconcile`.
 */
#include "reconcile.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "log.h"
#include "manual_review.h"
#include "money.h"

STORE_STMT(stmt_payments,
           "SELECT p.id, p.order_id, p.provider_ref, p.status, p.currency, p.amount, p.capture_method,"
           " p.amount_captured, p.amount_refunded,"
           " (SELECT coalesce(sum(l.amount), 0) FROM ledger l WHERE l.payment_id = p.id"
           "   AND l.entry_type IN ('charge', 'capture'))::bigint AS ledger_captured,"
           " (SELECT coalesce(sum(l.amount), 0) FROM ledger l WHERE l.payment_id = p.id"
           "   AND l.entry_type = 'refund')::bigint AS ledger_refunded,"
           " (SELECT json_agg(json_build_object('id', r.id, 'ref', r.provider_ref, 'status', r.status,"
           "   'amount', r.amount) ORDER BY r.created_at, r.id) FROM refunds r WHERE r.payment_id = p.id)::text"
           "   AS refunds"
           " FROM payments p WHERE p.gateway = $1"
           " AND p.created_at >= 'epoch'::timestamptz + $2::bigint * interval '1 microsecond'"
           " AND p.created_at < 'epoch'::timestamptz + $3::bigint * interval '1 microsecond'"
           " AND (p.created_at, p.id) > ('epoch'::timestamptz + $5::bigint * interval '1 microsecond', $6::text)"
           " ORDER BY p.created_at, p.id LIMIT $4::int");
/* A page cursor must name a payment of the gateway being reconciled; its
 * position goes into stmt_payments as plain values (no OR, no subquery),
 * so even a generic plan seeks the index instead of filtering the range. */
STORE_STMT(stmt_cursor,
           "SELECT (extract(epoch FROM created_at) * 1000000)::bigint AS at FROM payments WHERE id = $1 AND gateway = $2");

/* What one run found, as it goes. */
typedef struct recon {
    json_t *mismatches;
    int refunds_checked;
} recon;

/* Adds a mismatch; `payd_v` and `provider_v` are stolen (may be NULL). */
static void mismatch(recon *rc, const char *payment_id, const char *refund_id, const char *kind,
                     json_t *payd_v, json_t *provider_v, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static void mismatch(recon *rc, const char *payment_id, const char *refund_id, const char *kind,
                     json_t *payd_v, json_t *provider_v, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *m = json_pack("{s:s, s:s}", "payment_id", payment_id, "kind", kind);
    if (refund_id) json_object_set_new(m, "refund_id", json_string(refund_id));
    json_object_set_new(m, "payd", payd_v ? payd_v : json_null());
    json_object_set_new(m, "provider", provider_v ? provider_v : json_null());
    json_object_set_new(m, "message", json_string(msg));
    json_array_append_new(rc->mismatches, m);
}

/* payd's status as a provider would state it: after success a provider
 * keeps the payment succeeded and tracks refunds and disputes apart. */
static const char *provider_view_of(const char *payd_status)
{
    if (!strcmp(payd_status, "partially_refunded") || !strcmp(payd_status, "refunded") ||
        !strcmp(payd_status, "disputed"))
        return "succeeded";
    return payd_status;
}

static const char *refund_status_name(int s)
{
    switch (s) {
    case PAYD_RS_PENDING: return "pending";
    case PAYD_RS_SUCCEEDED: return "succeeded";
    case PAYD_RS_FAILED: return "failed";
    case PAYD_RS_CANCELED: return "canceled";
    default: return "unknown";
    }
}

/* A module's error message, made safe to print whole. */
static const char *error_text(payd_error *e, int code)
{
    e->message[sizeof e->message - 1] = '\0';
    if (e->message[0]) return e->message;
    return code == PAYD_E_TRANSIENT ? "the provider did not answer in time" : "the provider call failed";
}

/* Checks the refunds payd knows of for one payment; `refunds` is the JSON
 * list from stmt_payments. */
static void check_refunds(recon *rc, instance *gw, const PGresult *r, int i, json_t *refunds)
{
    const char *pay_id = store_val(r, i, "id");
    const char *currency = store_val(r, i, "currency");
    int64_t ledger_refunded = store_i64(r, i, "ledger_refunded");
    int64_t provider_refunded = 0;
    int complete = 1;
    size_t k;
    json_t *rf;
    json_array_foreach(refunds, k, rf) {
        const char *id = json_string_value(json_object_get(rf, "id"));
        const char *ref = json_string_value(json_object_get(rf, "ref"));
        const char *status = json_string_value(json_object_get(rf, "status"));
        int64_t amount = json_integer_value(json_object_get(rf, "amount"));
        if (!ref) {
            /* Never accepted by the provider: nothing there to compare. */
            if (!strcmp(status, "succeeded"))
                mismatch(rc, pay_id, id, "refund_missing_at_provider", json_string(status), NULL,
                         "refund %s succeeded in payd but has no provider reference", id);
            continue;
        }
        payd_refund_req req = {.struct_size = sizeof req, .refund_id = id, .payment_id = pay_id,
                               .provider_ref = store_val(r, i, "provider_ref"), .refund_ref = ref,
                               .amount = amount, .currency = currency,
                               .currency_exponent = money_exponent(currency)};
        payd_refund_res res = {.struct_size = sizeof res};
        payd_error e = {0};
        arena *ar = arena_new();
        if (!ar) {
            complete = 0;
            mismatch(rc, pay_id, id, "retrieve_failed", NULL, NULL, "out of memory");
            continue;
        }
        int mrc = gw->gw.refund_retrieve(gw->state, &req, &res, ar, &e);
        if (mrc > 0) mrc = PAYD_E_INTERNAL;
        rc->refunds_checked++;
        if (mrc == PAYD_E_NOTFOUND) {
            complete = 0;
            mismatch(rc, pay_id, id, "refund_missing_at_provider", json_string(status), NULL,
                     "the provider does not know refund %s (%s)", id, ref);
        } else if (mrc != 0) {
            complete = 0;
            mismatch(rc, pay_id, id, "retrieve_failed", NULL, NULL, "refund %s: %s", id, error_text(&e, mrc));
        } else {
            const char *theirs = refund_status_name(res.status);
            if (strcmp(theirs, status) != 0)
                mismatch(rc, pay_id, id, "refund_status", json_string(status), json_string(theirs),
                         "refund %s is %s in payd but %s at the provider", id, status, theirs);
            if (res.status == PAYD_RS_SUCCEEDED) provider_refunded += amount;
        }
        arena_free(ar);
    }
    if (complete && provider_refunded != ledger_refunded)
        mismatch(rc, pay_id, NULL, "refunded_amount", json_integer(ledger_refunded), json_integer(provider_refunded),
                 "payd's ledger refunded %lld %s, the provider's succeeded refunds add up to %lld",
                 (long long)ledger_refunded, currency, (long long)provider_refunded);
}

/* Compares one payment row (row i of stmt_payments) with the provider. */
static void check_payment(recon *rc, instance *gw, const PGresult *r, int i)
{
    const char *pay_id = store_val(r, i, "id");
    const char *currency = store_val(r, i, "currency");
    const char *status = store_val(r, i, "status");
    const char *ref = store_val(r, i, "provider_ref");
    int64_t ledger_captured = store_i64(r, i, "ledger_captured");
    int64_t ledger_refunded = store_i64(r, i, "ledger_refunded");

    if (store_i64(r, i, "amount_captured") != ledger_captured)
        mismatch(rc, pay_id, NULL, "ledger_captured", json_integer(store_i64(r, i, "amount_captured")),
                 json_integer(ledger_captured), "the payment records %lld %s captured, its ledger rows %lld",
                 (long long)store_i64(r, i, "amount_captured"), currency, (long long)ledger_captured);
    if (store_i64(r, i, "amount_refunded") != ledger_refunded)
        mismatch(rc, pay_id, NULL, "ledger_refunded", json_integer(store_i64(r, i, "amount_refunded")),
                 json_integer(ledger_refunded), "the payment records %lld %s refunded, its ledger rows %lld",
                 (long long)store_i64(r, i, "amount_refunded"), currency, (long long)ledger_refunded);
    if (!ref) {
        if (ledger_captured > 0)
            mismatch(rc, pay_id, NULL, "missing_at_provider", json_integer(ledger_captured), NULL,
                     "money is in the ledger but the payment has no provider reference");
        return;
    }

    payd_payment_req req = {.struct_size = sizeof req, .payment_id = pay_id,
                            .order_id = store_val(r, i, "order_id"), .amount = store_i64(r, i, "amount"),
                            .currency = currency, .currency_exponent = money_exponent(currency),
                            .provider_ref = ref,
                            .capture_method = strcmp(store_val(r, i, "capture_method"), "manual") == 0
                                                  ? PAYD_CAPTURE_MANUAL
                                                  : PAYD_CAPTURE_AUTOMATIC};
    payd_payment_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    arena *ar = arena_new();
    if (!ar) {
        mismatch(rc, pay_id, NULL, "retrieve_failed", NULL, NULL, "out of memory");
        return;
    }
    int mrc = gw->gw.retrieve(gw->state, &req, &res, ar, &e);
    if (mrc > 0) mrc = PAYD_E_INTERNAL;
    if (mrc == PAYD_E_NOTFOUND) {
        mismatch(rc, pay_id, NULL, "missing_at_provider", json_string(status), NULL,
                 "the provider does not know payment %s (%s)", pay_id, ref);
    } else if (mrc != 0) {
        mismatch(rc, pay_id, NULL, "retrieve_failed", NULL, NULL, "%s", error_text(&e, mrc));
    } else {
        const char *ours = provider_view_of(status);
        const char *theirs = payd_payment_status_name(res.status);
        if (strcmp(ours, theirs) != 0)
            mismatch(rc, pay_id, NULL, "status", json_string(status), json_string(theirs),
                     "payd has the payment %s, the provider %s", status, theirs);
        if (res.amount_captured != ledger_captured)
            mismatch(rc, pay_id, NULL, "amount_captured", json_integer(ledger_captured),
                     json_integer(res.amount_captured), "payd's ledger captured %lld %s, the provider %lld",
                     (long long)ledger_captured, currency, (long long)res.amount_captured);
    }
    arena_free(ar);
    if (mrc != 0) return;

    const char *text = store_val(r, i, "refunds");
    json_t *refunds = text ? json_loads(text, 0, NULL) : NULL;
    if (json_array_size(refunds) > 0 && gw->gw.refund_retrieve) check_refunds(rc, gw, r, i, refunds);
    json_decref(refunds);
}

int reconcile_run(app *a, const char *gateway, const report_range *rg, const reconcile_page *page, json_t **out,
                  fault *f)
{
    if (!gateway || !*gateway) return fault_invalid(f, "parameter_missing", "gateway", "gateway is required");
    instance *gw = modules_gateway(a->mods, gateway);
    if (!gw) return fault_invalid(f, "parameter_invalid", "gateway", "no gateway instance named '%.64s'", gateway);
    /* No provider holds an admin-settled gateway's money: payd's own books
     * are the only record, and comparing them with the module's "still
     * awaiting" answer would flag every approved payment. */
    if (manual_review_gateway(gw))
        return fault_invalid(f, "not_reconcilable", "gateway",
                             "gateway %s is settled by admins (module %s): there is no provider to reconcile with",
                             gw->name, gw->mod->name);

    int limit = page && page->limit ? page->limit : RECONCILE_PAGE_DEFAULT;
    const char *after = page ? page->starting_after : NULL;
    if (limit < 1 || limit > RECONCILE_PAGE_MAX)
        return fault_invalid(f, "parameter_invalid", "limit", "limit must be 1 to %d", RECONCILE_PAGE_MAX);

    arena *ar_page = arena_new();
    if (!ar_page) return fault_store(f, STORE_E_UNAVAILABLE);
    store_conn *c = store_acquire(a->db);
    if (!c) {
        arena_free(ar_page);
        return fault_store(f, STORE_E_UNAVAILABLE);
    }
    PGresult *r = NULL;
    int src = STORE_OK;
    /* Without a cursor: from the range's start, before every id. */
    const char *after_at = rg->from_param, *after_id = "";
    if (after) {
        const char *pc[] = {after, gateway};
        src = store_query(c, &stmt_cursor, 2, pc, &r);
        int known = src == STORE_OK && PQntuples(r) == 1;
        if (known) after_at = arena_strdup(ar_page, store_val(r, 0, "at"));
        PQclear(r);
        r = NULL;
        if (src == STORE_OK && !known) {
            store_release(c);
            arena_free(ar_page);
            return fault_invalid(f, "resource_missing", "starting_after", "no payment '%.64s' of gateway %s", after,
                                 gateway);
        }
        after_id = after;
    }
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {gateway, rg->from_param, rg->to_param, lim, after_at, after_id};
    if (src == STORE_OK) src = store_query(c, &stmt_payments, 6, params, &r);
    arena_free(ar_page);
    store_release(c);
    if (src != STORE_OK) return fault_store(f, src);
    int rows = PQntuples(r);

    /* A stop request ends the page early; the cursor then points at the
     * last payment checked, so nothing is skipped. */
    recon rc = {.mismatches = json_array()};
    int skipped = 0, n = 0;
    for (; n < rows && n < limit && !atomic_load(&a->stopping); n++) {
        if (!store_val(r, n, "provider_ref")) skipped++;
        check_payment(&rc, gw, r, n);
    }
    if (n == 0 && rows > 0) {
        /* Stopping before the first payment: no page to answer. */
        PQclear(r);
        json_decref(rc.mismatches);
        return fault_store(f, STORE_E_UNAVAILABLE);
    }
    int has_more = n < rows;
    json_t *next = has_more ? json_string(store_val(r, n - 1, "id")) : json_null();
    PQclear(r);
    size_t found = json_array_size(rc.mismatches);
    if (found) log_warn("reconcile", "%s: %zu mismatches in %d payments", gateway, found, n);
    *out = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:o, s:b, s:o}", "object", "reconciliation",
                     "gateway", gateway, "from", rg->from_text, "to", rg->to_text, "payments_checked", n,
                     "payments_without_provider_ref", skipped, "refunds_checked", rc.refunds_checked,
                     "mismatch_count", (int)found, "mismatches", rc.mismatches, "has_more", has_more,
                     "next_starting_after", next);
    return 0;
}
