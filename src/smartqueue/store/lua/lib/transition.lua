-- needs: emit
-- Status change guarded by the lifecycle: only from a status the Python models allow, so
-- status never moves backwards and a terminal job never changes. A change is the ARGV slice
-- from `at`: status, events ttl s (0 unless terminal), record ttl s (0 = none), n allowed, the
-- allowed statuses, then field/value pairs to set. Returns the previous status, or false when not allowed.
local function transition(record, events, channel, job_id, args, at)
  local current = redis.call('HGET', record, 'status')
  if not current then return false end
  local n_allowed = tonumber(args[at + 3])
  local allowed = false
  for i = at + 4, at + 3 + n_allowed do
    if args[i] == current then allowed = true end
  end
  if not allowed then return false end
  redis.call('HSET', record, 'status', args[at])
  for i = at + 4 + n_allowed, #args, 2 do redis.call('HSET', record, args[i], args[i + 1]) end
  if tonumber(args[at + 2]) > 0 then redis.call('EXPIRE', record, args[at + 2]) end
  emit(record, events, channel, job_id, args[at], args[at + 1])
  return current
end
