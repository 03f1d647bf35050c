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

_NOW_MS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# True when `consumer` still holds `entry` (a late commit from a consumer that lost it is refused).
_OWNS = """
local function owns(stream, group, entry, consumer)
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  return pending[1] ~= nil and pending[1][2] == consumer
end
"""

# A consumer is done with an entry: acked, deleted (XACK alone keeps it), its slot freed.
_RELEASE = """
local function release_entry(stream, group, entry, slots, job_id)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('ZREM', slots, job_id)
end
"""

# The value of `name` in a flat field/value list.
_FIELD = """
local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return nil
end
"""

# The oldest entry of a stream no consumer has taken yet (nil when none).
_NEXT_UNDELIVERED = """
local function next_undelivered(stream, group)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', stream)
  if not ok then return nil end
  local last = '0-0'
  for _, info in ipairs(groups) do
    for i = 1, #info, 2 do
      if info[i] == 'last-delivered-id' then last = info[i + 1] end
    end
  end
  local head = redis.call('XRANGE', stream, '(' .. last, '+', 'COUNT', 1)
  if head[1] then return head[1][1] end
  return nil
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
# KEYS: the n job streams, the record key, the wake list, then (optional) the idempotency key.
# ARGV: group, n, target stream index, ceiling, job_id, payload, headers, route, priority,
#       created_at, idempotency ttl, path ('' for the default), then the indices of the streams
#       whose waiting jobs run before this one (its route, same or higher priority).
# Returns {code, job_id, depth on arrival, position}: code 1 accepted, 0 refused, 2 duplicate.
ENQUEUE = (
    _DEPTH
    + """
local group, n = ARGV[1], tonumber(ARGV[2])
local target, ceiling = KEYS[tonumber(ARGV[3])], tonumber(ARGV[4])
local record, wake, idem = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
if idem then
  local existing = redis.call('GET', idem)
  if existing then return {2, existing, total_depth(n, group), -1} end
end
local depth = total_depth(n, group)
if depth >= ceiling then return {0, '', depth, -1} end
local position = 0
for i = 13, #ARGV do position = position + stream_depth(KEYS[tonumber(ARGV[i])], group) end
local fields = {'job_id', ARGV[5], 'payload', ARGV[6], 'headers', ARGV[7]}
if ARGV[12] ~= '' then
  table.insert(fields, 'path')
  table.insert(fields, ARGV[12])
end
local entry = redis.call('XADD', target, '*', unpack(fields))
redis.call('HSET', record, 'status', 'queued', 'route', ARGV[8], 'priority', ARGV[9],
  'attempts', 0, 'created_at', ARGV[10], 'entry', entry)
if idem then redis.call('SET', idem, ARGV[5], 'EX', ARGV[11]) end
redis.call('RPUSH', wake, 1)
redis.call('LTRIM', wake, -64, -1)
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
# Tell watchers a job changed: a status event on the job's event stream (which shares the
# record's TTL once terminal), and a PUBLISH on `<prefix>:done` when it ended.
_EMIT = """
local function emit(record, status)
  local base, job_id = string.match(record, '^(.*):job:(.*)$')
  local events = base .. ':events:' .. job_id
  redis.call('XADD', events, '*', 'type', 'status', 'status', status)
  if status == 'completed' or status == 'dead' or status == 'cancelled' then
    local ttl = redis.call('TTL', record)
    if ttl > 0 then redis.call('EXPIRE', events, ttl) end
    redis.call('PUBLISH', base .. ':done', job_id)
  end
end
"""

_TRANSITION = (
    _EMIT
    + """
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
  emit(record, args[at])
  return current
end
"""
)

# KEYS[1]: record. ARGV: the transition.
TRANSITION = _TRANSITION + "\nreturn transition(KEYS[1], ARGV, 1)\n"

# Cancel a job that has not ended: a queued one leaves its stream and a retrying one the delayed
# set in the same step, so neither runs again; a running one is aborted by its consumer, which
# hears of it through the `done` notification.
# KEYS: record, stream, delayed set. ARGV: job id, then the transition.
CANCEL = (
    _TRANSITION
    + """
local entry = redis.call('HGET', KEYS[1], 'entry')
local previous = transition(KEYS[1], ARGV, 2)
if previous == 'queued' and entry then redis.call('XDEL', KEYS[2], entry) end
if previous == 'retrying' then redis.call('ZREM', KEYS[3], ARGV[1]) end
return previous
"""
)

