/*
 * methods.c - customers and saved payment methods.
 *
 * A customer is payd's own record; each gateway knows it by its own
 * reference (customer_gateways), created by the module the first time a
 * method is saved on that gateway. A saved method keeps only the provider's
 * token and display data (brand, last four digits, expiry): card data never
 * reaches payd. End users (JWT) see only the customer linked to their user
 * id; API keys see all.
 *
 * Saving calls the provider with a derived idempotency key, then records
 * the result in one short transaction. Only a customer's first save on a
 * gateway (which creates the provider customer) calls the provider while
 * holding the customer lock; see methods_save.
 */
#include "methods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "ids.h"
#include "log.h"
#include "params.h"
#include "routing.h"

#define CUSTOMER_JSON                                                                         \
    "json_build_object('id', c.id, 'object', 'customer', 'user_id', c.user_id, 'email', c.email," \
    " 'created', extract(epoch FROM c.created_at)::bigint)::text"
#define METHOD_JSON                                                                           \
    "json_build_object('id', m.id, 'object', 'payment_method', 'customer_id', m.customer_id,"    \
    " 'gateway', m.gateway, 'brand', m.brand, 'last4', m.last4, 'exp_month', m.exp_month,"       \
    " 'exp_year', m.exp_year, 'is_default', m.is_default,"                                      \
    " 'created', extract(epoch FROM m.created_at)::bigint)::text"

STORE_STMT(stmt_customer_insert,
           "INSERT INTO customers AS c (id, user_id, email, created_by) VALUES ($1, $2, $3, $4)"
           " ON CONFLICT (user_id) WHERE user_id IS NOT NULL DO NOTHING RETURNING " CUSTOMER_JSON " AS j");
STORE_STMT(stmt_customer_by_user, "SELECT " CUSTOMER_JSON " AS j FROM customers c WHERE c.user_id = $1");
STORE_STMT(stmt_customer_get,
           "SELECT " CUSTOMER_JSON " AS j, c.user_id, c.email FROM customers c WHERE c.id = $1");
STORE_STMT(stmt_gateway_ref,
           "SELECT provider_ref FROM customer_gateways WHERE customer_id = $1 AND gateway = $2");
STORE_STMT(stmt_gateway_ref_insert,
           "INSERT INTO customer_gateways (customer_id, gateway, provider_ref) VALUES ($1, $2, $3)"
           " ON CONFLICT (customer_id, gateway) DO NOTHING");
/* Every write to a customer's methods first takes this row lock, so saves
 * and default switches of one customer run one after the other: the
 * partial unique index (one default per customer) then never fires on a
 * race, and the last switch wins. Other customers are not blocked. */
STORE_STMT(stmt_customer_lock, "SELECT 1 FROM customers WHERE id = $1 FOR NO KEY UPDATE");
/* NO KEY: a payment inserted for the customer (a foreign key) does not
 * wait for it. The first save of a customer on a gateway is serialized by
 * a transaction-scoped advisory lock on "payd-first-save:<customer>:<gateway>",
 * taken without waiting (see methods_save). */
STORE_STMT(stmt_first_save_try, "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS locked");
/* With $9 (set_default) the others are cleared first (stmt_default_clear_for_save). A
 * customer's first method becomes the default anyway. */
STORE_STMT(stmt_method_insert,
           "INSERT INTO payment_methods AS m (id, customer_id, gateway, provider_ref, brand, last4,"
           " exp_month, exp_year, is_default)"
           " VALUES ($1, $2, $3, $4, $5, $6, $7::smallint, $8::smallint,"
           "  $9::boolean OR NOT EXISTS (SELECT 1 FROM payment_methods WHERE customer_id = $2 AND is_default))"
           " ON CONFLICT (gateway, provider_ref) DO UPDATE SET brand = EXCLUDED.brand,"
           "  is_default = m.is_default OR (m.customer_id = EXCLUDED.customer_id AND $9::boolean)"
           " RETURNING " METHOD_JSON " AS j, m.customer_id");
STORE_STMT(stmt_default_clear_for_save,
           "UPDATE payment_methods SET is_default = false"
           " WHERE customer_id = $1 AND is_default AND NOT (gateway = $2 AND provider_ref = $3)");
STORE_STMT(stmt_method_list,
           "SELECT " METHOD_JSON " AS j FROM payment_methods m WHERE m.customer_id = $1 ORDER BY m.created_at, m.id");
