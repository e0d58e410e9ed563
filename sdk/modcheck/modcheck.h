/*
 * modcheck.h - payd-modcheck, the module conformance runner.
 *
 * payd-modcheck links the server's own objects (everything but main.o), so
 * it reads the config with config_load() and loads the module with
 * modules_load() and host_fill(): the module sees exactly the host payd
 * gives it. Its files:
 *
 *   modcheck.c      command line, the order of the phases, exit code
 *   mc_report.c     the check table, PASS/FAIL lines and the --json report
 *   mc_abi.c        the descriptor, capabilities and exported symbols
 *   mc_guard.c      arena ownership of outputs, card numbers and secrets in
 *                   outputs and in the captured log
 *   mc_scenarios.c  gateway scenarios, alone and from many threads
 *   mc_webhook.c    the webhook_tamper scenario and its signed samples
 *   mc_blackhole.c  a server that never answers, for the timeout check
 *   mc_approve.c    the buyer's step of a redirect gateway (--approve-url)
 *
 * Usage is in modcheck.c and sdk/README.md ("Checking a module").
 */
#ifndef PAYD_MODCHECK_H
#define PAYD_MODCHECK_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "modules.h"
#include "redis.h"

#define MC_VERSION "1.0"
#define MC_MAX_HEADERS 16
#define MC_MAX_THREADS 256

/* ------------------------------------------------------------------------ */
/* Checks (mc_report.c)                                                     */
/* ------------------------------------------------------------------------ */

enum mc_status { MC_PENDING = 0, MC_PASS, MC_FAIL, MC_WARN, MC_SKIP };

/* Every check, in report order. Names are in mc_report.c. */
enum mc_check_id {
    MC_CONFIG,
    MC_LOAD,
    MC_ABI_MAJOR,
    MC_ABI_STRUCT_SIZE,
    MC_ABI_KIND,
    MC_ABI_CAPS,
    MC_SYMBOLS,
    MC_INIT_FINI,
    MC_CREATE_RETRIEVE,
    MC_IDEMPOTENCY,
    MC_DECLINE,
    MC_TIMEOUT,
    MC_REFUND_OVER,
    MC_CAPTURE_LATER,
    MC_WEBHOOK_TAMPER,
    MC_ARENA,
    MC_NO_SECRETS,
    MC_THREADS,
    MC_CHECK_COUNT
};

const char *mc_check_name(int id);
int mc_check_status(int id);

