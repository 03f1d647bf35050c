-- needs: field, now_ms
-- Read only: what the dispatcher plans with, in one step. KEYS: the counts, the job streams,
-- then per GPU its slot set, predicted ends and breaker. ARGV: window, number of streams, the
-- all-streams entered and left fields (when nothing waits anywhere, no stream is read).
-- Returns {waiting, gpus}: waiting is a flat list {stream index, entry id, job id, prompt
-- tokens, max tokens, ...} of the first `window` entries of each stream (sizes '' when
-- unknown; the payloads stay in Redis); gpus has per GPU {holders, breaker}: holders a flat
-- list {job id, predicted end ms or '', ...} of its live slot leases, breaker its hash.
local counts = KEYS[1]
local first_stream = 2
local window, n_streams = tonumber(ARGV[1]), tonumber(ARGV[2])
local everywhere = redis.call('HMGET', counts, ARGV[3], ARGV[4])
local anything = (tonumber(everywhere[1]) or 0) - (tonumber(everywhere[2]) or 0) > 0
local waiting = {}
for i = first_stream, anything and first_stream + n_streams - 1 or 0 do
  for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', window)) do
    local fields = entry[2]
    table.insert(waiting, i - first_stream + 1)
    table.insert(waiting, entry[1])
    table.insert(waiting, field(fields, 'job_id') or '')
    table.insert(waiting, field(fields, 'in') or '')
    table.insert(waiting, field(fields, 'out') or '')
  end
end
local now = now_ms()
local gpus = {}
for i = first_stream + n_streams, #KEYS, 3 do
  local slots, ends, breaker = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local holders = {}
  for _, job_id in ipairs(redis.call('ZRANGEBYSCORE', slots, now, '+inf')) do
    table.insert(holders, job_id)
    table.insert(holders, redis.call('HGET', ends, job_id) or '')
  end
  table.insert(gpus, {holders, redis.call('HGETALL', breaker)})
end
return {waiting, gpus}
