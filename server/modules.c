/*
 * modules.c - the module loader and the instance registry.
 *
 * A module file is dlopen()ed once with RTLD_NOW|RTLD_LOCAL, however many
 * instances use it; its one entry symbol returns the descriptor, which is
 * checked before anything in it is called:
 *   - the ABI major must equal ours;
 *   - struct_size must cover at least the v1.0 descriptor;
 *   - kind must match the section ([gateway.*] or [notifier.*]);
 *   - every advertised capability must come with its function.
 * Operation tables are copied into the instance with any tail the module
 * did not know about zeroed, so a module built against an older minor has
 * its missing operations treated as absent, never read out of bounds.
 *
 * Each instance is then initialized with its own host table and config
 * view. Keys in its section that neither the host nor the module read
 * during init are reported as unknown, naming their line.
 *
 * Before any instance is initialized in this process, each one's init (and
 * fini) is first run once in a forked child (probe_init), so a module that
 * crashes in init is refused with a message naming it instead of taking
 * payd down. The probes run while no module code has started a thread and
 * before CivetWeb, the database pool or any worker exists, which is what
 * makes fork() safe here.
 *
 * Everything here runs once, on the main thread, before serving; the
 * registry is read-only afterwards and shared by all threads.
 */
#include "modules.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

/* Size of the v1.0 module descriptor: everything up to `notifier`. */
#define MODULE_V1_0_SIZE (offsetof(payd_module, notifier) + sizeof(void *))

static const struct {
    uint64_t bit;
    const char *name;
} cap_names[] = {
    {PAYD_CAP_CAPTURE_LATER, "capture_later"}, {PAYD_CAP_PARTIAL_CAPTURE, "partial_capture"},
    {PAYD_CAP_REFUND, "refund"},               {PAYD_CAP_PARTIAL_REFUND, "partial_refund"},
    {PAYD_CAP_WEBHOOKS, "webhooks"},           {PAYD_CAP_SAVED_METHODS, "saved_methods"},
    {PAYD_CAP_3DS, "3ds"},                     {PAYD_CAP_REDIRECT, "redirect"},
    {PAYD_CAP_CANCEL, "cancel"},               {PAYD_CAP_PAGES, "pages"},
    {PAYD_CAP_CONFIRM, "confirm"},             {PAYD_CAP_ADMIN_SETTLES, "admin_settles"},
};

void modules_caps_names(uint64_t caps, const char **names, size_t *count, size_t max)
{
    *count = 0;
    for (size_t i = 0; i < sizeof cap_names / sizeof cap_names[0] && *count < max; i++)
        if (caps & cap_names[i].bit) names[(*count)++] = cap_names[i].name;
}

static module_lib *lib_open(registry *r, const char *path, const char *where,
                            config_errors *errs)
{
    for (size_t i = 0; i < r->lib_count; i++)
        if (strcmp(r->libs[i].path, path) == 0) return &r->libs[i];
    if (access(path, R_OK) != 0) {
        config_errors_add(errs, "%s: module file %s %s", where, path,
                          errno == ENOENT ? "not found" : strerror(errno));
        return NULL;
    }
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        config_errors_add(errs, "%s: cannot load module %s: %s", where, path, dlerror());
        return NULL;
    }
    payd_entry_fn entry = (payd_entry_fn)(uintptr_t)dlsym(handle, PAYD_ENTRY_SYMBOL);
    if (!entry) {
        config_errors_add(errs, "%s: module %s does not export %s (is it a payd module?)", where,
                          path, PAYD_ENTRY_SYMBOL);
        dlclose(handle);
        return NULL;
    }
    const payd_module *d = entry();
    const char *why = NULL;
    char buf[256];
    if (!d) {
        why = "its entry function returned NULL";
    } else if (d->abi_major != PAYD_ABI_MAJOR) {
        snprintf(buf, sizeof buf, "it was built for ABI %u.%u, this payd speaks ABI %d.x",
                 d->abi_major, d->abi_minor, PAYD_ABI_MAJOR);
        why = buf;
    } else if (d->struct_size < MODULE_V1_0_SIZE) {
        snprintf(buf, sizeof buf, "its descriptor struct_size %u is smaller than the v1.0 size %zu",
                 d->struct_size, (size_t)MODULE_V1_0_SIZE);
        why = buf;
    } else if (!d->name || !*d->name || !d->version || !d->init) {
        why = "its descriptor lacks a name, version or init function";
    }
    if (why) {
        config_errors_add(errs, "%s: refusing module %s: %s", where, path, why);
        dlclose(handle);
        return NULL;
    }
    module_lib *libs = realloc(r->libs, (r->lib_count + 1) * sizeof *libs);
    if (!libs) {
        dlclose(handle);
        return NULL;
    }
    r->libs = libs;
    module_lib *lib = &r->libs[r->lib_count++];
    lib->path = strdup(path);
    lib->handle = handle;
    lib->desc = d;
    return lib;
}

