/*
 * http.c - CivetWeb glue.
 *
 * CivetWeb runs each connection on one of its worker threads and calls
 * http_on_request there. Everything a request needs lives in an http_req on
 * that thread's stack plus a per-request arena, so handlers share nothing
 * but the read-only app and the pools inside it.
 *
 * The request pipeline, in order: request id, route match (404/405), body
 * (413 past [server] max_body_bytes, 415 for a non-JSON body on a JSON route,
 * 400 for invalid JSON), card data and query parameters (400),
 * authentication (401/403), idempotency (replay, 400,
 * 409), the handler, idempotency record, metrics, and finally ONE mg_write
 * of headers and body together: with tcp_nodelay a split write costs a
 * delayed-ACK round trip (~40 ms) per request.
 *
 * Handlers never write to the socket; they set the reply with
 * http_reply_json / http_reply_error, and the error shape is built only
 * here.
 */
#include "http.h"

#include <civetweb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "audit.h"
#include "cardguard.h"
#include "fault.h"
#include "host.h"
#include "idempotency.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 302: return "Found";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

const char *http_header(http_req *r, const char *name)
{
    return mg_get_header(r->conn, name);
}

const char *http_query(http_req *r, const char *name)
{
    if (!r->query) return NULL;
    size_t qlen = strlen(r->query);
    char *buf = arena_alloc(r->arena, qlen + 1);
    if (!buf) return NULL;
    int n = mg_get_var(r->query, qlen, name, buf, qlen + 1);
    return n >= 0 ? buf : NULL;
}

static void reply_set(http_req *r, int status, const char *content_type, char *body, size_t len)
{
    free(r->res_body);
    r->status = status;
    r->content_type = content_type;
    r->res_body = body;
    r->res_len = len;
}

/*
 * Error texts can quote the request (a path, a parameter name) and must
 * still be valid JSON: invalid UTF-8 bytes become '?'. Returns `s` itself
 * when it is valid, else an arena copy.
 */
static const char *utf8_safe(http_req *r, const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s);
    char *copy = NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        int ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len == 2) ok = c >= 0xC2;                                     /* no overlong */
        if (ok && len == 3) ok = !(c == 0xE0 && (unsigned char)s[i + 1] < 0xA0) &&
                                 !(c == 0xED && (unsigned char)s[i + 1] >= 0xA0); /* no surrogates */
        if (ok && len == 4) ok = c <= 0xF4 && !(c == 0xF0 && (unsigned char)s[i + 1] < 0x90) &&
                                 !(c == 0xF4 && (unsigned char)s[i + 1] >= 0x90);
        if (ok) {
            i += len;
            continue;
        }
        if (!copy) {
            copy = arena_strndup(r->arena, s, n);
            if (!copy) return "?";
        }
        copy[i++] = '?';
    }
    return copy ? copy : s;
}

void http_reply_json(http_req *r, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!text) {
        http_reply_error(r, 500, "api_error", "internal_error", NULL, "could not encode the response");
        return;
    }
    reply_set(r, status, "application/json", text, strlen(text));
}

void http_reply_raw(http_req *r, int status, const char *content_type, const char *body,
                    size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) return;
    memcpy(copy, body, len);
    copy[len] = '\0';
    reply_set(r, status, content_type, copy, len);
}

void http_reply_error(http_req *r, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    json_t *err = json_pack("{s:s, s:s, s:s, s:s?, s:s}", "type", type, "code", code, "message",
                            utf8_safe(r, message), "param", utf8_safe(r, param), "request_id",
                            r->request_id);
    json_t *body = json_pack("{s:o}", "error", err);
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(body);
    if (!text) { /* out of memory: still answer in the one shape */
        static const char fallback[] = "{\"error\":{\"type\":\"api_error\",\"code\":\"internal_error\","
                                       "\"message\":\"internal error\",\"param\":null,\"request_id\":null}}";
        text = strdup(fallback);
        status = 500;
    }
    if (text) reply_set(r, status, "application/json", text, strlen(text));
}

