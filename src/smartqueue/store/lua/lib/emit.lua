-- Tell watchers a job changed: a status event on the job's event stream and, once the job
-- ended (`events_ttl_s` > 0), the job id published and its event stream kept `events_ttl_s`
-- more seconds (the record keeps the status and result; the events are for clients following
-- the job as it runs).
local function emit(record, events, channel, job_id, status, events_ttl_s)
  redis.call('XADD', events, '*', 'type', 'status', 'status', status)
  if tonumber(events_ttl_s) > 0 then
    redis.call('EXPIRE', events, events_ttl_s)
    redis.call('PUBLISH', channel, job_id)
  end
end
