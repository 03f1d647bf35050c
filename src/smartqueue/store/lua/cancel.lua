-- needs: transition, count
-- Cancel a job that has not ended: a queued one leaves its stream and a retrying one the
-- delayed set in the same step, so neither runs again; a running one is aborted by its
-- consumer, which hears of it through the `done` notification. Returns the previous status.
local record, stream, delayed, events, counts = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local job_id, channel, left, everywhere_left = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local change_at = 5  -- ARGV[5..]: the status change (lib/transition.lua)
local entry = redis.call('HGET', record, 'entry')
local previous = transition(record, events, channel, job_id, ARGV, change_at)
if previous == 'queued' and entry and redis.call('XDEL', stream, entry) == 1 then
  count(counts, left, everywhere_left)
end
if previous == 'retrying' then redis.call('ZREM', delayed, job_id) end
return previous
