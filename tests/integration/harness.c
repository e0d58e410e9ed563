/*
 * harness.c - see harness.h.
 *
 * payd runs as a child process: fork, then exec of $PAYD_BUILD/payd with its
 * output appended to a log file in the run's scratch dir. The child gets
 * PR_SET_PDEATHSIG so it dies with the test process, and its pid is written
 * to DIR/payd.pid so scripts/test.sh can kill it after a crashed test. An
 * atexit handler SIGKILLs any payd still registered as running.
 *
 * Commands (migrate, apikey, check-config) run through h_run_ex: a pipe per
 * stream, poll() with a deadline, SIGKILL on timeout.
 */
#include "harness.h"

#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define H_JWT_SECRET "payd-test-jwt-secret-0123456789abcdef"
#define H_RUN_TIMEOUT_MS 60000
#define H_STOP_TIMEOUT_MS 15000
#define H_READY_TIMEOUT_MS 20000
#define H_MAX_CHILDREN 64

static pthread_once_t h_once = PTHREAD_ONCE_INIT;
static int h_init_rc;
static char h_bin[PATH_MAX];
static char h_root_dir[PATH_MAX];
static _Atomic int h_seq;

/* Running payd children, killed at exit if a test left them behind. */
static pthread_mutex_t h_children_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t h_children[H_MAX_CHILDREN];

static void h_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void h_diag(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "# harness: %s\n", line);
    fflush(stderr);
}

static void children_add(pid_t pid)
{
    pthread_mutex_lock(&h_children_lock);
    for (int i = 0; i < H_MAX_CHILDREN; i++)
        if (!h_children[i]) {
            h_children[i] = pid;
            break;
        }
    pthread_mutex_unlock(&h_children_lock);
}

static void children_remove(pid_t pid)
{
    pthread_mutex_lock(&h_children_lock);
    for (int i = 0; i < H_MAX_CHILDREN; i++)
        if (h_children[i] == pid) h_children[i] = 0;
    pthread_mutex_unlock(&h_children_lock);
}

static void children_kill_all(void)
{
    pthread_mutex_lock(&h_children_lock);
    for (int i = 0; i < H_MAX_CHILDREN; i++)
        if (h_children[i]) {
            kill(h_children[i], SIGKILL);
            waitpid(h_children[i], NULL, 0);
            h_children[i] = 0;
        }
    pthread_mutex_unlock(&h_children_lock);
}

static void h_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_ALL) != 0) {
        h_diag("curl_global_init failed");
        h_init_rc = -1;
        return;
    }
    setenv("PAYD_TEST_JWT_SECRET", H_JWT_SECRET, 1);
    atexit(children_kill_all);
    const char *build = getenv("PAYD_BUILD");
    const char *root = getenv("PAYD_ROOT");
    if (!build || !*build || !root || !*root) {
        h_diag("PAYD_BUILD and PAYD_ROOT must be set: run the tests with scripts/test.sh");
        h_init_rc = -1;
        return;
    }
    snprintf(h_bin, sizeof h_bin, "%s/payd", build);
    snprintf(h_root_dir, sizeof h_root_dir, "%s", root);
    h_init_rc = 0;
}

int h_init(void)
{
    pthread_once(&h_once, h_init_once);
    return h_init_rc;
}

const char *h_env(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        h_diag("environment variable %s is not set: run the tests with scripts/test.sh", name);
        return NULL;
    }
    return v;
}

const char *h_payd_bin(void)
{
    h_init();
    return h_bin;
}

const char *h_root(void)
{
    h_init();
    return h_root_dir;
}

char *h_testmodule(char *out, size_t len, const char *name)
{
    const char *build = getenv("PAYD_BUILD");
    snprintf(out, len, "%s/testmodules/%s.so", build ? build : "build/san", name);
    return out;
}

