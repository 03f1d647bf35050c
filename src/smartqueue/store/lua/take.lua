-- needs: now_ms, emit, count
-- Take one chosen waiting entry for a GPU, atomically with a slot on it, and start its job
-- (queued -> processing). The entry moves from its waiting stream to the running stream,
-- where the consumer group tracks who holds it (renewal, reclaim, commits). The breaker is
-- re-read here, so a GPU whose breaker another replica just opened gets nothing.
-- KEYS: slot set, breaker, counts, predicted ends, waiting stream, running stream, record,
-- event stream.
-- `replacing` (job id and running entry, or ''): the caller's own job on this GPU, answered and
-- about to be committed; its slot is released here first (while the caller still holds it), so
-- the next job starts without waiting for that commit.
-- ARGV ends with `outranking`: pairs of counter fields (entered, left) of streams that come
-- first; the entry is refused while any of them has an entry waiting (a batch entry behind
-- interactive work, or any entry of a plan older than the newest arrivals).
-- Returns {0} when the GPU is full or its breaker closed to it; {-1} when the entry is gone
-- (another consumer took it, or it was cancelled or expired); {-2} when it is outranked; else
-- {1, running entry id, entry fields, deliveries, attempts, created_ms, created_at} (the
-- creation time in ms, or in seconds in records written before `created_ms`).
local slots_key, breaker_key, counts, ends = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local waiting, running, record, events = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local group, consumer = ARGV[1], ARGV[2]
local slots, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local probe = ARGV[5] == '1'  -- the caller holds the GPU's half-open probe claim
local entry, job_id, left, everywhere_left = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local gpu, started_at, channel, predicted_end = ARGV[10], ARGV[11], ARGV[12], ARGV[13]
local replacing_job, replacing_entry = ARGV[14], ARGV[15]
local first_outranking = 16

local now = now_ms()
redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', now)
local replaced = replacing_job ~= '' and redis.call('ZSCORE', slots_key, replacing_job) and
  #redis.call('XPENDING', running, group, replacing_entry, replacing_entry, 1, consumer) > 0
if redis.call('ZCARD', slots_key) - (replaced and 1 or 0) >= slots then return {0} end
local breaker = redis.call('HGET', breaker_key, 'state') or 'closed'
if breaker == 'open' or (breaker == 'half_open' and not probe) then return {0} end

for i = first_outranking, #ARGV, 2 do
  local depth = redis.call('HMGET', counts, ARGV[i], ARGV[i + 1])
  if (tonumber(depth[1]) or 0) - (tonumber(depth[2]) or 0) > 0 then return {-2} end
end

local found = redis.call('XRANGE', waiting, entry, entry)[1]
if not found then return {-1} end
redis.call('XDEL', waiting, entry)
count(counts, left, everywhere_left)
if redis.call('HGET', record, 'status') ~= 'queued' then return {-1} end  -- a stale entry

if replaced then
  redis.call('ZREM', slots_key, replacing_job)
  redis.call('HDEL', ends, replacing_job)
end
local fields = found[2]
-- the group exists before anything is moved (Redis may have lost it: flushed, or restored)
pcall(redis.call, 'XGROUP', 'CREATE', running, group, '0', 'MKSTREAM')
local held = redis.call('XADD', running, '*', unpack(fields))
redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', running, '>')
redis.call('ZADD', slots_key, now + lease_ms, job_id)
if predicted_end ~= '' then redis.call('HSET', ends, job_id, predicted_end) end
local deliveries = redis.call('HINCRBY', record, 'deliveries', 1)
redis.call('HSET', record, 'status', 'processing', 'gpu', gpu, 'started_at', started_at,
  'entry', held)
emit(record, events, channel, job_id, 'processing', 0)
local meta = redis.call('HMGET', record, 'attempts', 'created_ms', 'created_at')
return {1, held, fields, deliveries, meta[1] or '0', meta[2] or '', meta[3] or ''}
