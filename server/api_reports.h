/* api_reports.h - /v1/admin/reports and /v1/admin/reconcile. */
#ifndef PAYD_API_REPORTS_H
#define PAYD_API_REPORTS_H

#include "http.h"

/* GET /v1/admin/reports/summary?from=&to=&group_by=day|gateway|currency */
void api_reports_summary(app *a, http_req *r);
/* GET /v1/admin/reconcile?gateway=&from=&to= */
void api_reports_reconcile(app *a, http_req *r);

#endif
