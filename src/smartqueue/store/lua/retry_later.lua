-- needs: owns, release, transition, committed
-- Put a job aside for a later try: its running entry's fields move into the record, the entry
-- is handled, the slot freed and the job id scheduled in the delayed set.
-- Returns the previous status, or false when refused.
local record, stream, slots, ends = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local delayed, events = KEYS[5], KEYS[6]
local group, consumer, entry, job_id, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local due_ms = ARGV[6]
local change_at = 7  -- ARGV[7..]: the status change to retrying (lib/transition.lua)
if not owns(stream, group, entry, consumer) then
  return committed_by(record, entry, 'retrying') and 'retrying'
end
local previous = transition(record, events, channel, job_id, ARGV, change_at)
if previous then
  local fields = redis.call('XRANGE', stream, entry, entry)[1][2]
  for i = 1, #fields, 2 do redis.call('HSET', record, 'entry:' .. fields[i], fields[i + 1]) end
  redis.call('ZADD', delayed, due_ms, job_id)
end
release_entry(stream, group, entry, slots, ends, job_id)
return previous