int h_tmpdir(char *out, size_t len)
{
    const char *base = getenv("PAYD_TEST_TMP");
    if (!base || !*base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/payd-run.XXXXXX", base);
    if (!mkdtemp(tmpl)) {
        h_diag("mkdtemp under %s: %s", base, strerror(errno));
        return -1;
    }
    snprintf(out, len, "%s", tmpl);
    return 0;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

int h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        h_diag("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0) rc = -1;
    return rc;
}

char *h_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 8192, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0) break;
        n += got;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Databases.                                                               */
/* ------------------------------------------------------------------------ */

/* Server NOTICEs ("database ... does not exist, skipping") are noise here. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg, (void)message;
}

/* The admin URL with its database name replaced by `name`. */
static int db_url_for(const char *admin, const char *name, char *out, size_t len)
{
    const char *scheme = strstr(admin, "://");
    if (!scheme) return -1;
    const char *q = strchr(scheme + 3, '?');
    const char *end = q ? q : admin + strlen(admin);
    const char *slash = NULL;
    for (const char *s = scheme + 3; s < end; s++)
        if (*s == '/') slash = s;
    size_t base = slash ? (size_t)(slash - admin) : (size_t)(end - admin);
    int n = snprintf(out, len, "%.*s/%s%s", (int)base, admin, name, q ? q : "");
    return n > 0 && (size_t)n < len ? 0 : -1;
}

int h_db_create(const char *name, char *url_out, size_t len)
{
    if (h_init() != 0) return -1;
    const char *admin = h_env("PAYD_TEST_PG_URL");
    if (!admin) return -1;
    size_t n = strlen(name);
    if (n == 0 || n > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != n) {
        h_diag("database name '%s' must be [a-z0-9_]{1,63}", name);
        return -1;
    }
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        h_diag("connect %s: %s", admin, PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    char sql[256];
    int rc = 0;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        h_diag("%s: %s", sql, PQerrorMessage(c));
        rc = -1;
    }
    PQclear(r);
    if (rc == 0) {
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
        r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            h_diag("%s: %s", sql, PQerrorMessage(c));
            rc = -1;
        }
        PQclear(r);
    }
    PQfinish(c);
    if (rc == 0 && db_url_for(admin, name, url_out, len) != 0) {
        h_diag("cannot derive a database URL from %s", admin);
        rc = -1;
    }
    return rc;
}

PGresult *h_sql(const char *db_url, const char *sql)
{
    PGconn *c = PQconnectdb(db_url);
    if (PQstatus(c) != CONNECTION_OK) {
        h_diag("connect %s: %s", db_url, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notice, NULL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        h_diag("sql failed: %s [%s]", PQerrorMessage(c), sql);
    PQfinish(c);
    return r;
}

int h_sql_exec(const char *db_url, const char *sql)
{
    PGresult *r = h_sql(db_url, sql);
    if (!r) return -1;
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -1;
}

char *h_sql_value(const char *db_url, const char *sql)
{
    PGresult *r = h_sql(db_url, sql);
    if (!r) return NULL;
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0 &&
        !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

long long h_sql_int(const char *db_url, const char *sql, long long fallback)
{
    char *v = h_sql_value(db_url, sql);
    if (!v) return fallback;
    long long n = strtoll(v, NULL, 10);
    free(v);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Running commands.                                                        */
/* ------------------------------------------------------------------------ */

typedef struct sink {
    char *buf;
    size_t len, used;
} sink;

static void sink_put(sink *s, const char *data, size_t n)
{
    if (!s->buf || s->len == 0) return;
    size_t room = s->len - 1 - s->used;
    if (n > room) n = room;
    memcpy(s->buf + s->used, data, n);
    s->used += n;
    s->buf[s->used] = '\0';
}

int h_run_ex(const char *const argv[], char *out, size_t out_len, char *err, size_t err_len,
             long timeout_ms)
{
    h_init();
    sink so = {out, out_len, 0}, se = {err, err_len, 0};
    if (out && out_len) out[0] = '\0';
    if (err && err_len) err[0] = '\0';
    int po[2], pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) != 0) return -1;
    if (err && pipe2(pe, O_CLOEXEC) != 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]);
        close(po[1]);
        if (err) close(pe[0]), close(pe[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(po[1], 1);
        dup2(err ? pe[1] : po[1], 2);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* the test died before prctl */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(po[1]);
    if (err) close(pe[1]);
    int64_t deadline = h_now_ms() + timeout_ms;
    int open_fds = err ? 2 : 1;
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = err ? pe[0] : -1, .events = POLLIN}};
    int timed_out = 0;
    while (open_fds > 0) {
        int64_t left = deadline - h_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        int n = poll(fds, 2, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno != EINTR) break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char chunk[4096];
            ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
            if (got > 0) {
                sink_put(i == 0 ? &so : &se, chunk, (size_t)got);
            } else if (got == 0 || errno != EINTR) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0) close(fds[i].fd);
    if (timed_out) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        h_diag("%s timed out after %ld ms", argv[0], timeout_ms);
        return -1;
    }
    int status = 0;
    /* Output closed: the process is exiting; still bound the wait. */
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) return -1;
        if (h_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            h_diag("%s did not exit after closing its output", argv[0]);
            return -1;
        }
        h_sleep_ms(5);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

int h_run(const char *const argv[], char *out, size_t len)
{
    return h_run_ex(argv, out, len, NULL, 0, H_RUN_TIMEOUT_MS);
}

