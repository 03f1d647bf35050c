-- needs: field
-- Read only: per job stream, the waiting entries older than `cutoff_ms`, at most `limit` each,
-- as a flat list {stream index, entry id, job id, ...}. KEYS: the counts, then the streams;
-- when the counts say nothing waits anywhere, no stream is read.
local counts = KEYS[1]
local first_stream = 2
local cutoff_ms, limit = ARGV[1], tonumber(ARGV[2])
local everywhere = redis.call('HMGET', counts, ARGV[3], ARGV[4])
local anything = (tonumber(everywhere[1]) or 0) - (tonumber(everywhere[2]) or 0) > 0
local found = {}
for i = first_stream, anything and #KEYS or 0 do
  for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '-', '(' .. cutoff_ms, 'COUNT', limit)) do
    table.insert(found, i - first_stream + 1)
    table.insert(found, entry[1])
    table.insert(found, field(entry[2], 'job_id') or '')
  end
end
return found
