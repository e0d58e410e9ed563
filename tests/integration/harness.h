/*
 * harness.h - the integration test harness: a real payd, a real PostgreSQL,
 * a real Redis, and an HTTP client.
 *
 * scripts/test.sh starts a private PostgreSQL and Redis and exports where
 * they are (PAYD_TEST_PG_URL, PAYD_TEST_REDIS_URL, PAYD_BUILD, ...); the
 * harness reads those, creates a fresh database per payd, writes a config,
 * runs `payd migrate`, starts `payd serve` as a child process, waits until
 * it is ready and creates an admin and a merchant API key.
 *
 * A typical test file:
 *
 *     static h_payd srv;
 *     static int setup(void **state) {
 *         h_payd_opts o = {.extra = "[gateway.main]\nmodule = mock\n"};
 *         return h_group_start(state, &srv, &o);
 *     }
 *     static void test_x(void **state) {
 *         h_resp r;
 *         assert_int_equal(h_get(&srv, "/healthz", NULL, &r), 0);
 *         assert_int_equal(r.status, 200);
 *         h_resp_free(&r);
 *     }
 *     ...  cmocka_run_group_tests(tests, setup, h_group_stop);
 *
 * Conventions:
 *   - Functions return 0 on success and -1 on failure unless stated; on
 *     failure they print a "# "-prefixed diagnostic to stderr, so a test can
 *     simply assert_int_equal(..., 0).
 *   - Every wait is bounded in time.
 *   - h_payd_start prints "# payd log: PATH" to stdout; scripts/test.sh
 *     prints the tail of that log when a test fails.
 *   - Scratch directories live under $PAYD_TEST_TMP (removed by test.sh)
 *     or, when run by hand, under ${TMPDIR:-/tmp}, and are kept.
 *   - Every payd the harness started is killed at process exit if a test
 *     failed before stopping it, and dies with the test process (it is
 *     started with PR_SET_PDEATHSIG).
 *
 * Threads: h_request and its wrappers, h_sql*, h_run*, h_jwt_hs256 and
 * h_log_contains may be called from many threads at once (each request
 * uses its own CURL handle). Start and stop payd from one thread.
 */
#ifndef PAYD_TEST_HARNESS_H
#define PAYD_TEST_HARNESS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------ */
/* Setup and environment.                                                   */
/* ------------------------------------------------------------------------ */

/*
 * One-time process setup: curl_global_init, PAYD_TEST_JWT_SECRET, the exit
 * handler that kills leftover payd processes. Called by every harness entry
 * point, so calling it is optional; call it from main() before starting
 * threads. Returns 0, or -1 when the environment test.sh provides is
 * missing (the message says which variable).
 */
int h_init(void);

/* A required environment variable, or NULL (with a diagnostic). */
const char *h_env(const char *name);

/* Absolute paths: the payd binary ($PAYD_BUILD/payd), the repo root. */
const char *h_payd_bin(void);
const char *h_root(void);

/* $PAYD_BUILD/testmodules/NAME.so into `out`. Returns out. */
char *h_testmodule(char *out, size_t len, const char *name);

/* Creates a new empty scratch directory; its path goes into out (PATH_MAX). */
int h_tmpdir(char *out, size_t len);

/* A TCP port on 127.0.0.1 that was free a moment ago, or -1. */
int h_free_port(void);

/* Writes `text` to `path` (truncating). */
int h_write_file(const char *path, const char *text);
/* Reads a whole file, NUL-terminated; malloc'd (caller frees), or NULL. */
char *h_read_file(const char *path, size_t *len);

/* Sleeps `ms` milliseconds. */
void h_sleep_ms(long ms);
/* Monotonic milliseconds, for deadlines. */
int64_t h_now_ms(void);

/* ------------------------------------------------------------------------ */
/* Databases.                                                               */
/* ------------------------------------------------------------------------ */

/*
 * (Re)creates database `name` on the cluster of $PAYD_TEST_PG_URL
 * (DROP DATABASE IF EXISTS ... WITH (FORCE); CREATE DATABASE) and writes its
 * URL into url_out. `name` must be [a-z0-9_], at most 63 characters.
 */
int h_db_create(const char *name, char *url_out, size_t len);