void http_reply_fault(http_req *r, const fault *f, const char *extra_key, json_t *extra)
{
    json_t *err = json_pack("{s:s, s:s, s:s, s:s?, s:s}", "type", f->type ? f->type : "api_error",
                            "code", f->code ? f->code : "internal_error", "message",
                            utf8_safe(r, f->message), "param", utf8_safe(r, f->param), "request_id",
                            r->request_id);
    json_t *body = json_pack("{s:o}", "error", err);
    if (extra_key && extra) json_object_set_new(body, extra_key, extra);
    else json_decref(extra);
    http_reply_json(r, f->status ? f->status : 500, body);
}

void http_reply_store_error(http_req *r, int rc)
{
    if (rc == STORE_E_UNAVAILABLE)
        http_reply_error(r, 503, "api_error", "service_unavailable", NULL,
                         "the database is unavailable; retry shortly");
    else if (rc == STORE_E_RETRY)
        http_reply_error(r, 503, "api_error", "service_unavailable", NULL,
                         "a concurrent update conflicted; retry the request");
    else
        http_reply_error(r, 500, "api_error", "internal_error", NULL, "internal error");
}

/* Matches `path` against a route pattern; on a match only, copies the
 * path parameters into r->params (so scanning the table allocates nothing). */
static int route_match(const char *pattern, const char *path, http_req *r)
{
    const char *start[HTTP_MAX_PARAMS];
    size_t len[HTTP_MAX_PARAMS];
    int np = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close) return 0;
            size_t n = close - p == 2 && p[1] == '*' ? strlen(s) : strcspn(s, "/");
            if (n == 0 || (p[1] != '*' && n > 255)) return 0;
            if (np < HTTP_MAX_PARAMS) {
                start[np] = s;
                len[np++] = n;
            }
            s += n;
            p = close + 1;
            continue;
        }
        if (*p != *s) return 0;
        p++;
        s++;
    }
    if (*p != '\0' || *s != '\0') return 0;
    for (int i = 0; i < np; i++) r->params[i] = arena_strndup(r->arena, start[i], len[i]);
    return 1;
}

static int route_find(http_req *r, char *allow, size_t allow_len)
{
    int path_matched = 0;
    allow[0] = '\0';
    for (int i = 0; i < http_route_count; i++) {
        const http_route *rt = &http_routes[i];
        if (!route_match(rt->pattern, r->path, r)) continue;
        if (strcmp(rt->method, r->method) == 0) {
            r->route = rt;
            r->route_index = i;
            return 1;
        }
        path_matched = 1;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", rt->method);
    }
    return path_matched ? -1 : 0;
}

