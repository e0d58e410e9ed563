/*
 * api_admin.c - admin endpoints over the ledger and the audit log. Reads
 * only; every route here needs the admin role (routes.c).
 */
#include "api_admin.h"

#include <stdio.h>

#include "api.h"
#include "audit.h"
#include "ledger.h"
#include "outbox.h"

void api_admin_transactions(app *a, http_req *r)
{
    ledger_filter flt = {0};
    if (api_limit(r, &flt.limit)) return;
    flt.payment_id = http_query(r, "payment_id");
    flt.order_id = http_query(r, "order_id");
    flt.entry_type = http_query(r, "type");
    flt.currency = http_query(r, "currency");
    flt.gateway = http_query(r, "gateway");
    flt.starting_after = http_query(r, "starting_after");
    json_t *out = NULL;
    fault f;
    int rc = ledger_list(a->db, &flt, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_admin_audit(app *a, http_req *r)
{
    int limit, bad = 0;
    if (api_limit(r, &limit)) return;
    const char *after = api_query_digits(r, "starting_after", &bad);
    if (bad) return;
    json_t *out = NULL;
    fault f;
    int rc = audit_list(a->db, http_query(r, "entity"), after, limit, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_admin_audit_verify(app *a, http_req *r)
{
    json_t *report = NULL;
    int rc = audit_verify(a->db, &report);
    if (rc != STORE_OK) {
        http_reply_store_error(r, rc);
        return;
    }
    http_reply_json(r, 200, report);
}

void api_admin_outbox_list(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    int limit;
    if (api_limit(r, &limit)) return;
    json_t *out = NULL;
    fault f;
    int rc = outbox_list(&x, http_query(r, "state"), http_query(r, "starting_after"), limit, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_admin_outbox_replay(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    json_t *out = NULL;
    fault f;
    int rc = outbox_replay(&x, r->params[0], &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}