# Dead-letter a job: record -> dead, entry appended to the DLQ, its stream entry handled and
# its slot freed; refused when the consumer no longer holds the entry.
# KEYS: record, dlq, stream, slot set. ARGV: group, consumer, entry id, job id, n, n DLQ
# field/value items, then the transition. Returns the DLQ entry id, or false when refused.
DEAD_LETTER = (
    _OWNS
    + _RELEASE
    + _TRANSITION
    + """
if not owns(KEYS[3], ARGV[1], ARGV[3], ARGV[2]) then return false end
local n_dlq = tonumber(ARGV[5])
release_entry(KEYS[3], ARGV[1], ARGV[3], KEYS[4], ARGV[4])
if not transition(KEYS[1], ARGV, 6 + n_dlq) then return false end
return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 6, 5 + n_dlq))
"""
)

# Re-run a dead job exactly once: only the caller that deletes the DLQ entry enqueues.
# KEYS: dlq, target stream, new record, old record.
# ARGV: dlq entry id, route, priority, created_at, old job id, new job id, then the new entry's
# fields.
DLQ_RETRY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return false end
local entry = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 7))
redis.call('HSET', KEYS[3], 'status', 'queued', 'route', ARGV[2], 'priority', ARGV[3],
  'attempts', 0, 'created_at', ARGV[4], 'entry', entry, 'retry_of', ARGV[5])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('HSET', KEYS[4], 'retried_as', ARGV[6]) end
return entry
"""

# --- the consumer engine -------------------------------------------------------------------------

# Take the next job for one GPU, atomically with a slot on it (queued -> processing).
# KEYS: slot set, breaker, then candidate streams. ARGV: group, consumer, slots, lease ms,
#   aging ms, record key prefix, gpu name, probe ('1' when the caller holds the half-open
#   claim), then one priority rank per stream (0 = high).
# The breaker is re-read here, so a GPU whose breaker another replica just opened gets nothing.
# Among the streams' oldest waiting entries it takes the best (rank, age); an entry that has
# waited `aging ms` ranks as high, so no priority starves. Returns false when the GPU is full,
# its breaker is open or nothing waits, {0, entry id} when the entry was stale (skipped), else
# {stream index (1-based among streams), entry id, fields, deliveries, attempts, created_at}.
TAKE = (
    _NOW_MS
    + _EMIT
    + _FIELD
    + _NEXT_UNDELIVERED
    + """
local group, consumer = ARGV[1], ARGV[2]
local slots, lease_ms, aging_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= slots then return false end
local breaker = redis.call('HGET', KEYS[2], 'state') or 'closed'
if breaker == 'open' or (breaker == 'half_open' and ARGV[8] ~= '1') then return false end
local best, best_key = nil, nil
for i = 3, #KEYS do
  local head = next_undelivered(KEYS[i], group)
  if head then
    local ms = tonumber(string.match(head, '^(%d+)'))
    local rank = tonumber(ARGV[6 + i])
    if now - ms >= aging_ms then rank = 0 end
    local key = rank * 1e13 + ms
    if best_key == nil or key < best_key then best, best_key = i, key end
  end
end
if not best then return false end
local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1,
  'STREAMS', KEYS[best], '>')
local id, fields = reply[1][2][1][1], reply[1][2][1][2]
local job_id = field(fields, 'job_id')
local record = ARGV[6] .. job_id
if redis.call('HGET', record, 'status') ~= 'queued' then
  -- not waiting any more (e.g. its record was removed by hand): handled, nothing to run
  redis.call('XACK', KEYS[best], group, id)
  redis.call('XDEL', KEYS[best], id)
  return {0, id}
end
redis.call('ZADD', KEYS[1], now + lease_ms, job_id)
local deliveries = redis.call('HINCRBY', record, 'deliveries', 1)
redis.call('HSET', record, 'status', 'processing', 'gpu', ARGV[7], 'started_at', now / 1000)
emit(record, 'processing')
local meta = redis.call('HMGET', record, 'attempts', 'created_at')
return {best - 2, id, fields, deliveries, meta[1] or '0', meta[2] or '0'}
"""
)

# Keep a running job's claim and slot fresh. KEYS: stream, slot set.
# ARGV: group, consumer, entry, job id, lease ms. Returns 1, or 0 when the claim was lost.
RENEW = (
    _NOW_MS
    + _OWNS
    + """
if not owns(KEYS[1], ARGV[1], ARGV[3], ARGV[2]) then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
-- re-added even if it expired meanwhile: the job really is running on that GPU
redis.call('ZADD', KEYS[2], now_ms() + tonumber(ARGV[5]), ARGV[4])
return 1
"""
)

# Commit a job's outcome, only while the consumer still holds its entry; the entry is handled
# (acked and deleted) and the slot freed in the same step.
# KEYS: record, stream, slot set. ARGV: group, consumer, entry, job id, then the transition.
# Returns the previous status, or false when the commit is refused.
FINISH = (
    _OWNS
    + _RELEASE
    + _TRANSITION
    + """