/* Reads the body into the arena. 0, or an HTTP status to answer with. */
static int read_body(app *a, http_req *r)
{
    const struct mg_request_info *ri = mg_get_request_info(r->conn);
    long long declared = ri->content_length;
    long limit = a->cfg->max_body_bytes;
    if (declared > limit) return 413;
    size_t cap = declared >= 0 ? (size_t)declared : 8192;
    char *buf = arena_alloc(r->arena, cap + 1);
    size_t len = 0;
    if (!buf) return 500;
    for (;;) {
        if (len == cap) {
            if (declared >= 0) break;
            if ((long)cap >= limit) {
                char probe;
                if (mg_read(r->conn, &probe, 1) > 0) return 413;
                break;
            }
            size_t ncap = cap * 2 > (size_t)limit ? (size_t)limit : cap * 2;
            char *nbuf = arena_alloc(r->arena, ncap + 1);
            if (!nbuf) return 500;
            memcpy(nbuf, buf, len);
            buf = nbuf;
            cap = ncap;
        }
        int n = mg_read(r->conn, buf + len, cap - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    r->body = buf;
    r->body_len = len;
    return 0;
}

static int parse_json_body(http_req *r)
{
    if (r->body_len == 0) return 0;
    const char *ct = http_header(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        http_reply_error(r, 415, "invalid_request_error", "unsupported_media_type", NULL,
                         "the body must be JSON sent with Content-Type: application/json");
        return -1;
    }
    json_error_t jerr;
    r->json = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->json) {
        http_reply_error(r, 400, "invalid_request_error", "invalid_json", NULL,
                         "the body is not valid JSON: %s at line %d column %d", jerr.text,
                         jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(r->json)) {
        http_reply_error(r, 400, "invalid_request_error", "invalid_json", NULL,
                         "the body must be a JSON object");
        return -1;
    }
    return 0;
}

/*
 * The PAN guard: no card number in the query or in any JSON field. The one
 * exception is a documented mock test card in `payment_method` on routes
 * that may carry one; the handler then refuses it unless the payment goes
 * to a mock gateway.
 */
static int guard_card_data(http_req *r)
{
    if (r->query && cardguard_text_has_pan(r->query, strlen(r->query), 0)) {
        http_reply_error(r, 400, "invalid_request_error", "card_data_not_allowed", NULL,
                         "card numbers are not accepted by payd; use the provider's tokenization");
        return -1;
    }
    char path[256];
    if (!r->json || !cardguard_json_has_pan(r->json, 0, path, sizeof path)) return 0;
    json_t *pm = json_object_get(r->json, "payment_method");
    if ((r->route->flags & ROUTE_TEST_CARD) && strcmp(path, "payment_method") == 0 &&
        json_is_string(pm) && cardguard_is_test_card(json_string_value(pm))) {
        char rest[256];
        json_t *copy = json_copy(r->json);
        json_object_del(copy, "payment_method");
        int other = cardguard_json_has_pan(copy, 0, rest, sizeof rest);
        json_decref(copy);
        if (!other) {
            r->test_card = json_string_value(pm);
            return 0;
        }
        snprintf(path, sizeof path, "%s", rest);
    }
    http_reply_error(r, 400, "invalid_request_error", "card_data_not_allowed", arena_strdup(r->arena, path),
                     "card numbers are not accepted by payd; use the provider's tokenization");
    return -1;
}

static int authorize(app *a, http_req *r)
{
    int flags = r->route->flags;
    if (!(flags & (ROUTE_AUTH | ROUTE_MERCHANT | ROUTE_ADMIN))) return 0;
    const char *why = NULL;
    int rc = auth_authenticate(a, http_header(r, "Authorization"), &r->auth, &why);
    if (rc == AUTH_UNAVAILABLE) {
        http_reply_store_error(r, STORE_E_UNAVAILABLE);
        return -1;
    }
    if (rc != AUTH_OK) {
        if (rc == AUTH_INVALID) {
            const struct mg_request_info *ri = mg_get_request_info(r->conn);
            audit_auth_rejected(a, ri->remote_addr, r->request_id, r->path, why);
        }
        http_reply_error(r, 401, "authentication_error",
                         rc == AUTH_MISSING ? "missing_credentials" : "invalid_credentials", NULL,
                         "%s", rc == AUTH_MISSING ? "send Authorization: Bearer <api key or token>" : why);
        return -1;
    }
    int retry = ratelimit_check(a, r->auth.actor);
    if (retry > 0) {
        http_reply_error(r, 429, "rate_limit_error", "rate_limited", NULL,
                         "too many requests; retry in %d s", retry);
        r->extra_headers = arena_sprintf(r->arena, "Retry-After: %d\r\n", retry);
        return -1;
    }
    int need = (flags & ROUTE_ADMIN) ? ROLE_ADMIN : (flags & ROUTE_MERCHANT) ? ROLE_MERCHANT : ROLE_USER;
    if (r->auth.role < need) {
        http_reply_error(r, 403, "permission_error", "insufficient_role", NULL,
                         "this endpoint needs the %s role", auth_role_name(need));
        return -1;
    }
    return 0;
}

/*
 * Writes status line, headers and body with ONE mg_write: with tcp_nodelay
 * a second small write would wait for a delayed ACK (~40 ms).
 */
static void write_response(http_req *r)
{
    const char *body = r->res_body ? r->res_body : "";
    size_t body_len = r->res_body ? r->res_len : 0;
    char *head = arena_sprintf(r->arena,
                               "HTTP/1.1 %d %s\r\n"
                               "Content-Type: %s\r\n"
                               "Content-Length: %zu\r\n"
                               "Request-Id: %s\r\n"
                               "Cache-Control: no-store\r\n"
                               "X-Content-Type-Options: nosniff\r\n"
                               "%s%s%s%s\r\n",
                               r->status, status_text(r->status),
                               r->content_type ? r->content_type : "application/json", body_len,
                               r->request_id, r->location ? "Location: " : "",
                               r->location ? r->location : "", r->location ? "\r\n" : "",
                               r->extra_headers ? r->extra_headers : "");
    if (!head) return;
    size_t n = strlen(head);
    size_t total = n + body_len;
    char stack[8192];
    char *out = total <= sizeof stack ? stack : malloc(total);
    if (!out) return;
    memcpy(out, head, n);
    memcpy(out + n, body, body_len);
    mg_write(r->conn, out, total);
    if (out != stack) free(out);
}

/* 1 when `name` (n bytes) is one of the space-separated `list`. */
static int name_listed(const char *list, const char *name, size_t n)
{
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, " ");
        if (len == n && memcmp(p, name, n) == 0) return 1;
        p += len;
        p += strspn(p, " ");
    }
    return 0;
}

