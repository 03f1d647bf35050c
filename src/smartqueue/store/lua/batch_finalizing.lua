-- A batch goes to `finalizing` once it feeds no more (every request fed, or stopped) and every
-- request it fed has ended (its line is kept). KEYS: batch record. ARGV: now.
-- Returns 1 when it moved, else 0.
local batch = KEYS[1]
local now = ARGV[1]
local s = redis.call('HMGET', batch, 'status', 'stop', 'fed', 'completed', 'failed',
  'next_line', 'total')
if s[1] ~= 'in_progress' and s[1] ~= 'cancelling' then return 0 end
local function number(value) return tonumber(value) or 0 end
if number(s[3]) ~= number(s[4]) + number(s[5]) then return 0 end
if (s[2] or '') == '' and number(s[6]) < number(s[7]) then return 0 end
redis.call('HSET', batch, 'status', 'finalizing', 'finalizing_at', now)
return 1
