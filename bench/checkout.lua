-- A whole synchronous checkout per two requests: create an order, then
-- create and confirm a payment for it on the mock gateway (succeeds at once).
local key = "Bearer " .. os.getenv("PAYD_BENCH_KEY")
local order = nil

request = function()
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = key}
  if order then
    local body = '{"order":"' .. order .. '","payment_method":"pm_card_visa","confirm":true}'
    order = nil
    return wrk.format("POST", "/v1/payments", headers, body)
  end
  return wrk.format("POST", "/v1/orders", headers,
    '{"currency":"EUR","items":[{"name":"Book","quantity":1,"unit_amount":1999}]}')
end

response = function(status, headers, body)
  if status == 201 then
    local id = body:match('"id":"(ord_[%w]+)"')
    if id then order = id end
  end
end
