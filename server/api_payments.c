/* api_payments.c - HTTP face of payments.c and refunds.c. */
#include "api_payments.h"

#include "api.h"
#include "payments.h"
#include "refunds.h"

void api_payments_create(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int status = 201;
    int rc = payments_create(&x, r->json, r->test_card, &out, &status, &f);
    api_reply(r, rc, status, out, &f, "payment");
}

void api_payments_confirm(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int status = 200;
    int rc = payments_confirm(&x, r->params[0], r->json, r->test_card, &out, &status, &f);
    api_reply(r, rc, status, out, &f, "payment");
}

void api_payments_capture(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int status = 200;
    int rc = payments_capture(&x, r->params[0], r->json, &out, &status, &f);
    api_reply(r, rc, status, out, &f, "payment");
}

void api_payments_cancel(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int status = 200;
    int rc = payments_cancel(&x, r->params[0], r->json, &out, &status, &f);
    api_reply(r, rc, status, out, &f, "payment");
}

void api_payments_get(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = payments_get(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_payments_list(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    int limit;
    if (api_limit(r, &limit)) return;
    json_t *out = NULL;
    fault f;
    int rc = payments_list(&x, http_query(r, "order_id"), http_query(r, "needs_review"), http_query(r, "starting_after"),
                           limit, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_refunds_create(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int status = 201;
    int rc = refunds_create(&x, r->json, &out, &status, &f);
    api_reply(r, rc, status, out, &f, "refund");
}

void api_refunds_get(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = refunds_get(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_refunds_list(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    int limit;
    if (api_limit(r, &limit)) return;
    json_t *out = NULL;
    fault f;
    int rc = refunds_list(&x, http_query(r, "payment_id"), http_query(r, "order_id"), http_query(r, "starting_after"),
                          limit, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}
