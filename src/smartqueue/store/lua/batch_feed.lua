-- needs: count
-- Feed a running batch's next requests into their job streams, each a queued job of priority
-- `batch`, and move the batch's cursor past them, in one step: a request is fed exactly once
-- even when two replicas feed at the same moment (only the one whose cursor still matches
-- feeds). KEYS: batch record, counts, wake list, then per request its job stream and record.
-- ARGV: the cursor read (requests fed so far), the cursor after these, the input file's byte
-- offset after them, batch id, created_ms, the all-streams entered field, the batch's owner
-- ('' when anonymous: codec.stored_owner), then per request:
-- job id, payload, headers, path, route, custom_id, its stream's entered field.
-- Returns how many requests were fed.
local batch, counts, wake = KEYS[1], KEYS[2], KEYS[3]
local first_job_key, keys_per_job = 4, 2
local expected, next_line, next_offset = ARGV[1], ARGV[2], ARGV[3]
local batch_id, created_ms, everywhere_entered, owner = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local first_job_arg, args_per_job = 8, 7

local state = redis.call('HMGET', batch, 'status', 'stop', 'next_line')
if state[1] ~= 'in_progress' or (state[2] or '') ~= '' or state[3] ~= expected then return 0 end
local fed = 0
for i = first_job_arg, #ARGV, args_per_job do
  local at = first_job_key + (i - first_job_arg) / args_per_job * keys_per_job
  local stream, record = KEYS[at], KEYS[at + 1]
  local job_id, payload, headers, path = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local route, custom_id, entered = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local entry = redis.call('XADD', stream, '*', 'job_id', job_id, 'payload', payload,
    'headers', headers, 'path', path, 'batch', batch_id, 'custom_id', custom_id)
  local seq = count(counts, entered, everywhere_entered)
  redis.call('HSET', record, 'status', 'queued', 'route', route, 'priority', 'batch',
    'attempts', 0, 'created_ms', created_ms, 'entry', entry, 'seq', seq, 'batch', batch_id)
  if owner ~= '' then redis.call('HSET', record, 'owner', owner) end
  fed = fed + 1
end
redis.call('HSET', batch, 'next_line', next_line, 'next_offset', next_offset)
redis.call('HINCRBY', batch, 'fed', fed)
if fed > 0 then
  redis.call('RPUSH', wake, 1)
  redis.call('LTRIM', wake, -64, -1)
end
return fed