/* The URL-decoded name of the query segment at `seg` into out; its length,
 * 0 for a segment with no name, or -1 when longer than out holds. */
static int query_name(const char *seg, char out[65])
{
    size_t raw = strcspn(seg, "=&");
    return raw == 0 ? 0 : raw < 65 ? mg_url_decode(seg, (int)raw, out, 65, 1) : -1;
}

/*
 * Query parameters are held to the same rule as JSON members: a name the
 * route does not read is refused, never ignored, so "?stauts=paid" is not
 * silently every order, and a cursor on a list that takes none cannot
 * loop a client over page one forever. A name given twice is refused too:
 * which one counts would be CivetWeb's choice, not the caller's. Runs
 * after the card guard, so no card number is ever echoed here.
 */
static int check_query(http_req *r)
{
    if (!r->query || (r->route->flags & ROUTE_RAW)) return 0;
    const char *allowed = r->route->query;
    for (const char *p = r->query; *p; p += strcspn(p, "&"), p += *p == '&') {
        char name[65], other[65];
        int n = query_name(p, name);
        if (n == 0) continue;
        if (n < 0 || !name_listed(allowed, name, (size_t)n)) {
            if (n < 0) snprintf(name, sizeof name, "%.40s…", p);
            char *takes = arena_strdup(r->arena, allowed ? allowed : "none");
            for (char *s = takes; s && *s; s++)
                if (*s == ' ') *s = ',';
            http_reply_error(r, 400, "invalid_request_error", "parameter_unknown", arena_strdup(r->arena, name),
                             "unknown query parameter %s; this route takes: %s", name, takes ? takes : "");
            return -1;
        }
        for (const char *q = p + strcspn(p, "&"); *q; q += strcspn(q, "&")) {
            q += *q == '&';
            if (query_name(q, other) == n && memcmp(other, name, (size_t)n) == 0) {
                http_reply_error(r, 400, "invalid_request_error", "parameter_invalid", arena_strdup(r->arena, name),
                                 "%s is given more than once", name);
                return -1;
            }
        }
    }
    return 0;
}

