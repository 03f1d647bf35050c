-- needs: owns, release, transition
-- Commit a job's outcome, only while the consumer still holds its entry; the entry is handled
-- (acked and deleted) and the slot freed in the same step.
-- Returns the previous status, or false when the commit is refused.
local record, stream, slots, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer, entry, job_id, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local change_at = 6  -- ARGV[6..]: the status change (lib/transition.lua)
if not owns(stream, group, entry, consumer) then return false end
local previous = transition(record, events, channel, job_id, ARGV, change_at)
release_entry(stream, group, entry, slots, job_id)
return previous
