-- GET /v1/orders/{id}: authentication (cached key) plus one indexed read.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PAYD_BENCH_KEY")
wrk.path = "/v1/orders/" .. os.getenv("PAYD_BENCH_ORDER")
