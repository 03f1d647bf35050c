-- needs: owns, release, transition, batch_line, committed
-- Commit a job's outcome, only while the consumer still holds its entry; the entry is handled
-- (acked and deleted) and the slot freed in the same step. A batch request's output or error
-- line is kept with its batch in that step too (the last two keys: its lines and record).
-- Returns the previous status, or false when the commit is refused. Run again after it
-- applied (a reply lost to a dropped connection), it finds its own mark and reports success.
local record, stream, slots, ends, events = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local lines, batch = KEYS[6], KEYS[7]
local group, consumer, entry, job_id, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local custom_id, outcome, line = ARGV[6], ARGV[7], ARGV[8]  -- all '' outside a batch
local change_at = 9  -- ARGV[9..]: the status change (lib/transition.lua), marked committed_by
if not owns(stream, group, entry, consumer) then
  return committed_by(record, entry, ARGV[change_at]) and ARGV[change_at]
end
local previous = transition(record, events, channel, job_id, ARGV, change_at)
if previous then record_batch_line(lines, batch, custom_id, outcome, line) end
release_entry(stream, group, entry, slots, ends, job_id)
return previous