/* Runs `sql` on `db_url` (a fresh connection). Returns the result (caller
 * PQclear()s it; any status, check PQresultStatus) or NULL when the
 * connection failed. */
PGresult *h_sql(const char *db_url, const char *sql);
/* Runs `sql` and returns 0 when it succeeded (COMMAND_OK or TUPLES_OK). */
int h_sql_exec(const char *db_url, const char *sql);
/* The first column of the first row as a malloc'd string (caller frees);
 * NULL when the query failed, returned no row, or the value is NULL. */
char *h_sql_value(const char *db_url, const char *sql);
/* The first value as an integer; `fallback` when h_sql_value is NULL. */
long long h_sql_int(const char *db_url, const char *sql, long long fallback);

/* ------------------------------------------------------------------------ */
/* Running commands.                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Runs argv[0] (a path; no PATH search) with argv, stdin from /dev/null,
 * stdout and stderr captured together into `out` (NUL-terminated, truncated
 * to len-1; out may be NULL). Kills it after 60 s. Returns the exit code,
 * 128+N when killed by signal N, or -1 when it could not run or timed out.
 */
int h_run(const char *const argv[], char *out, size_t len);
/* The same through /bin/sh -c `cmdline`. */
int h_sh(const char *cmdline, char *out, size_t len);
/* The general form: stdout to `out`, stderr to `err` (err NULL: merged into
 * out), killed after timeout_ms. */
int h_run_ex(const char *const argv[], char *out, size_t out_len, char *err, size_t err_len,
             long timeout_ms);

/* ------------------------------------------------------------------------ */
/* payd.                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct h_payd_opts {
    /* Database: `db_url` is used as is; otherwise `db_name` (or a unique
     * generated name when NULL) is created fresh with h_db_create. */
    const char *db_url;
    const char *db_name;
    int threads;              /* [server] threads; 0 = 8 */
    int pool;                 /* [database] pool; 0 = 8 */
    long max_body_bytes;      /* [server] max_body_bytes; 0 = payd's default */
    const char *log_level;    /* NULL = "debug" */
    int no_redis;             /* omit the [redis] section */
    const char *server_extra; /* more "key = value\n" lines inside [server] */
    const char *extra;        /* appended verbatim: [gateway.*], [routing], ... */
    /* Start modes. */
    int no_migrate;           /* do not run payd migrate first */
    int no_wait;              /* return right after fork/exec: no readiness
                                 wait, no API keys (h_payd_wait_ready later) */
    int no_keys;              /* wait for ready, but create no API keys */
    int ready_timeout_ms;     /* 0 = 20000 */
} h_payd_opts;

typedef struct h_payd {
    pid_t pid;                /* 0 when not running */
    int port;
    int exit_status;          /* set by h_payd_stop / h_payd_alive */
    char base_url[64];        /* http://127.0.0.1:PORT */
    char dir[PATH_MAX];       /* scratch dir with payd.conf and payd.log */
    char conf_path[PATH_MAX + 16];
    char log_path[PATH_MAX + 16];
    char db_url[512];
    char db_name[64];
    /* Created by h_payd_start unless no_wait/no_keys. */
    char admin_key[160];
    char merchant_key[160];
    char admin_auth[176];     /* "Bearer <admin_key>": pass as `auth` */
    char merchant_auth[176];  /* "Bearer <merchant_key>" */
} h_payd;

/*
 * Writes the config into a new scratch dir (p->conf_path) without starting
 * anything: for check-config and CLI tests. Picks the port and database as
 * h_payd_start does. p is zeroed first.
 */
int h_payd_configure(h_payd *p, const h_payd_opts *o);

/*
 * h_payd_configure, then `payd migrate`, then `payd serve` in the
 * background (output to p->log_path), then waits up to ready_timeout_ms for
 * GET /readyz to answer 200 and creates the two API keys. On failure the
 * child (if any) is killed, the log tail is printed, and -1 is returned.
 * o may be NULL for all defaults.
 */
int h_payd_start(h_payd *p, const h_payd_opts *o);

/* cmocka group fixtures for a file whose tests share one payd: h_group_start
 * is h_payd_start that also keeps p in *state, and h_group_stop stops it
 * (h_payd_stop); the group fails (-1) unless payd exited cleanly, so a
 * sanitizer report in payd fails the file. */