if not owns(KEYS[2], ARGV[1], ARGV[3], ARGV[2]) then return false end
local previous = transition(KEYS[1], ARGV, 5)
release_entry(KEYS[2], ARGV[1], ARGV[3], KEYS[3], ARGV[4])
return previous
"""
)

# Put a job aside for a later try: its entry's fields move into the record, the entry is
# handled, the slot freed and the job id scheduled in the delayed set.
# KEYS: record, stream, slot set, delayed set. ARGV: group, consumer, entry, job id, due ms,
#   then the transition (to retrying). Returns the previous status, or false when refused.
RETRY_LATER = (
    _OWNS
    + _RELEASE
    + _TRANSITION
    + """
if not owns(KEYS[2], ARGV[1], ARGV[3], ARGV[2]) then return false end
local previous = transition(KEYS[1], ARGV, 6)
if previous then
  local fields = redis.call('XRANGE', KEYS[2], ARGV[3], ARGV[3])[1][2]
  for i = 1, #fields, 2 do redis.call('HSET', KEYS[1], 'entry:' .. fields[i], fields[i + 1]) end
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[4])
end
release_entry(KEYS[2], ARGV[1], ARGV[3], KEYS[3], ARGV[4])
return previous
"""
)

# Move jobs whose backoff is over back to their stream (retrying -> queued).
# KEYS: delayed set, wake list. ARGV: record key prefix, stream key prefix, now ms, limit.
# Returns how many jobs were moved.
MOVE_DUE = (
    _EMIT
    + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
for _, job_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], job_id)
  local record = ARGV[1] .. job_id
  if redis.call('HGET', record, 'status') == 'retrying' then
    local raw = redis.call('HGETALL', record)
    local fields, drop = {}, {}
    for i = 1, #raw, 2 do
      local name = string.match(raw[i], '^entry:(.+)$')
      if name then
        table.insert(fields, name)
        table.insert(fields, raw[i + 1])
        table.insert(drop, raw[i])
      end
    end
    local meta = redis.call('HMGET', record, 'priority', 'route')
    local stream = ARGV[2] .. meta[1] .. ':' .. meta[2]
    local entry = redis.call('XADD', stream, '*', unpack(fields))
    redis.call('HDEL', record, unpack(drop))
    redis.call('HSET', record, 'status', 'queued', 'entry', entry)
    emit(record, 'queued')
    redis.call('RPUSH', KEYS[2], 1)
  end
end
redis.call('LTRIM', KEYS[2], -64, -1)
return #due
"""
)

# Jobs that waited for dispatch past their deadline go dead (reason `expired`) and to the DLQ,
# in one step. KEYS: stream, dlq. ARGV: group, cutoff ms, limit, record key prefix, priority,
# route, ttl s, now s, error json. Returns how many expired.
EXPIRE_WAITING = (
    _EMIT
    + _FIELD
    + _NEXT_UNDELIVERED
    + """
local head = next_undelivered(KEYS[1], ARGV[1])
if not head then return 0 end
local old = redis.call('XRANGE', KEYS[1], head, '(' .. ARGV[2], 'COUNT', ARGV[3])
for _, entry in ipairs(old) do
  redis.call('XDEL', KEYS[1], entry[1])
  local fields = entry[2]
  local record = ARGV[4] .. field(fields, 'job_id')
  if redis.call('HGET', record, 'status') == 'queued' then
    redis.call('HSET', record, 'status', 'dead', 'reason', 'expired', 'error', ARGV[9],
      'completed_at', ARGV[8])
    redis.call('EXPIRE', record, ARGV[7])
    emit(record, 'dead')
    redis.call('XADD', KEYS[2], '*', 'route', ARGV[6], 'priority', ARGV[5], 'reason', 'expired',
      'attempts', redis.call('HGET', record, 'attempts') or '0', 'error', ARGV[9],
      'dead_at', ARGV[8], unpack(fields))
  end
end
return #old
"""
)

# Claim a GPU's half-open probe, or write any breaker change: compare-and-set on `version`.
# KEYS: breaker hash. ARGV: expected version, then field, value pairs. Returns 1 or 0.
BREAKER_CAS = """
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if version ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', tonumber(version) + 1, unpack(ARGV, 2))
return 1
"""
