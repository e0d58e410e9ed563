/*
 * mc_report.c - the check table of payd-modcheck and its two outputs.
 *
 * Every check has a fixed name (the machine-readable key in --json and the
 * word the tests grep for), a status and one detail line. Scenario threads
 * record failures concurrently, so the table is behind one mutex. Lines are
 * printed as checks settle (mc_report_flush) to a stream that is never the
 * captured stderr: stdout normally, the real stderr with --json (whose
 * stdout carries only the JSON document).
 */
#include "modcheck.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct mc_check {
    const char *name;
    const char *what;             /* one line: what the check guards */
    int status;
    char detail[512];
    long failures;                /* mc_check_fail calls */
    int printed;
} mc_check;

static mc_check checks[MC_CHECK_COUNT] = {
    [MC_CONFIG] = {"config", "the config file loads and names the section"},
    [MC_LOAD] = {"load", "payd's loader accepts and initializes the module"},
    [MC_ABI_MAJOR] = {"abi.major", "built for this host's ABI major"},
    [MC_ABI_STRUCT_SIZE] = {"abi.struct_size", "descriptor and ops tables are at least v1.0 sized"},
    [MC_ABI_KIND] = {"abi.kind", "module kind matches the section"},
    [MC_ABI_CAPS] = {"abi.caps", "every advertised capability has its function"},
    [MC_SYMBOLS] = {"symbols", "only the entry symbol is exported"},
    [MC_INIT_FINI] = {"init_fini", "init/fini repeated without errors or leaks"},
    [MC_CREATE_RETRIEVE] = {"create_retrieve", "create, then retrieve, agree"},
    [MC_IDEMPOTENCY] = {"idempotency", "the same idempotency key gives the same payment"},
    [MC_DECLINE] = {"decline", "a decline is PAYD_E_DECLINED with a failure_code"},
    [MC_TIMEOUT] = {"timeout", "a timeout is PAYD_E_TRANSIENT"},
    [MC_REFUND_OVER] = {"refund_over_capture", "a refund above the captured amount is refused"},
    [MC_CAPTURE_LATER] = {"capture_later", "a manual-capture payment captures in part, or cancels"},
    [MC_WEBHOOK_TAMPER] = {"webhook_tamper", "a tampered webhook is PAYD_E_SIGNATURE"},
    [MC_ARENA] = {"arena", "every output string lives in the call's arena (or is static)"},
    [MC_NO_SECRETS] = {"no_secrets", "no card number or secret in logs, errors or outputs"},
    [MC_THREADS] = {"threads", "the scenarios pass from many threads at once"},
};

static pthread_mutex_t checks_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *human;
static char notes[8][512];
static int note_count;

static const char *const status_names[] = {"pending", "pass", "fail", "warn", "skip"};
static const char *const status_words[] = {"....", "PASS", "FAIL", "WARN", "SKIP"};

const char *mc_check_name(int id)
{
    return id >= 0 && id < MC_CHECK_COUNT ? checks[id].name : "?";
}

int mc_check_status(int id)
{
    pthread_mutex_lock(&checks_lock);
    int s = checks[id].status;
    pthread_mutex_unlock(&checks_lock);
    return s;
}

static void check_vset(int id, int status, const char *fmt, va_list ap)
{
    mc_check *k = &checks[id];
    k->status = status;
    vsnprintf(k->detail, sizeof k->detail, fmt, ap);
}

void mc_check_set(int id, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&checks_lock);
    check_vset(id, status, fmt, ap);
    pthread_mutex_unlock(&checks_lock);
    va_end(ap);
}

void mc_check_fail(int id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&checks_lock);
    mc_check *k = &checks[id];
    if (k->status != MC_FAIL) check_vset(id, MC_FAIL, fmt, ap);
    k->failures++;
    pthread_mutex_unlock(&checks_lock);
    va_end(ap);
}

void mc_check_pass(int id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&checks_lock);
    if (checks[id].status == MC_PENDING) check_vset(id, MC_PASS, fmt, ap);
    pthread_mutex_unlock(&checks_lock);
    va_end(ap);
}

void mc_check_skip_pending(const char *why)
{
    pthread_mutex_lock(&checks_lock);
    for (int i = 0; i < MC_CHECK_COUNT; i++)
        if (checks[i].status == MC_PENDING) {
            checks[i].status = MC_SKIP;
            snprintf(checks[i].detail, sizeof checks[i].detail, "%s", why);
        }
    pthread_mutex_unlock(&checks_lock);
}

void mc_report_open(int json)
{
    if (!json) {
        human = stdout;
        return;
    }
    int fd = dup(STDERR_FILENO);
    human = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!human) human = stderr;
}

void mc_report_note(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (note_count < (int)(sizeof notes / sizeof notes[0]))
        snprintf(notes[note_count++], sizeof notes[0], "%s", line);
    fprintf(human, "%s\n", line);
    fflush(human);
}

/* The detail with "(and N more)" when a check failed more than once. */
static void check_detail(const mc_check *k, char *out, size_t len)
{
    if (k->status == MC_FAIL && k->failures > 1)
        snprintf(out, len, "%s (and %ld more)", k->detail, k->failures - 1);
    else
        snprintf(out, len, "%s", k->detail);
}

void mc_report_flush(void)
{
    pthread_mutex_lock(&checks_lock);
    for (int i = 0; i < MC_CHECK_COUNT; i++) {
        mc_check *k = &checks[i];
        if (k->status == MC_PENDING || k->printed) continue;
        char detail[600];
        check_detail(k, detail, sizeof detail);
        fprintf(human, "%s  %-20s %s\n", status_words[k->status], k->name, detail);
        k->printed = 1;
    }
    fflush(human);
    pthread_mutex_unlock(&checks_lock);
}

int mc_report_finish(int json, const char *const *facts)
{
    mc_report_flush();
    int count[5] = {0};
    for (int i = 0; i < MC_CHECK_COUNT; i++) count[checks[i].status]++;
    fprintf(human, "%d passed, %d failed, %d warnings, %d skipped\n", count[MC_PASS], count[MC_FAIL],
            count[MC_WARN], count[MC_SKIP]);
    fflush(human);
    if (json) {
        json_t *list = json_array();
        for (int i = 0; i < MC_CHECK_COUNT; i++) {
            char detail[600];
            check_detail(&checks[i], detail, sizeof detail);
            json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", checks[i].name,
                                                  "status", status_names[checks[i].status], "detail",
                                                  detail, "guards", checks[i].what, "failures",
                                                  (json_int_t)checks[i].failures));
        }
        json_t *summary = json_pack("{s:i, s:i, s:i, s:i}", "pass", count[MC_PASS], "fail",
                                    count[MC_FAIL], "warn", count[MC_WARN], "skip", count[MC_SKIP]);
        json_t *about = json_object();
        for (int i = 0; facts && facts[i] && facts[i + 1]; i += 2)
            json_object_set_new(about, facts[i], json_string(facts[i + 1]));
        json_t *notes_json = json_array();
        for (int i = 0; i < note_count; i++) json_array_append_new(notes_json, json_string(notes[i]));
        json_t *doc = json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:o}", "tool", "payd-modcheck",
                                "version", MC_VERSION, "ok", count[MC_FAIL] == 0, "module", about,
                                "summary", summary, "notes", notes_json, "checks", list);
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text) printf("%s\n", text);
        fflush(stdout);
        free(text);
        json_decref(doc);
    }
    if (human != stdout && human != stderr) fclose(human);
    human = NULL;
    return count[MC_FAIL] ? 1 : 0;
}
