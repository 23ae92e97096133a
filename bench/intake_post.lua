-- wrk script: POST /api/tasks with a unique Idempotency-Key per request.
-- Environment: HERALD_TOKEN (bearer token), BENCH_RUN (a run id keeping keys unique).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("HERALD_TOKEN") or "")
  wrk.body = '{"chat_id": 4242, "text": "Your order has shipped"}'
end

function request()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = (os.getenv("BENCH_RUN") or "run") .. "-" .. thread_id .. "-" .. counter
  return wrk.format(nil, "/api/tasks")
end

function done(summary, latency, requests)
  local codes = summary.errors
  io.write(string.format("non2xx=%d\n", codes.status))
end
