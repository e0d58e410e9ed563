/*
 * orders.c - the order domain.
 *
 * An order is what the buyer owes: line items, tax and shipping in integer
 * minor units of one currency. Totals are always computed here, with
 * overflow checks; a client-sent total or subtotal that disagrees is
 * refused rather than trusted. Order numbers come from a PostgreSQL
 * sequence (no lock in payd).
 *
 * Two state machines live on an order (a decision recorded in
 * docs/decisions.md): `status` follows the money (pending ->
 * payment_pending -> paid -> partially_refunded -> refunded, or cancelled
 * while unpaid) and `fulfilment_status` follows the goods (unfulfilled ->
 * processing -> shipped -> delivered). Both only move forward; triggers in
 * the database refuse anything else.
 *
 * Every function takes its own pooled connection or the caller's, never
 * shares one across threads, and writes state, audit and event in one
 * transaction.
 */
#include "orders.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "events.h"
#include "ids.h"
#include "list_page.h"
#include "money.h"
#include "params.h"

STORE_STMT(stmt_insert,
           "INSERT INTO orders AS o (id, number, user_id, created_by, currency, subtotal, tax, shipping,"
           " total, items, customer_email, shipping_address, billing_address, metadata)"
           " VALUES ($1, 'ORD-' || to_char(now(), 'YYYY') || '-' || lpad(nextval('order_number_seq')::text, 6, '0'),"
           " $2, $3, $4, $5::bigint, $6::bigint, $7::bigint, $8::bigint, $9::jsonb, $10, $11::jsonb,"
           " $12::jsonb, coalesce($13::jsonb, '{}'))"
           " RETURNING " ORDER_JSON " AS j");
STORE_STMT(stmt_get, "SELECT " ORDER_JSON " AS j FROM orders o WHERE o.id = $1 AND ($2::text IS NULL OR o.user_id = $2)");
STORE_STMT(stmt_list,
           "SELECT " ORDER_JSON " AS j FROM orders o"
           " WHERE ($1::text IS NULL OR o.status = $1) AND ($2::text IS NULL OR o.user_id = $2)"
           " AND ($3::bigint IS NULL OR o.created_at >= to_timestamp($3::bigint))"
           " AND ($4::bigint IS NULL OR o.created_at <= to_timestamp($4::bigint))"
           " AND ($5::text IS NULL OR (o.created_at, o.id) < (SELECT created_at, id FROM orders WHERE id = $5))"
           " AND ($7::text IS NULL OR o.currency = $7)"
           " ORDER BY o.created_at DESC, o.id DESC LIMIT $6::int");
STORE_STMT(stmt_lock,
           "SELECT o.id, o.status, o.currency, o.user_id, o.total, o.amount_paid, o.amount_refunded,"
           " coalesce(o.customer_email, '') AS customer_email, o.number, " ORDER_JSON " AS j"
           " FROM orders o WHERE o.id = $1 FOR UPDATE");
STORE_STMT(stmt_set_status,
           "UPDATE orders o SET status = $2, updated_at = now() WHERE id = $1 RETURNING " ORDER_JSON " AS j");
STORE_STMT(stmt_paid,
           "UPDATE orders o SET status = 'paid', amount_paid = $2::bigint, updated_at = now()"
           " WHERE id = $1 RETURNING " ORDER_JSON " AS j, o.user_id");
STORE_STMT(stmt_more_paid,
           "UPDATE orders o SET amount_paid = amount_paid + $2::bigint, updated_at = now()"
           " WHERE id = $1 RETURNING " ORDER_JSON " AS j, o.user_id");
STORE_STMT(stmt_refunded,
           "UPDATE orders o SET amount_refunded = amount_refunded + $2::bigint,"
           " status = CASE WHEN amount_refunded + $2::bigint >= amount_paid THEN 'refunded' ELSE 'partially_refunded' END,"
           " updated_at = now() WHERE id = $1 RETURNING " ORDER_JSON " AS j, o.user_id, o.status");
STORE_STMT(stmt_update,
           "UPDATE orders o SET fulfilment_status = coalesce($2, fulfilment_status),"
           " shipping_info = coalesce($3::jsonb, shipping_info),"
           " shipping_address = coalesce($4::jsonb, shipping_address),"
           " metadata = coalesce($5::jsonb, metadata), updated_at = now()"
           " WHERE id = $1 RETURNING " ORDER_JSON " AS j");

