-- settle: drop the lease's holds in the families in KEYS (see common.lua)
-- and charge.
-- ARGV: now, lease id, grace (ms); then 4 per charged hold: family, start,
-- actual, end. Reply: 1.
local now, lease, grace = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local nf, nh = #KEYS / 3, (#ARGV - 3) / 4
for f = 1, nf do
  local c, l, x = KEYS[3 * f - 2], KEYS[3 * f - 1], KEYS[3 * f]
  purge(c, l, x, now)
  local rec = redis.call('HGET', l, lease)
  if rec then
    release(c, rec)
    redis.call('HDEL', l, lease)
    redis.call('ZREM', x, lease)
  end
end

local ends, keep, fresh = {}, {}, {}
for i = 1, nh do
  local a = 3 + (i - 1) * 4
  local f, start, e = tonumber(ARGV[a + 1]), ARGV[a + 2], tonumber(ARGV[a + 4])
  local c = KEYS[3 * f - 2]
  redis.call('HINCRBY', c, 's' .. start, ARGV[a + 3])
  if redis.call('HSETNX', c, 'e' .. start, ARGV[a + 4]) == 1 then fresh[f] = true end
  keep[f] = keep[f] or {}
  keep[f][start] = true
  if not ends[f] or e > ends[f] then ends[f] = e end
end
for f, e in pairs(ends) do
  local c = KEYS[3 * f - 2]
  if fresh[f] then prune(c, now, nil, keep[f]) end
  keepalive(c, math.max(e - now, 0) + grace, grace)
end
return 1
