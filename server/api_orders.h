/* api_orders.h - /v1/orders. */
#ifndef PAYD_API_ORDERS_H
#define PAYD_API_ORDERS_H

#include "http.h"

void api_orders_create(app *a, http_req *r);
void api_orders_list(app *a, http_req *r);
void api_orders_get(app *a, http_req *r);
void api_orders_cancel(app *a, http_req *r);
void api_orders_update(app *a, http_req *r);

#endif