static const char *const fulfilment_order[] = {"unfulfilled", "processing", "shipped", "delivered", NULL};

static int fulfilment_rank(const char *s)
{
    for (int i = 0; fulfilment_order[i]; i++)
        if (strcmp(fulfilment_order[i], s) == 0) return i;
    return -1;
}

/* Reads an optional non-negative integer amount field. */
static int read_amount(json_t *in, const char *key, int64_t max, int64_t *out, int required,
                       int allow_zero, fault *f)
{
    json_t *v = json_object_get(in, key);
    if (!v) {
        if (required) return fault_invalid(f, "parameter_missing", key, "%s is required", key);
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v))
        return fault_invalid(f, "parameter_invalid_integer", key,
                             "%s must be an integer amount in minor units", key);
    json_int_t n = json_integer_value(v);
    if (n < 0) return fault_invalid(f, "amount_invalid", key, "%s must not be negative", key);
    if (n == 0 && !allow_zero) return fault_invalid(f, "amount_invalid", key, "%s must be positive", key);
    if (n > max)
        return fault_invalid(f, "amount_too_large", key, "%s exceeds the maximum of %lld", key,
                             (long long)max);
    *out = n;
    return 0;
}

static int check_object(json_t *in, const char *key, size_t max_keys, fault *f)
{
    json_t *v = json_object_get(in, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return fault_invalid(f, "parameter_invalid", key, "%s must be an object", key);
    if (json_object_size(v) > max_keys)
        return fault_invalid(f, "parameter_invalid", key, "%s has more than %zu keys", key, max_keys);
    const char *k;
    json_t *child;
    json_object_foreach(v, k, child) {
        if (strlen(k) > 64) return fault_invalid(f, "parameter_invalid", key, "%s keys must be at most 64 characters", key);
        if (json_is_string(child) && json_string_length(child) > 500)
            return fault_invalid(f, "parameter_invalid", key, "%s values must be at most 500 characters", key);
        if (!json_is_string(child) && !json_is_integer(child) && !json_is_boolean(child) && !json_is_null(child))
            return fault_invalid(f, "parameter_invalid", key, "%s values must be strings, integers or booleans", key);
    }
    return 0;
}

static char *dump_or_null(json_t *in, const char *key)
{
    json_t *v = json_object_get(in, key);
    return v && !json_is_null(v) ? json_dumps(v, JSON_COMPACT) : NULL;
}

/*
 * Validates the body of POST /v1/orders and computes the totals. Builds
 * the items snapshot in *items (new reference). 0 or -1 with a fault.
 */
static int order_validate(op_ctx *x, json_t *in, char currency[4], int64_t *subtotal,
                          int64_t *tax, int64_t *shipping, int64_t *total, json_t **items, fault *f)
{
    static const char *const allowed[] = {"currency", "items", "tax", "shipping", "total", "subtotal",
                                          "customer_email", "shipping_address", "billing_address",
                                          "metadata", "user_id", NULL};
    if (params_only(in, allowed, f)) return -1;
    int64_t max = x->a->cfg->max_amount;
    json_t *cur = json_object_get(in, "currency");
    if (!cur) return fault_invalid(f, "parameter_missing", "currency", "currency is required");
    if (!json_is_string(cur) || money_currency_normalize(json_string_value(cur), currency) != 0)
        return fault_invalid(f, "currency_invalid", "currency",
                             "currency must be an ISO 4217 code payd knows, such as USD, JPY or KWD");
    json_t *list = json_object_get(in, "items");
    if (!list) return fault_invalid(f, "parameter_missing", "items", "items is required");
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > 100)
        return fault_invalid(f, "parameter_invalid", "items", "items must be an array of 1 to 100 items");
    *items = json_array();
    *subtotal = 0;
    size_t i;
    json_t *it;
    json_array_foreach(list, i, it) {
        char param[48];
        if (!json_is_object(it)) {
            snprintf(param, sizeof param, "items.%zu", i);
            json_decref(*items);
            return fault_invalid(f, "parameter_invalid", x->arena ? arena_strdup(x->arena, param) : "items",
                                 "each item must be an object");
        }
        json_t *name = json_object_get(it, "name");
        json_t *qty = json_object_get(it, "quantity");
        json_t *sku = json_object_get(it, "sku");
        int64_t unit = 0;
        const char *bad = NULL, *why = NULL;
        if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 200)
            bad = "name", why = "must be a string of 1 to 200 characters";
        else if (qty && (!json_is_integer(qty) || json_integer_value(qty) < 1 || json_integer_value(qty) > 1000000))
            bad = "quantity", why = "must be an integer from 1 to 1000000";
        else if (sku && (!json_is_string(sku) || json_string_length(sku) > 100))
            bad = "sku", why = "must be a string of at most 100 characters";
        if (bad) {
            snprintf(param, sizeof param, "items.%zu.%s", i, bad);
            json_decref(*items);
            return fault_invalid(f, "parameter_invalid", arena_strdup(x->arena, param), "item %s %s", bad, why);
        }
        fault inner;
        if (read_amount(it, "unit_amount", max, &unit, 1, 0, &inner) != 0) {
            snprintf(param, sizeof param, "items.%zu.unit_amount", i);
            json_decref(*items);
            return fault_invalid(f, inner.code, arena_strdup(x->arena, param), "%s", inner.message);
        }
        int64_t q = qty ? json_integer_value(qty) : 1, line;
        if (__builtin_mul_overflow(q, unit, &line) || __builtin_add_overflow(*subtotal, line, subtotal) ||
            *subtotal > max) {
            json_decref(*items);
            return fault_invalid(f, "amount_too_large", "items", "the order total exceeds the maximum of %lld",
                                 (long long)max);
        }
        json_array_append_new(*items, json_pack("{s:O, s:I, s:I, s:I, s:O?}", "name", name, "quantity",
                                                (json_int_t)q, "unit_amount", (json_int_t)unit, "amount",
                                                (json_int_t)line, "sku", sku));
    }
    if (read_amount(in, "tax", max, tax, 0, 1, f) || read_amount(in, "shipping", max, shipping, 0, 1, f)) {
        json_decref(*items);
        return -1;
    }
    if (__builtin_add_overflow(*subtotal, *tax, total) || __builtin_add_overflow(*total, *shipping, total) ||
        *total > max) {
        json_decref(*items);
        return fault_invalid(f, "amount_too_large", "total", "the order total exceeds the maximum of %lld",
                             (long long)max);
    }
    if (*total <= 0) {
        json_decref(*items);
        return fault_invalid(f, "amount_invalid", "total", "the order total must be positive");
    }
    json_t *claimed = json_object_get(in, "total");
    json_t *claimed_sub = json_object_get(in, "subtotal");
    if ((claimed && (!json_is_integer(claimed) || json_integer_value(claimed) != *total)) ||
        (claimed_sub && (!json_is_integer(claimed_sub) || json_integer_value(claimed_sub) != *subtotal))) {
        json_decref(*items);
        return fault_invalid(f, "total_mismatch", claimed ? "total" : "subtotal",
                             "the total does not match the items, tax and shipping: expected subtotal %lld and total %lld",
                             (long long)*subtotal, (long long)*total);
    }
    json_t *email = json_object_get(in, "customer_email");
    if (email && !json_is_null(email) &&
        (!json_is_string(email) || json_string_length(email) > 254 || !strchr(json_string_value(email), '@'))) {
        json_decref(*items);
        return fault_invalid(f, "parameter_invalid", "customer_email", "customer_email must be an email address");
    }
    if (check_object(in, "metadata", 50, f) || check_object(in, "shipping_address", 20, f) ||
        check_object(in, "billing_address", 20, f)) {
        json_decref(*items);
        return -1;
    }
    json_t *uid = json_object_get(in, "user_id");
    if (uid && !json_is_null(uid) && (!json_is_string(uid) || json_string_length(uid) == 0 || json_string_length(uid) > 100)) {
        json_decref(*items);
        return fault_invalid(f, "parameter_invalid", "user_id", "user_id must be a string of 1 to 100 characters");
    }
    return 0;
}

