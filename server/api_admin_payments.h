/* api_admin_payments.h - /v1/admin decisions on payments and manual refunds. */
#ifndef PAYD_API_ADMIN_PAYMENTS_H
#define PAYD_API_ADMIN_PAYMENTS_H

#include "http.h"

void api_admin_payments_approve(app *a, http_req *r);
void api_admin_payments_reject(app *a, http_req *r);
void api_admin_refunds_confirm(app *a, http_req *r);
void api_admin_refunds_reject(app *a, http_req *r);
void api_admin_payments_resolve_review(app *a, http_req *r);

#endif
