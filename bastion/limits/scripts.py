"""The Lua scripts of the Redis store: one admission and one settlement per request, each atomic.

Key layout (``P`` is ``limits.redis_prefix``; scope ``k``/``u``/``t`` and the entity's id)::

    P rl:<s>:<id>:r            ZSET  request log: member request id, score admission time (µs)
    P rl:<s>:<id>:t            ZSET  token log: member "<request id>|<tokens>", score admission time
    P rl:<s>:<id>:ts           STR   running sum of the token log
    P bu:<s>:<id>:<d|m>:<win>  STR   spend of a budget window, micro-dollars (seeded from the ledger)
        ...:<win>:r            ZSET  reservations: member "<request id>|<micro-dollars>", score expiry (µs)
        ...:<win>:rs           STR   running sum of the reservations

Logs expire with the window (PEXPIRE); budget keys a day after their window ends (EXPIREAT). A
reservation that is never settled (its process died) leaves after ``limits.reservation_ttl_s``.
Time is Redis's own clock (``TIME``) so every gateway process agrees on the window; tests pass
their own.
"""

from __future__ import annotations

import hashlib

ADMIT = r"""
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local rid = ARGV[2]
local nr = tonumber(ARGV[3])
local nt = tonumber(ARGV[4])
local nb = tonumber(ARGV[5])
local window = tonumber(ARGV[6])
local tokens = tonumber(ARGV[7])
local hold = tonumber(ARGV[8])
local cutoff = now - window
local log_ttl_ms = math.floor(window / 1000) + 1000

-- Remove log entries scored up to `upto` and take their amounts ("id|amount") off the sum.
local function evict(zkey, skey, upto)
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', upto)
  if #gone == 0 then return end
  local freed = 0
  for _, member in ipairs(gone) do
    freed = freed + tonumber(string.match(member, '|(%-?%d+)$'))
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', upto)
  if redis.call('ZCARD', zkey) == 0 then
    redis.call('DEL', skey)
  else
    redis.call('DECRBY', skey, freed)
  end
end

local function oldest_score(zkey)
  local first = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #first == 0 then return now end
  return tonumber(first[2])
end

-- Check every rule; record nothing unless all pass.
local k = 1
local a = 9
local req = {}
for i = 1, nr do
  local key = KEYS[k]
  local limit = tonumber(ARGV[a])
  k = k + 1
  a = a + 1
  redis.call('ZREMRANGEBYSCORE', key, '-inf', cutoff)
  local count = redis.call('ZCARD', key)
  local oldest = oldest_score(key)
  if count >= limit then
    return {1, i, oldest + window - now}
  end
  req[i] = {count, oldest + window - now}
end
local tok = {}
for i = 1, nt do
  local zkey = KEYS[k]
  local skey = KEYS[k + 1]
  local limit = tonumber(ARGV[a])
  k = k + 2
  a = a + 1
  evict(zkey, skey, cutoff)
  local used = tonumber(redis.call('GET', skey) or '0')
  if used < 0 then used = 0 end
  if used + tokens > limit then
    if tokens > limit then
      return {3, i, window, used}
    end
    local entries = redis.call('ZRANGE', zkey, 0, -1, 'WITHSCORES')
    local left = used
    local retry = window
    for j = 1, #entries, 2 do
      left = left - tonumber(string.match(entries[j], '|(%-?%d+)$'))
      if left + tokens <= limit then
        retry = tonumber(entries[j + 1]) + window - now
        break
      end
    end
    return {2, i, retry, used}
  end
  tok[i] = {used, oldest_score(zkey) + window - now}
end
local missing = {}
for i = 1, nb do
  local spent_key = KEYS[k]
  local zkey = KEYS[k + 1]
  local skey = KEYS[k + 2]
  local limit = tonumber(ARGV[a])
  local estimate = tonumber(ARGV[a + 1])
  k = k + 3
  a = a + 3
  local spent = redis.call('GET', spent_key)
  if not spent then
    missing[#missing + 1] = i
  else
    evict(zkey, skey, now)
    local reserved = tonumber(redis.call('GET', skey) or '0')
    if reserved < 0 then reserved = 0 end
    if tonumber(spent) + reserved + estimate > limit then
      return {4, i, 0, tonumber(spent), reserved}
    end
  end
end
if #missing > 0 then
  local out = {5, 0, 0}
  for _, i in ipairs(missing) do out[#out + 1] = i end
  return out
end

-- All passed: record the request everywhere. Replies carry what the headers need.
local out = {0, 0, 0}
k = 1
a = 9
for i = 1, nr do
  redis.call('ZADD', KEYS[k], now, rid)
  redis.call('PEXPIRE', KEYS[k], log_ttl_ms)
  out[#out + 1] = req[i][1]
  out[#out + 1] = req[i][2]
  k = k + 1
  a = a + 1
end
for i = 1, nt do
  redis.call('ZADD', KEYS[k], now, rid .. '|' .. ARGV[7])
  redis.call('INCRBY', KEYS[k + 1], tokens)
  redis.call('PEXPIRE', KEYS[k], log_ttl_ms)
  redis.call('PEXPIRE', KEYS[k + 1], log_ttl_ms)
  out[#out + 1] = tok[i][1]
  out[#out + 1] = tok[i][2]
  k = k + 2
  a = a + 1
end
for i = 1, nb do
  local estimate = ARGV[a + 1]
  if tonumber(estimate) > 0 then
    redis.call('ZADD', KEYS[k + 1], now + hold, rid .. '|' .. estimate)
    redis.call('INCRBY', KEYS[k + 2], estimate)
    redis.call('EXPIREAT', KEYS[k + 1], ARGV[a + 2])
    redis.call('EXPIREAT', KEYS[k + 2], ARGV[a + 2])
  end
  k = k + 3
  a = a + 3
end
return out
"""

SETTLE = r"""
local rid = ARGV[1]
local nt = tonumber(ARGV[2])
local nb = tonumber(ARGV[3])
local estimated = ARGV[4]
local actual = ARGV[5]
local delta = tonumber(actual) - tonumber(estimated)
local k = 1
for i = 1, nt do
  if delta ~= 0 then
    local member = rid .. '|' .. estimated
    local score = redis.call('ZSCORE', KEYS[k], member)
    if score then
      redis.call('ZREM', KEYS[k], member)
      redis.call('ZADD', KEYS[k], score, rid .. '|' .. actual)
      redis.call('INCRBY', KEYS[k + 1], delta)
    end
  end
  k = k + 2
end
local a = 6
for i = 1, nb do
  local estimate = ARGV[a]
  local cost = tonumber(ARGV[a + 1])
  if tonumber(estimate) > 0 and redis.call('ZREM', KEYS[k + 1], rid .. '|' .. estimate) == 1 then
    redis.call('DECRBY', KEYS[k + 2], estimate)
  end
  -- Only into a counter that exists: a missing one is seeded from the ledger, which has this cost.
  if cost > 0 and redis.call('EXISTS', KEYS[k]) == 1 then
    redis.call('INCRBY', KEYS[k], cost)
  end
  k = k + 3
  a = a + 2
end
return 1
"""


def sha1(script: str) -> str:
    return hashlib.sha1(script.encode("utf-8")).hexdigest()


ADMIT_SHA = sha1(ADMIT)
SETTLE_SHA = sha1(SETTLE)
