/* app.h - the long-lived objects one payd process serves with. */
#ifndef PAYD_APP_H
#define PAYD_APP_H

#include <stdatomic.h>

#include "config.h"
#include "modules.h"
#include "redis.h"
#include "store.h"

typedef struct app {
    config *cfg;
    store *db;
    redis *redis;
    registry *mods;
    struct mg_context *http;
    struct invoice_template *invoice_template; /* loaded at startup (invoice_setup), read-only */
    _Atomic int stopping;
} app;

#endif