int h_sh(const char *cmdline, char *out, size_t len)
{
    const char *argv[] = {"/bin/sh", "-c", cmdline, NULL};
    return h_run(argv, out, len);
}

/* ------------------------------------------------------------------------ */
/* payd.                                                                    */
/* ------------------------------------------------------------------------ */

static void log_tail(const char *path, int lines)
{
    size_t len = 0;
    char *text = h_read_file(path, &len);
    if (!text) return;
    const char *start = text + len;
    int seen = 0;
    while (start > text && seen <= lines) {
        start--;
        if (*start == '\n') seen++;
    }
    fflush(stdout);
    fprintf(stderr, "# --- tail of %s\n", path);
    for (const char *line = start; *line;) {
        const char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        if (n > 0 || nl) fprintf(stderr, "#   %.*s\n", n, line);
        line = nl ? nl + 1 : line + n;
    }
    fflush(stderr);
    free(text);
}

int h_payd_configure(h_payd *p, const h_payd_opts *o)
{
    static const h_payd_opts defaults = {0};
    if (!o) o = &defaults;
    memset(p, 0, sizeof *p);
    if (h_init() != 0) return -1;
    if (h_tmpdir(p->dir, sizeof p->dir) != 0) return -1;
    snprintf(p->conf_path, sizeof p->conf_path, "%s/payd.conf", p->dir);
    snprintf(p->log_path, sizeof p->log_path, "%s/payd.log", p->dir);

    if (o->db_url) {
        snprintf(p->db_url, sizeof p->db_url, "%s", o->db_url);
    } else {
        if (o->db_name) snprintf(p->db_name, sizeof p->db_name, "%s", o->db_name);
        else
            snprintf(p->db_name, sizeof p->db_name, "payd_t%d_%d", (int)getpid(),
                     atomic_fetch_add(&h_seq, 1));
        if (h_db_create(p->db_name, p->db_url, sizeof p->db_url) != 0) return -1;
    }
    p->port = h_free_port();
    if (p->port <= 0) {
        h_diag("no free port");
        return -1;
    }
    snprintf(p->base_url, sizeof p->base_url, "http://127.0.0.1:%d", p->port);

    const char *redis = o->no_redis ? NULL : h_env("PAYD_TEST_REDIS_URL");
    if (!o->no_redis && !redis) return -1;
    char *conf = NULL;
    size_t conf_len = 0;
    FILE *f = open_memstream(&conf, &conf_len);
    if (!f) return -1;
    fprintf(f, "; written by tests/integration/harness.c\n"
               "[server]\n"
               "listen = 127.0.0.1:%d\n"
               "threads = %d\n"
               "test_mode = true\n"
               "public_url = %s\n"
               "log_level = %s\n",
            p->port, o->threads ? o->threads : 8, p->base_url, o->log_level ? o->log_level : "debug");
    if (o->max_body_bytes) fprintf(f, "max_body_bytes = %ld\n", o->max_body_bytes);
    if (o->server_extra && *o->server_extra)
        fprintf(f, "%s%s", o->server_extra,
                o->server_extra[strlen(o->server_extra) - 1] == '\n' ? "" : "\n");
    fprintf(f, "\n[database]\nurl = %s\npool = %d\n", p->db_url, o->pool ? o->pool : 8);
    if (redis) fprintf(f, "\n[redis]\nurl = %s\n", redis);
    fprintf(f, "\n[auth]\njwt_secret = env:PAYD_TEST_JWT_SECRET\n");
    if (o->extra && *o->extra)
        fprintf(f, "\n%s%s", o->extra, o->extra[strlen(o->extra) - 1] == '\n' ? "" : "\n");
    if (fclose(f) != 0) {
        free(conf);
        return -1;
    }
    int rc = h_write_file(p->conf_path, conf);
    free(conf);
    return rc;
}

int h_payd_cli(h_payd *p, const char *const args[], char *out, size_t len)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = h_payd_bin();
    for (int i = 0; args && args[i] && n < 28; i++) argv[n++] = args[i];
    argv[n++] = "-c";
    argv[n++] = p->conf_path;
    argv[n] = NULL;
    return h_run(argv, out, len);
}

int h_payd_apikey(h_payd *p, const char *role, char *key_out, size_t len)
{
    const char *argv[] = {h_payd_bin(), "apikey", "create", "--role", role, "-c", p->conf_path, NULL};
    char out[512], err[4096];
    int rc = h_run_ex(argv, out, sizeof out, err, sizeof err, H_RUN_TIMEOUT_MS);
    out[strcspn(out, "\r\n")] = '\0';
    if (rc != 0 || strncmp(out, "payd_", 5) != 0) {
        h_diag("payd apikey create --role %s exited %d: %s%s", role, rc, out, err);
        return -1;
    }
    snprintf(key_out, len, "%s", out);
    return 0;
}