/* Copies an ops table the module sized with its own struct_size. */
static void copy_ops(void *dst, size_t dst_size, const void *src)
{
    memset(dst, 0, dst_size);
    if (!src) return;
    uint32_t n = *(const uint32_t *)src;
    if (n > dst_size) n = (uint32_t)dst_size;
    memcpy(dst, src, n);
    *(uint32_t *)dst = (uint32_t)dst_size;
}

/* Returns NULL when caps and functions agree, else the first mismatch. */
static const char *check_caps(const payd_module *d, const payd_gateway_ops *g)
{
    uint64_t c = d->caps;
    if (!g->create || !g->retrieve) return "create and retrieve are required";
    if ((c & PAYD_CAP_CAPTURE_LATER) && (!g->capture || !g->cancel))
        return "capability capture_later needs capture and cancel";
    if ((c & PAYD_CAP_PARTIAL_CAPTURE) && !g->capture) return "capability partial_capture needs capture";
    if ((c & (PAYD_CAP_REFUND | PAYD_CAP_PARTIAL_REFUND)) && !g->refund)
        return "capability refund needs refund";
    if ((c & PAYD_CAP_WEBHOOKS) && !g->webhook) return "capability webhooks needs webhook";
    if ((c & PAYD_CAP_SAVED_METHODS) && (!g->save_method || !g->delete_method || !g->list_methods))
        return "capability saved_methods needs save_method, delete_method and list_methods";
    if ((c & PAYD_CAP_CANCEL) && !g->cancel) return "capability cancel needs cancel";
    if ((c & PAYD_CAP_PAGES) && !g->page) return "capability pages needs page";
    if ((c & PAYD_CAP_CONFIRM) && !g->confirm) return "capability confirm needs confirm";
    return NULL;
}

static int parse_events(instance *in, const config_entry *e)
{
    const char *p = e ? e->value : "*";
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ", ");
        if (n) {
            char **ev = realloc(in->events, (in->event_count + 1) * sizeof *ev);
            if (!ev) return -1;
            in->events = ev;
            in->events[in->event_count++] = strndup(p, n);
        }
        p += n;
    }
    return 0;
}

/* "FILE:LINE: [section]" of an instance's `module` key, for messages. */
static void instance_where(const config *cfg, const config_section *s, char *out, size_t len)
{
    const config_entry *me = config_entry_find(s, "module");
    snprintf(out, len, "%s:%d: [%s]", cfg->path, me ? me->line : s->line, s->name);
}

/*
 * Checks one [gateway.*] or [notifier.*] section and adds its instance to
 * the registry, NOT yet initialized: opens the module, checks kind and
 * capabilities, copies the ops tables and fills the host table. Returns
 * the instance, or NULL with the reason added to `errs`.
 */
