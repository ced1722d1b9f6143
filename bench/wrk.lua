-- wrk script: `wrk -s bench/wrk.lua URL -- lookup|trade STOCK...`
-- lookup: GET /stocks/<name>, cycling through the stocks.
-- trade:  POST /orders of 1 share, buy then sell of each stock in turn, so quantities never run out.
-- done() prints one line "JSON {...}" with throughput and latency percentiles in ms.

local mode, stocks, n = "lookup", {}, 0

function init(args)
  mode = args[1]
  for i = 2, #args do stocks[#stocks + 1] = args[i] end
end

function request()
  n = n + 1
  local name = stocks[(math.floor((n - 1) / 2) % #stocks) + 1]
  if mode == "lookup" then
    return wrk.format("GET", "/stocks/" .. name)
  end
  local side = (n % 2 == 1) and "buy" or "sell"
  local body = string.format('{"name": "%s", "quantity": 1, "type": "%s"}', name, side)
  return wrk.format("POST", "/orders", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.6f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"mean": %.4f, "p50": %.4f, "p90": %.4f, "p99": %.4f, "max": %.4f}\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency.mean / 1000, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
