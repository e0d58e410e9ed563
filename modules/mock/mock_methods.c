/*
 * modules/mock/mock_methods.c - the fake provider's test cards, customers
 * and saved payment methods.
 *
 * Test cards carry Stripe's token names and numbers. A payment method is
 * accepted as the token, as the test card number (spaces and dashes
 * allowed) or, for payments, as a saved mock_pm_ ref. Only the token name
 * is ever stored or shown: a number never leaves mock_method_resolve_locked.
 *
 * Customers hold at most MOCK_MAX_METHODS_PER_CUSTOMER methods. Everything
 * here runs with mock_mu held.
 */
#include "mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mock_card mock_cards[] = {
    {"pm_card_visa", "4242424242424242", "visa", "4242", 12, 2034,
     MOCK_B_SUCCEED, NULL, NULL},
    {"pm_card_mastercard", "5555555555554444", "mastercard", "4444", 12, 2034,
     MOCK_B_SUCCEED, NULL, NULL},
    {"pm_card_chargeDeclined", "4000000000000002", "visa", "0002", 12, 2034,
     MOCK_B_DECLINE, "card_declined", "Your card was declined."},
    {"pm_card_insufficientFunds", "4000000000009995", "visa", "9995", 12, 2034,
     MOCK_B_DECLINE, "insufficient_funds", "Your card has insufficient funds."},
    {"pm_card_expired", "4000000000000069", "visa", "0069", 12, 2034,
     MOCK_B_DECLINE, "expired_card", "Your card has expired."},
    {"pm_card_threeDSecure2Required", "4000002760003184", "visa", "3184", 12,
     2034, MOCK_B_3DS, NULL, NULL},
    {"pm_card_processing", NULL, "visa", "4242", 12, 2034, MOCK_B_PROCESSING,
     NULL, NULL},
    {"pm_card_timeout", NULL, "visa", "4242", 12, 2034, MOCK_B_TIMEOUT, NULL,
     NULL},
};

#define MOCK_NCARDS (sizeof mock_cards / sizeof mock_cards[0])

/* The test card at `idx` (from mock_method_resolve_locked). */
const mock_card *mock_card_at(int idx)
{
    return &mock_cards[idx];
}

struct mock_method;

typedef struct mock_customer {
    char ref[MOCK_REF_SIZE];
    char *email;
    struct mock_method *methods[MOCK_MAX_METHODS_PER_CUSTOMER];
    size_t nmethods;
} mock_customer;

typedef struct mock_method {
    char ref[MOCK_REF_SIZE];
    mock_customer *customer;
    int card;
} mock_method;

/* Frees the customer only; at teardown the methods map frees methods. */
static void mock_customer_free(void *p)
{
    mock_customer *c = p;

    if (c == NULL)
        return;
    free(c->email);
    free(c);
}

/* Detach a method from its customer's list. */
static void mock_method_unlink(mock_method *m)
{
    mock_customer *c = m->customer;
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < c->nmethods; i++) {
        if (c->methods[i] == m) {
            memmove(&c->methods[i], &c->methods[i + 1],
                    (c->nmethods - i - 1) * sizeof c->methods[0]);
            c->nmethods--;
            break;
        }
    }
    m->customer = NULL;
}

/* Forget the oldest customers (and their methods) past the bound. */
static void mock_customers_make_room_locked(void)
{
    while (mock_reg.customers.count >= MOCK_MAX_CUSTOMERS) {
        mock_customer *c = mock_map_evict(&mock_reg.customers, NULL, 0);

        while (c != NULL && c->nmethods > 0) {
            mock_method *pm = c->methods[--c->nmethods];

            free(mock_map_remove(&mock_reg.methods, pm->ref));
        }
        mock_customer_free(c);
    }
}

/* Forget the oldest saved methods past the bound. */
static void mock_methods_make_room_locked(void)
{
    while (mock_reg.methods.count >= MOCK_MAX_METHODS) {
        mock_method *pm = mock_map_evict(&mock_reg.methods, NULL, 0);

        if (pm != NULL)
            mock_method_unlink(pm);
        free(pm);
    }
}

