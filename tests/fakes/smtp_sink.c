/*
 * tests/fakes/smtp_sink.c - a minimal SMTP server that keeps what it gets.
 *
 *   smtp_sink PORT DIR [--fail-first N] [--fail-code C] [--max-seconds S]
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port) in plain text (no TLS,
 * no STARTTLS offered) and speaks just enough SMTP for libcurl: EHLO/HELO,
 * AUTH PLAIN and AUTH LOGIN (any credentials are accepted), MAIL FROM,
 * RCPT TO, DATA, RSET, NOOP, QUIT. Every accepted message is written to
 * DIR/<n>.eml (n = 1, 2, ... in order of acceptance), first as <n>.tmp and
 * then renamed, so a reader never sees half a file. The file starts with
 *   X-Envelope-To: <rcpt>[, <rcpt>...]
 *   X-Envelope-From: <sender>
 *   X-Sink-Auth-User: <user>          (only after AUTH)
 * followed by the message exactly as received, dot-unstuffed.
 *
 * --fail-first N   answer C (default 451, "try again later") at the end of
 *                  DATA for the first N messages, and keep nothing of them
 * --fail-code C    the reply code for those, 400..599 (e.g. 550)
 * --max-seconds S  exit after S seconds (default 300), so a test that dies
 *                  never leaves the sink behind; SIGTERM and SIGINT exit too
 *
 * Prints "smtp_sink listening on 127.0.0.1:<port>" on stdout (flushed) once
 * it accepts connections, and one line per message on stderr.
 *
 * Each connection runs on its own thread: libcurl keeps connections open
 * between messages, and several clients may deliver at once.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_LEN 4096
#define MESSAGE_MAX (16 * 1024 * 1024)
#define RCPT_MAX 64

static const char *sink_dir;
static int fail_first;
static int fail_code = 451;
static atomic_int received;   /* messages that reached the end of DATA */
static atomic_int stored;     /* files written */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;

typedef struct conn {
    int fd;
    char buf[LINE_MAX_LEN * 2];
    size_t len, pos;
} conn;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int sendf(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int sendf(conn *c, const char *fmt, ...)
{
    char out[1024];
    va_list ap;
    int n;
    size_t off = 0;

    va_start(ap, fmt);
    n = vsnprintf(out, sizeof out, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof out)
        return -1;
    while (off < (size_t)n) {
        ssize_t w = send(c->fd, out + off, (size_t)n - off, MSG_NOSIGNAL);

        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* Read one line without its CR LF into `line`. Returns its length, or -1
 * on EOF, timeout or a line too long. */
static long read_line(conn *c, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);

        if (nl != NULL) {
            size_t n = (size_t)(nl - (c->buf + c->pos));

            if (n > 0 && c->buf[c->pos + n - 1] == '\r')
                n--;
            if (n >= cap)
                return -1;
            memcpy(line, c->buf + c->pos, n);
            line[n] = '\0';
            c->pos = (size_t)(nl - c->buf) + 1;
            return (long)n;
        }
        if (c->pos > 0) {
            memmove(c->buf, c->buf + c->pos, c->len - c->pos);
            c->len -= c->pos;
            c->pos = 0;
        }
        if (c->len == sizeof c->buf)
            return -1;
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (r <= 0)
            return -1;
        c->len += (size_t)r;
    }
}

/* The address inside "<...>" after a "MAIL FROM:" or "RCPT TO:" verb. */
static void path_of(const char *arg, char *out, size_t cap)
{
    const char *lt = strchr(arg, '<'), *gt;

    if (lt != NULL && (gt = strchr(lt, '>')) != NULL)
        snprintf(out, cap, "%.*s", (int)(gt - lt - 1), lt + 1);
    else {
        while (*arg == ' ')
            arg++;
        snprintf(out, cap, "%.*s", (int)strcspn(arg, " "), arg);
    }
}

/* Decode base64 `in` into `out` (NUL-terminated); length or -1. */
static int b64_decode(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in);
    int len;

    if (n % 4 != 0 || n / 4 * 3 + 1 > cap)
        return -1;
    len = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    if (n > 0 && in[n - 1] == '=')
        len--;
    if (n > 1 && in[n - 2] == '=')
        len--;
    out[len] = '\0';
    return len;
}

/* The user of an AUTH PLAIN response: "authzid\0authcid\0passwd". */
static void plain_user(const char *b64, char *user, size_t cap)
{
    char raw[1024];
    int n = b64_decode(b64, raw, sizeof raw);
    const char *authcid;

    user[0] = '\0';
    if (n < 0)
        return;
    authcid = raw + strlen(raw) + 1;
    if (authcid < raw + n)
        snprintf(user, cap, "%.200s", authcid);
}

