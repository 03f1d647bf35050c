-- needs: count
-- Re-run a dead job exactly once: only the caller that deletes the DLQ entry enqueues.
-- Returns the new stream entry id, or false when the DLQ entry was already gone.
local dlq, stream, new_record, old_record = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local wake, counts = KEYS[5], KEYS[6]
local dlq_entry, route, priority, created_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local old_job_id, new_job_id, entered, everywhere_entered = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local owner = ARGV[9]
local first_field = 10  -- ARGV[10..]: the new stream entry's field/value items
if redis.call('XDEL', dlq, dlq_entry) == 0 then return false end
local entry = redis.call('XADD', stream, '*', unpack(ARGV, first_field))
local seq = count(counts, entered, everywhere_entered)
redis.call('HSET', new_record, 'status', 'queued', 'route', route, 'attempts', 0,
  'created_ms', created_ms, 'entry', entry, 'retry_of', old_job_id, 'seq', seq)
for _, field in ipairs({{'priority', priority}, {'owner', owner}}) do  -- '': normal, anonymous
  if field[2] ~= '' then redis.call('HSET', new_record, field[1], field[2]) end
end
if redis.call('EXISTS', old_record) == 1 then
  redis.call('HSET', old_record, 'retried_as', new_job_id)
end
redis.call('RPUSH', wake, 1)
redis.call('LTRIM', wake, -64, -1)
return entry