int orders_create(op_ctx *x, json_t *in, json_t **out, fault *f)
{
    char currency[4], id[IDS_MAX], sub[24], tx[24], sh[24], tot[24];
    int64_t subtotal = 0, tax = 0, shipping = 0, total = 0;
    json_t *items = NULL;
    if (!in) return fault_invalid(f, "parameter_missing", "items", "a JSON body with currency and items is required");
    if (order_validate(x, in, currency, &subtotal, &tax, &shipping, &total, &items, f) != 0) return -1;
    const char *user = op_user_scope(x);
    if (!user) {
        json_t *uid = json_object_get(in, "user_id");
        user = json_is_string(uid) ? json_string_value(uid) : NULL;
    }
    ids_new("ord", id);
    snprintf(sub, sizeof sub, "%lld", (long long)subtotal);
    snprintf(tx, sizeof tx, "%lld", (long long)tax);
    snprintf(sh, sizeof sh, "%lld", (long long)shipping);
    snprintf(tot, sizeof tot, "%lld", (long long)total);
    char *items_text = json_dumps(items, JSON_COMPACT);
    json_decref(items);
    json_t *email = json_object_get(in, "customer_email");
    char *ship = dump_or_null(in, "shipping_address"), *bill = dump_or_null(in, "billing_address"),
         *meta = dump_or_null(in, "metadata");
    const char *params[] = {id, user, op_actor(x), currency, sub, tx, sh, tot, items_text,
                            json_is_string(email) ? json_string_value(email) : NULL, ship, bill, meta};

    int rc = STORE_E_UNAVAILABLE;
    PGresult *r = NULL;
    store_conn *c = store_acquire(x->a->db);
    if (c) {
        rc = store_begin(c);
        if (rc == STORE_OK) rc = store_query(c, &stmt_insert, 13, params, &r);
        if (rc == STORE_OK) {
            const char *j = store_val(r, 0, "j");
            json_t *after = json_loads(j, 0, NULL);
            char entity[64];
            snprintf(entity, sizeof entity, "order:%s", id);
            rc = audit_write(c, entity, op_actor(x), "order.created", x->request_id, NULL, after);
            json_decref(after);
            if (rc == STORE_OK)
                rc = events_emit(c, x->a->mods, "order.created", "order", id, id, user, j, x->request_id);
        }
        if (rc == STORE_OK) rc = store_commit(c);
        else store_rollback(c);
        store_release(c);
    }
    free(items_text);
    free(ship);
    free(bill);
    free(meta);
    if (rc != STORE_OK) {
        PQclear(r);
        return fault_store(f, rc);
    }
    *out = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return 0;
}

