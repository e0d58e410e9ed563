/*
 * mc_guard.c - what payd-modcheck watches on every call: where output
 * strings live, and what a module lets out (card numbers, secrets).
 *
 * Arena ownership. The ABI says every pointer a module writes into a result
 * points into the call's arena or to static storage. The arena type is
 * opaque in the ABI and private to server/arena.c, which is not changed for
 * modcheck's sake; this file mirrors its layout (a list of chunks, each
 * with `used` bytes handed out) and proves the mirror right at start-up
 * (mc_guard_arena_selftest) before trusting it: if arena.c changes shape,
 * the arena check is skipped with a note instead of judging wrongly.
 * "Static" means read-only data of a loaded object (string literals):
 * a pointer into writable static data is shared by every thread and every
 * call, so it fails like a heap pointer does.
 *
 * Leaks. Card numbers are searched as tokens of their own: 13 to 19 digits
 * (single spaces or dashes allowed between) that pass Luhn, with no letter,
 * digit or '_' glued to either end. Random hex ids ("mock_pi_3f2a...") then
 * never match by accident, while "card=4111 1111 1111 1111" does. Secrets
 * are the values of the section's secret keys (env:, file:, or a key whose
 * name says secret, password, token or key), searched verbatim.
 *
 * The log. While a module runs, fd 2 is a file: the host log (server/log.c
 * writes each line to stderr), the module's own writes and any sanitizer
 * report land there, and mc_log_end scans it.
 */
#include "modcheck.h"

#include <ctype.h>
#include <fcntl.h>
#include <link.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cardguard.h"

/* server/arena.c's private layout, mirrored (checked by the self-test). */
typedef struct mc_arena_chunk {
    struct mc_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} mc_arena_chunk;

typedef struct mc_arena_view {
    mc_arena_chunk *head;
    size_t total;
} mc_arena_view;

static int arena_layout_ok;
static _Atomic long outputs_checked, texts_checked;

/* Bytes of `a` from p to the end of its chunk's used part, or 0 when p is
 * not inside `a`. */
static size_t arena_room(const payd_arena *a, const void *p)
{
    const mc_arena_view *v = (const mc_arena_view *)a;
    const unsigned char *q = p;
    for (const mc_arena_chunk *c = v ? v->head : NULL; c; c = c->next)
        if (q >= c->data && q < c->data + c->used) return (size_t)(c->data + c->used - q);
    return 0;
}

int mc_guard_arena_selftest(void)
{
    arena *a = arena_new();
    if (!a) return -1;
    char *small = arena_alloc(a, 24);
    char *big = arena_alloc(a, 100 * 1024); /* forces a second chunk */
    char *last = arena_strdup(a, "x");
    int local = 0;
    char *heap = malloc(8);
    const mc_arena_view *v = (const mc_arena_view *)a;
    int ok = small && big && last && heap && v->total == arena_bytes(a) &&
             arena_room(a, small) >= 24 && arena_room(a, big) >= 100 * 1024 &&
             arena_room(a, big + 100 * 1024 - 1) >= 1 && arena_room(a, last) >= 2 &&
             arena_room(a, &local) == 0 && arena_room(a, heap) == 0;
    free(heap);
    arena_free(a);
    arena_layout_ok = ok;
    return ok ? 0 : -1;
}

typedef struct static_probe {
    const unsigned char *p;
    int found;                    /* 1 read-only, 2 writable */
    size_t room;
} static_probe;

/* dl_iterate_phdr callback: is probe->p inside a loaded segment? RELRO
 * ranges count as read-only (they are, once relocated). */
static int find_segment(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    static_probe *sp = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD && ph->p_type != PT_GNU_RELRO) continue;
        const unsigned char *start = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        if (sp->p < start || sp->p >= start + ph->p_memsz) continue;
        int ro = ph->p_type == PT_GNU_RELRO || !(ph->p_flags & PF_W);
        if (ro || !sp->found) {
            sp->found = ro ? 1 : 2;
            sp->room = (size_t)(start + ph->p_memsz - sp->p);
        }
        if (ro) return 1;
    }
    return 0;
}

/* 1 read-only static data, 2 writable static data, 0 neither. */
static int static_kind(const void *p, size_t *room)
{
    static_probe sp = {.p = p};
    dl_iterate_phdr(find_segment, &sp);
    *room = sp.room;
    return sp.found;
}

int mc_text_has_pan(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < '0' || ch > '9') {
            i++;
            continue;
        }
        int glued_before = i > 0 && (isalnum((unsigned char)s[i - 1]) || s[i - 1] == '_');
        size_t start = i;
        while (i < len && ((s[i] >= '0' && s[i] <= '9') ||
                           ((s[i] == ' ' || s[i] == '-') && i + 1 < len && s[i + 1] >= '0' &&
                            s[i + 1] <= '9')))
            i++;
        int glued_after = i < len && (isalnum((unsigned char)s[i]) || s[i] == '_');
        if (!glued_before && !glued_after && cardguard_text_has_pan(s + start, i - start, 0)) return 1;
    }
    return 0;
}

