-- needs: emit, count
-- Jobs that waited for dispatch past their deadline go dead (reason `expired`) and to the DLQ,
-- in one step. KEYS: job stream, DLQ, counts, then per job its record and event stream. The
-- caller names each job's entry and id. An entry that was taken or removed meanwhile is left
-- alone. Returns the ids of the jobs it expired.
local stream, dlq, counts = KEYS[1], KEYS[2], KEYS[3]
local first_job_key, keys_per_job = 4, 2
local channel, ttl_s, now_s, error_json = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local priority, route, left, everywhere_left = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local events_ttl_s = ARGV[9]
local first_job_arg, args_per_job = 10, 2

local function waiting(entry)  -- still waiting: its fields, else nil
  local found = redis.call('XRANGE', stream, entry, entry)[1]
  return found and found[2]
end

local expired = {}
for i = first_job_arg, #ARGV, args_per_job do
  local entry, job_id = ARGV[i], ARGV[i + 1]
  local at = first_job_key + (i - first_job_arg) / args_per_job * keys_per_job
  local record, events = KEYS[at], KEYS[at + 1]
  local fields = waiting(entry)
  if fields then
    redis.call('XDEL', stream, entry)
    count(counts, left, everywhere_left)
    if redis.call('HGET', record, 'status') == 'queued' then
      redis.call('HSET', record, 'status', 'dead', 'reason', 'expired', 'error', error_json,
        'completed_at', now_s)
      redis.call('EXPIRE', record, ttl_s)
      emit(record, events, channel, job_id, 'dead', events_ttl_s)
      redis.call('XADD', dlq, '*', 'route', route, 'priority', priority, 'reason', 'expired',
        'attempts', redis.call('HGET', record, 'attempts') or '0', 'error', error_json,
        'dead_at', now_s, unpack(fields))
      expired[#expired + 1] = job_id
    end
  end
end
return expired