int h_group_start(void **state, h_payd *p, const h_payd_opts *o);
int h_group_stop(void **state);

/* Starts `payd serve` on an already configured p (after h_payd_configure or
 * a previous h_payd_stop). No migrate, no wait. */
int h_payd_spawn(h_payd *p);

/* Polls GET /readyz until 200, for at most timeout_ms. Fails early when
 * payd exits. */
int h_payd_wait_ready(h_payd *p, int timeout_ms);

/* Creates an API key with `payd apikey create --role ROLE`; the key goes to
 * key_out. */
int h_payd_apikey(h_payd *p, const char *role, char *key_out, size_t len);

/*
 * Runs `payd ARGS... -c p->conf_path` (args NULL-terminated, may be empty),
 * output captured like h_run. Returns its exit code.
 */
int h_payd_cli(h_payd *p, const char *const args[], char *out, size_t len);

/* 1 while the child runs; 0 once it exited (p->exit_status is then set). */
int h_payd_alive(h_payd *p);

/*
 * SIGTERM, then waits up to 15 s. Returns the exit status (0 for a clean
 * exit; nonzero after a sanitizer report), 128+N when killed by signal N,
 * or -1 when it had to be SIGKILLed. Stopping a payd that is not running
 * returns the status it exited with. Safe to call twice.
 */
int h_payd_stop(h_payd *p);

/* 1 when payd's log contains `needle`, 0 otherwise. */
int h_log_contains(const h_payd *p, const char *needle);
/* Polls the log until it contains needle, at most timeout_ms. 1 or 0. */
int h_log_wait(const h_payd *p, const char *needle, int timeout_ms);

/* ------------------------------------------------------------------------ */
/* HTTP.                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct h_header {
    char *name;
    char *value;
} h_header;

typedef struct h_resp {
    long status;              /* 0 when no response arrived */
    char *body;               /* malloc'd, NUL-terminated, never NULL after a
                                 response */
    size_t body_len;
    json_t *json;             /* parsed body, or NULL when it is not JSON */
    h_header *headers;        /* response headers in order */
    size_t header_count;
    const char *request_id;   /* the Request-Id header, or NULL */
    char error[256];          /* the transport error when status is 0 */
} h_resp;

/* One request; everything but method and path may be NULL/0. */
typedef struct h_req {
    const char *method;
    const char *path;         /* appended to p->base_url ("/v1/...") */
    const char *auth;         /* Authorization value, e.g. p->admin_auth */
    const char *idempotency_key;
    const char *content_type; /* NULL: no Content-Type header at all */
    const char *body;
    size_t body_len;          /* 0 with body set: strlen(body) */
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated */
    long timeout_ms;          /* 0 = 30000 */
} h_req;

/* Performs `req` against p. Returns 0 when a response arrived (any status)
 * and -1 otherwise (out->error says why). Always fill `out`; free it with
 * h_resp_free either way. Thread-safe. */
int h_request_ex(const h_payd *p, const h_req *req, h_resp *out);

int h_request(const h_payd *p, const char *method, const char *path, const char *auth,
              const char *idempotency_key, const char *content_type, const char *body,
              h_resp *out);
int h_get(const h_payd *p, const char *path, const char *auth, h_resp *out);
/* POST with Content-Type: application/json. */
int h_post_json(const h_payd *p, const char *path, const char *auth, const char *idem,
                const char *json_text, h_resp *out);

/* Case-insensitive header lookup (the last occurrence); NULL when absent. */
const char *h_resp_header(const h_resp *r, const char *name);

/* error.code / error.type / error.message of a JSON error reply, or NULL. */
const char *h_err_code(const h_resp *r);
const char *h_err_type(const h_resp *r);
const char *h_err_message(const h_resp *r);
/* A string member of the top-level JSON object, or NULL. */
const char *h_json_str(const h_resp *r, const char *key);

void h_resp_free(h_resp *r);

/* ------------------------------------------------------------------------ */
/* Auth.                                                                    */
/* ------------------------------------------------------------------------ */

/* The [auth] jwt_secret every harness payd uses (PAYD_TEST_JWT_SECRET). */
const char *h_jwt_secret(void);

