-- Re-run a dead job exactly once: only the caller that deletes the DLQ entry enqueues.
-- Returns the new stream entry id, or false when the DLQ entry was already gone.
local dlq, stream, new_record, old_record, wake = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local dlq_entry, route, priority, created_at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local old_job_id, new_job_id = ARGV[5], ARGV[6]
local first_field = 7  -- ARGV[7..]: the new stream entry's field/value items
if redis.call('XDEL', dlq, dlq_entry) == 0 then return false end
local entry = redis.call('XADD', stream, '*', unpack(ARGV, first_field))
redis.call('HSET', new_record, 'status', 'queued', 'route', route, 'priority', priority,
  'attempts', 0, 'created_at', created_at, 'entry', entry, 'retry_of', old_job_id)
if redis.call('EXISTS', old_record) == 1 then
  redis.call('HSET', old_record, 'retried_as', new_job_id)
end
redis.call('RPUSH', wake, 1)
redis.call('LTRIM', wake, -64, -1)
return entry
