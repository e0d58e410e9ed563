/* ratelimit.h - per-caller request limits, in Redis when configured. */
#ifndef PAYD_RATELIMIT_H
#define PAYD_RATELIMIT_H

#include "app.h"

/*
 * Counts one request for `caller` ("key:<id>", "user:<sub>") in the
 * current one-minute window. Returns 0 when allowed, or the seconds until
 * the window ends when the caller is over [auth] rate_limit_per_minute.
 * Always 0 when the limit is off. Thread-safe.
 */
int ratelimit_check(app *a, const char *caller);

#endif
