/*
 * modules/stripe/stripe_methods.c - saved cards: Stripe Customers and
 * PaymentMethods.
 *
 *   save_method    POST /v1/customers (when payd has no customer yet), or
 *                  GET /v1/customers/{id} (it must not be deleted); then
 *                  POST /v1/payment_methods/{pm}/attach customer=...
 *   delete_method  GET /v1/payment_methods/{pm} (it must belong to the
 *                  customer), then POST /v1/payment_methods/{pm}/detach
 *   list_methods   GET /v1/payment_methods?customer=...&type=card
 *
 * Only the pm_ id, the customer, brand, last4 and expiry ever reach payd:
 * the rest of a PaymentMethod (billing details, fingerprint) stays here.
 * A save makes two POSTs from one core key, so each gets its own derived
 * Idempotency-Key ("<key>-customer", "<key>-attach"): a retry of the whole
 * save replays both.
 *
 * Every function may run on many threads at once with one instance.
 */
#include "stripe.h"

#include <stdio.h>
#include <string.h>

#define STRIPE_LIST_LIMIT 100

/* Display data of PaymentMethod `pm` into `out`. PAYD_OK,
 * PAYD_E_TRANSIENT (not a PaymentMethod) or PAYD_E_NOMEM. */
static int stripe_method_from(const stripe_instance *inst, json_t *pm,
                              const char *customer, payd_arena *a,
                              payd_method *out, payd_error *e)
{
    const payd_host *h = inst->h;
    const char *id = stripe_jstr(pm, "id");
    const char *owner = stripe_jstr(pm, "customer");
    const char *last4 = stripe_jstr(pm, "card.last4");
    int oom = 0;

    memset(out, 0, sizeof *out);
    out->struct_size = (uint32_t)sizeof *out;
    if (!stripe_ok_id(id))
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: the answer is not a PaymentMethod payd "
                         "can read");
    out->method_ref = payd_adup(h, a, id, &oom);
    out->customer_ref = payd_adup(
        h, a, owner != NULL && stripe_ok_id(owner) ? owner : customer, &oom);
    if (payd_text_ok(stripe_jstr(pm, "card.brand"), 32))
        out->brand = stripe_jdup(h, a, pm, "card.brand", &oom);
    if (last4 != NULL && strlen(last4) == 4 &&
        strspn(last4, "0123456789") == 4)
        out->last4 = payd_adup(h, a, last4, &oom);
    out->exp_month = (int)stripe_jint(pm, "card.exp_month", 0);
    out->exp_year = (int)stripe_jint(pm, "card.exp_year", 0);
    if (out->exp_month < 0 || out->exp_month > 12)
        out->exp_month = 0;
    if (out->exp_year < 0 || out->exp_year > 9999)
        out->exp_year = 0;
    return oom ? payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory")
               : PAYD_OK;
}

/* "<key>-<suffix>" as an Idempotency-Key, or NULL (PAYD_E_INVALID). */
static const char *stripe_method_key(const stripe_instance *inst,
                                     payd_arena *a, const char *key,
                                     const char *suffix)
{
    if (key == NULL || !payd_text_ok(key, STRIPE_KEY_MAX - 16))
        return NULL;
    return inst->h->sprintf(a, "%s-%s", key, suffix);
}

/*
 * The Idempotency-Key of a detach: the core's key when it gave one, else a
 * fresh random one. A detach needs no retry protection (detaching twice
 * fails harmlessly), and a key derived from the method alone would replay
 * an old detach for 24 hours after the card was saved again.
 */
static const char *stripe_detach_key(const stripe_instance *inst,
                                     payd_arena *a, const char *key,
                                     const char *method)
{
    uint8_t rnd[8];
    const char *hex;

    if (key != NULL)
        return key;
    if (inst->h->random_bytes(rnd, sizeof rnd) != 0)
        return NULL;
    hex = inst->h->hex_encode(a, rnd, sizeof rnd);
    return hex != NULL ? inst->h->sprintf(a, "payd-detach-%s-%s", method, hex)
                       : NULL;
}