static instance *instance_prepare(registry *r, config *cfg, config_section *s, int kind,
                                  const char *module_dir, config_errors *errs)
{
    const char *iname = strchr(s->name, '.') + 1;
    config_entry *me = config_entry_find(s, "module");
    if (!me) return NULL; /* reported by config_load */
    me->used = 1;
    char where[512];
    instance_where(cfg, s, where, sizeof where);

    /* Instance names are unique across gateways and notifiers. */
    instance **pool[] = {r->gateways, r->notifiers};
    size_t counts[] = {r->gateway_count, r->notifier_count};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < counts[k]; i++)
            if (strcmp(pool[k][i]->name, iname) == 0) {
                config_errors_add(errs, "%s: duplicate instance name '%s' (already used by [%s])",
                                  where, iname, pool[k][i]->section);
                return NULL;
            }

    char path[1024];
    if (strchr(me->value, '/')) snprintf(path, sizeof path, "%s", me->value);
    else snprintf(path, sizeof path, "%s/%s.so", module_dir, me->value);
    module_lib *lib = lib_open(r, path, where, errs);
    if (!lib) return NULL;
    const payd_module *d = lib->desc;
    if (d->kind != (uint32_t)kind) {
        config_errors_add(errs, "%s: module %s is a %s, not a %s", where, d->name,
                          d->kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier",
                          kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier");
        return NULL;
    }

    instance in = {0};
    in.kind = kind;
    in.lib = lib;
    in.mod = d;
    if (kind == PAYD_KIND_GATEWAY) {
        if (!d->gateway) {
            config_errors_add(errs, "%s: module %s has no gateway operations", where, d->name);
            return NULL;
        }
        copy_ops(&in.gw, sizeof in.gw, d->gateway);
        const char *why = check_caps(d, &in.gw);
        if (why) {
            config_errors_add(errs, "%s: refusing module %s: %s", where, d->name, why);
            return NULL;
        }
    } else {
        if (!d->notifier) {
            config_errors_add(errs, "%s: module %s has no notifier operations", where, d->name);
            return NULL;
        }
        copy_ops(&in.nt, sizeof in.nt, d->notifier);
        if (!in.nt.notify) {
            config_errors_add(errs, "%s: refusing module %s: notify is required", where, d->name);
            return NULL;
        }
        config_entry *ev = config_entry_find(s, "events");
        if (ev) ev->used = 1;
        parse_events(&in, ev);
    }

    in.name = strdup(iname);
    in.section = strdup(s->name);
    instance **arr = kind == PAYD_KIND_GATEWAY ? r->gateways : r->notifiers;
    size_t *count = kind == PAYD_KIND_GATEWAY ? &r->gateway_count : &r->notifier_count;
    instance *slot = malloc(sizeof *slot);
    arr = slot ? realloc(arr, (*count + 1) * sizeof *arr) : NULL;
    if (!arr) {
        free(slot);
        return NULL;
    }
    if (kind == PAYD_KIND_GATEWAY) r->gateways = arr;
    else r->notifiers = arr;
    arr[(*count)++] = slot;
    *slot = in;

    snprintf(slot->host_data.log_name, sizeof slot->host_data.log_name, "%s", s->name);
    snprintf(slot->host_data.cache_prefix, sizeof slot->host_data.cache_prefix, "payd:%s:",
             s->name);
    host_fill(&slot->host, &slot->host_data);
    slot->cfg.section = s;
    slot->cfg.instance = slot->name;
    slot->cfg.public_url = strdup(cfg->public_url);
    char wh[600];
    snprintf(wh, sizeof wh, "%s/v1/webhooks/%s", cfg->public_url, slot->name);
    slot->cfg.webhook_url = strdup(wh);
    return slot;
}

/* How much of a probe child's output is kept to show after a crash. */
#define PROBE_OUTPUT_TAIL 4096

/* Body of the probe child: never returns. Phase bytes go to `status_fd`:
 * 'i' before init, 'e' when init returned an error, 'f' before fini, 'd'
 * when done. */
static void probe_child(instance *in, int status_fd, int output_fd)
{
    /* The module's log lines would repeat at the real init: keep them in
     * the pipe, where the parent shows them only after a crash. */
    dup2(output_fd, STDOUT_FILENO);
    dup2(output_fd, STDERR_FILENO);
    /* Let the kernel report a crash as the signal it is: sanitizer and
     * other handlers would turn it into an ordinary exit. A probe writes
     * no core file; the real init is what an operator debugs. */
    static const int deadly[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
    for (size_t i = 0; i < sizeof deadly / sizeof deadly[0]; i++) {
        signal(deadly[i], SIG_DFL);
    }
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);

    ssize_t w = write(status_fd, "i", 1);
    void *state = NULL;
    payd_error e = {0};
    if (in->mod->init(&in->host, &in->cfg, &state, &e) != 0) {
        w = write(status_fd, "e", 1);
        _exit(0);
    }
    w = write(status_fd, "f", 1);
    if (in->mod->fini) in->mod->fini(state);
    w = write(status_fd, "d", 1);
    (void)w;
    _exit(0);
}

