/*
 * tests/fakes/hook_receiver.c - an HTTP endpoint that records webhooks.
 *
 *   hook_receiver PORT DIR [--fail-first N] [--status S] [--delay-ms D]
 *                 [--max-seconds T]
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port) with CivetWeb. Every POST,
 * to any path, is recorded and answered:
 *   - 200 {"received":true}, or
 *   - S for the first N POSTs: --fail-first N alone answers 500, --status S
 *     alone answers S to every POST, both together S to the first N;
 *   - after D milliseconds with --delay-ms (to make a sender time out).
 * Each POST is also written to DIR/<n>.http (n = 1, 2, ... in arrival
 * order): the request line, the headers, a blank line and the exact body,
 * first as <n>.tmp then renamed, so a reader never sees half a file.
 *
 * It verifies nothing: tests check the signatures themselves.
 *
 *   GET /_count     number of POSTs received (all of them), as text
 *   GET /_accepted  number of POSTs answered 2xx, as text
 *   GET /_events    JSON array, one object per POST in arrival order:
 *                   {"n", "path", "status" (what it answered),
 *                    "signature" (Payd-Signature), "event_id"
 *                    (Payd-Event-Id), "event_type", "attempt",
 *                    "content_type", "body" (the raw body as a string)}
 *
 * Prints "hook_receiver listening on 127.0.0.1:<port>" on stdout (flushed)
 * once it accepts connections. Exits on SIGTERM/SIGINT or after T seconds
 * (default 300), so a crashed test never leaves it behind.
 */
#include <civetweb.h>
#include <jansson.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (4 * 1024 * 1024)

static const char *out_dir;
static long fail_first = -1;   /* -1: not given */
static int fail_status = -1;   /* -1: not given */
static long delay_ms;
static volatile sig_atomic_t stop;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *events;         /* guarded by mu */
static long posts, accepted;   /* guarded by mu */

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void reply(struct mg_connection *conn, int status, const char *type,
                  const char *body)
{
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n%s",
              status, mg_get_response_code_text(conn, status), type, strlen(body), body);
}

static const char *header(const struct mg_request_info *ri, const char *name)
{
    int i;

    for (i = 0; i < ri->num_headers; i++)
        if (strcasecmp(ri->http_headers[i].name, name) == 0)
            return ri->http_headers[i].value;
    return NULL;
}

/* The status to answer the n-th POST with. */
static int status_for(long n)
{
    if (fail_first < 0 && fail_status < 0)
        return 200;
    if (fail_first < 0)
        return fail_status;           /* --status alone: always */
    if (n <= fail_first)
        return fail_status > 0 ? fail_status : 500;
    return 200;
}

static void write_file(long n, const struct mg_request_info *ri, const char *body,
                       size_t len)
{
    char tmp[4096], path[4096];
    FILE *f;
    int i;

    snprintf(tmp, sizeof tmp, "%s/%ld.tmp", out_dir, n);
    snprintf(path, sizeof path, "%s/%ld.http", out_dir, n);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        fprintf(stderr, "hook_receiver: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "%s %s%s%s HTTP/%s\r\n", ri->request_method, ri->local_uri,
            ri->query_string ? "?" : "", ri->query_string ? ri->query_string : "",
            ri->http_version);
    for (i = 0; i < ri->num_headers; i++)
        fprintf(f, "%s: %s\r\n", ri->http_headers[i].name, ri->http_headers[i].value);
    fputs("\r\n", f);
    fwrite(body, 1, len, f);
    fclose(f);
    rename(tmp, path);
}