int orders_get(op_ctx *x, const char *id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    const char *params[] = {id, op_user_scope(x)};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_get, 2, params, &r);
    store_release(c);
    if (rc != STORE_OK) return fault_store(f, rc);
    int found = PQntuples(r) == 1;
    if (found) *out = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return found ? 0 : fault_not_found(f, "order", id);
}

STORE_STMT(stmt_cursor, "SELECT 1 FROM orders WHERE id = $1 AND ($2::text IS NULL OR user_id = $2)");

int orders_list(op_ctx *x, const order_filter *flt, json_t **out, fault *f)
{
    const char *user = op_user_scope(x) ? op_user_scope(x) : flt->user_id;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", flt->limit + 1);
    const char *params[] = {flt->status, user, flt->created_gte, flt->created_lte, flt->starting_after, lim,
                            flt->currency};
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = flt->starting_after ? list_page_cursor(c, &stmt_cursor, flt->starting_after, op_user_scope(x), "order", f)
                                 : 0;
    if (rc == 0) rc = list_page_query(c, &stmt_list, 7, params, flt->limit, out, f);
    store_release(c);
    return rc;
}

int orders_lock(store_conn *c, const char *id, order_row *o)
{
    const char *params[] = {id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_lock, 1, params, &r);
    if (rc != STORE_OK) return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 1; /* not found */
    }
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "%s", store_val(r, 0, "id"));
    snprintf(o->status, sizeof o->status, "%s", store_val(r, 0, "status"));
    snprintf(o->currency, sizeof o->currency, "%s", store_val(r, 0, "currency"));
    const char *u = store_val(r, 0, "user_id");
    o->has_user = u != NULL;
    snprintf(o->user_id, sizeof o->user_id, "%s", u ? u : "");
    o->total = store_i64(r, 0, "total");
    o->amount_paid = store_i64(r, 0, "amount_paid");
    o->amount_refunded = store_i64(r, 0, "amount_refunded");
    snprintf(o->customer_email, sizeof o->customer_email, "%s", store_val(r, 0, "customer_email"));
    snprintf(o->number, sizeof o->number, "%s", store_val(r, 0, "number"));
    o->before = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return STORE_OK;
}

void orders_row_release(order_row *o)
{
    json_decref(o->before);
    o->before = NULL;
}

/* Moves a locked order's status inside the caller's transaction, with
 * audit and (optionally) an event. */
