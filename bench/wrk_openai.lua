-- wrk script for the gateway benchmark: POSTs a small, realistic OpenAI request
-- and checks every response, so a run that only measured 401s or error bodies
-- is visible in the table instead of looking fast.
--
-- Driven by environment variables (set by bench/run_gateway_bench.sh):
--   BENCH_MODE     chat | stream | embed        (default chat)
--   BENCH_PATH     request path, e.g. /v1/chat/completions
--   BENCH_API_KEY  sent as "Authorization: Bearer ..." when set
--
-- At the end it prints one machine-readable line:
--   BENCHRESULT requests=N duration_us=N rps=F p50_us=N p99_us=N non2xx=N badbody=N
--               connect=N read=N write=N timeout=N
-- and, if any response failed the check, the first one:
--   BENCHSAMPLE HTTP <status> <first 300 bytes of its body>
-- Latency is wrk's per-request time from write to the end of the full response
-- (for streaming: until the last SSE chunk / end of the chunked body).

local mode = os.getenv("BENCH_MODE") or "chat"
local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
local api_key = os.getenv("BENCH_API_KEY") or ""

local bodies = {
  chat = '{"model":"bench-model","messages":['
    .. '{"role":"system","content":"You are a concise assistant. Answer in at most two sentences."},'
    .. '{"role":"user","content":"Summarize the benefits of connection pooling for an HTTP client."}],'
    .. '"max_tokens":64,"temperature":0.2}',
  stream = '{"model":"bench-stream","messages":['
    .. '{"role":"system","content":"You are a concise assistant. Answer in at most two sentences."},'
    .. '{"role":"user","content":"Summarize the benefits of connection pooling for an HTTP client."}],'
    .. '"max_tokens":64,"temperature":0.2,"stream":true}',
  embed = '{"model":"bench-embed","input":"Connection pooling reuses established connections."}',
}

-- A 2xx response must also carry the payload we asked for: a gateway that
-- answers 200 with an error object would otherwise count as a success.
local markers = {
  chat = '"choices"',
  stream = "data: [DONE]",
  embed = '"embedding"',
}

local body = bodies[mode]
if body == nil then
  error("BENCH_MODE must be chat, stream or embed, not " .. mode)
end
local marker = markers[mode]

wrk.method = "POST"
wrk.path = path
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = (mode == "stream") and "text/event-stream" or "application/json"
if api_key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. api_key
end

-- Per-thread counters, collected in done() through the thread handles.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
  badbody = 0
  sample = ""
end

-- Keep the first failing response (status + start of body) so the bench can
-- show *why* a target failed, e.g. a 401 from a missing API key.
local function remember(status, resp_body)
  if sample == "" then
    sample = "HTTP " .. status .. " " .. string.sub(resp_body or "", 1, 300)
  end
end

function response(status, headers, resp_body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    remember(status, resp_body)
  elseif resp_body == nil or not string.find(resp_body, marker, 1, true) then
    badbody = badbody + 1
    remember(status, resp_body)
  end
end

function done(summary, latency, requests)
  local n, b, first = 0, 0, ""
  for _, t in ipairs(threads) do
    n = n + (t:get("non2xx") or 0)
    b = b + (t:get("badbody") or 0)
    if first == "" then
      first = t:get("sample") or ""
    end
  end
  local secs = summary.duration / 1e6
  local rps = 0
  if secs > 0 then
    rps = summary.requests / secs
  end
  local e = summary.errors
  io.write(string.format(
    "BENCHRESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p99_us=%d non2xx=%d badbody=%d "
      .. "connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, rps,
    latency:percentile(50), latency:percentile(99), n, b,
    e.connect, e.read, e.write, e.timeout))
  if first ~= "" then
    io.write("BENCHSAMPLE " .. string.gsub(first, "[\r\n]+", " ") .. "\n")
  end
end
