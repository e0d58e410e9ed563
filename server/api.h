/* api.h - what every api_*.c handler shares: context, replies, list params. */
#ifndef PAYD_API_H
#define PAYD_API_H

#include "context.h"
#include "fault.h"
#include "http.h"

/* Builds the domain context for this request (borrows from r). */
void api_ctx(app *a, http_req *r, op_ctx *x);
/* Answers a domain call: rc == 0 -> `status` with `out`; else the fault's
 * error shape, with `out` (if any) beside it under `extra_key`. Steals out. */
void api_reply(http_req *r, int rc, int status, json_t *out, const fault *f, const char *extra_key);
/* ?limit=1..100 (default 10). 0, or -1 after replying 400. */
int api_limit(http_req *r, int *limit);
/* ?limit=1..max (default dflt), for lists with other bounds. */
int api_limit_upto(http_req *r, int *limit, int dflt, int max);
/* A query parameter that must be digits (unix seconds); NULL when absent.
 * Sets *bad and replies 400 when present but malformed. */
const char *api_query_digits(http_req *r, const char *name, int *bad);

#endif
