-- POST /v1/orders: one write transaction (order, audit row, event).
wrk.method = "POST"
wrk.path = "/v1/orders"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PAYD_BENCH_KEY")
wrk.body = '{"currency":"USD","items":[{"name":"Tea","quantity":2,"unit_amount":1250}],"tax":100}'
