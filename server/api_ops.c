/*
 * api_ops.c - endpoints for operators and load balancers, the gateway
 * listing, and module-hosted pages (the mock's 3-D Secure challenge).
 *
 * /healthz answers as long as the process serves. /readyz checks what a
 * request needs: a database round trip, the latest migration applied, and
 * every configured module initialized; it names the first thing missing.
 */
#include "api_ops.h"

#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "metrics.h"
#include "migrate.h"

void api_ops_healthz(app *a, http_req *r)
{
    (void)a;
    http_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

void api_ops_readyz(app *a, http_req *r)
{
    const char *reason = NULL;
    store_conn *c = store_acquire(a->db);
    if (!c) {
        reason = "database unreachable";
    } else {
        int current = migrate_is_current(c);
        if (current < 0) reason = "database unreachable";
        else if (current == 0) reason = "database schema is not current: run payd migrate";
        store_release(c);
    }
    for (size_t i = 0; !reason && i < a->mods->gateway_count; i++)
        if (!a->mods->gateways[i]->initialized) reason = "a gateway module is not loaded";
    if (reason) {
        http_reply_error(r, 503, "api_error", "not_ready", NULL, "%s", reason);
        return;
    }
    http_reply_json(r, 200, json_pack("{s:s, s:i, s:i}", "status", "ready", "gateways",
                                      (int)a->mods->gateway_count, "notifiers",
                                      (int)a->mods->notifier_count));
}

void api_ops_metrics(app *a, http_req *r)
{
    size_t len = 0;
    char *text = metrics_render(a, &len);
    if (!text) {
        http_reply_error(r, 500, "api_error", "internal_error", NULL, "out of memory");
        return;
    }
    free(r->res_body);
    r->status = 200;
    r->content_type = "text/plain; version=0.0.4";
    r->res_body = text;
    r->res_len = len;
}

static json_t *instance_json(app *a, const instance *in)
{
    const char *caps[32];
    size_t ncaps = 0;
    modules_caps_names(in->mod->caps, caps, &ncaps, 32);
    json_t *jcaps = json_array();
    for (size_t i = 0; i < ncaps; i++) json_array_append_new(jcaps, json_string(caps[i]));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:o}", "name", in->name, "module", in->mod->name,
                          "version", in->mod->version, "description", in->mod->description,
                          "capabilities", jcaps);
    if (in->kind == PAYD_KIND_GATEWAY && in->gw.public_info) {
        const char *info = in->gw.public_info(in->state);
        json_t *pub = info ? json_loads(info, 0, NULL) : NULL;
        if (pub) json_object_set_new(o, "public", pub);
    }
    if (in->kind == PAYD_KIND_GATEWAY) {
        const char *d = a->cfg->route_default;
        json_object_set_new(o, "default", json_boolean(d && strcmp(d, in->name) == 0));
    }
    return o;
}

void api_ops_gateways(app *a, http_req *r)
{
    json_t *data = json_array();
    for (size_t i = 0; i < a->mods->gateway_count; i++)
        json_array_append_new(data, instance_json(a, a->mods->gateways[i]));
    json_t *notifiers = json_array();
    for (size_t i = 0; i < a->mods->notifier_count; i++)
        json_array_append_new(notifiers, instance_json(a, a->mods->notifiers[i]));
    http_reply_json(r, 200, json_pack("{s:s, s:o, s:o}", "object", "list", "data", data,
                                      "notifiers", notifiers));
}

/* Calls an instance's page operation and relays its answer. */
static void serve_page(http_req *r, instance *in, const char *path)
{
    if (!in || !in->gw.page) {
        http_reply_error(r, 404, "invalid_request_error", "route_not_found", NULL,
                         "no page at %s", r->path);
        return;
    }
    payd_page_req req = {.struct_size = sizeof req, .method = r->method, .path = path,
                         .query = r->query, .body = r->body, .body_len = r->body_len};
    payd_page_res res = {.struct_size = sizeof res};
    payd_error e = {0};
    int rc = in->gw.page(in->state, &req, &res, r->arena, &e);
    if (rc != 0 || res.status < 100 || res.status > 599) {
        http_reply_error(r, rc == PAYD_E_NOTFOUND ? 404 : 500, "api_error",
                         rc == PAYD_E_NOTFOUND ? "page_not_found" : "page_failed", NULL,
                         "the %s page could not be served", in->name);
        return;
    }
    http_reply_raw(r, res.status, res.content_type ? res.content_type : "text/html; charset=utf-8",
                   res.body ? res.body : "", res.body ? res.body_len : 0);
    /* A module's redirect becomes a header: no line breaks may pass. */
    if (res.location && !strpbrk(res.location, "\r\n")) r->location = arena_strdup(r->arena, res.location);
}

void api_ops_mock_page(app *a, http_req *r)
{
    serve_page(r, modules_gateway_by_module(a->mods, "mock"), r->params[0]);
}

void api_ops_instance_page(app *a, http_req *r)
{
    serve_page(r, modules_gateway(a->mods, r->params[0]), r->params[1]);
}

/* Test mode only: shift the host clock, so webhook tolerances and janitor
 * schedules can be exercised without waiting. */
void api_ops_test_clock(app *a, http_req *r)
{
    (void)a;
    json_t *off = r->json ? json_object_get(r->json, "offset_ms") : NULL;
    if (!json_is_integer(off)) {
        http_reply_error(r, 400, "invalid_request_error", "parameter_missing", "offset_ms",
                         "offset_ms (integer) is required");
        return;
    }
    host_clock_set_offset_ms(json_integer_value(off));
    http_reply_json(r, 200, json_pack("{s:I}", "now_ms", (json_int_t)host_now_ms()));
}