/* An HS256 JWT {"sub": sub, "exp": exp} (exp unix seconds; sub may be NULL
 * to omit it). malloc'd; caller frees. */
char *h_jwt_hs256(const char *secret, const char *sub, long long exp);
/* An HS256 JWT with any claims, given as a JSON object text. */
char *h_jwt_hs256_claims(const char *secret, const char *claims_json);


/* ------------------------------------------------------------------------ */
/* Reading answers and asserting on them (cmocka).                          */
/* ------------------------------------------------------------------------ */

/* The value at a dotted path ("error.code", "data.0.id") or NULL. */
json_t *h_jpath(json_t *v, const char *path);
/* A response's string / integer / boolean at `path`: NULL, LLONG_MIN, -1
 * when absent or of another type. */
const char *h_rstr(const h_resp *r, const char *path);
long long h_rint(const h_resp *r, const char *path);
int h_rbool(const h_resp *r, const char *path);

/* Fail the running cmocka test, printing what was expected and got. */
void h_expect_status_at(const h_resp *r, long want, const char *file, int line);
void h_expect_str_at(const char *got, const char *want, const char *what, const char *file, int line);
/* `needle` occurs in `haystack` (want 1) or does not (want 0); haystack,
 * named `what` in the failure, must not be NULL. */
void h_expect_contains_at(const char *haystack, const char *needle, const char *what, int want, const char *file,
                          int line);
/* The one error shape: status, type, code, (unless NULL) param, request_id. */
void h_expect_error_at(const h_resp *r, long status, const char *type, const char *code,
                       const char *param, const char *file, int line);

