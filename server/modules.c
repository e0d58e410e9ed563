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
 * Everything here runs once, on the main thread, before serving; the
 * registry is read-only afterwards and shared by all threads.
 */
#include "modules.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    {PAYD_CAP_CONFIRM, "confirm"},
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

static int instance_load(registry *r, config *cfg, config_section *s, int kind,
                         const char *module_dir, config_errors *errs)
{
    const char *iname = strchr(s->name, '.') + 1;
    config_entry *me = config_entry_find(s, "module");
    if (!me) return -1; /* reported by config_load */
    me->used = 1;
    char where[512];
    snprintf(where, sizeof where, "%s:%d: [%s]", cfg->path, me->line, s->name);

    /* Instance names are unique across gateways and notifiers. */
    instance **pool[] = {r->gateways, r->notifiers};
    size_t counts[] = {r->gateway_count, r->notifier_count};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < counts[k]; i++)
            if (strcmp(pool[k][i]->name, iname) == 0) {
                config_errors_add(errs, "%s: duplicate instance name '%s' (already used by [%s])",
                                  where, iname, pool[k][i]->section);
                return -1;
            }

    char path[1024];
    if (strchr(me->value, '/')) snprintf(path, sizeof path, "%s", me->value);
    else snprintf(path, sizeof path, "%s/%s.so", module_dir, me->value);
    module_lib *lib = lib_open(r, path, where, errs);
    if (!lib) return -1;
    const payd_module *d = lib->desc;
    if (d->kind != (uint32_t)kind) {
        config_errors_add(errs, "%s: module %s is a %s, not a %s", where, d->name,
                          d->kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier",
                          kind == PAYD_KIND_GATEWAY ? "gateway" : "notifier");
        return -1;
    }

    instance in = {0};
    in.kind = kind;
    in.lib = lib;
    in.mod = d;
    if (kind == PAYD_KIND_GATEWAY) {
        if (!d->gateway) {
            config_errors_add(errs, "%s: module %s has no gateway operations", where, d->name);
            return -1;
        }
        copy_ops(&in.gw, sizeof in.gw, d->gateway);
        const char *why = check_caps(d, &in.gw);
        if (why) {
            config_errors_add(errs, "%s: refusing module %s: %s", where, d->name, why);
            return -1;
        }
    } else {
        if (!d->notifier) {
            config_errors_add(errs, "%s: module %s has no notifier operations", where, d->name);
            return -1;
        }
        copy_ops(&in.nt, sizeof in.nt, d->notifier);
        if (!in.nt.notify) {
            config_errors_add(errs, "%s: refusing module %s: notify is required", where, d->name);
            return -1;
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
        return -1;
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

    payd_error e = {0};
    int rc = d->init(&slot->host, &slot->cfg, &slot->state, &e);
    if (rc != 0) {
        config_errors_add(errs, "%s: module %s failed to initialize: %s", where, d->name,
                          e.message[0] ? e.message : "init returned an error");
        return -1;
    }
    slot->initialized = 1;
    for (size_t i = 0; i < s->count; i++)
        if (!s->entries[i].used)
            config_errors_add(errs, "%s:%d: unknown key '%s' in [%s] (module %s does not use it)",
                              cfg->path, s->entries[i].line, s->entries[i].key, s->name, d->name);
    log_info("modules", "loaded [%s]: module %s %s (ABI %u.%u)", s->name, d->name, d->version,
             d->abi_major, d->abi_minor);
    return 0;
}

int modules_load(registry *r, config *cfg, const char *module_dir, config_errors *errs)
{
    memset(r, 0, sizeof *r);
    size_t before = errs->count;
    for (size_t i = 0; i < cfg->section_count; i++) {
        config_section *s = &cfg->sections[i];
        if (strncmp(s->name, "gateway.", 8) == 0)
            instance_load(r, cfg, s, PAYD_KIND_GATEWAY, module_dir, errs);
        else if (strncmp(s->name, "notifier.", 9) == 0)
            instance_load(r, cfg, s, PAYD_KIND_NOTIFIER, module_dir, errs);
    }
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
