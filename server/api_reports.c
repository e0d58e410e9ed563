/*
 * api_reports.c - HTTP face of reports.c and reconcile.c: parse the range,
 * call the domain, reply. Reads only; both routes need the admin role
 * (routes.c).
 */
#include "api_reports.h"

#include "api.h"
#include "reconcile.h"
#include "reports.h"

void api_reports_summary(app *a, http_req *r)
{
    report_range rg;
    json_t *out = NULL;
    fault f;
    int rc = reports_range(a->cfg, http_query(r, "from"), http_query(r, "to"), &rg, &f);
    if (rc == 0) rc = reports_summary(a->db, &rg, http_query(r, "group_by"), &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}

void api_reports_reconcile(app *a, http_req *r)
{
    report_range rg;
    json_t *out = NULL;
    fault f;
    reconcile_page page = {.starting_after = http_query(r, "starting_after")};
    if (api_limit_upto(r, &page.limit, RECONCILE_PAGE_DEFAULT, RECONCILE_PAGE_MAX)) return;
    int rc = reports_range(a->cfg, http_query(r, "from"), http_query(r, "to"), &rg, &f);
    if (rc == 0) rc = reconcile_run(a, http_query(r, "gateway"), &rg, &page, &out, &f);
    api_reply(r, rc, 200, out, &f, NULL);
}
