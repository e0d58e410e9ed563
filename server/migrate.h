/* migrate.h - schema migrations embedded from db/migrations/. */
#ifndef PAYD_MIGRATE_H
#define PAYD_MIGRATE_H

#include "store.h"

typedef struct migration {
    const char *version; /* file name without .sql, e.g. "0001_init" */
    const char *sql;
} migration;

extern const migration migrations[];
extern const int migration_count;

/* Applies every migration not yet applied. 0 or a STORE_E_* code. */
int migrate_apply(store *s);
/* 1 when the latest migration is applied, 0 when not, <0 on error. */
int migrate_is_current(store_conn *c);

#endif
