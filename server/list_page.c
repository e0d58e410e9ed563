/*
 * list_page.c - one page of a list: the cursor check and the envelope.
 */
#include "list_page.h"

#include <libpq-fe.h>

int list_page_cursor(store_conn *c, store_stmt *st, const char *cursor, const char *user_scope,
                     const char *noun, fault *f)
{
    const char *params[] = {cursor, user_scope};
    PGresult *r = NULL;
    int rc = store_query(c, st, 2, params, &r);
    int found = rc == STORE_OK && PQntuples(r) == 1;
    PQclear(r);
    if (rc != STORE_OK) return fault_store(f, rc);
    if (!found)
        return fault_invalid(f, "resource_missing", "starting_after", "no such %s: '%.64s'", noun, cursor);
    return 0;
}

int list_page_query(store_conn *c, store_stmt *st, int nparams, const char *const *params, int limit,
                    json_t **out, fault *f)
{
    PGresult *r = NULL;
    int rc = store_query(c, st, nparams, params, &r);
    if (rc != STORE_OK) return fault_store(f, rc);
    json_t *data = json_array();
    int n = PQntuples(r);
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(data, json_loads(store_val(r, i, "j"), 0, NULL));
    PQclear(r);
    *out = json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "has_more", n > limit);
    return 0;
}