int mc_text_secret(const mc_ctx *c, const char *s, size_t len)
{
    for (size_t i = 0; i < c->secret_count; i++)
        if (memmem(s, len, c->secrets[i], strlen(c->secrets[i]))) return (int)i;
    return -1;
}

void mc_guard_text(mc_ctx *c, const char *what, const char *s, size_t len)
{
    if (!s || !len) return;
    atomic_fetch_add(&texts_checked, 1);
    if (mc_text_has_pan(s, len))
        mc_check_fail(MC_NO_SECRETS, "%s contains a card number", what);
    int k = mc_text_secret(c, s, len);
    if (k >= 0) mc_check_fail(MC_NO_SECRETS, "%s contains the value of a secret config key", what);
}

/*
 * Copies a string that may point anywhere (freed heap, a dead stack frame,
 * nowhere) without faulting: the kernel reads it (process_vm_readv on this
 * very process) and says EFAULT instead of crashing. Returns the length
 * copied (NUL-terminated in out), or -1 when nothing was readable.
 */
static long safe_copy(const char *s, char *out, size_t out_len)
{
    size_t got = 0;
    while (got + 1 < out_len) {
        size_t want = out_len - 1 - got;
        /* Never cross a page: the next one may not be mapped. */
        size_t to_page = 4096 - ((uintptr_t)(s + got) & 4095);
        if (want > to_page) want = to_page;
        struct iovec local = {out + got, want}, remote = {(void *)(s + got), want};
        ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
        if (n <= 0) break;
        char *nul = memchr(out + got, '\0', (size_t)n);
        if (nul) return (long)(nul - out);
        got += (size_t)n;
    }
    if (!got) return -1;
    out[got] = '\0';
    return (long)got;
}

int mc_guard_output(mc_ctx *c, payd_arena *a, const char *what, const char *s, char *out, size_t out_len)
{
    if (out && out_len) out[0] = '\0';
    if (!s) return 0;
    atomic_fetch_add(&outputs_checked, 1);
    size_t room = 0;
    if (arena_layout_ok) {
        room = arena_room(a, s);
        if (!room) {
            int kind = static_kind(s, &room);
            if (kind != 1) {
                mc_check_fail(MC_ARENA, "%s points %s", what,
                              kind == 2 ? "into the module's writable static data (shared by all "
                                          "threads and calls)"
                                        : "outside the call's arena (heap or stack memory?)");
                /* Still look at it, carefully, so the scenario goes on and
                 * a leak in it is still seen. */
                char copy[4096];
                long n = safe_copy(s, copy, sizeof copy);
                if (n < 0) return 0;
                mc_guard_text(c, what, copy, (size_t)n);
                if (out && out_len) snprintf(out, out_len, "%s", copy);
                return 1;
            }
        }
    } else {
        room = 65536; /* cannot tell: trust it to be a string */
    }
    size_t len = strnlen(s, room);
    if (len == room) {
        mc_check_fail(MC_ARENA, "%s is not NUL-terminated inside its memory", what);
        return 0;
    }
    mc_guard_text(c, what, s, len);
    if (out && out_len) snprintf(out, out_len, "%s", s);
    return 1;
}

void mc_guard_counts(long *outputs, long *texts)
{
    *outputs = atomic_load(&outputs_checked);
    *texts = atomic_load(&texts_checked);
}

/* ---- the captured log ---- */

static int saved_stderr = -1;
static int log_fd = -1;

int mc_real_stderr(void)
{
    return saved_stderr >= 0 ? saved_stderr : STDERR_FILENO;
}

int mc_log_begin(const char *path)
{
    fflush(stderr);
    log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) return -1;
    saved_stderr = dup(STDERR_FILENO);
    if (saved_stderr < 0) {
        close(log_fd);
        log_fd = -1;
        return -1;
    }
    dup2(log_fd, STDERR_FILENO);
    return 0;
}

void mc_log_pause(void)
{
    fflush(stderr);
    if (saved_stderr >= 0) dup2(saved_stderr, STDERR_FILENO);
}

void mc_log_resume(void)
{
    fflush(stderr);
    if (log_fd >= 0) dup2(log_fd, STDERR_FILENO);
}

long mc_log_end(mc_ctx *c, const char *path)
{
    mc_log_pause();
    if (saved_stderr >= 0) close(saved_stderr);
    if (log_fd >= 0) close(log_fd);
    saved_stderr = log_fd = -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long bytes = 0, line_no = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        bytes += n;
        line_no++;
        char what[64];
        snprintf(what, sizeof what, "log line %ld", line_no);
        mc_guard_text(c, what, line, (size_t)n);
    }
    free(line);
    fclose(f);
    return bytes;
}
