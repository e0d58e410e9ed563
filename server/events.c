/*
 * events.c - the normalized event stream.
 *
 * Every state change that matters to the outside world emits one event in
 * the same transaction as the change, together with an outbox row for each
 * notifier instance subscribed to that event type. The outbox dispatcher
 * then delivers them at least once; receivers dedup on the event id.
 * One statement (a data-modifying CTE) writes the event and its outbox rows,
 * so emitting costs one round trip.
 */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "list_page.h"
#include "orders.h"

STORE_STMT(stmt_emit,
           "WITH e AS (INSERT INTO events (id, type, object_type, object_id, order_id, user_id, data, request_id)"
           " VALUES ($1, $2, $3, $4, $5, $6, json_build_object('object', $7::json, 'order',"
           "  (SELECT " ORDER_JSON "::json FROM orders o WHERE o.id = $5 AND $3 <> 'order')), $8) RETURNING id)"
           " INSERT INTO outbox (event_id, notifier) SELECT e.id, n FROM e, unnest($9::text[]) AS n");

int events_emit(store_conn *c, const registry *mods, const char *type, const char *object_type,
                const char *object_id, const char *order_id, const char *user_id,
                const char *object_json, const char *request_id)
{
    char id[IDS_MAX];
    ids_new("evt", id);
    /* Instance names are [a-z0-9_-] (config.c), so they need no quoting in
     * the array literal; names are at most 48 characters. */
    size_t cap = 3 + mods->notifier_count * 50;
    char *subscribers = malloc(cap);
    if (!subscribers) return STORE_E_QUERY;
    size_t used = 0;
    subscribers[used++] = '{';
    for (size_t i = 0; i < mods->notifier_count; i++) {
        const instance *n = mods->notifiers[i];
        if (!modules_notifier_wants(n, type)) continue;
        used += (size_t)snprintf(subscribers + used, cap - used, "%s%s", used > 1 ? "," : "", n->name);
    }
    subscribers[used++] = '}';
    subscribers[used] = '\0';
    const char *params[] = {id, type, object_type, object_id, order_id, user_id, object_json,
                            request_id, subscribers};
    int rc = store_defer(c, &stmt_emit, 9, params); /* copies the parameters */
    free(subscribers);
    return rc;
}

STORE_STMT(stmt_list,
           "SELECT json_build_object('id', id, 'object', 'event', 'type', type,"
           " 'object_type', object_type, 'object_id', object_id, 'order_id', order_id,"
           " 'created', extract(epoch FROM created_at)::bigint, 'request_id', request_id,"
           " 'data', data)::text AS j"
           " FROM events WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR object_id = $2)"
           " AND ($3::text IS NULL OR seq > (SELECT seq FROM events WHERE id = $3))"
           " ORDER BY seq LIMIT $4::int");

STORE_STMT(stmt_cursor, "SELECT 1 FROM events WHERE id = $1 AND $2::text IS NULL");

int events_list(store *db, const char *type, const char *object_id, const char *starting_after,
                int limit, json_t **out, fault *f)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[] = {type, object_id, starting_after, lim};
    store_conn *c = store_acquire(db);
    if (!c) return fault_store(f, STORE_E_UNAVAILABLE);
    int rc = starting_after ? list_page_cursor(c, &stmt_cursor, starting_after, NULL, "event", f) : 0;
    if (rc == 0) rc = list_page_query(c, &stmt_list, 4, params, limit, out, f);
    store_release(c);
    return rc;
}
