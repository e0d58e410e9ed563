/* api_payments.h - /v1/payments and /v1/refunds. */
#ifndef PAYD_API_PAYMENTS_H
#define PAYD_API_PAYMENTS_H

#include "http.h"

void api_payments_create(app *a, http_req *r);
void api_payments_confirm(app *a, http_req *r);
void api_payments_capture(app *a, http_req *r);
void api_payments_cancel(app *a, http_req *r);
void api_payments_get(app *a, http_req *r);
void api_payments_list(app *a, http_req *r);
void api_refunds_create(app *a, http_req *r);
void api_refunds_get(app *a, http_req *r);
void api_refunds_list(app *a, http_req *r);

#endif