int h_group_start(void **state, h_payd *p, const h_payd_opts *o)
{
    *state = p;
    return h_payd_start(p, o);
}

int h_group_stop(void **state)
{
    return *state != NULL && h_payd_stop(*state) == 0 ? 0 : -1;
}

int h_payd_spawn(h_payd *p)
{
    if (h_init() != 0) return -1;
    int logfd = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        h_diag("cannot open %s: %s", p->log_path, strerror(errno));
        return -1;
    }
    const char *argv[] = {h_payd_bin(), "serve", "-c", p->conf_path, NULL};
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(logfd);
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0) dup2(devnull, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* the test died before prctl */
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    p->pid = pid;
    p->exit_status = -1;
    children_add(pid);
    char pidfile[PATH_MAX + 16], pidtext[32];
    snprintf(pidfile, sizeof pidfile, "%s/payd.pid", p->dir);
    snprintf(pidtext, sizeof pidtext, "%d\n", (int)pid);
    h_write_file(pidfile, pidtext);
    printf("# payd log: %s\n", p->log_path);
    fflush(stdout);
    return 0;
}

/* Forgets a child that has been waited for: its pid may be reused now. */
static void payd_reaped(h_payd *p)
{
    char pidfile[PATH_MAX + 16];
    snprintf(pidfile, sizeof pidfile, "%s/payd.pid", p->dir);
    unlink(pidfile);
    children_remove(p->pid);
    p->pid = 0;
}

int h_payd_alive(h_payd *p)
{
    if (p->pid <= 0) return 0;
    int status = 0;
    pid_t w = waitpid(p->pid, &status, WNOHANG);
    if (w == 0) return 1;
    if (w == p->pid) {
        p->exit_status = WIFEXITED(status) ? WEXITSTATUS(status)
                         : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
        payd_reaped(p);
    }
    return 0;
}

int h_payd_wait_ready(h_payd *p, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    long last = 0;
    while (h_now_ms() < deadline) {
        if (!h_payd_alive(p)) {
            h_diag("payd exited with status %d before it was ready", p->exit_status);
            log_tail(p->log_path, 30);
            return -1;
        }
        h_req req = {.method = "GET", .path = "/readyz", .timeout_ms = 2000};
        h_resp r;
        if (h_request_ex(p, &req, &r) == 0) last = r.status;
        h_resp_free(&r);
        if (last == 200) return 0;
        h_sleep_ms(100);
    }
    h_diag("payd was not ready after %d ms (last /readyz status %ld)", timeout_ms, last);
    log_tail(p->log_path, 30);
    return -1;
}

int h_payd_start(h_payd *p, const h_payd_opts *o)
{
    static const h_payd_opts defaults = {0};
    if (!o) o = &defaults;
    if (h_payd_configure(p, o) != 0) return -1;
    if (!o->no_migrate) {
        const char *args[] = {"migrate", NULL};
        char out[8192];
        int rc = h_payd_cli(p, args, out, sizeof out);
        if (rc != 0) {
            h_diag("payd migrate exited %d:\n%s", rc, out);
            return -1;
        }
    }
    if (h_payd_spawn(p) != 0) return -1;
    if (o->no_wait) return 0;
    if (h_payd_wait_ready(p, o->ready_timeout_ms ? o->ready_timeout_ms : H_READY_TIMEOUT_MS) != 0 ||
        (!o->no_keys && (h_payd_apikey(p, "admin", p->admin_key, sizeof p->admin_key) != 0 ||
                         h_payd_apikey(p, "merchant", p->merchant_key, sizeof p->merchant_key) != 0))) {
        if (p->pid > 0) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            payd_reaped(p);
        }
        return -1;
    }
    if (p->admin_key[0]) snprintf(p->admin_auth, sizeof p->admin_auth, "Bearer %s", p->admin_key);
    if (p->merchant_key[0])
        snprintf(p->merchant_auth, sizeof p->merchant_auth, "Bearer %s", p->merchant_key);
    return 0;
}

int h_payd_stop(h_payd *p)
{
    if (p->pid <= 0) return p->exit_status;
    kill(p->pid, SIGTERM);
    int64_t deadline = h_now_ms() + H_STOP_TIMEOUT_MS;
    while (h_now_ms() < deadline) {
        if (!h_payd_alive(p)) {
            if (p->exit_status != 0) {
                h_diag("payd exited with status %d", p->exit_status);
                log_tail(p->log_path, 40);
            }
            return p->exit_status;
        }
        h_sleep_ms(20);
    }
    h_diag("payd (pid %d) ignored SIGTERM for %d ms; killing it", (int)p->pid, H_STOP_TIMEOUT_MS);
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    payd_reaped(p);
    log_tail(p->log_path, 40);
    p->exit_status = -1;
    return -1;
}