/* Appends what the child wrote, keeping only the last PROBE_OUTPUT_TAIL
 * bytes. Returns 1 after reading data, 0 at end of file or on an error,
 * -1 when nothing is there yet (EINTR, EAGAIN). */
static int probe_read_output(int fd, char *tail, size_t *tail_len)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return errno == EINTR || errno == EAGAIN ? -1 : 0;
    if (n == 0) return 0;
    size_t add = (size_t)n;
    if (add >= PROBE_OUTPUT_TAIL) {
        memcpy(tail, buf + add - PROBE_OUTPUT_TAIL, PROBE_OUTPUT_TAIL);
        *tail_len = PROBE_OUTPUT_TAIL;
        return 1;
    }
    if (*tail_len + add > PROBE_OUTPUT_TAIL) {
        size_t drop = *tail_len + add - PROBE_OUTPUT_TAIL;
        memmove(tail, tail + drop, *tail_len - drop);
        *tail_len -= drop;
    }
    memcpy(tail + *tail_len, buf, add);
    *tail_len += add;
    return 1;
}

/*
 * Runs an instance's init, then fini, once in a forked child, so that a
 * module that crashes in init costs a refusal instead of payd. Returns 0
 * when the child came back (init succeeded, or returned an error that the
 * real init will report), or -1 with the refusal added to `errs`: the
 * child died by a signal, or the module ended the process itself. When
 * the probe cannot run (no fork, no pipe), returns 0: the real init then
 * runs unprotected, as it would without the probe.
 *
 * Only call this while the process has a single thread: the child
 * inherits every lock in whatever state other threads left it.
 */
static int probe_init(instance *in, const char *where, config_errors *errs)
{
    int st[2], out[2];
    if (pipe2(st, O_CLOEXEC) != 0) return 0;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(st[0]);
        close(st[1]);
        return 0;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) probe_child(in, st[1], out[1]);
    close(st[1]);
    close(out[1]);
    if (pid < 0) {
        close(st[0]);
        close(out[0]);
        return 0;
    }

    /* Drain the child's output until it exits (not until EOF: a process
     * the module started could hold the pipe open forever). */
    char tail[PROBE_OUTPUT_TAIL];
    size_t tail_len = 0;
    int status = 0, reaped = 0, more = 1;
    while (!reaped) {
        struct pollfd pfd = {.fd = out[0], .events = POLLIN};
        if (more && poll(&pfd, 1, 50) > 0) more = probe_read_output(out[0], tail, &tail_len) != 0;
        else if (!more) poll(NULL, 0, 10);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) reaped = 1;
        else if (w < 0 && errno != EINTR) break; /* e.g. SIGCHLD ignored: no verdict */
    }
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    while (more && probe_read_output(out[0], tail, &tail_len) == 1) {
    }
    char phases[16];
    fcntl(st[0], F_SETFL, O_NONBLOCK);
    ssize_t np = read(st[0], phases, sizeof phases);
    char last = np > 0 ? phases[np - 1] : '\0';
    close(st[0]);
    close(out[0]);
    if (!reaped) return 0;

    const char *phase = last == 'f' ? "fini" : "init";
    int refused = 0;
    if (WIFSIGNALED(status)) {
        config_errors_add(errs, "%s: module %s crashed in %s (signal %d)", where, in->mod->name,
                          phase, WTERMSIG(status));
        refused = 1;
    } else if (WIFEXITED(status) && last != 'd' && last != 'e') {
        config_errors_add(errs, "%s: module %s ended the process in %s (exit status %d)", where,
                          in->mod->name, phase, WEXITSTATUS(status));
        refused = 1;
    }
    if (refused && tail_len > 0) {
        log_warn("modules", "[%s] output of module %s before it stopped:", in->section,
                 in->mod->name);
        ssize_t w = write(STDERR_FILENO, tail, tail_len);
        if (tail[tail_len - 1] != '\n') w = write(STDERR_FILENO, "\n", 1);
        (void)w;
    }
    return refused ? -1 : 0;
}

/* Initializes a probed instance in this process and reports keys that
 * neither the host nor the module read. 0 or -1 (added to `errs`). */