/* A live customer: PAYD_OK, PAYD_E_NOTFOUND when missing or deleted. */
static int stripe_customer_check(const stripe_instance *inst,
                                 const char *customer, payd_arena *a,
                                 payd_error *e)
{
    stripe_answer ans;
    const char *path = inst->h->sprintf(a, "/v1/customers/%s", customer);
    int rc;

    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    rc = stripe_api(inst, "GET", path, NULL, NULL, NULL, "customer", a, &ans,
                    e);
    if (rc == PAYD_OK && stripe_jtrue(ans.obj, "deleted"))
        rc = payd_fail(e, PAYD_E_NOTFOUND, "stripe: the customer was "
                                           "deleted");
    json_decref(ans.obj);
    return rc;
}

/* A new Customer for `email` (may be NULL); its id into *out (arena). */
static int stripe_customer_create(const stripe_instance *inst,
                                  const payd_method_req *req, payd_arena *a,
                                  const char **out, payd_error *e)
{
    stripe_answer ans;
    stripe_form f = {0};
    const char *key = stripe_method_key(inst, a, req->idempotency_key,
                                        "customer");
    int oom = 0, rc;

    if (key == NULL)
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: saving a method needs an idempotency key");
    stripe_form_add(&f, "email", req->customer_email);
    stripe_form_add(&f, "metadata[payd_created_by]", "payd");
    rc = stripe_api(inst, "POST", "/v1/customers", NULL, &f, key, "customer",
                    a, &ans, e);
    stripe_form_free(&f);
    if (rc == PAYD_OK) {
        if (!stripe_ok_id(stripe_jstr(ans.obj, "id")))
            rc = payd_fail(e, PAYD_E_TRANSIENT,
                           "stripe: the answer is not a Customer");
        else
            *out = stripe_jdup(inst->h, a, ans.obj, "id", &oom);
    }
    json_decref(ans.obj);
    if (rc == PAYD_OK && oom)
        rc = payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    return rc;
}

/* Common checks of a method request. */
static int stripe_method_check(const payd_method_req *req, int need_method,
                               payd_error *e)
{
    if (req->customer_ref != NULL && !stripe_ok_id(req->customer_ref))
        return payd_fail(e, PAYD_E_NOTFOUND, "stripe: no such customer");
    if (need_method && !stripe_ok_id(req->method_ref))
        return payd_fail(e, PAYD_E_INVALID,
                         "stripe: method_ref must be a Stripe "
                         "PaymentMethod id (pm_...)");
    if (req->customer_email != NULL &&
        (!payd_text_ok(req->customer_email, 254) ||
         strchr(req->customer_email, '@') == NULL))
        return payd_fail(e, PAYD_E_INVALID, "stripe: invalid customer_email");
    return PAYD_OK;
}

/*
 * save_method: attach PaymentMethod req->method_ref (made by Stripe.js) to
 * req->customer_ref, or to a new Customer when that is NULL. PAYD_OK (res:
 * pm id, customer, display data), PAYD_E_INVALID, PAYD_E_NOTFOUND,
 * PAYD_E_DECLINED (the card failed the attach check), PAYD_E_AUTH,
 * PAYD_E_PROVIDER, PAYD_E_TRANSIENT, PAYD_E_NOMEM.
 */