STORE_STMT(stmt_method_get,
           "SELECT m.id, m.gateway, m.provider_ref, m.customer_id, c.user_id, g.provider_ref AS customer_ref,"
           " " METHOD_JSON " AS j FROM payment_methods m JOIN customers c ON c.id = m.customer_id"
           " LEFT JOIN customer_gateways g ON g.customer_id = m.customer_id AND g.gateway = m.gateway"
           " WHERE m.id = $1");
STORE_STMT(stmt_method_delete,
           "DELETE FROM payment_methods WHERE id = $1 AND customer_id = $2 RETURNING is_default");
/* After the default is deleted, the newest remaining method (if any) takes
 * its place: a customer with methods always has exactly one default. */
STORE_STMT(stmt_default_promote,
           "UPDATE payment_methods m SET is_default = true WHERE m.id = (SELECT id FROM payment_methods"
           " WHERE customer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1) RETURNING " METHOD_JSON " AS j");
STORE_STMT(stmt_default_clear,
           "UPDATE payment_methods SET is_default = false WHERE customer_id = $1 AND is_default AND id <> $2");
STORE_STMT(stmt_default_set,
           "UPDATE payment_methods m SET is_default = true WHERE id = $1 AND customer_id = $2 RETURNING " METHOD_JSON " AS j");

/* Loads a customer the caller may see; fills user/email (arena). 0/-1. */
static int customer_visible(op_ctx *x, store_conn *c, const char *id, json_t **repr,
                            const char **email, fault *f)
{
    const char *params[] = {id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_customer_get, 1, params, &r);
    if (rc != STORE_OK) return fault_store(f, rc);
    const char *scope = op_user_scope(x);
    const char *owner = PQntuples(r) == 1 ? store_val(r, 0, "user_id") : NULL;
    int ok = PQntuples(r) == 1 && (!scope || (owner && strcmp(owner, scope) == 0));
    if (ok) {
        if (repr) *repr = json_loads(store_val(r, 0, "j"), 0, NULL);
        if (email) *email = arena_strdup(x->arena, store_val(r, 0, "email"));
    }
    PQclear(r);
    return ok ? 0 : fault_not_found(f, "customer", id);
}

