-- Tell watchers a job changed: a status event on the job's event stream, and, once the job
-- ended (`terminal`), the event stream takes the record's TTL and the job id is published.
local function emit(record, events, channel, job_id, status, terminal)
  redis.call('XADD', events, '*', 'type', 'status', 'status', status)
  if terminal then
    local ttl = redis.call('TTL', record)
    if ttl > 0 then redis.call('EXPIRE', events, ttl) end
    redis.call('PUBLISH', channel, job_id)
  end
end
