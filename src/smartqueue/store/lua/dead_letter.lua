-- needs: owns, release, transition, batch_line, committed
-- Dead-letter a job: record -> dead, entry appended to the DLQ, its stream entry handled and
-- its slot freed; refused when the consumer no longer holds the entry. A batch request's error
-- line is kept with its batch in the same step (the last two keys: its lines and record).
-- Returns the DLQ entry id, or false when refused.
local record, dlq, stream, slots, ends = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local events, lines, batch = KEYS[6], KEYS[7], KEYS[8]
local group, consumer, entry, job_id, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local custom_id, outcome, line = ARGV[6], ARGV[7], ARGV[8]  -- all '' outside a batch
local n_dlq = tonumber(ARGV[9])  -- ARGV[10..9+n_dlq]: the DLQ entry's field/value items
local change_at = 10 + n_dlq     -- then the status change (lib/transition.lua)
if not owns(stream, group, entry, consumer) then  -- run again after it applied: its DLQ id
  if not committed_by(record, entry, 'dead') then return false end
  return redis.call('HGET', record, 'dlq_id')
end
release_entry(stream, group, entry, slots, ends, job_id)
if not transition(record, events, channel, job_id, ARGV, change_at) then return false end
record_batch_line(lines, batch, custom_id, outcome, line)
local owner = redis.call('HGET', record, 'owner') or ''
local fields = {unpack(ARGV, 10, 9 + n_dlq)}
table.insert(fields, 'owner')
table.insert(fields, owner)  -- a retry of the dead job belongs to its owner too
local dlq_id = redis.call('XADD', dlq, '*', unpack(fields))
redis.call('HSET', record, 'dlq_id', dlq_id)
return dlq_id