static int http_on_request(struct mg_connection *conn)
{
    app *a = mg_get_user_data(mg_get_context(conn));
    const struct mg_request_info *ri = mg_get_request_info(conn);
    int64_t started = host_now_ms();

    http_req r = {0};
    r.conn = conn;
    r.arena = arena_new();
    r.method = ri->request_method;
    r.path = ri->local_uri ? ri->local_uri : "/";
    r.query = ri->query_string;
    r.route_index = -1;
    uint8_t rid[10];
    host_random_bytes(rid, sizeof rid);
    memcpy(r.request_id, "req_", 4);
    host_hex(rid, sizeof rid, r.request_id + 4);

    char allow[128];
    int found = r.arena ? route_find(&r, allow, sizeof allow) : 0;
    idempotency_slot idem = {0};
    if (!r.arena) {
        r.status = 500;
    } else if (found == 0) {
        http_reply_error(&r, 404, "invalid_request_error", "route_not_found", NULL,
                         "no route for %s %s", r.method, r.path);
    } else if (found < 0) {
        http_reply_error(&r, 405, "invalid_request_error", "method_not_allowed", NULL,
                         "%s is not allowed here; allowed: %s", r.method, allow);
        r.extra_headers = arena_sprintf(r.arena, "Allow: %s\r\n", allow);
    } else if ((r.route->flags & ROUTE_TEST) && !a->cfg->test_mode) {
        http_reply_error(&r, 404, "invalid_request_error", "route_not_found", NULL,
                         "no route for %s %s", r.method, r.path);
    } else {
        int body_status = read_body(a, &r);
        if (body_status == 413)
            http_reply_error(&r, 413, "invalid_request_error", "body_too_large", NULL,
                             "the body is larger than %ld bytes", a->cfg->max_body_bytes);
        else if (body_status)
            http_reply_error(&r, 500, "api_error", "internal_error", NULL, "out of memory");
        else if ((r.route->flags & ROUTE_JSON) && parse_json_body(&r) != 0)
            ;
        else if (!(r.route->flags & ROUTE_RAW) && guard_card_data(&r) != 0)
            ;
        else if (check_query(&r) != 0)
            ;
        else if (authorize(a, &r) != 0)
            ;
        else if ((r.route->flags & ROUTE_IDEMPOTENT) &&
                 idempotency_begin(a, &r, &idem) != IDEMPOTENCY_PROCEED)
            ; /* replayed or refused: the reply is set */
        else {
            r.route->handler(a, &r);
            if (idem.active) idempotency_finish(a, &r, &idem);
        }
    }
    if (!r.status)
        http_reply_error(&r, 500, "api_error", "internal_error", NULL, "the handler set no reply");
    write_response(&r);
    int64_t elapsed = host_now_ms() - started;
    metrics_observe_request(r.route_index, r.status, elapsed);
    log_debug("http", "%s %s -> %d in %lld ms %s", r.method, r.route ? r.route->name : "unmatched",
              r.status, (long long)elapsed, r.request_id);

    json_decref(r.json);
    free(r.res_body);
    arena_free(r.arena);
    return r.status;
}

static int http_on_log(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    log_warn("http", "%s", message);
    return 1;
}

int http_start(app *a)
{
    char threads[16];
    snprintf(threads, sizeof threads, "%d", a->cfg->threads);
    const char *options[] = {"listening_ports", a->cfg->listen,
                             "num_threads", threads,
                             "tcp_nodelay", "1",
                             "enable_keep_alive", "yes",
                             "keep_alive_timeout_ms", "15000",
                             "request_timeout_ms", "30000",
                             "decode_url", "yes",
                             NULL};
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.begin_request = http_on_request;
    callbacks.log_message = http_on_log;
    a->http = mg_start(&callbacks, a, options);
    if (!a->http) {
        log_error("http", "cannot listen on %s", a->cfg->listen);
        return -1;
    }
    log_info("http", "listening on %s with %d threads", a->cfg->listen, a->cfg->threads);
    return 0;
}

void http_stop(app *a)
{
    if (a->http) mg_stop(a->http);
    a->http = NULL;
}
