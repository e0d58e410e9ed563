/* janitor.h - resolves payments and refunds whose outcome is unknown. */
#ifndef PAYD_JANITOR_H
#define PAYD_JANITOR_H

#include "app.h"

/* One pass: claims due rows with SKIP LOCKED and resolves them. */
void janitor_run(app *a);

/* Seconds until the next try after `attempts` tries, from [payments]
 * janitor_schedule ("60,300,3600,86400": the last step repeats). */
int janitor_backoff_s(app *a, int attempts);

#endif
