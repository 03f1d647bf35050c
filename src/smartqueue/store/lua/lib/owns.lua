-- True when `consumer` still holds `entry` (a late commit from a consumer that lost it is refused).
local function owns(stream, group, entry, consumer)
  local pending = redis.call('XPENDING', stream, group, entry, entry, 1)
  return pending[1] ~= nil and pending[1][2] == consumer
end
