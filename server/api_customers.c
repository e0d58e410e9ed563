/* api_customers.c - HTTP face of methods.c. */
#include "api_customers.h"

#include "api.h"
#include "methods.h"

void api_customers_create(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int status = 201;
    int rc = methods_customer_create(&x, r->json, &out, &status, &f);
    api_reply(r, rc, status, out, &f, NULL);
}

void api_customers_get(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = methods_customer_get(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_methods_save(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = methods_save(&x, r->params[0], r->json, &out, &f);
    api_reply(r, rc, 201, out, &f, NULL);
}

void api_methods_list(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = methods_list(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_methods_delete(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = methods_delete(&x, r->params[0], r->params[1], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_methods_default(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = methods_set_default(&x, r->params[0], r->params[1], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}
