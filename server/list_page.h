/*
 * list_page.h - one page of a list: the cursor check and the envelope.
 *
 * Every list answers {"object":"list","data":[...],"has_more":bool}. The
 * page query asks for limit + 1 rows; the extra row only says more exist.
 */
#ifndef PAYD_LIST_PAGE_H
#define PAYD_LIST_PAGE_H

#include <jansson.h>

#include "fault.h"
#include "store.h"

/*
 * 0 when `cursor` (a starting_after id) names a row the caller may see:
 * `st` takes $1 = the id and $2 = the caller's user scope (NULL: any) and
 * answers one row when visible. An unknown or someone else's cursor is a
 * mistake, not the end of the list: -1 with 400 resource_missing naming
 * the `noun`. The caller holds `c` and releases it either way.
 */
int list_page_cursor(store_conn *c, store_stmt *st, const char *cursor, const char *user_scope,
                     const char *noun, fault *f);

/*
 * Runs the page query `st` on `c` (held and released by the caller) and
 * builds the envelope from column "j" (a JSON text) of the first `limit`
 * rows. On success *out is the caller's; -1 with a store fault
 * otherwise.
 */
int list_page_query(store_conn *c, store_stmt *st, int nparams, const char *const *params, int limit,
                    json_t **out, fault *f);

#endif
