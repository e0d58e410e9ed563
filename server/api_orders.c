/* api_orders.c - HTTP face of orders.c: parse, call the domain, reply. */
#include "api_orders.h"

#include "api.h"
#include "money.h"
#include "orders.h"

void api_orders_create(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = orders_create(&x, r->json, &out, &f);
    api_reply(r, rc, 201, out, &f, NULL);
}

void api_orders_list(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    order_filter flt = {0};
    int bad = 0;
    if (api_limit(r, &flt.limit)) return;
    flt.status = http_query(r, "status");
    flt.user_id = http_query(r, "user_id");
    flt.starting_after = http_query(r, "starting_after");
    const char *currency = http_query(r, "currency");
    if (currency) {
        char *code = arena_alloc(r->arena, 4);
        if (!code || money_currency_normalize(currency, code) != 0) {
            http_reply_error(r, 400, "invalid_request_error", "parameter_invalid", "currency",
                             "currency must be an ISO 4217 code such as USD");
            return;
        }
        flt.currency = code;
    }
    flt.created_gte = api_query_digits(r, "created_gte", &bad);
    if (!bad) flt.created_lte = api_query_digits(r, "created_lte", &bad);
    if (bad) return;
    json_t *out = NULL;
    fault f;
    int rc = orders_list(&x, &flt, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_orders_get(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = orders_get(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_orders_cancel(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = orders_cancel(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_orders_update(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = orders_update(&x, r->params[0], r->json, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}
