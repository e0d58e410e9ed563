/*
 * tests/fuzz/fuzz_http.c - the socket-free part of the request pipeline in
 * server/http.c: route matching and path parameters, the 404/405 replies,
 * the JSON body parse, the PAN guard with its mock test-card exception,
 * query parameters (civetweb's mg_get_var behind http_query, api_limit,
 * api_query_digits) and the JSON reply encoder.
 *
 * It #includes server/http.c to reach its static functions (route_find,
 * guard_card_data); the Makefile links the rest of the core from an
 * archive, so http.o itself is not pulled in twice.
 *
 * Input: "<method>\n<path>\n<query>\n<body>". An empty query line means no
 * query string at all (civetweb's NULL); a missing body line, no body.
 * The body is parsed as http.c's parse_json_body does once the
 * Content-Type is JSON (the header itself needs a connection).
 *
 * With PAYD_FUZZ_STRICT=1 it also aborts when a step that refused the
 * request left no reply (payd would then answer 500 "the handler set no
 * reply" instead of the 4xx it meant): see tests/fuzz/README.md.
 */
#include "../../server/http.c"

#include <stdint.h>

#include "api.h"

static int strict;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    strict = getenv("PAYD_FUZZ_STRICT") != NULL &&
             strcmp(getenv("PAYD_FUZZ_STRICT"), "1") == 0;
    log_set_level(LOG_ERROR);
    return 0;
}

/* The next line of [*p, end) as a NUL-terminated malloc'd string. */
static char *next_line(const char **p, const char *end, int *present)
{
    const char *nl;
    size_t n;
    char *s;

    *present = *p < end;
    nl = memchr(*p, '\n', (size_t)(end - *p));
    n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
    s = malloc(n + 1);
    if (s == NULL)
        abort();
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl != NULL ? nl + 1 : end;
    return s;
}

static void expect_reply(http_req *r, const char *step)
{
    if (!strict || (r->status != 0 && r->res_body != NULL))
        return;
    fprintf(stderr, "INVARIANT: %s refused the request but set no reply "
                    "(payd would answer 500)\n", step);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    int has_method, has_path, has_query, has_body;
    char *method = next_line(&p, end, &has_method);
    char *path = next_line(&p, end, &has_path);
    char *query = next_line(&p, end, &has_query);
    size_t body_len = (size_t)(end - p);
    char *body = malloc(body_len + 1);
    char allow[128];
    http_req r;

    has_body = body_len > 0;
    if (body == NULL)
        abort();
    memcpy(body, p, body_len);
    body[body_len] = '\0';

    memset(&r, 0, sizeof r);
    r.arena = arena_new();
    r.method = method;
    r.path = has_path && path[0] != '\0' ? path : "/";
    r.query = query[0] != '\0' ? query : NULL;
    r.route_index = -1;
    memcpy(r.request_id, "req_fuzz", 9);

    int found = route_find(&r, allow, sizeof allow);
    for (int i = 0; i < HTTP_MAX_PARAMS; i++)
        if (r.params[i] != NULL && strlen(r.params[i]) > strlen(r.path))
            abort();
    if (found == 0) {
        http_reply_error(&r, 404, "invalid_request_error", "route_not_found", NULL,
                         "no route for %s %s", r.method, r.path);
        expect_reply(&r, "route_find (404)");
    } else if (found < 0) {
        http_reply_error(&r, 405, "invalid_request_error", "method_not_allowed", NULL,
                         "%s is not allowed here; allowed: %s", r.method, allow);
        r.extra_headers = arena_sprintf(r.arena, "Allow: %s\r\n", allow);
        expect_reply(&r, "route_find (405)");
    } else {
        int refused = 0;

        r.body = body;
        r.body_len = body_len;
        if ((r.route->flags & ROUTE_JSON) && has_body) {
            json_error_t jerr;

            r.json = json_loadb(r.body, r.body_len, JSON_REJECT_DUPLICATES, &jerr);
            if (r.json == NULL) {
                http_reply_error(&r, 400, "invalid_request_error", "invalid_json", NULL,
                                 "the body is not valid JSON: %s at line %d column %d",
                                 jerr.text, jerr.line, jerr.column);
                expect_reply(&r, "parse_json_body");
                refused = 1;
            } else if (!json_is_object(r.json)) {
                http_reply_error(&r, 400, "invalid_request_error", "invalid_json", NULL,
                                 "the body must be a JSON object");
                refused = 1;
            }
        }
        if (!refused && !(r.route->flags & ROUTE_RAW) && guard_card_data(&r) != 0) {
            expect_reply(&r, "guard_card_data");
            refused = 1;
        }
        if (!refused) {
            int limit, bad = 0;
            static const char *const names[] = {"type", "object_id", "starting_after",
                                                "order_id", "payment_id", "state",
                                                "currency", "gateway"};

            if (api_limit(&r, &limit) != 0)
                expect_reply(&r, "api_limit");
            (void)api_query_digits(&r, "created_gte", &bad);
            if (bad)
                expect_reply(&r, "api_query_digits");
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                const char *v = http_query(&r, names[i]);

                if (v != NULL && strlen(v) > strlen(r.query))
                    abort();
            }
            if (r.json != NULL)
                http_reply_json(&r, 200, json_copy(r.json));
            else
                http_reply_raw(&r, 200, "text/plain", r.body, r.body_len);
        }
    }
    (void)has_method;
    (void)has_query;
    json_decref(r.json);
    free(r.res_body);
    arena_free(r.arena);
    free(method);
    free(path);
    free(query);
    free(body);
    return 0;
}
