-- list: one family's counters whose window ends after now.
-- ARGV: now. Reply: {start, spent, reserved, ...} as decimal strings.
local now = tonumber(ARGV[1])
purge(KEYS[1], KEYS[2], KEYS[3], now)
local all = redis.call('HGETALL', KEYS[1])
local v = {}
for i = 1, #all, 2 do v[all[i]] = all[i + 1] end
local out = {}
for k, e in pairs(v) do
  if string.byte(k, 1) == 101 and tonumber(e) > now then -- 'e'
    local ts = string.sub(k, 2)
    out[#out + 1] = ts
    out[#out + 1] = v['s' .. ts] or '0'
    out[#out + 1] = v['r' .. ts] or '0'
  end
end
return out
