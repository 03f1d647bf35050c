-- needs: transition
-- Cancel a job that has not ended: a queued one leaves its stream and a retrying one the
-- delayed set in the same step, so neither runs again; a running one is aborted by its
-- consumer, which hears of it through the `done` notification. Returns the previous status.
local record, stream, delayed, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local job_id, channel = ARGV[1], ARGV[2]
local change_at = 3  -- ARGV[3..]: the status change (lib/transition.lua)
local entry = redis.call('HGET', record, 'entry')
local previous = transition(record, events, channel, job_id, ARGV, change_at)
if previous == 'queued' and entry then redis.call('XDEL', stream, entry) end
if previous == 'retrying' then redis.call('ZREM', delayed, job_id) end
return previous