int h_log_contains(const h_payd *p, const char *needle)
{
    char *text = h_read_file(p->log_path, NULL);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

int h_log_wait(const h_payd *p, const char *needle, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        if (h_log_contains(p, needle)) return 1;
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    return h_log_contains(p, needle);
}

/* ------------------------------------------------------------------------ */
/* HTTP.                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct growbuf {
    char *data;
    size_t len, cap;
    int oom;
} growbuf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
    growbuf *b = user;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            return 0;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static void headers_clear(h_resp *r)
{
    for (size_t i = 0; i < r->header_count; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->header_count = 0;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *user)
{
    h_resp *r = user;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        headers_clear(r); /* a new response (after 100 Continue) */
        return n;
    }
    const char *colon = memchr(ptr, ':', n);
    if (!colon) return n;
    size_t name_len = (size_t)(colon - ptr);
    const char *v = colon + 1, *end = ptr + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    h_header *hs = realloc(r->headers, (r->header_count + 1) * sizeof *hs);
    if (!hs) return 0;
    r->headers = hs;
    hs[r->header_count].name = strndup(ptr, name_len);
    hs[r->header_count].value = strndup(v, (size_t)(end - v));
    r->header_count++;
    return n;
}

int h_request_ex(const h_payd *p, const h_req *req, h_resp *out)
{
    memset(out, 0, sizeof *out);
    if (h_init() != 0) {
        snprintf(out->error, sizeof out->error, "harness not initialized");
        return -1;
    }
    CURL *curl = curl_easy_init();
    if (!curl) {
        snprintf(out->error, sizeof out->error, "curl_easy_init failed");
        return -1;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s", p->base_url, req->path);
    struct curl_slist *hl = NULL;
    char line[1024];
    if (req->auth) {
        snprintf(line, sizeof line, "Authorization: %s", req->auth);
        hl = curl_slist_append(hl, line);
    }
    if (req->idempotency_key) {
        snprintf(line, sizeof line, "Idempotency-Key: %s", req->idempotency_key);
        hl = curl_slist_append(hl, line);
    }
    if (req->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", req->content_type);
        hl = curl_slist_append(hl, line);
    } else {
        hl = curl_slist_append(hl, "Content-Type:"); /* no default form type */
    }
    hl = curl_slist_append(hl, "Expect:");        /* no 100-continue round trip */
    for (int i = 0; req->headers && req->headers[i]; i++) hl = curl_slist_append(hl, req->headers[i]);

    growbuf body = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 30000L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, out);
    const char *method = req->method ? req->method : "GET";
    if (req->body) {
        size_t n = req->body_len ? req->body_len : strlen(req->body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body);
        if (strcmp(method, "POST") != 0) curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode cc = curl_easy_perform(curl);
    int rc = 0;
    if (cc != CURLE_OK) {
        snprintf(out->error, sizeof out->error, "%.16s %.160s: %.70s", method, url,
                 curl_easy_strerror(cc));
        rc = -1;
    } else {
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    }
    curl_easy_cleanup(curl);
    curl_slist_free_all(hl);
    if (rc == 0) {
        out->body = body.data ? body.data : strdup("");
        out->body_len = body.len;
        out->json = out->body && body.len ? json_loadb(out->body, body.len, 0, NULL) : NULL;
        out->request_id = h_resp_header(out, "Request-Id");
    } else {
        free(body.data);
        headers_clear(out);
    }
    return rc;
}

int h_request(const h_payd *p, const char *method, const char *path, const char *auth,
              const char *idempotency_key, const char *content_type, const char *body,
              h_resp *out)
{
    h_req req = {.method = method,
                 .path = path,
                 .auth = auth,
                 .idempotency_key = idempotency_key,
                 .content_type = content_type,
                 .body = body};
    return h_request_ex(p, &req, out);
}

int h_get(const h_payd *p, const char *path, const char *auth, h_resp *out)
{
    return h_request(p, "GET", path, auth, NULL, NULL, NULL, out);
}

int h_post_json(const h_payd *p, const char *path, const char *auth, const char *idem,
                const char *json_text, h_resp *out)
{
    return h_request(p, "POST", path, auth, idem, "application/json", json_text, out);
}

const char *h_resp_header(const h_resp *r, const char *name)
{
    for (size_t i = r->header_count; i-- > 0;)
        if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

static const char *err_field(const h_resp *r, const char *key)
{
    json_t *e = r->json ? json_object_get(r->json, "error") : NULL;
    return json_string_value(json_object_get(e, key));
}

const char *h_err_code(const h_resp *r)
{
    return err_field(r, "code");
}

const char *h_err_type(const h_resp *r)
{
    return err_field(r, "type");
}

const char *h_err_message(const h_resp *r)
{
    return err_field(r, "message");
}

const char *h_json_str(const h_resp *r, const char *key)
{
    return r->json ? json_string_value(json_object_get(r->json, key)) : NULL;
}

void h_resp_free(h_resp *r)
{
    free(r->body);
    json_decref(r->json);
    headers_clear(r);
    memset(r, 0, sizeof *r);
}

/* ------------------------------------------------------------------------ */
/* Auth.                                                                    */
/* ------------------------------------------------------------------------ */

const char *h_jwt_secret(void)
{
    return H_JWT_SECRET;
}

/* base64url without padding into a malloc'd string. */
static char *b64url(const unsigned char *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (!out) return NULL;
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    while (n > 0 && out[n - 1] == '=') n--;
    out[n] = '\0';
    for (int i = 0; i < n; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
    }
    return out;
}

char *h_jwt_hs256_claims(const char *secret, const char *claims_json)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *h64 = b64url((const unsigned char *)header, strlen(header));
    char *c64 = b64url((const unsigned char *)claims_json, strlen(claims_json));
    char *out = NULL;
    if (h64 && c64) {
        size_t signing_len = strlen(h64) + 1 + strlen(c64);
        char *signing = malloc(signing_len + 1);
        if (signing) {
            snprintf(signing, signing_len + 1, "%s.%s", h64, c64);
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned int mac_len = 0;
            HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)signing,
                 signing_len, mac, &mac_len);
            char *s64 = b64url(mac, mac_len);
            if (s64) {
                size_t n = signing_len + 1 + strlen(s64) + 1;
                out = malloc(n);
                if (out) snprintf(out, n, "%s.%s", signing, s64);
            }
            free(s64);
            free(signing);
        }
    }
    free(h64);
    free(c64);
    return out;
}

