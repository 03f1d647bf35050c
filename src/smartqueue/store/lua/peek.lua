-- needs: field
-- Read only: the first `window` waiting entries of each job stream in KEYS, as a flat list
-- {stream index, entry id, job id, prompt tokens, max tokens, ...} (sizes '' when unknown). The
-- payloads stay in Redis: the planner needs only each job's place and size.
local window = tonumber(ARGV[1])
local found = {}
for i = 1, #KEYS do
  for _, entry in ipairs(redis.call('XRANGE', KEYS[i], '-', '+', 'COUNT', window)) do
    local fields = entry[2]
    table.insert(found, i)
    table.insert(found, entry[1])
    table.insert(found, field(fields, 'job_id') or '')
    table.insert(found, field(fields, 'in') or '')
    table.insert(found, field(fields, 'out') or '')
  end
end
return found
