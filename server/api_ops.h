/* api_ops.h - operational endpoints: health, readiness, metrics, gateways, pages. */
#ifndef PAYD_API_OPS_H
#define PAYD_API_OPS_H

#include "http.h"

void api_ops_healthz(app *a, http_req *r);
void api_ops_readyz(app *a, http_req *r);
void api_ops_metrics(app *a, http_req *r);
void api_ops_gateways(app *a, http_req *r);
void api_ops_mock_page(app *a, http_req *r);
void api_ops_instance_page(app *a, http_req *r);
void api_ops_test_clock(app *a, http_req *r);

#endif
