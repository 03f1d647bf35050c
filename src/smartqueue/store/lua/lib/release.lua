-- A consumer is done with a running entry: acked, deleted (XACK alone keeps it), its slot
-- and its predicted end on the GPU freed.
local function release_entry(stream, group, entry, slots, ends, job_id)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('ZREM', slots, job_id)
  redis.call('HDEL', ends, job_id)
end