char *h_jwt_hs256(const char *secret, const char *sub, long long exp)
{
    json_t *claims = json_object();
    if (sub) json_object_set_new(claims, "sub", json_string(sub));
    json_object_set_new(claims, "exp", json_integer(exp));
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!text) return NULL;
    char *jwt = h_jwt_hs256_claims(secret, text);
    free(text);
    return jwt;
}

/* ------------------------------------------------------------------------ */
/* Reading answers and asserting on them.                                   */
/* ------------------------------------------------------------------------ */

json_t *h_jpath(json_t *v, const char *path)
{
    char key[128];
    while (v && path && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof key) return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        if (json_is_array(v)) {
            char *end = NULL;
            long i = strtol(key, &end, 10);
            v = end && *end == '\0' && i >= 0 ? json_array_get(v, (size_t)i) : NULL;
        } else {
            v = json_object_get(v, key);
        }
        path += n;
        if (*path == '.') path++;
    }
    return v;
}

const char *h_rstr(const h_resp *r, const char *path)
{
    return json_string_value(h_jpath(r->json, path));
}

long long h_rint(const h_resp *r, const char *path)
{
    json_t *v = h_jpath(r->json, path);
    return json_is_integer(v) ? (long long)json_integer_value(v) : LLONG_MIN;
}