/* ------------------------------------------------------------------------ */
/* Test payment methods                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Resolve `pm` to a test card: a token (pm_card_visa), a test card number
 * (spaces and dashes allowed) or, when `saved` is set, a saved mock_pm_
 * ref. Writes a name that is safe to store and show (the token, never the
 * number) into `name`. Returns the card index, or -1 when unknown.
 */
int mock_method_resolve_locked(const char *pm, int saved,
                               char name[MOCK_REF_SIZE])
{
    char digits[20];
    size_t i, n = 0;
    const char *p;

    if (strlen(pm) > 64)
        return -1;
    for (i = 0; i < MOCK_NCARDS; i++) {
        if (strcmp(pm, mock_cards[i].token) == 0) {
            snprintf(name, MOCK_REF_SIZE, "%s", mock_cards[i].token);
            return (int)i;
        }
    }
    if (saved && strncmp(pm, "mock_pm_", 8) == 0) {
        const mock_method *m = mock_map_get(&mock_reg.methods, pm);

        if (m == NULL)
            return -1;
        snprintf(name, MOCK_REF_SIZE, "%s", m->ref);
        return m->card;
    }
    for (p = pm; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            if (n >= sizeof digits - 1)
                return -1;
            digits[n++] = *p;
        } else if (*p != ' ' && *p != '-') {
            return -1;
        }
    }
    digits[n] = '\0';
    for (i = 0; n >= 12 && i < MOCK_NCARDS; i++) {
        if (mock_cards[i].number != NULL &&
            strcmp(digits, mock_cards[i].number) == 0) {
            snprintf(name, MOCK_REF_SIZE, "%s", mock_cards[i].token);
            return (int)i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Customers and saved methods                                              */
/* ------------------------------------------------------------------------ */

static int mock_method_render(const mock_method *m, mock_result *r)
{
    const mock_card *c = &mock_cards[m->card];

    r->ref = strdup(m->ref);
    r->customer_ref = strdup(m->customer != NULL ? m->customer->ref : "");
    r->brand = strdup(c->brand);
    r->last4 = strdup(c->last4);
    r->exp_month = c->exp_month;
    r->exp_year = c->exp_year;
    if (!r->ref || !r->customer_ref || !r->brand || !r->last4)
        mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return r->rc;
}

/*
 * save_method: attach a test card to a customer, creating the customer
 * when req->customer_ref is NULL. req->method_ref names the test card.
 * Returns PAYD_OK, PAYD_E_INVALID, PAYD_E_NOTFOUND (unknown customer),
 * PAYD_E_NOMEM or PAYD_E_INTERNAL.
 */
int mock_methods_save_locked(const mock_instance *inst,
                             const payd_method_req *req, mock_result *r)
{
    char name[MOCK_REF_SIZE];
    mock_customer *cus;
    mock_method *m;
    int card = -1;

    if (req->method_ref != NULL)
        card = mock_method_resolve_locked(req->method_ref, 0, name);
    if (card < 0) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "unknown test payment method");
        return r->rc;
    }
    if (req->customer_ref != NULL) {
        cus = mock_map_get(&mock_reg.customers, req->customer_ref);
        if (cus == NULL) {
            mock_result_fail(r, PAYD_E_NOTFOUND, NULL, "no such customer");
            return r->rc;
        }
    } else {
        cus = calloc(1, sizeof *cus);
        if (cus == NULL)
            goto oom;
        cus->email = mock_strdup_or_null(req->customer_email);
        if (req->customer_email != NULL && cus->email == NULL) {
            mock_customer_free(cus);
            goto oom;
        }
        if (mock_new_ref(inst->h, "mock_cus_", cus->ref) != PAYD_OK) {
            mock_customer_free(cus);
            mock_result_fail(r, PAYD_E_INTERNAL, NULL, "mock: no random bytes");
            return r->rc;
        }
        mock_customers_make_room_locked();
        if (mock_map_put(&mock_reg.customers, cus->ref, cus) != 0) {
            mock_customer_free(cus);
            goto oom;
        }
    }
    if (cus->nmethods >= MOCK_MAX_METHODS_PER_CUSTOMER) {
        mock_result_fail(r, PAYD_E_INVALID, NULL,
                         "customer has too many saved payment methods");
        return r->rc;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL)
        goto oom;
    m->card = card;
    if (mock_new_ref(inst->h, "mock_pm_", m->ref) != PAYD_OK) {
        free(m);
        mock_result_fail(r, PAYD_E_INTERNAL, NULL, "mock: no random bytes");
        return r->rc;
    }
    mock_methods_make_room_locked();
    if (mock_map_put(&mock_reg.methods, m->ref, m) != 0) {
        free(m);
        goto oom;
    }
    m->customer = cus;
    cus->methods[cus->nmethods++] = m;
    return mock_method_render(m, r);
oom:
    mock_result_fail(r, PAYD_E_NOMEM, NULL, "mock: out of memory");
    return r->rc;
}

