-- needs: field
-- Read only: per job stream in KEYS, the waiting entries older than `cutoff_ms`, at most
-- `limit` each, as a flat list {stream index, entry id, job id, ...}.
local cutoff_ms, limit = ARGV[1], tonumber(ARGV[2])
local found = {}
for i = 1, #KEYS do
  for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '-', '(' .. cutoff_ms, 'COUNT', limit)) do
    table.insert(found, i)
    table.insert(found, entry[1])
    table.insert(found, field(entry[2], 'job_id') or '')
  end
end
return found