static int on_post(struct mg_connection *conn, const struct mg_request_info *ri)
{
    char *body = malloc(BODY_MAX + 1);
    size_t len = 0;
    int r, status;
    long n;
    json_t *ev, *jb;

    if (body == NULL) {
        reply(conn, 500, "text/plain", "out of memory\n");
        return 500;
    }
    while (len < BODY_MAX && (r = mg_read(conn, body + len, BODY_MAX - len)) > 0)
        len += (size_t)r;
    body[len] = '\0';

    pthread_mutex_lock(&mu);
    n = ++posts;
    status = status_for(n);
    if (status >= 200 && status <= 299)
        accepted++;
    write_file(n, ri, body, len);
    jb = json_stringn(body, len);
    ev = json_pack("{s:I, s:s, s:i, s:s?, s:s?, s:s?, s:s?, s:s?, s:o}", "n", (json_int_t)n,
                   "path", ri->local_uri, "status", status, "signature",
                   header(ri, "Payd-Signature"), "event_id", header(ri, "Payd-Event-Id"),
                   "event_type", header(ri, "Payd-Event-Type"), "attempt",
                   header(ri, "Payd-Delivery-Attempt"), "content_type",
                   header(ri, "Content-Type"), "body", jb ? jb : json_null());
    if (ev != NULL)
        json_array_append_new(events, ev);
    pthread_mutex_unlock(&mu);
    free(body);
    fprintf(stderr, "hook_receiver: POST %s #%ld (%zu bytes) -> %d\n", ri->local_uri, n, len,
            status);

    if (delay_ms > 0) {
        struct timespec ts = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (status >= 200 && status <= 299)
        reply(conn, status, "application/json", "{\"received\":true}\n");
    else
        reply(conn, status, "text/plain", "hook_receiver: failing on purpose\n");
    return status;
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char text[64];

    (void)cbdata;
    if (strcmp(ri->request_method, "POST") == 0)
        return on_post(conn, ri);
    if (strcmp(ri->request_method, "GET") != 0) {
        reply(conn, 405, "text/plain", "method not allowed\n");
        return 405;
    }
    if (strcmp(ri->local_uri, "/_count") == 0 || strcmp(ri->local_uri, "/_accepted") == 0) {
        pthread_mutex_lock(&mu);
        snprintf(text, sizeof text, "%ld\n",
                 strcmp(ri->local_uri, "/_count") == 0 ? posts : accepted);
        pthread_mutex_unlock(&mu);
        reply(conn, 200, "text/plain", text);
        return 200;
    }
    if (strcmp(ri->local_uri, "/_events") == 0) {
        pthread_mutex_lock(&mu);
        char *dump = json_dumps(events, JSON_COMPACT);
        pthread_mutex_unlock(&mu);
        reply(conn, dump ? 200 : 500, "application/json", dump ? dump : "[]");
        free(dump);
        return 200;
    }
    reply(conn, 404, "text/plain", "not found\n");
    return 404;
}

static int usage(void)
{
    fprintf(stderr, "usage: hook_receiver PORT DIR [--fail-first N] [--status S] "
                    "[--delay-ms D] [--max-seconds T]\n");
    return 2;
}

int main(int argc, char **argv)
{
    char ports[64];
    const char *options[] = {"listening_ports", ports, "num_threads", "16",
                             "request_timeout_ms", "30000", NULL};
    struct mg_callbacks cb;
    struct mg_context *ctx;
    struct mg_server_port sp[4];
    struct sigaction sa;
    long max_seconds = 300;
    int port, i, n;
    time_t deadline;

    if (argc < 3)
        return usage();
    port = atoi(argv[1]);
    out_dir = argv[2];
    for (i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--fail-first") == 0 && i + 1 < argc)
            fail_first = atol(argv[++i]);
        else if (strcmp(argv[i], "--status") == 0 && i + 1 < argc)
            fail_status = atoi(argv[++i]);
        else if (strcmp(argv[i], "--delay-ms") == 0 && i + 1 < argc)
            delay_ms = atol(argv[++i]);
        else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
            max_seconds = atol(argv[++i]);
        else
            return usage();
    }
    if (port < 0 || port > 65535 || max_seconds <= 0 || delay_ms < 0 ||
        (fail_status != -1 && (fail_status < 100 || fail_status > 599)))
        return usage();

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    events = json_array();
    snprintf(ports, sizeof ports, "127.0.0.1:%d", port);
    mg_init_library(0);
    memset(&cb, 0, sizeof cb);
    ctx = mg_start(&cb, NULL, options);
    if (ctx == NULL) {
        fprintf(stderr, "hook_receiver: cannot listen on %s\n", ports);
        return 1;
    }
    mg_set_request_handler(ctx, "/", on_request, NULL);
    n = mg_get_server_ports(ctx, 4, sp);
    printf("hook_receiver listening on 127.0.0.1:%d\n", n > 0 ? sp[0].port : port);
    fflush(stdout);

    deadline = time(NULL) + max_seconds;
    while (!stop && time(NULL) < deadline) {
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    mg_stop(ctx);
    mg_exit_library();
    fprintf(stderr, "hook_receiver: exiting (%ld received, %ld accepted)\n", posts, accepted);
    json_decref(events);
    return 0;
}
