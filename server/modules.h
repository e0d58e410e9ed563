/* modules.h - loading modules with dlopen and the registry of instances. */
#ifndef PAYD_MODULES_H
#define PAYD_MODULES_H

#include <stddef.h>

#include "config.h"
#include "host.h"
#include "payd/module.h"

typedef struct module_lib {
    char *path;
    void *handle;
    const payd_module *desc;
} module_lib;

/* One configured gateway or notifier: a module plus its settings. */
typedef struct instance {
    char *name;                 /* "main" from [gateway.main] */
    char *section;              /* "gateway.main" */
    int kind;                   /* PAYD_KIND_* */
    module_lib *lib;
    const payd_module *mod;
    payd_gateway_ops gw;        /* copied, missing tail zeroed */
    payd_notifier_ops nt;
    void *state;
    int initialized;
    payd_host host;
    host_instance host_data;
    struct payd_config cfg;
    /* notifiers: subscribed event types ("*" = all) */
    char **events;
    size_t event_count;
} instance;

typedef struct registry {
    module_lib *libs;
    size_t lib_count;
    instance **gateways;       /* each instance is allocated alone: modules */
    size_t gateway_count;      /* keep pointers to its host table and config */
    instance **notifiers;
    size_t notifier_count;
} registry;

/*
 * Loads every [gateway.*] and [notifier.*] section of `cfg`: resolves the
 * module file (module_dir/NAME.so, or a path), checks its descriptor,
 * initializes the instance and checks its keys. Every refusal is added to
 * `errs` naming the file, line and module. Returns 0 or -1.
 */
int modules_load(registry *r, config *cfg, const char *module_dir, config_errors *errs);
void modules_unload(registry *r);

instance *modules_gateway(registry *r, const char *name);
/* The first gateway instance backed by module `module_name`, or NULL. */
instance *modules_gateway_by_module(registry *r, const char *module_name);
int modules_notifier_wants(const instance *n, const char *event_type);

/* Caps as a JSON-ready list of names, written into `out` (comma separated). */
void modules_caps_names(uint64_t caps, const char **names, size_t *count, size_t max);

#endif
