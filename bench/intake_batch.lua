-- wrk script: POST /api/tasks/batch, BATCH_SIZE items (default 500) with unique keys.
local counter = 0
local thread_id = 0
local threads = {}
local size = tonumber(os.getenv("BATCH_SIZE") or "500")

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("HERALD_TOKEN") or "")
end

function request()
  counter = counter + 1
  local prefix = (os.getenv("BENCH_RUN") or "run") .. "-" .. thread_id .. "-" .. counter .. "-"
  local items = {}
  for i = 1, size do
    items[i] = '{"idempotency_key": "' .. prefix .. i .. '", "chat_id": ' .. (1000 + i % 50)
      .. ', "text": "Your order has shipped"}'
  end
  return wrk.format(nil, "/api/tasks/batch", nil, '{"items": [' .. table.concat(items, ",") .. ']}')
end

function done(summary, latency, requests)
  io.write(string.format("non2xx=%d\n", summary.errors.status))
end
