-- needs: count
-- Admission and enqueue in one step, so concurrent submits never overshoot a ceiling. The depth
-- of the job's route comes from counters (keys.py Counter), so the step costs the same whatever
-- the number of routes. Returns {code, job_id, route depth on arrival, position, refused by}:
-- code 1 accepted, 0 refused ('route' or 'everywhere' ceiling), 2 duplicate (same key and
-- request, or this very job already stored: a retried call after a lost reply), 3 the key was
-- used for another request. The idempotency key (already scoped to its owner) is a hash of
-- the job id and the digest of the request it was first used for.
local stream, record, wake, counts, idempotency = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local job_id, payload, headers = ARGV[1], ARGV[2], ARGV[3]
local route, priority, created_ms = ARGV[4], ARGV[5], ARGV[6]
local idempotency_ttl_s, path = ARGV[7], ARGV[8]
local ceiling, everywhere_ceiling = tonumber(ARGV[9]), tonumber(ARGV[10])
local entered, everywhere_entered, everywhere_left = ARGV[11], ARGV[12], ARGV[13]
local owner, request_digest, route_streams = ARGV[14], ARGV[15], tonumber(ARGV[16])
local first_route_stream = 17  -- ARGV[17..]: per stream of the route: entered, left, ahead
local first_size = first_route_stream + 3 * route_streams  -- then the entry's size fields

local function number(value) return tonumber(value) or 0 end

local function route_depths()  -- the route's depth, and the part that runs before this job
  local depth, ahead = 0, 0
  for i = first_route_stream, first_size - 1, 3 do
    local n = redis.call('HMGET', counts, ARGV[i], ARGV[i + 1])
    local waiting = number(n[1]) - number(n[2])
    depth = depth + waiting
    if ARGV[i + 2] == '1' then ahead = ahead + waiting end
  end
  return depth, ahead
end

local depth, position = route_depths()
if redis.call('EXISTS', record) == 1 then return {2, job_id, depth, -1, ''} end
if idempotency then
  local existing = redis.call('HMGET', idempotency, 'job_id', 'request')
  if existing[1] then
    if existing[2] ~= request_digest then return {3, existing[1], depth, -1, ''} end
    return {2, existing[1], depth, -1, ''}
  end
end
if depth >= ceiling then return {0, '', depth, -1, 'route'} end
local everywhere = redis.call('HMGET', counts, everywhere_entered, everywhere_left)
if number(everywhere[1]) - number(everywhere[2]) >= everywhere_ceiling then
  return {0, '', depth, -1, 'everywhere'}
end
-- The stream entry: a field whose value is '' is left out (readers take its default: no extra
-- headers, the default path), as are the record's `attempts` while it is 0, its `priority` when
-- normal and its `owner` when anonymous ('' here: codec.stored_priority, codec.stored_owner).
local fields = {'job_id', job_id, 'payload', payload}
for _, field in ipairs({{'headers', headers}, {'path', path}}) do
  if field[2] ~= '' then
    table.insert(fields, field[1])
    table.insert(fields, field[2])
  end
end
for i = first_size, #ARGV do table.insert(fields, ARGV[i]) end
local entry = redis.call('XADD', stream, '*', unpack(fields))
local seq = count(counts, entered, everywhere_entered)
redis.call('HSET', record, 'status', 'queued', 'route', route, 'created_ms', created_ms,
  'entry', entry, 'seq', seq)
for _, field in ipairs({{'priority', priority}, {'owner', owner}}) do
  if field[2] ~= '' then redis.call('HSET', record, field[1], field[2]) end
end
if idempotency then
  redis.call('HSET', idempotency, 'job_id', job_id, 'request', request_digest)
  redis.call('EXPIRE', idempotency, idempotency_ttl_s)
end
redis.call('RPUSH', wake, 1)
redis.call('LTRIM', wake, -64, -1)
return {1, job_id, depth, position, ''}