/* h_sql_int with a printf-style query on p's database (LLONG_MIN when NULL). */
long long h_sql_intf(const h_payd *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ledger rows of one type for a payment: their count and sum. */
void h_ledger(const h_payd *p, const char *pay_id, const char *type, long long *count, long long *sum);
/* Fail the running test unless h_ledger finds `count` rows summing to `sum`. */
void h_expect_ledger_at(const h_payd *p, const char *pay_id, const char *type, long long count, long long sum,
                        const char *file, int line);
/* Events of `type` about `object_id`, counted through GET /v1/events (the
 * merchant key); asserts each listed event is of that type and object. */
size_t h_events_of(h_payd *p, const char *object_id, const char *type);

/* h_post_json (no idempotency key) and h_get that assert an answer arrived,
 * whatever its status: for tests that then check the status themselves. */
void h_post_ok(const h_payd *p, const char *path, const char *auth, const char *json_text, h_resp *r);
void h_get_ok(const h_payd *p, const char *path, const char *auth, h_resp *r);

/*
 * Walks a list to its end: GET `path` (which already has its "?query")
 * with limit 2, then with starting_after the last id served, while
 * has_more. Asserts each page is 200, a list of at most 2, and full when
 * more follow; copies the ids in the order served into ids (at most max)
 * and the number of pages into *pages. Returns how many ids it copied.
 */
size_t h_list_walk(const h_payd *p, const char *path, const char *auth, char ids[][64], size_t max, int *pages);

/* POST `json_text` to `path` by `auth`, expect HTTP `status` and a string
 * "id", and copy that id into id (64 bytes): creating an order, a payment,
 * a refund, a customer. */
void h_create(const h_payd *p, const char *path, const char *auth, const char *json_text, long status,
              char id[64]);

/* The "status" of GET /v1/<kind>/<id> ("orders", "payments", "refunds";
 * the admin key, which must answer 200) into out, "(none)" when absent. */
void h_status_of(const h_payd *p, const char *kind, const char *id, char out[40]);

/* Polls h_status_of every 100 ms until it is `want`, for at most
 * timeout_ms. 1 when reached; 0 otherwise, the last status in `last`. */
int h_wait_status(const h_payd *p, const char *kind, const char *id, const char *want, long timeout_ms,
                  char last[40]);
/* h_wait_status that fails the running test, naming the last status. */
void h_expect_reaches_at(const h_payd *p, const char *kind, const char *id, const char *want, long timeout_ms,
                         const char *file, int line);

/* The header line the mock gateway signs its webhooks with, into out:
 * "Mock-Signature: t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>". */
void h_mock_signature(const char *secret, long long t, const char *body, char *out, size_t len);

/* POST `body` (JSON) to /v1/webhooks/<gateway> with the extra header line
 * `header` (NULL: none); asserts an answer arrived. */
void h_post_webhook(const h_payd *p, const char *gateway, const char *header, const char *body, h_resp *r);

/* ------------------------------------------------------------------------ */
/* Fake providers (tests/fakes) as child processes.                         */
/* ------------------------------------------------------------------------ */

/*
 * Starts argv[0] (a path; no PATH search) with argv, after setting the
 * "NAME=value" entries of `env` (NULL-terminated, may be NULL) in the
 * child. Its stdout is read until the first line (at most 10 s), which is
 * copied into `line` (NUL-terminated, without the newline): fakes announce
 * "... listening on 127.0.0.1:PORT" there. The child dies with the test
 * process (PR_SET_PDEATHSIG). Returns its pid, or -1 (with a diagnostic,
 * and the child killed) when it could not start or said nothing.
 */
pid_t h_fake_spawn(const char *const argv[], const char *const env[], char *line, size_t len);

/* SIGTERM, then SIGKILL after 5 s; *pid becomes 0 (a pid <= 0 is left
 * alone and 0 returned). Returns the exit status, 128+N when killed by
 * signal N, or -1 when it had to be SIGKILLed. */
int h_fake_stop(pid_t *pid);

/* A control or API request to a fake (only fake->base_url is used); asserts
 * an answer arrived. The body, if any, is sent as application/json. */
void h_fake_call(const h_payd *fake, const char *method, const char *path, const char *body,
                 const char *const *headers, h_resp *r);

/* POST /_fake/next with `json_text` (the fault or action for the next API
 * request); expects 200. */
void h_fake_next(const h_payd *fake, const char *json_text);

/* The fake's records of `method` `path` ("" for all) from
 * GET /_fake/requests: a new JSON array (caller decrefs); asserts 200. */
json_t *h_fake_requests(const h_payd *fake, const char *method, const char *path);

#define EXPECT_STATUS(r, want) h_expect_status_at((r), (want), __FILE__, __LINE__)
#define EXPECT_STR(got, want) h_expect_str_at((got), (want), #got, __FILE__, __LINE__)
#define EXPECT_CONTAINS(haystack, needle) \
    h_expect_contains_at((haystack), (needle), #haystack, 1, __FILE__, __LINE__)
#define EXPECT_NOT_CONTAINS(haystack, needle) \
    h_expect_contains_at((haystack), (needle), #haystack, 0, __FILE__, __LINE__)
#define EXPECT_ERROR(r, status, type, code, param) \
    h_expect_error_at((r), (status), (type), (code), (param), __FILE__, __LINE__)
/* GET `path`, or POST `json_text` to it, by `auth`: the answer must be
 * the one error shape (EXPECT_ERROR's arguments). */
#define EXPECT_GET_ERROR(p, path, auth, status, type, code, param)       \
    do {                                                                 \
        h_resp r_;                                                       \
        h_get_ok((p), (path), (auth), &r_);                              \
        EXPECT_ERROR(&r_, (status), (type), (code), (param));            \
        h_resp_free(&r_);                                                \
    } while (0)
#define EXPECT_POST_ERROR(p, path, auth, json_text, status, type, code, param) \
    do {                                                                 \
        h_resp r_;                                                       \
        h_post_ok((p), (path), (auth), (json_text), &r_);                \
        EXPECT_ERROR(&r_, (status), (type), (code), (param));            \
        h_resp_free(&r_);                                                \
    } while (0)
/* GET /v1/<kind>/<id> reaches status `want` within timeout_ms. */
#define EXPECT_REACHES(p, kind, id, want, timeout_ms) \
    h_expect_reaches_at((p), (kind), (id), (want), (timeout_ms), __FILE__, __LINE__)
/* The ledger holds exactly `count` rows of `type` for payment `pay_id`, and
 * their amounts sum to `sum`. */
#define EXPECT_LEDGER(p, pay_id, type, count, sum) \
    h_expect_ledger_at((p), (pay_id), (type), (count), (sum), __FILE__, __LINE__)

#endif
