"""Lua scripts: every multi-key change to Redis is one of these, run atomically by store.py.

Conventions: KEYS are declared; job-stream keys come first where a script needs the queue depth.
Depth of a stream = entries not yet delivered to a consumer = XLEN - pending (handled entries
are deleted, so they count in neither).
"""

# Undelivered entries across KEYS[1..n_streams]; a stream without the group yet counts whole.
_DEPTH = """
local function stream_depth(key, group)
  local length = redis.call('XLEN', key)
  if length == 0 then return 0 end
  local ok, summary = pcall(redis.call, 'XPENDING', key, group)
  if ok then return length - summary[1] end
  return length
end
local function total_depth(n_streams, group)
  local total = 0
  for i = 1, n_streams do total = total + stream_depth(KEYS[i], group) end
  return total
end
"""

# Per-stream depths, for the overview.
DEPTHS = (
    _DEPTH
    + """
local depths = {}
for i = 1, #KEYS do depths[i] = stream_depth(KEYS[i], ARGV[1]) end
return depths
"""
)

# Admission and enqueue in one step, so concurrent submits never overshoot a ceiling.
# KEYS: the n job streams, then the record key, then (optional) the idempotency key.
# ARGV: group, n, target stream index, ceiling, job_id, payload, headers, route, priority,
#       created_at, idempotency ttl, then the indices of the streams whose waiting jobs run
#       before this one (its route, same or higher priority).
# Returns {code, job_id, depth on arrival, position}: code 1 accepted, 0 refused, 2 duplicate.
ENQUEUE = (
    _DEPTH
    + """
local group, n = ARGV[1], tonumber(ARGV[2])
local target, ceiling = KEYS[tonumber(ARGV[3])], tonumber(ARGV[4])
local record, idem = KEYS[n + 1], KEYS[n + 2]
if idem then
  local existing = redis.call('GET', idem)
  if existing then return {2, existing, total_depth(n, group), -1} end
end
local depth = total_depth(n, group)
if depth >= ceiling then return {0, '', depth, -1} end
local position = 0
for i = 12, #ARGV do position = position + stream_depth(KEYS[tonumber(ARGV[i])], group) end
local entry = redis.call('XADD', target, '*', 'job_id', ARGV[5], 'payload', ARGV[6],
  'headers', ARGV[7])
redis.call('HSET', record, 'status', 'queued', 'route', ARGV[8], 'priority', ARGV[9],
  'attempts', 0, 'created_at', ARGV[10], 'entry', entry)
if idem then redis.call('SET', idem, ARGV[5], 'EX', ARGV[11]) end
return {1, ARGV[5], depth, position}
"""
)

# Entries ahead of one entry in its stream that no consumer has taken yet.
# KEYS[1]: stream. ARGV: group, entry id.
AHEAD_IN_STREAM = """
local before = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[2], 'COUNT', 100000)
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1], '-', '(' .. ARGV[2], 100000)
if ok then return #before - #pending end
return #before
"""

# Status change guarded by the lifecycle: only from an allowed status, so status never moves
# backwards and a terminal job never changes. Terminal records get their own TTL.
# args from index `at`: new status, ttl (0 = none), n_allowed, allowed..., field, value, ...
# Returns the previous status, or false when the move is not allowed (or the job is unknown).
_TRANSITION = """
local function transition(record, args, at)
  local current = redis.call('HGET', record, 'status')
  if not current then return false end
  local n_allowed = tonumber(args[at + 2])
  local allowed = false
  for i = at + 3, at + 2 + n_allowed do
    if args[i] == current then allowed = true end
  end
  if not allowed then return false end
  redis.call('HSET', record, 'status', args[at])
  for i = at + 3 + n_allowed, #args, 2 do redis.call('HSET', record, args[i], args[i + 1]) end
  if tonumber(args[at + 1]) > 0 then redis.call('EXPIRE', record, args[at + 1]) end
  return current
end
"""

# KEYS[1]: record. ARGV: the transition.
TRANSITION = _TRANSITION + "\nreturn transition(KEYS[1], ARGV, 1)\n"

# Cancel a queued job: its entry leaves the stream in the same step, so it never runs.
# KEYS: record, stream. ARGV: entry id, then the transition.
CANCEL_QUEUED = (
    _TRANSITION
    + """
local previous = transition(KEYS[1], ARGV, 2)
if previous then redis.call('XDEL', KEYS[2], ARGV[1]) end
return previous
"""
)

# Dead-letter a job: record -> dead, entry appended to the DLQ, its stream entry handled.
# KEYS: record, dlq, stream. ARGV: group, entry id ('' if none), n, n DLQ field/value items,
# then the transition. Returns the DLQ entry id, or false when the move is not allowed.
DEAD_LETTER = (
    _TRANSITION
    + """
local n_dlq = tonumber(ARGV[3])
local previous = transition(KEYS[1], ARGV, 4 + n_dlq)
if not previous then return false end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4, 3 + n_dlq))
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
end
return id
"""
)

# Re-run a dead job exactly once: only the caller that deletes the DLQ entry enqueues.
# KEYS: dlq, target stream, new record, old record.
# ARGV: dlq entry id, new job id, payload, headers, route, priority, created_at, old job id.
DLQ_RETRY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
local entry = redis.call('XADD', KEYS[2], '*', 'job_id', ARGV[2], 'payload', ARGV[3],
  'headers', ARGV[4])
redis.call('HSET', KEYS[3], 'status', 'queued', 'route', ARGV[5], 'priority', ARGV[6],
  'attempts', 0, 'created_at', ARGV[7], 'entry', entry, 'retry_of', ARGV[8])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSET', KEYS[4], 'retried_as', ARGV[2]) end
return entry
"""
