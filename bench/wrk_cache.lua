-- wrk script of bench/cache_bench.py: a small deterministic chat request (temperature 0) whose
-- cache outcome is chosen by BENCH_CACHE_MODE:
--   hit     the same body every time: after the first request, every answer is an exact hit
--   miss    a different user message every request: a lookup that misses, the upstream call and
--           storing the answer
--   bypass  temperature 0.2: the cache decides "random sampling" and stays out of the way (the
--           path every request took before the cache existed)
--   fresh   temperature 0.2 and a different user message every request: what a miss costs without
--           the cache (a new message is also new to the input guard's memo)
-- Responses are checked like bench/wrk_openai.lua: non-2xx and bodies without "choices" are
-- counted and reported in the BENCHRESULT line.

local mode = os.getenv("BENCH_CACHE_MODE") or "hit"
local thread_id = 0
local counter = 0

local function body(n)
  local temperature = (mode == "bypass" or mode == "fresh") and "0.2" or "0"
  local question = "Summarize the benefits of connection pooling for an HTTP client."
  if mode == "miss" or mode == "fresh" then
    question = question .. " (variant " .. thread_id .. "-" .. n .. ")"
  end
  return '{"model":"bench-model","messages":['
    .. '{"role":"system","content":"You are a concise assistant. Answer in at most two sentences."},'
    .. '{"role":"user","content":"' .. question .. '"}],'
    .. '"max_tokens":64,"temperature":' .. temperature .. '}'
end

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = thread_index or 0
  -- A run's own prefix, so a second run (latency after throughput) does not hit the first's entries.
  thread_id = tostring(thread_id) .. "-" .. tostring(os.time()) .. "-" .. tostring(math.random(1, 1e9))
  non2xx = 0
  badbody = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  return wrk.format("POST", "/v1/chat/completions", nil, body(counter))
end

function response(status, headers, resp_body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  elseif not string.find(resp_body, '"choices"', 1, true) then
    badbody = badbody + 1
  end
end

function done(summary, latency, requests)
  local bad2xx, bad = 0, 0
  for _, thread in ipairs(threads) do
    bad2xx = bad2xx + (thread:get("non2xx") or 0)
    bad = bad + (thread:get("badbody") or 0)
  end
  io.write(string.format(
    "BENCHRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d badbody=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), bad2xx, bad))
end
