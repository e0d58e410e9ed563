/* api_customers.h - /v1/customers and saved payment methods. */
#ifndef PAYD_API_CUSTOMERS_H
#define PAYD_API_CUSTOMERS_H

#include "http.h"

void api_customers_create(app *a, http_req *r);
void api_customers_get(app *a, http_req *r);
void api_methods_save(app *a, http_req *r);
void api_methods_list(app *a, http_req *r);
void api_methods_delete(app *a, http_req *r);
void api_methods_default(app *a, http_req *r);

#endif
