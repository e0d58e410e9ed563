/* background.h - payd's background threads (janitor, outbox, sealing). */
#ifndef PAYD_BACKGROUND_H
#define PAYD_BACKGROUND_H

#include "app.h"

void background_start(app *a);
void background_stop(app *a);

#endif
