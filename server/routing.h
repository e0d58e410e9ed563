/* routing.h - which gateway instance takes a payment. */
#ifndef PAYD_ROUTING_H
#define PAYD_ROUTING_H

#include "app.h"
#include "fault.h"
#include "modules.h"

/*
 * Picks the instance for a payment: the explicitly requested one, else the
 * [routing] currency.XXX rule, else [routing] default, else the only
 * gateway configured. NULL with a fault when none applies.
 */
instance *routing_pick(app *a, const char *requested, const char *currency, fault *f);

#endif
