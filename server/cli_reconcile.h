/* cli_reconcile.h - `payd reconcile`: payd's books against a provider. */
#ifndef PAYD_CLI_RECONCILE_H
#define PAYD_CLI_RECONCILE_H

#include "app.h"

typedef struct cli_reconcile_opts {
    const char *config;   /* -c FILE (default conf/payd.conf); unused with --server */
    const char *gateway;  /* gateway instance name */
    const char *from, *to;
    const char *server;   /* --server URL: ask that payd instead of running here */
    int page_size;        /* --page-size: payments per page (1..RECONCILE_PAGE_MAX) */
    const char *starting_after; /* --starting-after: resume after this payment */
} cli_reconcile_opts;

/* Parses the arguments after `reconcile`. 0, or 2 (usage printed). */
int cli_reconcile_parse(int argc, char **argv, cli_reconcile_opts *o);
/* Runs in this process on an app opened with modules and database. */
int cli_reconcile_run(app *a, const cli_reconcile_opts *o);
/* Asks o->server's GET /v1/admin/reconcile with the admin key in
 * $PAYD_ADMIN_KEY. */
int cli_reconcile_remote(const cli_reconcile_opts *o);
/* Both return the exit code: 0 no mismatch, 1 mismatches (one line each on
 * stdout), 2 usage, config, database or server errors. */

#endif