/* Sets a check's status and detail, replacing what was there. */
void mc_check_set(int id, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records one failure of a check. Thread-safe. The first message is kept
 * as the detail; later ones are counted ("and N more"). */
void mc_check_fail(int id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets PASS with `fmt` unless the check already has a status. */
void mc_check_pass(int id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Turns every check still pending into SKIP with `why`. */
void mc_check_skip_pending(const char *why);

/* Where the human-readable lines go (stdout, or stderr with --json). */
void mc_report_open(int json);
/* One-line headline and notes printed before the checks. */
void mc_report_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints every check that got a status since the last call. */
void mc_report_flush(void);
/* Prints the summary (and the JSON report). Returns the exit code: 0 when
 * no check failed, 1 otherwise. */
int mc_report_finish(int json, const char *const *facts);

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct mc_opts {
    const char *config_path;
    const char *section;          /* gateway.NAME or notifier.NAME */
    const char *module_dir;       /* NULL: as payd: [server] module_dir or BIN/modules */
    int json;
    int threads;                  /* concurrent scenario runners, default 16 */
    int init_cycles;              /* init/fini repetitions, default 100 */
    long timeout_ms;              /* host HTTP timeout for the timeout check */
    const char *log_path;         /* where module output is captured */
    int keep_log;
    const char *ok_method;
    const char *decline_method;
    const char *timeout_key;
    const char *timeout_method;
    const char *approve_url;      /* redirect gateways: the buyer's step, a GET */
    const char *webhook_sample;
    const char *webhook_headers[MC_MAX_HEADERS];
    int webhook_header_count;
    int64_t amount;
    const char *currency;
} mc_opts;

typedef struct mc_ctx {
    const mc_opts *o;
    config cfg;
    int cfg_loaded;
    registry reg;
    int reg_loaded;
    redis *redis;
    int host_inits;               /* host_global_init calls to undo */
    char module_path[PATH_MAX];
    const char *instance_name;    /* NAME of [gateway.NAME] */
    int kind;                     /* PAYD_KIND_* from the section prefix */
    instance *inst;               /* the instance under test, once loaded */
    instance *timeout_inst;       /* its twin aimed at the black hole */
    char timeout_section[128];
    /* Values that must never show up in logs or outputs. */
    char **secrets;
    size_t secret_count;
    /* The webhook sample (exact bytes). */
    char *sample;
    size_t sample_len;
    char run_id[16];
} mc_ctx;

/* ------------------------------------------------------------------------ */
/* mc_abi.c                                                                 */
/* ------------------------------------------------------------------------ */

/* Opens the module file itself (as the loader does) and judges abi.major,
 * abi.struct_size, abi.kind, abi.caps and symbols. Returns 0 when the
 * descriptor could be read. */
int mc_abi_inspect(mc_ctx *c);
/* Attaches the loader's refusal messages to the abi.* checks they concern. */
void mc_abi_loader_errors(const config_errors *errs, size_t from);
void mc_abi_close(void);

/* ------------------------------------------------------------------------ */
/* mc_guard.c                                                               */
/* ------------------------------------------------------------------------ */

/* Checks that modcheck understands server/arena.c's layout. 0 or -1. */
int mc_guard_arena_selftest(void);
/*
 * Checks one output string of a call: it must be NULL, inside arena `a`
 * (NUL-terminated there) or in read-only static data of a loaded object;
 * then it is scanned for card numbers and secrets. `what` names it in
 * failure messages ("create: payd_payment_res.provider_ref"). Copies the
 * string into `out` (may be NULL) when it can be read at all, even from
 * where it should not be, so a scenario can go on. Returns 1 when copied
 * or readable, 0 when NULL or unreadable.
 */
int mc_guard_output(mc_ctx *c, payd_arena *a, const char *what, const char *s, char *out, size_t out_len);
/* Scans text the module produced (e.g. payd_error.message). */
void mc_guard_text(mc_ctx *c, const char *what, const char *s, size_t len);
/* 1 when `s` holds a card number as a token of its own (Luhn, 13-19
 * digits, not glued to letters or digits). */
int mc_text_has_pan(const char *s, size_t len);
/* Index of the first secret found in `s`, or -1. */
int mc_text_secret(const mc_ctx *c, const char *s, size_t len);
/* Counts of what was examined, for the PASS details. */
void mc_guard_counts(long *outputs, long *texts);

/* fd 2 goes to `path` while a module runs: host log lines, the module's own
 * writes, sanitizer reports. pause/resume put the real stderr back in
 * between. */
int mc_log_begin(const char *path);
void mc_log_pause(void);
void mc_log_resume(void);
/* Restores stderr and scans the captured log for card numbers and
 * secrets. Returns the number of bytes captured. */
long mc_log_end(mc_ctx *c, const char *path);
/* The real stderr, for lines that must not be captured. */
int mc_real_stderr(void);

/* ------------------------------------------------------------------------ */
/* mc_scenarios.c, mc_webhook.c, mc_blackhole.c                             */
/* ------------------------------------------------------------------------ */

/* One scenario runner: alone (tid 0, serial) or one of the threads. */
typedef struct mc_worker {
    mc_ctx *c;
    int tid;
    int serial;                   /* results set the scenario checks */
    int timeout_phase;            /* run only the timeout scenario */
    unsigned seq;
    pthread_barrier_t *start;
} mc_worker;

/* Runs every gateway scenario alone, then from o->threads threads at once,
 * then the timeout scenario the same way. */
void mc_scenarios_run(mc_ctx *c);
const char *mc_code_name(int rc);

/* Helpers the scenario files share. mc_guard_error scans (and terminates)
 * a payd_error; mc_take checks one output field of a call and copies it
 * when it can be read; mc_verdict writes `why` and returns `status`. */
void mc_guard_error(mc_ctx *c, const char *op, payd_error *e);
void mc_take(mc_ctx *c, payd_arena *a, const char *op, const char *field, const char *s, char *out,
             size_t out_len);
int mc_verdict(char *why, size_t len, int status, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Reads --webhook-sample. 0 or -1 (reported). */
int mc_webhook_prepare(mc_ctx *c);
void mc_webhook_free(mc_ctx *c);
/* The webhook_tamper scenario: MC_PASS, MC_FAIL or MC_SKIP with `why`. */
int mc_sc_webhook(mc_worker *w, char *why, size_t len);

/* --approve-url: 1 when `tmpl` is {next_action_url} or an http(s) URL. */
int mc_approve_template_ok(const char *tmpl);
/* The buyer's step for a payment that answered requires_action: GETs
 * --approve-url. MC_PASS, or MC_FAIL with `why`. */
int mc_approve(mc_ctx *c, const char *provider_ref, const char *next_action_url, char *why, size_t len);

/* The black hole for --timeout-key: a listener that never answers.
 * start returns its port, or -1; accept starts taking connections. */
int mc_blackhole_start(void);
void mc_blackhole_accept(void);
void mc_blackhole_stop(void);

#endif
