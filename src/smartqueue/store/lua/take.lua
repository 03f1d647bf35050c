-- needs: now_ms, field, last_delivered, count
-- Take the next job for one GPU, atomically with a slot on it. The breaker is re-read here, so
-- a GPU whose breaker another replica just opened gets nothing. Among the candidate streams'
-- oldest waiting entries it takes the best (rank, age); an entry that has waited `aging_ms`
-- ranks as high, so no priority starves -- except batch work (rank `ageless_rank`), which
-- only ever fills idle capacity. The job's record is updated by START (its key is
-- only known once the entry is read). KEYS: slot set, breaker, counts, then the candidate
-- streams.
-- Returns false when the GPU is full, its breaker is closed to it or nothing waits, else
-- {stream index (1-based among the streams), entry id, entry fields}.
local slots_key, breaker_key, counts = KEYS[1], KEYS[2], KEYS[3]
local first_stream = 4
local group, consumer = ARGV[1], ARGV[2]
local slots, lease_ms, aging_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local probe = ARGV[6] == '1'  -- the caller holds the GPU's half-open probe claim
local everywhere_left = ARGV[7]
local ageless_rank = tonumber(ARGV[8])  -- batch streams: never promoted by aging
local first_stream_arg = 9    -- ARGV[9..]: per stream its priority rank (0 = high), left field

local now = now_ms()
redis.call('ZREMRANGEBYSCORE', slots_key, '-inf', now)
if redis.call('ZCARD', slots_key) >= slots then return false end
local breaker = redis.call('HGET', breaker_key, 'state') or 'closed'
if breaker == 'open' or (breaker == 'half_open' and not probe) then return false end

local function next_undelivered(stream)
  local last = last_delivered(stream, group)
  if not last then return nil end
  local head = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1)
  if head[1] then return head[1][1] end
  return nil
end

local best, best_key = nil, nil
for i = first_stream, #KEYS do
  local head = next_undelivered(KEYS[i])
  if head then
    local ms = tonumber(string.match(head, '^(%d+)'))
    local rank = tonumber(ARGV[first_stream_arg + (i - first_stream) * 2])
    if rank < ageless_rank and now - ms >= aging_ms then rank = 0 end
    local key = rank * 1e13 + ms
    if best_key == nil or key < best_key then best, best_key = i, key end
  end
end
if not best then return false end
local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1,
  'STREAMS', KEYS[best], '>')
local id, fields = reply[1][2][1][1], reply[1][2][1][2]
redis.call('ZADD', slots_key, now + lease_ms, field(fields, 'job_id'))
count(counts, ARGV[first_stream_arg + (best - first_stream) * 2 + 1], everywhere_left)
return {best - first_stream + 1, id, fields}