int stripe_save_method(void *state, const payd_method_req *req_in,
                       payd_method *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_method_req req;
    payd_method out;
    stripe_answer ans;
    stripe_form f = {0};
    const char *customer, *path, *key;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_method_check(&req, 1, e);
    if (rc != PAYD_OK)
        return rc;
    customer = req.customer_ref;
    rc = customer != NULL ? stripe_customer_check(inst, customer, a, e)
                          : stripe_customer_create(inst, &req, a, &customer, e);
    if (rc != PAYD_OK)
        return rc;
    path = inst->h->sprintf(a, "/v1/payment_methods/%s/attach", req.method_ref);
    key = stripe_method_key(inst, a, req.idempotency_key, "attach");
    if (path == NULL || key == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    stripe_form_add(&f, "customer", customer);
    rc = stripe_api(inst, "POST", path, NULL, &f, key, "payment_method", a,
                    &ans, e);
    stripe_form_free(&f);
    if (rc == PAYD_OK)
        rc = stripe_method_from(inst, ans.obj, customer, a, &out, e);
    json_decref(ans.obj);
    if (rc == PAYD_OK)
        payd_copy_out(res, &out, sizeof out);
    return rc;
}

/*
 * delete_method: detach req->method_ref, after checking it belongs to
 * req->customer_ref (when given). req->idempotency_key may be NULL (see
 * stripe_detach_key). PAYD_OK (res: what was detached),
 * PAYD_E_NOTFOUND, PAYD_E_INVALID, PAYD_E_AUTH, PAYD_E_TRANSIENT...
 */
int stripe_delete_method(void *state, const payd_method_req *req_in,
                         payd_method *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_method_req req;
    payd_method out;
    stripe_answer ans;
    const char *path, *key;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    rc = stripe_method_check(&req, 0, e);
    if (rc != PAYD_OK)
        return rc;
    if (!stripe_ok_id(req.method_ref))
        return payd_fail(e, PAYD_E_NOTFOUND,
                         "stripe: no such payment method");
    path = inst->h->sprintf(a, "/v1/payment_methods/%s", req.method_ref);
    if (path == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    if (req.customer_ref != NULL) {
        rc = stripe_api(inst, "GET", path, NULL, NULL, NULL, "payment_method",
                        a, &ans, e);
        if (rc == PAYD_OK) {
            const char *owner = stripe_jstr(ans.obj, "customer");

            if (owner == NULL || strcmp(owner, req.customer_ref) != 0)
                rc = payd_fail(e, PAYD_E_NOTFOUND,
                               "stripe: the payment method does not belong "
                               "to this customer");
        }
        json_decref(ans.obj);
        if (rc != PAYD_OK)
            return rc;
    }
    path = inst->h->sprintf(a, "%s/detach", path);
    key = stripe_detach_key(inst, a, req.idempotency_key, req.method_ref);
    if (path == NULL || key == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    rc = stripe_api(inst, "POST", path, NULL, NULL, key, "payment_method", a,
                    &ans, e);
    if (rc == PAYD_OK)
        rc = stripe_method_from(inst, ans.obj, req.customer_ref, a, &out, e);
    json_decref(ans.obj);
    if (rc == PAYD_OK)
        payd_copy_out(res, &out, sizeof out);
    return rc;
}

/* list_methods: req->customer_ref's cards, newest first (Stripe's order),
 * at most 100. PAYD_OK, PAYD_E_INVALID, PAYD_E_NOTFOUND, PAYD_E_TRANSIENT,
 * PAYD_E_NOMEM. */
int stripe_list_methods(void *state, const payd_method_req *req_in,
                        payd_method_list *res, payd_arena *a, payd_error *e)
{
    const stripe_instance *inst = state;
    payd_method_req req;
    payd_method_list out;
    stripe_answer ans;
    json_t *data, *item;
    const char *query;
    size_t i;
    int rc;

    PAYD_ERROR_GUARD(e);
    if (payd_copy_in(&req, sizeof req, req_in) != 0)
        return payd_fail(e, PAYD_E_INVALID, "request has no struct_size");
    if (req.customer_ref == NULL)
        return payd_fail(e, PAYD_E_INVALID, "stripe: customer_ref is required");
    rc = stripe_method_check(&req, 0, e);
    if (rc != PAYD_OK)
        return rc;
    query = inst->h->sprintf(a, "customer=%s&type=card&limit=%d",
                             req.customer_ref, STRIPE_LIST_LIMIT);
    if (query == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    rc = stripe_api(inst, "GET", "/v1/payment_methods", query, NULL, NULL,
                    "list", a, &ans, e);
    if (rc != PAYD_OK) {
        json_decref(ans.obj);
        return rc;
    }
    data = stripe_jget(ans.obj, "data");
    memset(&out, 0, sizeof out);
    out.struct_size = (uint32_t)sizeof out;
    if (!json_is_array(data)) {
        json_decref(ans.obj);
        return payd_fail(e, PAYD_E_TRANSIENT,
                         "stripe: the answer is not a list");
    }
    out.items = json_array_size(data) > 0
                    ? inst->h->alloc(a, json_array_size(data) *
                                            sizeof(payd_method))
                    : NULL;
    if (json_array_size(data) > 0 && out.items == NULL)
        rc = payd_fail(e, PAYD_E_NOMEM, "stripe: out of memory");
    json_array_foreach(data, i, item) {
        if (rc != PAYD_OK)
            break;
        rc = stripe_method_from(inst, item, req.customer_ref, a,
                                &out.items[out.count], e);
        if (rc == PAYD_OK)
            out.count++;
    }
    json_decref(ans.obj);
    if (rc == PAYD_OK)
        payd_copy_out(res, &out, sizeof out);
    return rc;
}
