-- Depth of a stream = entries not yet delivered to a consumer = XLEN - pending (handled entries
-- are deleted, so they count in neither); a stream without the group yet counts whole.
local function stream_depth(stream, group)
  local length = redis.call('XLEN', stream)
  if length == 0 then return 0 end
  local ok, summary = pcall(redis.call, 'XPENDING', stream, group)
  if ok then return length - summary[1] end
  return length
end
