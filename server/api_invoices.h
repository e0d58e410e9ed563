/* api_invoices.h - GET /v1/orders/{id}/invoice. */
#ifndef PAYD_API_INVOICES_H
#define PAYD_API_INVOICES_H

#include "http.h"

void api_invoices_get(app *a, http_req *r);

#endif
