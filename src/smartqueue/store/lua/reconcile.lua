-- Set the counters (keys.py Counter) to what the job streams really hold, should they have
-- drifted (a hand-made change, a restore from an older file): each stream's `left` becomes
-- `entered - real depth` (a waiting stream holds exactly its waiting entries), and the
-- all-streams counters the sums. KEYS: counts, then the job streams. ARGV: all-streams
-- entered and left fields, then per stream its fields.
-- Returns how many streams were off.
local counts = KEYS[1]
local first_stream = 2
local everywhere_entered, everywhere_left = ARGV[1], ARGV[2]
local first_stream_arg, args_per_stream = 3, 2
local fixed, total_in, total_out = 0, 0, 0
for i = first_stream, #KEYS do
  local at = first_stream_arg + (i - first_stream) * args_per_stream
  local entered, left = ARGV[at], ARGV[at + 1]
  local real = redis.call('XLEN', KEYS[i])
  local n = redis.call('HMGET', counts, entered, left)
  local n_in, n_out = tonumber(n[1]) or 0, tonumber(n[2]) or 0
  if n_in - n_out ~= real or n_in < real then
    fixed = fixed + 1
    n_in = math.max(n_in, real)
    redis.call('HSET', counts, entered, n_in, left, n_in - real)
  end
  total_in, total_out = total_in + n_in, total_out + n_in - real
end
redis.call('HSET', counts, everywhere_entered, total_in, everywhere_left, total_out)
return fixed