static int store_message(const char *from, char rcpts[][LINE_MAX_LEN], int nrcpt,
                         const char *user, const char *data, size_t len)
{
    char tmp[4096], path[4096];
    FILE *f;
    int n, i;

    pthread_mutex_lock(&store_mu);
    n = atomic_fetch_add(&stored, 1) + 1;
    snprintf(tmp, sizeof tmp, "%s/%d.tmp", sink_dir, n);
    snprintf(path, sizeof path, "%s/%d.eml", sink_dir, n);
    f = fopen(tmp, "wb");
    if (f == NULL) {
        pthread_mutex_unlock(&store_mu);
        fprintf(stderr, "smtp_sink: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fputs("X-Envelope-To: ", f);
    for (i = 0; i < nrcpt; i++)
        fprintf(f, "%s%s", i > 0 ? ", " : "", rcpts[i]);
    fprintf(f, "\r\nX-Envelope-From: %s\r\n", from);
    if (user[0] != '\0')
        fprintf(f, "X-Sink-Auth-User: %s\r\n", user);
    fwrite(data, 1, len, f);
    fclose(f);
    rename(tmp, path);
    pthread_mutex_unlock(&store_mu);
    fprintf(stderr, "smtp_sink: stored %s (%d recipient%s, %zu bytes)\n", path, nrcpt,
            nrcpt == 1 ? "" : "s", len);
    return 0;
}

/* Read DATA up to the lone ".", then store it or refuse it. */
static int do_data(conn *c, const char *from, char rcpts[][LINE_MAX_LEN], int nrcpt,
                   const char *user)
{
    char line[LINE_MAX_LEN];
    char *msg = NULL;
    size_t len = 0, cap = 0;
    int too_big = 0, n;
    long l;

    if (sendf(c, "354 End data with <CR><LF>.<CR><LF>\r\n") != 0)
        return -1;
    for (;;) {
        if ((l = read_line(c, line, sizeof line)) < 0) {
            free(msg);
            return -1;
        }
        if (strcmp(line, ".") == 0)
            break;
        const char *s = line[0] == '.' ? line + 1 : line; /* dot-unstuff */
        size_t sl = strlen(s);
        if (len + sl + 2 > MESSAGE_MAX) {
            too_big = 1;
            continue;
        }
        if (len + sl + 3 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            while (ncap < len + sl + 3)
                ncap *= 2;
            char *d = realloc(msg, ncap);
            if (d == NULL) {
                free(msg);
                return -1;
            }
            msg = d;
            cap = ncap;
        }
        memcpy(msg + len, s, sl);
        len += sl;
        msg[len++] = '\r';
        msg[len++] = '\n';
    }
    n = atomic_fetch_add(&received, 1) + 1;
    if (too_big) {
        free(msg);
        return sendf(c, "552 5.3.4 message too big\r\n");
    }
    if (n <= fail_first) {
        free(msg);
        fprintf(stderr, "smtp_sink: refused message %d with %d\n", n, fail_code);
        return sendf(c, "%d %d.0.0 refused by smtp_sink (--fail-first)\r\n", fail_code,
                     fail_code / 100);
    }
    if (store_message(from, rcpts, nrcpt, user, msg != NULL ? msg : "", len) != 0) {
        free(msg);
        return sendf(c, "451 4.3.0 cannot store the message\r\n");
    }
    free(msg);
    return sendf(c, "250 2.0.0 Ok: queued as %d\r\n", atomic_load(&stored));
}

static void *serve(void *opaque)
{
    conn *c = opaque;
    char line[LINE_MAX_LEN], from[LINE_MAX_LEN] = "", user[256] = "";
    char(*r)[LINE_MAX_LEN] = calloc(RCPT_MAX, LINE_MAX_LEN);
    int nrcpt = 0, have_from = 0;
    struct timeval tv = {30, 0};

    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (r == NULL || sendf(c, "220 smtp_sink ESMTP ready\r\n") != 0)
        goto done;
    while (read_line(c, line, sizeof line) >= 0) {
        if (strncasecmp(line, "EHLO", 4) == 0) {
            if (sendf(c, "250-smtp_sink\r\n250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n"
                         "250 SIZE %d\r\n", MESSAGE_MAX) != 0)
                break;
        } else if (strncasecmp(line, "HELO", 4) == 0) {
            if (sendf(c, "250 smtp_sink\r\n") != 0)
                break;
        } else if (strncasecmp(line, "AUTH PLAIN", 10) == 0) {
            const char *arg = line + 10;

            while (*arg == ' ')
                arg++;
            if (*arg == '\0') {
                if (sendf(c, "334 \r\n") != 0 || read_line(c, line, sizeof line) < 0)
                    break;
                arg = line;
            }
            plain_user(arg, user, sizeof user);
            if (sendf(c, "235 2.7.0 Authentication successful\r\n") != 0)
                break;
        } else if (strncasecmp(line, "AUTH LOGIN", 10) == 0) {
            const char *arg = line + 10;
            char raw[512];

            while (*arg == ' ')
                arg++;
            if (*arg == '\0') {
                if (sendf(c, "334 VXNlcm5hbWU6\r\n") != 0 ||
                    read_line(c, line, sizeof line) < 0)
                    break;
                arg = line;
            }
            if (b64_decode(arg, raw, sizeof raw) >= 0)
                snprintf(user, sizeof user, "%.200s", raw);
            if (sendf(c, "334 UGFzc3dvcmQ6\r\n") != 0 || read_line(c, line, sizeof line) < 0 ||
                sendf(c, "235 2.7.0 Authentication successful\r\n") != 0)
                break;
        } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
            path_of(line + 10, from, sizeof from);
            have_from = 1;
            nrcpt = 0;
            if (sendf(c, "250 2.1.0 Ok\r\n") != 0)
                break;
        } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
            if (!have_from) {
                if (sendf(c, "503 5.5.1 MAIL first\r\n") != 0)
                    break;
            } else if (nrcpt >= RCPT_MAX) {
                if (sendf(c, "452 4.5.3 too many recipients\r\n") != 0)
                    break;
            } else {
                path_of(line + 8, r[nrcpt++], LINE_MAX_LEN);
                if (sendf(c, "250 2.1.5 Ok\r\n") != 0)
                    break;
            }
        } else if (strcasecmp(line, "DATA") == 0) {
            if (!have_from || nrcpt == 0) {
                if (sendf(c, "503 5.5.1 RCPT first\r\n") != 0)
                    break;
                continue;
            }
            if (do_data(c, from, r, nrcpt, user) != 0)
                break;
            have_from = 0;
            nrcpt = 0;
        } else if (strcasecmp(line, "RSET") == 0) {
            have_from = 0;
            nrcpt = 0;
            if (sendf(c, "250 2.0.0 Ok\r\n") != 0)
                break;
        } else if (strncasecmp(line, "NOOP", 4) == 0) {
            if (sendf(c, "250 2.0.0 Ok\r\n") != 0)
                break;
        } else if (strcasecmp(line, "QUIT") == 0) {
            sendf(c, "221 2.0.0 Bye\r\n");
            break;
        } else {
            if (sendf(c, "502 5.5.2 command not implemented\r\n") != 0)
                break;
        }
    }
done:
    free(r);
    close(c->fd);
    free(c);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: smtp_sink PORT DIR [--fail-first N] [--fail-code C] "
                    "[--max-seconds S]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    socklen_t alen = sizeof addr;
    long max_seconds = 300;
    int port, fd, one = 1, i;
    time_t deadline;
    struct sigaction sa;

    if (argc < 3)
        return usage();
    port = atoi(argv[1]);
    sink_dir = argv[2];
    for (i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--fail-first") == 0 && i + 1 < argc)
            fail_first = atoi(argv[++i]);
        else if (strcmp(argv[i], "--fail-code") == 0 && i + 1 < argc)
            fail_code = atoi(argv[++i]);
        else if (strcmp(argv[i], "--max-seconds") == 0 && i + 1 < argc)
            max_seconds = atol(argv[++i]);
        else
            return usage();
    }
    if (port < 0 || port > 65535 || fail_first < 0 || fail_code < 400 || fail_code > 599 ||
        max_seconds <= 0)
        return usage();

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) {
        fprintf(stderr, "smtp_sink: cannot listen on 127.0.0.1:%d: %s\n", port,
                strerror(errno));
        return 1;
    }
    printf("smtp_sink listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    deadline = time(NULL) + max_seconds;
    while (!stop && time(NULL) < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        pthread_t t;
        conn *c;
        int cfd;

        if (poll(&p, 1, 200) <= 0)
            continue;
        cfd = accept(fd, NULL, NULL);
        if (cfd < 0)
            continue;
        c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(cfd);
            continue;
        }
        c->fd = cfd;
        if (pthread_create(&t, NULL, serve, c) != 0) {
            close(cfd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    close(fd);
    fprintf(stderr, "smtp_sink: exiting (%d received, %d stored)\n", atomic_load(&received),
            atomic_load(&stored));
    /* Connection threads may still be blocked in recv; _exit skips the
     * leak check of their buffers, which end with the process anyway. */
    fflush(stderr);
    _exit(0);
}