static int instance_start(instance *in, config *cfg, const char *where, config_errors *errs)
{
    const payd_module *d = in->mod;
    const config_section *s = in->cfg.section;
    payd_error e = {0};
    int rc = d->init(&in->host, &in->cfg, &in->state, &e);
    if (rc != 0) {
        e.message[sizeof e.message - 1] = '\0';
        config_errors_add(errs, "%s: module %s failed to initialize: %s", where, d->name,
                          e.message[0] ? e.message : "init returned an error");
        return -1;
    }
    in->initialized = 1;
    for (size_t i = 0; i < s->count; i++)
        if (!s->entries[i].used)
            config_errors_add(errs, "%s:%d: unknown key '%s' in [%s] (module %s does not use it)",
                              cfg->path, s->entries[i].line, s->entries[i].key, s->name, d->name);
    log_info("modules", "loaded [%s]: module %s %s (ABI %u.%u)", s->name, d->name, d->version,
             d->abi_major, d->abi_minor);
    return 0;
}

/*
 * Three passes: prepare every instance (no module code runs but the entry
 * functions), probe every init in a child while the process still has one
 * thread, then initialize for real the instances whose probe came back.
 */
int modules_load(registry *r, config *cfg, const char *module_dir, config_errors *errs)
{
    memset(r, 0, sizeof *r);
    size_t before = errs->count;
    instance **ready = calloc(cfg->section_count ? cfg->section_count : 1, sizeof *ready);
    if (!ready) {
        config_errors_add(errs, "%s: out of memory loading modules", cfg->path);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->section_count; i++) {
        config_section *s = &cfg->sections[i];
        instance *in = NULL;
        if (strncmp(s->name, "gateway.", 8) == 0)
            in = instance_prepare(r, cfg, s, PAYD_KIND_GATEWAY, module_dir, errs);
        else if (strncmp(s->name, "notifier.", 9) == 0)
            in = instance_prepare(r, cfg, s, PAYD_KIND_NOTIFIER, module_dir, errs);
        if (in) ready[n++] = in;
    }
    char where[512];
    for (size_t i = 0; i < n; i++) {
        instance_where(cfg, ready[i]->cfg.section, where, sizeof where);
        if (probe_init(ready[i], where, errs) != 0) ready[i] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!ready[i]) continue;
        instance_where(cfg, ready[i]->cfg.section, where, sizeof where);
        instance_start(ready[i], cfg, where, errs);
    }
    free(ready);
    return errs->count > before ? -1 : 0;
}

static void instance_free(instance *in)
{
    if (in->initialized && in->mod->fini) in->mod->fini(in->state);
    for (size_t i = 0; i < in->event_count; i++) free(in->events[i]);
    free(in->events);
    free(in->name);
    free(in->section);
    free(in->cfg.public_url);
    free(in->cfg.webhook_url);
    free(in);
}

void modules_unload(registry *r)
{
    for (size_t i = 0; i < r->gateway_count; i++) instance_free(r->gateways[i]);
    for (size_t i = 0; i < r->notifier_count; i++) instance_free(r->notifiers[i]);
    free(r->gateways);
    free(r->notifiers);
    for (size_t i = 0; i < r->lib_count; i++) {
        /* Under ASan, keep the code mapped so leak reports can symbolize. */
#ifndef PAYD_KEEP_MODULES_MAPPED
        dlclose(r->libs[i].handle);
#endif
        free(r->libs[i].path);
    }
    free(r->libs);
    memset(r, 0, sizeof *r);
}

instance *modules_gateway(registry *r, const char *name)
{
    for (size_t i = 0; i < r->gateway_count; i++)
        if (strcmp(r->gateways[i]->name, name) == 0) return r->gateways[i];
    return NULL;
}

instance *modules_gateway_by_module(registry *r, const char *module_name)
{
    for (size_t i = 0; i < r->gateway_count; i++)
        if (strcmp(r->gateways[i]->mod->name, module_name) == 0) return r->gateways[i];
    return NULL;
}

int modules_notifier_wants(const instance *n, const char *event_type)
{
    for (size_t i = 0; i < n->event_count; i++)
        if (strcmp(n->events[i], "*") == 0 || strcmp(n->events[i], event_type) == 0) return 1;
    return 0;
}