int h_rbool(const h_resp *r, const char *path)
{
    json_t *v = h_jpath(r->json, path);
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

void h_expect_status_at(const h_resp *r, long want, const char *file, int line)
{
    if (r->status != want) {
        print_error("expected HTTP %ld, got %ld: %s\n", want, r->status, r->body ? r->body : r->error);
        _fail(file, line);
    }
}

void h_expect_str_at(const char *got, const char *want, const char *what, const char *file, int line)
{
    if (!got || strcmp(got, want) != 0) {
        print_error("%s: expected \"%s\", got %s%s%s\n", what, want, got ? "\"" : "", got ? got : "(null)",
                    got ? "\"" : "");
        _fail(file, line);
    }
}

void h_expect_contains_at(const char *haystack, const char *needle, const char *what, int want, const char *file,
                          int line)
{
    if (haystack == NULL || (strstr(haystack, needle) != NULL) != want) {
        print_error("%s %s \"%s\":\n%s\n", what, want ? "does not contain" : "contains", needle,
                    haystack ? haystack : "(null)");
        _fail(file, line);
    }
}

void h_expect_error_at(const h_resp *r, long status, const char *type, const char *code,
                       const char *param, const char *file, int line)
{
    h_expect_status_at(r, status, file, line);
    h_expect_str_at(h_err_type(r), type, "error.type", file, line);
    h_expect_str_at(h_err_code(r), code, "error.code", file, line);
    if (param) h_expect_str_at(h_rstr(r, "error.param"), param, "error.param", file, line);
    if (!h_rstr(r, "error.request_id")) {
        print_error("error without request_id: %s\n", r->body ? r->body : "");
        _fail(file, line);
    }
}

long long h_sql_intf(const h_payd *p, const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    return h_sql_int(p->db_url, q, LLONG_MIN);
}

void h_ledger(const h_payd *p, const char *pay_id, const char *type, long long *count, long long *sum)
{
    *count = h_sql_intf(p, "SELECT count(*) FROM ledger WHERE payment_id = '%s' AND entry_type = '%s'", pay_id, type);
    *sum = h_sql_intf(p, "SELECT coalesce(sum(amount), 0) FROM ledger WHERE payment_id = '%s' AND entry_type = '%s'",
                      pay_id, type);
}

void h_expect_ledger_at(const h_payd *p, const char *pay_id, const char *type, long long count, long long sum,
                        const char *file, int line)
{
    long long got_count, got_sum;
    h_ledger(p, pay_id, type, &got_count, &got_sum);
    if (got_count != count || got_sum != sum) {
        print_error("ledger %s of %s: expected %lld rows summing to %lld, got %lld summing to %lld\n", type, pay_id,
                    count, sum, got_count, got_sum);
        _fail(file, line);
    }
}

size_t h_events_of(h_payd *p, const char *object_id, const char *type)
{
    char path[256];
    snprintf(path, sizeof path, "/v1/events?object_id=%s&type=%s&limit=100", object_id, type);
    h_resp r;
    assert_int_equal(h_get(p, path, p->merchant_auth, &r), 0);
    h_expect_status_at(&r, 200, __FILE__, __LINE__);
    json_t *data = h_jpath(r.json, "data");
    assert_true(json_is_array(data));
    size_t n = json_array_size(data);
    for (size_t i = 0; i < n; i++) {
        h_expect_str_at(json_string_value(h_jpath(json_array_get(data, i), "type")), type, "event type", __FILE__, __LINE__);
        h_expect_str_at(json_string_value(h_jpath(json_array_get(data, i), "object_id")), object_id, "event object",
                        __FILE__, __LINE__);
    }
    h_resp_free(&r);
    return n;
}

void h_post_ok(const h_payd *p, const char *path, const char *auth, const char *json_text, h_resp *r)
{
    assert_int_equal(h_post_json(p, path, auth, NULL, json_text, r), 0);
}

void h_get_ok(const h_payd *p, const char *path, const char *auth, h_resp *r)
{
    assert_int_equal(h_get(p, path, auth, r), 0);
}

size_t h_list_walk(const h_payd *p, const char *path, const char *auth, char ids[][64], size_t max, int *pages)
{
    size_t n = 0;
    char after[64] = "";
    *pages = 0;
    for (int guard = 0; guard < 20; guard++) {
        char page[640];
        snprintf(page, sizeof page, "%s&limit=2%s%s", path, after[0] ? "&starting_after=" : "", after);
        h_resp r;
        h_get_ok(p, page, auth, &r);
        h_expect_status_at(&r, 200, __FILE__, __LINE__);
        json_t *data = h_jpath(r.json, "data");
        assert_true(json_is_array(data));
        assert_true(json_array_size(data) <= 2);
        (*pages)++;
        for (size_t i = 0; i < json_array_size(data) && n < max; i++)
            snprintf(ids[n++], 64, "%s", json_string_value(h_jpath(json_array_get(data, i), "id")));
        int more = h_rbool(&r, "has_more");
        assert_true(more == 0 || more == 1);
        if (more) assert_int_equal(json_array_size(data), 2);
        h_resp_free(&r);
        if (!more) return n;
        snprintf(after, sizeof after, "%s", ids[n - 1]);
    }
    fail_msg("pagination of %s did not end", path);
    return n;
}

void h_create(const h_payd *p, const char *path, const char *auth, const char *json_text, long status,
              char id[64])
{
    h_resp r;
    h_post_ok(p, path, auth, json_text, &r);
    h_expect_status_at(&r, status, __FILE__, __LINE__);
    assert_non_null(h_rstr(&r, "id"));
    snprintf(id, 64, "%s", h_rstr(&r, "id"));
    h_resp_free(&r);
}

void h_status_of(const h_payd *p, const char *kind, const char *id, char out[40])
{
    char path[160];
    h_resp r;
    snprintf(path, sizeof path, "/v1/%s/%s", kind, id);
    h_get_ok(p, path, p->admin_auth, &r);
    h_expect_status_at(&r, 200, __FILE__, __LINE__);
    snprintf(out, 40, "%s", h_rstr(&r, "status") ? h_rstr(&r, "status") : "(none)");
    h_resp_free(&r);
}

int h_wait_status(const h_payd *p, const char *kind, const char *id, const char *want, long timeout_ms,
                  char last[40])
{
    int64_t deadline = h_now_ms() + timeout_ms;
    do {
        h_status_of(p, kind, id, last);
        if (strcmp(last, want) == 0) return 1;
        h_sleep_ms(100);
    } while (h_now_ms() < deadline);
    return 0;
}

void h_expect_reaches_at(const h_payd *p, const char *kind, const char *id, const char *want, long timeout_ms,
                         const char *file, int line)
{
    char last[40];
    if (!h_wait_status(p, kind, id, want, timeout_ms, last)) {
        print_error("%s %s stayed %s, expected %s within %ld ms\n", kind, id, last, want, timeout_ms);
        _fail(file, line);
    }
}

void h_mock_signature(const char *secret, long long t, const char *body, char *out, size_t len)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    size_t n = (size_t)snprintf(NULL, 0, "%lld.%s", t, body);
    char *signed_text = malloc(n + 1);
    assert_non_null(signed_text);
    snprintf(signed_text, n + 1, "%lld.%s", t, body);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)signed_text, n, mac, &mac_len);
    free(signed_text);
    for (unsigned int i = 0; i < mac_len; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(out, len, "Mock-Signature: t=%lld,v1=%s", t, hex);
}

