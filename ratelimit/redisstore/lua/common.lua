-- Helpers shared by every script (prepended to each).
--
-- KEYS come in threes, one triple per counter family (one budget key):
--   c  hash  s<start> spent, r<start> reserved, e<start> window end (ms)
--   l  hash  lease id -> "<start>:<-amount>," for each hold it has here
--   x  zset  lease id scored by its expiry (ms)
--
-- Lua numbers are doubles, exact below 2^53, and counters are int64
-- nano-units. So counters change only through HINCRBY (exact int64), and
-- sums and comparisons work on (hi, lo) pairs in base 10^9, each part far
-- inside 2^53. Replies carry the pairs; Go joins them.
local B = 1000000000

-- split parses a decimal int64 (or false: a missing field) into (hi, lo).
local function split(s)
  if not s then return 0, 0 end
  local neg = string.byte(s, 1) == 45 -- '-'
  if neg then s = string.sub(s, 2) end
  local n = #s
  local hi, lo = 0, tonumber(s)
  if n > 9 then
    hi, lo = tonumber(string.sub(s, 1, n - 9)), tonumber(string.sub(s, n - 8))
  end
  if neg then return -hi, -lo end
  return hi, lo
end

-- norm carries lo into hi so that 0 <= lo < B.
local function norm(hi, lo)
  local c = math.floor(lo / B)
  hi, lo = hi + c, lo - c * B
  while lo < 0 do hi, lo = hi - 1, lo + B end
  while lo >= B do hi, lo = hi + 1, lo - B end
  return hi, lo
end

local function le(ah, al, bh, bl)
  return ah < bh or (ah == bh and al <= bl)
end

-- release takes one lease's record off counter hash c. A counter that is
-- gone (reset, or pruned when its window ended) is not recreated.
local function release(c, rec)
  for start, neg in string.gmatch(rec, '([^:,]+):([^,]+)') do
    if redis.call('HEXISTS', c, 'e' .. start) == 1 then
      if redis.call('HINCRBY', c, 'r' .. start, neg) < 0 then
        redis.call('HSET', c, 'r' .. start, 0)
      end
    end
  end
end

-- purge releases the family's leases that expired at or before now, so
-- expiry needs no sweeper: every script purges the families it touches.
local function purge(c, l, x, now)
  local ids = redis.call('ZRANGEBYSCORE', x, '-inf', now)
  if #ids == 0 then return end
  for _, id in ipairs(ids) do
    local rec = redis.call('HGET', l, id)
    if rec then
      release(c, rec)
      redis.call('HDEL', l, id)
    end
  end
  redis.call('ZREMRANGEBYSCORE', x, '-inf', now)
end

-- sum adds up the counters of hash c whose start lies in [from, start], as
-- normalised (hi, lo) pairs: spent, then reserved. all caches c's HGETALL.
local function sum(c, start, from, all)
  if from == start then
    local v = redis.call('HMGET', c, 's' .. start, 'r' .. start)
    local sh, sl = split(v[1])
    local rh, rl = split(v[2])
    return sh, sl, rh, rl
  end
  local first, last = tonumber(from), tonumber(start)
  local sh, sl, rh, rl = 0, 0, 0, 0
  for i = 1, #all, 2 do
    local kind = string.byte(all[i], 1)
    if kind == 115 or kind == 114 then -- 's', 'r'
      local ts = tonumber(string.sub(all[i], 2))
      if ts and ts >= first and ts <= last then
        local h, l = split(all[i + 1])
        if kind == 115 then sh, sl = sh + h, sl + l else rh, rl = rh + h, rl + l end
      end
    end
  end
  sh, sl = norm(sh, sl)
  rh, rl = norm(rh, rl)
  return sh, sl, rh, rl
end

-- prune drops the counters of hash c whose window ended at or before now,
-- or (rolling windows) whose bucket starts before from; keep are the starts
-- the calling script just wrote.
local function prune(c, now, from, keep)
  local all = redis.call('HGETALL', c)
  for i = 1, #all, 2 do
    if string.byte(all[i], 1) == 101 then -- 'e'
      local ts = string.sub(all[i], 2)
      if not keep[ts] and (tonumber(all[i + 1]) <= now or (from and tonumber(ts) < from)) then
        redis.call('HDEL', c, 's' .. ts, 'r' .. ts, all[i])
      end
    end
  end
end

-- keepalive makes k outlive ttl (ms), with grace to spare so that it is not
-- extended on every call.
local function keepalive(k, ttl, grace)
  local cur = redis.call('PTTL', k)
  if cur == -1 or (cur >= 0 and cur < ttl) then
    redis.call('PEXPIRE', k, ttl + grace)
  end
end