int methods_customer_create(op_ctx *x, json_t *in, json_t **out, int *status, fault *f)
{
    json_t *email = in ? json_object_get(in, "email") : NULL;
    json_t *uid = in ? json_object_get(in, "user_id") : NULL;
    static const char *const allowed[] = {"email", "user_id", NULL};
    if (params_only(in, allowed, f)) return -1;
    if (email && (!json_is_string(email) || json_string_length(email) > 254 || !strchr(json_string_value(email), '@')))
        return fault_invalid(f, "parameter_invalid", "email", "email must be an email address");
    if (uid && (!json_is_string(uid) || json_string_length(uid) == 0 || json_string_length(uid) > 100))
        return fault_invalid(f, "parameter_invalid", "user_id", "user_id must be a string of 1 to 100 characters");
    const char *user = op_user_scope(x) ? op_user_scope(x) : json_string_value(uid);
    char id[IDS_MAX];
    ids_new("cus", id);
    const char *params[] = {id, user, json_string_value(email), op_actor(x)};
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    PGresult *r = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = store_query(c, &stmt_customer_insert, 4, params, &r);
    *status = 201;
    if (rc == STORE_OK && PQntuples(r) == 0) {
        /* One customer per user: answer the existing one. */
        PQclear(r);
        const char *p2[] = {user};
        rc = store_query(c, &stmt_customer_by_user, 1, p2, &r);
        *status = 200;
    } else if (rc == STORE_OK) {
        char entity[64];
        snprintf(entity, sizeof entity, "customer:%s", id);
        json_t *after = json_loads(store_val(r, 0, "j"), 0, NULL);
        rc = audit_write(c, entity, op_actor(x), "customer.created", x->request_id, NULL, after);
        json_decref(after);
    }
    if (rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (rc != STORE_OK || PQntuples(r) != 1) {
        PQclear(r);
        return fault_store(f, rc == STORE_OK ? STORE_E_QUERY : rc);
    }
    *out = json_loads(store_val(r, 0, "j"), 0, NULL);
    PQclear(r);
    return 0;
}

int methods_customer_get(op_ctx *x, const char *id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = customer_visible(x, c, id, out, NULL, f);
    store_release(c);
    return rc;
}

/* Asks the gateway to save `token` for the customer. Fills *res (arena
 * strings) or the fault. The idempotency key names the provider customer
 * too, so a first save (which creates it) and a later save of the same
 * token never share a key with different parameters. */
static int provider_save(op_ctx *x, instance *gw, const char *customer_id, const char *customer_ref,
                         const char *email, const char *token, payd_method *res, fault *f)
{
    char key[256];
    snprintf(key, sizeof key, "payd-%s-save-%.64s-%.64s", customer_id, customer_ref ? customer_ref : "new", token);
    payd_method_req req = {.struct_size = sizeof req, .customer_ref = customer_ref, .customer_email = email,
                           .method_ref = token, .idempotency_key = key};
    payd_error e = {0};
    int mrc = gw->gw.save_method(gw->state, &req, res, x->arena, &e);
    e.message[sizeof e.message - 1] = '\0';
    if (mrc == PAYD_E_DECLINED)
        return fault_set(f, 402, "card_error", e.failure_code[0] ? arena_strdup(x->arena, e.failure_code) : "card_declined",
                         "payment_method", "%s", e.message[0] ? e.message : "the card was declined");
    if (mrc == PAYD_E_INVALID || mrc == PAYD_E_NOTFOUND)
        return fault_invalid(f, "gateway_rejected", "payment_method", "%s: %s", gw->name,
                             e.message[0] ? e.message : "the gateway refused the method");
    if (mrc == PAYD_E_TRANSIENT)
        return fault_set(f, 503, "api_error", "gateway_unavailable", NULL, "gateway %s did not answer; retry", gw->name);
    if (mrc != 0 || !res->method_ref)
        return fault_set(f, 502, "api_error", "gateway_error", NULL, "%s: %s", gw->name,
                         e.message[0] ? e.message : "the gateway could not save the method");
    if (!customer_ref && !res->customer_ref)
        return fault_set(f, 502, "api_error", "gateway_error", NULL, "%s: the gateway saved the method without a customer",
                         gw->name);
    return 0;
}

/* Records a saved method inside the caller's transaction, which holds the
 * customer lock. Returns a store code; *out is the method's JSON, or NULL
 * with *foreign set when the provider token belongs to another customer. */
static int method_record(op_ctx *x, store_conn *c, const char *customer_id, instance *gw, int set_default,
                         const char *new_customer_ref, const payd_method *res, json_t **out, int *foreign)
{
    char id[IDS_MAX], month[8], year[8];
    ids_new("pm", id);
    snprintf(month, sizeof month, "%d", res->exp_month);
    snprintf(year, sizeof year, "%d", res->exp_year);
    const char *last4 = res->last4 && strlen(res->last4) == 4 && strspn(res->last4, "0123456789") == 4 ? res->last4 : NULL;
    int rc = STORE_OK;
    if (set_default) {
        const char *pc[] = {customer_id, gw->name, res->method_ref};
        rc = store_query(c, &stmt_default_clear_for_save, 3, pc, NULL);
    }
    if (rc == STORE_OK && new_customer_ref) {
        const char *p2[] = {customer_id, gw->name, new_customer_ref};
        rc = store_query(c, &stmt_gateway_ref_insert, 3, p2, NULL);
    }
    const char *p3[] = {id, customer_id, gw->name, res->method_ref, res->brand, last4,
                        res->exp_month >= 1 && res->exp_month <= 12 ? month : NULL,
                        res->exp_year > 0 ? year : NULL, set_default ? "true" : "false"};
    PGresult *r = NULL;
    if (rc == STORE_OK) rc = store_query(c, &stmt_method_insert, 9, p3, &r);
    *out = NULL;
    *foreign = rc == STORE_OK && strcmp(store_val(r, 0, "customer_id"), customer_id) != 0;
    if (rc == STORE_OK && !*foreign) {
        char entity[64];
        snprintf(entity, sizeof entity, "customer:%s", customer_id);
        *out = json_loads(store_val(r, 0, "j"), 0, NULL);
        rc = audit_write(c, entity, op_actor(x), "payment_method.saved", x->request_id, NULL, *out);
    }
    PQclear(r);
    return rc;
}

/*
 * Saves a provider token as a customer's payment method.
 *
 * The provider knows the customer by a reference it creates on the first
 * save. That first save therefore runs under a first-save advisory lock
 * (per customer and gateway), held in a transaction across the provider
 * call, so concurrent first saves create one provider customer, not one
 * each (the losers would otherwise leave orphans at the provider and their
 * methods attached to them). The others do not queue on the lock holding a
 * connection: they poll for it with backoff, connection released, and find
 * the reference once it commits (503 save_in_progress after the provider
 * timeout). Later saves call the provider outside any transaction. Every
 * save records its method under the customer row lock, which orders it
 * with deletes and default switches. Thread-safe; *out is the caller's.
 */
int methods_save(op_ctx *x, const char *customer_id, json_t *in, json_t **out, fault *f)
{
    *out = NULL;
    json_t *jm = in ? json_object_get(in, "payment_method") : NULL;
    json_t *jg = in ? json_object_get(in, "gateway") : NULL;
    if (!json_is_string(jm) || json_string_length(jm) == 0 || json_string_length(jm) > 200)
        return fault_invalid(f, "parameter_missing", "payment_method", "payment_method (a provider token) is required");
    if (jg && !json_is_string(jg))
        return fault_invalid(f, "parameter_invalid", "gateway", "gateway must be a gateway instance name");
    json_t *jd = in ? json_object_get(in, "set_default") : NULL;
    if (jd && !json_is_boolean(jd))
        return fault_invalid(f, "parameter_invalid", "set_default", "set_default must be true or false");
    const char *token = json_string_value(jm);
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    const char *email = NULL;
    if (customer_visible(x, c, customer_id, NULL, &email, f) != 0) {
        store_release(c);
        return -1;
    }
    instance *gw = routing_pick(x->a, json_string_value(jg), "", f);
    if (!gw) {
        store_release(c);
        return -1;
    }
    if (!(gw->mod->caps & PAYD_CAP_SAVED_METHODS)) {
        store_release(c);
        return fault_invalid(f, "not_supported", "gateway", "gateway %s cannot save payment methods", gw->name);
    }

    /* The provider reference, read first without a lock: once a customer
     * has one, a save costs nothing extra. Without one, this save may
     * create it, under the first-save lock; a save that finds the lock
     * taken lets go of its connection, waits a moment and looks again, so
     * concurrent first saves hold one pooled connection, not one each. */
    const char *p0[] = {customer_id};
    const char *p1[] = {customer_id, gw->name};
    char lock_name[160];
    snprintf(lock_name, sizeof lock_name, "payd-first-save:%s:%s", customer_id, gw->name);
    const char *pl[] = {lock_name};
    const char *customer_ref = NULL;
    int rc = STORE_OK, locked = 0;
    for (long waited_ms = 0, pause_ms = 10;; waited_ms += pause_ms, pause_ms = pause_ms < 200 ? pause_ms * 2 : 200) {
        PGresult *r = NULL;
        if (!c) c = store_acquire(x->a->db);
        if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
        rc = store_query(c, &stmt_gateway_ref, 2, p1, &r);
        if (rc == STORE_OK && PQntuples(r) == 1) customer_ref = arena_strdup(x->arena, PQgetvalue(r, 0, 0));
        PQclear(r);
        if (rc != STORE_OK || customer_ref) break;
        rc = store_begin(c);
        if (rc == STORE_OK) rc = store_query(c, &stmt_first_save_try, 1, pl, &r);
        locked = rc == STORE_OK && store_val(r, 0, "locked")[0] == 't';
        PQclear(r);
        if (locked) {
            /* A first save may have committed between the read and the lock. */
            rc = store_query(c, &stmt_gateway_ref, 2, p1, &r);
            if (rc == STORE_OK && PQntuples(r) == 1) customer_ref = arena_strdup(x->arena, PQgetvalue(r, 0, 0));
            PQclear(r);
            if (rc != STORE_OK || customer_ref) {
                store_rollback(c);
                locked = 0;
            }
            break;
        }
        store_rollback(c);
        store_release(c);
        c = NULL;
        if (rc != STORE_OK) return fault_store(f, rc);
        if (waited_ms > x->a->cfg->http_timeout_ms + 1000L)
            return fault_set(f, 503, "api_error", "save_in_progress", NULL,
                             "another first save for this customer on gateway %s is still running; retry", gw->name);
        struct timespec pause = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    if (!locked) {
        store_release(c);
        c = NULL;
        if (rc != STORE_OK) return fault_store(f, rc);
    }

    payd_method res = {.struct_size = sizeof res};
    if (provider_save(x, gw, customer_id, customer_ref, email, token, &res, f) != 0) {
        if (c) {
            store_rollback(c);
            store_release(c);
        }
        return -1;
    }
    if (!c) {
        c = store_acquire(x->a->db);
        if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
        rc = store_begin(c);
    }
    if (rc == STORE_OK) rc = store_query(c, &stmt_customer_lock, 1, p0, NULL);
    int foreign = 0;
    if (rc == STORE_OK)
        rc = method_record(x, c, customer_id, gw, json_is_true(jd), customer_ref ? NULL : res.customer_ref, &res, out,
                           &foreign);
    if (rc == STORE_OK && !foreign) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    if (foreign)
        return fault_set(f, 409, "invalid_request_error", "method_belongs_to_another_customer", "payment_method",
                         "this payment method is saved for another customer");
    if (rc != STORE_OK) {
        json_decref(*out);
        *out = NULL;
        return fault_store(f, rc);
    }
    return 0;
}

int methods_list(op_ctx *x, const char *customer_id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    if (customer_visible(x, c, customer_id, NULL, NULL, f) != 0) {
        store_release(c);
        return -1;
    }
    const char *params[] = {customer_id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_method_list, 1, params, &r);
    store_release(c);
    if (rc != STORE_OK) return fault_store(f, rc);
    json_t *data = json_array();
    for (int i = 0; i < PQntuples(r); i++) json_array_append_new(data, json_loads(PQgetvalue(r, i, 0), 0, NULL));
    PQclear(r);
    *out = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", 0);
    return 0;
}

/* Loads a saved method of `customer_id` the caller may see. */
static int method_visible(op_ctx *x, store_conn *c, const char *customer_id, const char *pm_id,
                          PGresult **out, fault *f)
{
    const char *params[] = {pm_id};
    int rc = store_query(c, &stmt_method_get, 1, params, out);
    if (rc != STORE_OK) return fault_store(f, rc);
    const char *scope = op_user_scope(x);
    const char *owner = PQntuples(*out) == 1 ? store_val(*out, 0, "user_id") : NULL;
    if (PQntuples(*out) != 1 || strcmp(store_val(*out, 0, "customer_id"), customer_id) != 0 ||
        (scope && (!owner || strcmp(owner, scope) != 0))) {
        PQclear(*out);
        *out = NULL;
        return fault_not_found(f, "payment method", pm_id);
    }
    return 0;
}

/*
 * Deletes a saved method: detached at the provider first (outside any
 * transaction; a provider that no longer knows it is fine), then removed
 * under the customer lock. Of concurrent deletes one answers 200 and the
 * others 404, with one audit row. Deleting the default hands the default
 * to the newest remaining method, audited as a default switch.
 */
int methods_delete(op_ctx *x, const char *customer_id, const char *pm_id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    PGresult *m = NULL;
    if (method_visible(x, c, customer_id, pm_id, &m, f) != 0) {
        store_release(c);
        return -1;
    }
    store_release(c);
    instance *gw = modules_gateway(x->a->mods, store_val(m, 0, "gateway"));
    if (gw && gw->gw.delete_method) {
        char key[160];
        snprintf(key, sizeof key, "payd-%s-delete-%s", customer_id, pm_id);
        payd_method_req req = {.struct_size = sizeof req, .customer_ref = store_val(m, 0, "customer_ref"),
                               .method_ref = store_val(m, 0, "provider_ref"), .idempotency_key = key};
        payd_method res = {.struct_size = sizeof res};
        payd_error e = {0};
        int mrc = gw->gw.delete_method(gw->state, &req, &res, x->arena, &e);
        if (mrc == PAYD_E_TRANSIENT) {
            PQclear(m);
            return fault_set(f, 503, "api_error", "gateway_unavailable", NULL, "gateway %s did not answer; retry", gw->name);
        }
        if (mrc != 0 && mrc != PAYD_E_NOTFOUND)
            log_warn("methods", "gateway %s could not detach %s; removing it from payd anyway", gw->name, pm_id);
    }
    c = store_acquire(x->a->db);
    if (!c) {
        PQclear(m);
        return fault_store(f, STORE_E_UNAVAILABLE);
    }
    const char *params[] = {pm_id, customer_id};
    const char *p0[] = {customer_id};
    PGresult *d = NULL, *promoted = NULL;
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = store_query(c, &stmt_customer_lock, 1, p0, NULL);
    if (rc == STORE_OK) rc = store_query(c, &stmt_method_delete, 2, params, &d);
    int gone = rc == STORE_OK && PQntuples(d) == 0; /* a concurrent delete won */
    char entity[64];
    snprintf(entity, sizeof entity, "customer:%s", customer_id);
    if (rc == STORE_OK && !gone) {
        json_t *before = json_loads(store_val(m, 0, "j"), 0, NULL);
        rc = audit_write(c, entity, op_actor(x), "payment_method.deleted", x->request_id, before, NULL);
        json_decref(before);
    }
    if (rc == STORE_OK && !gone && store_val(d, 0, "is_default")[0] == 't')
        rc = store_query(c, &stmt_default_promote, 1, p0, &promoted);
    if (rc == STORE_OK && promoted && PQntuples(promoted) == 1) {
        json_t *after = json_loads(store_val(promoted, 0, "j"), 0, NULL);
        rc = audit_write(c, entity, op_actor(x), "payment_method.default", x->request_id, NULL, after);
        json_decref(after);
    }
    if (rc == STORE_OK && !gone) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    PQclear(m);
    PQclear(d);
    PQclear(promoted);
    if (rc != STORE_OK) return fault_store(f, rc);
    if (gone) return fault_not_found(f, "payment method", pm_id);
    *out = json_pack("{s:s, s:s, s:b}", "id", pm_id, "object", "payment_method", "deleted", 1);
    return 0;
}

int methods_set_default(op_ctx *x, const char *customer_id, const char *pm_id, json_t **out, fault *f)
{
    store_conn *c = store_acquire(x->a->db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    PGresult *m = NULL, *r = NULL;
    const char *params[] = {customer_id, pm_id};
    /* The caller must see the customer before it may lock it; then the
     * customer lock, so a concurrent delete either finishes before (404
     * here) or waits until this switch commits. */
    if (customer_visible(x, c, customer_id, NULL, NULL, f) != 0) {
        store_release(c);
        return -1;
    }
    int rc = store_begin(c);
    if (rc == STORE_OK) rc = store_query(c, &stmt_customer_lock, 1, params, NULL);
    if (rc != STORE_OK || method_visible(x, c, customer_id, pm_id, &m, f) != 0) {
        store_rollback(c);
        store_release(c);
        return rc != STORE_OK ? fault_store(f, rc) : -1;
    }
    rc = store_query(c, &stmt_default_clear, 2, params, NULL);
    const char *p2[] = {pm_id, customer_id};
    if (rc == STORE_OK) rc = store_query(c, &stmt_default_set, 2, p2, &r);
    if (rc == STORE_OK) {
        char entity[64];
        snprintf(entity, sizeof entity, "customer:%s", customer_id);
        json_t *after = json_loads(store_val(r, 0, "j"), 0, NULL);
        rc = audit_write(c, entity, op_actor(x), "payment_method.default", x->request_id, NULL, after);
        *out = after;
    }
    if (rc == STORE_OK) rc = store_commit(c);
    else store_rollback(c);
    store_release(c);
    PQclear(m);
    PQclear(r);
    if (rc != STORE_OK) {
        json_decref(*out);
        *out = NULL;
        return fault_store(f, rc);
    }
    return 0;
}

int methods_resolve(op_ctx *x, store_conn *c, const char *pm_id, const char **token,
                    const char **customer_id, const char **customer_ref, const char **gateway,
                    fault *f)
{
    /* Our ids are "pm_" + 20 base32 characters (ids.c); anything else is a
     * provider token and costs no lookup. */
    if (!pm_id || strlen(pm_id) != 23 || strncmp(pm_id, "pm_", 3) != 0 ||
        strspn(pm_id + 3, "0123456789abcdefghjkmnpqrstvwxyz") != 20)
        return 1;
    const char *params[] = {pm_id};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_method_get, 1, params, &r);
    if (rc != STORE_OK) return fault_store(f, rc);
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 1; /* a provider token, not one of ours */
    }
    const char *scope = op_user_scope(x);
    const char *owner = store_val(r, 0, "user_id");
    if (scope && (!owner || strcmp(owner, scope) != 0)) {
        PQclear(r);
        return fault_not_found(f, "payment method", pm_id);
    }
    *token = arena_strdup(x->arena, store_val(r, 0, "provider_ref"));
    *customer_id = arena_strdup(x->arena, store_val(r, 0, "customer_id"));
    *customer_ref = arena_strdup(x->arena, store_val(r, 0, "customer_ref"));
    *gateway = arena_strdup(x->arena, store_val(r, 0, "gateway"));
    PQclear(r);
    return 0;
}