static int order_transition(op_ctx *x, store_conn *c, const order_row *o, const char *status,
                            const char *action, const char *event)
{
    const char *p2[] = {o->id, status};
    PGresult *after = NULL;
    int rc = store_query(c, &stmt_set_status, 2, p2, &after);
    if (rc == STORE_OK && PQntuples(after) == 1) {
        json_t *a = json_loads(store_val(after, 0, "j"), 0, NULL);
        char entity[64];
        snprintf(entity, sizeof entity, "order:%s", o->id);
        rc = audit_write(c, entity, op_actor(x), action, x->request_id, o->before, a);
        if (rc == STORE_OK && event)
            rc = events_emit(c, x->a->mods, event, "order", o->id, o->id, o->has_user ? o->user_id : NULL,
                             store_val(after, 0, "j"), x->request_id);
        json_decref(a);
    }
    PQclear(after);
    return rc;
}

int orders_payment_started(op_ctx *x, store_conn *c, const order_row *o)
{
    if (strcmp(o->status, "payment_pending") == 0) return STORE_OK;
    return order_transition(x, c, o, "payment_pending", "order.payment_started", NULL);
}

int orders_payment_released(op_ctx *x, store_conn *c, const char *order_id)
{
    order_row o;
    int rc = orders_lock(c, order_id, &o);
    if (rc != STORE_OK) return rc < 0 ? rc : STORE_OK;
    if (strcmp(o.status, "payment_pending") == 0)
        rc = order_transition(x, c, &o, "pending", "order.payment_released", NULL);
    orders_row_release(&o);
    return rc;
}

/* Applies a money update to a locked order (paid or refunded) with audit
 * and, for payment, the order.paid event. */
static int order_money_update(op_ctx *x, store_conn *c, order_row *o, store_stmt *st, int64_t amount,
                              const char *action, const char *event)
{
    char amt[24];
    snprintf(amt, sizeof amt, "%lld", (long long)amount);
    const char *params[] = {o->id, amt};
    PGresult *after = NULL;
    int rc = store_query(c, st, 2, params, &after);
    if (rc == STORE_OK) {
        json_t *a = json_loads(store_val(after, 0, "j"), 0, NULL);
        char entity[64];
        snprintf(entity, sizeof entity, "order:%s", o->id);
        rc = audit_write(c, entity, op_actor(x), action, x->request_id, o->before, a);
        if (rc == STORE_OK && event)
            rc = events_emit(c, x->a->mods, event, "order", o->id, o->id, store_val(after, 0, "user_id"),
                             store_val(after, 0, "j"), x->request_id);
        json_decref(a);
    }
    PQclear(after);
    return rc;
}

int orders_payment_succeeded(op_ctx *x, store_conn *c, const char *order_id, int64_t amount)
{
    order_row o;
    int rc = orders_lock(c, order_id, &o);
    if (rc != STORE_OK) return rc < 0 ? rc : STORE_OK;
    if (strcmp(o.status, "pending") == 0 || strcmp(o.status, "payment_pending") == 0)
        rc = order_money_update(x, c, &o, &stmt_paid, amount, "order.paid", "order.paid");
    orders_row_release(&o);
    return rc;
}

int orders_payment_more_captured(op_ctx *x, store_conn *c, const char *order_id, int64_t amount)
{
    order_row o;
    int rc = orders_lock(c, order_id, &o);
    if (rc != STORE_OK) return rc < 0 ? rc : STORE_OK;
    rc = order_money_update(x, c, &o, &stmt_more_paid, amount, "order.payment_increased", NULL);
    orders_row_release(&o);
    return rc;
}

int orders_refunded(op_ctx *x, store_conn *c, const char *order_id, int64_t amount)
{
    order_row o;
    int rc = orders_lock(c, order_id, &o);
    if (rc != STORE_OK) return rc < 0 ? rc : STORE_OK;
    rc = order_money_update(x, c, &o, &stmt_refunded, amount, "order.refunded", NULL);
    orders_row_release(&o);
    return rc;
}

