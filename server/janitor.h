/* janitor.h - resolves payments and refunds whose outcome is unknown. */
#ifndef PAYD_JANITOR_H
#define PAYD_JANITOR_H

#include "app.h"

/* One pass: claims due rows with SKIP LOCKED and resolves them. */
void janitor_run(app *a);

#endif
