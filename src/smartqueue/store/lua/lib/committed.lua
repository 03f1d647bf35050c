-- True when the record already holds `status`, committed from stream entry `entry`: a commit
-- run again after its reply was lost (the entry is handled, so `owns` no longer holds).
local function committed_by(record, entry, status)
  local mark = redis.call('HMGET', record, 'status', 'committed_by')
  return mark[1] == status and mark[2] == entry
end