int orders_cancel(op_ctx *x, const char *id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    order_row o = {0};
    int rc = store_begin(c);
    int refused = 0;
    if (rc == STORE_OK) rc = orders_lock(c, id, &o);
    if (rc == 1 || (rc == STORE_OK && op_user_scope(x) && (!o.has_user || strcmp(o.user_id, op_user_scope(x)) != 0))) {
        refused = fault_not_found(f, "order", id) != 0;
    } else if (rc == STORE_OK && strcmp(o.status, "cancelled") == 0) {
        refused = fault_set(f, 409, "invalid_request_error", "order_already_cancelled", NULL, "the order is already cancelled") != 0;
    } else if (rc == STORE_OK && strcmp(o.status, "pending") != 0) {
        refused = fault_set(f, 409, "invalid_request_error", "order_not_cancellable", NULL,
                         "only an unpaid order without a payment in progress can be cancelled (status is %s)", o.status) != 0;
    } else if (rc == STORE_OK) {
        rc = order_transition(x, c, &o, "cancelled", "order.cancelled", "order.cancelled");
    }
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    orders_row_release(&o);
    if (!refused && rc != STORE_OK) return fault_store(f, rc);
    if (!refused) return orders_get(x, id, out, f);
    return -1;
}

int orders_update(op_ctx *x, const char *id, json_t *in, json_t **out, fault *f)
{
    if (!in) return fault_invalid(f, "parameter_missing", NULL, "a JSON body is required");
    static const char *const allowed[] = {"fulfilment_status", "shipping_info", "shipping_address", "metadata", NULL};
    if (params_only(in, allowed, f)) return -1;
    json_t *fs = json_object_get(in, "fulfilment_status");
    if (fs && (!json_is_string(fs) || fulfilment_rank(json_string_value(fs)) < 1))
        return fault_invalid(f, "parameter_invalid", "fulfilment_status",
                             "fulfilment_status must be processing, shipped or delivered");
    if (check_object(in, "shipping_info", 10, f) || check_object(in, "shipping_address", 20, f) ||
        check_object(in, "metadata", 50, f))
        return -1;

    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int refused = 0;
    PGresult *after = NULL;
    int rc = store_begin(c);
    order_row o = {0};
    if (rc == STORE_OK) rc = orders_lock(c, id, &o);
    if (rc == 1) {
        refused = fault_not_found(f, "order", id) != 0;
    } else if (rc == STORE_OK) {
        json_t *b = json_incref(o.before);
        const char *cur = json_string_value(json_object_get(b, "fulfilment_status"));
        if (fs && strcmp(o.status, "paid") != 0 && strcmp(o.status, "partially_refunded") != 0)
            refused = fault_set(f, 409, "invalid_request_error", "order_not_paid", "fulfilment_status",
                             "an order is fulfilled only after it is paid (status is %s)", o.status) != 0;
        else if (fs && fulfilment_rank(json_string_value(fs)) <= fulfilment_rank(cur) &&
                 strcmp(json_string_value(fs), cur) != 0)
            refused = fault_invalid(f, "invalid_transition", "fulfilment_status",
                                 "fulfilment only moves forward: %s cannot become %s", cur, json_string_value(fs)) != 0;
        else if (strcmp(o.status, "cancelled") == 0)
            refused = fault_set(f, 409, "invalid_request_error", "order_cancelled", NULL, "the order is cancelled") != 0;
        if (!refused) {
            char *si = dump_or_null(in, "shipping_info"), *sa = dump_or_null(in, "shipping_address"),
                 *md = dump_or_null(in, "metadata");
            const char *params[] = {id, fs ? json_string_value(fs) : NULL, si, sa, md};
            rc = store_query(c, &stmt_update, 5, params, &after);
            free(si);
            free(sa);
            free(md);
            if (rc == STORE_OK) {
                json_t *a = json_loads(store_val(after, 0, "j"), 0, NULL);
                char entity[64];
                snprintf(entity, sizeof entity, "order:%s", id);
                rc = audit_write(c, entity, op_actor(x), "order.updated", x->request_id, b, a);
                int changed = fs && strcmp(json_string_value(fs), cur) != 0;
                if (rc == STORE_OK && changed)
                    rc = events_emit(c, x->a->mods, "order.fulfilment_updated", "order", id, id,
                                     json_string_value(json_object_get(a, "user_id")),
                                     store_val(after, 0, "j"), x->request_id);
                if (rc == STORE_OK) *out = a;
                else json_decref(a);
            }
        }
        json_decref(b);
    }
    if (!refused && rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    orders_row_release(&o);
    PQclear(after);
    if (!refused && rc != STORE_OK) {
        if (*out) {
            json_decref(*out);
            *out = NULL;
        }
        return fault_store(f, rc);
    }
    return refused ? -1 : 0;
}
