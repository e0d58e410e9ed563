/* http.h - CivetWeb glue: routing, request bodies, the one reply shape. */
#ifndef PAYD_HTTP_H
#define PAYD_HTTP_H

#include <jansson.h>
#include <stddef.h>

#include "app.h"
#include "arena.h"
#include "auth.h"

struct mg_connection;

typedef struct http_req http_req;
typedef void (*http_handler)(app *a, http_req *r);

/* Route flags. */
enum {
    ROUTE_PUBLIC = 0,         /* no authentication */
    ROUTE_AUTH = 1 << 0,      /* any API key or end-user JWT */
    ROUTE_MERCHANT = 1 << 1,  /* API key, merchant or admin role */
    ROUTE_ADMIN = 1 << 2,     /* API key with the admin role */
    ROUTE_JSON = 1 << 3,      /* body is a JSON object, parsed into r->json */
    ROUTE_IDEMPOTENT = 1 << 4,/* honours Idempotency-Key */
    ROUTE_RAW = 1 << 5,       /* body read raw, any content type (webhooks, forms) */
    ROUTE_TEST = 1 << 6,      /* only when [server] test_mode = true */
    ROUTE_TEST_CARD = 1 << 7  /* payment_method may be a mock test card number;
                                 the handler checks the gateway is the mock */
};

typedef struct http_route {
    const char *method;
    const char *pattern; /* "/v1/orders/{id}"; a trailing "{*}" takes the rest */
    http_handler handler;
    int flags;
    const char *name;    /* metrics label */
    const char *query;   /* the query parameters it reads, space-separated;
                            NULL: none. Others are refused (ROUTE_RAW routes
                            take any). */
} http_route;

#define HTTP_MAX_PARAMS 4

struct http_req {
    struct mg_connection *conn;
    arena *arena;
    const char *method;
    const char *path;
    const char *query;
    const char *params[HTTP_MAX_PARAMS];
    char request_id[40];
    const char *body;
    size_t body_len;
    json_t *json;            /* owned; NULL when no JSON body */
    principal auth;
    const char *test_card;   /* payment_method, when it is a mock test card */
    const http_route *route;
    int route_index;
    /* the response */
    int status;
    const char *content_type;
    char *res_body;          /* malloc'd */
    size_t res_len;
    const char *location;
    const char *extra_headers;
};

int http_start(app *a);
void http_stop(app *a);

/* Routes (routes.c). */
extern const http_route http_routes[];
extern const int http_route_count;

/* Request helpers. */
const char *http_header(http_req *r, const char *name);
/* Query parameter, URL-decoded into the arena; NULL when absent. */
const char *http_query(http_req *r, const char *name);

/* Replies. Each replaces any earlier reply; the write happens once, after
 * the handler returns. */
void http_reply_json(http_req *r, int status, json_t *body); /* steals body */
void http_reply_raw(http_req *r, int status, const char *content_type, const char *body,
                    size_t len);
void http_reply_error(http_req *r, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The error shape from a domain fault; `extra` (stolen, may be NULL) is
 * added beside "error" under `extra_key`, e.g. the declined payment. */
struct fault;
void http_reply_fault(http_req *r, const struct fault *f, const char *extra_key, json_t *extra);
/* Maps a STORE_E_* code to 503/500. */
void http_reply_store_error(http_req *r, int rc);

#endif
