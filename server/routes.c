/*
 * routes.c - the routing table: method + path pattern -> handler, with what
 * each route requires. Order matters only between patterns that could both
 * match; the first match wins. Read top to bottom, this is the API.
 */
#include "api_ops.h"
#include "http.h"

#define JSON_WRITE (ROUTE_JSON | ROUTE_IDEMPOTENT)

const http_route http_routes[] = {
    {"GET", "/healthz", api_ops_healthz, ROUTE_PUBLIC, "healthz"},
    {"GET", "/readyz", api_ops_readyz, ROUTE_PUBLIC, "readyz"},
    {"GET", "/metrics", api_ops_metrics, ROUTE_PUBLIC, "metrics"},
    {"GET", "/v1/gateways", api_ops_gateways, ROUTE_PUBLIC, "gateways.list"},

    {"GET", "/mock/{*}", api_ops_mock_page, ROUTE_PUBLIC | ROUTE_RAW, "mock.page"},
    {"POST", "/mock/{*}", api_ops_mock_page, ROUTE_PUBLIC | ROUTE_RAW, "mock.page"},
    {"GET", "/pages/{instance}/{*}", api_ops_instance_page, ROUTE_PUBLIC | ROUTE_RAW, "pages"},
    {"POST", "/pages/{instance}/{*}", api_ops_instance_page, ROUTE_PUBLIC | ROUTE_RAW, "pages"},

    {"POST", "/v1/test/clock", api_ops_test_clock, ROUTE_ADMIN | ROUTE_JSON | ROUTE_TEST, "test.clock"},
};

const int http_route_count = (int)(sizeof http_routes / sizeof http_routes[0]);
