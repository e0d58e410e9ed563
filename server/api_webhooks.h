/* api_webhooks.h - POST /v1/webhooks/{gateway}, GET /v1/events. */
#ifndef PAYD_API_WEBHOOKS_H
#define PAYD_API_WEBHOOKS_H

#include "http.h"

void api_webhooks_receive(app *a, http_req *r);
void api_events_list(app *a, http_req *r);

#endif
