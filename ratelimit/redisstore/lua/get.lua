-- get: one family's counters in [from, start], as reserve checks them.
-- ARGV: now, start, from. Reply: {spent hi, lo, reserved hi, lo}.
purge(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]))
local all
if ARGV[3] ~= ARGV[2] then all = redis.call('HGETALL', KEYS[1]) end
local sh, sl, rh, rl = sum(KEYS[1], ARGV[2], ARGV[3], all)
return {sh, sl, rh, rl}
