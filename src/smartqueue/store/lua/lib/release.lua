-- A consumer is done with an entry: acked, deleted (XACK alone keeps it), its slot freed.
local function release_entry(stream, group, entry, slots, job_id)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  redis.call('ZREM', slots, job_id)
end
