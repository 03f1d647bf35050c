-- needs: emit, release
-- A taken job starts: queued -> processing on `gpu`. A job that is not waiting any more (its
-- record was cancelled or removed meanwhile) is handled at once and its slot freed.
-- Returns {0} for such a job, else {1, deliveries, attempts, created_at}.
local record, events, stream, slots = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, entry, job_id, gpu, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local started_at = ARGV[6]
if redis.call('HGET', record, 'status') ~= 'queued' then
  release_entry(stream, group, entry, slots, job_id)
  return {0}
end
local deliveries = redis.call('HINCRBY', record, 'deliveries', 1)
redis.call('HSET', record, 'status', 'processing', 'gpu', gpu, 'started_at', started_at)
emit(record, events, channel, job_id, 'processing', 0)
local meta = redis.call('HMGET', record, 'attempts', 'created_at')
return {1, deliveries, meta[1] or '0', meta[2] or '0'}
