-- needs: owns, release, transition
-- Dead-letter a job: record -> dead, entry appended to the DLQ, its stream entry handled and
-- its slot freed; refused when the consumer no longer holds the entry.
-- Returns the DLQ entry id, or false when refused.
local record, dlq, stream, slots, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local group, consumer, entry, job_id, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local n_dlq = tonumber(ARGV[6])  -- ARGV[7..6+n_dlq]: the DLQ entry's field/value items
local change_at = 7 + n_dlq      -- then the status change (lib/transition.lua)
if not owns(stream, group, entry, consumer) then return false end
release_entry(stream, group, entry, slots, job_id)
if not transition(record, events, channel, job_id, ARGV, change_at) then return false end
return redis.call('XADD', dlq, '*', unpack(ARGV, 7, 6 + n_dlq))
