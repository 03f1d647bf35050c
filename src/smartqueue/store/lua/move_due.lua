-- needs: emit, count
-- Move jobs whose backoff is over back to their stream (retrying -> queued). The caller read
-- the due job ids and where each goes; KEYS: delayed set, wake list, counts, then per job its
-- record, event stream and job stream. ARGV: the done channel, the all-streams entered field,
-- then per job its id and its stream's entered field. Returns how many jobs were moved.
local delayed, wake, counts = KEYS[1], KEYS[2], KEYS[3]
local first_job_key, keys_per_job = 4, 3
local channel, everywhere_entered = ARGV[1], ARGV[2]
local first_job_arg, args_per_job = 3, 2

local function move(record, events, stream, job_id, entered)
  if redis.call('HGET', record, 'status') ~= 'retrying' then return 0 end
  local raw = redis.call('HGETALL', record)
  local fields, drop = {}, {}
  for i = 1, #raw, 2 do
    local name = string.match(raw[i], '^entry:(.+)$')
    if name then
      table.insert(fields, name)
      table.insert(fields, raw[i + 1])
      table.insert(drop, raw[i])
    end
  end
  local entry = redis.call('XADD', stream, '*', unpack(fields))
  redis.call('HDEL', record, unpack(drop))
  local seq = count(counts, entered, everywhere_entered)
  redis.call('HSET', record, 'status', 'queued', 'entry', entry, 'seq', seq)
  emit(record, events, channel, job_id, 'queued', 0)
  return 1
end

local moved = 0
for i = first_job_arg, #ARGV, args_per_job do
  local job_id, entered = ARGV[i], ARGV[i + 1]
  local at = first_job_key + (i - first_job_arg) / args_per_job * keys_per_job
  if redis.call('ZREM', delayed, job_id) == 1 then
    moved = moved + move(KEYS[at], KEYS[at + 1], KEYS[at + 2], job_id, entered)
  end
end
if moved > 0 then
  redis.call('RPUSH', wake, 1)
  redis.call('LTRIM', wake, -64, -1)
end
return moved
