-- reserve: all or none over the families in KEYS (see common.lua).
-- ARGV: now, lease id, lease expiry, grace (ms); then 7 per hold: family
-- (1-based triple), start, from, limit, amount, -amount, end.
-- Reply: {1, -1, counters after...} when every hold fits; {0, i, counters
-- before of holds 1..i} when hold i does not; {2, 0} when the lease id is
-- already held here. Counters are 4 integers per hold: spent hi, lo,
-- reserved hi, lo.
local now, lease, expires, grace = tonumber(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local nf, nh = #KEYS / 3, (#ARGV - 4) / 7
for f = 1, nf do purge(KEYS[3 * f - 2], KEYS[3 * f - 1], KEYS[3 * f], now) end

local out, all = {1, -1}, {}
for i = 1, nh do
  local a = 4 + (i - 1) * 7
  local f, start, from = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3]
  local c = KEYS[3 * f - 2]
  if from ~= start and not all[f] then all[f] = redis.call('HGETALL', c) end
  local sh, sl, rh, rl = sum(c, start, from, all[f])
  local ah, al = split(ARGV[a + 5])
  local lh, ll = norm(split(ARGV[a + 4]))
  local th, tl = norm(sh + rh + ah, sl + rl + al)
  local o = #out
  out[o + 1], out[o + 2], out[o + 3], out[o + 4] = sh, sl, rh, rl
  if not le(th, tl, lh, ll) then
    out[1], out[2] = 0, i
    return out
  end
end
for f = 1, nf do
  if redis.call('HEXISTS', KEYS[3 * f - 1], lease) == 1 then return {2, 0} end
end

local rec, ends, keep, since, fresh = {}, {}, {}, {}, {}
for i = 1, nh do
  local a = 4 + (i - 1) * 7
  local f, start, from, e = tonumber(ARGV[a + 1]), ARGV[a + 2], ARGV[a + 3], tonumber(ARGV[a + 7])
  local c = KEYS[3 * f - 2]
  redis.call('HINCRBY', c, 'r' .. start, ARGV[a + 5])
  if redis.call('HSETNX', c, 'e' .. start, ARGV[a + 7]) == 1 then fresh[f] = true end
  rec[f] = (rec[f] or '') .. start .. ':' .. ARGV[a + 6] .. ','
  keep[f] = keep[f] or {}
  keep[f][start] = true
  if not ends[f] or e > ends[f] then ends[f] = e end
  if from ~= start and (not since[f] or tonumber(from) < since[f]) then since[f] = tonumber(from) end
  local o = 2 + (i - 1) * 4
  local ah, al = split(ARGV[a + 5])
  out[o + 3], out[o + 4] = norm(out[o + 3] + ah, out[o + 4] + al)
end
for f = 1, nf do
  local c, l, x = KEYS[3 * f - 2], KEYS[3 * f - 1], KEYS[3 * f]
  redis.call('HSET', l, lease, rec[f])
  redis.call('ZADD', x, expires, lease)
  if fresh[f] then prune(c, now, since[f], keep[f]) end
  local ttl = math.max(ends[f] - now, 0) + grace
  keepalive(c, ttl, grace)
  -- Lease keys vanish with their last lease, so they are set anew often:
  -- one PEXPIRE is cheaper than keepalive's PTTL, and this reservation's
  -- window is the family's latest.
  redis.call('PEXPIRE', l, ttl + grace)
  redis.call('PEXPIRE', x, ttl + grace)
end
return out
