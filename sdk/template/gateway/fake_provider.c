/*
 * fake_provider.c - fake_provider.h served over HTTP/1.1 on 127.0.0.1, so a
 * real payd (and payd-modcheck) can use the template module with
 * `api_base = http://127.0.0.1:PORT`.
 *
 *     ./fake-provider PORT [API_KEY]      (API_KEY defaults to sk_test_example)
 *
 * Prints "fake ExamplePay listening on 127.0.0.1:PORT" once it accepts,
 * then serves until killed. One thread per connection; every answer closes
 * the connection. A test double, not a web server: bodies up to 1 MiB,
 * headers up to 16 KiB, no chunked uploads.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_provider.h"

#define HEAD_MAX (16 * 1024)
#define BODY_MAX (1024 * 1024)

static fake_provider provider;

typedef struct conn {
    int fd;
} conn;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The value of header `name` in the raw head, copied into out; 1 or 0. */
static int header(const char *head, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nl) != 0 || l[nl] != ':') continue;
        const char *v = l + nl + 1, *end = strstr(v, "\r\n");
        while (*v == ' ' || *v == '\t') v++;
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (n >= len) return 0;
        memcpy(out, v, n);
        out[n] = '\0';
        return 1;
    }
    return 0;
}

static void *serve(void *arg)
{
    conn *c = arg;
    char *buf = malloc(HEAD_MAX + BODY_MAX + 1);
    size_t used = 0;
    char *head_end = NULL;
    while (buf && !head_end && used < HEAD_MAX) {
        ssize_t n = read(c->fd, buf + used, HEAD_MAX - used);
        if (n <= 0) break;
        used += (size_t)n;
        buf[used] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
    }
    int status = 400;
    char *response = NULL;
    if (head_end) {
        *head_end = '\0';
        char method[16], path[1024], value[64];
        size_t body_len = 0;
        if (header(buf, "Content-Length", value, sizeof value)) body_len = strtoul(value, NULL, 10);
        char *body = head_end + 4;
        size_t have = used - (size_t)(body - buf);
        while (body_len <= BODY_MAX && have < body_len) {
            ssize_t n = read(c->fd, body + have, body_len - have);
            if (n <= 0) break;
            have += (size_t)n;
        }
        char auth[256], idem[300];
        int has_auth = header(buf, "Authorization", auth, sizeof auth);
        int has_idem = header(buf, "Idempotency-Key", idem, sizeof idem);
        if (sscanf(buf, "%15s %1023s", method, path) == 2 && body_len <= BODY_MAX && have >= body_len) {
            body[body_len] = '\0';
            status = fake_provider_handle(&provider, method, path, has_auth ? auth : NULL,
                                          has_idem ? idem : NULL, body, body_len, &response);
        }
    }
    const char *text = response ? response : "{\"error\":{\"code\":\"bad_request\",\"message\":\"Bad request.\"}}";
    char head[256];
    static unsigned long request_id;
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Request-Id: req_fake_%lu\r\nConnection: close\r\n\r\n",
                      status, status == 200 ? "OK" : "Error", strlen(text),
                      __atomic_add_fetch(&request_id, 1, __ATOMIC_RELAXED));
    if (write_all(c->fd, head, (size_t)hn) == 0) write_all(c->fd, text, strlen(text));
    free(response);
    free(buf);
    close(c->fd);
    free(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [API_KEY]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    fake_provider_init(&provider, argc > 2 ? argv[2] : "sk_test_example");
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("fake-provider");
        return 1;
    }
    printf("fake ExamplePay listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    for (;;) {
        int cfd = accept(fd, NULL, NULL);
        if (cfd < 0) continue;
        conn *c = malloc(sizeof *c);
        pthread_t th;
        if (!c) {
            close(cfd);
            continue;
        }
        c->fd = cfd;
        if (pthread_create(&th, NULL, serve, c) != 0) {
            close(cfd);
            free(c);
            continue;
        }
        pthread_detach(th);
    }
}
