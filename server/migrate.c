/*
 * migrate.c - apply the db/migrations SQL files in order.
 *
 * The SQL files are embedded at build time (scripts/embed-migrations.sh), so
 * the binary carries its own schema. Each migration runs in its own
 * transaction together with its row in schema_migrations, so a failed
 * migration leaves nothing half applied. A session-level advisory lock makes
 * two `payd migrate` processes (or two payd instances starting at once)
 * take turns; the second finds everything applied and does nothing.
 */
#include "migrate.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define MIGRATE_LOCK_KEY "7061796400000001" /* "payd" + 1 */

STORE_STMT(stmt_applied, "SELECT 1 FROM schema_migrations WHERE version = $1");
STORE_STMT(stmt_record, "INSERT INTO schema_migrations (version) VALUES ($1)");

int migrate_apply(store *s)
{
    store_conn *c = store_acquire(s);
    if (!c) {
        log_error("migrate", "database unavailable");
        return STORE_E_UNAVAILABLE;
    }
    int rc = store_command(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")");
    if (rc == STORE_OK)
        rc = store_command(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                              " version text PRIMARY KEY,"
                              " applied_at timestamptz NOT NULL DEFAULT now())");
    int applied = 0;
    for (int i = 0; rc == STORE_OK && i < migration_count; i++) {
        const char *params[] = {migrations[i].version};
        PGresult *r = NULL;
        rc = store_query(c, &stmt_applied, 1, params, &r);
        if (rc != STORE_OK) break;
        int done = PQntuples(r) > 0;
        PQclear(r);
        if (done) continue;
        rc = store_begin(c);
        if (rc == STORE_OK) rc = store_command(c, migrations[i].sql);
        if (rc == STORE_OK) rc = store_query(c, &stmt_record, 1, params, NULL);
        if (rc == STORE_OK) rc = store_commit(c);
        if (rc != STORE_OK) {
            log_error("migrate", "migration %s failed: %s", migrations[i].version,
                      store_last_error(c));
            store_rollback(c);
            break;
        }
        log_info("migrate", "applied %s", migrations[i].version);
        applied++;
    }
    store_command(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")");
    store_release(c);
    if (rc == STORE_OK)
        log_info("migrate", "schema current (%d applied now, %d total)", applied, migration_count);
    return rc;
}

STORE_STMT(stmt_latest, "SELECT 1 FROM schema_migrations WHERE version = $1");

int migrate_is_current(store_conn *c)
{
    const char *params[] = {migrations[migration_count - 1].version};
    PGresult *r = NULL;
    int rc = store_query(c, &stmt_latest, 1, params, &r);
    if (rc == STORE_E_QUERY && strcmp(store_last_sqlstate(c), "42P01") == 0) return 0;
    if (rc != STORE_OK) return rc;
    int current = PQntuples(r) > 0;
    PQclear(r);
    return current;
}
