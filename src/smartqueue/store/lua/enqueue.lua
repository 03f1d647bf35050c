-- needs: depth
-- Admission and enqueue in one step, so concurrent submits never overshoot a ceiling.
-- KEYS: the n job streams, then the record, the wake list and (optional) the idempotency key.
-- Returns {code, job_id, depth on arrival, position}: code 1 accepted, 0 refused, 2 duplicate.
local group = ARGV[1]
local n_streams = tonumber(ARGV[2])
local target = KEYS[tonumber(ARGV[3])]
local ceiling = tonumber(ARGV[4])
local job_id, payload, headers = ARGV[5], ARGV[6], ARGV[7]
local route, priority, created_at = ARGV[8], ARGV[9], ARGV[10]
local idempotency_ttl_s, path = ARGV[11], ARGV[12]
local first_ahead = 13  -- ARGV[13..]: indices of the streams whose jobs run before this one
local record, wake, idempotency = KEYS[n_streams + 1], KEYS[n_streams + 2], KEYS[n_streams + 3]

local function total_depth()
  local total = 0
  for i = 1, n_streams do total = total + stream_depth(KEYS[i], group) end
  return total
end

if idempotency then
  local existing = redis.call('GET', idempotency)
  if existing then return {2, existing, total_depth(), -1} end
end
local depth = total_depth()
if depth >= ceiling then return {0, '', depth, -1} end
local position = 0
for i = first_ahead, #ARGV do position = position + stream_depth(KEYS[tonumber(ARGV[i])], group) end
local fields = {'job_id', job_id, 'payload', payload, 'headers', headers}
if path ~= '' then
  table.insert(fields, 'path')
  table.insert(fields, path)
end
local entry = redis.call('XADD', target, '*', unpack(fields))
redis.call('HSET', record, 'status', 'queued', 'route', route, 'priority', priority,
  'attempts', 0, 'created_at', created_at, 'entry', entry)
if idempotency then redis.call('SET', idempotency, job_id, 'EX', idempotency_ttl_s) end
redis.call('RPUSH', wake, 1)
redis.call('LTRIM', wake, -64, -1)
return {1, job_id, depth, position}
