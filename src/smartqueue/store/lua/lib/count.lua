-- The counters of waiting entries (keys.py Counter): an entry entered or left one stream, which
-- also counts for all streams. Returns the stream's new count.
local function count(counts, field, everywhere_field)
  redis.call('HINCRBY', counts, everywhere_field, 1)
  return redis.call('HINCRBY', counts, field, 1)
end
