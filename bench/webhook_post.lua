-- wrk script: POST /telegram/webhook with a new update (a reply from a user) per request,
-- as Telegram sends it: JSON, the secret header, update_id increasing and unique.
-- Environment: HERALD_WEBHOOK_SECRET, BENCH_BASE (an update_id base keeping rounds apart).
local counter = 0
local thread_id = 0
local threads = {}
local base = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = tid
  base = tonumber(os.getenv("BENCH_BASE") or "0")
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-Telegram-Bot-Api-Secret-Token"] = os.getenv("HERALD_WEBHOOK_SECRET") or ""
end

function request()
  counter = counter + 1
  -- Threads take interleaved ids: thread t, request n -> base + n * 16 + t.
  local id = base + counter * 16 + thread_id
  local body = string.format(
    '{"update_id": %d, "message": {"message_id": %d, "from": {"id": 4242, "is_bot": false,'
    .. ' "first_name": "Ann"}, "chat": {"id": 4242, "first_name": "Ann", "type": "private"},'
    .. ' "date": 1764500000, "text": "Thanks, got it!"}}', id, counter)
  return wrk.format(nil, "/telegram/webhook", nil, body)
end

function done(summary, latency, requests)
  local codes = summary.errors
  io.write(string.format("non2xx=%d\n", codes.status))
end
