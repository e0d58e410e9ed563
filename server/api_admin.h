/* api_admin.h - /v1/admin: the ledger and the audit log. */
#ifndef PAYD_API_ADMIN_H
#define PAYD_API_ADMIN_H

#include "http.h"

void api_admin_transactions(app *a, http_req *r);
void api_admin_audit(app *a, http_req *r);
void api_admin_audit_verify(app *a, http_req *r);
void api_admin_outbox_list(app *a, http_req *r);
void api_admin_outbox_replay(app *a, http_req *r);

#endif
