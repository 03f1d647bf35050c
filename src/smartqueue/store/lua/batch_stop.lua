-- Stop feeding a batch that runs: cancelled (status -> cancelling) or past its window (status
-- kept until it ends `expired`). What was fed still runs; unfed requests become error lines
-- when the batch ends. KEYS: batch record. ARGV: why ('cancelled' or 'expired'), the status to
-- set ('' keeps it), the timestamp field to set, now.
-- Returns the status before, or false when the batch does not run or already stopped.
local batch = KEYS[1]
local why, status, at_field, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local state = redis.call('HMGET', batch, 'status', 'stop')
if state[1] ~= 'in_progress' or (state[2] or '') ~= '' then return false end
redis.call('HSET', batch, 'stop', why, at_field, now)
if status ~= '' then redis.call('HSET', batch, 'status', status) end
return state[1]
