/* context.h - who is asking, for domain operations. */
#ifndef PAYD_CONTEXT_H
#define PAYD_CONTEXT_H

#include "app.h"
#include "arena.h"
#include "auth.h"

/* Borrowed for one call. The domain uses `who` for ownership checks and
 * audit, `request_id` for audit and events, `arena` for scratch memory. */
typedef struct op_ctx {
    app *a;
    const principal *who;
    const char *request_id;
    arena *arena;
} op_ctx;

/* The actor string for audit rows ("key:<id>", "user:<sub>", "system:<job>"). */
static inline const char *op_actor(const op_ctx *x)
{
    return x->who && x->who->actor[0] ? x->who->actor : "system";
}

/* End users only see their own objects; keys see everything. */
static inline const char *op_user_scope(const op_ctx *x)
{
    return x->who && x->who->kind == PRINCIPAL_USER ? x->who->id : NULL;
}

#endif
