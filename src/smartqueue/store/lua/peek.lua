-- needs: field, now_ms
-- Read only: what the dispatcher plans with, in one step. KEYS: the job streams, then per GPU
-- its slot set, predicted ends and breaker. ARGV: window, number of streams.
-- Returns {waiting, gpus}: waiting is a flat list {stream index, entry id, job id, prompt
-- tokens, max tokens, ...} of the first `window` entries of each stream (sizes '' when
-- unknown; the payloads stay in Redis); gpus has per GPU {holders, breaker}: holders a flat
-- list {job id, predicted end ms or '', ...} of its live slot leases, breaker its hash.
local window, n_streams = tonumber(ARGV[1]), tonumber(ARGV[2])
local waiting = {}
for i = 1, n_streams do
  for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', window)) do
    local fields = entry[2]
    table.insert(waiting, i)
    table.insert(waiting, entry[1])
    table.insert(waiting, field(fields, 'job_id') or '')
    table.insert(waiting, field(fields, 'in') or '')
    table.insert(waiting, field(fields, 'out') or '')
  end
end
local now = now_ms()
local gpus = {}
for i = n_streams + 1, #KEYS, 3 do
  local slots, ends, breaker = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local holders = {}
  for _, job_id in ipairs(redis.call('ZRANGEBYSCORE', slots, now, '+inf')) do
    table.insert(holders, job_id)
    table.insert(holders, redis.call('HGET', ends, job_id) or '')
  end
  table.insert(gpus, {holders, redis.call('HGETALL', breaker)})
end
return {waiting, gpus}
