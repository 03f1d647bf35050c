-- needs: now_ms, owns
-- Keep a running job's claim and slot fresh. Returns 1, or 0 when the claim was lost.
local stream, slots = KEYS[1], KEYS[2]
local group, consumer, entry, job_id = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lease_ms = tonumber(ARGV[5])
if not owns(stream, group, entry, consumer) then return 0 end
redis.call('XCLAIM', stream, group, consumer, 0, entry, 'JUSTID')
-- re-added even if it expired meanwhile: the job really is running on that GPU
redis.call('ZADD', slots, now_ms() + lease_ms, job_id)
return 1
