/* api_webhooks.c - HTTP face of webhooks.c and the event stream. */
#include "api_webhooks.h"

#include <civetweb.h>
#include <stdio.h>

#include "api.h"
#include "events.h"
#include "webhooks.h"

void api_webhooks_receive(app *a, http_req *r)
{
    op_ctx x;
    api_ctx(a, r, &x);
    principal gateway = {.kind = PRINCIPAL_NONE, .role = ROLE_NONE};
    snprintf(gateway.actor, sizeof gateway.actor, "webhook:%.100s", r->params[0]);
    x.who = &gateway;
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    payd_header headers[64];
    size_t n = 0;
    for (int i = 0; i < ri->num_headers && n < 64; i++) {
        headers[n].name = ri->http_headers[i].name;
        headers[n].value = ri->http_headers[i].value;
        n++;
    }
    json_t *out = NULL;
    fault f;
    int rc = webhooks_receive(&x, r->params[0], headers, n, r->body ? r->body : "", r->body_len, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_events_list(app *a, http_req *r)
{
    int limit;
    if (api_limit(r, &limit)) return;
    json_t *out = NULL;
    fault f;
    int rc = events_list(a->db, http_query(r, "type"), http_query(r, "object_id"),
                         http_query(r, "starting_after"), limit, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}