void h_post_webhook(const h_payd *p, const char *gateway, const char *header, const char *body, h_resp *r)
{
    char path[128];
    const char *headers[] = {header, NULL};
    snprintf(path, sizeof path, "/v1/webhooks/%s", gateway);
    h_req req = {.method = "POST", .path = path, .content_type = "application/json", .body = body,
                 .headers = header ? headers : NULL};
    assert_int_equal(h_request_ex(p, &req, r), 0);
}

/* ------------------------------------------------------------------------ */
/* Fake providers.                                                          */
/* ------------------------------------------------------------------------ */

pid_t h_fake_spawn(const char *const argv[], const char *const env[], char *line, size_t len)
{
    int fds[2];
    if (len == 0 || pipe(fds) != 0) return -1;
    line[0] = '\0';
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        for (size_t i = 0; env && env[i]; i++) putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    int64_t deadline = h_now_ms() + 10000;
    while (n < len - 1 && !strchr(line, '\n') && h_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - h_now_ms())) <= 0) break;
        ssize_t got = read(fds[0], line + n, len - 1 - n);
        if (got <= 0) break;
        n += (size_t)got;
        line[n] = '\0';
    }
    close(fds[0]);
    char *nl = strchr(line, '\n');
    if (nl == NULL) {
        h_diag("%s did not start: \"%s\"", argv[0], line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    *nl = '\0';
    return pid;
}

int h_fake_stop(pid_t *pid)
{
    int status = 0;
    if (*pid <= 0) return 0;
    kill(*pid, SIGTERM);
    int64_t deadline = h_now_ms() + 5000;
    while (h_now_ms() < deadline) {
        if (waitpid(*pid, &status, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        h_sleep_ms(20);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
    return -1;
}

void h_fake_call(const h_payd *fake, const char *method, const char *path, const char *body,
                 const char *const *headers, h_resp *r)
{
    h_req req = {.method = method, .path = path, .body = body,
                 .content_type = body ? "application/json" : NULL, .headers = headers};
    assert_int_equal(h_request_ex(fake, &req, r), 0);
}

void h_fake_next(const h_payd *fake, const char *json_text)
{
    h_resp r;
    h_fake_call(fake, "POST", "/_fake/next", json_text, NULL, &r);
    h_expect_status_at(&r, 200, __FILE__, __LINE__);
    h_resp_free(&r);
}

json_t *h_fake_requests(const h_payd *fake, const char *method, const char *path)
{
    char q[512];
    h_resp r;
    snprintf(q, sizeof q, "/_fake/requests?method=%s&path=%s", method, path);
    h_fake_call(fake, "GET", q, NULL, NULL, &r);
    h_expect_status_at(&r, 200, __FILE__, __LINE__);
    json_t *data = json_incref(h_jpath(r.json, "data"));
    h_resp_free(&r);
    assert_true(json_is_array(data));
    return data;
}
