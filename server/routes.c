/*
 * routes.c - the routing table: method + path pattern -> handler, with what
 * each route requires and the query parameters it reads (any other is a
 * 400). The first match wins. Read top to bottom, this is the API
 * (documented in README.md).
 */
#include "api_admin.h"
#include "api_admin_payments.h"
#include "api_customers.h"
#include "api_invoices.h"
#include "api_ops.h"
#include "api_orders.h"
#include "api_payments.h"
#include "api_reports.h"
#include "api_webhooks.h"
#include "http.h"

#define WRITE (ROUTE_JSON | ROUTE_IDEMPOTENT)
/* Every list pages with these (api_limit, starting_after). */
#define PAGE "limit starting_after"

const http_route http_routes[] = {
    {"GET", "/healthz", api_ops_healthz, ROUTE_PUBLIC, "healthz", NULL},
    {"GET", "/readyz", api_ops_readyz, ROUTE_PUBLIC, "readyz", NULL},
    {"GET", "/metrics", api_ops_metrics, ROUTE_PUBLIC, "metrics", NULL},
    {"GET", "/v1/gateways", api_ops_gateways, ROUTE_PUBLIC, "gateways.list", NULL},

    {"POST", "/v1/orders", api_orders_create, ROUTE_AUTH | WRITE, "orders.create", NULL},
    {"GET", "/v1/orders", api_orders_list, ROUTE_AUTH, "orders.list", PAGE " status currency user_id created_gte created_lte"},
    {"GET", "/v1/orders/{id}", api_orders_get, ROUTE_AUTH, "orders.get", NULL},
    {"PATCH", "/v1/orders/{id}", api_orders_update, ROUTE_MERCHANT | WRITE, "orders.update", NULL},
    {"POST", "/v1/orders/{id}/cancel", api_orders_cancel, ROUTE_AUTH | WRITE, "orders.cancel", NULL},
    {"GET", "/v1/orders/{id}/invoice", api_invoices_get, ROUTE_AUTH, "orders.invoice", "format"},

    {"POST", "/v1/payments", api_payments_create, ROUTE_AUTH | WRITE | ROUTE_TEST_CARD, "payments.create", NULL},
    {"GET", "/v1/payments", api_payments_list, ROUTE_AUTH, "payments.list", PAGE " order_id needs_review"},
    {"GET", "/v1/payments/{id}", api_payments_get, ROUTE_AUTH, "payments.get", NULL},
    {"POST", "/v1/payments/{id}/confirm", api_payments_confirm, ROUTE_AUTH | WRITE | ROUTE_TEST_CARD, "payments.confirm", NULL},
    {"POST", "/v1/payments/{id}/capture", api_payments_capture, ROUTE_MERCHANT | WRITE, "payments.capture", NULL},
    {"POST", "/v1/payments/{id}/cancel", api_payments_cancel, ROUTE_AUTH | WRITE, "payments.cancel", NULL},

    {"POST", "/v1/refunds", api_refunds_create, ROUTE_MERCHANT | WRITE, "refunds.create", NULL},
    {"GET", "/v1/refunds", api_refunds_list, ROUTE_AUTH, "refunds.list", PAGE " payment_id order_id"},
    {"GET", "/v1/refunds/{id}", api_refunds_get, ROUTE_AUTH, "refunds.get", NULL},

    {"POST", "/v1/customers", api_customers_create, ROUTE_AUTH | WRITE, "customers.create", NULL},
    {"GET", "/v1/customers/{id}", api_customers_get, ROUTE_AUTH, "customers.get", NULL},
    {"POST", "/v1/customers/{id}/payment_methods", api_methods_save, ROUTE_AUTH | WRITE, "methods.save", NULL},
    {"GET", "/v1/customers/{id}/payment_methods", api_methods_list, ROUTE_AUTH, "methods.list", NULL},
    {"DELETE", "/v1/customers/{id}/payment_methods/{pm}", api_methods_delete, ROUTE_AUTH | ROUTE_IDEMPOTENT, "methods.delete", NULL},
    {"POST", "/v1/customers/{id}/payment_methods/{pm}/default", api_methods_default, ROUTE_AUTH | ROUTE_IDEMPOTENT, "methods.default", NULL},

    {"POST", "/v1/webhooks/{gateway}", api_webhooks_receive, ROUTE_PUBLIC | ROUTE_RAW, "webhooks.receive", NULL},
    {"GET", "/v1/events", api_events_list, ROUTE_MERCHANT, "events.list", PAGE " type object_id"},

    {"GET", "/v1/admin/transactions", api_admin_transactions, ROUTE_ADMIN, "admin.transactions", PAGE " payment_id order_id type currency gateway"},
    {"GET", "/v1/admin/audit", api_admin_audit, ROUTE_ADMIN, "admin.audit", PAGE " entity"},
    {"GET", "/v1/admin/audit/verify", api_admin_audit_verify, ROUTE_ADMIN, "admin.audit_verify", NULL},
    {"GET", "/v1/admin/outbox", api_admin_outbox_list, ROUTE_ADMIN, "admin.outbox", PAGE " state"},
    {"POST", "/v1/admin/outbox/{id}/replay", api_admin_outbox_replay, ROUTE_ADMIN | ROUTE_IDEMPOTENT, "admin.outbox_replay", NULL},
    {"POST", "/v1/admin/payments/{id}/approve", api_admin_payments_approve, ROUTE_ADMIN | WRITE, "admin.payments_approve", NULL},
    {"POST", "/v1/admin/payments/{id}/reject", api_admin_payments_reject, ROUTE_ADMIN | WRITE, "admin.payments_reject", NULL},
    {"POST", "/v1/admin/payments/{id}/resolve_review", api_admin_payments_resolve_review, ROUTE_ADMIN | WRITE, "admin.payments_resolve_review", NULL},
    {"POST", "/v1/admin/refunds/{id}/confirm", api_admin_refunds_confirm, ROUTE_ADMIN | WRITE, "admin.refunds_confirm", NULL},
    {"POST", "/v1/admin/refunds/{id}/reject", api_admin_refunds_reject, ROUTE_ADMIN | WRITE, "admin.refunds_reject", NULL},
    {"GET", "/v1/admin/orders", api_orders_list, ROUTE_ADMIN, "admin.orders", PAGE " status currency user_id created_gte created_lte"},
    {"GET", "/v1/admin/reports/summary", api_reports_summary, ROUTE_ADMIN, "admin.reports_summary", "from to group_by"},
    {"GET", "/v1/admin/reconcile", api_reports_reconcile, ROUTE_ADMIN, "admin.reconcile", PAGE " gateway from to"},

    {"GET", "/mock/{*}", api_ops_mock_page, ROUTE_PUBLIC | ROUTE_RAW, "mock.page", NULL},
    {"POST", "/mock/{*}", api_ops_mock_page, ROUTE_PUBLIC | ROUTE_RAW, "mock.page", NULL},
    {"GET", "/pages/{instance}/{*}", api_ops_instance_page, ROUTE_PUBLIC | ROUTE_RAW, "pages", NULL},
    {"POST", "/pages/{instance}/{*}", api_ops_instance_page, ROUTE_PUBLIC | ROUTE_RAW, "pages", NULL},

    {"POST", "/v1/test/clock", api_ops_test_clock, ROUTE_ADMIN | ROUTE_JSON | ROUTE_TEST, "test.clock", NULL},
};

const int http_route_count = (int)(sizeof http_routes / sizeof http_routes[0]);