/*
 * delete_method: detach req->method_ref (which must belong to
 * req->customer_ref when that is given). Returns PAYD_OK with the deleted
 * method's display data, PAYD_E_NOTFOUND or PAYD_E_NOMEM.
 */
int mock_methods_delete_locked(const mock_instance *inst,
                               const payd_method_req *req,
                               mock_result *r)
{
    mock_method *m = req->method_ref != NULL
                         ? mock_map_get(&mock_reg.methods, req->method_ref)
                         : NULL;

    (void)inst;
    if (m == NULL || (req->customer_ref != NULL &&
                      (m->customer == NULL ||
                       strcmp(m->customer->ref, req->customer_ref) != 0))) {
        mock_result_fail(r, PAYD_E_NOTFOUND, NULL, "no such payment method");
        return r->rc;
    }
    if (mock_method_render(m, r) != PAYD_OK)
        return r->rc;
    mock_method_unlink(m);
    free(mock_map_remove(&mock_reg.methods, m->ref));
    return PAYD_OK;
}

/*
 * list_methods: the customer's saved methods, oldest first, copied into the
 * arena. Returns PAYD_OK, PAYD_E_NOTFOUND or PAYD_E_NOMEM (e set).
 */
int mock_methods_list_locked(const mock_instance *inst,
                             const char *customer_ref,
                             payd_method_list *out, payd_arena *a,
                             payd_error *e)
{
    const payd_host *h = inst->h;
    const mock_customer *cus =
        customer_ref != NULL ? mock_map_get(&mock_reg.customers, customer_ref)
                             : NULL;
    size_t i;

    if (cus == NULL)
        return payd_fail(e, PAYD_E_NOTFOUND, "no such customer");
    out->count = cus->nmethods;
    out->items = h->alloc(a, (cus->nmethods + 1) * sizeof *out->items);
    if (out->items == NULL)
        return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    for (i = 0; i < cus->nmethods; i++) {
        const mock_method *m = cus->methods[i];
        const mock_card *c = &mock_cards[m->card];
        payd_method *pm = &out->items[i];

        pm->struct_size = (uint32_t)sizeof *pm;
        pm->method_ref = h->strdup(a, m->ref);
        pm->customer_ref = h->strdup(a, cus->ref);
        pm->brand = h->strdup(a, c->brand);
        pm->last4 = h->strdup(a, c->last4);
        pm->exp_month = c->exp_month;
        pm->exp_year = c->exp_year;
        if (!pm->method_ref || !pm->customer_ref || !pm->brand || !pm->last4)
            return payd_fail(e, PAYD_E_NOMEM, "mock: out of memory");
    }
    return PAYD_OK;
}

/* Free every customer and method (last fini). */
void mock_methods_destroy_locked(void)
{
    mock_map_destroy(&mock_reg.methods, free);
    mock_map_destroy(&mock_reg.customers, mock_customer_free);
}
