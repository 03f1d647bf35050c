-- needs: field, last_delivered
-- Read only: per job stream in KEYS, the waiting (undelivered) entries older than `cutoff_ms`,
-- at most `limit` each, as a flat list {stream index, entry id, job id, ...}.
local group, cutoff_ms, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
local found = {}
for i = 1, #KEYS do
  local last = last_delivered(KEYS[i], group)
  if last then
    local old = redis.call('XRANGE', KEYS[i], '(' .. last, '(' .. cutoff_ms, 'COUNT', limit)
    for _, entry in ipairs(old) do
      table.insert(found, i)
      table.insert(found, entry[1])
      table.insert(found, field(entry[2], 'job_id') or '')
    end
  end
end
return found
